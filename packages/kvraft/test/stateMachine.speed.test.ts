/**
 * Measures applies per second of small puts, decoding included, as a replica's apply loop does.
 * A loose guard against gross regressions only; real numbers belong in bench/.
 */
import { expect, test } from "bun:test"
import { decodeCommand, encodeCommand, KvStateMachine } from "../src/stateMachine/index.ts"

test("applying small put commands, decode included, is fast", () => {
  const clients = 16
  const count = 200_000
  // Encoded up front: the leader encodes, every replica only decodes and applies.
  const entries: Uint8Array[] = []
  for (let i = 0; i < count; i++) {
    const clientId = 1_000_003 * (1 + (i % clients))
    const seq = 1 + Math.floor(i / clients)
    const op = { op: "put", key: `key${i % 1000}`, value: `value-${i}` } as const
    entries.push(encodeCommand({ clientId, seq, ackedBelow: seq, nowMs: 1_700_000_000_000 + i, op }))
  }
  const machine = new KvStateMachine()
  const started = performance.now()
  for (const bytes of entries) {
    const cmd = decodeCommand(bytes)
    if (cmd === undefined || !machine.apply(cmd).ok) throw new Error("a well-formed put failed")
  }
  const seconds = (performance.now() - started) / 1000
  const perSecond = Math.round(count / seconds)
  console.log(`KvStateMachine: ${perSecond} small puts/s including decodeCommand (${count} in ${seconds.toFixed(3)} s)`)
  expect(machine.size()).toBe(1000)
  expect(machine.sessions.count()).toBe(clients)
  expect(perSecond).toBeGreaterThan(20_000)
}, 30_000)
