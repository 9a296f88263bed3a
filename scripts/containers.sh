#!/usr/bin/env bash
# The container engine, loopback registry and local Python base image mlship's integration tests use.
#
#   scripts/containers.sh up       install (if missing) and start podman's Docker API socket, the
#                                  registry on 127.0.0.1:5000 and localhost/pybase:bookworm; prints
#                                  `export DOCKER_HOST=...` on stdout (so: eval "$(scripts/containers.sh up)")
#   scripts/containers.sh down     remove containers, stop only what `up` started (by recorded PID)
#   scripts/containers.sh status   say what answers (exit 1 when something does not)
#   scripts/containers.sh env      print the exports
#
# Run as root (or with sudo) on Debian 12: podman + runc serve the Docker API; no systemd or Docker needed.
# State (PIDs, logs, registry config and storage): $MLSHIP_CONTAINERS_STATE, default /tmp/mlship-containers.
# The base image is bootstrapped from $MLSHIP_DEBIAN_MIRROR (default: this Debian host's mirror, else deb.debian.org).
set -euo pipefail

STATE="${MLSHIP_CONTAINERS_STATE:-/tmp/mlship-containers}"
SOCKET=/run/podman/podman.sock
DOCKER_HOST_VALUE="unix://${SOCKET}"
REGISTRY_ADDR=127.0.0.1:5000
BASE_IMAGE=localhost/pybase:bookworm
PACKAGES=(podman runc buildah skopeo docker-registry debootstrap catatonit curl ca-certificates)
CONTAINERS_CONF=/etc/containers/containers.conf
REGISTRIES_CONF=/etc/containers/registries.conf.d/50-mlship-loopback.conf
MARKER="# written by mlship scripts/containers.sh"

log() { printf '[containers] %s\n' "$*" >&2; }
die() { printf '[containers] error: %s\n' "$*" >&2; exit 1; }

engine_answers() {
  [[ -S "$SOCKET" ]] && curl -sf --max-time 2 --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1
}

registry_answers() {
  curl -sf --max-time 2 "http://${REGISTRY_ADDR}/v2/" >/dev/null 2>&1
}

base_image_exists() {
  command -v podman >/dev/null 2>&1 && podman image exists "$BASE_IMAGE" 2>/dev/null
}

print_env() {
  echo "export DOCKER_HOST=${DOCKER_HOST_VALUE}"
}

# --- packages and configuration --------------------------------------------------------------------

install_packages() {
  local missing=() pkg
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  [[ $EUID -eq 0 ]] || die "installing ${missing[*]} needs root: run with sudo"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  mkdir -p "$STATE"
  if ! { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } >"$STATE/apt.log" 2>&1; then
    tail -n 20 "$STATE/apt.log" >&2
    die "apt-get could not install ${missing[*]}; see $STATE/apt.log"
  fi
}

# Write $1 with the content on stdin unless it already has exactly that content.
write_if_changed() {
  local target=$1 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [[ -f "$target" ]] && cmp -s "$tmp" "$target"; then
    rm -f "$tmp"
    return 0
  fi
  mkdir -p "$(dirname "$target")"
  if [[ -f "$target" ]] && ! grep -qF "$MARKER" "$target"; then
    cp -p "$target" "${target}.before-mlship"
    log "kept the previous $target as ${target}.before-mlship"
  fi
  install -m 0644 "$tmp" "$target"
  rm -f "$tmp"
  log "wrote $target"
}

write_config() {
  local nofile nproc
  nofile=$(ulimit -Hn)
  [[ "$nofile" == unlimited ]] && nofile=1048576
  nproc=$(ulimit -Hu)
  if [[ "$nproc" == unlimited ]] || ((nproc > 32768)); then nproc=32768; fi
  write_if_changed "$CONTAINERS_CONF" <<EOF
$MARKER
# runc: crun refuses cgroups v1 hybrid mode; cgroupfs and file events: there is no systemd.
# ulimits at most the hard limits of this machine, or every run fails in setrlimit.
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  write_if_changed "$REGISTRIES_CONF" <<EOF
$MARKER
# the loopback registry speaks plain http
[[registry]]
location = "${REGISTRY_ADDR}"
insecure = true

[[registry]]
location = "localhost:${REGISTRY_ADDR##*:}"
insecure = true

# a second, private registry the deploy tests start and stop themselves
[[registry]]
location = "127.0.0.1:5001"
insecure = true
EOF
}

# --- processes ---------------------------------------------------------------------------------------

# Start a detached process (own session, survives this shell), recording its PID as $STATE/$1.pid.
start_detached() {
  local name=$1
  shift
  setsid "$@" >"$STATE/${name}.log" 2>&1 </dev/null 9>&- &
  echo $! >"$STATE/${name}.pid"
}

wait_until() {
  local check=$1 tries=$2
  while ((tries-- > 0)); do
    "$check" && return 0
    sleep 0.1
  done
  return 1
}

start_engine() {
  engine_answers && return 0
  mkdir -p "$(dirname "$SOCKET")"
  rm -f "$SOCKET"
  log "starting podman system service on $SOCKET"
  start_detached podman podman system service --time=0 "$DOCKER_HOST_VALUE"
  wait_until engine_answers 150 || die "podman did not answer on $SOCKET; see $STATE/podman.log"
  if [[ -n "${SUDO_UID:-}" ]]; then
    chown "${SUDO_UID}:${SUDO_GID:-$SUDO_UID}" "$(dirname "$SOCKET")" "$SOCKET"
  fi
}

start_registry() {
  registry_answers && return 0
  mkdir -p "$STATE/registry"
  cat >"$STATE/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: ${STATE}/registry
  delete:
    enabled: true
http:
  addr: ${REGISTRY_ADDR}
EOF
  log "starting docker-registry on $REGISTRY_ADDR (storage $STATE/registry)"
  start_detached registry docker-registry serve "$STATE/registry.yml"
  wait_until registry_answers 100 || die "the registry did not answer; see $STATE/registry.log"
}

# The host's own Debian mirror (it may be the only one reachable), else deb.debian.org.
debian_mirror() {
  local mirror="${MLSHIP_DEBIAN_MIRROR:-}"
  if [[ -z "$mirror" ]] && grep -qx 'ID=debian' /etc/os-release 2>/dev/null; then
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
      mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    if [[ -z "$mirror" && -f /etc/apt/sources.list ]]; then
      mirror=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
    fi
  fi
  echo "${mirror:-http://deb.debian.org/debian}"
}

build_base_image() {
  base_image_exists && return 0
  local rootfs started=$SECONDS
  rootfs=$(mktemp -d "$STATE/rootfs.XXXXXX")
  mkdir -p "$STATE/debootstrap-cache"
  log "building $BASE_IMAGE with debootstrap (about a minute)"
  if ! debootstrap --variant=minbase --cache-dir="$STATE/debootstrap-cache" \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$rootfs" "$(debian_mirror)" >"$STATE/debootstrap.log" 2>&1; then
    rm -rf "$rootfs"
    die "debootstrap failed; see $STATE/debootstrap.log"
  fi
  # HTTPS from inside builds passes a re-signing proxy: trust the host's extra CAs in the image too.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  fi
  chroot "$rootfs" update-ca-certificates >>"$STATE/debootstrap.log" 2>&1
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
  tar --numeric-owner -C "$rootfs" -c . | podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/usr/bin/python3"]' \
    - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  log "built $BASE_IMAGE in $((SECONDS - started)) s"
}

# Stop the process recorded in $STATE/$1.pid if it is still the one we started (command line matches $2).
stop_recorded() {
  local name=$1 expect=$2 pidfile="$STATE/$1.pid" pid
  [[ -f "$pidfile" ]] || return 0
  pid=$(<"$pidfile")
  if [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$expect"; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local tries=50
    while ((tries-- > 0)) && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# --- commands ----------------------------------------------------------------------------------------

cmd_up() {
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock 9
  install_packages
  write_config
  start_engine
  start_registry
  build_base_image
  log "engine $SOCKET, registry $REGISTRY_ADDR and $BASE_IMAGE are up"
  print_env
}

cmd_down() {
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock 9
  if command -v podman >/dev/null 2>&1; then
    podman rm -af -t 0 >/dev/null 2>&1 || true
  fi
  if command -v buildah >/dev/null 2>&1; then
    buildah rm --all >/dev/null 2>&1 || true
  fi
  stop_recorded registry "docker-registry"
  stop_recorded podman "podman system service"
  log "down (the base image and the registry's storage in $STATE are kept)"
}

cmd_status() {
  local ok=0
  if engine_answers; then echo "engine:     answers on $DOCKER_HOST_VALUE"; else echo "engine:     not answering on $DOCKER_HOST_VALUE"; ok=1; fi
  if registry_answers; then echo "registry:   answers on http://$REGISTRY_ADDR/v2/"; else echo "registry:   not answering on http://$REGISTRY_ADDR/v2/"; ok=1; fi
  if base_image_exists; then echo "base image: $BASE_IMAGE present"; else echo "base image: $BASE_IMAGE missing"; ok=1; fi
  return "$ok"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) print_env ;;
  *)
    echo "usage: $0 up|down|status|env" >&2
    exit 2
    ;;
esac
