export { cliEnvironment } from "./cliEnvironment.ts"
export { type MetricsSource, observeReplica, scrape, serveMetrics } from "./metrics.ts"
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
