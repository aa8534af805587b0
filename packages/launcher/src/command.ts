import { Launched, type LaunchOptions } from "./launched.ts"

export interface CommandResult {
  readonly stdout: string
  readonly stderr: string
  readonly code: number
}

/**
 * Runs a command to its end (a CLI call) and returns what it printed, trimmed, with its exit code.
 * Killed, and an error thrown with its output, if it has not finished within `timeoutMs`.
 */
export const runCommand = async (
  command: readonly string[],
  options: Omit<LaunchOptions, "logFile" | "ipc"> & { readonly timeoutMs: number },
): Promise<CommandResult> => {
  const { timeoutMs, ...launch } = options
  const launched = new Launched(command.join(" "), command, { tailChars: 4 * 1024 * 1024, ...launch })
  let timer: Timer | undefined
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs)
  })
  const first = await Promise.race([launched.exited, timedOut])
  clearTimeout(timer)
  if (first === "timeout") {
    await launched.kill()
    throw new Error(`\`${command.join(" ")}\` did not finish within ${timeoutMs} ms; its output:\n${launched.output()}`)
  }
  return { stdout: launched.output("stdout").trim(), stderr: launched.output("stderr").trim(), code: first }
}
