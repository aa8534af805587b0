/**
 * A client machine in the netns tests, run inside a lab host: `bun netnsWorker.ts '<job as JSON>'`.
 *
 * "clients": logical clients, each with a clerk of its own (its own session), append to their own
 * keys and read everyone's until SIGTERM; then each reads its own keys once more. Every operation
 * is one JSON line in `out`, with call and return instants from CLOCK_MONOTONIC, which every
 * process on the machine shares: the test merges the files into one history whose real-time order
 * holds across processes. (Bun's process.hrtime counts from the process's own start, so it cannot.) An operation that failed is written with `ret: null`
 * (outcome unknown).
 *
 * "admin": joins, leaves and moves through the controller, spaced over `durationMs`, each written
 * to `out`; it ends with every group joined.
 */
import { dlopen, ptr } from "bun:ffi"
import { appendFileSync } from "node:fs"
import { SeededRandom } from "@kv/rpc"
import { type Admin, type Clerk, connect, connectAdmin } from "../../src/index.ts"

export interface ClientsJob {
  readonly mode: "clients"
  readonly kind: "kvraft" | "sharded"
  /** kvraft replicas, or the controllers of a sharded cluster. */
  readonly servers: readonly string[]
  /** This host's address with port 0: the clerk's socket must be on the lab's interface, not loopback. */
  readonly bind: string
  readonly clients: readonly number[]
  readonly allClients: readonly number[]
  readonly keysPerClient: number
  readonly seed: number
  readonly out: string
}

export interface AdminJob {
  readonly mode: "admin"
  readonly controllers: readonly string[]
  readonly bind: string
  readonly groups: Readonly<Record<string, readonly string[]>>
  readonly nShards: number
  readonly durationMs: number
  readonly seed: number
  readonly out: string
}

export type WorkerJob = ClientsJob | AdminJob

/** One line of a clients job's output. */
export interface OpRecord {
  readonly c: number
  readonly op: "get" | "append"
  readonly key: string
  readonly value?: string
  readonly call: number
  /** null: the outcome is unknown. */
  readonly ret: number | null
  readonly output?: string
  /** The client's last read of its own key, after its load ended. */
  readonly final?: true
}

const DEADLINE_MS = 20_000
const CLOCK_MONOTONIC = 1
const libc = dlopen("libc.so.6", { clock_gettime: { args: ["i32", "ptr"], returns: "i32" } })
const timespec = new BigInt64Array(2)
/** Nanoseconds of the machine's monotonic clock. */
const now = (): number => {
  if (libc.symbols.clock_gettime(CLOCK_MONOTONIC, ptr(timespec)) !== 0) throw new Error("clock_gettime failed")
  return Number((timespec[0] as bigint) * 1_000_000_000n + (timespec[1] as bigint))
}
const write = (out: string, record: unknown) => appendFileSync(out, `${JSON.stringify(record)}\n`)

const runClients = async (job: ClientsJob): Promise<void> => {
  const clerks: Clerk[] = []
  for (const _ of job.clients) {
    clerks.push(
      await connect({
        ...(job.kind === "kvraft" ? { servers: job.servers } : { controllers: job.servers }),
        bind: job.bind,
        deadlineMs: DEADLINE_MS,
      }),
    )
  }
  let stopping = false
  process.on("SIGTERM", () => {
    stopping = true
  })
  console.log("ready")
  const keyOf = (c: number, k: number) => `c${c}-k${k}`
  const timed = async (c: number, op: "get" | "append", key: string, value: string | undefined, final = false) => {
    const clerk = clerks[job.clients.indexOf(c)] as Clerk
    const call = now()
    try {
      let output: string | undefined
      if (op === "get") output = await clerk.get(key)
      else await clerk.append(key, value ?? "")
      write(job.out, { c, op, key, value, call, ret: now(), output, ...(final ? { final } : {}) })
      return true
    } catch (error) {
      write(job.out, { c, op, key, value, call, ret: null })
      console.error(`client ${c} ${op} ${key}: ${error instanceof Error ? error.message : String(error)}`)
      return false
    }
  }
  await Promise.all(
    job.clients.map(async (c) => {
      const random = new SeededRandom(job.seed * 1000 + c)
      for (let j = 0; !stopping; j++) {
        if (random.int(3) === 0) {
          const other = job.allClients[random.int(job.allClients.length)] as number
          await timed(c, "get", keyOf(other, random.int(job.keysPerClient)), undefined)
        } else {
          await timed(c, "append", keyOf(c, random.int(job.keysPerClient)), `x ${c} ${j} y;`)
        }
      }
      for (let k = 0; k < job.keysPerClient; k++) {
        // The final reads must succeed: the network is whole again by now.
        for (let attempt = 0; attempt < 3; attempt++) if (await timed(c, "get", keyOf(c, k), undefined, true)) break
      }
    }),
  )
  await Promise.all(clerks.map((clerk) => clerk.close()))
}

const runAdmin = async (job: AdminJob): Promise<void> => {
  const admin: Admin = await connectAdmin({ controllers: job.controllers, bind: job.bind, deadlineMs: DEADLINE_MS })
  const random = new SeededRandom(job.seed)
  const gids = Object.keys(job.groups).map(Number)
  const joined = new Set<number>()
  const step = async (what: string, action: () => Promise<void>) => {
    const started = Date.now()
    try {
      await action()
      write(job.out, { what, ok: true, ms: Date.now() - started })
    } catch (error) {
      write(job.out, {
        what,
        ok: false,
        ms: Date.now() - started,
        error: error instanceof Error ? error.message : String(error),
      })
    }
  }
  const joinGroup = (gid: number) =>
    step(`join ${gid}`, async () => {
      await admin.join({ [String(gid)]: job.groups[String(gid)] ?? [] })
      joined.add(gid)
    })
  console.log("ready")
  const end = Date.now() + job.durationMs
  await joinGroup(gids[0] as number)
  while (Date.now() < end) {
    await Bun.sleep(1_500 + random.int(1_500))
    const missing = gids.filter((g) => !joined.has(g))
    const dice = random.int(4)
    if (missing.length > 0 && (dice < 2 || joined.size < 2))
      await joinGroup(missing[random.int(missing.length)] as number)
    else if (dice === 2 && joined.size > 1) {
      const gid = [...joined][random.int(joined.size)] as number
      await step(`leave ${gid}`, async () => {
        await admin.leave([gid])
        joined.delete(gid)
      })
    } else {
      const gid = [...joined][random.int(joined.size)] as number
      const shard = random.int(job.nShards)
      await step(`move ${shard} ${gid}`, () => admin.move(shard, gid))
    }
  }
  // Whatever happened, the run ends with every group serving, so every group's shards are read.
  for (const gid of gids) {
    for (let attempt = 0; attempt < 3 && !joined.has(gid); attempt++) {
      const latest = await admin.query().catch(() => undefined)
      if (latest !== undefined && String(gid) in latest.groups) joined.add(gid)
      else await joinGroup(gid)
    }
  }
  const latest = await admin.query()
  write(job.out, { what: "final", ok: true, groups: Object.keys(latest.groups).map(Number), num: latest.num })
  await admin.close()
}

const job = JSON.parse(process.argv[2] ?? "{}") as WorkerJob
const work = job.mode === "admin" ? runAdmin(job) : runClients(job)
work.then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error))
    process.exit(1)
  },
)
