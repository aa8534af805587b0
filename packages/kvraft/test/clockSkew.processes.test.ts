/**
 * Proves, with real kvraft processes over UDP, that a replica whose wall clock is hours off
 * (libfaketime) can become leader under concurrent clients without harm: no active session
 * expires, no write applies twice, and nothing answered as not applied was applied. Leases: one
 * kept alive throughout keeps its key across both skewed leaders; one granted under each skewed
 * leader and never renewed has its key deleted no earlier than its TTL after the grant was sent.
 *
 * Leadership is forced, not hoped for: the other follower is frozen (SIGSTOP) while writes
 * commit, so the skewed replica is the leader's most up-to-date follower, and the leader is
 * stopped with SIGTERM, which hands leadership to exactly that follower.
 */
import { describe, expect, test } from "bun:test"
import { existsSync } from "node:fs"
import { join } from "node:path"
import type { RpcNodeShape } from "@kv/rpc"
import { freeUdpPorts, pollUntil, processFixture, writeFile } from "@kv/testkit"
import { Effect, Exit, Fiber } from "effect"
import {
  type KvClientShape,
  KvCommandMethod,
  type KvGroupClientShape,
  KvStatusMethod,
  makeKvClient,
  makeLeaderCaller,
  type StatusReply,
} from "../src/index.ts"

const BIN = join(import.meta.dir, "../bin/kvraft.ts")
const FAKETIME_CANDIDATES = [
  "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
  "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
  "/usr/lib/faketime/libfaketime.so.1",
  "/usr/local/lib/faketime/libfaketime.so.1",
]
const { processes, dir, rpcNode } = processFixture("kvraft-clock-skew")

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)

/** Polls `check` every 50 ms until it returns a value, failing with `what` after `ms`. */
const waitFor = <A>(what: string, ms: number, check: () => Promise<A | undefined>): Promise<A> =>
  pollUntil(what, check, { timeoutMs: ms, stopOn: () => true })

describe("kvraft processes with skewed clocks", () => {
  test("a replica whose clock is 2 h ahead, then one 2 h behind, leads under concurrent clients: no session expires, nothing applies twice", async () => {
    const libfaketime = FAKETIME_CANDIDATES.find((path) => existsSync(path))
    if (libfaketime === undefined) {
      throw new Error(
        `libfaketime is not installed (looked for ${FAKETIME_CANDIDATES.join(", ")}): apt-get install -y libfaketime`,
      )
    }
    const ports = await freeUdpPorts(3)
    const replicas = ports.map((p) => `127.0.0.1:${p}`)
    const config = join(dir.path, "cluster.toml")
    writeFile(config, `dataDir = "./data"\n[kvraft]\nreplicas = ${JSON.stringify(replicas)}\n`)
    const name = (k: number) => `replica-${k}`
    const start = (k: number, clockOffset?: string) =>
      processes.start(name(k), ["bun", BIN, "--replica", String(k), "--config", config], {
        cwd: dir.path,
        ...(clockOffset === undefined ? {} : { env: { LD_PRELOAD: libfaketime, FAKETIME: clockOffset } }),
      })
    for (let k = 0; k < 3; k++) start(k)

    const rpc: RpcNodeShape = await rpcNode()
    const status = (k: number): Promise<StatusReply | undefined> =>
      Effect.runPromise(
        rpc.call(replicas[k]!, KvStatusMethod, {}, { deadlineMs: 500 }).pipe(Effect.orElseSucceed(() => undefined)),
      )
    const leader = async (): Promise<number | undefined> => {
      const statuses = await Promise.all([0, 1, 2].map(status))
      const at = statuses.findIndex((s) => s?.role === "leader")
      return at >= 0 ? at : undefined
    }

    // Eight clerks append unique tokens to their own key, concurrently, until told to stop.
    const clerks: KvClientShape[] = []
    for (let c = 0; c < 8; c++) clerks.push(await run(makeKvClient(rpc, { servers: replicas, deadlineMs: 20_000 })))
    const acknowledged: string[][] = clerks.map(() => [])
    const failed: { clerk: number; token: string; error: string }[] = []
    let writing = true
    const writers = clerks.map(async (clerk, c) => {
      for (let i = 0; writing; i++) {
        const token = `<${c}.${i}>`
        const exit = await Effect.runPromiseExit(clerk.append(`key-${c}`, token))
        if (Exit.isSuccess(exit)) acknowledged[c]!.push(token)
        else failed.push({ clerk: c, token, error: String(exit.cause) })
      }
    })

    // A probe with a session of its own, spoken to in the raw protocol: after each change of
    // leader, a retry of its last write is answered (not applied again), and its next write applies.
    const probe = makeLeaderCaller(rpc, replicas, { deadlineMs: 20_000 })
    const probeId = 4_242_424_242
    let probeSeq = 0
    const probeWrite = (seq: number) =>
      run(
        probe.call(
          KvCommandMethod,
          () => ({
            clientId: probeId,
            seq,
            ackedBelow: seq,
            op: { op: "append" as const, key: "probe", value: `<${seq}>` },
          }),
          { operation: "append", key: "probe" },
        ),
      )
    const probeNext = async () => {
      probeSeq++
      expect(await probeWrite(probeSeq)).toEqual({ ok: true })
    }
    const probeAfterLeaderChange = async () => {
      expect(await probeWrite(probeSeq)).toEqual({ ok: true })
      await probeNext()
    }

    /** Makes replica `target` the leader; `frozen` is the other follower, `current` the leader. */
    const forceLeader = async (target: number) => {
      const current = await waitFor("a leader", 15_000, leader)
      if (current === target) return
      const frozen = [0, 1, 2].find((k) => k !== target && k !== current)!
      // Target catches up with the leader before the other follower is frozen.
      await waitFor(`replica ${target} to catch up`, 15_000, async () => {
        const [l, t] = await Promise.all([status(current), status(target)])
        return l !== undefined && t !== undefined && t.appliedIndex >= l.commitIndex ? true : undefined
      })
      processes.signal(name(frozen), "SIGSTOP")
      const before = (await status(current))?.commitIndex ?? 0
      await waitFor("writes committed without the frozen follower", 10_000, async () =>
        ((await status(current))?.commitIndex ?? 0) > before + 20 ? true : undefined,
      )
      const stopping = processes.stop(name(current))
      try {
        await waitFor(`replica ${target} to lead`, 30_000, async () =>
          (await status(target))?.role === "leader" ? true : undefined,
        )
      } finally {
        processes.signal(name(frozen), "SIGCONT")
      }
      expect(await stopping).toBe(0)
      start(current)
    }

    const leaseClient: KvGroupClientShape = await run(makeKvClient(rpc, { servers: replicas, deadlineMs: 20_000 }))
    const LEASE_TTL_MS = 3_000
    /** A lease granted now and never renewed: its key goes no earlier than the TTL after the grant was sent. */
    const leaseEndsOnTime = async (key: string) => {
      const sentAt = performance.now()
      const { lease } = await run(leaseClient.leases.grant(LEASE_TTL_MS))
      await run(leaseClient.leases.put(key, "x", lease))
      await waitFor(`${key} deleted with its lease`, LEASE_TTL_MS + 30_000, async () =>
        (await run(leaseClient.getEntry(key))) === undefined ? true : undefined,
      )
      const lasted = performance.now() - sentAt
      expect(lasted).toBeGreaterThanOrEqual(LEASE_TTL_MS)
      // Only a guard against a lease that never ends: under a loaded machine the expiry's own
      // commit waits behind the clerks' writes (seen: 5 s late at load average 25).
      expect(lasted).toBeLessThan(LEASE_TTL_MS + 30_000)
    }

    /** Lets the clerks write for a while under replica `k` and checks that it led throughout. */
    const writeUnder = async (k: number) => {
      const from = (await status(k))?.commitIndex ?? 0
      await probeAfterLeaderChange()
      await leaseEndsOnTime(`leased-under-${k}`)
      await waitFor(`writes under replica ${k}`, 15_000, async () =>
        ((await status(k))?.commitIndex ?? 0) > from + 300 ? true : undefined,
      )
      expect((await status(k))?.role).toBe("leader")
    }

    try {
      await waitFor("a leader", 15_000, leader)
      await probeNext()
      const kept = await run(leaseClient.leases.grant(LEASE_TTL_MS))
      await run(leaseClient.leases.put("kept", "alive", kept.lease))
      const keeper = Effect.runFork(leaseClient.leases.keepAliveForever(kept.lease, LEASE_TTL_MS))
      await waitFor("the clerks' first writes", 10_000, async () =>
        acknowledged.every((tokens) => tokens.length >= 3) ? true : undefined,
      )
      // Replica 2 comes back with its clock two hours ahead, and is made leader.
      await processes.kill(name(2))
      start(2, "+2h")
      await forceLeader(2)
      await writeUnder(2)
      // Replica 0 comes back with its clock two hours behind, and is made leader.
      if ((await leader()) === 0) throw new Error("replica 0 leads before its restart")
      await processes.kill(name(0))
      start(0, "-2h")
      await forceLeader(0)
      await writeUnder(0)
      writing = false
      await Promise.all(writers)
      expect(await run(leaseClient.getEntry("kept"))).toMatchObject({ value: "alive" })
      await run(Fiber.interrupt(keeper))

      expect(failed).toEqual([])
      const reader = await run(makeKvClient(rpc, { servers: replicas, deadlineMs: 20_000 }))
      for (let c = 0; c < clerks.length; c++) {
        const value = await run(reader.get(`key-${c}`))
        const tokens: string[] = value.match(/<[^>]*>/g) ?? []
        // Every acknowledged write is there once, and nothing else.
        expect(tokens).toEqual(acknowledged[c]!)
      }
      const probed: string[] = (await run(reader.get("probe"))).match(/<[^>]*>/g) ?? []
      expect(probed).toEqual(Array.from({ length: probeSeq }, (_, i) => `<${i + 1}>`))
      const total = acknowledged.reduce((sum, tokens) => sum + tokens.length, 0)
      console.log(`clock skew: ${total} appends acknowledged by 8 clerks across leaders at +2 h and -2 h`)
    } catch (error) {
      writing = false
      for (let k = 0; k < 3; k++) console.error(`--- replica-${k}\n${processes.output(name(k)).slice(-4_000)}`)
      throw error
    }
  }, 90_000)
})
