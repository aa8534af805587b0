/**
 * Proves that three Raft nodes over real UDP with file storage elect a leader, commit 1,000
 * entries, and that a node stopped and restarted from its directory catches up through a snapshot.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { RpcNode, Transport } from "@kv/rpc"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { type ApplyEvent, makeRaftNode, type RaftNodeShape, Storage } from "../src/index.ts"

const dir = mkdtempSync(join(tmpdir(), "raft-udp-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

interface Node {
  scope: Scope.Closeable
  raft: RaftNodeShape
  applied: number
  snapshotsInstalled: number
}

const start = async (id: number, address: string, peers: Record<number, string>, nodes: Map<number, Node>) => {
  const scope = await Effect.runPromise(Scope.make())
  const state: Node = { scope, raft: undefined as unknown as RaftNodeShape, applied: 0, snapshotsInstalled: 0 }
  const apply = (event: ApplyEvent) => {
    if (event.type === "snapshot") {
      state.snapshotsInstalled++
      state.applied = event.snapshot.index
      return
    }
    for (const entry of event.entries) {
      state.applied = entry.index
      // The service snapshots every 100 entries, so the log stays short.
      if (entry.index % 100 === 0)
        Effect.runSync(state.raft.snapshot(entry.index, new TextEncoder().encode(`${entry.index}`)))
    }
  }
  const layer = RpcNode.layer.pipe(
    Layer.provide(Transport.layerUdp({ bind: address })),
    Layer.merge(Storage.layerFile(dir)),
  )
  state.raft = await Effect.runPromise(
    Effect.gen(function* () {
      const context = yield* Layer.buildWithScope(layer, scope)
      return yield* makeRaftNode({ id, peers, storageName: `node-${id}`, apply }).pipe(
        Effect.provideContext(context),
        Scope.provide(scope),
      )
    }),
  )
  nodes.set(id, state)
}

const stop = async (nodes: Map<number, Node>, id: number) => {
  const node = nodes.get(id)
  nodes.delete(id)
  if (node !== undefined) await Effect.runPromise(Scope.close(node.scope, Exit.void))
}

const waitFor = async (what: string, condition: () => boolean, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(10)
  }
}

/** Finds three free UDP ports by binding port 0 and releasing them. */
const freeAddresses = async (): Promise<string[]> => {
  const scope = await Effect.runPromise(Scope.make())
  const addresses = await Effect.runPromise(
    Effect.forEach([1, 2, 3], () =>
      Layer.buildWithScope(Transport.layerUdp({ bind: "127.0.0.1:0" }), scope).pipe(
        Effect.map((c) => Context.get(c, Transport).address),
      ),
    ),
  )
  await Effect.runPromise(Scope.close(scope, Exit.void))
  return addresses
}

describe("three Raft nodes over real UDP with file storage", () => {
  test("elect, commit 1,000 entries, stop a node, restart it from disk, catch up through a snapshot", async () => {
    const addresses = await freeAddresses()
    const peers: Record<number, string> = { 1: addresses[0]!, 2: addresses[1]!, 3: addresses[2]! }
    const nodes = new Map<number, Node>()
    try {
      for (const id of [1, 2, 3]) await start(id, peers[id]!, peers, nodes)
      const leader = () => [...nodes.values()].find((n) => n.raft.status().role === "leader")
      await waitFor("a leader", () => leader() !== undefined)
      const propose = async (count: number) => {
        let last = 0
        for (let i = 0; i < count; i++) {
          const r = leader()?.raft.proposeUnsafe(new TextEncoder().encode(`cmd-${i}`))
          if (r === undefined || !("index" in r)) {
            await Bun.sleep(20)
            i--
            continue
          }
          last = r.index
          if (i % 64 === 63) await Bun.sleep(0)
        }
        return last
      }
      const first = await propose(1_000)
      await waitFor("1,000 entries applied on all nodes", () => [...nodes.values()].every((n) => n.applied >= first))

      const follower = [...nodes.entries()].find(([, n]) => n.raft.status().role !== "leader")![0]
      // Applied entries may still be on their way to this node's disk, and its snapshots wait for
      // them: it is stopped once its own snapshot covers what the restart below expects back.
      await waitFor("the follower to compact its log", () => nodes.get(follower)!.raft.status().snapshotIndex >= 900)
      await stop(nodes, follower)
      const second = await propose(500)
      await waitFor("500 more applied on the live nodes", () => [...nodes.values()].every((n) => n.applied >= second))
      // The live nodes compact past everything the stopped node has (once their own disks hold what
      // they applied: entries are applied when a majority holds them, perhaps before this one does).
      await waitFor("the live nodes to compact past the stopped node's log", () =>
        [...nodes.values()].every((n) => n.raft.status().snapshotIndex > first),
      )

      await start(follower, peers[follower]!, peers, nodes)
      const restarted = nodes.get(follower)!
      // It restarts from its own disk: its own snapshot and log are back before any peer speaks.
      expect(restarted.raft.status().snapshotIndex).toBeGreaterThanOrEqual(900)
      await waitFor("the restarted node to catch up", () => restarted.applied >= second)
      expect(restarted.snapshotsInstalled).toBeGreaterThanOrEqual(2) // its own at startup, then the leader's
      const status = restarted.raft.status()
      expect(status.snapshotIndex).toBeGreaterThan(first)
      expect(status.raftStateBytes).toBeLessThan(64 * 1024)
    } finally {
      for (const id of [...nodes.keys()]) await stop(nodes, id)
    }
  }, 60_000)
})
