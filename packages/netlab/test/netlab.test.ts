/**
 * Proves that the lab's hosts talk over real interfaces with their own addresses, that isolation and
 * splits cut exactly the links they name and healing restores them, and that nothing the lab made
 * (namespaces, links, processes) is left behind: after destroy, after its maker died, or on exit.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { ProcessGroup, pollUntil, runCommand } from "@kv/launcher"
import { ip, NetLab } from "../src/index.ts"

const PROBE = join(import.meta.dir, "fixtures/udpProbe.ts")
const PORT = 7100
const processes = new ProcessGroup()
const labs: NetLab[] = []

afterAll(async () => {
  await processes.killAll()
  for (const lab of labs) lab.destroy()
})

const labNamespaces = (lab: NetLab): string[] =>
  ip(["netns", "list"])
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name.startsWith(`${lab.name}-`))

/** Alive and not a zombie waiting to be reaped. */
const isRunning = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return false
  }
}

describe("a network lab", () => {
  test("hosts reach each other from their own addresses; isolation, splits and healing cut and restore exactly what they say", async () => {
    const lab = NetLab.create({ hosts: 3 })
    labs.push(lab)
    expect(lab.hosts.map((h) => h.address)).toEqual(["10.77.0.1", "10.77.0.2", "10.77.0.3"])
    for (const k of [1, 2]) {
      await lab.start(processes, `echo-${k}`, k, ["bun", PROBE, "echo", String(PORT)]).waitForOutput("ready", 20_000)
    }
    /** Whether host `from` gets an answer from host `to` (and the answer names `from`'s address). */
    const reaches = async (from: number, to: number, timeoutMs = 3_000): Promise<boolean> => {
      const result = await runCommand(
        lab.exec(from, ["bun", PROBE, "ask", `${lab.host(to).address}:${PORT}`, String(timeoutMs)]),
        {
          timeoutMs: timeoutMs + 20_000,
        },
      )
      if (result.code === 0) expect(result.stdout).toStartWith(`${lab.host(from).address}:`)
      return result.code === 0
    }
    expect(await reaches(0, 1)).toBe(true)
    expect(await reaches(0, 2)).toBe(true)

    lab.isolate(2)
    expect(lab.describe()).toBe("0 1, isolated 2")
    expect(await reaches(0, 1)).toBe(true)
    expect(await reaches(0, 2, 1_000)).toBe(false)

    lab.partition([0], [1, 2])
    expect(lab.describe()).toBe("0 | 1 2")
    expect(await reaches(0, 1, 1_000)).toBe(false)
    expect(await reaches(1, 2)).toBe(true)

    lab.heal()
    expect(lab.describe()).toBe("all connected")
    expect(await reaches(0, 2)).toBe(true)

    // The machine's own network never saw the lab's links.
    expect(ip(["link", "show"])).not.toContain("kvnl")
    lab.destroy()
    expect(labNamespaces(lab)).toEqual([])
    await Promise.all([1, 2].map((k) => processes.get(`echo-${k}`)?.exited))
  }, 90_000)

  test("without the ip command a lab is not built: the failure says what to install", async () => {
    const attempt = `
      import { NetLab } from ${JSON.stringify(join(import.meta.dir, "../src/index.ts"))}
      try { NetLab.create({ hosts: 1 }) } catch (error) { console.log(String(error)); process.exit(3) }
    `
    const result = await runCommand([process.execPath, "-e", attempt], {
      timeoutMs: 30_000,
      env: { PATH: "/nonexistent" },
    })
    expect(result.code).toBe(3)
    expect(result.stdout).toContain("the `ip` command is missing: install iproute2")
  }, 40_000)

  test("a lab whose maker was killed with kill -9 is removed, with its processes, when the next lab is made", async () => {
    const maker = `
      import { NetLab } from ${JSON.stringify(join(import.meta.dir, "../src/index.ts"))}
      const lab = NetLab.create({ hosts: 2 })
      Bun.spawn(lab.exec(1, ["sleep", "600"]), { stdio: ["ignore", "ignore", "ignore"] })
      console.log(lab.name)
      setInterval(() => {}, 1000)
    `
    const orphanMaker = processes.start("maker", ["bun", "-e", maker], { stopWithParent: false })
    await orphanMaker.waitForOutput(/kvnl-\d+-\d+/, 30_000)
    const left = orphanMaker.output().match(/kvnl-\d+-\d+/)?.[0] ?? ""
    await processes.kill("maker")
    const leftovers = () =>
      ip(["netns", "list"])
        .split("\n")
        .filter((line) => line.startsWith(`${left}-`))
    expect(leftovers().length).toBe(3)
    const sleeper = ip(["netns", "pids", `${left}-h1`]).trim()
    expect(sleeper).toMatch(/^\d+$/)

    const next = NetLab.create({ hosts: 1 })
    labs.push(next)
    expect(leftovers()).toEqual([])
    expect(
      await pollUntil("the orphaned sleeper to be gone", () => !isRunning(Number(sleeper)), { timeoutMs: 5_000 }),
    ).toBe(true)
    next.destroy()
  }, 60_000)
})
