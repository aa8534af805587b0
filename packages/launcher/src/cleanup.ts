/**
 * Everything this process launched or created that must not outlive it: live child processes
 * and temporary directories. On exit (normal, uncaught error, `process.exit`) every child still
 * running is killed with SIGKILL and every temporary directory removed; that has to be
 * synchronous, which is why it is SIGKILL and not a graceful stop (graceful stops are
 * `stop()`/`stopAll()`, called while there is still time to wait).
 */
import { rmSync } from "node:fs"
import type { Subprocess } from "bun"

const children = new Set<Subprocess>()
const dirs = new Set<string>()
let exitHooked = false
let signalsHooked = false

const hookExit = () => {
  if (exitHooked) return
  exitHooked = true
  process.on("exit", killEverything)
}

export const trackChild = (proc: Subprocess): void => {
  hookExit()
  children.add(proc)
  void proc.exited.then(() => children.delete(proc))
}

export const trackDir = (path: string): void => {
  hookExit()
  dirs.add(path)
}

export const removeDir = (path: string): void => {
  rmSync(path, { recursive: true, force: true })
  dirs.delete(path)
}

/** SIGKILL to every child still running (a frozen one too), then every temporary directory removed. */
export function killEverything(): void {
  for (const proc of children) proc.kill("SIGKILL")
  children.clear()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  dirs.clear()
}

const exitCodes = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const
export type ExitSignal = keyof typeof exitCodes

/**
 * On SIGINT, SIGTERM or SIGHUP: `announce` (if given), everything killed and removed, then exit
 * with 128 + the signal's number. Installed once; a program that stops its children gracefully on
 * a signal (the cluster script) does not call this and handles the signals itself.
 */
export const killEverythingOnSignals = (announce?: (signal: ExitSignal) => void): void => {
  hookExit()
  if (signalsHooked) return
  signalsHooked = true
  for (const signal of Object.keys(exitCodes) as ExitSignal[]) {
    process.on(signal, () => {
      announce?.(signal)
      killEverything()
      process.exit(exitCodes[signal])
    })
  }
}
