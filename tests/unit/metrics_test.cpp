#include "engine/metrics.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "engine/topk.hpp"

namespace simstream::engine {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST(RankOf, HandComputed) {
  //            id:  0     1     2     3     4     5
  const std::vector<float> scores = {0.5f, 0.9f, -kInf, 0.9f, kNaN, 0.1f};
  // Order: 1 (.9), 3 (.9, tie after lower id 1), 0 (.5), 5 (.1).
  EXPECT_EQ(RankOf(scores, 1), 1u);
  EXPECT_EQ(RankOf(scores, 3), 2u);
  EXPECT_EQ(RankOf(scores, 0), 3u);
  EXPECT_EQ(RankOf(scores, 5), 4u);
  EXPECT_EQ(RankOf(scores, 2), 0u);  // masked -inf
  EXPECT_EQ(RankOf(scores, 4), 0u);  // masked NaN
  EXPECT_EQ(RankOf(scores, 6), 0u);  // out of range
  EXPECT_EQ(RankOf({}, 0), 0u);
}

// Slow twin: the 1-based position of target in the fully sorted unmasked list.
size_t NaiveRank(const std::vector<float>& scores, uint32_t target) {
  std::vector<Scored> kept;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!std::isnan(scores[i]) && scores[i] != -kInf) {
      kept.push_back({static_cast<uint32_t>(i), scores[i]});
    }
  }
  std::sort(kept.begin(), kept.end(), [](const Scored& a, const Scored& b) {
    return a.score != b.score ? a.score > b.score : a.id < b.id;
  });
  for (size_t pos = 0; pos < kept.size(); ++pos) {
    if (kept[pos].id == target) return pos + 1;
  }
  return 0;
}

TEST(RankOf, MatchesFullSortAndTopK) {
  std::mt19937 rng(77);
  std::uniform_int_distribution<int> level(0, 5);  // many ties
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> scores(1 + trial % 60);
    for (float& s : scores) {
      const double u = unit(rng);
      s = u < 0.1 ? -kInf : u < 0.15 ? kNaN : static_cast<float>(level(rng));
    }
    for (uint32_t target = 0; target < scores.size() + 2; ++target) {
      const size_t rank = RankOf(scores, target);
      ASSERT_EQ(rank, NaiveRank(scores, target)) << "trial " << trial << " target " << target;
      // The promise to callers: target is in TopK(k) iff 1 <= rank <= k.
      for (size_t k : {size_t{1}, size_t{3}, size_t{10}}) {
        const auto top = TopK(std::span<const float>(scores), k);
        const bool in_top =
            std::any_of(top.begin(), top.end(), [&](const Scored& s) { return s.id == target; });
        EXPECT_EQ(in_top, HitAtK(rank, k) == 1.0);
      }
    }
  }
}

TEST(SingleTargetMetrics, HandComputed) {
  EXPECT_EQ(HitAtK(1, 10), 1.0);
  EXPECT_EQ(HitAtK(10, 10), 1.0);
  EXPECT_EQ(HitAtK(11, 10), 0.0);
  EXPECT_EQ(HitAtK(0, 10), 0.0);  // not ranked
  EXPECT_EQ(HitAtK(1, 0), 0.0);
  // rank 1: 1/log2(2) = 1; rank 3: 1/log2(4) = 0.5; rank 7: 1/log2(8) = 1/3.
  EXPECT_DOUBLE_EQ(NdcgAtK(1, 10), 1.0);
  EXPECT_DOUBLE_EQ(NdcgAtK(3, 10), 0.5);
  EXPECT_DOUBLE_EQ(NdcgAtK(7, 10), 1.0 / 3.0);
  EXPECT_EQ(NdcgAtK(11, 10), 0.0);
  EXPECT_EQ(NdcgAtK(0, 10), 0.0);
  EXPECT_DOUBLE_EQ(ReciprocalRank(1), 1.0);
  EXPECT_DOUBLE_EQ(ReciprocalRank(4), 0.25);
  EXPECT_EQ(ReciprocalRank(0), 0.0);
}

TEST(SetMetrics, HandComputed) {
  const std::vector<uint32_t> ranked = {5, 1, 9, 2, 7};
  const std::unordered_set<uint32_t> relevant = {1, 2, 3};
  // Hits at positions 2 (id 1) and 4 (id 2); id 3 is never ranked.
  // precision@5 = 2/5 = 0.4; precision@2 = 1/2; precision@1 = 0/1.
  EXPECT_DOUBLE_EQ(PrecisionAtK(ranked, relevant, 5), 0.4);
  EXPECT_DOUBLE_EQ(PrecisionAtK(ranked, relevant, 2), 0.5);
  EXPECT_DOUBLE_EQ(PrecisionAtK(ranked, relevant, 1), 0.0);
  // k beyond the list divides by k: 2/10.
  EXPECT_DOUBLE_EQ(PrecisionAtK(ranked, relevant, 10), 0.2);
  // recall@5 = 2/3; recall@3 = 1/3.
  EXPECT_DOUBLE_EQ(RecallAtK(ranked, relevant, 5), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(RecallAtK(ranked, relevant, 3), 1.0 / 3.0);
  // AP@5 = (P@2 + P@4) / min(3, 5) = (1/2 + 2/4) / 3 = 1/3.
  EXPECT_DOUBLE_EQ(AveragePrecisionAtK(ranked, relevant, 5), 1.0 / 3.0);
  // AP@2 = P@2 / min(3, 2) = 0.5 / 2 = 0.25.
  EXPECT_DOUBLE_EQ(AveragePrecisionAtK(ranked, relevant, 2), 0.25);
  // NDCG@5: DCG = 1/log2(3) + 1/log2(5); IDCG (3 relevant) = 1 + 1/log2(3) + 1/log2(4).
  const double dcg = 1 / std::log2(3.0) + 1 / std::log2(5.0);
  const double idcg = 1 + 1 / std::log2(3.0) + 0.5;
  EXPECT_NEAR(NdcgAtK(ranked, relevant, 5), dcg / idcg, 1e-12);
  // NDCG@2: DCG = 1/log2(3); IDCG over min(3,2) = 2 positions = 1 + 1/log2(3).
  EXPECT_NEAR(NdcgAtK(ranked, relevant, 2), (1 / std::log2(3.0)) / (1 + 1 / std::log2(3.0)), 1e-12);

  // A perfect ranking scores 1 everywhere.
  const std::vector<uint32_t> perfect = {3, 1, 2, 8};
  EXPECT_DOUBLE_EQ(AveragePrecisionAtK(perfect, relevant, 3), 1.0);
  EXPECT_DOUBLE_EQ(NdcgAtK(perfect, relevant, 4), 1.0);
  EXPECT_DOUBLE_EQ(RecallAtK(perfect, relevant, 3), 1.0);
  EXPECT_DOUBLE_EQ(PrecisionAtK(perfect, relevant, 3), 1.0);

  // Degenerate denominators are 0, not NaN.
  const std::unordered_set<uint32_t> none;
  EXPECT_EQ(PrecisionAtK(ranked, relevant, 0), 0.0);
  EXPECT_EQ(RecallAtK(ranked, none, 5), 0.0);
  EXPECT_EQ(AveragePrecisionAtK(ranked, none, 5), 0.0);
  EXPECT_EQ(AveragePrecisionAtK(ranked, relevant, 0), 0.0);
  EXPECT_EQ(NdcgAtK(ranked, none, 5), 0.0);
  EXPECT_EQ(NdcgAtK(std::span<const uint32_t>{}, relevant, 5), 0.0);
}

TEST(SetMetrics, SingleRelevantAgreesWithRankForm) {
  // With one relevant id the set forms reduce to the single-target ones.
  const std::vector<uint32_t> ranked = {4, 8, 15, 16, 23, 42};
  for (size_t pos = 0; pos < ranked.size(); ++pos) {
    const std::unordered_set<uint32_t> relevant = {ranked[pos]};
    for (size_t k : {size_t{1}, size_t{3}, size_t{6}}) {
      EXPECT_DOUBLE_EQ(NdcgAtK(ranked, relevant, k), NdcgAtK(pos + 1, k));
      EXPECT_DOUBLE_EQ(RecallAtK(ranked, relevant, k), HitAtK(pos + 1, k));
      EXPECT_DOUBLE_EQ(AveragePrecisionAtK(ranked, relevant, k),
                       HitAtK(pos + 1, k) * ReciprocalRank(pos + 1));
    }
  }
}

TEST(RunningMean, MatchesNaiveMean) {
  RunningMean m;
  EXPECT_EQ(m.count(), 0u);
  EXPECT_EQ(m.mean(), 0.0);
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> unit(-5.0, 5.0);
  double sum = 0.0;
  for (int i = 1; i <= 1000; ++i) {
    const double x = unit(rng);
    sum += x;
    m.Add(x);
    ASSERT_EQ(m.count(), static_cast<uint64_t>(i));
    ASSERT_NEAR(m.mean(), sum / i, 1e-12);
  }
  // 1, 2, 3, 4 -> 2.5
  RunningMean small;
  for (double x : {1.0, 2.0, 3.0, 4.0}) small.Add(x);
  EXPECT_DOUBLE_EQ(small.mean(), 2.5);
}

TEST(RollingMean, HandComputed) {
  RollingMean m(3);
  EXPECT_EQ(m.mean(), 0.0);
  EXPECT_EQ(m.count(), 0u);
  m.Add(1);
  m.Add(2);
  EXPECT_DOUBLE_EQ(m.mean(), 1.5);  // (1+2)/2, window not yet full
  m.Add(3);
  m.Add(10);
  EXPECT_EQ(m.count(), 3u);
  EXPECT_DOUBLE_EQ(m.mean(), 5.0);  // (2+3+10)/3
  RollingMean degenerate(0);
  degenerate.Add(4);
  degenerate.Add(6);
  EXPECT_EQ(degenerate.window(), 1u);
  EXPECT_DOUBLE_EQ(degenerate.mean(), 6.0);
}

TEST(RollingMean, MatchesNaiveMeanOfLastWindow) {
  std::mt19937 rng(9);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (size_t window : {size_t{1}, size_t{2}, size_t{7}, size_t{100}}) {
    RollingMean m(window);
    std::vector<double> history;
    for (int i = 0; i < 2000; ++i) {
      // Mix huge and tiny values so a never-recomputed running sum would drift.
      const double x = i % 97 == 0 ? 1e12 : unit(rng);
      history.push_back(x);
      m.Add(x);
      const size_t n = std::min(window, history.size());
      double naive = 0.0;
      for (size_t j = history.size() - n; j < history.size(); ++j) naive += history[j];
      naive /= static_cast<double>(n);
      ASSERT_EQ(m.count(), n);
      ASSERT_NEAR(m.mean(), naive, 1e-9 * std::max(1.0, std::abs(naive)) + 1e-4)
          << "window " << window << " step " << i;
    }
  }
}

TEST(RollingMean, RecomputationRemovesDrift) {
  // After a huge value leaves the window, the mean of small values must be accurate to far
  // better than the huge value's rounding (1e16 * 2^-52 ~ 2).
  RollingMean m(4);
  m.Add(1e16);
  for (int i = 0; i < 8; ++i) m.Add(0.25);
  EXPECT_DOUBLE_EQ(m.mean(), 0.25);
}

}  // namespace
}  // namespace simstream::engine
