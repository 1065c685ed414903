#include "storage/state_store.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace simstream::storage {
namespace {

// Restores visited rows into an engine (Engine::Restore* in the order they require). Every
// index a row refers to must have its dictionary entry (visited first): a row that decodes but
// names an item or user the store has no id for (a damaged or hand-edited store) would have
// the engine index its arrays out of bounds. The first one stops the load with a description.
class EngineLoader final : public StateVisitor {
 public:
  explicit EngineLoader(engine::Engine& engine) : engine_(engine) {}
  void UserId(uint32_t index, std::string_view id) override {
    if (!error_.empty()) return;
    users_ = std::max<uint64_t>(users_, uint64_t{index} + 1);
    engine_.RestoreUserId(index, id);
    if (id.empty()) tombstones_.push_back(index);
  }
  void ItemId(uint32_t index, std::string_view id) override {
    if (!error_.empty()) return;
    items_ = std::max<uint64_t>(items_, uint64_t{index} + 1);
    engine_.RestoreItemId(index, id);
  }
  void Item(uint32_t index, const engine::ItemState& s) override {
    if (Known(index, items_, "item row", index)) engine_.RestoreItem(index, s);
  }
  void User(uint32_t index, const engine::UserState& s) override {
    if (!Known(index, users_, "user row", index)) return;
    for (uint32_t i : s.seen)
      if (!Known(i, items_, "seen item of user row", index)) return;
    for (uint32_t i : s.recent_items)
      if (!Known(i, items_, "recent item of user row", index)) return;
    engine_.RestoreUser(index, s);
  }
  void Edge(const engine::EdgeState& e) override {
    if (Known(e.a, items_, "co-occurrence row", e.a) &&
        Known(e.b, items_, "co-occurrence entry of row", e.a))
      engine_.RestoreEdge(e);
  }
  void Global(const engine::GlobalState& g, const std::map<int32_t, int64_t>& next_offsets,
              uint64_t events_applied) override {
    for (uint32_t i : g.recent_positives)
      if (!Known(i, items_, "recent positive of the global state", 0)) return;
    // Forgotten users have no row. Give each an empty one so the model holds every index the
    // dictionary holds, as the live engine does; RestoreGlobal then marks them forgotten.
    if (!tombstones_.empty()) {
      engine::UserState blank;
      blank.p.assign(static_cast<size_t>(engine_.dim()), 0.0f);
      blank.h.assign(static_cast<size_t>(engine_.dim()), 0.0f);
      for (uint32_t u : tombstones_) engine_.RestoreUser(u, blank);
    }
    engine_.RestoreGlobal(g, next_offsets, events_applied);
  }
  // Empty, or what made the stored state inconsistent.
  const std::string& error() const { return error_; }

 private:
  // Whether `index` is below `bound` (and no earlier row failed); records the first failure.
  bool Known(uint32_t index, uint64_t bound, const char* what, uint32_t row) {
    if (!error_.empty()) return false;
    if (index < bound) return true;
    error_ = std::string(what) + " " + std::to_string(row) + " refers to index " +
             std::to_string(index) + ", beyond the " + std::to_string(bound) +
             " the dictionary holds";
    return false;
  }

  engine::Engine& engine_;
  std::vector<uint32_t> tombstones_;
  uint64_t users_ = 0, items_ = 0;
  std::string error_;
};

}  // namespace

Status StateStore::LoadInto(engine::Engine& engine) {
  if (engine.dim() != dim()) {
    return Error{"schema_mismatch", "engine dimension " + std::to_string(engine.dim()) +
                                        " differs from the store's " + std::to_string(dim())};
  }
  EngineLoader loader(engine);
  if (Status st = Visit(loader); !st.ok()) return st;
  if (!loader.error().empty()) {
    return Error{"storage_corrupt",
                 "the stored state is inconsistent: " + loader.error() +
                     ". Restore the state from a checkpoint (point storage.path at it), or start "
                     "on an empty directory to rebuild from the topic; either way under a new "
                     "kafka.group (the old group's committed offsets would skip the events in "
                     "between)."};
  }
  return Status::Ok();
}

}  // namespace simstream::storage
