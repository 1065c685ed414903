#!/usr/bin/env bash
# The performance suite in one command: builds the benchmark targets (Release), runs every
# benchmark, then writes bench/RESULTS.md and the plots in bench/plots/ (bench/report.py).
#
#   bash bench/run_all.sh [--quick] [--install-ann-libs] [--report-only]
#
#   (default)           full mode, the issue's scales: learner 100k users x 20k items (all
#                       variants), start-to-ready at 1M users x d=64, ingest of a 1M-event backlog
#                       beside kcat, HTTP at 100k users x 20k items under wrk at 1..32
#                       connections while ingesting 10k events/s, ANN at 1M x d=64. About 40 min
#                       to 1 h on a 2-core machine (mostly three 1M-vector HNSW builds).
#   --quick             small sizes and short durations (a few minutes), to test the suite
#                       itself; the figures are not comparable with the targets
#   --install-ann-libs  create ANN_VENV (python3 -m venv) with numpy, faiss-cpu and hnswlib from
#                       PyPI, for the faiss/hnswlib comparison (once; reused afterwards)
#   --report-only       run no benchmark: regenerate the report from OUT_DIR
#
# Every step writes its console log (<step>.log), its exact command (<step>.cmd), its peak RSS
# (<step>.time, /usr/bin/time -v) and, for Google Benchmark, JSON (<step>.json) into OUT_DIR.
# A failing step stops the suite with a non-zero exit (the outputs so far stay in OUT_DIR).
#
# Environment:
#   BUILD_DIR          build tree, configured Release with benchmarks (default build-bench)
#   BUILD_JOBS         ninja parallelism (default: nproc)
#   OUT_DIR            raw outputs (default bench/out, git-ignored)
#   RESULTS            the generated report (default bench/RESULTS.md)
#   PLOTS_DIR          the generated PNGs (default bench/plots)
#   STEPS              steps to run, a subset of "learner storage ingest http ann" (default all)
#   PIN_CPU            core for single-threaded benchmarks, taskset -c (default 1; empty: none)
#   BENCH_KAFKA_STATE  state dir of the Kafka broker started here (default <BUILD_DIR>/kafka-bench)
#   REPORT_PYTHON      python with matplotlib for bench/report.py (default /usr/bin/python3;
#                      Debian's python3-matplotlib is installed when missing)
#   ANN_VENV           venv for faiss/hnswlib (default ~/.cache/simstream/ann-venv)
#   ANN_PYTHON         python with numpy, faiss and hnswlib for bench/ann_compare.py (default: the
#                      first of ANN_VENV/bin/python, python3 that imports them; none: skipped)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo_root
readonly self="${repo_root}/bench/run_all.sh"
cd "${repo_root}"

usage() {
  sed -n '2,36s/^# \{0,1\}//p' "${self}" >&2
  exit "${1:-2}"
}

mode="full"
install_ann_libs=0
report_only=0
while (($# > 0)); do
  case "$1" in
    --quick) mode="quick" ;;
    --full) mode="full" ;;
    --install-ann-libs) install_ann_libs=1 ;;
    --report-only) report_only=1 ;;
    -h | --help) usage 0 ;;
    *)
      echo "run_all.sh: unknown argument '$1'" >&2
      usage
      ;;
  esac
  shift
done

build_dir="${BUILD_DIR:-build-bench}"
build_dir="${build_dir%/}"
out_dir="${OUT_DIR:-bench/out}"
out_dir="${out_dir%/}"
results="${RESULTS:-bench/RESULTS.md}"
plots_dir="${PLOTS_DIR:-bench/plots}"
steps="${STEPS:-learner storage ingest http ann}"
pin_cpu="${PIN_CPU-1}"
build_abs="${build_dir}"
[[ "${build_abs}" == /* ]] || build_abs="${repo_root}/${build_abs}"
kafka_state="${BENCH_KAFKA_STATE:-${build_abs}/kafka-bench}"
report_python="${REPORT_PYTHON:-/usr/bin/python3}"
ann_venv="${ANN_VENV:-${HOME:-/root}/.cache/simstream/ann-venv}"
readonly build_dir build_abs out_dir results plots_dir steps pin_cpu kafka_state report_python ann_venv

# Sizes per mode. Full: the issue's scales; quick: a smoke test of the suite.
if [[ "${mode}" == "full" ]]; then
  learner_filter="BM_Learn"
  storage_users=1000000
  ingest_events=1000000
  ingest_samples=200
  http_users=100000
  http_items=20000
  http_events=2000000
  http_duration="20s"
  http_levels="1 2 4 8 16 32"
  http_rate=10000
  ann_n=1000000
else
  learner_filter="BM_Learn/hybrid/bpr/d64"
  storage_users=20000
  ingest_events=250000 # ingest_vs_kcat.sh generates 50k users x >= 5 events
  ingest_samples=20
  http_users=20000
  http_items=5000
  http_events=200000
  http_duration="3s"
  http_levels="1 4 16"
  http_rate=10000
  ann_n=20000
fi

log() { echo "[$(date '+%Y-%m-%d %H:%M:%S')] $*"; }
die() {
  log "run_all.sh: ERROR: $*" >&2
  exit 1
}

has_step() { [[ " ${steps} " == *" $1 "* ]]; }

# taskset prefix for single-threaded benchmarks (none on a 1-core machine or with PIN_CPU=).
pin=()
if [[ -n "${pin_cpu}" ]] && command -v taskset >/dev/null && (($(nproc) > pin_cpu)); then
  pin=(taskset -c "${pin_cpu}")
fi

kafka_started=0
stop_kafka() {
  if ((kafka_started)); then
    log "stopping the Kafka broker (state ${kafka_state})"
    KAFKA_LOCAL_STATE="${kafka_state}" scripts/kafka-local.sh stop || true
    kafka_started=0
  fi
}
trap stop_kafka EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- tools ----------------------------------------------------------------------------------

# bench/report.py needs matplotlib; Debian's package for /usr/bin/python3.
ensure_report_python() {
  if "${report_python}" -c 'import matplotlib' 2>/dev/null; then
    return 0
  fi
  [[ "${report_python}" == /usr/bin/python3 ]] ||
    die "${report_python} cannot import matplotlib (unset REPORT_PYTHON to use Debian's python3-matplotlib)"
  command -v apt-get >/dev/null || die "/usr/bin/python3 has no matplotlib and apt-get is missing"
  local sudo_cmd=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || die "installing python3-matplotlib needs root or sudo"
    sudo_cmd=(sudo)
  fi
  log "installing Debian's python3-matplotlib for bench/report.py"
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends python3-matplotlib ||
    {
      "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
          apt-get install -y -q --no-install-recommends python3-matplotlib
    } || die "could not install python3-matplotlib"
  "${report_python}" -c 'import matplotlib' || die "python3-matplotlib installed but not importable"
}

# --install-ann-libs: a venv of its own, so pip's numpy never shadows Debian's (matplotlib).
install_ann_libs_venv() {
  if [[ -x "${ann_venv}/bin/python" ]] &&
    "${ann_venv}/bin/python" -c 'import numpy, faiss, hnswlib' 2>/dev/null; then
    log "faiss and hnswlib already in ${ann_venv}"
    return 0
  fi
  log "creating ${ann_venv} with numpy, faiss-cpu and hnswlib (PyPI)"
  python3 -m venv "${ann_venv}" || die "python3 -m venv failed (on Debian's python: apt-get install python3-venv)"
  "${ann_venv}/bin/python" -m pip install -q numpy faiss-cpu hnswlib || die "pip install failed"
}

# Prints the python that imports numpy, faiss and hnswlib, or fails.
find_ann_python() {
  local candidates=() py
  if [[ -n "${ANN_PYTHON:-}" ]]; then
    candidates=("${ANN_PYTHON}")
  else
    candidates=("${ann_venv}/bin/python" python3)
  fi
  for py in "${candidates[@]}"; do
    if "${py}" -c 'import numpy, faiss, hnswlib' 2>/dev/null; then
      echo "${py}"
      return 0
    fi
  done
  return 1
}

# ---- steps ----------------------------------------------------------------------------------

# Records key=value facts of the run for the report (replacing an earlier value of the key).
meta() {
  local file="${out_dir}/run.env" key="$1" value="$2"
  touch "${file}"
  grep -v "^${key}=" "${file}" >"${file}.tmp" || true
  printf '%s=%s\n' "${key}" "${value}" >>"${file}.tmp"
  mv "${file}.tmp" "${file}"
}

# Peak RSS of a command (and its children) in /usr/bin/time -v's format, written to $1.
with_peak_rss() {
  local time_file="$1"
  shift
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -v -o "${time_file}" "$@"
  else
    python3 - "${time_file}" "$@" <<'PY'
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write("Maximum resident set size (kbytes): %d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    f.write("Exit status: %d\n" % rc)
sys.exit(rc)
PY
  fi
}

# run_step NAME COMMAND...: runs COMMAND from the repository root, logging to OUT_DIR/NAME.log,
# recording the command, its wall time and its peak RSS; any failure stops the suite.
run_step() {
  local name="$1"
  shift
  rm -rf "${out_dir:?}/${name}".{log,cmd,time,json} "${out_dir:?}/${name}"
  printf '%q ' "$@" | sed 's/ $//' >"${out_dir}/${name}.cmd"
  echo >>"${out_dir}/${name}.cmd"
  log "== ${name}: $(cat "${out_dir}/${name}.cmd")"
  local started=${SECONDS} status=0
  local load commit
  load="$(cut -d' ' -f1-3 /proc/loadavg)"
  commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if [[ -n "$(GIT_OPTIONAL_LOCKS=0 git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    commit="${commit}+changes"
  fi
  with_peak_rss "${out_dir}/${name}.time" "$@" 2>&1 | tee "${out_dir}/${name}.log" || status=$?
  local took=$((SECONDS - started))
  grep -v "^${name}	" "${out_dir}/steps.tsv" >"${out_dir}/steps.tsv.tmp" 2>/dev/null || true
  # Per step, so a partial re-run (STEPS=...) keeps each figure's own provenance.
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "${name}" "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "${took}" \
    "${status}" "${commit}" "${load}" >>"${out_dir}/steps.tsv.tmp"
  mv "${out_dir}/steps.tsv.tmp" "${out_dir}/steps.tsv"
  if ((status != 0)); then
    log "== ${name} FAILED (exit ${status}) after ${took}s; last lines of ${out_dir}/${name}.log:" >&2
    tail -n 20 "${out_dir}/${name}.log" >&2 || true
    die "benchmark step '${name}' failed"
  fi
  log "== ${name}: done in ${took}s"
}

step_learner() {
  run_step learner "${pin[@]}" "${build_dir}/bench/learner_bench" \
    "--benchmark_filter=${learner_filter}" \
    "--benchmark_out=${out_dir}/learner.json" --benchmark_out_format=json
}

step_storage() {
  # RocksDB flushes and compacts on background threads: not pinned.
  run_step storage_flush "${build_dir}/bench/storage_bench" \
    --benchmark_filter=BM_FlushPer100kEvents --benchmark_counters_tabular=true \
    "--benchmark_out=${out_dir}/storage_flush.json" --benchmark_out_format=json
  run_step storage_start env "SIMSTREAM_BENCH_USERS=${storage_users}" \
    "${build_dir}/bench/storage_bench" --benchmark_filter=BM_StartToReady \
    --benchmark_counters_tabular=true \
    "--benchmark_out=${out_dir}/storage_start.json" --benchmark_out_format=json
}

step_ingest() {
  log "starting a Kafka broker (state ${kafka_state})"
  local brokers
  kafka_started=1
  brokers="$(KAFKA_LOCAL_STATE="${kafka_state}" scripts/kafka-local.sh start | tail -n 1)"
  [[ -n "${brokers}" ]] || die "scripts/kafka-local.sh start printed no address"
  meta ingest_brokers "${brokers}"
  run_step ingest env "SIMSTREAM_BIN=${build_dir}/app/simstream" "EVENTS=${ingest_events}" \
    "SAMPLES=${ingest_samples}" bash bench/ingest_vs_kcat.sh "${brokers}"
  stop_kafka
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

step_http() {
  meta http_users "${http_users}"
  meta http_items "${http_items}"
  meta http_events "${http_events}"
  meta http_rate "${http_rate}"
  meta http_levels "${http_levels}"
  meta http_duration "${http_duration}"
  run_step http env "EVENTS=${http_events}" "USERS=${http_users}" "ITEMS=${http_items}" \
    "DURATION=${http_duration}" "CONNECTIONS=${http_levels}" "RATE=${http_rate}" \
    "PORT=$(free_port)" "OUT_DIR=${out_dir}/http" \
    bash bench/http_load.sh "${build_dir}/bench/http_load_server"
}

step_ann() {
  local dump="${out_dir}/ann-dump"
  rm -rf "${dump}" "${out_dir}/ann_compare".{log,cmd,time,skipped,versions}
  mkdir -p "${dump}"
  run_step ann env "ANN_BENCH_N=${ann_n}" "ANN_BENCH_DUMP=${dump}" "${pin[@]}" \
    "${build_dir}/bench/ann_bench" '--benchmark_filter=BM_Ann|BM_Exact' \
    --benchmark_counters_tabular=true \
    "--benchmark_out=${out_dir}/ann.json" --benchmark_out_format=json
  local py
  if py="$(find_ann_python)"; then
    "${py}" -c 'import faiss, importlib.metadata as m; print("faiss-cpu", faiss.__version__ + ", hnswlib", m.version("hnswlib"))' \
      >"${out_dir}/ann_compare.versions" 2>/dev/null || echo "unknown versions" >"${out_dir}/ann_compare.versions"
    run_step ann_compare "${pin[@]}" "${py}" bench/ann_compare.py "${dump}" \
      --json "${out_dir}/ann_compare.json"
  else
    local why="no python with numpy, faiss and hnswlib (tried ${ANN_PYTHON:-${ann_venv}/bin/python and python3}); run with --install-ann-libs or set ANN_PYTHON"
    log "ann_compare SKIPPED: ${why}"
    echo "${why}" >"${out_dir}/ann_compare.skipped"
  fi
  rm -rf "${dump}" # 256 MiB of vectors at 1M
}

# ---- main -----------------------------------------------------------------------------------

mkdir -p "${out_dir}"
ensure_report_python

if ((!report_only)); then
  for s in ${steps}; do
    case "${s}" in
      learner | storage | ingest | http | ann) ;;
      *) die "unknown step '${s}' in STEPS (learner storage ingest http ann)" ;;
    esac
  done
  for tool in cmake ninja; do
    command -v "${tool}" >/dev/null || die "${tool} not found (run scripts/setup.sh)"
  done
  if has_step ingest; then
    command -v kcat >/dev/null || die "kcat not found (run scripts/setup.sh)"
  fi
  if has_step http; then
    command -v wrk >/dev/null || die "wrk not found (run scripts/setup.sh)"
  fi
  if ((install_ann_libs)); then
    install_ann_libs_venv
  fi

  log "performance suite, ${mode} mode: steps '${steps}', build ${build_dir}, outputs ${out_dir}"
  meta mode "${mode}"
  meta build_dir "${build_dir}"
  meta steps "${steps}"
  meta started "$(date -u '+%Y-%m-%dT%H:%M:%SZ')"
  meta loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
  meta finished "(not finished)"
  meta loadavg_end "?"
  meta git_commit "$(git rev-parse HEAD 2>/dev/null || echo unknown)"
  meta git_changes "$(GIT_OPTIONAL_LOCKS=0 git status --porcelain --untracked-files=no 2>/dev/null | wc -l)"
  meta pin "${pin[*]:-none}"
  meta storage_users "${storage_users}"
  meta ingest_events "${ingest_events}"
  meta ann_n "${ann_n}"

  log "configure and build ${build_dir} (Release, benchmarks)"
  if [[ ! -f "${build_dir}/CMakeCache.txt" ]]; then
    cmake -S . -B "${build_dir}" -G Ninja -DSIMSTREAM_BUILD_BENCH=ON -DCMAKE_BUILD_TYPE=Release
  fi
  build_type="$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "${build_dir}/CMakeCache.txt")"
  [[ "${build_type}" == "Release" ]] ||
    die "${build_dir} is a '${build_type}' build; benchmarks need Release (use another BUILD_DIR)"
  grep -q '^SIMSTREAM_BUILD_BENCH:BOOL=ON' "${build_dir}/CMakeCache.txt" ||
    die "${build_dir} was configured without -DSIMSTREAM_BUILD_BENCH=ON"
  ninja -C "${build_dir}" -j"${BUILD_JOBS:-$(nproc)}" learner_bench storage_bench ann_bench \
    http_load_server simstream

  for s in ${steps}; do
    "step_${s}"
  done
  meta finished "$(date -u '+%Y-%m-%dT%H:%M:%SZ')"
  meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
fi

log "writing ${results} and ${plots_dir}/*.png"
"${report_python}" bench/report.py --out-dir "${out_dir}" --results "${results}" \
  --plots-dir "${plots_dir}"
log "done: ${results}"
