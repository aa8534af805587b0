import { parseAddress } from "@kv/rpc"

const HOSTNAME = /^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$/
const IPV6 = /^[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?$/

/**
 * Why `address` cannot be a replica's UDP endpoint, or undefined when it can. Anything accepted
 * here is also accepted by `@kv/rpc`'s `parseAddress`, so a file that validates can always be
 * bound and dialled; on top of that it rejects what `parseAddress` lets through but cannot be a
 * peer (port 0, which means "any port") or is ambiguous (an unbracketed IPv6 host).
 */
export const replicaAddressProblem = (address: string): string | undefined => {
  const invalid = (why: string) => `${JSON.stringify(address)} is not a valid host:port (${why})`
  const colon = address.lastIndexOf(":")
  if (colon < 0) return invalid('missing ":port"')
  const host = address.slice(0, colon)
  const portText = address.slice(colon + 1)
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    return invalid("port must be 1–65535")
  }
  if (host.length === 0) return invalid("host is empty")
  if (host.startsWith("[")) {
    if (!host.endsWith("]") || !IPV6.test(host.slice(1, -1))) return invalid("malformed [IPv6] host")
  } else if (host.includes(":")) {
    return invalid("an IPv6 host must be in brackets, e.g. [::1]:7000")
  } else if (!HOSTNAME.test(host)) {
    return invalid("host must be a hostname, an IPv4 address or a bracketed IPv6 address")
  }
  if (parseAddress(address) === undefined) return invalid("not understood by the transport")
  return undefined
}

/** One spelling per endpoint, so `LOCALHOST:7000` and `localhost:7000` count as the same replica. */
export const canonicalAddress = (address: string): string => {
  const colon = address.lastIndexOf(":")
  return `${address.slice(0, colon).toLowerCase()}:${Number(address.slice(colon + 1))}`
}
