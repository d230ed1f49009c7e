#!/usr/bin/env bash
# Builds the Dockerfile unchanged with podman and runs the image against the local broker:
# `fibrpc call 30` from the host, the health check passing while serving and failing when the
# broker is unreachable, `podman stop` draining cleanly, and the image size.
#
# No Docker engine and no image registry here: the base images the Dockerfile names are built
# locally under those exact names — a Debian rootfs from `debootstrap --variant=minbase` imported
# with `podman import` (docker.io/library/debian:bookworm-slim), and the same rootfs plus the
# pinned Bun binary from npm at the official image's path (docker.io/oven/bun:<version>) — and the
# build runs with --pull=never (and --format docker: the OCI format has no HEALTHCHECK). Needs root (podman with runc, cgroupfs). Fails loudly, never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

fail() { echo "container-test: FAILED: $*" >&2; exit 1; }
step() { echo "container-test: $*" >&2; }

[ "$(id -u)" -eq 0 ] || fail "needs root (podman builds and runs images as root here)"
missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]} from the distribution's packages"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null \
    || fail "could not install ${missing[*]}"
fi

work=$(mktemp -d /tmp/fibrpc-container.XXXXXX)
export CONTAINERS_CONF="$work/containers.conf"
cat >"$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
CONF

bun_version=$(node -p "require('./package.json').devDependencies.bun")
version=$(node -p "require('./package.json').version")
id=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
image="localhost/fibrpc:test-$id"
queue="fibrpc_container_$id"
names=()
# Build stages left behind as dangling images (~0.5 GB each, also when a build fails): those that
# appear during this run are removed with it; others on the machine are not ours to touch.
dangling_before=$(podman images -q -f dangling=true 2>/dev/null | sort)
# The base images are made here under the names the Dockerfile uses; those that were not on the
# machine before this run are removed with it.
base_images=("docker.io/library/debian:bookworm-slim" "docker.io/oven/bun:$bun_version")
new_base_images=()
for base in "${base_images[@]}"; do podman image exists "$base" 2>/dev/null || new_base_images+=("$base"); done
cleanup() {
  for name in "${names[@]}"; do podman rm -f "$name" >/dev/null 2>&1 || true; done
  podman rmi -f "$image" >/dev/null 2>&1 || true
  for base in "${new_base_images[@]}"; do podman rmi -f "$base" >/dev/null 2>&1 || true; done
  comm -13 <(echo "$dangling_before") <(podman images -q -f dangling=true 2>/dev/null | sort) | xargs -r podman rmi -f >/dev/null 2>&1 || true
  node -e "
    const amqp = require('amqplib');
    amqp.connect('amqp://guest:guest@127.0.0.1:5672').then(async (c) => { const ch = await c.createChannel(); await ch.deleteQueue('$queue'); await c.close(); }).catch(() => {});
  " || true
  rm -rf "$work"
}
trap cleanup EXIT

podman info >/dev/null 2>&1 || fail "podman cannot run here: $(podman info 2>&1 | tail -1)"

# 1. Base images, under the names the Dockerfile uses.
rootfs=${FIBRPC_ROOTFS_CACHE:-/var/cache/fibrpc/rootfs-bookworm}
if [ ! -x "$rootfs/bin/sh" ]; then
  step "debootstrap --variant=minbase bookworm (once; cached in $rootfs)"
  mkdir -p "$(dirname "$rootfs")"
  rm -rf "$rootfs.partial"
  debootstrap --variant=minbase bookworm "$rootfs.partial" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || fail "debootstrap failed: $(tail -3 "$work/debootstrap.log")"
  mv "$rootfs.partial" "$rootfs"
fi
step "importing docker.io/library/debian:bookworm-slim from the rootfs"
tar -C "$rootfs" -c . | podman import --quiet - docker.io/library/debian:bookworm-slim >/dev/null

step "importing docker.io/oven/bun:$bun_version (rootfs + bun $bun_version from npm at /usr/local/bin/bun)"
(cd "$work" && npm pack --silent "@oven/bun-linux-x64@$bun_version" >/dev/null) || fail "npm pack @oven/bun-linux-x64@$bun_version failed"
mkdir -p "$work/bun" && tar -xzf "$work"/oven-bun-linux-x64-*.tgz -C "$work/bun"
podman_build_ctx="$work/bun-image"
mkdir -p "$podman_build_ctx"
cp "$work/bun/package/bin/bun" "$podman_build_ctx/bun"
podman rmi -f "docker.io/oven/bun:$bun_version" >/dev/null 2>&1 || true
container=$(podman create --quiet docker.io/library/debian:bookworm-slim /bin/true)
podman cp "$podman_build_ctx/bun" "$container:/usr/local/bin/bun"
# The build stage downloads packages from the npm registry. Where this machine reaches it through
# a TLS-inspecting proxy (NODE_EXTRA_CA_CERTS set), the stand-in trusts the same CAs, as the
# machine does; the Dockerfile itself stays unchanged.
commit_changes=()
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  podman cp "$NODE_EXTRA_CA_CERTS" "$container:/usr/local/machine-ca.crt"
  commit_changes=(--change "ENV NODE_EXTRA_CA_CERTS=/usr/local/machine-ca.crt")
fi
podman commit --quiet "${commit_changes[@]}" "$container" "docker.io/oven/bun:$bun_version" >/dev/null
podman rm "$container" >/dev/null
podman run --rm "docker.io/oven/bun:$bun_version" /bin/sh -c 'ln -sf /usr/local/bin/bun /usr/local/bin/bunx; /usr/local/bin/bun --version' >/dev/null \
  || fail "the bun stand-in image does not run bun"

# 2. Build the Dockerfile, unchanged.
step "podman build --pull=never (Dockerfile unchanged)"
podman build --pull=never --force-rm --format docker --network=host --build-arg "VERSION=$version" --build-arg "SOURCE=file://$root" -t "$image" -f Dockerfile . >"$work/build.log" 2>&1 \
  || fail "podman build failed:\n$(tail -20 "$work/build.log")"

# 3. The runtime image holds the binary and nothing it does not need.
added=$(podman run --rm --entrypoint /fibrpc "$image" --version | cut -d" " -f2)
[ "$added" = "$version" ] || fail "fibrpc --version in the image printed '$added', expected $version"
user=$(podman image inspect "$image" --format '{{.Config.User}}')
[ "$user" = "65532:65532" ] || fail "image runs as '$user', not the non-root 65532"
label=$(podman image inspect "$image" --format '{{index .Labels "org.opencontainers.image.version"}}')
[ "$label" = "$version" ] || fail "OCI version label is '$label'"

# 4. Serve in a container, call it from the host.
name="fibrpc-serve-$id"; names+=("$name")
step "podman run $name (host network, queue $queue)"
# --health-interval disable: podman schedules periodic checks with systemd timers, and there is no
# systemd here; the test runs the image's HEALTHCHECK on demand (podman healthcheck run).
podman run -d --name "$name" --network=host --health-interval disable -e "FIBRPC_QUEUE=$queue" -e FIBRPC_WORKERS=2 "$image" >/dev/null
healthy=""
for _ in $(seq 1 60); do
  if podman healthcheck run "$name" >/dev/null 2>&1; then healthy=yes; break; fi
  sleep 0.5
done
[ -n "$healthy" ] || fail "health check never passed; logs:\n$(podman logs "$name" 2>&1 | tail -20)"
step "health check passes while serving: $(podman exec "$name" /fibrpc health)"
result=$(./fibrpc call --queue "$queue" 30)
[ "$result" = "832040" ] || fail "fibrpc call 30 from the host printed '$result'"
step "fibrpc call 30 from the host: $result"

# 5. The health check fails when the broker is unreachable.
name2="fibrpc-nobroker-$id"; names+=("$name2")
podman run -d --name "$name2" --network=host --health-interval disable -e FIBRPC_URL=amqp://guest:guest@127.0.0.1:1 -e "FIBRPC_QUEUE=$queue" "$image" >/dev/null
for _ in $(seq 1 10); do podman exec "$name2" /fibrpc health >/dev/null 2>&1 || break; sleep 0.5; done
if reason=$(podman exec "$name2" /fibrpc health 2>&1); then fail "health passed with no broker: $reason"; fi
podman healthcheck run "$name2" >/dev/null 2>&1 && fail "podman healthcheck run passed with no broker"
step "health check fails with the broker unreachable: $reason"

# Two layers hold files: the base's and the binary's (COPY); nothing else was added.
layers=$(podman history --format '{{.Size}} {{.CreatedBy}}' "$image" | grep -E '^[1-9]' || true)
[ "$(echo "$layers" | wc -l)" = "2" ] && echo "$layers" | grep -q 'COPY' \
  || fail "expected the base layer and one COPY layer (the binary), found:\n$layers"

# 6. podman stop: SIGTERM to PID 1, drain, exit 0.
podman stop -t 20 "$name" >/dev/null
code=$(podman inspect "$name" --format '{{.State.ExitCode}}')
[ "$code" = "0" ] || fail "serve exited $code on podman stop; logs:\n$(podman logs "$name" 2>&1 | tail -10)"
podman logs "$name" 2>&1 | grep -q "SIGTERM: draining" || fail "serve did not drain on SIGTERM"
step "podman stop: drained, exit code $code"

size=$(podman image inspect "$image" --format '{{.Size}}')
base=$(podman image inspect docker.io/library/debian:bookworm-slim --format '{{.Size}}')
echo "container-test: image $image: $((size / 1024 / 1024)) MiB ($(( (size - base) / 1024 / 1024 )) MiB fibrpc on a $((base / 1024 / 1024)) MiB base)"
echo "container-test: PASSED"
