/**
 * `bun run build`: the servers and the `kv` CLI as single-file executables (Bun inside, nothing
 * else to install), in `dist/bin` unless `--outdir` says where. `--target` cross-compiles, e.g.
 * `--target bun-linux-arm64`. Prints each file it wrote.
 *
 *   dist/bin/kv               the CLI (bun run kv)
 *   dist/bin/kv-kvraft        a kvraft replica (bun run kvraft)
 *   dist/bin/kv-shardctrler   a shard-controller replica (bun run shardctrler)
 *   dist/bin/kv-shardkv       a shard-group replica (bun run shardkv)
 */
import { mkdirSync, statSync } from "node:fs"
import { join, resolve } from "node:path"
import { parseArgs } from "node:util"

const root = resolve(import.meta.dir, "..")
export const executables: Readonly<Record<string, string>> = {
  kv: "packages/clerk/bin/kv.ts",
  "kv-kvraft": "packages/kvraft/bin/kvraft.ts",
  "kv-shardctrler": "packages/shardctrler/bin/shardctrler.ts",
  "kv-shardkv": "packages/shardkv/bin/shardkv.ts",
}

const usage = "usage: bun run build [--outdir DIR] [--target bun-linux-x64|bun-linux-arm64|...] [NAME...]"

const main = async () => {
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse()
  } catch (error) {
    console.error(`build: ${(error as Error).message}\n${usage}`)
    process.exit(2)
  }
  if (parsed.values.help === true) {
    console.log(`${usage}\n\nbuilds: ${Object.keys(executables).join(", ")}`)
    return
  }
  const names = parsed.positionals.length > 0 ? parsed.positionals : Object.keys(executables)
  const unknown = names.filter((n) => executables[n] === undefined)
  if (unknown.length > 0) {
    console.error(`build: no executable named ${unknown.join(", ")} (known: ${Object.keys(executables).join(", ")})`)
    process.exit(2)
  }
  const outdir = resolve(parsed.values.outdir ?? join(root, "dist/bin"))
  mkdirSync(outdir, { recursive: true })
  for (const name of names) {
    const outfile = join(outdir, name)
    // --bytecode: the executable carries its modules compiled, so a replica starts in ≈0.1 s of CPU
    // instead of ≈0.2 s parsing them (≈0.5 s from source), see BENCHMARKS.md "restart to serving".
    const args = [
      "bun",
      "build",
      "--compile",
      "--bytecode",
      "--minify-syntax",
      join(root, executables[name]!),
      "--outfile",
      outfile,
    ]
    if (parsed.values.target !== undefined) args.push("--target", parsed.values.target)
    const child = Bun.spawn(args, { cwd: root, stdout: "pipe", stderr: "pipe" })
    const [code, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()])
    if (code !== 0) {
      console.error(`build: ${name} failed (exit ${code})\n${stderr}`)
      process.exit(1)
    }
    console.log(`${outfile}  ${(statSync(outfile).size / 2 ** 20).toFixed(0)} MiB`)
  }
}

const parse = () =>
  parseArgs({
    args: process.argv.slice(2),
    options: { outdir: { type: "string" }, target: { type: "string" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    strict: true,
  })

if (import.meta.main) await main()
