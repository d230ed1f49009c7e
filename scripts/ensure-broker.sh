#!/usr/bin/env bash
# Makes sure a RabbitMQ answers on HOST:PORT (default 127.0.0.1:5672): uses a running one,
# starts an installed one, or installs Debian's/Ubuntu's rabbitmq-server and starts it.
# Usage: scripts/ensure-broker.sh [HOST] [PORT]
set -euo pipefail
host=${1:-127.0.0.1}
port=${2:-5672}

answers() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

wait_for_broker() {
  for _ in $(seq 1 120); do
    answers && return 0
    sleep 0.5
  done
  echo "ensure-broker: RabbitMQ did not start answering on $host:$port within 60 s; see /var/log/rabbitmq/" >&2
  return 1
}

if answers; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

if [ "$host" != "127.0.0.1" ] && [ "$host" != "localhost" ]; then
  echo "ensure-broker: nothing answers on $host:$port, and it is not this machine; start RabbitMQ there" >&2
  exit 1
fi

if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then
  echo "ensure-broker: installing rabbitmq-server from the distribution's packages" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq rabbitmq-server >/dev/null
  # The package may have started it already (systemd); give it a moment before starting our own.
  for _ in $(seq 1 20); do answers && exit 0; sleep 0.5; done
fi

echo "ensure-broker: starting RabbitMQ (rabbitmq-server -detached)" >&2
PATH="$PATH:/usr/sbin" $sudo rabbitmq-server -detached >/dev/null 2>&1 || true
wait_for_broker
