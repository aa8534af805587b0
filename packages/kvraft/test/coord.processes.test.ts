/**
 * Proves that compare-and-swap and transactions stay linearizable and exactly-once across a real
 * leader crash: four clients race read-then-CAS increments of one counter (every fifth increment a
 * transaction comparing the counter's version, that also records who incremented) against three
 * kvraft processes over real UDP with file storage, while the leader is killed with `kill -9` and
 * later restarted from its data directory. The history must be linearizable, and the final counter
 * must equal the number of increments that applied.
 */
import { describe, expect, test } from "bun:test"
import type { RpcNodeShape } from "@kv/rpc"
import {
  casApplied,
  casRejected,
  checkLinearizable,
  HistoryRecorder,
  type KvInput,
  pollUntil,
  txnFailed,
  txnSucceeded,
} from "@kv/testkit"
import { type KvClientShape, KvStatusMethod, makeKvClient, type StatusReply } from "../src/index.ts"
import { kvProcesses } from "./support/kvProcesses.ts"

const COUNTER = "counter"
const LAST = "last"
const CLIENTS = 4
/** Increments applied between the phases: before the kill, with the leader down, after its restart. */
const PHASE_INCREMENTS = 40

const fixture = kvProcesses("kvraft-coord-processes")
const { processes, run } = fixture

describe("coordination over real processes", () => {
  test("CAS increments and transactions under kill -9 of the leader and its restart: linearizable, none lost or doubled", async () => {
    const { config, replicas } = await fixture.group()
    const name = (k: number) => `replica-${k}`
    const start = (k: number) => fixture.start(config, k)
    for (let k = 0; k < 3; k++) start(k)

    const statusRpc: RpcNodeShape = await fixture.node()
    const status = (k: number): Promise<StatusReply | undefined> =>
      run(statusRpc.call(replicas[k]!, KvStatusMethod, {}, { deadlineMs: 1_000 })).catch(() => undefined)
    // Each client its own node and session; a long deadline, so every call ends with a known outcome.
    const clients: KvClientShape[] = []
    for (let c = 0; c < CLIENTS; c++) {
      clients.push(await run(makeKvClient(await fixture.node(), { servers: replicas, deadlineMs: 30_000 })))
    }

    const history = new HistoryRecorder()
    const record = async <A>(
      clientId: number,
      input: KvInput,
      call: () => Promise<A>,
      end: (result: A) => { output?: string; reads?: readonly string[] },
    ): Promise<A | undefined> => {
      const token = history.begin(clientId, input)
      try {
        const result = await call()
        const { output, reads } = end(result)
        history.end(token, output, reads)
        return result
      } catch {
        history.unknown(token)
        return undefined
      }
    }
    await record(
      0,
      { op: "put", key: COUNTER, value: "0" },
      () => run(clients[0]!.put(COUNTER, "0")),
      () => ({}),
    )

    let applied = 0
    let rejected = 0
    let stop = false
    const incrementer = async (c: number) => {
      for (let i = 0; !stop; i++) {
        const seen = await record(
          c,
          { op: "get", key: COUNTER },
          () => run(clients[c]!.getEntry(COUNTER)),
          (entry) => ({ output: entry?.value ?? "" }),
        )
        if (seen === undefined) continue
        const next = String(Number(seen.value) + 1)
        if (i % 5 === 4) {
          const compare = [{ key: COUNTER, target: "version", cmp: "==", value: seen.version }] as const
          const success = [
            { op: "put", key: COUNTER, value: next },
            { op: "put", key: LAST, value: `${c}.${i}` },
          ] as const
          const failure = [{ op: "get", key: COUNTER }] as const
          const result = await record(
            c,
            { op: "txn", key: COUNTER, compare, success, failure },
            () => run(clients[c]!.txn({ compare, success, failure })),
            (r) => ({
              output: r.succeeded ? txnSucceeded : txnFailed,
              reads: r.succeeded ? [] : [r.entries[0]?.value ?? ""],
            }),
          )
          if (result?.succeeded === true) applied++
          else if (result !== undefined) rejected++
        } else {
          const result = await record(
            c,
            { op: "cas", key: COUNTER, expected: seen.value, value: next },
            () => run(clients[c]!.putIf(COUNTER, next, { ifValue: seen.value })),
            (r) => ({ output: r.applied ? casApplied : casRejected }),
          )
          if (result?.applied === true) applied++
          else if (result !== undefined) rejected++
        }
      }
    }

    const running = Array.from({ length: CLIENTS }, (_, c) => incrementer(c))
    const progress = (what: string, atLeast: number) =>
      pollUntil(`${what} (${applied} increments applied)`, () => applied >= atLeast, {
        timeoutMs: 15_000,
        intervalMs: 20,
      })
    try {
      await progress("increments before the crash", PHASE_INCREMENTS)
      const statuses = await Promise.all([0, 1, 2].map(status))
      const leader = statuses.findIndex((s) => s?.role === "leader")
      expect(leader).toBeGreaterThanOrEqual(0)
      await processes.kill(name(leader))
      const atKill = applied
      await progress("increments with the leader killed", atKill + PHASE_INCREMENTS)
      start(leader)
      const atRestart = applied
      await progress("increments after the restart", atRestart + PHASE_INCREMENTS)
      // The restarted replica catches up from its disk and the new leader.
      await pollUntil(
        "the restarted replica to catch up",
        async () => {
          const all = await Promise.all([0, 1, 2].map(status))
          const commit = Math.max(...all.map((s) => s?.commitIndex ?? 0))
          return (all[leader]?.appliedIndex ?? 0) >= commit
        },
        { timeoutMs: 15_000, intervalMs: 100 },
      )
      stop = true
      await Promise.all(running)

      const unknown = history.history().filter((op) => !Number.isFinite(op.return))
      expect(unknown).toEqual([])
      const final = await record(
        0,
        { op: "get", key: COUNTER },
        () => run(clients[0]!.get(COUNTER)),
        (value) => ({ output: value }),
      )
      console.log(
        `coord processes: ${applied} increments applied, ${rejected} rejected, ${history.history().length} operations`,
      )
      const verdict = checkLinearizable(history.history())
      if (!verdict.ok) throw new Error(`not linearizable (key ${verdict.key}):\n${verdict.explanation}`)
      expect(Number(final)).toBe(applied)
      expect(rejected).toBeGreaterThan(0)
    } catch (error) {
      stop = true
      for (let k = 0; k < 3; k++) console.error(`--- ${name(k)}\n${processes.output(name(k)).slice(-3_000)}`)
      throw error
    }
  }, 60_000)
})
