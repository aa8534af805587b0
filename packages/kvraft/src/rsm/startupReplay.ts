/**
 * A restart's replay, a slice at a time: the stored snapshot restored through the state machine's
 * `beginRestore`, then the committed entries Raft handed over meanwhile, applied in log order.
 * Restoring a million keys and applying a 16 MiB tail held a replica's event loop for most of a
 * second, during which its Raft node answered no vote and no append: three replicas restarting
 * together elected a leader only once their restores were over, and split votes followed when their
 * overdue election timers all fired at their first turn. Replayed in slices, the node answers
 * between them and the group elects a leader while the replicas restore.
 *
 * The leader is the replica whose replay the group waits for (a follower's state is read by
 * nobody), so while the leader's heartbeats say it is still replaying too (the group restarted
 * together), a follower replays nothing: where the group's replicas share a machine's cores, the
 * leader's replay gets them. Pausing for three times each slice's length instead left the leader's
 * thread waiting for a core a third of its replay (three replicas on two cores, measured from the
 * scheduler's run-queue time), and the group served 0.15–0.28 s later in medians of five restarts
 * after a crash. A follower still answers Raft meanwhile (it appends and acknowledges; only its
 * state machine waits), and resumes once the leader's heartbeats stop saying so, or once it hears
 * no leader. A replica that comes back to a leader that serves (a rolling restart, a crashed host
 * back) replays at full speed.
 */
import type { Entry } from "@kv/raft"
import type { RestoreInProgress } from "./stateMachine.ts"

/** Command bytes applied per slice: about a millisecond of a key/value store's work. */
export const REPLAY_SLICE_BYTES = 64 * 1024

/** How often a follower that gives way to its leader's replay looks again whether it still should. */
export const GIVE_WAY_POLL_MS = 10

export class StartupReplay {
  #restore: RestoreInProgress | undefined
  #batches: (readonly Entry[])[] = []
  /** Entries of the first batch already applied. */
  #at = 0

  /** The index of the snapshot being restored: applied once the restore is over. */
  readonly snapshotIndex: number

  /** `restore` undefined: a replica with no stored snapshot, whose replay is its log alone. */
  constructor(restore: RestoreInProgress | undefined, snapshotIndex: number) {
    this.#restore = restore
    this.snapshotIndex = snapshotIndex
  }

  /** Work is left: the restore, or entries handed over since it began. */
  get pending(): boolean {
    return this.#restore !== undefined || this.#batches.length > 0
  }

  /** Committed entries, in log order, to apply after what is pending. */
  push(entries: readonly Entry[]): void {
    if (entries.length > 0) this.#batches.push(entries)
  }

  /**
   * One slice: a step of the restore, or pending entries handed to `apply` in order, up to
   * `maxBytes` of command data (at least one entry). "restored" when the restore just finished.
   */
  step(apply: (entries: readonly Entry[]) => void, maxBytes = REPLAY_SLICE_BYTES): "restored" | undefined {
    if (this.#restore !== undefined) {
      if (!this.#restore.step()) return undefined
      this.#restore = undefined
      return "restored"
    }
    const batch = this.#batches[0]
    if (batch === undefined) return undefined
    let end = this.#at
    let bytes = 0
    while (end < batch.length && (end === this.#at || bytes < maxBytes)) bytes += batch[end++]!.data.length
    const slice = this.#at === 0 && end === batch.length ? batch : batch.slice(this.#at, end)
    if (end === batch.length) {
      this.#batches.shift()
      this.#at = 0
    } else this.#at = end
    apply(slice)
    return undefined
  }
}
