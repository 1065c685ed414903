// Interning of external string ids to dense indices.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace simstream::engine {

// Maps external ids to dense indices 0..size()-1 in order of first appearance.
// Not thread-safe: the owner (Engine) serialises writers against readers.
//
// An open-addressing table (linear probing, load at most 1/2) of 8-byte slots, each the low 32
// bits of the id's hash and its index + 1 (0: empty); the ids themselves live once, in ids_. A
// lookup is one slot line and one ids_ entry (short ids are stored inline there), and a caller
// interning many ids can hint both ahead (Hash, PrefetchSlot, PrefetchCandidate; HintPairs below):
// the engine does for each slice of events. A node-based std::unordered_map took two dependent
// misses per lookup that no hint could reach ahead of time.
class IdInterner {
 public:
  static uint64_t Hash(std::string_view id) { return std::hash<std::string_view>{}(id); }

  // Index of `id`, adding it when new. `added` (optional) tells whether it was new.
  uint32_t Intern(std::string_view id, bool* added = nullptr) {
    return Intern(id, Hash(id), added);
  }
  // The same with the id's Hash() already computed.
  uint32_t Intern(std::string_view id, uint64_t hash, bool* added = nullptr) {
    if (slots_.empty()) Grow();
    const size_t at = Probe(id, hash);
    if (slots_[at].index1 != 0) {
      if (added) *added = false;
      return slots_[at].index1 - 1;
    }
    const auto idx = static_cast<uint32_t>(ids_.size());
    ids_.emplace_back(id);
    if ((mapped_ + 1) * 2 <= slots_.size()) {  // the probe's empty slot is where it goes
      slots_[at] = {static_cast<uint32_t>(hash), idx + 1};
      ++mapped_;
    } else {
      Insert(hash, idx);
    }
    if (added) *added = true;
    return idx;
  }
  std::optional<uint32_t> Find(std::string_view id) const {
    const uint64_t hash = Hash(id);
    if (slots_.empty()) return std::nullopt;
    const Slot& s = slots_[Probe(id, hash)];
    if (s.index1 == 0) return std::nullopt;
    return s.index1 - 1;
  }

  // Cache hints, for interning a run of ids: the slot a lookup of `hash` starts at, and (once
  // that line has arrived) the stored id it will compare first. Neither changes anything.
  void PrefetchSlot(uint64_t hash) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[hash & mask_]);
  }
  void PrefetchCandidate(uint64_t hash) const {
    if (slots_.empty()) return;
    const Slot& s = slots_[hash & mask_];
    if (s.index1 != 0) __builtin_prefetch(&ids_[s.index1 - 1]);
  }

  const std::string& Id(uint32_t idx) const { return ids_[idx]; }
  // Removes the mapping of `id`; its index becomes a tombstone (Id() is empty) and is never
  // reused. Returns the index it had.
  std::optional<uint32_t> Forget(std::string_view id) {
    if (slots_.empty()) return std::nullopt;
    const size_t at = Probe(id, Hash(id));
    if (slots_[at].index1 == 0) return std::nullopt;
    const uint32_t idx = slots_[at].index1 - 1;
    Erase(at);
    ids_[idx].clear();
    return idx;
  }
  // Storage restore: puts `id` at `idx` (an empty id restores a tombstone), as a map and its
  // reverse table would: an id `idx` held before loses its mapping, and an index that held
  // `id` before becomes a tombstone (a later entry for the same id wins).
  void Restore(uint32_t idx, std::string_view id) {
    if (ids_.size() <= idx) ids_.resize(idx + 1);
    if (!ids_[idx].empty() && ids_[idx] != id) (void)Forget(std::string(ids_[idx]));
    if (id.empty()) return;
    const uint64_t hash = Hash(id);
    if (!slots_.empty()) {
      if (Slot& s = slots_[Probe(id, hash)]; s.index1 != 0) {
        if (s.index1 != idx + 1) ids_[s.index1 - 1].clear();
        s.index1 = idx + 1;
        ids_[idx] = std::string(id);
        return;
      }
    }
    ids_[idx] = std::string(id);
    Insert(hash, idx);
  }
  size_t size() const { return ids_.size(); }
  // Ids mapped (size() less the tombstones).
  size_t mapped() const { return mapped_; }

 private:
  struct Slot {
    uint32_t hash32 = 0;  // low 32 bits of the hash: the home slot is hash32 & mask_
    uint32_t index1 = 0;  // index + 1; 0 = empty
  };

  // The slot holding `id`, or the empty slot where its probe ends. Needs a non-empty table.
  size_t Probe(std::string_view id, uint64_t hash) const {
    const auto h32 = static_cast<uint32_t>(hash);
    for (size_t at = hash & mask_;; at = (at + 1) & mask_) {
      const Slot& s = slots_[at];
      if (s.index1 == 0 || (s.hash32 == h32 && ids_[s.index1 - 1] == id)) return at;
    }
  }
  // Adds a mapping whose id is not in the table.
  void Insert(uint64_t hash, uint32_t idx) {
    if ((mapped_ + 1) * 2 > slots_.size()) Grow();
    size_t at = hash & mask_;
    while (slots_[at].index1 != 0) at = (at + 1) & mask_;
    slots_[at] = {static_cast<uint32_t>(hash), idx + 1};
    ++mapped_;
  }
  // Backward-shift deletion: no tombstones, so probes stay as short as the live load.
  void Erase(size_t hole) {
    for (size_t at = (hole + 1) & mask_; slots_[at].index1 != 0; at = (at + 1) & mask_) {
      const size_t home = slots_[at].hash32 & mask_;
      // The entry may fill the hole when the hole lies on its probe path, from home to `at`.
      if (((at - home) & mask_) >= ((at - hole) & mask_)) {
        slots_[hole] = slots_[at];
        hole = at;
      }
    }
    slots_[hole] = Slot{};
    --mapped_;
  }
  void Grow() {
    std::vector<Slot> old(std::max<size_t>(16, slots_.size() * 2));
    old.swap(slots_);
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.index1 == 0) continue;
      size_t at = s.hash32 & mask_;
      while (slots_[at].index1 != 0) at = (at + 1) & mask_;
      slots_[at] = s;
    }
  }

  std::vector<std::string> ids_;
  std::vector<Slot> slots_;  // a power of two in size, or empty
  size_t mask_ = 0;
  size_t mapped_ = 0;
};

// The first two of the three passes that intern a run of (user id, item id) pairs with their
// cache misses overlapped, as Engine::ApplySlice does for a slice of events: `pair_at(k)` gives
// the k-th pair (two string_views) for k < n. Each pair's hashes go to `hashes` (cleared first)
// while its two slots are hinted; then the stored id each slot names is hinted. The third pass
// is the caller's: Intern(id, hashes[k].first) and Intern(id, hashes[k].second).
template <typename PairAt>
void HintPairs(const IdInterner& users, const IdInterner& items, size_t n, PairAt pair_at,
               std::vector<std::pair<uint64_t, uint64_t>>& hashes) {
  hashes.clear();
  for (size_t k = 0; k < n; ++k) {
    const auto [user, item] = pair_at(k);
    const uint64_t hu = IdInterner::Hash(user), hi = IdInterner::Hash(item);
    users.PrefetchSlot(hu);
    items.PrefetchSlot(hi);
    hashes.emplace_back(hu, hi);
  }
  for (const auto& [hu, hi] : hashes) {
    users.PrefetchCandidate(hu);
    items.PrefetchCandidate(hi);
  }
}

}  // namespace simstream::engine
