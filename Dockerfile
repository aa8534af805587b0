# The kv servers and the `kv` CLI as single-file executables on a small Debian base.
#
#   docker build -t kv .
#
# The image holds /usr/local/bin/{kv,kv-kvraft,kv-shardctrler,kv-shardkv}; run one server per
# container (deploy/compose/compose.yaml, deploy/kubernetes/kv.yaml, docs/operations.md).
ARG BUN_IMAGE=oven/bun:1.4.4
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUN_IMAGE} AS build
WORKDIR /src
COPY package.json bun.lock bunfig.toml tsconfig.json ./
COPY bench/package.json ./bench/package.json
COPY scripts ./scripts
COPY packages ./packages
RUN bun install --frozen-lockfile
RUN bun run build --outdir /out/bin && mkdir -p /out/data

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/bin/ /usr/local/bin/
# The data directory belongs to the unprivileged user the servers run as; a named volume mounted
# here starts with this owner.
COPY --from=build --chown=10001:10001 /out/data /var/lib/kv
USER 10001:10001
VOLUME ["/var/lib/kv"]
# kvraft 7001, shard controller 7101, shard groups 7201 and up (UDP), as in deploy/compose.
EXPOSE 7001/udp 7101/udp 7201/udp
CMD ["kv", "--help"]
