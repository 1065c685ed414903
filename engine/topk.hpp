// Exact top-k selection over scores, with masking.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace simstream::engine {

// An id with its score (larger is better).
struct Scored {
  uint32_t id;
  float score;

  friend bool operator==(const Scored&, const Scored&) = default;
};

// True for scores that take no part in a ranking: -infinity (how callers exclude seen items)
// and NaN.
[[nodiscard]] inline bool IsMasked(float score) {
  return std::isnan(score) || score == -std::numeric_limits<float>::infinity();
}

// The ranking order shared by TopK and RankOf: higher score first, equal scores by ascending
// id. Both arguments must be unmasked.
[[nodiscard]] inline bool RanksBefore(const Scored& a, const Scored& b) {
  return a.score > b.score || (a.score == b.score && a.id < b.id);
}

// Exact top-k of scores[0..n) (the id of scores[i] is i; n must fit in uint32_t), by descending
// score, ties broken by ascending id. Masked entries (see IsMasked) are excluded. Returns at
// most k entries, best first. O(n log k) worst case with a bounded heap; O(n) when most scores
// lose against the current k-th best, which is the usual case.
[[nodiscard]] std::vector<Scored> TopK(std::span<const float> scores, size_t k);

// The same over a candidate list (ids with their scores), with the same ordering and masking
// rules. Ids are expected to be distinct. O(n + k log k).
[[nodiscard]] std::vector<Scored> TopK(std::vector<Scored> candidates, size_t k);

}  // namespace simstream::engine
