/**
 * Loopback ports: free ones for a new cluster, and whether a port is bound (a server's socket is
 * up) without touching it, read from the kernel's socket tables.
 */
import { readFileSync } from "node:fs"

/** Free UDP ports on 127.0.0.1, found by binding port 0 and releasing it; parallel callers get different ones. */
export const freeUdpPorts = async (count: number): Promise<number[]> => {
  const sockets = await Promise.all(
    Array.from({ length: count }, () => Bun.udpSocket({ hostname: "127.0.0.1", port: 0 })),
  )
  const ports = sockets.map((s) => s.port)
  for (const s of sockets) s.close()
  return ports
}

/** Free TCP ports on 127.0.0.1 (metrics endpoints, etcd). */
export const freeTcpPorts = async (count: number): Promise<number[]> => {
  const servers = Array.from({ length: count }, () =>
    Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }),
  )
  const ports = servers.map((s) => s.port)
  for (const s of servers) s.stop(true)
  return ports
}

export type Protocol = "udp" | "tcp"

/** TCP sockets in LISTEN state; every bound UDP socket counts. */
const TCP_LISTEN = "0A"

/**
 * Whether some socket of this machine is bound to `port` (UDP) or listens on it (TCP), read from
 * /proc/net: unlike binding the port to find out, this cannot steal it from a server starting up.
 * Linux only; elsewhere it throws.
 */
export const portIsBound = (protocol: Protocol, port: number): boolean => {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0")
  const tables = [`/proc/net/${protocol}`, `/proc/net/${protocol}6`].flatMap((path) => {
    try {
      return [readFileSync(path, "utf8")]
    } catch {
      return []
    }
  })
  if (tables.length === 0) throw new Error(`cannot read /proc/net/${protocol}: port checks need Linux`)
  for (const text of tables) {
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/)
      const local = fields[1]
      if (local === undefined || !local.endsWith(`:${hexPort}`)) continue
      if (protocol === "udp" || fields[3] === TCP_LISTEN) return true
    }
  }
  return false
}
