/**
 * Fault injection for measuring and testing under a lossy network: a fraction of outgoing datagrams
 * is dropped and a fraction sent twice, inside the transport, so a figure measured under loss can
 * be reproduced on any machine (loopback loses nothing by itself). Off unless configured.
 */
export interface NetFaults {
  /** Fraction of outgoing datagrams dropped, in [0, 1). */
  readonly lossRate: number
  /** Fraction of outgoing datagrams (not dropped) sent a second time right after, in [0, 1). */
  readonly dupRate: number
}

export const noNetFaults: NetFaults = { lossRate: 0, dupRate: 0 }

const rate = (name: string, text: string | undefined): number => {
  if (text === undefined || text === "") return 0
  const n = Number(text)
  if (!Number.isFinite(n) || n < 0 || n >= 1) throw new Error(`${name} must be a fraction in [0, 1), got ${text}`)
  return n
}

/**
 * KV_NET_LOSS and KV_NET_DUP (fractions, e.g. 0.01), as every UDP transport of a process reads them
 * (servers, clients and the bench's load process alike). A malformed value throws: a run that
 * silently measured a lossless network would report a wrong figure.
 */
export const netFaultsFromEnv = (env: Readonly<Record<string, string | undefined>>): NetFaults => ({
  lossRate: rate("KV_NET_LOSS", env.KV_NET_LOSS),
  dupRate: rate("KV_NET_DUP", env.KV_NET_DUP),
})

export const injectsFaults = (faults: NetFaults): boolean => faults.lossRate > 0 || faults.dupRate > 0
