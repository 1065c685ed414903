// SortEdges (LSD radix sort of a flush's edges) against std::stable_sort with the (a, b)
// comparator, on the shapes a flush produces and on the edge cases of the byte skipping.
#include "engine/edge_sort.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

namespace simstream::engine {
namespace {

std::vector<EdgeState> Twin(std::vector<EdgeState> edges) {
  std::stable_sort(edges.begin(), edges.end(), [](const EdgeState& x, const EdgeState& y) {
    return x.a != y.a ? x.a < y.a : x.b < y.b;
  });
  return edges;
}

void ExpectSame(const std::vector<EdgeState>& got, const std::vector<EdgeState>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].a, want[i].a) << "at " << i;
    ASSERT_EQ(got[i].b, want[i].b) << "at " << i;
    // The weight travels with its key (and equal keys keep their order: the sort is stable).
    ASSERT_EQ(got[i].w, want[i].w) << "at " << i;
  }
}

// Random edges with a and b below the given bounds; duplicates of (a, b) get distinct weights
// so stability shows.
std::vector<EdgeState> Random(size_t n, uint64_t a_bound, uint64_t b_bound, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<EdgeState> edges(n);
  for (size_t i = 0; i < n; ++i) {
    edges[i] = {static_cast<uint32_t>(rng() % a_bound), static_cast<uint32_t>(rng() % b_bound),
                static_cast<float>(i)};
  }
  return edges;
}

TEST(SortEdgesTest, MatchesStableSortOnFlushShapedAndExtremeKeys) {
  std::vector<EdgeState> scratch;
  struct Case {
    size_t n;
    uint64_t a_bound, b_bound;
  };
  for (const Case& c : {
           Case{0, 1, 1},                        // empty
           Case{1, 10, 10},                      // one edge
           Case{100, 20000, 20000},              // below the radix threshold
           Case{200, 4, 4},                      // below it, with duplicate keys (stability)
           Case{300000, 20000, 20000},           // a flush of a 20k-item catalogue
           Case{50000, 1, 1u << 20},             // one row: a never varies (its bytes skipped)
           Case{50000, 1u << 20, 1},             // b never varies
           Case{50000, 3, 5},                    // many duplicate keys
           Case{50000, 1ull << 32, 1ull << 32},  // full 32-bit ids: every byte varies
       }) {
    for (uint64_t seed : {1u, 2u}) {
      const auto edges = Random(c.n, c.a_bound, c.b_bound, seed);
      auto sorted = edges;
      SortEdges(sorted, scratch);
      ExpectSame(sorted, Twin(edges));
    }
  }
}

TEST(SortEdgesTest, SortsASubrangeOnlyAndReusesTheScratch) {
  std::vector<EdgeState> scratch;
  auto edges = Random(10000, 500, 500, 9);
  const std::vector<EdgeState> head(edges.begin(), edges.begin() + 1000);
  SortEdges(std::span(edges).subspan(1000), scratch);
  ExpectSame(std::vector<EdgeState>(edges.begin(), edges.begin() + 1000), head);
  ExpectSame(std::vector<EdgeState>(edges.begin() + 1000, edges.end()),
             Twin(std::vector<EdgeState>(edges.begin() + 1000, edges.end())));
  // Already sorted input and a second call with the same scratch.
  auto again = edges;
  SortEdges(again, scratch);
  SortEdges(again, scratch);
  ExpectSame(again, Twin(edges));
}

}  // namespace
}  // namespace simstream::engine
