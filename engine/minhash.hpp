// MinHash sketch of a user's item set, maintained incrementally, for the Jaccard similar-users
// metric.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace simstream::engine {

// k independent 32-bit hash functions h_1..h_k; the sketch keeps min over the set of h_i(item)
// for every i. For two sets A and B, P[min h_i(A) == min h_i(B)] = J(A, B), so the fraction of
// equal minima estimates the Jaccard similarity with standard error sqrt(J(1-J)/k)
// (see StandardError).
//
// The hash family depends only on the position i (fixed, deterministic seeds), so sketches of
// the same size are comparable across instances, processes and restarts, and the signature can
// be stored. The sketch depends only on the *set* of items added: Add is idempotent and
// order-independent. Not thread-safe for concurrent Add; const methods may run concurrently.
class MinHashSketch {
 public:
  // `num_hashes` must be >= 1 (values below are raised to 1).
  explicit MinHashSketch(int num_hashes = 128);

  // Folds `item` into the sketch. O(k).
  void Add(uint32_t item);

  // Fraction of positions with equal minima; 0 if either sketch is empty. Sketches of different
  // sizes are not comparable: asserts in debug builds, returns 0 otherwise.
  [[nodiscard]] double EstimateJaccard(const MinHashSketch& other) const;

  // True until the first Add.
  [[nodiscard]] bool empty() const { return empty_; }
  // The number of hash functions k.
  [[nodiscard]] int size() const { return static_cast<int>(signature_.size()); }
  // The k minima (UINT32_MAX in every position while empty). For storage: rebuild the sketch
  // with FromSignature.
  [[nodiscard]] std::span<const uint32_t> signature() const { return signature_; }

  // The inverse of (signature(), empty()). An empty `sig` yields a one-hash empty sketch.
  [[nodiscard]] static MinHashSketch FromSignature(std::vector<uint32_t> sig, bool empty);

  // Standard error of the estimator for true Jaccard `j` with `k` hashes: sqrt(J(1-J)/k).
  [[nodiscard]] static double StandardError(double j, int k);

 private:
  std::vector<uint32_t> signature_;
  bool empty_ = true;
};

}  // namespace simstream::engine
