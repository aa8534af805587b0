/**
 * Proves that a key ring refuses two different secrets whose key ids collide (found by a birthday
 * search), instead of silently dropping the second one, whose holders could then never be heard.
 */
import { expect, test } from "bun:test"
import { deriveRingKey, KeyRing } from "../src/keyRing.ts"

test("two different secrets with one key id are refused; one secret listed twice is not", () => {
  const seen = new Map<number, string>()
  let pair: [string, string] | undefined
  for (let i = 0; pair === undefined && i < 2_000_000; i++) {
    const secret = `secret-${i}`
    const id = deriveRingKey({ secret, role: "read-write" }).keyId
    const other = seen.get(id)
    if (other !== undefined) pair = [other, secret]
    else seen.set(id, secret)
  }
  expect(pair).toBeDefined()
  const [a, b] = pair!
  expect(
    () =>
      new KeyRing([
        { secret: "server", role: "server" },
        { secret: a, role: "read-write" },
        { secret: b, role: "read-write" },
      ]),
  ).toThrow(/two different configured keys share key id/)
  expect(
    new KeyRing([
      { secret: "server", role: "server" },
      { secret: a, role: "read-write" },
      { secret: a, role: "read-write" },
    ]).size,
  ).toBe(2)
}, 60_000)
