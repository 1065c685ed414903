#!/usr/bin/env bash
# HTTP load benchmark of the issue: recommendations (k=10) and similar users for random users of
# a 100k users x 20k items, d=64 engine, while a writer applies ~10k events/s.
#
#   bench/http_load.sh [path/to/http_load_server] [extra server options...]
# Environment: EVENTS (training events, default 2000000), THREADS (server I/O threads, 2),
# DURATION (wrk, 20s), CONNECTIONS (16; a space-separated list such as "1 4 16" runs wrk at
# each level against the same server, for latency against load), PORT (18080), RATE (ingest
# events/s, 10000), USERS (100000), ITEMS (20000), OUT_DIR (if set, each wrk report is also
# written to OUT_DIR/wrk-<route>-c<connections>.txt).
#
# Build: cmake -S . -B build-bench -G Ninja -DSIMSTREAM_BUILD_BENCH=ON
#        ninja -C build-bench -j1 http_load_server
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
server="${1:-$here/../build-bench/bench/http_load_server}"
shift || true
EVENTS="${EVENTS:-2000000}"
THREADS="${THREADS:-2}"
DURATION="${DURATION:-20s}"
CONNECTIONS="${CONNECTIONS:-16}"
PORT="${PORT:-18080}"
RATE="${RATE:-10000}"
USERS="${USERS:-100000}"
ITEMS="${ITEMS:-20000}"
OUT_DIR="${OUT_DIR:-}"
command -v wrk >/dev/null || { echo "wrk is not installed" >&2; exit 1; }
[ -x "$server" ] || { echo "no server binary at $server" >&2; exit 1; }
[ -z "$OUT_DIR" ] || mkdir -p "$OUT_DIR"

out="$(mktemp)"
"$server" --users "$USERS" --items "$ITEMS" --events "$EVENTS" --dim 64 --threads "$THREADS" \
  --port "$PORT" --ingest-rate "$RATE" "$@" >"$out" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$out"' EXIT
until grep -q '^ready' "$out"; do
  kill -0 "$pid" 2>/dev/null || { echo "server exited" >&2; exit 1; }
  sleep 1
done
echo "== server: $USERS users, $ITEMS items, d=64, $EVENTS training events, $THREADS I/O threads, ingest $RATE events/s"
for connections in $CONNECTIONS; do
  for mode in recommend similar; do
    echo "== $mode (k=10), wrk -t1 -c$connections -d$DURATION"
    report="/dev/null"
    [ -z "$OUT_DIR" ] || report="$OUT_DIR/wrk-$mode-c$connections.txt"
    MODE="$mode" USERS="$USERS" wrk -t1 -c"$connections" -d"$DURATION" --latency \
      -s "$here/wrk_random_user.lua" "http://127.0.0.1:$PORT" | tee "$report"
  done
done
kill -INT "$pid"
wait "$pid" || true
