import dgram from "node:dgram"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { RpcNode, type RpcNodeShape, Transport } from "@kv/rpc"
import type { Subprocess } from "bun"
import { Context, Effect, Layer, type Scope } from "effect"

/**
 * Free UDP ports on 127.0.0.1, found by binding port 0 and releasing it. Parallel test files get
 * different ports from the kernel, so they do not collide.
 */
export const freeUdpPorts = async (count: number): Promise<number[]> => {
  const sockets = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<dgram.Socket>((resolve, reject) => {
          const socket = dgram.createSocket("udp4")
          socket.once("error", reject)
          socket.bind(0, "127.0.0.1", () => resolve(socket))
        }),
    ),
  )
  const ports = sockets.map((s) => s.address().port)
  for (const s of sockets) s.close()
  return ports
}

/** A temporary directory removed by `remove()`. */
export const tempDir = (prefix: string): { readonly path: string; remove(): void } => {
  const path = mkdtempSync(join(tmpdir(), `${prefix}-`))
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) }
}

export const writeFile = (path: string, text: string): void => writeFileSync(path, text)

/**
 * Server processes started by a test. Every one is killed by `stopAll()` (call it in a finally),
 * so a failing test leaves nothing running.
 */
export class ProcessGroup {
  private readonly running = new Map<string, Subprocess>()
  readonly logs = new Map<string, string[]>()

  /** Starts `bun <args>` under `name` (replacing a dead one of that name); output is kept for failure reports. */
  start(name: string, args: readonly string[], options: { cwd?: string; env?: Record<string, string> } = {}): void {
    if (this.running.has(name)) throw new Error(`${name} is already running`)
    const proc = Bun.spawn(["bun", ...args], {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdout: "pipe",
      stderr: "pipe",
    })
    const log = this.logs.get(name) ?? []
    this.logs.set(name, log)
    const drain = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder()
      for await (const chunk of stream) log.push(decoder.decode(chunk))
    }
    void drain(proc.stdout)
    void drain(proc.stderr)
    this.running.set(name, proc)
  }

  /** `kill -9`: the process gets no chance to flush or hand anything off. */
  async kill(name: string): Promise<void> {
    const proc = this.running.get(name)
    if (proc === undefined) return
    this.running.delete(name)
    proc.kill("SIGKILL")
    await proc.exited
  }

  /** SIGTERM, and the exit code once it has stopped (SIGKILL after `timeoutMs`). */
  async terminate(name: string, timeoutMs = 10_000): Promise<number | null> {
    const proc = this.running.get(name)
    if (proc === undefined) return null
    this.running.delete(name)
    proc.kill("SIGTERM")
    const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs)
    const code = await proc.exited
    clearTimeout(timer)
    return code
  }

  /** Sends `signal` to a running process: SIGSTOP freezes it (it stays a member, silent), SIGCONT resumes it. */
  signal(name: string, signal: "SIGSTOP" | "SIGCONT"): void {
    this.running.get(name)?.kill(signal)
  }

  isRunning(name: string): boolean {
    return this.running.has(name)
  }

  output(name: string): string {
    return (this.logs.get(name) ?? []).join("")
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.running.keys()].map((name) => this.kill(name)))
  }
}

/** A client RpcNode on an ephemeral UDP port of 127.0.0.1, closed with `scope`. */
export const udpClientNode = (scope: Scope.Scope): Promise<RpcNodeShape> =>
  Effect.runPromise(
    Layer.buildWithScope(RpcNode.layer.pipe(Layer.provide(Transport.layerUdp({ bind: "127.0.0.1:0" }))), scope).pipe(
      Effect.map((context) => Context.get(context, RpcNode)),
    ),
  )
