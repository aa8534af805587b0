/**
 * Random damage to a decoded message's fields, for tests that hold a hand-written decoder to the
 * Schema it shortcuts: the same input must be accepted (with the same result) or refused by both.
 */

/** The randomness it needs; the project's seeded generators all have these. */
export interface FieldRandom {
  int(n: number): number
  chance(p: number): boolean
}

export interface MutateOptions<R extends FieldRandom = FieldRandom> {
  /** Field names to add (the message kinds' own, so an added field can also be a known one). */
  readonly fields: readonly string[]
  /** A value of an unexpected type or range. */
  readonly oddValue: (random: R) => unknown
  /** Damages nested parts of `out` (a command's op, a batch's entries) before its own fields. */
  readonly nested?: (out: Record<string, unknown>, mutate: (value: Record<string, unknown>) => unknown) => void
}

/** A copy of `value` with up to two fields dropped, given an odd value, or added. */
export const mutateFields = <R extends FieldRandom>(
  random: R,
  value: Record<string, unknown>,
  options: MutateOptions<R>,
): Record<string, unknown> => {
  const out: Record<string, unknown> = { ...value }
  options.nested?.(out, (inner) => mutateFields(random, inner, options))
  for (let n = random.int(3); n > 0; n--) {
    const keys = Object.keys(out)
    const which = random.int(3)
    if (which === 0 && keys.length > 0) delete out[keys[random.int(keys.length)]!]
    else if (which === 1 && keys.length > 0) out[keys[random.int(keys.length)]!] = options.oddValue(random)
    else out[options.fields[random.int(options.fields.length)]!] = options.oddValue(random)
  }
  return out
}

/** `nested` for messages whose `op` field is itself an object: damaged half the time. */
export const mutateOp =
  (random: FieldRandom) =>
  (out: Record<string, unknown>, mutate: (value: Record<string, unknown>) => unknown): void => {
    if (typeof out.op === "object" && out.op !== null && random.chance(0.5)) {
      out.op = mutate(out.op as Record<string, unknown>)
    }
  }
