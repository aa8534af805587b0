export { WrongLeader } from "./errors.ts"
export { makeRsm, type RsmOptions, type RsmOutcome, type RsmShape, type SubmitError } from "./rsm.ts"
export { installWhenRestored, type ReplicatedStateMachine } from "./stateMachine.ts"
