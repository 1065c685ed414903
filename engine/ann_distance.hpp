// The inner-product kernel of the HNSW index, chosen once at start-up for the CPU it runs on.
//
// The portable build targets x86-64-v2 (SSE4.2), which leaves the AVX2/FMA and AVX-512 units of
// most servers idle in the graph walk, where nearly all of a query's time is spent in this one
// function. The kernels here are compiled for each instruction set with target attributes and
// the best one the CPU supports is picked at run time, so one binary serves every machine.
//
// Only the ANN index uses it: the learner keeps engine::Dot, whose summation order is fixed, so
// that replaying a stream gives bit-identical state on any CPU. In the index a last-bit
// difference between kernels can change which candidates a search visits (as on any
// approximate search), but never a returned score, which is re-computed exactly.
#pragma once

#include <cstddef>
#include <string_view>

namespace simstream::engine {

using DotKernelFn = float (*)(const float* a, const float* b, size_t dim);

// The fastest inner-product kernel for this CPU (avx512f, avx2+fma, or portable) and its name.
// Environment variable SIMSTREAM_ANN_KERNEL=portable|avx2|avx512 forces one the CPU supports
// (for benchmarks and tests); an unsupported or unknown value is ignored.
[[nodiscard]] DotKernelFn BestDotKernel();
[[nodiscard]] std::string_view BestDotKernelName();

// Each kernel, or nullptr where the CPU lacks the instructions (for differential tests).
[[nodiscard]] DotKernelFn PortableDotKernel();
[[nodiscard]] DotKernelFn Avx2DotKernel();
[[nodiscard]] DotKernelFn Avx512DotKernel();

}  // namespace simstream::engine
