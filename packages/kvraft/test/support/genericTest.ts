/**
 * The lab's GenericTest: rounds of concurrent client load with optional unreliable network,
 * repartitioning and crash/restart of every server; then per-client append checks, log-size
 * bounds and a linearizability verdict over the whole history.
 */
import { expect } from "bun:test"
import type { Rng } from "@kv/sim"
import { type Clerk, ELECTION_TIMEOUT_MS, KvLab, type KvRunSummary } from "./kvLab.ts"

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

/** A uniformly shuffled copy of `items` (Fisher–Yates), from the seeded stream `rng`. */
const shuffle = <A>(items: readonly A[], rng: Rng): A[] => {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1)
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

/** The lab's GenericTest on a fresh group, in virtual time. */
export const genericTest = (o: GenericOptions): Promise<KvRunSummary> =>
  new KvLab(o.nservers, { seed: o.seed, unreliable: o.unreliable, maxRaftStateBytes: o.maxRaftStateBytes }).run((lab) =>
    genericRounds(lab, o),
  )

const genericRounds = async (lab: KvLab, o: GenericOptions): Promise<void> => {
  const clerkChoices = lab.world.stream("clerks")
  const partitionChoices = lab.world.stream("partitions")
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
        const key = o.randomKeys ? String(clerkChoices.nextInt(o.nclients)) : String(cli)
        const nv = `x ${cli} ${j} y`
        const dice = clerkChoices.nextInt(1000)
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
      await lab.sleep(1_000)
      partitioning = true
      partitioner = (async () => {
        while (partitioning) {
          const shuffled = shuffle(all, partitionChoices)
          const cut = partitionChoices.nextInt(o.nservers + 1)
          lab.partition(shuffled.slice(0, cut), shuffled.slice(cut))
          await lab.sleep(ELECTION_TIMEOUT_MS + partitionChoices.nextInt(200))
        }
      })()
    }
    await lab.sleep(o.loadMs ?? 5_000)
    done = true
    partitioning = false
    if (o.partitions) {
      await partitioner
      lab.connectAll()
      await lab.sleep(ELECTION_TIMEOUT_MS)
    }
    const counts = await Promise.all(clients)
    if (o.crash) {
      for (const i of all) await lab.crash(i)
      await lab.sleep(ELECTION_TIMEOUT_MS)
      for (const i of all) await lab.restart(i)
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
      if (size > 8 * o.maxRaftStateBytes) throw new Error(`logs were not trimmed (${size} > 8*${o.maxRaftStateBytes})`)
    }
    if (o.maxRaftStateBytes < 0) expect(lab.snapshotSize()).toBe(0)
  }
  lab.checkLinearizable()
}
