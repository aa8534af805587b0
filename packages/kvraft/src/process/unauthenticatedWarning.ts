import { parseAddress } from "@kv/rpc"

/** Hosts whose traffic never leaves the machine. */
export const isLoopbackHost = (host: string): boolean => {
  const h = host.toLowerCase()
  return h === "localhost" || h === "::1" || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
}

/**
 * The warning a server prints at start when it listens on an address other machines can reach and
 * has no cluster key: then anyone who can send it a UDP datagram can read, change and delete every
 * key, run admin operations, and pose as a Raft peer. Undefined when there is nothing to warn about.
 */
export const unauthenticatedWarning = (
  service: string,
  addresses: readonly string[],
  clusterKey: string | undefined,
): string | undefined => {
  if (clusterKey !== undefined) return undefined
  const exposed = addresses.filter((address) => {
    const host = parseAddress(address)?.host
    return host === undefined || !isLoopbackHost(host)
  })
  if (exposed.length === 0) return undefined
  const rule = "!".repeat(78)
  return [
    rule,
    `WARNING: ${service} listens on ${exposed.join(", ")}, which other machines can reach, and NO CLUSTER KEY`,
    "is configured. Datagrams are not authenticated: anyone who can send one to this address can read,",
    "overwrite and delete every key, run admin operations, and pretend to be a Raft peer.",
    "Set the same key on every server and client: clusterKeyFile in cluster.toml, or KV_CLUSTER_KEY",
    "(docs/configuration.md, section 'Cluster key').",
    rule,
    "",
  ].join("\n")
}
