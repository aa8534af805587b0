/**
 * Proves that the clerk's Promise and Effect APIs carry versions, conditional writes,
 * transactions and listings to both services as real processes: metadata as written, a failed
 * condition answered with the current entry, a transaction's branches, every page of a listing
 * in byte order, typed refusals as Error subclasses (a sharded transaction over two shards is
 * refused with CrossShard and writes nothing; one hash tag keeps keys together).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { shardOf } from "@kv/shardctrler"
import { Effect, Stream } from "effect"
import { type Clerk, CrossShard, connect, InvalidRequest, Kv } from "../src/index.ts"
import { type LocalCluster, startLocalCluster } from "./support/localCluster.ts"

let cluster: LocalCluster
const clerks: Clerk[] = []

beforeAll(async () => {
  cluster = await startLocalCluster("kv-coord-clerk", [100, 101])
}, 90_000)

afterAll(async () => {
  for (const clerk of clerks) await clerk.close().catch(() => {})
  await cluster?.stop()
})

const open = async (service: "kvraft" | "sharded"): Promise<Clerk> => {
  const clerk = await connect({ config: cluster.config, service, deadlineMs: 30_000 })
  clerks.push(clerk)
  return clerk
}

const collect = async <A>(items: AsyncIterable<A>): Promise<A[]> => {
  const out: A[] = []
  for await (const item of items) out.push(item)
  return out
}

for (const service of ["kvraft", "sharded"] as const) {
  describe(`the clerk on the ${service} service`, () => {
    test("getEntry shows the metadata; a conditional put or delete applies only when its condition holds", async () => {
      const kv = await open(service)
      expect(await kv.getEntry("cas/k")).toBeUndefined()
      expect(await kv.put("cas/k", "one", { ifAbsent: true })).toMatchObject({ applied: true })
      const created = await kv.getEntry("cas/k")
      expect(created).toMatchObject({ value: "one", version: 1 })
      expect(created!.createRevision).toBe(created!.modRevision)

      const again = await kv.put("cas/k", "other", { ifAbsent: true })
      expect(again).toMatchObject({ applied: false, entry: created })
      const stale = await kv.put("cas/k", "two", { ifVersion: 7 })
      expect(stale.applied).toBe(false)
      expect(stale.entry).toEqual(created)

      const second = await kv.put("cas/k", "two", { ifModRevision: created!.modRevision })
      expect(second.applied).toBe(true)
      expect(second.revision).toBeGreaterThan(created!.modRevision)
      expect(await kv.getEntry("cas/k")).toEqual({
        value: "two",
        version: 2,
        modRevision: second.revision,
        createRevision: created!.createRevision,
      })
      expect((await kv.put("cas/k", "three", { ifValue: "one" })).applied).toBe(false)
      expect((await kv.put("cas/k", "three", { ifValue: "two" })).applied).toBe(true)

      expect((await kv.delete("cas/k", { ifVersion: 2 })).applied).toBe(false)
      expect(await kv.delete("cas/k", { ifVersion: 3 })).toMatchObject({ applied: true })
      expect(await kv.getEntry("cas/k")).toBeUndefined()
      expect(await kv.get("cas/k")).toBe("")
      // The plain writes are unchanged: no condition, no result.
      expect(await kv.put("cas/plain", "v")).toBeUndefined()
      expect(await kv.delete("cas/plain")).toBeUndefined()
    }, 60_000)

    test("a transaction runs its success ops when every compare holds, its failure ops otherwise", async () => {
      const kv = await open(service)
      const lock = "{txn}.lock"
      const owner = "{txn}.owner"
      const take = (who: string) =>
        kv.txn({
          compare: [{ key: lock, target: "version", cmp: "==", value: 0 }],
          success: [
            { op: "put", key: lock, value: who },
            { op: "put", key: owner, value: who },
          ],
          failure: [{ op: "get", key: lock }],
        })
      const first = await take("alice")
      expect(first).toMatchObject({ succeeded: true, entries: [undefined, undefined] })
      const second = await take("bob")
      expect(second.succeeded).toBe(false)
      expect(second.entries[0]).toMatchObject({ value: "alice", version: 1, modRevision: first.revision })
      // Both writes of the winner carry the transaction's one revision.
      expect((await kv.getEntry(owner))?.modRevision).toBe(first.revision)
    }, 60_000)

    test("a transaction over the limits is refused with InvalidRequest, an Error with a message", async () => {
      const kv = await open(service)
      const ops = Array.from({ length: 129 }, (_, i) => ({ op: "put" as const, key: "{big}.k", value: String(i) }))
      const refused = await kv.txn({ compare: [], success: ops }).catch((error: unknown) => error)
      expect(refused).toBeInstanceOf(InvalidRequest)
      expect(refused).toBeInstanceOf(Error)
      expect((refused as InvalidRequest).message).toContain("128")
      expect(await kv.getEntry("{big}.k")).toBeUndefined()
    }, 60_000)

    test("list pages through a prefix in byte order; listAll yields every key across pages", async () => {
      const kv = await open(service)
      const keys = ["dir/b", "dir/a", "dir/c/1", "dir/c", "dir/é", "dir/d", "dirx", "di"]
      await Promise.all(keys.map((k) => kv.put(k, `v-${k}`)))
      const under = keys.filter((k) => k.startsWith("dir/")).sort()

      const first = await kv.list("dir/", { limit: 2 })
      expect(first.entries.map((e) => e.key)).toEqual(under.slice(0, 2))
      expect(first.next).toBe(under[1])
      const rest = await kv.list("dir/", { after: first.next })
      expect(rest.entries.map((e) => e.key)).toEqual(under.slice(2))
      expect(rest.next).toBeUndefined()
      expect(rest.entries[0]).toMatchObject({ value: `v-${under[2]}`, version: 1 })

      const all = await collect(kv.listAll("dir/", { pageSize: 2 }))
      expect(all.map((e) => e.key)).toEqual(under)
      const keysOnly = await collect(kv.listAll("dir/", { keysOnly: true }))
      expect(keysOnly.map((e) => e.key)).toEqual(under)
      expect(keysOnly.every((e) => e.value === undefined)).toBe(true)
      expect(await collect(kv.listAll("nothing-here/"))).toEqual([])
    }, 60_000)

    test("the Effect API gives the same operations, listAll as a Stream", async () => {
      const program = Effect.gen(function* () {
        const kv = yield* Kv
        const created = yield* kv.put("fx/a", "1", { ifAbsent: true })
        const refused = yield* kv.put("fx/a", "2", { ifVersion: 0 })
        yield* kv.put("fx/b", "2")
        const entry = yield* kv.getEntry("fx/a")
        const listed = yield* Stream.runCollect(kv.listAll("fx/", { pageSize: 1 }))
        return { created, refused, entry, keys: listed.map((e) => e.key) }
      }).pipe(Effect.provide(Kv.layer({ config: cluster.config, service, deadlineMs: 30_000 })))
      const { created, refused, entry, keys } = await Effect.runPromise(program)
      expect(created.applied).toBe(true)
      expect(refused).toMatchObject({ applied: false, entry: { value: "1", version: 1 } })
      expect(entry).toMatchObject({ value: "1", version: 1, modRevision: created.revision })
      expect(keys).toEqual(["fx/a", "fx/b"])
    }, 60_000)
  })
}

describe("transactions on the sharded service", () => {
  test("keys of two shards are refused with CrossShard and nothing is written; one hash tag keeps them in one shard", async () => {
    const kv = await open("sharded")
    const nShards = 10
    const a = "cross-a"
    const b = Array.from({ length: 50 }, (_, i) => `cross-b${i}`).find(
      (k) => shardOf(k, nShards) !== shardOf(a, nShards),
    )!
    const refused = await kv
      .txn({
        compare: [],
        success: [
          { op: "put", key: a, value: "1" },
          { op: "put", key: b, value: "1" },
        ],
      })
      .catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(CrossShard)
    expect(refused).toBeInstanceOf(Error)
    expect((refused as CrossShard).message).toContain("hash tag")
    expect(await kv.getEntry(a)).toBeUndefined()
    expect(await kv.getEntry(b)).toBeUndefined()

    const tagged = ["{pair}.cross-a", "{pair}.cross-b"]
    const done = await kv.txn({
      compare: tagged.map((key) => ({ key, target: "version" as const, cmp: "==" as const, value: 0 })),
      success: tagged.map((key) => ({ op: "put" as const, key, value: "1" })),
    })
    expect(done.succeeded).toBe(true)
    for (const key of tagged) expect(await kv.getEntry(key)).toMatchObject({ value: "1", modRevision: done.revision })
  }, 60_000)
})
