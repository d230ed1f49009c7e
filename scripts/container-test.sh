#!/usr/bin/env bash
# Builds the Dockerfile unchanged with podman for linux/amd64 and linux/arm64 and checks both:
# - amd64 is run against the local broker: `fibrpc call 30` from the host (the broker reached by a
#   host name), the health check passing while serving and failing when the broker is unreachable,
#   `podman stop` draining with exit 0, non-root, the labels and the image's configuration; then
#   scripts/kube-test.sh runs with it (if that script exists);
# - arm64 is not run (no emulation here): its architecture, and the ELF headers of its binary and
#   glibc files (aarch64, the loader the binary asks for);
# - both: the exact file list (the binary, five glibc files, /tmp; nothing else), layers that only
#   COPY, and the size (at most 130 MB each; the sizes are printed).
#
# No Docker engine and no image registry here. The base images the Dockerfile names are made
# locally under those exact names, in a podman storage of this run's own (deleted with it, so the
# machine's images are never touched and runs in parallel do not meet):
# - docker.io/library/debian:bookworm-slim: a manifest list of two rootfs imports, amd64 from
#   `debootstrap --variant=minbase`, arm64 from `debootstrap --arch=arm64 --foreign` (that first
#   stage only unpacks the packages, so it needs no emulation; the libc6 files are all there); both
#   cached under /var/cache/fibrpc;
# - docker.io/oven/bun:<version>: the amd64 rootfs plus the pinned Bun binary from npm at the
#   official image's path.
# The build runs with --pull=never, --format docker (the OCI format has no HEALTHCHECK) and
# BUILDPLATFORM given (podman 4.3 does not set it). Needs root (podman with runc, cgroupfs).
# Fails loudly, never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$(date +%s)

fail() { echo -e "container-test: FAILED: $*" >&2; exit 1; }
step() { echo "container-test: $*" >&2; }

[ "$(id -u)" -eq 0 ] || fail "needs root (podman builds and runs images as root here)"
[ "$(uname -m)" = "x86_64" ] || fail "runs on linux/amd64 (it runs the amd64 image and a Bun for x64), not $(uname -m)"
source scripts/lib/podman-env.sh
ensure_tools podman runc debootstrap
[ -x "$root/fibrpc" ] || fail "$root/fibrpc is missing: run \`bun run build\` first"

bun_version=$(node -p "require('./package.json').devDependencies.bun")
version=$(node -p "require('./package.json').version")
grep -q "^FROM --platform=\$BUILDPLATFORM docker.io/oven/bun:$bun_version AS build$" Dockerfile \
  || fail "the Dockerfile's build stage is not docker.io/oven/bun:$bun_version, the Bun package.json pins"
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
id=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
# Not named fibrpc: `podman kube play` (4.3) looks for a build context named after the image in
# the current folder, and ./fibrpc is the binary there.
image="localhost/fibrpc-container-test:$id"
image_arm64="localhost/fibrpc-container-test:$id-arm64"
queue="fibrpc_container_$id"
max_bytes=$((130 * 1000 * 1000))

work=$(mktemp -d /tmp/fibrpc-container.XXXXXX)
podman_runtime_conf "$work"
# The machine's podman runtime state is set up first (after a boot, the first podman run resets
# it), so that this run's storage below only ever adds to it.
podman info >/dev/null 2>&1 || { rm -rf "$work"; fail "podman cannot run here: $(podman info 2>&1 | tail -1)"; }
# This run's own image storage: every image, manifest, build stage and container it makes lives
# there and goes with it. Exported, so scripts/kube-test.sh finds the image in it too.
export CONTAINERS_STORAGE_CONF="$work/storage.conf"
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/run"\n' "$work" "$work" >"$CONTAINERS_STORAGE_CONF"

cleanup() {
  # --root/--runroot spelled out: "all" must only ever mean this run's storage.
  podman --root "$work/storage" --runroot "$work/run" rm -a -f >/dev/null 2>&1 || true
  podman --root "$work/storage" --runroot "$work/run" rmi -a -f >/dev/null 2>&1 || true
  # Anything still mounted under the storage (a build cut short) is unmounted before deleting it.
  findmnt -rn -o TARGET | grep "^$work/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  node -e "
    const amqp = require('amqplib');
    amqp.connect('amqp://guest:guest@127.0.0.1:5672').then(async (c) => { const ch = await c.createChannel(); await ch.deleteQueue('$queue'); await c.close(); }).catch(() => {});
  " || true
  rm -rf "$work"
}
trap cleanup EXIT
# Stopped from outside (the test's own time limit, Ctrl-C): still clean up, through the EXIT trap.
trap 'exit 143' TERM INT
[ "$(podman info --format '{{.Store.GraphRoot}}' 2>&1)" = "$work/storage" ] \
  || fail "podman does not use this run's storage $work/storage: $(podman info --format '{{.Store.GraphRoot}}' 2>&1 | tail -1)"

# 1. The rootfs caches (debootstrap once; another run making them at the same time waits).
rootfs=${FIBRPC_ROOTFS_CACHE:-/var/cache/fibrpc/rootfs-bookworm}
rootfs_arm64="$rootfs-arm64"
mkdir -p "$(dirname "$rootfs")"
exec 9>"$(dirname "$rootfs")/.rootfs.lock"
flock -w 600 9 || fail "another run has been making the rootfs caches for 10 minutes"
if [ ! -x "$rootfs/bin/sh" ]; then
  step "debootstrap --variant=minbase bookworm (once; cached in $rootfs)"
  rm -rf "$rootfs.partial"
  debootstrap --variant=minbase bookworm "$rootfs.partial" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || fail "debootstrap failed: $(tail -3 "$work/debootstrap.log")"
  mv "$rootfs.partial" "$rootfs"
fi
if [ ! -f "$rootfs_arm64/usr/lib/aarch64-linux-gnu/libc.so.6" ]; then
  step "debootstrap --arch=arm64 --foreign --variant=minbase bookworm (once; cached in $rootfs_arm64)"
  rm -rf "$rootfs_arm64.partial"
  debootstrap --arch=arm64 --foreign --variant=minbase bookworm "$rootfs_arm64.partial" http://deb.debian.org/debian >"$work/debootstrap-arm64.log" 2>&1 \
    || fail "debootstrap (arm64, first stage) failed: $(tail -3 "$work/debootstrap-arm64.log")"
  # The unpacked tree is what matters; the downloaded packages are not kept.
  rm -f "$rootfs_arm64.partial"/var/cache/apt/archives/*.deb
  mv "$rootfs_arm64.partial" "$rootfs_arm64"
fi
flock -u 9; exec 9>&-

# 2. Base images, under the names the Dockerfile uses.
step "importing docker.io/library/debian:bookworm-slim: a manifest list of the amd64 and arm64 rootfs"
tar -C "$rootfs" -c . | podman import --quiet --arch amd64 - localhost/stand-in/debian:amd64 >/dev/null
tar -C "$rootfs_arm64" -c . | podman import --quiet --arch arm64 - localhost/stand-in/debian:arm64 >/dev/null
podman manifest create docker.io/library/debian:bookworm-slim >/dev/null
for arch in amd64 arm64; do
  podman manifest add docker.io/library/debian:bookworm-slim "containers-storage:localhost/stand-in/debian:$arch" >/dev/null
done

step "importing docker.io/oven/bun:$bun_version (the amd64 rootfs + bun $bun_version from npm at /usr/local/bin/bun)"
(cd "$work" && npm pack --silent "@oven/bun-linux-x64@$bun_version" >/dev/null) || fail "npm pack @oven/bun-linux-x64@$bun_version failed"
mkdir -p "$work/bun" && tar -xzf "$work"/oven-bun-linux-x64-*.tgz -C "$work/bun"
container=$(podman create --quiet localhost/stand-in/debian:amd64 /bin/true)
podman cp "$work/bun/package/bin/bun" "$container:/usr/local/bin/bun"
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
[ "$(podman run --rm "docker.io/oven/bun:$bun_version" /usr/local/bin/bun --version)" = "$bun_version" ] \
  || fail "the bun stand-in image does not run bun $bun_version"

# 3. Build the Dockerfile, unchanged, for both platforms. The build stage runs on this machine
# (amd64) for both and cross-compiles; the arm64 build reuses its cached layers up to the compile.
build() { # platform tag
  local log="$work/build-${1#linux/}.log" t0=$(date +%s)
  podman build --pull=never --force-rm --format docker --network=host --platform "$1" \
    --build-arg BUILDPLATFORM=linux/amd64 --build-arg "VERSION=$version" --build-arg "SOURCE=file://$root" \
    --build-arg "COMMIT=$commit" -t "$2" -f Dockerfile . >"$log" 2>&1 \
    || fail "podman build --platform $1 failed:\n$(tail -20 "$log")"
  step "podman build --platform $1: $(($(date +%s) - t0)) s"
}
step "podman build --platform linux/amd64 and linux/arm64 (Dockerfile unchanged, --pull=never)"
build linux/amd64 "$image"
build linux/arm64 "$image_arm64"
# The stand-in manifest list has done its job. It goes now: podman 4.3 cannot read back the
# instance manifests of a list made with `manifest add containers-storage:...`, and then fails
# `podman images --filter` (kube-test.sh uses it) for the whole storage, now and then.
podman manifest rm docker.io/library/debian:bookworm-slim >/dev/null

# 4. Each image holds exactly the binary, the glibc files and /tmp, for its architecture.
# ELF e_machine (bytes 18-19): 3e00 x86-64, b700 aarch64.
elf_machine() { od -An -tx1 -j18 -N2 "$1" | tr -d ' \n'; }
check_contents() { # image arch machine loader libdir
  local img=$1 arch=$2 machine=$3 loader=$4 libdir=$5 dir="$work/rootfs-$2" c
  [ "$(podman image inspect "$img" --format '{{.Os}}/{{.Architecture}}')" = "linux/$arch" ] \
    || fail "$img is $(podman image inspect "$img" --format '{{.Os}}/{{.Architecture}}'), not linux/$arch"
  c=$(podman create --quiet --no-healthcheck "$img" 2>>"$work/podman.log")
  mkdir -p "$dir"
  podman export "$c" | tar -x -C "$dir"
  podman export "$c" | tar -tv >"$work/listing-$arch"
  podman rm "$c" >/dev/null 2>>"$work/podman.log"
  local files expected
  files=$(cd "$dir" && find . -mindepth 1 | sed 's|^\./||' | sort)
  expected=$(printf '%s\n' fibrpc tmp "${loader#/}" "$(dirname "${loader#/}")" "$(dirname "${libdir#/}")" "${libdir#/}" \
    "${libdir#/}"/{libc.so.6,libm.so.6,libpthread.so.0,libdl.so.2} | sort -u)
  [ "$files" = "$expected" ] || fail "$arch image: the files are not exactly the binary, glibc and /tmp:\n$(diff <(echo "$expected") <(echo "$files") || true)"
  grep -qE '^drwxrwxrwt 0/0 .* tmp/$' "$work/listing-$arch" || fail "$arch image: /tmp is not root's, mode 1777:\n$(grep ' tmp/$' "$work/listing-$arch")"
  for f in fibrpc "${loader#/}" "${libdir#/}"/{libc.so.6,libm.so.6,libpthread.so.0,libdl.so.2}; do
    [ "$(elf_machine "$dir/$f")" = "$machine" ] || fail "$arch image: /$f is not an ELF file for $arch (e_machine $(elf_machine "$dir/$f"))"
  done
  grep -aq "$loader" <(head -c 4096 "$dir/fibrpc") || fail "$arch image: the binary does not ask for the loader $loader"
  # Only COPY layers: the history has no RUN, and every layer with files comes from a COPY.
  local layers
  layers=$(podman history --format '{{.Size}}|{{.CreatedBy}}' "$img")
  [ -z "$(grep -v '#(nop)' <<<"$layers" || true)" ] || fail "$arch image: its history has more than COPY and metadata:\n$layers"
  [ -z "$(grep -E '^[1-9]' <<<"$layers" | grep -v ' COPY ' || true)" ] || fail "$arch image: a layer with files that is not a COPY:\n$layers"
  # Two: glibc with /tmp, then the binary.
  [ "$(podman image inspect "$img" --format '{{len .RootFS.Layers}}')" = 2 ] || fail "$arch image: not 2 layers:\n$layers"
  local size
  size=$(podman image inspect "$img" --format '{{.Size}}')
  sizes+=("$arch $((size / 1000 / 1000)) MB ($((size / 1024 / 1024)) MiB; the binary $(($(stat -c %s "$dir/fibrpc") / 1024 / 1024)) MiB)")
  [ "$size" -le "$max_bytes" ] || fail "$arch image is $size bytes, more than 130 MB"
  return 0
}
sizes=()
check_contents "$image" amd64 3e00 /lib64/ld-linux-x86-64.so.2 /lib/x86_64-linux-gnu
check_contents "$image_arm64" arm64 b700 /lib/ld-linux-aarch64.so.1 /lib/aarch64-linux-gnu
grep -aq "$commit" "$work/rootfs-arm64/fibrpc" || fail "the arm64 binary does not carry the commit $commit"
step "contents: exactly the binary, 5 glibc files and /tmp (1777), COPY layers only; ELF x86-64 / aarch64"

# 5. The amd64 image runs: version, configuration, labels.
line=$(podman run --rm --no-healthcheck "$image" --version 2>>"$work/podman.log")
[ "$(echo "$line" | cut -d' ' -f2)" = "$version" ] || fail "fibrpc --version in the image printed '$line', expected version $version second"
case "$line" in *"(commit $commit, bun $bun_version, linux-x64)"*) ;; *) fail "fibrpc --version in the image printed '$line', expected commit $commit, bun $bun_version, linux-x64" ;; esac
step "fibrpc --version in the image: $line"
for img in "$image" "$image_arm64"; do
  config=$(podman image inspect "$img" --format '{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{.Config.StopSignal}}|{{json .Config.Healthcheck.Test}}')
  [ "$config" = '65532:65532|["/fibrpc"]|["serve"]|SIGTERM|["CMD","/fibrpc","health"]' ] \
    || fail "$img: user|entrypoint|cmd|stop signal|health check are $config"
  envs=$(podman image inspect "$img" --format '{{range .Config.Env}}{{println .}}{{end}}')
  for env in FIBRPC_STATUS_FILE=/tmp/fibrpc-status.json FIBRPC_HTTP_HOST=0.0.0.0 HOME=/tmp; do
    grep -qx "$env" <<<"$envs" || fail "$img: no ENV $env (has: $envs)"
  done
  labels=$(podman image inspect "$img" --format '{{index .Labels "org.opencontainers.image.version"}} {{index .Labels "org.opencontainers.image.revision"}} {{index .Labels "org.opencontainers.image.licenses"}}')
  [ "$labels" = "$version $commit MIT" ] || fail "$img: OCI labels version, revision, licenses are '$labels'"
done

# 6. Serve in a container (the broker by host name: name resolution works without /etc files of
# its own), call it from the host.
names=()
name="fibrpc-serve-$id"; names+=("$name")
step "podman run $name (host network, queue $queue, broker at fibrpc-broker-$id)"
# --health-interval disable: podman schedules periodic checks with systemd timers, and there is no
# systemd here; the test runs the image's HEALTHCHECK on demand (podman healthcheck run).
podman run -d --name "$name" --network=host --health-interval disable --add-host "fibrpc-broker-$id:127.0.0.1" \
  -e "FIBRPC_URL=amqp://guest:guest@fibrpc-broker-$id:5672" -e "FIBRPC_QUEUE=$queue" -e FIBRPC_WORKERS=2 "$image" >/dev/null 2>>"$work/podman.log" \
  || fail "podman run failed: $(tail -3 "$work/podman.log")"
healthy=""
for _ in $(seq 1 60); do
  if podman healthcheck run "$name" >/dev/null 2>&1; then healthy=yes; break; fi
  sleep 0.5
done
[ -n "$healthy" ] || fail "health check never passed; logs:\n$(podman logs "$name" 2>&1 | tail -20)"
step "health check passes while serving: $(podman exec "$name" /fibrpc health)"
[ "$(podman top "$name" huser | tail -n +2 | sort -u | tr -d ' ')" = "65532" ] || fail "serve does not run as 65532: $(podman top "$name" user huser)"
result=$(./fibrpc call --queue "$queue" 30)
[ "$result" = "832040" ] || fail "fibrpc call 30 from the host printed '$result'"
step "fibrpc call 30 from the host: $result"

# 7. The health check fails when the broker is unreachable.
name2="fibrpc-nobroker-$id"; names+=("$name2")
podman run -d --name "$name2" --network=host --health-interval disable -e FIBRPC_URL=amqp://guest:guest@127.0.0.1:1 -e "FIBRPC_QUEUE=$queue" "$image" >/dev/null 2>>"$work/podman.log" \
  || fail "podman run failed: $(tail -3 "$work/podman.log")"
for _ in $(seq 1 10); do podman exec "$name2" /fibrpc health >/dev/null 2>&1 || break; sleep 0.5; done
if reason=$(podman exec "$name2" /fibrpc health 2>&1); then fail "health passed with no broker: $reason"; fi
podman healthcheck run "$name2" >/dev/null 2>&1 && fail "podman healthcheck run passed with no broker"
step "health check fails with the broker unreachable: $reason"
podman rm -f "$name2" >/dev/null 2>>"$work/podman.log"

# 8. podman stop: SIGTERM to PID 1, drain, exit 0.
podman stop -t 20 "$name" >/dev/null 2>>"$work/podman.log"
code=$(podman inspect "$name" --format '{{.State.ExitCode}}')
[ "$code" = "0" ] || fail "serve exited $code on podman stop; logs:\n$(podman logs "$name" 2>&1 | tail -10)"
grep -q "SIGTERM: draining" <<<"$(podman logs "$name" 2>&1)" || fail "serve did not drain on SIGTERM"
podman rm "$name" >/dev/null 2>>"$work/podman.log"
step "podman stop: drained, exit code $code"

# 9. The Kubernetes manifest, run with this image (scripts/kube-test.sh, where it exists).
if [ -f scripts/kube-test.sh ]; then
  step "bash scripts/kube-test.sh $image"
  # Traced into a file: on a failure, the last commands it ran are shown.
  if ! bash -x scripts/kube-test.sh "$image" >"$work/kube-test.log" 2>&1; then
    fail "scripts/kube-test.sh $image failed; its last lines (traced):\n$(tail -25 "$work/kube-test.log")"
  fi
  grep '^kube-test:' "$work/kube-test.log" >&2 || true
fi

for s in "${sizes[@]}"; do echo "container-test: image $s"; done
echo "container-test: $(($(date +%s) - started)) s in all (the old image was 302 MiB on debian:bookworm-slim)"
echo "container-test: PASSED"
