/**
 * What a node tells its storage of a Ready's durable write (`WriteHint`): whether its loop has
 * anything to do while the write flushes. The file storage flushes a small write inline when it has
 * not, saving the thread pool's two hand-offs (inlineFlush.ts).
 *
 * A follower's or candidate's answers wait for its write. A leader's write is its only work when it
 * holds one entry and every entry before it is committed (no answer due that could commit an
 * earlier batch) and no read waits or is in a round: one client's put. Otherwise the leader acts
 * on proposals, reads and answers during the flush, and holding its loop cost mixed gets and puts.
 */
import type { Entry, LogIndex, Role } from "../core/index.ts"
import type { WriteHint } from "../storage/index.ts"

const WAITS: WriteHint = { callerWaits: true }
const BUSY: WriteHint = { callerWaits: false }

/** `readsPending`: reads waiting for a round, or in one. */
export const writeHintFor = (
  role: Role,
  commitIndex: LogIndex,
  readsPending: boolean,
  entries: readonly Entry[],
): WriteHint => {
  if (role !== "leader") return WAITS
  if (readsPending || entries.length > 1) return BUSY
  const first = entries[0]
  return first === undefined || first.index === commitIndex + 1 ? WAITS : BUSY
}
