#!/usr/bin/env bash
# The main job, from a fresh clone: install, make sure a broker answers, build ./fibrpc, start
# `serve --workers 3`, run `call 30` (prints 832040), stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."

npm ci --no-audit --no-fund --loglevel=error
bash scripts/ensure-broker.sh
node_modules/.bin/bun run build >/dev/null

./fibrpc serve --workers 3 &
serve_pid=$!
trap 'kill -TERM $serve_pid 2>/dev/null || true' EXIT

# --wait-for-server: the workers need a moment to connect; call waits for them (up to --timeout).
./fibrpc call --wait-for-server --timeout 30s 30

kill -TERM "$serve_pid"
wait "$serve_pid"
trap - EXIT
