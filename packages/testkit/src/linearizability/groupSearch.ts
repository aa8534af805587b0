import { Bitset } from "./bitset.ts"
import type { KeyOperation } from "./keySearch.ts"
import { outcomeUnknown } from "./keySearch.ts"
import { hashString, type KvState } from "./kvModel.ts"
import { casApplied, type KvInput, type Operation, type TxnCompare, type TxnOp, txnSucceeded } from "./operation.ts"
import { SearchBudgetExhausted, type StepBudget } from "./stepBudget.ts"
import { VisitedNodes } from "./visitedNodes.ts"

/**
 * The state of a group of keys that transactions touch together: per key its value and its version
 * (writes since it was created; 0 when absent, and then its value is ""). Immutable: a step makes a new one.
 */
interface GroupState {
  readonly values: readonly string[]
  readonly versions: readonly number[]
  /** The whole state as one string and its hash, the form the visited-node table remembers. */
  readonly memo: KvState
}

const makeState = (values: readonly string[], versions: readonly number[]): GroupState => {
  const text = JSON.stringify([values, versions])
  return { values, versions, memo: { value: text, hash: hashString(text) } }
}

/** The next state, or undefined when the model rejects the operation in `state`. */
type GroupStep = (state: GroupState) => GroupState | undefined

/**
 * Decides whether the sub-history of a group of keys is linearizable: the same search as keySearch's
 * (Wing & Gong with Lowe's just-in-time linearization, memoized on (linearized set, state)), over the
 * state of every key of the group at once, so a transaction is one atomic step over all its keys.
 *
 * It lacks keySearch's pruning for long append-heavy keys: a group is the few keys a test runs
 * transactions on, and its histories are short. Gets of unknown outcome must be removed by the caller.
 */
export const isGroupLinearizable = (
  keys: readonly string[],
  history: readonly KeyOperation[],
  budget: StepBudget,
): boolean => {
  const slot = new Map(keys.map((key, i) => [key, i]))
  // A transaction of unknown outcome that writes in neither branch constrains nothing.
  const ops = history.filter(({ operation }) => !(outcomeUnknown(operation) && readsOnly(operation.input)))
  const n = ops.length
  if (n === 0) return true
  const steps: GroupStep[] = ops.map(({ operation }) => toStep(operation, slot))
  const unknown = new Uint8Array(n)
  for (let i = 0; i < n; i++) if (outcomeUnknown(ops[i]!.operation)) unknown[i] = 1
  const isGet = new Uint8Array(n)
  for (let i = 0; i < n; i++) if (ops[i]!.operation.input.op === "get") isGet[i] = 1

  // Events 1..2n between a head (0) and a tail (2n+1) sentinel, sorted by time, calls before returns on ties.
  const events: { time: number; isCall: boolean; op: number }[] = []
  for (let i = 0; i < n; i++) {
    const operation = ops[i]!.operation
    events.push({ time: operation.call, isCall: true, op: i })
    events.push({ time: unknown[i] ? Infinity : operation.return, isCall: false, op: i })
  }
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
  const stackCall = new Int32Array(n)
  const stackForced = new Uint8Array(n)
  const stackState: GroupState[] = new Array(n)
  let depth = 0
  let state = makeState(
    keys.map(() => ""),
    keys.map(() => 0),
  )
  let entry = nextEvent[head]!
  let atNewNode = true

  /**
   * A pending plain get that reads the current state can be linearized now without losing any solution
   * (as in keySearch): it changes nothing and everything that must precede it already does.
   */
  const matchingPendingGet = (): number => {
    for (let e = nextEvent[head]!; e !== tail && isCall[e]; e = nextEvent[e]!) {
      const op = opOf[e]!
      if (isGet[op] && steps[op]!(state) !== undefined) return e
    }
    return -1
  }

  const tryLinearize = (call: number, after: GroupState, forced: boolean): boolean => {
    const op = opOf[call]!
    linearized.toggle(op)
    lift(call)
    if (visited.add(linearized, after.memo)) {
      stackCall[depth] = call
      stackForced[depth] = forced ? 1 : 0
      stackState[depth] = state
      depth++
      state = after
      entry = nextEvent[head]!
      atNewNode = true
      return true
    }
    unlift(call)
    linearized.toggle(op)
    return false
  }

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

  while (true) {
    if (--budget.remaining < 0) throw new SearchBudgetExhausted("out of search steps")
    if (entry === tail) return true
    if (atNewNode) {
      atNewNode = false
      const get = matchingPendingGet()
      if (get !== -1) {
        if (tryLinearize(get, state, true)) continue
        if (!backtrack()) return false
        continue
      }
    }
    const op = opOf[entry]!
    if (isCall[entry]) {
      const after = steps[op]!(state)
      if (after !== undefined && tryLinearize(entry, after, false)) continue
      entry = nextEvent[entry]!
    } else {
      // Past every known return: the unknown operations still pending are taken never to have happened.
      if (unknown[op]) return true
      if (!backtrack()) return false
    }
  }
}

const readsOnly = (input: KvInput): boolean =>
  input.op === "get" || (input.op === "txn" && [...input.success, ...input.failure].every((o) => o.op === "get"))

const toStep = (operation: Operation, slot: ReadonlyMap<string, number>): GroupStep => {
  const input = operation.input
  const known = !outcomeUnknown(operation)
  const at = (key: string): number => slot.get(key)!
  switch (input.op) {
    case "get": {
      const k = at(input.key)
      const output = operation.output ?? ""
      return (s) => (read(s, k) === output ? s : undefined)
    }
    case "put": {
      const k = at(input.key)
      return (s) => write(s, k, input.value)
    }
    case "append": {
      const k = at(input.key)
      return (s) => write(s, k, read(s, k) + input.value)
    }
    case "delete": {
      const k = at(input.key)
      return (s) => remove(s, k)
    }
    case "cas": {
      const k = at(input.key)
      const applied = operation.output === casApplied
      return (s) => {
        const holds = s.versions[k]! > 0 && s.values[k] === input.expected
        if (known && holds !== applied) return undefined
        return holds ? write(s, k, input.value) : s
      }
    }
    case "txn": {
      const compare = input.compare.map((c) => ({ c, k: at(c.key) }))
      const succeeded = operation.output === txnSucceeded
      const reads = operation.reads ?? []
      const branch = (ops: readonly TxnOp[]) => ops.map((o) => ({ o, k: at(o.key) }))
      const success = branch(input.success)
      const failure = branch(input.failure)
      return (s) => {
        const holds = compare.every(({ c, k }) => compareHolds(s, k, c))
        if (known && holds !== succeeded) return undefined
        let next = s
        let readCount = 0
        for (const { o, k } of holds ? success : failure) {
          if (o.op === "get") {
            if (known && reads[readCount] !== read(next, k)) return undefined
            readCount++
          } else next = o.op === "put" ? write(next, k, o.value) : remove(next, k)
        }
        if (known && readCount !== reads.length) return undefined
        return next
      }
    }
  }
}

const read = (s: GroupState, k: number): string => (s.versions[k]! > 0 ? s.values[k]! : "")

const write = (s: GroupState, k: number, value: string): GroupState => {
  const values = [...s.values]
  const versions = [...s.versions]
  values[k] = value
  versions[k] = versions[k]! + 1
  return makeState(values, versions)
}

const remove = (s: GroupState, k: number): GroupState => {
  if (s.versions[k] === 0) return s
  const values = [...s.values]
  const versions = [...s.versions]
  values[k] = ""
  versions[k] = 0
  return makeState(values, versions)
}

const compareHolds = (s: GroupState, k: number, c: TxnCompare): boolean => {
  if (c.target === "value") {
    if (s.versions[k] === 0) return false
    return (s.values[k] === c.value) === (c.cmp === "==")
  }
  const version = s.versions[k]!
  switch (c.cmp) {
    case "==":
      return version === c.value
    case "!=":
      return version !== c.value
    case "<":
      return version < c.value
    case ">":
      return version > c.value
  }
}
