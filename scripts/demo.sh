#!/usr/bin/env bash
# The main job: builds a Release binary and runs `simstream demo`, the daemon on an embedded
# Kafka broker (librdkafka's mock cluster) fed a paced synthetic stream. It prints the URLs
# and curl calls to try. Run scripts/setup.sh once first. Extra arguments go to `demo`
# (e.g. --input FILE, --rate N); Ctrl-C stops it cleanly.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"
build_dir="${SIMSTREAM_DEMO_BUILD_DIR:-${repo_root}/build-release}"
echo "=== building simstream (Release) in ${build_dir#"${repo_root}"/}"
cmake -S . -B "${build_dir}" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSIMSTREAM_BUILD_TESTS=OFF \
  -DSIMSTREAM_BUILD_BENCH=OFF >/dev/null
cmake --build "${build_dir}" -j"$(nproc)" --target simstream
echo "=== simstream demo $*"
exec "${build_dir}/app/simstream" demo "$@"
