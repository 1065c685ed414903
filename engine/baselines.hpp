// Streaming baselines, first-class scorers beside the model: time-decayed popularity and
// incremental item-kNN (cosine over item co-occurrence).
#pragma once

#include <vector>

#include "engine/model.hpp"

namespace simstream::engine {

// Popularity with exponential decay: every positive interaction adds 1, and counts halve
// every `half_life_events` events of the stream.
class PopularityScorer final : public StreamingScorer {
 public:
  explicit PopularityScorer(double half_life_events);
  std::string_view name() const override { return "popular"; }
  void Observe(const Interaction& x) override;
  void ScoreItems(uint32_t user, std::span<float> out) override;

 private:
  double tau_;
  uint64_t clock_ = 0, anchor_ = 0;
  std::vector<double> pop_;
};

// Classic item-based k-nearest-neighbours over the full history:
//   score(u, j) = sum_{i in H(u), i != j} |U(i) ∩ U(j)| / sqrt(|U(i)| |U(j)|)
// where H(u) are the items u interacted with positively and U(i) the users of item i,
// plus kPopularityTieBreak * log(1 + |U(j)|) so that users with short histories still get a
// sensible order. The inverted indexes are updated incrementally per event; a query computes
// the exact sum through the users who share items with u, O(sum of their histories), with no
// item-item matrix kept.
class ItemKnnScorer final : public StreamingScorer {
 public:
  static constexpr float kPopularityTieBreak = 1e-4f;
  std::string_view name() const override { return "item-knn"; }
  void Observe(const Interaction& x) override;
  void ScoreItems(uint32_t user, std::span<float> out) override;
  // |U(i) ∩ U(j)| computed from the indexes (for tests).
  size_t Cooccurrence(uint32_t i, uint32_t j) const;

 private:
  std::vector<std::vector<uint32_t>> items_of_user_;  // sorted
  std::vector<std::vector<uint32_t>> users_of_item_;  // sorted
  std::vector<float> user_weight_;                    // query scratch, all zero between calls
  std::vector<uint32_t> touched_;
};

}  // namespace simstream::engine
