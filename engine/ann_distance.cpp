#include "engine/ann_distance.hpp"

#include <cstdlib>
#include <string>

#include "engine/similarity.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SIMSTREAM_X86 1
#endif

namespace simstream::engine {
namespace {

// The portable kernel is engine::Dot itself (8 partial sums, vectorised for the build's -march).
float DotPortable(const float* a, const float* b, size_t dim) {
  return Dot(a, b, static_cast<int>(dim));
}

#ifdef SIMSTREAM_X86
__attribute__((target("avx2,fma"))) float DotAvx2(const float* a, const float* b, size_t dim) {
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  if (i + 8 <= dim) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    i += 8;
  }
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  float out = _mm_cvtss_f32(s);
  for (; i < dim; ++i) out += a[i] * b[i];
  return out;
}

// GCC 12 reports its own _mm256_undefined_pd() inside _mm512_reduce_add_ps as uninitialised.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
__attribute__((target("avx512f"))) float DotAvx512(const float* a, const float* b, size_t dim) {
  __m512 acc0 = _mm512_setzero_ps();
  __m512 acc1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  if (i + 16 <= dim) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    i += 16;
  }
  if (i < dim) {  // the last 1-15 floats, loaded under a mask (never past the end)
    const __mmask16 m = static_cast<__mmask16>((1u << (dim - i)) - 1u);
    acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}
#pragma GCC diagnostic pop

bool HasAvx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
bool HasAvx512() {
  return __builtin_cpu_supports("avx512f");
}
#endif

struct Choice {
  DotKernelFn fn;
  std::string_view name;
};

Choice Choose() {
  const char* forced = std::getenv("SIMSTREAM_ANN_KERNEL");
  const std::string want = forced ? forced : "";
  if (want == "portable") return {DotPortable, "portable"};
  if (want == "avx2" && Avx2DotKernel()) return {Avx2DotKernel(), "avx2"};
  if (want != "avx2" && Avx512DotKernel()) return {Avx512DotKernel(), "avx512"};
  if (Avx2DotKernel()) return {Avx2DotKernel(), "avx2"};
  return {DotPortable, "portable"};
}

const Choice& Chosen() {
  static const Choice choice = Choose();
  return choice;
}

}  // namespace

DotKernelFn PortableDotKernel() {
  return DotPortable;
}

DotKernelFn Avx2DotKernel() {
#ifdef SIMSTREAM_X86
  return HasAvx2() ? DotAvx2 : nullptr;
#else
  return nullptr;
#endif
}

DotKernelFn Avx512DotKernel() {
#ifdef SIMSTREAM_X86
  return HasAvx512() ? DotAvx512 : nullptr;
#else
  return nullptr;
#endif
}

DotKernelFn BestDotKernel() {
  return Chosen().fn;
}
std::string_view BestDotKernelName() {
  return Chosen().name;
}

}  // namespace simstream::engine
