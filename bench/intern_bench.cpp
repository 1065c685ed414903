// Id interning, as Engine::ApplySlice does it for every event (a user id and an item id):
//   BM_Intern/node_map       the design before session 11: std::unordered_map<string, index>
//   BM_Intern/flat           IdInterner, one lookup after another
//   BM_Intern/flat_hinted    IdInterner in ApplySlice's three passes over a 32-event slice
//                            (hash + hint the slots, hint the stored ids, intern)
// Each over a warm table of `users` ids (the argument) and 20k items, looked up in random order;
// compare items_per_second (events, two lookups each). Run: build-x/bench/intern_bench
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/interner.hpp"

namespace {

using simstream::engine::IdInterner;

constexpr size_t kSlice = 32;
constexpr size_t kItems = 20000;
constexpr size_t kEvents = 1 << 16;

// The replaced interner's lookup structure (ids stored in the map's nodes).
struct NodeMap {
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<std::string> ids;
  std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>> index;
  uint32_t Intern(std::string_view id) {
    auto it = index.find(id);
    if (it != index.end()) return it->second;
    const auto idx = static_cast<uint32_t>(ids.size());
    ids.emplace_back(id);
    index.emplace(ids.back(), idx);
    return idx;
  }
};

struct Workload {
  std::vector<std::string> users, items;
  // (user id, item id) of each event, random ids in stream order: read sequentially, as a
  // batch's events are.
  std::vector<std::pair<std::string, std::string>> events;
};

Workload Make(size_t n_users) {
  Workload w;
  for (size_t u = 0; u < n_users; ++u) w.users.push_back("user-" + std::to_string(u));
  for (size_t i = 0; i < kItems; ++i) w.items.push_back("item-" + std::to_string(i));
  std::mt19937 rng(7);
  for (size_t e = 0; e < kEvents; ++e) {
    w.events.emplace_back(w.users[rng() % n_users], w.items[rng() % kItems]);
  }
  return w;
}

template <typename Table>
void Warm(Table& users, Table& items, const Workload& w) {
  for (const auto& id : w.users) users.Intern(id);
  for (const auto& id : w.items) items.Intern(id);
}

// One lookup after another.
template <typename Table>
void BM_InternOneByOne(benchmark::State& state) {
  const Workload w = Make(static_cast<size_t>(state.range(0)));
  Table users, items;
  Warm(users, items, w);
  uint64_t sum = 0;
  size_t at = 0;
  for (auto _ : state) {
    const auto& [u, i] = w.events[at++ % kEvents];
    sum += users.Intern(u) + items.Intern(i);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  benchmark::DoNotOptimize(sum);
}

// One iteration is a slice of kSlice events, as ApplySlice interns it (items_per_second counts
// events, as in the one-by-one variants).
void BM_InternFlatHinted(benchmark::State& state) {
  const Workload w = Make(static_cast<size_t>(state.range(0)));
  IdInterner users, items;
  Warm(users, items, w);
  std::vector<std::pair<uint64_t, uint64_t>> hashes;
  uint64_t sum = 0;
  size_t at = 0;
  for (auto _ : state) {
    const size_t from = (at += kSlice) % kEvents;
    simstream::engine::HintPairs(
        users, items, kSlice,
        [&](size_t k) {
          const auto& [u, i] = w.events[from + k];
          return std::pair<std::string_view, std::string_view>(u, i);
        },
        hashes);
    for (size_t k = 0; k < kSlice; ++k) {
      const auto& [u, i] = w.events[from + k];
      sum += users.Intern(u, hashes[k].first) + items.Intern(i, hashes[k].second);
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kSlice));
  benchmark::DoNotOptimize(sum);
}

}  // namespace

BENCHMARK(BM_InternOneByOne<NodeMap>)
    ->Name("BM_Intern/node_map")
    ->ArgName("users")
    ->Arg(50000)
    ->Arg(1000000);
BENCHMARK(BM_InternOneByOne<IdInterner>)
    ->Name("BM_Intern/flat")
    ->ArgName("users")
    ->Arg(50000)
    ->Arg(1000000);
BENCHMARK(BM_InternFlatHinted)
    ->Name("BM_Intern/flat_hinted")
    ->ArgName("users")
    ->Arg(50000)
    ->Arg(1000000);

BENCHMARK_MAIN();
