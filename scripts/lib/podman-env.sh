# Shared by scripts/container-test.sh and scripts/kube-test.sh (source it from the repository root).
#
# podman as this machine (and CI) can run it: no systemd, so cgroups through cgroupfs and runc as
# the runtime; no default ulimits (the defaults ask for more open files than a nested sandbox may
# grant).
#   podman_runtime_conf "$work"
podman_runtime_conf() {
  export CONTAINERS_CONF="$1/containers.conf"
  cat >"$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
CONF
}

# The commands named, installed from the distribution's packages of the same names where missing
# (as root); one line and exit 1 when that fails.
#   ensure_tools podman runc curl
ensure_tools() {
  local missing=() tool
  for tool in "$@"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "$(basename "$0" .sh): installing ${missing[*]} from the distribution's packages" >&2
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
    echo "$(basename "$0" .sh): FAILED: could not install ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
}
