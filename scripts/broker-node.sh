#!/usr/bin/env bash
# Starts or stops a private RabbitMQ node on this machine, for tests that must stop, restart or
# cluster a broker without touching the machine's own (rabbit@localhost on 127.0.0.1:5672).
# Its node name, ports and data folder are its own; it uses the installed rabbitmq-server.
#
#   scripts/broker-node.sh start NAME PORT     # AMQP on 127.0.0.1:PORT, distribution on PORT+20000
#   scripts/broker-node.sh stop NAME           # stops it and deletes its data
#   scripts/broker-node.sh halt NAME           # stops it, keeps its data (start it again with start)
#   scripts/broker-node.sh ctl NAME ARGS...    # rabbitmqctl against it (e.g. stop_app, start_app)
#
# FIBRPC_BROKER_EXTRA_CONF: more rabbitmq.conf lines for `start` (e.g. a TLS listener).
# Data lives in ${FIBRPC_BROKER_BASE:-/tmp/fibrpc-brokers}/NAME.
set -euo pipefail
base=${FIBRPC_BROKER_BASE:-/tmp/fibrpc-brokers}
cmd=${1:?usage: broker-node.sh start|stop|ctl NAME [PORT|ARGS]}
name=${2:?node name required}
dir="$base/$name"
node="$name@localhost"
export PATH="$PATH:/usr/sbin"

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "broker-node: rabbitmq-server is not installed (run scripts/ensure-broker.sh, or apt-get install rabbitmq-server)" >&2
  exit 1
fi

node_env() {
  export RABBITMQ_NODENAME="$node"
  export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
  export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
  export RABBITMQ_MNESIA_BASE="$dir/mnesia"
  export RABBITMQ_LOG_BASE="$dir/log"
  export RABBITMQ_PID_FILE="$dir/pid"
}

ctl() {
  node_env
  rabbitmqctl -n "$node" "$@"
}

case "$cmd" in
  start)
    port=${3:?port required}
    mkdir -p "$dir/mnesia" "$dir/log"
    # Localhost only, like the machine's broker; no plugins, so no port of the machine's is taken.
    printf 'listeners.tcp.local = 127.0.0.1:%s\nloopback_users = none\n%s\n' "$port" "${FIBRPC_BROKER_EXTRA_CONF:-}" >"$dir/rabbitmq.conf"
    printf 'ERL_EPMD_ADDRESS=127.0.0.1\nNODE_PORT=%s\nDIST_PORT=%s\nSERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"\n' "$port" "$((port + 20000))" >"$dir/rabbitmq-env.conf"
    echo "[]." >"$dir/enabled_plugins"
    if id rabbitmq >/dev/null 2>&1; then chown -R rabbitmq:rabbitmq "$dir"; fi
    node_env
    export RABBITMQ_NODE_PORT="$port" RABBITMQ_DIST_PORT="$((port + 20000))"
    rabbitmq-server -detached >"$dir/log/start.out" 2>&1 || true
    # await_startup fails at once while the node is not reachable yet, so ask until it answers.
    for _ in $(seq 1 120); do
      if rabbitmqctl -n "$node" await_startup --timeout 5 >/dev/null 2>&1; then exit 0; fi
      sleep 0.5
    done
    echo "broker-node: $node did not start within 60 s; see $dir/log" >&2
    exit 1
    ;;
  stop)
    if [ -d "$dir" ]; then
      ctl stop >/dev/null 2>&1 || true
      rm -rf "$dir"
    fi
    # The base folder goes with its last node (another node still running keeps it).
    rmdir "$base" 2>/dev/null || true
    ;;
  halt)
    ctl stop >/dev/null 2>&1 || true
    ;;
  ctl)
    shift 2
    ctl "$@"
    ;;
  *)
    echo "broker-node: unknown command $cmd (start, stop, halt, ctl)" >&2
    exit 64
    ;;
esac
