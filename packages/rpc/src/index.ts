export { formatAddress, type HostPort, isHostName, normalizeAddress, parseAddress } from "./address.ts"
export { AddressProof, type AddressProofOptions, DEFAULT_MAX_REPLY_FACTOR } from "./addressProof.ts"
export { decodeEnvelope, ENVELOPE_VERSION, type Envelope, encodeEnvelope } from "./envelope.ts"
export { type CallError, PermissionDenied, RemoteError, Timeout, TransportError, Unreachable } from "./errors.ts"
export {
  DEFAULT_MAX_MESSAGE_BYTES,
  FrameCodec,
  type FrameCodecOptions,
  MAX_DATAGRAM_BYTES,
  NonceSource,
  SEAL_BYTES,
  type Sender,
  UNKEYED,
} from "./frame.ts"
export { HOST_REFRESH_MS, type HostLookup, HostNames, isSourceOf, sourceMatcher } from "./hostNames.ts"
export { type KeyGrant, KeyRing, type Role, roleAllows, roles } from "./keyRing.ts"
export type { DatagramHandler, Link } from "./link.ts"
export { defineMethod, type FastDecoder, type FastDecoders, type Method } from "./method.ts"
export { injectsFaults, type NetFaults, netFaultsFromEnv, noNetFaults } from "./netFaults.ts"
export { SeededRandom, seedFromEnv } from "./random.ts"
export { Reassembler, type ReassemblyOptions } from "./reassembly.ts"
export {
  type CallOptions,
  defaultCallOptions,
  type Handler,
  makeRpcNode,
  type OneWayHandler,
  type RequestObserver,
  RpcNode,
  type RpcNodeOptions,
  type RpcNodeShape,
} from "./rpcNode.ts"
export { defaultRttOptions, RttEstimator, type RttOptions } from "./rttEstimator.ts"
export { SimNetwork, type SimNetworkOptions, type SimNodeCounts } from "./simNetwork.ts"
export type { OneWayReplyClassifier } from "./simReplies.ts"
export { type DropReason, dropReasons, TransportStats, type TransportStatsSnapshot } from "./stats.ts"
export { type TimerHandle, Timers } from "./timers.ts"
export {
  type MessageHandler,
  makeTransport,
  Transport,
  type TransportOptions,
  type TransportShape,
  type UdpTransportOptions,
} from "./transport.ts"
export { BindError, openUdpLink, type UdpBackend, type UdpLinkOptions } from "./udpLink.ts"
