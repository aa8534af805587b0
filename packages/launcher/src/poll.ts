/**
 * Polls `check` every `intervalMs` until it returns a value other than `undefined` or `false`, and
 * returns that value; fails after `timeoutMs` naming `what`. An error thrown by `check` counts as
 * "not yet" (a server still starting refuses connections) and is named in the timeout message,
 * unless `stopOn` says it is final.
 */
export const pollUntil = async <A>(
  what: string,
  check: () => Promise<A | undefined | false> | A | undefined | false,
  options: {
    readonly timeoutMs: number
    readonly intervalMs?: number
    readonly stopOn?: (error: unknown) => boolean
  },
): Promise<A> => {
  const deadline = Date.now() + options.timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined && value !== false) return value
    } catch (error) {
      if (options.stopOn?.(error)) throw error
      lastError = error
    }
    if (Date.now() >= deadline) {
      const why =
        lastError === undefined
          ? ""
          : ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}${why}`)
    }
    await Bun.sleep(Math.min(options.intervalMs ?? 50, Math.max(1, deadline - Date.now())))
  }
}
