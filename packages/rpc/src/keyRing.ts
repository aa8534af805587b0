import { hkdfSync } from "node:crypto"

/**
 * What the holder of a key may ask of a server, lowest first. `server` is the servers' own key
 * (Raft, shard pulls and deletes, everything); the others are client keys, as etcd's RBAC roles:
 * `read-only` reads and watches, `read-write` also writes, `admin` also changes membership and
 * the shard configuration. A node without keys treats every datagram as `server`, as before roles.
 */
export type Role = "read-only" | "read-write" | "admin" | "server"

export const roles: readonly Role[] = ["read-only", "read-write", "admin", "server"]

const roleRank: Record<Role, number> = { "read-only": 0, "read-write": 1, admin: 2, server: 3 }

/** Whether a caller holding `held` may do what needs `needed`. */
export const roleAllows = (held: Role, needed: Role): boolean => roleRank[held] >= roleRank[needed]

/** One configured secret and the role it grants to whoever seals datagrams with it. */
export interface KeyGrant {
  readonly secret: string | Uint8Array
  readonly role: Role
}

/**
 * A key as the wire uses it. The secret itself is never used directly: HKDF-SHA256 derives the
 * AES-256-GCM key and, with another label, a 32-bit key id sent in clear in every datagram, so a
 * receiver finds the key (and the role) without trying each one. The id reveals nothing about the
 * key, but it does let an observer tell datagrams of different keys (roles) apart.
 */
export interface RingKey {
  readonly keyId: number
  readonly role: Role
  /** Raw bytes rather than a KeyObject: Bun sets up a cipher from them faster, per datagram. */
  readonly aeadKey: Uint8Array
}

const SALT = "kv datagram key v1"

const deriveBytes = (secret: string | Uint8Array, info: string, length: number): Uint8Array =>
  new Uint8Array(hkdfSync("sha256", secret, SALT, info, length))

export const deriveRingKey = (grant: KeyGrant): RingKey => {
  const idBytes = deriveBytes(grant.secret, "kv key id", 4)
  const id = new DataView(idBytes.buffer).getUint32(0)
  return { keyId: id, role: grant.role, aeadKey: deriveBytes(grant.secret, "kv aes-256-gcm", 32) }
}

/**
 * The keys one node accepts. The first grant is the one it seals with (its own credential); any
 * grant is accepted, so during a rotation the old and the new key both work (see
 * docs/operations.md). Replies go back under the key their request came with.
 */
export class KeyRing {
  readonly sending: RingKey
  private readonly byId = new Map<number, RingKey>()

  constructor(grants: readonly KeyGrant[]) {
    const [first] = grants
    if (first === undefined) throw new RangeError("a key ring needs at least one key")
    for (const grant of grants) {
      if (grant.secret.length === 0) {
        throw new RangeError("an empty key authenticates nothing")
      }
      const key = deriveRingKey(grant)
      const known = this.byId.get(key.keyId)
      // The same secret listed twice is harmless when it grants the same role; two secrets with one
      // id (a 1 in 2^32 chance per pair) or one secret with two roles cannot be told apart.
      if (known !== undefined && known.role !== key.role) {
        throw new RangeError(`two configured keys share key id ${key.keyId.toString(16)} with different roles`)
      }
      if (known !== undefined && !sameBytes(known.aeadKey, key.aeadKey)) {
        throw new RangeError(
          `two different configured keys share key id ${key.keyId.toString(16)}: replace one of them (a new random key)`,
        )
      }
      if (known === undefined) this.byId.set(key.keyId, key)
    }
    this.sending = this.byId.get(deriveRingKey(first).keyId) as RingKey
  }

  get(id: number): RingKey | undefined {
    return this.byId.get(id)
  }

  get size(): number {
    return this.byId.size
  }
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i])
