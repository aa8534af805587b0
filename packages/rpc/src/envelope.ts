import { Decoder, Encoder } from "@msgpack/msgpack"
import { Schema } from "effect"

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
const Envelope = Schema.Union([
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
export type Envelope = typeof Envelope.Type

const decodeEnvelopeExit = Schema.decodeUnknownExit(Envelope)

// One encoder/decoder per process: msgpack's are reusable and allocation-heavy to construct.
const encoder = new Encoder({ ignoreUndefined: true })
const decoder = new Decoder({ maxStrLength: 8 * 1024 * 1024, maxBinLength: 64 * 1024 * 1024 })

export const encodeEnvelope = (envelope: Envelope): Uint8Array => encoder.encode(envelope)

/** Undefined for bytes that are not msgpack or not a valid envelope: the caller counts a drop. */
export const decodeEnvelope = (bytes: Uint8Array): Envelope | undefined => {
  let raw: unknown
  try {
    raw = decoder.decode(bytes)
  } catch {
    return undefined
  }
  const exit = decodeEnvelopeExit(raw)
  return exit._tag === "Success" ? exit.value : undefined
}
