// Small, fully specified pseudo-random generators: the same bits on every platform and
// standard library, which std::distributions do not promise.
#pragma once

#include <cmath>
#include <cstdint>

namespace simstream::engine {

inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Key of the randomness used for one event: a replay of the same (partition, offset)
// draws the same numbers, so re-applying events after a crash reproduces the same state.
inline uint64_t EventRngKey(uint64_t seed, int32_t partition, int64_t offset) {
  return SplitMix64(SplitMix64(seed ^ 0xA5A5A5A5ULL) ^
                    SplitMix64(static_cast<uint64_t>(static_cast<uint32_t>(partition)) << 40 ^
                               static_cast<uint64_t>(offset)));
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    state_ += 0x9E3779B97F4A7C15ULL;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n); n > 0. Multiply-shift, bias below 2^-32 for our sizes.
  uint32_t Below(uint32_t n) {
    return static_cast<uint32_t>(((Next() >> 32) * static_cast<uint64_t>(n)) >> 32);
  }
  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Standard normal (Box-Muller; one draw per call, fully determined by the stream).
  double Normal() {
    double u1 = Uniform();
    const double u2 = Uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t state_;
};

}  // namespace simstream::engine
