// The run-time dispatched inner-product kernels of the HNSW index against a sequential sum in
// double precision (the slow twin), for every length from 0 to 130 (all tails of the 8-, 16-
// and 32-float loops) and for unaligned starts.
#include "engine/ann_distance.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "engine/rng.hpp"

namespace simstream::engine {
namespace {

double NaiveDot(const float* a, const float* b, size_t dim) {
  double s = 0.0;
  for (size_t i = 0; i < dim; ++i) s += double{a[i]} * double{b[i]};
  return s;
}

void ExpectMatchesNaive(DotKernelFn dot, const char* name) {
  Rng rng(7);
  std::vector<float> a(200), b(200);
  for (float& x : a) x = static_cast<float>(rng.Normal());
  for (float& x : b) x = static_cast<float>(rng.Normal());
  for (size_t offset : {0, 1, 3}) {
    for (size_t dim = 0; dim <= 130; ++dim) {
      const float* pa = a.data() + offset;
      const float* pb = b.data() + offset;
      double magnitude = 0.0;  // bound on the rounding error: eps * dim * sum |a_i b_i|
      for (size_t i = 0; i < dim; ++i) magnitude += std::abs(double{pa[i]} * double{pb[i]});
      const double tolerance = 1e-6 * static_cast<double>(dim + 1) * (magnitude + 1e-30);
      EXPECT_NEAR(dot(pa, pb, dim), NaiveDot(pa, pb, dim), tolerance)
          << name << " dim=" << dim << " offset=" << offset;
    }
  }
}

TEST(AnnDistanceTest, PortableKernelMatchesNaiveSum) {
  ExpectMatchesNaive(PortableDotKernel(), "portable");
}

TEST(AnnDistanceTest, Avx2KernelMatchesNaiveSum) {
  if (Avx2DotKernel() == nullptr) GTEST_SKIP() << "CPU without AVX2+FMA";
  ExpectMatchesNaive(Avx2DotKernel(), "avx2");
}

TEST(AnnDistanceTest, Avx512KernelMatchesNaiveSum) {
  if (Avx512DotKernel() == nullptr) GTEST_SKIP() << "CPU without AVX-512F";
  ExpectMatchesNaive(Avx512DotKernel(), "avx512");
}

TEST(AnnDistanceTest, BestKernelIsTheWidestTheCpuHas) {
  const std::string_view name = BestDotKernelName();
  if (std::getenv("SIMSTREAM_ANN_KERNEL") != nullptr) GTEST_SKIP() << "kernel forced by env";
  if (Avx512DotKernel() != nullptr) {
    EXPECT_EQ(name, "avx512");
    EXPECT_EQ(BestDotKernel(), Avx512DotKernel());
  } else if (Avx2DotKernel() != nullptr) {
    EXPECT_EQ(name, "avx2");
    EXPECT_EQ(BestDotKernel(), Avx2DotKernel());
  } else {
    EXPECT_EQ(name, "portable");
    EXPECT_EQ(BestDotKernel(), PortableDotKernel());
  }
}

}  // namespace
}  // namespace simstream::engine
