/**
 * Proves that a replica's durable writes do not hold its process: while one follower's disk takes
 * 500 ms per write, the process it shares with the leader keeps running (timers fire on time, the
 * leader commits with the other follower), and the slow follower still acknowledges every entry
 * once it is durable. Real time: three nodes in this process over the simulated network.
 */
import { expect, test } from "bun:test"
import { RpcNode, SimNetwork, Transport } from "@kv/rpc"
import { Effect, Exit, Layer, Scope } from "effect"
import type { NodeId } from "../src/core/index.ts"
import { type ApplyEvent, makeRaftNode, type RaftNodeShape } from "../src/node/raftNode.ts"
import { MemoryDisk, openMemoryStorage, type RaftStorage, Storage } from "../src/storage/index.ts"

const SLOW_WRITE_MS = 500

/**
 * Memory storage with a disk that can be made slow: a durable write then takes SLOW_WRITE_MS, the
 * way a real one holds its caller (`save` blocks the thread, as fdatasyncSync does) or not (`write`
 * waits off the thread, as an fdatasync on the thread pool does).
 */
const slowDiskStorage = (isSlow: () => boolean): Layer.Layer<Storage> =>
  Layer.succeed(Storage)(
    Storage.of({
      open: () =>
        Effect.sync((): RaftStorage => {
          const inner = openMemoryStorage(new MemoryDisk(), {
            flushDelay: Effect.suspend(() => (isSlow() ? Effect.sleep(SLOW_WRITE_MS) : Effect.void)),
          })
          return {
            ...inner,
            save: (hardState, entries) => {
              if (isSlow()) Bun.sleepSync(SLOW_WRITE_MS)
              inner.save(hardState, entries)
            },
          }
        }),
    }),
  )

const waitUntil = async (what: string, condition: () => boolean, timeoutMs = 15_000): Promise<void> => {
  const deadline = performance.now() + timeoutMs
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(5)
  }
}

test("a follower whose disk takes 500 ms per write holds neither its process nor the commits, and acks once durable", async () => {
  const network = new SimNetwork({ seed: 1 })
  const peers: Record<number, string> = { 1: "slow-disk-1", 2: "slow-disk-2", 3: "slow-disk-3" }
  const scope = await Effect.runPromise(Scope.make())
  const applied = [0, 0, 0]
  const nodes: RaftNodeShape[] = []
  let slowNode = 0
  try {
    for (let k = 0; k < 3; k++) {
      const id = k + 1
      const layer = RpcNode.layer.pipe(
        Layer.provide(Transport.layerSim(network, peers[id] as string)),
        Layer.merge(slowDiskStorage(() => slowNode === id)),
      )
      const program = Effect.gen(function* () {
        const context = yield* Layer.buildWithScope(layer, scope)
        return yield* makeRaftNode({
          id: id as NodeId,
          peers,
          seed: id,
          apply: (event: ApplyEvent) => {
            if (event.type === "entries") applied[k] = event.entries.at(-1)?.index ?? applied[k]!
          },
        }).pipe(Effect.provideContext(context), Scope.provide(scope))
      })
      nodes.push(await Effect.runPromise(program))
    }
    await waitUntil("a leader", () => nodes.some((n) => n.status().role === "leader"))
    const leader = nodes.findIndex((n) => n.status().role === "leader")
    const slow = leader === 0 ? 1 : 0
    slowNode = slow + 1

    let longestGapMs = 0
    let last = performance.now()
    const gaps = setInterval(() => {
      const now = performance.now()
      longestGapMs = Math.max(longestGapMs, now - last)
      last = now
    }, 5)
    let lastIndex = 0
    try {
      for (let k = 0; k < 5; k++) {
        const result = await Effect.runPromise(nodes[leader]!.propose(new TextEncoder().encode(`command ${k}`)))
        lastIndex = result.index
        await waitUntil(`entry ${result.index} applied on the leader`, () => applied[leader]! >= result.index)
      }
    } finally {
      clearInterval(gaps)
    }
    // The slow follower gets every entry all the same: its acks leave once its writes are durable.
    await waitUntil("the slow follower to apply every entry", () => applied[slow]! >= lastIndex)
    console.log(`longest gap between 5 ms timer ticks: ${longestGapMs.toFixed(1)} ms`)
    expect(longestGapMs).toBeLessThan(SLOW_WRITE_MS / 2)
    expect(nodes[slow]!.status().lastIndex).toBeGreaterThanOrEqual(lastIndex)
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}, 60_000)
