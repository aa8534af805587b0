/**
 * Virtual time. Nothing here reads the wall clock: time moves only when the driver calls
 * `step` or `runUntil`, and timers fire in (due time, insertion order), so a run is a pure
 * function of its inputs.
 */
import type { TraceDigest } from "./digest.ts"

export type TimerId = number

interface Timer {
  readonly id: TimerId
  readonly due: number
  readonly label: string
  readonly fn: () => void
}

interface Task {
  readonly priority: number
  readonly seq: number
  readonly fn: () => void
}

/** Timers ordered by (due, id); ids grow with insertion, so ties fire in insertion order. */
class TimerHeap {
  private readonly items: Array<Timer> = []

  get size(): number {
    return this.items.length
  }

  peek(): Timer | undefined {
    return this.items[0]
  }

  push(timer: Timer): void {
    const items = this.items
    items.push(timer)
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(items[i]!, items[parent]!)) break
      ;[items[i], items[parent]] = [items[parent]!, items[i]!]
      i = parent
    }
  }

  pop(): Timer | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (top === undefined || last === undefined || items.length === 0) return top
    items[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < items.length && before(items[l]!, items[m]!)) m = l
      if (r < items.length && before(items[r]!, items[m]!)) m = r
      if (m === i) break
      ;[items[i], items[m]] = [items[m]!, items[i]!]
      i = m
    }
    return top
  }
}

const before = (x: Timer, y: Timer): boolean => x.due < y.due || (x.due === y.due && x.id < y.id)

export class VirtualClock {
  private time: number
  private nextId = 1
  private readonly timers = new TimerHeap()
  // Cancelled timers stay in the heap and are skipped when popped: O(1) cancel.
  private readonly live = new Set<TimerId>()
  // Work that runs at the current instant before time may advance (Effect fibers' tasks).
  private ready: Array<Task> = []
  private taskSeq = 0
  private fired = 0

  constructor(options?: { readonly startMs?: number; readonly trace?: TraceDigest }) {
    this.time = options?.startMs ?? 0
    this.trace = options?.trace
  }

  private readonly trace: TraceDigest | undefined

  now(): number {
    return this.time
  }

  /** Timers that have fired so far. */
  get timersFired(): number {
    return this.fired
  }

  /** Timers still pending. */
  get pending(): number {
    return this.live.size
  }

  /** Due time of the next pending timer, if any. */
  nextDue(): number | undefined {
    this.dropCancelledTop()
    return this.timers.peek()?.due
  }

  setTimer(delayMs: number, fn: () => void, label = ""): TimerId {
    if (!(delayMs >= 0)) throw new RangeError(`setTimer: delay must be >= 0, got ${delayMs}`)
    const id = this.nextId++
    this.timers.push({ id, due: this.time + delayMs, label, fn })
    this.live.add(id)
    return id
  }

  /** True when the timer was still pending. */
  cancelTimer(id: TimerId): boolean {
    return this.live.delete(id)
  }

  /**
   * Queue work at the current instant. It runs before any timer fires, lower priority first,
   * then in insertion order; this is how Effect fibers resume without real timers.
   */
  enqueue(fn: () => void, priority = 0): void {
    const task: Task = { priority, seq: this.taskSeq++, fn }
    const ready = this.ready
    let i = ready.length
    while (i > 0 && ready[i - 1]!.priority > priority) i--
    ready.splice(i, 0, task)
  }

  /** Runs queued work until none is left. Returns how many tasks ran. */
  drainReady(): number {
    let ran = 0
    while (this.ready.length > 0) {
      const batch = this.ready
      this.ready = []
      for (const task of batch) {
        task.fn()
        ran++
      }
    }
    return ran
  }

  /**
   * One event: queued work if any, else the next timer (advancing time to its due time).
   * Returns false when there is nothing left to do.
   */
  step(): boolean {
    if (this.drainReady() > 0) return true
    this.dropCancelledTop()
    const timer = this.timers.pop()
    if (timer === undefined) return false
    this.live.delete(timer.id)
    this.time = timer.due
    this.fired++
    this.trace?.record("timer", timer.due, timer.label)
    timer.fn()
    this.drainReady()
    return true
  }

  /** Fires every timer due at or before `t`, then sets the time to `t`. */
  runUntil(t: number): void {
    for (;;) {
      this.drainReady()
      const due = this.nextDue()
      if (due === undefined || due > t) break
      this.step()
    }
    if (t > this.time) this.time = t
  }

  /** `runUntil(now() + ms)`. */
  advance(ms: number): void {
    this.runUntil(this.time + ms)
  }

  private dropCancelledTop(): void {
    for (let top = this.timers.peek(); top !== undefined && !this.live.has(top.id); top = this.timers.peek()) {
      this.timers.pop()
    }
  }
}
