/**
 * The rule of `writeHintFor`: a follower or candidate always waits for its write; a leader only when
 * the write is its one piece of work (one entry after everything committed, no read pending).
 */
import { expect, test } from "bun:test"
import type { Entry, Role } from "../src/core/index.ts"
import { writeHintFor } from "../src/node/writeHint.ts"

const entries = (from: number, count: number): Entry[] =>
  Array.from({ length: count }, (_, k) => ({ term: 2, index: from + k, data: new Uint8Array(1) }))

const waits = (role: Role, commitIndex: number, readsPending: boolean, batch: readonly Entry[]) =>
  writeHintFor(role, commitIndex, readsPending, batch).callerWaits

test("followers and candidates wait for every write, whatever it holds", () => {
  for (const role of ["follower", "pre-candidate", "candidate"] as const) {
    expect(waits(role, 0, false, entries(1, 1))).toBe(true)
    expect(waits(role, 3, true, entries(10, 50))).toBe(true)
    expect(waits(role, 3, false, [])).toBe(true)
  }
})

test("a leader waits only for one entry after everything committed, with no read pending", () => {
  expect(waits("leader", 9, false, entries(10, 1))).toBe(true)
  // A hard state alone (a new term's vote) holds nothing else either.
  expect(waits("leader", 9, false, [])).toBe(true)
  // Several clients' entries: answers for the batch and new proposals arrive during the flush.
  expect(waits("leader", 9, false, entries(10, 2))).toBe(false)
  // An earlier batch not yet committed: acks that commit it arrive during this flush.
  expect(waits("leader", 8, false, entries(10, 1))).toBe(false)
  // A read waiting or in a round: its heartbeats' answers arrive during the flush.
  expect(waits("leader", 9, true, entries(10, 1))).toBe(false)
})
