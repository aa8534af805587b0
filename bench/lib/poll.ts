/**
 * Polls `probe` every `pollMs` until it returns a value (a probe that throws counts as none yet), or
 * throws naming `what` after `timeoutMs`; the value and the ms it took.
 */
export const timeUntil = async <A>(
  what: string,
  probe: () => Promise<A | undefined>,
  timeoutMs: number,
  pollMs = 10,
): Promise<{ value: A; ms: number }> => {
  const started = performance.now()
  while (performance.now() - started < timeoutMs) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return { value, ms: performance.now() - started }
    await Bun.sleep(pollMs)
  }
  throw new Error(`no ${what} within ${timeoutMs} ms`)
}
