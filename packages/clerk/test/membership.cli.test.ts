/**
 * Proves that `kv admin member` manages a group's members from the command line against real
 * processes: list (a table and --json) for the kvraft group and the controller, replace with its
 * progress, typed refusals with their exit codes (a used id, an unknown member, conflicting group
 * flags), and `kv status` showing each member's role and lag, a new member the config does not
 * list included, with the replaced replica not counted as down.
 */
import { describe, expect, test } from "bun:test"
import { join, resolve } from "node:path"
import { freeUdpPorts, pollUntil, processFixture, runCommand, writeFile } from "@kv/testkit"

const root = resolve(import.meta.dir, "../../..")
const { processes, dir } = processFixture("kv-membership-cli")
const KVRAFT = join(root, "packages/kvraft/bin/kvraft.ts")
const CONTROLLER = join(root, "packages/shardctrler/bin/shardctrler.ts")

describe("kv admin member", () => {
  test("list, replace with progress, refusals, and status with roles and lag", async () => {
    const ports = await freeUdpPorts(7)
    const kvraft = ports.slice(0, 3).map((p) => `127.0.0.1:${p}`)
    const controller = ports.slice(3, 6).map((p) => `127.0.0.1:${p}`)
    const newMember = `127.0.0.1:${ports[6]}`
    const config = join(dir.path, "cluster.toml")
    writeFile(
      config,
      `dataDir = "./data"\n[controller]\nreplicas = ${JSON.stringify(controller)}\n[kvraft]\nreplicas = ${JSON.stringify(kvraft)}\n`,
    )
    const kv = (...args: string[]) =>
      runCommand(["bun", "run", "kv", ...args, "--config", config], { cwd: root, timeoutMs: 60_000 })
    for (let k = 0; k < 3; k++) {
      processes.start(`kv-${k}`, ["bun", KVRAFT, "--replica", String(k), "--config", config], { cwd: dir.path })
      processes.start(`ctrl-${k}`, ["bun", CONTROLLER, "--replica", String(k), "--config", config], { cwd: dir.path })
    }
    try {
      expect((await kv("put", "k", "v", "--service", "kvraft")).code).toBe(0)

      const [table, json, ctrl] = await Promise.all([
        kv("admin", "member", "list"),
        kv("admin", "member", "list", "--json"),
        kv("admin", "member", "list", "--controller", "--json"),
      ])
      expect(table.code).toBe(0)
      expect(table.stdout).toContain("the kvraft group: leader")
      expect(table.stdout).toMatch(/id\s+address\s+role\s+match\s+lag/)
      for (const address of kvraft) expect(table.stdout).toContain(address)
      const listed = JSON.parse(json.stdout) as { members: { id: number; role: string; lag: number }[] }
      expect(listed.members.map((m) => m.id)).toEqual([1, 2, 3])
      expect(listed.members.filter((m) => m.role === "leader").length).toBe(1)
      expect(listed.members.every((m) => m.lag >= 0)).toBe(true)
      const ctrlListed = JSON.parse(ctrl.stdout) as { members: { address: string }[] }
      expect(ctrlListed.members.map((m) => m.address)).toEqual(controller)

      // Replace 1 by 4: the new member starts with --join, the CLI shows each step.
      processes.start("kv-new", ["bun", KVRAFT, "--join", "--id", "4", "--address", newMember, "--config", config], {
        cwd: dir.path,
      })
      const replaced = await kv("admin", "member", "replace", "1", "4", newMember)
      expect(replaced.code).toBe(0)
      expect(replaced.stdout).toContain(`adding member 4 (${newMember}) as a learner`)
      expect(replaced.stdout).toContain("member 4 caught up; promoting it to voter")
      expect(replaced.stdout).toContain("removing member 1")
      expect(replaced.stdout).toMatch(/done: members 2 \(\w+\), 3 \(\w+\), 4 \(\w+\)/)
      // Run again: nothing left to do.
      const again = await kv("admin", "member", "replace", "1", "4", newMember)
      expect(again.code).toBe(0)
      expect(again.stdout).not.toContain("adding")

      const [used, unknown, both] = await Promise.all([
        kv("admin", "member", "add", "1", kvraft[0]!),
        kv("admin", "member", "remove", "9"),
        kv("admin", "member", "list", "--controller", "--gid", "100"),
      ])
      expect(used.code).toBe(4)
      expect(used.stderr).toContain("member id 1 was used before in the kvraft group: ids are single-use")
      expect(unknown.code).toBe(4)
      expect(unknown.stderr).toContain("9 is not a member of the kvraft group")
      expect(both.code).toBe(2)

      // The replaced replica stops; status shows the new member (not in the config) and no failure.
      await processes.kill("kv-0")
      let status: { code: number; stdout: string } = { code: -1, stdout: "" }
      await pollUntil(
        "kv status to show the new member with its role and lag",
        async () => {
          status = await kv("status", "--json")
          if (status.code !== 0) return false
          const rows = (JSON.parse(status.stdout) as { replicas: Record<string, unknown>[] }).replicas
          const mine = rows.filter((r) => r.service === "kvraft")
          return (
            mine.some((r) => r.address === newMember && r.replica === -1 && r.up === true && r.id === 4) &&
            mine.some((r) => r.address === kvraft[0] && r.up === false && r.member === "removed") &&
            mine.filter((r) => r.member === "leader" || r.member === "voter").length === 3 &&
            mine.every((r) => r.member === "removed" || typeof r.lag === "number")
          )
        },
        { timeoutMs: 20_000, intervalMs: 500 },
      ).catch((error: Error) => {
        throw new Error(`${error.message}: ${status.stdout}`)
      })
      const human = await kv("status")
      expect(human.stdout).toMatch(/service\s+replica\s+id\s+address\s+state\s+member\s+lag/)
      expect(human.stdout).toContain(newMember)

      // Once the new member leads, no replica in cluster.toml leads: status still finds the leader
      // (through a listed replica's view) and shows roles and lag.
      const leaderId = async () => {
        const listed = await kv("admin", "member", "list", "--json")
        if (listed.code !== 0) return undefined
        const members = (JSON.parse(listed.stdout) as { members: { id: number; role: string }[] }).members
        return members.find((m) => m.role === "leader")?.id
      }
      // Stop whichever old replica leads (SIGTERM hands leadership over), keeping it down until
      // the next round, so the new member and the other old one take turns at winning.
      let down: number | undefined
      const bringBack = async () => {
        if (down === undefined) return
        processes.start(`kv-${down - 1}`, ["bun", KVRAFT, "--replica", String(down - 1), "--config", config], {
          cwd: dir.path,
        })
        down = undefined
      }
      await pollUntil(
        "the new member to lead",
        async () => {
          const id = await leaderId()
          if (id === 4) return true
          if (id === 2 || id === 3) {
            await bringBack()
            await processes.stop(`kv-${id - 1}`)
            down = id
          }
          return false
        },
        { timeoutMs: 90_000, intervalMs: 1_000 },
      )
      await bringBack()
      await pollUntil(
        "kv status to show the new member leading, with lag for every member",
        async () => {
          status = await kv("status", "--json")
          if (status.code !== 0) return false
          const rows = (JSON.parse(status.stdout) as { replicas: Record<string, unknown>[] }).replicas
          const mine = rows.filter((r) => r.service === "kvraft")
          return (
            mine.some((r) => r.address === newMember && r.member === "leader") &&
            mine.filter((r) => r.member === "voter").length === 2 &&
            mine.every((r) => r.member === "removed" || typeof r.lag === "number")
          )
        },
        { timeoutMs: 20_000, intervalMs: 500 },
      ).catch((error: Error) => {
        throw new Error(`${error.message}: ${status.stdout}`)
      })
    } catch (error) {
      for (const name of ["kv-0", "kv-1", "kv-new"])
        console.error(`--- ${name}\n${processes.output(name).slice(-2000)}`)
      throw error
    }
  }, 180_000)
})
