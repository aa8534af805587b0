/**
 * Proves that `--metrics-host` decides where /metrics, /livez and /readyz are served: by default
 * on 127.0.0.1 alone (the listening socket's address in /proc/net/tcp is 127.0.0.1), with
 * `--metrics-host 0.0.0.0` on every interface (what a container needs for Kubernetes probes and a
 * Prometheus elsewhere), and a host name instead of an IP address stops the server at start with a
 * message saying what to give.
 */
import { describe, expect, test } from "bun:test"
import { readFileSync } from "node:fs"
import { freeUdpPorts, pollUntil } from "@kv/testkit"
import { kvProcesses } from "./support/kvProcesses.ts"

const fixture = kvProcesses("kvraft-metrics-host")

/** The local addresses (hex, as /proc/net/tcp writes them) of sockets listening on `port`. */
const listeningOn = (port: number): string[] => {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0")
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[3] === "0A" && fields[1]?.endsWith(`:${hexPort}`))
    .map((fields) => fields[1]!.split(":")[0]!)
}

const ready = async (port: number): Promise<boolean> => {
  const response = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined)
  return response?.status === 200
}

describe("where the metrics endpoint listens", () => {
  test("127.0.0.1 by default, every interface with --metrics-host 0.0.0.0; readyz once a leader is known", async () => {
    const ports = await freeUdpPorts(3)
    const { config } = await fixture.group(3)
    fixture.start(config, 0, { args: ["--metrics-port", String(ports[0])] })
    fixture.start(config, 1, { args: ["--metrics-port", String(ports[1]), "--metrics-host", "0.0.0.0"] })
    fixture.start(config, 2)
    for (const port of [ports[0]!, ports[1]!]) {
      await pollUntil(`readyz on ${port}`, () => ready(port), { timeoutMs: 30_000 })
    }
    expect(listeningOn(ports[0]!)).toEqual(["0100007F"])
    expect(listeningOn(ports[1]!)).toEqual(["00000000"])
    const metrics = await (await fetch(`http://127.0.0.1:${ports[1]}/metrics`)).text()
    expect(metrics).toContain("kv_raft_term")
  }, 60_000)

  test("a host name for --metrics-host stops the server at start, saying to give an IP address", async () => {
    const [port] = await freeUdpPorts(1)
    const { config } = await fixture.group(1, "", "named.toml")
    const launched = fixture.start(config, 0, {
      name: "named",
      args: ["--metrics-port", String(port), "--metrics-host", "localhost"],
    })
    expect(await launched.exited).toBe(1)
    expect(fixture.processes.output("named")).toContain("--metrics-host localhost: give an IP address")
  }, 30_000)
})
