/** Proves that every benchmark command answers --help with its usage and exit code 0, running nothing. */
import { expect, test } from "bun:test"
import { join } from "node:path"

const root = join(import.meta.dir, "..", "..")

for (const script of ["bench", "bench:raft", "bench:rpc", "bench:restart"]) {
  test(`bun run ${script} --help prints its usage and exits 0`, async () => {
    const proc = Bun.spawn(["bun", "run", script, "--help"], { cwd: root, stdout: "pipe", stderr: "pipe" })
    const killer = setTimeout(() => proc.kill("SIGKILL"), 15_000)
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited])
    clearTimeout(killer)
    expect(code).toBe(0)
    expect(out).toContain(`usage: bun run ${script}`)
  }, 20_000)
}
