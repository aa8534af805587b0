/**
 * A state machine restored from its own snapshot again and again (through both snapshot formats:
 * msgpack under 256 keys, the binary entries above) answers every command, read, listing and watch
 * history exactly as one that was never restored: versions and revisions through deletes and
 * re-puts, code point order of non-ASCII keys and keys that are prefixes of each other, leases,
 * transactions and retried commands. Replay with KV_SEED=<seed>.
 */
import { expect, test } from "bun:test"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { type KvCommand, type KvOp, KvStateMachine, type KvTxnOp } from "../src/stateMachine/index.ts"

const alphabet = ["a", "b", "/", "é", "ж", "中", "\u{1F600}", "\uE000", "\uFFFD", "0", "\u007f", "\u0080"]

const word = (random: SeededRandom, min: number, max: number) => {
  let s = ""
  for (let n = min + random.int(max - min + 1); n > 0; n--) s += alphabet[random.int(alphabet.length)]
  return s
}

test("restoring from snapshots at any point changes no answer", () => {
  const seed = seedFromEnv()
  console.log(`stateMachine snapshot cycles: seed ${seed} (replay: KV_SEED=${seed})`)
  const random = new SeededRandom(seed)
  // Enough keys that the store crosses 256 both ways, so both formats and their switch are used.
  const keys: string[] = []
  for (let i = 0; i < 700; i++) keys.push(word(random, 0, 4))
  const keyOf = () => keys[random.int(keys.length)]!
  const plain = new KvStateMachine()
  let restored = new KvStateMachine()
  const clients = [11, 2 ** 52 + 7, 9_007_199_254_740_991]
  const seqs = new Map<number, number>()
  const sent: KvCommand[] = []
  const leases: number[] = []
  let nowMs = 1_700_000_000_000
  let restores = 0
  let binaryRestores = 0
  let deleting = false

  const txnOp = (): KvTxnOp => {
    const roll = random.int(3)
    return roll === 0
      ? { op: "put", key: keyOf(), value: word(random, 0, 6) }
      : roll === 1
        ? { op: "delete", key: keyOf() }
        : { op: "get", key: keyOf() }
  }
  const newOp = (): KvOp => {
    const roll = random.int(100)
    const key = keyOf()
    // Phases of mostly deletes bring the store below the msgpack/binary threshold again.
    if ((deleting && random.chance(0.7)) || roll < 5) return { op: "delete", key }
    if (roll < 60) {
      const lease = leases.length > 0 && random.chance(0.1) ? leases[random.int(leases.length)] : undefined
      return lease === undefined
        ? { op: "put", key, value: word(random, 0, 8) }
        : { op: "put", key, value: word(random, 0, 8), lease }
    }
    if (roll < 70) return { op: "append", key, value: word(random, 1, 3) }
    if (roll < 80) {
      const targets = ["version", "modRevision", "createRevision"] as const
      const when = { target: targets[random.int(3)]!, cmp: "==" as const, value: random.int(4) }
      return random.chance(0.5)
        ? { op: "casPut", key, value: word(random, 0, 4), when }
        : { op: "casDelete", key, when }
    }
    if (roll < 90) {
      const compare = [{ key, target: "version" as const, cmp: ">" as const, value: random.int(3) }]
      return { op: "txn", key, compare, success: [txnOp(), txnOp()], failure: [txnOp()] }
    }
    if (roll < 95) return { op: "leaseGrant", key: "", ttlMs: 60_000 }
    const lease = leases.length > 0 ? leases[random.int(leases.length)]! : 1
    return { op: "leaseRevoke", key: "", lease }
  }

  for (let step = 0; step < 10_000; step++) {
    nowMs += random.int(3)
    deleting = step % 2_000 >= 1_500
    const roll = random.int(100)
    if (roll < 80) {
      let cmd: KvCommand
      if (sent.length > 0 && random.chance(0.05)) {
        // A retry: answered from the session, applied once.
        cmd = sent[random.int(sent.length)]!
      } else {
        const clientId = clients[random.int(clients.length)]!
        const seq = (seqs.get(clientId) ?? 0) + 1
        seqs.set(clientId, seq)
        cmd = { clientId, seq, ackedBelow: Math.max(1, seq - 20), nowMs, op: newOp() }
        sent.push(cmd)
        if (sent.length > 60) sent.shift()
      }
      const result = plain.apply(cmd)
      expect(restored.apply(cmd)).toEqual(result)
      if (result.ok && result.reply?.kind === "lease" && cmd.op.op === "leaseGrant") leases.push(result.reply.lease)
    } else if (roll < 90) {
      const key = keyOf()
      expect(restored.getEntry(key)).toEqual(plain.getEntry(key))
    } else if (roll < 97) {
      const prefix = random.chance(0.3) ? "" : word(random, 0, 2)
      const after = random.chance(0.5) ? undefined : keyOf()
      const options = {
        limit: 1 + random.int(40),
        ...(after === undefined ? {} : { after }),
        keysOnly: random.chance(0.2),
      }
      expect(restored.list(prefix, options)).toEqual(plain.list(prefix, options))
    } else {
      const bytes = restored.snapshot()
      if (bytes[0] === 0xc1) binaryRestores++
      restored = KvStateMachine.restore(bytes, {})
      restores++
    }
    expect(restored.size()).toBe(plain.size())
    expect(restored.revision).toBe(plain.revision)
  }
  expect(restored.history.all()).toEqual(plain.history.all())
  expect(restored.list("", { limit: 100_000 })).toEqual(plain.list("", { limit: 100_000 }))
  expect(Buffer.from(restored.snapshot()).equals(Buffer.from(plain.snapshot()))).toBe(true)
  console.log(`stateMachine snapshot cycles: ${restores} restores (${binaryRestores} binary), ${plain.size()} keys`)
  expect(binaryRestores).toBeGreaterThan(10)
  expect(restores - binaryRestores).toBeGreaterThan(10)
}, 60_000)
