/** A UDP endpoint written as `host:port`, the form used in configs and on the wire. */
export interface HostPort {
  readonly host: string
  readonly port: number
}

const cache = new Map<string, HostPort | undefined>()

/** Parses `host:port` (IPv4 or hostname; `[v6]:port` for IPv6). Undefined when malformed. */
export const parseAddress = (address: string): HostPort | undefined => {
  const hit = cache.get(address)
  if (hit !== undefined || cache.has(address)) return hit
  const parsed = parseUncached(address)
  // Addresses come from configs and peers, a small set; the bound keeps a hostile sender from growing it.
  if (cache.size < 4096) cache.set(address, parsed)
  return parsed
}

const parseUncached = (address: string): HostPort | undefined => {
  const colon = address.lastIndexOf(":")
  if (colon <= 0 || colon === address.length - 1) return undefined
  let host = address.slice(0, colon)
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1)
  const portText = address.slice(colon + 1)
  if (!/^\d{1,5}$/.test(portText)) return undefined
  const port = Number(portText)
  if (port < 0 || port > 65535 || host.length === 0) return undefined
  return { host, port }
}

export const formatAddress = (host: string, port: number): string =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`
