/**
 * Proves that the `kv` commands for versions, conditional writes, transactions and listings work
 * against real processes: `get --meta`, `put`/`delete` with each condition and exit code 5 showing
 * the current entry when it does not hold, `cas`, `txn` (JSON and lines) from a file and from stdin, `list` across
 * pages and shards, refusals (CrossShard exits 4) and bad input (exit 2, a message, no stack trace).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { readFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { shardOf } from "@kv/shardctrler"
import { runCommand, writeFile } from "@kv/testkit"
import { type Clerk, connect } from "../src/index.ts"
import { type LocalCluster, startLocalCluster } from "./support/localCluster.ts"

const root = resolve(import.meta.dir, "../../..")
// The binary itself rather than `bun run kv`, whose echo of the command would precede stderr.
const KV = join(root, "packages/clerk/bin/kv.ts")
let cluster: LocalCluster
let clerk: Clerk | undefined

beforeAll(async () => {
  cluster = await startLocalCluster("kv-coord-cli", [100])
}, 90_000)

afterAll(async () => {
  await clerk?.close().catch(() => {})
  await cluster?.stop()
})

const kv = (...args: string[]) =>
  runCommand(["bun", KV, ...args, "--config", cluster.config], { cwd: root, timeoutMs: 60_000 })

/** `kv txn` with the transaction on stdin. */
const kvTxnStdin = (txn: unknown, ...args: string[]) => {
  const file = join(cluster.dir.path, `txn-${Math.random().toString(36).slice(2)}.json`)
  writeFile(file, typeof txn === "string" ? txn : JSON.stringify(txn))
  const command = ["bun", KV, "txn", ...args, "--config", cluster.config].map((a) => `'${a}'`).join(" ")
  return runCommand(["sh", "-c", `${command} < '${file}'`], { cwd: root, timeoutMs: 60_000 })
}

const json = (stdout: string) => JSON.parse(stdout) as Record<string, unknown>

/** stderr without the "waiting for a leader..." line a loaded machine may add before the answer. */
const errorText = (result: { readonly stderr: string }) =>
  result.stderr
    .split("\n")
    .filter((line) => !line.startsWith("waiting for a leader"))
    .join("\n")

describe("kv commands for versions, conditions, transactions and listings", () => {
  test("get --meta, conditional put and delete, cas", async () => {
    // Two independent sequences side by side (each CLI call is a process start, mostly CPU).
    const onKey = async () => {
      expect(await kv("put", "k", "one", "--if-absent")).toMatchObject({
        code: 0,
        stdout: expect.stringMatching(/^OK \(revision \d+\)$/),
      })
      const [meta, human] = await Promise.all([kv("get", "k", "--meta", "--json"), kv("get", "k", "--meta")])
      expect(meta.code).toBe(0)
      const entry = json(meta.stdout)
      expect(entry).toMatchObject({ ok: true, key: "k", found: true, value: "one", version: 1 })
      expect(human.stdout).toMatch(/^value\s+one\nversion\s+1\nmodRevision\s+\d+\ncreateRevision\s+\d+$/)

      // Not applied: exit 5, the current entry on stderr (or in --json), nothing written.
      const [stale, staleJson, notAbsent] = await Promise.all([
        kv("put", "k", "two", "--if-version", "3"),
        kv("put", "k", "two", "--if-mod-revision", "999999", "--json"),
        kv("put", "k", "two", "--if-absent"),
      ])
      expect(stale.code).toBe(5)
      expect(errorText(stale)).toBe(
        `kv: not applied: "k" = "one" (version 1, modRevision ${entry.modRevision}, createRevision ${entry.createRevision})`,
      )
      expect(staleJson.code).toBe(5)
      expect(json(staleJson.stdout)).toMatchObject({ ok: false, applied: false, entry: { value: "one", version: 1 } })
      expect(notAbsent.code).toBe(5)
      expect((await kv("get", "k")).stdout).toBe("one")

      expect((await kv("put", "k", "two", "--if-version", "1")).code).toBe(0)
      expect((await kv("put", "k", "three", "--if-mod-revision", String(entry.modRevision))).code).toBe(5)
      expect((await kv("put", "k", "three", "--if-value", "two")).code).toBe(0)

      expect(await kv("cas", "k", "two", "four")).toMatchObject({
        code: 5,
        stderr: expect.stringContaining('"k" = "three"'),
      })
      expect((await kv("cas", "k", "three", "four")).code).toBe(0)
      expect((await kv("get", "k")).stdout).toBe("four")

      expect((await kv("delete", "k", "--if-value", "three")).code).toBe(5)
      expect((await kv("delete", "k", "--if-version", "4")).code).toBe(0)
      expect((await kv("get", "k")).code).toBe(1)
      const gone = await kv("delete", "k", "--if-version", "4")
      expect(gone.code).toBe(5)
      expect(errorText(gone)).toBe('kv: not applied: "k" is absent')
    }
    const others = async () => {
      const absent = await kv("get", "nope", "--meta")
      expect(absent).toMatchObject({ code: 1, stdout: "" })
      expect(errorText(absent)).toBe('kv: "nope" is absent')
      // The kvraft group of the same config.
      expect((await kv("put", "kk", "v", "--if-absent", "--service", "kvraft")).code).toBe(0)
      expect(json((await kv("get", "kk", "--meta", "--json", "--service", "kvraft")).stdout)).toMatchObject({
        value: "v",
        version: 1,
      })
      expect((await kv("get", "kk")).code).toBe(1)
    }
    await Promise.all([onKey(), others()])
  }, 120_000)

  test("txn from a file and from stdin, as JSON and as lines: the success branch exits 0, the failure branch 5", async () => {
    // The transaction docs/configuration.md shows, as JSON and as lines, as written there.
    const doc = readFileSync(join(root, "docs/configuration.md"), "utf8")
    const asJson = /`kv txn` reads[\s\S]*?```json\n([\s\S]*?)```/.exec(doc)?.[1]
    const asLines = /The same transaction in lines[\s\S]*?```text\n([\s\S]*?)```/.exec(doc)?.[1]
    expect(asJson).toBeDefined()
    expect(asLines).toBeDefined()
    const lock: unknown = JSON.parse(asJson!)
    const file = join(cluster.dir.path, "lock.json")
    writeFile(file, asJson!)
    const won = await kv("txn", file)
    expect(won.code).toBe(0)
    expect(won.stdout).toMatch(/^SUCCESS \(revision \d+\)\nput "\{job\}.lock": OK\nget "\{job\}.owner" is absent$/)
    const lost = await kvTxnStdin(asLines!)
    expect(lost.code).toBe(5)
    expect(lost.stdout).toMatch(/^FAILURE \(revision \d+\)\nget "\{job\}.lock" = "alice" \(version 1, /)
    const lostJson = await kvTxnStdin(lock, "--json")
    expect(json(lostJson.stdout)).toMatchObject({
      ok: false,
      succeeded: false,
      results: [{ op: "get", key: "{job}.lock", entry: { value: "alice", version: 1 } }],
    })

    // Keys of more than one shard: refused before anything is written (exit 4).
    const spread = ["cross-1", "cross-2", "cross-3"]
    expect(new Set(spread.map((k) => shardOf(k, 10))).size).toBeGreaterThan(1)
    const cross = await kvTxnStdin({ success: spread.map((key) => ({ op: "put", key, value: "x" })) })
    expect(cross.code).toBe(4)
    expect(cross.stderr).toContain("hash tag")
    for (const k of spread) expect((await kv("get", k)).code).toBe(1)
  }, 120_000)

  test("list: every page unless --limit, --after, --keys-only, --json, across shards", async () => {
    clerk = await connect({ config: cluster.config, deadlineMs: 30_000 })
    // More than one server page (1,000 entries), spread over every shard.
    const keys = Array.from({ length: 1_050 }, (_, i) => `m/${String(i).padStart(4, "0")}`)
    for (let i = 0; i < keys.length; i += 100) {
      await Promise.all(keys.slice(i, i + 100).map((k) => clerk!.put(k, `host-${k}`)))
    }
    await clerk.put("n/other", "x")

    const all = await kv("list", "m/", "--keys-only")
    expect(all.code).toBe(0)
    expect(all.stdout.split("\n")).toEqual(keys)
    const withValues = await kv("list", "m/", "--limit", "2")
    expect(withValues.stdout).toBe(`m/0000\thost-m/0000\nm/0001\thost-m/0001`)
    expect(errorText(withValues)).toBe('kv: more keys follow: --after "m/0001"')
    const page = json((await kv("list", "m/", "--after", "m/1047", "--json")).stdout)
    expect(page.ok).toBe(true)
    expect(page.next).toBeUndefined()
    expect(page.entries).toEqual(
      ["m/1048", "m/1049"].map((key) => expect.objectContaining({ key, value: `host-${key}`, version: 1 })),
    )
    const limited = json((await kv("list", "m/", "--limit", "1001", "--keys-only", "--json")).stdout)
    expect((limited.entries as { key: string }[]).map((e) => e.key)).toEqual(keys.slice(0, 1001))
    expect(limited.next).toBe(keys[1000])
    expect(await kv("list", "none/")).toMatchObject({ code: 0, stdout: "" })
  }, 120_000)

  test("bad input exits 2 with a message and no stack trace; help lists the commands", async () => {
    const cases = await Promise.all([
      kv("put", "k", "v", "--if-version", "1", "--if-absent"),
      kv("put", "k", "v", "--if-version", "-1"),
      kv("list", "m/", "--limit", "0"),
      kv("txn", join(cluster.dir.path, "missing.json")),
      kvTxnStdin("{ not json"),
      kvTxnStdin({ compare: [{ key: "a", target: "version", cmp: "=", value: 0 }] }),
      kvTxnStdin({ compare: [{ key: "a", target: "value", cmp: "==", value: 1 }] }),
      kvTxnStdin({ success: [{ op: "put", key: "a" }] }),
      kvTxnStdin({}),
    ])
    const messages = [
      "give at most one condition",
      "--if-version must be 0 or more, not -1",
      "--limit must be 1 or more, not 0",
      "txn: no file",
      "txn: not JSON",
      'txn: Expected "==" | "!=" | "<" | ">" at ["compare"][0]["cmp"]',
      "txn: compare[0]: value is compared with a string, not 1",
      'txn: success[0]: a put needs a "value"',
      "txn: empty",
    ]
    cases.forEach((reply, i) => {
      expect({ i, code: reply.code }).toEqual({ i, code: 2 })
      expect(reply.stderr).toContain(messages[i]!)
      expect(reply.stderr).not.toContain("    at ")
    })

    const help = await kv("--help")
    for (const command of ["get", "put", "delete", "cas", "txn", "list"])
      expect(help.stdout).toMatch(new RegExp(`\\n  ${command}\\s`))
    expect((await kv("put", "--help")).stdout).toContain("--if-mod-revision")
    expect((await kv("txn", "--help")).stdout).toContain('"compare"')
  }, 120_000)
})
