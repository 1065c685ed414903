#include "engine/minhash.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <unordered_set>
#include <vector>

#include "engine/similarity.hpp"

namespace simstream::engine {
namespace {

MinHashSketch SketchOf(const std::vector<uint32_t>& items, int k) {
  MinHashSketch s(k);
  for (uint32_t x : items) s.Add(x);
  return s;
}

TEST(MinHash, NewSketchIsEmpty) {
  MinHashSketch s;
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.size(), 128);
  ASSERT_EQ(s.signature().size(), 128u);
  for (uint32_t v : s.signature()) EXPECT_EQ(v, std::numeric_limits<uint32_t>::max());
  s.Add(5);
  EXPECT_FALSE(s.empty());
  EXPECT_EQ(MinHashSketch(0).size(), 1);  // raised to one hash
}

TEST(MinHash, EmptyEstimatesZero) {
  MinHashSketch empty(64);
  MinHashSketch other = SketchOf({1, 2, 3}, 64);
  EXPECT_EQ(empty.EstimateJaccard(other), 0.0);
  EXPECT_EQ(other.EstimateJaccard(empty), 0.0);
  EXPECT_EQ(empty.EstimateJaccard(MinHashSketch(64)), 0.0);  // even though signatures match
}

TEST(MinHash, IdenticalSetsEstimateOne) {
  std::vector<uint32_t> items(50);
  std::iota(items.begin(), items.end(), 1000u);
  EXPECT_EQ(SketchOf(items, 128).EstimateJaccard(SketchOf(items, 128)), 1.0);
  EXPECT_EQ(SketchOf({7}, 128).EstimateJaccard(SketchOf({7}, 128)), 1.0);
}

TEST(MinHash, DisjointSetsEstimateNearZero) {
  std::vector<uint32_t> a(200), b(200);
  std::iota(a.begin(), a.end(), 0u);
  std::iota(b.begin(), b.end(), 100000u);
  // Only 32-bit hash collisions can make minima agree: expect (almost) none.
  EXPECT_LE(SketchOf(a, 512).EstimateJaccard(SketchOf(b, 512)), 2.0 / 512);
}

TEST(MinHash, AddIsIdempotentAndOrderIndependent) {
  std::mt19937 rng(3);
  std::vector<uint32_t> items(100);
  for (uint32_t& x : items) x = rng();
  const MinHashSketch once = SketchOf(items, 128);

  std::vector<uint32_t> repeated = items;
  repeated.insert(repeated.end(), items.begin(), items.begin() + 40);
  std::shuffle(repeated.begin(), repeated.end(), rng);
  const MinHashSketch again = SketchOf(repeated, 128);
  EXPECT_TRUE(std::ranges::equal(once.signature(), again.signature()));

  std::vector<uint32_t> reversed(items.rbegin(), items.rend());
  EXPECT_TRUE(std::ranges::equal(once.signature(), SketchOf(reversed, 128).signature()));

  // The family is fixed: a different item set gives a different signature.
  items[0] ^= 1u;
  EXPECT_FALSE(std::ranges::equal(once.signature(), SketchOf(items, 128).signature()));
}

TEST(MinHash, SameFamilyForEverySketchOfTheSameSize) {
  // Deterministic across instances: two independently built sketches of one item agree, and the
  // single-item signature differs per position (positions use different hash functions).
  const MinHashSketch a = SketchOf({42}, 16);
  const MinHashSketch b = SketchOf({42}, 16);
  EXPECT_TRUE(std::ranges::equal(a.signature(), b.signature()));
  std::vector<uint32_t> sig(a.signature().begin(), a.signature().end());
  std::sort(sig.begin(), sig.end());
  EXPECT_EQ(std::unique(sig.begin(), sig.end()), sig.end());
}

TEST(MinHash, FromSignatureRoundTrips) {
  const MinHashSketch a = SketchOf({1, 2, 3, 4, 5, 6}, 64);
  const MinHashSketch restored =
      MinHashSketch::FromSignature({a.signature().begin(), a.signature().end()}, a.empty());
  EXPECT_EQ(restored.size(), 64);
  EXPECT_FALSE(restored.empty());
  EXPECT_EQ(restored.EstimateJaccard(a), 1.0);
  // Continuing to add to a restored sketch equals adding to the original.
  MinHashSketch grown = restored;
  grown.Add(7);
  EXPECT_TRUE(
      std::ranges::equal(grown.signature(), SketchOf({1, 2, 3, 4, 5, 6, 7}, 64).signature()));

  const MinHashSketch empty(32);
  const MinHashSketch restored_empty =
      MinHashSketch::FromSignature({empty.signature().begin(), empty.signature().end()}, true);
  EXPECT_TRUE(restored_empty.empty());
  EXPECT_EQ(restored_empty.size(), 32);
}

TEST(MinHash, StandardError) {
  // sqrt(0.5 * 0.5 / 100) = sqrt(0.0025) = 0.05
  EXPECT_DOUBLE_EQ(MinHashSketch::StandardError(0.5, 100), 0.05);
  EXPECT_DOUBLE_EQ(MinHashSketch::StandardError(0.0, 128), 0.0);
  EXPECT_DOUBLE_EQ(MinHashSketch::StandardError(1.0, 128), 0.0);
}

// Random pairs with a spread of true Jaccard values: the estimate must behave like a binomial
// proportion with k trials around the exact Jaccard (computed by ExactJaccard).
void CheckAccuracy(int k, uint32_t seed) {
  std::mt19937 rng(seed);
  constexpr int kPairs = 200;
  int within3 = 0;
  int within4 = 0;
  double abs_error_sum = 0.0;
  double se_sum = 0.0;
  for (int p = 0; p < kPairs; ++p) {
    // Build A and B from a shared core plus private parts, with sizes drawn so J spans (0, 1).
    std::uniform_int_distribution<int> size(0, 300);
    const int shared = size(rng) + 1;
    const int only_a = size(rng);
    const int only_b = size(rng);
    const size_t total = static_cast<size_t>(shared + only_a + only_b);
    std::vector<uint32_t> ids;
    std::unordered_set<uint32_t> seen;
    while (ids.size() < total) {
      const uint32_t id = rng();
      if (seen.insert(id).second) ids.push_back(id);
    }
    std::vector<uint32_t> a(ids.begin(), ids.begin() + shared + only_a);
    std::vector<uint32_t> b(ids.begin(), ids.begin() + shared);
    b.insert(b.end(), ids.begin() + shared + only_a, ids.end());
    const MinHashSketch sa = SketchOf(a, k);
    const MinHashSketch sb = SketchOf(b, k);
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    const double exact = ExactJaccard(a, b);
    const double estimate = sa.EstimateJaccard(sb);
    // Floor the error bound at one part in k: near J=1 the bound tends to 0, but an estimate is
    // a multiple of 1/k.
    const double se = std::max(MinHashSketch::StandardError(exact, k), 1.0 / k);
    const double error = std::abs(estimate - exact);
    within3 += error <= 3 * se;
    within4 += error <= 4 * se;
    abs_error_sum += error;
    se_sum += MinHashSketch::StandardError(exact, k);
  }
  SCOPED_TRACE(testing::Message() << "k=" << k);
  EXPECT_GE(within3, kPairs * 95 / 100);
  EXPECT_GE(within4, kPairs * 99 / 100);
  // For a normal estimator E|err| = sqrt(2/pi) * se ~ 0.8 se; allow slack but not bias.
  EXPECT_LE(abs_error_sum / kPairs, 1.2 * se_sum / kPairs + 0.5 / k);
}

TEST(MinHash, EstimateWithinStandardErrors128) {
  CheckAccuracy(128, 11);
}
TEST(MinHash, EstimateWithinStandardErrors512) {
  CheckAccuracy(512, 12);
}

TEST(MinHash, EstimateIsUnbiasedAtFixedJaccard) {
  // Many pairs at exactly J = 1/3 (100 shared, 100 + 100 private): the mean estimate must be
  // within 4 standard errors of the mean, sqrt(J(1-J)/k)/sqrt(pairs).
  constexpr int k = 128;
  constexpr int kPairs = 300;
  double sum = 0.0;
  uint32_t next = 1;
  for (int p = 0; p < kPairs; ++p) {
    MinHashSketch sa(k), sb(k);
    for (int i = 0; i < 100; ++i, ++next) {
      sa.Add(next);
      sb.Add(next);
    }
    for (int i = 0; i < 100; ++i) sa.Add(next++);
    for (int i = 0; i < 100; ++i) sb.Add(next++);
    sum += sa.EstimateJaccard(sb);
  }
  const double j = 1.0 / 3.0;
  EXPECT_NEAR(sum / kPairs, j, 4 * MinHashSketch::StandardError(j, k) / std::sqrt(kPairs));
}

}  // namespace
}  // namespace simstream::engine
