// The streaming baselines against from-scratch twins recomputed after every event.
#include "engine/baselines.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>
#include <vector>

namespace simstream::engine {
namespace {

// ---- Item-kNN ----

// Keeps every interaction and recomputes the definition from scratch: a dense item x item
// co-occurrence matrix over distinct positive (user, item) pairs.
class NaiveItemKnn {
 public:
  void Observe(const Interaction& x) {
    if (x.weight <= 0) return;
    pairs_.insert({x.user, x.item});
  }
  // |U(i) ∩ U(j)|.
  size_t Cooccurrence(uint32_t i, uint32_t j) const {
    size_t c = 0;
    for (const auto& [u, a] : pairs_) {
      if (a == i && pairs_.contains({u, j})) ++c;
    }
    return c;
  }
  std::vector<double> Scores(uint32_t user, size_t n_items) const {
    std::vector<size_t> n(n_items, 0);
    for (const auto& [u, i] : pairs_) {
      if (i < n_items) ++n[i];
    }
    std::vector<std::vector<size_t>> c(n_items, std::vector<size_t>(n_items, 0));
    for (uint32_t i = 0; i < n_items; ++i) {
      for (uint32_t j = 0; j < n_items; ++j) c[i][j] = Cooccurrence(i, j);
    }
    std::vector<double> out(n_items, 0.0);
    for (uint32_t j = 0; j < n_items; ++j) {
      double s = 0.0;
      for (uint32_t i = 0; i < n_items; ++i) {
        if (i == j || !pairs_.contains({user, i})) continue;
        if (c[i][j] == 0) continue;
        s += static_cast<double>(c[i][j]) / std::sqrt(static_cast<double>(n[i] * n[j]));
      }
      out[j] = s + ItemKnnScorer::kPopularityTieBreak * std::log1p(static_cast<double>(n[j]));
    }
    return out;
  }

 private:
  std::set<std::pair<uint32_t, uint32_t>> pairs_;
};

float RandomWeight(std::mt19937_64& rng) {
  switch (rng() % 6) {
    case 0:
      return -1.0f;  // negative feedback: ignored
    case 1:
      return 0.0f;  // zero weight: ignored
    case 2:
      return 2.0f;
    case 3:
      return 0.5f;
    default:
      return 1.0f;
  }
}

TEST(ItemKnnScorerTest, MatchesDenseTwinAfterEveryEvent) {
  for (uint64_t seed : {1u, 2u, 3u}) {
    std::mt19937_64 rng(seed);
    ItemKnnScorer knn;
    NaiveItemKnn twin;
    uint32_t max_user = 0, max_item = 0;
    const uint32_t users = 8 + static_cast<uint32_t>(seed), items = 12;
    for (int step = 0; step < 150; ++step) {
      Interaction x;
      x.user = static_cast<uint32_t>(rng() % users);
      // Skewed items so that repeats and shared items are common.
      x.item = static_cast<uint32_t>((rng() % items) * (rng() % items) / items);
      x.weight = RandomWeight(rng);
      max_user = std::max(max_user, x.user);
      max_item = std::max(max_item, x.item);
      knn.Observe(x);
      twin.Observe(x);
      // Two items beyond the catalogue and one unknown user are scored too.
      const size_t n = max_item + 3;
      std::vector<float> out(n, -99.0f);
      for (uint32_t u = 0; u <= max_user + 1; ++u) {
        knn.ScoreItems(u, out);
        const std::vector<double> want = twin.Scores(u, n);
        for (size_t j = 0; j < n; ++j) {
          ASSERT_NEAR(out[j], want[j], 1e-4 * std::abs(want[j]) + 2e-6)
              << "seed " << seed << " step " << step << " user " << u << " item " << j;
        }
      }
      for (uint32_t i = 0; i <= max_item + 1; ++i) {
        for (uint32_t j = 0; j <= max_item + 1; ++j) {
          ASSERT_EQ(knn.Cooccurrence(i, j), twin.Cooccurrence(i, j)) << i << "," << j;
        }
      }
    }
  }
}

TEST(ItemKnnScorerTest, HandCase) {
  // u0: {0, 1}; u1: {0, 1, 2}; u2: {2}. n0 = n1 = 2, n2 = 2; C01 = 2, C02 = 1, C12 = 1.
  ItemKnnScorer knn;
  for (auto [u, i] : {std::pair{0u, 0u}, {0, 1}, {1, 0}, {1, 1}, {1, 2}, {2, 2}}) {
    knn.Observe(Interaction{.user = u, .item = i});
  }
  knn.Observe(Interaction{.user = 2, .item = 0, .weight = -1.0f});  // ignored
  std::vector<float> out(3);
  knn.ScoreItems(2, out);
  const float tie = ItemKnnScorer::kPopularityTieBreak * std::log1p(2.0f);
  // u2 has item 2: score(j) = C[2][j] / sqrt(2 * 2) + tie.
  EXPECT_NEAR(out[0], 0.5f + tie, 1e-6);
  EXPECT_NEAR(out[1], 0.5f + tie, 1e-6);
  EXPECT_NEAR(out[2], tie, 1e-6);  // self-similarity excluded
  EXPECT_EQ(knn.Cooccurrence(0, 1), 2u);
  EXPECT_EQ(knn.Cooccurrence(2, 0), 1u);
  EXPECT_EQ(knn.Cooccurrence(0, 0), 2u);
  EXPECT_EQ(knn.Cooccurrence(0, 7), 0u);
}

// ---- Popularity ----

// Stores every event and recomputes sum over positive events of 0.5^((t_now - t_e) / h).
class NaivePopularity {
 public:
  explicit NaivePopularity(double half_life) : half_life_(half_life) {}
  void Observe(const Interaction& x) {
    ++now_;
    if (x.weight > 0) events_.push_back({x.item, now_});
  }
  double Score(uint32_t item) const {
    double s = 0.0;
    for (const auto& [i, t] : events_) {
      if (i == item) s += std::pow(0.5, static_cast<double>(now_ - t) / half_life_);
    }
    return s;
  }

 private:
  double half_life_;
  uint64_t now_ = 0;
  std::vector<std::pair<uint32_t, uint64_t>> events_;
};

TEST(PopularityScorerTest, MatchesNaiveDecayAcrossRenormalisation) {
  // Half-lives of 1 and 2 events cross the fold-in point (elapsed / tau > 30) several times;
  // 10000 never does.
  for (double half_life : {1.0, 2.0, 10000.0}) {
    std::mt19937_64 rng(static_cast<uint64_t>(half_life * 7));
    PopularityScorer pop(half_life);
    NaivePopularity twin(half_life);
    constexpr uint32_t kItems = 10;
    for (int step = 0; step < 260; ++step) {
      Interaction x;
      x.user = static_cast<uint32_t>(rng() % 5);
      x.item = static_cast<uint32_t>(rng() % kItems);
      x.weight = RandomWeight(rng);
      pop.Observe(x);
      twin.Observe(x);
      std::vector<float> out(kItems + 2, -5.0f);
      pop.ScoreItems(/*user=*/0, out);
      for (uint32_t j = 0; j < out.size(); ++j) {
        const double want = twin.Score(j);
        if (want < 1e-30) {
          // Below what a float can hold with 1e-6 relative precision.
          ASSERT_LE(out[j], 1e-29) << "half-life " << half_life << " step " << step;
          continue;
        }
        ASSERT_NEAR(out[j], want, 1e-6 * want)
            << "half-life " << half_life << " step " << step << " item " << j;
      }
    }
  }
}

TEST(PopularityScorerTest, HandCase) {
  PopularityScorer pop(/*half_life_events=*/1.0);
  pop.Observe(Interaction{.user = 0, .item = 1});
  pop.Observe(Interaction{.user = 0, .item = 1});
  pop.Observe(Interaction{.user = 0, .item = 0, .weight = -1.0f});  // only advances time
  std::vector<float> out(3);
  pop.ScoreItems(0, out);
  EXPECT_NEAR(out[1], 0.25 + 0.5, 1e-7);
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[2], 0.0f);
}

}  // namespace
}  // namespace simstream::engine
