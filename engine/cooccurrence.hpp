// A sparse, weighted item co-occurrence graph built from the stream: when a user interacts
// with item j, j is linked to the user's most recent items. Rows are open-addressing hash
// maps; each row keeps at most `max_row` neighbours (the weakest are pruned), so memory
// stays bounded on a stream that runs for months.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "engine/topk.hpp"

namespace simstream::engine {

// uint32 -> float map with linear probing. Iteration order is the slot order, which depends
// only on the sequence of operations, so it is deterministic.
class SparseRow {
 public:
  static constexpr uint32_t kEmpty = 0xFFFFFFFFu;

  // Adds `delta` to the value of `key` (inserting it at 0) and returns the new value.
  float Add(uint32_t key, float delta);
  // Sets the value of `key` (inserting it); storage restore.
  void Set(uint32_t key, float value);
  float Get(uint32_t key) const;
  size_t size() const { return size_; }
  // Calls f(key, value) for every entry.
  template <typename F>
  void ForEach(F&& f) const {
    for (const Entry& e : slots_)
      if (e.key != kEmpty) f(e.key, e.val);
  }
  // Cache hint for the slot a lookup of `key` probes first.
  void PrefetchSlot(uint32_t key) const;
  // Keeps the `keep` entries of largest value (ties: smaller key kept).
  void PruneTo(size_t keep);
  size_t MemoryBytes() const { return slots_.capacity() * sizeof(Entry); }

 private:
  void Rehash(size_t capacity);
  // Key and value side by side: a probe touches one cache line, not two.
  struct Entry {
    uint32_t key;
    float val;
  };
  std::vector<Entry> slots_;
  size_t size_ = 0;
};

class CooccurrenceGraph {
 public:
  // `shrinkage` s: see Cosine().
  explicit CooccurrenceGraph(size_t max_row = 2000, float shrinkage = 0.0f)
      : max_row_(max_row), shrinkage_(shrinkage) {}
  void EnsureItems(size_t n) {
    if (rows_.size() < n) rows_.resize(n), counts_.resize(n, 0.0), norms_.resize(n, 0.0f);
  }
  // Records an interaction with `item` after `recent` (most recent first): symmetric links of
  // weight `w` to each. `count` of the item grows by w. Rows that were pruned (lost entries)
  // are appended to `pruned` when it is given. `weights`, when given, gets the new weights
  // w(item, j) and w(j, item) of each linked j (each j of `recent` but `item`, in order), as
  // they were before any pruning.
  void Link(uint32_t item, std::span<const uint32_t> recent, float w,
            std::vector<uint32_t>* pruned = nullptr, std::vector<float>* weights = nullptr);
  // Cache hints for Link(item, recent): the rows' headers (PrefetchRows), which locate their
  // slots, then the slots it probes first in both directions (PrefetchLink).
  void PrefetchRows(uint32_t item, std::span<const uint32_t> recent) const;
  void PrefetchLink(uint32_t item, std::span<const uint32_t> recent) const;
  // Restores state (storage load): the count of an item, one directed edge.
  void SetCount(uint32_t item, double count) {
    counts_[item] = count;
    norms_[item] = NormOf(count);
  }
  void SetEdge(uint32_t a, uint32_t b, float w) { rows_[a].Set(b, w); }
  float Weight(uint32_t a, uint32_t b) const { return a < rows_.size() ? rows_[a].Get(b) : 0.0f; }
  double Count(uint32_t item) const { return item < counts_.size() ? counts_[item] : 0.0; }
  const SparseRow& Row(uint32_t item) const { return rows_[item]; }
  size_t items() const { return rows_.size(); }
  // Cosine-normalised link weight with support shrinkage s:
  // w(a,b) / sqrt((count(a) + s) (count(b) + s)); 0 when a or b was never counted.
  float Cosine(uint32_t a, uint32_t b) const;
  // 1 / sqrt(count(a) + s), 0 for an item never counted: the per-item factor of Cosine
  // (kept up to date with the counts, so queries do no square roots).
  float Norm(uint32_t a) const { return a < norms_.size() ? norms_[a] : 0.0f; }
  // The up to `n` neighbours j < `limit` of `item` of largest Cosine(item, j), strongest first
  // (ties: smaller id), into `out` (cleared first). Cost: the size of the row.
  void StrongestNeighbours(uint32_t item, size_t n, size_t limit, std::vector<Scored>& out) const;
  size_t MemoryBytes() const;

 private:
  float NormOf(double count) const {
    return count > 0.0 ? static_cast<float>(1.0 / std::sqrt(count + double{shrinkage_})) : 0.0f;
  }

  size_t max_row_;
  float shrinkage_;
  std::vector<SparseRow> rows_;
  // Doubles: a float count stops growing at 2^24. Link weights, one per pair, stay floats.
  std::vector<double> counts_;
  std::vector<float> norms_;
};

// Each item's strongest neighbours in the graph (StrongestNeighbours) as of one instant, with
// their cosines then: the two-stage recommendations' neighbourhood candidates read these short
// lists instead of walking whole rows (up to 2,000 entries each) per query.
// Built off the learner's thread by the index maintainer (Engine,
// index.neighbour_lists_interval_ms) and replaced whole; a row that held fewer than per_item()
// entries when its list was built is walked live instead (Full()), so new and growing items are
// never missing.
class NeighbourLists {
 public:
  explicit NeighbourLists(size_t per_item) : per_item_(per_item) {}
  // Appends the list of item items() (the next one), strongest first, at most per_item() long.
  void Append(std::span<const Scored> list);
  size_t items() const { return begin_.size() - 1; }
  size_t per_item() const { return per_item_; }
  std::span<const Scored> Of(uint32_t item) const {
    return {entries_.data() + begin_[item], entries_.data() + begin_[item + 1]};
  }
  // Whether `item` has a list of per_item() entries (its row had at least that many).
  bool Full(uint32_t item) const {
    return item < items() && begin_[item + 1] - begin_[item] == per_item_;
  }
  // Gives back the capacity the appends left unused (once every item is appended).
  void ShrinkToFit() { begin_.shrink_to_fit(), entries_.shrink_to_fit(); }
  size_t MemoryBytes() const {
    return begin_.capacity() * sizeof(uint32_t) + entries_.capacity() * sizeof(Scored);
  }

 private:
  size_t per_item_;
  std::vector<uint32_t> begin_{0};  // item i's list: entries_[begin_[i], begin_[i + 1])
  std::vector<Scored> entries_;
};

}  // namespace simstream::engine
