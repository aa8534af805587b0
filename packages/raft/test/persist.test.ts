/** Lab 3C: persistence. A crash drops a server's memory; it restarts from what it synced. */
import { describe, expect } from "bun:test"
import { RAFT_ELECTION_TIMEOUT_MS, type RaftLab } from "./support/labHarness.ts"
import { labTest } from "./support/labTest.ts"

const FILE = "packages/raft/test/persist.test.ts"

const restart = async (lab: RaftLab, i: number) => {
  await lab.restart(i)
  lab.connect(i)
}

describe("3C: persistence", () => {
  labTest("basic persistence (TestPersist13C)", FILE, 3, {}, async ({ lab }) => {
    await lab.one(11, 3, true)
    for (let i = 0; i < 3; i++) await lab.restart(i)
    for (let i = 0; i < 3; i++) {
      lab.disconnect(i)
      lab.connect(i)
    }
    await lab.one(12, 3, true)
    const leader1 = await lab.checkOneLeader()
    lab.disconnect(leader1)
    await restart(lab, leader1)
    await lab.one(13, 3, true)
    const leader2 = await lab.checkOneLeader()
    lab.disconnect(leader2)
    const index14 = await lab.one(14, 2, true)
    await restart(lab, leader2)
    await lab.wait(index14, 3, -1)
    const i3 = ((await lab.checkOneLeader()) + 1) % 3
    lab.disconnect(i3)
    await lab.one(15, 2, true)
    await restart(lab, i3)
    await lab.one(16, 3, true)
  })

  labTest("more persistence (TestPersist23C)", FILE, 5, {}, async ({ lab }) => {
    let index = 1
    for (let iters = 0; iters < 5; iters++) {
      await lab.one(10 + index++, 5, true)
      const leader1 = await lab.checkOneLeader()
      lab.disconnect((leader1 + 1) % 5)
      lab.disconnect((leader1 + 2) % 5)
      await lab.one(10 + index++, 3, true)
      lab.disconnect((leader1 + 0) % 5)
      lab.disconnect((leader1 + 3) % 5)
      lab.disconnect((leader1 + 4) % 5)
      await restart(lab, (leader1 + 1) % 5)
      await restart(lab, (leader1 + 2) % 5)
      await lab.sleep(RAFT_ELECTION_TIMEOUT_MS)
      await restart(lab, (leader1 + 3) % 5)
      await lab.one(10 + index++, 3, true)
      lab.connect((leader1 + 4) % 5)
      lab.connect((leader1 + 0) % 5)
    }
    await lab.one(1000, 5, true)
  })

  labTest(
    "partitioned leader and one follower crash, leader restarts (TestPersist33C)",
    FILE,
    3,
    {},
    async ({ lab }) => {
      await lab.one(101, 3, true)
      const leader = await lab.checkOneLeader()
      lab.disconnect((leader + 2) % 3)
      await lab.one(102, 2, true)
      await lab.crash((leader + 0) % 3)
      await lab.crash((leader + 1) % 3)
      lab.connect((leader + 2) % 3)
      await restart(lab, (leader + 0) % 3)
      await lab.one(103, 2, true)
      await restart(lab, (leader + 1) % 3)
      await lab.one(104, 3, true)
    },
  )

  labTest("Figure 8 (TestFigure83C)", FILE, 5, {}, async ({ lab, random }) => {
    await lab.one(random.int(2 ** 31), 1, true)
    let nup = 5
    for (let iters = 0; iters < 1000; iters++) {
      let leader = -1
      for (let i = 0; i < 5; i++) {
        if (lab.node(i) !== undefined && lab.startCommand(i, random.int(2 ** 31)).isLeader) leader = i
      }
      await lab.sleep(random.int(1000) < 100 ? random.int(RAFT_ELECTION_TIMEOUT_MS / 2) : random.int(13))
      if (leader !== -1) {
        await lab.crash(leader)
        nup--
      }
      if (nup < 3) {
        const s = random.int(5)
        if (lab.node(s) === undefined) {
          await restart(lab, s)
          nup++
        }
      }
    }
    for (let i = 0; i < 5; i++) if (lab.node(i) === undefined) await restart(lab, i)
    await lab.one(random.int(2 ** 31), 5, true)
  })

  labTest("unreliable agreement (TestUnreliableAgree3C)", FILE, 5, { unreliable: true }, async ({ lab }) => {
    for (let iters = 1; iters < 50; iters++) {
      await Promise.all([
        ...Array.from({ length: 4 }, (_, j) => lab.one(100 * iters + j, 1, true)),
        lab.one(iters, 1, true),
      ])
    }
    lab.network.setUnreliable(false)
    await lab.one(100, 5, true)
  })

  labTest("Figure 8 (unreliable) (TestFigure8Unreliable3C)", FILE, 5, { unreliable: true }, async ({ lab, random }) => {
    await lab.one(random.int(10_000), 1, true)
    let nup = 5
    for (let iters = 0; iters < 1000; iters++) {
      if (iters === 200) lab.network.setLongReordering(true)
      let leader = -1
      for (let i = 0; i < 5; i++) {
        if (lab.startCommand(i, random.int(10_000)).isLeader && lab.isConnected(i)) leader = i
      }
      await lab.sleep(random.int(1000) < 100 ? random.int(RAFT_ELECTION_TIMEOUT_MS / 2) : random.int(13))
      if (leader !== -1 && random.int(1000) < RAFT_ELECTION_TIMEOUT_MS / 2) {
        lab.disconnect(leader)
        nup--
      }
      if (nup < 3) {
        const s = random.int(5)
        if (!lab.isConnected(s)) {
          lab.connect(s)
          nup++
        }
      }
    }
    for (let i = 0; i < 5; i++) if (!lab.isConnected(i)) lab.connect(i)
    const last = await lab.one(random.int(10_000), 5, true)
    console.log(`Figure 8 (unreliable): agreement at index ${last}`)
  })

  for (const unreliable of [false, true]) {
    const name = unreliable ? "unreliable churn (TestUnreliableChurn3C)" : "churn (TestReliableChurn3C)"
    labTest(name, FILE, 5, { unreliable }, async ({ lab, random }) => {
      let stop = false
      const client = async (me: number): Promise<number[]> => {
        const values: number[] = []
        while (!stop) {
          const x = random.int(2 ** 31)
          let index = -1
          for (let i = 0; i < 5; i++) {
            const r = lab.node(i) === undefined ? undefined : lab.startCommand(i, x)
            if (r?.isLeader) index = r.index
          }
          if (index !== -1) {
            for (const to of [10, 20, 50, 100, 200]) {
              const { count, cmd } = lab.nCommitted(index)
              if (count > 0) {
                if (cmd === x) values.push(x)
                break
              }
              await lab.sleep(to)
            }
          } else {
            await lab.sleep(79 + me * 17)
          }
        }
        return values
      }
      const clients = [0, 1, 2].map(client)
      for (let iters = 0; iters < 20; iters++) {
        if (random.int(1000) < 200) lab.disconnect(random.int(5))
        if (random.int(1000) < 500) {
          const i = random.int(5)
          if (lab.node(i) === undefined) await lab.restart(i)
          lab.connect(i)
        }
        if (random.int(1000) < 200) {
          const i = random.int(5)
          if (lab.node(i) !== undefined) await lab.crash(i)
        }
        await lab.sleep((RAFT_ELECTION_TIMEOUT_MS * 7) / 10)
      }
      await lab.sleep(RAFT_ELECTION_TIMEOUT_MS)
      lab.network.setUnreliable(false)
      for (let i = 0; i < 5; i++) {
        if (lab.node(i) === undefined) await lab.restart(i)
        lab.connect(i)
      }
      stop = true
      const seen = (await Promise.all(clients)).flat()
      await lab.sleep(RAFT_ELECTION_TIMEOUT_MS)
      const lastIndex = await lab.one(random.int(2 ** 31), 5, true)
      const really = new Set<unknown>()
      for (let index = 1; index <= lastIndex; index++) {
        const { count, cmd } = lab.nCommitted(index)
        if (count === 0) continue // a leader's no-op
        const v = await lab.wait(index, 5, -1)
        expect(v).toEqual(cmd)
        really.add(v)
      }
      // Every value a client saw committed is in the final log.
      for (const v of seen) expect(really.has(v)).toBe(true)
      console.log(`${name}: ${seen.length} client-observed commits, final log up to ${lastIndex}`)
    })
  }
})
