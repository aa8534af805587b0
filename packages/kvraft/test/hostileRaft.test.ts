/**
 * Proves that forged Raft datagrams change nothing in a live kvraft group: schema-valid messages
 * from a socket that is not a member (claiming any member's id, at plausible and at absurd terms),
 * and messages from a member's own address (the member not running: a forger that can use its
 * address) carrying terms and indexes past the bounds of @kv/raft's core/bounds.ts. With a cluster
 * key, every unsigned datagram is dropped before decoding. Throughout, the group serves, every key
 * keeps its value, the term does not jump, and afterwards the missing replica joins and every
 * replica restarts cleanly from its data directory.
 *
 * Seeded: prints its seed; KV_SEED=<n> replays the same forgeries.
 */
import { describe, expect, test } from "bun:test"
import dgram from "node:dgram"
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { MAX_TERM_AHEAD, MAX_TERM_OR_INDEX, type Message, ProposalTooLarge, Storage } from "@kv/raft"
import {
  ENVELOPE_VERSION,
  encodeEnvelope,
  FrameCodec,
  RpcNode,
  type RpcNodeShape,
  SeededRandom,
  SimNetwork,
  seedFromEnv,
  Transport,
} from "@kv/rpc"
import { freeUdpPorts, processFixture, writeFile } from "@kv/testkit"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { type KvClientShape, KvStatusMethod, makeKvClient, makeRsm, type StatusReply } from "../src/index.ts"

const BIN = join(import.meta.dir, "../bin/kvraft.ts")
const SEED = seedFromEnv()
console.log(`hostileRaft: seed ${SEED} (replay with KV_SEED=${SEED})`)

const { processes, dir } = processFixture("kvraft-hostile")

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)

/** A bound UDP socket on 127.0.0.1 that only sends. */
const openSocket = (port: number): Promise<dgram.Socket> =>
  new Promise((resolve, reject) => {
    const socket = dgram.createSocket("udp4")
    socket.once("error", reject)
    socket.bind(port, "127.0.0.1", () => resolve(socket))
  })

const sendTo = (socket: dgram.Socket, datagram: Uint8Array, address: string) =>
  new Promise<void>((resolve) => {
    const colon = address.lastIndexOf(":")
    socket.send(datagram, Number(address.slice(colon + 1)), address.slice(0, colon), () => resolve())
  })

/** A Raft batch as an unsigned datagram: framing version 1, whole message, msgpack one-way envelope. */
const codec = new FrameCodec({})
let msgId = 1
const raftDatagrams = (messages: readonly Message[]): Uint8Array[] =>
  codec.encode(encodeEnvelope([ENVELOPE_VERSION, 3, "raft", messages]), msgId++) ?? []

/** What the group looks like when a round of forgeries is made. */
interface View {
  readonly term: number
  readonly lastIndex: number
  readonly leader: number
}

type Kind =
  | "Heartbeat"
  | "AppendCommitAhead"
  | "AppendBogusEntries"
  | "Vote"
  | "PreVote"
  | "VoteResp"
  | "AppendResp"
  | "SnapHugeTotal"
  | "TimeoutNow"
  | "garbage"

const KINDS: readonly Kind[] = [
  "Heartbeat",
  "AppendCommitAhead",
  "AppendBogusEntries",
  "Vote",
  "PreVote",
  "VoteResp",
  "AppendResp",
  "SnapHugeTotal",
  "TimeoutNow",
  "garbage",
]

/** Terms no honest peer of a group at `term` can send. */
const absurdTerms = (term: number): number[] => [
  2 ** 53 - 1,
  MAX_TERM_OR_INDEX + 1,
  MAX_TERM_OR_INDEX,
  term + 1e9,
  term + MAX_TERM_AHEAD + 1,
]

/**
 * One forged message of `kind` from `from` to `to` at `term`. Every field is schema-valid unless
 * the term itself is past 2^48.
 */
const forge = (
  rng: SeededRandom,
  kind: Exclude<Kind, "garbage">,
  from: number,
  to: number,
  term: number,
  v: View,
): Message => {
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => rng.int(256))
  switch (kind) {
    case "Heartbeat":
      return { type: "Heartbeat", from, to, term, commit: v.lastIndex + 1_000_000, context: rng.int(1000) }
    case "AppendCommitAhead":
      return {
        type: "Append",
        from,
        to,
        term,
        prevIndex: v.lastIndex,
        prevTerm: Math.min(v.term, term),
        entries: [],
        commit: MAX_TERM_OR_INDEX,
      }
    case "AppendBogusEntries": {
      const prevIndex = Math.max(0, v.lastIndex - rng.int(5))
      const entries = Array.from({ length: 1 + rng.int(3) }, (_, k) => ({
        term,
        index: prevIndex + 1 + k,
        data: bytes(1 + rng.int(64)),
      }))
      return {
        type: "Append",
        from,
        to,
        term,
        prevIndex,
        prevTerm: Math.min(v.term, term),
        entries,
        commit: prevIndex + entries.length,
      }
    }
    case "Vote":
      return {
        type: "Vote",
        from,
        to,
        term,
        lastLogIndex: v.lastIndex + 1000,
        lastLogTerm: term,
        transfer: rng.chance(0.5),
      }
    case "PreVote":
      return { type: "PreVote", from, to, term, lastLogIndex: v.lastIndex + 1000, lastLogTerm: Math.min(term, v.term) }
    case "VoteResp":
      return { type: "VoteResp", from, to, term, reject: false }
    case "AppendResp":
      return {
        type: "AppendResp",
        from,
        to,
        term,
        index: v.lastIndex + 500,
        reject: rng.chance(0.5),
        conflictTerm: 0,
        conflictIndex: 1,
      }
    case "SnapHugeTotal":
      return {
        type: "Snap",
        from,
        to,
        term,
        snapshot: { index: v.lastIndex + 100, term: Math.min(term, v.term) },
        offset: 0,
        total: rng.chance(0.5) ? 1024 * 1024 * 1024 : 2 ** 40,
        chunk: bytes(1024),
        done: false,
      }
    case "TimeoutNow":
      return { type: "TimeoutNow", from, to, term }
  }
}

interface Scenario {
  readonly name: string
  readonly key: string | undefined
}

const scenarios: readonly Scenario[] = [
  { name: "without a cluster key", key: undefined },
  { name: "with a cluster key", key: "hostile-raft-test-key" },
]

describe("forged Raft datagrams against a live kvraft group", () => {
  for (const [n, scenario] of scenarios.entries()) {
    test(`${scenario.name}: the group serves, keeps every value, its term does not jump, and every replica restarts`, async () => {
      const rng = new SeededRandom(SEED + n)
      const ports = await freeUdpPorts(3)
      const replicas = ports.map((p) => `127.0.0.1:${p}`)
      const work = join(dir.path, `scenario-${n}`)
      const config = join(work, "cluster.toml")
      mkdirSync(work, { recursive: true })
      writeFile(
        config,
        `dataDir = "./data"\nmaxRaftStateBytes = 65536\n[kvraft]\nreplicas = ${JSON.stringify(replicas)}\n`,
      )
      const env: Record<string, string> = scenario.key === undefined ? {} : { KV_CLUSTER_KEY: scenario.key }
      const name = (k: number) => `${n}-replica-${k}`
      const start = (k: number) =>
        processes.start(name(k), ["bun", BIN, "--replica", String(k), "--config", config], { cwd: work, env })
      const local = await Effect.runPromise(Scope.make())
      const sockets: dgram.Socket[] = []
      const sent = new Map<string, number>()
      const count = (what: string) => sent.set(what, (sent.get(what) ?? 0) + 1)
      try {
        // Replica 2 stays down: a forger uses its address (without a key, its datagrams pass the
        // address check and meet the bounds).
        start(0)
        start(1)
        const rpc: RpcNodeShape = await run(
          Layer.buildWithScope(
            RpcNode.layer.pipe(
              Layer.provide(
                Transport.layerUdp({
                  bind: "127.0.0.1:0",
                  ...(scenario.key === undefined ? {} : { key: scenario.key }),
                }),
              ),
            ),
            local,
          ).pipe(Effect.map((c) => Context.get(c, RpcNode))),
        )
        const kv: KvClientShape = await run(makeKvClient(rpc, { servers: replicas, deadlineMs: 30_000 }))
        const status = (k: number): Promise<StatusReply> =>
          run(rpc.call(replicas[k]!, KvStatusMethod, {}, { deadlineMs: 5_000 }))
        const written = new Map<string, string>()
        const write = async (prefix: string, count: number) => {
          await Promise.all(
            Array.from({ length: count }, async (_, i) => {
              const key = `${prefix}-${i}`
              const value = `v${rng.int(1_000_000)}`
              await run(kv.put(key, value))
              written.set(key, value)
            }),
          )
        }
        const checkAll = async () => {
          const values = await Promise.all([...written.keys()].map((key) => run(kv.get(key))))
          expect(values).toEqual([...written.values()])
        }

        await write("before", 30)
        const before = await Promise.all([0, 1].map(status))
        const termBefore = Math.max(...before.map((s) => s.term))

        const stranger = await openSocket(0)
        const member = await openSocket(ports[2]!)
        sockets.push(stranger, member)
        const view = async (): Promise<View> => {
          const s = await Promise.all([0, 1].map(status))
          const leader = s.find((x) => x.role === "leader")
          return {
            term: Math.max(...s.map((x) => x.term)),
            lastIndex: Math.max(...s.map((x) => x.lastIndex)),
            leader: leader?.id ?? 1,
          }
        }
        const sendForged = async (socket: dgram.Socket, label: string, messages: Message[], kind: Kind) => {
          for (const datagram of raftDatagrams(messages)) {
            await sendTo(socket, datagram, replicas[messages[0]!.to - 1]!)
            // A key-holding cluster must also drop a datagram with a made-up MAC.
            if (scenario.key !== undefined) {
              const withMac = new Uint8Array(datagram.length + 32)
              withMac.set(datagram)
              withMac.set(
                Uint8Array.from({ length: 32 }, () => rng.int(256)),
                datagram.length,
              )
              await sendTo(socket, withMac, replicas[messages[0]!.to - 1]!)
              count(`${label} ${kind} (bad MAC)`)
            }
            count(`${label} ${kind}`)
          }
        }

        for (let round = 0; round < 6; round++) {
          const v = await view()
          for (let i = 0; i < 40; i++) {
            const kind = KINDS[rng.int(KINDS.length)]!
            const to = 1 + rng.int(2)
            if (kind === "garbage") {
              const junk = Uint8Array.from({ length: 1 + rng.int(200) }, () => rng.int(256))
              await sendTo(rng.chance(0.5) ? stranger : member, junk, replicas[to - 1]!)
              count("garbage")
              continue
            }
            // A stranger claims any member at any term, plausible or absurd.
            const claimed = 1 + rng.int(3)
            const terms = [v.term, v.term + 1, v.term + 5, ...absurdTerms(v.term)]
            await sendForged(
              stranger,
              "stranger",
              [forge(rng, kind, claimed, to, terms[rng.int(terms.length)]!, v)],
              kind,
            )
            // From member 3's own address: terms past the bounds, or older than the group's.
            const memberTerms = [...absurdTerms(v.term), Math.max(0, v.term - 1 - rng.int(3))]
            await sendForged(
              member,
              "member-address",
              [forge(rng, kind, 3, to, memberTerms[rng.int(memberTerms.length)]!, v)],
              kind,
            )
          }
          await write(`round${round}`, 10)
        }
        await checkAll()
        const during = await Promise.all([0, 1].map(status))
        // A normal election or two under load is fine; a forged term is a jump of millions.
        for (const s of during) expect(s.term).toBeLessThanOrEqual(termBefore + 5)

        for (const socket of sockets.splice(0)) socket.close()
        // The missing replica joins and catches up.
        start(2)
        const caughtUp = async () => {
          const deadline = Date.now() + 30_000
          for (;;) {
            const statuses = await Promise.all([0, 1, 2].map((k) => status(k).catch(() => undefined)))
            const commit = Math.max(...statuses.map((s) => s?.commitIndex ?? 0))
            if (statuses.every((s) => s !== undefined && s.appliedIndex >= commit && s.keys === written.size)) {
              return statuses as StatusReply[]
            }
            if (Date.now() > deadline) throw new Error(`replicas did not catch up: ${JSON.stringify(statuses)}`)
            await Bun.sleep(100)
          }
        }
        await caughtUp()
        // Everything down hard, then back from the data directories alone.
        await Promise.all([0, 1, 2].map((k) => processes.kill(name(k))))
        for (let k = 0; k < 3; k++) start(k)
        await checkAll()
        const after = await caughtUp()
        for (const s of after) expect(s.term).toBeLessThanOrEqual(termBefore + 10)
        for (let k = 0; k < 3; k++) expect(processes.isRunning(name(k))).toBe(true)
        const summary = [...sent.entries()].sort(([a], [b]) => a.localeCompare(b))
        const total = summary.reduce((sum, [, c]) => sum + c, 0)
        console.log(
          `hostileRaft ${scenario.name}: ${total} forged datagrams\n${summary.map(([k, c]) => `  ${k}: ${c}`).join("\n")}`,
        )
        console.log(
          `hostileRaft ${scenario.name}: term ${termBefore} before, ${after.map((s) => s.term).join("/")} after`,
        )
      } catch (error) {
        console.error(`seed ${SEED}; replay with KV_SEED=${SEED}`)
        for (let k = 0; k < 3; k++) console.error(`--- ${name(k)}\n${processes.output(name(k))}`)
        throw error
      } finally {
        for (const socket of sockets) socket.close()
        for (let k = 0; k < 3; k++) await processes.kill(name(k))
        await Effect.runPromise(Scope.close(local, Exit.void))
      }
    }, 90_000)
  }
})

describe("a command larger than one Raft message", () => {
  test("is refused at once with ProposalTooLarge through the RSM, and the group keeps committing", async () => {
    const maxMessageBytes = 64 * 1024
    const network = new SimNetwork({ seed: SEED })
    const local = await Effect.runPromise(Scope.make())
    try {
      const peers = { 1: "rsm-1", 2: "rsm-2", 3: "rsm-3" }
      const applied = new Map<number, number[]>()
      const rsms = await run(
        Effect.forEach([1, 2, 3], (id) =>
          Effect.gen(function* () {
            const context = yield* Layer.buildWithScope(
              RpcNode.layer.pipe(
                Layer.provide(Transport.layerSim(network, `rsm-${id}`, { maxMessageBytes })),
                Layer.merge(Storage.layerMemory()),
              ),
              local,
            )
            applied.set(id, [])
            return yield* makeRsm({
              raft: { id, peers, seed: SEED + id },
              stateMachine: {
                apply: (command) => {
                  applied.get(id)!.push(command.length)
                  return command.length
                },
                snapshot: () => new Uint8Array(0),
                restore: () => {},
              },
            }).pipe(Effect.provideContext(context), Scope.provide(local))
          }),
        ),
      )
      const deadline = Date.now() + 10_000
      const leader = () => rsms.find((r) => r.raft.status().role === "leader")
      while (leader() === undefined) {
        if (Date.now() > deadline) throw new Error("no leader")
        await Bun.sleep(10)
      }
      const rsm = leader()!
      const started = Date.now()
      const refused = await run(Effect.flip(rsm.submit(new Uint8Array(maxMessageBytes).fill(1))))
      expect(refused).toBeInstanceOf(ProposalTooLarge)
      // Refused before entering the log, not after waiting for an entry no follower can receive.
      expect(Date.now() - started).toBeLessThan(1_000)
      const max = rsm.maxCommandBytes
      expect(max).toBeLessThan(maxMessageBytes)
      expect(await run(rsm.submit(new Uint8Array(max).fill(1)))).toBe(max)
      while (![...applied.values()].every((lengths) => lengths.includes(max))) {
        if (Date.now() > deadline) throw new Error(`not applied everywhere: ${JSON.stringify([...applied])}`)
        await Bun.sleep(10)
      }
    } finally {
      await Effect.runPromise(Scope.close(local, Exit.void))
    }
  }, 30_000)
})
