#include "storage/state_store.hpp"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

namespace simstream::storage {
namespace {

// Restores visited rows into an engine (Engine::Restore* in the order they require). A row that
// decodes but does not hold together with the rest (a damaged or hand-edited store) would have
// the engine index its arrays out of bounds, so the first one stops the load with a
// description: a user or item row beyond its dictionary (visited first), and an item that a user
// row, a co-occurrence entry or the global state names beyond the item rows (visited before
// them: the model holds an item up to the highest row's index).
class EngineLoader final : public StateVisitor {
 public:
  explicit EngineLoader(engine::Engine& engine) : engine_(engine) {}
  void UserId(uint32_t index, std::string_view id) override {
    if (!error_.empty()) return;
    user_ids_ = std::max<uint64_t>(user_ids_, uint64_t{index} + 1);
    engine_.RestoreUserId(index, id);
    if (id.empty()) tombstones_.push_back(index);
  }
  void ItemId(uint32_t index, std::string_view id) override {
    if (!error_.empty()) return;
    item_ids_ = std::max<uint64_t>(item_ids_, uint64_t{index} + 1);
    engine_.RestoreItemId(index, id);
  }
  void Item(uint32_t index, const engine::ItemState& s) override {
    if (!Within(index, item_ids_, "the item dictionary", "item row", index)) return;
    item_rows_ = std::max<uint64_t>(item_rows_, uint64_t{index} + 1);
    engine_.RestoreItem(index, s);
  }
  void User(uint32_t index, const engine::UserState& s) override {
    if (!Within(index, user_ids_, "the user dictionary", "user row", index)) return;
    for (uint32_t i : s.seen)
      if (!Within(i, item_rows_, "the item rows", "seen item of user row", index)) return;
    for (uint32_t i : s.recent_items)
      if (!Within(i, item_rows_, "the item rows", "recent item of user row", index)) return;
    engine_.RestoreUser(index, s);
  }
  void Edge(const engine::EdgeState& e) override {
    if (Within(e.a, item_rows_, "the item rows", "co-occurrence row", e.a) &&
        Within(e.b, item_rows_, "the item rows", "co-occurrence entry of row", e.a))
      engine_.RestoreEdge(e);
  }
  void Global(const engine::GlobalState& g, const std::map<int32_t, int64_t>& next_offsets,
              uint64_t events_applied) override {
    for (uint32_t i : g.recent_positives)
      if (!Within(i, item_rows_, "the item rows", "a recent positive of the global state")) return;
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
  // Whether `index` is below `bound` (the extent of `of`), and no earlier row failed; records
  // the first failure.
  bool Within(uint32_t index, uint64_t bound, const char* of, const char* what,
              std::optional<uint32_t> row = std::nullopt) {
    if (!error_.empty()) return false;
    if (index < bound) return true;
    error_ = std::string(what) + (row ? " " + std::to_string(*row) : std::string()) +
             " refers to index " + std::to_string(index) + ", beyond the " + std::to_string(bound) +
             " of " + of;
    return false;
  }

  engine::Engine& engine_;
  std::vector<uint32_t> tombstones_;
  uint64_t user_ids_ = 0, item_ids_ = 0, item_rows_ = 0;
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
