/**
 * Proves that forged migration requests change nothing: a shard is handed only to the replicas of
 * the group the configuration gives it to, and its frozen copy is deleted only once that group
 * has installed it, whoever claims otherwise.
 */
import { describe, expect } from "bun:test"
import { RpcNode } from "@kv/rpc"
import { Effect } from "effect"
import { ShardDeleteMethod, ShardPullMethod } from "../src/protocol.ts"
import { labTest, waitUntil } from "./support/labTest.ts"
import { keysCoveringShards, randstring } from "./support/shardLab.ts"

const FILE = "packages/shardkv/test/forgedMigration.test.ts"

describe("forged migration requests", () => {
  labTest(
    "pulls and deletes from outside the new owner, or before it installed, are refused",
    FILE,
    { maxRaftStateBytes: -1 },
    async ({ lab, random, seed }) => {
      const ck = await lab.makeClient()
      await lab.join(0)
      const keys = keysCoveringShards()
      const values = keys.map(() => randstring(20, () => random.next()))
      for (let i = 0; i < keys.length; i++) await lab.put(ck, keys[i]!, values[i]!)

      // Group 101 is given shards, but only one of its replicas runs: it can never install them.
      await lab.crash(1, 1)
      await lab.crash(1, 2)
      await lab.join(1)
      const config = await lab.query()
      const moved = config.shards.indexOf(lab.gid(1))
      await waitUntil(lab, "group 100 hands the shard off", 20_000, () =>
        lab.groups[0]!.servers.every((s) => s?.machine().shardState(moved) === "HandingOff"),
      )

      // A stranger, and a replica of group 101 whose group has not installed the shard.
      const stranger = await lab.processes.client("stranger")
      await lab.crash(1, 0)
      const impostor = await lab.processes.start(
        lab.servers(1)[0]!,
        Effect.gen(function* () {
          return yield* RpcNode
        }),
      )
      const source = lab.servers(0)[0]!
      const request = { configNum: config.num, toConfigNum: config.num, shard: moved }
      const sent = { pulls: 0, deletes: 0 }
      for (let round = 0; round < 20; round++) {
        const pull = await lab.run(
          stranger.call(
            source,
            ShardPullMethod,
            { ...request, offset: 0 },
            { attemptTimeoutMs: 100, deadlineMs: 1_000 },
          ),
        )
        sent.pulls++
        expect(pull).toEqual({ ok: false, error: "Refused" })
        for (const from of [stranger, impostor]) {
          const target = lab.servers(0)[round % 3]!
          const reply = await lab.run(
            from.call(target, ShardDeleteMethod, request, { attemptTimeoutMs: 200, deadlineMs: 3_000 }),
          )
          sent.deletes++
          expect(reply.ok).toBe(false)
        }
      }
      console.log(`forged: ${sent.pulls} pulls, ${sent.deletes} deletes (seed ${seed})`)
      for (const server of lab.groups[0]!.servers) expect(server?.machine().shardState(moved)).toBe("HandingOff")

      // The real group comes up, installs the shard, and has the source delete it: nothing lost.
      await lab.processes.stop(lab.servers(1)[0]!)
      await lab.restartGroup(1)
      for (let i = 0; i < keys.length; i++) await lab.check(ck, keys[i]!, values[i]!)
      await waitUntil(lab, "group 100 deleted its copy", 20_000, () =>
        lab.groups[0]!.servers.every((s) => s?.machine().shardState(moved) === "Absent"),
      )
    },
  )
})
