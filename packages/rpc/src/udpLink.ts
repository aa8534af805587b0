import dgram from "node:dgram"
import { isIP } from "node:net"
import { formatAddress, parseAddress } from "./address.ts"
import { HostNames } from "./hostNames.ts"
import type { DatagramHandler, Link } from "./link.ts"

export type UdpBackend = "node-dgram" | "bun"

export interface UdpLinkOptions {
  /** `host:port` to bind; port 0 picks an ephemeral port. */
  readonly bind: string
  /**
   * node:dgram (Bun's implementation) can size the kernel buffers; Bun.udpSocket cannot and
   * loses datagrams under bursts (see BENCHMARKS.md), so node-dgram is the default.
   */
  readonly backend?: UdpBackend
  readonly recvBufferBytes?: number
  readonly sendBufferBytes?: number
  /** Called for socket-level errors that are not fatal to the link (e.g. ICMP unreachable). */
  readonly onError?: (error: Error) => void
}

export class BindError extends Error {
  constructor(
    readonly address: string,
    cause: unknown,
  ) {
    super(`cannot bind UDP ${address}: ${cause instanceof Error ? cause.message : String(cause)}`)
    this.name = "BindError"
  }
}

const DEFAULT_BUFFER_BYTES = 4 * 1024 * 1024

const isStaleRefusal = (error: unknown): boolean => (error as { code?: unknown } | null)?.code === "ECONNREFUSED"

type NativeSend = (datagram: Uint8Array, port: number, host: string) => boolean

const ipLiterals = new Map<string, boolean>()
/** Whether `host` is an IP literal: isIP's regular expression ran on every datagram sent. */
const isIpLiteral = (host: string): boolean => {
  let literal = ipLiterals.get(host)
  if (literal === undefined) {
    literal = isIP(host) !== 0
    // Hosts come from configs and peers, a small set; the bound keeps a hostile one from growing it.
    if (ipLiterals.size < 4096) ipLiterals.set(host, literal)
  }
  return literal
}

/**
 * A synchronous send that may throw. The kernel reports an ICMP "port unreachable" from an earlier
 * datagram (a crashed peer) on the next send, failing a datagram meant for a live peer: that one
 * is sent again once. Other errors go to `onError`; the datagram is then not sent (false).
 */
const sendResendingStaleRefusal = (
  send: NativeSend,
  datagram: Uint8Array,
  port: number,
  host: string,
  onError: ((error: Error) => void) | undefined,
): boolean => {
  try {
    return send(datagram, port, host)
  } catch (error) {
    if (isStaleRefusal(error)) {
      try {
        return send(datagram, port, host)
      } catch {}
    }
    onError?.(error instanceof Error ? error : new Error(String(error)))
    return false
  }
}

/**
 * The Bun socket under a bound node:dgram socket, whose send() is one sendto now. Bun's
 * dgram.send() first resolves the address asynchronously, even an IP literal, and that completion
 * can wait for the event loop's next timer: interleaved on this machine, p50 0.28 / p99 8.4 ms
 * from send to arrival through dgram.send(), 0.18 / 5.5 ms through the socket under it. The
 * socket is internal to Bun, so it is looked up defensively; without it, dgram.send() is used.
 */
const nativeSendOf = (socket: dgram.Socket): NativeSend | undefined => {
  const stateKey = Object.getOwnPropertySymbols(socket).find((key) => key.description === "state symbol")
  if (stateKey === undefined) return undefined
  const state = (socket as unknown as Record<symbol, { handle?: { socket?: unknown } } | undefined>)[stateKey]
  const native = state?.handle?.socket as { send?: unknown } | undefined
  if (native === undefined || typeof native.send !== "function") return undefined
  const send = native.send as (this: unknown, data: Uint8Array, port: number, host: string) => unknown
  return (datagram, port, host) => send.call(native, datagram, port, host) === true
}

export const openUdpLink = (options: UdpLinkOptions, onDatagram: DatagramHandler): Promise<Link> => {
  const bind = parseAddress(options.bind)
  if (bind === undefined) return Promise.reject(new BindError(options.bind, "not a host:port address"))
  return (options.backend ?? "node-dgram") === "bun"
    ? openBunLink(bind.host, bind.port, options, onDatagram)
    : openDgramLink(bind.host, bind.port, options, onDatagram)
}

const openDgramLink = (
  host: string,
  port: number,
  options: UdpLinkOptions,
  onDatagram: DatagramHandler,
): Promise<Link> =>
  new Promise((resolve, reject) => {
    const socket = dgram.createSocket({
      type: host.includes(":") ? "udp6" : "udp4",
      recvBufferSize: options.recvBufferBytes ?? DEFAULT_BUFFER_BYTES,
      sendBufferSize: options.sendBufferBytes ?? DEFAULT_BUFFER_BYTES,
    })
    let bound = false
    let closed = false
    socket.once("error", (error) => {
      if (!bound) reject(new BindError(formatAddress(host, port), error))
    })
    socket.on("error", (error) => {
      if (bound) options.onError?.(error)
    })
    socket.on("message", (msg, rinfo) => {
      onDatagram(formatAddress(rinfo.address, rinfo.port), msg)
    })
    socket.bind(port, host, () => {
      bound = true
      const local = socket.address()
      const nativeSend = nativeSendOf(socket)
      const names = new HostNames(host.includes(":") ? 6 : 4)
      resolve({
        address: formatAddress(local.address, local.port),
        send(to, datagram) {
          if (closed) return false
          const peer = parseAddress(to)
          if (peer === undefined) return false
          const ip = isIpLiteral(peer.host) ? peer.host : names.ipOf(peer.host)
          // Not accepted now (a full socket buffer, no native socket, a name not yet resolved):
          // dgram.send() resolves and queues it.
          if (
            nativeSend !== undefined &&
            ip !== undefined &&
            sendResendingStaleRefusal(nativeSend, datagram, peer.port, ip, undefined)
          ) {
            return true
          }
          try {
            socket.send(datagram, peer.port, peer.host, (error) => {
              // The kernel reports an ICMP "port unreachable" from an earlier datagram (a crashed
              // peer) on the next send, failing a datagram meant for a live peer: send it again.
              if (error !== null && isStaleRefusal(error) && !closed) socket.send(datagram, peer.port, peer.host)
            })
            return true
          } catch (error) {
            options.onError?.(error instanceof Error ? error : new Error(String(error)))
            return false
          }
        },
        close() {
          if (closed) return
          closed = true
          socket.close()
        },
      })
    })
  })

const openBunLink = async (
  host: string,
  port: number,
  options: UdpLinkOptions,
  onDatagram: DatagramHandler,
): Promise<Link> => {
  let socket: Bun.udp.Socket<"uint8array">
  try {
    socket = await Bun.udpSocket({
      hostname: host,
      port,
      binaryType: "uint8array",
      socket: {
        data(_socket, data, fromPort, fromAddress) {
          onDatagram(formatAddress(fromAddress, fromPort), data)
        },
        // Without an error handler an ICMP error from a crashed peer surfaces as an uncaught exception.
        error(_socket, error) {
          options.onError?.(error)
        },
      },
    })
  } catch (error) {
    throw new BindError(formatAddress(host, port), error)
  }
  let closed = false
  const names = new HostNames(host.includes(":") ? 6 : 4)
  return {
    address: formatAddress(socket.hostname, socket.port),
    send(to, datagram) {
      if (closed) return false
      const peer = parseAddress(to)
      if (peer === undefined) return false
      const ip = isIpLiteral(peer.host) ? peer.host : names.ipOf(peer.host)
      // Until the name's first answer, Bun.udpSocket cannot send to it: like a lost datagram.
      if (ip === undefined) return false
      return sendResendingStaleRefusal(
        (data, port, host) => socket.send(data, port, host),
        datagram,
        peer.port,
        ip,
        options.onError,
      )
    },
    close() {
      if (closed) return
      closed = true
      socket.close()
    },
  }
}
