/**
 * Which datagrams the simulated network takes for replies. The lab's long-reordering model
 * (labrpc) delays replies only, yet nothing on the wire marks them: production code has no reason
 * to. A request/response answer says so in its envelope kind; for a one-way channel the consumer
 * that knows its payloads (Raft: responses to peer messages) registers a classifier with the sim.
 * Only the simulated network reads datagrams this way, and only while long reordering is on.
 */
import { Decoder } from "@msgpack/msgpack"
import { ENVELOPE_VERSION } from "./envelope.ts"
import {
  BATCH_ITEM_HEADER_BYTES,
  FRAGMENT_HEADER_BYTES,
  KIND_BATCH,
  KIND_FRAGMENT,
  KIND_WHOLE,
  WHOLE_HEADER_BYTES,
  WIRE_VERSION,
} from "./frame.ts"

/** Whether a one-way payload (as decoded from msgpack) is an answer to something its receiver sent. */
export type OneWayReplyClassifier = (payload: unknown) => boolean

/** Envelope kinds that answer a request: response, error, "prove your address". */
const isAnswerKind = (kind: number): boolean => kind === 1 || kind === 2 || kind === 4
const ONE_WAY_KIND = 3

const decoder = new Decoder()

/**
 * The kind of the envelope `body` starts with, read from its first bytes: every envelope is a
 * msgpack array of 4 to 6 items (one byte, 0x94–0x96) whose first two are small integers
 * (version, kind). Works on the first fragment of a message, whose body is cut short.
 */
const envelopeKind = (body: Uint8Array): number | undefined => {
  const head = body[0]
  if (head === undefined || head < 0x94 || head > 0x96 || body[1] !== ENVELOPE_VERSION) return undefined
  return body[2]
}

/** A whole envelope's one-way payload through the channel's classifier; false without one. */
const classifyOneWay = (body: Uint8Array, classifiers: ReadonlyMap<string, OneWayReplyClassifier>): boolean => {
  if (classifiers.size === 0) return false
  let envelope: unknown
  try {
    // The first value only: a cluster key's MAC follows the body.
    for (const value of decoder.decodeMulti(body)) {
      envelope = value
      break
    }
  } catch {
    return false
  }
  if (!Array.isArray(envelope) || typeof envelope[2] !== "string") return false
  const classify = classifiers.get(envelope[2])
  return classify?.(envelope[3]) === true
}

/**
 * Tells replies from requests, one sender's datagrams in the order it sends them: a fragmented
 * message's later fragments carry no envelope, so they take the verdict of its first one (a
 * transport sends a message's fragments back to back). A fragmented one-way message counts as a
 * request: its payload is not whole here (Raft's answers are small).
 */
export class ReplyClassifier {
  private fragmentsAreReplies = false

  constructor(private readonly oneWay: ReadonlyMap<string, OneWayReplyClassifier>) {}

  isReply(datagram: Uint8Array): boolean {
    if (datagram[0] !== WIRE_VERSION) return false
    switch (datagram[1]) {
      case KIND_WHOLE:
        return this.isReplyBody(datagram.subarray(WHOLE_HEADER_BYTES), true)
      case KIND_BATCH: {
        // Coalesced messages to one peer: the first one speaks for the datagram.
        const start = WHOLE_HEADER_BYTES + BATCH_ITEM_HEADER_BYTES
        if (datagram.length < start) return false
        const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength)
        const length = view.getUint32(WHOLE_HEADER_BYTES)
        return this.isReplyBody(datagram.subarray(start, start + length), true)
      }
      case KIND_FRAGMENT: {
        if (datagram.length < FRAGMENT_HEADER_BYTES) return false
        const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength)
        if (view.getUint16(6) === 0) {
          this.fragmentsAreReplies = this.isReplyBody(datagram.subarray(FRAGMENT_HEADER_BYTES), false)
        }
        return this.fragmentsAreReplies
      }
      default:
        return false
    }
  }

  private isReplyBody(body: Uint8Array, whole: boolean): boolean {
    const kind = envelopeKind(body)
    if (kind === undefined) return false
    if (isAnswerKind(kind)) return true
    return whole && kind === ONE_WAY_KIND && classifyOneWay(body, this.oneWay)
  }
}
