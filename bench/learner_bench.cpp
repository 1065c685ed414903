// Learn-only throughput of engine::OnlineModel: events/s of Observe() in steady state.
//
// One synthetic stream (engine/generator.hpp: 100k users, 20k items, 1M events, 50
// communities, fixed seed) is generated and converted to dense engine::Interaction rows once,
// outside every timed region: interning, JSON and weight lookup are not what is measured here.
// Each run builds a fresh model, warms it with one full pass of the stream (untimed, so every
// user and item row exists and histories are full, as in a long-running daemon), then times a
// second pass in batches of kBatch events. The second pass uses the rng keys of the offsets
// that follow the first pass, as a replayed topic would, so its negative draws are new.
//
// The output reads as events/s in the items_per_second column. Variants change one factor of
// the default configuration (config::ModelOptions{}) at a time: scorer, loss, dimension.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "config/options.hpp"
#include "engine/event.hpp"
#include "engine/generator.hpp"
#include "engine/interner.hpp"
#include "engine/model.hpp"
#include "engine/rng.hpp"

namespace {

using simstream::config::ModelOptions;
using simstream::engine::Event;
using simstream::engine::EventRngKey;
using simstream::engine::GeneratorOptions;
using simstream::engine::IdInterner;
using simstream::engine::Interaction;
using simstream::engine::OnlineModel;

// Events per timed iteration; kStreamEvents / kBatch iterations make exactly one pass.
constexpr size_t kBatch = 10000;
constexpr size_t kStreamEvents = 1000000;
constexpr uint64_t kStreamSeed = 20240601;

struct Stream {
  std::vector<Interaction> warmup;  // offsets [0, n): the first pass
  std::vector<Interaction> timed;   // the same events at offsets [n, 2n): the second pass
  size_t users = 0;
  size_t items = 0;
};

// Weight of an event the way the consumer resolves it with default options: by type, else the
// default weight.
float DefaultWeight(const ModelOptions& defaults, const std::string& type) {
  const auto it = defaults.event_weights.find(type);
  return static_cast<float>(it != defaults.event_weights.end() ? it->second
                                                               : defaults.default_event_weight);
}

const Stream& GetStream() {
  static const Stream stream = [] {
    GeneratorOptions g;
    g.users = 100000;
    g.items = 20000;
    g.events = kStreamEvents;
    g.communities = 50;
    g.seed = kStreamSeed;
    const ModelOptions defaults;
    const auto seed = static_cast<uint64_t>(defaults.seed);
    IdInterner users, items;
    Stream s;
    s.warmup.reserve(g.events);
    s.timed.reserve(g.events);
    (void)simstream::engine::Generate(g, [&](const Event& e) {
      const auto offset = static_cast<int64_t>(s.warmup.size());
      Interaction x{users.Intern(e.user), items.Intern(e.item), DefaultWeight(defaults, e.type),
                    e.ts_ms, EventRngKey(seed, /*partition=*/0, offset)};
      s.warmup.push_back(x);
      x.rng_key = EventRngKey(seed, /*partition=*/0, offset + static_cast<int64_t>(g.events));
      s.timed.push_back(x);
    });
    s.users = users.size();
    s.items = items.size();
    return s;
  }();
  return stream;
}

void BM_Learn(benchmark::State& state, const ModelOptions& opts, bool prefetch) {
  const Stream& s = GetStream();
  if (s.timed.size() < kBatch) {
    state.SkipWithError("the generator produced no stream");
    return;
  }
  OnlineModel model(opts);
  for (const Interaction& x : s.warmup) model.Observe(x);

  size_t next = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < kBatch; ++i) {
      if (prefetch) {
        for (int ahead = OnlineModel::kPrefetchStages; ahead >= 1; --ahead) {
          const Interaction& a = s.timed[(next + static_cast<size_t>(ahead)) % s.timed.size()];
          model.Prefetch(a.user, a.item, ahead);
        }
      }
      model.Observe(s.timed[next]);
      if (++next == s.timed.size()) next = 0;
    }
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBatch));
  state.counters["users"] = static_cast<double>(model.users());
  state.counters["items"] = static_cast<double>(model.items());
  state.counters["model_MB"] = static_cast<double>(model.MemoryBytes()) / 1e6;
}

ModelOptions Variant(const std::string& scorer, const std::string& loss, int64_t dim) {
  ModelOptions o;
  o.scorer = scorer;
  o.loss = loss;
  o.dim = dim;
  return o;
}

void Register(const std::string& scorer, const std::string& loss, int64_t dim, bool is_default,
              bool prefetch = false) {
  const std::string name = "BM_Learn/" + scorer + "/" + loss + "/d" + std::to_string(dim) +
                           (prefetch ? "/prefetch" : "");
  auto* b =
      benchmark::RegisterBenchmark(name.c_str(), BM_Learn, Variant(scorer, loss, dim), prefetch);
  // A fixed iteration count makes every run exactly one pass of the stream.
  b->Unit(benchmark::kMillisecond)->Iterations(static_cast<int64_t>(kStreamEvents / kBatch));
  if (is_default) b->Repetitions(5)->ReportAggregatesOnly(true);
}

}  // namespace

int main(int argc, char** argv) {
  const ModelOptions d;  // the default configuration: hybrid, bpr, d=64
  Register(d.scorer, d.loss, d.dim, /*is_default=*/true);
  Register(d.scorer, d.loss, d.dim, /*is_default=*/true, /*prefetch=*/true);
  Register("embedding", d.loss, d.dim, false);
  for (const char* loss : {"softmax", "triplet", "contrastive"}) {
    Register(d.scorer, loss, d.dim, false);
  }
  for (int64_t dim : {32, 128}) Register(d.scorer, d.loss, dim, false);

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
