#include "engine/metrics.hpp"

#include <algorithm>
#include <cmath>

#include "engine/topk.hpp"

namespace simstream::engine {
namespace {

double DiscountAt(size_t rank) {
  return 1.0 / std::log2(static_cast<double>(rank) + 1.0);
}

}  // namespace

size_t RankOf(std::span<const float> scores, uint32_t target) {
  if (target >= scores.size() || IsMasked(scores[target])) return 0;
  const Scored t{target, scores[target]};
  size_t ahead = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    const float s = scores[i];
    if (IsMasked(s)) continue;  // RanksBefore is only defined on unmasked scores
    ahead += RanksBefore(Scored{static_cast<uint32_t>(i), s}, t);
  }
  return ahead + 1;
}

double HitAtK(size_t rank, size_t k) {
  return rank >= 1 && rank <= k ? 1.0 : 0.0;
}

double NdcgAtK(size_t rank, size_t k) {
  return rank >= 1 && rank <= k ? DiscountAt(rank) : 0.0;
}

double ReciprocalRank(size_t rank) {
  return rank == 0 ? 0.0 : 1.0 / static_cast<double>(rank);
}

double PrecisionAtK(std::span<const uint32_t> ranked, const std::unordered_set<uint32_t>& relevant,
                    size_t k) {
  if (k == 0) return 0.0;
  const size_t n = std::min(k, ranked.size());
  size_t hits = 0;
  for (size_t i = 0; i < n; ++i) hits += relevant.contains(ranked[i]);
  return static_cast<double>(hits) / static_cast<double>(k);
}

double RecallAtK(std::span<const uint32_t> ranked, const std::unordered_set<uint32_t>& relevant,
                 size_t k) {
  if (relevant.empty()) return 0.0;
  const size_t n = std::min(k, ranked.size());
  size_t hits = 0;
  for (size_t i = 0; i < n; ++i) hits += relevant.contains(ranked[i]);
  return static_cast<double>(hits) / static_cast<double>(relevant.size());
}

double AveragePrecisionAtK(std::span<const uint32_t> ranked,
                           const std::unordered_set<uint32_t>& relevant, size_t k) {
  const size_t denominator = std::min(relevant.size(), k);
  if (denominator == 0) return 0.0;
  const size_t n = std::min(k, ranked.size());
  size_t hits = 0;
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    if (!relevant.contains(ranked[i])) continue;
    ++hits;
    sum += static_cast<double>(hits) / static_cast<double>(i + 1);
  }
  return sum / static_cast<double>(denominator);
}

double NdcgAtK(std::span<const uint32_t> ranked, const std::unordered_set<uint32_t>& relevant,
               size_t k) {
  const size_t ideal_hits = std::min(relevant.size(), k);
  if (ideal_hits == 0) return 0.0;
  double ideal = 0.0;
  for (size_t rank = 1; rank <= ideal_hits; ++rank) ideal += DiscountAt(rank);
  const size_t n = std::min(k, ranked.size());
  double dcg = 0.0;
  for (size_t i = 0; i < n; ++i) {
    if (relevant.contains(ranked[i])) dcg += DiscountAt(i + 1);
  }
  return dcg / ideal;
}

void RunningMean::Add(double x) {
  ++count_;
  mean_ += (x - mean_) / static_cast<double>(count_);
}

RollingMean::RollingMean(size_t window) : values_(std::max<size_t>(window, 1), 0.0) {}

void RollingMean::Add(double x) {
  if (count_ == values_.size()) {
    sum_ -= values_[next_];
  } else {
    ++count_;
  }
  values_[next_] = x;
  sum_ += x;
  ++next_;
  if (next_ == values_.size()) {
    next_ = 0;
    // Once per lap: replace the running sum by an exact recomputation. Amortised O(1), and
    // drift from adding and subtracting values of different magnitude never outlives a lap.
    sum_ = 0.0;
    for (size_t i = 0; i < count_; ++i) sum_ += values_[i];
  }
}

double RollingMean::mean() const {
  return count_ == 0 ? 0.0 : sum_ / static_cast<double>(count_);
}

}  // namespace simstream::engine
