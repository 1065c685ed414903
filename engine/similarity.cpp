#include "engine/similarity.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

namespace simstream::engine {
namespace {

// Eight independent accumulators: GCC vectorises the inner loop at -O2 into two SSE
// registers, which hides the add latency. Measured on 10k rows x d=64 against one and four
// accumulators and against Eigen's dot: this and Eigen tie, one accumulator is ~15% slower.
constexpr int kLanes = 8;

float DotKernel(const float* __restrict a, const float* __restrict b, int dim) {
  float acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= dim; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float tail = 0.0f;
  for (; i < dim; ++i) tail += a[i] * b[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

float SquaredL2Kernel(const float* __restrict a, const float* __restrict b, int dim) {
  float acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= dim; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const float d = a[i + j] - b[i + j];
      acc[j] += d * d;
    }
  }
  float tail = 0.0f;
  for (; i < dim; ++i) {
    const float d = a[i] - b[i];
    tail += d * d;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

float CosineFromParts(float dot, float norm_a, float norm_b) {
  if (norm_a == 0.0f || norm_b == 0.0f) return 0.0f;
  // Rounding can push |cos| a hair past 1; clamp so callers can rely on the range.
  return std::clamp(dot / (norm_a * norm_b), -1.0f, 1.0f);
}

using RowMajorMap =
    Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

// out = rows * query. Eigen's row-major GEMV processes several rows per pass over the query,
// which measured ~7% faster than a Dot per row at 10k x 64 and ~2x faster at d=16.
void DotAll(const float* query, const float* rows, size_t n, int dim, float* out) {
  const auto n_rows = static_cast<Eigen::Index>(n);
  RowMajorMap matrix(rows, n_rows, dim);
  Eigen::Map<const Eigen::VectorXf> q(query, dim);
  Eigen::Map<Eigen::VectorXf> result(out, n_rows);
  result.noalias() = matrix * q;
}

}  // namespace

std::optional<Metric> ParseMetric(std::string_view name) {
  if (name == "cosine") return Metric::kCosine;
  if (name == "dot") return Metric::kDot;
  if (name == "euclidean") return Metric::kEuclidean;
  if (name == "jaccard") return Metric::kJaccard;
  return std::nullopt;
}

std::string_view MetricName(Metric m) {
  switch (m) {
    case Metric::kCosine:
      return "cosine";
    case Metric::kDot:
      return "dot";
    case Metric::kEuclidean:
      return "euclidean";
    case Metric::kJaccard:
      return "jaccard";
  }
  return "unknown";
}

float Dot(const float* a, const float* b, int dim) {
  // The kernel promises no aliasing for vectorisation; a == b (a norm) only reads, so it is
  // still correct.
  return DotKernel(a, b, dim);
}

float SquaredL2(const float* a, const float* b, int dim) {
  return SquaredL2Kernel(a, b, dim);
}

float Norm(const float* a, int dim) {
  return std::sqrt(DotKernel(a, a, dim));
}

float Cosine(const float* a, const float* b, int dim) {
  return CosineFromParts(DotKernel(a, b, dim), Norm(a, dim), Norm(b, dim));
}

float EmbeddingSimilarity(Metric m, const float* a, const float* b, int dim) {
  switch (m) {
    case Metric::kCosine:
      return Cosine(a, b, dim);
    case Metric::kDot:
      return Dot(a, b, dim);
    case Metric::kEuclidean:
      return -std::sqrt(SquaredL2(a, b, dim));
    case Metric::kJaccard:
      break;
  }
  assert(false && "kJaccard is not an embedding metric");
  return std::numeric_limits<float>::quiet_NaN();
}

void ScoreAll(Metric m, const float* query, const float* rows, size_t n, int dim, float* out,
              const float* row_norms) {
  if (n == 0) return;
  switch (m) {
    case Metric::kDot:
      DotAll(query, rows, n, dim, out);
      return;
    case Metric::kCosine: {
      DotAll(query, rows, n, dim, out);
      const float query_norm = Norm(query, dim);
      for (size_t i = 0; i < n; ++i) {
        const float row_norm = row_norms != nullptr ? row_norms[i] : Norm(rows + i * dim, dim);
        out[i] = CosineFromParts(out[i], query_norm, row_norm);
      }
      return;
    }
    case Metric::kEuclidean:
      // Per row rather than |q|^2 + |r|^2 - 2 q.r: the expansion cancels catastrophically for
      // near neighbours, exactly the rows a top-k query cares about.
      for (size_t i = 0; i < n; ++i)
        out[i] = -std::sqrt(SquaredL2Kernel(query, rows + i * dim, dim));
      return;
    case Metric::kJaccard:
      break;
  }
  assert(false && "kJaccard is not an embedding metric");
  std::fill(out, out + n, std::numeric_limits<float>::quiet_NaN());
}

double ExactJaccard(std::span<const uint32_t> a, std::span<const uint32_t> b) {
  size_t i = 0;
  size_t j = 0;
  size_t common = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i] < b[j]) {
      ++i;
    } else if (b[j] < a[i]) {
      ++j;
    } else {
      ++common;
      ++i;
      ++j;
    }
  }
  const size_t united = a.size() + b.size() - common;
  return united == 0 ? 0.0 : static_cast<double>(common) / static_cast<double>(united);
}

}  // namespace simstream::engine
