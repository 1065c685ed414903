// Byte encodings of the stored rows and keys (internal to storage/).
//
// Values: compact little-endian binary, first byte the encoding version (kCodecVersion), so a
// later release can read old rows. Keys: big-endian fixed width, so RocksDB's bytewise order is
// the numeric order. A co-occurrence row is ONE key (the item index a) whose value lists the
// row's (b, w) entries: a flush writes one key per touched row, not one per touched edge.
//
// Decoders never trust their input: a short, oversized or wrongly versioned value is reported
// (false), never read out of bounds.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/state.hpp"

namespace simstream::storage {

inline constexpr uint8_t kCodecVersion = 1;
// Item rows are written in version 2 (its counters as f64: a float stops counting at 2^24);
// version 1 (f32 counters) is still read.
inline constexpr uint8_t kItemRowVersion = 2;
// Version of the layout of the whole store (column families, keys, row versions). Stored in
// `meta`.
//   1  one key per co-occurrence edge: EdgeKey(a, b) -> weight
//   2  one key per co-occurrence row: IndexKey(a) -> EncodeEdgeRow (full row, or merged patches)
//   3  as 2; item rows may be version 2. A store of schema 2 is read as it is and recorded as
//      3 in the batch that writes its first version 2 item rows (a release that writes schema 2
//      refuses it from then on, and can still open it before).
inline constexpr uint32_t kSchemaVersion = 3;
inline constexpr uint32_t kOldestReadableSchema = 2;

// ---- keys ------------------------------------------------------------------------------
std::string IndexKey(uint32_t index);  // 4 bytes, big-endian (also the key of co-occurrence row a)
// Dictionary keys: 'u' or 'i' followed by the index (4 bytes, big-endian).
std::string DictKey(char kind, uint32_t index);
bool DecodeIndexKey(std::string_view key, uint32_t* index);
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
// Co-occurrence row values: the version byte, then 8 bytes per entry (b: u32, w: f32, little-
// endian) in strictly ascending b. The same encoding is a whole row (written with Put; no zero
// weights) or a patch (written with Merge; w == 0 deletes b from the row).
// Encodes `entries` (one row, strictly ascending b; EdgeState::a is not stored). `drop_zeros`:
// leave out w == 0 entries (a whole row).
void EncodeEdgeRow(std::span<const engine::EdgeState> entries, bool drop_zeros, std::string* out);
// Decodes a row value into `out` (cleared first; every entry gets a = `a`), zero weights
// included. False on a damaged value (size, version, order).
bool DecodeEdgeRow(std::string_view in, uint32_t a, std::vector<engine::EdgeState>* out);
// Combines row values: `base` (nullptr: none), then `patches` oldest first; per b the latest
// entry wins. `drop_zeros`: a full merge, the result is a whole row without w == 0 entries; a
// partial merge (false) keeps them, since an older base not in view may still hold b.
// Associative: merging adjacent patches first gives the same final row. False if any input is
// damaged (`out` is then unspecified).
bool MergeEdgeRows(const std::string_view* base, std::span<const std::string_view> patches,
                   bool drop_zeros, std::string* out);
void EncodeGlobal(const engine::GlobalState& g, std::string* out);
bool DecodeGlobal(std::string_view in, engine::GlobalState* g);
void EncodeU64(uint64_t v, std::string* out);
bool DecodeU64(std::string_view in, uint64_t* v);
void EncodeI64(int64_t v, std::string* out);
bool DecodeI64(std::string_view in, int64_t* v);

}  // namespace simstream::storage
