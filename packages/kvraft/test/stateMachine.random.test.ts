/**
 * Proves that a KvStateMachine applies each (client, seq) exactly once, in first-arrival order,
 * when many clients with several outstanding writes retry through a network that duplicates
 * and reorders their commands, and that snapshot/restore at any point changes nothing.
 * Replay a run with KV_SEED=<seed>.
 */
import { expect, test } from "bun:test"
import { type KvCommand, type KvOp, type KvResult, KvStateMachine } from "../src/stateMachine/index.ts"

/** splitmix32: one 32-bit state, good enough to drive a test and cheap to replay. */
const seededRandom = (seed: number) => {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x9e3779b9) >>> 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad)
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97)
    return ((z ^ (z >>> 15)) >>> 0) / 4294967296
  }
  return { next, int: (n: number) => Math.floor(next() * n), chance: (p: number) => next() < p }
}

const seedFromEnv = (): number => {
  const text = process.env.KV_SEED
  if (text !== undefined && /^\d+$/.test(text)) return Number(text) >>> 0
  return Math.floor(Math.random() * 2 ** 32)
}

/** The specification: every (client, seq) is applied once, when it first arrives; nothing is forgotten. */
class ExactlyOnceModel {
  readonly data = new Map<string, string>()
  readonly #floors = new Map<number, number>()
  readonly #results = new Map<string, KvResult>()

  constructor(readonly maxValueBytes: number) {}

  apply(cmd: KvCommand): { ok: boolean; error?: string } {
    const floor = Math.max(this.#floors.get(cmd.clientId) ?? 1, cmd.ackedBelow)
    this.#floors.set(cmd.clientId, floor)
    if (cmd.seq < floor) return { ok: false, error: "Stale" }
    const id = `${cmd.clientId}:${cmd.seq}`
    const earlier = this.#results.get(id)
    if (earlier !== undefined) return shape(earlier)
    const result = this.#applyOp(cmd.op)
    this.#results.set(id, result)
    return shape(result)
  }

  #applyOp(op: KvOp): KvResult {
    // The test only uses ASCII, so string length is the UTF-8 size.
    if (op.op === "delete") this.data.delete(op.key)
    else if (op.op === "put" || op.op === "append") {
      const value = op.op === "put" ? op.value : (this.data.get(op.key) ?? "") + op.value
      if (value.length > this.maxValueBytes) return { ok: false, error: "ValueTooLarge", message: "" }
      this.data.set(op.key, value)
    }
    return { ok: true }
  }
}

const shape = (result: KvResult): { ok: boolean; error?: string } =>
  result.ok ? { ok: true } : { ok: false, error: result.error }

interface SimClient {
  readonly clientId: number
  nextSeq: number
  /** Lowest seq whose result this client has not received. */
  ackedBelow: number
  readonly received: Set<number>
  /** Every op this client ever sent, so a seq is always the same op. */
  readonly ops: Map<number, KvOp>
}

test("random duplicated and reordered commands from many clients apply exactly once", () => {
  const seed = seedFromEnv()
  console.log(`stateMachine random: seed ${seed} (replay with KV_SEED=${seed})`)
  const rng = seededRandom(seed)
  const limits = { maxValueBytes: 96, maxOutstandingPerClient: 6 }
  const steps = 40_000
  const keys = ["a", "b", "c", "d", "e"]

  const clients: SimClient[] = []
  for (let i = 0; i < 8; i++) {
    // 53-bit ids like the clerk's, drawn from the seed.
    const clientId = 1 + rng.int(2 ** 21) * 2 ** 32 + rng.int(2 ** 32)
    clients.push({ clientId, nextSeq: 1, ackedBelow: 1, received: new Set(), ops: new Map() })
  }
  const model = new ExactlyOnceModel(limits.maxValueBytes)
  const plain = new KvStateMachine(limits) // never restored
  let restored = new KvStateMachine(limits) // restored from its own snapshot now and then
  let inFlight: KvCommand[] = []
  let nowMs = 1_700_000_000_000
  let applied = 0
  let restores = 0
  let staleAnswers = 0
  let tooLarge = 0
  let repeats = 0
  const seen = new Set<string>()

  const send = (client: SimClient, seq: number) => {
    const op = client.ops.get(seq)!
    // Leaders' clocks disagree a little; log time must still be fine.
    const skew = rng.chance(0.1) ? -rng.int(5_000) : 0
    inFlight.push({ clientId: client.clientId, seq, ackedBelow: client.ackedBelow, nowMs: nowMs + skew, op })
  }

  for (let step = 0; step < steps; step++) {
    nowMs += rng.int(3)
    const client = clients[rng.int(clients.length)]!
    const action = rng.next()
    if (action < 0.3) {
      // A new command, if the client's window allows.
      if (client.nextSeq < client.ackedBelow + limits.maxOutstandingPerClient) {
        const seq = client.nextSeq++
        const key = keys[rng.int(keys.length)]!
        const kind = rng.next()
        const op: KvOp =
          kind < 0.75
            ? { op: "append", key, value: `${client.clientId % 1000}.${seq};` }
            : kind < 0.9
              ? { op: "put", key, value: `p${seq}` }
              : { op: "delete", key }
        client.ops.set(seq, op)
        send(client, seq)
      }
    } else if (action < 0.45) {
      // A retry of a command still waiting for its result.
      const waiting = [...client.ops.keys()].filter((seq) => !client.received.has(seq))
      if (waiting.length > 0) send(client, waiting[rng.int(waiting.length)]!)
    } else if (inFlight.length > 0) {
      // Deliver any in-flight command (reordering); sometimes it stays in flight (duplication).
      const index = rng.int(inFlight.length)
      const cmd = inFlight[index]!
      if (!rng.chance(0.2)) {
        inFlight[index] = inFlight[inFlight.length - 1]!
        inFlight.pop()
      }
      const expected = model.apply(cmd)
      const result = plain.apply(cmd)
      const again = restored.apply(cmd)
      applied++
      expect(again).toEqual(result)
      if (!(shape(result).ok === expected.ok && shape(result).error === expected.error)) {
        throw new Error(
          `seed ${seed} step ${step}: ${JSON.stringify(cmd)} gave ${JSON.stringify(result)}, model ${JSON.stringify(expected)}`,
        )
      }
      if (!result.ok && result.error === "ValueTooLarge") tooLarge++
      const id = `${cmd.clientId}:${cmd.seq}`
      if (seen.has(id)) repeats++
      seen.add(id)
      const sender = clients.find((c) => c.clientId === cmd.clientId)!
      if (!result.ok && result.error === "Stale") {
        // Only ever for a result the client already holds: it is not waiting for it.
        staleAnswers++
        expect(sender.received.has(cmd.seq)).toBe(true)
      } else if (rng.chance(0.8)) {
        // The reply arrives (or is lost and the client will retry).
        sender.received.add(cmd.seq)
        while (sender.received.has(sender.ackedBelow)) sender.ackedBelow++
      }
      expect(plain.sessions.storedResultCount()).toBeLessThanOrEqual(clients.length * limits.maxOutstandingPerClient)
    }
    if (rng.chance(0.002)) {
      restored = KvStateMachine.restore(restored.snapshot(), limits)
      restores++
    }
    // Keep the network bounded, as a real one is: old datagrams are eventually gone.
    if (inFlight.length > 200) inFlight = inFlight.slice(-100)
  }

  console.log(
    `stateMachine random: ${applied} deliveries, ${restores} restores, ${repeats} repeats, ${staleAnswers} Stale, ` +
      `${tooLarge} ValueTooLarge, ` +
      `${plain.sessions.storedResultCount()} stored results, snapshot ${plain.snapshot().length} bytes`,
  )
  expect(restores).toBeGreaterThan(10)
  expect(staleAnswers).toBeGreaterThan(0)
  expect(repeats).toBeGreaterThan(steps / 10)
  expect(tooLarge).toBeGreaterThan(0)
  for (const key of keys) {
    expect(plain.get(key)).toBe(model.data.get(key) ?? "")
    expect(restored.get(key)).toBe(model.data.get(key) ?? "")
  }
  expect(plain.size()).toBe(model.data.size)
  expect(restored.snapshot()).toEqual(plain.snapshot())
}, 60_000)
