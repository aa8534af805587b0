export * from "./linearizability/index.ts"
export { freeUdpPorts, ProcessGroup, tempDir, udpClientNode, writeFile } from "./realProcesses.ts"
export { SimProcesses } from "./simProcesses.ts"
export { SimWorld } from "./simWorld.ts"
