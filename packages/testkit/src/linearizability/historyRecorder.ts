import type { KvInput, Operation } from "./operation.ts"

/** Names one operation between `begin` and its `end` or `unknown`. */
export type OperationToken = number & { readonly OperationToken: unique symbol }

interface Pending {
  readonly clientId: number
  readonly input: KvInput
  readonly call: number
  return: number
  output: string | undefined
  reads: readonly string[] | undefined
  settled: boolean
}

/**
 * Records what clients did, for checkLinearizable. Times come from a counter bumped on every begin and
 * end: the recorder sees events in the order they happened in this process, which is exactly the real-time
 * order the checker needs, with no clock and no ties.
 */
export class HistoryRecorder {
  private clock = 0
  private readonly operations: Pending[] = []

  /** Call just before sending the request. */
  begin(clientId: number, input: KvInput): OperationToken {
    this.operations.push({
      clientId,
      input,
      call: ++this.clock,
      return: Infinity,
      output: undefined,
      reads: undefined,
      settled: false,
    })
    return (this.operations.length - 1) as OperationToken
  }

  /** Call as soon as the reply arrives; `output` is a get's value, a cas's or txn's outcome; `reads` a txn's. */
  end(token: OperationToken, output?: string, reads?: readonly string[]): void {
    const pending = this.settle(token)
    pending.return = ++this.clock
    pending.output = output
    pending.reads = reads
  }

  /** The reply will never be known (the client gave up or crashed): the operation may or may not have happened. */
  unknown(token: OperationToken): void {
    this.settle(token)
  }

  /** Everything recorded so far; operations neither ended nor marked unknown count as unknown. */
  history(): Operation[] {
    return this.operations.map(({ clientId, input, call, return: ret, output, reads }) =>
      output === undefined
        ? { clientId, input, call, return: ret }
        : reads === undefined
          ? { clientId, input, call, return: ret, output }
          : { clientId, input, call, return: ret, output, reads },
    )
  }

  private settle(token: OperationToken): Pending {
    const pending = this.operations[token]
    if (pending === undefined) throw new Error(`unknown operation token ${token}`)
    if (pending.settled) throw new Error(`operation ${token} was already ended`)
    pending.settled = true
    return pending
  }
}
