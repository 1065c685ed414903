// The in-memory twin of the RocksDB store: the same contract with plain containers, so it is
// obviously right and the contract suite can check one backend against the other.
#include <map>
#include <mutex>
#include <string>

#include "storage/state_store.hpp"

namespace simstream::storage {
namespace {

class MemoryStore final : public StateStore {
 public:
  MemoryStore(const config::ModelOptions& model, std::string topic)
      : dim_(static_cast<int>(model.dim)), topic_(std::move(topic)) {}

  Status Write(const engine::ChangeSet& cs) override {
    if (cs.dim != 0 && cs.dim != dim_)
      return Error{"schema_mismatch", "changes of dimension " + std::to_string(cs.dim) +
                                          " written to a store of dimension " +
                                          std::to_string(dim_)};
    std::lock_guard lock(mu_);
    // Same order of operations as the RocksDB batch.
    for (uint32_t u : cs.forgotten_users) {
      users_.erase(u);
      user_ids_[u].clear();
    }
    // Co-occurrence rows, as RocksDB's Put of a rewritten row and Merge of patches amount to:
    // a rewritten row starts empty, then every entry applies in order (w == 0 deletes b).
    for (uint32_t a : cs.rewritten_rows) rows_.erase(a);
    for (const auto& [u, s] : cs.users) users_[u] = s;
    for (const auto& [i, s] : cs.items) items_[i] = s;
    for (const engine::EdgeState& e : cs.edges) {
      if (e.w != 0.0f) {
        rows_[e.a][e.b] = e.w;
      } else if (auto row = rows_.find(e.a); row != rows_.end()) {
        row->second.erase(e.b);
        if (row->second.empty()) rows_.erase(row);
      }
    }
    for (const auto& [idx, id] : cs.new_user_ids) user_ids_[idx] = id;
    for (const auto& [idx, id] : cs.new_item_ids) item_ids_[idx] = id;
    global_ = cs.global;
    has_global_ = true;
    for (const auto& [p, o] : cs.next_offsets) offsets_[p] = o;
    events_applied_ = cs.events_applied;
    return Status::Ok();
  }

  Status Visit(StateVisitor& v) override {
    std::lock_guard lock(mu_);
    for (const auto& [idx, id] : item_ids_) v.ItemId(idx, id);
    for (const auto& [idx, id] : user_ids_) v.UserId(idx, id);
    for (const auto& [idx, s] : items_) v.Item(idx, s);
    for (const auto& [idx, s] : users_) v.User(idx, s);
    for (const auto& [a, row] : rows_)
      for (const auto& [b, w] : row) v.Edge({a, b, w});
    if (has_global_) v.Global(global_, offsets_, events_applied_);
    return Status::Ok();
  }

  int dim() const override { return dim_; }

  Result<std::map<int32_t, int64_t>> Offsets() const override {
    std::lock_guard lock(mu_);
    return offsets_;
  }
  Result<uint64_t> EventsApplied() const override {
    std::lock_guard lock(mu_);
    return events_applied_;
  }
  Status Checkpoint(const std::string& dir) override {
    return Error{"unsupported", "the in-memory store cannot write a checkpoint to " + dir};
  }
  uint64_t SizeBytes() const override {
    std::lock_guard lock(mu_);
    uint64_t total = 0;
    for (const auto& [i, s] : users_) {
      total += 4 * (s.p.size() + s.h.size() + s.seen.size() + s.recent_items.size() +
                    s.recent_weights.size() + s.sketch.size()) +
               32;
    }
    total += items_.size() * (4 * static_cast<uint64_t>(dim_) + 24);
    for (const auto& [a, row] : rows_) total += 5 + row.size() * 8;  // as EncodeEdgeRow
    for (const auto& [i, id] : user_ids_) total += id.size() + 4;
    for (const auto& [i, id] : item_ids_) total += id.size() + 4;
    return total;
  }
  Status PurgeDeleted() override { return Status::Ok(); }

 private:
  const int dim_;
  const std::string topic_;  // one topic per store, as in RocksDB; kept for symmetry
  mutable std::mutex mu_;
  std::map<uint32_t, engine::UserState> users_;
  std::map<uint32_t, engine::ItemState> items_;
  std::map<uint32_t, std::map<uint32_t, float>> rows_;  // co-occurrence row a: b -> w
  std::map<uint32_t, std::string> user_ids_, item_ids_;
  engine::GlobalState global_;
  bool has_global_ = false;
  std::map<int32_t, int64_t> offsets_;
  uint64_t events_applied_ = 0;
};

}  // namespace

std::unique_ptr<StateStore> NewInMemoryStore(const config::ModelOptions& model,
                                             const std::string& topic) {
  return std::make_unique<MemoryStore>(model, topic);
}

}  // namespace simstream::storage
