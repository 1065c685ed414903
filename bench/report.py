#!/usr/bin/env python3
"""Writes bench/RESULTS.md and the plots from the outputs of bench/run_all.sh.

    /usr/bin/python3 bench/report.py [--out-dir bench/out] [--results bench/RESULTS.md]
                                     [--plots-dir bench/plots]

Reads, from the output directory: run.env (mode, sizes, dates, load averages, git commit),
steps.tsv (wall time and exit status of each step), <step>.cmd (the exact command),
<step>.time (/usr/bin/time -v: peak RSS), <step>.json (Google Benchmark) and <step>.log (the
console output of the shell-script benchmarks), http/wrk-<route>-c<N>.txt (one wrk report per
load level). Writes the Markdown report with the machine, the date, each figure with its
command and the issue's target beside it, and two PNGs: latency against load (HTTP) and
recall@10 against queries/s (ANN). Needs matplotlib (Debian's python3-matplotlib for
/usr/bin/python3); uses the Agg backend, no display.
"""
import argparse
import json
import math
import os
import platform
import re
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MIB = 1024.0 * 1024.0

# The targets (issue 6 and the issues it sums up).
LEARNER_TARGET = 300e3  # events/s, default model, one core
START_TARGET_S = 10.0  # start to ready at 1M users x d=64
START_SCALE_USERS = 1_000_000
INGEST_TARGET = 150e3  # events/s, Kafka -> durable state
INGEST_KCAT_SHARE = 0.40
INGEST_SCALE_EVENTS = 1_000_000
VISIBLE_P99_TARGET_MS = 200.0
HTTP_P99_TARGET_MS = 2.0
HTTP_RPS_TARGET = 10e3
HTTP_SCALE = (100_000, 20_000)
ANN_P99_TARGET_US = 3000.0
ANN_RECALL_TARGET = 0.95
ANN_SCALE_N = 1_000_000
ANN_LIB_RATIO_TARGET = 0.8
ANN_RECALL_LEVELS = (0.95, 0.97, 0.98, 0.99, 0.995)  # as bench/ann_compare.py
ROUTES = {"recommend": "recommendations k=10", "similar": "similar users k=10"}


# ---- reading the outputs ------------------------------------------------------------------


def read_text(path):
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def read_json(path):
    text = read_text(path)
    return json.loads(text) if text else None


def read_env(path):
    env = {}
    for line in (read_text(path) or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            env[key.strip()] = value.strip()
    return env


def read_steps(path):
    """name -> {finished, seconds, status[, commit, load]} from steps.tsv."""
    steps = {}
    for line in (read_text(path) or "").splitlines():
        parts = line.split("\t")
        if len(parts) >= 4:
            steps[parts[0]] = {"finished": parts[1], "seconds": int(parts[2]), "status": parts[3]}
        if len(parts) >= 6:
            steps[parts[0]].update(commit=parts[4], load=parts[5])
    return steps


def peak_rss_mib(out, step):
    text = read_text(out / f"{step}.time") or ""
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return int(m.group(1)) / 1024.0 if m else None


def gbench_entries(doc):
    """Google Benchmark entries: the median aggregate where repetitions were run, else the run."""
    by_name = {}
    for b in (doc or {}).get("benchmarks", []):
        name = b.get("run_name", b["name"])
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                by_name[name] = dict(b, repetitions=b.get("repetitions", 0))
        elif b.get("error_occurred"):
            by_name[name] = b
        else:
            by_name.setdefault(name, b)
    return by_name


def short_name(name):
    """A benchmark's name without Google Benchmark's run suffixes."""
    return re.sub(r"/(iterations|repeats):\d+|/real_time|/manual_time", "", name)


def to_seconds(value, unit):
    return value * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


# ---- formatting ----------------------------------------------------------------------------


def fmt(value, digits=0, suffix=""):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}{suffix}"


def fmt_k(value):
    """events/s or req/s as 142k, 1.2k, 950."""
    if value is None:
        return "—"
    if value >= 1e4:
        return f"{value / 1e3:,.0f}k"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def verdict(ok, comparable=True, why=""):
    if ok is None:
        return "—"
    if not comparable:
        return f"not comparable ({why})"
    return "met" if ok else "**not met**"


def command_block(out, step, steps):
    cmd = (read_text(out / f"{step}.cmd") or "").strip()
    info = steps.get(step)
    took = f" — ran {info['seconds']} s, finished {info['finished']}" if info else ""
    if info and "commit" in info:
        took += f", commit `{info['commit']}`, load average {info['load']} at its start"
    lines = [f"Command (from the repository root){took}:", "", "```sh", cmd, "```", ""]
    return lines


def load_note(doc):
    load = (doc or {}).get("context", {}).get("load_avg")
    return f"Load average when it started: {' '.join(f'{x:.2f}' for x in load)}." if load else ""


def not_run(step):
    return [f"_Not run ({step}: no output in this run's directory)._", ""]


# ---- machine -------------------------------------------------------------------------------


def cpu_model():
    for line in (read_text("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def mem_total_gib():
    m = re.search(r"MemTotal:\s+(\d+) kB", read_text("/proc/meminfo") or "")
    return int(m.group(1)) / MIB if m else None


def os_name():
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)', read_text("/etc/os-release") or "", re.M)
    return m.group(1) if m else platform.system()


def cmake_cache(build_dir):
    cache = {}
    for line in (read_text(build_dir / "CMakeCache.txt") or "").splitlines():
        m = re.match(r"^([A-Za-z_0-9]+):[A-Z]+=(.*)$", line)
        if m:
            cache[m.group(1)] = m.group(2)
    return cache


def compiler_version(cache):
    cxx = cache.get("CMAKE_CXX_COMPILER")
    if not cxx:
        return "unknown"
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False)
        return out.stdout.splitlines()[0] if out.stdout else cxx
    except OSError:
        return cxx


def machine_section(env):
    build_dir = REPO / env.get("build_dir", "build-bench")
    cache = cmake_cache(build_dir)
    build_type = cache.get("CMAKE_BUILD_TYPE", "?")
    flags = cache.get(f"CMAKE_CXX_FLAGS_{build_type.upper()}", "")
    arch = cache.get("SIMSTREAM_ARCH", "")
    commit = env.get("git_commit", "unknown")
    changes = env.get("git_changes", "0")
    dirty = f" + {changes} uncommitted change(s) to tracked files" if changes not in ("", "0") else ""
    rows = [
        ("CPU", cpu_model()),
        ("cores", os.cpu_count()),
        ("RAM", fmt(mem_total_gib(), 1, " GiB")),
        ("OS, kernel", f"{os_name()}, {platform.system()} {platform.release()}"),
        ("compiler", compiler_version(cache)),
        ("build", f"`{env.get('build_dir', '?')}`, {build_type}: `{flags} -march={arch or 'default'}`"),
        ("git commit (last run of the suite)", f"`{commit}`{dirty}"),
        ("date (UTC, last run of the suite)", f"{env.get('started', '?')} to {env.get('finished', '?')}"),
        ("steps of that run", f"{env.get('steps', '?')} (each step's own commit and time are "
                              "under its command: a partial re-run keeps the others')"),
        ("load average (1, 5, 15 min)", f"{env.get('loadavg_start', '?')} at start, "
                                        f"{env.get('loadavg_end', '?')} at end"),
        ("single-threaded benchmarks pinned with", f"`{env.get('pin', 'none')}`"),
    ]
    return ["## Machine", ""] + table(["", ""], rows)


# ---- learner -------------------------------------------------------------------------------


def learner_section(out, steps):
    lines = ["## Learner — `bench/learner_bench.cpp`", ""]
    doc = read_json(out / "learner.json")
    if doc is None:
        return lines + not_run("learner")
    lines += [
        "Learn-only `OnlineModel::Observe`, 100k users × 20k items, 1M-event warm-up then 1M "
        "timed events (the same at every mode). events/s from CPU time; the default variant is "
        "the median of 5 repetitions. wall/CPU above ~1.1 means the process waited for a core.",
        "",
    ]
    rows = []
    for name, b in gbench_entries(doc).items():
        rate = b.get("items_per_second")
        is_default = name.startswith("BM_Learn/hybrid/bpr/d64")
        target = f"≥ {fmt_k(LEARNER_TARGET)}" if is_default else ""
        ok = verdict(rate >= LEARNER_TARGET) if is_default and rate else ""
        ratio = b["real_time"] / b["cpu_time"] if b.get("cpu_time") else None
        rows.append((f"`{short_name(name)}`", fmt_k(rate), fmt(ratio, 2), fmt(b.get("model_MB"), 0), target, ok))
    lines += table(["variant", "events/s", "wall/CPU", "model MB", "target", "status"], rows)
    return lines + [load_note(doc), ""] + command_block(out, "learner", steps)


# ---- storage -------------------------------------------------------------------------------


def flush_rows(doc):
    rows = []
    for b in gbench_entries(doc).values():
        rows += [
            ("flush of 100k events (one flush per second at 100k events/s)",
             fmt(to_seconds(b["real_time"], b["time_unit"]) * 1e3, 0, " ms wall")),
            ("flush per event", fmt(b.get("flush_ns_per_event", 0) / 1e3, 2, " µs")),
            ("copy under the engine lock per event (`take`)", fmt(b.get("take_ns_per_event", 0) / 1e3, 2, " µs")),
            ("bytes written per event", fmt(b.get("bytes_per_event"), 0)),
            ("rows / edges per flush", f"{fmt(b.get('rows_per_flush'))} / {fmt(b.get('edges_per_flush'))}"),
        ]
    return rows


def start_rows(doc, rss):
    rows = []
    for b in gbench_entries(doc).values():
        users = int(b.get("users", 0))
        load_s = b.get("load_s")
        comparable = users == START_SCALE_USERS
        status = verdict(load_s is not None and load_s <= START_TARGET_S, comparable,
                         f"{users:,} users, target at 1M")
        rows += [
            (f"start to ready (open + load), {users:,} users × d=64", fmt(load_s, 2, " s"),
             f"≤ {START_TARGET_S:.0f} s at 1M users", status),
            ("bytes on disk per user", fmt(b.get("disk_bytes_per_user"), 0), "", ""),
            ("building the store (untimed setup)", fmt(b.get("build_s"), 1, " s"), "", ""),
            ("peak RSS of the process (build + 2 loads)", fmt(rss, 0, " MiB"), "", ""),
        ]
    return rows


def storage_section(out, steps):
    lines = ["## Storage — `bench/storage_bench.cpp`", ""]
    flush = read_json(out / "storage_flush.json")
    start = read_json(out / "storage_start.json")
    if flush is None and start is None:
        return lines + not_run("storage")
    if flush is not None:
        lines += ["### Flush", ""] + table(["figure", "value"], flush_rows(flush))
        lines += [load_note(flush), ""] + command_block(out, "storage_flush", steps)
    if start is not None:
        lines += ["### Restart: start to ready", ""]
        lines += table(["figure", "value", "target", "status"],
                       start_rows(start, peak_rss_mib(out, "storage_start")))
        lines += [load_note(start), ""] + command_block(out, "storage_start", steps)
    return lines


# ---- Kafka ingestion -----------------------------------------------------------------------


def parse_ingest(text):
    def grab(pattern):
        m = re.search(pattern, text)
        return [float(g) for g in m.groups()] if m else None

    return {
        "produce": grab(r"produce: (\d+) events/s"),
        "kcat": grab(r"kcat: (\d+) msgs/s"),
        "serve": grab(r"simstream: applied in ([\d.]+) s, durable by ([\d.]+) s: (\d+) events/s"),
        "latency": grab(r"p50 ([\d.]+)\s+p90 ([\d.]+)\s+p99 ([\d.]+)\s+max ([\d.]+)"),
    }


def ingest_section(out, env, steps):
    lines = ["## Kafka ingestion beside kcat — `bench/ingest_vs_kcat.sh`", ""]
    text = read_text(out / "ingest.log")
    if text is None:
        return lines + not_run("ingest")
    p = parse_ingest(text)
    events = int(env.get("ingest_events", "0") or 0)
    comparable = events == INGEST_SCALE_EVENTS
    why = f"{events:,}-event backlog, target at 1M"
    lines += [
        f"A backlog of {events:,} generated events (50k users × 20k items) on a real local "
        "Apache Kafka broker (`scripts/kafka-local.sh`), read in the same run by `kcat -C` and "
        "by `simstream serve` into empty durable state (RocksDB); then produce-to-visible "
        "latency, one event at a time through `kcat -P`, polled on `GET /v1/users/<id>`.",
        "",
    ]
    kcat = p["kcat"][0] if p["kcat"] else None
    serve = p["serve"][2] if p["serve"] else None
    share = serve / kcat if serve and kcat else None
    lat = p["latency"]
    rows = [
        ("`simstream produce`", fmt_k(p["produce"][0]) + " events/s" if p["produce"] else "—", "", ""),
        ("`kcat -C` (raw consume)", fmt_k(kcat) + " msgs/s" if kcat else "—", "", ""),
        ("`simstream serve` → durable state", fmt_k(serve) + " events/s" if serve else "—",
         f"≥ {fmt_k(INGEST_TARGET)} events/s",
         verdict(serve is not None and serve >= INGEST_TARGET, comparable, why)),
        ("serve / kcat", fmt(share * 100 if share else None, 0, " %"), f"≥ {INGEST_KCAT_SHARE:.0%}",
         verdict(share is not None and share >= INGEST_KCAT_SHARE, comparable, why)),
        ("produce-to-visible p50 / p90", f"{fmt(lat[0], 1)} / {fmt(lat[1], 1)} ms" if lat else "—", "", ""),
        ("produce-to-visible p99 (max)", f"{fmt(lat[2], 1)} ms ({fmt(lat[3], 1)})" if lat else "—",
         f"≤ {VISIBLE_P99_TARGET_MS:.0f} ms", verdict(lat is not None and lat[2] <= VISIBLE_P99_TARGET_MS)),
        ("peak RSS, largest process of the step", fmt(peak_rss_mib(out, "ingest"), 0, " MiB"), "", ""),
    ]
    lines += table(["figure", "value", "target", "status"], rows)
    lines += ["The latency includes starting a `kcat` process per event.", ""]
    return lines + command_block(out, "ingest", steps)


# ---- HTTP under wrk ------------------------------------------------------------------------


def parse_wrk(text):
    dist = {}
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        dist[int(pct)] = to_seconds(float(value), unit) * 1e3
    lua = re.search(r"p50 ([\d.]+) ms\s+p99 ([\d.]+) ms\s+requests/s (\d+)", text)
    errors = re.search(r"non-2xx or socket errors: (\d+)", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    return {
        "p50": float(lua.group(1)) if lua else dist.get(50),
        "p90": dist.get(90),
        "p99": float(lua.group(2)) if lua else dist.get(99),
        "rps": float(rps.group(1)) if rps else (float(lua.group(3)) if lua else None),
        "errors": int(errors.group(1)) if errors else None,
    }


def http_points(out):
    """[(route, connections, parsed wrk report)] sorted by route and load."""
    points = []
    for path in sorted((out / "http").glob("wrk-*-c*.txt")):
        m = re.match(r"wrk-(\w+)-c(\d+)\.txt", path.name)
        if m:
            points.append((m.group(1), int(m.group(2)), parse_wrk(read_text(path) or "")))
    return sorted(points, key=lambda p: (p[0], p[1]))


def http_server_facts(text):
    facts = {}
    m = re.search(r"trained: (\d+) events, (\d+) users, (\d+) items, d=(\d+) in ([\d.]+) s", text)
    if m:
        facts["trained"] = f"{int(m.group(1)):,} events, {int(m.group(2)):,} users, " \
                           f"{int(m.group(3)):,} items, d={m.group(4)}, in {m.group(5)} s"
    m = re.search(r"indexes: (.*)", text)
    if m:
        facts["indexes"] = m.group(1)
    m = re.search(r"writer applied (\d+) events \((\d+) events/s\)", text)
    if m:
        facts["ingest"] = float(m.group(2))
    return facts


def http_section(out, env, steps, plot_rel):
    lines = ["## HTTP under wrk while ingesting — `bench/http_load.sh`", ""]
    text = read_text(out / "http.log")
    points = http_points(out)
    if text is None or not points:
        return lines + not_run("http")
    facts = http_server_facts(text)
    users, items = int(env.get("http_users", 0) or 0), int(env.get("http_items", 0) or 0)
    comparable = (users, items) == HTTP_SCALE
    why = f"{users:,} × {items:,}, target at 100k × 20k"
    lines += [
        f"`bench/http_load_server`: an engine trained on a generated stream "
        f"({facts.get('trained', '?')}; {facts.get('indexes', '?')}), 2 server I/O threads, "
        f"a writer applying events at {env.get('http_rate', '?')} events/s asked "
        f"(achieved over the whole run: {fmt(facts.get('ingest'), 0)} events/s). wrk `-t1 "
        f"-d{env.get('http_duration', '?')} --latency` with `bench/wrk_random_user.lua` "
        f"(random users, k=10) at each load level (connections), one route at a time. "
        f"wrk, the server and the writer share the machine's cores.",
        "",
    ]
    rows = []
    for route, conns, w in points:
        ok = (w["p99"] is not None and w["rps"] is not None
              and w["p99"] <= HTTP_P99_TARGET_MS and w["rps"] >= HTTP_RPS_TARGET)
        rows.append((ROUTES.get(route, route), conns, fmt(w["p50"], 2), fmt(w["p90"], 2),
                     fmt(w["p99"], 2), fmt(w["rps"], 0), fmt(w["errors"]),
                     verdict(ok, comparable, why)))
    lines += table(["route", "connections", "p50 ms", "p90 ms", "p99 ms", "req/s", "errors",
                    f"p99 ≤ {HTTP_P99_TARGET_MS:g} ms at ≥ {fmt_k(HTTP_RPS_TARGET)} req/s"], rows)
    lines += [f"![latency against load]({plot_rel})", ""]
    return lines + command_block(out, "http", steps)


def plot_latency(points, env, path):
    fig, ax = plt.subplots(figsize=(9, 5.5))
    colours = {"recommend": "tab:blue", "similar": "tab:orange"}
    for route in sorted({p[0] for p in points}):
        pts = [p for p in points if p[0] == route and p[2]["rps"]]
        x = [p[2]["rps"] for p in pts]
        colour = colours.get(route, None)
        ax.plot(x, [p[2]["p50"] for p in pts], "o-", color=colour, label=f"{ROUTES.get(route, route)}: p50")
        ax.plot(x, [p[2]["p99"] for p in pts], "s--", color=colour, label=f"{ROUTES.get(route, route)}: p99")
        for p in pts:
            ax.annotate(f"c{p[1]}", (p[2]["rps"], p[2]["p99"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8, color=colour)
    ax.axhline(HTTP_P99_TARGET_MS, color="grey", linestyle=":", label=f"target p99 {HTTP_P99_TARGET_MS:g} ms")
    ax.axvline(HTTP_RPS_TARGET, color="grey", linestyle="-.", label=f"target {fmt_k(HTTP_RPS_TARGET)} req/s")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("achieved requests/s (wrk, one thread; labels: connections)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(f"HTTP latency against load — {int(env.get('http_users', 0)):,} users × "
                 f"{int(env.get('http_items', 0)):,} items, d=64, ingesting {int(env.get('http_rate', 0)):,} events/s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- ANN -----------------------------------------------------------------------------------


def ann_ours(doc):
    """(build counters, [query points], exact point) from ann_bench's JSON."""
    build, points, exact = None, [], None
    for name, b in gbench_entries(doc).items():
        if name.startswith("BM_AnnBuild"):
            build = b
        elif name.startswith("BM_AnnQuery"):
            m = re.search(r"ef:(\d+)", name)
            points.append({"ef": int(m.group(1)) if m else 0, "recall": b.get("recall_at_10"),
                           "qps_cpu": b.get("qps_cpu", b.get("items_per_second")),
                           "qps_wall": b.get("qps_1thread"), "p50": b.get("p50_us"),
                           "p99": b.get("p99_us"), "p99_cpu": b.get("p99_cpu_us"),
                           "kernel": b.get("label", "")})
        elif name.startswith("BM_ExactQuery"):
            per_query = to_seconds(b["cpu_time"], b["time_unit"])
            exact = {"recall": 1.0, "qps_cpu": 1.0 / per_query if per_query else None,
                     "p50": b.get("p50_us"), "p99": b.get("p99_us")}
    return build, sorted(points, key=lambda p: p["ef"]), exact


def read_compare(out):
    """({library: [points]}, {library: build seconds}) from bench/ann_compare.py's --json and log."""
    doc = read_json(out / "ann_compare.json") or {}
    libs = {k: v for k, v in doc.get("curves", {}).items() if k in ("faiss", "hnswlib")}
    builds = {lib: float(secs) for lib, secs in
              re.findall(r"^(faiss|hnswlib)\b.*build ([\d.]+) s", read_text(out / "ann_compare.log") or "", re.M)}
    return libs, builds


def best_at(points, level):
    """The highest queries/s (CPU) over the points reaching recall level, and its ef."""
    ok = [p for p in points if p.get("recall") is not None and p["recall"] >= level and p.get("qps_cpu")]
    best = max(ok, key=lambda p: p["qps_cpu"], default=None)
    return (best["qps_cpu"], best["ef"]) if best else (None, None)


def ann_query_rows(points, exact, comparable, why):
    rows = []
    for p in points:
        ok = p["recall"] >= ANN_RECALL_TARGET and p["p99"] <= ANN_P99_TARGET_US
        status = verdict(ok, comparable, why) if p["recall"] >= ANN_RECALL_TARGET else "recall < 0.95"
        rows.append((p["ef"], fmt(p["recall"], 4), fmt(p["p50"], 0), fmt(p["p99"], 0),
                     fmt(p["p99_cpu"], 0), fmt(p["qps_cpu"], 0), fmt(p["qps_wall"], 0), status))
    if exact:
        rows.append(("exact scan", "1", fmt(exact["p50"], 0), fmt(exact["p99"], 0), "",
                     fmt(exact["qps_cpu"], 0), "", ""))
    return rows


def ann_memory_rows(build, peak_rss, comparable, why):
    raw, index, rss = build.get("raw_MiB"), build.get("index_MiB"), build.get("rss_MiB")
    allowed = 2 * raw + index if raw is not None and index is not None else None
    ok = rss is not None and allowed is not None and rss <= allowed
    return [
        ("vectors", f"{int(build.get('n', 0)):,} × d=64", "", ""),
        ("build (one thread)", f"{fmt(build.get('build_s'), 1)} s ({fmt(build.get('inserts_per_s'), 0)} inserts/s)", "", ""),
        ("raw embeddings", fmt(raw, 0, " MiB"), "", ""),
        ("index (`MemoryBytes`)", fmt(index, 0, " MiB"), "", ""),
        ("RSS after the build", fmt(rss, 0, " MiB"), f"≤ 2 × raw + index = {fmt(allowed, 0)} MiB",
         verdict(ok, comparable, why)),
        ("peak RSS of the process (includes the exact scan's own copy)", fmt(peak_rss, 0, " MiB"), "", ""),
    ]


def ann_ratio_rows(points, libs):
    """Per recall level: each one's best queries/s (CPU) reaching it, and ours / the better library."""
    rows, ratios = [], []
    for level in ANN_RECALL_LEVELS:
        ours, ours_ef = best_at(points, level)
        cells = [f"≥ {level}", f"{fmt(ours, 0)} (ef {ours_ef})" if ours else "—"]
        best = None
        for lib in ("faiss", "hnswlib"):
            qps, ef = best_at(libs.get(lib, []), level)
            cells.append(f"{fmt(qps, 0)} (ef {ef})" if qps else "—")
            if qps:
                best = max(best or 0.0, qps)
        # A level a library reaches and we do not counts as 0: the target is not met there.
        ratio = ours / best if ours and best else (0.0 if best else None)
        if ratio is not None:
            ratios.append(ratio)
        rows.append(cells + [fmt(ratio, 2)])
    return rows, ratios


def ann_section(out, env, steps, plot_rel):
    lines = ["## ANN: recall@10 and queries/s — `bench/ann_bench.cpp`, `bench/ann_compare.py`", ""]
    doc = read_json(out / "ann.json")
    if doc is None:
        return lines + not_run("ann")
    build, points, exact = ann_ours(doc)
    n = int((build or {}).get("n", env.get("ann_n", 0) or 0))
    comparable = n == ANN_SCALE_N
    why = f"{n:,} vectors, target at 1M"
    kernel = next((p["kernel"] for p in points if p["kernel"]), "?")
    lines += [
        f"Clustered vectors ({n:,} × d=64 around 1000 gaussian centres), 1000 similar-users "
        "queries (the row itself excluded), k=10, cosine; our HNSW with M=16, "
        f"ef_construction=100, one thread, inner-product kernel `{kernel}` (chosen at run time). "
        "p50/p99 are wall-clock per query (the target), p99 CPU the same in thread CPU time; "
        "queries/s (CPU) per CPU second of searching, queries/s (wall) per wall second.",
        "",
    ]
    lines += table(["ef", "recall@10", "p50 µs", "p99 µs", "p99 CPU µs", "queries/s (CPU)",
                    "queries/s (wall)", f"p99 ≤ {ANN_P99_TARGET_US / 1e3:g} ms at recall ≥ {ANN_RECALL_TARGET}"],
                   ann_query_rows(points, exact, comparable, why))
    if build:
        lines += ["### Memory", ""]
        lines += table(["figure", "value", "target", "status"],
                       ann_memory_rows(build, peak_rss_mib(out, "ann"), comparable, why))
    lines += [load_note(doc), ""] + command_block(out, "ann", steps)
    lines += compare_section(out, points, comparable, why, steps)
    lines += [f"![recall against queries/s]({plot_rel})", ""]
    return lines


def compare_section(out, points, comparable, why, steps):
    lines = ["### Beside faiss and hnswlib", ""]
    skipped = read_text(out / "ann_compare.skipped")
    libs, builds = read_compare(out)
    if skipped or not libs:
        reason = (skipped or "bench/ann_compare.py was not run").strip()
        return lines + [f"_Skipped: {reason}._", ""]
    versions = (read_text(out / "ann_compare.versions") or "unknown versions").strip()
    lines += [
        f"{versions}, on the same vectors, queries and exact top-10 (dumped by `ann_bench` with "
        "`ANN_BENCH_DUMP`), same M and ef_construction, one thread (faiss "
        "`omp_set_num_threads(1)`), inner product over L2-normalised vectors; timed with all "
        "queries in one call (no Python per-call overhead: their best case), ours one query per "
        "call. Rates are queries per CPU second. They ran in their own process right after "
        f"`ann_bench`, not interleaved with it. Build: faiss {fmt(builds.get('faiss'), 1)} s, "
        f"hnswlib {fmt(builds.get('hnswlib'), 1)} s. Each cell: the best rate over the efs "
        "that reach the recall level.",
        "",
    ]
    rows, ratios = ann_ratio_rows(points, libs)
    lines += table(["recall@10", "ours", "faiss IndexHNSWFlat", "hnswlib", "ours / better"], rows)
    worst = min(ratios) if ratios else None
    status = verdict(worst is not None and worst >= ANN_LIB_RATIO_TARGET, comparable, why)
    lines += [f"Lowest ratio: {fmt(worst, 2)}; target ≥ {ANN_LIB_RATIO_TARGET}× the better "
              f"library at equal recall: {status}.", ""]
    return lines + command_block(out, "ann_compare", steps)


def plot_recall(points, exact, libs, n, path):
    fig, ax = plt.subplots(figsize=(9, 5.5))
    curves = [("simstream HNSW (ours)", points, "o-", "tab:blue")]
    curves += [(label, libs[key], style, colour) for key, label, style, colour in
               (("faiss", "faiss IndexHNSWFlat", "s--", "tab:green"),
                ("hnswlib", "hnswlib", "^--", "tab:red")) if libs.get(key)]
    for label, pts, style, colour in curves:
        pts = [p for p in pts if p.get("qps_cpu")]
        ax.plot([p["qps_cpu"] for p in pts], [p["recall"] for p in pts], style, color=colour, label=label)
    for p in points:
        if p["qps_cpu"]:
            ax.annotate(f"ef {p['ef']}", (p["qps_cpu"], p["recall"]), textcoords="offset points",
                        xytext=(4, -10), fontsize=7, color="tab:blue")
    if exact and exact["qps_cpu"]:
        ax.plot([exact["qps_cpu"]], [1.0], "kx", markersize=9, label="exact scan")
    ax.axhline(ANN_RECALL_TARGET, color="grey", linestyle=":", label=f"recall {ANN_RECALL_TARGET}")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("queries per CPU second, one thread (log scale)")
    ax.set_ylabel("recall@10")
    ax.set_title(f"ANN recall@10 against queries/s — {n:,} × d=64, k=10, cosine, M=16, ef_construction=100",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- memory summary ------------------------------------------------------------------------


def memory_section(out, steps):
    rows = []
    for step, what in (("learner", "learner_bench (model of 100k × 20k, one per variant)"),
                       ("storage_flush", "storage_bench Flush"),
                       ("storage_start", "storage_bench StartToReady (build the store, load it twice)"),
                       ("ingest", "ingest_vs_kcat.sh (largest process: `simstream serve` or a tool)"),
                       ("http", "http_load.sh (largest process: the server)"),
                       ("ann", "ann_bench (vectors, index, exact copy)"),
                       ("ann_compare", "ann_compare.py (faiss and hnswlib, one after the other)")):
        rss = peak_rss_mib(out, step)
        if rss is not None:
            took = steps.get(step, {}).get("seconds")
            rows.append((what, fmt(rss, 0, " MiB"), fmt(took, 0, " s")))
    if not rows:
        return []
    lines = ["## Memory and time per step", "",
             "Peak RSS from `/usr/bin/time -v` (the largest single process the step waited "
             "for); wall time of the whole step.", ""]
    return lines + table(["step", "peak RSS", "wall time"], rows)


# ---- main ----------------------------------------------------------------------------------


def header(env, notes_rel):
    mode = env.get("mode", "?")
    lines = [
        "# Benchmark results",
        "",
        "Generated by `bash bench/run_all.sh"
        + (" --quick" if mode == "quick" else "") + "` (`bench/report.py`); do not edit by hand. "
        f"The history of hand-measured figures and their analysis is in [NOTES.md]({notes_rel}).",
        "",
    ]
    if mode == "quick":
        lines += ["> **Quick mode**: small sizes and short durations, to test the suite. Figures "
                  "measured below the issue's scales are marked *not comparable*; run "
                  "`bash bench/run_all.sh` (full mode) for the real figures.", ""]
    lines += ["A shared machine inflates wall times: compare the load averages below and in "
              "each section, and prefer CPU-time rates and side-by-side ratios.", ""]
    return lines


def relative(path, results):
    """A link from the report to path."""
    return os.path.relpath(path, Path(results).parent)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=str(REPO / "bench" / "out"), help="outputs of run_all.sh")
    ap.add_argument("--results", default=str(REPO / "bench" / "RESULTS.md"), help="report to write")
    ap.add_argument("--plots-dir", default=str(REPO / "bench" / "plots"), help="where the PNGs go")
    ap.add_argument("--notes", default=str(REPO / "bench" / "NOTES.md"), help="hand-written history to link")
    return ap.parse_args()


def main():
    args = parse_args()
    out, results, plots = Path(args.out_dir), Path(args.results), Path(args.plots_dir)
    plots.mkdir(parents=True, exist_ok=True)
    env, steps = read_env(out / "run.env"), read_steps(out / "steps.tsv")
    latency_png, recall_png = plots / "latency_vs_load.png", plots / "recall_vs_qps.png"

    points = http_points(out)
    if points:
        plot_latency(points, env, latency_png)
    ann_doc = read_json(out / "ann.json")
    if ann_doc is not None:
        build, ours, exact = ann_ours(ann_doc)
        libs = {} if (out / "ann_compare.skipped").exists() else read_compare(out)[0]
        plot_recall(ours, exact, libs, int((build or {}).get("n", 0)), recall_png)

    lines = header(env, relative(args.notes, results)) + machine_section(env)
    lines += learner_section(out, steps)
    lines += storage_section(out, steps)
    lines += ingest_section(out, env, steps)
    lines += http_section(out, env, steps, relative(latency_png, results))
    lines += ann_section(out, env, steps, relative(recall_png, results))
    lines += memory_section(out, steps)
    results.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    print(f"wrote {results}" + (f", {latency_png}" if points else "")
          + (f", {recall_png}" if ann_doc is not None else ""))


if __name__ == "__main__":
    main()
