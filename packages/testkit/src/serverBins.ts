/** The servers' and the CLI's entry points, for tests that start them as processes. */
import { join, resolve } from "node:path"

const root = resolve(import.meta.dir, "../../..")

export const serverBins = {
  kvraft: join(root, "packages/kvraft/bin/kvraft.ts"),
  controller: join(root, "packages/shardctrler/bin/shardctrler.ts"),
  group: join(root, "packages/shardkv/bin/shardkv.ts"),
  kv: join(root, "packages/clerk/bin/kv.ts"),
} as const
