// Query latency of engine::OnlineModel and the kernels under it.
//
// BM_Recommend and BM_SimilarUsers query one model (default options, d=64) that ingested a
// synthetic stream of 100k users x 20k items (1M events, engine/generator.hpp, fixed seed).
// The model is built once, on first use, outside every timed region; each iteration queries
// the next user of a fixed random sequence of known users, so caches see a realistic mix.
//
// BM_ScoreAll and BM_TopK time engine/similarity.hpp's ScoreAll and engine/topk.hpp's TopK
// alone, on seeded random data at n = 20k (an item catalogue) and 1M rows (a user base), d=64.
// items_per_second reads as rows scored (or scores selected from) per second.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config/options.hpp"
#include "engine/engine.hpp"
#include "engine/event.hpp"
#include "engine/generator.hpp"
#include "engine/interner.hpp"
#include "engine/model.hpp"
#include "engine/rng.hpp"
#include "engine/similarity.hpp"
#include "engine/topk.hpp"

namespace {

using simstream::config::ModelOptions;
using simstream::engine::Event;
using simstream::engine::EventRngKey;
using simstream::engine::GeneratorOptions;
using simstream::engine::IdInterner;
using simstream::engine::Interaction;
using simstream::engine::Metric;
using simstream::engine::OnlineModel;
using simstream::engine::Rng;
using simstream::engine::Scored;

constexpr int kDim = 64;
constexpr size_t kK = 10;
constexpr size_t kQueryUsers = 4096;  // distinct users cycled through by the query benchmarks

struct World {
  explicit World(const ModelOptions& opts) : model(opts) {}
  OnlineModel model;
  std::vector<uint32_t> query_users;  // known users (at least one event), random order
};

// The synthetic stream every model here learns: 100k users x 20k items, 1M events, 50
// communities, fixed seed. f(event, offset) for each event in order, its weight resolved from
// its type by `opts` (as the consumer does) and its offset counted from 0 on partition 0.
template <typename F>
void ForEachStreamEvent(const ModelOptions& opts, F&& f) {
  GeneratorOptions g;
  g.users = 100000;
  g.items = 20000;
  g.events = 1000000;
  g.communities = 50;
  g.seed = 20240601;
  int64_t offset = 0;
  (void)simstream::engine::Generate(g, [&](const Event& e) {
    Event x = e;
    const auto it = opts.event_weights.find(e.type);
    x.weight = it != opts.event_weights.end() ? it->second : opts.default_event_weight;
    f(x, offset++);
  });
}

// The model after one pass of the stream, built on first use.
World& GetWorld() {
  static World world = [] {
    ModelOptions opts;  // defaults: hybrid scorer, bpr loss
    opts.dim = kDim;
    World w(opts);
    IdInterner users, items;
    const auto seed = static_cast<uint64_t>(opts.seed);
    ForEachStreamEvent(opts, [&](const Event& e, int64_t offset) {
      w.model.Observe(Interaction{users.Intern(e.user), items.Intern(e.item),
                                  static_cast<float>(e.weight), e.ts_ms,
                                  EventRngKey(seed, /*partition=*/0, offset)});
    });
    Rng rng(7);
    const auto n = static_cast<uint32_t>(w.model.users());
    while (n > 0 && w.query_users.size() < kQueryUsers) {
      const uint32_t u = rng.Below(n);
      if (w.model.UserEvents(u) > 0) w.query_users.push_back(u);
    }
    return w;
  }();
  return world;
}

void BM_Recommend(benchmark::State& state) {
  World& w = GetWorld();
  if (w.query_users.empty()) {
    state.SkipWithError("the model has no users");
    return;
  }
  size_t next = 0;
  for (auto _ : state) {
    auto recs = w.model.Recommend(w.query_users[next], kK, /*exclude=*/{});
    benchmark::DoNotOptimize(recs.data());
    if (++next == w.query_users.size()) next = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["items"] = static_cast<double>(w.model.items());
}
BENCHMARK(BM_Recommend)->Unit(benchmark::kMicrosecond);

void BM_SimilarUsers(benchmark::State& state) {
  const World& w = GetWorld();
  if (w.query_users.empty()) {
    state.SkipWithError("the model has no users");
    return;
  }
  size_t next = 0;
  for (auto _ : state) {
    auto similar = w.model.SimilarUsers(w.query_users[next], kK, Metric::kCosine);
    benchmark::DoNotOptimize(similar.data());
    if (++next == w.query_users.size()) next = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["users"] = static_cast<double>(w.model.users());
}
BENCHMARK(BM_SimilarUsers)->Unit(benchmark::kMicrosecond);

// What the index maintainer spends per build of the neighbour lists (Engine::
// RefreshNeighbourLists, every index.neighbour_lists_interval_ms): every item's strongest 100
// neighbours, from the rows of the model above, without the locking.
void BM_BuildNeighbourLists(benchmark::State& state) {
  World& w = GetWorld();
  std::vector<simstream::engine::Scored> row;
  size_t bytes = 0;
  for (auto _ : state) {
    simstream::engine::NeighbourLists lists(100);
    for (uint32_t i = 0; i < w.model.items(); ++i) {
      w.model.StrongestNeighbours(i, 100, row);
      lists.Append(row);
    }
    lists.ShrinkToFit();
    bytes = lists.MemoryBytes();
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["items"] = static_cast<double>(w.model.items());
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_BuildNeighbourLists)->Unit(benchmark::kMillisecond);

// Engine::Recommend at the serving layer, side by side: index.kind=exact scores the whole
// catalogue (mode 0); index.kind=hnsw takes the two-stage path (item-index, neighbourhood and
// popular candidates, re-scored exactly), with the neighbourhood candidates from each item's
// list of strongest neighbours (mode 1, the default) or from a walk over whole rows (mode 2,
// index.neighbour_lists_interval_ms 0). Same stream and model as above, one engine per mode,
// built on first use; the user index is built too but not used here.
simstream::engine::Engine& GetEngine(int mode) {
  static std::map<int, std::unique_ptr<simstream::engine::Engine>> engines;
  auto& e = engines[mode];
  const bool two_stage = mode != 0;
  if (!e) {
    simstream::config::Options opts;
    opts.model.dim = kDim;
    opts.index.kind = two_stage ? "hnsw" : "exact";
    opts.index.maintenance_interval_ms = 0;
    if (mode == 2) opts.index.neighbour_lists_interval_ms = 0;
    e = std::make_unique<simstream::engine::Engine>(opts);
    std::vector<simstream::engine::SourcedEvent> batch;
    ForEachStreamEvent(opts.model, [&](const Event& ev, int64_t offset) {
      batch.push_back({ev, /*partition=*/0, offset});
      if (batch.size() == 4096) e->Apply(batch), batch.clear();
    });
    e->Apply(batch);
    if (two_stage) e->MaintainIndexes();
  }
  return *e;
}

void BM_EngineRecommend(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0));
  const bool two_stage = mode != 0;
  simstream::engine::Engine& e = GetEngine(mode);
  Rng rng(7);
  std::vector<std::string> users;
  while (users.size() < kQueryUsers) users.push_back("u" + std::to_string(rng.Below(100000)));
  size_t next = 0;
  for (auto _ : state) {
    auto recs = e.Recommend(users[next], kK, {}, /*explain=*/false);
    benchmark::DoNotOptimize(recs.items.data());
    if (++next == users.size()) next = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(mode == 0 ? "exact" : mode == 1 ? "two-stage, lists" : "two-stage, whole rows");
  if (two_stage) {
    // Quality beside speed: recall@10 of the two-stage answers against the exact scan of the
    // other engine (same stream, so the same model), over the queried users it knows. Once per
    // mode: Google Benchmark calls this function several times while it sizes the iterations.
    static std::map<int, double> recalls;
    if (!recalls.contains(mode))
      recalls[mode] = [&] {
        simstream::engine::Engine& oracle = GetEngine(0);
        double sum = 0;
        size_t n = 0;
        for (const std::string& u : users) {
          const auto want = oracle.Recommend(u, kK, {}, false);
          if (!want.from_model || want.items.empty()) continue;
          const auto got = e.Recommend(u, kK, {}, false);
          size_t hit = 0;
          for (const auto& w : want.items) {
            hit += std::any_of(got.items.begin(), got.items.end(),
                               [&](const auto& g) { return g.item == w.item; });
          }
          sum += static_cast<double>(hit) / static_cast<double>(want.items.size());
          ++n;
        }
        return n > 0 ? sum / static_cast<double>(n) : 0.0;
      }();
    state.counters["recall_vs_exact"] = recalls[mode];
  }
}
BENCHMARK(BM_EngineRecommend)
    ->ArgName("mode")
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMicrosecond);

// n x kDim standard-normal rows (row-major) and their norms, built once per n.
struct Rows {
  std::vector<float> data;
  std::vector<float> norms;
};

const Rows& GetRows(size_t n) {
  static std::map<size_t, Rows> cache;
  auto [it, added] = cache.try_emplace(n);
  if (added) {
    Rng rng(n);
    it->second.data.resize(n * kDim);
    for (float& x : it->second.data) x = static_cast<float>(rng.Normal());
    it->second.norms.resize(n);
    for (size_t i = 0; i < n; ++i) {
      it->second.norms[i] = simstream::engine::Norm(&it->second.data[i * kDim], kDim);
    }
  }
  return it->second;
}

// Arguments: rows, metric (0 cosine, 1 cosine with precomputed norms, 2 dot, 3 euclidean).
void BM_ScoreAll(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const Rows& rows = GetRows(n);
  static const Metric kMetrics[] = {Metric::kCosine, Metric::kCosine, Metric::kDot,
                                    Metric::kEuclidean};
  static const char* const kLabels[] = {"cosine", "cosine+norms", "dot", "euclidean"};
  const auto which = static_cast<size_t>(state.range(1));
  const float* norms = which == 1 ? rows.norms.data() : nullptr;
  std::vector<float> query(kDim);
  Rng rng(99);
  for (float& x : query) x = static_cast<float>(rng.Normal());
  std::vector<float> out(n);
  for (auto _ : state) {
    simstream::engine::ScoreAll(kMetrics[which], query.data(), rows.data.data(), n, kDim,
                                out.data(), norms);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
  state.SetLabel(kLabels[which]);
}
BENCHMARK(BM_ScoreAll)
    ->ArgNames({"n", "metric"})
    ->ArgsProduct({{20000, 1000000}, {0, 1, 2, 3}})
    ->Unit(benchmark::kMicrosecond);

// Arguments: n, order (0 random scores, 1 ascending: every score enters the heap, the worst
// case, 2 random with half the entries masked as seen).
void BM_TopK(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const auto order = state.range(1);
  std::vector<float> scores(n);
  Rng rng(n + 1);
  for (float& s : scores) s = static_cast<float>(rng.Uniform());
  if (order == 1) std::sort(scores.begin(), scores.end());
  if (order == 2) {
    for (size_t i = 0; i < n; i += 2) scores[i] = -std::numeric_limits<float>::infinity();
  }
  for (auto _ : state) {
    auto top = simstream::engine::TopK(std::span<const float>(scores), kK);
    benchmark::DoNotOptimize(top.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
  static const char* const kLabels[] = {"random", "ascending", "half-masked"};
  state.SetLabel(kLabels[order]);
}
BENCHMARK(BM_TopK)
    ->ArgNames({"n", "order"})
    ->ArgsProduct({{20000, 1000000}, {0, 1, 2}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
