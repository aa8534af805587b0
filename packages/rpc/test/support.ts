import { Effect, Schema, type Scope } from "effect"
import { defineMethod } from "../src/index.ts"

/** Runs a scoped Effect test body; everything it opened is closed when it ends. */
export const runScoped = <A, E>(body: Effect.Effect<A, E, Scope.Scope>): Promise<A> =>
  Effect.runPromise(Effect.scoped(body))

export const Echo = defineMethod(
  "test.echo",
  Schema.Struct({ n: Schema.Int, text: Schema.String }),
  Schema.Struct({ n: Schema.Int, text: Schema.String, servedBy: Schema.String }),
)

export const Blob = defineMethod(
  "test.blob",
  Schema.Struct({ bytes: Schema.Uint8Array }),
  Schema.Struct({ length: Schema.Int, checksum: Schema.Int }),
)

export const checksum = (bytes: Uint8Array): number => {
  let h = 0
  for (let i = 0; i < bytes.length; i++) h = (Math.imul(h, 31) + (bytes[i] ?? 0)) | 0
  return h
}

/** Polls `condition` every 5 ms until it holds or `timeoutMs` passes. */
export const waitFor = async (condition: () => boolean, timeoutMs = 5_000): Promise<boolean> => {
  const start = Date.now()
  while (!condition()) {
    if (Date.now() - start > timeoutMs) return false
    await Bun.sleep(5)
  }
  return true
}
