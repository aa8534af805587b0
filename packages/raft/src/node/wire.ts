import { Schema } from "effect"
import {
  type Entry as CoreEntry,
  type SnapshotMeta as CoreSnapshotMeta,
  MAX_TERM_OR_INDEX,
  type Message,
} from "../core/index.ts"

/**
 * Raft peer messages on the wire: a batch (array) of messages per datagram, each validated by
 * Schema before it reaches the core, so a malformed or hostile datagram is dropped and counted
 * rather than corrupting Raft state. Every number is an integer in [0, 2^48] (core/bounds.ts says
 * why); the bounds relative to the receiver's term are the core's.
 */
const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(MAX_TERM_OR_INDEX))
const header = { from: Count, to: Count, term: Count }
/** Bounds a hostile peer cannot stretch: an address fits in a host:port, a group in a few hundred members. */
const MAX_ADDRESS_CHARS = 300
const MAX_MEMBERS = 1024
export const MembershipSchema = Schema.Struct({
  members: Schema.Array(
    Schema.Struct({
      id: Count,
      role: Schema.Literals(["voter", "learner"]),
      address: Schema.String.check(Schema.isMaxLength(MAX_ADDRESS_CHARS)),
    }),
  ).check(Schema.isMaxLength(MAX_MEMBERS)),
})
const Entry = Schema.Struct({
  term: Count,
  index: Count,
  data: Schema.Uint8Array,
  config: Schema.optionalKey(MembershipSchema),
})
const SnapshotMeta = Schema.Struct({ index: Count, term: Count, membership: Schema.optionalKey(MembershipSchema) })

const MessageSchema = Schema.Union([
  Schema.Struct({
    type: Schema.Literal("PreVote"),
    ...header,
    lastLogIndex: Count,
    lastLogTerm: Count,
    backlog: Schema.optionalKey(Count),
  }),
  Schema.Struct({ type: Schema.Literal("PreVoteResp"), ...header, reject: Schema.Boolean }),
  Schema.Struct({
    type: Schema.Literal("Vote"),
    ...header,
    lastLogIndex: Count,
    lastLogTerm: Count,
    transfer: Schema.Boolean,
  }),
  Schema.Struct({ type: Schema.Literal("VoteResp"), ...header, reject: Schema.Boolean }),
  Schema.Struct({
    type: Schema.Literal("Append"),
    ...header,
    prevIndex: Count,
    prevTerm: Count,
    entries: Schema.Array(Entry),
    commit: Count,
  }),
  Schema.Struct({
    type: Schema.Literal("AppendResp"),
    ...header,
    index: Count,
    reject: Schema.Boolean,
    conflictTerm: Count,
    conflictIndex: Count,
  }),
  Schema.Struct({
    type: Schema.Literal("Heartbeat"),
    ...header,
    commit: Count,
    context: Count,
    commitTerm: Schema.optionalKey(Count),
    replaying: Schema.optionalKey(Schema.Literal(true)),
  }),
  Schema.Struct({ type: Schema.Literal("HeartbeatResp"), ...header, context: Count }),
  Schema.Struct({
    type: Schema.Literal("Snap"),
    ...header,
    snapshot: SnapshotMeta,
    offset: Count,
    total: Count,
    chunk: Schema.Uint8Array,
    done: Schema.Boolean,
  }),
  Schema.Struct({ type: Schema.Literal("SnapResp"), ...header, snapshot: SnapshotMeta, offset: Count }),
  Schema.Struct({ type: Schema.Literal("TimeoutNow"), ...header }),
])

const Batch = Schema.Array(MessageSchema)
const decodeBatch = Schema.decodeUnknownExit(Batch)

// Compile-time check that the wire schema and the core's Message type describe the same thing
// (optional fields included: a field the wire dropped would make these differ).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const wireMatchesCore: Same<(typeof MessageSchema)["Type"], Message> = true
void wireMatchesCore
const entryKeys: Same<keyof (typeof Entry)["Type"], keyof CoreEntry> = true
const snapshotKeys: Same<keyof (typeof SnapshotMeta)["Type"], keyof CoreSnapshotMeta> = true
void entryKeys
void snapshotKeys

/** The payload for RpcNode.sendOneWay: msgpack encodes it once for the datagram. */
export const encodeMessages = (messages: readonly Message[]): readonly Message[] => messages

/** Undefined when the payload is not a valid batch: the caller counts it as malformed. */
export const decodeMessages = (payload: unknown): readonly Message[] | undefined => {
  return replicationBatch(payload) ?? decodeMessagesBySchema(payload)
}

/** The Schema's own verdict, without the hand-written checks below (which tests hold against it). */
export const decodeMessagesBySchema = (payload: unknown): readonly Message[] | undefined => {
  const exit = decodeBatch(payload)
  return exit._tag === "Success" ? exit.value : undefined
}

/*
 * Replication traffic (Append without configuration entries, AppendResp, Heartbeat and its
 * response) checked by hand: the Schema union tries its members in turn and cost several
 * microseconds per message on every replica. Each check accepts only what MessageSchema accepts and
 * builds what it builds (fresh objects of the schema's fields, in its order, data as it came); any
 * other message, or anything unusual, sends the whole batch to the Schema.
 */
type Fields = { readonly [key: string]: unknown }

const isFields = (x: unknown): x is Fields => typeof x === "object" && x !== null && !Array.isArray(x)
const isCount = (x: unknown): x is number =>
  Number.isSafeInteger(x) && (x as number) >= 0 && (x as number) <= MAX_TERM_OR_INDEX

const fastEntries = (input: unknown): CoreEntry[] | undefined => {
  if (!Array.isArray(input)) return undefined
  const entries: CoreEntry[] = new Array(input.length)
  for (let i = 0; i < input.length; i++) {
    const e: unknown = input[i]
    if (!isFields(e) || "config" in e || !isCount(e.term) || !isCount(e.index) || !(e.data instanceof Uint8Array)) {
      return undefined
    }
    entries[i] = { term: e.term, index: e.index, data: e.data }
  }
  return entries
}

const fastMessage = (m: unknown): Message | undefined => {
  if (!isFields(m)) return undefined
  const { from, to, term } = m
  if (!isCount(from) || !isCount(to) || !isCount(term)) return undefined
  switch (m.type) {
    case "Append": {
      if (!isCount(m.prevIndex) || !isCount(m.prevTerm) || !isCount(m.commit)) return undefined
      const entries = fastEntries(m.entries)
      if (entries === undefined) return undefined
      return { type: "Append", from, to, term, prevIndex: m.prevIndex, prevTerm: m.prevTerm, entries, commit: m.commit }
    }
    case "AppendResp": {
      const { index, reject, conflictTerm, conflictIndex } = m
      if (!isCount(index) || typeof reject !== "boolean" || !isCount(conflictTerm) || !isCount(conflictIndex)) {
        return undefined
      }
      return { type: "AppendResp", from, to, term, index, reject, conflictTerm, conflictIndex }
    }
    case "Heartbeat": {
      const { commit, context, commitTerm, replaying } = m
      if (!isCount(commit) || !isCount(context)) return undefined
      // Optional keys: absent, or of their type (a key present with another value is the Schema's to refuse).
      const withTerm = "commitTerm" in m
      const withReplaying = "replaying" in m
      if ((withTerm && !isCount(commitTerm)) || (withReplaying && replaying !== true)) return undefined
      return {
        type: "Heartbeat",
        from,
        to,
        term,
        commit,
        context,
        ...(withTerm ? { commitTerm: commitTerm as number } : {}),
        ...(withReplaying ? { replaying: true as const } : {}),
      }
    }
    case "HeartbeatResp":
      return isCount(m.context) ? { type: "HeartbeatResp", from, to, term, context: m.context } : undefined
    default:
      return undefined
  }
}

/** The batch when every message in it is replication traffic the checks take; else undefined. */
export const replicationBatch = (payload: unknown): Message[] | undefined => {
  if (!Array.isArray(payload)) return undefined
  const messages: Message[] = new Array(payload.length)
  for (let i = 0; i < payload.length; i++) {
    const m = fastMessage(payload[i])
    if (m === undefined) return undefined
    messages[i] = m
  }
  return messages
}

const RESPONSES: ReadonlySet<Message["type"]> = new Set([
  "PreVoteResp",
  "VoteResp",
  "AppendResp",
  "HeartbeatResp",
  "SnapResp",
])

/** Responses ride on requests in the lab's RPC accounting; counters keep them apart. */
export const isResponse = (m: Message): boolean => RESPONSES.has(m.type)

/** The one-way RPC channel Raft peers talk on. */
export const RAFT_CHANNEL = "raft"

/**
 * For a simulated network's lab model (`SimNetwork.classifyReplies(RAFT_CHANNEL, isRaftReply)`),
 * which delays replies only: a batch is a reply when every message in it answers one. A leader's
 * batch to a follower holds requests, a follower's to its leader responses; the rare batch holding
 * both travels as a request.
 */
export const isRaftReply = (payload: unknown): boolean => {
  if (!Array.isArray(payload) || payload.length === 0) return false
  for (const m of payload) {
    if (typeof m !== "object" || m === null || !RESPONSES.has((m as { type?: unknown }).type as Message["type"])) {
      return false
    }
  }
  return true
}

/** An upper estimate of a message's encoded size, for packing batches under one datagram. */
export const estimateMessageBytes = (m: Message): number => {
  let bytes = 96
  if (m.type === "Append") {
    for (const e of m.entries) bytes += e.data.length + 24 + (e.config === undefined ? 0 : membershipBytes(e.config))
  } else if (m.type === "Snap" && m.snapshot.membership !== undefined) bytes += membershipBytes(m.snapshot.membership)
  if (m.type === "Snap") bytes += m.chunk.length
  return bytes
}

const membershipBytes = (m: { readonly members: readonly { readonly address: string }[] }): number => {
  let bytes = 16
  for (const x of m.members) bytes += 40 + x.address.length * 3
  return bytes
}
