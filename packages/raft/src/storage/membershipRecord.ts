/**
 * A membership as stored in WAL configuration records and snapshot files: msgpack
 * `[[id, role, address], ...]` with role 1 = voter, 2 = learner. Decoding checks every field, so a
 * record whose checksum matches but whose body is not a membership counts as undecodable.
 */
import { decode, encode } from "@msgpack/msgpack"
import type { Member, Membership } from "../core/types.ts"

const VOTER = 1
const LEARNER = 2

export const encodeMembership = (m: Membership): Uint8Array =>
  encode(m.members.map((x) => [x.id, x.role === "voter" ? VOTER : LEARNER, x.address]))

export const decodeMembership = (bytes: Uint8Array): Membership | undefined => {
  let value: unknown
  try {
    value = decode(bytes)
  } catch {
    return undefined
  }
  if (!Array.isArray(value)) return undefined
  const members: Member[] = []
  for (const item of value) {
    if (!Array.isArray(item) || item.length !== 3) return undefined
    const [id, role, address] = item as unknown[]
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 1) return undefined
    if ((role !== VOTER && role !== LEARNER) || typeof address !== "string") return undefined
    members.push({ id, role: role === VOTER ? "voter" : "learner", address })
  }
  return { members }
}
