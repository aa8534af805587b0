/**
 * Proves that the Raft core stays safe under message loss, duplication, delay and reordering,
 * partitions, crashes that lose unpersisted writes, restarts, snapshots, reads, leadership
 * transfers and membership churn (learners added, promoted and losing their disk, voters added and
 * removed, the leader included) — and that once faults heal a single leader emerges and commits on
 * every member of its configuration. Every member's view of the configuration is checked against
 * its log after every round.
 *
 * Every run draws 5,000 fresh seeds (the base seed is printed). `KV_SEED=<n>` replays one seed
 * with a trace; a failure prints the replay command and the broken invariant.
 */
import { expect, test } from "bun:test"
import { addCoverage, emptyCoverage, InvariantViolation, runSimulation, Simulation } from "./support/simulator.ts"

const FILE = "packages/raft/test/sim-raft.test.ts"
const SEEDS = 5000
const replaySeed =
  process.env.KV_SEED !== undefined && /^\d+$/.test(process.env.KV_SEED) ? Number(process.env.KV_SEED) : undefined

const explain = (seed: number, error: unknown): string => {
  const what = error instanceof InvariantViolation ? error.invariant : String(error)
  // Re-run the seed with tracing on: the run is deterministic, so it fails the same way.
  let trace: readonly string[] = []
  try {
    new Simulation(seed, { trace: true }).run()
  } catch (e) {
    if (e instanceof InvariantViolation) trace = e.trace
  }
  return [
    `seed ${seed}: ${new Simulation(seed).describe()}`,
    ...trace.slice(-60),
    `invariant: ${what}`,
    `replay: KV_SEED=${seed} bun test ${FILE}`,
  ].join("\n")
}

if (replaySeed !== undefined) {
  test(`replays seed ${replaySeed}`, () => {
    const sim = new Simulation(replaySeed, { trace: true })
    console.log(`seed ${replaySeed}: ${sim.describe()}`)
    try {
      const result = sim.run()
      console.log(`seed ${replaySeed} passed; digest ${result.digest.toString(16)}`, result.coverage)
    } catch (e) {
      throw new Error(explain(replaySeed, e))
    }
  }, 60_000)
} else {
  test(`safety under faults and liveness after healing, over ${SEEDS} random seeds`, () => {
    const base = (Math.random() * 2 ** 31) >>> 0
    console.log(`sim-raft: seeds ${base}..${base + SEEDS - 1} (replay one with KV_SEED=<seed> bun test ${FILE})`)
    const total = emptyCoverage()
    const started = performance.now()
    for (let seed = base; seed < base + SEEDS; seed++) {
      try {
        addCoverage(total, runSimulation(seed).coverage)
      } catch (e) {
        throw new Error(explain(seed, e))
      }
    }
    console.log(`sim-raft: ${SEEDS} seeds in ${((performance.now() - started) / 1000).toFixed(1)} s`, total)

    // The runs must actually exercise every mechanism, or they prove nothing.
    expect(total.leadersElected).toBeGreaterThan(SEEDS * 2)
    expect(total.preVoteCampaigns).toBeGreaterThan(SEEDS)
    expect(total.preVotesFailed).toBeGreaterThan(SEEDS / 4)
    expect(total.transfersCompleted).toBeGreaterThan(SEEDS / 10)
    expect(total.snapshotsInstalled).toBeGreaterThan(SEEDS / 2)
    expect(total.snapshotsResumed).toBeGreaterThan(SEEDS / 2)
    expect(total.compactions).toBeGreaterThan(SEEDS * 2)
    expect(total.crashes).toBeGreaterThan(SEEDS)
    expect(total.crashesLosingReady).toBeGreaterThan(SEEDS / 50)
    expect(total.partitions).toBeGreaterThan(SEEDS)
    expect(total.entriesCommitted).toBeGreaterThan(SEEDS * 20)
    expect(total.readsServed).toBeGreaterThan(SEEDS)
    expect(total.rejectedAppends).toBeGreaterThan(SEEDS)
    expect(total.messagesDropped).toBeGreaterThan(SEEDS * 10)
    expect(total.messagesDuplicated).toBeGreaterThan(SEEDS)
    expect(total.messagesSentEarly).toBeGreaterThan(SEEDS * 100)
    // Acting while a Ready's write is in flight: replication, applies and reads.
    expect(total.messagesSentDuringFlush).toBeGreaterThan(SEEDS * 10)
    expect(total.entriesAppliedDuringFlush).toBeGreaterThan(SEEDS * 2)
    expect(total.readsServedDuringFlush).toBeGreaterThan(SEEDS / 4)
    // A state machine ahead of its own disk (entries committed by the others' writes), then lost.
    expect(total.entriesAppliedBeforeDurable).toBeGreaterThan(SEEDS * 2)
    expect(total.crashesLosingApplied).toBeGreaterThan(SEEDS / 50)
    // Membership churn (a third of the seeds run without it).
    expect(total.learnersAdded).toBeGreaterThan(SEEDS / 4)
    expect(total.votersAdded).toBeGreaterThan(SEEDS / 20)
    expect(total.promotions).toBeGreaterThan(SEEDS / 20)
    expect(total.removals).toBeGreaterThan(SEEDS / 4)
    expect(total.leaderRemovals).toBeGreaterThan(SEEDS / 20)
    expect(total.removedLeadersSteppedDown).toBeGreaterThan(SEEDS / 20)
    expect(total.changesRefused).toBeGreaterThan(SEEDS / 10)
    expect(total.learnersWiped).toBeGreaterThan(SEEDS / 100)
    expect(total.configsCommitted).toBeGreaterThan(SEEDS / 2)
  }, 120_000)

  test("seeds that once broke an invariant stay clean", () => {
    // 924610053: a lone voter won its term and crashed before that term was durable; a leader that
    // had removed itself then won the same term with the restarted voter's grant.
    // 630115966: a learner that lost its disk took a stale leader's entries, then the current
    // leader's heartbeat committed up to the index it had recorded as matched before the loss.
    // 1814183057 (liveness): a voter that held an older configuration, not naming the candidate
    // whose log it needed, never answered that candidate's votes of an older term, so the
    // candidate never learned the term it had to pass.
    // 60740916 (liveness, pre-vote off): a candidate whose log was behind its voters' campaigned in
    // step with the one that could win, always first, so that one's requests always met a vote spent.
    for (const seed of [924610053, 630115966, 1814183057, 60740916]) expect(() => runSimulation(seed)).not.toThrow()
  })

  test("a seed replays to the same trace digest", () => {
    const seeds = [1, 2, 3, 42, 31337, (Math.random() * 2 ** 31) >>> 0]
    for (const seed of seeds) {
      const first = runSimulation(seed)
      const second = runSimulation(seed)
      expect(second.digest).toBe(first.digest)
      expect(second.coverage).toEqual(first.coverage)
    }
    // And different seeds do not collapse to one trace.
    const digests = new Set(seeds.map((s) => runSimulation(s).digest))
    expect(digests.size).toBe(seeds.length)
  }, 60_000)
}
