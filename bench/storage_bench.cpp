// Storage benchmarks (acceptance 2 of the durable-state issue):
//   BM_FlushPer100kEvents  amortised flush cost per event when 100k events/s are flushed once a
//                          second (apply 100k events, then one flush), and bytes written.
//   BM_FlushLongHistories  the same for users who had each seen 20, 200 or 2,000 items before.
//   BM_StartToReady        open + LoadInto of a store of 1M users x d=64 (target <= 10 s), and
//                          bytes on disk per user. The store is built once from synthetic rows,
//                          with a co-occurrence graph of 20k items x 50 neighbours (1M edges,
//                          written as 5 rounds of partial row updates, as a live flusher does).
// Run: build-x/bench/storage_bench --benchmark_counters_tabular=true
// Environment: SIMSTREAM_BENCH_USERS overrides the 1M users (for a quick run).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>

#include "engine/engine.hpp"
#include "engine/generator.hpp"
#include "storage/flusher.hpp"
#include "storage/state_store.hpp"

namespace {

using namespace simstream;
namespace fs = std::filesystem;

fs::path TempDir(const std::string& tag) {
  fs::path p =
      fs::temp_directory_path() / ("simstream_bench_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p;
}

// `g`'s synthetic stream, as events of partition 0 at offsets 0, 1, ...
std::vector<engine::SourcedEvent> GeneratedEvents(const engine::GeneratorOptions& g) {
  std::vector<engine::SourcedEvent> events;
  (void)engine::Generate(g, [&](const engine::Event& e) {
    events.push_back({e, 0, static_cast<int64_t>(events.size())});
  });
  return events;
}

// Applies events [from, from + n) in batches of 1,000, each at a fresh offset (`offset` on), so
// that replays of the same events are not skipped as duplicates.
void ApplyAtFreshOffsets(engine::Engine& engine, const std::vector<engine::SourcedEvent>& events,
                         size_t from, size_t n, int64_t& offset) {
  std::vector<engine::SourcedEvent> batch;
  for (size_t i = from; i < from + n; i += 1000) {
    batch.assign(events.begin() + static_cast<std::ptrdiff_t>(i),
                 events.begin() + static_cast<std::ptrdiff_t>(std::min(i + 1000, from + n)));
    for (auto& e : batch) e.offset = offset++;
    (void)engine.Apply(batch);
  }
}

// One flush, the measured part of an iteration: its wall time is added to `flush_s`, and the
// bytes it added on disk to `bytes`. Called with the timing paused; returns with it paused.
void TimedFlush(benchmark::State& state, storage::Flusher& flusher, storage::StateStore& store,
                double& flush_s, uint64_t& bytes) {
  const uint64_t before = store.SizeBytes();
  state.ResumeTiming();
  const auto t0 = std::chrono::steady_clock::now();
  if (Status st = flusher.FlushNow(); !st.ok()) state.SkipWithError(st.error().message.c_str());
  flush_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  state.PauseTiming();
  bytes += store.SizeBytes() - before;
}

void BM_FlushPer100kEvents(benchmark::State& state) {
  constexpr size_t kPerFlush = 100000;
  config::Options o;  // defaults: d = 64
  const fs::path dir = TempDir("flush");
  o.storage.path = dir.string();
  engine::GeneratorOptions g;
  g.users = 50000;
  g.items = 5000;
  g.events = kPerFlush * 6;
  g.min_user_events = 1;
  const std::vector<engine::SourcedEvent> events = GeneratedEvents(g);
  auto store = storage::OpenRocksDbStore(o.storage, o.model, "events");
  if (!store.ok()) {
    state.SkipWithError(store.error().message.c_str());
    return;
  }
  engine::Engine engine(o);
  storage::Flusher flusher(engine, *store.value(), o.storage);
  size_t next = 0;
  int64_t offset = 0;
  auto apply_next = [&] {
    if (next + kPerFlush > events.size()) next = 0;
    ApplyAtFreshOffsets(engine, events, next, kPerFlush, offset);
    next += kPerFlush;
  };
  uint64_t rows = 0, edges = 0, bytes = 0;
  double flush_s = 0, take_s = 0;
  engine::ChangeSet take_cs;
  for (auto _ : state) {
    state.PauseTiming();
    apply_next();
    const auto before_stats = flusher.stats();
    TimedFlush(state, flusher, *store.value(), flush_s, bytes);
    rows += flusher.stats().rows_written - before_stats.rows_written;
    edges += flusher.stats().edges_written - before_stats.edges_written;
    // The share of the engine's TakeChanges (copying rows under its lock) in a flush: the same
    // pattern again, taken without writing, into a recycled set as the flusher's.
    apply_next();
    take_cs.Recycle();
    const auto t1 = std::chrono::steady_clock::now();
    engine.TakeChanges(take_cs);
    take_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    state.ResumeTiming();
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["flush_ns_per_event"] = flush_s * 1e9 / (n * kPerFlush);
  state.counters["take_ns_per_event"] = take_s * 1e9 / (n * kPerFlush);
  state.counters["rows_per_flush"] = static_cast<double>(rows) / n;
  state.counters["edges_per_flush"] = static_cast<double>(edges) / n;
  state.counters["bytes_per_flush"] = static_cast<double>(bytes) / n;
  state.counters["bytes_per_event"] = static_cast<double>(bytes) / (n * kPerFlush);
  (void)flusher.Stop();  // before the store goes away
  store.value().reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_FlushPer100kEvents)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();

// The flush of 100k events of 5,000 users who had each seen `history` items before (their
// seen lists set in the rows written first, then loaded), in the pattern of
// BM_FlushPer100kEvents: how a flush's time and bytes grow with the users' histories (a user
// row carries its seen items, and is rewritten whenever the user had an event).
void BM_FlushLongHistories(benchmark::State& state) {
  const size_t history = static_cast<size_t>(state.range(0));
  constexpr size_t kPerFlush = 100000, kWarm = 20000;
  constexpr uint32_t kItems = 20000;
  config::Options o;  // defaults: d = 64
  const fs::path dir = TempDir("history");
  o.storage.path = dir.string();
  engine::GeneratorOptions g;
  g.users = 5000;
  g.items = kItems;
  g.events = kWarm + kPerFlush * 4;
  g.min_user_events = 1;
  const std::vector<engine::SourcedEvent> events = GeneratedEvents(g);
  auto store = storage::OpenRocksDbStore(o.storage, o.model, "events");
  if (!store.ok()) {
    state.SkipWithError(store.error().message.c_str());
    return;
  }
  {
    engine::Engine warm(o);
    warm.SetChangeTracking(true);
    (void)warm.Apply(std::vector<engine::SourcedEvent>(events.begin(), events.begin() + kWarm));
    engine::ChangeSet cs;
    warm.TakeChanges(cs);
    std::mt19937 rng(5);
    const auto items = static_cast<uint32_t>(cs.items.size());  // those the warm-up created
    for (auto& [u, row] : cs.users) {
      for (size_t k = 0; k < history; ++k) row.seen.push_back(rng() % items);
      std::sort(row.seen.begin(), row.seen.end());
      row.seen.erase(std::unique(row.seen.begin(), row.seen.end()), row.seen.end());
    }
    if (Status st = store.value()->Write(cs); !st.ok()) {
      state.SkipWithError(st.error().message.c_str());
      return;
    }
  }
  engine::Engine engine(o);
  if (Status st = store.value()->LoadInto(engine); !st.ok()) {
    state.SkipWithError(st.error().message.c_str());
    return;
  }
  storage::Flusher flusher(engine, *store.value(), o.storage);
  size_t next = kWarm;
  int64_t offset = kWarm;
  uint64_t bytes = 0;
  double flush_s = 0;
  for (auto _ : state) {
    state.PauseTiming();
    if (next + kPerFlush > events.size()) next = kWarm;
    ApplyAtFreshOffsets(engine, events, next, kPerFlush, offset);
    next += kPerFlush;
    TimedFlush(state, flusher, *store.value(), flush_s, bytes);
    state.ResumeTiming();
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["flush_ns_per_event"] = flush_s * 1e9 / (n * kPerFlush);
  state.counters["bytes_per_event"] = static_cast<double>(bytes) / (n * kPerFlush);
  (void)flusher.Stop();
  store.value().reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_FlushLongHistories)
    ->Arg(20)
    ->Arg(200)
    ->Arg(2000)
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// A store of `users` synthetic users (20 seen items, full history and sketch) and 20k items.
Status BuildStore(const config::Options& o, size_t users) {
  auto store = storage::OpenRocksDbStore(o.storage, o.model, "events");
  if (!store.ok()) return store.error();
  const int dim = static_cast<int>(o.model.dim);
  constexpr uint32_t kItems = 20000;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  engine::ChangeSet cs;
  cs.dim = dim;
  for (uint32_t i = 0; i < kItems; ++i) {
    engine::ItemState s;
    s.v.resize(dim);
    for (float& f : s.v) f = normal(rng);
    s.count = 3;
    cs.items.emplace_back(i, s);
    cs.new_item_ids.emplace_back(i, "item-" + std::to_string(i));
  }
  if (Status st = store.value()->Write(cs); !st.ok()) return st;
  for (size_t base = 0; base < users; base += 10000) {
    cs = engine::ChangeSet();
    cs.dim = dim;
    for (size_t u = base; u < std::min(users, base + 10000); ++u) {
      engine::UserState s;
      s.p.resize(dim);
      s.h.resize(dim);
      for (float& f : s.p) f = normal(rng);
      for (float& f : s.h) f = normal(rng);
      s.z = 3.0f;
      for (int k = 0; k < 20; ++k) {
        const uint32_t item = rng() % kItems;
        s.recent_items.push_back(item);
        s.recent_weights.push_back(1.0f);
        s.seen.push_back(item);
      }
      std::sort(s.seen.begin(), s.seen.end());
      s.seen.erase(std::unique(s.seen.begin(), s.seen.end()), s.seen.end());
      s.events = 20;
      s.last_ts = 1700000000000;
      s.sketch.resize(o.model.minhash_size);
      for (auto& h : s.sketch) h = rng();
      s.sketch_empty = false;
      cs.users.emplace_back(static_cast<uint32_t>(u), std::move(s));
      cs.new_user_ids.emplace_back(static_cast<uint32_t>(u), "user-" + std::to_string(u));
    }
    cs.events_applied = (base + 10000) * 20;
    cs.next_offsets[0] = static_cast<int64_t>(cs.events_applied);
    if (Status st = store.value()->Write(cs); !st.ok()) return st;
  }
  // Co-occurrence graph: each item row gets 50 neighbours, 10 per round; every round also
  // re-weights a few earlier ones and deletes one (w == 0), so rows are built from patches.
  constexpr uint32_t kNeighbours = 50, kRounds = 5;
  for (uint32_t round = 0; round < kRounds; ++round) {
    cs = engine::ChangeSet();
    cs.dim = dim;
    for (uint32_t a = 0; a < kItems; ++a) {
      for (uint32_t k = round * (kNeighbours / kRounds); k < (round + 1) * (kNeighbours / kRounds);
           ++k)
        cs.edges.push_back({a, (a + 1 + k * 37) % kItems, 1.0f + static_cast<float>(rng() % 8)});
      if (round > 0) {
        cs.edges.push_back({a, (a + 1) % kItems, 2.0f + static_cast<float>(round)});
        cs.edges.push_back({a, (a + 1 + (round - 1) * 37) % kItems, 0.0f});
      }
    }
    cs.events_applied = users * 20;
    cs.next_offsets[0] = static_cast<int64_t>(cs.events_applied);
    if (Status st = store.value()->Write(cs); !st.ok()) return st;
  }
  return store.value()->PurgeDeleted();  // flush and compact: the steady state on disk
}

void BM_StartToReady(benchmark::State& state) {
  const char* env = std::getenv("SIMSTREAM_BENCH_USERS");
  const size_t users = env ? std::strtoull(env, nullptr, 10) : 1000000;
  config::Options o;  // d = 64, minhash_size = 128
  const fs::path dir = TempDir("load");
  o.storage.path = dir.string();
  const auto t0 = std::chrono::steady_clock::now();
  if (Status st = BuildStore(o, users); !st.ok()) {
    state.SkipWithError(st.error().message.c_str());
    return;
  }
  const double build_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  uint64_t disk = 0;
  size_t loaded_users = 0;
  double load_s = 0;
  for (auto _ : state) {
    auto store = storage::OpenRocksDbStore(o.storage, o.model, "events");
    if (!store.ok()) {
      state.SkipWithError(store.error().message.c_str());
      break;
    }
    auto engine = std::make_unique<engine::Engine>(o);
    const auto t1 = std::chrono::steady_clock::now();
    if (Status st = store.value()->LoadInto(*engine); !st.ok())
      state.SkipWithError(st.error().message.c_str());
    load_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    state.PauseTiming();  // tearing down 1M users is not part of start-up
    loaded_users = engine->Stats().users;
    disk = store.value()->SizeBytes();
    engine.reset();
    store.value().reset();
    state.ResumeTiming();
  }
  state.counters["users"] = static_cast<double>(loaded_users);
  state.counters["disk_bytes_per_user"] = static_cast<double>(disk) / static_cast<double>(users);
  state.counters["build_s"] = build_s;
  state.counters["load_s"] = load_s / static_cast<double>(state.iterations());
  fs::remove_all(dir);
}
BENCHMARK(BM_StartToReady)->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
