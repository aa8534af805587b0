/**
 * A link moves raw datagrams for one local address. It knows nothing of framing: the transport
 * above it does that, so the UDP link and the simulated one share the whole codec.
 */
export interface Link {
  readonly address: string
  /** False when the datagram could not be handed to the network (bad address, closed link). */
  send(to: string, datagram: Uint8Array): boolean
  close(): void
}

export type DatagramHandler = (from: string, datagram: Uint8Array) => void
