import type { FastDecoder } from "@kv/rpc"

/**
 * Hand-written checks for the requests and replies of puts, appends, deletes and gets, which are
 * nearly all of a busy group's traffic: the Schema union behind each method tries its members one
 * by one and costs microseconds per message on both sides. Each check accepts only what its Schema
 * in protocol.ts accepts and gives what the Schema gives (a fresh object of the schema's fields, in
 * its order); anything else (a lease, a conditional write, an error other than WrongLeader, an
 * extra field where a later union member could match) is undefined and left to the Schema.
 */

type Fields = { readonly [key: string]: unknown }

const isObject = (x: unknown): x is Fields => typeof x === "object" && x !== null && !Array.isArray(x)
const isPositive = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 1

type SimpleOp =
  | { readonly op: "put"; readonly key: string; readonly value: string }
  | { readonly op: "append"; readonly key: string; readonly value: string }
  | { readonly op: "delete"; readonly key: string }

const simpleOp = (op: unknown): SimpleOp | undefined => {
  if (!isObject(op) || typeof op.key !== "string") return undefined
  switch (op.op) {
    case "put":
      // A lease (even an invalid one) is the Schema's to judge.
      if ("lease" in op || typeof op.value !== "string") return undefined
      return { op: "put", key: op.key, value: op.value }
    case "append":
      return typeof op.value === "string" ? { op: "append", key: op.key, value: op.value } : undefined
    case "delete":
      return { op: "delete", key: op.key }
    default:
      return undefined
  }
}

export interface SimpleCommandRequest {
  readonly clientId: number
  readonly seq: number
  readonly ackedBelow: number
  readonly op: SimpleOp
}

export const fastCommandRequest: FastDecoder<SimpleCommandRequest> = (input) => {
  if (!isObject(input) || !isPositive(input.clientId) || !isPositive(input.seq) || !isPositive(input.ackedBelow)) {
    return undefined
  }
  const op = simpleOp(input.op)
  return op === undefined ? undefined : { clientId: input.clientId, seq: input.seq, ackedBelow: input.ackedBelow, op }
}

interface WrongLeader {
  readonly ok: false
  readonly error: "WrongLeader"
  readonly leaderHint: string
}

const wrongLeader = (input: Fields): WrongLeader | undefined =>
  input.error === "WrongLeader" && typeof input.leaderHint === "string"
    ? { ok: false, error: "WrongLeader", leaderHint: input.leaderHint }
    : undefined

/** `{ ok: true }` (a write's plain success) or WrongLeader. */
export const fastCommandReply: FastDecoder<{ readonly ok: true } | WrongLeader> = (input) => {
  if (!isObject(input)) return undefined
  // With a `reply` field the first union member (a conditional write's answer) may match instead.
  if (input.ok === true) return "reply" in input ? undefined : { ok: true }
  return input.ok === false ? wrongLeader(input) : undefined
}

export const fastGetRequest: FastDecoder<{ readonly key: string }> = (input) =>
  isObject(input) && typeof input.key === "string" ? { key: input.key } : undefined

export const fastGetReply: FastDecoder<{ readonly ok: true; readonly value: string } | WrongLeader> = (input) => {
  if (!isObject(input)) return undefined
  if (input.ok === true) return typeof input.value === "string" ? { ok: true, value: input.value } : undefined
  return input.ok === false ? wrongLeader(input) : undefined
}
