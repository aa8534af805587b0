export { allowReplicaClients } from "./access.ts"
export { cliEnvironment } from "./cliEnvironment.ts"
export { DataDirHeld, lockReplicaDir } from "./dataDirLock.ts"
export { isEmptyDataDir } from "./groupProbe.ts"
export { type MetricsSource, observeReplica, scrape, serveMetrics } from "./metrics.ts"
export {
  type JoinOptions,
  type LogFormat,
  loggerLayer,
  type ReplicaContext,
  runServerMain,
  type Served,
  type ServeOptions,
  StartupError,
  serveReplicas,
  startMetrics,
} from "./serve.ts"
export { dataDirFrom, joinFrom, loadConfigFor, type ServerFlags, serverFlags } from "./serverFlags.ts"
export { SharedSockets } from "./sharedSockets.ts"
export { StartupJit } from "./startupJit.ts"
