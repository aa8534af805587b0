/** Proves where a client binds by default: loopback only when every server is on loopback. */
import { expect, test } from "bun:test"
import { clientBind } from "../src/clientBind.ts"

test("loopback servers: 127.0.0.1; any server elsewhere: every interface", () => {
  expect(clientBind(["127.0.0.1:7001", "localhost:7002", "127.1.2.3:9", "[::1]:7003"])).toBe("127.0.0.1:0")
  expect(clientBind(["127.0.0.1:7001", "10.0.0.2:7001"])).toBe("0.0.0.0:0")
  expect(clientBind(["kv1.example:7001"])).toBe("0.0.0.0:0")
  expect(clientBind([])).toBe("127.0.0.1:0")
})
