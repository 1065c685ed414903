#include "engine/topk.hpp"

#include <algorithm>
#include <cassert>
#include <limits>

namespace simstream::engine {

std::vector<Scored> TopK(std::span<const float> scores, size_t k) {
  assert(scores.size() <= std::numeric_limits<uint32_t>::max());
  std::vector<Scored> heap;
  if (k == 0) return heap;
  heap.reserve(std::min(k, scores.size()));
  // With RanksBefore as the heap's "less", the front is the entry every other entry ranks
  // before: the current k-th best, i.e. the one to evict.
  for (size_t i = 0; i < scores.size(); ++i) {
    const float s = scores[i];
    if (IsMasked(s)) continue;
    const Scored entry{static_cast<uint32_t>(i), s};
    if (heap.size() < k) {
      heap.push_back(entry);
      std::push_heap(heap.begin(), heap.end(), RanksBefore);
    } else if (RanksBefore(entry, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), RanksBefore);
      heap.back() = entry;
      std::push_heap(heap.begin(), heap.end(), RanksBefore);
    }
  }
  std::sort_heap(heap.begin(), heap.end(), RanksBefore);
  return heap;
}

std::vector<Scored> TopK(std::vector<Scored> candidates, size_t k) {
  std::erase_if(candidates, [](const Scored& c) { return IsMasked(c.score); });
  if (candidates.size() > k) {
    std::nth_element(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(k),
                     candidates.end(), RanksBefore);
    candidates.resize(k);
  }
  std::sort(candidates.begin(), candidates.end(), RanksBefore);
  return candidates;
}

}  // namespace simstream::engine
