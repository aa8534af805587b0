import { expect, test } from "bun:test"
import { HostNames } from "../src/hostNames.ts"

const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 0))

test("a host name is sent the slow way until its first answer, then to the address DNS gives", async () => {
  const now = 0
  const asked: string[] = []
  const names = new HostNames(
    4,
    async (host) => {
      asked.push(host)
      return "10.0.0.7"
    },
    5_000,
    () => now,
  )
  expect(names.ipOf("kv-0.kv")).toBeUndefined()
  await settle()
  expect(names.ipOf("kv-0.kv")).toBe("10.0.0.7")
  expect(asked).toEqual(["kv-0.kv"])
})

test("an answer is asked again after the refresh interval, and a moved host is followed", async () => {
  let now = 0
  let address = "10.0.0.7"
  let lookups = 0
  const names = new HostNames(
    4,
    async () => {
      lookups++
      return address
    },
    5_000,
    () => now,
  )
  names.ipOf("kv-1.kv")
  await settle()
  address = "10.0.0.9"
  now = 4_999
  expect(names.ipOf("kv-1.kv")).toBe("10.0.0.7")
  await settle()
  expect(lookups).toBe(1)
  now = 5_000
  // The old address serves while the new lookup runs.
  expect(names.ipOf("kv-1.kv")).toBe("10.0.0.7")
  await settle()
  expect(names.ipOf("kv-1.kv")).toBe("10.0.0.9")
  expect(lookups).toBe(2)
})

test("a failed lookup keeps the last address, and one lookup runs at a time", async () => {
  let now = 0
  let fail = false
  let lookups = 0
  let release: (() => void) | undefined
  const names = new HostNames(
    4,
    (_host) => {
      lookups++
      if (fail) return Promise.reject(new Error("SERVFAIL"))
      return new Promise<string>((resolve) => {
        release = () => resolve("10.0.0.7")
      })
    },
    1_000,
    () => now,
  )
  names.ipOf("kv-2.kv")
  now = 5_000
  names.ipOf("kv-2.kv")
  expect(lookups).toBe(1)
  release?.()
  await settle()
  expect(names.ipOf("kv-2.kv")).toBe("10.0.0.7")
  fail = true
  now = 10_000
  names.ipOf("kv-2.kv")
  await settle()
  expect(lookups).toBe(2)
  expect(names.ipOf("kv-2.kv")).toBe("10.0.0.7")
})

test("both UDP links deliver to a host name once it resolves", async () => {
  const { openUdpLink } = await import("../src/udpLink.ts")
  for (const backend of ["node-dgram", "bun"] as const) {
    const got: string[] = []
    const receiver = await openUdpLink({ bind: "127.0.0.1:0", backend }, (_from, datagram) => {
      got.push(new TextDecoder().decode(datagram))
    })
    const sender = await openUdpLink({ bind: "127.0.0.1:0", backend }, () => {})
    try {
      const port = receiver.address.split(":")[1]
      const deadline = Date.now() + 5_000
      while (got.length === 0 && Date.now() < deadline) {
        sender.send(`localhost:${port}`, new TextEncoder().encode(backend))
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      expect(got[0]).toBe(backend)
    } finally {
      sender.close()
      receiver.close()
    }
  }
})

test("a datagram source matches a configured host name by the address DNS gives it", async () => {
  const { sourceMatcher } = await import("../src/hostNames.ts")
  let address = "10.0.0.7"
  let now = 0
  const isSourceOf = sourceMatcher(
    new HostNames(
      0,
      async () => address,
      5_000,
      () => now,
    ),
  )
  expect(isSourceOf("127.0.0.1:7001", "127.0.0.1:7001")).toBe(true)
  expect(isSourceOf("localhost:7001", "127.0.0.1:7001")).toBe(true)
  expect(isSourceOf("127.0.0.1:7001", "127.0.0.1:7002")).toBe(false)
  // Not believed before DNS answers.
  expect(isSourceOf("kv-0.kv:7001", "10.0.0.7:7001")).toBe(false)
  await settle()
  expect(isSourceOf("kv-0.kv:7001", "10.0.0.7:7001")).toBe(true)
  expect(isSourceOf("kv-0.kv:7001", "10.0.0.7:7002")).toBe(false)
  expect(isSourceOf("kv-0.kv:7001", "10.0.0.9:7001")).toBe(false)
  address = "10.0.0.9"
  now = 5_000
  isSourceOf("kv-0.kv:7001", "10.0.0.9:7001")
  await settle()
  expect(isSourceOf("kv-0.kv:7001", "10.0.0.9:7001")).toBe(true)
  expect(isSourceOf("kv-0.kv:7001", "10.0.0.7:7001")).toBe(false)
})
