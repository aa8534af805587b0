/**
 * The phases of a kvraft replica's restart, timed on a copy of what it does (used by the
 * repository's `bun run bench:restart`): the startup disk check, open the file storage of `<dataDir>` (read and check the
 * newest snapshot, replay the WAL), unwrap the replicated-state-machine envelope, restore the
 * KvStateMachine, decode the log tail's commands, apply them (as the replica does once it learns
 * they are committed). Prints one JSON line.
 *
 *   bun packages/kvraft/bench/restorePhases.ts <dataDir>
 */
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
const unwrap = timed(() => (snapshot === undefined ? undefined : new MemberRecord().unwrapSnapshot(snapshot.data)))
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
  }),
)
