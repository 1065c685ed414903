// The co-occurrence edges changed between flushes, each with its weight as last changed.
//
// Open addressing with linear probing in flat arrays: marking an edge on the learner's hot path
// allocates nothing, and taking the edges is one sequential scan. It replaced an
// std::unordered_set<uint64_t>, whose node per key cost an allocation per marked edge in
// Observe() and, at a flush of ~570k edges, a pointer chase to count, copy and free every node
// (90 % of TakeChanges' time, under the engine's lock). The weight is stored beside the key, as
// the learner has it at hand when it changes: a flush then reads no graph row (one cold lookup
// per changed edge, ~300-600k per flush, which held the learner for most of a TakeChanges), and
// the whole map can be handed over under the lock in O(1) and read without it. The capacity is
// kept across Clear(), so a steady stream allocates nothing at all; it shrinks when a burst has
// left it far too large.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace simstream::engine {

class DirtyEdges {
 public:
  // The one key that cannot be stored (the empty slot): edge (2^32 - 1, 2^32 - 1). SparseRow
  // reserves index 2^32 - 1 too, so no item has it.
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t Key(uint32_t a, uint32_t b) { return uint64_t{a} << 32 | b; }

  // Records that edge `key` now has weight `w` (a later Set of the same key overwrites).
  void Set(uint64_t key, float w) {
    if ((size_ + 1) * 2 > keys_.size()) Grow();  // load factor <= 1/2: short probes
    const size_t mask = keys_.size() - 1;
    for (size_t i = Hash(key) & mask;; i = (i + 1) & mask) {
      if (keys_[i] == key) {
        weights_[i] = w;
        return;
      }
      if (keys_[i] == kEmpty) {
        keys_[i] = key;
        weights_[i] = w;
        ++size_;
        return;
      }
    }
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Calls f(key, weight) for every edge, in no particular order.
  template <typename F>
  void ForEach(F&& f) const {
    if (size_ == 0) return;
    for (size_t i = 0; i < keys_.size(); ++i)
      if (keys_[i] != kEmpty) f(keys_[i], weights_[i]);
  }
  void Clear() {
    if (size_ == 0) return;
    if (keys_.size() > kMinSlots && size_ * 16 < keys_.size()) {
      keys_.assign(keys_.size() / 4, kEmpty);  // a burst is over: give most of it back
      weights_.assign(keys_.size(), 0.0f);
      weights_.shrink_to_fit();
      keys_.shrink_to_fit();
    } else {
      std::fill(keys_.begin(), keys_.end(), kEmpty);
    }
    size_ = 0;
  }

 private:
  static constexpr size_t kMinSlots = 1024;
  static uint64_t Hash(uint64_t k) {  // MurmurHash3's finaliser: (a, b) pairs spread evenly
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
  }
  void Grow() {
    std::vector<uint64_t> old_keys(std::max(kMinSlots, keys_.size() * 2), kEmpty);
    std::vector<float> old_weights(old_keys.size(), 0.0f);
    old_keys.swap(keys_);
    old_weights.swap(weights_);
    size_ = 0;
    for (size_t i = 0; i < old_keys.size(); ++i)
      if (old_keys[i] != kEmpty) Set(old_keys[i], old_weights[i]);
  }

  std::vector<uint64_t> keys_;  // size 0 or a power of two
  std::vector<float> weights_;  // beside keys_, same size
  size_t size_ = 0;
};

}  // namespace simstream::engine
