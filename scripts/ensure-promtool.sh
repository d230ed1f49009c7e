#!/usr/bin/env bash
# Prints the path of a promtool (Prometheus's rule and metrics checker), for the tests of
# deploy/prometheus/alerts.yaml and of /metrics. One on PATH is used as it is; otherwise Debian's
# prometheus package is downloaded and only promtool is unpacked from it, into
# node_modules/.cache/promtool: nothing is installed, so no Prometheus server starts.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v promtool >/dev/null 2>&1; then command -v promtool; exit 0; fi
dest=node_modules/.cache/promtool
bin="$dest/usr/bin/promtool"
if [ ! -x "$bin" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  chmod 755 "$tmp" # apt's download user must be able to write there
  if ! (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1); then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "ensure-promtool: updating the package lists to download Debian's prometheus package" >&2
    $sudo apt-get update -qq >&2
    (cd "$tmp" && apt-get download -qq prometheus >/dev/null)
  fi
  mkdir -p "$tmp/root"
  dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -C "$tmp/root" ./usr/bin/promtool
  mkdir -p "$(dirname "$dest")"
  rm -rf "$dest" && mv "$tmp/root" "$dest"
fi
"$bin" --version >/dev/null
echo "$PWD/$bin"
