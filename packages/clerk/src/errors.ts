/** The clerk's own typed errors (the services' errors are re-exported from their packages). */
import { Schema } from "effect"

/**
 * Leases, locks and elections exist on the kvraft service only; this clerk is connected to the
 * sharded service. Nothing was sent. Connect with `service: "kvraft"` (or `servers`).
 */
export class KvraftOnly extends Schema.TaggedError<KvraftOnly>()("KvraftOnly", {
  /** What was asked for: "leases", "locks", "elections". */
  feature: Schema.String,
}) {
  override get message(): string {
    return (
      `${this.feature} need the kvraft service, and this client is connected to the sharded service ` +
      '(which has none): connect with { service: "kvraft" } or { servers: [...] }'
    )
  }
}

/**
 * A lease this client kept alive is gone, or can no longer be vouched for: `ended` (revoked, or
 * the servers let it expire) or `unrenewed` (no renewal got through within its TTL, counted from
 * when the last successful renewal was sent; the servers end it no earlier than that).
 */
export class LeaseLost extends Schema.TaggedError<LeaseLost>()("LeaseLost", {
  lease: Schema.Number,
  reason: Schema.Literals(["ended", "unrenewed"]),
}) {
  override get message(): string {
    return this.reason === "ended"
      ? `lease ${this.lease} ended (revoked, or expired on the servers)`
      : `lease ${this.lease} was not renewed within its TTL: the servers may have ended it`
  }
}
