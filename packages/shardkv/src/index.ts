export * from "./client/index.ts"
export * from "./protocol.ts"
export * from "./server/index.ts"
export * from "./stateMachine/index.ts"
