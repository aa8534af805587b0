/**
 * Many hosts on one machine: each host is a network namespace with one interface (`eth0`) and its
 * own address on a private subnet, cabled by a veth pair to a switch (Linux bridges) that lives in a
 * namespace of its own, so the machine's own network is never touched. Processes run inside a host
 * with `ip netns exec`, which execs in place: the pid the launcher holds is the program itself, so
 * `kill -9` and SIGSTOP reach it directly.
 *
 * Partitions are real: a host's switch port is moved to another bridge (one bridge per side of a
 * split) or to no bridge at all (isolated); its link stays up, so its datagrams leave and are lost
 * on the wire, as when a switch or cable fails. `heal()` puts every port back on one bridge.
 */
import type { Launched, LaunchOptions, ProcessGroup } from "@kv/launcher"
import { ip, NetlabError } from "./ipCommand.ts"
import { requireNetlab } from "./preflight.ts"
import { NAME_PREFIX, removeNamespace, sweepStaleNamespaces } from "./sweep.ts"

export interface NetHost {
  readonly index: number
  /** The network namespace the host is. */
  readonly namespace: string
  /** Its IPv4 address on the lab's subnet (no port). */
  readonly address: string
}

export interface NetLabOptions {
  readonly hosts: number
  /** The first three octets of the lab's /24; default "10.77.0". Host k gets `.k+1`. */
  readonly subnet?: string
}

const MAX_HOSTS = 250
const live = new Set<NetLab>()
let exitHooked = false
let labs = 0

/** Removes every lab still standing when the process exits, however it exits (synchronous, as exit needs). */
const hookExit = () => {
  if (exitHooked) return
  exitHooked = true
  process.on("exit", () => {
    for (const lab of live) lab.destroy()
  })
}

export class NetLab {
  readonly hosts: readonly NetHost[]
  /** Which bridge each host's port is on; undefined = on none (isolated). */
  private readonly bridgeOf: (number | undefined)[]
  private bridges = 0
  private destroyed = false

  private constructor(
    readonly name: string,
    private readonly switchNamespace: string,
    hosts: readonly NetHost[],
  ) {
    this.hosts = hosts
    this.bridgeOf = hosts.map(() => 0)
  }

  /**
   * Builds a lab of `hosts` hosts on one bridge, after removing what earlier runs that died left
   * behind. Fails with what to install when this machine cannot (not root, no `ip`).
   */
  static create(options: NetLabOptions): NetLab {
    requireNetlab()
    if (!Number.isInteger(options.hosts) || options.hosts < 1 || options.hosts > MAX_HOSTS) {
      throw new RangeError(`a lab has 1..${MAX_HOSTS} hosts, not ${options.hosts}`)
    }
    const subnet = options.subnet ?? "10.77.0"
    if (!/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(subnet)) throw new RangeError(`subnet ${subnet}: expected "a.b.c"`)
    sweepStaleNamespaces()
    hookExit()
    const name = `${NAME_PREFIX}${process.pid}-${++labs}`
    const hosts = Array.from({ length: options.hosts }, (_, index) => ({
      index,
      namespace: `${name}-h${index}`,
      address: `${subnet}.${index + 1}`,
    }))
    const lab = new NetLab(name, `${name}-sw`, hosts)
    live.add(lab)
    try {
      lab.build()
    } catch (error) {
      lab.destroy()
      throw error
    }
    return lab
  }

  private build(): void {
    const sw = this.switchNamespace
    ip(["netns", "add", sw])
    this.ensureBridge(0)
    for (const host of this.hosts) {
      ip(["netns", "add", host.namespace])
      ip(["-n", host.namespace, "link", "set", "lo", "up"])
      // Both ends are created straight in their namespaces: nothing appears in the machine's own.
      ip(["link", "add", portOf(host), "netns", sw, "type", "veth", "peer", "name", "eth0", "netns", host.namespace])
      ip(["-n", host.namespace, "addr", "add", `${host.address}/24`, "dev", "eth0"])
      ip(["-n", host.namespace, "link", "set", "eth0", "up"])
      ip(["-n", sw, "link", "set", portOf(host), "master", "br0", "up"])
    }
  }

  private ensureBridge(k: number): void {
    while (this.bridges <= k) {
      const bridge = `br${this.bridges}`
      ip(["-n", this.switchNamespace, "link", "add", bridge, "type", "bridge"])
      ip(["-n", this.switchNamespace, "link", "set", bridge, "up"])
      this.bridges++
    }
  }

  host(index: number): NetHost {
    const host = this.hosts[index]
    if (host === undefined) throw new RangeError(`${this.name} has hosts 0..${this.hosts.length - 1}, not ${index}`)
    return host
  }

  /** The command line that runs `command` inside host `index`. */
  exec(index: number, command: readonly string[]): string[] {
    return ["ip", "netns", "exec", this.host(index).namespace, ...command]
  }

  /** Starts `command` inside host `index` as process `name` of `processes`. */
  start(
    processes: ProcessGroup,
    name: string,
    index: number,
    command: readonly string[],
    options?: LaunchOptions,
  ): Launched {
    this.checkLive()
    return processes.start(name, this.exec(index, command), options)
  }

  /** Cuts these hosts off from everyone (each alone); the others keep their current sides. */
  isolate(...indexes: number[]): void {
    for (const k of indexes) this.attach(k, undefined)
  }

  /**
   * Splits the network into `sides`: the hosts of one side reach each other and nobody else; hosts
   * named in no side are isolated. `partition([0, 1], [2])` is a majority/minority split.
   */
  partition(...sides: readonly (readonly number[])[]): void {
    const sideOf = new Map<number, number>()
    sides.forEach((side, s) => {
      for (const k of side) {
        this.host(k)
        if (sideOf.has(k)) throw new RangeError(`host ${k} is on two sides of a partition`)
        sideOf.set(k, s)
      }
    })
    this.ensureBridge(Math.max(0, sides.length - 1))
    for (const host of this.hosts) this.attach(host.index, sideOf.get(host.index))
  }

  /** Every host on one bridge again. */
  heal(): void {
    for (const host of this.hosts) this.attach(host.index, 0)
  }

  /** The current layout, for logs: "0 1 | 2, isolated 3" or "all connected". */
  describe(): string {
    const sides = new Map<number, number[]>()
    const isolated: number[] = []
    this.bridgeOf.forEach((bridge, k) => {
      if (bridge === undefined) isolated.push(k)
      else sides.set(bridge, [...(sides.get(bridge) ?? []), k])
    })
    if (isolated.length === 0 && sides.size === 1) return "all connected"
    const parts = [...sides.values()].map((side) => side.join(" ")).join(" | ")
    return isolated.length === 0 ? parts : `${parts}${parts === "" ? "" : ", "}isolated ${isolated.join(" ")}`
  }

  /**
   * Kills every process still inside the lab's namespaces and deletes them (the veth pairs go with
   * them). Idempotent and synchronous, so it also runs from an exit handler.
   */
  destroy(): void {
    if (this.destroyed) return
    this.destroyed = true
    live.delete(this)
    for (const host of this.hosts) removeNamespace(host.namespace)
    removeNamespace(this.switchNamespace)
  }

  private attach(k: number, bridge: number | undefined): void {
    this.checkLive()
    const host = this.host(k)
    if (this.bridgeOf[k] === bridge) return
    ip([
      "-n",
      this.switchNamespace,
      "link",
      "set",
      portOf(host),
      ...(bridge === undefined ? ["nomaster"] : ["master", `br${bridge}`]),
    ])
    this.bridgeOf[k] = bridge
  }

  private checkLive(): void {
    if (this.destroyed) throw new NetlabError(`${this.name} was destroyed`)
  }
}

/** The host's port on the switch (interface names are per namespace, so short ones never clash). */
const portOf = (host: NetHost): string => `p${host.index}`
