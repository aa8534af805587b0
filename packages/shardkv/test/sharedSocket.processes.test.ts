/**
 * Three processes, each serving replica k of three groups on one address (cluster.toml gives
 * replica k of every group host k's address: one socket and one shared write-ahead log per
 * process). Under load, with shards moving between groups that share hosts and a process killed
 * with `kill -9`, nothing acknowledged is lost and the history stays linearizable; `kv status`
 * reports every replica, and every group led from host 1, the replica cluster.toml names its
 * preferredLeader; a process that would serve only some of an address's groups is refused.
 */
import { describe, expect, test } from "bun:test"
import { resolve } from "node:path"
import type { KvClientShape } from "@kv/kvraft"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { freeUdpPorts, pollUntil, processFixture, runCommand, startRecordedLoad } from "@kv/testkit"
import { Effect } from "effect"
import { coHostedGroups } from "./support/coHostedGroups.ts"

const root = resolve(import.meta.dir, "../../..")
const seed = seedFromEnv()
const { processes, dir, rpcNode } = processFixture("kv-shared-socket")
const gids = [100, 101, 102]

interface StatusJson {
  replicas: { service: string; replica: number; address: string; up: boolean; role?: string }[]
  shards: Record<string, number[]>
}

describe("three groups per process on one address", () => {
  test("moves between co-hosted groups and kill -9 under load: nothing lost, linearizable; kv status; partial --gid refused", async () => {
    console.log(`seed ${seed} (replay the choices: KV_SEED=${seed} bun test test/sharedSocket.processes.test.ts)`)
    const random = new SeededRandom(seed)
    const ports = await freeUdpPorts(6)
    const address = (i: number) => `127.0.0.1:${ports[i]}`
    const controllers = [0, 1, 2].map(address)
    const hosts = [3, 4, 5].map(address)
    const hostGroups = coHostedGroups({
      processes,
      dir: dir.path,
      rpcNode,
      controllers,
      groups: new Map(gids.map((gid) => [gid, hosts])),
      maxRaftStateBytes: 8192,
      // Every group prefers host 1 as its leader: its round carries all three groups' batches.
      preferredLeader: 1,
    })
    const { config, hostArgs, startHost } = hostGroups

    // Serving only group 100 on host 0's address would leave groups 101 and 102 without a socket there.
    const partial = await runCommand(hostArgs(0, [100]), { cwd: dir.path, timeoutMs: 30_000 })
    expect(partial.code).not.toBe(0)
    expect(partial.stderr).toContain(`shares ${hosts[0]}`)
    expect(partial.stderr).toContain("--gid 100,101,102")

    for (let k = 0; k < 3; k++) startHost(k)
    const { admin, clients } = await hostGroups.connect(4)
    const load = startRecordedLoad(clients)

    try {
      await load.whileClientsComplete(100)
      // Shards move between groups whose replicas share every socket: pulls and deletes name their group.
      for (let move = 0; move < 6; move++) {
        const shard = random.int(10)
        const to = gids[random.int(gids.length)] as number
        await Effect.runPromise(admin.move(shard, to))
        await load.whileClientsComplete(30)
      }
      const victim = random.int(3)
      await processes.kill(`host-${victim}`)
      await load.whileClientsComplete(80)
      startHost(victim)
      await load.whileClientsComplete(100)

      // The restarted host may still be restoring (kv status then exits 3, naming it down): asked again.
      const askStatus = () =>
        runCommand(["bun", "run", "kv", "status", "--json", "--config", config], { cwd: root, timeoutMs: 60_000 })
      const groupRowsOf = (stdout: string) =>
        (JSON.parse(stdout) as StatusJson).replicas.filter((r) => r.service.startsWith("group "))
      const ledFromHost1 = (rows: StatusJson["replicas"]) =>
        gids.every((gid) => rows.some((r) => r.service === `group ${gid}` && r.replica === 1 && r.role === "leader"))
      // Up, and (once host 1 is back and caught up, had it been the one killed) led from host 1.
      const status = await pollUntil(
        "kv status with every replica up and every group led from host 1",
        async () => {
          const answer = await askStatus()
          return answer.code === 0 && ledFromHost1(groupRowsOf(answer.stdout)) ? answer : undefined
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      ).catch(askStatus)
      expect(status.code).toBe(0)
      const groupRows = groupRowsOf(status.stdout)
      expect(groupRows).toHaveLength(9)
      expect(groupRows.every((r) => r.up)).toBe(true)
      // Each group has its own leader, found through the shared addresses: replica 1, its preferred one.
      for (const gid of gids) {
        const leaders = groupRows.filter((r) => r.service === `group ${gid}` && r.role === "leader")
        expect(leaders.map((r) => r.replica)).toEqual([1])
      }

      await load.finish(clients[0] as KvClientShape)
    } catch (error) {
      load.abort()
      for (const name of ["ctrl-0", "host-0", "host-1", "host-2"]) {
        console.error(`--- ${name}\n${processes.output(name).slice(-3000)}`)
      }
      throw error
    }
  }, 240_000)
})
