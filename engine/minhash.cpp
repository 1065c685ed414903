#include "engine/minhash.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

namespace simstream::engine {
namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;
// Fixed forever: changing it invalidates every stored signature.
constexpr uint64_t kFamilySeed = 0x5151'7E5A'0D15'C0DEULL;

// splitmix64's finaliser: a bijection on 64 bits with full avalanche.
constexpr uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

MinHashSketch::MinHashSketch(int num_hashes)
    : signature_(static_cast<size_t>(std::max(num_hashes, 1)),
                 std::numeric_limits<uint32_t>::max()) {}

void MinHashSketch::Add(uint32_t item) {
  // Position i uses 32 bits of Mix64(H(x) + (i / 2 + 1) * golden): the high half for even i,
  // the low half for odd i, with H a strong 64-bit hash of x. That is splitmix64's output
  // stream seeded by H(x), whose halves are each full-quality 32-bit outputs, so positions
  // behave as independent hash functions (the tests check the estimator's error against
  // sqrt(J(1-J)/k)) at k/2 + 1 mixes per item instead of 2k.
  uint64_t state = Mix64(kFamilySeed ^ (static_cast<uint64_t>(item) * kGolden));
  const size_t k = signature_.size();
  size_t i = 0;
  for (; i + 2 <= k; i += 2) {
    state += kGolden;
    const uint64_t h = Mix64(state);
    signature_[i] = std::min(signature_[i], static_cast<uint32_t>(h >> 32));
    signature_[i + 1] = std::min(signature_[i + 1], static_cast<uint32_t>(h));
  }
  if (i < k) {
    state += kGolden;
    signature_[i] = std::min(signature_[i], static_cast<uint32_t>(Mix64(state) >> 32));
  }
  empty_ = false;
}

double MinHashSketch::EstimateJaccard(const MinHashSketch& other) const {
  assert(size() == other.size() && "MinHash sketches of different sizes are not comparable");
  if (empty_ || other.empty_ || size() != other.size()) return 0.0;
  size_t equal = 0;
  for (size_t i = 0; i < signature_.size(); ++i) equal += signature_[i] == other.signature_[i];
  return static_cast<double>(equal) / static_cast<double>(signature_.size());
}

MinHashSketch MinHashSketch::FromSignature(std::vector<uint32_t> sig, bool empty) {
  MinHashSketch sketch(1);
  if (!sig.empty()) sketch.signature_ = std::move(sig);
  sketch.empty_ = empty;
  return sketch;
}

double MinHashSketch::StandardError(double j, int k) {
  if (k <= 0) return 0.0;
  return std::sqrt(std::max(0.0, j * (1.0 - j)) / static_cast<double>(k));
}

}  // namespace simstream::engine
