// Byte encodings of the stored rows and keys (internal to storage/).
//
// Values: compact little-endian binary, first byte the encoding version (kCodecVersion), so a
// later release can read old rows. Keys: big-endian fixed width, so RocksDB's bytewise order is
// the numeric order (an edge key a(4B) + b(4B) keeps one item's co-occurrence row contiguous,
// which makes "rewrite row a" a single DeleteRange).
//
// Decoders never trust their input: a short, oversized or wrongly versioned value is reported
// (false), never read out of bounds.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "engine/state.hpp"

namespace simstream::storage {

inline constexpr uint8_t kCodecVersion = 1;
// Version of the layout of the whole store (column families, keys). Stored in `meta`.
inline constexpr uint32_t kSchemaVersion = 1;

// ---- keys ------------------------------------------------------------------------------
std::string IndexKey(uint32_t index);         // 4 bytes, big-endian
std::string EdgeKey(uint32_t a, uint32_t b);  // 8 bytes, big-endian a then b
// One past every edge key of row `a` (for DeleteRange [EdgeKey(a, 0), EdgeRowEnd(a))).
std::string EdgeRowEnd(uint32_t a);
// Dictionary keys: 'u' or 'i' followed by the index (4 bytes, big-endian).
std::string DictKey(char kind, uint32_t index);
bool DecodeIndexKey(std::string_view key, uint32_t* index);
bool DecodeEdgeKey(std::string_view key, uint32_t* a, uint32_t* b);
bool DecodeDictKey(std::string_view key, char* kind, uint32_t* index);
// Key of the stored next offset of (topic, partition) in `meta`:
// "offset/" + topic + '\0' + partition (4 bytes, big-endian, sign bit flipped).
std::string OffsetKeyPrefix(const std::string& topic);
std::string OffsetKey(const std::string& topic, int32_t partition);
bool DecodeOffsetKey(std::string_view key, std::string_view prefix, int32_t* partition);

// ---- values ----------------------------------------------------------------------------
void EncodeUser(const engine::UserState& s, std::string* out);
// Decodes into `s`, reusing its vectors' capacity. `dim`: the expected vector length.
bool DecodeUser(std::string_view in, int dim, engine::UserState* s);
void EncodeItem(const engine::ItemState& s, std::string* out);
bool DecodeItem(std::string_view in, int dim, engine::ItemState* s);
void EncodeEdgeWeight(float w, std::string* out);
bool DecodeEdgeWeight(std::string_view in, float* w);
void EncodeGlobal(const engine::GlobalState& g, std::string* out);
bool DecodeGlobal(std::string_view in, engine::GlobalState* g);
void EncodeU64(uint64_t v, std::string* out);
bool DecodeU64(std::string_view in, uint64_t* v);
void EncodeI64(int64_t v, std::string* out);
bool DecodeI64(std::string_view in, int64_t* v);

}  // namespace simstream::storage
