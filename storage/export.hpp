// Export of the learned embeddings with their external ids, for t-SNE/UMAP or other tools.
#pragma once

#include <cstddef>
#include <string>

#include "config/result.hpp"
#include "engine/engine.hpp"

namespace simstream::storage {

struct ExportCounts {
  size_t users = 0;  // users with at least one event (forgotten users are never exported)
  size_t items = 0;
};

// One JSON object per line: {"kind":"user"|"item","id":"...","embedding":[...]}, users first.
// Floats are printed in their shortest round-trip form, so parsing them gives the same bits.
// `path` "-" writes standard output. Errors: "io_error".
[[nodiscard]] Result<ExportCounts> ExportJsonl(const engine::Engine& engine,
                                               const std::string& path);

// NumPy v1.0 .npy files (float32, little-endian, C order, shape (rows, dim)):
// PREFIX.users.npy + PREFIX.users.ids.txt and PREFIX.items.npy + PREFIX.items.ids.txt, where
// line r of the ids file names row r. Errors: "io_error".
[[nodiscard]] Result<ExportCounts> ExportNpy(const engine::Engine& engine,
                                             const std::string& prefix);

// The .npy v1.0 header (magic, version, length, dict, padding) of a float32 (rows, cols) array;
// its size is a multiple of 64 bytes, as NumPy writes it.
std::string NpyHeader(size_t rows, size_t cols);

}  // namespace simstream::storage
