/** Distinct exit codes so scripts can tell outcomes apart. */
export const ExitCode = {
  ok: 0,
  /** `get` of a key that is absent (its value is ""). */
  notFound: 1,
  /** Bad arguments or a bad configuration file. */
  badInput: 2,
  /** No replica answered in time: the cluster is down or unreachable (a write may or may not have happened). */
  unreachable: 3,
  /** The cluster refused the request (value too large, unknown group, ...). */
  rejected: 4,
  /**
   * A conditional write's condition did not hold (nothing was written), a transaction's compares did
   * not (its failure ops ran), or `kv lock --wait-ms` gave up (someone else held the lock).
   */
  notApplied: 5,
  /** A watch needed events the servers no longer keep (the message says up to which revision): read the current state and watch from there. */
  compacted: 6,
  /** `kv lock` and `kv lease keepalive --forever`: the lease was lost (the command under the lock was sent SIGTERM). */
  leaseLost: 7,
} as const
