/**
 * Proves that a member of a shard group can be replaced while shards move between groups, over
 * real processes and real UDP: a new member on a new port, started with --join, replaces one of
 * group 100's replicas through the member admin's `replace`, while clerks append and read shared
 * keys, shards are moved between groups 100 and 101, and another replica of group 100 is killed
 * (kill -9) during the change and restarted afterwards. Every acknowledged append is present exactly
 * once, the history is linearizable, the controller's latest configuration lists the new member for
 * gid 100 (and no longer the old one), and `kv status` shows it.
 */
import { describe, expect, test } from "bun:test"
import { join, resolve } from "node:path"
import type { KvClientShape, ReplaceProgress } from "@kv/kvraft"
import { RaftStatusMethod } from "@kv/raft"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { makeShardKvClient } from "@kv/shardkv"
import {
  checkLinearizable,
  freeUdpPorts,
  HistoryRecorder,
  type KvInput,
  pollUntil,
  processFixture,
  runCommand,
  serverBins,
  writeFile,
} from "@kv/testkit"
import { Effect, Exit } from "effect"
import { connectAdmin, connectMembers } from "../src/index.ts"

const FILE = "packages/clerk/test/membership.sharded.processes.test.ts"
const root = resolve(import.meta.dir, "../../..")
const bins = serverBins
const N_SHARDS = 10
/** Keys every clerk appends to and reads, so the history has real concurrency on each key. */
const KEYS = Array.from({ length: 8 }, (_, i) => `key-${i}`)
/** The replacement's id: the bootstrap replicas of group 100 have ids 1..3, ids are single-use. */
const NEW_ID = 4
const seed = seedFromEnv()
const { processes, dir, rpcNode } = processFixture("kv-membership-sharded")

describe("a shard group's member replaced over real processes", () => {
  test("while shards move and another replica is killed during the change: every acknowledged append exactly once, linearizable, the new member in the configuration and in kv status", async () => {
    console.log(`seed ${seed} (replay the choices: KV_SEED=${seed} bun test ${FILE})`)
    const random = new SeededRandom(seed)
    const ports = await freeUdpPorts(10)
    const address = (i: number) => `127.0.0.1:${ports[i]}`
    const controllers = [0, 1, 2].map(address)
    const groups = new Map<number, string[]>([
      [100, [3, 4, 5].map(address)],
      [101, [6, 7, 8].map(address)],
    ])
    const g100 = groups.get(100)!
    const newAddress = address(9)
    const config = join(dir.path, "cluster.toml")
    writeFile(
      config,
      [
        `dataDir = "./data"`,
        `nShards = ${N_SHARDS}`,
        // Small, so the group snapshots and the new member may be brought up by InstallSnapshot.
        `maxRaftStateBytes = 32768`,
        `[controller]`,
        `replicas = ${JSON.stringify(controllers)}`,
        ...[...groups].flatMap(([gid, r]) => [`[groups.${gid}]`, `replicas = ${JSON.stringify(r)}`]),
      ].join("\n"),
    )
    const startController = (k: number) =>
      processes.start(`ctrl-${k}`, ["bun", bins.controller, "--replica", String(k), "--config", config], {
        cwd: dir.path,
      })
    const startReplica = (gid: number, k: number) =>
      processes.start(
        `g${gid}-${k}`,
        ["bun", bins.group, "--gid", String(gid), "--replica", String(k), "--config", config],
        { cwd: dir.path },
      )
    const startNewMember = () =>
      processes.start(
        "g100-new",
        [
          "bun",
          bins.group,
          "--gid",
          "100",
          "--join",
          "--id",
          String(NEW_ID),
          "--address",
          newAddress,
          "--config",
          config,
        ],
        { cwd: dir.path },
      )
    for (let k = 0; k < 3; k++) startController(k)
    for (const gid of groups.keys()) for (let k = 0; k < 3; k++) startReplica(gid, k)

    const admin = await connectAdmin({ controllers })
    await admin.join({ "100": g100 })
    const members = await connectMembers({ group: { gid: 100 }, servers: [...g100, newAddress], deadlineMs: 30_000 })

    // The seeded choices: the group's leader or a follower replaced, which other replica dies hard
    // and at which step of the replacement, the new member started before or after the replace.
    const replaceLeader = random.chance(0.5)
    const leaderK = (await members.members()).leader - 1
    expect([0, 1, 2]).toContain(leaderK)
    const oldK = replaceLeader ? leaderK : [0, 1, 2].filter((k) => k !== leaderK)[random.int(2)]!
    const victimK = [0, 1, 2].filter((k) => k !== oldK)[random.int(2)]!
    const killAt = (["adding", "catching-up", "promoting", "removing"] as const)[random.int(4)]!
    const newMemberFirst = random.chance(0.5)
    console.log(
      `replacing member ${oldK + 1} (${replaceLeader ? "the leader" : "a follower"}) of group 100 by member ${NEW_ID} (${newAddress}, started ${newMemberFirst ? "before" : "after"} the replace begins); member ${victimK + 1} killed at "${killAt}"`,
    )

    // Clerks appending unique tokens to shared keys and reading them, every call recorded.
    const history = new HistoryRecorder()
    const clients: KvClientShape[] = []
    for (let c = 0; c < 4; c++) {
      clients.push(await Effect.runPromise(makeShardKvClient(await rpcNode(), { controllers, deadlineMs: 60_000 })))
    }
    let completed = 0
    const record = async (c: number, input: KvInput, call: () => Effect.Effect<string | undefined, unknown>) => {
      const token = history.begin(c, input)
      const exit = await Effect.runPromiseExit(call())
      if (Exit.isFailure(exit)) {
        history.unknown(token)
        throw new Error(`client ${c}: ${input.op} ${input.key} failed: ${String(exit.cause)}`)
      }
      history.end(token, typeof exit.value === "string" ? exit.value : undefined)
      completed++
      return exit.value
    }
    let done = false
    /** key → every token whose append was acknowledged. */
    const acknowledged = new Map<string, string[]>(KEYS.map((k) => [k, []]))
    const load = clients.map(async (client, c) => {
      // Each clerk's key choices from its own stream, so the seed decides them.
      const choices = new SeededRandom(seed * 7 + c)
      for (let j = 0; !done; j++) {
        const key = KEYS[choices.int(KEYS.length)]!
        if (choices.chance(0.3)) {
          await record(c, { op: "get", key }, () => client.get(key))
        } else {
          const value = `${c}.${j};`
          await record(c, { op: "append", key, value }, () => Effect.as(client.append(key, value), undefined))
          acknowledged.get(key)!.push(value)
        }
      }
    })
    /** Waits while the clerks complete `n` more calls; a clerk's failure ends the wait at once. */
    const whileClientsComplete = async (n: number) => {
      const target = completed + n
      await Promise.race([
        pollUntil(`the clerks to complete ${n} more calls`, () => completed >= target, { timeoutMs: 30_000 }),
        Promise.all(load).then(() => {
          throw new Error("the clerks stopped")
        }),
      ])
    }
    /** Moves a random shard to the group that does not have it. */
    let moves = 0
    const moveOne = async () => {
      const latest = await admin.query()
      const shard = random.int(N_SHARDS)
      await admin.move(shard, latest.shards[shard] === 100 ? 101 : 100)
      moves++
    }

    /** The new member's place in its own membership, once it answers. */
    const newMemberSelf = async () => {
      const rpc = await rpcNode()
      let self: string | undefined
      await pollUntil(
        "the new member to answer its status",
        async () => {
          const reply = await Effect.runPromise(
            rpc
              .call(newAddress, RaftStatusMethod, {}, { attemptTimeoutMs: 200, deadlineMs: 1_000 })
              .pipe(Effect.option),
          )
          if (reply._tag === "Some") self = reply.value.member
          return self !== undefined
        },
        { timeoutMs: 30_000, intervalMs: 100 },
      )
      return self
    }

    const progress: string[] = []
    let victimKilled = false
    const onProgress = (p: ReplaceProgress) => {
      progress.push(p.step === "done" ? "done" : JSON.stringify(p))
      // Killed from inside the step, so the kill is certain to land during the change.
      if (p.step === killAt && !victimKilled) {
        victimKilled = true
        void processes.kill(`g100-${victimK}`)
      }
    }

    try {
      await whileClientsComplete(20)
      // Group 101 joins: half the shards start moving away from group 100.
      await admin.join({ "101": groups.get(101)! })

      // The replacement, with shards moving all along until it is done (and at least three moves).
      let replaced = false
      if (newMemberFirst) {
        // Started before anyone added it, it waits to be added: --join reached its Raft node, which
        // would otherwise have started a group of its own with the replicas it heard of.
        startNewMember()
        const self = await newMemberSelf()
        expect(self).toBe("joining")
      }
      const replacing = members.replace(oldK + 1, { id: NEW_ID, address: newAddress }, { onProgress }).finally(() => {
        replaced = true
      })
      const moving = (async () => {
        while (!replaced || moves < 3) {
          await moveOne()
          await whileClientsComplete(5 + random.int(10))
        }
      })()
      if (!newMemberFirst) {
        await whileClientsComplete(5)
        startNewMember()
      }
      const after = await replacing
      await moving
      expect(victimKilled).toBe(true)
      expect(after.map((m) => m.id).sort()).toEqual([1, 2, 3, NEW_ID].filter((id) => id !== oldK + 1))

      // The removed member stops for good; the killed one comes back from its data directory.
      await processes.kill(`g100-${oldK}`)
      await whileClientsComplete(20)
      startReplica(100, victimK)
      for (let i = 0; i < 3; i++) {
        await moveOne()
        await whileClientsComplete(10 + random.int(10))
      }

      // The group's leader has told the controller: the latest configuration names the new member.
      let servers: readonly string[] = []
      await pollUntil(
        "the controller's latest configuration to list the new member of group 100",
        async () => {
          servers = (await admin.query()).groups["100"] ?? []
          return servers.includes(newAddress) && !servers.includes(g100[oldK]!)
        },
        { timeoutMs: 30_000, intervalMs: 200 },
      ).catch((error: Error) => {
        throw new Error(`${error.message}: group 100 is ${JSON.stringify(servers)}`)
      })
      expect([...servers].sort()).toEqual([...g100.filter((_, k) => k !== oldK), newAddress].sort())
      await whileClientsComplete(10)

      done = true
      await Promise.all(load)
      // Every acknowledged append present exactly once; nothing else in the values.
      for (const [key, tokens] of acknowledged) {
        const value = (await record(0, { op: "get", key }, () => clients[0]!.get(key))) ?? ""
        const present = value.split(";").filter((t) => t !== "")
        expect(present.sort()).toEqual(tokens.map((t) => t.slice(0, -1)).sort())
      }
      const ops = history.history()
      const verdict = checkLinearizable(ops)
      console.log(`${ops.length} operations, ${moves} moves; linearizable: ${verdict.ok}`)
      if (!verdict.ok) throw new Error(verdict.explanation)

      // `kv status` shows the new member in group 100, up, with its id and role.
      let status = ""
      let shown: Record<string, unknown> | undefined
      await pollUntil(
        "kv status to show the new member of group 100",
        async () => {
          const out = await runCommand(["bun", "run", "kv", "status", "--json", "--config", config], {
            cwd: root,
            timeoutMs: 30_000,
          })
          status = out.stdout
          if (out.code !== 0) return false
          const rows = (JSON.parse(out.stdout) as { replicas: Record<string, unknown>[] }).replicas
          shown = rows.find((r) => r.service === "group 100" && r.address === newAddress)
          return shown?.up === true && shown.id === NEW_ID && (shown.member === "leader" || shown.member === "voter")
        },
        { timeoutMs: 20_000, intervalMs: 500 },
      ).catch((error: Error) => {
        throw new Error(`${error.message}: ${status}`)
      })
      console.log(
        `kv status: member ${NEW_ID} of group 100 is ${String(shown?.member)}, its role ${String(shown?.role)}`,
      )
    } catch (error) {
      done = true
      console.error(`--- replace progress\n${progress.slice(-30).join("\n")}`)
      for (const name of ["ctrl-0", "g100-0", "g100-1", "g100-2", "g100-new", "g101-0"]) {
        console.error(`--- ${name}\n${processes.output(name).slice(-2500)}`)
      }
      throw error
    } finally {
      await Promise.allSettled(load)
      await members.close()
      await admin.close()
    }
  }, 120_000)
})
