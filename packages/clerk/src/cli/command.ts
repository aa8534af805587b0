/** What every `kv` command shares: the common flags, printing, and running an action with a session. */
import { Effect } from "effect"
import { Flag } from "effect/cli"
import { ExitCode } from "./exitCodes.ts"
import { CliSession, classify } from "./session.ts"

export const common = {
  config: Flag.String("config").pipe(
    Flag.withDescription("cluster configuration file"),
    Flag.withDefault("cluster.toml"),
  ),
  json: Flag.Boolean("json").pipe(Flag.withDescription("print JSON for scripts"), Flag.withDefault(false)),
  timeoutMs: Flag.Int("timeout-ms").pipe(
    Flag.withDescription("give up after this long (the outcome of a write is then unknown)"),
    Flag.withDefault(10_000),
  ),
}
export type Common = { readonly config: string; readonly json: boolean; readonly timeoutMs: number }

export const dataFlags = {
  ...common,
  service: Flag.Literals("service", ["auto", "sharded", "kvraft"]).pipe(
    Flag.withDescription(
      "which service of the config: the sharded cluster (default when it has a controller) or the kvraft group",
    ),
    Flag.withDefault("auto"),
  ),
}

export const print = (flags: Common, human: string, json: unknown) => {
  console.log(flags.json ? JSON.stringify(json) : human)
}

/** Runs one CLI action with a session, turning failures into a message and an exit code. */
export const action =
  <F extends Common>(body: (session: CliSession, flags: F) => Promise<number | undefined>) =>
  (flags: F) =>
    Effect.promise(async () => {
      let session: CliSession | undefined
      try {
        session = await CliSession.open({ config: flags.config, timeoutMs: flags.timeoutMs })
        process.exitCode = (await body(session, flags)) ?? ExitCode.ok
      } catch (error) {
        const failure = classify(error)
        if (flags.json) console.log(JSON.stringify({ ok: false, error: failure.message }))
        else console.error(`kv: ${failure.message}`)
        process.exitCode = failure.code
      } finally {
        await session?.close()
      }
    })
