// LiveAnn: the similar-users (or similar-items) index of a running engine, kept up to date with
// embeddings that move with every event.
//
// * Which index: config `index.kind` = exact (never an ANN index: the model's exact scan),
//   hnsw (always), auto (HNSW once the table has `index.hnsw_min_size` rows, exact below).
// * Moving vectors: the writer Touch()es the rows an event moves; Sync() after the batch
//   updates the index for them through the drift filter (AnnIndex::Update), so a hot row costs
//   an O(d) check per batch and a re-insert only when it moved past `index.drift_threshold`.
//   Rows moved without an event naming them (sampled negative items) are found by a periodic
//   drift sweep (SweepDrift) and re-inserted by the next Sync. A re-insert costs about an HNSW
//   insert on the learner thread, so a Sync does at most `index.max_reinserts_per_batch`; the
//   other drifted rows stay touched, first in line for the next Sync (new rows and removals
//   are never deferred).
// * Answers are candidates of the index re-scored with the current vectors (exact scores).
// * Quality: SampleRecall() checks a sampled query against the exact scan; a rolling recall@10
//   over the last samples is exported. When it falls below `index.rebuild_below_recall`, or
//   tombstones exceed a quarter of the index, the index is rebuilt: BeginBuild() snapshots the
//   vectors (shared lock), Build() runs with no lock, the rows touched since the snapshot are
//   replayed in rounds (TakeTouchedSinceSnapshot copies them under the shared lock, ApplyDelta
//   indexes them with no lock), FinishBuild() swaps the index in under the exclusive lock, and a
//   Sync() replays the last few beside queries. Queries keep using the old index (or the exact
//   scan) meanwhile: they never wait for a build.
//
// Thread safety: the caller (Engine) holds its reader-writer lock as each method documents:
// [exclusive] for writers, [shared] for readers (Stats() too); the recall counters have their
// own mutex. BeginBuild/FinishBuild/SampleRecall/SweepDrift are called by one maintenance thread at
// a time. Sync() runs under the shared lock, beside queries: it writes the index's contents
// (never the index_ pointer, which only [exclusive] methods replace, under index_mu_ too) under
// index_mu_, held for at most ~0.25 ms (plus one re-insert) at a time, so a query never waits
// for a whole batch of re-inserts and the learner's exclusive hold covers learning only. Sync()
// and BeginBuild() (both [shared]) share the writer-side bookkeeping under sync_mu_.
// SearchVector() needs no engine lock at all (it reads no model row), so a query can search the
// index while the learner holds the engine's lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "config/options.hpp"
#include "engine/ann_index.hpp"
#include "engine/metrics.hpp"
#include "engine/model.hpp"
#include "engine/rng.hpp"
#include "engine/rw_lock.hpp"

namespace simstream::engine {

struct AnnStats {
  std::string mode = "exact";  // what answers cosine queries now: "exact" or "hnsw"
  size_t indexed = 0;          // live rows in the index
  size_t deleted = 0;          // tombstones
  // Rolling recall@10 against exact search over the current index's last samples; right after
  // a (re)build, the previous index's until the new one is sampled (0 before any sample).
  double recall_at_10 = 0;
  uint64_t recall_samples = 0;         // samples taken, all indexes
  uint64_t recall_window_samples = 0;  // samples behind recall_at_10 of the current index
  uint64_t reinserts = 0;  // drifted rows re-inserted (since the current index was built)
  size_t deferred = 0;     // drifted rows waiting for a re-insert (index.max_reinserts_per_batch)
  uint64_t builds = 0;     // builds and rebuilds completed
  bool building = false;
  // A build is due but waits for the consumer to catch up (index.defer_builds_above_lag).
  bool build_deferred = false;
};

class LiveAnn {
 public:
  enum class Table { kUsers, kItems };
  LiveAnn(Table table, const config::IndexOptions& opts, int dim);

  // [exclusive] Row `id` moved (or was created, or forgotten). (Sync also calls it, under the
  // shared lock and sync_mu_, for rows the drift sweep found.)
  void Touch(uint32_t id) {
    if (!tracking_) return;
    if (id >= touched_flag_.size()) touched_flag_.resize(size_t{id} + 1, 0);
    if (!(touched_flag_[id] & kTouched)) {
      touched_flag_[id] |= kTouched;
      touched_.push_back(id);
    }
  }
  // [shared, the writer's thread] Applies the touched rows (and drifted rows found by the
  // sweep) to the index. The model's rows must not change meanwhile: the caller is the only
  // writer and holds the shared lock (no other writer can take the exclusive one).
  void Sync(const OnlineModel& model);
  // [exclusive] Rows were replaced wholesale (restored from storage): drops the index and any
  // build in flight, so cosine queries are exact until the next maintenance builds a new index
  // from the restored rows (the first tick does, in hnsw mode or once auto's minimum size is
  // reached). Cheap when there is no index: Engine::Restore* call it per row.
  void Reset() {
    if (!index_ && !building_) return;
    {
      std::unique_lock writing(index_mu_);  // SearchVector reads the pointer under it alone
      index_.reset();
    }
    if (building_) discard_build_ = true;
    tracking_ = false;
    for (uint32_t id : touched_) touched_flag_[id] = 0;
    for (uint32_t id : deferred_) touched_flag_[id] = 0;
    touched_.clear();
    deferred_.clear();
    deferred_count_.store(0, std::memory_order_relaxed);
    since_snapshot_.clear();
  }

  // [shared] Whether cosine queries are answered by the index.
  bool Active() const { return index_ != nullptr; }
  // [no lock] AnnIndex::Search of the live index by a vector (none when there is no index).
  std::vector<Scored> SearchVector(const float* query, size_t k, size_t ef, bool all_candidates,
                                   std::span<const uint32_t> exclude = {}) const;
  // [shared] Top-k by cosine of row `id` (excluded itself), re-scored with current vectors:
  // Rescore(SearchCandidates(row of id)).
  std::vector<Scored> Search(const OnlineModel& model, uint32_t id, size_t k) const;
  // The same in two steps, so a query holds no engine lock while it searches:
  // [shared] the row to search by, copied;
  std::vector<float> QueryRow(const OnlineModel& model, uint32_t id) const {
    const float* row = Row(model, id);
    return std::vector<float>(row, row + dim_);
  }
  // [no lock] the index's candidates for the top-k by cosine of `query`, `exclude` left out
  // (none when there is no index);
  std::vector<Scored> SearchCandidates(const float* query, size_t k, uint32_t exclude) const;
  // [shared] the candidates re-scored by cosine to row `id` with current vectors, those no longer
  // eligible (a user forgotten since the search) dropped, top k.
  std::vector<Scored> Rescore(const OnlineModel& model, uint32_t id, std::vector<Scored> cand,
                              size_t k) const;

  // ---- maintenance (one thread at a time) ------------------------------------------------
  // [shared] Whether a build should start now.
  bool WantsBuild(const OnlineModel& model) const;
  // [any] Whether a due build waits for the consumer to catch up (reported by Stats()).
  void SetBuildDeferred(bool waiting) { build_deferred_.store(waiting, std::memory_order_relaxed); }
  // [shared] Snapshot of the rows to index; starts recording touched rows for the catch-up.
  struct Snapshot {
    std::vector<uint32_t> ids;
    std::vector<float> rows;
  };
  Snapshot BeginBuild(const OnlineModel& model);
  // [no lock] Builds an index over a snapshot.
  std::unique_ptr<AnnIndex> Build(const Snapshot& snap) const;
  // The catch-up, in rounds off the exclusive lock: a build takes seconds, and the rows touched
  // meanwhile (all the users of a fast stream) would otherwise be re-inserted while the learner
  // and every query wait.
  struct Delta {
    Snapshot rows;                  // touched rows still to index, current values
    std::vector<uint32_t> removed;  // touched rows no longer eligible (forgotten)
    size_t size() const { return rows.ids.size() + removed.size(); }
  };
  // [shared] The rows touched since BeginBuild or the last call, each once, copied.
  Delta TakeTouchedSinceSnapshot(const OnlineModel& model);
  // [no lock] Applies a delta to an index being built (not yet visible to anyone else).
  void ApplyDelta(AnnIndex& built, const Delta& delta) const;
  // [exclusive] Swaps `built` in (or drops it when Reset() ran since BeginBuild). The rows
  // touched since the last TakeTouchedSinceSnapshot are touched again: the caller runs Sync()
  // next (as the writer, under the shared lock) to apply them.
  void FinishBuild(std::unique_ptr<AnnIndex> built);
  // [shared] Checks one sampled query against the exact scan; no-op when not active.
  void SampleRecall(const OnlineModel& model, Rng& rng);
  // [shared] Finds rows that drifted without being touched (items moved as negatives).
  void SweepDrift(const OnlineModel& model);

  AnnStats Stats() const;
  bool enabled() const { return kind_ != "exact"; }

 private:
  bool Eligible(const OnlineModel& m, uint32_t id) const {
    if (table_ == Table::kItems) return id < m.items();
    return m.HasUser(id) && !m.IsForgotten(id) && m.UserEvents(id) > 0;
  }
  const float* Row(const OnlineModel& m, uint32_t id) const {
    return table_ == Table::kUsers ? m.UserVector(id) : m.ItemVector(id);
  }
  size_t Rows(const OnlineModel& m) const {
    return table_ == Table::kUsers ? m.users() : m.items();
  }
  // Inserts, updates (through the drift filter) or removes row `id`; true if it re-inserted.
  bool Apply(const OnlineModel& model, AnnIndex& index, uint32_t id);
  // Whether row `id` is in the live index and drifted past the threshold (index_mu_ held).
  bool Drifted(const OnlineModel& model, uint32_t id) const;

  const Table table_;
  const std::string kind_;
  const size_t min_size_;
  const double rebuild_below_recall_;
  const size_t max_reinserts_;  // per Sync; 0: no limit
  const int dim_;
  AnnParams params_;

  std::unique_ptr<AnnIndex> index_;
  // Guards the contents of *index_ between Sync() (writes, under the engine's shared lock) and
  // the readers; the pointer itself changes only under the engine's exclusive lock *and* this
  // one held exclusively (SearchVector/SearchCandidates read it under this one alone).
  mutable WriterPreferringMutex index_mu_;
  std::mutex sync_mu_;  // Sync() against BeginBuild(): the bookkeeping below
  // Touched rows since the last Sync; tracking is on once the index exists or is building.
  bool tracking_ = false;
  static constexpr uint8_t kTouched = 1, kDeferred = 2;  // bits of touched_flag_
  std::vector<uint8_t> touched_flag_;
  std::vector<uint32_t> touched_;
  // Drifted rows over index.max_reinserts_per_batch, oldest first. Not re-checked while they
  // wait (a Sync costs O(touched + re-inserted), not O(backlog)); touched again, a queued row
  // is only checked for removal.
  std::deque<uint32_t> deferred_;
  std::atomic<size_t> deferred_count_{0};    // deferred_.size(), for Stats()
  std::atomic<bool> build_deferred_{false};  // SetBuildDeferred(), for Stats()
  std::atomic<bool> building_{false};        // read by Stats() under the shared lock
  // Rows touched since BeginBuild (replayed by the catch-up), while a build runs; a row
  // appears once per Sync that touched it.
  std::vector<uint32_t> since_snapshot_;
  bool discard_build_ = false;  // Reset() during the build: FinishBuild drops it

  mutable std::mutex mu_;          // guards everything below
  std::vector<uint32_t> drifted_;  // found by SweepDrift, applied by the next Sync
  RollingMean recall_{200};        // of the current index
  double last_recall_ = 0;         // the previous index's, reported until recall_ has a sample
  uint64_t recall_samples_ = 0;
  uint64_t builds_ = 0;
};

}  // namespace simstream::engine
