/**
 * Proves that with every write flushed off the event loop, crashes in the middle of flushes lose
 * nothing that was committed: three Raft nodes in virtual time whose disks take 1–15 ms per write,
 * commands proposed all along while nodes crash (a flush in progress is lost with the crash) and
 * restart; no message leaves before the disk holds what it promises (checked on every datagram),
 * no index is ever applied with two different commands, and at the end every node has applied
 * every command that any node applied.
 */
import { expect, test } from "bun:test"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { Effect } from "effect"
import { address, NodeGroup } from "./support/nodeGroup.ts"

const FILE = "packages/raft/test/node-flush-crash.test.ts"
const RUNS = 8
const STEPS = 250

const runSeed = async (seed: number): Promise<{ failures: string[]; crashes: number; commands: number }> => {
  const random = new SeededRandom(seed)
  const flushRandom = new SeededRandom(seed ^ 0x5bd1e995)
  const appliedAt = new Map<number, string>()
  const failures: string[] = []
  const decoder = new TextDecoder()
  const g = new NodeGroup(seed, {
    flushDelay: Effect.suspend(() => Effect.sleep(1 + flushRandom.int(15))),
    onApply: (id, index, data) => {
      const command = decoder.decode(data)
      const seen = appliedAt.get(index)
      if (seen === undefined) appliedAt.set(index, command)
      else if (seen !== command)
        failures.push(`node ${id} applied "${command}" at ${index}, where "${seen}" was applied`)
    },
  })
  const peers = { 1: address(1), 2: address(2), 3: address(3) }
  const ids = [1, 2, 3]
  let crashes = 0
  try {
    await g.run(async () => {
      for (const id of ids) await g.start(id, peers)
      // One node down at a time: the other two can always elect and commit.
      let down: number | undefined
      let proposed = 0
      for (let step = 0; step < STEPS; step++) {
        const leader = g.leader(ids.filter((id) => id !== down))
        if (leader !== undefined) {
          for (let k = 1 + random.int(3); k > 0; k--) {
            g.node(leader).proposeUnsafe(new TextEncoder().encode(`command ${proposed++}`))
          }
        }
        await g.driver.sleep(random.int(20))
        if (random.int(8) !== 0) continue
        if (down === undefined) {
          down = ids[random.int(3)] as number
          await g.stop(down)
          crashes++
        } else {
          await g.start(down, peers)
          down = undefined
        }
      }
      if (down !== undefined) await g.start(down, peers)
      const last = await g.commit(ids, "last")
      const everyCommand = [...appliedAt.keys()].filter((index) => index <= last).sort((a, b) => a - b)
      for (const id of ids) {
        await g.waitFor(`node ${id} to apply through ${last}`, () => g.running(id).applied.includes(last))
        const applied = new Set(g.running(id).applied)
        const missing = everyCommand.filter((index) => !applied.has(index))
        if (missing.length > 0) failures.push(`node ${id} never applied ${missing.slice(0, 5).join(", ")}`)
      }
    })
  } finally {
    await g.close()
  }
  failures.push(...g.sentBeforeDurable.slice(0, 5).map((m) => `sent before durable: ${m}`))
  return { failures, crashes, commands: appliedAt.size }
}

test(`crashes in the middle of flushes lose no committed command (${RUNS} seeds)`, async () => {
  const base = seedFromEnv()
  const seeds = process.env.KV_SEED === undefined ? Array.from({ length: RUNS }, (_, k) => base + k) : [base]
  for (const seed of seeds) {
    const { failures, crashes, commands } = await runSeed(seed)
    if (failures.length > 0) console.log(`replay: KV_SEED=${seed} bun test ${FILE}`)
    console.log(`seed ${seed}: ${commands} commands applied, ${crashes} crashes`)
    expect(failures).toEqual([])
    expect(crashes).toBeGreaterThan(5)
  }
}, 60_000)
