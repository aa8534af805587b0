/**
 * Proves that a watch over real UDP keeps delivering exactly the committed changes of its range
 * when the leader is killed with SIGKILL while writes and the watch go on: three kvraft processes,
 * a writer of unique values, a watcher through the async iterator and one through the Effect Stream
 * (with progress notifications). The reference is a watch from revision 1 run after the end,
 * checked against the final listing and the writer's values.
 */
import { describe, expect, test } from "bun:test"
import type { RpcNodeShape } from "@kv/rpc"
import {
  type CheckedEntry,
  type CheckedEvent,
  checkStoreHistory,
  checkWatcher,
  pollUntil,
  type WatchObservation,
} from "@kv/testkit"
import { Effect, Exit, Fiber, Stream } from "effect"
import { type KvClientShape, KvStatusMethod, makeKvClient, type WatchEvent } from "../src/index.ts"
import { kvProcesses } from "./support/kvProcesses.ts"

const fixture = kvProcesses("kvraft-watch-processes")
const { processes, run } = fixture

describe("kvraft watch over real processes", () => {
  test("kill -9 of the leader while a watcher runs: it gets every committed change once, in order", async () => {
    const { config, replicas } = await fixture.group()
    const start = (k: number) => fixture.start(config, k)
    for (let k = 0; k < 3; k++) start(k)
    const rpc: RpcNodeShape = await fixture.node()
    const client = () => run(makeKvClient(rpc, { servers: replicas, deadlineMs: 30_000 }))
    const writer: KvClientShape = await client()
    const watcher: KvClientShape = await client()

    const attempted = new Set<string>()
    const acknowledged = new Set<string>()
    let written = 0
    /** When each put was answered, and when the streaming watcher got its event: a rough delivery delay. */
    const ackedAt = new Map<string, number>()
    const seenAt = new Map<string, number>()
    const write = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const value = `v${written++}`
        attempted.add(value)
        const exit = await Effect.runPromiseExit(writer.put(`w/${i % 7}`, value))
        if (Exit.isSuccess(exit)) acknowledged.add(value)
        ackedAt.set(value, performance.now())
      }
    }

    // Watcher 1: the async iterator, from the first revision.
    const iterated: CheckedEvent[] = []
    const iterating = (async () => {
      for await (const event of watcher.watchIterable({ prefix: "w/" }, { fromRevision: 1, waitMs: 1_000 })) {
        iterated.push(event)
        if (event.value === "last") return
      }
    })()
    // Watcher 2: the Effect Stream with progress notifications.
    const streamed: WatchObservation[] = []
    let streamedUpTo = 0
    const streaming = Effect.runFork(
      Stream.runForEach(watcher.watch({ prefix: "w/" }, { fromRevision: 1, waitMs: 1_000, progress: true }), (item) =>
        Effect.sync(() => {
          if (item.type === "progress") {
            streamedUpTo = item.revision
            streamed.push({ kind: "progress", revision: item.revision })
          } else {
            streamed.push({ kind: "event", event: item })
            if (item.value !== undefined) seenAt.set(item.value, performance.now())
          }
        }),
      ),
    )

    try {
      await write(60)
      const statuses = await Promise.all(
        replicas.map((r) => run(rpc.call(r, KvStatusMethod, {}, { deadlineMs: 3_000 })).catch(() => undefined)),
      )
      const leader = statuses.findIndex((s) => s?.role === "leader")
      expect(leader).toBeGreaterThanOrEqual(0)
      await processes.kill(`replica-${leader}`)
      await write(60)
      start(leader)
      await write(30)
      attempted.add("last")
      await run(writer.put("w/last", "last"))
      acknowledged.add("last")

      // The reference: every change of the range from revision 1, read after the end.
      const final = await run(writer.list("w/"))
      const finalRevision = Math.max(...final.entries.map((e) => e.modRevision))
      const reference: WatchEvent[] = []
      await run(
        Stream.runForEach(
          watcher
            .watch({ prefix: "w/" }, { fromRevision: 1, waitMs: 200, progress: true })
            .pipe(Stream.takeUntil((item) => item.type === "progress" && item.revision >= finalRevision)),
          (item) => Effect.sync(() => (item.type === "progress" ? undefined : reference.push(item))),
        ),
      )
      const store = new Map<string, CheckedEntry>(final.entries.map((e) => [e.key, { ...e, value: e.value ?? "" }]))
      // Only this test writes under w/: the range's history is the whole store's.
      expect(checkStoreHistory(reference, store, finalRevision, attempted, acknowledged)).toBeUndefined()

      await pollUntil("the watchers to reach the last write", async () => streamedUpTo >= finalRevision, {
        timeoutMs: 30_000,
        intervalMs: 100,
      })
      await iterating
      expect(
        checkWatcher(
          reference,
          {
            name: "iterator",
            key: "w/",
            prefix: true,
            after: 0,
            observations: iterated.map((event) => ({ kind: "event", event })),
          },
          finalRevision,
        ),
      ).toBeUndefined()
      expect(
        checkWatcher(
          reference,
          { name: "stream", key: "w/", prefix: true, after: 0, observations: streamed },
          finalRevision,
        ),
      ).toBeUndefined()
      const delays = (from: number, to: number) => {
        const sorted = [...seenAt]
          .flatMap(([value, at]) => {
            const n = Number(value.slice(1))
            return ackedAt.has(value) && n >= from && n < to ? [at - ackedAt.get(value)!] : []
          })
          .sort((a, b) => a - b)
        const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]?.toFixed(1)
        return `p50 ${at(0.5)} ms, p99 ${at(0.99)} ms`
      }
      console.log(
        `watch over processes: ${reference.length} events, ${acknowledged.size} acknowledged puts, leader ${leader} ` +
          `killed; an event reached the streaming watcher after its put's answer: before the kill ${delays(0, 60)}, ` +
          `after ${delays(60, 150)}`,
      )
    } catch (error) {
      for (let k = 0; k < 3; k++) console.error(`--- replica-${k}\n${processes.output(`replica-${k}`)}`)
      throw error
    } finally {
      await run(Fiber.interrupt(streaming))
    }
  }, 120_000)
})
