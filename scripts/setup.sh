#!/usr/bin/env bash
# Installs every Debian 12 package that the build, the tests, the benchmarks and the demo
# need. Idempotent: when everything is already installed it only checks and exits.
# Runs as root; otherwise through sudo when sudo exists.
#
# Usage: scripts/setup.sh [--print]   (--print: list the packages and exit)
set -euo pipefail

packages=(
  # Toolchain and build.
  build-essential cmake ninja-build pkg-config git clang-format
  # Libraries (headers + CMake/pkg-config files).
  librdkafka-dev librocksdb-dev libeigen3-dev libboost-dev libboost-system-dev
  nlohmann-json3-dev libhnswlib-dev prometheus-cpp-dev libspdlog-dev libcli11-dev
  # Tests and benchmarks.
  libbenchmark-dev libgtest-dev libgmock-dev wrk kcat
  # The local real Kafka broker (scripts/kafka-local.sh): Java runtime + Maven for its jars.
  default-jdk-headless maven
  # Scripts and downloads.
  python3 curl ca-certificates
)

if [[ "${1:-}" == "--print" ]]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

log() { echo "setup: $*"; }

# Packages not installed (dpkg status "install ok installed").
missing_packages() {
  local pkg status
  for pkg in "${packages[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null || true)"
    [[ "${status}" == "install ok installed" ]] || echo "${pkg}"
  done
}

command -v dpkg-query >/dev/null || {
  echo "setup: dpkg-query not found: this script supports Debian 12 (bookworm) only" >&2
  exit 1
}

mapfile -t missing < <(missing_packages)
if ((${#missing[@]} == 0)); then
  log "all ${#packages[@]} packages already installed; nothing to do"
  exit 0
fi

sudo_cmd=()
if ((EUID != 0)); then
  if command -v sudo >/dev/null; then
    sudo_cmd=(sudo)
  else
    echo "setup: must run as root (or have sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
log "missing: ${missing[*]}"
log "apt-get update"
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
log "apt-get install -y --no-install-recommends ${missing[*]}"
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${missing[@]}"

mapfile -t still_missing < <(missing_packages)
if ((${#still_missing[@]} != 0)); then
  echo "setup: still missing after install: ${still_missing[*]}" >&2
  exit 1
fi
log "done: all ${#packages[@]} packages installed"
