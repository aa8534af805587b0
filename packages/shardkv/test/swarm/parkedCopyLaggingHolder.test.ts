/**
 * Proves that a parked copy is kept until the group that pulls it has it, even when that group lags
 * behind the configurations. Found by the sharded swarm (seed 202): group 102 parked shards when
 * every group left; group 100 was given them, every group left again before 100 had pulled them,
 * and 102 was given them back. 102 dropped its parked copy as "obsolete" while 100 still needed it:
 * 100 waited for it forever, 102 waited for 100, and the shards' data was gone.
 */
import { describe, expect, test } from "bun:test"
import { type Config, type Gid, makeConfig, shardOf } from "@kv/shardctrler"
import { ShardStateMachine } from "../../src/stateMachine/index.ts"

const N_SHARDS = 10
const SHARD = 5
const servers = (gid: Gid) => [`g${gid}-1`, `g${gid}-2`, `g${gid}-3`]
const allOn = (num: number, gid: Gid | 0): Config =>
  makeConfig(num, new Array(N_SHARDS).fill(gid), new Map(gid === 0 ? [] : [[gid, servers(gid)]]))
const key = Array.from({ length: 100 }, (_, i) => `k${i}`).find((k) => shardOf(k, N_SHARDS) === SHARD)!

describe("parked shards and a lagging holder", () => {
  test("a group given back a shard it parked keeps its parked copy while the next holder has not pulled it", () => {
    const parker = new ShardStateMachine({ gid: 102, nShards: N_SHARDS })
    const lagging = new ShardStateMachine({ gid: 100, nShards: N_SHARDS })
    const configs = [allOn(1, 102), allOn(2, 0), allOn(3, 100), allOn(4, 0), allOn(5, 102)]
    const reconfigure = (m: ShardStateMachine, c: Config) => m.apply({ type: "reconfigure", config: c })
    reconfigure(parker, configs[0]!)
    reconfigure(lagging, configs[0]!)
    const put = { clientId: 7, seq: 1, ackedBelow: 1, nowMs: 1_000, op: { op: "put" as const, key, value: "kept" } }
    expect(parker.apply({ type: "client", command: put })).toEqual({ ok: true })
    reconfigure(lagging, configs[1]!)
    reconfigure(lagging, configs[2]!)
    expect(lagging.pulls().find((t) => t.shard === SHARD)).toMatchObject({ fromGid: 102, handOffConfigNum: 2 })

    // The parker moves on to configuration 5 while the lagging group is still pulling at 3.
    for (const c of configs.slice(1)) expect(reconfigure(parker, c)).toEqual({ ok: true })
    expect(parker.pulls().find((t) => t.shard === SHARD)).toMatchObject({ fromGid: 100, handOffConfigNum: 4 })

    // The lagging group can still fetch what it needs, and has everything once it installs it.
    const handOff = parker.handOff(2, SHARD)
    expect(handOff.kind).toBe("data")
    if (handOff.kind !== "data") return
    const install = {
      type: "installPiece" as const,
      configNum: 3,
      shard: SHARD,
      offset: 0,
      total: handOff.bytes.length,
      checksum: handOff.checksum,
      bytes: handOff.bytes,
    }
    expect(lagging.apply(install)).toEqual({ ok: true })
    expect(lagging.get(key)).toEqual({ ok: true, value: "kept" })
    // Its deletion then removes the parked copy.
    expect(parker.deleteStatus(2, SHARD)).toBe("pending")
    expect(parker.apply({ type: "deleteShard", configNum: 2, shard: SHARD })).toEqual({ ok: true })
    expect(parker.deleteStatus(2, SHARD)).toBe("done")
  })
})
