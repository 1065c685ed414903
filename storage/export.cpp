#include "storage/export.hpp"

#include <bit>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

namespace simstream::storage {
namespace {

Error WriteError(const std::string& path) {
  return {"io_error", "cannot write " + path};
}

}  // namespace

Result<ExportCounts> ExportJsonl(const engine::Engine& engine, const std::string& path) {
  std::ofstream file;
  std::ostream* out = &std::cout;
  if (path != "-") {
    file.open(path, std::ios::binary | std::ios::trunc);
    if (!file) return WriteError(path);
    out = &file;
  }
  ExportCounts counts;
  std::string line;
  char num[32];
  engine.ForEachEmbedding([&](char kind, const std::string& id, std::span<const float> v) {
    line = kind == 'u' ? R"({"kind":"user","id":)" : R"({"kind":"item","id":)";
    line += nlohmann::json(id).dump();
    line += R"(,"embedding":[)";
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) line.push_back(',');
      const auto r = std::to_chars(num, num + sizeof(num), v[i]);  // shortest round-trip
      line.append(num, r.ptr);
    }
    line += "]}\n";
    out->write(line.data(), static_cast<std::streamsize>(line.size()));
    ++(kind == 'u' ? counts.users : counts.items);
  });
  out->flush();
  if (!*out) return WriteError(path);
  return counts;
}

std::string NpyHeader(size_t rows, size_t cols) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) +
                     ", " + std::to_string(cols) + "), }";
  // magic(6) + version(2) + header length(2) + dict + spaces + '\n', padded to 64 bytes.
  size_t total = 10 + dict.size() + 1;
  const size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict.push_back('\n');
  const auto len = static_cast<uint16_t>(dict.size());
  std::string h = "\x93NUMPY";
  h.push_back('\x01');
  h.push_back('\x00');
  h.push_back(static_cast<char>(len & 0xFF));
  h.push_back(static_cast<char>(len >> 8));
  return h + dict;
}

Result<ExportCounts> ExportNpy(const engine::Engine& engine, const std::string& prefix) {
  static_assert(std::endian::native == std::endian::little, "npy export writes '<f4' directly");
  struct Out {
    std::string npy_path, ids_path;
    std::ofstream npy, ids;
    size_t rows = 0;
    size_t cols = 0;
  };
  Out outs[2];
  const char* names[2] = {".users", ".items"};
  // The row counts are known only at the end: write a placeholder header of the final size
  // (the dict is padded to 128 bytes, room for any shape) and rewrite it once done.
  const std::string placeholder = NpyHeader(size_t{1} << 62, size_t{1} << 62);
  for (int k = 0; k < 2; ++k) {
    outs[k].npy_path = prefix + names[k] + ".npy";
    outs[k].ids_path = prefix + names[k] + ".ids.txt";
    outs[k].npy.open(outs[k].npy_path, std::ios::binary | std::ios::trunc);
    outs[k].ids.open(outs[k].ids_path, std::ios::binary | std::ios::trunc);
    if (!outs[k].npy) return WriteError(outs[k].npy_path);
    if (!outs[k].ids) return WriteError(outs[k].ids_path);
    outs[k].npy.write(placeholder.data(), static_cast<std::streamsize>(placeholder.size()));
    outs[k].cols = static_cast<size_t>(engine.dim());
  }
  engine.ForEachEmbedding([&](char kind, const std::string& id, std::span<const float> v) {
    Out& o = outs[kind == 'u' ? 0 : 1];
    o.npy.write(reinterpret_cast<const char*>(v.data()),
                static_cast<std::streamsize>(v.size() * sizeof(float)));
    o.ids << id << '\n';
    ++o.rows;
  });
  for (Out& o : outs) {
    std::string header = NpyHeader(o.rows, o.cols);
    // Same total length as the placeholder: pad the dict with spaces before its '\n'.
    header.pop_back();
    header.append(placeholder.size() - 1 - header.size(), ' ');
    header.push_back('\n');
    const auto len = static_cast<uint16_t>(header.size() - 10);
    header[8] = static_cast<char>(len & 0xFF);
    header[9] = static_cast<char>(len >> 8);
    o.npy.seekp(0);
    o.npy.write(header.data(), static_cast<std::streamsize>(header.size()));
    o.npy.flush();
    o.ids.flush();
    if (!o.npy) return WriteError(o.npy_path);
    if (!o.ids) return WriteError(o.ids_path);
  }
  return ExportCounts{outs[0].rows, outs[1].rows};
}

}  // namespace simstream::storage
