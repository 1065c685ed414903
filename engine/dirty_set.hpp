// A set of 64-bit keys for change tracking (the dirty co-occurrence edges between flushes).
//
// Open addressing with linear probing in one flat array: marking a key on the learner's hot
// path allocates nothing, and taking the keys is one sequential scan. It replaced an
// std::unordered_set<uint64_t>, whose node per key cost an allocation per marked edge in
// Observe() and, at a flush of ~570k edges, a pointer chase to count, copy and free every node
// (90 % of TakeChanges' time, under the engine's lock). The capacity is kept across Clear(), so
// a steady stream allocates nothing at all; it shrinks when a burst has left it far too large.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace simstream::engine {

class DirtyKeySet {
 public:
  // The one key that cannot be stored (the empty slot): edge (2^32 - 1, 2^32 - 1). SparseRow
  // reserves index 2^32 - 1 too, so no item has it.
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  void Insert(uint64_t key) {
    if ((size_ + 1) * 2 > slots_.size()) Grow();  // load factor <= 1/2: short probes
    const size_t mask = slots_.size() - 1;
    for (size_t i = Hash(key) & mask;; i = (i + 1) & mask) {
      if (slots_[i] == key) return;
      if (slots_[i] == kEmpty) {
        slots_[i] = key;
        ++size_;
        return;
      }
    }
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Appends every key to `out`, in no particular order.
  void AppendTo(std::vector<uint64_t>& out) const {
    if (size_ == 0) return;
    out.reserve(out.size() + size_);
    for (uint64_t k : slots_)
      if (k != kEmpty) out.push_back(k);
  }
  void Clear() {
    if (size_ == 0) return;
    if (slots_.size() > kMinSlots && size_ * 16 < slots_.size()) {
      slots_.assign(slots_.size() / 4, kEmpty);  // a burst is over: give most of it back
    } else {
      std::fill(slots_.begin(), slots_.end(), kEmpty);
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
    std::vector<uint64_t> old(std::max(kMinSlots, slots_.size() * 2), kEmpty);
    old.swap(slots_);
    size_ = 0;
    for (uint64_t k : old)
      if (k != kEmpty) Insert(k);
  }

  std::vector<uint64_t> slots_;  // size 0 or a power of two
  size_t size_ = 0;
};

}  // namespace simstream::engine
