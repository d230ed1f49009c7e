#!/usr/bin/env bash
# The test suite, from a fresh clone, by tiers:
#
#   bash scripts/test.sh                      # everything: unit, integration, slow
#   bash scripts/test.sh unit                 # pure modules: no broker, no build (seconds)
#   bash scripts/test.sh integration          # the compiled binary against a real broker
#   bash scripts/test.sh slow                 # release builds, the container image, the cluster, endurance
#   bash scripts/test.sh cluster              # the cluster test alone (part of slow)
#   bash scripts/test.sh integration cluster  # several tiers
#   bash scripts/test.sh test/integration/call.test.ts   # one file (or any `bun test` filter)
#
# FIBRPC_TEST_BROKER=3.10|4.0|4.3 picks the RabbitMQ release: 3.10 (default) is the machine's
# broker at 127.0.0.1:5672; 4.0 and 4.3 run a private node of that release from Debian's packages
# (scripts/broker-node.sh: made on first use, stopped at the end), and the tests that start their
# own nodes or cluster start that release too.
#
# Before the tests: npm ci (and test/otlp-decoder's, and for the slow tier test/registry's), then (except for the unit tier) a broker
# (scripts/ensure-broker.sh), Debian's python3-pika (to run the tutorial's own Python code), zsh and
# fish (shell completion), the type check, ./fibrpc and the test build ./fibrpc-test. The JUnit
# report goes to .test-results/junit[-RELEASE].xml.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A TIER_PATHS=(
  [unit]="test/unit"
  [integration]="test/integration test/repo"
  [cluster]="test/cluster"
  [slow]="test/release test/container test/cluster test/endurance"
)
paths=()
tiers=()
while [ $# -gt 0 ] && [ -n "${TIER_PATHS[$1]:-}" ]; do
  tiers+=("$1")
  read -ra more <<<"${TIER_PATHS[$1]}"
  paths+=("${more[@]}")
  shift
done
# Anything else is for `bun test` (a file or a name filter); nothing at all is every tier.
release=${FIBRPC_TEST_BROKER:-3.10}
case "$release" in 3.10 | 4.0 | 4.3) ;; *)
  echo "test: FIBRPC_TEST_BROKER=$release: expected 3.10, 4.0 or 4.3" >&2
  exit 64
  ;;
esac

install_packages() {
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "test: installing $* from the distribution's packages" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

npm ci --no-audit --no-fund --loglevel=error
# OpenTelemetry's OTLP protobuf decoder for the tests' OTLP receiver, in a tree of its own
# (test/otlp-decoder/README.md says why).
npm ci --prefix test/otlp-decoder --no-audit --no-fund --loglevel=error
# Verdaccio, the private npm registry the release test publishes the npm packages to, in a tree of
# its own too (test/registry/package.json): only for the runs that hold that test.
case " ${tiers[*]} " in "  " | *" slow "*) npm ci --prefix test/registry --no-audit --no-fund --loglevel=error ;; esac

if [ "${tiers[*]}" != unit ]; then
  bash scripts/ensure-broker.sh
  /usr/bin/python3 -c "import pika" 2>/dev/null || install_packages python3-pika
  missing=()
  for shell in zsh fish; do command -v "$shell" >/dev/null || missing+=("$shell"); done
  [ ${#missing[@]} -eq 0 ] || install_packages "${missing[@]}"
  node_modules/.bin/bun run typecheck
  node_modules/.bin/bun run build >/dev/null
  # The same code with fault injection compiled in, for the tests that inject faults (src/serve/faults.ts).
  node_modules/.bin/bun run build:test >/dev/null
fi

# Another release than the machine's: the suite's own node of it, stopped however the run ends.
if [ "$release" != 3.10 ] && [ "${tiers[*]}" != unit ]; then
  FIBRPC_BROKER_VERSION=$release bash scripts/broker-node.sh prepare
  node="fibrpc-suite-${release/./}-$$"
  # Free, and so is its distribution port (PORT+20000).
  port=$(node_modules/.bin/bun -e 'const { freeNodePorts } = await import("./test/ports.ts"); console.log((await freeNodePorts(1)) + 1)')
  trap 'bash scripts/broker-node.sh stop "$node"' EXIT
  FIBRPC_BROKER_VERSION=$release bash scripts/broker-node.sh start "$node" "$port"
  echo "test: RabbitMQ $(FIBRPC_BROKER_VERSION=$release bash scripts/broker-node.sh version) on 127.0.0.1:$port (node $node)" >&2
  export FIBRPC_TEST_URL="amqp://guest:guest@127.0.0.1:$port" FIBRPC_TEST_NODE="$node"
fi
export FIBRPC_TEST_BROKER=$release

mkdir -p .test-results
report=.test-results/junit.xml
if [ "$release" != 3.10 ]; then report=".test-results/junit-$release.xml"; fi
# bun ignores [test] timeout in bunfig.toml, so it is given here.
node_modules/.bin/bun test --timeout 120000 --reporter=junit --reporter-outfile="$report" "${paths[@]}" "$@"
