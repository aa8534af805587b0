export * from "./config/index.ts"
export * from "./server/index.ts"
