# fibrpc as a container image: the one compiled binary on a minimal glibc base.
#   docker build -t fibrpc .        (or podman build; see README "Container")
#   docker run --network host -e FIBRPC_URL=amqp://user:pass@broker:5672 fibrpc serve --workers 3

# Build stage: the official Bun image at the version package.json pins (devDependencies.bun).
FROM docker.io/oven/bun:1.4.5 AS build
WORKDIR /src
COPY package.json bun.lock ./
# Runtime dependencies only, exactly as locked; the compiler is this image's own bun.
RUN bun install --frozen-lockfile --production --ignore-scripts
COPY tsconfig.json bunfig.toml ./
COPY src ./src
COPY test/unit ./test/unit
RUN bun test --timeout 60000 test/unit
# Baseline x64: runs on any x86-64 CPU, not only those with AVX2 like the build machine.
RUN bun build --compile --minify --bytecode --format=esm --target=bun-linux-x64-baseline \
      src/cli.ts src/serve/worker.ts --outfile /fibrpc \
      --no-compile-autoload-dotenv --no-compile-autoload-bunfig \
      --define 'process.env.FIBRPC_TEST_BUILD="0"' \
 && /fibrpc --version

# Runtime stage: Debian slim, the binary, a non-root user; nothing else is added.
FROM docker.io/library/debian:bookworm-slim
ARG VERSION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="fibrpc" \
      org.opencontainers.image.description="Fibonacci RPC over RabbitMQ, one executable" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT"
COPY --from=build /fibrpc /fibrpc
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
