/**
 * The phases of a kvraft replica's restart, timed on a copy of what it does (used by the
 * repository's `bun run bench:restart`): the startup disk check, open the file storage of `<dataDir>` (read and check the
 * newest snapshot, replay the WAL), unwrap the replicated-state-machine envelope, restore the
 * KvStateMachine, decode the log tail's commands, apply them (as the replica does once it learns
 * they are committed); then what the next snapshot of that state costs a running replica, whose
 * replicated state machine takes it inside its apply callback, on the event loop: the state
 * machine's snapshot wrapped in its envelope, then the file written as the storage writes it
 * (checksummed, written, fdatasynced) into a scratch file beside `<dataDir>`, removed after: no
 * snapshot of `<dataDir>` is replaced. Opening the storage may still trim a torn or preallocated
 * tail of its log, as a server's start does: run it on a copy. Prints one JSON line.
 *
 *   bun packages/kvraft/bench/restorePhases.ts <dataDir>
 *
 * KV_PHASES_COPY_ENVELOPE=1 takes the snapshot as the RSM did before it wrote its envelope in place
 * (the state machine's bytes, then copied into the envelope), for before/after figures.
 * KV_PHASES_SLICED=1 takes it as the RSM now does, a slice at a time (`beginSnapshot`), and says how
 * long the event loop was held: by the begin (the head and the frozen view) and by each slice.
 */
import { closeSync, fdatasyncSync, openSync, rmSync, writeSync } from "node:fs"
import { dirname, join } from "node:path"
import { openFileStorage } from "@kv/raft"
import { probeFsync } from "../src/process/diskCheck.ts"
import { MemberRecord } from "../src/rsm/memberRecord.ts"
import { decodeCommand } from "../src/stateMachine/command.ts"
import { KvStateMachine } from "../src/stateMachine/kvStateMachine.ts"

const dir = process.argv[2]
if (dir === undefined) throw new Error("usage: restorePhases.ts <dataDir>")

const cpuMs = () => {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}
const timed = <A>(run: () => A): { value: A; ms: number; cpuMs: number } => {
  const wall = performance.now()
  const cpu = cpuMs()
  const value = run()
  return { value, ms: performance.now() - wall, cpuMs: cpuMs() - cpu }
}

// The server's startup disk check (process/serve.ts): 20 small writes, each fdatasynced.
const diskCheck = timed(() => probeFsync(dir))
const open = timed(() => {
  const storage = openFileStorage(dir)
  const state = storage.load()
  storage.close()
  return state
})
const snapshot = open.value.snapshot
const record = new MemberRecord()
const unwrap = timed(() => (snapshot === undefined ? undefined : record.unwrapSnapshot(snapshot.data)))
const restore = timed(() => (unwrap.value === undefined ? new KvStateMachine() : KvStateMachine.restore(unwrap.value)))
const tail = timed(() =>
  open.value.entries.flatMap((e) => {
    const command = e.data.length > 0 ? decodeCommand(e.data) : undefined
    return command === undefined ? [] : [command]
  }),
)
const keysRestored = restore.value.size()
const apply = timed(() => {
  for (const command of tail.value) restore.value.apply(command)
})

const machine = restore.value
/** Wall milliseconds of the begin and of each slice, when sliced. */
const holds: number[] = []
const sliced = (): Uint8Array => {
  let at = performance.now()
  const job = record.snapshotJobOf({
    apply: () => undefined,
    snapshot: () => machine.snapshot(),
    beginSnapshot: (roomBytes) => machine.beginSnapshot(roomBytes),
    restore: () => undefined,
  })
  for (;;) {
    const bytes = job.step()
    const now = performance.now()
    holds.push(now - at)
    at = now
    if (bytes !== undefined) return bytes
  }
}
const takeSnapshot = timed(() =>
  process.env.KV_PHASES_SLICED === "1"
    ? sliced()
    : process.env.KV_PHASES_COPY_ENVELOPE === "1"
      ? record.wrapSnapshot(machine.snapshot())
      : record.snapshotOf({
          apply: () => undefined,
          snapshot: () => machine.snapshot(),
          snapshotWithRoom: (roomBytes) => machine.snapshotWithRoom(roomBytes),
          restore: () => undefined,
        }),
)
const scratch = join(dirname(dir), `.restore-phases-${process.pid}.snap`)
const writeSnapshot = timed(() => {
  const bytes = takeSnapshot.value
  Bun.hash.crc32(bytes)
  const fd = openSync(scratch, "w")
  try {
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at)
    fdatasyncSync(fd)
  } finally {
    closeSync(fd)
    rmSync(scratch, { force: true })
  }
})

console.log(
  JSON.stringify({
    snapshotIndex: snapshot?.index ?? 0,
    snapshotBytes: snapshot?.data.length ?? 0,
    keys: keysRestored,
    tailEntries: open.value.entries.length,
    tailCommands: tail.value.length,
    diskCheck: { ms: diskCheck.ms, cpuMs: diskCheck.cpuMs },
    openStorage: { ms: open.ms, cpuMs: open.cpuMs },
    unwrap: { ms: unwrap.ms, cpuMs: unwrap.cpuMs },
    restore: { ms: restore.ms, cpuMs: restore.cpuMs },
    decodeTail: { ms: tail.ms, cpuMs: tail.cpuMs },
    applyTail: { ms: apply.ms, cpuMs: apply.cpuMs },
    nextSnapshotBytes: takeSnapshot.value.length,
    takeSnapshot: { ms: takeSnapshot.ms, cpuMs: takeSnapshot.cpuMs },
    ...(holds.length === 0
      ? {}
      : {
          slices: {
            count: holds.length,
            beginMs: holds[0],
            maxMs: Math.max(...holds),
            p99Ms: [...holds].sort((a, b) => a - b)[Math.floor(holds.length * 0.99)],
          },
        }),
    writeSnapshot: { ms: writeSnapshot.ms, cpuMs: writeSnapshot.cpuMs },
  }),
)
