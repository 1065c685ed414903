#include "storage/state_store.hpp"

#include <vector>

namespace simstream::storage {
namespace {

// Restores visited rows into an engine (Engine::Restore* in the order they require).
class EngineLoader final : public StateVisitor {
 public:
  explicit EngineLoader(engine::Engine& engine) : engine_(engine) {}
  void UserId(uint32_t index, std::string_view id) override {
    engine_.RestoreUserId(index, id);
    if (id.empty()) tombstones_.push_back(index);
  }
  void ItemId(uint32_t index, std::string_view id) override { engine_.RestoreItemId(index, id); }
  void Item(uint32_t index, const engine::ItemState& s) override { engine_.RestoreItem(index, s); }
  void User(uint32_t index, const engine::UserState& s) override { engine_.RestoreUser(index, s); }
  void Edge(const engine::EdgeState& e) override { engine_.RestoreEdge(e); }
  void Global(const engine::GlobalState& g, const std::map<int32_t, int64_t>& next_offsets,
              uint64_t events_applied) override {
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

 private:
  engine::Engine& engine_;
  std::vector<uint32_t> tombstones_;
};

}  // namespace

Status StateStore::LoadInto(engine::Engine& engine) {
  if (engine.dim() != dim()) {
    return Error{"schema_mismatch", "engine dimension " + std::to_string(engine.dim()) +
                                        " differs from the store's " + std::to_string(dim())};
  }
  EngineLoader loader(engine);
  return Visit(loader);
}

}  // namespace simstream::storage
