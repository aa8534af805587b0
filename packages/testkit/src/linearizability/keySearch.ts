import { AppendValues } from "./appendValues.ts"
import { Bitset } from "./bitset.ts"
import {
  deadState,
  emptyState,
  isCas,
  type KvState,
  type ModelOp,
  makeModelOp,
  OpKind,
  prefixHashes,
  step,
} from "./kvModel.ts"
import { casApplied, type Operation } from "./operation.ts"
import { SearchBudgetExhausted, type StepBudget } from "./stepBudget.ts"
import { VisitedNodes } from "./visitedNodes.ts"

/** An operation of one key's sub-history, with its position in the whole history (for explanations). */
export interface KeyOperation {
  readonly index: number
  readonly operation: Operation
}

/** Whether an operation's reply never arrived (the recorder leaves `return` infinite or unset). */
export const outcomeUnknown = (operation: Operation): boolean =>
  !Number.isFinite(operation.return as number | undefined)

/** How far the early-rejection tests look ahead; bounds their cost on long, read-free stretches. */
const maxLookaheadEvents = 512
/**
 * How far ahead someGetUnreachable checks every get, not just the first. Measured on heavily concurrent
 * failing histories: 32 cuts search steps about threefold; checking further costs more than it saves.
 */
const getCheckEvents = 32

/**
 * Decides whether one key's sub-history is linearizable: Wing & Gong's search with Lowe's just-in-time
 * linearization and memoization, as in porcupine's checkSingle.
 *
 * Calls and returns are events in one doubly linked list, sorted by time. The search walks the list from
 * its head: a call whose operation the model accepts in the current state is linearized (its call and
 * return events are lifted out of the list and pushed on a stack); reaching a return means that operation
 * can no longer be placed, so the last choice is undone. (linearized set, state) pairs already explored
 * are never explored again.
 *
 * An operation of unknown outcome has its return at +Infinity, after every known event. So once the walk
 * reaches such a return, every known operation has been linearized and the leftover unknown ones are
 * taken never to have happened. Gets of unknown outcome must be removed by the caller.
 *
 * On top of porcupine's search, rules that keep it small on append-heavy, crowded keys, each sound (it
 * never discards a node from which a linearization exists): unknown writes no get saw are dropped up
 * front; a get that reads the current value is linearized at once (matchingPendingGet); values no get
 * can observe collapse into one state (cannotBeObserved); a node after which some near get can no longer
 * read its value is abandoned (someGetUnreachable), and the same test over every get runs once first.
 */
export const isLinearizable = (history: readonly KeyOperation[], budget: StepBudget): boolean => {
  const ops = withoutUnseenUnknownWrites(history)
  const n = ops.length
  if (n === 0) return true

  const model: ModelOp[] = ops.map(({ operation }) => toModelOp(operation))
  const unknown = new Uint8Array(n)
  for (let i = 0; i < n; i++) if (outcomeUnknown(ops[i]!.operation)) unknown[i] = 1

  // Events 1..2n; 0 is the head sentinel and 2n+1 the tail sentinel, so linking never meets null.
  const events: { time: number; isCall: boolean; op: number }[] = []
  for (let i = 0; i < n; i++) {
    const operation = ops[i]!.operation
    events.push({ time: operation.call, isCall: true, op: i })
    events.push({ time: unknown[i] ? Infinity : operation.return, isCall: false, op: i })
  }
  // Equal times overlap: calls sort before returns, so an operation that returns at t and one called at t
  // may be linearized in either order.
  events.sort((a, b) =>
    a.time !== b.time ? a.time - b.time : a.isCall !== b.isCall ? (a.isCall ? -1 : 1) : a.op - b.op,
  )
  const head = 0
  const tail = 2 * n + 1
  const nextEvent = new Int32Array(tail + 1)
  const prevEvent = new Int32Array(tail + 1)
  const opOf = new Int32Array(tail + 1)
  const isCall = new Uint8Array(tail + 1)
  const returnOf = new Int32Array(n)
  for (let e = 1; e <= 2 * n; e++) {
    const event = events[e - 1]!
    opOf[e] = event.op
    isCall[e] = event.isCall ? 1 : 0
    if (!event.isCall) returnOf[event.op] = e
  }
  for (let e = 0; e < tail; e++) {
    nextEvent[e] = e + 1
    prevEvent[e + 1] = e
  }

  const unlink = (e: number): void => {
    nextEvent[prevEvent[e]!] = nextEvent[e]!
    prevEvent[nextEvent[e]!] = prevEvent[e]!
  }
  const relink = (e: number): void => {
    nextEvent[prevEvent[e]!] = e
    prevEvent[nextEvent[e]!] = e
  }
  // Dancing links: undo in the reverse order of removal and the list is exactly restored.
  const lift = (call: number): void => {
    unlink(call)
    unlink(returnOf[opOf[call]!]!)
  }
  const unlift = (call: number): void => {
    relink(returnOf[opOf[call]!]!)
    relink(call)
  }

  const linearized = new Bitset(n)
  const visited = new VisitedNodes()

  const getPrefixHashes: (Uint32Array | undefined)[] = new Array(n)
  const prefixHashesOf = (get: number): Uint32Array => {
    let hashes = getPrefixHashes[get]
    if (hashes === undefined) {
      hashes = prefixHashes(model[get]!.text)
      getPrefixHashes[get] = hashes
    }
    return hashes
  }
  /** Whether the get's output starts with the state's value (a hash collision says yes: only weaker). */
  const outputStartsWith = (get: number, state: KvState): boolean => {
    const length = state.value.length
    return length <= model[get]!.text.length && prefixHashesOf(get)[length] === state.hash
  }

  const resets: number[] = []
  const appends = new AppendValues()
  const returnTime = new Float64Array(n)
  for (let i = 0; i < n; i++) returnTime[i] = unknown[i] ? Infinity : ops[i]!.operation.return
  /** Per get, while scanning: the latest call of a known reset that returned before the get was called. */
  const overwrittenBefore = new Float64Array(n)

  /**
   * A sound early rejection, so that a wrong choice is undone at once instead of after exploring every
   * order of the operations before some get. A pending known get reads a base followed by values of
   * distinct pending appends called before it returns. The base is the current value, or the value of a
   * pending put or delete called before it returns, except what real time says is overwritten before the
   * get: if a pending known reset Q returned before the get's call, the get comes after Q, so neither the
   * current value nor a reset that returned before Q's call can be its base. When some get that returns
   * soon (within `getCheckEvents` events, or the first one at least; every get when `everyGet`) can read
   * none of these, no linearization follows.
   */
  const someGetUnreachable = (state: KvState, everyGet = false): boolean => {
    resets.length = 0
    appends.clear()
    let latestOverwrite = -Infinity
    let e = nextEvent[head]!
    for (let seen = 0; e !== tail && (everyGet || seen < maxLookaheadEvents); seen++, e = nextEvent[e]!) {
      const op = opOf[e]!
      const kind = model[op]!.kind
      if (isCall[e]) {
        if (kind === OpKind.Append) appends.add(model[op]!)
        else if (kind === OpKind.Get) overwrittenBefore[op] = latestOverwrite
        // A rejected cas writes nothing; one applied (or maybe applied) sets a value, as a put.
        else if (kind !== OpKind.CasRejected) resets.push(op)
        continue
      }
      // Past every known event: no get is left to constrain anything.
      if (unknown[op]) return false
      if (kind === OpKind.Put || kind === OpKind.Delete || kind === OpKind.CasApplied) {
        latestOverwrite = Math.max(latestOverwrite, ops[op]!.operation.call)
        continue
      }
      if (kind !== OpKind.Get) continue
      if (!canRead(op, state)) return true
      if (!everyGet && seen >= getCheckEvents) return false
    }
    return false
  }
  const canRead = (get: number, state: KvState): boolean => {
    const expected = model[get]!.text
    const hashes = prefixHashesOf(get)
    const overwritten = overwrittenBefore[get]!
    const length = state.value.length
    if (
      overwritten === -Infinity &&
      length <= expected.length &&
      hashes[length] === state.hash &&
      appends.cover(expected, hashes, length)
    )
      return true
    for (const reset of resets) {
      if (returnTime[reset]! < overwritten) continue
      const value = model[reset]!.text
      if (expected.startsWith(value) && appends.cover(expected, hashes, value.length)) return true
    }
    return false
  }

  const hasResets = model.some((op) => op.kind === OpKind.Put || op.kind === OpKind.Delete || isCas(op.kind))
  /**
   * Whether no get can ever read `state` or anything appended to it, so it may become deadState. Until
   * the next put or delete the value only grows, so a get linearized before then reads it only if its
   * output starts with it; and a get called after some pending known put or delete returned cannot come
   * before that reset. So: no pending get called before the first known reset's return starts with it.
   */
  const cannotBeObserved = (state: KvState): boolean => {
    let e = nextEvent[head]!
    for (let seen = 0; e !== tail; seen++, e = nextEvent[e]!) {
      if (seen === maxLookaheadEvents) return false
      const op = opOf[e]!
      const kind = model[op]!.kind
      if (isCall[e]) {
        if (kind === OpKind.Get && outputStartsWith(op, state)) return false
        // A pending cas compares the whole value (whatever its outcome): the value stays observable.
        if (isCas(kind)) return false
      } else if (unknown[op] || kind === OpKind.Put || kind === OpKind.Delete) {
        return true
      }
    }
    return true
  }

  /**
   * A pending get that reads the current value can be linearized right now without losing any solution:
   * it changes nothing, everything that must precede it already does (its call is before the first
   * pending return), and moving it earlier breaks no real-time order. So it is taken as a forced move, and
   * its siblings are never tried: if the search fails after it, it fails here too.
   */
  const matchingPendingGet = (state: KvState): number => {
    for (let e = nextEvent[head]!; e !== tail && isCall[e]; e = nextEvent[e]!) {
      const op = opOf[e]!
      if (model[op]!.kind === OpKind.Get && step(state, model[op]!) !== undefined) return e
    }
    return -1
  }

  const stackCall = new Int32Array(n)
  const stackForced = new Uint8Array(n)
  const stackState: KvState[] = new Array(n)
  let depth = 0
  let state = emptyState
  let entry = nextEvent[head]!
  /** Whether `entry` is the head of the list after a new linearization (a new search node). */
  let atNewNode = true

  /** Linearizes the operation whose call event is `call`, unless (linearized, after) was seen or is hopeless. */
  const tryLinearize = (call: number, after: KvState, forced: boolean): boolean => {
    const op = opOf[call]!
    linearized.toggle(op)
    lift(call)
    const settled = hasResets && after !== deadState && cannotBeObserved(after) ? deadState : after
    if (visited.add(linearized, settled) && !someGetUnreachable(settled)) {
      stackCall[depth] = call
      stackForced[depth] = forced ? 1 : 0
      stackState[depth] = state
      depth++
      state = settled
      entry = nextEvent[head]!
      atNewNode = true
      return true
    }
    unlift(call)
    linearized.toggle(op)
    return false
  }

  /** Undoes linearizations back to the last choice that has untried siblings; false when there is none. */
  const backtrack = (): boolean => {
    while (depth > 0) {
      depth--
      const call = stackCall[depth]!
      state = stackState[depth]!
      linearized.toggle(opOf[call]!)
      unlift(call)
      if (!stackForced[depth]) {
        entry = nextEvent[call]!
        return true
      }
    }
    return false
  }

  // Once over the whole history before searching: a get of a value no writes could ever make (nobody
  // wrote it, it was written later, an append shows twice, its put was overwritten before the get was
  // called) fails at once wherever it is, instead of after exploring everything before it.
  if (someGetUnreachable(emptyState, true)) return false
  while (true) {
    if (--budget.remaining < 0) throw new SearchBudgetExhausted("out of search steps")
    if (entry === tail) return true
    if (atNewNode) {
      atNewNode = false
      const get = matchingPendingGet(state)
      if (get !== -1) {
        if (tryLinearize(get, state, true)) continue
        if (!backtrack()) return false
        continue
      }
    }
    const op = opOf[entry]!
    if (isCall[entry]) {
      const after = step(state, model[op]!)
      if (after !== undefined && tryLinearize(entry, after, false)) continue
      entry = nextEvent[entry]!
    } else {
      if (unknown[op]) return true
      if (!backtrack()) return false
    }
  }
}

/**
 * On keys without cas, drops the writes of unknown outcome that no get can have seen: an append whose value is in no get's
 * output, a put whose value starts none. Every get linearized after such a write and before the next
 * put or delete would have to show it, so in any linearization that includes it no get falls in that
 * stretch, and taking the write out changes nothing any get saw. Without this, each of them would stay a
 * candidate at every step of the search, for ever, since it has no return to force a decision.
 */
const withoutUnseenUnknownWrites = (ops: readonly KeyOperation[]): readonly KeyOperation[] => {
  if (!ops.some(({ operation }) => outcomeUnknown(operation))) return ops
  // A cas sees the value too (a rejected one sees that it differs): any write may explain it.
  if (ops.some(({ operation }) => operation.input.op === "cas")) return ops
  const outputs = ops.flatMap(({ operation }) =>
    operation.input.op === "get" && operation.output !== undefined ? [operation.output] : [],
  )
  return ops.filter(({ operation }) => {
    if (!outcomeUnknown(operation)) return true
    const input = operation.input
    if (input.op === "append") return input.value !== "" && outputs.some((output) => output.includes(input.value))
    if (input.op === "put" && input.value !== "") return outputs.some((output) => output.startsWith(input.value))
    return true
  })
}

const toModelOp = (operation: Operation): ModelOp => {
  const input = operation.input
  switch (input.op) {
    case "get":
      return makeModelOp(OpKind.Get, operation.output ?? "")
    case "put":
      return makeModelOp(OpKind.Put, input.value)
    case "append":
      return makeModelOp(OpKind.Append, input.value)
    case "delete":
      return makeModelOp(OpKind.Delete, "")
    case "cas": {
      const kind = outcomeUnknown(operation)
        ? OpKind.CasUnknown
        : operation.output === casApplied
          ? OpKind.CasApplied
          : OpKind.CasRejected
      return makeModelOp(kind, input.value, input.expected)
    }
    case "txn":
      throw new Error("a transaction's keys are checked together (groupSearch), never by keySearch")
  }
}
