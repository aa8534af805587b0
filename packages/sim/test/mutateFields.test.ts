/** Proves that mutateFields damages a copy, never the input, and only through the changes it names. */
import { expect, test } from "bun:test"
import { mutateFields, mutateOp, Seed } from "../src/index.ts"

test("a mutated copy differs from its input by at most two field changes, outside and inside op", () => {
  const rng = new Seed(7).stream("mutate")
  const random = { int: (n: number) => rng.nextInt(n), chance: (p: number) => rng.chance(p) }
  const input = { ok: true, key: "k", op: { op: "put", key: "k", value: "v" } }
  const frozen = JSON.stringify(input)
  const fields = ["ok", "key", "op", "extra"]
  let changedTop = 0
  let changedOp = 0
  for (let i = 0; i < 2_000; i++) {
    const out = mutateFields(random, input, { fields, oddValue: () => 42, nested: mutateOp(random) })
    expect(JSON.stringify(input)).toBe(frozen)
    const names = new Set([...Object.keys(input), ...Object.keys(out)])
    const differing = [...names].filter(
      (name) => name !== "op" && (out as Record<string, unknown>)[name] !== (input as Record<string, unknown>)[name],
    )
    expect(differing.length).toBeLessThanOrEqual(2)
    if (differing.length > 0) changedTop++
    if (out.op !== input.op && JSON.stringify(out.op) !== JSON.stringify(input.op)) changedOp++
  }
  // Both levels are damaged often, and the input is left whole every time (checked above).
  expect(changedTop).toBeGreaterThan(500)
  expect(changedOp).toBeGreaterThan(200)
})
