#!/usr/bin/env bash
# Runs deploy/kubernetes/deployment.yaml with `podman kube play` against the local broker, using an
# image that is already built, and checks what the manifest promises:
#   bash scripts/kube-test.sh IMAGE        (e.g. localhost/fibrpc:test-1234; scripts/container-test.sh
#                                           calls it with the image it has just built)
# - the pod starts from a test copy of the manifest (scripts/lib/kube-test-manifest.ts says what
#   is changed and why: image, queue, names, host network, one replica) with FIBRPC_URL read
#   through the manifest's secretKeyRef from a podman secret;
# - readiness (/readyz on the manifest's port) answers 200 once serve consumes, liveness (/healthz)
#   answers 200; `./fibrpc call 30` from the host gets 832040; /metrics answers on the Service's
#   target port;
# - podman applied the manifest's user, read-only root filesystem and memory/CPU limits, and
#   `fibrpc health` (the image's HEALTHCHECK) passes in the pod, its status file on the emptyDir;
# - stopping the pod drains (SIGTERM, exit 0, no consumer left), and `podman kube down` removes it.
#
# What podman 4.3 (Debian 12) does not do, and what the test does instead:
# - readinessProbe: not supported by kube play (ignored). The test requests the readiness path on
#   the readiness port itself, and waits for its 200 as a kubelet would.
# - livenessProbe: turned into a podman healthcheck `CMD-SHELL curl -f http://localhost:PORT/PATH`,
#   which cannot run here: podman schedules healthchecks with systemd timers (no systemd on this
#   machine: "unable to get systemd connection to add healthchecks", logged, not fatal), and the
#   image has neither a shell nor curl. The test checks that podman took the probe's path and
#   port, then requests that path on that port itself.
# - terminationGracePeriodSeconds: not supported; the test stops the pod with `podman pod stop -t`
#   set to the manifest's grace period.
# - Secret documents: stored in a form podman's own secretKeyRef cannot read back (see
#   kube-test-manifest.ts); the test creates the podman secret the reference names.
# - containerPort on the host network: refused as a port mapping, so the copy has no `ports`.
# - Service: not a kind kube play knows (skipped); the test requests /metrics on its target port.
#
# Needs root (podman with runc and cgroupfs, as scripts/container-test.sh), the local broker with
# guest/guest on 127.0.0.1:5672, and ./fibrpc built. Removes everything it made: the pod, its
# containers and volumes, the podman secret, the queue, the pause image if it was not there.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

fail() { echo -e "kube-test: FAILED: $*" >&2; exit 1; }
step() { echo "kube-test: $*" >&2; }

image=${1:-}
[ -n "$image" ] || fail "usage: bash scripts/kube-test.sh IMAGE (an image built from the Dockerfile)"
[ "$(id -u)" -eq 0 ] || fail "needs root (podman runs pods as root here)"
source scripts/lib/podman-env.sh
ensure_tools podman runc curl
[ -x "$root/fibrpc" ] || fail "$root/fibrpc is missing: run \`bun run build\` first"
bun=$root/node_modules/.bin/bun
[ -x "$bun" ] || bun=$(command -v bun) || fail "bun is missing: run \`npm ci\` first"

# Everything this run makes is removed on exit, from the moment its work folder exists.
cleanup() {
  set +e
  [ -n "${manifest:-}" ] && [ -f "$manifest" ] && podman kube down "$manifest" >/dev/null 2>&1
  [ -n "${pod_name:-}" ] && podman pod rm -f "$pod_name" >/dev/null 2>&1
  for volume in ${volumes:-}; do podman volume rm -f "$volume" >/dev/null 2>&1; done
  [ -n "${secret_name:-}" ] && podman secret rm "$secret_name" >/dev/null 2>&1
  [ -n "${pause_images_before+set}" ] && comm -13 <(echo "$pause_images_before") <(podman images -q --filter reference=localhost/podman-pause 2>/dev/null | sort) | xargs -r podman rmi >/dev/null 2>&1
  [ -n "${queue:-}" ] && queue_js delete >/dev/null 2>&1
  rm -rf "$work"
}
work=$(mktemp -d /tmp/fibrpc-kube.XXXXXX)
trap cleanup EXIT
# Stopped from outside (the test's own time limit, Ctrl-C): still clean up, through the EXIT trap.
trap 'exit 143' TERM INT
# No systemd here: cgroupfs and runc, as scripts/container-test.sh.
podman_runtime_conf "$work"
podman info >/dev/null 2>&1 || fail "podman cannot run here: $(podman info 2>&1 | tail -1)"
podman image exists "$image" || fail "image $image is not in podman's local storage; build it first (scripts/container-test.sh does)"

broker=amqp://guest:guest@127.0.0.1:5672
id=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
queue="fibrpc_kube_$id"
manifest="$work/deployment.yaml"
# The image podman makes for each pod's infra container; removed with this run if it is new.
# (Assigned only once listed: a failed listing must not make every pause image look new.)
listed=$(podman images -q --filter reference=localhost/podman-pause 2>"$work/images.err" | sort) \
  || fail "podman images failed: $(tail -1 "$work/images.err")"
pause_images_before=$listed

# A queue's consumer count, or "gone"; with `delete`, deletes it. Through amqplib, as any client.
queue_js() {
  node -e "
    const amqp = require('amqplib');
    (async () => {
      const c = await amqp.connect('$broker');
      const ch = await c.createChannel();
      ch.on('error', () => {});
      if (process.argv[1] === 'delete') await ch.deleteQueue('$queue');
      else console.log(await ch.checkQueue('$queue').then((q) => q.consumerCount, () => 'gone'));
      await c.close();
    })().catch((e) => { console.error(e.message); process.exit(1); });
  " "$1"
}


# 1. The test copy, and what to check, from the manifests (see scripts/lib/kube-test-manifest.ts).
assignments=$("$bun" scripts/lib/kube-test-manifest.ts "$image" "$queue" "kubetest-$id" "$broker" "$work") \
  || fail "could not make the test copy of deploy/kubernetes/deployment.yaml"
eval "$assignments"
step "test copy of deploy/kubernetes/deployment.yaml: image $image, queue $queue, pod $pod_name"

podman secret create "$secret_name" "$work/secret.json" >/dev/null
rm -f "$work/secret.json"
# The port is the host's (host network): nothing may answer on it before the pod starts.
if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$http_port/"; then
  fail "something already answers on 127.0.0.1:$http_port, the manifest's FIBRPC_HTTP_PORT; stop it first"
fi

# 2. Play it.
# --build=false: podman 4.3 otherwise looks for ./<image name>/Containerfile to build, and in the
# repository ./fibrpc is the binary.
podman kube play --build=false "$manifest" >"$work/play.log" 2>&1 || fail "podman kube play failed:\n$(cat "$work/play.log")"
step "podman kube play: pod $pod_name started"

# status PORT PATH: the HTTP status code, or 000 if nothing answers.
status() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1$2" || true; }

# 3. Readiness, as a kubelet would probe it (podman 4.3 ignores readinessProbe): poll until 200,
# at most 60 s, failing at once if the container is gone.
deadline=$((SECONDS + 60))
until [ "$(status "$readiness_port" "$readiness_path")" = "200" ]; do
  # Not ready is 503; a 404 never turns into 200 (serve does not serve that path).
  code=$(status "$readiness_port" "$readiness_path")
  [ "$code" != "404" ] || fail "readiness $readiness_path on port $readiness_port: 404, serve does not serve that path"
  state=$(podman inspect "$container_name" --format '{{.State.Status}}' 2>/dev/null || echo gone)
  [ "$state" = "running" ] || fail "the container is $state before it was ready; logs:\n$(podman logs "$container_name" 2>&1 | tail -20)"
  [ $SECONDS -lt $deadline ] || fail "readiness $readiness_path on port $readiness_port did not answer 200 within 60 s (last: $(status "$readiness_port" "$readiness_path")); logs:\n$(podman logs "$container_name" 2>&1 | tail -20)"
  sleep 0.2
done
step "readiness: GET :$readiness_port$readiness_path -> 200 ($(curl -s --max-time 2 "http://127.0.0.1:$readiness_port$readiness_path" | tr -d '\n'))"

# 4. Liveness: podman kept the probe as a healthcheck it cannot run here (see the top); check it
# names the manifest's path and port, and request that path ourselves.
healthcheck=$(podman inspect "$container_name" --format '{{json .Config.Healthcheck.Test}}')
[[ "$healthcheck" == *":$liveness_port$liveness_path\""* ]] \
  || fail "podman's healthcheck from the livenessProbe is $healthcheck, not on :$liveness_port$liveness_path"
code=$(status "$liveness_port" "$liveness_path")
[ "$code" = "200" ] || fail "liveness $liveness_path on port $liveness_port answered $code"
step "liveness: GET :$liveness_port$liveness_path -> 200 (podman's healthcheck from it: $healthcheck, not run: no systemd timers, no curl in the image)"

# 5. What podman applied of the manifest's security context and limits.
read -r user readonly memory nanocpus <<<"$(podman inspect "$container_name" --format '{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}')"
[ "${user%%:*}" = "$run_as_user" ] || fail "the container runs as '$user', the manifest says runAsUser $run_as_user"
[ "$readonly" = "$read_only_root" ] || fail "read-only root filesystem is $readonly, the manifest says $read_only_root"
case "$memory_limit" in
  *Mi) want=$(( ${memory_limit%Mi} * 1024 * 1024 )) ;;
  *Gi) want=$(( ${memory_limit%Gi} * 1024 * 1024 * 1024 )) ;;
  *) fail "memory limit '$memory_limit' is not in Mi or Gi" ;;
esac
[ "$memory" = "$want" ] || fail "the container's memory limit is $memory bytes, the manifest says $memory_limit"
pid=$(podman inspect "$container_name" --format '{{.State.Pid}}')
rss_idle=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
step "applied: user $user, read-only root $readonly, memory limit $memory_limit, CPU $((nanocpus / 1000000))m; serve resident $((rss_idle / 1024)) MiB idle"

# The status file lives on the emptyDir (the root filesystem is read-only): `fibrpc health`, the
# image's HEALTHCHECK, reads it in the pod.
entrypoint=$(podman image inspect "$image" --format '{{index .Config.Entrypoint 0}}')
health=$(podman exec "$container_name" "$entrypoint" health 2>&1) || fail "fibrpc health in the pod failed: $health"
step "fibrpc health in the pod (status file on the emptyDir): $health"

# 6. A call from the host, through the broker, to the pod.
result=$("$root/fibrpc" call --queue "$queue" --timeout 10s 30) || fail "fibrpc call --queue $queue 30 failed"
[ "$result" = "832040" ] || fail "fibrpc call 30 printed '$result', expected 832040"
step "fibrpc call --queue $queue 30 from the host: $result"

# 7. /metrics on the Service's target port (podman has no Services: requested directly).
metrics=$(curl -sf --max-time 5 "http://127.0.0.1:$metrics_port$metrics_path") || fail "GET :$metrics_port$metrics_path failed"
grep -q '^fibrpc_requests_total{outcome="ok",code=""} [1-9]' <<<"$metrics" || fail "/metrics does not count the call:\n$(grep '^fibrpc_' <<<"$metrics")"
[ -z "$workers" ] || grep -q "^fibrpc_workers_up $workers\$" <<<"$metrics" || fail "/metrics does not show $workers workers up:\n$(grep '^fibrpc_workers' <<<"$metrics")"
step "metrics: GET :$metrics_port$metrics_path -> $(grep -c '^fibrpc_' <<<"$metrics") samples, $(grep '^fibrpc_workers_up' <<<"$metrics")"

# 8. Stop: SIGTERM, drain, exit 0, within the manifest's grace period.
started=$SECONDS
podman pod stop -t "$grace_seconds" "$pod_name" >/dev/null 2>"$work/stop.log" || fail "podman pod stop failed: $(cat "$work/stop.log")"
code=$(podman inspect "$container_name" --format '{{.State.ExitCode}}')
[ "$code" = "0" ] || fail "serve exited $code when the pod was stopped; logs:\n$(podman logs "$container_name" 2>&1 | tail -10)"
# The logs are read whole first: grep -q quitting at the match would cut podman logs off
# (SIGPIPE), which pipefail counts as a failure once a line follows the match ("drained: …").
logs=$(podman logs "$container_name" 2>&1)
grep -q "SIGTERM: draining" <<<"$logs" || fail "serve did not drain on SIGTERM; logs:\n$(tail -10 <<<"$logs")"
grep -q "drained: " <<<"$logs" || fail "serve did not say it drained; logs:\n$(tail -10 <<<"$logs")"
consumers=$(queue_js count)
[ "$consumers" = "0" ] || fail "the queue still has $consumers consumers after the pod stopped"
step "pod stopped: drained, exit code 0, in $((SECONDS - started)) s (grace period ${grace_seconds} s), no consumer left"

# 9. Down: the pod and the emptyDir volume go.
podman kube down "$manifest" >"$work/down.log" 2>&1 || fail "podman kube down failed:\n$(cat "$work/down.log")"
if podman pod exists "$pod_name"; then fail "pod $pod_name still exists after podman kube down"; fi
for volume in $volumes; do
  if podman volume exists "$volume"; then fail "volume $volume still exists after podman kube down"; fi
done
step "podman kube down: pod and volumes ($volumes) removed"
echo "kube-test: PASSED"
