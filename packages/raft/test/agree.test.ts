/**
 * Lab 3B: log agreement. Our leaders append a no-op entry when elected (§8: it commits earlier
 * terms' entries and enables ReadIndex), so a command's index is offset from the lab's by the
 * no-ops before it; each test checks the same relation the lab checks, relative to that offset.
 */
import { describe, expect } from "bun:test"
import { RAFT_ELECTION_TIMEOUT_MS } from "./support/labHarness.ts"
import { labTest } from "./support/labTest.ts"

const FILE = "packages/raft/test/agree.test.ts"

describe("3B: log agreement", () => {
  labTest("basic agreement (TestBasicAgree3B)", FILE, 3, {}, async ({ lab }) => {
    let expected = -1
    for (let i = 1; i <= 3; i++) {
      const before = lab.nCommitted(expected === -1 ? 1 : expected)
      if (expected !== -1) expect(before.count).toBe(0) // committed before Start()
      const index = await lab.one(i * 100, 3, false)
      if (expected !== -1) expect(index).toBe(expected)
      expected = index + 1
    }
  })

  labTest("RPC byte count (TestRPCBytes3B)", FILE, 3, {}, async ({ lab, random }) => {
    await lab.one(99, 3, false)
    const bytes0 = lab.bytesTotal()
    let sent = 0
    for (let i = 0; i < 10; i++) {
      let cmd = ""
      while (cmd.length < 5000) cmd += random.int(36).toString(36)
      await lab.one(cmd, 3, false)
      sent += cmd.length
    }
    const got = lab.bytesTotal() - bytes0
    const expected = 3 * sent
    console.log(`RPC bytes for ${sent} command bytes: ${got} (bound ${expected + 50_000})`)
    expect(got).toBeLessThanOrEqual(expected + 50_000)
  })

  labTest("test progressive failure of followers (TestFollowerFailure3B)", FILE, 3, {}, async ({ lab }) => {
    await lab.one(101, 3, false)
    const leader1 = await lab.checkOneLeader()
    lab.disconnect((leader1 + 1) % 3)
    await lab.one(102, 2, false)
    await lab.sleep(RAFT_ELECTION_TIMEOUT_MS)
    await lab.one(103, 2, false)
    const leader2 = await lab.checkOneLeader()
    lab.disconnect((leader2 + 1) % 3)
    lab.disconnect((leader2 + 2) % 3)
    const r = lab.startCommand(leader2, 104)
    expect(r.isLeader).toBe(true)
    await lab.sleep(2 * RAFT_ELECTION_TIMEOUT_MS)
    expect(lab.nCommitted(r.index).count).toBe(0)
  })

  labTest("test failure of leaders (TestLeaderFailure3B)", FILE, 3, {}, async ({ lab }) => {
    await lab.one(101, 3, false)
    const leader1 = await lab.checkOneLeader()
    lab.disconnect(leader1)
    await lab.one(102, 2, false)
    await lab.sleep(RAFT_ELECTION_TIMEOUT_MS)
    await lab.one(103, 2, false)
    const leader2 = await lab.checkOneLeader()
    lab.disconnect(leader2)
    const indexes: number[] = []
    for (let i = 0; i < 3; i++) {
      const r = lab.startCommand(i, 104)
      if (r.isLeader) indexes.push(r.index)
    }
    await lab.sleep(2 * RAFT_ELECTION_TIMEOUT_MS)
    for (let index = 1; index <= lab.maxIndex + 5; index++) {
      const { count, cmd } = lab.nCommitted(index)
      if (count > 0) expect(cmd).not.toBe(104)
    }
    for (const index of indexes) expect(lab.nCommitted(index).count).toBe(0)
  })

  labTest("agreement after follower reconnects (TestFailAgree3B)", FILE, 3, {}, async ({ lab }) => {
    await lab.one(101, 3, false)
    const leader = await lab.checkOneLeader()
    lab.disconnect((leader + 1) % 3)
    await lab.one(102, 2, false)
    await lab.one(103, 2, false)
    await lab.sleep(RAFT_ELECTION_TIMEOUT_MS)
    await lab.one(104, 2, false)
    await lab.one(105, 2, false)
    lab.connect((leader + 1) % 3)
    // The rejoined follower catches up and takes part in new agreements.
    await lab.one(106, 3, true)
    await lab.sleep(RAFT_ELECTION_TIMEOUT_MS)
    await lab.one(107, 3, true)
  })

  labTest("no agreement if too many followers disconnect (TestFailNoAgree3B)", FILE, 5, {}, async ({ lab }) => {
    const index1 = await lab.one(10, 5, false)
    const leader = await lab.checkOneLeader()
    lab.disconnect((leader + 1) % 5)
    lab.disconnect((leader + 2) % 5)
    lab.disconnect((leader + 3) % 5)
    const r = lab.startCommand(leader, 20)
    expect(r.isLeader).toBe(true)
    expect(r.index).toBe(index1 + 1)
    await lab.sleep(2 * RAFT_ELECTION_TIMEOUT_MS)
    expect(lab.nCommitted(r.index).count).toBe(0)
    lab.connect((leader + 1) % 5)
    lab.connect((leader + 2) % 5)
    lab.connect((leader + 3) % 5)
    // The disconnected majority may have elected a leader; either way the uncommitted 20 is at
    // index1+1 on at most two servers, and the next command lands just after the new leader's no-op.
    const leader2 = await lab.checkOneLeader()
    const r2 = lab.startCommand(leader2, 30)
    expect(r2.isLeader).toBe(true)
    expect(r2.index).toBeGreaterThanOrEqual(index1 + 1)
    expect(r2.index).toBeLessThanOrEqual(index1 + 3)
    await lab.one(1000, 5, true)
  })

  labTest("concurrent Start()s (TestConcurrentStarts3B)", FILE, 3, {}, async ({ lab }) => {
    let success = false
    for (let attempt = 0; attempt < 5 && !success; attempt++) {
      if (attempt > 0) await lab.sleep(3_000)
      const leader = await lab.checkOneLeader()
      const first = lab.startCommand(leader, 1)
      if (!first.isLeader) continue
      const started = await Promise.all(
        Array.from({ length: 5 }, async (_, i) => {
          const r = lab.startCommand(leader, 100 + i)
          return r.isLeader && r.term === first.term ? r.index : -1
        }),
      )
      if (started.includes(-1)) continue
      let termChanged = false
      for (let j = 0; j < 3; j++) if (lab.getState(j).term !== first.term) termChanged = true
      if (termChanged) continue
      const values: unknown[] = []
      for (const index of started) {
        const cmd = await lab.wait(index, 3, first.term)
        if (cmd === undefined) {
          termChanged = true
          break
        }
        values.push(cmd)
      }
      if (termChanged) continue
      expect([...values].sort()).toEqual([100, 101, 102, 103, 104])
      success = true
    }
    expect(success).toBe(true)
  })

  labTest("rejoin of partitioned leader (TestRejoin3B)", FILE, 3, {}, async ({ lab }) => {
    await lab.one(101, 3, true)
    const leader1 = await lab.checkOneLeader()
    lab.disconnect(leader1)
    // The old leader appends entries nobody else will see.
    lab.startCommand(leader1, 102)
    lab.startCommand(leader1, 103)
    lab.startCommand(leader1, 104)
    await lab.one(103, 2, true)
    const leader2 = await lab.checkOneLeader()
    lab.disconnect(leader2)
    lab.connect(leader1)
    // Its conflicting entries are overwritten by the new leader's.
    await lab.one(104, 2, true)
    lab.connect(leader2)
    await lab.one(105, 3, true)
  })

  labTest(
    "leader backs up quickly over incorrect follower logs (TestBackup3B)",
    FILE,
    5,
    {},
    async ({ lab, random }) => {
      const rand = () => random.int(2 ** 31)
      await lab.one(rand(), 5, true)
      const leader1 = await lab.checkOneLeader()
      lab.disconnect((leader1 + 2) % 5)
      lab.disconnect((leader1 + 3) % 5)
      lab.disconnect((leader1 + 4) % 5)
      for (let i = 0; i < 50; i++) lab.startCommand(leader1, rand())
      await lab.sleep(RAFT_ELECTION_TIMEOUT_MS / 2)
      lab.disconnect((leader1 + 0) % 5)
      lab.disconnect((leader1 + 1) % 5)
      lab.connect((leader1 + 2) % 5)
      lab.connect((leader1 + 3) % 5)
      lab.connect((leader1 + 4) % 5)
      for (let i = 0; i < 50; i++) await lab.one(rand(), 3, true)
      const leader2 = await lab.checkOneLeader()
      let other = (leader1 + 2) % 5
      if (leader2 === other) other = (leader2 + 1) % 5
      lab.disconnect(other)
      for (let i = 0; i < 50; i++) lab.startCommand(leader2, rand())
      await lab.sleep(RAFT_ELECTION_TIMEOUT_MS / 2)
      for (let i = 0; i < 5; i++) lab.disconnect(i)
      lab.connect((leader1 + 0) % 5)
      lab.connect((leader1 + 1) % 5)
      lab.connect(other)
      for (let i = 0; i < 50; i++) await lab.one(rand(), 3, true)
      for (let i = 0; i < 5; i++) lab.connect(i)
      await lab.one(rand(), 5, true)
    },
  )

  labTest("RPC counts aren't too high (TestCount3B)", FILE, 3, {}, async ({ lab, random }) => {
    await lab.checkOneLeader()
    const electionRpcs = lab.rpcTotal()
    console.log(`election RPCs: ${electionRpcs}`)
    expect(electionRpcs).toBeGreaterThanOrEqual(1)
    expect(electionRpcs).toBeLessThanOrEqual(30)
    let success = false
    let total2 = 0
    for (let attempt = 0; attempt < 5 && !success; attempt++) {
      if (attempt > 0) await lab.sleep(3_000)
      const leader = await lab.checkOneLeader()
      const total1 = lab.rpcTotal()
      const iters = 10
      const first = lab.startCommand(leader, 1)
      if (!first.isLeader) continue
      const cmds: number[] = []
      let ok = true
      for (let i = 1; i < iters + 2 && ok; i++) {
        const x = random.int(2 ** 31)
        cmds.push(x)
        const r = lab.startCommand(leader, x)
        if (r.term !== first.term) ok = false
        else if (!r.isLeader) ok = false
        else expect(r.index).toBe(first.index + i)
      }
      for (let i = 1; i < iters + 1 && ok; i++) {
        const cmd = await lab.wait(first.index + i, 3, first.term)
        if (cmd === undefined) ok = false
        else expect(cmd).toBe(cmds[i - 1]!)
      }
      if (!ok) continue
      for (let j = 0; j < 3; j++) if (lab.getState(j).term !== first.term) ok = false
      if (!ok) continue
      total2 = lab.rpcTotal()
      console.log(`RPCs for ${iters + 2} entries: ${total2 - total1} (bound ${(iters + 1 + 3) * 3})`)
      expect(total2 - total1).toBeLessThanOrEqual((iters + 1 + 3) * 3)
      success = true
    }
    expect(success).toBe(true)
    await lab.sleep(RAFT_ELECTION_TIMEOUT_MS)
    const idle = lab.rpcTotal() - total2
    console.log(`RPCs in 1 s idle: ${idle} (bound 60)`)
    expect(idle).toBeLessThanOrEqual(3 * 20)
  })
})
