#include "storage/snapshot.hpp"

#include <bit>

#include "storage/codec.hpp"

namespace simstream::storage {

Result<Snapshot> TakeSnapshot(StateStore& store) {
  Snapshot s;
  if (Status st = store.Visit(s); !st.ok()) return st.error();
  return s;
}

namespace {

// Rows are compared through their encodings: equal bytes means equal bits in every field.
template <typename Map, typename Encode>
std::string DiffRows(const char* what, const Map& a, const Map& b, Encode encode) {
  if (a.size() != b.size())
    return std::string(what) + ": " + std::to_string(a.size()) + " vs " + std::to_string(b.size()) +
           " rows";
  std::string ea, eb;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib) {
    if (ia->first != ib->first) return std::string(what) + ": different indices";
    encode(ia->second, &ea);
    encode(ib->second, &eb);
    if (ea != eb) return std::string(what) + " " + std::to_string(ia->first) + " differs";
  }
  return {};
}

}  // namespace

std::string DiffSnapshots(const Snapshot& a, const Snapshot& b) {
  if (a.user_ids != b.user_ids) return "user dictionary differs";
  if (a.item_ids != b.item_ids) return "item dictionary differs";
  if (auto d = DiffRows("user", a.users, b.users, EncodeUser); !d.empty()) return d;
  if (auto d = DiffRows("item", a.items, b.items, EncodeItem); !d.empty()) return d;
  if (a.edges.size() != b.edges.size())
    return "edges: " + std::to_string(a.edges.size()) + " vs " + std::to_string(b.edges.size());
  for (auto ia = a.edges.begin(), ib = b.edges.begin(); ia != a.edges.end(); ++ia, ++ib) {
    if (ia->first != ib->first ||
        std::bit_cast<uint32_t>(ia->second) != std::bit_cast<uint32_t>(ib->second))
      return "edge (" + std::to_string(ia->first.first) + "," + std::to_string(ia->first.second) +
             ") differs";
  }
  if (a.has_global != b.has_global) return "global state present in only one";
  std::string ga, gb;
  EncodeGlobal(a.global, &ga);
  EncodeGlobal(b.global, &gb);
  if (ga != gb) return "global state differs";
  if (a.next_offsets != b.next_offsets) return "offsets differ";
  if (a.events_applied != b.events_applied)
    return "events_applied " + std::to_string(a.events_applied) + " vs " +
           std::to_string(b.events_applied);
  return {};
}

}  // namespace simstream::storage
