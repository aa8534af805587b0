// Proves that the simulated network delivers after seeded delays and obeys partitions, loss, duplication and rules.
import { describe, expect, test } from "bun:test"
import { type Datagram, Seed, SimNetwork, VirtualClock } from "../src/index.ts"

const setup = (options?: ConstructorParameters<typeof SimNetwork>[2]) => {
  const clock = new VirtualClock()
  const network = new SimNetwork(clock, new Seed(9).stream("network"), options)
  const inbox = new Map<string, Array<Datagram>>()
  const endpoint = (address: string) => {
    inbox.set(address, [])
    return network.attach(address, (d) => inbox.get(address)!.push(d))
  }
  return { clock, network, inbox, a: endpoint("a"), b: endpoint("b"), c: endpoint("c") }
}
const bytes = (n: number) => new Uint8Array([n])

describe("simulated network", () => {
  test("a datagram arrives after a delay inside the configured range", () => {
    const { clock, inbox, a } = setup({ delayMinMs: 5, delayMaxMs: 9 })
    let arrivedAt = -1
    a.send("b", bytes(1))
    expect(inbox.get("b")).toEqual([])
    while (inbox.get("b")!.length === 0 && clock.step()) arrivedAt = clock.now()
    expect(arrivedAt).toBeGreaterThanOrEqual(5)
    expect(arrivedAt).toBeLessThanOrEqual(9)
    expect(inbox.get("b")![0]!.payload).toEqual(bytes(1))
    expect(a.counts).toEqual({ sent: 1, delivered: 0, dropped: 0, duplicated: 0 })
  })

  test("a partition stops traffic both ways, including datagrams already in flight, until healed", () => {
    const { clock, network, inbox, a, b, c } = setup()
    a.send("b", bytes(1))
    network.partition(["a"], ["b", "c"])
    clock.runUntil(100)
    b.send("a", bytes(2))
    a.send("c", bytes(3))
    b.send("c", bytes(4))
    clock.runUntil(200)
    expect(inbox.get("a")).toEqual([])
    expect(inbox.get("b")).toEqual([])
    expect(inbox.get("c")!.map((d) => d.payload[0])).toEqual([4])
    network.heal()
    a.send("b", bytes(5))
    clock.runUntil(300)
    expect(inbox.get("b")!.map((d) => d.payload[0])).toEqual([5])
    expect(network.counts("a").dropped).toBe(2)
    expect(c.counts.delivered).toBe(1)
  })

  test("a per-direction rule blocks one direction only", () => {
    const { clock, network, inbox, a, b } = setup()
    network.setRule("a", "b", { blocked: true })
    a.send("b", bytes(1))
    b.send("a", bytes(2))
    clock.runUntil(100)
    expect(inbox.get("b")).toEqual([])
    expect(inbox.get("a")!.map((d) => d.payload[0])).toEqual([2])
  })

  test("loss drops about the configured share, duplication delivers twice", () => {
    const lossy = setup({ loss: 0.3 })
    for (let i = 0; i < 1000; i++) lossy.a.send("b", bytes(i & 0xff))
    lossy.clock.runUntil(1000)
    const delivered = lossy.inbox.get("b")!.length
    expect(delivered).toBeGreaterThan(620)
    expect(delivered).toBeLessThan(780)
    expect(lossy.a.counts.dropped + delivered).toBe(1000)

    const twice = setup({ duplication: 1 })
    twice.a.send("b", bytes(7))
    twice.clock.runUntil(100)
    expect(twice.inbox.get("b")!.map((d) => d.payload[0])).toEqual([7, 7])
    expect(twice.a.counts.duplicated).toBe(1)
  })

  test("a wide delay range reorders datagrams", () => {
    const { clock, inbox, a } = setup({ delayMinMs: 1, delayMaxMs: 100 })
    for (let i = 0; i < 20; i++) a.send("b", bytes(i))
    clock.runUntil(200)
    const order = inbox.get("b")!.map((d) => d.payload[0])
    expect(order.length).toBe(20)
    expect(order).not.toEqual([...order].sort((x, y) => x! - y!))
  })

  test("datagrams to a detached address are dropped on arrival", () => {
    const { clock, network, inbox, a } = setup()
    a.send("b", bytes(1))
    network.detach("b")
    clock.runUntil(100)
    expect(inbox.get("b")).toEqual([])
    expect(a.counts.dropped).toBe(1)
  })
})
