/**
 * Proves that a Raft node over real UDP believes a peer message only from that peer's configured
 * address (written as `localhost` or as an IP), that a leader reports a snapshot its followers would
 * refuse instead of sending it, and that no entry larger than one Raft message can
 * enter the log: such a proposal is refused with ProposalTooLarge and the group keeps committing.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ENVELOPE_VERSION, encodeEnvelope, RpcNode, type RpcNodeShape, Transport } from "@kv/rpc"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import {
  MAX_TERM_OR_INDEX,
  type Message,
  makeRaftNode,
  maxEntryBytesFor,
  openFileStorage,
  ProposalTooLarge,
  type RaftNodeShape,
  Storage,
} from "../src/index.ts"

const dir = mkdtempSync(join(tmpdir(), "raft-hostile-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

interface Node {
  readonly scope: Scope.Closeable
  readonly raft: RaftNodeShape
  readonly rpc: RpcNodeShape
  /** Every applied entry's data length by index. */
  readonly applied: Map<number, number>
}

interface StartOptions {
  readonly maxMessageBytes?: number
  /** Snapshot (this many bytes of state) after every applied entry, with this follower limit. */
  readonly snapshot?: { readonly stateBytes: number; readonly maxSnapshotBytes: number }
}

const start = async (id: number, peers: Record<number, string>, options: StartOptions = {}): Promise<Node> => {
  const { maxMessageBytes, snapshot } = options
  const scope = await Effect.runPromise(Scope.make())
  const applied = new Map<number, number>()
  let raftNode: RaftNodeShape | undefined
  const layer = RpcNode.layer.pipe(
    Layer.provide(
      Transport.layerUdp({ bind: peers[id]!, ...(maxMessageBytes === undefined ? {} : { maxMessageBytes }) }),
    ),
    Layer.merge(Storage.layerFile(dir)),
  )
  const [raft, rpc] = await Effect.runPromise(
    Effect.gen(function* () {
      const context = yield* Layer.buildWithScope(layer, scope)
      const raft = yield* makeRaftNode({
        id,
        peers,
        storageName: `${Object.values(peers).join("-")}/node-${id}`,
        ...(snapshot === undefined ? {} : { maxSnapshotBytes: snapshot.maxSnapshotBytes }),
        apply: (event) => {
          if (event.type !== "entries") return
          for (const e of event.entries) applied.set(e.index, e.data.length)
          const last = event.entries.at(-1)
          if (snapshot !== undefined && last !== undefined && raftNode !== undefined) {
            Effect.runSync(raftNode.snapshot(last.index, new Uint8Array(snapshot.stateBytes)))
          }
        },
      }).pipe(Effect.provideContext(context), Scope.provide(scope))
      raftNode = raft
      return [raft, Context.get(context, RpcNode)] as const
    }),
  )
  return { scope, raft, rpc, applied }
}

const stopAll = async (nodes: readonly Node[]) => {
  for (const node of nodes) await Effect.runPromise(Scope.close(node.scope, Exit.void))
}

const waitFor = async (what: string, condition: () => boolean, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(10)
  }
}

/** Free loopback ports, found by binding port 0 and releasing them. */
const freePorts = async (n: number): Promise<number[]> => {
  const scope = await Effect.runPromise(Scope.make())
  const addresses = await Effect.runPromise(
    Effect.forEach(Array.from({ length: n }), () =>
      Layer.buildWithScope(Transport.layerUdp({ bind: "127.0.0.1:0" }), scope).pipe(
        Effect.map((c) => Context.get(c, Transport).address),
      ),
    ),
  )
  await Effect.runPromise(Scope.close(scope, Exit.void))
  return addresses.map((a) => Number(a.slice(a.lastIndexOf(":") + 1)))
}

const leaderOf = (nodes: readonly Node[]) => nodes.find((n) => n.raft.status().role === "leader")

/** Proposes on the current leader until accepted; returns the index. */
const commit = async (nodes: readonly Node[], data: Uint8Array): Promise<number> => {
  let index = 0
  await waitFor("a leader to take the proposal", () => {
    const result = leaderOf(nodes)?.raft.proposeUnsafe(data)
    if (result === undefined || !("index" in result)) return false
    index = result.index
    return true
  })
  await waitFor(`entry ${index} applied everywhere`, () => nodes.every((n) => n.applied.has(index)))
  return index
}

describe("peer messages are believed only from the peer's own address", () => {
  test("a datagram claiming a member's id from another socket is dropped and counted; no term moves", async () => {
    const [p1, p2, p3] = await freePorts(3)
    // Node 1 is written as localhost: its datagrams arrive from 127.0.0.1 and must still count.
    const peers = { 1: `localhost:${p1}`, 2: `127.0.0.1:${p2}`, 3: `127.0.0.1:${p3}` }
    const nodes = [await start(1, peers), await start(2, peers), await start(3, peers)]
    const scope = await Effect.runPromise(Scope.make())
    try {
      await commit(nodes, new TextEncoder().encode("before"))
      const intruder = await Effect.runPromise(
        Layer.buildWithScope(
          RpcNode.layer.pipe(Layer.provide(Transport.layerUdp({ bind: "127.0.0.1:0" }))),
          scope,
        ).pipe(Effect.map((c) => Context.get(c, RpcNode))),
      )
      const terms = nodes.map((n) => n.raft.status().term)
      const term = Math.max(...terms)
      const leader = leaderOf(nodes)!.raft.id
      let sent = 0
      for (const node of nodes) {
        const to = node.raft.id
        const from = to === leader ? (to % 3) + 1 : leader
        // Plausible terms: without the address check each of these would be believed.
        const forged: Message[] = [
          { type: "Heartbeat", from, to, term: term + 5, commit: 0, context: 0 },
          { type: "Vote", from, to, term: term + 6, lastLogIndex: 1000, lastLogTerm: term, transfer: true },
          { type: "TimeoutNow", from, to, term },
        ]
        for (const m of forged) {
          intruder.sendOneWay(peers[to as 1 | 2 | 3], "raft", [m])
          sent++
        }
      }
      const dropped = () => nodes.reduce((sum, n) => sum + n.rpc.transport.stats.drops.wrongSender, 0)
      await waitFor("every forged message counted as from the wrong sender", () => dropped() >= sent)
      expect(dropped()).toBe(sent)
      expect(nodes.map((n) => n.raft.status().term)).toEqual(terms)
      // Real peers (node 1 configured as localhost) are still heard.
      await commit(nodes, new TextEncoder().encode("after"))
      expect(nodes.map((n) => n.raft.status().term)).toEqual(terms)
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      await stopAll(nodes)
    }
  }, 30_000)
})

describe("no entry or snapshot larger than the peers accept", () => {
  test("one message carries the largest entry even with every number at its bound", () => {
    const maxMessageBytes = 8 * 1024 * 1024
    const big = MAX_TERM_OR_INDEX
    const append: Message = {
      type: "Append",
      from: big,
      to: big,
      term: big,
      prevIndex: big,
      prevTerm: big,
      entries: [{ term: big, index: big, data: new Uint8Array(maxEntryBytesFor(maxMessageBytes)) }],
      commit: big,
    }
    const bytes = encodeEnvelope([ENVELOPE_VERSION, 3, "raft", [append]])
    expect(bytes.length).toBeLessThanOrEqual(maxMessageBytes)
  })

  test("a proposal past maxEntryBytes is refused with ProposalTooLarge; one at the limit commits everywhere", async () => {
    const maxMessageBytes = 256 * 1024
    const [p1, p2, p3] = await freePorts(3)
    const peers = { 1: `127.0.0.1:${p1}`, 2: `127.0.0.1:${p2}`, 3: `127.0.0.1:${p3}` }
    const nodes = [
      await start(1, peers, { maxMessageBytes }),
      await start(2, peers, { maxMessageBytes }),
      await start(3, peers, { maxMessageBytes }),
    ]
    try {
      const max = nodes[0]!.raft.maxEntryBytes
      expect(max).toBe(maxEntryBytesFor(maxMessageBytes))
      await waitFor("a leader", () => leaderOf(nodes) !== undefined)
      const leader = leaderOf(nodes)!
      const refused = leader.raft.proposeUnsafe(new Uint8Array(max + 1))
      expect(refused).toBeInstanceOf(ProposalTooLarge)
      expect(refused).toMatchObject({ bytes: max + 1, maxBytes: max })
      const exit = await Effect.runPromiseExit(leader.raft.propose(new Uint8Array(max + 1)))
      expect(exit._tag).toBe("Failure")
      const largest = await commit(nodes, new Uint8Array(max).fill(7))
      expect(nodes.map((n) => n.applied.get(largest))).toEqual([max, max, max])
      // The group is not wedged behind it.
      await commit(nodes, new Uint8Array([1]))
    } finally {
      await stopAll(nodes)
    }
  }, 30_000)

  test("a leader does not send a snapshot past maxSnapshotBytes and reports it in status", async () => {
    const [p1, p2, p3] = await freePorts(3)
    const peers = { 1: `127.0.0.1:${p1}`, 2: `127.0.0.1:${p2}`, 3: `127.0.0.1:${p3}` }
    const snapshot = { stateBytes: 4096, maxSnapshotBytes: 1024 }
    const nodes = [await start(1, peers, { snapshot }), await start(2, peers, { snapshot })]
    try {
      // Node 3 is away while the others commit and compact their logs into 4 KiB snapshots.
      for (let k = 0; k < 5; k++) await commit(nodes, new Uint8Array([k + 1]))
      await waitFor("logs compacted", () => nodes.every((n) => n.raft.status().snapshotIndex >= 5))
      nodes.push(await start(3, peers, { snapshot }))
      const leader = leaderOf(nodes)!
      await waitFor(
        "the leader to report the oversized snapshot",
        () => leader.raft.status().oversizedSnapshotBytes > 0,
      )
      expect(leader.raft.status().oversizedSnapshotBytes).toBe(snapshot.stateBytes)
      expect(nodes[2]!.raft.status().snapshotIndex).toBe(0)
    } finally {
      await stopAll(nodes)
    }
  }, 30_000)

  test("one save of many near-limit entries writes records the WAL accepts, and reopens", () => {
    const storageDir = join(dir, "wal-batch")
    const entryBytes = maxEntryBytesFor(8 * 1024 * 1024)
    // 9 entries of ~8 MiB: one save past the 64 MiB record limit and the 64 MiB segment size.
    const entries = Array.from({ length: 9 }, (_, k) => ({
      term: 1,
      index: k + 1,
      data: new Uint8Array(entryBytes).fill(k),
    }))
    const storage = openFileStorage(storageDir)
    storage.save({ term: 1, vote: 1, commit: 9 }, entries)
    storage.close()
    const reopened = openFileStorage(storageDir)
    const state = reopened.load()
    reopened.close()
    expect(state.entries.map((e) => [e.index, e.data.length, e.data[0]])).toEqual(
      entries.map((e) => [e.index, entryBytes, e.index - 1]),
    )
    expect(state.hardState).toEqual({ term: 1, vote: 1, commit: 9 })
  })
})
