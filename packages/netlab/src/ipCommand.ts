/**
 * The `ip` command of iproute2, run synchronously: a lab is built and torn down in a handful of
 * short commands, and teardown must also work from an `exit` handler, where nothing can be awaited.
 */

export class NetlabError extends Error {
  override readonly name = "NetlabError"
}

/** Bounds one `ip` call: a wedged kernel call fails the test instead of hanging it. */
const IP_TIMEOUT_MS = 10_000

const decoder = new TextDecoder()

/** Runs `ip args...`; its stdout, or a NetlabError naming the command and what it printed. */
export const ip = (args: readonly string[]): string => {
  const result = Bun.spawnSync(["ip", ...args], { stdout: "pipe", stderr: "pipe", timeout: IP_TIMEOUT_MS })
  if (result.exitCode !== 0) {
    const why = decoder.decode(result.stderr).trim() || `exit ${result.exitCode ?? result.signalCode}`
    throw new NetlabError(`ip ${args.join(" ")}: ${why}`)
  }
  return decoder.decode(result.stdout)
}

/** Like `ip`, for teardown: a failure (the thing is already gone) is not an error. */
export const ipQuiet = (args: readonly string[]): void => {
  Bun.spawnSync(["ip", ...args], { stdout: "ignore", stderr: "ignore", timeout: IP_TIMEOUT_MS })
}

/** The names of every network namespace on this machine (`ip netns list` prints "name (id: n)"). */
export const namespaces = (): string[] =>
  ip(["netns", "list"])
    .split("\n")
    .map((line) => line.trim().split(/\s+/)[0] ?? "")
    .filter((name) => name !== "")

/** Pids of the processes inside namespace `name`. */
export const pidsIn = (name: string): number[] => {
  const result = Bun.spawnSync(["ip", "netns", "pids", name], {
    stdout: "pipe",
    stderr: "ignore",
    timeout: IP_TIMEOUT_MS,
  })
  return decoder
    .decode(result.stdout)
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number)
}
