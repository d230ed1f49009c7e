#!/usr/bin/env bash
# Starts or stops a private RabbitMQ node on this machine, of the RabbitMQ release asked for, for
# tests that must stop, restart or cluster a broker, or run against another release, without
# touching the machine's own (rabbit@localhost on 127.0.0.1:5672) or its epmd.
#
#   scripts/broker-node.sh start NAME PORT     # AMQP on 127.0.0.1:PORT, distribution on PORT+20000
#   scripts/broker-node.sh stop NAME           # stops it and deletes its data
#   scripts/broker-node.sh halt NAME           # stops it, keeps its data (start it again with start)
#   scripts/broker-node.sh kill NAME           # kills its VM (SIGKILL), keeps its data, as a machine dies
#   scripts/broker-node.sh ctl NAME ARGS...    # rabbitmqctl (of the node's release) against it
#   scripts/broker-node.sh prepare             # makes the release's rootfs now (else on first start)
#   scripts/broker-node.sh version             # the release's exact version (e.g. 4.3.6)
#
# FIBRPC_BROKER_VERSION: which release, from Debian's packages only:
#   3.10  Debian 12 (bookworm): the installed rabbitmq-server when it is 3.10 (the machine's)
#   4.0   Debian 13 (trixie)
#   4.3   Debian testing (forky); the node also denies transient non-exclusive queues
#         (deprecated_features.permit.transient_nonexcl_queues = false), as 4.3's release notes
#         announce for a later release.
# A release that is not the installed one runs from a minbase rootfs with that release's
# rabbitmq-server (made by debootstrap on first use, cached in /var/cache/fibrpc/rootfs-rabbitmq-V),
# chrooted in a mount namespace of its own (/proc, /dev and /tmp bound in; the mounts go with the
# node's last process). Needs root for that.
# Each release has its own epmd port (ERL_EPMD_PORT 4381/4382/4383), so nodes of one release
# cluster with each other and none registers with the machine's epmd on 4369; the epmd goes with
# the release's last node.
#
# FIBRPC_BROKER_EXTRA_CONF: more rabbitmq.conf lines for `start` (e.g. a TLS listener).
# Data lives in ${FIBRPC_BROKER_BASE:-/tmp/fibrpc-brokers}/NAME.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
base=${FIBRPC_BROKER_BASE:-/tmp/fibrpc-brokers}
cmd=${1:?usage: broker-node.sh start|stop|halt|kill|ctl NAME [PORT|ARGS] | prepare | version}
export PATH="$PATH:/usr/sbin"

if [ "$cmd" = prepare ] || [ "$cmd" = version ]; then
  name=""
  dir=""
else
  name=${2:?node name required}
  [[ "$name" =~ ^[A-Za-z0-9_-]+$ ]] || { echo "broker-node: node name \"$name\": only letters, digits, _ and - (Erlang's rule)" >&2; exit 64; }
  dir="$base/$name"
fi
node="$name@localhost"

# The release: a node that exists keeps the one it was started with.
version=${FIBRPC_BROKER_VERSION:-3.10}
if [ -n "$dir" ] && [ -f "$dir/version" ]; then
  started_as=$(cat "$dir/version")
  if [ "$cmd" = start ] && [ -n "${FIBRPC_BROKER_VERSION:-}" ] && [ "$FIBRPC_BROKER_VERSION" != "$started_as" ]; then
    echo "broker-node: $name was made with RabbitMQ $started_as, not $FIBRPC_BROKER_VERSION; stop it first" >&2
    exit 64
  fi
  version=$started_as
fi
case "$version" in
  3.10) suite=bookworm; epmd_port=4381 ;;
  4.0) suite=trixie; epmd_port=4382 ;;
  4.3) suite=forky; epmd_port=4383 ;;
  *)
    echo "broker-node: unknown RabbitMQ release \"$version\" (FIBRPC_BROKER_VERSION: 3.10, 4.0 or 4.3)" >&2
    exit 64
    ;;
esac

installed=$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || true)
if [[ "$installed" == "$version".* ]]; then
  rootfs="" # the machine's own rabbitmq-server
else
  rootfs=${FIBRPC_BROKER_ROOTFS:-/var/cache/fibrpc/rootfs-rabbitmq-$version}
fi

ensure_runtime() {
  [ -z "$rootfs" ] && return 0
  [ "$(id -u)" -eq 0 ] || { echo "broker-node: RabbitMQ $version runs chrooted from $rootfs, which needs root" >&2; exit 1; }
  # shellcheck source=lib/debian-rootfs.sh
  source "$here/lib/debian-rootfs.sh"
  make_debian_rootfs "$suite" "$rootfs" rabbitmq-server \
    || { echo "broker-node: could not make a RabbitMQ $version rootfs (Debian $suite)" >&2; exit 1; }
  # Debian testing moves on: a rootfs made later may hold another release than the one asked for.
  local packaged
  packaged=$(chroot "$rootfs" dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || true)
  [[ "$packaged" == "$version".* ]] || {
    echo "broker-node: $rootfs holds rabbitmq-server ${packaged:-(none)}, not $version.x (Debian $suite moved on?); remove it to make it again, or set FIBRPC_BROKER_ROOTFS" >&2
    exit 1
  }
}

# Runs a command of the release with the node's environment: on the machine, or chrooted into
# the rootfs in a private mount namespace (the binds vanish with the namespace's last process).
in_runtime() {
  local vars=(
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    "ERL_EPMD_PORT=$epmd_port"
  )
  if [ -n "$name" ]; then
    vars+=(
      "RABBITMQ_NODENAME=$node"
      "RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf"
      "RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf"
      "RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins"
      "RABBITMQ_MNESIA_BASE=$dir/mnesia"
      "RABBITMQ_LOG_BASE=$dir/log"
      "RABBITMQ_PID_FILE=$dir/pid"
    )
  fi
  if [ -z "$rootfs" ]; then
    env "${vars[@]}" "$@"
    return
  fi
  # shellcheck disable=SC2016 # expanded by the inner shell
  unshare --mount --propagation private sh -c '
    root=$1 data=$2; shift 2
    mount --bind /proc "$root/proc" && mount --rbind /dev "$root/dev" && mount --bind /tmp "$root/tmp" || exit 1
    case "$data" in /tmp/*) ;; *) mkdir -p "$root$data" && mount --bind "$data" "$root$data" || exit 1 ;; esac
    exec chroot "$root" /usr/bin/env "$@"
  ' sh "$rootfs" "$base" "${vars[@]}" "$@"
}

ctl() {
  in_runtime rabbitmqctl -n "$node" "$@"
}

# The release's epmd, once no node of it is left (epmd refuses -kill while nodes are registered).
stop_epmd_if_unused() {
  in_runtime epmd -port "$epmd_port" -kill >/dev/null 2>&1 || true
}

# The node's Erlang VM, found by the node name in its environment (the pid file is not always
# there: RabbitMQ writes it late in boot and removes it when a second start of the same node fails).
node_pid() {
  local pid
  for pid in $(pgrep -x beam.smp || true); do
    if { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qx "RABBITMQ_NODENAME=$node"; then
      echo "$pid"
      return 0
    fi
  done
  return 1
}

# Stops the node and waits until its VM has gone: asked politely (rabbitmqctl stop, bounded), then
# SIGTERM, then SIGKILL; never waits forever on a node that does not answer. Gone means node_pid
# no longer finds it (a zombie waiting for its parent to reap it has no environment left).
stop_node() {
  local pid
  pid=$(node_pid) || return 0
  timeout -k 5 30 bash "$here/broker-node.sh" ctl "$name" stop >/dev/null 2>&1 || true
  for signal in TERM KILL; do
    for _ in $(seq 1 50); do
      node_pid >/dev/null || return 0
      sleep 0.2
    done
    kill "-$signal" "$pid" 2>/dev/null || true
  done
  for _ in $(seq 1 50); do
    node_pid >/dev/null || return 0
    sleep 0.2
  done
  echo "broker-node: $node (pid $pid) did not end even after SIGKILL" >&2
  return 1
}

rabbitmq_owner() {
  local passwd=${rootfs:-}/etc/passwd
  awk -F: '$1 == "rabbitmq" { print $3 ":" $4 }' "$passwd"
}

case "$cmd" in
  prepare)
    ensure_runtime
    ;;
  version)
    ensure_runtime
    if [ -z "$rootfs" ]; then echo "${installed%%-*}"; else chroot "$rootfs" dpkg-query -W -f '${Version}' rabbitmq-server | cut -d- -f1; fi
    ;;
  start)
    port=${3:?port required}
    if [ -z "$rootfs" ] && ! command -v rabbitmq-server >/dev/null 2>&1; then
      echo "broker-node: rabbitmq-server is not installed (run scripts/ensure-broker.sh, or apt-get install rabbitmq-server)" >&2
      exit 1
    fi
    ensure_runtime
    # Already running (a cluster node started again by a test's clean-up): nothing to do; a second
    # start of the same node would fail and take its pid file with it.
    if node_pid >/dev/null; then exit 0; fi
    mkdir -p "$dir/mnesia" "$dir/log"
    echo "$version" >"$dir/version"
    denied=""
    if [ "$version" = 4.3 ]; then denied="deprecated_features.permit.transient_nonexcl_queues = false"; fi
    # Localhost only, like the machine's broker; no plugins, so no port of the machine's is taken.
    printf 'listeners.tcp.local = 127.0.0.1:%s\nloopback_users = none\n%s\n%s\n' "$port" "$denied" "${FIBRPC_BROKER_EXTRA_CONF:-}" >"$dir/rabbitmq.conf"
    printf 'ERL_EPMD_ADDRESS=127.0.0.1\nERL_EPMD_PORT=%s\nNODE_PORT=%s\nDIST_PORT=%s\nSERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"\n' "$epmd_port" "$port" "$((port + 20000))" >"$dir/rabbitmq-env.conf"
    echo "[]." >"$dir/enabled_plugins"
    owner=$(rabbitmq_owner)
    if [ -n "$owner" ]; then chown -R "$owner" "$dir"; fi
    in_runtime rabbitmq-server -detached >"$dir/log/start.out" 2>&1 || true
    # await_startup fails at once while the node is not reachable yet, so ask until it answers,
    # for 90 s at most, and not once its VM has gone.
    deadline=$((SECONDS + 90))
    while [ "$SECONDS" -lt "$deadline" ]; do
      if ctl await_startup --timeout 5 >/dev/null 2>&1; then exit 0; fi
      if ! node_pid >/dev/null; then
        sleep 1 # the VM may still be starting up after the -detached launcher returned
        node_pid >/dev/null || { echo "broker-node: $node (RabbitMQ $version) stopped while starting: $(tail -3 "$dir"/log/*.log "$dir/log/start.out" 2>/dev/null | tail -3)" >&2; exit 1; }
      fi
      sleep 0.5
    done
    echo "broker-node: $node (RabbitMQ $version) did not start within 90 s; see $dir/log" >&2
    exit 1
    ;;
  stop)
    stop_node
    rm -rf "$dir"
    stop_epmd_if_unused
    # The base folder goes with its last node (another node still running keeps it).
    rmdir "$base" 2>/dev/null || true
    ;;
  kill)
    # SIGKILL, as when its machine dies: the other nodes get no word of its going (halt stops it cleanly).
    if pid=$(node_pid); then
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        node_pid >/dev/null || break
        sleep 0.2
      done
    fi
    stop_epmd_if_unused
    ;;
  halt)
    stop_node
    stop_epmd_if_unused
    ;;
  ctl)
    shift 2
    ctl "$@"
    ;;
  *)
    echo "broker-node: unknown command $cmd (start, stop, halt, ctl, prepare, version)" >&2
    exit 64
    ;;
esac
