#include "engine/edge_sort.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

namespace simstream::engine {
namespace {
// The sort key as one integer: a in the high half, b in the low half.
inline uint64_t KeyOf(const EdgeState& e) {
  return uint64_t{e.a} << 32 | e.b;
}
}  // namespace

void SortEdges(std::span<EdgeState> edges, std::vector<EdgeState>& scratch) {
  const size_t n = edges.size();
  if (n < 2) return;
  if (n < 256) {  // not worth the histograms; stable, as the radix sort below is
    std::stable_sort(edges.begin(), edges.end(),
                     [](const EdgeState& x, const EdgeState& y) { return KeyOf(x) < KeyOf(y); });
    return;
  }
  // One pass counts the bytes of every key position; a position where all n keys share one
  // byte leaves the order as it is and is skipped.
  std::array<std::array<size_t, 256>, 8> counts{};
  for (const EdgeState& e : edges) {
    const uint64_t k = KeyOf(e);
    for (size_t d = 0; d < 8; ++d) ++counts[d][(k >> (8 * d)) & 0xFF];
  }
  scratch.resize(n);
  EdgeState* from = edges.data();
  EdgeState* to = scratch.data();
  for (size_t d = 0; d < 8; ++d) {
    auto& c = counts[d];
    if (std::find(c.begin(), c.end(), n) != c.end()) continue;  // one byte value for all
    size_t offset = 0;
    for (size_t& x : c) offset += std::exchange(x, offset);  // counts -> start offsets
    for (size_t i = 0; i < n; ++i) to[c[(KeyOf(from[i]) >> (8 * d)) & 0xFF]++] = from[i];
    std::swap(from, to);
  }
  if (from != edges.data()) std::copy(from, from + n, edges.data());
}

size_t KeepLastPerEdge(std::span<EdgeState> edges) {
  size_t kept = 0;
  for (size_t i = 0; i < edges.size(); ++i) {
    const bool last = i + 1 == edges.size() || KeyOf(edges[i + 1]) != KeyOf(edges[i]);
    if (last) edges[kept++] = edges[i];
  }
  return kept;
}

}  // namespace simstream::engine
