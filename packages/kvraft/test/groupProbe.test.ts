/** When a replica with an empty data directory may start under its id: the verdict from the group's answers. */
import { describe, expect, test } from "bun:test"
import type { MemberInfo, MemberList } from "../src/members/protocol.ts"
import { lostIdentityProblem } from "../src/process/groupProbe.ts"

const member = (id: number, role: MemberInfo["role"] = "voter"): MemberInfo => ({
  id,
  address: `127.0.0.1:${7000 + id}`,
  role,
  match: -1,
  lag: -1,
})

const answer = (
  id: number,
  membershipIndex: number,
  members: readonly MemberInfo[],
  named: readonly number[],
  heldData: readonly number[] = [],
): MemberList => ({
  ok: true,
  id,
  self: "voter",
  leader: 4,
  term: 3,
  commitIndex: 100,
  membershipIndex,
  members,
  named,
  heldData,
})

describe("lostIdentityProblem", () => {
  test("a member being added is not 'removed', even when a replica's stale, never committed configuration is the newest", () => {
    // Replica 3 restarted with a configuration entry it appended as leader but never committed
    // (index 60); the leader (4) has since added member 6 at index 58 and committed it.
    const answers = [
      answer(3, 60, [member(3), member(4), member(5)], [1, 2, 3, 4, 5]),
      answer(4, 58, [member(3), member(4, "leader"), member(5), member(6, "learner")], [1, 2, 3, 4, 5, 6]),
    ]
    expect(lostIdentityProblem("kvraft", 6, answers, [1, 2, 3])).toBeUndefined()
  })

  test("an id no replica lists any more but the group once named is refused as removed", () => {
    const answers = [answer(4, 70, [member(3), member(4, "leader"), member(5)], [1, 2, 3, 4, 5, 6])]
    expect(lostIdentityProblem("kvraft", 6, answers, [1, 2, 3])).toContain("member 6 was removed from the group")
  })

  test("a lagging replica that still lists a removed member does not save it: the leader's view decides", () => {
    const answers = [
      answer(3, 50, [member(2), member(3), member(4)], [1, 2, 3, 4], [2, 3, 4]),
      answer(4, 55, [member(3), member(4, "leader"), member(5)], [1, 2, 3, 4, 5], [2, 3, 4, 5]),
    ]
    expect(lostIdentityProblem("kvraft", 2, answers, [1, 2, 3])).toContain("member 2 was removed from the group")
  })

  test("an id the group saw holding log entries is refused, and the message names an unused id", () => {
    const answers = [answer(4, 70, [member(2), member(3), member(4, "leader")], [1, 2, 3, 4], [2, 3, 4])]
    const problem = lostIdentityProblem("kvraft", 2, answers, [1, 2, 3])
    expect(problem).toContain("acknowledged")
    expect(problem).toContain("--join --id 5")
  })

  test("a new cluster (no answer naming the id) starts", () => {
    expect(lostIdentityProblem("kvraft", 1, [], [1, 2, 3])).toBeUndefined()
  })
})
