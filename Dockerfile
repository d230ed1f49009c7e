# fibrpc as a container image: the compiled binary, the five glibc files it loads and /tmp; no
# shell, no package manager, no other files. linux/amd64 and linux/arm64 (see README "Container"):
#   docker build -t fibrpc .                                              (this machine's platform)
#   docker buildx build --platform linux/amd64,linux/arm64 -t fibrpc .    (both, no emulation)
#   docker run --network host -e FIBRPC_URL=amqp://user:pass@broker:5672 fibrpc serve --workers 3
# --build-arg COMMIT=$(git rev-parse --short=12 HEAD) puts the commit in `fibrpc --version` and a
# label. Every RUN is on the build machine's own platform: nothing needs emulation.

# The target platform's Debian, only as the source of the glibc files the binary loads (ldd: the
# loader, libc, libm, libpthread, libdl). Nothing runs in it, so it needs no emulation either.
# It comes first: podman 4.3 (buildah 1.28) lets a stage's FROM --platform stick to the
# stages after it (fixed in later buildah), and this one must be the target's.
FROM docker.io/library/debian:bookworm-slim AS glibc
# An instruction that changes nothing: `podman build --layers=false` (4.3) removes each stage's
# image when done, which for a stage of a bare FROM is the base image itself.
ARG TARGETARCH

# Build stage, on the build machine's own platform: the official Bun image at the version
# package.json pins (devDependencies.bun). It cross-compiles for the target platform (Bun fetches
# the target's runtime from the npm registry), so nothing ever runs under emulation.
FROM --platform=$BUILDPLATFORM docker.io/oven/bun:1.4.5 AS build
WORKDIR /src
COPY package.json bun.lock ./
# Runtime dependencies only, exactly as locked; the compiler is this image's own bun.
RUN bun install --frozen-lockfile --production --ignore-scripts
COPY tsconfig.json bunfig.toml ./
COPY src ./src
# The build script before the unit tests: one of them checks that it compiles tracing's SDK apart.
COPY scripts/build.ts ./scripts/
COPY test/unit ./test/unit
RUN bun test --timeout 60000 test/unit
# Everything above is the same for every target platform (one run serves both in a multi-platform
# build); the target and the commit come in here.
ARG TARGETARCH
ARG COMMIT=unknown
# The compile command of `bun run build` and `bun run release` (scripts/build.ts), for the target:
# amd64 is baseline x64, which runs on any x86-64 CPU, not only those with AVX2 like the build
# machine. The ELF header's machine field (byte 18) must be the target's; the binary is run
# (--version, the version second) only where this machine can run it.
RUN case "$TARGETARCH" in \
      amd64) target=bun-linux-x64-baseline machine=3e uname=x86_64 ;; \
      arm64) target=bun-linux-arm64 machine=b7 uname=aarch64 ;; \
      *) echo "fibrpc builds for linux/amd64 and linux/arm64, not TARGETARCH=$TARGETARCH" >&2; exit 1 ;; \
    esac \
 && mkdir -p /out \
 && FIBRPC_COMMIT="$COMMIT" TARGET="$target" bun -e \
      'const { buildBinary } = await import("./scripts/build.ts"); await buildBinary({ outfile: "/out/fibrpc", target: process.env.TARGET });' \
 && [ "$(od -An -tx1 -j18 -N1 /out/fibrpc | tr -d ' ')" = "$machine" ] \
 && if [ "$(uname -m)" = "$uname" ]; then \
      /out/fibrpc --version \
      && [ "$(/out/fibrpc --version | cut -d' ' -f2)" = "$(bun -e 'console.log(require("./package.json").version)')" ]; \
    fi

# The final image's files but the binary, laid out for the target: the loader at the path the
# binary names as its ELF interpreter, the libraries in the multiarch folder the loader searches
# when there is no /etc/ld.so.cache, and an empty /tmp that anyone may write (1777, as /tmp is).
FROM --platform=$BUILDPLATFORM docker.io/oven/bun:1.4.5 AS rootfs
ARG TARGETARCH
COPY --from=glibc /usr/lib/*-linux-gnu/ld-linux-*.so.* /usr/lib/*-linux-gnu/libc.so.6 \
     /usr/lib/*-linux-gnu/libm.so.6 /usr/lib/*-linux-gnu/libpthread.so.0 /usr/lib/*-linux-gnu/libdl.so.2 /glibc/
RUN case "$TARGETARCH" in \
      amd64) loader=/lib64/ld-linux-x86-64.so.2 libdir=/lib/x86_64-linux-gnu ;; \
      arm64) loader=/lib/ld-linux-aarch64.so.1 libdir=/lib/aarch64-linux-gnu ;; \
      *) echo "fibrpc builds for linux/amd64 and linux/arm64, not TARGETARCH=$TARGETARCH" >&2; exit 1 ;; \
    esac \
 && [ "$(ls /glibc | wc -l)" = 5 ] && [ -f "/glibc/${loader##*/}" ] \
 && mkdir -p "/rootfs${loader%/*}" "/rootfs$libdir" /rootfs/tmp && chmod 1777 /rootfs/tmp \
 && cp -p "/glibc/${loader##*/}" "/rootfs$loader" \
 && cp -p /glibc/libc.so.6 /glibc/libm.so.6 /glibc/libpthread.so.0 /glibc/libdl.so.2 "/rootfs$libdir/"

# The image: only copies, in two layers (glibc and /tmp, then the binary).
FROM scratch
ARG VERSION=unknown
ARG SOURCE=unknown
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="fibrpc" \
      org.opencontainers.image.description="Fibonacci RPC over RabbitMQ, one executable" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT"
COPY --from=rootfs /rootfs/ /
COPY --from=build /out/fibrpc /fibrpc
# Configuration comes from the environment (FIBRPC_URL, FIBRPC_QUEUE, FIBRPC_WORKERS, ...).
# The status file is what `fibrpc health` reads: written by serve, in a folder the user can write.
# --http-port (off unless set) listens on every interface of the container, not only loopback.
ENV FIBRPC_STATUS_FILE=/tmp/fibrpc-status.json \
    FIBRPC_HTTP_HOST=0.0.0.0 \
    HOME=/tmp
# A numeric non-root user: no passwd entry or shell needed.
USER 65532:65532
# Exec form: fibrpc is PID 1 and gets SIGTERM from `docker stop` itself, and drains.
ENTRYPOINT ["/fibrpc"]
CMD ["serve"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 CMD ["/fibrpc", "health"]
