// SparseRow and CooccurrenceGraph against std::map twins.
#include "engine/cooccurrence.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "engine/dirty_set.hpp"
#include "engine/edge_sort.hpp"

namespace simstream::engine {
namespace {

std::map<uint32_t, float> Contents(const SparseRow& row) {
  std::map<uint32_t, float> out;
  row.ForEach([&](uint32_t k, float v) {
    EXPECT_TRUE(out.emplace(k, v).second) << "key " << k << " visited twice";
  });
  return out;
}

TEST(SparseRowTest, EmptyRow) {
  SparseRow row;
  EXPECT_EQ(row.size(), 0u);
  EXPECT_EQ(row.Get(0), 0.0f);
  EXPECT_EQ(row.Get(12345), 0.0f);
  EXPECT_TRUE(Contents(row).empty());
  row.PruneTo(0);
  EXPECT_EQ(row.size(), 0u);
}

TEST(SparseRowTest, HandCase) {
  SparseRow row;
  row.Add(7, 1.0f);
  row.Add(3, 2.5f);
  row.Add(7, 0.5f);
  EXPECT_EQ(row.size(), 2u);
  EXPECT_EQ(row.Get(7), 1.5f);
  EXPECT_EQ(row.Get(3), 2.5f);
  EXPECT_EQ(row.Get(4), 0.0f);
}

// Random Add/Get sequences, over key ranges from dense (many repeats) to sparse (growth and
// rehash up to thousands of entries); every value must equal the map's, which adds the same
// float deltas in the same order.
TEST(SparseRowTest, MatchesStdMapUnderRandomAddGet) {
  std::mt19937_64 rng(123);
  for (uint32_t key_range : {4u, 50u, 3000u, 1u << 30}) {
    SparseRow row;
    std::map<uint32_t, float> twin;
    std::uniform_int_distribution<uint32_t> key(0, key_range - 1);
    std::uniform_real_distribution<float> delta(-1.0f, 3.0f);
    for (int step = 0; step < 6000; ++step) {
      const uint32_t k = key(rng);
      const float d = delta(rng);
      const float now = row.Add(k, d);
      twin[k] += d;
      ASSERT_EQ(now, twin[k]) << "Add returns the new value";
      ASSERT_EQ(row.size(), twin.size());
      // Probe a present key and a random (often absent) one.
      ASSERT_EQ(row.Get(k), twin[k]);
      const uint32_t probe = key(rng);
      const auto it = twin.find(probe);
      ASSERT_EQ(row.Get(probe), it == twin.end() ? 0.0f : it->second);
    }
    EXPECT_EQ(Contents(row), twin) << "key range " << key_range;
  }
}

// PruneTo keeps exactly the `keep` largest values, ties broken towards the smaller key,
// compared with a sorted vector; the surviving values are untouched and the row stays usable.
TEST(SparseRowTest, PruneToKeepsTopByValueThenKey) {
  std::mt19937_64 rng(9);
  for (int trial = 0; trial < 200; ++trial) {
    SparseRow row;
    std::map<uint32_t, float> twin;
    const int n = 1 + static_cast<int>(rng() % 300);
    // Few distinct values so that ties are common.
    const int distinct_values = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < n; ++i) {
      const auto k = static_cast<uint32_t>(rng() % 1000);
      const auto v = static_cast<float>(rng() % static_cast<uint64_t>(distinct_values)) - 1.0f;
      row.Add(k, v);
      twin[k] += v;
    }
    const size_t keep = rng() % (twin.size() + 3);
    std::vector<std::pair<float, uint32_t>> sorted;
    for (const auto& [k, v] : twin) sorted.emplace_back(v, k);
    std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    std::map<uint32_t, float> expected;
    for (size_t i = 0; i < std::min(keep, sorted.size()); ++i) {
      expected[sorted[i].second] = sorted[i].first;
    }
    row.PruneTo(keep);
    ASSERT_EQ(row.size(), expected.size()) << "trial " << trial << " keep " << keep;
    ASSERT_EQ(Contents(row), expected) << "trial " << trial << " keep " << keep;
    for (const auto& [k, v] : twin) {
      ASSERT_EQ(row.Get(k), expected.contains(k) ? v : 0.0f);
    }
    // Still a working map after the rebuild.
    for (int i = 0; i < 100; ++i) {
      const auto k = static_cast<uint32_t>(rng() % 2000);
      row.Add(k, 1.0f);
      expected[k] += 1.0f;
    }
    ASSERT_EQ(Contents(row), expected) << "trial " << trial;
  }
}

TEST(SparseRowTest, PruneHandCase) {
  SparseRow row;
  row.Add(5, 1.0f);
  row.Add(2, 3.0f);
  row.Add(9, 1.0f);
  row.Add(1, 0.5f);
  row.PruneTo(2);  // 2 (3.0) then the tie 5/9 at 1.0 goes to the smaller key
  EXPECT_EQ(Contents(row), (std::map<uint32_t, float>{{2, 3.0f}, {5, 1.0f}}));
}

// Link against a naive recomputation from the same link sequence (no pruning happens).
TEST(CooccurrenceGraphTest, LinkMatchesNaiveMap) {
  std::mt19937_64 rng(31);
  constexpr uint32_t kItems = 60;
  CooccurrenceGraph graph(/*max_row=*/100000);
  graph.EnsureItems(kItems);
  std::map<std::pair<uint32_t, uint32_t>, float> weight;
  std::map<uint32_t, float> count;
  for (int step = 0; step < 3000; ++step) {
    const auto item = static_cast<uint32_t>(rng() % kItems);
    // Recent items may repeat and may contain the item itself (which is skipped).
    std::vector<uint32_t> recent(rng() % 8);
    for (auto& r : recent) r = static_cast<uint32_t>(rng() % kItems);
    const float w = (rng() % 2 == 0) ? 1.0f : 0.5f;
    std::vector<float> reported{-1.0f};  // Link appends: what was there stays
    graph.Link(item, recent, w, nullptr, &reported);
    count[item] += w;
    std::vector<float> want{-1.0f};
    for (uint32_t other : recent) {
      if (other == item) continue;
      want.push_back(weight[{item, other}] += w);
      want.push_back(weight[{other, item}] += w);
    }
    ASSERT_EQ(reported, want) << "step " << step;
  }
  for (uint32_t a = 0; a < kItems; ++a) {
    EXPECT_EQ(graph.Count(a), count[a]);
    EXPECT_EQ(graph.Row(a).size(),
              static_cast<size_t>(std::count_if(weight.begin(), weight.end(), [&](const auto& e) {
                return e.first.first == a;
              })));
    for (uint32_t b = 0; b < kItems; ++b) {
      const auto it = weight.find({a, b});
      const float want = it == weight.end() ? 0.0f : it->second;
      ASSERT_EQ(graph.Weight(a, b), want) << a << "," << b;
      ASSERT_EQ(graph.Weight(a, b), graph.Weight(b, a));
      const double ca = std::max<double>(count[a], 1e-6), cb = std::max<double>(count[b], 1e-6);
      const double cos = want == 0.0f ? 0.0 : want / std::sqrt(ca * cb);
      ASSERT_NEAR(graph.Cosine(a, b), cos, 1e-6 * (1.0 + std::abs(cos))) << a << "," << b;
    }
  }
  // Out of range: nothing.
  EXPECT_EQ(graph.Weight(kItems + 5, 0), 0.0f);
  EXPECT_EQ(graph.Count(kItems + 5), 0.0f);
}

// StrongestNeighbours and the lists built from it against a scan of Cosine(i, j) over every j,
// sorted: rows pruned and not, lists cut at per_item() and shorter ones left short.
TEST(NeighbourListsTest, HoldEachRowsStrongestEntriesByCosine) {
  std::mt19937_64 rng(37);
  constexpr uint32_t kItems = 80;
  constexpr size_t kPerItem = 12;
  CooccurrenceGraph graph(/*max_row=*/20);
  graph.EnsureItems(kItems);
  for (int step = 0; step < 600; ++step) {
    // Skewed: low ids link often (full, pruned rows), high ids rarely (short rows).
    const auto item = static_cast<uint32_t>(rng() % (1 + rng() % kItems));
    std::vector<uint32_t> recent(rng() % 6);
    for (auto& r : recent) r = static_cast<uint32_t>(rng() % (1 + rng() % kItems));
    graph.Link(item, recent, (rng() % 2 == 0) ? 1.0f : 0.5f);
  }
  NeighbourLists lists(kPerItem);
  std::vector<Scored> row;
  size_t full = 0, short_lists = 0;
  for (uint32_t i = 0; i < kItems; ++i) {
    graph.StrongestNeighbours(i, kPerItem, kItems, row);
    lists.Append(row);
    std::vector<Scored> want;
    for (uint32_t j = 0; j < kItems; ++j) {
      if (graph.Weight(i, j) != 0.0f) want.push_back({j, graph.Cosine(i, j)});
    }
    std::sort(want.begin(), want.end(), RanksBefore);
    if (want.size() > kPerItem) want.resize(kPerItem);
    ASSERT_EQ(row, want) << "item " << i;
    const auto got = lists.Of(i);
    ASSERT_EQ(std::vector<Scored>(got.begin(), got.end()), want) << "item " << i;
    EXPECT_EQ(lists.Full(i), graph.Row(i).size() >= kPerItem) << "item " << i;
    (lists.Full(i) ? full : short_lists) += 1;
  }
  EXPECT_EQ(lists.items(), kItems);
  EXPECT_FALSE(lists.Full(kItems));  // past the end: not listed
  EXPECT_GT(full, 10u);
  EXPECT_GT(short_lists, 10u);
  // A limit leaves out the neighbours at or above it.
  graph.StrongestNeighbours(0, kItems, /*limit=*/10, row);
  for (const Scored& s : row) EXPECT_LT(s.id, 10u);
}

TEST(CooccurrenceGraphTest, HandCase) {
  CooccurrenceGraph graph;
  graph.EnsureItems(4);
  const std::vector<uint32_t> none;
  const std::vector<uint32_t> after0 = {0};
  const std::vector<uint32_t> after10 = {1, 0};
  graph.Link(0, none, 1.0f);     // count(0) = 1
  graph.Link(1, after0, 1.0f);   // 1-0
  graph.Link(2, after10, 1.0f);  // 2-1, 2-0
  graph.Link(1, after0, 1.0f);   // 1-0 again
  EXPECT_EQ(graph.Count(0), 1.0f);
  EXPECT_EQ(graph.Count(1), 2.0f);
  EXPECT_EQ(graph.Weight(0, 1), 2.0f);
  EXPECT_EQ(graph.Weight(2, 0), 1.0f);
  EXPECT_EQ(graph.Weight(3, 0), 0.0f);
  EXPECT_FLOAT_EQ(graph.Cosine(0, 1), 2.0f / std::sqrt(2.0f));
  EXPECT_FLOAT_EQ(graph.Cosine(2, 1), 1.0f / std::sqrt(2.0f));
  EXPECT_EQ(graph.Cosine(3, 1), 0.0f);
}

// Counts are doubles: a float count stops at 2^24 and rounds a 0.5 weight away from 2^23 on.
TEST(CooccurrenceGraphTest, CountsKeepGrowingPastWhereAFloatStops) {
  CooccurrenceGraph graph(/*max_row=*/16);
  graph.EnsureItems(3);
  graph.SetCount(0, 16777216.0);  // 2^24
  graph.SetCount(2, 8388608.0);   // 2^23
  const uint32_t after_zero[] = {1};
  graph.Link(0, after_zero, 1.0f);
  graph.Link(2, after_zero, 0.5f);
  EXPECT_EQ(graph.Count(0), 16777217.0);
  EXPECT_EQ(graph.Count(2), 8388608.5);
  EXPECT_EQ(graph.Count(1), 0.0) << "the other end's count grows with its own events only";
  EXPECT_FLOAT_EQ(graph.Norm(0), static_cast<float>(1.0 / std::sqrt(16777217.0)));
}

// With pruning, rows stay bounded; surviving weights never exceed the unpruned weights
// (a pruned link restarts from zero when it comes back).
TEST(CooccurrenceGraphTest, PruningBoundsRows) {
  std::mt19937_64 rng(4);
  constexpr uint32_t kItems = 400;
  constexpr size_t kMaxRow = 40;
  CooccurrenceGraph graph(kMaxRow);
  graph.EnsureItems(kItems);
  std::map<std::pair<uint32_t, uint32_t>, float> weight;
  for (int step = 0; step < 5000; ++step) {
    // Skewed items so that some rows overflow.
    const auto item = static_cast<uint32_t>((rng() % kItems) * (rng() % kItems) / kItems);
    std::vector<uint32_t> recent(rng() % 10);
    for (auto& r : recent) r = static_cast<uint32_t>(rng() % kItems);
    graph.Link(item, recent, 1.0f);
    for (uint32_t other : recent) {
      if (other == item) continue;
      weight[{item, other}] += 1.0f;
      weight[{other, item}] += 1.0f;
    }
  }
  size_t max_size = 0;
  for (uint32_t a = 0; a < kItems; ++a) {
    max_size = std::max(max_size, graph.Row(a).size());
    EXPECT_LE(graph.Row(a).size(), kMaxRow);
    graph.Row(a).ForEach([&](uint32_t b, float w) {
      EXPECT_GT(w, 0.0f);
      EXPECT_LE(w, (weight[{a, b}]));
    });
  }
  EXPECT_GE(max_size, kMaxRow * 3 / 4);  // pruning did happen
}

// EdgeLog collapsed the way a flush does (SortEdges, then KeepLastPerEdge) against an
// std::map twin that keeps the last weight of each edge: across rounds of very different sizes,
// including the burst whose Clear() gives memory back, and the extreme keys.
TEST(EdgeLogTest, CollapsedLogMatchesALastWriteWinsMapAcrossClears) {
  std::mt19937_64 rng(77);
  EdgeLog log;
  std::map<std::pair<uint32_t, uint32_t>, float> twin;
  std::vector<EdgeState> scratch;
  auto collapsed = [&] {
    std::vector<EdgeState> e(log.entries().begin(), log.entries().end());
    SortEdges(e, scratch);
    e.resize(KeepLastPerEdge(e));
    std::map<std::pair<uint32_t, uint32_t>, float> out;
    for (const EdgeState& x : e) {
      EXPECT_TRUE(out.emplace(std::pair(x.a, x.b), x.w).second) << x.a << "," << x.b << " twice";
    }
    EXPECT_TRUE(std::is_sorted(e.begin(), e.end(), [](const EdgeState& x, const EdgeState& y) {
      return std::pair(x.a, x.b) < std::pair(y.a, y.b);
    }));
    return out;
  };
  for (size_t round_size : {10u, 5000u, 2000000u, 30u, 3000u, 0u, 70000u}) {
    for (size_t n = 0; n < round_size; ++n) {
      // Few distinct a, many b, and many repeats: the same edge is logged again and again with
      // weights that go up and down (a pruned edge can come back lighter).
      const auto a = static_cast<uint32_t>(rng() % 97);
      const auto b = static_cast<uint32_t>(rng() % (round_size / 4 + 1));
      const float w = static_cast<float>(rng() % 1000) / 8.0f;
      log.Add(a, b, w);
      twin[{a, b}] = w;
    }
    ASSERT_EQ(log.size(), round_size);
    ASSERT_EQ(log.empty(), round_size == 0);
    ASSERT_EQ(collapsed(), twin) << "round of " << round_size;
    log.Clear();
    twin.clear();
    ASSERT_TRUE(log.empty());
    ASSERT_TRUE(collapsed().empty());
  }
  log.Add(0xFFFFFFFFu, 0xFFFFFFFEu, 3.0f);
  log.Add(0xFFFFFFFEu, 0xFFFFFFFFu, 1.0f);
  log.Add(0xFFFFFFFEu, 0xFFFFFFFFu, 2.0f);
  EXPECT_EQ(collapsed(),
            (std::map<std::pair<uint32_t, uint32_t>, float>{{{0xFFFFFFFEu, 0xFFFFFFFFu}, 2.0f},
                                                            {{0xFFFFFFFFu, 0xFFFFFFFEu}, 3.0f}}));
}

}  // namespace
}  // namespace simstream::engine
