/**
 * `kv lock NAME -- command args...`: runs the command while holding the lock, with the fencing
 * token in its environment (KV_LOCK_TOKEN), the lease kept alive meanwhile; releases the lock when
 * the command exits and exits with its code. If the lease is lost while the command runs (the
 * cluster unreachable for a whole TTL, the lease revoked), the command is sent SIGTERM, as another
 * holder may take the lock from then on, and kv exits 7.
 */
import { Effect, Exit, Option, Scope } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import type { LeaseLost } from "../errors.ts"
import { holdLock } from "../locks.ts"
import { action, common } from "./command.ts"
import { ExitCode } from "./exitCodes.ts"
import { CliFailure } from "./session.ts"
import { catchStopSignals } from "./signals.ts"
import { withWaitIndicator } from "./waitIndicator.ts"

/** How long the command gets to exit after SIGTERM before SIGKILL. */
const KILL_AFTER_MS = 10_000

const signalNumbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }

/** 128 + the signal's number, as a shell reports a process that a signal ended. */
const signalExitCode = (signal: string): number => 128 + (signalNumbers[signal] ?? 0)

/** The exit code a shell would report: the child's own, or 128 + the signal that ended it. */
const exitCodeOf = (proc: Bun.Subprocess): number => {
  if (proc.exitCode !== null) return proc.exitCode
  return typeof proc.signalCode === "number" ? 128 + proc.signalCode : signalExitCode(proc.signalCode ?? "")
}

export const lock = Command.make(
  "lock",
  {
    ...common,
    name: Argument.String("name").pipe(Argument.withDescription("the lock's name (its key is locks/NAME)")),
    command: Argument.String("command").pipe(
      Argument.withDescription("after --: the command to run while holding the lock, and its arguments"),
      Argument.variadic(),
    ),
    ttlMs: Flag.Int("ttl-ms").pipe(
      Flag.withDescription(
        "TTL of the lock's lease (default 10000): how long the lock outlives a kv that can no longer renew it",
      ),
      Flag.withDefault(10_000),
    ),
    waitMs: Flag.Int("wait-ms").pipe(
      Flag.withDescription("give up (exit 5) if the lock is not taken within this long; default: wait"),
      Flag.optional,
    ),
  },
  action(async (session, flags) => {
    if (flags.command.length === 0) {
      throw new CliFailure("kv lock NAME -- COMMAND [ARGS...]: give the command to run after --", ExitCode.badInput)
    }
    if (flags.ttlMs < 1_000)
      throw new CliFailure(`--ttl-ms must be 1000 or more, not ${flags.ttlMs}`, ExitCode.badInput)
    const waitMs = Option.getOrUndefined(flags.waitMs)
    if (waitMs !== undefined && waitMs < 0) {
      throw new CliFailure(`--wait-ms must be 0 or more, not ${waitMs}`, ExitCode.badInput)
    }
    const kv = await session.kvraftClient("locks")
    const scope = Scope.makeUnsafe()
    const signals = catchStopSignals()
    try {
      // Ctrl-C or SIGTERM while waiting gives up the wait (and nothing runs).
      const taken = await withWaitIndicator(`the lock ${JSON.stringify(flags.name)}`, () =>
        session.run(
          Scope.provide(scope)(holdLock(kv, flags.name, "", { ttlMs: flags.ttlMs, timeoutMs: waitMs })).pipe(
            Effect.map((held) => ({ held })),
            Effect.raceFirst(Effect.promise(() => signals.received).pipe(Effect.map((signal) => ({ signal })))),
          ),
        ),
      )
      if ("signal" in taken) return signalExitCode(taken.signal)
      const held = taken.held
      let proc: Bun.Subprocess
      try {
        proc = Bun.spawn([...flags.command], {
          stdio: ["inherit", "inherit", "inherit"],
          env: {
            ...process.env,
            KV_LOCK_TOKEN: String(held.token),
            KV_LOCK_NAME: flags.name,
            KV_LOCK_LEASE: String(held.lease),
          },
        })
      } catch (error) {
        throw new CliFailure(
          `cannot run ${JSON.stringify(flags.command[0])}: ${error instanceof Error ? error.message : String(error)}`,
          ExitCode.badInput,
        )
      }
      const lost = session.run(Effect.flip(held.lost))
      const first = await Promise.race([
        proc.exited.then(() => ({ kind: "exited" as const })),
        lost.then((error: LeaseLost) => ({ kind: "lost" as const, error })),
        signals.received.then((signal) => ({ kind: "signal" as const, signal })),
      ])
      if (first.kind === "exited") return exitCodeOf(proc)
      proc.kill(first.kind === "signal" ? first.signal : "SIGTERM")
      const killer = setTimeout(() => proc.kill("SIGKILL"), KILL_AFTER_MS)
      await proc.exited
      clearTimeout(killer)
      if (first.kind === "signal") return exitCodeOf(proc)
      throw new CliFailure(
        `${first.error.message}: the lock ${JSON.stringify(flags.name)} may be held by another now, so ` +
          `${JSON.stringify(flags.command.join(" "))} was sent SIGTERM (it exited with ${exitCodeOf(proc)})`,
        ExitCode.leaseLost,
      )
    } finally {
      signals.dispose()
      // Releases the lock (if still held) and revokes its lease.
      await session.run(Scope.close(scope, Exit.void))
    }
  }),
).pipe(
  Command.withDescription(
    "Run a command while holding lock NAME (waiting while another holds it), its fencing token in KV_LOCK_TOKEN; " +
      "exits with the command's code, or 7 if the lock's lease was lost (the command is then sent SIGTERM)",
  ),
  Command.withExamples([
    {
      command: "kv lock nightly-backup -- ./backup.sh",
      description: "one backup at a time across machines",
    },
    {
      command: `kv lock --wait-ms 1000 report -- sh -c 'echo "token $KV_LOCK_TOKEN"'`,
      description: "give up after 1 s if another holds it (exit 5)",
    },
  ]),
)
