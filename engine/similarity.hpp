// Similarity measures between embeddings and between item sets.
//
// Every function here is pure and thread-safe. Embeddings are plain float arrays of length `dim`
// (the engine stores them contiguously, row-major), so no container type crosses this boundary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace simstream::engine {

// The similarity a query asks for. kCosine, kDot and kEuclidean compare embeddings; kJaccard
// compares the item sets of two users (through MinHash sketches, see engine/minhash.hpp).
enum class Metric { kCosine, kDot, kEuclidean, kJaccard };

// "cosine", "dot", "euclidean", "jaccard" (exact, lower case); nullopt for anything else.
[[nodiscard]] std::optional<Metric> ParseMetric(std::string_view name);
// The name ParseMetric accepts for `m`.
[[nodiscard]] std::string_view MetricName(Metric m);

// Inner product. Accumulated in float with several independent partial sums (vectorised), so
// the result may differ from a sequential sum in the last bits.
[[nodiscard]] float Dot(const float* a, const float* b, int dim);
// Squared Euclidean distance.
[[nodiscard]] float SquaredL2(const float* a, const float* b, int dim);
// Euclidean norm.
[[nodiscard]] float Norm(const float* a, int dim);
// Cosine similarity in [-1, 1]; 0 if either vector is zero.
[[nodiscard]] float Cosine(const float* a, const float* b, int dim);

// Larger means more similar: dot, cosine, or the NEGATED Euclidean distance (so every embedding
// metric ranks the same way). kJaccard is not an embedding metric: asserts in debug builds and
// returns NaN otherwise.
[[nodiscard]] float EmbeddingSimilarity(Metric m, const float* a, const float* b, int dim);

// Scores of one query against `n` contiguous rows (row-major, stride `dim`):
// out[i] = EmbeddingSimilarity(m, query, rows + i * dim), up to float rounding.
// For kCosine, `row_norms` (may be null) holds precomputed norms of the rows; a row whose norm
// is 0 scores 0. `out` must hold `n` floats and must not overlap the inputs. kJaccard: asserts
// in debug builds and fills `out` with NaN otherwise.
void ScoreAll(Metric m, const float* query, const float* rows, size_t n, int dim, float* out,
              const float* row_norms = nullptr);

// Exact Jaccard |a ∩ b| / |a ∪ b| of two sorted, duplicate-free id lists; 0 if both are empty.
[[nodiscard]] double ExactJaccard(std::span<const uint32_t> a, std::span<const uint32_t> b);

}  // namespace simstream::engine
