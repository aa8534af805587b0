// Proves that the virtual clock fires timers in (due time, insertion order) and only when driven.
import { describe, expect, test } from "bun:test"
import { VirtualClock } from "../src/index.ts"

describe("virtual clock", () => {
  test("timers fire in due-time order, ties in insertion order", () => {
    const clock = new VirtualClock()
    const fired: Array<string> = []
    clock.setTimer(30, () => fired.push(`c@${clock.now()}`))
    clock.setTimer(10, () => fired.push(`a@${clock.now()}`))
    clock.setTimer(10, () => fired.push(`b@${clock.now()}`))
    clock.setTimer(20, () => {
      fired.push(`d@${clock.now()}`)
      clock.setTimer(0, () => fired.push(`e@${clock.now()}`))
    })
    clock.runUntil(100)
    expect(fired).toEqual(["a@10", "b@10", "d@20", "e@20", "c@30"])
    expect(clock.now()).toBe(100)
  })

  test("time does not move until the driver steps it", () => {
    const clock = new VirtualClock()
    let fired = false
    clock.setTimer(5, () => {
      fired = true
    })
    expect(clock.now()).toBe(0)
    expect(fired).toBe(false)
    expect(clock.step()).toBe(true)
    expect(fired).toBe(true)
    expect(clock.now()).toBe(5)
    expect(clock.step()).toBe(false)
  })

  test("a cancelled timer never fires, and runUntil stops at its bound", () => {
    const clock = new VirtualClock()
    const fired: Array<number> = []
    const id = clock.setTimer(10, () => fired.push(10))
    clock.setTimer(20, () => fired.push(20))
    clock.setTimer(50, () => fired.push(50))
    expect(clock.cancelTimer(id)).toBe(true)
    expect(clock.cancelTimer(id)).toBe(false)
    clock.runUntil(40)
    expect(fired).toEqual([20])
    expect(clock.now()).toBe(40)
    expect(clock.pending).toBe(1)
    expect(clock.nextDue()).toBe(50)
  })

  test("queued work runs before time advances", () => {
    const clock = new VirtualClock()
    const order: Array<string> = []
    clock.setTimer(0, () => order.push("timer"))
    clock.enqueue(() => order.push("task"))
    clock.step()
    clock.step()
    expect(order).toEqual(["task", "timer"])
  })
})
