/**
 * `kv watch KEY | --prefix P`: prints the changes as they come, one line each (or one JSON object
 * per line), until Ctrl-C or SIGTERM (exit 0) or until the servers no longer keep the events it
 * needs (exit 6, with the compact revision in the message).
 */
import type { WatchEvent, WatchItem, WatchOptions, WatchTarget } from "@kv/kvraft"
import { Deferred, Effect, Exit, Option, Stream } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { action, dataFlags } from "./command.ts"
import { ExitCode } from "./exitCodes.ts"
import { CliFailure } from "./session.ts"
import { catchStopSignals } from "./signals.ts"

/** `put "k" = "v" (revision 12, version 3)`, `delete "k" (revision 13)`; a sharded event names its shard. */
export const renderEvent = (event: WatchEvent): string => {
  const shard = event.shard === undefined ? "" : `, shard ${event.shard}`
  return event.type === "put"
    ? `put ${JSON.stringify(event.key)} = ${JSON.stringify(event.value ?? "")} (revision ${event.modRevision}, version ${event.version}${shard})`
    : `delete ${JSON.stringify(event.key)} (revision ${event.modRevision}${shard})`
}

const renderItem = (item: WatchItem, json: boolean): string => {
  if (json) return JSON.stringify(item)
  if (item.type !== "progress") return renderEvent(item)
  return `progress: every change up to revision ${item.revision}${item.shard === undefined ? "" : ` of shard ${item.shard}`}`
}

const targetOf = (key: Option.Option<string>, prefix: Option.Option<string>): WatchTarget => {
  if (Option.isSome(key) && Option.isSome(prefix)) {
    throw new CliFailure("give a KEY or --prefix P, not both", ExitCode.badInput)
  }
  if (Option.isSome(key)) return key.value
  if (Option.isSome(prefix)) return { prefix: prefix.value }
  throw new CliFailure("watch what? give a KEY or --prefix P (--prefix '' watches every key)", ExitCode.badInput)
}

export const watch = Command.make(
  "watch",
  {
    ...dataFlags,
    key: Argument.String("key").pipe(Argument.withDescription("the key to watch"), Argument.optional),
    prefix: Flag.String("prefix").pipe(Flag.withDescription("watch every key starting with P instead"), Flag.optional),
    fromRevision: Flag.Int("from-revision").pipe(
      Flag.withDescription(
        "start with the changes at revision N (on the sharded service, of each shard); default: from now",
      ),
      Flag.optional,
    ),
    progress: Flag.Boolean("progress").pipe(
      Flag.withDescription("also print progress lines: every change up to revision N has been printed"),
      Flag.withDefault(false),
    ),
  },
  action(async (session, flags) => {
    const target = targetOf(flags.key, flags.prefix)
    const fromRevision = Option.getOrUndefined(flags.fromRevision)
    if (fromRevision !== undefined && fromRevision < 0) {
      throw new CliFailure(`--from-revision must be 0 or more, not ${fromRevision}`, ExitCode.badInput)
    }
    const kv = await session.dataClient(flags.service)
    const options: WatchOptions & { readonly progress: true } = { fromRevision, progress: true }
    const stop = Deferred.makeUnsafe<void>()
    const signals = catchStopSignals()
    void signals.received.then(() => Deferred.doneUnsafe(stop, Exit.void))
    try {
      await session.run(
        kv.watch(target, options).pipe(
          Stream.filter((item) => flags.progress || item.type !== "progress"),
          Stream.interruptWhen(Deferred.await(stop)),
          Stream.runForEach((item) => Effect.sync(() => console.log(renderItem(item, flags.json)))),
        ),
      )
    } finally {
      signals.dispose()
    }
    return ExitCode.ok
  }),
).pipe(
  Command.withDescription(
    "Print the changes of a key (or of every key under --prefix) as they happen, one line each, until Ctrl-C; " +
      "exit 6 if the servers no longer keep the changes asked for",
  ),
  Command.withExamples([
    { command: "kv watch config/mode", description: "every change of one key from now on" },
    { command: "kv watch --prefix jobs/ --from-revision 120 --json", description: "from revision 120, as JSON lines" },
  ]),
)
