# A Debian root filesystem made once with debootstrap and cached under /var/cache/fibrpc, for
# running a package of another Debian release (a newer RabbitMQ) beside the machine's own.
# Source it from a script that runs as root.
#
#   make_debian_rootfs SUITE DEST [PACKAGES]   # DEST made on first use; PACKAGES: comma-separated
#
# Another run making the same rootfs at the same time waits for it (flock). The mirror is the one
# the machine's apt sources name (FIBRPC_DEBIAN_MIRROR overrides it); suites newer than
# debootstrap's own scripts use its `sid` script.

debian_mirror() {
  if [ -n "${FIBRPC_DEBIAN_MIRROR:-}" ]; then echo "$FIBRPC_DEBIAN_MIRROR"; return; fi
  local uri
  # deb822 sources (URIs: …) first, then one-line ones (deb URI suite …); security mirrors carry
  # no base system.
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' | grep -v security | grep '/debian' | head -1 || true)
  [ -n "$uri" ] || uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '$1 == "deb" {print $2}' | grep -v security | grep '/debian' | head -1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

make_debian_rootfs() {
  local suite=$1 dest=$2 include=${3:-} script log
  [ -x "$dest/bin/sh" ] && return 0
  [ "$(id -u)" -eq 0 ] || { echo "debian-rootfs: making $dest needs root (debootstrap)" >&2; return 1; }
  if ! command -v debootstrap >/dev/null 2>&1; then
    echo "debian-rootfs: installing debootstrap from the distribution's packages" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; } \
      || { echo "debian-rootfs: could not install debootstrap (apt-get install debootstrap)" >&2; return 1; }
  fi
  mkdir -p "$(dirname "$dest")"
  (
    exec 8>"$dest.lock"
    flock -w 900 8 || { echo "debian-rootfs: another run has been making $dest for 15 minutes" >&2; exit 1; }
    [ -x "$dest/bin/sh" ] && exit 0
    script=/usr/share/debootstrap/scripts/$suite
    [ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
    log="$dest.debootstrap.log"
    echo "debian-rootfs: debootstrap --variant=minbase $suite${include:+ with $include} (once; cached in $dest)" >&2
    rm -rf "$dest.partial"
    if ! debootstrap --variant=minbase ${include:+--include="$include"} "$suite" "$dest.partial" "$(debian_mirror)" "$script" >"$log" 2>&1; then
      echo "debian-rootfs: debootstrap $suite failed: $(tail -3 "$log")" >&2
      exit 1
    fi
    # The unpacked tree is what matters; the downloaded packages are not kept. minbase has no
    # /etc/hosts, and Erlang resolves the `localhost` of its node names there.
    rm -f "$dest.partial"/var/cache/apt/archives/*.deb "$log"
    [ -s "$dest.partial/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$dest.partial/etc/hosts"
    mv "$dest.partial" "$dest"
  )
}
