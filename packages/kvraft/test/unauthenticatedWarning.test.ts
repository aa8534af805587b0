/**
 * Proves that a server reachable from other machines without a cluster key says so, loudly, on
 * stderr as it starts, and that a loopback-only or keyed server does not.
 */
import { describe, expect, test } from "bun:test"
import { join } from "node:path"
import { freeUdpPorts, processFixture, writeFile } from "@kv/testkit"
import { isLoopbackHost, unauthenticatedWarning } from "../src/process/unauthenticatedWarning.ts"

const BIN = join(import.meta.dir, "../bin/kvraft.ts")
const { processes, dir } = processFixture("kvraft-warning")

// 192.0.2.0/24 is reserved for documentation (RFC 5737): no machine has it, so a server given it
// prints its warning and then fails to bind; no datagram leaves loopback.
const UNREACHABLE = "192.0.2.1"

/**
 * Starts one kvraft replica on `address` and returns what it wrote to stderr and to either stream,
 * once the latter contains `until` (the process may have exited by then); then stops it.
 */
const startReplica = async (
  name: string,
  address: string,
  env: Record<string, string>,
  until: string,
): Promise<{ readonly stderr: string; readonly output: string }> => {
  const config = join(dir.path, `${name}.toml`)
  writeFile(config, `dataDir = "./${name}"\n[kvraft]\nreplicas = [${JSON.stringify(address)}]\n`)
  const replica = processes.start(name, ["bun", BIN, "--replica", "0", "--config", config], { cwd: dir.path, env })
  try {
    await replica.waitForOutput(until, 30_000)
  } finally {
    await replica.kill()
  }
  return { stderr: replica.output("stderr"), output: replica.output() }
}

describe("a server without a cluster key", () => {
  test("on a non-loopback address prints a loud warning on stderr at start", async () => {
    const { stderr } = await startReplica("exposed", `${UNREACHABLE}:7200`, {}, "cannot bind")
    expect(stderr).toContain(`WARNING: kvraft listens on ${UNREACHABLE}:7200`)
    expect(stderr).toContain("NO CLUSTER KEY")
  }, 40_000)

  test("on loopback starts without a warning", async () => {
    const [port] = await freeUdpPorts(1)
    const { output } = await startReplica("loopback", `127.0.0.1:${port}`, {}, "replica started")
    expect(output).toContain("replica started")
    expect(output).not.toContain("WARNING")
  }, 40_000)

  test("with a key, a non-loopback address gets no warning", async () => {
    const { output } = await startReplica("keyed", `${UNREACHABLE}:7200`, { KV_CLUSTER_KEY: "k3y" }, "cannot bind")
    expect(output).toContain("cannot bind")
    expect(output).not.toContain("WARNING")
  }, 40_000)
})

describe("which addresses are exposed", () => {
  test("loopback hosts", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "::ffff:127.0.0.1"]) {
      expect(isLoopbackHost(host)).toBe(true)
    }
    for (const host of ["0.0.0.0", "10.0.0.5", "192.0.2.1", "::", "example.com", "128.0.0.1"]) {
      expect(isLoopbackHost(host)).toBe(false)
    }
  })

  test("the warning names only the exposed addresses, and a key silences it", () => {
    const warning = unauthenticatedWarning("group-100", ["127.0.0.1:7100", "10.0.0.5:7101", "[::]:7102"], undefined)
    expect(warning).toContain("group-100 listens on 10.0.0.5:7101, [::]:7102")
    expect(unauthenticatedWarning("group-100", ["127.0.0.1:7100", "[::1]:7101"], undefined)).toBeUndefined()
    expect(unauthenticatedWarning("group-100", ["10.0.0.5:7101"], "key")).toBeUndefined()
  })
})
