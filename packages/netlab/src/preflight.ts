/**
 * What a network lab needs from the machine, checked before anything is created, so a test that
 * cannot run fails with what to install instead of being skipped or failing halfway.
 */

/** Why no lab can be built here, or undefined when one can. */
export const netlabProblem = (): string | undefined => {
  if (process.getuid?.() !== 0) {
    return "network namespaces need root: run this test as root (CI does), or in a container started with --privileged"
  }
  if (Bun.which("ip") === null) {
    return "the `ip` command is missing: install iproute2 (apt-get install -y iproute2; .ci/run does this)"
  }
  return undefined
}

/** Throws the reason no lab can be built here. */
export const requireNetlab = (): void => {
  const problem = netlabProblem()
  if (problem !== undefined) throw new Error(`@kv/netlab: ${problem}`)
}
