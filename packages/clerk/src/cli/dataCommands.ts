/**
 * The `kv` commands on keys: get (--meta), put and delete (plain or conditional), append, cas,
 * txn and list. A condition that does not hold exits 5 and shows the key's current entry.
 */
import type { CasResult, KvListEntry, KvWriteCondition, TxnResult } from "@kv/kvraft"
import { Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { action, type Common, dataFlags, print } from "./command.ts"
import { describeEntry, entryJson, renderEntry } from "./entryText.ts"
import { ExitCode } from "./exitCodes.ts"
import { CliFailure } from "./session.ts"
import { parseTxn } from "./txnInput.ts"
import { withWaitIndicator } from "./waitIndicator.ts"

const key = Argument.String("key").pipe(Argument.withDescription("the key"))
const value = Argument.String("value").pipe(Argument.withDescription("the value"))

export const get = Command.make(
  "get",
  {
    ...dataFlags,
    key,
    meta: Flag.Boolean("meta").pipe(
      Flag.withDescription("also print the key's version, modRevision and createRevision"),
      Flag.withDefault(false),
    ),
  },
  action(async (session, flags) => {
    const kv = await session.dataClient(flags.service)
    if (!flags.meta) {
      const v = await withWaitIndicator("a leader", () => session.run(kv.get(flags.key)))
      print(flags, v, { ok: true, key: flags.key, value: v, found: v !== "" })
      return v === "" ? ExitCode.notFound : ExitCode.ok
    }
    const entry = await withWaitIndicator("a leader", () => session.run(kv.getEntry(flags.key)))
    if (entry === undefined) {
      if (flags.json) console.log(JSON.stringify({ ok: true, key: flags.key, found: false }))
      else console.error(`kv: ${describeEntry(flags.key, undefined)}`)
      return ExitCode.notFound
    }
    print(flags, renderEntry(entry), { ok: true, key: flags.key, found: true, ...entryJson(entry) })
    return ExitCode.ok
  }),
).pipe(
  Command.withDescription(
    "Print the value of a key (exit code 1 when it is absent); --meta adds its version and revisions",
  ),
)

const conditionFlags = {
  ifVersion: Flag.Int("if-version").pipe(
    Flag.withDescription("only if the key's version is N (0: the key is absent)"),
    Flag.optional,
  ),
  ifModRevision: Flag.Int("if-mod-revision").pipe(
    Flag.withDescription("only if the key's last write was at revision N (0: the key is absent)"),
    Flag.optional,
  ),
  ifValue: Flag.String("if-value").pipe(
    Flag.withDescription("only if the key exists and holds exactly this value"),
    Flag.optional,
  ),
}
type ConditionFlags = {
  readonly ifVersion: Option.Option<number>
  readonly ifModRevision: Option.Option<number>
  readonly ifValue: Option.Option<string>
  readonly ifAbsent?: boolean
}

/** The one condition the flags give, undefined for none; two or more is bad input. */
const conditionOf = (flags: ConditionFlags): KvWriteCondition | undefined => {
  const given: KvWriteCondition[] = []
  const revision = (name: string, n: number) => {
    if (n < 0) throw new CliFailure(`--${name} must be 0 or more, not ${n}`, ExitCode.badInput)
    return n
  }
  if (Option.isSome(flags.ifVersion)) given.push({ ifVersion: revision("if-version", flags.ifVersion.value) })
  if (Option.isSome(flags.ifModRevision))
    given.push({ ifModRevision: revision("if-mod-revision", flags.ifModRevision.value) })
  if (Option.isSome(flags.ifValue)) given.push({ ifValue: flags.ifValue.value })
  if (flags.ifAbsent === true) given.push({ ifAbsent: true })
  if (given.length > 1) {
    throw new CliFailure(
      "give at most one condition (--if-version, --if-mod-revision, --if-value, --if-absent)",
      ExitCode.badInput,
    )
  }
  return given[0]
}

/** A conditional write's outcome: OK and its revision, or exit 5 with the key's current entry. */
const reportCas = (flags: Common, k: string, result: CasResult): number => {
  if (result.applied) {
    print(flags, `OK (revision ${result.revision})`, { ok: true, applied: true, revision: result.revision })
    return ExitCode.ok
  }
  const message = `not applied: ${describeEntry(k, result.entry)}`
  if (flags.json) {
    console.log(
      JSON.stringify({
        ok: false,
        applied: false,
        error: message,
        revision: result.revision,
        entry: entryJson(result.entry),
      }),
    )
  } else console.error(`kv: ${message}`)
  return ExitCode.notApplied
}

export const put = Command.make(
  "put",
  {
    ...dataFlags,
    key,
    value,
    ...conditionFlags,
    ifAbsent: Flag.Boolean("if-absent").pipe(
      Flag.withDescription("only if the key does not exist (create it)"),
      Flag.withDefault(false),
    ),
    lease: Flag.Int("lease").pipe(
      Flag.withDescription("attach the key to lease ID (kv lease grant): deleted when the lease ends (kvraft only)"),
      Flag.optional,
    ),
  },
  action(async (session, flags) => {
    const condition = conditionOf(flags)
    if (Option.isSome(flags.lease)) {
      const lease = flags.lease.value
      if (lease < 1) throw new CliFailure(`--lease must be a lease id (1 or more), not ${lease}`, ExitCode.badInput)
      const kv = await session.kvraftClient("leases", flags.service)
      if (condition === undefined) {
        await withWaitIndicator("a leader", () => session.run(kv.leases.put(flags.key, flags.value, lease)))
        print(flags, "OK", { ok: true })
        return ExitCode.ok
      }
      const result = await withWaitIndicator("a leader", () =>
        session.run(kv.leases.putIf(flags.key, flags.value, condition, lease)),
      )
      return reportCas(flags, flags.key, result)
    }
    const kv = await session.dataClient(flags.service)
    if (condition === undefined) {
      await withWaitIndicator("a leader", () => session.run(kv.put(flags.key, flags.value)))
      print(flags, "OK", { ok: true })
      return ExitCode.ok
    }
    const result = await withWaitIndicator("a leader", () => session.run(kv.putIf(flags.key, flags.value, condition)))
    return reportCas(flags, flags.key, result)
  }),
).pipe(
  Command.withDescription(
    "Set a key; with --if-version, --if-mod-revision, --if-value or --if-absent only if that holds (else exit 5); " +
      "with --lease ID on that lease (exit 1 if it has ended)",
  ),
  Command.withExamples([
    { command: "kv put config/mode fast --if-version 3", description: "only if nobody wrote it since version 3" },
    { command: "kv put lock me --if-absent", description: "create it, unless it exists" },
    {
      command: "kv put workers/w1 up --lease 7 --service kvraft",
      description: "deleted when lease 7 ends (kv lease grant)",
    },
  ]),
)

export const append = Command.make(
  "append",
  { ...dataFlags, key, value },
  action(async (session, flags) => {
    const kv = await session.dataClient(flags.service)
    await withWaitIndicator("a leader", () => session.run(kv.append(flags.key, flags.value)))
    print(flags, "OK", { ok: true })
    return ExitCode.ok
  }),
).pipe(Command.withDescription("Append to a key's value"))

export const del = Command.make(
  "delete",
  { ...dataFlags, key, ...conditionFlags },
  action(async (session, flags) => {
    const condition = conditionOf(flags)
    const kv = await session.dataClient(flags.service)
    if (condition === undefined) {
      await withWaitIndicator("a leader", () => session.run(kv.delete(flags.key)))
      print(flags, "OK", { ok: true })
      return ExitCode.ok
    }
    const result = await withWaitIndicator("a leader", () => session.run(kv.deleteIf(flags.key, condition)))
    return reportCas(flags, flags.key, result)
  }),
).pipe(
  Command.withDescription(
    "Remove a key; with --if-version, --if-mod-revision or --if-value only if that holds (else exit 5)",
  ),
)

export const cas = Command.make(
  "cas",
  {
    ...dataFlags,
    key,
    expected: Argument.String("expected").pipe(Argument.withDescription("the value the key must hold")),
    next: Argument.String("new").pipe(Argument.withDescription("the value to put")),
  },
  action(async (session, flags) => {
    const kv = await session.dataClient(flags.service)
    const result = await withWaitIndicator("a leader", () =>
      session.run(kv.putIf(flags.key, flags.next, { ifValue: flags.expected })),
    )
    return reportCas(flags, flags.key, result)
  }),
).pipe(
  Command.withDescription(
    "Compare-and-swap: put NEW if the key holds EXPECTED (else exit 5 and show its current entry; to create, put --if-absent)",
  ),
  Command.withExamples([{ command: "kv cas counter 41 42", description: "42 if it still holds 41" }]),
)

/** The transaction text: the file named, or stdin when none is (or "-"). */
const readTxnText = async (file: Option.Option<string>): Promise<string> => {
  if (Option.isNone(file) || file.value === "-") {
    if (process.stdin.isTTY === true) {
      throw new CliFailure(
        "txn reads the transaction from a file or stdin: `kv txn FILE` or `kv txn < FILE` (see kv txn --help)",
        ExitCode.badInput,
      )
    }
    return Bun.stdin.text()
  }
  const source = Bun.file(file.value)
  if (!(await source.exists())) throw new CliFailure(`txn: no file ${file.value}`, ExitCode.badInput)
  return source.text()
}

const renderTxn = (request: ReturnType<typeof parseTxn>, result: TxnResult): string => {
  const ran = result.succeeded ? request.success : request.failure
  const lines = ran.map((op, i) =>
    op.op === "get" ? `get ${describeEntry(op.key, result.entries[i])}` : `${op.op} ${JSON.stringify(op.key)}: OK`,
  )
  return [`${result.succeeded ? "SUCCESS" : "FAILURE"} (revision ${result.revision})`, ...lines].join("\n")
}

export const txn = Command.make(
  "txn",
  {
    ...dataFlags,
    file: Argument.String("file").pipe(
      Argument.withDescription("a file with the transaction (omitted or -: stdin)"),
      Argument.optional,
    ),
  },
  action(async (session, flags) => {
    const request = parseTxn(await readTxnText(flags.file))
    const kv = await session.dataClient(flags.service)
    const result = await withWaitIndicator("a leader", () => session.run(kv.txn(request)))
    const ran = result.succeeded ? request.success : request.failure
    print(flags, renderTxn(request, result), {
      ok: result.succeeded,
      succeeded: result.succeeded,
      revision: result.revision,
      results: ran.map((op, i) =>
        op.op === "get" ? { op: op.op, key: op.key, entry: entryJson(result.entries[i]) } : { op: op.op, key: op.key },
      ),
    })
    return result.succeeded ? ExitCode.ok : ExitCode.notApplied
  }),
).pipe(
  Command.withShortDescription(
    "Run a transaction (JSON or lines, from a file or stdin): success ops if every compare holds (exit 0), else failure ops (exit 5)",
  ),
  Command.withDescription(
    [
      "Run a transaction read from FILE or stdin, as JSON:",
      '  {"compare": [{"key": K, "target": "version"|"modRevision"|"createRevision"|"value", "cmp": "=="|"!="|"<"|">", "value": N or "S"}],',
      '   "success": [{"op": "put", "key": K, "value": "S"} | {"op": "delete", "key": K} | {"op": "get", "key": K}],',
      '   "failure": [...]}',
      "or as lines (a word with spaces or quotes written as a JSON string; # starts a comment):",
      "  if TARGET KEY CMP VALUE           a compare, as in: if version lock == 0",
      "  then put KEY VALUE | then delete KEY | then get KEY     a success op",
      "  else put KEY VALUE | else delete KEY | else get KEY     a failure op",
      "If every compare holds the success ops run (exit 0), else the failure ops (exit 5), atomically at one revision.",
      "An absent key has version, modRevision and createRevision 0; a compare on its value fails.",
      "On the sharded service every key must be in one shard: give them one hash tag, as in {user42}.name.",
    ].join("\n  "),
  ),
  Command.withExamples([
    {
      command: `printf 'if version lock == 0\\nthen put lock me\\nelse get lock\\n' | kv txn`,
      description: "take a lock if nobody holds it, else show who does",
    },
    {
      command: `echo '{"compare":[{"key":"lock","target":"value","cmp":"==","value":"me"}],"success":[{"op":"delete","key":"lock"}]}' | kv txn`,
      description: "release it if it is still mine (JSON)",
    },
  ]),
)

export const list = Command.make(
  "list",
  {
    ...dataFlags,
    prefix: Argument.String("prefix").pipe(Argument.withDescription('the keys\' prefix ("" for every key)')),
    limit: Flag.Int("limit").pipe(
      Flag.withDescription("at most N keys (default: every key under the prefix)"),
      Flag.optional,
    ),
    after: Flag.String("after").pipe(
      Flag.withDescription("only keys after this one (the last key of a previous listing)"),
      Flag.optional,
    ),
    keysOnly: Flag.Boolean("keys-only").pipe(
      Flag.withDescription("print keys without values"),
      Flag.withDefault(false),
    ),
  },
  action(async (session, flags) => {
    const limit = Option.getOrUndefined(flags.limit)
    if (limit !== undefined && limit < 1)
      throw new CliFailure(`--limit must be 1 or more, not ${limit}`, ExitCode.badInput)
    const kv = await session.dataClient(flags.service)
    const entries: KvListEntry[] = []
    let after = Option.getOrUndefined(flags.after)
    let next: string | undefined
    // Page after page; human output is printed as it comes, so a long listing starts at once.
    do {
      const page = await withWaitIndicator("a leader", () =>
        session.run(
          kv.list(flags.prefix, {
            after,
            keysOnly: flags.keysOnly,
            ...(limit === undefined ? {} : { limit: limit - entries.length }),
          }),
        ),
      )
      if (!flags.json) {
        for (const e of page.entries) console.log(flags.keysOnly ? e.key : `${e.key}\t${e.value ?? ""}`)
      }
      entries.push(...page.entries)
      after = next = page.next
    } while (next !== undefined && (limit === undefined || entries.length < limit))
    if (flags.json) console.log(JSON.stringify({ ok: true, entries, ...(next === undefined ? {} : { next }) }))
    else if (next !== undefined) console.error(`kv: more keys follow: --after ${JSON.stringify(next)}`)
    return ExitCode.ok
  }),
).pipe(
  Command.withDescription(
    "List the keys under a prefix in byte order, with their values (tab-separated) unless --keys-only; every key unless --limit",
  ),
  Command.withExamples([
    { command: "kv list members/ --keys-only", description: "every key under members/" },
    { command: "kv list members/ --limit 100 --after members/m042 --json", description: "the next 100, with metadata" },
  ]),
)
