/**
 * Proves that a leader caller whose server list is replaced while a call is out (members learned,
 * `setServers`) still knows which server answered: it asks that one for the members, never an
 * address that is not there (an index into the new, shorter list once named no server at all, and
 * the rpc layer failed on it; found by the sharded swarm, seed 743441).
 */
import { expect, test } from "bun:test"
import type { RpcNodeShape } from "@kv/rpc"
import { Effect } from "effect"
import { KvGetMethod, makeLeaderCaller } from "../src/index.ts"

test("the server that answered is asked for members even after the list was replaced meanwhile", async () => {
  const targets: unknown[] = []
  let caller: ReturnType<typeof makeLeaderCaller> | undefined
  const rpc = {
    call: (to: unknown, method: { readonly name: string }) => {
      targets.push(to)
      if (method.name === "member.list") return Effect.succeed({ ok: true, members: [] })
      if (to !== "c") return Effect.succeed({ ok: false, error: "WrongLeader", leaderHint: "c" })
      // While c's answer is on its way, the list is replaced by a shorter one.
      caller!.setServers(["a"])
      return Effect.succeed({ ok: true, value: "v" })
    },
  } as unknown as RpcNodeShape
  caller = makeLeaderCaller(rpc, ["a", "b", "c"], { refreshMembersMs: 1, deadlineMs: 5_000 })
  const reply = await Effect.runPromise(caller.call(KvGetMethod, () => ({ key: "k" }), { operation: "get", key: "k" }))
  expect(reply).toEqual({ ok: true, value: "v" })
  expect(targets.every((t) => typeof t === "string")).toBe(true)
  expect(targets.at(-1)).toBe("c")
})
