#include "storage/codec.hpp"

#include <bit>
#include <cstring>
#include <type_traits>

namespace simstream::storage {
namespace {

// Lists longer than this are not trusted (a corrupt length must not allocate gigabytes).
constexpr uint32_t kMaxListLength = 1u << 26;

template <typename T>
T ToLittle(T v) {
  static_assert(std::is_integral_v<T>);
  if constexpr (std::endian::native == std::endian::little) {
    return v;
  } else {
    T r = 0;
    for (size_t i = 0; i < sizeof(T); ++i) r = (r << 8) | ((v >> (8 * i)) & 0xFF);
    return r;
  }
}

template <typename T>
void PutInt(std::string* out, T v) {
  v = ToLittle(v);
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out->append(buf, sizeof(T));
}

void PutF32(std::string* out, float f) {
  PutInt(out, std::bit_cast<uint32_t>(f));
}
void PutF64(std::string* out, double f) {
  PutInt(out, std::bit_cast<uint64_t>(f));
}

// Bulk copy of 4-byte values: one memcpy on little-endian hosts (every deployed one).
template <typename T>
void PutArray(std::string* out, const T* data, size_t n) {
  static_assert(sizeof(T) == 4);
  if constexpr (std::endian::native == std::endian::little) {
    if (n > 0) out->append(reinterpret_cast<const char*>(data), n * 4);
  } else {
    for (size_t i = 0; i < n; ++i) PutInt(out, std::bit_cast<uint32_t>(data[i]));
  }
}

template <typename T>
void PutList(std::string* out, const std::vector<T>& v) {
  PutInt(out, static_cast<uint32_t>(v.size()));
  PutArray(out, v.data(), v.size());
}

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <typename T>
  bool Int(T* v) {
    if (in_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(v, in_.data() + pos_, sizeof(T));
    *v = ToLittle(*v);
    pos_ += sizeof(T);
    return true;
  }
  bool F32(float* f) {
    uint32_t u;
    if (!Int(&u)) return false;
    *f = std::bit_cast<float>(u);
    return true;
  }
  bool F64(double* f) {
    uint64_t u;
    if (!Int(&u)) return false;
    *f = std::bit_cast<double>(u);
    return true;
  }
  template <typename T>
  bool Array(std::vector<T>* v, size_t n) {
    static_assert(sizeof(T) == 4);
    if ((in_.size() - pos_) / 4 < n) return false;
    v->resize(n);
    if constexpr (std::endian::native == std::endian::little) {
      if (n > 0) std::memcpy(v->data(), in_.data() + pos_, n * 4);  // data() may be null
      pos_ += n * 4;
    } else {
      for (size_t i = 0; i < n; ++i) {
        uint32_t u;
        Int(&u);
        (*v)[i] = std::bit_cast<T>(u);
      }
    }
    return true;
  }
  template <typename T>
  bool List(std::vector<T>* v) {
    uint32_t n;
    return Int(&n) && n <= kMaxListLength && Array(v, n);
  }
  bool Version() {
    uint8_t ver;
    return Int(&ver) && ver == kCodecVersion;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

void PutBigEndian32(std::string* out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out->append(b, 4);
}

uint32_t GetBigEndian32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} << 24 | uint32_t{u[1]} << 16 | uint32_t{u[2]} << 8 | uint32_t{u[3]};
}

}  // namespace

std::string IndexKey(uint32_t index) {
  std::string k;
  PutBigEndian32(&k, index);
  return k;
}

std::string DictKey(char kind, uint32_t index) {
  std::string k(1, kind);
  PutBigEndian32(&k, index);
  return k;
}

bool DecodeIndexKey(std::string_view key, uint32_t* index) {
  if (key.size() != 4) return false;
  *index = GetBigEndian32(key.data());
  return true;
}

bool DecodeDictKey(std::string_view key, char* kind, uint32_t* index) {
  if (key.size() != 5 || (key[0] != 'u' && key[0] != 'i')) return false;
  *kind = key[0];
  *index = GetBigEndian32(key.data() + 1);
  return true;
}

std::string OffsetKeyPrefix(const std::string& topic) {
  std::string k = "offset/" + topic;
  k.push_back('\0');
  return k;
}

std::string OffsetKey(const std::string& topic, int32_t partition) {
  std::string k = OffsetKeyPrefix(topic);
  PutBigEndian32(&k, static_cast<uint32_t>(partition) ^ 0x80000000u);
  return k;
}

bool DecodeOffsetKey(std::string_view key, std::string_view prefix, int32_t* partition) {
  if (key.size() != prefix.size() + 4 || key.substr(0, prefix.size()) != prefix) return false;
  *partition = static_cast<int32_t>(GetBigEndian32(key.data() + prefix.size()) ^ 0x80000000u);
  return true;
}

void EncodeUser(const engine::UserState& s, std::string* out) {
  out->clear();
  out->reserve(1 + 4 + 8 * s.p.size() + 40 +
               4 * (s.seen.size() + 2 * s.recent_items.size() + s.sketch.size()));
  PutInt(out, kCodecVersion);
  PutInt(out, static_cast<uint32_t>(s.p.size()));
  PutArray(out, s.p.data(), s.p.size());
  PutArray(out, s.h.data(), s.p.size());
  PutF32(out, s.z);
  PutF32(out, s.grad_sq);
  PutInt(out, s.events);
  PutInt(out, s.last_ts);
  PutList(out, s.seen);
  PutList(out, s.recent_items);
  PutArray(out, s.recent_weights.data(), s.recent_items.size());
  PutInt(out, static_cast<uint8_t>(s.sketch_empty ? 1 : 0));
  PutList(out, s.sketch);
}

bool DecodeUser(std::string_view in, int dim, engine::UserState* s) {
  Reader r(in);
  uint32_t d = 0;
  uint8_t empty = 0;
  if (!r.Version() || !r.Int(&d) || d != static_cast<uint32_t>(dim)) return false;
  if (!r.Array(&s->p, d) || !r.Array(&s->h, d) || !r.F32(&s->z) || !r.F32(&s->grad_sq) ||
      !r.Int(&s->events) || !r.Int(&s->last_ts) || !r.List(&s->seen) || !r.List(&s->recent_items) ||
      !r.Array(&s->recent_weights, s->recent_items.size()) || !r.Int(&empty) || !r.List(&s->sketch))
    return false;
  s->sketch_empty = empty != 0;
  return r.done();
}

void EncodeItem(const engine::ItemState& s, std::string* out) {
  out->clear();
  out->reserve(1 + 4 + 4 * s.v.size() + 32);
  PutInt(out, kItemRowVersion);
  PutInt(out, static_cast<uint32_t>(s.v.size()));
  PutArray(out, s.v.data(), s.v.size());
  PutF32(out, s.bias);
  PutF32(out, s.grad_sq);
  PutF64(out, s.count);
  PutF64(out, s.pop);
  PutF64(out, s.graph_count);
}

bool DecodeItem(std::string_view in, int dim, engine::ItemState* s) {
  Reader r(in);
  uint8_t ver = 0;
  uint32_t d = 0;
  if (!r.Int(&ver) || (ver != kItemRowVersion && ver != kCodecVersion)) return false;
  if (!r.Int(&d) || d != static_cast<uint32_t>(dim)) return false;
  if (!r.Array(&s->v, d) || !r.F32(&s->bias) || !r.F32(&s->grad_sq)) return false;
  if (ver == kItemRowVersion) {
    return r.F64(&s->count) && r.F64(&s->pop) && r.F64(&s->graph_count) && r.done();
  }
  // Version 1: the counters as f32.
  float count = 0.0f, graph_count = 0.0f;
  if (!r.F32(&count) || !r.F64(&s->pop) || !r.F32(&graph_count) || !r.done()) return false;
  s->count = count;
  s->graph_count = graph_count;
  return true;
}

namespace {

constexpr size_t kEdgeEntryBytes = 8;

uint32_t EntryB(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return ToLittle(v);
}

float EntryW(const char* p) {
  uint32_t v;
  std::memcpy(&v, p + 4, 4);
  return std::bit_cast<float>(ToLittle(v));
}

// The entries of a row value, checked: version, whole entries, strictly ascending b.
bool EdgeRowBody(std::string_view in, std::string_view* body) {
  if (in.empty() || static_cast<uint8_t>(in[0]) != kCodecVersion ||
      (in.size() - 1) % kEdgeEntryBytes != 0)
    return false;
  *body = in.substr(1);
  for (size_t i = kEdgeEntryBytes; i < body->size(); i += kEdgeEntryBytes) {
    if (EntryB(body->data() + i) <= EntryB(body->data() + i - kEdgeEntryBytes)) return false;
  }
  return true;
}

// Appends the sorted union of bodies `older` and `newer`; on equal b, newer's entry.
void MergeBodies(std::string_view older, std::string_view newer, std::string* out) {
  out->reserve(out->size() + older.size() + newer.size());
  size_t i = 0, j = 0;
  while (i < older.size() && j < newer.size()) {
    const uint32_t x = EntryB(older.data() + i), y = EntryB(newer.data() + j);
    if (x < y) {
      out->append(older.data() + i, kEdgeEntryBytes);
      i += kEdgeEntryBytes;
    } else {
      out->append(newer.data() + j, kEdgeEntryBytes);
      j += kEdgeEntryBytes;
      if (x == y) i += kEdgeEntryBytes;
    }
  }
  out->append(older.data() + i, older.size() - i);
  out->append(newer.data() + j, newer.size() - j);
}

}  // namespace

void EncodeEdgeRow(std::span<const engine::EdgeState> entries, bool drop_zeros, std::string* out) {
  out->clear();
  out->reserve(1 + entries.size() * kEdgeEntryBytes);
  PutInt(out, kCodecVersion);
  for (const engine::EdgeState& e : entries) {
    if (drop_zeros && e.w == 0.0f) continue;
    PutInt(out, e.b);
    PutF32(out, e.w);
  }
}

bool DecodeEdgeRow(std::string_view in, uint32_t a, std::vector<engine::EdgeState>* out) {
  std::string_view body;
  if (!EdgeRowBody(in, &body)) return false;
  out->clear();
  out->reserve(body.size() / kEdgeEntryBytes);
  for (size_t i = 0; i < body.size(); i += kEdgeEntryBytes)
    out->push_back({a, EntryB(body.data() + i), EntryW(body.data() + i)});
  return true;
}

bool MergeEdgeRows(const std::string_view* base, std::span<const std::string_view> patches,
                   bool drop_zeros, std::string* out) {
  std::string acc, scratch;
  std::string_view cur;  // the combination so far (points into an input or into `acc`)
  bool have = false;
  if (base != nullptr) {
    if (!EdgeRowBody(*base, &cur)) return false;
    have = true;
  }
  for (std::string_view patch : patches) {
    std::string_view body;
    if (!EdgeRowBody(patch, &body)) return false;
    if (!have) {
      cur = body;
      have = true;
      continue;
    }
    scratch.clear();
    MergeBodies(cur, body, &scratch);
    acc.swap(scratch);
    cur = acc;
  }
  out->clear();
  out->reserve(1 + cur.size());
  PutInt(out, kCodecVersion);
  for (size_t i = 0; i < cur.size(); i += kEdgeEntryBytes) {
    if (drop_zeros && EntryW(cur.data() + i) == 0.0f) continue;
    out->append(cur.data() + i, kEdgeEntryBytes);
  }
  return true;
}

void EncodeGlobal(const engine::GlobalState& g, std::string* out) {
  out->clear();
  PutInt(out, kCodecVersion);
  PutInt(out, g.clock);
  PutInt(out, g.pop_anchor);
  PutInt(out, g.recent_pos_next);
  for (float f : g.mix) PutF32(out, f);
  for (float f : g.mix_grad_sq) PutF32(out, f);
  PutList(out, g.recent_positives);
}

bool DecodeGlobal(std::string_view in, engine::GlobalState* g) {
  Reader r(in);
  if (!r.Version() || !r.Int(&g->clock) || !r.Int(&g->pop_anchor) || !r.Int(&g->recent_pos_next))
    return false;
  for (float& f : g->mix)
    if (!r.F32(&f)) return false;
  for (float& f : g->mix_grad_sq)
    if (!r.F32(&f)) return false;
  return r.List(&g->recent_positives) && r.done();
}

void EncodeU64(uint64_t v, std::string* out) {
  out->clear();
  PutInt(out, kCodecVersion);
  PutInt(out, v);
}

bool DecodeU64(std::string_view in, uint64_t* v) {
  Reader r(in);
  return r.Version() && r.Int(v) && r.done();
}

void EncodeI64(int64_t v, std::string* out) {
  out->clear();
  PutInt(out, kCodecVersion);
  PutInt(out, v);
}

bool DecodeI64(std::string_view in, int64_t* v) {
  Reader r(in);
  return r.Version() && r.Int(v) && r.done();
}

}  // namespace simstream::storage
