export * from "./linearizability/index.ts"
export { type ProcessFixture, processFixture } from "./processFixture.ts"
export {
  type CommandResult,
  freeUdpPorts,
  type Launched,
  type LaunchOptions,
  ProcessGroup,
  pollUntil,
  runCommand,
  type TempDir,
  tempDir,
  udpClientNode,
  writeFile,
} from "./realProcesses.ts"
export { type RecordedLoadOptions, startRecordedLoad } from "./recordedLoad.ts"
export { serverBins } from "./serverBins.ts"
export { SimProcesses } from "./simProcesses.ts"
export { SimWorld, type SimWorldOptions } from "./simWorld.ts"
export {
  addCoordinationCounts,
  type CoordinationCounts,
  runSwarmSeeds,
  type SwarmCasClient,
  type SwarmClient,
  type SwarmCompare,
  type SwarmEntry,
  SwarmLedger,
  type SwarmPutClient,
  type SwarmSeedResult,
  type SwarmTxnClient,
  transferTotal,
  watchExpiredSessions,
  withSlowFlushes,
} from "./swarm.ts"
export {
  type CheckedEntry,
  type CheckedEvent,
  checkStoreHistory,
  checkWatcher,
  checkWatchers,
  type WatcherRecord,
  type WatchObservation,
} from "./watchChecker.ts"
