// PrequentialEvaluator against a naive twin, and its eligibility and coverage rules by hand.
#include "engine/evaluation.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/baselines.hpp"
#include "engine/rng.hpp"

namespace simstream::engine {
namespace {

Event MakeEvent(const std::string& user, const std::string& item, double weight = 1.0) {
  Event e;
  e.user = user;
  e.item = item;
  e.weight = weight;
  return e;
}

// Test-then-train written out plainly: its own id maps and seen sets, a full std::sort per
// ranked event, and its own copy of the scorer.
struct NaiveEvaluation {
  size_t k = 10;
  StreamingScorer* scorer = nullptr;
  std::map<std::string, uint32_t> users{}, items{};
  std::map<uint32_t, std::set<uint32_t>> seen{};
  std::set<uint32_t> covered{};
  double hr = 0, ndcg = 0, mrr = 0;
  uint64_t evaluated = 0;

  void Process(const Event& e, uint64_t rng_key) {
    const bool new_item = !items.contains(e.item);
    if (!users.contains(e.user)) users.emplace(e.user, static_cast<uint32_t>(users.size()));
    if (new_item) items.emplace(e.item, static_cast<uint32_t>(items.size()));
    const uint32_t u = users[e.user], i = items[e.item];
    if (e.weight > 0 && !new_item && !seen[u].contains(i)) {
      ++evaluated;
      std::vector<float> scores(items.size());
      scorer->ScoreItems(u, scores);
      std::vector<std::pair<float, uint32_t>> ranked;
      for (uint32_t j = 0; j < scores.size(); ++j) {
        if (!seen[u].contains(j)) ranked.emplace_back(scores[j], j);
      }
      std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
      });
      size_t rank = 0;
      for (size_t r = 0; r < ranked.size(); ++r) {
        if (ranked[r].second == i) rank = r + 1;
        if (r < k) covered.insert(ranked[r].second);
      }
      if (rank >= 1 && rank <= k) {
        hr += 1.0;
        ndcg += 1.0 / std::log2(static_cast<double>(rank) + 1.0);
      }
      mrr += rank ? 1.0 / static_cast<double>(rank) : 0.0;
    }
    scorer->Observe(Interaction{u, i, static_cast<float>(e.weight), e.ts_ms, rng_key});
    seen[u].insert(i);
  }
};

std::vector<Event> RandomStream(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::vector<Event> out;
  for (size_t t = 0; t < n; ++t) {
    const auto u = rng() % 12;
    const auto i = (rng() % 30) * (rng() % 30) / 30;  // skewed: repeats and popular items
    const double w = rng() % 8 == 0 ? -1.0 : (rng() % 3 == 0 ? 2.0 : 1.0);
    Event e = MakeEvent("u" + std::to_string(u), "i" + std::to_string(i), w);
    e.ts_ms = static_cast<int64_t>(t);
    out.push_back(e);
  }
  return out;
}

TEST(PrequentialEvaluatorTest, MatchesNaiveTwinWithPopularity) {
  for (uint64_t seed : {1u, 2u, 3u}) {
    for (size_t k : {size_t{1}, size_t{3}, size_t{10}}) {
      for (double half_life : {3.0, 50.0}) {
        PopularityScorer scorer(half_life), twin_scorer(half_life);
        PrequentialEvaluator eval(k, {&scorer}, /*seed=*/seed);
        NaiveEvaluation twin{.k = k, .scorer = &twin_scorer};
        const std::vector<Event> stream = RandomStream(seed, 600);
        for (size_t t = 0; t < stream.size(); ++t) {
          eval.Process(stream[t], static_cast<int64_t>(t));
          twin.Process(stream[t], EventRngKey(seed, 0, static_cast<int64_t>(t)));
        }
        const EvalReport r = eval.Report();
        SCOPED_TRACE("seed " + std::to_string(seed) + " k " + std::to_string(k));
        EXPECT_EQ(r.events, stream.size());
        EXPECT_EQ(r.evaluated, twin.evaluated);
        EXPECT_EQ(r.k, k);
        ASSERT_EQ(r.models.size(), 1u);
        const double n = static_cast<double>(twin.evaluated);
        ASSERT_GT(n, 50.0);
        EXPECT_EQ(r.models[0].name, "popular");
        EXPECT_EQ(r.models[0].hr, twin.hr / n);
        EXPECT_EQ(r.models[0].ndcg, twin.ndcg / n);
        EXPECT_EQ(r.models[0].mrr, twin.mrr / n);
        EXPECT_EQ(r.models[0].coverage, static_cast<double>(twin.covered.size()) /
                                            static_cast<double>(twin.items.size()));
        EXPECT_GT(r.models[0].hr, 0.0);
        EXPECT_LT(r.models[0].hr, 1.0);
        EXPECT_EQ(eval.items().size(), twin.items.size());
        EXPECT_EQ(eval.users().size(), twin.users.size());
      }
    }
  }
}

// Two scorers side by side are each evaluated as if alone.
TEST(PrequentialEvaluatorTest, ScorersAreIndependent) {
  PopularityScorer a(5.0), b(1000.0), alone_b(1000.0);
  PrequentialEvaluator both(3, {&a, &b}, 7);
  PrequentialEvaluator only(3, {&alone_b}, 7);
  const std::vector<Event> stream = RandomStream(9, 400);
  for (size_t t = 0; t < stream.size(); ++t) {
    both.Process(stream[t], static_cast<int64_t>(t));
    only.Process(stream[t], static_cast<int64_t>(t));
  }
  const EvalReport r2 = both.Report(), r1 = only.Report();
  ASSERT_EQ(r2.models.size(), 2u);
  EXPECT_EQ(r2.models[1].hr, r1.models[0].hr);
  EXPECT_EQ(r2.models[1].mrr, r1.models[0].mrr);
  EXPECT_EQ(r2.models[1].coverage, r1.models[0].coverage);
  EXPECT_NE(r2.models[0].mrr, r2.models[1].mrr);
}

// Which events are ranked: positive, item already in the catalogue, not yet seen by the user
// (any earlier event counts as seen, a dislike included).
TEST(PrequentialEvaluatorTest, EligibilityRules) {
  PopularityScorer scorer(1e9);
  PrequentialEvaluator eval(10, {&scorer}, 1);
  eval.Process(MakeEvent("a", "x"), 0);        // new item: not ranked
  eval.Process(MakeEvent("b", "x"), 1);        // ranked (1)
  eval.Process(MakeEvent("b", "x"), 2);        // repeat: not ranked
  eval.Process(MakeEvent("a", "y"), 3);        // new item: not ranked
  eval.Process(MakeEvent("c", "y", -1.0), 4);  // negative: not ranked
  eval.Process(MakeEvent("c", "y"), 5);        // seen through the dislike: not ranked
  eval.Process(MakeEvent("c", "x", 0.0), 6);   // zero weight: not ranked
  eval.Process(MakeEvent("d", "y"), 7);        // ranked (2)
  EvalReport r = eval.Report();
  EXPECT_EQ(r.events, 8u);
  EXPECT_EQ(r.evaluated, 2u);
  // Both ranked events found their item in the top 10 of a 1- and a 2-item catalogue.
  EXPECT_EQ(r.models[0].hr, 1.0);
  EXPECT_EQ(eval.users().size(), 4u);
  EXPECT_EQ(eval.items().size(), 2u);
}

TEST(PrequentialEvaluatorTest, EmptyReport) {
  PopularityScorer scorer(10.0);
  PrequentialEvaluator eval(10, {&scorer}, 1);
  const EvalReport r = eval.Report();
  EXPECT_EQ(r.events, 0u);
  EXPECT_EQ(r.evaluated, 0u);
  ASSERT_EQ(r.models.size(), 1u);
  EXPECT_EQ(r.models[0].hr, 0.0);
  EXPECT_EQ(r.models[0].coverage, 0.0);
}

// Hand-computed metrics and coverage with counts as popularity (huge half-life):
//   1. u0 i0   new item
//   2. u1 i0   ranked over {i0}: rank 1                          top-1 {i0}
//   3. u1 i1   new item
//   4. u2 i1   ranked over {i0 (2), i1 (1)}: rank 2               top-1 {i0}
//   5. u2 i0   ranked over {i0} (i1 seen): rank 1                 top-1 {i0}
TEST(PrequentialEvaluatorTest, HandComputedMetricsAndCoverage) {
  const std::vector<Event> stream = {MakeEvent("u0", "i0"), MakeEvent("u1", "i0"),
                                     MakeEvent("u1", "i1"), MakeEvent("u2", "i1"),
                                     MakeEvent("u2", "i0")};
  {
    PopularityScorer scorer(1e12);
    PrequentialEvaluator eval(1, {&scorer}, 1);
    for (size_t t = 0; t < stream.size(); ++t) eval.Process(stream[t], static_cast<int64_t>(t));
    const EvalReport r = eval.Report();
    EXPECT_EQ(r.evaluated, 3u);
    EXPECT_DOUBLE_EQ(r.models[0].hr, 2.0 / 3.0);
    EXPECT_DOUBLE_EQ(r.models[0].ndcg, 2.0 / 3.0);
    EXPECT_DOUBLE_EQ(r.models[0].mrr, (1.0 + 0.5 + 1.0) / 3.0);
    EXPECT_DOUBLE_EQ(r.models[0].coverage, 0.5);  // only i0 was ever in a top-1
  }
  {
    PopularityScorer scorer(1e12);
    PrequentialEvaluator eval(2, {&scorer}, 1);
    for (size_t t = 0; t < stream.size(); ++t) eval.Process(stream[t], static_cast<int64_t>(t));
    const EvalReport r = eval.Report();
    EXPECT_DOUBLE_EQ(r.models[0].hr, 1.0);
    EXPECT_DOUBLE_EQ(r.models[0].ndcg, (1.0 + 1.0 / std::log2(3.0) + 1.0) / 3.0);
    EXPECT_DOUBLE_EQ(r.models[0].coverage, 1.0);
  }
}

}  // namespace
}  // namespace simstream::engine
