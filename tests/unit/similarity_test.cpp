#include "engine/similarity.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <vector>

namespace simstream::engine {
namespace {

// Slow, obviously-correct twins in double precision.
double NaiveDot(const float* a, const float* b, int dim) {
  double s = 0.0;
  for (int i = 0; i < dim; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}
double NaiveSquaredL2(const float* a, const float* b, int dim) {
  double s = 0.0;
  for (int i = 0; i < dim; ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    s += d * d;
  }
  return s;
}
double NaiveCosine(const float* a, const float* b, int dim) {
  const double na = std::sqrt(NaiveDot(a, a, dim));
  const double nb = std::sqrt(NaiveDot(b, b, dim));
  if (na == 0.0 || nb == 0.0) return 0.0;
  return NaiveDot(a, b, dim) / (na * nb);
}
// Relative tolerance for float accumulation of `dim` terms of magnitude ~`scale`.
double Tol(int dim, double scale) {
  return 1e-5 * scale * std::max(dim, 1) + 1e-6;
}

std::vector<float> RandomVector(std::mt19937& rng, int dim) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(dim));
  for (float& x : v) x = normal(rng);
  return v;
}

constexpr int kDims[] = {1, 3, 7, 8, 64, 65, 100};

TEST(MetricNames, RoundTrip) {
  for (Metric m : {Metric::kCosine, Metric::kDot, Metric::kEuclidean, Metric::kJaccard}) {
    const auto parsed = ParseMetric(MetricName(m));
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, m);
  }
  EXPECT_EQ(MetricName(Metric::kCosine), "cosine");
  EXPECT_EQ(MetricName(Metric::kEuclidean), "euclidean");
  EXPECT_FALSE(ParseMetric("").has_value());
  EXPECT_FALSE(ParseMetric("Cosine").has_value());
  EXPECT_FALSE(ParseMetric("l2").has_value());
}

TEST(Similarity, HandComputed) {
  const float a[] = {1, 2, 3};
  const float b[] = {4, -5, 6};
  // 1*4 + 2*(-5) + 3*6 = 4 - 10 + 18 = 12
  EXPECT_FLOAT_EQ(Dot(a, b, 3), 12.0f);
  // (1-4)^2 + (2+5)^2 + (3-6)^2 = 9 + 49 + 9 = 67
  EXPECT_FLOAT_EQ(SquaredL2(a, b, 3), 67.0f);
  // |a| = sqrt(14), |b| = sqrt(16+25+36) = sqrt(77); cos = 12 / sqrt(14*77) = 12 / sqrt(1078)
  EXPECT_NEAR(Cosine(a, b, 3), 12.0 / std::sqrt(1078.0), 1e-6);
  EXPECT_FLOAT_EQ(Norm(a, 3), std::sqrt(14.0f));
  // Euclidean similarity is the negated distance: -sqrt(67).
  EXPECT_NEAR(EmbeddingSimilarity(Metric::kEuclidean, a, b, 3), -std::sqrt(67.0), 1e-5);
  EXPECT_FLOAT_EQ(EmbeddingSimilarity(Metric::kDot, a, b, 3), 12.0f);
  EXPECT_NEAR(EmbeddingSimilarity(Metric::kCosine, a, b, 3), 12.0 / std::sqrt(1078.0), 1e-6);
  // A vector is most similar to itself under every metric: cos 1, distance 0.
  EXPECT_NEAR(Cosine(a, a, 3), 1.0, 1e-6);
  EXPECT_EQ(EmbeddingSimilarity(Metric::kEuclidean, a, a, 3), 0.0f);
}

TEST(Similarity, CosineOfZeroVectorIsZero) {
  const float zero[] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
  const float a[] = {1, -2, 3, 0.5f, 1, 1, 1, 1, 1};
  EXPECT_EQ(Cosine(zero, a, 9), 0.0f);
  EXPECT_EQ(Cosine(a, zero, 9), 0.0f);
  EXPECT_EQ(Cosine(zero, zero, 9), 0.0f);
  float out[1] = {42.0f};
  ScoreAll(Metric::kCosine, a, zero, 1, 9, out);
  EXPECT_EQ(out[0], 0.0f);
  out[0] = 42.0f;
  ScoreAll(Metric::kCosine, zero, a, 1, 9, out);
  EXPECT_EQ(out[0], 0.0f);
}

TEST(Similarity, EuclideanRanksNearerHigher) {
  const float q[] = {0, 0};
  const float near[] = {1, 0};
  const float far[] = {3, 4};
  EXPECT_GT(EmbeddingSimilarity(Metric::kEuclidean, q, near, 2),
            EmbeddingSimilarity(Metric::kEuclidean, q, far, 2));
  EXPECT_FLOAT_EQ(EmbeddingSimilarity(Metric::kEuclidean, q, far, 2), -5.0f);
}

TEST(Similarity, JaccardIsNotAnEmbeddingMetric) {
  const float a[] = {1, 2};
#ifdef NDEBUG
  EXPECT_TRUE(std::isnan(EmbeddingSimilarity(Metric::kJaccard, a, a, 2)));
  float out[2] = {0, 0};
  ScoreAll(Metric::kJaccard, a, a, 1, 2, out);
  EXPECT_TRUE(std::isnan(out[0]));
#else
  EXPECT_DEATH((void)EmbeddingSimilarity(Metric::kJaccard, a, a, 2), "not an embedding metric");
#endif
}

TEST(Similarity, MatchesNaiveTwinsAcrossDims) {
  std::mt19937 rng(1234);
  for (int dim : kDims) {
    for (int trial = 0; trial < 50; ++trial) {
      const auto a = RandomVector(rng, dim);
      const auto b = RandomVector(rng, dim);
      SCOPED_TRACE(testing::Message() << "dim=" << dim << " trial=" << trial);
      EXPECT_NEAR(Dot(a.data(), b.data(), dim), NaiveDot(a.data(), b.data(), dim), Tol(dim, 3));
      EXPECT_NEAR(SquaredL2(a.data(), b.data(), dim), NaiveSquaredL2(a.data(), b.data(), dim),
                  Tol(dim, 4));
      EXPECT_NEAR(Norm(a.data(), dim), std::sqrt(NaiveDot(a.data(), a.data(), dim)), Tol(dim, 1));
      EXPECT_NEAR(Cosine(a.data(), b.data(), dim), NaiveCosine(a.data(), b.data(), dim), 1e-5);
      const float c = Cosine(a.data(), b.data(), dim);
      EXPECT_LE(c, 1.0f);
      EXPECT_GE(c, -1.0f);
    }
  }
}

TEST(Similarity, ScoreAllMatchesNaiveTwins) {
  std::mt19937 rng(99);
  for (int dim : kDims) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{5}, size_t{257}}) {
      const auto query = RandomVector(rng, dim);
      std::vector<float> rows;
      for (size_t i = 0; i < n; ++i) {
        const auto r = RandomVector(rng, dim);
        rows.insert(rows.end(), r.begin(), r.end());
      }
      if (n > 3) std::fill(rows.begin() + 3 * dim, rows.begin() + 4 * dim, 0.0f);  // a zero row
      std::vector<float> norms(n);
      for (size_t i = 0; i < n; ++i) {
        norms[i] = static_cast<float>(std::sqrt(NaiveDot(&rows[i * dim], &rows[i * dim], dim)));
      }
      for (Metric m : {Metric::kCosine, Metric::kDot, Metric::kEuclidean}) {
        for (bool with_norms : {false, true}) {
          SCOPED_TRACE(testing::Message() << "dim=" << dim << " n=" << n << " metric="
                                          << MetricName(m) << " norms=" << with_norms);
          // A sentinel past the end catches writes beyond out[n).
          std::vector<float> out(n + 1, 123.0f);
          ScoreAll(m, query.data(), rows.data(), n, dim, out.data(),
                   with_norms ? norms.data() : nullptr);
          EXPECT_EQ(out[n], 123.0f);
          for (size_t i = 0; i < n; ++i) {
            const float* row = &rows[i * dim];
            double expected = 0.0;
            switch (m) {
              case Metric::kCosine:
                expected = NaiveCosine(query.data(), row, dim);
                break;
              case Metric::kDot:
                expected = NaiveDot(query.data(), row, dim);
                break;
              default:
                expected = -std::sqrt(NaiveSquaredL2(query.data(), row, dim));
                break;
            }
            EXPECT_NEAR(out[i], expected, m == Metric::kCosine ? 1e-5 : Tol(dim, 4)) << "row " << i;
            // And consistent with the single-pair entry point.
            EXPECT_NEAR(out[i], EmbeddingSimilarity(m, query.data(), row, dim), Tol(dim, 4));
          }
        }
      }
    }
  }
}

// Slow twin: intersection and union through std::set.
double NaiveJaccard(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  std::set<uint32_t> sa(a.begin(), a.end()), sb(b.begin(), b.end()), u = sa;
  u.insert(sb.begin(), sb.end());
  size_t common = 0;
  for (uint32_t x : sa) common += sb.count(x);
  return u.empty() ? 0.0 : static_cast<double>(common) / static_cast<double>(u.size());
}

TEST(ExactJaccard, HandComputed) {
  const std::vector<uint32_t> a = {1, 2, 3, 4};
  const std::vector<uint32_t> b = {3, 4, 5};
  // a∩b = {3,4} (2), a∪b = {1,2,3,4,5} (5): 2/5
  EXPECT_DOUBLE_EQ(ExactJaccard(a, b), 0.4);
  EXPECT_DOUBLE_EQ(ExactJaccard(a, a), 1.0);
  EXPECT_DOUBLE_EQ(ExactJaccard(a, {}), 0.0);
  EXPECT_DOUBLE_EQ(ExactJaccard({}, {}), 0.0);
  const std::vector<uint32_t> c = {10, 20};
  EXPECT_DOUBLE_EQ(ExactJaccard(a, c), 0.0);
}

TEST(ExactJaccard, MatchesSetTwin) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> id(0, 60);
  std::uniform_int_distribution<int> len(0, 40);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<uint32_t> a, b;
    for (int i = len(rng); i > 0; --i) a.push_back(id(rng));
    for (int i = len(rng); i > 0; --i) b.push_back(id(rng));
    std::sort(a.begin(), a.end());
    a.erase(std::unique(a.begin(), a.end()), a.end());
    std::sort(b.begin(), b.end());
    b.erase(std::unique(b.begin(), b.end()), b.end());
    EXPECT_DOUBLE_EQ(ExactJaccard(a, b), NaiveJaccard(a, b));
    EXPECT_DOUBLE_EQ(ExactJaccard(a, b), ExactJaccard(b, a));
  }
}

}  // namespace
}  // namespace simstream::engine
