/**
 * Proves that a shard group's replica keeps applying commands and answering reads while the RSM
 * takes a snapshot of a large ShardStateMachine, as the shard server wires it: the RSM begins the
 * snapshot between two applies and steps it between turns of the event loop, and Raft is handed the
 * state applied through the index where it began.
 */
import { expect, test } from "bun:test"
import { type KvCommand, makeRsm } from "@kv/kvraft"
import { Storage } from "@kv/raft"
import { RpcNode, SimNetwork, Transport } from "@kv/rpc"
import { makeConfig, shardOf } from "@kv/shardctrler"
import { Effect, Exit, Layer, Scope } from "effect"
import { decodeShardCommand, encodeShardCommand, ShardStateMachine } from "../src/stateMachine/index.ts"

const N_SHARDS = 10
const GID = 100
const KEYS = 100_000

test("a shard group's replica applies commands and answers reads while a large snapshot is being taken", async () => {
  const machine = new ShardStateMachine({ gid: GID, nShards: N_SHARDS })
  machine.apply({
    type: "reconfigure",
    config: makeConfig(1, new Array(N_SHARDS).fill(GID), new Map([[GID, ["rsm-1"]]])),
  })
  const seqs = new Map<string, number>()
  const putCommand = (clientId: number, key: string, value: string): KvCommand => {
    const session = `${clientId}/${shardOf(key, N_SHARDS)}`
    const seq = (seqs.get(session) ?? 0) + 1
    seqs.set(session, seq)
    return { clientId, seq, ackedBelow: seq, nowMs: 1_000, op: { op: "put", key, value } }
  }
  // The group's data is there before the log starts: the RSM only sees the commands after it.
  for (let i = 0; i < KEYS; i++) machine.apply({ type: "client", command: putCommand(1, `key-${i}`, "v".repeat(40)) })

  let lastIndex = 0
  let taking = false
  let appliedDuringSnapshot = 0
  const taken: { begunAt: number; doneAt: number; slices: number }[] = []
  const network = new SimNetwork({ seed: 1 })
  const scope = await Effect.runPromise(Scope.make())
  try {
    const rsm = await Effect.runPromise(
      Effect.gen(function* () {
        const context = yield* Layer.buildWithScope(
          RpcNode.layer.pipe(Layer.provide(Transport.layerSim(network, "rsm-1")), Layer.merge(Storage.layerMemory())),
          scope,
        )
        return yield* makeRsm({
          raft: { id: 1, peers: { 1: "rsm-1" }, seed: 1 },
          maxRaftStateBytes: 20_000,
          stateMachine: {
            apply: (bytes, index) => {
              lastIndex = index
              if (taking) appliedDuringSnapshot++
              return machine.apply(decodeShardCommand(bytes)!)
            },
            snapshot: () => machine.snapshot(),
            snapshotWithRoom: (roomBytes) => machine.snapshotWithRoom(roomBytes),
            beginSnapshot: (roomBytes) => {
              const job = machine.beginSnapshot(roomBytes)
              const record = { begunAt: lastIndex, doneAt: 0, slices: 0 }
              taking = true
              return {
                step: () => {
                  record.slices++
                  const bytes = job.step()
                  if (bytes === undefined) return undefined
                  taking = false
                  record.doneAt = lastIndex
                  taken.push(record)
                  return bytes
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
    const deadline = Date.now() + 40_000
    while (rsm.raft.status().role !== "leader") {
      if (Date.now() > deadline) throw new Error("no leader")
      await Bun.sleep(5)
    }
    // Writes one after another, each read back, until two snapshots were taken.
    let readsDuringSnapshot = 0
    for (let i = 0; taken.length < 2; i++) {
      if (Date.now() > deadline) throw new Error(`only ${taken.length} snapshots in 40 s`)
      const key = `new-${i}`
      const command = encodeShardCommand({ type: "client", command: putCommand(2, key, `n${i}`) })
      expect(await Effect.runPromise(rsm.submit(command))).toMatchObject({ ok: true })
      expect(await Effect.runPromise(rsm.read(() => machine.get(key)))).toEqual({ ok: true, value: `n${i}` })
      if (taking) readsDuringSnapshot++
    }
    console.log(`snapshots: ${JSON.stringify(taken)}; commands applied during them: ${appliedDuringSnapshot}`)
    expect(appliedDuringSnapshot).toBeGreaterThan(0)
    expect(readsDuringSnapshot).toBeGreaterThan(0)
    for (const t of taken) expect(t.slices).toBeGreaterThan(20)
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
}, 60_000)
