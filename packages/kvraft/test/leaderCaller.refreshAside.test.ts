/**
 * Proves that a leader caller's question for the members, which follows an answer from a server it
 * had not heard from, does not hold that answer back: with a member list that never comes (lost,
 * or a slow server), the call still completes with the server's answer, and the list is asked of
 * the server that answered. (Before, the answer waited for the list: under the lab's unreliable
 * network one lost datagram of it cost a read 170 ms, past the 1 s bound of TestChallenge2Partial.)
 */
import { expect, test } from "bun:test"
import type { RpcNodeShape } from "@kv/rpc"
import { Effect } from "effect"
import { KvGetMethod, makeLeaderCaller } from "../src/index.ts"

test("an answer is not held back by the question for the members that follows it", async () => {
  const asked: string[] = []
  const rpc = {
    call: (to: string, method: { readonly name: string }) => {
      asked.push(`${method.name}@${to}`)
      if (method.name === "member.list") return Effect.never
      return Effect.succeed({ ok: true, value: "v" })
    },
  } as unknown as RpcNodeShape
  const caller = makeLeaderCaller(rpc, ["a", "b"], { refreshMembersMs: 1, deadlineMs: 5_000 })
  const call = caller.call(KvGetMethod, () => ({ key: "k" }), { operation: "get", key: "k" })
  const bounded = Effect.timeoutOrElse(call, { duration: 1_000, orElse: () => Effect.succeed("held back") })
  const reply = await Effect.runPromise(bounded)
  expect(reply).toEqual({ ok: true, value: "v" })
  await Bun.sleep(10)
  expect(asked).toEqual(["kv.get@a", "member.list@a"])
})
