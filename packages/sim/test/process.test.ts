// Proves that a crashed process loses its timers and memory, and its restart sees exactly the durable disk.
import { describe, expect, test } from "bun:test"
import { Result } from "effect"
import { type ProcessContext, World } from "../src/index.ts"

const dec = (b: Uint8Array) => new TextDecoder().decode(b)

describe("processes", () => {
  test("a restart sees exactly the durable state, and the dead incarnation's timers never fire", () => {
    const world = new World({ seed: 11 })
    const booted: Array<{ incarnation: number; found: string }> = []
    let ticks = 0
    const counter = (ctx: ProcessContext) => {
      const read = ctx.disk.read("count")
      booted.push({ incarnation: ctx.incarnation, found: Result.isSuccess(read) ? dec(read.success) : "" })
      let inMemory = 0
      const tick = () => {
        ticks++
        inMemory++
        ctx.disk.write("count", 0, new TextEncoder().encode(String(inMemory).padStart(3, "0")))
        // Only every third count is made durable.
        if (inMemory % 3 === 0) {
          ctx.disk.fsync("count")
          ctx.disk.fsyncDir()
        }
        ctx.clock.setTimer(10, tick, "tick")
      }
      ctx.clock.setTimer(10, tick, "tick")
    }
    world.processes.start("p", counter, { tearProbability: 0 })
    world.runUntil(75)
    expect(ticks).toBe(7)
    world.processes.crash("p")
    expect(world.processes.isRunning("p")).toBe(false)
    world.runUntil(500)
    expect(ticks).toBe(7)
    world.processes.restart("p")
    expect(booted).toEqual([
      { incarnation: 0, found: "" },
      { incarnation: 1, found: "006" },
    ])
    world.runUntil(520)
    expect(ticks).toBe(9)
  })

  test("a crashed process receives nothing; its restart receives again", () => {
    const world = new World({ seed: 12 })
    const received: Array<number> = []
    world.processes.start("server", (ctx) =>
      ctx.onDatagram((d) => received.push(ctx.incarnation * 100 + d.payload[0]!)),
    )
    const client = world.network.attach("client", () => {})
    client.send("server", new Uint8Array([1]))
    world.runUntil(50)
    world.processes.crash("server")
    client.send("server", new Uint8Array([2]))
    world.runUntil(100)
    world.processes.restart("server")
    client.send("server", new Uint8Array([3]))
    world.runUntil(150)
    expect(received).toEqual([1, 103])
    expect(client.counts.dropped).toBe(1)
  })
})
