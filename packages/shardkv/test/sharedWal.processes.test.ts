/**
 * Proves that three processes, each holding one replica of three groups on one shared write-ahead
 * log (`--gid 100,101,102 --replica k --shared-wal`), lose nothing acknowledged and stay
 * linearizable when a process is killed with `kill -9` under load, and when all three are.
 */
import { describe, expect, test } from "bun:test"
import { existsSync, readdirSync } from "node:fs"
import { join } from "node:path"
import type { KvClientShape } from "@kv/kvraft"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { freeUdpPorts, processFixture, startRecordedLoad } from "@kv/testkit"
import { coHostedGroups } from "./support/coHostedGroups.ts"

const seed = seedFromEnv()
const { processes, dir, rpcNode } = processFixture("kv-shared-wal")
const gids = [100, 101, 102]

describe("three groups per process on a shared write-ahead log", () => {
  test("kill -9 of one process, then of all three, under load: every acknowledged append exactly once, linearizable", async () => {
    console.log(`seed ${seed} (replay the choices: KV_SEED=${seed} bun test test/sharedWal.processes.test.ts)`)
    const random = new SeededRandom(seed)
    const ports = await freeUdpPorts(12)
    const address = (i: number) => `127.0.0.1:${ports[i]}`
    const controllers = [0, 1, 2].map(address)
    // Process k runs replica k of every group.
    const groups = new Map(gids.map((gid, g) => [gid, [0, 1, 2].map((k) => address(3 + 3 * g + k))]))
    // Small, so the replicas snapshot while the test runs.
    const hostGroups = coHostedGroups({
      processes,
      dir: dir.path,
      rpcNode,
      controllers,
      groups,
      maxRaftStateBytes: 4096,
    })
    const { startHost } = hostGroups
    for (let k = 0; k < 3; k++) startHost(k)
    const { clients } = await hostGroups.connect(4)
    const load = startRecordedLoad(clients)

    try {
      await load.whileClientsComplete(150)
      // One host down hard: each group loses one replica, and keeps a majority.
      const victim = random.int(3)
      await processes.kill(`host-${victim}`)
      await load.whileClientsComplete(100)
      startHost(victim)
      await load.whileClientsComplete(150)
      // Every host down hard at once, in the middle of the load: all back from the shared logs alone.
      await Promise.all([0, 1, 2].map((k) => processes.kill(`host-${k}`)))
      for (let k = 0; k < 3; k++) startHost(k)
      await load.whileClientsComplete(150)
      await load.finish(clients[0] as KvClientShape)
      // The replicas' logs are in the shared log; their own directories hold snapshots only.
      let snapshots = 0
      for (let k = 0; k < 3; k++) {
        const data = join(dir.path, `host-${k}`)
        expect(readdirSync(join(data, "shared-wal")).some((name) => name.startsWith("wal-"))).toBe(true)
        for (const gid of gids) {
          const replicaDir = join(data, `group-${gid}`, `replica-${k}`)
          expect(existsSync(join(replicaDir, "in-shared-wal"))).toBe(true)
          expect(readdirSync(replicaDir).filter((name) => name.startsWith("wal-"))).toEqual([])
          snapshots += readdirSync(replicaDir).filter((name) => name.startsWith("snap-")).length
        }
      }
      expect(snapshots).toBeGreaterThan(0)
    } catch (error) {
      load.abort()
      for (const name of ["ctrl-0", "host-0", "host-1", "host-2"]) {
        console.error(`--- ${name}\n${processes.output(name).slice(-3000)}`)
      }
      throw error
    }
  }, 180_000)
})
