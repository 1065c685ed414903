#include "engine/topk.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <vector>

namespace simstream::engine {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Slow twin: drop masked entries, fully sort by (score desc, id asc), keep k. Written without
// the library's helpers so a bug in them cannot hide.
std::vector<Scored> NaiveTopK(const std::vector<Scored>& all, size_t k) {
  std::vector<Scored> kept;
  for (const Scored& s : all) {
    if (!(s.score != s.score) && s.score != -kInf) kept.push_back(s);
  }
  std::sort(kept.begin(), kept.end(), [](const Scored& a, const Scored& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.id < b.id;
  });
  if (kept.size() > k) kept.resize(k);
  return kept;
}

std::vector<Scored> WithIds(const std::vector<float>& scores) {
  std::vector<Scored> out;
  for (size_t i = 0; i < scores.size(); ++i) out.push_back({static_cast<uint32_t>(i), scores[i]});
  return out;
}

// Scores drawn from few distinct values (many ties), with masked entries and +inf mixed in.
std::vector<float> RandomScores(std::mt19937& rng, size_t n, int distinct, double masked_fraction) {
  std::uniform_int_distribution<int> level(0, distinct - 1);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<float> scores(n);
  for (float& s : scores) {
    const double u = unit(rng);
    if (u < masked_fraction / 2) {
      s = -kInf;
    } else if (u < masked_fraction) {
      s = kNaN;
    } else if (u > 0.995) {
      s = kInf;
    } else {
      s = static_cast<float>(level(rng) - distinct / 2) * 0.25f;
    }
  }
  return scores;
}

TEST(TopK, HandComputed) {
  //            id:  0     1     2     3     4     5
  const std::vector<float> scores = {0.5f, 0.9f, -kInf, 0.9f, kNaN, 0.1f};
  // Unmasked: (1,.9) (3,.9) (0,.5) (5,.1); ids 1 and 3 tie, lower id first.
  const std::vector<Scored> expected3 = {{1, 0.9f}, {3, 0.9f}, {0, 0.5f}};
  EXPECT_EQ(TopK(std::span<const float>(scores), 3), expected3);
  EXPECT_EQ(TopK(WithIds(scores), 3), expected3);
  const std::vector<Scored> all = {{1, 0.9f}, {3, 0.9f}, {0, 0.5f}, {5, 0.1f}};
  EXPECT_EQ(TopK(std::span<const float>(scores), 100), all);  // k > n: every unmasked entry
  EXPECT_EQ(TopK(WithIds(scores), 100), all);
}

TEST(TopK, EdgeCases) {
  const std::vector<float> empty;
  EXPECT_TRUE(TopK(std::span<const float>(empty), 5).empty());
  EXPECT_TRUE(TopK(std::vector<Scored>{}, 5).empty());
  const std::vector<float> one = {2.0f};
  EXPECT_TRUE(TopK(std::span<const float>(one), 0).empty());  // k = 0
  EXPECT_TRUE(TopK(WithIds(one), 0).empty());
  EXPECT_EQ(TopK(std::span<const float>(one), 1), (std::vector<Scored>{{0, 2.0f}}));
  EXPECT_EQ(TopK(WithIds(one), 3), (std::vector<Scored>{{0, 2.0f}}));
  const std::vector<float> masked = {-kInf, kNaN, -kInf};
  EXPECT_TRUE(TopK(std::span<const float>(masked), 2).empty());
  EXPECT_TRUE(TopK(WithIds(masked), 2).empty());
  // Finite negative and the lowest finite float are not masked; +inf ranks first.
  const std::vector<float> extremes = {std::numeric_limits<float>::lowest(), kInf, -1.0f};
  const std::vector<Scored> expected = {
      {1, kInf}, {2, -1.0f}, {0, std::numeric_limits<float>::lowest()}};
  EXPECT_EQ(TopK(std::span<const float>(extremes), 3), expected);
  EXPECT_EQ(TopK(WithIds(extremes), 3), expected);
}

TEST(TopK, MatchesFullSortOnRandomData) {
  std::mt19937 rng(2024);
  std::uniform_int_distribution<size_t> n_dist(1, 400);
  for (int trial = 0; trial < 500; ++trial) {
    const size_t n = trial < 10 ? 1 : n_dist(rng);
    const int distinct = trial % 3 == 0 ? 3 : 1000;  // every third trial is almost all ties
    const double masked = trial % 5 == 0 ? 0.9 : 0.2;
    const auto scores = RandomScores(rng, n, distinct, masked);
    for (size_t k : {size_t{0}, size_t{1}, size_t{2}, size_t{10}, n / 2, n, n + 7}) {
      SCOPED_TRACE(testing::Message() << "trial=" << trial << " n=" << n << " k=" << k);
      const auto expected = NaiveTopK(WithIds(scores), k);
      EXPECT_EQ(TopK(std::span<const float>(scores), k), expected);
      // Candidate form, shuffled, with sparse ids.
      auto candidates = WithIds(scores);
      for (Scored& c : candidates) c.id = c.id * 3 + 11;
      auto expected_sparse = NaiveTopK(candidates, k);
      std::shuffle(candidates.begin(), candidates.end(), rng);
      EXPECT_EQ(TopK(std::move(candidates), k), expected_sparse);
    }
  }
}

// Speed is measured in bench/; this checks correctness at a realistic size.
TEST(TopK, MatchesFullSortForAMillionScores) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  std::vector<float> scores(1'000'000);
  for (float& s : scores) s = normal(rng);
  for (size_t i = 0; i < scores.size(); i += 10) scores[i] = -kInf;
  const auto top = TopK(std::span<const float>(scores), 100);
  EXPECT_EQ(top, NaiveTopK(WithIds(scores), 100));
}

}  // namespace
}  // namespace simstream::engine
