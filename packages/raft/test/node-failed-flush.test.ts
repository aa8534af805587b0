/**
 * Proves that a replica whose disk fails to make a write durable (fdatasync reports an error) stops:
 * the node reports it as fatal, sends nothing that promises the failed write, and applies nothing
 * proposed after it. Three nodes in virtual time; from one moment every flush fails.
 */
import { expect, test } from "bun:test"
import { Effect } from "effect"
import { address, NodeGroup } from "./support/nodeGroup.ts"

test("a failed flush stops the replica: fatal, nothing sent on it, nothing applied after it", async () => {
  let failing = false
  const fatal = new Map<number, unknown>()
  const appliedAfter: string[] = []
  const group = new NodeGroup(77, {
    flushDelay: Effect.suspend(() => (failing ? Effect.die(new Error("EIO: fdatasync failed")) : Effect.sleep(1))),
    onFatal: (id, error) => {
      if (!fatal.has(id)) fatal.set(id, error)
    },
    onApply: (id, index, data) => {
      const text = new TextDecoder().decode(data)
      if (text === "after") appliedAfter.push(`node ${id} at ${index}`)
    },
  })
  const peers = { 1: address(1), 2: address(2), 3: address(3) }
  const ids = [1, 2, 3]
  try {
    await group.run(async () => {
      for (const id of ids) await group.start(id, peers)
      await group.commit(ids, "before")
      const leader = group.leader(ids)
      expect(leader).toBeDefined()
      failing = true
      group.node(leader as number).proposeUnsafe(new TextEncoder().encode("after"))
      await group.waitFor("every node to stop on its failed flush", () => fatal.size === ids.length, 5_000)
      // Time for anything that should not happen to happen.
      await group.driver.sleep(1_000)
    })
  } finally {
    await group.close()
  }
  expect([...fatal.keys()].sort()).toEqual(ids)
  for (const error of fatal.values()) expect(String(error)).toContain("EIO")
  expect(appliedAfter).toEqual([])
  expect(group.sentBeforeDurable).toEqual([])
})
