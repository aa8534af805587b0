/**
 * A 3-member etcd on 127.0.0.1 (the `etcd` binary on the PATH; Debian's etcd-server is 3.4), each
 * member with its own data directory and its default durability (fdatasync of its WAL). The
 * client is pointed at the leader, etcd's best case, as the kv client finds its leader too.
 */
import { join } from "node:path"
import { Etcd3 } from "etcd3"
import { freeTcpPorts, makeTempDir, removeTempDir, type Started, start, stop } from "../lib/processes.ts"
import { type RunningTarget, STOP_GRACE_MS, type Target, waitFor } from "./target.ts"

/** Which member leads: the endpoint whose member id is the leader every member reports. */
const findLeader = async (endpoints: readonly string[]): Promise<string | undefined> => {
  const statuses = await Promise.all(
    endpoints.map(async (endpoint) => {
      const client = new Etcd3({ hosts: endpoint, dialTimeout: 1_000 })
      try {
        return { endpoint, status: await client.maintenance.status() }
      } finally {
        client.close()
      }
    }),
  )
  const leader = statuses[0]?.status.leader
  if (leader === undefined || leader === "0" || statuses.some((s) => s.status.leader !== leader)) return undefined
  return statuses.find((s) => s.status.header.member_id === leader)?.endpoint
}

export const etcdTarget = (): Target => ({
  name: "etcd",
  unavailable: () =>
    Bun.which("etcd") === null ? "no etcd binary on the PATH (apt-get install etcd-server)" : undefined,
  async start(): Promise<RunningTarget> {
    const dir = makeTempDir("kv-bench-etcd")
    const ports = await freeTcpPorts(6)
    const members = [0, 1, 2].map((k) => ({
      name: `m${k}`,
      client: `http://127.0.0.1:${ports[k]}`,
      peer: `http://127.0.0.1:${ports[k + 3]}`,
    }))
    const initialCluster = members.map((m) => `${m.name}=${m.peer}`).join(",")
    const processes: Started[] = members.map((m, k) =>
      start(
        `etcd-${k}`,
        [
          "etcd",
          `--name=${m.name}`,
          `--data-dir=${join(dir, m.name)}`,
          `--listen-client-urls=${m.client}`,
          `--advertise-client-urls=${m.client}`,
          `--listen-peer-urls=${m.peer}`,
          `--initial-advertise-peer-urls=${m.peer}`,
          `--initial-cluster=${initialCluster}`,
          "--initial-cluster-state=new",
          "--initial-cluster-token=kv-bench",
          "--logger=zap",
          "--log-level=error",
        ],
        // A test runner or bench killed outright must not leave a cluster behind.
        { killWithParent: true },
      ),
    )
    const stopAll = async () => {
      await stop(processes, STOP_GRACE_MS)
      removeTempDir(dir)
    }
    const endpoints = members.map((m) => m.client.replace("http://", ""))
    let leader: string | undefined
    try {
      await waitFor("an etcd leader", async () => {
        leader = await findLeader(endpoints)
        return leader !== undefined
      })
    } catch (error) {
      for (const p of processes) console.error(`--- ${p.name}\n${p.output()}`)
      await stopAll()
      throw error
    }
    const ordered = [leader!, ...endpoints.filter((e) => e !== leader)]
    return { name: "etcd", client: { kind: "etcd", endpoints: ordered }, processes, stop: stopAll }
  },
})
