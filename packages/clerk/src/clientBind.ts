/**
 * Where a client's UDP socket binds when the caller does not say: loopback when every server it
 * talks to is on this machine's loopback (nothing outside can reach the client then), else every
 * interface, so that replies from servers on other machines reach it.
 */
const isLoopback = (address: string): boolean => {
  const host = address.startsWith("[")
    ? address.slice(1, address.indexOf("]"))
    : address.slice(0, address.lastIndexOf(":"))
  return host === "localhost" || host === "::1" || /^127\./.test(host)
}

export const clientBind = (servers: Iterable<string>): string => {
  for (const server of servers) if (!isLoopback(server)) return "0.0.0.0:0"
  return "127.0.0.1:0"
}

/** Every replica address a cluster.toml names. */
export const configAddresses = (config: {
  readonly kvraft: { readonly replicas: readonly string[] } | undefined
  readonly controller: { readonly replicas: readonly string[] }
  readonly groups: ReadonlyMap<number, { readonly replicas: readonly string[] }>
}): string[] => [
  ...(config.kvraft?.replicas ?? []),
  ...config.controller.replicas,
  ...[...config.groups.values()].flatMap((g) => g.replicas),
]
