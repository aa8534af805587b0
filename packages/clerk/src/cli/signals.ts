/** Ctrl-C and SIGTERM for the commands that run until stopped (`kv watch`, `kv lock`, `kv lease keepalive --forever`). */

export type StopSignal = "SIGINT" | "SIGTERM"

export interface StopSignals {
  /** Resolves with the first SIGINT or SIGTERM received. */
  readonly received: Promise<StopSignal>
  /** Gives both signals back to their default handling. */
  dispose(): void
}

/** Catches SIGINT and SIGTERM (instead of dying on them) until disposed. */
export const catchStopSignals = (): StopSignals => {
  let handlers: [StopSignal, () => void][] = []
  const received = new Promise<StopSignal>((resolve) => {
    handlers = (["SIGINT", "SIGTERM"] as const).map((signal) => [signal, () => resolve(signal)])
  })
  for (const [signal, handler] of handlers) process.on(signal, handler)
  return {
    received,
    dispose: () => {
      for (const [signal, handler] of handlers) process.off(signal, handler)
    },
  }
}
