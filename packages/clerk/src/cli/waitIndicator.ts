/**
 * Shows, on stderr, that the CLI is waiting (typically for a leader to be elected) when an
 * operation takes longer than `afterMs`: a spinner on a terminal, one line otherwise.
 */
export const withWaitIndicator = async <A>(what: string, run: () => Promise<A>, afterMs = 500): Promise<A> => {
  const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]
  let frame = 0
  let spinner: ReturnType<typeof setInterval> | undefined
  const tty = process.stderr.isTTY === true
  const start = setTimeout(() => {
    if (!tty) {
      process.stderr.write(`waiting for ${what}...\n`)
      return
    }
    spinner = setInterval(() => {
      process.stderr.write(`\r${frames[frame++ % frames.length]} waiting for ${what}...`)
    }, 80)
  }, afterMs)
  try {
    return await run()
  } finally {
    clearTimeout(start)
    if (spinner !== undefined) {
      clearInterval(spinner)
      process.stderr.write("\r\x1b[K")
    }
  }
}
