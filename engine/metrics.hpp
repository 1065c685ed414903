// Retrieval metrics: single-target (prequential: rank of the item the user actually chose next)
// and set-based (a ranked list against a set of relevant ids), plus running means.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <unordered_set>
#include <vector>

namespace simstream::engine {

// 1-based rank of `target` among the unmasked entries of `scores` (masked: -infinity or NaN),
// with TopK's order (higher score first, equal scores: lower id first), so that
// TopK(scores, k) contains target iff 1 <= RankOf(scores, target) <= k.
// 0 if target is masked or out of range. O(n).
[[nodiscard]] size_t RankOf(std::span<const float> scores, uint32_t target);

// Single relevant item at `rank` (0: not ranked at all).
// 1 if 1 <= rank <= k, else 0.
[[nodiscard]] double HitAtK(size_t rank, size_t k);
// 1 / log2(rank + 1) if 1 <= rank <= k, else 0 (the ideal DCG of one relevant item is 1).
[[nodiscard]] double NdcgAtK(size_t rank, size_t k);
// 1 / rank; 0 for rank 0.
[[nodiscard]] double ReciprocalRank(size_t rank);

// Set-based metrics over the first k entries of `ranked` (ids assumed distinct). Each returns 0
// when its denominator would be 0 (k == 0 or no relevant ids).
//
// |relevant among the first k| / k (a list shorter than k counts its missing tail as misses).
[[nodiscard]] double PrecisionAtK(std::span<const uint32_t> ranked,
                                  const std::unordered_set<uint32_t>& relevant, size_t k);
// |relevant among the first k| / |relevant|.
[[nodiscard]] double RecallAtK(std::span<const uint32_t> ranked,
                               const std::unordered_set<uint32_t>& relevant, size_t k);
// The mAP component: sum of precision@i over the positions i <= k holding a relevant id,
// divided by min(|relevant|, k).
[[nodiscard]] double AveragePrecisionAtK(std::span<const uint32_t> ranked,
                                         const std::unordered_set<uint32_t>& relevant, size_t k);
// Binary gains: DCG = sum over relevant positions i <= k of 1 / log2(i + 1); divided by the
// ideal DCG, that of min(|relevant|, k) relevant ids in the first positions.
[[nodiscard]] double NdcgAtK(std::span<const uint32_t> ranked,
                             const std::unordered_set<uint32_t>& relevant, size_t k);

// Mean of every value added (Welford's update: no growing sum to lose precision). 0 when empty.
// Not thread-safe.
class RunningMean {
 public:
  void Add(double x);
  [[nodiscard]] double mean() const { return mean_; }
  [[nodiscard]] uint64_t count() const { return count_; }

 private:
  double mean_ = 0.0;
  uint64_t count_ = 0;
};

// Mean of the last `window` values added (of all of them while fewer were added), for live
// metrics such as prequential HR@10. O(1) amortised per Add: a ring buffer with a running sum
// that is recomputed exactly once per `window` additions, so add/subtract rounding cannot
// accumulate. 0 when empty. Not thread-safe.
class RollingMean {
 public:
  // `window` must be >= 1 (0 is raised to 1).
  explicit RollingMean(size_t window);
  void Add(double x);
  [[nodiscard]] double mean() const;
  // Values currently in the window: min(values added, window).
  [[nodiscard]] size_t count() const { return count_; }
  [[nodiscard]] size_t window() const { return values_.size(); }

 private:
  std::vector<double> values_;  // ring buffer, size == window
  size_t next_ = 0;             // slot the next Add writes
  size_t count_ = 0;
  double sum_ = 0.0;
};

}  // namespace simstream::engine
