import { isIP } from "node:net"

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

const LOOPBACK = new Set(["localhost", "127.0.0.1", "::1", "::ffff:127.0.0.1"])

const normalizeHost = (host: string): string => {
  const h = host.toLowerCase()
  if (LOOPBACK.has(h)) return "127.0.0.1"
  if (h.startsWith("::ffff:") && isIP(h.slice(7)) === 4) return h.slice(7)
  return h
}

/**
 * The comparable form of `host:port`, as a receiver sees a sender's source address: `localhost`
 * arrives as 127.0.0.1, an IPv4 sender on an IPv6 socket as ::ffff:a.b.c.d. An address that is
 * not `host:port` (simulated networks) is kept as is.
 */
export const normalizeAddress = (address: string): string => {
  const hp = parseAddress(address)
  return hp === undefined ? address : `${normalizeHost(hp.host)}:${hp.port}`
}

/** Whether a host name needs DNS to become the addresses datagrams show (not an IP literal or loopback). */
export const isHostName = (host: string): boolean => isIP(host) === 0 && !LOOPBACK.has(host.toLowerCase())
