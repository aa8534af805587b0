export { cliEnvironment } from "./cliEnvironment.ts"
export {
  type LogFormat,
  loggerLayer,
  type ReplicaContext,
  runServerMain,
  type Served,
  type ServeOptions,
  StartupError,
  serveReplicas,
} from "./serve.ts"
export { dataDirFrom, loadConfigFor, type ServerFlags, serverFlags } from "./serverFlags.ts"
