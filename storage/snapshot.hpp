// The whole stored state as plain containers, for verification: tests compare two stores (or a
// store and an expectation) bit for bit, and tools can inspect a store without an engine.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "engine/state.hpp"
#include "storage/state_store.hpp"

namespace simstream::storage {

class Snapshot final : public StateVisitor {
 public:
  std::map<uint32_t, std::string> user_ids, item_ids;
  std::map<uint32_t, engine::UserState> users;
  std::map<uint32_t, engine::ItemState> items;
  std::map<std::pair<uint32_t, uint32_t>, float> edges;
  bool has_global = false;
  engine::GlobalState global;
  std::map<int32_t, int64_t> next_offsets;
  uint64_t events_applied = 0;

  void UserId(uint32_t index, std::string_view id) override { user_ids[index] = std::string(id); }
  void ItemId(uint32_t index, std::string_view id) override { item_ids[index] = std::string(id); }
  void Item(uint32_t index, const engine::ItemState& s) override { items[index] = s; }
  void User(uint32_t index, const engine::UserState& s) override { users[index] = s; }
  void Edge(const engine::EdgeState& e) override { edges[{e.a, e.b}] = e.w; }
  void Global(const engine::GlobalState& g, const std::map<int32_t, int64_t>& offsets,
              uint64_t applied) override {
    has_global = true;
    global = g;
    next_offsets = offsets;
    events_applied = applied;
  }
};

// Reads the whole store. Errors: those of StateStore::Visit.
[[nodiscard]] Result<Snapshot> TakeSnapshot(StateStore& store);

// Empty when `a` and `b` hold the same state bit for bit (floats compared by their bits), else
// a description of the first difference.
std::string DiffSnapshots(const Snapshot& a, const Snapshot& b);

}  // namespace simstream::storage
