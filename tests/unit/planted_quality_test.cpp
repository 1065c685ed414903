// Acceptance check of the learned metric with the DEFAULT model options: on synthetic streams
// with planted communities and item clusters, the similar-users and similar-items lists of the
// learned embeddings must mostly stay inside the planted groups.
//
// The stream is observed directly (ids interned here, rng keys as the evaluator derives them):
// prequential ranking would not change the learned state and costs most of the run time.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "config/options.hpp"
#include "engine/generator.hpp"
#include "engine/interner.hpp"
#include "engine/model.hpp"
#include "engine/quality.hpp"
#include "engine/rng.hpp"

namespace simstream::engine {
namespace {

NeighbourQuality LearnAndMeasure(const GeneratorOptions& g) {
  const config::ModelOptions opts;  // the defaults, on purpose
  OnlineModel model(opts);
  IdInterner users, items;
  int64_t offset = 0;
  const auto start = std::chrono::steady_clock::now();
  const GroundTruth truth = Generate(g, [&](const Event& e) {
    const Interaction x{users.Intern(e.user), items.Intern(e.item), static_cast<float>(e.weight),
                        e.ts_ms,
                        EventRngKey(static_cast<uint64_t>(opts.seed), /*partition=*/0, offset++)};
    model.Observe(x);
  });
  const auto learned = std::chrono::steady_clock::now();
  const NeighbourQuality q = PlantedNeighbourQuality(model, users, items, truth, /*k=*/10,
                                                     /*min_events=*/20, Metric::kCosine);
  const auto done = std::chrono::steady_clock::now();
  using Secs = std::chrono::duration<double>;
  std::printf(
      "planted users=%zu items=%zu events=%zu communities=%zu noise=%.2f seed=%llu: "
      "user_precision=%.4f (%zu users) item_precision=%.4f (%zu items), learn %.2fs, "
      "measure %.2fs\n",
      g.users, g.items, g.events, g.communities, g.noise, static_cast<unsigned long long>(g.seed),
      q.user_precision, q.users_evaluated, q.item_precision, q.items_evaluated,
      Secs(learned - start).count(), Secs(done - learned).count());
  EXPECT_EQ(offset, static_cast<int64_t>(g.events));
  return q;
}

GeneratorOptions DefaultShape(uint64_t seed) {
  GeneratorOptions g;
  g.users = 2000;
  g.items = 1000;
  g.events = 100000;
  g.communities = 10;
  g.seed = seed;
  return g;
}

TEST(PlantedQualityTest, DefaultShapeSeed1) {
  const NeighbourQuality q = LearnAndMeasure(DefaultShape(1));
  EXPECT_GT(q.users_evaluated, 1000u);
  EXPECT_GT(q.items_evaluated, 500u);
  EXPECT_GE(q.user_precision, 0.9);
  EXPECT_GE(q.item_precision, 0.9);
}

TEST(PlantedQualityTest, DefaultShapeSeed2) {
  const NeighbourQuality q = LearnAndMeasure(DefaultShape(2));
  EXPECT_GT(q.users_evaluated, 1000u);
  EXPECT_GT(q.items_evaluated, 500u);
  EXPECT_GE(q.user_precision, 0.9);
  EXPECT_GE(q.item_precision, 0.9);
}

TEST(PlantedQualityTest, MoreCommunitiesMoreItemsMoreNoise) {
  GeneratorOptions g;
  g.users = 3000;
  g.items = 3000;
  g.events = 150000;
  g.communities = 20;
  g.noise = 0.2;
  g.seed = 3;
  const NeighbourQuality q = LearnAndMeasure(g);
  EXPECT_GT(q.users_evaluated, 1000u);
  EXPECT_GT(q.items_evaluated, 500u);
  EXPECT_GE(q.user_precision, 0.9);
  EXPECT_GE(q.item_precision, 0.9);
}

}  // namespace
}  // namespace simstream::engine
