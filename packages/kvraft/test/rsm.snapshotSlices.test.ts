/**
 * Proves that a replica keeps serving while a large snapshot is being taken: the RSM begins the
 * snapshot between two applies and steps it between turns of the event loop, so commands are
 * applied and reads answered before it is handed to Raft, and the snapshot Raft gets is the state
 * applied through the index where it began (not where it ended).
 */
import { expect, test } from "bun:test"
import { Storage } from "@kv/raft"
import { RpcNode, SimNetwork, Transport } from "@kv/rpc"
import { Effect, Exit, Layer, Scope } from "effect"
import { makeRsm } from "../src/index.ts"
import type { SnapshotInProgress } from "../src/rsm/stateMachine.ts"

/** Slices a snapshot of the test's state machine takes, each holding the thread 1 ms as real work does. */
const SLICES = 100

test("a replica applies commands and answers reads while a large snapshot is being taken", async () => {
  const network = new SimNetwork({ seed: 1 })
  const scope = await Effect.runPromise(Scope.make())
  try {
    /** Commands applied; whether a snapshot was being taken when each was. */
    let applied = 0
    let appliedDuringSnapshot = 0
    let taking = false
    /** The last index applied when each snapshot began and when it was done. */
    const taken: { begunAt: number; doneAt: number }[] = []
    let lastIndex = 0
    const encode = (count: number) => new TextEncoder().encode(String(count))
    /** A snapshot that takes SLICES steps, holding the state of its start. */
    const job = (count: number): SnapshotInProgress => {
      taking = true
      const begunAt = lastIndex
      let left = SLICES
      return {
        step: () => {
          Bun.sleepSync(1)
          if (--left > 0) return undefined
          taking = false
          taken.push({ begunAt, doneAt: lastIndex })
          return encode(count)
        },
      }
    }
    const rsm = await Effect.runPromise(
      Effect.gen(function* () {
        const context = yield* Layer.buildWithScope(
          RpcNode.layer.pipe(Layer.provide(Transport.layerSim(network, "rsm-1")), Layer.merge(Storage.layerMemory())),
          scope,
        )
        return yield* makeRsm({
          raft: { id: 1, peers: { 1: "rsm-1" }, seed: 1 },
          maxRaftStateBytes: 2_000,
          stateMachine: {
            apply: (_command, index) => {
              applied++
              lastIndex = index
              if (taking) appliedDuringSnapshot++
              return applied
            },
            snapshot: () => job(applied).step() ?? encode(applied),
            // Taken at once, the snapshot's slices all run within the apply that triggers it.
            snapshotWithRoom: (roomBytes) => {
              const j = job(applied)
              let bytes = j.step()
              while (bytes === undefined) bytes = j.step()
              const out = new Uint8Array(roomBytes + bytes.length)
              out.set(bytes, roomBytes)
              return out
            },
            beginSnapshot: (roomBytes) => {
              const j = job(applied)
              return {
                step: () => {
                  const bytes = j.step()
                  if (bytes === undefined) return undefined
                  const out = new Uint8Array(roomBytes + bytes.length)
                  out.set(bytes, roomBytes)
                  return out
                },
              }
            },
            restore: () => {
              throw new Error("nothing to restore from in this test")
            },
          },
        }).pipe(Effect.provideContext(context), Scope.provide(scope))
      }),
    )
    const deadline = Date.now() + 20_000
    while (rsm.raft.status().role !== "leader") {
      if (Date.now() > deadline) throw new Error("no leader")
      await Bun.sleep(5)
    }
    // Commands one after another, each with a read, until several snapshots were taken.
    let readsDuringSnapshot = 0
    for (let i = 0; taken.length < 3; i++) {
      if (Date.now() > deadline) throw new Error(`only ${taken.length} snapshots in 20 s`)
      await Effect.runPromise(rsm.submit(new Uint8Array(100).fill(i % 256)))
      await Effect.runPromise(rsm.read(() => undefined))
      if (taking) readsDuringSnapshot++
    }
    expect(appliedDuringSnapshot).toBeGreaterThan(0)
    expect(readsDuringSnapshot).toBeGreaterThan(0)
    // Raft is given each snapshot at the index where it began, however many commands came meanwhile.
    const last = taken[taken.length - 1]!
    expect(last.doneAt).toBeGreaterThan(last.begunAt)
    while (rsm.raft.status().snapshotIndex !== last.begunAt) {
      if (Date.now() > deadline)
        throw new Error(`snapshot index ${rsm.raft.status().snapshotIndex}, not ${last.begunAt}`)
      await Bun.sleep(5)
    }
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}, 30_000)
