/**
 * Proves the repository's Dockerfile, compose file and Kubernetes StatefulSet run a cluster, with
 * podman (no Docker engine runs here, and no image registry is reachable):
 *
 * - The Dockerfile is built as it is, with the two base images it names replaced by local stand-ins
 *   (`--build-arg`): one holding this machine's Bun, one holding the C library the executables
 *   need. Everything else runs inside: `bun install --frozen-lockfile`, `bun run build`, the copy
 *   into the runtime image.
 * - deploy/compose/compose.yaml is started with podman-compose: three hosts on a bridge, reaching
 *   each other by service name; `kv status` inside one shows three replicas and a leader, and a
 *   write made through one host is read through another.
 * - deploy/kubernetes/kv.yaml: its headless Service, ConfigMap and StatefulSet are checked against
 *   each other, then its three pods are run as the StatefulSet would (the pod's hostname, its DNS
 *   name under the Service, the container's command and environment, the ConfigMap mounted), its
 *   readiness and liveness probes are made as the kubelet makes them (HTTP GET at the pod's
 *   address and the named port) and answer 200, and one pod is rescheduled: removed and started again under its name with a new IP address. The
 *   others follow it by name (with the third pod stopped, a write needs the moved one).
 * - A sharded cluster (controller, groups 100 and 101) named by host names, one container each:
 *   joining 101 moves shards from 100, whose replica must recognise the puller by its name.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { parseClusterConfig } from "@kv/kvraft"
import { pollUntil, runCommand, tempDir } from "@kv/testkit"

const root = resolve(import.meta.dir, "../../..")
const work = tempDir("kv-containers")
const tag = `t${process.pid}`
const image = `localhost/kv-test:${tag}`
const bunImage = `localhost/kv-test-bun:${tag}`
const runtimeImage = `localhost/kv-test-runtime:${tag}`
const project = `kvtest${process.pid}`
const podNetwork = `kvtest${process.pid}-pods`
const shardedHosts = ["ctrl", "g100", "g101"]
/** The container (and volume) of the sharded cluster's host `name`. */
const host = (name: string) => `${project}-${name}`
/** The container of StatefulSet pod `kv-k` (its hostname is the pod's name). */
const pod = (k: number) => `${project}-kv-${k}`
const clusterKey = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")

// Settings for podman on this machine: runc with cgroupfs (crun refuses its hybrid cgroups) and
// limits within the sandbox's own (podman's defaults ask for more than it may set).
const containersConf = join(work.path, "containers.conf")
writeFileSync(
  containersConf,
  '[containers]\ndefault_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n',
)
const env = { ...process.env, CONTAINERS_CONF: containersConf, KV_IMAGE: image, KV_CLUSTER_KEY: clusterKey }

const podman = (args: readonly string[], timeoutMs = 120_000) => runCommand(["podman", ...args], { env, timeoutMs })
const compose = (args: readonly string[], timeoutMs = 180_000) =>
  runCommand(["podman-compose", "-p", project, "-f", join(root, "deploy/compose/compose.yaml"), ...args], {
    cwd: root,
    env,
    timeoutMs,
  })
const must = async (what: string, result: Promise<{ code: number; stdout: string; stderr: string }>) => {
  const done = await result
  if (done.code !== 0) throw new Error(`${what} exited ${done.code}:\n${done.stdout}\n${done.stderr}`)
  return done.stdout
}

afterAll(async () => {
  const quiet = (args: readonly string[]) => podman(args, 60_000).catch(() => undefined)
  await compose(["down", "-v"], 120_000).catch(() => undefined)
  await quiet(["rm", "-f", "-t", "0", pod(0), pod(1), pod(2), `${project}-squatter`, ...shardedHosts.map(host)])
  await quiet(["volume", "rm", "-f", `${project}-pod-0`, `${project}-pod-1`, `${project}-pod-2`])
  await quiet(["volume", "rm", "-f", ...shardedHosts.map(host)])
  // podman-compose's down leaves the project's network.
  await quiet(["network", "rm", "-f", podNetwork, `${project}_default`])
  await quiet(["rmi", "-f", image, bunImage, runtimeImage])
  await quiet(["image", "prune", "-f"])
  work.remove()
}, 300_000)

/** The files a program needs from this machine: itself and the libraries `ldd` names. */
const withLibraries = async (programs: readonly string[]): Promise<string[]> => {
  const files = new Set(programs)
  for (const program of programs) {
    const ldd = await must(`ldd ${program}`, runCommand(["ldd", program], { timeoutMs: 10_000 }))
    for (const match of ldd.matchAll(/(\/\S+)/g)) files.add(match[1]!)
  }
  return [...files]
}

/** A local image holding `files` (at the same paths, or where `placed` says) and an `/etc/passwd`. */
const standInImage = async (
  name: string,
  files: readonly string[],
  placed: Record<string, string>,
  changes: string[],
) => {
  const rootfs = join(work.path, name.replace(/[^a-z0-9]+/g, "-"))
  for (const dir of ["tmp", "etc", "root", "usr/local/bin"]) mkdirSync(join(rootfs, dir), { recursive: true })
  writeFileSync(join(rootfs, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
  for (const file of files) {
    const target = join(rootfs, placed[file] ?? file)
    mkdirSync(dirname(target), { recursive: true })
    copyFileSync(file, target)
  }
  const tar = `${rootfs}.tar`
  await must("tar", runCommand(["tar", "--mode=a+rX", "-C", rootfs, "-cf", tar, "."], { timeoutMs: 60_000 }))
  await must(`podman import ${name}`, podman(["import", ...changes.flatMap((c) => ["--change", c]), tar, name]))
}

const kvIn = (container: string, ...args: string[]) =>
  podman(["exec", container, "kv", ...args, "--config", "/etc/kv/cluster.toml"], 60_000)

interface Status {
  readonly replicas: readonly { readonly up: boolean; readonly role?: string; readonly state?: string }[]
}
const statusIn = async (container: string): Promise<Status | undefined> => {
  const out = await kvIn(container, "status", "--json")
  return out.code === 0 ? (JSON.parse(out.stdout) as Status) : undefined
}

describe("containers", () => {
  test("the Dockerfile builds the executables into an image", async () => {
    for (const tool of ["podman", "podman-compose", "runc"]) {
      const found = await runCommand(["sh", "-c", `command -v ${tool}`], { timeoutMs: 5_000 })
      if (found.code !== 0) {
        throw new Error(
          `${tool} is missing: apt-get install -y podman runc podman-compose golang-github-containernetworking-plugin-dnsname`,
        )
      }
    }
    const bun = Bun.which("bun")!
    const sh = "/bin/sh"
    const mkdir = Bun.which("mkdir")!
    const caBundle = process.env.NODE_EXTRA_CA_CERTS
    const certs = caBundle !== undefined && existsSync(caBundle) ? [caBundle] : []
    // The build image stands in for oven/bun (Bun at /usr/local/bin); this machine's CA bundle goes
    // with it, since its registry traffic passes a proxy that signs with its own authority.
    await standInImage(
      bunImage,
      [...(await withLibraries([bun, sh, mkdir])), ...certs],
      { [bun]: "/usr/local/bin/bun" },
      ["ENV PATH=/usr/local/bin:/usr/bin:/bin", ...(certs.length > 0 ? [`ENV NODE_EXTRA_CA_CERTS=${certs[0]}`] : [])],
    )
    await standInImage(runtimeImage, await withLibraries([bun, sh]), { [bun]: "/usr/local/bin/.bun-libraries" }, [
      "ENV PATH=/usr/local/bin:/usr/bin:/bin",
    ])
    await must(
      "podman build",
      podman(
        [
          "build",
          "--pull=never",
          "--build-arg",
          `BUN_IMAGE=${bunImage}`,
          "--build-arg",
          `RUNTIME_IMAGE=${runtimeImage}`,
          "-t",
          image,
          "-f",
          join(root, "Dockerfile"),
          root,
        ],
        600_000,
      ),
    )
    const listed = await must(
      "ls in the image",
      podman(["run", "--rm", "--entrypoint", "/bin/sh", image, "-c", "for f in /usr/local/bin/*; do echo $f; done"]),
    )
    for (const name of ["kv", "kv-kvraft", "kv-shardctrler", "kv-shardkv"]) {
      expect(listed.split("\n")).toContain(`/usr/local/bin/${name}`)
    }
    const help = await must("kv --help in the image", podman(["run", "--rm", image]))
    expect(help).toContain("linearizable key/value store")
  }, 660_000)

  test("compose starts three hosts that elect a leader and serve through any of them", async () => {
    await must("podman-compose up", compose(["up", "-d"]))
    const containers = (
      await must(
        "podman ps",
        podman(["ps", "--filter", `label=io.podman.compose.project=${project}`, "--format", "{{.Names}}"]),
      )
    )
      .split("\n")
      .filter((n) => n !== "")
      .sort()
    expect(containers.length).toBe(3)
    const [first, , third] = containers as [string, string, string]
    await pollUntil(
      "a leader among the three hosts",
      async () => (await kvIn(first, "put", "greeting", "hello")).code === 0,
      {
        timeoutMs: 90_000,
        intervalMs: 1_000,
      },
    )
    expect((await kvIn(third, "get", "greeting")).stdout.trim()).toBe("hello")
    const status = await statusIn(third)
    expect(status?.replicas.length).toBe(3)
    expect(status?.replicas.every((r) => r.up)).toBe(true)
    // Sealed traffic: a client without the cluster key is not answered.
    const keyless = await podman(
      [
        "exec",
        "-e",
        "KV_CLUSTER_KEY=",
        first,
        "kv",
        "get",
        "greeting",
        "--config",
        "/etc/kv/cluster.toml",
        "--timeout-ms",
        "2000",
      ],
      60_000,
    )
    expect(keyless.code).not.toBe(0)
    await must("podman-compose down", compose(["down", "-v"]))
  }, 300_000)

  test("the StatefulSet's pods serve, and follow a pod rescheduled with a new address", async () => {
    const docs = Bun.YAML.parse(readFileSync(join(root, "deploy/kubernetes/kv.yaml"), "utf8")) as unknown as Manifest[]
    const service = docs.find((d) => d.kind === "Service")!
    const configMap = docs.find((d) => d.kind === "ConfigMap")!
    const set = docs.find((d) => d.kind === "StatefulSet")!
    expect(service.spec.clusterIP).toBe("None")
    expect(service.spec.publishNotReadyAddresses).toBe(true)
    expect(set.spec.serviceName).toBe(service.metadata.name)
    const clusterToml = configMap.data!["cluster.toml"]!
    const replicas = parseClusterConfig(clusterToml).kvraft?.replicas ?? []
    // Each replica address is a pod's DNS name under the headless Service, at the Service's port.
    expect(replicas).toEqual(
      Array.from(
        { length: set.spec.replicas! },
        (_, k) => `${set.metadata.name}-${k}.${service.metadata.name}:${service.spec.ports![0]!.port}`,
      ),
    )
    const container = set.spec.template!.spec.containers[0]!
    const mounts = container.volumeMounts!
    const configDir = join(work.path, "configmap")
    mkdirSync(configDir, { recursive: true })
    writeFileSync(join(configDir, "cluster.toml"), clusterToml)
    await must("podman network create", podman(["network", "create", podNetwork]))

    const startPod = (k: number) =>
      must(
        `pod ${k}`,
        podman([
          "run",
          "-d",
          "--name",
          pod(k),
          "--hostname",
          `kv-${k}`,
          "--network",
          podNetwork,
          "--network-alias",
          `kv-${k}.${service.metadata.name}`,
          "--user",
          `${set.spec.template!.spec.securityContext!.runAsUser}`,
          "-e",
          `KV_CLUSTER_KEY=${clusterKey}`,
          "-v",
          `${configDir}:${mounts.find((m) => m.name === "config")!.mountPath}:ro`,
          "-v",
          `${project}-pod-${k}:${mounts.find((m) => m.name === "data")!.mountPath}`,
          "--entrypoint",
          container.command![0]!,
          image,
          ...container.command!.slice(1),
          ...container.args!,
        ]),
      )
    const ipOf = async (k: number) =>
      (
        await must(
          "podman inspect",
          podman(["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", pod(k)]),
        )
      ).trim()

    for (const k of [0, 1, 2]) await startPod(k)
    await pollUntil("a leader among the pods", async () => (await kvIn(pod(0), "put", "before", "move")).code === 0, {
      timeoutMs: 90_000,
      intervalMs: 1_000,
    })
    // The probes as the kubelet makes them: HTTP GET on the pod's address at the named port.
    const portNamed = (name: string | number) =>
      typeof name === "number" ? name : container.ports!.find((p) => p.name === name)!.containerPort
    for (const probe of [container.readinessProbe!, container.livenessProbe!]) {
      for (const k of [0, 1, 2]) {
        const url = `http://${await ipOf(k)}:${portNamed(probe.httpGet.port)}${probe.httpGet.path}`
        await pollUntil(`${url} answers 200`, async () => (await fetch(url).catch(() => undefined))?.status === 200, {
          timeoutMs: 30_000,
          intervalMs: 500,
        })
      }
    }
    const before = await ipOf(1)
    // Rescheduled: the pod goes away and comes back under its name, with its volume, elsewhere.
    await must("pod 1 deleted", podman(["rm", "-f", "-t", "10", pod(1)]))
    await must(
      "a pod takes the address",
      podman([
        "run",
        "-d",
        "--name",
        `${project}-squatter`,
        "--network",
        podNetwork,
        runtimeImage,
        "/bin/sh",
        "-c",
        "sleep 600",
      ]),
    )
    await startPod(1)
    await podman(["rm", "-f", "-t", "0", `${project}-squatter`], 60_000)
    const after = await ipOf(1)
    expect(after).not.toBe(before)
    // With pod 2 gone, a write needs pods 0 and 1: pod 0 must reach pod 1 at its new address.
    await must("pod 2 stopped", podman(["stop", "-t", "10", pod(2)]))
    await pollUntil("a write by pods 0 and 1", async () => (await kvIn(pod(0), "put", "after", "move")).code === 0, {
      timeoutMs: 90_000,
      intervalMs: 1_000,
    })
    expect((await kvIn(pod(1), "get", "before")).stdout.trim()).toBe("move")
    expect((await kvIn(pod(1), "get", "after")).stdout.trim()).toBe("move")
  }, 360_000)

  test("a sharded cluster named by host names moves shards between groups", async () => {
    const configDir = join(work.path, "sharded")
    mkdirSync(configDir, { recursive: true })
    writeFileSync(
      join(configDir, "cluster.toml"),
      [
        'dataDir = "/var/lib/kv"',
        "[controller]",
        'replicas = ["ctrl.kv:7101"]',
        "[groups.100]",
        'replicas = ["g100.kv:7201"]',
        "[groups.101]",
        'replicas = ["g101.kv:7202"]',
        "",
      ].join("\n"),
    )
    const servers: Record<string, string[]> = {
      ctrl: ["kv-shardctrler", "--replica", "0"],
      g100: ["kv-shardkv", "--gid", "100", "--replica", "0"],
      g101: ["kv-shardkv", "--gid", "101", "--replica", "0"],
    }
    for (const name of shardedHosts) {
      await must(
        `host ${name}`,
        podman([
          "run",
          "-d",
          "--name",
          host(name),
          "--hostname",
          name,
          "--network",
          podNetwork,
          "--network-alias",
          `${name}.kv`,
          "-e",
          `KV_CLUSTER_KEY=${clusterKey}`,
          "-v",
          `${configDir}:/etc/kv:ro`,
          "-v",
          `${host(name)}:/var/lib/kv`,
          image,
          ...servers[name]!,
          "--config",
          "/etc/kv/cluster.toml",
          "--listen",
          "0.0.0.0",
        ]),
      )
    }
    const ctrl = host("ctrl")
    await pollUntil(
      "the controller to take group 100",
      async () => (await kvIn(ctrl, "admin", "join", "100")).code === 0,
      {
        timeoutMs: 90_000,
        intervalMs: 1_000,
      },
    )
    const keys = Array.from({ length: 20 }, (_, k) => `key-${k}`)
    for (const key of keys) await must(`put ${key}`, kvIn(ctrl, "put", key, `value of ${key}`))
    await must("join 101", kvIn(ctrl, "admin", "join", "101"))
    const status = await pollUntil(
      "group 101 to serve the shards it pulled",
      async () => {
        const out = await kvIn(ctrl, "status", "--json")
        if (out.code !== 0) return undefined
        const groups = (JSON.parse(out.stdout) as { groups: Record<string, { serving: number[]; pulling: number[] }> })
          .groups
        const g101 = groups["101"]
        return g101 !== undefined && g101.serving.length > 0 && g101.pulling.length === 0 ? groups : undefined
      },
      { timeoutMs: 90_000, intervalMs: 1_000 },
    )
    expect(status["100"]?.serving.length).toBeGreaterThan(0)
    // Every key reads back, those of moved shards from group 101 once it has pulled them.
    for (const key of keys) expect((await kvIn(ctrl, "get", key)).stdout.trim()).toBe(`value of ${key}`)
  }, 240_000)
})

interface HttpProbe {
  readonly httpGet: { readonly path: string; readonly port: string | number }
}

interface Manifest {
  readonly kind: string
  readonly metadata: { readonly name: string }
  readonly data?: Record<string, string>
  readonly spec: {
    readonly clusterIP?: string
    readonly publishNotReadyAddresses?: boolean
    readonly ports?: readonly { readonly port: number }[]
    readonly serviceName?: string
    readonly replicas?: number
    readonly template?: {
      readonly spec: {
        readonly securityContext?: { readonly runAsUser?: number }
        readonly containers: readonly {
          readonly command?: readonly string[]
          readonly args?: readonly string[]
          readonly ports?: readonly { readonly name: string; readonly containerPort: number }[]
          readonly readinessProbe?: HttpProbe
          readonly livenessProbe?: HttpProbe
          readonly volumeMounts?: readonly { readonly name: string; readonly mountPath: string }[]
        }[]
      }
    }
  }
}
