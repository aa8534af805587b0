/**
 * The faults of the netns tests, on a lab whose hosts run servers and client machines: a host cut
 * off, a majority/minority split of the switch (client machines on either side), a three-way split
 * that leaves no majority anywhere, a host crashing (`kill -9` of everything on it, restarted from
 * its disk) and a host freezing (SIGSTOP, then SIGCONT). Each fault holds a few seconds, is healed,
 * and the clients must then complete more operations (liveness after healing) before the next.
 */
import type { NetLab } from "@kv/netlab"
import { SeededRandom } from "@kv/rpc"
import { type ProcessGroup, pollUntil } from "@kv/testkit"

export const FAULT_KINDS = ["isolate", "minority", "no-majority", "kill-9", "sigstop"] as const
export type FaultKind = (typeof FAULT_KINDS)[number]

export interface FaultPlan {
  readonly lab: NetLab
  readonly processes: ProcessGroup
  readonly serverHosts: readonly number[]
  readonly clientHosts: readonly number[]
  /** The server processes running on host k, by name. */
  readonly processesOn: (host: number) => readonly string[]
  /** Starts server process `name` again (from its data directory). */
  readonly restart: (name: string) => void
  readonly seed: number
  readonly durationMs: number
  /** Operations acknowledged so far. */
  readonly progress: () => number
  /** Operations the clients must complete after each heal. */
  readonly progressAfterHeal: number
  readonly log: (line: string) => void
}

export type FaultCounts = Record<FaultKind, number>

const shuffled = <A>(items: readonly A[], random: SeededRandom): A[] => {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = random.int(i + 1)
    ;[out[i], out[j]] = [out[j] as A, out[i] as A]
  }
  return out
}

/** Runs faults, every kind in a seeded order per round, until `durationMs` has passed. */
export const runFaults = async (plan: FaultPlan): Promise<FaultCounts> => {
  const random = new SeededRandom(plan.seed)
  const counts: FaultCounts = { isolate: 0, minority: 0, "no-majority": 0, "kill-9": 0, sigstop: 0 }
  const started = Date.now()
  const end = started + plan.durationMs
  const at = () => `${((Date.now() - started) / 1000).toFixed(1)}s`
  while (Date.now() < end) {
    for (const kind of shuffled(FAULT_KINDS, random)) {
      if (Date.now() >= end) break
      const holdMs = 2_000 + random.int(3_000)
      const undo = inflict(plan, kind, random)
      plan.log(`${at()} ${kind}: ${undo.what} for ${holdMs} ms`)
      counts[kind]++
      await Bun.sleep(holdMs)
      await undo.heal()
      const before = plan.progress()
      await pollUntil(
        `the clients to complete ${plan.progressAfterHeal} operations after healing ${kind} (${undo.what})`,
        () => plan.progress() >= before + plan.progressAfterHeal,
        { timeoutMs: 45_000, intervalMs: 100 },
      )
      plan.log(`${at()} healed; ${plan.progress()} operations acknowledged`)
    }
  }
  return counts
}

interface Inflicted {
  readonly what: string
  readonly heal: () => void | Promise<void>
}

const inflict = (plan: FaultPlan, kind: FaultKind, random: SeededRandom): Inflicted => {
  const { lab } = plan
  const servers = shuffled(plan.serverHosts, random)
  const victim = servers[0] as number
  switch (kind) {
    case "isolate":
      lab.isolate(victim)
      return { what: `host ${victim} isolated`, heal: () => lab.heal() }
    case "minority": {
      const minority: number[] = [victim]
      const majority: number[] = servers.slice(1)
      for (const c of plan.clientHosts) (random.chance(0.5) ? minority : majority).push(c)
      lab.partition(majority, minority)
      return { what: `split ${lab.describe()}`, heal: () => lab.heal() }
    }
    case "no-majority": {
      const sides = servers.map((s) => [s])
      plan.clientHosts.forEach((c, i) => {
        sides[i % sides.length]?.push(c)
      })
      lab.partition(...sides)
      return { what: `split ${lab.describe()}`, heal: () => lab.heal() }
    }
    case "kill-9": {
      const names = plan.processesOn(victim)
      for (const name of names) plan.processes.get(name)?.signal("SIGKILL")
      return {
        what: `host ${victim} crashed (kill -9 of ${names.join(", ")})`,
        heal: async () => {
          for (const name of names) {
            await plan.processes.get(name)?.exited
            plan.restart(name)
          }
        },
      }
    }
    case "sigstop": {
      const names = plan.processesOn(victim)
      for (const name of names) plan.processes.signal(name, "SIGSTOP")
      return {
        what: `host ${victim} frozen (SIGSTOP of ${names.join(", ")})`,
        heal: () => {
          for (const name of names) plan.processes.signal(name, "SIGCONT")
        },
      }
    }
  }
}
