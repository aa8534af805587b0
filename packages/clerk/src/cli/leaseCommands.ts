/**
 * `kv lease grant|keepalive|revoke|list|show`: leases of the kvraft service (the sharded service
 * has none). Keys are put on a lease with `kv put KEY VALUE --lease ID --service kvraft`.
 */
import type { LeaseStatus } from "@kv/kvraft"
import { Effect, Exit, Scope } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { keepExisting } from "../leaseKeeper.ts"
import { action, common, print } from "./command.ts"
import { ExitCode } from "./exitCodes.ts"
import { CliFailure } from "./session.ts"
import { catchStopSignals } from "./signals.ts"
import { renderTable } from "./table.ts"
import { withWaitIndicator } from "./waitIndicator.ts"

const leaseId = Argument.Int("id").pipe(Argument.withDescription("the lease's id (from kv lease grant)"))

const positive = (name: string, n: number) => {
  if (n < 1) throw new CliFailure(`${name} must be 1 or more, not ${n}`, ExitCode.badInput)
  return n
}

const grant = Command.make(
  "grant",
  {
    ...common,
    ttlMs: Argument.Int("ttl-ms").pipe(Argument.withDescription("time to live, in ms (1,000 to 86,400,000)")),
  },
  action(async (session, flags) => {
    const ttlMs = flags.ttlMs
    if (ttlMs < 1_000 || ttlMs > 86_400_000) {
      throw new CliFailure(`TTL_MS must be from 1000 (1 s) to 86400000 (1 day), not ${ttlMs}`, ExitCode.badInput)
    }
    const kv = await session.kvraftClient("leases")
    const granted = await withWaitIndicator("a leader", () => session.run(kv.leases.grant(ttlMs)))
    print(flags, String(granted.lease), { ok: true, lease: granted.lease, ttlMs: granted.ttlMs })
    return ExitCode.ok
  }),
).pipe(
  Command.withDescription(
    "Grant a lease of TTL_MS and print its id; keys put with --lease ID are deleted when it ends (renew it with keepalive)",
  ),
  Command.withExamples([
    { command: "kv lease grant 10000", description: "a 10 s lease: prints its id" },
    { command: "kv put --service kvraft workers/w1 up --lease 7", description: "a key that lives as long as lease 7" },
  ]),
)

const keepalive = Command.make(
  "keepalive",
  {
    ...common,
    id: leaseId,
    forever: Flag.Boolean("forever").pipe(
      Flag.withDescription(
        "keep renewing (every third of the TTL) until Ctrl-C or SIGTERM; exit 7 if the lease is lost",
      ),
      Flag.withDefault(false),
    ),
  },
  action(async (session, flags) => {
    const id = positive("ID", flags.id)
    const kv = await session.kvraftClient("leases")
    if (!flags.forever) {
      const renewed = await withWaitIndicator("a leader", () => session.run(kv.leases.keepAlive(id)))
      print(flags, `lease ${id} renewed: ${renewed.ttlMs} ms left`, { ok: true, lease: id, ttlMs: renewed.ttlMs })
      return ExitCode.ok
    }
    const scope = Scope.makeUnsafe()
    const signals = catchStopSignals()
    try {
      const kept = await session.run(Scope.provide(scope)(keepExisting(kv.leases, id)))
      if (flags.json) console.log(JSON.stringify({ ok: true, lease: id, ttlMs: kept.ttlMs, keeping: true }))
      else console.error(`keeping lease ${id} alive (TTL ${kept.ttlMs} ms) until Ctrl-C`)
      const outcome = await Promise.race([signals.received.then(() => undefined), session.run(Effect.flip(kept.lost))])
      if (outcome !== undefined) throw outcome
      // Stopped: the lease is left to run out its TTL (revoke it to end it now).
      return ExitCode.ok
    } finally {
      signals.dispose()
      await session.run(Scope.close(scope, Exit.void))
    }
  }),
).pipe(
  Command.withDescription(
    "Renew a lease to its full TTL, once; with --forever keep renewing until Ctrl-C (the lease then runs out its TTL)",
  ),
)

const revoke = Command.make(
  "revoke",
  { ...common, id: leaseId },
  action(async (session, flags) => {
    const id = positive("ID", flags.id)
    const kv = await session.kvraftClient("leases")
    await withWaitIndicator("a leader", () => session.run(kv.leases.revoke(id)))
    print(flags, `lease ${id} revoked: its keys are deleted`, { ok: true, lease: id })
    return ExitCode.ok
  }),
).pipe(Command.withDescription("End a lease now and delete its keys (exit 1 if it had already ended)"))

const statusJson = (status: LeaseStatus) => ({
  lease: status.lease,
  ttlMs: status.ttlMs,
  remainingMs: status.remainingMs,
})

const list = Command.make(
  "list",
  common,
  action(async (session, flags) => {
    const kv = await session.kvraftClient("leases")
    const leases = await withWaitIndicator("a leader", () => session.run(kv.leases.list()))
    const human =
      leases.length === 0
        ? "no leases"
        : renderTable(
            ["LEASE", "TTL_MS", "REMAINING_MS"],
            leases.map((l) => [String(l.lease), String(l.ttlMs), String(l.remainingMs)]),
          )
    print(flags, human, { ok: true, leases: leases.map(statusJson) })
    return ExitCode.ok
  }),
).pipe(Command.withDescription("Every lease: id, TTL and time left (by the leader's reckoning)"))

const show = Command.make(
  "show",
  { ...common, id: leaseId },
  action(async (session, flags) => {
    const id = positive("ID", flags.id)
    const kv = await session.kvraftClient("leases")
    const status = await withWaitIndicator("a leader", () => session.run(kv.leases.timeToLive(id)))
    if (status === undefined) {
      if (flags.json) console.log(JSON.stringify({ ok: true, lease: id, found: false }))
      else console.error(`kv: lease ${id} not found (revoked, expired or never granted)`)
      return ExitCode.notFound
    }
    const keys =
      status.keys.length === 0 ? "keys         (none)" : `keys         ${status.keys.join("\n             ")}`
    print(
      flags,
      [`lease        ${id}`, `ttl          ${status.ttlMs} ms`, `remaining    ${status.remainingMs} ms`, keys].join(
        "\n",
      ),
      { ok: true, found: true, ...statusJson(status), keys: status.keys },
    )
    return ExitCode.ok
  }),
).pipe(Command.withDescription("A lease's TTL, time left (never less than the truth) and keys; exit 1 if it has ended"))

export const lease = Command.make("lease").pipe(
  Command.withDescription("Leases of the kvraft service: keys put with --lease ID are deleted when the lease ends"),
  Command.withSubcommands([grant, keepalive, revoke, list, show]),
)
