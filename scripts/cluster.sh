#!/usr/bin/env bash
# A 3-node RabbitMQ cluster of its own on this machine, for tests and for trying fibrpc's cluster
# set-up locally. Private node names, ports and data folders (scripts/broker-node.sh); the
# machine's broker (rabbit@localhost on 127.0.0.1:5672) is not touched.
#
#   scripts/cluster.sh start [BASE_PORT]   # nodes fibrpc-c1..3@localhost on BASE_PORT+1..3 (default 5700)
#   scripts/cluster.sh stop                # stops all three and deletes their data
#   scripts/cluster.sh urls [BASE_PORT]    # the comma-separated --url list for fibrpc
#
# FIBRPC_CLUSTER_PREFIX changes the node names (default fibrpc-c), e.g. for two clusters at once.
# FIBRPC_BROKER_VERSION picks the RabbitMQ release of the nodes (3.10, 4.0, 4.3; see broker-node.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix=${FIBRPC_CLUSTER_PREFIX:-fibrpc-c}
cmd=${1:?usage: cluster.sh start|stop|urls [BASE_PORT]}
base=${2:-5700}

urls() {
  local list=()
  for i in 1 2 3; do list+=("amqp://guest:guest@127.0.0.1:$((base + i))"); done
  (IFS=,; echo "${list[*]}")
}

case "$cmd" in
  start)
    for i in 1 2 3; do
      bash "$here/broker-node.sh" start "$prefix$i" "$((base + i))"
    done
    for i in 2 3; do
      bash "$here/broker-node.sh" ctl "$prefix$i" stop_app >/dev/null
      bash "$here/broker-node.sh" ctl "$prefix$i" join_cluster "${prefix}1@localhost" >/dev/null 2>&1
      bash "$here/broker-node.sh" ctl "$prefix$i" start_app >/dev/null
    done
    members=$(bash "$here/broker-node.sh" ctl "${prefix}1" cluster_status --formatter json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).running_nodes.length))')
    [ "$members" = "3" ] || { echo "cluster: expected 3 running nodes, found $members" >&2; exit 1; }
    echo "cluster: 3 nodes running; fibrpc --url $(urls)" >&2
    ;;
  stop)
    # All three at once: each stop is bounded (broker-node.sh), and none waits for another.
    for i in 1 2 3; do bash "$here/broker-node.sh" stop "$prefix$i" & done
    failed=0
    for job in $(jobs -p); do wait "$job" || failed=1; done
    exit "$failed"
    ;;
  urls)
    urls
    ;;
  *)
    echo "cluster: unknown command $cmd (start, stop, urls)" >&2
    exit 64
    ;;
esac
