// Write-behind of the engine's state: the engine marks rows dirty as it learns; a flush takes
// every dirty row (each written once, however often it changed) together with the consumed
// offsets and events_applied of that instant, and writes them as one atomic batch.
//
// A failed write loses nothing: its ChangeSet is kept and merged (MergeChangeSets) with the
// changes taken at the next flush, which retries the union. Until a write succeeds the stored
// offsets stay behind, so a crash in between replays the events instead of losing them. The
// error is returned by FlushNow() and kept in stats() (the daemon decides whether to stop).
//
// Thread safety: FlushNow, MaybeFlush, Nudge, Behind and stats may be called from any thread;
// flushes are serialised. Nudge, Behind and stats never wait for a flush in progress. Start() runs
// a background thread flushing every storage.flush_interval_ms; Stop() ends it after one final
// flush; the destructor runs Stop() unless it already ran.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "config/options.hpp"
#include "config/result.hpp"
#include "engine/engine.hpp"
#include "engine/state.hpp"
#include "storage/state_store.hpp"

namespace simstream::storage {

struct FlushStats {
  uint64_t flushes = 0;             // successful writes
  uint64_t failures = 0;            // failed writes (their changes were kept for the next one)
  double last_latency_ms = 0;       // duration of the last successful flush (take + write)
  uint64_t last_rows = 0;           // user + item rows of the last successful flush
  uint64_t rows_written = 0;        // user + item rows, all flushes
  uint64_t edges_written = 0;       // co-occurrence edges, all flushes
  uint64_t events_flushed = 0;      // events_applied at the last successful write (readable,
                                    // and kept by a restart after a process crash)
  uint64_t events_synced = 0;       // events_applied at the last write covered by a WAL sync
                                    // (kept by a power loss too; what Kafka's commits follow)
  uint64_t sync_failures = 0;       // failed WAL syncs (the write stands; the next flush syncs)
  bool pending = false;             // a failed ChangeSet waits for the next flush
  std::optional<Error> last_error;  // the last failed write's (cleared by a good write) or
                                    // WAL sync's (cleared only by a good sync)
};

// `newer` applied after `older`, as one ChangeSet: the state it writes equals writing `older`
// and then `newer`. Rows and dictionary entries: the newer copy wins; forgotten users drop their
// older rows; a row rewritten in `newer` drops the older edges of that row; stream position,
// global state and events_applied come from `newer`.
engine::ChangeSet MergeChangeSets(engine::ChangeSet older, engine::ChangeSet newer);

class Flusher {
 public:
  // Turns on the engine's change tracking (rows changed before that are not seen: create the
  // flusher after LoadInto and before the first Apply). `engine` and `store` must outlive it.
  Flusher(engine::Engine& engine, StateStore& store, const config::StorageOptions& opts);
  ~Flusher();
  Flusher(const Flusher&) = delete;
  Flusher& operator=(const Flusher&) = delete;

  // Takes the engine's changes and writes them (with any kept failed changes) in one batch,
  // then fsyncs the store's WAL (StateStore::SyncWal), so SyncedOffsets() covers the write.
  [[nodiscard]] Status FlushNow() { return Flush(/*sync=*/true); }
  // FlushNow before Kafka partitions go to another member. If the write fails with applied
  // events unstored, the flusher is sealed in the same critical section: no later flush writes
  // anything. The next owner reads those events again from the committed offsets, so storing
  // them here later would apply them twice in the group; the daemon stops instead and a
  // restart reloads the store. A failed WAL sync after a good write does not seal (nothing is
  // left unstored), nor does a failed write of forgets alone.
  [[nodiscard]] Status FlushBeforeHandover() { return Flush(/*sync=*/true, /*seal=*/true); }
  // Whether FlushBeforeHandover sealed the flusher (then every flush fails without writing).
  bool sealed() const { return sealed_.load(); }
  // The size trigger, on the caller's thread: flushes when at least storage.flush_max_dirty
  // events were applied since the last successful flush. Else does nothing.
  [[nodiscard]] Status MaybeFlush();
  // The size trigger, on the background thread (Start()): when MaybeFlush would flush, wakes the
  // thread to flush now and returns at once, so the learner goes on learning while RocksDB
  // writes (the daemon calls it after each batch). Errors are the thread's (stats()).
  void Nudge();
  // True while the writer is behind, and the caller should stop feeding the engine: a failed
  // write waits for its retry, or 2 x storage.flush_max_dirty events are not yet durable (the
  // learner outruns RocksDB; this bounds the changes held in memory).
  bool Behind() const;
  void Start();
  // Stops the background thread and flushes once more; returns that flush's status.
  Status Stop();
  FlushStats stats() const;
  // Called after each write, on the thread that flushed, with whether it succeeded and how
  // long its take and write took (the daemon feeds /metrics with it). Safe to set while
  // flushes run: it waits for the one in progress.
  void SetObserver(std::function<void(bool ok, double seconds)> observer);
  // The stored offsets that a power loss cannot take back: those of the last write followed
  // by a WAL sync (FlushNow always syncs; the background thread at most once per second, so
  // the fsync never waits in the consumer's path). What may be committed to Kafka.
  std::map<int32_t, int64_t> SyncedOffsets() const;

 private:
  // A write as FlushNow's; the WAL is synced when `sync`, or a second after the last sync.
  Status Flush(bool sync, bool seal = false);
  void Run();
  uint64_t NotDurable() const;  // events applied since the last successful flush
  uint64_t Trigger() const;     // storage.flush_max_dirty, at least 1

  engine::Engine& engine_;
  StateStore& store_;
  const config::StorageOptions opts_;
  // Serialises flushes (held through the write) and guards taken_, pending_ and last_offsets_.
  // Nothing the consumer or HTTP threads call waits for it: they read stats_ under stats_mu_, which
  // is held only to copy or update it, so they never wait behind a RocksDB write.
  std::mutex flush_mu_;
  std::function<void(bool, double)> observer_;  // under flush_mu_
  // The set each flush takes into, recycled before each take (ChangeSet::Recycle): the rows of
  // the last write keep their memory for the next one.
  engine::ChangeSet taken_;
  std::optional<engine::ChangeSet> pending_;
  std::map<int32_t, int64_t> last_offsets_;     // of the last successful write
  std::map<int32_t, int64_t> written_offsets_;  // every successful write's, merged
  std::chrono::steady_clock::time_point last_sync_{};
  // A successful write not yet followed by a successful WAL sync (under flush_mu_). Not the
  // offsets: a forget changes rows but no offset, and DELETE promises it is on disk.
  bool unsynced_write_ = false;
  // The last WAL sync's error until a sync succeeds (under flush_mu_): a good write that is not
  // synced yet (the background thread syncs at most once a second) leaves it in last_error.
  std::optional<Error> sync_error_;
  std::atomic<bool> sealed_{false};  // set under flush_mu_
  // Written only by FlushNow (under flush_mu_ and stats_mu_), so FlushNow reads it without
  // stats_mu_; everyone else reads it under stats_mu_.
  mutable std::mutex stats_mu_;
  FlushStats stats_;
  std::map<int32_t, int64_t> synced_offsets_;  // under stats_mu_
  std::mutex thread_mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool due_ = false;      // Nudge(): flush now, not at the end of the interval
  bool stopped_ = false;  // Stop() ran: the destructor does not flush again
  std::thread thread_;
};

}  // namespace simstream::storage
