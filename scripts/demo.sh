#!/usr/bin/env bash
# The main job, from a fresh clone: install, make sure a broker answers, build ./fibrpc, start
# `serve --workers 3`, run `call 30` (prints 832040), stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."

npm ci --no-audit --no-fund --loglevel=error
bash scripts/ensure-broker.sh
node_modules/.bin/bun run build >/dev/null

# The demo leaves the broker as it found it: rpc_queue, if this run declares it, is deleted after
# (only when empty; a queue that was there before is not ours to touch).
rpc_queue() {
  node -e "
    require('amqplib').connect(process.env.FIBRPC_URL || 'amqp://guest:guest@127.0.0.1:5672').then(async (c) => {
      const ch = await c.createChannel();
      ch.on('error', () => {});
      if (process.argv[1] === 'delete') await ch.deleteQueue('rpc_queue', { ifEmpty: true }).catch(() => {});
      else console.log(await ch.checkQueue('rpc_queue').then(() => 'yes', () => 'no'));
      await c.close().catch(() => {});
    });
  " "$1"
}
queue_existed=$(rpc_queue exists)

./fibrpc serve --workers 3 &
serve_pid=$!
trap 'kill -TERM $serve_pid 2>/dev/null || true' EXIT

# --wait-for-server: the workers need a moment to connect; call waits for them (up to --timeout).
./fibrpc call --wait-for-server --timeout 30s 30

kill -TERM "$serve_pid"
wait "$serve_pid"
trap - EXIT
[ "$queue_existed" = yes ] || rpc_queue delete
