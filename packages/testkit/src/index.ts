export * from "./linearizability/index.ts"
export { SimProcesses } from "./simProcesses.ts"
