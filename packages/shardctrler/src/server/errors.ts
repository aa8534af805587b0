import { Schema } from "effect"

/** The controller refused an admin operation (GroupExists, UnknownGroup, BadShard, BadGid, BadRequest). */
export class ControllerError extends Schema.TaggedError<ControllerError>()("ControllerError", {
  code: Schema.String,
  message: Schema.String,
}) {}
