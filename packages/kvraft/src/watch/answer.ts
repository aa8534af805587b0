/**
 * A store's answer to one watch poll, from its history (pure: the server runs it in the apply
 * loop and whenever a held poll may have something new).
 */
import type { KvStateMachine } from "../stateMachine/kvStateMachine.ts"
import { utf8Exceeds } from "../stateMachine/utf8.ts"
import type { WatchEvent } from "./history.ts"
import type { WatchPollRequest } from "./protocol.ts"

/** Most events one reply holds (past the first revision's). */
export const maxPollEvents = 1000

/** A reply stops adding revisions past this many bytes of events (it holds at least one revision). */
export const maxPollBytes = 1024 * 1024

export type WatchPollAnswer =
  | { readonly ok: true; readonly events: readonly WatchEvent[]; readonly revision: number }
  | { readonly ok: false; readonly error: "Compacted"; readonly compactRevision: number; readonly revision: number }
  | { readonly ok: false; readonly error: "KeyTooLarge"; readonly message: string }

export const answerPoll = (store: KvStateMachine, request: WatchPollRequest): WatchPollAnswer => {
  const { maxKeyBytes } = store.limits
  if (utf8Exceeds(request.key, maxKeyBytes)) {
    return { ok: false, error: "KeyTooLarge", message: `key exceeds ${maxKeyBytes} bytes` }
  }
  if (request.afterRevision === undefined) return { ok: true, events: [], revision: store.revision }
  const answer = store.history.read(request, request.afterRevision, store.revision, {
    maxEvents: Math.min(request.maxEvents ?? maxPollEvents, maxPollEvents),
    maxBytes: Math.min(request.maxBytes ?? maxPollBytes, maxPollBytes),
  })
  return answer.kind === "compacted"
    ? { ok: false, error: "Compacted", compactRevision: answer.compactRevision, revision: answer.revision }
    : { ok: true, events: answer.events, revision: answer.revision }
}

/** Whether the server may hold a poll that got `answer`: nothing to send yet. */
export const nothingToSend = (answer: { readonly ok: boolean; readonly events?: readonly unknown[] }): boolean =>
  answer.ok && answer.events !== undefined && answer.events.length === 0
