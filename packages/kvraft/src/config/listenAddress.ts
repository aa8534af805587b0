/**
 * Listen vs advertise (etcd's --listen-peer-urls / --initial-advertise-peer-urls): cluster.toml
 * names where each replica is reached (its advertised address); a server may bind somewhere else,
 * e.g. 0.0.0.0 on a host whose address is only known from outside, or a host behind NAT.
 *
 * The rules come from how addresses are identities here. A peer accepts a replica's Raft datagrams
 * only from the replica's advertised address (raft's peerSources): the kernel writes the source
 * address from the socket, so the bound port must be the advertised port, and a socket bound to one
 * address of this host must not advertise another address of this host. A wildcard bind sends from
 * the address of the interface that routes to the peer, which on a host with one interface is the
 * advertised one. Anything the rules cannot see (a NAT in between, a host name) is allowed.
 */

import { isIP } from "node:net"
import { networkInterfaces } from "node:os"
import { formatAddress, parseAddress } from "@kv/rpc"

const WILDCARDS = new Set(["0.0.0.0", "::"])
const LOOPBACK_NAMES = new Set(["localhost"])

export type ListenResolution =
  | { readonly ok: true; readonly bind: string }
  | { readonly ok: false; readonly problem: string }

/** Every IP address of this host's interfaces, loopback included. */
export const localAddresses = (): string[] =>
  Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .map((entry) => entry.address.replace(/%.*$/, ""))

const bare = (host: string): string => (host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host)

/** `host` or `host:port`; an IPv6 host alone as it is or in brackets, with a port in brackets. */
const parseListen = (listen: string): { host: string; port: number | undefined } | undefined => {
  const text = listen.trim()
  if (text.startsWith("[") && text.endsWith("]")) {
    return isIP(bare(text)) === 6 ? { host: bare(text), port: undefined } : undefined
  }
  if (isIP(text) !== 0) return { host: text, port: undefined }
  if (!text.includes(":")) return /^[A-Za-z0-9_.-]+$/.test(text) ? { host: text, port: undefined } : undefined
  const parsed = parseAddress(text)
  if (parsed === undefined || (parsed.host.includes(":") && isIP(parsed.host) !== 6)) return undefined
  if (!/^[A-Za-z0-9_.:-]+$/.test(parsed.host)) return undefined
  return parsed
}

/** The port a listen address names, if it names one. */
export const listenPort = (listen: string): number | undefined => parseListen(listen)?.port

/**
 * Where a replica advertised at `advertised` binds when asked to listen at `listen` (undefined: at
 * its advertised address, as before), or why it must not. `local` is this host's addresses.
 */
export const resolveListen = (
  listen: string | undefined,
  advertised: string,
  local: readonly string[],
): ListenResolution => {
  if (listen === undefined) return { ok: true, bind: advertised }
  const fail = (why: string): ListenResolution => ({ ok: false, problem: `--listen ${listen}: ${why}` })
  const wanted = parseListen(listen)
  if (wanted === undefined) {
    return fail('expected a host or host:port ("0.0.0.0", "10.0.0.2:7001", "[::]:7001")')
  }
  const target = parseAddress(advertised)
  if (target === undefined) return fail(`the advertised address ${advertised} is not host:port`)
  const port = wanted.port ?? target.port
  if (port !== target.port) {
    return fail(
      `port ${port} differs from the advertised ${advertised}: peers accept this replica's datagrams only from its ` +
        `advertised address, and a socket on port ${port} sends from port ${port} ` +
        `(listen on port ${target.port}, or advertise port ${port} in the cluster config)`,
    )
  }
  const host = LOOPBACK_NAMES.has(wanted.host.toLowerCase()) ? "127.0.0.1" : wanted.host
  const bind = formatAddress(host, port)
  if (WILDCARDS.has(host) || isIP(host) === 0) return { ok: true, bind }
  const mine = new Set(local.map((a) => a.toLowerCase()))
  if (!mine.has(host.toLowerCase())) {
    return fail(
      `${host} is not an address of this host (its addresses: ${[...new Set(local)].join(", ") || "none"}); ` +
        `listen on one of them, or on ${isIP(host) === 6 ? "::" : "0.0.0.0"} for all of them`,
    )
  }
  const advertisedHost = bare(target.host)
  const advertisedIsMine = mine.has(advertisedHost.toLowerCase()) || LOOPBACK_NAMES.has(advertisedHost.toLowerCase())
  const advertisedAs = LOOPBACK_NAMES.has(advertisedHost.toLowerCase()) ? "127.0.0.1" : advertisedHost.toLowerCase()
  if (advertisedIsMine && advertisedAs !== host.toLowerCase()) {
    return fail(
      `binds ${host} but advertises ${advertised}, another address of this host: its datagrams would leave from ` +
        `${host}, and peers accept them only from ${advertisedHost} (listen on ${advertisedHost} or on 0.0.0.0)`,
    )
  }
  return { ok: true, bind }
}

/**
 * Why binding the advertised address itself failed, in words, when it is not an address of this
 * host: the usual mistake on a host whose public address is not its own (NAT, a container).
 */
export const advertisedNotLocalHint = (advertised: string, local: readonly string[]): string | undefined => {
  const target = parseAddress(advertised)
  if (target === undefined) return undefined
  const host = bare(target.host)
  if (isIP(host) === 0 || local.some((a) => a.toLowerCase() === host.toLowerCase())) return undefined
  return (
    `${host} is not an address of this host (its addresses: ${[...new Set(local)].join(", ") || "none"}); ` +
    `if it is how other hosts reach this one (NAT, a container), keep advertising it and bind with --listen 0.0.0.0`
  )
}
