export {
  type ClusterConfig,
  configuredLimits,
  dataDirOf,
  type LoadClusterConfigOptions,
  loadClusterConfig,
  type ParseClusterConfigOptions,
  parseClusterConfig,
  type ReplicaGroupConfig,
  type ServiceName,
  serverKeyGrants,
} from "./clusterConfig.ts"
export {
  CLIENT_KEY_ENV,
  CLUSTER_KEY_ENV,
  type ClientKey,
  type ClientRole,
  type ClusterKeySource,
  ensureGeneratedClusterKey,
  GENERATED_KEY_FILE,
  PREVIOUS_CLUSTER_KEYS_ENV,
} from "./clusterKey.ts"
export { ConfigError } from "./errors.ts"
export {
  DEFAULT_DATA_DIR,
  DEFAULT_MAX_RAFT_STATE_BYTES,
  DEFAULT_N_SHARDS,
  MAX_REPLICAS,
  MAX_SHARDS,
} from "./fileSchema.ts"
export {
  advertisedNotLocalHint,
  type ListenResolution,
  listenPort,
  localAddresses,
  resolveListen,
} from "./listenAddress.ts"
export { canonicalAddress } from "./replicaAddress.ts"
