/**
 * What a group remembers about its members beyond its current configuration, replicated beside the
 * service's state machine:
 *
 * - `named`: every id a committed configuration entry has named. Ids are single-use (an id added
 *   again with an empty disk can vote twice in a term, as the voter older configurations still
 *   name), so an id named once is never added again.
 * - `heldData`: every id a leader has seen acknowledge log entries. A replica with such an id and an
 *   empty data directory has lost what it acknowledged; it must not start again under that id.
 *
 * Both survive compaction because they travel inside the snapshot, in an envelope around the
 * service's own bytes. The envelope and the record's own log entries start with 0xc1, a byte
 * msgpack never uses: every service command and snapshot is a msgpack array, so logs and snapshots
 * written before the record existed read as they always did (with an empty record).
 */
import { Decoder, Encoder } from "@msgpack/msgpack"
import type { ReplicatedStateMachine, SnapshotInProgress } from "./stateMachine.ts"

/** First byte of a record entry or an enveloped snapshot (never the first byte of msgpack). */
export const RECORD_MARK = 0xc1

const SNAPSHOT_FORMAT = 1

const encoder = new Encoder()
const decoder = new Decoder()

export interface MemberRecordView {
  readonly named: ReadonlySet<number>
  readonly heldData: ReadonlySet<number>
}

export class MemberRecord implements MemberRecordView {
  readonly named = new Set<number>()
  readonly heldData = new Set<number>()

  /** A committed configuration entry: every member it names. */
  noteConfiguration(members: readonly { readonly id: number }[]): void {
    for (const m of members) this.named.add(m.id)
  }

  /** Applies a record entry (bytes starting with RECORD_MARK). Unknown kinds are ignored. */
  applyEntry(bytes: Uint8Array): void {
    const decoded = decoder.decode(bytes.subarray(1))
    if (!Array.isArray(decoded)) return
    const into = decoded[0] === "held" ? this.heldData : decoded[0] === "named" ? this.named : undefined
    if (into === undefined) return
    for (const id of decoded.slice(1)) if (typeof id === "number") into.add(id)
  }

  /**
   * The state machine's snapshot wrapped with the record. When the state machine can leave room
   * for the envelope, the envelope is written into that room and the service's bytes stay where
   * they are (the same bytes `wrapSnapshot` makes for a service snapshot of 64 KiB or more;
   * a shorter one gets a longer length field than msgpack's shortest, which every decoder reads).
   */
  snapshotOf(sm: ReplicatedStateMachine<unknown>): Uint8Array {
    if (sm.snapshotWithRoom === undefined) return this.wrapSnapshot(sm.snapshot())
    const fields = this.#envelopeFields()
    return this.#fillEnvelope(fields, sm.snapshotWithRoom(envelopeRoom(fields)))
  }

  /**
   * `snapshotOf` taken a slice at a time when the state machine can (`beginSnapshot`): the record
   * and the state as they are at this call. Otherwise taken at once, its job already done.
   */
  snapshotJobOf(sm: ReplicatedStateMachine<unknown>): SnapshotInProgress {
    if (sm.beginSnapshot === undefined) {
      const bytes = this.snapshotOf(sm)
      return { step: () => bytes }
    }
    const fields = this.#envelopeFields()
    const job = sm.beginSnapshot(envelopeRoom(fields))
    return {
      step: () => {
        const out = job.step()
        return out === undefined ? undefined : this.#fillEnvelope(fields, out)
      },
    }
  }

  #envelopeFields(): Uint8Array {
    return encoder.encode([SNAPSHOT_FORMAT, [...this.named], [...this.heldData]])
  }

  /** Writes the envelope of `fields` into the room at the start of `out`. */
  #fillEnvelope(fields: Uint8Array, out: Uint8Array): Uint8Array {
    const roomBytes = envelopeRoom(fields)
    out[0] = RECORD_MARK
    out.set(fields, 1)
    out[1] = 0x94
    out[1 + fields.length] = 0xc6
    new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(2 + fields.length, out.length - roomBytes)
    return out
  }

  /** Wraps the service's snapshot bytes with the record. */
  wrapSnapshot(service: Uint8Array): Uint8Array {
    const body = encoder.encode([SNAPSHOT_FORMAT, [...this.named], [...this.heldData], service])
    const out = new Uint8Array(body.length + 1)
    out[0] = RECORD_MARK
    out.set(body, 1)
    return out
  }

  /** Restores the record from snapshot bytes and returns the service's own part. */
  unwrapSnapshot(bytes: Uint8Array): Uint8Array {
    this.named.clear()
    this.heldData.clear()
    if (bytes[0] !== RECORD_MARK) return bytes
    const decoded = decoder.decode(bytes.subarray(1))
    if (!Array.isArray(decoded) || decoded[0] !== SNAPSHOT_FORMAT || !(decoded[3] instanceof Uint8Array)) {
      throw new Error("snapshot: member record envelope is damaged")
    }
    for (const id of decoded[1] as unknown[]) if (typeof id === "number") this.named.add(id)
    for (const id of decoded[2] as unknown[]) if (typeof id === "number") this.heldData.add(id)
    return decoded[3]
  }
}

/** The mark, the fields as a 4-array instead of a 3-array, then a bin 32 head: 0xc6, u32 length. */
const envelopeRoom = (fields: Uint8Array): number => 1 + fields.length + 5

/** The log entry saying these members have acknowledged log entries. */
export const heldDataEntry = (ids: readonly number[]): Uint8Array => recordEntry("held", ids)

/**
 * The log entry naming members before a change that drops them: the bootstrap members appear in no
 * configuration entry until the first change, and a removal's entry no longer names its member.
 */
export const namedEntry = (ids: readonly number[]): Uint8Array => recordEntry("named", ids)

const recordEntry = (kind: "held" | "named", ids: readonly number[]): Uint8Array => {
  const body = encoder.encode([kind, ...ids])
  const out = new Uint8Array(body.length + 1)
  out[0] = RECORD_MARK
  out.set(body, 1)
  return out
}
