/**
 * Proves that `kv watch`, `kv lease ...`, `kv put --lease` and `kv lock NAME -- command` work
 * against real processes: a running `kv watch` prints each change as it happens (lines, or JSON
 * lines) and exits 0 on SIGTERM or Ctrl-C, and exits 6 naming the compact revision when the
 * history no longer reaches back; leases are granted, shown, renewed (once, or until stopped) and
 * revoked, their keys going with them; two `kv lock` runs of one name never overlap and get
 * different tokens; a command whose lock's lease is lost gets SIGTERM and kv exits 7; bad input
 * exits 2.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { readFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { type Launched, ProcessGroup, pollUntil, runCommand } from "@kv/testkit"
import { type Clerk, connect } from "../src/index.ts"
import { type LocalCluster, startLocalCluster } from "./support/localCluster.ts"

const root = resolve(import.meta.dir, "../../..")
// The binary itself rather than `bun run kv`, whose echo of the command would precede stderr.
const KV = join(root, "packages/clerk/bin/kv.ts")
let cluster: LocalCluster
const running = new ProcessGroup()
let clerk: Clerk

beforeAll(async () => {
  cluster = await startLocalCluster("kv-wll-cli", [100])
  clerk = await connect({ config: cluster.config, service: "kvraft", deadlineMs: 30_000 })
}, 90_000)

afterAll(async () => {
  await running.killAll()
  await clerk?.close().catch(() => {})
  await cluster?.stop()
})

/** A `kv` command run to its end; `--config` goes before any `--`. */
const kv = (...args: string[]) => {
  const end = args.indexOf("--")
  const withConfig =
    end === -1
      ? [...args, "--config", cluster.config]
      : [...args.slice(0, end), "--config", cluster.config, ...args.slice(end)]
  return runCommand(["bun", KV, ...withConfig], { cwd: cluster.dir.path, timeoutMs: 60_000 })
}

/** A `kv` command left running (watch, keepalive --forever, lock). */
let started = 0
const start = (...args: string[]): Launched =>
  running.start(`kv-${++started}`, ["bun", KV, ...args, "--config", cluster.config], { cwd: cluster.dir.path })

const lines = (text: string) => text.split("\n").filter((line) => line !== "")

describe("kv watch", () => {
  test("prints each change as it happens, as JSON lines with --json; SIGTERM ends it with exit 0", async () => {
    const watcher = start("watch", "--prefix", "cw/", "--json", "--progress", "--service", "kvraft")
    // A progress line says the watch is current (it comes once the revision moves: write elsewhere
    // until one does); what is written after it is printed.
    await pollUntil(
      "a progress line",
      async () => {
        await clerk.put("cw-tick", "x")
        return watcher.output("stdout").includes('"type":"progress"')
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    )
    await clerk.put("cw/a", "1")
    await clerk.put("cw/b", "two words")
    await clerk.put("elsewhere", "x")
    await clerk.delete("cw/a")
    await watcher.waitForOutput('"type":"delete"', 20_000)
    expect(await watcher.stop({ signal: "SIGTERM" })).toBe(0)
    const events = lines(watcher.output("stdout"))
      .map((line) => JSON.parse(line) as { type: string; key?: string; value?: string; modRevision?: number })
      .filter((item) => item.type !== "progress")
    expect(events.map((e) => [e.type, e.key, e.value])).toEqual([
      ["put", "cw/a", "1"],
      ["put", "cw/b", "two words"],
      ["delete", "cw/a", undefined],
    ])
    expect(events[0]!.modRevision).toBeLessThan(events[2]!.modRevision!)
  }, 60_000)

  test("one key from an earlier revision, on the sharded service, in lines; Ctrl-C ends it with exit 0", async () => {
    const sharded = await connect({ config: cluster.config, deadlineMs: 30_000 })
    try {
      // Revisions count per shard, and this key is new: from revision 1 its every change.
      await sharded.put("cw-sharded", "v1")
      await sharded.put("cw-sharded", "v2")
      const watcher = start("watch", "cw-sharded", "--from-revision", "1")
      await watcher.waitForOutput('"v2"', 20_000)
      await sharded.delete("cw-sharded")
      await watcher.waitForOutput("delete", 20_000)
      expect(await watcher.stop({ signal: "SIGINT" })).toBe(0)
      const printed = lines(watcher.output("stdout"))
      expect(printed).toHaveLength(3)
      expect(printed[0]).toMatch(/^put "cw-sharded" = "v1" \(revision \d+, version 1, shard \d+\)$/)
      expect(printed[1]).toMatch(/^put "cw-sharded" = "v2" \(revision \d+, version 2, shard \d+\)$/)
      expect(printed[2]).toMatch(/^delete "cw-sharded" \(revision \d+, shard \d+\)$/)
    } finally {
      await sharded.close()
    }
  }, 60_000)

  test("from a revision the history no longer holds: exit 6 naming the compact revision", async () => {
    // The group keeps about 8 MiB of changes (each counted as its key and value in UTF-16): write more.
    const large = "x".repeat(500_000)
    for (let i = 0; i < 12; i++) await clerk.put(`fill/${i}`, large)
    const compacted = await kv("watch", "fill/0", "--from-revision", "1", "--service", "kvraft")
    expect(compacted.code).toBe(6)
    expect(compacted.stderr).toMatch(/^kv: watch compacted: events after revision 0 are gone up to [1-9]\d*; /)
  }, 60_000)

  test("bad input exits 2", async () => {
    const [none, both, negative] = await Promise.all([
      kv("watch"),
      kv("watch", "k", "--prefix", "p"),
      kv("watch", "k", "--from-revision", "-1"),
    ])
    expect(none).toMatchObject({ code: 2, stderr: expect.stringContaining("give a KEY or --prefix P") })
    expect(both).toMatchObject({ code: 2, stderr: expect.stringContaining("not both") })
    expect(negative.code).toBe(2)
  }, 60_000)
})

describe("kv lease", () => {
  test("grant, put --lease, show, list, keepalive, revoke: the keys go with the lease", async () => {
    const granted = await kv("lease", "grant", "60000")
    expect(granted.code).toBe(0)
    const id = granted.stdout
    expect(id).toMatch(/^\d+$/)
    expect(await kv("put", "leased/a", "1", "--lease", id, "--service", "kvraft")).toMatchObject({ code: 0 })
    expect(
      await kv("put", "leased/b", "2", "--lease", id, "--if-absent", "--service", "kvraft", "--json"),
    ).toMatchObject({ code: 0, stdout: expect.stringContaining('"applied":true') })

    const [show, list, listJson, renewed] = await Promise.all([
      kv("lease", "show", id),
      kv("lease", "list"),
      kv("lease", "list", "--json"),
      kv("lease", "keepalive", id),
    ])
    expect(show.code).toBe(0)
    expect(show.stdout).toMatch(
      new RegExp(`^lease\\s+${id}\\nttl\\s+60000 ms\\nremaining\\s+\\d+ ms\\nkeys\\s+leased/a\\n\\s+leased/b$`),
    )
    expect(list.stdout).toMatch(new RegExp(`^LEASE\\s+TTL_MS\\s+REMAINING_MS\\n[- ]+\\n(.*\\n)*${id}\\s+60000\\s+\\d+`))
    expect((JSON.parse(listJson.stdout) as { leases: { lease: number }[] }).leases.map((l) => l.lease)).toContain(
      Number(id),
    )
    expect(renewed).toMatchObject({ code: 0, stdout: `lease ${id} renewed: 60000 ms left` })

    expect(await kv("lease", "revoke", id)).toMatchObject({ code: 0 })
    const [gone, again, showGone] = await Promise.all([
      kv("get", "leased/a", "--service", "kvraft"),
      kv("lease", "revoke", id),
      kv("lease", "show", id),
    ])
    expect(gone.code).toBe(1)
    expect(again.code).toBe(1)
    expect(showGone).toMatchObject({
      code: 1,
      stderr: expect.stringContaining(`kv: lease ${id} not found (revoked, expired or never granted)`),
    })
    expect(await kv("put", "leased/c", "1", "--lease", id, "--service", "kvraft")).toMatchObject({ code: 1 })
  }, 60_000)

  test("keepalive --forever keeps a lease past its TTL until SIGTERM (exit 0), and exits 7 once the lease is revoked", async () => {
    // A TTL longer than a `kv` process takes to start on a loaded machine (1.5 s was not).
    const [first, second] = await Promise.all([kv("lease", "grant", "4000"), kv("lease", "grant", "4000")])
    const stopped = start("lease", "keepalive", first.stdout, "--forever")
    const revoked = start("lease", "keepalive", second.stdout, "--forever")
    await Promise.all([stopped.waitForOutput("until Ctrl-C", 20_000), revoked.waitForOutput("until Ctrl-C", 20_000)])
    await clerk.put("forever/k", "v", { lease: Number(first.stdout) })
    // Twice the TTL later both leases are still there.
    await Bun.sleep(8_000)
    expect(await clerk.timeToLive(Number(first.stdout))).toMatchObject({ keys: ["forever/k"] })
    expect(await clerk.timeToLive(Number(second.stdout))).toBeDefined()
    expect(await stopped.stop({ signal: "SIGTERM" })).toBe(0)
    await clerk.revoke(Number(second.stdout))
    expect(await revoked.exited).toBe(7)
    expect(revoked.output("stderr")).toContain(`lease ${second.stdout} ended`)
  }, 60_000)

  test("bad input exits 2; leases on the sharded service are refused with a pointer to --service kvraft", async () => {
    const [short, sharded, zero] = await Promise.all([
      kv("lease", "grant", "10"),
      kv("put", "k", "v", "--lease", "5"),
      kv("lease", "show", "0"),
    ])
    expect(short).toMatchObject({ code: 2, stderr: expect.stringContaining("1000") })
    expect(sharded).toMatchObject({ code: 2, stderr: expect.stringContaining("--service kvraft") })
    expect(zero.code).toBe(2)
  }, 60_000)
})

describe("kv lock", () => {
  test("two runs of one lock at once: they do not overlap, the second has a larger token, each prints its token", async () => {
    const file = join(cluster.dir.path, "lock-markers.txt")
    const script = `echo "start $KV_LOCK_TOKEN" >> '${file}'; sleep 0.5; echo "end $KV_LOCK_TOKEN" >> '${file}'; echo $KV_LOCK_TOKEN`
    const [a, b] = await Promise.all([
      kv("lock", "shared", "--", "sh", "-c", script),
      kv("lock", "shared", "--", "sh", "-c", script),
    ])
    expect(a.code).toBe(0)
    expect(b.code).toBe(0)
    const tokens = [Number(a.stdout), Number(b.stdout)].sort((x, y) => x - y)
    expect(tokens[0]).toBeGreaterThan(0)
    expect(tokens[1]).toBeGreaterThan(tokens[0]!)
    expect(lines(readFileSync(file, "utf8"))).toEqual([
      `start ${tokens[0]}`,
      `end ${tokens[0]}`,
      `start ${tokens[1]}`,
      `end ${tokens[1]}`,
    ])
    // Released after each run: nobody holds it now.
    expect(await clerk.leader("shared")).toBeUndefined()
  }, 60_000)

  test("kv exits with the command's code; --wait-ms gives up with exit 5 while another holds the lock", async () => {
    const holder = start("lock", "busy", "--", "sh", "-c", "echo holding; sleep 30")
    await holder.waitForOutput("holding", 20_000)
    const [failed, waited] = await Promise.all([
      kv("lock", "other", "--", "sh", "-c", "exit 3"),
      kv("lock", "busy", "--wait-ms", "300", "--", "true"),
    ])
    expect(failed.code).toBe(3)
    expect(waited).toMatchObject({ code: 5, stderr: expect.stringContaining('lock "busy" not taken within 300 ms') })
    // SIGTERM while waiting: kv gives up at once, and nothing runs.
    const waiter = start("lock", "busy", "--", "sh", "-c", "echo ran")
    await waiter.waitForOutput('waiting for the lock "busy"', 20_000)
    expect(await waiter.stop({ signal: "SIGTERM", graceMs: 10_000 })).toBe(128 + 15)
    expect(waiter.output("stdout")).not.toContain("ran")
    // SIGTERM to kv reaches the command; the lock is released.
    expect(await holder.stop({ signal: "SIGTERM" })).toBe(128 + 15)
    expect(await clerk.leader("busy")).toBeUndefined()
  }, 60_000)

  test("when the lock's lease is lost the command gets SIGTERM and kv exits 7 saying so", async () => {
    const command = `trap 'echo got SIGTERM; exit 0' TERM; echo "lease $KV_LOCK_LEASE"; while true; do sleep 0.1; done`
    const locked = start("lock", "fragile", "--ttl-ms", "2000", "--", "sh", "-c", command)
    await locked.waitForOutput(/lease \d+/, 20_000)
    const lease = Number(/lease (\d+)/.exec(locked.output("stdout"))![1])
    await clerk.revoke(lease)
    expect(await locked.exited).toBe(7)
    expect(locked.output("stdout")).toContain("got SIGTERM")
    expect(locked.output("stderr")).toContain(`lease ${lease} ended`)
    expect(locked.output("stderr")).toContain("SIGTERM")
  }, 60_000)

  test("bad input exits 2: no command, a command that cannot run", async () => {
    const [none, missing] = await Promise.all([
      kv("lock", "x"),
      kv("lock", "x", "--", "/nonexistent/command-that-is-not-there"),
    ])
    expect(none).toMatchObject({ code: 2, stderr: expect.stringContaining("give the command to run after --") })
    expect(missing).toMatchObject({ code: 2, stderr: expect.stringContaining("cannot run") })
    expect(await clerk.leader("x")).toBeUndefined()
  }, 60_000)
})
