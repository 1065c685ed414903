// The co-occurrence edges changed between flushes, each with its weight as last changed.
//
// Open addressing with linear probing in one flat array: marking an edge on the learner's hot path
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
    if ((size_ + 1) * 2 > slots_.size()) Grow();  // load factor <= 1/2: short probes
    const size_t mask = slots_.size() - 1;
    for (size_t i = Hash(key) & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.key == key) {
        s.w = w;
        return;
      }
      if (s.key == kEmpty) {
        s = Slot{key, w};
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
    for (const Slot& s : slots_)
      if (s.key != kEmpty) f(s.key, s.w);
  }
  void Clear() {
    if (size_ == 0) return;
    if (slots_.size() > kMinSlots && size_ * 16 < slots_.size()) {
      // A burst is over: give most of it back (assign alone would keep the capacity).
      std::vector<Slot>(slots_.size() / 4, Slot{}).swap(slots_);
    } else {
      std::fill(slots_.begin(), slots_.end(), Slot{});
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
    std::vector<Slot> old(std::max(kMinSlots, slots_.size() * 2), Slot{});
    old.swap(slots_);
    size_ = 0;
    for (const Slot& s : old)
      if (s.key != kEmpty) Set(s.key, s.w);
  }

  // Key and weight side by side: a probe touches one cache line, not two.
  struct Slot {
    uint64_t key = kEmpty;
    float w = 0.0f;
  };
  std::vector<Slot> slots_;  // size 0 or a power of two
  size_t size_ = 0;
};

}  // namespace simstream::engine
