export * from "./linearizability/index.ts"
export { freeUdpPorts, ProcessGroup, tempDir, writeFile } from "./realProcesses.ts"
export { SimProcesses } from "./simProcesses.ts"
