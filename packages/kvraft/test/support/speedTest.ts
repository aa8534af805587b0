import { expect } from "bun:test"
import type { KvLab } from "./kvLab.ts"

/** The lab's bound for TestSpeed4A/4B: a third of a 100 ms heartbeat interval per operation. */
export const MAX_MS_PER_OP = 100 / 3

/**
 * TestSpeed: 1000 sequential appends by one clerk must average under a third of a heartbeat
 * interval each, in virtual time (a server that commits only on heartbeats fails it); then every
 * append is present.
 */
export const speedTest = async (lab: KvLab, label: string): Promise<void> => {
  const ck = await lab.makeClerk()
  await lab.put(ck, "x", "")
  const numOps = 1_000
  const start = lab.now()
  for (let i = 0; i < numOps; i++) await lab.append(ck, "x", `x 0 ${i} y`)
  const perOp = (lab.now() - start) / numOps
  console.log(`${numOps} sequential appends${label}: ${perOp.toFixed(2)} ms/op of virtual time`)
  expect(perOp).toBeLessThan(MAX_MS_PER_OP)
  const v = await lab.get(ck, "x")
  for (let i = 0; i < numOps; i++) expect(v.includes(`x 0 ${i} y`)).toBe(true)
}
