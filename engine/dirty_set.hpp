// The co-occurrence edges changed between flushes, as a log of (a, b, weight) in the order they
// changed.
//
// Marking an edge on the learner's hot path is one append to a flat array: sequential memory, no
// probe. It replaced an open-addressing map keyed by edge, where every mark was a random access
// into a table of tens of MB during a catch-up (17 % of the learner thread in a 1M-event replay,
// perf), for about 40 marks per event at the default window. An edge marked twice is logged twice;
// the flusher collapses the log (SortEdges, stable, then KeepLastPerEdge) after the engine's lock
// is released, so the learner never waits for it. The weight is logged beside the key, as the
// learner has it at hand when it changes: a flush reads no graph row. The capacity is kept across
// Clear(), so a steady stream allocates nothing; it shrinks when a burst has left it far too large.
//
// Size: one entry (12 bytes) per mark, i.e. 2 x the co-occurrence window per positive event
// applied between two flushes; storage.flush_max_dirty bounds the events, hence the log.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/state.hpp"

namespace simstream::engine {

class EdgeLog {
 public:
  // Records that edge (a, b) now has weight `w` (a later entry of the same edge wins).
  void Add(uint32_t a, uint32_t b, float w) { log_.push_back(EdgeState{a, b, w}); }
  size_t size() const { return log_.size(); }
  bool empty() const { return log_.empty(); }
  // Every entry, oldest first.
  std::span<const EdgeState> entries() const { return log_; }
  void Clear() {
    if (log_.capacity() > kMinEntries && log_.size() * 16 < log_.capacity()) {
      std::vector<EdgeState>().swap(log_);  // a burst is over: give its memory back
      log_.reserve(kMinEntries);
    }
    log_.clear();
  }
  void swap(EdgeLog& other) noexcept { log_.swap(other.log_); }

 private:
  static constexpr size_t kMinEntries = 1 << 16;
  std::vector<EdgeState> log_;
};

}  // namespace simstream::engine
