// Two-stage recommendations (Engine::RecommendTwoStage: candidates from the item index, the
// co-occurrence neighbourhood and popularity, re-scored exactly) against the exact scan of the
// whole catalogue, which is the oracle. Both engines learn the same stream, so their models are
// bit-identical and only the retrieval differs.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/engine.hpp"
#include "engine/generator.hpp"
#include "engine/interner.hpp"
#include "engine/model.hpp"
#include "engine/rng.hpp"
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

// With the neighbourhood candidates from each item's list (the default) and from a walk over
// the whole rows (index.neighbour_lists_interval_ms 0).
class TwoStageTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(TwoStageTest, MatchesExactScanOfTheCatalogue) {
  const auto events = Stream();
  config::Options with_lists = WithIndex("hnsw");
  with_lists.index.neighbour_lists_interval_ms = GetParam();
  Engine exact(WithIndex("exact")), staged(with_lists);
  exact.Apply(events);
  staged.Apply(events);
  staged.MaintainIndexes();  // builds the item (and user) index, then the lists
  ASSERT_EQ(staged.Stats().item_index.mode, "hnsw");
  EXPECT_EQ(staged.Stats().neighbour_lists_items, GetParam() > 0 ? staged.Stats().items : 0u);

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
  std::printf(
      "two-stage recall@10 against the exact scan (neighbour lists every %lld ms): %.4f "
      "over %zu users\n",
      static_cast<long long>(GetParam()), recall, queries);
  EXPECT_GE(recall, 0.95);
  EXPECT_EQ(hits, static_cast<size_t>(recall_sum));
}

INSTANTIATE_TEST_SUITE_P(NeighbourLists, TwoStageTest, ::testing::Values(10000, 0),
                         [](const auto& p) {
                           return p.param > 0 ? std::string("Lists") : std::string("WholeRows");
                         });

// The lists as NeighbourCandidates reads them, against what they hold: a user whose history is
// one item i takes its candidates in the order of i's list when that list is full, however the
// row has changed since the build, and from a walk over the live row when it is not (the row was
// short then, and may have grown since).
TEST(NeighbourListsTest, OneItemUsersTakeTheirItemsListWhenFullAndTheLiveRowOtherwise) {
  const auto events = Stream();
  const config::ModelOptions mo;
  OnlineModel model(mo);
  IdInterner users, items;
  const auto feed = [&](uint32_t user, uint32_t item, size_t n) {
    model.Observe({user, item, 1.0f, 1700000000000 + static_cast<int64_t>(n),
                   EventRngKey(static_cast<uint64_t>(mo.seed), 0, static_cast<int64_t>(n))});
  };
  size_t n = 0;
  for (; n < 6000; ++n) {  // a prefix: many rows still short when the lists are built
    feed(users.Intern(events[n].event.user), items.Intern(events[n].event.item), n);
  }
  // Users with one event each, on items across the popularity range.
  std::vector<std::pair<uint32_t, uint32_t>> solo;  // (user, item)
  for (uint32_t k = 0; k < 200; ++k) {
    const uint32_t item = (k * 37) % static_cast<uint32_t>(items.size());
    solo.emplace_back(users.Intern("solo" + std::to_string(k)), item);
    feed(solo.back().first, item, n++);
  }
  constexpr size_t kPerItem = 10;
  NeighbourLists lists(kPerItem);
  std::vector<Scored> row;
  for (uint32_t i = 0; i < model.items(); ++i) {
    model.StrongestNeighbours(i, kPerItem, row);
    lists.Append(row);
  }
  for (; n < events.size(); ++n) {  // the rest: rows grow and change after the build
    feed(users.Intern(events[n].event.user), items.Intern(events[n].event.item), n);
  }
  size_t full = 0, live = 0, stale = 0;
  for (const auto& [user, item] : solo) {
    std::vector<uint32_t> got, walked;
    model.NeighbourCandidates(user, 5, kPerItem, got, &lists);
    model.NeighbourCandidates(user, 5, kPerItem, walked);
    if (lists.Full(item)) {
      ++full;
      std::vector<uint32_t> want;
      for (const Scored& s : lists.Of(item)) want.push_back(s.id);
      EXPECT_EQ(got, want) << "item " << item;
      stale += got != walked;
    } else {
      ++live;
      EXPECT_EQ(got, walked) << "item " << item;
    }
  }
  EXPECT_GT(full, 20u);
  EXPECT_GT(live, 20u);
  EXPECT_GT(stale, 0u);  // the rows did move: the full lists were read, not the rows
}

// The maintainer builds the lists once the item index is active, again once they are older than
// the interval and events were applied since, never while the consumer catches up or with an
// interval of 0; /v1/stats counts them (their bytes inside model_bytes).
TEST(NeighbourListsTest, RebuiltOnTheirIntervalAndReported) {
  const auto events = Stream();
  for (const int64_t interval : {int64_t{10000}, int64_t{0}}) {
    config::Options o = WithIndex("hnsw");
    o.index.neighbour_lists_interval_ms = interval;
    o.index.defer_builds_above_lag = 1000;
    Engine e(o);
    e.Apply(events);
    const auto t0 = std::chrono::steady_clock::now();
    e.MaintainIndexes(t0);
    EngineStats s = e.Stats();
    ASSERT_EQ(s.item_index.mode, "hnsw");
    if (interval == 0) {
      EXPECT_EQ(s.neighbour_lists_builds, 0u);
      EXPECT_EQ(s.neighbour_lists_items, 0u);
      EXPECT_EQ(s.neighbour_lists_bytes, 0u);
      continue;
    }
    EXPECT_EQ(s.neighbour_lists_builds, 1u);
    EXPECT_EQ(s.neighbour_lists_items, s.items);
    EXPECT_GE(s.neighbour_lists_bytes, s.items * 100 * sizeof(Scored) / 2);
    EXPECT_GT(s.model_bytes, s.neighbour_lists_bytes);
    e.MaintainIndexes(t0 + std::chrono::milliseconds(9000));
    EXPECT_EQ(e.Stats().neighbour_lists_builds, 1u);
    e.NoteLag(5000);  // catching up: no rebuild, however old
    std::vector<SourcedEvent> more(events.begin(), events.begin() + 10);
    for (SourcedEvent& m : more) m.partition = 99;  // new offsets: progress, so the lag defers
    e.Apply(more);
    e.MaintainIndexes(t0 + std::chrono::milliseconds(20000));
    EXPECT_EQ(e.Stats().neighbour_lists_builds, 1u);
    e.NoteLag(0);
    e.MaintainIndexes(t0 + std::chrono::milliseconds(20001));
    EXPECT_EQ(e.Stats().neighbour_lists_builds, 2u);
    // Nothing applied since: however old, the lists are current.
    e.MaintainIndexes(t0 + std::chrono::milliseconds(60000));
    EXPECT_EQ(e.Stats().neighbour_lists_builds, 2u);
    for (SourcedEvent& m : more) m.offset += 1000;
    e.Apply(more);
    e.MaintainIndexes(t0 + std::chrono::milliseconds(60001));
    EXPECT_EQ(e.Stats().neighbour_lists_builds, 3u);
  }
}

TEST(TwoStageSeenTest, SeenAndExcludedItemsNeverReturned) {
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
