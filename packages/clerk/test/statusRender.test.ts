/**
 * Proves that `kv status` says a shard group's leader is still restoring the snapshot it started
 * from, instead of listing the empty machine it holds meanwhile (configuration #0, serving nothing),
 * which read as a group that had lost its shards.
 */
import { expect, test } from "bun:test"
import { type ClusterStatus, type GroupShards, renderStatus } from "../src/cli/status.ts"

const group = (overrides: Partial<GroupShards>): GroupShards => ({
  configNum: 4,
  serving: [0, 1, 2, 3, 4],
  pulling: [],
  handingOff: [],
  parked: [],
  retired: "",
  restoring: false,
  ...overrides,
})

const status = (groups: Record<string, GroupShards>): ClusterStatus => ({
  replicas: [],
  groups,
  shards: { "100": [0, 1, 2, 3, 4], "101": [5, 6, 7, 8, 9] },
  configNum: 4,
})

test("a group whose leader restores its snapshot is shown restoring, not serving nothing at #0", () => {
  const out = renderStatus(
    status({
      "100": group({}),
      "101": group({ configNum: 0, serving: [], parked: [7], restoring: true }),
    }),
  )
  expect(out).toContain("group 100: assigned 0,1,2,3,4  serving 0,1,2,3,4  pulling -  handing off -  (at #4)")
  expect(out).toContain("group 101: assigned 5,6,7,8,9  (its leader is restoring its snapshot)")
  expect(out).not.toContain("(at #0)")
  expect(out).not.toContain("parked 7")
})
