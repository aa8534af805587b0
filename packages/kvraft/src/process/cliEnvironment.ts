import { Effect, FileSystem, Layer, Path, Stdio, Terminal } from "effect"
import { ChildProcessSpawner } from "effect/process"

/**
 * The services effect/cli needs, provided for Bun without @effect/platform-bun (whose releases do
 * not match effect 4.1): real args and output, a plain terminal, and no file system or child
 * processes (our commands need neither from the CLI layer).
 */
export const cliEnvironment: Layer.Layer<
  FileSystem.FileSystem | Path.Path | Terminal.Terminal | ChildProcessSpawner.ChildProcessSpawner | Stdio.Stdio
> = Layer.mergeAll(
  FileSystem.layerNoop({}),
  Path.layer,
  Stdio.layerTest({ args: Effect.sync(() => process.argv.slice(2)) }),
  Layer.succeed(
    Terminal.Terminal,
    Terminal.make({
      columns: Effect.sync(() => process.stdout.columns ?? 100),
      rows: Effect.sync(() => process.stdout.rows ?? 40),
      size: Effect.sync(() => ({ columns: process.stdout.columns ?? 100, rows: process.stdout.rows ?? 40 })),
      isTTY: Effect.sync(() => process.stdout.isTTY === true),
      readInput: Effect.die(new Error("interactive input is not supported")),
      readLine: Effect.die(new Error("interactive input is not supported")),
      display: (text: string) => Effect.sync(() => void process.stdout.write(text)),
    } as never),
  ),
  Layer.succeed(
    ChildProcessSpawner.ChildProcessSpawner,
    ChildProcessSpawner.make(() => Effect.die(new Error("child processes are not supported"))),
  ),
)
