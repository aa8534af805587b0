export * from "./linearizability/index.ts"
export {
  type CommandResult,
  freeUdpPorts,
  type Launched,
  ProcessGroup,
  pollUntil,
  runCommand,
  type TempDir,
  tempDir,
  udpClientNode,
  writeFile,
} from "./realProcesses.ts"
export { SimProcesses } from "./simProcesses.ts"
export { SimWorld, type SimWorldOptions } from "./simWorld.ts"
export {
  runSwarmSeeds,
  type SwarmCasClient,
  type SwarmClient,
  SwarmLedger,
  type SwarmPutClient,
  type SwarmSeedResult,
  watchExpiredSessions,
} from "./swarm.ts"
