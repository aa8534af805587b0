/**
 * Proves that a call a watcher abandons, while a server leaves it unanswered, ends as a `Timeout`
 * at once, without trying the group's other servers; and that a watcher that lets it be changes
 * nothing (the caller moves on from a silent server as before).
 */
import { expect, test } from "bun:test"
import { type CallOptions, type RpcNodeShape, Timeout as RpcTimeout } from "@kv/rpc"
import { Effect, Exit } from "effect"
import { KvGetMethod, makeLeaderCaller } from "../src/index.ts"

/** Server "a" never answers: each call to it reports one unanswered timeout, then times out. */
const fakeRpc = (targets: string[]) =>
  ({
    call: (to: string, _method: unknown, _request: unknown, options: CallOptions = {}) =>
      Effect.suspend(() => {
        targets.push(to)
        if (to !== "a") return Effect.succeed({ ok: true, value: `from ${to}` })
        let abandoned = false
        options.onUnanswered?.(() => {
          abandoned = true
        })
        return Effect.fail(new RpcTimeout({ to, method: "kv.get", afterMs: abandoned ? 1 : 1_000 }))
      }),
  }) as unknown as RpcNodeShape

const get = { operation: "get", key: "k" }

test("an abandoned call ends as a Timeout without asking the other servers", async () => {
  const targets: string[] = []
  const caller = makeLeaderCaller(fakeRpc(targets), ["a", "b", "c"], { refreshMembersMs: 0 })
  let told = 0
  const exit = await Effect.runPromise(
    Effect.exit(
      caller.call(KvGetMethod, () => ({ key: "k" }), get, {
        onUnanswered: (abandon) => {
          told++
          abandon()
        },
      }),
    ),
  )
  expect(told).toBe(1)
  expect(Exit.isFailure(exit)).toBe(true)
  expect(JSON.stringify(exit)).toContain("Timeout")
  expect(targets).toEqual(["a"])
})

test("a watcher that does not abandon leaves the failover as it was", async () => {
  const targets: string[] = []
  const caller = makeLeaderCaller(fakeRpc(targets), ["a", "b", "c"], { refreshMembersMs: 0 })
  let told = 0
  const reply = await Effect.runPromise(
    caller.call(KvGetMethod, () => ({ key: "k" }), get, { onUnanswered: () => told++ }),
  )
  expect(reply).toEqual({ ok: true, value: "from b" })
  expect(told).toBe(1)
  expect(targets).toEqual(["a", "b"])
})
