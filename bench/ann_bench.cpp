// Approximate nearest neighbours at scale: our HNSW index (engine/ann_index.hpp) against the
// exact scan, on clustered embedding-like vectors.
//
// Data: ANN_BENCH_N vectors (default 1,000,000) x d=64 around 1000 gaussian centres (seeded),
// the shape of learned embeddings rather than uniform noise. Queries: 1000 sampled rows,
// similar-users style (the query row itself excluded), k=10, cosine.
//
//   BM_AnnBuild            builds the index once (single thread): build_s, RSS against the raw
//                          embedding bytes, index bytes.
//   BM_AnnQuery/ef:E       recall@10 against the exact top-10 and, over every query of the 3
//                          iterations, latency p50/p99 (wall), p99_cpu_us (thread CPU time:
//                          the service time without waits for a core), qps_1thread (wall) and
//                          qps_cpu, at several ef. The label names the distance kernel.
//   BM_ExactQuery          the exact scan (engine ScoreAll + TopK) for reference.
//   BM_EngineApply/hnsw:H/cap:C  the learner's cost of the live index: Engine::Apply events/s
//                          with index.kind exact (H=0) or hnsw (H=1) and
//                          index.max_reinserts_per_batch C (see the comment above it).
//   BM_EngineDrift/drift_milli:D/ef:E  the same stream with index.drift_threshold D/1000 and
//                          ef_search E: re-inserts against the recall the stream leaves.
//   BM_EngineReinsertEf/ef_reinsert:R  the same stream with index.ef_reinsert R (0: the
//                          build's ef_construction): learner time against that recall.
//
// With ANN_BENCH_DUMP=dir the vectors, query ids and exact neighbours are written as .npy
// files for bench/ann_compare.py (faiss IndexHNSWFlat and hnswlib on the same vectors).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config/options.hpp"
#include "engine/ann_distance.hpp"
#include "engine/ann_index.hpp"
#include "engine/engine.hpp"
#include "engine/generator.hpp"
#include "engine/rng.hpp"

namespace {

using namespace simstream::engine;

constexpr int kDim = 64;
constexpr size_t kClusters = 1000;
constexpr size_t kQueries = 1000;
constexpr size_t kK = 10;

size_t EnvSize(const char* name, size_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? static_cast<size_t>(std::strtoull(v, nullptr, 10)) : fallback;
}

double RssMB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
  }
  return 0;
}

// Writes a C-order .npy array of float32 (fortran_order false) or int64.
void WriteNpy(const std::string& path, const void* data, size_t rows, size_t cols,
              const char* dtype, size_t elem) {
  std::string header = "{'descr': '" + std::string(dtype) +
                       "', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const auto len = static_cast<uint16_t>(header.size());
  out.write(reinterpret_cast<const char*>(&len), 2);
  out << header;
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(rows * cols * elem));
}

struct World {
  size_t n = 0;
  std::vector<float> rows;
  std::vector<uint32_t> queries;
  std::vector<std::vector<Scored>> truth;
  std::unique_ptr<AnnIndex> hnsw;
  double rss_before_mb = 0, rss_after_mb = 0, build_s = 0;
};

World& GetWorld() {
  static World* w = [] {
    auto* world = new World;
    World& d = *world;
    d.n = EnvSize("ANN_BENCH_N", 1000000);
    Rng rng(20240611);
    std::vector<float> centres(kClusters * kDim);
    for (float& c : centres) c = static_cast<float>(rng.Normal());
    d.rows.resize(d.n * kDim);
    for (size_t i = 0; i < d.n; ++i) {
      const size_t c = rng.Below(kClusters);
      for (int j = 0; j < kDim; ++j)
        d.rows[i * kDim + j] = centres[c * kDim + j] + 0.9f * static_cast<float>(rng.Normal());
    }
    for (size_t q = 0; q < kQueries; ++q)
      d.queries.push_back(rng.Below(static_cast<uint32_t>(d.n)));

    // Ground truth with the exact scan over the same rows (no copy: ScoreAll on the matrix).
    auto exact = MakeExactIndex(kDim);
    for (uint32_t i = 0; i < d.n; ++i) exact->Upsert(i, &d.rows[size_t{i} * kDim]);
    for (uint32_t q : d.queries) {
      const uint32_t ex[] = {q};
      d.truth.push_back(exact->Search(&d.rows[size_t{q} * kDim], kK, 0, ex));
    }
    exact.reset();

    if (const char* dir = std::getenv("ANN_BENCH_DUMP")) {
      WriteNpy(std::string(dir) + "/vectors.npy", d.rows.data(), d.n, kDim, "<f4", 4);
      std::vector<int64_t> q(d.queries.begin(), d.queries.end());
      WriteNpy(std::string(dir) + "/queries.npy", q.data(), q.size(), 1, "<i8", 8);
      std::vector<int64_t> gt;
      for (const auto& t : d.truth)
        for (const Scored& s : t) gt.push_back(s.id);
      WriteNpy(std::string(dir) + "/truth.npy", gt.data(), d.truth.size(), kK, "<i8", 8);
    }

    d.rss_before_mb = RssMB();
    AnnParams p;  // the defaults of index.*: m 16, ef_construction 100
    p.m = EnvSize("ANN_BENCH_M", 16);
    p.ef_construction = EnvSize("ANN_BENCH_EFC", 100);
    const auto t0 = std::chrono::steady_clock::now();
    d.hnsw = MakeHnswIndex(kDim, p, d.n);
    for (uint32_t i = 0; i < d.n; ++i) d.hnsw->Upsert(i, &d.rows[size_t{i} * kDim]);
    d.build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    d.rss_after_mb = RssMB();
    return world;
  }();
  return *w;
}

void BM_AnnBuild(benchmark::State& state) {
  World& w = GetWorld();
  for (auto _ : state) benchmark::DoNotOptimize(w.hnsw->size());
  const double raw_mb = static_cast<double>(w.n * kDim * sizeof(float)) / 1e6 * (1e6 / 1048576.0);
  state.counters["n"] = static_cast<double>(w.n);
  state.counters["build_s"] = w.build_s;
  state.counters["inserts_per_s"] = static_cast<double>(w.n) / w.build_s;
  state.counters["raw_MiB"] = raw_mb;
  state.counters["index_MiB"] = static_cast<double>(w.hnsw->MemoryBytes()) / 1048576.0;
  state.counters["rss_MiB"] = w.rss_after_mb;
  state.counters["rss_index_growth_MiB"] = w.rss_after_mb - w.rss_before_mb;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// CPU time of the calling thread: a query's service time without the time it waited for a core
// (on a shared machine a preempted query shows the scheduler's slice, ~4 ms, in its wall time).
double ThreadCpuUs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

// Every iteration runs all queries once; latency percentiles are over all of them.
void BM_AnnQuery(benchmark::State& state) {
  World& w = GetWorld();
  const auto ef = static_cast<size_t>(state.range(0));
  std::vector<double> lat_us, cpu_us;
  double recall = 0;
  for (auto _ : state) {
    recall = 0;
    for (size_t qi = 0; qi < w.queries.size(); ++qi) {
      const uint32_t q = w.queries[qi];
      const uint32_t ex[] = {q};
      const double c0 = ThreadCpuUs();
      const auto t0 = std::chrono::steady_clock::now();
      const auto got = w.hnsw->Search(&w.rows[size_t{q} * kDim], kK, ef, ex);
      lat_us.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      cpu_us.push_back(ThreadCpuUs() - c0);
      recall += RecallOf(got, w.truth[qi]);
    }
  }
  double total_us = 0, total_cpu_us = 0;
  for (double l : lat_us) total_us += l;
  for (double c : cpu_us) total_cpu_us += c;
  state.SetItemsProcessed(static_cast<int64_t>(lat_us.size()));
  state.SetLabel(std::string(BestDotKernelName()));
  state.counters["recall_at_10"] = recall / static_cast<double>(w.queries.size());
  state.counters["p50_us"] = Percentile(lat_us, 0.50);
  state.counters["p99_us"] = Percentile(lat_us, 0.99);
  state.counters["p99_cpu_us"] = Percentile(cpu_us, 0.99);
  state.counters["qps_1thread"] = 1e6 * static_cast<double>(lat_us.size()) / total_us;
  state.counters["qps_cpu"] = 1e6 * static_cast<double>(cpu_us.size()) / total_cpu_us;
}

void BM_ExactQuery(benchmark::State& state) {
  World& w = GetWorld();
  auto exact = MakeExactIndex(kDim);
  for (uint32_t i = 0; i < w.n; ++i) exact->Upsert(i, &w.rows[size_t{i} * kDim]);
  std::vector<double> lat_us;
  size_t qi = 0;
  for (auto _ : state) {
    const uint32_t q = w.queries[qi++ % w.queries.size()];
    const uint32_t ex[] = {q};
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(exact->Search(&w.rows[size_t{q} * kDim], kK, 0, ex));
    lat_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  state.counters["p50_us"] = Percentile(lat_us, 0.50);
  state.counters["p99_us"] = Percentile(lat_us, 0.99);
}

// ---- learner cost of the live index ------------------------------------------------------
// Engine::Apply in batches of 500 (as the Kafka source delivers them) on a generated stream of
// 100k users x 20k items (50 communities), index.kind exact against hnsw. A warm-up of
// ANN_APPLY_WARMUP events (default 1M) creates every user and item; MaintainIndexes() then
// builds the HNSW indexes (hnsw only), and ANN_APPLY_EVENTS (default 300k) further events are
// timed. The maintenance thread is off (index.maintenance_interval_ms 0), so the time is the
// learner's own: Observe + Touch + the drift-filtered re-inserts of Sync. events/s is
// items_per_second (CPU time of the applying thread). Then 100 maintenance steps sample the
// recall@10 the stream left (with rebuilds off), and the rows still deferred by the cap.
struct ApplyStream {
  std::vector<SourcedEvent> warmup, timed;
};

const ApplyStream& GetApplyStream() {
  static const ApplyStream* stream = [] {
    auto* s = new ApplyStream;
    GeneratorOptions g;
    g.users = 100000;
    g.items = 20000;
    g.communities = 50;
    g.seed = 7;
    const size_t warmup = EnvSize("ANN_APPLY_WARMUP", 1000000);
    g.events = warmup + EnvSize("ANN_APPLY_EVENTS", 300000);
    int64_t offset = 0;
    (void)Generate(g, [&](const Event& e) {
      SourcedEvent se{e, 0, offset};
      (static_cast<size_t>(offset) < warmup ? s->warmup : s->timed).push_back(std::move(se));
      ++offset;
    });
    return s;
  }();
  return *stream;
}

void ApplyInBatches(Engine& e, const std::vector<SourcedEvent>& events) {
  constexpr size_t kBatch = 500;
  for (size_t b = 0; b < events.size(); b += kBatch) {
    const size_t end = std::min(events.size(), b + kBatch);
    e.Apply(std::span<const SourcedEvent>(events.data() + b, end - b));
  }
}

// Applies the timed stream to an engine with options `o` (maintenance thread off, rebuilds
// off), after the warm-up and a first build, and reports rate, re-inserts and the recall the
// stream left. `label` names the variant.
void RunEngineApply(benchmark::State& state, simstream::config::Options o,
                    const std::string& label) {
  const ApplyStream& s = GetApplyStream();
  o.index.maintenance_interval_ms = 0;
  o.index.rebuild_below_recall = 0;  // measure the recall the stream leaves, never rebuild
  Engine e(o);
  ApplyInBatches(e, s.warmup);
  const auto b0 = std::chrono::steady_clock::now();
  e.MaintainIndexes();  // builds the hnsw indexes; nothing for exact
  const double build_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - b0).count();
  double wall_s = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    ApplyInBatches(e, s.timed);
    wall_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  EngineStats st = e.Stats();
  const size_t deferred_users = st.user_index.deferred;
  const size_t deferred_items = st.item_index.deferred;
  // Sampled recall@10 of the index the timed stream left: 200 user and 200 item queries, a
  // whole window (LiveAnn keeps the last 200), so the one sample the build's own maintenance
  // step took before the stream is out of it.
  for (int i = 0; i < 200 && o.index.kind == "hnsw"; ++i) e.MaintainIndexes();
  st = e.Stats();
  state.SetLabel(label);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * s.timed.size()));
  state.counters["events_per_s_wall"] =
      static_cast<double>(state.iterations() * s.timed.size()) / wall_s;
  state.counters["users"] = static_cast<double>(st.users);
  state.counters["items"] = static_cast<double>(st.items);
  state.counters["index_build_s"] = build_s;
  state.counters["user_reinserts"] = static_cast<double>(st.user_index.reinserts);
  state.counters["item_reinserts"] = static_cast<double>(st.item_index.reinserts);
  state.counters["user_deferred"] = static_cast<double>(deferred_users);
  state.counters["item_deferred"] = static_cast<double>(deferred_items);
  state.counters["user_recall_at_10"] = st.user_index.recall_at_10;
  state.counters["item_recall_at_10"] = st.item_index.recall_at_10;
}

void BM_EngineApply(benchmark::State& state) {
  simstream::config::Options o;
  o.index.kind = state.range(0) == 0 ? "exact" : "hnsw";
  o.index.max_reinserts_per_batch = state.range(1);
  RunEngineApply(state, o,
                 o.index.kind + " max_reinserts_per_batch=" + std::to_string(state.range(1)));
}

// Args: hnsw (0: index.kind exact, 1: hnsw), index.max_reinserts_per_batch (0: no limit).
BENCHMARK(BM_EngineApply)
    ->ArgNames({"hnsw", "cap"})
    ->Args({0, 0})
    ->Args({1, 0})
    ->Args({1, 16})
    ->Args({1, 4})
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

// What index.drift_threshold trades: re-inserts (learner time) against the recall of the
// index a stream leaves, and how much a wider ef_search (more candidates re-scored with the
// current vectors) buys back. Args: drift_threshold in thousandths, ef_search.
void BM_EngineDrift(benchmark::State& state) {
  simstream::config::Options o;
  o.index.kind = "hnsw";
  o.index.drift_threshold = static_cast<double>(state.range(0)) / 1000.0;
  o.index.ef_search = state.range(1);
  RunEngineApply(state, o,
                 "hnsw drift_threshold=" + std::to_string(o.index.drift_threshold).substr(0, 5) +
                     " ef_search=" + std::to_string(o.index.ef_search));
}
BENCHMARK(BM_EngineDrift)
    ->ArgNames({"drift_milli", "ef"})
    ->ArgsProduct({{10, 20, 50, 100}, {64, 128}})
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

// What index.ef_reinsert trades: learner time per re-insert against the recall the stream
// leaves, at the default drift_threshold and ef_search. Arg: ef_reinsert (0: ef_construction).
void BM_EngineReinsertEf(benchmark::State& state) {
  simstream::config::Options o;
  o.index.kind = "hnsw";
  o.index.ef_reinsert = state.range(0);
  RunEngineApply(state, o, "hnsw ef_reinsert=" + std::to_string(o.index.ef_reinsert));
}
BENCHMARK(BM_EngineReinsertEf)
    ->ArgName("ef_reinsert")
    ->Arg(0)
    ->Arg(64)
    ->Arg(32)
    ->Arg(16)
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

BENCHMARK(BM_AnnBuild)->Iterations(1)->Unit(benchmark::kSecond);
BENCHMARK(BM_AnnQuery)
    ->ArgName("ef")
    ->Arg(16)
    ->Arg(24)
    ->Arg(32)
    ->Arg(48)
    ->Arg(64)
    ->Arg(96)
    ->Arg(128)
    ->Arg(160)
    ->Arg(192)
    ->Arg(256)
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ExactQuery)->Iterations(50)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
