/** Proves that the lab network's reply classifier for Raft tells answers from requests by their batch alone. */
import { expect, test } from "bun:test"
import { isRaftReply, type Message } from "../src/index.ts"

const heartbeatResp: Message = { type: "HeartbeatResp", from: 2, to: 1, term: 1, context: 0 }
const voteResp: Message = { type: "VoteResp", from: 2, to: 1, term: 1, reject: false }
const heartbeat: Message = { type: "Heartbeat", from: 1, to: 2, term: 1, commit: 0, context: 0 }

test("a batch of Raft responses is a reply; a batch holding any request, or anything else, is not", () => {
  expect(isRaftReply([heartbeatResp, voteResp])).toBe(true)
  expect(isRaftReply([heartbeat])).toBe(false)
  expect(isRaftReply([heartbeatResp, heartbeat])).toBe(false)
  expect(isRaftReply([])).toBe(false)
  expect(isRaftReply([null])).toBe(false)
  expect(isRaftReply({ type: "VoteResp" })).toBe(false)
})
