/**
 * Proves that a server binds where --listen says and advertises what the config says, that a listen
 * address peers would not recognise as the replica (another port, another address of this host) or
 * that is not this host's is refused with the reason, and that without --listen nothing changes.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { freeUdpPorts, ProcessGroup, pollUntil, runCommand, tempDir, writeFile } from "@kv/testkit"
import { advertisedNotLocalHint, resolveListen } from "../src/index.ts"

const LOCAL = ["127.0.0.1", "::1", "10.77.0.2", "192.168.5.9", "fe80::1"]

describe("where a replica binds (listen) vs where it is reached (advertise)", () => {
  test("without --listen a replica binds its advertised address, as before", () => {
    expect(resolveListen(undefined, "127.0.0.1:7001", LOCAL)).toEqual({ ok: true, bind: "127.0.0.1:7001" })
  })

  test("a host alone keeps the advertised port; the wildcard and this host's own addresses are accepted", () => {
    expect(resolveListen("0.0.0.0", "10.77.0.2:7001", LOCAL)).toEqual({ ok: true, bind: "0.0.0.0:7001" })
    expect(resolveListen("0.0.0.0:7001", "10.77.0.2:7001", LOCAL)).toEqual({ ok: true, bind: "0.0.0.0:7001" })
    expect(resolveListen("10.77.0.2", "10.77.0.2:7001", LOCAL)).toEqual({ ok: true, bind: "10.77.0.2:7001" })
    expect(resolveListen("[::]", "[::1]:7001", LOCAL)).toEqual({ ok: true, bind: "[::]:7001" })
    expect(resolveListen("::", "[::1]:7001", LOCAL)).toEqual({ ok: true, bind: "[::]:7001" })
    expect(resolveListen("[::]:7001", "[::1]:7001", LOCAL)).toEqual({ ok: true, bind: "[::]:7001" })
    expect(resolveListen("localhost", "localhost:7001", LOCAL)).toEqual({ ok: true, bind: "127.0.0.1:7001" })
    // Behind NAT the advertised address is not this host's: binding a local one is the point.
    expect(resolveListen("10.77.0.2", "203.0.113.7:7001", LOCAL)).toEqual({ ok: true, bind: "10.77.0.2:7001" })
    expect(resolveListen("0.0.0.0", "kv-0.example:7001", LOCAL)).toEqual({ ok: true, bind: "0.0.0.0:7001" })
  })

  test("another port is refused: peers accept a replica's datagrams only from its advertised address", () => {
    const result = resolveListen("0.0.0.0:7002", "10.77.0.2:7001", LOCAL)
    expect(result.ok).toBe(false)
    if (!result.ok) {
      expect(result.problem).toContain("--listen 0.0.0.0:7002: port 7002 differs from the advertised 10.77.0.2:7001")
      expect(result.problem).toContain("listen on port 7001, or advertise port 7002")
    }
  })

  test("an address that is not this host's is refused, naming the host's addresses", () => {
    const result = resolveListen("10.0.0.9", "10.0.0.9:7001", LOCAL)
    expect(result).toEqual({
      ok: false,
      problem:
        "--listen 10.0.0.9: 10.0.0.9 is not an address of this host (its addresses: 127.0.0.1, ::1, 10.77.0.2, 192.168.5.9, fe80::1); listen on one of them, or on 0.0.0.0 for all of them",
    })
  })

  test("binding one address of this host while advertising another is refused: datagrams would leave from the wrong one", () => {
    const result = resolveListen("192.168.5.9", "10.77.0.2:7001", LOCAL)
    expect(result.ok).toBe(false)
    if (!result.ok) {
      expect(result.problem).toContain("binds 192.168.5.9 but advertises 10.77.0.2:7001, another address of this host")
      expect(result.problem).toContain("peers accept them only from 10.77.0.2")
    }
    expect(resolveListen("127.0.0.1", "localhost:7001", LOCAL).ok).toBe(true)
  })

  test("malformed listen addresses are refused", () => {
    for (const listen of ["", "10.0.0.1:", "host:port", "a b", "[::"]) {
      const result = resolveListen(listen, "10.77.0.2:7001", LOCAL)
      expect(result.ok).toBe(false)
    }
  })

  test("a bind of the advertised address that fails because it is not this host's suggests --listen", () => {
    expect(advertisedNotLocalHint("203.0.113.7:7001", LOCAL)).toContain("bind with --listen 0.0.0.0")
    expect(advertisedNotLocalHint("10.77.0.2:7001", LOCAL)).toBeUndefined()
    expect(advertisedNotLocalHint("kv-0.example:7001", LOCAL)).toBeUndefined()
  })
})

describe("the server's --listen flag", () => {
  const BIN = join(import.meta.dir, "../bin/kvraft.ts")
  const dir = tempDir("kvraft-listen")
  const processes = new ProcessGroup()
  afterAll(async () => {
    await processes.killAll()
    dir.remove()
  })
  const config = async () => {
    const ports = await freeUdpPorts(3)
    const path = join(dir.path, `c${ports[0]}.toml`)
    writeFile(path, `dataDir = "./data"\n[kvraft]\nreplicas = ${JSON.stringify(ports.map((p) => `127.0.0.1:${p}`))}\n`)
    return { path, ports }
  }

  test("a replica advertised on 127.0.0.1 binds 0.0.0.0 at its port with --listen 0.0.0.0", async () => {
    const { path, ports } = await config()
    const replica = processes.start(
      "listen-0",
      ["bun", BIN, "--replica", "0", "--config", path, "--listen", "0.0.0.0"],
      {
        cwd: dir.path,
      },
    )
    await replica.waitForOutput("replica started", 30_000)
    expect(replica.output()).toContain(`listen=0.0.0.0:${ports[0]}`)
    await pollUntil("the wildcard bind", () => wildcardBound(ports[0]!), { timeoutMs: 5_000 })
    await processes.stop("listen-0", 5_000)
  }, 60_000)

  test("mismatches stop the server at start with the reason", async () => {
    const { path, ports } = await config()
    const wrongPort = await runCommand(
      ["bun", BIN, "--replica", "1", "--config", path, "--listen", `0.0.0.0:${ports[0]}`],
      { cwd: dir.path, timeoutMs: 30_000 },
    )
    expect(wrongPort.code).toBe(1)
    expect(wrongPort.stderr).toContain(
      `kvraft replica 1 (advertised 127.0.0.1:${ports[1]}): --listen 0.0.0.0:${ports[0]}: port ${ports[0]} differs`,
    )
    const severalWithOnePort = await runCommand(["bun", BIN, "--config", path, "--listen", `0.0.0.0:${ports[0]}`], {
      cwd: dir.path,
      timeoutMs: 30_000,
    })
    expect(severalWithOnePort.code).toBe(1)
    expect(severalWithOnePort.stderr).toContain("names one port, but this process runs 3 replicas")
    const notMine = await runCommand(["bun", BIN, "--replica", "2", "--config", path, "--listen", "192.0.2.1"], {
      cwd: dir.path,
      timeoutMs: 30_000,
    })
    expect(notMine.code).toBe(1)
    expect(notMine.stderr).toContain("192.0.2.1 is not an address of this host")
  }, 90_000)
})

/** Whether some UDP socket is bound to 0.0.0.0 at `port` (/proc/net/udp lists the local address in hex). */
const wildcardBound = (port: number): boolean => {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0")
  return readFileSync("/proc/net/udp", "utf8").includes(` 00000000:${hexPort} `)
}
