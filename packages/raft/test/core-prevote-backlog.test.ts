/**
 * Proves that of replicas restarted together, one with less log to replay leads: a pre-vote
 * carries the candidate's backlog (what its service still has to apply before it serves), and a
 * voter with no leader that is itself still replaying refuses it to a candidate with well more to
 * replay than it has. Only then: a voter with a leader, one done replaying, or a candidate with
 * about as much backlog is answered as ever, so the group still elects someone (at the latest once
 * the voters' replays end). Before, whoever timed out first led, and a group whose leader had the
 * longest tail served that much later (bench:restart's case (b): 2.6–3.0 s against 1.7–2.0 s).
 */
import { expect, test } from "bun:test"
import { BACKLOG_MARGIN_BYTES, type PreVote } from "../src/core/index.ts"
import { Cluster, messagesOfType, newCore, sent, takeReady } from "./support/simCluster.ts"

const MiB = 1 << 20

const preVote = (backlog: number | undefined): PreVote => ({
  type: "PreVote",
  from: 1,
  to: 3,
  term: 1,
  lastLogIndex: 0,
  lastLogTerm: 0,
  ...(backlog === undefined ? {} : { backlog }),
})

/** Voter 3's answer to candidate 1's pre-vote, the voter's service having `own` bytes to replay. */
const answer = (own: number, backlog: number | undefined): boolean => {
  const voter = newCore(3, [1, 2, 3], { preVote: true, serviceBacklogBytes: () => own })
  voter.step(preVote(backlog))
  const [resp] = messagesOfType(sent(takeReady(voter)), "PreVoteResp")
  if (resp === undefined) throw new Error("no answer to the pre-vote")
  return !resp.reject
}

test("a pre-vote carries the candidate's backlog, and none once it is caught up", () => {
  let backlog = 20 * MiB
  const candidate = newCore(1, [1, 2, 3], { preVote: true, serviceBacklogBytes: () => backlog })
  while (candidate.role !== "pre-candidate") candidate.tick()
  expect(messagesOfType(sent(takeReady(candidate)), "PreVote").map((m) => m.backlog)).toEqual([20 * MiB, 20 * MiB])
  backlog = 0
  const again = newCore(1, [1, 2, 3], { preVote: true, serviceBacklogBytes: () => backlog })
  while (again.role !== "pre-candidate") again.tick()
  expect(messagesOfType(sent(takeReady(again)), "PreVote").every((m) => !("backlog" in m))).toBe(true)
})

test("a replaying voter with no leader refuses its pre-vote to a candidate with well more to replay", () => {
  const own = 20 * MiB
  // Well more: past its own plus a quarter of it (5 MiB here).
  expect(answer(own, 26 * MiB)).toBe(false)
  // About as much, or less, or none said: granted as ever.
  expect(answer(own, 24 * MiB)).toBe(true)
  expect(answer(own, 2 * MiB)).toBe(true)
  expect(answer(own, undefined)).toBe(true)
  // A small backlog's margin is BACKLOG_MARGIN_BYTES, not a quarter of it.
  expect(answer(1024, 1024 + BACKLOG_MARGIN_BYTES)).toBe(true)
  expect(answer(1024, 1024 + BACKLOG_MARGIN_BYTES + 1)).toBe(false)
})

test("a voter done replaying, or one that knows a leader, answers a pre-vote by the logs alone", () => {
  expect(answer(0, 500 * MiB)).toBe(true)
  // Follower of leader 2 (out of its lease: the lease would refuse any pre-vote): the rule is for
  // replicas restarted together, with no leader yet.
  const voter = newCore(3, [1, 2, 3], { preVote: true, serviceBacklogBytes: () => MiB })
  voter.step({ type: "Heartbeat", from: 2, to: 3, term: 1, commit: 0, context: 0 })
  for (let t = 0; t < 10; t++) voter.tick()
  takeReady(voter)
  voter.step({ ...preVote(500 * MiB), term: 2 })
  expect(messagesOfType(sent(takeReady(voter)), "PreVoteResp").map((m) => m.reject)).toEqual([false])
})

/** Three replicas restarted together, each with its backlog (MiB, changeable); none has a leader. */
const restartedTogether = (mib: readonly [number, number, number]) => {
  const backlog = new Map(mib.map((m, i) => [i + 1, m * MiB]))
  const cluster = new Cluster([1, 2, 3], (id) => ({ preVote: true, serviceBacklogBytes: () => backlog.get(id)! }))
  /** Node `id`'s timer fires once, and the cluster runs until nothing moves. */
  const campaign = (id: number) => {
    for (let t = 0; t < 100 && cluster.core(id).role === "follower"; t++) cluster.tick(id)
    cluster.stabilize()
  }
  return { backlog, cluster, campaign }
}

test("restarted together, the replica with the least to replay leads, whoever times out first", () => {
  const { cluster, campaign } = restartedTogether([34, 21, 22])
  // Node 1, with the most to replay, campaigns first: both voters refuse it.
  campaign(1)
  expect(cluster.leaders()).toEqual([])
  expect(cluster.core(1).term).toBe(0)
  // Node 2 next: granted by node 3 (about as much) and node 1 (less than its own).
  cluster.elect(2)
  expect(cluster.leaders()).toEqual([2])
})

test("a candidate refused for its backlog is elected once the voter's replay ends", () => {
  const { backlog, cluster, campaign } = restartedTogether([34, 1, 1])
  // Node 3 is down and node 2 does not campaign (its timer has not fired): node 1 needs node 2.
  cluster.isolate(3)
  campaign(1)
  expect(cluster.leaders()).toEqual([])
  backlog.set(2, 0)
  // Its next campaign (its timer, as a pre-candidate) is granted.
  for (let t = 0; t < 100 && cluster.leaders().length === 0; t++) {
    cluster.tick(1)
    cluster.stabilize()
  }
  expect(cluster.leaders()).toEqual([1])
})
