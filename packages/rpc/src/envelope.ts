import { Decoder, Encoder } from "@msgpack/msgpack"
import { Schema } from "effect"
import { notRead, readMessage } from "./messageReader.ts"
import { writeMessage } from "./messageWriter.ts"

/**
 * The msgpack envelope inside a (reassembled) datagram. The leading version lets a newer peer
 * reject an older format explicitly instead of misreading it.
 *
 *   request   [1, 0, id, method, payload]
 *   response  [1, 1, id, payload]
 *   error     [1, 2, id, code, message]
 *   one-way   [1, 3, channel, payload]
 *   challenge [1, 4, id, token]                   "prove your address": the reply was too large to
 *                                                 send to an unproven address (see addressProof.ts)
 *   request   [1, 5, id, method, payload, token]  a request resent with the challenge's token
 */
export const ENVELOPE_VERSION = 1

const Id = Schema.Int
export const EnvelopeSchema = Schema.Union([
  Schema.Tuple([Schema.Literal(ENVELOPE_VERSION), Schema.Literal(0), Id, Schema.String, Schema.Unknown]),
  Schema.Tuple([Schema.Literal(ENVELOPE_VERSION), Schema.Literal(1), Id, Schema.Unknown]),
  Schema.Tuple([Schema.Literal(ENVELOPE_VERSION), Schema.Literal(2), Id, Schema.String, Schema.String]),
  Schema.Tuple([Schema.Literal(ENVELOPE_VERSION), Schema.Literal(3), Schema.String, Schema.Unknown]),
  Schema.Tuple([Schema.Literal(ENVELOPE_VERSION), Schema.Literal(4), Id, Schema.Uint8Array]),
  Schema.Tuple([
    Schema.Literal(ENVELOPE_VERSION),
    Schema.Literal(5),
    Id,
    Schema.String,
    Schema.Unknown,
    Schema.Uint8Array,
  ]),
])
export type Envelope = typeof EnvelopeSchema.Type

const decodeEnvelopeExit = Schema.decodeUnknownExit(EnvelopeSchema)

const isId = (x: unknown): x is number => Number.isSafeInteger(x)

/**
 * The envelope as the Schema decodes it (a fresh array, the payload as it is), checked by hand
 * for the shapes every message has; undefined when the Schema must decide (anything unusual).
 */
export const checkedEnvelope = (raw: unknown): Envelope | undefined => {
  if (!Array.isArray(raw) || raw[0] !== ENVELOPE_VERSION) return undefined
  switch (raw[1]) {
    case 0:
      return raw.length === 5 && isId(raw[2]) && typeof raw[3] === "string"
        ? [ENVELOPE_VERSION, 0, raw[2], raw[3], raw[4]]
        : undefined
    case 1:
      return raw.length === 4 && isId(raw[2]) ? [ENVELOPE_VERSION, 1, raw[2], raw[3]] : undefined
    case 3:
      return raw.length === 4 && typeof raw[2] === "string" ? [ENVELOPE_VERSION, 3, raw[2], raw[3]] : undefined
    default:
      return undefined
  }
}

// One encoder/decoder per process: msgpack's are reusable and allocation-heavy to construct.
const encoder = new Encoder({ ignoreUndefined: true })
const limits = { maxStrLength: 8 * 1024 * 1024, maxBinLength: 64 * 1024 * 1024 }
const decoder = new Decoder(limits)

export const encodeEnvelope = (envelope: Envelope): Uint8Array => writeMessage(envelope) ?? encoder.encode(envelope)

/** The msgpack value in `bytes` as `@msgpack/msgpack` decodes it; throws where it throws. */
const decodeMsgpack = (bytes: Uint8Array): unknown => {
  const read = readMessage(bytes, limits)
  return read === notRead ? decoder.decode(bytes) : read
}

/** Undefined for bytes that are not msgpack or not a valid envelope: the caller counts a drop. */
export const decodeEnvelope = (bytes: Uint8Array): Envelope | undefined => {
  let raw: unknown
  try {
    raw = decodeMsgpack(bytes)
  } catch {
    return undefined
  }
  const checked = checkedEnvelope(raw)
  if (checked !== undefined) return checked
  const exit = decodeEnvelopeExit(raw)
  return exit._tag === "Success" ? exit.value : undefined
}
