// Engine: the thread-safe face of the learner. Writers (Apply from the learner thread, and the
// occasional RecordRejected / AdvanceOffsets / ForgetUser) take turns under write_mu_; any
// number of reader threads answer queries at the same time.
//
// Thread safety: every public method may be called from any thread. Writers take the lock
// exclusively (Apply() once per slice of kEventsPerLock events, so queries never wait for a
// whole batch); queries share it.
// TakeChanges() (the flusher) copies the dirty rows under the *shared* lock while holding
// write_mu_, which every writer takes before the exclusive lock: the state cannot change during
// the copy (so it matches next_offsets/events_applied exactly), queries keep running, and only
// the learner waits. The changed co-occurrence edges are handed over in O(1) under the lock and
// read after it (their weights were recorded as they changed). Lock order: take_mu_, write_mu_,
// mu_.
// Exactly-once: events carry their (partition, offset); an event at or below the last applied
// offset of its partition is skipped, so redelivery after a crash is harmless.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config/options.hpp"
#include "config/result.hpp"
#include "engine/event.hpp"
#include "engine/interner.hpp"
#include "engine/live_ann.hpp"
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
  // Cosine similar-users / similar-items indexes (see engine/live_ann.hpp).
  AnnStats user_index;
  AnnStats item_index;
  // The items' neighbour lists of the recommendations (index.neighbour_lists_interval_ms):
  // items covered by the current lists (0: none built), their bytes (in model_bytes too), and
  // builds completed.
  size_t neighbour_lists_items = 0;
  size_t neighbour_lists_bytes = 0;
  uint64_t neighbour_lists_builds = 0;
};

class Engine {
 public:
  explicit Engine(const config::Options& opts);
  // Stops the index maintainer thread.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // ---- writers -------------------------------------------------------------------------
  ApplyOutcome Apply(std::span<const SourcedEvent> events);
  // Counts an event rejected before it reached the engine (DLQ), by reason code.
  void RecordRejected(std::string_view reason, uint64_t n = 1);
  // Marks every offset below next[p] of partition p as consumed without applying anything:
  // dead-lettered messages (so a restart does not read and dead-letter them again), and
  // partitions taken over at a later offset than this engine has seen. Never moves an offset
  // back. Call after Apply() of the events before those positions.
  void AdvanceOffsets(const std::map<int32_t, int64_t>& next);
  // Forgets a user (embedding, history, id mapping, sketch). False if unknown.
  bool ForgetUser(std::string_view user);
  // Moves everything changed since the last call into `out` (see state.hpp), consistent with
  // next_offsets and events_applied at this instant. Enables change tracking on first use.
  // Blocks the writers, not the queries (see the thread safety note above).
  void TakeChanges(ChangeSet& out);
  void SetChangeTracking(bool on);
  // One step of index maintenance: (re)builds an index that should exist (the build itself
  // runs with no lock held: queries and the learner go on), samples recall@10 against exact
  // search, sweeps for drifted rows. The background thread calls it every
  // index.maintenance_interval_ms; tests and tools may call it directly.
  void MaintainIndexes() { MaintainIndexes(std::chrono::steady_clock::now()); }
  // The same at instant `now` of the maintainer's clock, which only the deferral rules below
  // read: tests pass their own to cover kDeferAtMost without waiting for it.
  void MaintainIndexes(std::chrono::steady_clock::time_point now);
  // The consumer's lag: events in Kafka not yet applied (KafkaSource notes it after every
  // batch; kLagUnknown until it has measured it). While it exceeds index.defer_builds_above_lag
  // and the learner is applying events, MaintainIndexes() starts no build: a backlog is caught
  // up with the CPU to the learner, then indexed once. A learner that has applied nothing for
  // kDeferStall (a consumer that cannot reach Kafka, or paused), or a catch-up that has lasted
  // kDeferAtMost (a consumer slower than its producers), lets a due build start anyway.
  static constexpr int64_t kLagUnknown = INT64_MAX;
  static constexpr auto kDeferStall = std::chrono::seconds(5);
  static constexpr auto kDeferAtMost = std::chrono::minutes(10);
  void NoteLag(int64_t events) { lag_.store(events, std::memory_order_relaxed); }
  int64_t lag() const { return lag_.load(std::memory_order_relaxed); }

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
  // Events learned per hold of the exclusive lock in Apply(): bounds a query's wait.
  static constexpr size_t kEventsPerLock = 32;
  // Two-stage recommendations: candidates from each source, and the popular list's refresh.
  static constexpr size_t kIndexCandidates = 100;
  static constexpr size_t kIndexEf = 100;
  static constexpr size_t kNeighbourRows = 5;
  static constexpr size_t kNeighbourCandidates = 100;
  static constexpr size_t kPopularCandidates = 50;
  static constexpr uint64_t kPopularRefreshEvents = 1024;
  // A build's catch-up: rounds off the exclusive lock until one replays at most this many rows.
  static constexpr int kCatchUpRounds = 4;
  static constexpr size_t kCatchUpEnough = 256;
  // One event of a slice, past the duplicate check and interned.
  struct Resolved {
    const SourcedEvent* se;
    uint32_t user, item;
    bool new_item;
  };
  // Applies one slice under the exclusive lock: first the duplicate checks and the interning of
  // every event, in order, then the learning, each event with cache hints for the few after it
  // (OnlineModel::Prefetch): the learner waits on memory far less when its rows are on the way.
  void ApplySlice(std::span<const SourcedEvent> slice, ApplyOutcome& out);
  void SamplePrequential(uint32_t user, uint32_t item);

  const config::Options opts_;
  // Serialises the writers (Apply, ForgetUser, RecordRejected, Restore*, change tracking) with
  // TakeChanges. A writer waiting here is not a waiting writer of mu_, so it does not hold up
  // new readers while TakeChanges copies under the shared lock. Taken before mu_.
  std::mutex write_mu_;
  // Held through a whole TakeChanges, the part after the locks included: one take at a time.
  // Taken before write_mu_.
  std::mutex take_mu_;
  mutable WriterPreferringMutex mu_;  // the learner must not starve behind queries
  OnlineModel model_;
  IdInterner users_, items_;
  std::map<int32_t, int64_t> next_offsets_;
  std::atomic<uint64_t> events_applied_{0};
  std::atomic<int64_t> lag_{0};  // NoteLag()
  uint64_t events_rejected_ = 0;
  std::map<std::string, uint64_t, std::less<>> rejected_by_reason_;
  std::vector<std::pair<uint32_t, std::string>> new_user_ids_, new_item_ids_;
  bool tracking_ = false;
  // Live prequential HR@k on a sample of events (test-then-train, full ranking).
  RollingMean rolling_hr_{1000};
  uint64_t sample_counter_ = 0;
  std::vector<float> sample_scores_;
  std::vector<Resolved> slice_;                              // ApplySlice's scratch
  std::vector<std::pair<uint64_t, uint64_t>> slice_hashes_;  // (user, item) id hashes, the same
  // Cosine similarity indexes of users and items, and their maintainer thread.
  LiveAnn user_ann_, item_ann_;
  // Two-stage recommendations (when the item index is active): the most popular items, one of
  // the candidate sources, refreshed by Apply() every kPopularRefreshEvents events and by the
  // maintainer when it swaps in an item index.
  std::vector<uint32_t> popular_items_;
  uint64_t popular_at_ = 0;  // events_applied_ when popular_items_ was computed
  // Another candidate source: each item's strongest neighbours, rebuilt by the maintainer
  // (RefreshNeighbourLists) and swapped in whole under mu_; null until the first build.
  std::shared_ptr<const NeighbourLists> neighbour_lists_;
  uint64_t neighbour_lists_builds_ = 0;  // under mu_
  // The maintainer's: when the current lists were built (epoch: never), and events_applied_
  // then (read before the build: events applied during it count as not yet in the lists).
  // Under maintain_mu_.
  std::chrono::steady_clock::time_point neighbour_lists_at_{};
  uint64_t neighbour_lists_applied_ = 0;
  // Rebuilds neighbour_lists_ if the item index is active, the lists are older than
  // index.neighbour_lists_interval_ms and events were applied since. Under the shared lock, a few
  // rows per hold (a hold costs a query about as long as a query does), so the learner and the
  // queries go on beside it.
  void RefreshNeighbourLists(std::chrono::steady_clock::time_point now);
  static constexpr uint32_t kNeighbourListRowsPerLock = 32;
  // The popular list as of now. Caller holds write_mu_ (the model cannot change) and mu_
  // shared: the scan over the item table runs beside queries.
  std::vector<uint32_t> PopularNow() const;
  // Installs a list from PopularNow() and stamps popular_at_. Caller holds write_mu_ (still
  // since PopularNow) and mu_ exclusively, for a swap.
  void SetPopular(std::vector<uint32_t> popular);
  // SimilarUsers / SimilarItems: `ann` and `ids` are the users' or the items'.
  Result<std::vector<EntityScore>> Similar(const LiveAnn& ann, const IdInterner& ids,
                                           std::string_view id, size_t k, Metric metric) const;
  static Error NotFound(bool user);
  // Whether recommendations for `user` come from the model (it has events). Caller holds mu_.
  bool KnownUser(uint32_t user) const;
  // Appends the neighbourhood and popular candidates of the two-stage path. Caller holds mu_.
  void AddTwoStageCandidates(uint32_t user, std::vector<uint32_t>& cand) const;
  // Exact hybrid top-k over `cand` (item-index, neighbourhood and popular candidates, with
  // duplicates), seen and excluded items removed. Caller holds mu_.
  std::vector<Scored> RecommendTwoStage(uint32_t user, size_t k, std::span<const uint32_t> exclude,
                                        std::vector<uint32_t> cand) const;
  std::mutex maintain_mu_;  // one MaintainIndexes() at a time
  Rng maintain_rng_;
  // Whether builds wait for a catch-up now (NoteLag); the maintainer's own state, under
  // maintain_mu_.
  bool CatchingUp(std::chrono::steady_clock::time_point now);
  uint64_t progress_applied_ = 0;  // events_applied at the last progress seen
  std::chrono::steady_clock::time_point progress_at_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point deferring_since_{};  // epoch: not deferring
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread maintainer_;  // last member: starts after everything it uses exists
};

}  // namespace simstream::engine
