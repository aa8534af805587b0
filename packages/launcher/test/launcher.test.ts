/**
 * Proves that the launcher starts a process with its arguments and environment, keeps a bounded
 * tail of its output, waits for it to be ready (a line, a port), freezes, stops and kills it, and
 * that nothing it started outlives the program that started it: not after an uncaught error, not
 * after `process.exit`, not after Ctrl-C, not even a frozen child; and a foreign program started
 * with `killWithParent` (etcd for the bench) not even after the program is killed with kill -9.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { freeUdpPorts, Launched, ProcessGroup, pollUntil, portIsBound, runCommand } from "../src/index.ts"

const child = join(import.meta.dir, "fixtures/child.ts")
const parent = join(import.meta.dir, "fixtures/parent.ts")
const foreignParent = join(import.meta.dir, "fixtures/foreignParent.ts")
const group = new ProcessGroup()

afterAll(() => group.killAll())

/** The process state letter from /proc (R, S, T = stopped, Z = zombie), or "gone". */
const stateOf = (pid: number): string => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0] ?? "?"
  } catch {
    return "gone"
  }
}

/** A killed orphan stays a zombie until init reaps it: it is dead all the same. */
const isAlive = (pid: number): boolean => !["gone", "Z"].includes(stateOf(pid))

describe("a launched process", () => {
  test("keeps only the tail of a long output, per stream and combined", async () => {
    const launched = group.start("printer", ["bun", child, "print", "5000"], { tailChars: 10_000 })
    expect(await launched.exited).toBe(0)
    const output = launched.output()
    expect(output.length).toBeLessThanOrEqual(10_000)
    expect(output.endsWith("done\n")).toBe(true)
    expect(output).toContain("line 004999")
    expect(output).not.toContain("line 000000")
    expect(launched.output("stderr")).toBe("")
  })

  test("gets the environment it is given, a removed variable removed, and its parent's pid", async () => {
    process.env.LAUNCHER_TEST_INHERITED = "from the parent"
    try {
      const given = await runCommand(["bun", child, "env", "LAUNCHER_TEST_GIVEN"], {
        env: { LAUNCHER_TEST_GIVEN: "given" },
        timeoutMs: 30_000,
      })
      expect(given).toEqual({ stdout: "given", stderr: "", code: 0 })
      const inherited = await runCommand(["bun", child, "env", "LAUNCHER_TEST_INHERITED"], { timeoutMs: 30_000 })
      expect(inherited.stdout).toBe("from the parent")
      const removed = await runCommand(["bun", child, "env", "LAUNCHER_TEST_INHERITED"], {
        env: { LAUNCHER_TEST_INHERITED: undefined },
        timeoutMs: 30_000,
      })
      expect(removed.stdout).toBe("<unset>")
      const parentPid = await runCommand(["bun", child, "env", "KV_PARENT_PID"], { timeoutMs: 30_000 })
      expect(parentPid.stdout).toBe(String(process.pid))
    } finally {
      delete process.env.LAUNCHER_TEST_INHERITED
    }
  })

  test("a command that does not finish in time is killed and reported with its output", async () => {
    const failed = await runCommand(["bun", child, "stubborn"], { timeoutMs: 1_500 }).then(
      () => undefined,
      (error: Error) => error.message,
    )
    expect(failed).toContain("did not finish within 1500 ms")
    expect(failed).toContain("ready")
    const exited = await runCommand(["bun", child, "fail"], { timeoutMs: 30_000 })
    expect(exited).toEqual({ stdout: "", stderr: "about to fail", code: 3 })
  })

  test("waiting for a line ends when it is printed, and fails with the output if the process exits first", async () => {
    const server = group.start("server", ["bun", child, "serve"])
    await server.waitForOutput("ready", 30_000)
    expect(server.running).toBe(true)
    const failing = group.start("failing", ["bun", child, "fail"])
    const error = await failing.waitForOutput("never printed", 30_000).then(
      () => undefined,
      (e: Error) => e.message,
    )
    expect(error).toContain("failing exited with code 3 before printing never printed")
    expect(error).toContain("about to fail")
    expect(await server.stop()).toBe(0)
  })

  test("waiting for a port ends once a UDP socket is bound to it", async () => {
    const [free] = await freeUdpPorts(1)
    expect(portIsBound("udp", free!)).toBe(false)
    const server = group.start("udp", ["bun", child, "udp"])
    await server.waitForOutput(/port \d+/, 30_000)
    const port = Number(/port (\d+)/.exec(server.output())?.[1])
    await server.waitForPort("udp", port, 5_000)
    expect(portIsBound("udp", port)).toBe(true)
    await server.kill()
    expect(portIsBound("udp", port)).toBe(false)
  })

  test("SIGSTOP freezes it and SIGCONT resumes it; stopping a frozen process resumes it to stop cleanly", async () => {
    const server = group.start("frozen", ["bun", child, "serve"])
    await server.waitForOutput("ready", 30_000)
    server.signal("SIGSTOP")
    await pollUntil("the process to be stopped", () => stateOf(server.pid) === "T", { timeoutMs: 5_000 })
    server.signal("SIGCONT")
    await pollUntil("the process to run again", () => stateOf(server.pid) !== "T", { timeoutMs: 5_000 })
    server.signal("SIGSTOP")
    await pollUntil("the process to be stopped", () => stateOf(server.pid) === "T", { timeoutMs: 5_000 })
    expect(await server.stop({ graceMs: 20_000 })).toBe(0)
  })

  test("a process that ignores SIGTERM is killed after the grace period", async () => {
    const stubborn = group.start("stubborn", ["bun", child, "stubborn"])
    await stubborn.waitForOutput("ready", 30_000)
    expect(await stubborn.stop({ graceMs: 300 })).toBe(137)
    expect(stubborn.output()).toContain("ignoring SIGTERM")
    expect(group.isRunning("stubborn")).toBe(false)
  })

  test("a name is reused once its process has exited, not before", async () => {
    group.start("again", ["bun", child, "serve"])
    expect(() => group.start("again", ["bun", child, "serve"])).toThrow("again is already running")
    await group.kill("again")
    const second = group.start("again", ["bun", child, "serve"])
    await second.waitForOutput("ready", 30_000)
    expect(group.get("again")).toBe(second)
    await group.stopAll()
    expect(group.all().every((p) => !p.running)).toBe(true)
  })

  test("output sent to a log file is appended there and still readable for failure messages", async () => {
    const dir = (await import("../src/index.ts")).tempDir("launcher-log")
    try {
      const logFile = join(dir.path, "server.log")
      await new Launched("first", ["bun", child, "print", "2"], { logFile }).exited
      const second = new Launched("second", ["bun", child, "serve"], { logFile })
      await second.waitForOutput("ready", 30_000)
      expect(second.output()).toBe("ready\n")
      expect(readFileSync(logFile, "utf8")).toContain("line 000001")
      await second.stop()
    } finally {
      dir.remove()
    }
  })
})

describe("nothing outlives the program that launched it", () => {
  /** Runs the parent fixture until it has launched, and returns its children's pids and temp dir. */
  const launchParent = async (how: string) => {
    const program = new Launched(`parent-${how}`, ["bun", parent, how])
    await program.waitForOutput("launched", 60_000)
    const pids = [...program.output().matchAll(/child (\d+)/g)].map((m) => Number(m[1]))
    const dir = /dir (\S+)/.exec(program.output())?.[1] ?? ""
    expect(pids.length).toBe(2)
    expect(existsSync(dir)).toBe(true)
    // Everything is in place: the program may now end (see the fixture).
    writeFileSync(`${dir}/go`, "")
    return { program, pids, dir }
  }

  const expectGone = async (pids: readonly number[], dir: string) => {
    await pollUntil("every child to be gone", () => pids.every((pid) => !isAlive(pid)), { timeoutMs: 10_000 })
    expect(existsSync(dir)).toBe(false)
  }

  test("after an uncaught error", async () => {
    const { program, pids, dir } = await launchParent("throw")
    expect(await program.exited).toBe(1)
    await expectGone(pids, dir)
  }, 30_000)

  test("after process.exit", async () => {
    const { program, pids, dir } = await launchParent("exit")
    expect(await program.exited).toBe(0)
    await expectGone(pids, dir)
  }, 30_000)

  test("after Ctrl-C", async () => {
    const { program, pids, dir } = await launchParent("signal")
    program.signal("SIGINT")
    expect(await program.exited).toBe(130)
    await expectGone(pids, dir)
  }, 30_000)

  test("after kill -9, a program that cannot be told (killWithParent) is killed by the kernel", async () => {
    const program = new Launched("foreign-parent", ["bun", foreignParent])
    await program.waitForOutput("launched", 60_000)
    const pid = Number(/child (\d+)/.exec(program.output())?.[1])
    expect(isAlive(pid)).toBe(true)
    // The parent's own handlers never run: only the kernel can stop the child now.
    expect(await program.kill()).toBe(137)
    await pollUntil("the foreign child to be gone", () => !isAlive(pid), { timeoutMs: 10_000 })
  }, 30_000)
})
