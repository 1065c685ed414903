#include "storage/flusher.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <utility>

#include "engine/thread_name.hpp"

namespace simstream::storage {

engine::ChangeSet MergeChangeSets(engine::ChangeSet older, engine::ChangeSet newer) {
  engine::ChangeSet out;
  const std::set<uint32_t> forgotten_new(newer.forgotten_users.begin(),
                                         newer.forgotten_users.end());
  std::set<uint32_t> forgotten(forgotten_new);
  forgotten.insert(older.forgotten_users.begin(), older.forgotten_users.end());
  out.forgotten_users.assign(forgotten.begin(), forgotten.end());

  std::map<uint32_t, engine::UserState> users;
  for (auto& [u, s] : older.users)
    if (!forgotten_new.count(u)) users[u] = std::move(s);
  for (auto& [u, s] : newer.users) users[u] = std::move(s);
  for (auto& [u, s] : users) out.users.emplace_back(u, std::move(s));

  std::map<uint32_t, engine::ItemState> items;
  for (auto& [i, s] : older.items) items[i] = std::move(s);
  for (auto& [i, s] : newer.items) items[i] = std::move(s);
  for (auto& [i, s] : items) out.items.emplace_back(i, std::move(s));

  // A row rewritten in `newer` is complete there; otherwise newer edges overlay older ones.
  const std::set<uint32_t> rewritten_new(newer.rewritten_rows.begin(), newer.rewritten_rows.end());
  std::set<uint32_t> rewritten(rewritten_new);
  rewritten.insert(older.rewritten_rows.begin(), older.rewritten_rows.end());
  out.rewritten_rows.assign(rewritten.begin(), rewritten.end());
  std::map<uint64_t, float> edges;
  for (const auto& e : older.edges)
    if (!rewritten_new.count(e.a)) edges[uint64_t{e.a} << 32 | e.b] = e.w;
  for (const auto& e : newer.edges) edges[uint64_t{e.a} << 32 | e.b] = e.w;
  for (const auto& [k, w] : edges)
    out.edges.push_back({static_cast<uint32_t>(k >> 32), static_cast<uint32_t>(k), w});

  // An older id of a user forgotten in `newer` is overwritten by the tombstone, which the
  // batch writes before the dictionary entries: drop it here.
  auto merge_ids = [](auto& a, auto& b, const std::set<uint32_t>& forgotten_later) {
    std::map<uint32_t, std::string> m;
    for (auto& [i, id] : a)
      if (!forgotten_later.count(i)) m[i] = std::move(id);
    for (auto& [i, id] : b) m[i] = std::move(id);
    return std::vector<std::pair<uint32_t, std::string>>(m.begin(), m.end());
  };
  out.new_user_ids = merge_ids(older.new_user_ids, newer.new_user_ids, forgotten_new);
  out.new_item_ids = merge_ids(older.new_item_ids, newer.new_item_ids, {});

  out.global = std::move(newer.global);
  out.next_offsets = std::move(older.next_offsets);
  for (const auto& [p, o] : newer.next_offsets) out.next_offsets[p] = o;
  out.events_applied = newer.events_applied;
  out.dim = newer.dim != 0 ? newer.dim : older.dim;
  return out;
}

Flusher::Flusher(engine::Engine& engine, StateStore& store, const config::StorageOptions& opts)
    : engine_(engine), store_(store), opts_(opts) {
  engine_.SetChangeTracking(true);
  // What the engine holds now was loaded from the store: it is durable. (Counting it as not
  // durable would have Behind() pause a restarted consumer until the first flush.)
  stats_.events_flushed = stats_.events_synced = engine_.events_applied();
  written_offsets_ = synced_offsets_ = engine_.NextOffsets();
}

Flusher::~Flusher() {
  if (!stopped_) (void)Stop();
}

std::map<int32_t, int64_t> Flusher::SyncedOffsets() const {
  std::lock_guard lock(stats_mu_);
  return synced_offsets_;
}

Status Flusher::Flush(bool sync, bool seal) {
  std::lock_guard lock(flush_mu_);
  if (sealed_.load()) {
    return Error{"storage_sealed",
                 "a write failed before partitions were handed over; nothing more is stored "
                 "until a restart reloads the store"};
  }
  // After the write below (or with nothing to write): everything written is in the synced WAL.
  const auto sync_written = [&]() -> Status {
    const auto now = std::chrono::steady_clock::now();
    if (!unsynced_write_) return Status::Ok();
    if (!sync && now - last_sync_ < std::chrono::seconds(1)) return Status::Ok();
    if (Status st = store_.SyncWal(); !st.ok()) {
      // The rows are written (readable, and kept by a clean restart); only their fsync failed,
      // so they are not committed to Kafka. The next flush syncs again.
      Error failed{st.error().code,
                   "written, but syncing the WAL failed (retried with the next "
                   "flush): " +
                       st.error().message};
      sync_error_ = failed;
      std::lock_guard stats_lock(stats_mu_);
      ++stats_.sync_failures;
      stats_.last_error = failed;
      return failed;
    }
    last_sync_ = now;
    unsynced_write_ = false;
    sync_error_.reset();
    std::lock_guard stats_lock(stats_mu_);
    synced_offsets_ = written_offsets_;
    stats_.events_synced = stats_.events_flushed;
    stats_.last_error.reset();
    return Status::Ok();
  };
  const auto start = std::chrono::steady_clock::now();
  engine::ChangeSet& cs = taken_;
  cs.Recycle();
  engine_.TakeChanges(cs);
  if (pending_) {
    cs = MergeChangeSets(std::move(*pending_), std::move(cs));
    pending_.reset();
  }
  // Nothing new since the last write: skip it (an idle daemon does not write every interval).
  // stats_ changes only here, under flush_mu_: reading it without stats_mu_ is safe.
  if (cs.empty() && stats_.flushes > 0 && cs.events_applied == stats_.events_flushed &&
      cs.next_offsets == last_offsets_)
    return sync_written();
  Status st = store_.Write(cs);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (observer_) observer_(st.ok(), ms / 1000.0);
  if (!st.ok()) {
    if (seal && cs.events_applied > stats_.events_flushed) sealed_ = true;
    pending_ = std::exchange(cs, engine::ChangeSet());
    std::lock_guard stats_lock(stats_mu_);
    ++stats_.failures;
    stats_.last_error = st.error();
    stats_.pending = true;
    return st;
  }
  unsynced_write_ = true;
  last_offsets_ = cs.next_offsets;
  for (const auto& [p, next] : cs.next_offsets) written_offsets_[p] = next;
  {
    std::lock_guard stats_lock(stats_mu_);
    ++stats_.flushes;
    stats_.last_latency_ms = ms;
    stats_.last_rows = cs.users.size() + cs.items.size();
    stats_.rows_written += stats_.last_rows;
    stats_.edges_written += cs.edges.size();
    stats_.events_flushed = cs.events_applied;
    stats_.pending = false;
    stats_.last_error = sync_error_;  // a write error is cleared; an unsynced WAL's is not
  }
  return sync_written();
}

void Flusher::SetObserver(std::function<void(bool ok, double seconds)> observer) {
  std::lock_guard lock(flush_mu_);
  observer_ = std::move(observer);
}

uint64_t Flusher::NotDurable() const {
  uint64_t flushed;
  {
    std::lock_guard lock(stats_mu_);
    flushed = stats_.events_flushed;
  }
  const uint64_t applied = engine_.events_applied();
  return applied > flushed ? applied - flushed : 0;
}

uint64_t Flusher::Trigger() const {
  return static_cast<uint64_t>(std::max<int64_t>(opts_.flush_max_dirty, 1));
}

Status Flusher::MaybeFlush() {
  if (NotDurable() < Trigger()) return Status::Ok();
  return FlushNow();
}

void Flusher::Nudge() {
  if (NotDurable() < Trigger()) return;
  {
    std::lock_guard lock(thread_mu_);
    due_ = true;
  }
  wake_.notify_all();
}

bool Flusher::Behind() const {
  {
    std::lock_guard lock(stats_mu_);
    if (stats_.pending) return true;
  }
  return NotDurable() >= 2 * Trigger();
}

void Flusher::Start() {
  std::lock_guard lock(thread_mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] {
    engine::SetThreadName("ss-flush");
    Run();
  });
}

Status Flusher::Stop() {
  {
    std::lock_guard lock(thread_mu_);
    stop_ = true;
    stopped_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  return FlushNow();
}

FlushStats Flusher::stats() const {
  std::lock_guard lock(stats_mu_);
  return stats_;
}

void Flusher::Run() {
  const auto interval = std::chrono::milliseconds(std::max<int64_t>(opts_.flush_interval_ms, 1));
  bool failing = false;   // the last flush of this thread failed
  uint64_t unlogged = 0;  // failures since the last message
  std::chrono::steady_clock::time_point last_logged{};
  std::unique_lock lock(thread_mu_);
  while (!stop_) {
    wake_.wait_for(lock, interval, [this] { return stop_ || due_; });
    if (stop_) break;
    due_ = false;
    lock.unlock();
    const Status st = Flush(/*sync=*/false);
    if (!st.ok()) {
      // No caller to return it to (stats() keeps it for /metrics). Said at the first failure,
      // then at most every 10 s while the retries fail: a retry every interval would fill the
      // disk, or the log's size limit, with one line.
      const auto now = std::chrono::steady_clock::now();
      if (!failing || now - last_logged >= std::chrono::seconds(10)) {
        std::fprintf(stderr,
                     "simstream: storage flush failed%s (%llu more failure(s) since the last "
                     "message): %s: %s\n",
                     stats().pending ? ", changes kept for retry" : "",
                     static_cast<unsigned long long>(unlogged), st.error().code.c_str(),
                     st.error().message.c_str());
        last_logged = now;
        unlogged = 0;
      } else {
        ++unlogged;
      }
      failing = true;
    } else {
      failing = false;
      unlogged = 0;
    }
    lock.lock();
    // The learner got a trigger's worth ahead during the write (the consumer may be paused on
    // Behind(), sending no Nudge): flush again now, not at the end of the interval. A failed
    // write is retried at the interval instead.
    if (st.ok() && NotDurable() >= Trigger()) due_ = true;
  }
}

}  // namespace simstream::storage
