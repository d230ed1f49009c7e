#!/usr/bin/env bash
# The whole test suite, from a fresh clone: install, make sure a broker, Debian's python3-pika
# (to run the tutorial's own Python code), zsh and fish (for shell completion) are there, build
# ./fibrpc, run `bun test`.
# Extra arguments go to `bun test` (e.g. a file filter).
set -euo pipefail
cd "$(dirname "$0")/.."

npm ci --no-audit --no-fund --loglevel=error
bash scripts/ensure-broker.sh

if ! /usr/bin/python3 -c "import pika" 2>/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "test: installing python3-pika (the tutorial's client library) from the distribution's packages" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-pika >/dev/null
fi

# zsh and fish, to load the scripts of `fibrpc completion` in the shells themselves (bash is here).
missing=""
for shell in zsh fish; do command -v "$shell" >/dev/null || missing="$missing $shell"; done
if [ -n "$missing" ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "test: installing$missing (for the shell completion tests) from the distribution's packages" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

node_modules/.bin/bun run typecheck
node_modules/.bin/bun run build >/dev/null
# The same code with fault injection compiled in, for the tests that inject faults (src/serve/faults.ts).
node_modules/.bin/bun run build:test >/dev/null
mkdir -p .test-results
# bun ignores [test] timeout in bunfig.toml, so it is given here.
exec node_modules/.bin/bun test --timeout 120000 --reporter=junit --reporter-outfile=.test-results/junit.xml "$@"
