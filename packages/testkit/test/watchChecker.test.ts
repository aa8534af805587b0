/**
 * Proves that the watch checker catches what it is for: a gap, a repeat, an event from nowhere, a
 * watcher going back, a progress mark past a missed event, and a history that does not add up to
 * the final store or loses an acknowledged write.
 */
import { describe, expect, test } from "bun:test"
import {
  type CheckedEvent,
  checkStoreHistory,
  checkWatcher,
  type WatcherRecord,
  type WatchObservation,
} from "../src/index.ts"

const put = (
  key: string,
  value: string,
  modRevision: number,
  version = 1,
  createRevision = modRevision,
): CheckedEvent => ({
  type: "put",
  key,
  value,
  modRevision,
  createRevision,
  version,
})
const del = (key: string, modRevision: number): CheckedEvent => ({
  type: "delete",
  key,
  modRevision,
  createRevision: 0,
  version: 0,
})

const history = [
  put("a", "a1", 1),
  put("b", "b1", 2),
  put("a", "a2", 3, 2, 1),
  del("a", 4),
  put("ab", "ab1", 5),
  put("a", "a3", 5),
]
const watcher = (observations: WatchObservation[], prefix = false): WatcherRecord => ({
  name: "w",
  key: "a",
  prefix,
  after: 0,
  observations,
})
const ev = (event: CheckedEvent): WatchObservation => ({ kind: "event", event })
const progress = (revision: number): WatchObservation => ({ kind: "progress", revision })

describe("watch checker", () => {
  test("accepts exactly the range's events in order, with progress marks", () => {
    expect(
      checkWatcher(
        history,
        watcher([ev(history[0]!), progress(2), ev(history[2]!), ev(history[3]!), ev(history[5]!)]),
        5,
      ),
    ).toBeUndefined()
    expect(
      checkWatcher(
        history,
        watcher([ev(history[0]!), ev(history[2]!), ev(history[3]!), ev(history[4]!), ev(history[5]!)], true),
        5,
      ),
    ).toBeUndefined()
  })

  test("finds a gap, a repeat, a stranger, going back and a premature progress mark", () => {
    expect(checkWatcher(history, watcher([ev(history[0]!), ev(history[3]!)]))).toMatch(/gap/)
    expect(checkWatcher(history, watcher([ev(history[0]!), ev(history[0]!)]))).toMatch(/twice|back/)
    expect(checkWatcher(history, watcher([ev(put("a", "zz", 1))]))).toMatch(/gap or a wrong event/)
    expect(checkWatcher(history, watcher([progress(3), progress(2)]))).toMatch(/never got|went back/)
    expect(checkWatcher(history, watcher([ev(history[0]!), progress(3)]))).toMatch(/never got put "a"@3/)
    expect(checkWatcher(history, watcher([ev(history[0]!)]), 5)).toMatch(/never got/)
  })

  test("checks the reference history against the final store and the writers", () => {
    const final = new Map([
      ["b", { value: "b1", version: 1, modRevision: 2, createRevision: 2 }],
      ["ab", { value: "ab1", version: 1, modRevision: 5, createRevision: 5 }],
      ["a", { value: "a3", version: 1, modRevision: 5, createRevision: 5 }],
    ])
    const attempted = new Set(["a1", "b1", "a2", "ab1", "a3", "lost"])
    expect(checkStoreHistory(history, final, 5, attempted, new Set(["a1", "a3"]))).toBeUndefined()
    expect(checkStoreHistory(history, final, 5, attempted, new Set(["lost"]))).toMatch(/acknowledged/)
    expect(checkStoreHistory(history, final, 6, attempted, new Set())).toMatch(/ends at revision 5/)
    expect(checkStoreHistory([history[0]!, history[2]!], final, 3, attempted, new Set())).toMatch(/jumps/)
    expect(checkStoreHistory(history, new Map([...final, ["c", final.get("b")!]]), 5, attempted, new Set())).toMatch(
      /replaying/,
    )
    expect(checkStoreHistory(history, final, 5, new Set(["a1"]), new Set())).toMatch(/no writer wrote/)
  })
})
