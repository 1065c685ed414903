#include "engine/generator.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace simstream::engine {
namespace {

using generator_detail::FenwickSampler;
using generator_detail::SampleCumulative;
using generator_detail::SplitMix64Next;
using generator_detail::SplitProportionally;
using generator_detail::Xoshiro256ss;
using generator_detail::ZipfCumulative;

size_t UserIndex(const Event& e) {
  return std::stoul(e.user.substr(1));
}
size_t ItemIndex(const Event& e) {
  return std::stoul(e.item.substr(1));
}

std::vector<Event> Collect(const GeneratorOptions& opts, GroundTruth* truth = nullptr) {
  std::vector<Event> events;
  GroundTruth t = Generate(opts, [&](const Event& e) { events.push_back(e); });
  if (truth) *truth = std::move(t);
  return events;
}

// The community a user follows at the time of event `e` (drift switches at drift_ts).
uint32_t CommunityAt(const GroundTruth& truth, size_t u, int64_t ts) {
  if (truth.user_drifted[u] && ts >= truth.user_drift_ts_ms[u]) return truth.user_community[u];
  return truth.user_initial_community[u];
}

bool Liked(uint32_t community, uint32_t cluster, size_t communities) {
  return cluster == PrimaryCluster(community) ||
         cluster == SecondaryCluster(community, communities);
}

// ---- building blocks ------------------------------------------------------------------------

TEST(GeneratorRngTest, SplitMix64MatchesReferenceVector) {
  // Reference outputs of splitmix64 from state 0 (Vigna's splitmix64.c).
  uint64_t state = 0;
  EXPECT_EQ(SplitMix64Next(state), 0xE220A8397B1DCDAFULL);
  EXPECT_EQ(SplitMix64Next(state), 0x6E789E6AA1B965F4ULL);
  EXPECT_EQ(SplitMix64Next(state), 0x06C45D188009454FULL);
}

TEST(GeneratorRngTest, XoshiroMatchesHandStepFromSplitMixSeed) {
  // First xoshiro256** output is rotl(s1 * 5, 7) * 9 with s1 the second splitmix64 word.
  uint64_t state = 7;
  SplitMix64Next(state);
  const uint64_t s1 = SplitMix64Next(state);
  const uint64_t x = s1 * 5;
  Xoshiro256ss rng(7);
  EXPECT_EQ(rng.Next(), ((x << 7) | (x >> 57)) * 9);
}

TEST(GeneratorRngTest, BelowIsInRangeAndRoughlyUniform) {
  Xoshiro256ss rng(3);
  std::vector<int> hist(7, 0);
  for (int i = 0; i < 70000; ++i) {
    const uint64_t v = rng.Below(7);
    ASSERT_LT(v, 7u);
    ++hist[v];
  }
  for (int h : hist) EXPECT_NEAR(h, 10000, 500);
  EXPECT_EQ(rng.Below(1), 0u);
  const double u = rng.Uniform01();
  EXPECT_GE(u, 0.0);
  EXPECT_LT(u, 1.0);
}

TEST(GeneratorFenwickTest, MatchesLinearScanUnderDecrements) {
  Xoshiro256ss rng(11);
  for (size_t n : {1u, 2u, 3u, 7u, 8u, 9u, 33u}) {
    std::vector<uint64_t> counts(n);
    for (auto& c : counts) c = rng.Below(5);
    counts[n / 2] += 1;  // at least one unit
    FenwickSampler sampler(counts);
    uint64_t total = 0;
    for (auto c : counts) total += c;
    ASSERT_EQ(sampler.Total(), total);
    while (total > 0) {
      // Every target against the slow twin.
      for (uint64_t target = 0; target < total; ++target) {
        uint64_t acc = 0;
        size_t expected = 0;
        while (acc + counts[expected] <= target) acc += counts[expected++];
        ASSERT_EQ(sampler.Find(target), expected) << "n=" << n << " target=" << target;
      }
      const size_t pick = sampler.Find(rng.Below(total));
      sampler.Decrement(pick);
      --counts[pick];
      --total;
      ASSERT_EQ(sampler.Total(), total);
    }
  }
}

TEST(GeneratorSplitTest, SharesSumExactlyAndFollowWeights) {
  EXPECT_EQ(SplitProportionally(10, {1, 1}), (std::vector<uint64_t>{5, 5}));
  EXPECT_EQ(SplitProportionally(10, {3, 1}), (std::vector<uint64_t>{7, 3}));  // floor(7.5)
  EXPECT_EQ(SplitProportionally(0, {1, 2, 3}), (std::vector<uint64_t>{0, 0, 0}));
  EXPECT_EQ(SplitProportionally(6, {1, 0, 2}), (std::vector<uint64_t>{2, 0, 4}));
  Xoshiro256ss rng(5);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<double> w(1 + rng.Below(40));
    for (auto& x : w) x = rng.Uniform01() + 0.01;
    const uint64_t total = rng.Below(100000);
    const auto shares = SplitProportionally(total, w);
    uint64_t sum = 0;
    double wsum = 0;
    for (double x : w) wsum += x;
    for (size_t i = 0; i < w.size(); ++i) {
      sum += shares[i];
      EXPECT_NEAR(static_cast<double>(shares[i]), total * w[i] / wsum, 1.0 + 1e-6);
    }
    EXPECT_EQ(sum, total);
  }
}

TEST(GeneratorZipfTest, CumulativeHandComputedAndSamplerMatchesLinearScan) {
  const auto cdf = ZipfCumulative(3, 1.0);
  ASSERT_EQ(cdf.size(), 3u);
  EXPECT_DOUBLE_EQ(cdf[0], 1.0);
  EXPECT_DOUBLE_EQ(cdf[1], 1.5);
  EXPECT_DOUBLE_EQ(cdf[2], 1.5 + 1.0 / 3);
  // u * total = 0.9 -> rank 0; 1.2 -> rank 1; 1.6 -> rank 2.
  EXPECT_EQ(SampleCumulative(cdf, 0.9 / cdf[2]), 0u);
  EXPECT_EQ(SampleCumulative(cdf, 1.2 / cdf[2]), 1u);
  EXPECT_EQ(SampleCumulative(cdf, 1.6 / cdf[2]), 2u);
  EXPECT_EQ(SampleCumulative(ZipfCumulative(4, 0.0), 0.5), 2u);  // uniform: 2.0 of 4 -> rank 2
  Xoshiro256ss rng(9);
  const auto big = ZipfCumulative(50, 1.3);
  for (int i = 0; i < 2000; ++i) {
    const double u = rng.Uniform01();
    const double target = u * big.back();
    size_t expected = 0;
    while (expected + 1 < big.size() && big[expected] <= target) ++expected;
    ASSERT_EQ(SampleCumulative(big, u), expected);
  }
}

// ---- options --------------------------------------------------------------------------------

TEST(GeneratorOptionsTest, DefaultsAreValid) {
  EXPECT_TRUE(ValidateGeneratorOptions({}).ok());
}

TEST(GeneratorOptionsTest, RejectsBadInput) {
  const auto rejects = [](auto mutate) {
    GeneratorOptions o;
    mutate(o);
    const Status s = ValidateGeneratorOptions(o);
    return !s.ok() && s.error().code == "invalid_generator_options";
  };
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.users = 0; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.items = 0; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.communities = 0; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.communities = o.items + 1; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.events = 0; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.events = o.users * o.min_user_events - 1; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.noise = 1.5; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.noise = -0.1; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.negative_rate = std::nan(""); }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.drift_fraction = 2; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.secondary_share = -1; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.item_zipf = -1; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.user_activity_zipf = INFINITY; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.mean_gap_ms = -1; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.start_ts_ms = -5; }));
  EXPECT_TRUE(rejects([](GeneratorOptions& o) { o.mean_gap_ms = int64_t{1} << 50; }));
  // Boundaries that are fine.
  EXPECT_FALSE(rejects([](GeneratorOptions& o) { o.communities = o.items; }));
  EXPECT_FALSE(rejects([](GeneratorOptions& o) { o.events = o.users * o.min_user_events; }));
  EXPECT_FALSE(rejects([](GeneratorOptions& o) { o.noise = 1; }));
  EXPECT_FALSE(rejects([](GeneratorOptions& o) { o.min_user_events = 0; }));
}

TEST(GeneratorOptionsTest, InvalidOptionsProduceNothing) {
  GeneratorOptions o;
  o.communities = 0;
  size_t n = 0;
  const GroundTruth truth = Generate(o, [&](const Event&) { ++n; });
  EXPECT_EQ(n, 0u);
  EXPECT_TRUE(truth.user_community.empty());
}

// ---- the stream -----------------------------------------------------------------------------

GeneratorOptions Small() {
  GeneratorOptions o;
  o.users = 300;
  o.items = 200;
  o.events = 20000;
  o.communities = 5;
  o.seed = 42;
  return o;
}

TEST(GeneratorTest, SameSeedSameStreamDifferentSeedDifferentStream) {
  const auto a = Collect(Small());
  const auto b = Collect(Small());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].user, b[i].user) << i;
    ASSERT_EQ(a[i].item, b[i].item) << i;
    ASSERT_EQ(a[i].type, b[i].type) << i;
    ASSERT_EQ(a[i].weight, b[i].weight) << i;
    ASSERT_EQ(a[i].ts_ms, b[i].ts_ms) << i;
  }
  GeneratorOptions other = Small();
  other.seed = 43;
  const auto c = Collect(other);
  ASSERT_EQ(c.size(), a.size());
  size_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i].user == c[i].user && a[i].item == c[i].item;
  EXPECT_LT(same, a.size() / 10);
}

TEST(GeneratorTest, RegressionFingerprintOfTheStream) {
  // Any change to the generator's draws changes this fingerprint; the value was recorded from
  // this implementation. Update it only on purpose (synthetic data sets would change).
  GeneratorOptions o = Small();
  o.events = 2000;
  o.users = 100;
  uint64_t h = 1469598103934665603ULL;  // FNV-1a over the serialised fields
  const auto mix = [&](const std::string& s) {
    for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ULL;
    h = (h ^ 0xFF) * 1099511628211ULL;
  };
  Generate(o, [&](const Event& e) {
    mix(e.user);
    mix(e.item);
    mix(e.type);
    mix(std::to_string(e.ts_ms));
  });
  EXPECT_EQ(h, 4545805306809990484ULL) << h;
}

TEST(GeneratorTest, ExactCountsAndMinimumPerUser) {
  GroundTruth truth;
  const GeneratorOptions o = Small();
  const auto events = Collect(o, &truth);
  EXPECT_EQ(events.size(), o.events);
  std::vector<size_t> per_user(o.users, 0);
  for (const auto& e : events) {
    const size_t u = UserIndex(e);
    ASSERT_LT(u, o.users);
    ASSERT_LT(ItemIndex(e), o.items);
    ++per_user[u];
  }
  for (size_t u = 0; u < o.users; ++u) EXPECT_GE(per_user[u], o.min_user_events) << u;
  // Long-tailed activity: the heaviest user is far above the median one.
  std::vector<size_t> sorted = per_user;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_GT(sorted.back(), 3 * sorted[sorted.size() / 2]);

  ASSERT_EQ(truth.user_community.size(), o.users);
  ASSERT_EQ(truth.user_initial_community.size(), o.users);
  ASSERT_EQ(truth.user_drifted.size(), o.users);
  ASSERT_EQ(truth.user_drift_ts_ms.size(), o.users);
  ASSERT_EQ(truth.item_cluster.size(), o.items);
}

TEST(GeneratorTest, TightScheduleGivesEveryUserExactlyTheMinimum) {
  GeneratorOptions o = Small();
  o.events = o.users * o.min_user_events;
  const auto events = Collect(o);
  ASSERT_EQ(events.size(), o.events);
  std::vector<size_t> per_user(o.users, 0);
  for (const auto& e : events) ++per_user[UserIndex(e)];
  for (size_t u = 0; u < o.users; ++u) EXPECT_EQ(per_user[u], o.min_user_events) << u;
}

TEST(GeneratorTest, TimestampsStrictlyIncreaseWithTheRequestedMeanGap) {
  const GeneratorOptions o = Small();
  const auto events = Collect(o);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.front().ts_ms, o.start_ts_ms);
  for (size_t i = 1; i < events.size(); ++i) {
    ASSERT_GT(events[i].ts_ms, events[i - 1].ts_ms) << i;
    ASSERT_LE(events[i].ts_ms - events[i - 1].ts_ms, 2 * o.mean_gap_ms - 1) << i;
  }
  const double mean_gap = static_cast<double>(events.back().ts_ms - events.front().ts_ms) /
                          static_cast<double>(events.size() - 1);
  EXPECT_NEAR(mean_gap, static_cast<double>(o.mean_gap_ms), 0.03 * o.mean_gap_ms);

  GeneratorOptions zero = Small();
  zero.mean_gap_ms = 0;
  for (const auto& e : Collect(zero)) ASSERT_EQ(e.ts_ms, zero.start_ts_ms);
}

TEST(GeneratorTest, TruthIsBalancedAndConsistent) {
  GroundTruth truth;
  const GeneratorOptions o = Small();
  Collect(o, &truth);
  std::vector<size_t> cluster_size(o.communities, 0), community_size(o.communities, 0);
  for (uint32_t c : truth.item_cluster) ++cluster_size.at(c);
  for (uint32_t c : truth.user_initial_community) ++community_size.at(c);
  for (size_t c = 0; c < o.communities; ++c) {
    EXPECT_EQ(cluster_size[c], o.items / o.communities);
    EXPECT_EQ(community_size[c], o.users / o.communities);
  }
  size_t drifted = 0;
  for (size_t u = 0; u < o.users; ++u) {
    ASSERT_LT(truth.user_community[u], o.communities);
    if (truth.user_drifted[u]) {
      ++drifted;
      EXPECT_NE(truth.user_community[u], truth.user_initial_community[u]);
      EXPECT_GE(truth.user_drift_ts_ms[u], o.start_ts_ms);
    } else {
      EXPECT_EQ(truth.user_community[u], truth.user_initial_community[u]);
      EXPECT_EQ(truth.user_drift_ts_ms[u], -1);
    }
  }
  EXPECT_EQ(drifted, 30u);  // round(0.1 * 300)
}

TEST(GeneratorTest, PositivesFollowTheCommunityUpToNoise) {
  GeneratorOptions o;  // defaults: 2000 users, 1000 items, 100000 events, 10 communities
  GroundTruth truth;
  const auto events = Collect(o, &truth);
  size_t positives = 0, in_liked = 0, in_primary = 0;
  for (const auto& e : events) {
    const size_t u = UserIndex(e);
    if (truth.user_drifted[u] || e.type == "dislike") continue;
    const uint32_t c = truth.user_community[u];
    const uint32_t cluster = truth.item_cluster[ItemIndex(e)];
    ++positives;
    in_liked += Liked(c, cluster, o.communities);
    in_primary += cluster == PrimaryCluster(c);
  }
  ASSERT_GT(positives, 50000u);
  // Noise events land on liked clusters by chance too: 2 of 10 equal clusters.
  const double liked_items = 2.0 / 10;
  const double expected_liked = (1 - o.noise) + o.noise * liked_items;
  const double expected_primary = (1 - o.noise) * (1 - o.secondary_share) + o.noise / 10;
  EXPECT_NEAR(static_cast<double>(in_liked) / positives, expected_liked, 0.01);
  EXPECT_NEAR(static_cast<double>(in_primary) / positives, expected_primary, 0.01);
}

TEST(GeneratorTest, DislikesLandOutsideLikedClustersAtTheRequestedRate) {
  GeneratorOptions o = Small();
  o.negative_rate = 0.1;
  GroundTruth truth;
  const auto events = Collect(o, &truth);
  size_t dislikes = 0;
  std::set<std::string> types;
  for (const auto& e : events) {
    types.insert(e.type);
    const size_t u = UserIndex(e);
    if (e.type != "dislike") {
      EXPECT_GT(e.weight, 0.0);
      continue;
    }
    ++dislikes;
    EXPECT_LT(e.weight, 0.0);
    const uint32_t cluster = truth.item_cluster[ItemIndex(e)];
    ASSERT_FALSE(Liked(CommunityAt(truth, u, e.ts_ms), cluster, o.communities))
        << e.user << " " << e.item;
  }
  EXPECT_NEAR(static_cast<double>(dislikes) / events.size(), 0.1, 0.01);
  EXPECT_EQ(types, (std::set<std::string>{"click", "dislike", "purchase", "rating", "view"}));

  // With two communities every cluster is liked: no dislikes at all.
  GeneratorOptions two = Small();
  two.communities = 2;
  two.negative_rate = 0.5;
  for (const auto& e : Collect(two)) ASSERT_NE(e.type, "dislike");
}

TEST(GeneratorTest, DriftedUsersFollowTheNewCommunityAfterTheDrift) {
  GeneratorOptions o;
  o.drift_fraction = 0.3;
  o.negative_rate = 0;
  GroundTruth truth;
  const auto events = Collect(o, &truth);
  const int64_t mid_ts = events[events.size() / 2].ts_ms;
  size_t before = 0, before_primary = 0, after = 0, after_new_primary = 0, after_old_primary = 0;
  for (const auto& e : events) {
    const size_t u = UserIndex(e);
    if (!truth.user_drifted[u]) continue;
    EXPECT_GE(truth.user_drift_ts_ms[u], mid_ts);  // drift happens in the second half
    const uint32_t cluster = truth.item_cluster[ItemIndex(e)];
    if (e.ts_ms >= truth.user_drift_ts_ms[u]) {
      ++after;
      after_new_primary += cluster == PrimaryCluster(truth.user_community[u]);
      after_old_primary += cluster == PrimaryCluster(truth.user_initial_community[u]);
    } else {
      ++before;
      before_primary += cluster == PrimaryCluster(truth.user_initial_community[u]);
    }
  }
  ASSERT_GT(after, 2000u);
  ASSERT_GT(before, 2000u);
  const double expected_primary = (1 - o.noise) * (1 - o.secondary_share) + o.noise / 10;
  EXPECT_NEAR(static_cast<double>(after_new_primary) / after, expected_primary, 0.03);
  EXPECT_NEAR(static_cast<double>(before_primary) / before, expected_primary, 0.03);
  // The old primary cluster gets at most the secondary share after the drift.
  EXPECT_LT(static_cast<double>(after_old_primary) / after, 0.3);
}

TEST(GeneratorTest, ItemPopularityIsLongTailedInsideClusters) {
  GeneratorOptions o;
  o.noise = 0;
  o.negative_rate = 0;
  GroundTruth truth;
  const auto events = Collect(o, &truth);
  std::vector<size_t> per_item(o.items, 0);
  for (const auto& e : events) ++per_item[ItemIndex(e)];
  for (uint32_t c = 0; c < o.communities; ++c) {
    std::vector<size_t> counts;
    for (size_t i = 0; i < o.items; ++i) {
      if (truth.item_cluster[i] == c) counts.push_back(per_item[i]);
    }
    std::sort(counts.begin(), counts.end());
    const size_t median = counts[counts.size() / 2];
    // Zipf(1) over 100 items: rank 1 vs rank ~50 is a factor of ~50.
    EXPECT_GT(counts.back(), 10 * std::max<size_t>(median, 1)) << "cluster " << c;
  }

  // Uniform inside clusters: no item dominates its cluster.
  GeneratorOptions flat = o;
  flat.item_zipf = 0;
  std::fill(per_item.begin(), per_item.end(), 0);
  GroundTruth flat_truth;
  for (const auto& e : Collect(flat, &flat_truth)) ++per_item[ItemIndex(e)];
  for (uint32_t c = 0; c < o.communities; ++c) {
    std::vector<size_t> counts;
    for (size_t i = 0; i < o.items; ++i) {
      if (flat_truth.item_cluster[i] == c) counts.push_back(per_item[i]);
    }
    std::sort(counts.begin(), counts.end());
    EXPECT_LT(counts.back(), 2 * counts[counts.size() / 2]) << "cluster " << c;
  }
}

TEST(GeneratorTest, SingleCommunityAndOneItemWork) {
  GeneratorOptions o;
  o.users = 3;
  o.items = 1;
  o.communities = 1;
  o.events = 50;
  GroundTruth truth;
  const auto events = Collect(o, &truth);
  ASSERT_EQ(events.size(), 50u);
  for (const auto& e : events) {
    EXPECT_EQ(e.item, "i0");
    EXPECT_NE(e.type, "dislike");
  }
  for (bool d : truth.user_drifted) EXPECT_FALSE(d);
}

// Speed is measured in bench/; this checks that a large stream is produced in full.
TEST(GeneratorTest, MillionEventsStreamInFull) {
  GeneratorOptions o;
  o.users = 50000;
  o.items = 20000;
  o.events = 1000000;
  o.communities = 20;
  size_t n = 0;
  Generate(o, [&](const Event&) { ++n; });
  EXPECT_EQ(n, o.events);
}

// ---- truth file -----------------------------------------------------------------------------

class GeneratorTruthFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("simstream_generator_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  void WriteText(const std::string& name, const std::string& text) const {
    std::ofstream(Path(name)) << text;
  }
  std::filesystem::path dir_;
};

TEST_F(GeneratorTruthFileTest, RoundTrip) {
  GeneratorOptions o = Small();
  o.drift_fraction = 0.2;
  GroundTruth truth;
  Collect(o, &truth);
  ASSERT_TRUE(WriteTruth(Path("truth.json"), truth, o).ok());
  const Result<GroundTruth> read = ReadTruth(Path("truth.json"));
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ(read->user_community, truth.user_community);
  EXPECT_EQ(read->user_initial_community, truth.user_initial_community);
  EXPECT_EQ(read->user_drifted, truth.user_drifted);
  EXPECT_EQ(read->user_drift_ts_ms, truth.user_drift_ts_ms);
  EXPECT_EQ(read->item_cluster, truth.item_cluster);

  // The documented shape, checked by hand on one user and one item.
  std::ifstream in(Path("truth.json"));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string u0 = "\"u0\":{\"community\":" + std::to_string(truth.user_community[0]);
  EXPECT_NE(text.find(u0), std::string::npos);
  EXPECT_NE(text.find("\"i0\":{\"cluster\":" + std::to_string(truth.item_cluster[0]) + "}"),
            std::string::npos);
  EXPECT_NE(text.find("\"options\":{"), std::string::npos);
  EXPECT_NE(text.find("\"seed\":42"), std::string::npos);
}

TEST_F(GeneratorTruthFileTest, HandWrittenFileReads) {
  WriteText("t.json",
            R"({"users":{"u1":{"community":0,"initial_community":1,"drifted":true,"drift_ts":7},)"
            R"("u0":{"community":2,"initial_community":2,"drifted":false}},)"
            R"("items":{"i0":{"cluster":1}}})");
  const auto read = ReadTruth(Path("t.json"));
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ(read->user_community, (std::vector<uint32_t>{2, 0}));
  EXPECT_EQ(read->user_initial_community, (std::vector<uint32_t>{2, 1}));
  EXPECT_EQ(read->user_drifted, (std::vector<bool>{false, true}));
  EXPECT_EQ(read->user_drift_ts_ms, (std::vector<int64_t>{-1, 7}));
  EXPECT_EQ(read->item_cluster, (std::vector<uint32_t>{1}));
}

TEST_F(GeneratorTruthFileTest, BadFilesAreErrors) {
  EXPECT_EQ(ReadTruth(Path("missing.json")).error().code, "io_error");
  const auto invalid = [&](const std::string& text) {
    WriteText("bad.json", text);
    const auto r = ReadTruth(Path("bad.json"));
    return !r.ok() && r.error().code == "invalid_truth";
  };
  EXPECT_TRUE(invalid("{not json"));
  EXPECT_TRUE(invalid("[]"));
  EXPECT_TRUE(invalid(R"({"items":{}})"));
  EXPECT_TRUE(invalid(R"({"users":{},"items":{"i1":{"cluster":0}}})"));  // gap: no i0
  EXPECT_TRUE(invalid(R"({"users":{},"items":{"x0":{"cluster":0}}})"));
  EXPECT_TRUE(invalid(R"({"users":{},"items":{"i00":{"cluster":0}}})"));
  EXPECT_TRUE(invalid(R"({"users":{},"items":{"i0":{"cluster":-1}}})"));
  EXPECT_TRUE(invalid(R"({"users":{"u0":{"community":0,"initial_community":0}},"items":{}})"));
  EXPECT_FALSE(invalid(R"({"users":{},"items":{}})"));
  EXPECT_EQ(WriteTruth(Path("no/such/dir/t.json"), GroundTruth{}, GeneratorOptions{}).error().code,
            "io_error");
}

}  // namespace
}  // namespace simstream::engine
