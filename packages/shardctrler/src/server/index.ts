export {
  ControllerClient,
  type ControllerClientOptions,
  type ControllerClientShape,
  makeControllerClient,
} from "./client.ts"
export { type AdminOp, type ControllerCommand, decodeControllerCommand, encodeControllerCommand } from "./command.ts"
export { type AdminResult, ControllerStateMachine } from "./controllerStateMachine.ts"
export { ControllerError } from "./errors.ts"
export * from "./protocol.ts"
export { type ControllerServerOptions, type ControllerServerShape, makeControllerServer } from "./server.ts"
