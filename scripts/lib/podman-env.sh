# podman as this machine (and CI) can run it, for scripts/container-test.sh and scripts/kube-test.sh:
# no systemd, so cgroups through cgroupfs and runc as the runtime; no default ulimits (the
# defaults ask for more open files than a nested sandbox may grant).
#   source scripts/lib/podman-env.sh; podman_runtime_conf "$work"
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
