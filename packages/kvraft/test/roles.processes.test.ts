/**
 * Proves that separate credentials hold over real processes: three kvraft replicas with a server
 * key and read-only, read-write and admin client keys ([[clientKeys]] in cluster.toml). A read-only
 * client reads but its put is refused with PermissionDenied; a read-write client writes but may not
 * change membership; an admin may; a Raft message sealed with a client key is dropped and counted,
 * and the group's term does not move. Every refusal is counted in the metrics.
 */
import { describe, expect, test } from "bun:test"
import { join } from "node:path"
import { RAFT_CHANNEL, RaftStatusMethod } from "@kv/raft"
import { freeUdpPorts, pollUntil, writeFile } from "@kv/testkit"
import { Effect } from "effect"
import { makeKvClient, makeMemberClient } from "../src/index.ts"
import { kvProcesses } from "./support/kvProcesses.ts"

const fixture = kvProcesses("kvraft-roles")
const { dir, run } = fixture
const failureOf = async <A, E>(effect: Effect.Effect<A, E>): Promise<E> => run(Effect.flip(effect))
const keyedNode = fixture.node

const KEYS = { server: "server secret", reader: "reader secret", writer: "writer secret", admin: "admin secret" }

/** The value of one sample of the metrics text, 0 when absent. */
const sample = (text: string, name: string, labels: Record<string, string>): number => {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.split(" ").pop())
  }
  return 0
}

describe("client roles over real processes", () => {
  test("read-only cannot write, read-write cannot change membership, a client key's Raft message is ignored; all counted", async () => {
    const metricsPorts = await freeUdpPorts(3)
    for (const [name, key] of Object.entries(KEYS)) writeFile(join(dir.path, `${name}.key`), `${key}\n`)
    const { config, replicas } = await fixture.group(
      3,
      `clusterKeyFile = "server.key"

[[clientKeys]]
role = "read-only"
keyFile = "reader.key"

[[clientKeys]]
role = "read-write"
keyFile = "writer.key"

[[clientKeys]]
role = "admin"
keyFile = "admin.key"
`,
    )
    for (let k = 0; k < 3; k++) fixture.start(config, k, { args: ["--metrics-port", String(metricsPorts[k])] })
    const [reader, writer, admin] = await Promise.all([KEYS.reader, KEYS.writer, KEYS.admin].map(keyedNode))
    const options = { servers: replicas, deadlineMs: 20_000 }
    const readerKv = await run(makeKvClient(reader!, options))
    const writerKv = await run(makeKvClient(writer!, options))

    await run(writerKv.put("k", "written by read-write"))
    expect(await run(readerKv.get("k"))).toBe("written by read-write")
    // Refused at once, not after the deadline: no server would accept it.
    const started = Date.now()
    const denied = await failureOf(readerKv.put("k", "read-only tries"))
    expect(denied._tag).toBe("PermissionDenied")
    expect(Date.now() - started).toBeLessThan(5_000)
    expect((await failureOf(readerKv.append("k", "!")))._tag).toBe("PermissionDenied")
    expect(await run(readerKv.get("k"))).toBe("written by read-write")

    // Membership: read-write may list (read-only) but not change; admin may change.
    const writerMembers = await run(makeMemberClient(writer!, { servers: replicas, deadlineMs: 10_000 }))
    expect((await run(writerMembers.list())).members.length).toBe(3)
    expect((await failureOf(writerMembers.change("remove", 99)))._tag).toBe("PermissionDenied")
    const adminMembers = await run(makeMemberClient(admin!, { servers: replicas, deadlineMs: 10_000 }))
    // Authorized, and refused by the group for its own reason: there is no member 99.
    expect((await failureOf(adminMembers.change("remove", 99)))._tag).toBe("UnknownMember")

    // A Raft vote request at a far higher term, sealed with a client key: heard, it would depose
    // the leader. Dropped as forbidden, the term stays.
    const termBefore = (await run(reader!.call(replicas[0]!, RaftStatusMethod, {}, { deadlineMs: 3_000 }))).term
    for (const from of [2, 3]) {
      writer!.sendOneWay(replicas[0]!, RAFT_CHANNEL, [
        {
          type: "Vote",
          from,
          to: 1,
          term: termBefore + 50,
          lastLogIndex: 1e6,
          lastLogTerm: termBefore + 50,
          transfer: true,
        },
      ])
    }
    const scrape = () =>
      Promise.all(
        metricsPorts.map((port, k) =>
          fetch(`http://127.0.0.1:${port}/metrics`)
            .then((r) => r.text())
            .then((text) => ({ k: String(k), text })),
        ),
      )
    const total = (all: { k: string; text: string }[], name: string, labels: Record<string, string>) =>
      all.reduce((sum, { k, text }) => sum + sample(text, name, { replica: k, ...labels }), 0)
    const metrics = await pollUntil(
      "the forbidden Raft messages to be counted",
      async () => {
        const all = await scrape()
        return total(all, "kv_transport_dropped_datagrams_total", { reason: "forbidden" }) >= 2 ? all : undefined
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    )
    const termAfter = (await run(reader!.call(replicas[0]!, RaftStatusMethod, {}, { deadlineMs: 3_000 }))).term
    expect(termAfter).toBeLessThan(termBefore + 50)
    const refusedReader = total(metrics, "kv_rpc_refused_total", { role: "read-only", reason: "PermissionDenied" })
    const refusedWriter = total(metrics, "kv_rpc_refused_total", { role: "read-write", reason: "PermissionDenied" })
    console.log(`roles: refused ${refusedReader} read-only and ${refusedWriter} read-write requests`)
    expect(refusedReader).toBeGreaterThanOrEqual(2)
    expect(refusedWriter).toBeGreaterThanOrEqual(1)
  }, 60_000)
})
