/**
 * Commits per second and commit latency of a 3-node Raft group: a commit is a propose on the
 * leader until the leader has applied it. Two setups, each at 1 and 64 concurrent proposers:
 *   sim: SimNetwork + memory storage, the three nodes in this process (the shell's own cost);
 *   udp: real UDP on 127.0.0.1 + file storage with fdatasync, each node its own process (the
 *        proposers run inside the leader's process, since a commit is measured there).
 *
 * `bun run bench:raft [--quick] [--only sim|udp] [--concurrency 1,64] [--bytes 100] [--seconds N]
 * [--storage file|memory] [--json FILE]`
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { RpcNode, SimNetwork, Transport } from "@kv/rpc"
import type { Subprocess } from "bun"
import { Effect, Exit, Layer, Scope } from "effect"
import { makeRaftNode, type NodeId, type RaftNodeShape, Storage } from "../src/index.ts"
import { AppliedWaiters, type CommitFigures, cpuSecondsOf, runProposers } from "./measure.ts"

interface Options {
  readonly quick: boolean
  readonly only: "sim" | "udp" | undefined
  readonly concurrency: readonly number[]
  readonly commandBytes: number
  readonly seconds: number
  readonly warmupSeconds: number
  readonly json: string | undefined
  /** Diagnostic: `memory` takes the disk out of the udp setup. */
  readonly storage: "file" | "memory"
}

const argValue = (name: string): string | undefined => {
  const at = process.argv.indexOf(name)
  return at === -1 ? undefined : process.argv[at + 1]
}

const parseOptions = (): Options => {
  const quick = process.argv.includes("--quick")
  const only = argValue("--only")
  if (only !== undefined && only !== "sim" && only !== "udp") throw new Error("--only takes sim or udp")
  return {
    quick,
    only,
    concurrency: (argValue("--concurrency") ?? "1,64").split(",").map(Number),
    commandBytes: Number(argValue("--bytes") ?? 100),
    seconds: Number(argValue("--seconds") ?? (quick ? 2 : 5)),
    warmupSeconds: quick ? 0.5 : 1,
    json: argValue("--json"),
    storage: argValue("--storage") === "memory" ? "memory" : "file",
  }
}

const untilLeader = async (roles: () => Promise<readonly string[]>, timeoutMs = 10_000): Promise<number> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const leader = (await roles()).indexOf("leader")
    if (leader >= 0) return leader
    await Bun.sleep(20)
  }
  throw new Error("no leader elected")
}

// ---------------------------------------------------------------------------------------------
// sim: three nodes in this process

const runSim = async (options: Options): Promise<CommitFigures[]> => {
  const network = new SimNetwork({ seed: 1 })
  const peers: Record<number, string> = { 1: "sim-1", 2: "sim-2", 3: "sim-3" }
  const scope = await Effect.runPromise(Scope.make())
  const waiters = [new AppliedWaiters(), new AppliedWaiters(), new AppliedWaiters()]
  const nodes: RaftNodeShape[] = []
  try {
    const storage = Storage.layerMemory()
    for (let k = 0; k < 3; k++) {
      const layer = RpcNode.layer.pipe(Layer.provide(Transport.layerSim(network, peers[k + 1]!)), Layer.merge(storage))
      const program = Effect.gen(function* () {
        const context = yield* Layer.buildWithScope(layer, scope)
        return yield* makeRaftNode({ id: (k + 1) as NodeId, peers, seed: k + 1, apply: waiters[k]!.onApply }).pipe(
          Effect.provideContext(context),
          Scope.provide(scope),
        )
      })
      nodes.push(await Effect.runPromise(program))
    }
    const results: CommitFigures[] = []
    for (const concurrency of options.concurrency) {
      const leader = await untilLeader(async () => nodes.map((n) => n.status().role))
      const cpuBefore = process.cpuUsage()
      const figures = await runProposers(nodes[leader]!, waiters[leader]!, { ...options, concurrency })
      const cpu = process.cpuUsage(cpuBefore)
      const cpuSeconds = (cpu.user + cpu.system) / 1e6
      results.push(figures)
      cpuOf.set(figures, { process: cpuSeconds / (figures.seconds + options.warmupSeconds) })
      report("sim+memory", figures, [`process ${(cpuSeconds / (figures.seconds + options.warmupSeconds)).toFixed(2)}`])
    }
    return results
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

// ---------------------------------------------------------------------------------------------
// udp: one process per node

type ToNode =
  | { readonly type: "role" }
  | { readonly type: "run"; readonly concurrency: number; readonly options: Options }
type FromNode =
  | { readonly type: "ready" }
  | { readonly type: "role"; readonly role: string }
  | { readonly type: "figures"; readonly figures: CommitFigures }
  | { readonly type: "notLeader" }

/** Child mode: one Raft node over UDP with file storage, driven by the parent over IPC. */
const runNode = async (id: number, peers: Record<number, string>, dir: string, storage: string) => {
  const waiters = new AppliedWaiters()
  const scope = await Effect.runPromise(Scope.make())
  const layer = RpcNode.layer.pipe(
    Layer.provide(Transport.layerUdp({ bind: peers[id]! })),
    Layer.merge(storage === "memory" ? Storage.layerMemory() : Storage.layerFile(dir)),
  )
  const node = await Effect.runPromise(
    Effect.gen(function* () {
      const context = yield* Layer.buildWithScope(layer, scope)
      return yield* makeRaftNode({ id: id as NodeId, peers, apply: waiters.onApply }).pipe(
        Effect.provideContext(context),
        Scope.provide(scope),
      )
    }),
  )
  const send = (message: FromNode) => process.send?.(message)
  process.on("message", async (message: ToNode) => {
    if (message.type === "role") send({ type: "role", role: node.status().role })
    else if (node.status().role !== "leader") send({ type: "notLeader" })
    else {
      const figures = await runProposers(node, waiters, { ...message.options, concurrency: message.concurrency })
      send({ type: "figures", figures })
    }
  })
  process.on("disconnect", () => {
    void Effect.runPromise(Scope.close(scope, Exit.void)).then(() => process.exit(0))
  })
  send({ type: "ready" })
}

class NodeProcess {
  private readonly replies: ((message: FromNode) => void)[] = []
  readonly proc: Subprocess

  constructor(id: number, peers: Record<number, string>, dir: string, storage: string) {
    const args = ["--node", String(id), "--peers", JSON.stringify(peers), "--dir", dir, "--storage", storage]
    // KV_BENCH_PROFILE=<dir> writes each node's CPU profile (markdown) there when it exits.
    const profileDir = process.env.KV_BENCH_PROFILE
    const profile =
      profileDir === undefined ? [] : ["--cpu-prof-md", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=node-${id}.md`]
    this.proc = Bun.spawn(["bun", ...profile, import.meta.path, ...args], {
      stdout: "inherit",
      stderr: "inherit",
      ipc: (message: FromNode) => this.replies.shift()?.(message),
    })
  }

  /** The next message from the node (the protocol is strictly request → reply). */
  next(): Promise<FromNode> {
    return new Promise((resolve) => this.replies.push(resolve))
  }

  async ask(message: ToNode): Promise<FromNode> {
    const reply = this.next()
    this.proc.send(message)
    return reply
  }
}

const freePorts = async (count: number): Promise<number[]> => {
  const sockets = await Promise.all(
    Array.from({ length: count }, () => Bun.udpSocket({ hostname: "127.0.0.1", port: 0 })),
  )
  const ports = sockets.map((s) => s.port)
  for (const s of sockets) s.close()
  return ports
}

const runUdp = async (options: Options): Promise<CommitFigures[]> => {
  const dir = mkdtempSync(join(tmpdir(), "kv-bench-raft-"))
  const ports = await freePorts(3)
  const peers: Record<number, string> = Object.fromEntries(ports.map((p, k) => [k + 1, `127.0.0.1:${p}`]))
  const nodes = [1, 2, 3].map((id) => new NodeProcess(id, peers, dir, options.storage))
  const stop = async () => {
    // Closing the IPC channel lets each node shut down cleanly (and write a profile if asked).
    for (const n of nodes) n.proc.disconnect()
    const timer = setTimeout(() => {
      for (const n of nodes) n.proc.kill("SIGKILL")
    }, 3_000)
    await Promise.all(nodes.map((n) => n.proc.exited))
    clearTimeout(timer)
    rmSync(dir, { recursive: true, force: true })
  }
  process.once("SIGINT", () => {
    for (const n of nodes) n.proc.kill("SIGKILL")
    rmSync(dir, { recursive: true, force: true })
    process.exit(130)
  })
  try {
    await Promise.all(nodes.map((n) => n.next()))
    const results: CommitFigures[] = []
    for (const concurrency of options.concurrency) {
      let figures: CommitFigures | undefined
      for (let attempt = 0; attempt < 3 && figures === undefined; attempt++) {
        const leader = await untilLeader(async () =>
          (await Promise.all(nodes.map((n) => n.ask({ type: "role" })))).map((r) => (r.type === "role" ? r.role : "")),
        )
        const cpuBefore = nodes.map((n) => cpuSecondsOf(n.proc.pid))
        const reply = await nodes[leader]!.ask({ type: "run", concurrency, options })
        const cpu = nodes.map((n, k) => cpuSecondsOf(n.proc.pid) - cpuBefore[k]!)
        if (reply.type !== "figures") continue
        figures = reply.figures
        const wall = figures.seconds + options.warmupSeconds
        const cores = cpu.map((c) => c / wall)
        report(
          `udp+${options.storage} (3 processes)`,
          figures,
          cores.map((c, k) => `${k === leader ? "leader" : "follower"} ${c.toFixed(2)}`),
        )
        cpuOf.set(figures, { leader: cores[leader]!, followers: cores.filter((_, k) => k !== leader) })
      }
      if (figures === undefined) throw new Error(`no run at concurrency ${concurrency}: leadership kept moving`)
      results.push(figures)
    }
    return results
  } finally {
    await stop()
  }
}

// ---------------------------------------------------------------------------------------------

/** CPU cores per process over each run, for the JSON output. */
const cpuOf = new Map<CommitFigures, Record<string, number | number[]>>()

const report = (setup: string, f: CommitFigures, cpu: readonly string[]) => {
  console.log(
    `${setup.padEnd(24)} concurrency ${String(f.concurrency).padStart(3)}: ${String(f.commitsPerSecond).padStart(7)} commits/s  p50 ${f.p50Ms.toFixed(3)} ms  p99 ${f.p99Ms.toFixed(3)} ms  cpu(cores) ${cpu.join(", ")}${f.refused > 0 ? `  refused ${f.refused}` : ""}`,
  )
}

const main = async () => {
  const options = parseOptions()
  console.log(
    `Raft commit benchmark: 3 nodes, ${options.commandBytes} B commands, ${options.seconds} s per run after ${options.warmupSeconds} s warm-up`,
  )
  const results: Record<string, CommitFigures[]> = {}
  if (options.only !== "udp") results.sim = await runSim(options)
  if (options.only !== "sim") results.udp = await runUdp(options)
  const withCpu = Object.fromEntries(
    Object.entries(results).map(([setup, list]) => [setup, list.map((f) => ({ ...f, cpuCores: cpuOf.get(f) }))]),
  )
  if (options.json !== undefined) writeFileSync(options.json, `${JSON.stringify(withCpu, null, 2)}\n`)
  process.exit(0)
}

const USAGE = `usage: bun run bench:raft [--quick] [--only sim|udp] [--concurrency 1,64] [--bytes 100] [--seconds N]
                          [--storage file|memory] [--json FILE]
Commits per second and commit latency of a 3-node Raft group (a commit: propose on the leader until
the leader has applied it), at each concurrency:
  sim   three nodes in this process over a simulated network with memory storage (the shell's cost)
  udp   three processes over UDP on 127.0.0.1 with file storage and fdatasync (--storage memory takes
        the disk out, as a diagnostic)
  --seconds N   measured seconds per cell (default 5; 2 with --quick)
  --json FILE   also write the figures, with each process's CPU, to FILE`

const nodeId = argValue("--node")
if (process.argv.includes("--help") || process.argv.includes("-h")) {
  console.log(USAGE)
} else if (nodeId !== undefined) {
  await runNode(
    Number(nodeId),
    JSON.parse(argValue("--peers") ?? "{}"),
    argValue("--dir") ?? tmpdir(),
    argValue("--storage") ?? "file",
  )
} else {
  await main()
}
