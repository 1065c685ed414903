// Engine: the thread-safe face of the learner. One writer thread applies events (from Kafka,
// a file, or a test); any number of reader threads answer queries at the same time.
//
// Thread safety: every public method may be called from any thread. Apply() and the other
// writers take the lock exclusively once per call (pass batches); queries share it.
// Exactly-once: events carry their (partition, offset); an event at or below the last applied
// offset of its partition is skipped, so redelivery after a crash is harmless.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/options.hpp"
#include "config/result.hpp"
#include "engine/event.hpp"
#include "engine/interner.hpp"
#include "engine/metrics.hpp"
#include "engine/model.hpp"
#include "engine/rw_lock.hpp"
#include "engine/similarity.hpp"
#include "engine/state.hpp"

namespace simstream::engine {

// An event and where it came from. partition < 0: not from a partitioned log (never
// deduplicated, offsets not tracked).
struct SourcedEvent {
  Event event;
  int32_t partition = -1;
  int64_t offset = -1;
};

struct ApplyOutcome {
  size_t applied = 0;
  size_t duplicates = 0;  // skipped: offset already applied
};

struct ItemScore {
  std::string item;
  float score = 0.0f;
  std::vector<std::string> because;  // with explain: supporting history items
};

struct Recommendations {
  std::string user;
  bool from_model = false;  // false: popularity fallback (unknown or cold user)
  std::vector<ItemScore> items;
};

struct EntityScore {
  std::string id;
  float score = 0.0f;
};

struct UserInfo {
  std::string user;
  uint64_t events = 0;
  int64_t last_ts = 0;
  std::vector<float> embedding;  // only when asked for
};

struct EngineStats {
  uint64_t events_applied = 0;
  uint64_t events_rejected = 0;
  std::map<std::string, uint64_t> rejected_by_reason;
  size_t users = 0;
  size_t items = 0;
  std::map<int32_t, int64_t> next_offsets;
  double rolling_hr = 0;  // prequential HR@k over the last sampled events
  uint64_t prequential_samples = 0;
  size_t k = 10;
  std::array<float, 3> mix{};
  size_t model_bytes = 0;
  int dim = 0;
};

class Engine {
 public:
  explicit Engine(const config::Options& opts);

  // ---- writers -------------------------------------------------------------------------
  ApplyOutcome Apply(std::span<const SourcedEvent> events);
  // Counts an event rejected before it reached the engine (DLQ), by reason code.
  void RecordRejected(std::string_view reason, uint64_t n = 1);
  // Forgets a user (embedding, history, id mapping, sketch). False if unknown.
  bool ForgetUser(std::string_view user);
  // Moves everything changed since the last call into `out` (see state.hpp), consistent with
  // next_offsets and events_applied at this instant. Enables change tracking on first use.
  void TakeChanges(ChangeSet& out);
  void SetChangeTracking(bool on);

  // Restore from storage, before serving (each call locks; the state is not yet public).
  void RestoreUserId(uint32_t index, std::string_view id);  // id empty: forgotten slot
  void RestoreItemId(uint32_t index, std::string_view id);
  void RestoreUser(uint32_t index, const UserState& s);
  void RestoreItem(uint32_t index, const ItemState& s);
  void RestoreEdge(const EdgeState& e);
  void RestoreGlobal(const GlobalState& g, const std::map<int32_t, int64_t>& next_offsets,
                     uint64_t events_applied);

  // ---- readers -------------------------------------------------------------------------
  // Errors: "not_found" (similar users/items of an unknown id).
  Recommendations Recommend(std::string_view user, size_t k,
                            const std::vector<std::string>& exclude, bool explain) const;
  Result<std::vector<EntityScore>> SimilarUsers(std::string_view user, size_t k,
                                                Metric metric) const;
  Result<std::vector<EntityScore>> SimilarItems(std::string_view item, size_t k,
                                                Metric metric = Metric::kCosine) const;
  Result<UserInfo> GetUser(std::string_view user, bool with_embedding) const;
  EngineStats Stats() const;
  std::map<int32_t, int64_t> NextOffsets() const;
  uint64_t events_applied() const { return events_applied_.load(std::memory_order_relaxed); }
  int dim() const { return model_.dim(); }

  // Calls f(user_id, item ids...) style visitors for export, under a shared lock.
  // f(kind, id, vector) with kind 'u' or 'i'.
  template <typename F>
  void ForEachEmbedding(F&& f) const {
    std::shared_lock lock(mu_);
    for (uint32_t u = 0; u < model_.users(); ++u) {
      if (!model_.IsForgotten(u) && model_.UserEvents(u) > 0)
        f('u', users_.Id(u), std::span<const float>(model_.UserVector(u), model_.dim()));
    }
    for (uint32_t i = 0; i < model_.items(); ++i)
      f('i', items_.Id(i), std::span<const float>(model_.ItemVector(i), model_.dim()));
  }

 private:
  void SamplePrequential(uint32_t user, uint32_t item);

  const config::Options opts_;
  const EventRules rules_;
  mutable WriterPreferringMutex mu_;  // the learner must not starve behind queries
  OnlineModel model_;
  IdInterner users_, items_;
  std::map<int32_t, int64_t> next_offsets_;
  std::atomic<uint64_t> events_applied_{0};
  uint64_t events_rejected_ = 0;
  std::map<std::string, uint64_t, std::less<>> rejected_by_reason_;
  std::vector<std::pair<uint32_t, std::string>> new_user_ids_, new_item_ids_;
  bool tracking_ = false;
  // Live prequential HR@k on a sample of events (test-then-train, full ranking).
  RollingMean rolling_hr_{1000};
  uint64_t sample_counter_ = 0;
  std::vector<float> sample_scores_;
};

}  // namespace simstream::engine
