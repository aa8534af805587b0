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
  /** A conditional write's condition did not hold (nothing was written), or a transaction's compares did not (its failure ops ran). */
  notApplied: 5,
} as const
