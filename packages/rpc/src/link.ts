/**
 * A link moves raw datagrams for one local address. It knows nothing of framing: the transport
 * above it does that, so the UDP link and the simulated one share the whole codec.
 */
export interface Link {
  readonly address: string
  /**
   * False when the datagram could not be handed to the network (bad address, closed link).
   * `reply` marks an answer to a request: the simulated network's lab model delays replies
   * differently from requests; real links ignore it.
   */
  send(to: string, datagram: Uint8Array, reply?: boolean): boolean
  close(): void
}

export type DatagramHandler = (from: string, datagram: Uint8Array) => void
