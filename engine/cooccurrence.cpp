#include "engine/cooccurrence.hpp"

#include <algorithm>
#include <cmath>

namespace simstream::engine {
namespace {
inline size_t Slot(uint32_t key, size_t mask) {
  // Fibonacci hashing spreads sequential ids over the table.
  return static_cast<size_t>((static_cast<uint64_t>(key) * 0x9E3779B97F4A7C15ULL) >> 32) & mask;
}
}  // namespace

void SparseRow::Rehash(size_t capacity) {
  std::vector<Entry> old = std::move(slots_);
  slots_.assign(capacity, Entry{kEmpty, 0.0f});
  const size_t mask = capacity - 1;
  for (const Entry& e : old) {
    if (e.key == kEmpty) continue;
    size_t s = Slot(e.key, mask);
    while (slots_[s].key != kEmpty) s = (s + 1) & mask;
    slots_[s] = e;
  }
}

float SparseRow::Add(uint32_t key, float delta) {
  if (slots_.empty()) Rehash(8);
  if ((size_ + 1) * 4 > slots_.size() * 3) Rehash(slots_.size() * 2);
  const size_t mask = slots_.size() - 1;
  size_t s = Slot(key, mask);
  while (slots_[s].key != kEmpty && slots_[s].key != key) s = (s + 1) & mask;
  if (slots_[s].key == kEmpty) {
    slots_[s] = Entry{key, 0.0f};
    ++size_;
  }
  slots_[s].val += delta;
  return slots_[s].val;
}

void SparseRow::Set(uint32_t key, float value) {
  Add(key, 0.0f);
  const size_t mask = slots_.size() - 1;
  size_t s = Slot(key, mask);
  while (slots_[s].key != key) s = (s + 1) & mask;
  slots_[s].val = value;
}

float SparseRow::Get(uint32_t key) const {
  if (slots_.empty()) return 0.0f;
  const size_t mask = slots_.size() - 1;
  size_t s = Slot(key, mask);
  while (slots_[s].key != kEmpty) {
    if (slots_[s].key == key) return slots_[s].val;
    s = (s + 1) & mask;
  }
  return 0.0f;
}

void SparseRow::PrefetchSlot(uint32_t key) const {
  if (!slots_.empty()) __builtin_prefetch(&slots_[Slot(key, slots_.size() - 1)]);
}

void SparseRow::PruneTo(size_t keep) {
  if (size_ <= keep) return;
  std::vector<std::pair<float, uint32_t>> entries;
  entries.reserve(size_);
  ForEach([&](uint32_t k, float v) { entries.emplace_back(v, k); });
  // Keys are unique, so the order is total and the `keep` first are one set, whatever the
  // algorithm: a selection (linear) rather than a sort.
  std::nth_element(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(keep),
                   entries.end(), [](const auto& a, const auto& b) {
                     return a.first != b.first ? a.first > b.first : a.second < b.second;
                   });
  entries.resize(keep);
  size_t cap = 8;
  while (cap * 3 < keep * 4 + 4) cap *= 2;
  slots_.assign(cap, Entry{kEmpty, 0.0f});
  size_ = 0;
  // Re-insert in key order so the layout does not depend on the order the selection left.
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  for (const auto& [v, k] : entries) Add(k, v);
}

void CooccurrenceGraph::Link(uint32_t item, std::span<const uint32_t> recent, float w,
                             std::vector<uint32_t>* pruned, std::vector<float>* weights) {
  counts_[item] += w;
  norms_[item] = NormOf(counts_[item]);
  for (uint32_t other : recent) {
    if (other == item) continue;
    const float forward = rows_[item].Add(other, w);
    const float backward = rows_[other].Add(item, w);
    if (weights) weights->insert(weights->end(), {forward, backward});
    // Prune with slack (to 3/4 of the cap) so pruning cost is amortised.
    if (rows_[other].size() > max_row_) {
      rows_[other].PruneTo(max_row_ * 3 / 4);
      if (pruned) pruned->push_back(other);
    }
  }
  if (rows_[item].size() > max_row_) {
    rows_[item].PruneTo(max_row_ * 3 / 4);
    if (pruned) pruned->push_back(item);
  }
}

void CooccurrenceGraph::PrefetchRows(uint32_t item, std::span<const uint32_t> recent) const {
  if (item >= rows_.size()) return;
  __builtin_prefetch(&rows_[item]);
  for (uint32_t other : recent) {
    if (other < rows_.size()) __builtin_prefetch(&rows_[other]);
  }
}

void CooccurrenceGraph::PrefetchLink(uint32_t item, std::span<const uint32_t> recent) const {
  if (item >= rows_.size()) return;
  for (uint32_t other : recent) {
    if (other == item || other >= rows_.size()) continue;
    rows_[item].PrefetchSlot(other);
    rows_[other].PrefetchSlot(item);
  }
}

float CooccurrenceGraph::Cosine(uint32_t a, uint32_t b) const {
  const float w = Weight(a, b);
  if (w == 0.0f) return 0.0f;
  return w * Norm(a) * Norm(b);
}

void CooccurrenceGraph::StrongestNeighbours(uint32_t item, size_t n, size_t limit,
                                            std::vector<Scored>& out) const {
  out.clear();
  if (item >= rows_.size() || n == 0) return;
  const float norm = Norm(item);
  // w × Norm(item) × Norm(j), in Cosine()'s order of operations: the same float.
  rows_[item].ForEach([&](uint32_t j, float w) {
    if (j < limit) out.push_back({j, w * norm * Norm(j)});
  });
  out = TopK(std::move(out), n);
}

void NeighbourLists::Append(std::span<const Scored> list) {
  const size_t n = std::min(list.size(), per_item_);
  entries_.insert(entries_.end(), list.begin(), list.begin() + static_cast<std::ptrdiff_t>(n));
  begin_.push_back(static_cast<uint32_t>(entries_.size()));
}

size_t CooccurrenceGraph::MemoryBytes() const {
  size_t total = counts_.capacity() * sizeof(double) + norms_.capacity() * sizeof(float) +
                 rows_.capacity() * sizeof(SparseRow);
  for (const auto& r : rows_) total += r.MemoryBytes();
  return total;
}

}  // namespace simstream::engine
