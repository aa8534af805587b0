import { Schema } from "effect"

/**
 * The id was a member of the group before (or is a bootstrap replica's). Ids are single-use: a
 * replacement machine gets a new id, because an id added again with an empty disk could vote twice
 * in one term.
 */
export class IdUsedBefore extends Schema.TaggedError<IdUsedBefore>()("IdUsedBefore", { id: Schema.Number }) {
  override get message(): string {
    return `member id ${this.id} was used before in this group; ids are single-use: give the new member a new id`
  }
}

/** The new member's address is not a `host:port`. */
export class BadMemberAddress extends Schema.TaggedError<BadMemberAddress>()("BadMemberAddress", {
  message: Schema.String,
}) {}
