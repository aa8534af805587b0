/**
 * The lab's GenericTest: rounds of concurrent client load with optional unreliable network,
 * repartitioning and crash/restart of every server; then per-client append checks, log-size
 * bounds and a linearizability verdict over the whole history.
 */
import { expect } from "bun:test"
import { SeededRandom } from "@kv/rpc"
import { type Clerk, ELECTION_TIMEOUT_MS, KvLab } from "./kvLab.ts"

export interface GenericOptions {
  readonly seed: number
  readonly nclients: number
  readonly nservers: number
  readonly unreliable: boolean
  readonly crash: boolean
  readonly partitions: boolean
  /** -1: never snapshot (and no snapshot may exist); > 0: snapshot at that many bytes. */
  readonly maxRaftStateBytes: number
  readonly randomKeys: boolean
  readonly rounds?: number
  readonly loadMs?: number
}

/** Every append by `clerk` appears exactly once in `value`, in the order it was issued. */
export const checkClientAppends = (clerk: number, value: string, count: number): void => {
  let lastOff = -1
  for (let j = 0; j < count; j++) {
    const wanted = `x ${clerk} ${j} y`
    const off = value.indexOf(wanted)
    if (off < 0) throw new Error(`clerk ${clerk} missing element ${wanted} in Append result ${value}`)
    if (value.indexOf(wanted, off + 1) >= 0) throw new Error(`duplicate element ${wanted} in Append result`)
    if (off <= lastOff) throw new Error(`wrong order for element ${wanted} in Append result`)
    lastOff = off
  }
}

const sleep = (ms: number) => Bun.sleep(ms)

export const genericTest = async (o: GenericOptions): Promise<void> => {
  const random = new SeededRandom(o.seed)
  const lab = await KvLab.make(o.nservers, {
    seed: o.seed,
    unreliable: o.unreliable,
    maxRaftStateBytes: o.maxRaftStateBytes,
  })
  try {
    const all = Array.from({ length: o.nservers }, (_, i) => i)
    const ck = await lab.makeClerk()
    const clerks: Clerk[] = []
    for (let c = 0; c < o.nclients; c++) clerks.push(await lab.makeClerk())
    const rounds = o.rounds ?? 3
    for (let round = 0; round < rounds; round++) {
      let done = false
      const clients = clerks.map(async (clerk, cli) => {
        let j = 0
        let last = ""
        if (!o.randomKeys) await lab.put(clerk, String(cli), last)
        while (!done) {
          const key = o.randomKeys ? String(random.int(o.nclients)) : String(cli)
          const nv = `x ${cli} ${j} y`
          const dice = random.int(1000)
          if (dice < 500) {
            await lab.append(clerk, key, nv)
            if (!o.randomKeys) last += nv
            j++
          } else if (o.randomKeys && dice < 600) {
            await lab.put(clerk, key, nv)
            j++
          } else {
            const v = await lab.get(clerk, key)
            if (!o.randomKeys && v !== last) throw new Error(`get wrong value, key ${key}, wanted:\n${last}\ngot\n${v}`)
          }
        }
        return j
      })
      let partitioning = false
      let partitioner: Promise<void> = Promise.resolve()
      if (o.partitions) {
        await sleep(1_000)
        partitioning = true
        partitioner = (async () => {
          while (partitioning) {
            const shuffled = [...all].sort(() => random.next() - 0.5)
            const cut = random.int(o.nservers + 1)
            lab.partition(shuffled.slice(0, cut), shuffled.slice(cut))
            await sleep(ELECTION_TIMEOUT_MS + random.int(200))
          }
        })()
      }
      await sleep(o.loadMs ?? 5_000)
      done = true
      partitioning = false
      if (o.partitions) {
        await partitioner
        lab.connectAll()
        await sleep(ELECTION_TIMEOUT_MS)
      }
      const counts = await Promise.all(clients)
      if (o.crash) {
        for (const i of all) await lab.shutdownServer(i)
        await sleep(ELECTION_TIMEOUT_MS)
        for (const i of all) await lab.startServer(i)
        lab.connectAll()
      }
      if (!o.randomKeys) {
        for (let cli = 0; cli < o.nclients; cli++) {
          const v = await lab.get(ck, String(cli))
          checkClientAppends(cli, v, counts[cli] ?? 0)
        }
      }
      if (o.maxRaftStateBytes > 0) {
        // Snapshots are taken after the fact; the lab allows 8x before calling it a failure.
        const size = lab.logSize()
        if (size > 8 * o.maxRaftStateBytes)
          throw new Error(`logs were not trimmed (${size} > 8*${o.maxRaftStateBytes})`)
      }
      if (o.maxRaftStateBytes < 0) expect(lab.snapshotSize()).toBe(0)
    }
    console.log(`${lab.ops} client operations in ${(lab.elapsedMs() / 1000).toFixed(1)} s`)
    lab.checkLinearizable()
  } finally {
    await lab.cleanup()
  }
}
