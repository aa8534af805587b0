/**
 * Controller commands as proposed to Raft: a flat msgpack array, encoded once by the leader.
 *
 *   [clientId, seq, ackedBelow, nowMs, "join", { gid: servers[] }]
 *   [clientId, seq, ackedBelow, nowMs, "leave", gids[]]
 *   [clientId, seq, ackedBelow, nowMs, "move", shard, gid]
 *   [clientId, seq, ackedBelow, nowMs, "servers", gid, servers[]]
 *   [clientId, seq, ackedBelow, nowMs, "register", gid, incarnation, configNum]
 *   [clientId, seq, ackedBelow, nowMs, "succeed", gid, incarnation]
 */
import { Decoder, Encoder } from "@msgpack/msgpack"
import { Schema } from "effect"
import type { ConfigOp } from "../config/index.ts"

export type AdminOp = Exclude<ConfigOp, { op: "query" }>

export interface ControllerCommand {
  readonly clientId: number
  readonly seq: number
  readonly ackedBelow: number
  readonly nowMs: number
  readonly op: AdminOp
}

const encoder = new Encoder()
const decoder = new Decoder()

export const encodeControllerCommand = (c: ControllerCommand): Uint8Array => {
  const head = [c.clientId, c.seq, c.ackedBelow, c.nowMs]
  switch (c.op.op) {
    case "join":
      return encoder.encode([...head, "join", c.op.groups])
    case "leave":
      return encoder.encode([...head, "leave", c.op.gids])
    case "move":
      return encoder.encode([...head, "move", c.op.shard, c.op.gid])
    case "servers":
      return encoder.encode([...head, "servers", c.op.gid, c.op.servers])
    case "register":
      return encoder.encode([...head, "register", c.op.gid, c.op.incarnation, c.op.configNum])
    case "succeed":
      return encoder.encode([...head, "succeed", c.op.gid, c.op.incarnation])
  }
}

const Positive = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const Time = Schema.Number.check(Schema.isGreaterThanOrEqualTo(0))
const Head = [Positive, Positive, Positive, Time] as const
const Wire = Schema.Union([
  Schema.Tuple([...Head, Schema.Literal("join"), Schema.Record(Schema.String, Schema.Array(Schema.String))]),
  Schema.Tuple([...Head, Schema.Literal("leave"), Schema.Array(Schema.Int)]),
  Schema.Tuple([...Head, Schema.Literal("move"), Schema.Int, Schema.Int]),
  Schema.Tuple([...Head, Schema.Literal("servers"), Schema.Int, Schema.Array(Schema.String)]),
  Schema.Tuple([...Head, Schema.Literal("register"), Schema.Int, Schema.String, Schema.Int]),
  Schema.Tuple([...Head, Schema.Literal("succeed"), Schema.Int, Schema.String]),
])
const decodeWire = Schema.decodeUnknownExit(Wire)

/** Undefined for bytes that are not a well-formed command. Never throws. */
export const decodeControllerCommand = (bytes: Uint8Array): ControllerCommand | undefined => {
  let raw: unknown
  try {
    raw = decoder.decode(bytes)
  } catch {
    return undefined
  }
  const exit = decodeWire(raw)
  if (exit._tag === "Failure") return undefined
  const w = exit.value
  const head = { clientId: w[0], seq: w[1], ackedBelow: w[2], nowMs: w[3] }
  switch (w[4]) {
    case "join":
      return { ...head, op: { op: "join", groups: w[5] as Record<string, string[]> } }
    case "leave":
      return { ...head, op: { op: "leave", gids: [...w[5]] } }
    case "move":
      return { ...head, op: { op: "move", shard: w[5], gid: w[6] } }
    case "servers":
      return { ...head, op: { op: "servers", gid: w[5], servers: [...w[6]] } }
    case "register":
      return { ...head, op: { op: "register", gid: w[5], incarnation: w[6], configNum: w[7] } }
    case "succeed":
      return { ...head, op: { op: "succeed", gid: w[5], incarnation: w[6] } }
  }
}
