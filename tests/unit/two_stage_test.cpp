// Two-stage recommendations (Engine::RecommendTwoStage: candidates from the item index, the
// co-occurrence neighbourhood and popularity, re-scored exactly) against the exact scan of the
// whole catalogue, which is the oracle. Both engines learn the same stream, so their models are
// bit-identical and only the retrieval differs.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/engine.hpp"
#include "engine/generator.hpp"
#include "tests/support/test_support.hpp"

namespace simstream::engine {
namespace {

// 4000 items: the ~450 candidates are about a tenth of the catalogue, so a retrieval that
// missed the top of the exact ranking would show.
std::vector<SourcedEvent> Stream() {
  GeneratorOptions g;
  g.users = 3000;
  g.items = 4000;
  g.events = 80000;
  g.communities = 20;
  g.seed = 11;
  return test_support::GeneratedStream(g);
}

config::Options WithIndex(const std::string& kind) {
  config::Options o;
  o.index.kind = kind;
  o.index.maintenance_interval_ms = 0;  // the test builds the index itself
  return o;
}

TEST(TwoStageTest, MatchesExactScanOfTheCatalogue) {
  const auto events = Stream();
  Engine exact(WithIndex("exact")), staged(WithIndex("hnsw"));
  exact.Apply(events);
  staged.Apply(events);
  staged.MaintainIndexes();  // builds the item (and user) index
  ASSERT_EQ(staged.Stats().item_index.mode, "hnsw");

  double recall_sum = 0;
  size_t queries = 0, hits = 0;
  for (int n = 0; n < 3000; n += 7) {
    const std::string user = "u" + std::to_string(n);
    const Recommendations want = exact.Recommend(user, 10, {}, false);
    const Recommendations got = staged.Recommend(user, 10, {}, false);
    if (!want.from_model) continue;
    ASSERT_TRUE(got.from_model) << user;
    ASSERT_EQ(got.items.size(), want.items.size()) << user;
    std::map<std::string, float> exact_score;
    for (const ItemScore& s : want.items) exact_score[s.item] = s.score;
    std::set<std::string> distinct;
    for (size_t r = 0; r < got.items.size(); ++r) {
      const ItemScore& s = got.items[r];
      distinct.insert(s.item);
      if (r > 0) {
        EXPECT_GE(got.items[r - 1].score, s.score) << user;
      }
      // A returned item's score is its exact score; an item the exact top-10 has must score
      // the same in both.
      if (auto it = exact_score.find(s.item); it != exact_score.end()) {
        ++hits;
        EXPECT_NEAR(s.score, it->second, 1e-4f * (1.0f + std::abs(it->second))) << user;
      } else {
        // Missed the exact top-10: then it cannot beat the exact 10th.
        EXPECT_LE(s.score, want.items.back().score + 1e-4f) << user << " " << s.item;
      }
    }
    EXPECT_EQ(distinct.size(), got.items.size()) << user;
    recall_sum += static_cast<double>(
        std::count_if(want.items.begin(), want.items.end(),
                      [&](const ItemScore& s) { return distinct.count(s.item) > 0; }));
    ++queries;
  }
  ASSERT_GT(queries, 300u);
  const double recall = recall_sum / (10.0 * static_cast<double>(queries));
  std::printf("two-stage recall@10 against the exact scan: %.4f over %zu users\n", recall, queries);
  EXPECT_GE(recall, 0.95);
  EXPECT_EQ(hits, static_cast<size_t>(recall_sum));
}

TEST(TwoStageTest, SeenAndExcludedItemsNeverReturned) {
  const auto events = Stream();
  Engine staged(WithIndex("hnsw"));
  staged.Apply(events);
  staged.MaintainIndexes();
  ASSERT_EQ(staged.Stats().item_index.mode, "hnsw");
  std::map<std::string, std::set<std::string>> seen;
  for (const SourcedEvent& e : events) seen[e.event.user].insert(e.event.item);
  for (int n = 0; n < 3000; n += 97) {
    const std::string user = "u" + std::to_string(n);
    const Recommendations first = staged.Recommend(user, 20, {}, false);
    if (!first.from_model) continue;
    std::vector<std::string> exclude;
    for (size_t r = 0; r < 5 && r < first.items.size(); ++r) exclude.push_back(first.items[r].item);
    const Recommendations second = staged.Recommend(user, 20, exclude, false);
    ASSERT_EQ(second.items.size(), 20u) << user;
    for (const ItemScore& s : second.items) {
      EXPECT_EQ(seen[user].count(s.item), 0u) << user << " was recommended seen " << s.item;
      EXPECT_EQ(std::count(exclude.begin(), exclude.end(), s.item), 0) << user << " " << s.item;
    }
    // Without the excluded five, the rest of the list moves up unchanged.
    for (size_t r = 0; r + 5 < first.items.size(); ++r)
      EXPECT_EQ(second.items[r].item, first.items[r + 5].item) << user << " rank " << r;
  }
}

}  // namespace
}  // namespace simstream::engine
