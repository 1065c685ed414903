#!/usr/bin/env bash
# Builds simstream and runs the whole test suite (unit + integration against a real
# Kafka broker). Run scripts/setup.sh once first to install the dependencies.
#
# Usage: scripts/test.sh [--sanitize=asan|tsan] [--no-kafka] [-- <extra ctest args>]
#
#   (default)          build/ (RelWithDebInfo, benchmarks compiled too), real Kafka broker
#   --sanitize=asan    build-asan/ with ASan+UBSan (-DSIMSTREAM_ASAN=ON), no benchmarks
#   --sanitize=tsan    build-tsan/ with TSan (-DSIMSTREAM_TSAN=ON), no benchmarks
#   --no-kafka         do not start a broker; tests that need one skip themselves
#   -- ARGS            passed to ctest, e.g. `-- -L unit` or `-- -R Kafka`
#
# Environment:
#   SIMSTREAM_JOBS               build parallelism (default: nproc)
#   SIMSTREAM_BUILD_DIR          build directory (default: build, build-asan, build-tsan)
#   SIMSTREAM_BUILD_TARGETS      build only these targets (space-separated); pair it with
#                                `-- -R REGEX` so ctest runs only the tests they hold
#   SIMSTREAM_TEST_KAFKA_BROKERS if already set, that broker is used and none is started
#   KAFKA_LOCAL_STATE        state dir of the broker started here
#                                (default: <build dir>/kafka-local, so a broker you
#                                started by hand with scripts/kafka-local.sh is left alone)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo_root
readonly self="${repo_root}/scripts/test.sh"
cd "${repo_root}"

usage() {
  sed -n '2,21s/^# \{0,1\}//p' "${self}" >&2
  exit "${1:-2}"
}

sanitize=""
use_kafka=1
ctest_extra=()
while (($# > 0)); do
  case "$1" in
    --sanitize=asan | --sanitize=tsan) sanitize="${1#--sanitize=}" ;;
    --sanitize=*)
      echo "test.sh: unknown sanitizer '${1#--sanitize=}' (asan or tsan)" >&2
      exit 2
      ;;
    --no-kafka) use_kafka=0 ;;
    -h | --help) usage 0 ;;
    --)
      shift
      ctest_extra=("$@")
      break
      ;;
    *)
      echo "test.sh: unknown argument '$1'" >&2
      usage
      ;;
  esac
  shift
done

section() { echo "=== [$(date -u +%H:%M:%S)] $* ==="; }

cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIMSTREAM_BUILD_TESTS=ON)
case "${sanitize}" in
  "")
    build_dir="${repo_root}/build"
    cmake_args+=(-DSIMSTREAM_BUILD_BENCH=ON -DSIMSTREAM_ASAN=OFF -DSIMSTREAM_TSAN=OFF)
    ;;
  asan)
    build_dir="${repo_root}/build-asan"
    cmake_args+=(-DSIMSTREAM_BUILD_BENCH=OFF -DSIMSTREAM_ASAN=ON -DSIMSTREAM_TSAN=OFF)
    # Leaks count as failures; UBSan findings abort with a stack trace.
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    ;;
  tsan)
    build_dir="${repo_root}/build-tsan"
    cmake_args+=(-DSIMSTREAM_BUILD_BENCH=OFF -DSIMSTREAM_ASAN=OFF -DSIMSTREAM_TSAN=ON)
    # Lock-order (deadlock) reports are off: hnswlib 0.6.2 takes its per-node mutexes in
    # data-dependent order, and after an index is dropped and rebuilt TSan pairs recycled mutex
    # addresses into false cycles without stacks. simstream never calls one hnswlib index from
    # two threads at once (writes hold the engine's exclusive lock; a background build writes an
    # index no other thread sees). Data races are still detected and fail the run.
    # tests/tsan.supp: what TSan cannot see inside the uninstrumented librdkafka and RocksDB.
    export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:detect_deadlocks=0}:suppressions=${repo_root}/tests/tsan.supp"
    ;;
esac
build_dir="${SIMSTREAM_BUILD_DIR:-${build_dir}}"
[[ "${build_dir}" == /* ]] || build_dir="${repo_root}/${build_dir}"
jobs="${SIMSTREAM_JOBS:-$(nproc)}"

# GCC 12's TSan runtime cannot map its shadow memory when the kernel randomizes mmap
# with more than 28 bits; then test binaries run without ASLR (the build runs them too,
# for gtest_discover_tests).
no_aslr=()
if [[ "${sanitize}" == "tsan" ]] &&
  (($(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0) > 28)) &&
  setarch "$(uname -m)" -R true 2>/dev/null; then
  no_aslr=(setarch "$(uname -m)" -R)
fi

section "configure ${build_dir#"${repo_root}"/} (${sanitize:-no sanitizer})"
cmake -S "${repo_root}" -B "${build_dir}" "${cmake_args[@]}"

section "build -j${jobs} ${SIMSTREAM_BUILD_TARGETS:-}"
build_targets=()
if [[ -n "${SIMSTREAM_BUILD_TARGETS:-}" ]]; then
  read -r -a build_targets <<<"${SIMSTREAM_BUILD_TARGETS}"
  build_targets=(--target "${build_targets[@]}")
fi
"${no_aslr[@]}" cmake --build "${build_dir}" -j"${jobs}" "${build_targets[@]}"

started_kafka=0
stop_kafka() {
  if ((started_kafka)); then
    section "stop Kafka"
    "${repo_root}/scripts/kafka-local.sh" stop || true
  fi
}
trap stop_kafka EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ((use_kafka)); then
  if [[ -n "${SIMSTREAM_TEST_KAFKA_BROKERS:-}" ]]; then
    section "using Kafka at ${SIMSTREAM_TEST_KAFKA_BROKERS} (SIMSTREAM_TEST_KAFKA_BROKERS)"
  else
    export KAFKA_LOCAL_STATE="${KAFKA_LOCAL_STATE:-${build_dir}/kafka-local}"
    section "start Kafka (state in ${KAFKA_LOCAL_STATE})"
    started_kafka=1
    brokers="$("${repo_root}/scripts/kafka-local.sh" start | tail -n 1)"
    [[ -n "${brokers}" ]] || {
      echo "test.sh: kafka-local.sh start printed no address" >&2
      exit 1
    }
    export SIMSTREAM_TEST_KAFKA_BROKERS="${brokers}"
    echo "SIMSTREAM_TEST_KAFKA_BROKERS=${SIMSTREAM_TEST_KAFKA_BROKERS}"
  fi
else
  # Make sure an inherited value does not make tests reach for a broker we did not start.
  unset SIMSTREAM_TEST_KAFKA_BROKERS
  section "no Kafka (--no-kafka): tests that need a broker skip"
fi

ctest_cmd=("${no_aslr[@]}" ctest --test-dir "${build_dir}" --output-on-failure -j2
  --timeout 900 --no-tests=error "${ctest_extra[@]}")

section "ctest ${sanitize:+(${sanitize}) }in ${build_dir#"${repo_root}"/}"
status=0
"${ctest_cmd[@]}" || status=$?
if ((status != 0)); then
  section "FAILED: ctest exited ${status}"
  exit "${status}"
fi
section "all tests passed"
