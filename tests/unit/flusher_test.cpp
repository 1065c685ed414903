#include "storage/flusher.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "engine/generator.hpp"
#include "storage/codec.hpp"
#include "storage/snapshot.hpp"
#include "tests/support/test_support.hpp"

namespace simstream::storage {
namespace {

config::Options SmallOptions() {
  config::Options o;
  o.model.dim = 8;
  o.model.minhash_size = 16;
  return o;
}

std::vector<engine::Event> Stream(size_t events, uint64_t seed) {
  engine::GeneratorOptions g;
  g.users = 100;
  g.items = 50;
  g.events = events;
  g.min_user_events = 2;
  g.seed = seed;
  std::vector<engine::Event> out;
  (void)engine::Generate(g, [&](const engine::Event& e) { out.push_back(e); });
  return out;
}

void ApplyRange(engine::Engine& e, const std::vector<engine::Event>& ev, size_t from, size_t to) {
  std::vector<engine::SourcedEvent> batch;
  for (size_t i = from; i < to; ++i) batch.push_back({ev[i], 0, static_cast<int64_t>(i)});
  (void)e.Apply(batch);
}

// Forwards to an in-memory store, records every batch, and fails while `fail_next` > 0.
class RecordingStore final : public StateStore {
 public:
  explicit RecordingStore(const config::Options& o) : inner_(NewInMemoryStore(o.model, "events")) {}
  Status Write(const engine::ChangeSet& cs) override {
    if (fail_next > 0) {
      --fail_next;
      return Error{"storage_io", "disk full (simulated)"};
    }
    batches.push_back(cs);
    return inner_->Write(cs);
  }
  Status Visit(StateVisitor& v) override { return inner_->Visit(v); }
  int dim() const override { return inner_->dim(); }
  Result<std::map<int32_t, int64_t>> Offsets() const override { return inner_->Offsets(); }
  Result<uint64_t> EventsApplied() const override { return inner_->EventsApplied(); }
  Status Checkpoint(const std::string& dir) override { return inner_->Checkpoint(dir); }
  uint64_t SizeBytes() const override { return inner_->SizeBytes(); }
  Status PurgeDeleted() override { return Status::Ok(); }
  Status SyncWal() override {
    ++syncs;
    if (fail_sync > 0) {
      --fail_sync;
      return Error{"storage_io", "fsync failed (simulated)"};
    }
    return Status::Ok();
  }

  int fail_next = 0;
  std::atomic<int> syncs{0};
  int fail_sync = 0;
  std::vector<engine::ChangeSet> batches;

 private:
  std::unique_ptr<StateStore> inner_;
};

TEST(Flusher, HotRowIsWrittenOncePerFlush) {
  const config::Options o = SmallOptions();
  engine::Engine e(o);
  RecordingStore store(o);
  Flusher flusher(e, store, o.storage);
  std::vector<engine::SourcedEvent> events;
  for (int i = 0; i < 10000; ++i)
    events.push_back({{"hot", "i" + std::to_string(i % 5), "click", 1.0, 1000 + i}, 0, i});
  EXPECT_EQ(e.Apply(events).applied, 10000u);
  ASSERT_TRUE(flusher.FlushNow().ok());
  ASSERT_EQ(store.batches.size(), 1u);
  const engine::ChangeSet& cs = store.batches[0];
  ASSERT_EQ(cs.users.size(), 1u);
  EXPECT_EQ(cs.users[0].second.events, 10000u);
  EXPECT_EQ(cs.items.size(), 5u);
  EXPECT_EQ(cs.new_user_ids.size(), 1u);
  EXPECT_EQ(cs.events_applied, 10000u);
  EXPECT_EQ(cs.next_offsets.at(0), 10000);
  EXPECT_EQ(flusher.stats().rows_written, 6u);
  // Nothing new: no second write.
  ASSERT_TRUE(flusher.FlushNow().ok());
  EXPECT_EQ(store.batches.size(), 1u);
}

// The offsets committed to Kafka: only those of a write followed by a WAL sync. FlushNow syncs
// every time; the background thread at most once a second, off the consumer's path.
TEST(Flusher, SyncedOffsetsFollowOnlySyncedWrites) {
  config::Options o = SmallOptions();
  o.storage.flush_interval_ms = 10;
  const auto ev = Stream(3000, 4);
  engine::Engine e(o);
  RecordingStore store(o);
  Flusher flusher(e, store, o.storage);
  EXPECT_TRUE(flusher.SyncedOffsets().empty());
  ApplyRange(e, ev, 0, 1000);
  ASSERT_TRUE(flusher.FlushNow().ok());
  EXPECT_EQ(store.syncs.load(), 1);
  EXPECT_EQ(flusher.SyncedOffsets(), (std::map<int32_t, int64_t>{{0, 1000}}));
  // Written but the sync failed: not committable yet; the next FlushNow syncs it.
  ApplyRange(e, ev, 1000, 2000);
  store.fail_sync = 1;
  const Status unsynced = flusher.FlushNow();
  ASSERT_FALSE(unsynced.ok());
  // Said as what it is: written, only the fsync failed (not a write kept for retry).
  EXPECT_NE(unsynced.error().message.find("written, but syncing the WAL failed"), std::string::npos)
      << unsynced.error().message;
  EXPECT_FALSE(flusher.stats().pending);
  EXPECT_EQ(store.Offsets().value(), (std::map<int32_t, int64_t>{{0, 2000}}));
  EXPECT_EQ(flusher.SyncedOffsets(), (std::map<int32_t, int64_t>{{0, 1000}}));
  // /v1/stats tells the written events from the synced ones, and shows the failed sync.
  {
    const FlushStats st = flusher.stats();
    EXPECT_EQ(st.events_flushed, 2000u);
    EXPECT_EQ(st.events_synced, 1000u);
    EXPECT_EQ(st.sync_failures, 1u);
    EXPECT_EQ(st.failures, 0u) << "the write itself succeeded";
    ASSERT_TRUE(st.last_error.has_value());
    EXPECT_NE(st.last_error->message.find("fsync failed (simulated)"), std::string::npos);
  }
  ASSERT_TRUE(flusher.FlushNow().ok());
  EXPECT_EQ(flusher.SyncedOffsets(), (std::map<int32_t, int64_t>{{0, 2000}}));
  EXPECT_EQ(flusher.stats().events_synced, 2000u);
  EXPECT_FALSE(flusher.stats().last_error.has_value()) << "cleared by the sync that succeeded";
  ASSERT_TRUE(flusher.FlushNow().ok());  // nothing new: no sync either
  EXPECT_EQ(store.syncs.load(), 3);
  // A forget changes rows but no offset: FlushNow still syncs it (DELETE answers once it is).
  ASSERT_TRUE(e.ForgetUser(ev[0].user));
  ASSERT_TRUE(flusher.FlushNow().ok());
  EXPECT_EQ(store.syncs.load(), 4);
  EXPECT_EQ(flusher.SyncedOffsets(), (std::map<int32_t, int64_t>{{0, 2000}}));
  // The background thread writes every 10 ms but syncs at most once a second.
  flusher.Start();
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 2000; i < 3000; i += 50) {
    ApplyRange(e, ev, i, i + 50);
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (flusher.SyncedOffsets() != std::map<int32_t, int64_t>{{0, 3000}} &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(flusher.SyncedOffsets(), (std::map<int32_t, int64_t>{{0, 3000}}));
  EXPECT_GT(store.batches.size(), 6u);
  EXPECT_LE(store.syncs.load() - 4, static_cast<int>(seconds) + 1) << seconds << " s";
  ASSERT_TRUE(flusher.Stop().ok());
}

// The background thread syncs at most once a second: a good write right after a failed sync
// is not synced yet, so it must not clear the sync's error from /v1/stats.
TEST(Flusher, AWriteNotYetSyncedKeepsTheFailedSyncsError) {
  config::Options o = SmallOptions();
  o.storage.flush_interval_ms = 10;
  const auto ev = Stream(3000, 4);
  engine::Engine e(o);
  RecordingStore store(o);
  Flusher flusher(e, store, o.storage);
  ApplyRange(e, ev, 0, 1000);
  ASSERT_TRUE(flusher.FlushNow().ok());  // synced now: the next background sync is >= 1 s away
  ApplyRange(e, ev, 1000, 2000);
  store.fail_sync = 1;
  ASSERT_FALSE(flusher.FlushNow().ok());
  flusher.Start();
  ApplyRange(e, ev, 2000, 3000);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  FlushStats st = flusher.stats();
  while (st.events_flushed < 3000 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    st = flusher.stats();
  }
  ASSERT_EQ(st.events_flushed, 3000u) << "the background thread wrote the rest";
  // Read in one copy: either the sync has happened since (and cleared the error) or the error
  // still shows.
  if (st.events_synced < st.events_flushed) {
    ASSERT_TRUE(st.last_error.has_value()) << "written, not synced, and no error shown";
    EXPECT_NE(st.last_error->message.find("fsync failed"), std::string::npos);
  } else {
    EXPECT_FALSE(st.last_error.has_value());
  }
  ASSERT_TRUE(flusher.Stop().ok());
  st = flusher.stats();
  EXPECT_EQ(st.events_synced, 3000u);
  EXPECT_FALSE(st.last_error.has_value()) << "the stop's flush synced";
  EXPECT_EQ(st.sync_failures, 1u);
}

// A write that fails before a handover with events unstored seals the flusher in the same
// critical section: no later flush (background, DELETE, the stop's) writes anything. A failed
// sync after a good write, or a failed write of a forget alone, leaves nothing unstored and
// does not seal.
TEST(Flusher, AFailedWriteBeforeAHandoverSealsItButAFailedSyncDoesNot) {
  config::Options o = SmallOptions();
  const auto ev = Stream(2000, 5);
  engine::Engine e(o);
  RecordingStore store(o);
  Flusher flusher(e, store, o.storage);
  ApplyRange(e, ev, 0, 500);
  store.fail_sync = 1;
  EXPECT_FALSE(flusher.FlushBeforeHandover().ok());  // written, not synced
  EXPECT_FALSE(flusher.sealed());
  ASSERT_TRUE(e.ForgetUser(ev[0].user));
  store.fail_next = 1;
  EXPECT_FALSE(flusher.FlushBeforeHandover().ok());  // a forget only: no event unstored
  EXPECT_FALSE(flusher.sealed());
  ASSERT_TRUE(flusher.FlushNow().ok());
  const size_t written = store.batches.size();

  ApplyRange(e, ev, 500, 1000);
  store.fail_next = 1;
  const Status failed = flusher.FlushBeforeHandover();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, "storage_io");
  EXPECT_TRUE(flusher.sealed());
  // The store works again, yet nothing more is written: not the events of the handover, not
  // later ones.
  ApplyRange(e, ev, 1000, 1500);
  const Status later = flusher.FlushNow();
  ASSERT_FALSE(later.ok());
  EXPECT_EQ(later.error().code, "storage_sealed");
  flusher.Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(flusher.Stop().ok());
  EXPECT_EQ(store.batches.size(), written);
  EXPECT_EQ(store.Offsets().value(), (std::map<int32_t, int64_t>{{0, 500}}));
}

// The observer (the daemon's /metrics) hears of every write: its duration when it succeeded,
// and each failure. A flush with nothing to write is no write; a cleared observer hears nothing.
TEST(Flusher, TheObserverHearsOfEveryWriteAndWhetherItFailed) {
  const config::Options o = SmallOptions();
  const auto ev = Stream(900, 6);
  engine::Engine e(o);
  RecordingStore store(o);
  Flusher flusher(e, store, o.storage);
  std::vector<std::pair<bool, double>> heard;
  flusher.SetObserver([&](bool ok, double seconds) { heard.emplace_back(ok, seconds); });
  ApplyRange(e, ev, 0, 300);
  ASSERT_TRUE(flusher.FlushNow().ok());
  ASSERT_TRUE(flusher.FlushNow().ok());  // nothing new: no write
  ApplyRange(e, ev, 300, 600);
  store.fail_next = 1;
  EXPECT_FALSE(flusher.FlushNow().ok());
  ASSERT_TRUE(flusher.FlushNow().ok());  // the kept changes
  ASSERT_EQ(heard.size(), 3u);
  EXPECT_EQ(store.batches.size(), 2u);
  EXPECT_TRUE(heard[0].first);
  EXPECT_FALSE(heard[1].first);
  EXPECT_TRUE(heard[2].first);
  for (const auto& [ok, seconds] : heard) EXPECT_GE(seconds, 0.0) << ok;
  EXPECT_GT(heard[0].second, 0.0);
  flusher.SetObserver({});
  ApplyRange(e, ev, 600, 900);
  ASSERT_TRUE(flusher.FlushNow().ok());
  EXPECT_EQ(heard.size(), 3u);
}

TEST(Flusher, FailedWriteIsKeptAndRetriedWithNewerChanges) {
  const config::Options o = SmallOptions();
  const auto ev = Stream(3000, 2);
  engine::Engine e(o);
  RecordingStore store(o);
  Flusher flusher(e, store, o.storage);
  // Reference: the same history flushed without failures.
  engine::Engine ref(o);
  auto ref_store = NewInMemoryStore(o.model, "events");
  Flusher ref_flusher(ref, *ref_store, o.storage);

  ApplyRange(e, ev, 0, 1000);
  ApplyRange(ref, ev, 0, 1000);
  ASSERT_TRUE(ref_flusher.FlushNow().ok());
  store.fail_next = 2;
  const Status st = flusher.FlushNow();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, "storage_io");
  EXPECT_TRUE(flusher.stats().pending);
  ApplyRange(e, ev, 1000, 2000);
  ApplyRange(ref, ev, 1000, 2000);
  ASSERT_TRUE(e.ForgetUser(ev[3].user));
  ASSERT_TRUE(ref.ForgetUser(ev[3].user));
  ASSERT_TRUE(ref_flusher.FlushNow().ok());
  EXPECT_FALSE(flusher.FlushNow().ok());
  ApplyRange(e, ev, 2000, 3000);
  ApplyRange(ref, ev, 2000, 3000);
  ASSERT_TRUE(ref_flusher.FlushNow().ok());
  ASSERT_TRUE(flusher.FlushNow().ok());
  const FlushStats stats = flusher.stats();
  EXPECT_EQ(stats.failures, 2u);
  EXPECT_EQ(stats.flushes, 1u);
  EXPECT_FALSE(stats.pending);
  EXPECT_FALSE(stats.last_error.has_value());
  auto a = TakeSnapshot(store);
  auto b = TakeSnapshot(*ref_store);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(DiffSnapshots(a.value(), b.value()), "");
  EXPECT_EQ(a->events_applied, 3000u);
}

// Differential: writing Merge(older, newer) equals writing older and then newer.
TEST(Flusher, MergeEqualsSequentialWrites) {
  std::mt19937 rng(17);
  auto random_cs = [&](int dim) {
    engine::ChangeSet cs;
    cs.dim = dim;
    for (int k = 0; k < 6; ++k) {
      engine::UserState u;
      u.p.assign(dim, static_cast<float>(rng() % 100));
      u.h.assign(dim, 0.5f);
      u.events = rng() % 50;
      cs.users.emplace_back(rng() % 8, u);
      engine::ItemState it;
      it.v.assign(dim, static_cast<float>(rng() % 100));
      cs.items.emplace_back(rng() % 8, it);
      cs.edges.push_back({static_cast<uint32_t>(rng() % 4), static_cast<uint32_t>(rng() % 6),
                          static_cast<float>(rng() % 3)});  // weight 0: a deletion
      cs.new_user_ids.emplace_back(rng() % 8,
                                   rng() % 4 == 0 ? "" : "u" + std::to_string(rng() % 9));
      cs.new_item_ids.emplace_back(rng() % 8, "i" + std::to_string(rng() % 9));
    }
    if (rng() % 2) cs.rewritten_rows.push_back(rng() % 4);
    if (rng() % 3 == 0) cs.forgotten_users.push_back(rng() % 8);
    // Rows of forgotten users are never in the same change set (the engine drops them).
    std::erase_if(cs.users, [&](const auto& p) {
      return std::find(cs.forgotten_users.begin(), cs.forgotten_users.end(), p.first) !=
             cs.forgotten_users.end();
    });
    cs.global.clock = rng();
    cs.next_offsets[static_cast<int32_t>(rng() % 3)] = rng() % 1000;
    cs.events_applied = rng();
    return cs;
  };
  const config::Options o = SmallOptions();
  for (int trial = 0; trial < 200; ++trial) {
    const engine::ChangeSet older = random_cs(8), newer = random_cs(8);
    auto seq = NewInMemoryStore(o.model, "events");
    auto merged = NewInMemoryStore(o.model, "events");
    ASSERT_TRUE(seq->Write(older).ok());
    ASSERT_TRUE(seq->Write(newer).ok());
    ASSERT_TRUE(merged->Write(MergeChangeSets(older, newer)).ok());
    auto a = TakeSnapshot(*seq);
    auto b = TakeSnapshot(*merged);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(DiffSnapshots(a.value(), b.value()), "") << "trial " << trial;
  }
}

// Differential: a take into a recycled ChangeSet (the flusher's, whose spare rows hold other
// users' longer or shorter vectors) equals a take into a fresh one, row for row and byte for byte,
// over takes of very different sizes (the pool grows, shrinks and is reused) and a forgotten user.
TEST(Flusher, TakesIntoARecycledSetEqualTakesIntoAFreshOne) {
  const config::Options o = SmallOptions();
  const auto events = Stream(6000, 23);
  engine::Engine fresh_engine(o), recycled_engine(o);
  fresh_engine.SetChangeTracking(true);
  recycled_engine.SetChangeTracking(true);
  engine::ChangeSet recycled;
  std::string a, b;
  auto same_rows = [&](const auto& want, const auto& got, auto encode) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t k = 0; k < want.size(); ++k) {
      ASSERT_EQ(got[k].first, want[k].first) << "row " << k;
      encode(want[k].second, &a);
      encode(got[k].second, &b);
      ASSERT_EQ(a, b) << "row " << k << " (index " << want[k].first << ")";
    }
  };
  const size_t chunks[] = {2500, 3, 40, 1200, 1, 700, 15, 900, 5, 600};
  size_t from = 0;
  size_t take = 0, rows_compared = 0;
  for (size_t n : chunks) {
    const size_t to = std::min(events.size(), from + n);
    ApplyRange(fresh_engine, events, from, to);
    ApplyRange(recycled_engine, events, from, to);
    from = to;
    if (take == 4) {
      ASSERT_TRUE(fresh_engine.ForgetUser(events[0].user));
      ASSERT_TRUE(recycled_engine.ForgetUser(events[0].user));
    }
    engine::ChangeSet want;
    fresh_engine.TakeChanges(want);
    const size_t spare_users = recycled.users.size();
    recycled.Recycle();
    EXPECT_TRUE(recycled.empty());
    EXPECT_LE(recycled.spare_users.size(), spare_users) << "the pool outgrew the last take";
    recycled_engine.TakeChanges(recycled);
    SCOPED_TRACE("take " + std::to_string(take++));
    rows_compared += want.users.size();
    same_rows(want.users, recycled.users, EncodeUser);
    same_rows(want.items, recycled.items, EncodeItem);
    ASSERT_EQ(recycled.edges.size(), want.edges.size());
    for (size_t k = 0; k < want.edges.size(); ++k) {
      ASSERT_EQ(recycled.edges[k].a, want.edges[k].a);
      ASSERT_EQ(recycled.edges[k].b, want.edges[k].b);
      ASSERT_EQ(recycled.edges[k].w, want.edges[k].w);
    }
    EXPECT_EQ(recycled.forgotten_users, want.forgotten_users);
    EXPECT_EQ(recycled.rewritten_rows, want.rewritten_rows);
    EXPECT_EQ(recycled.new_user_ids, want.new_user_ids);
    EXPECT_EQ(recycled.new_item_ids, want.new_item_ids);
    EXPECT_EQ(recycled.next_offsets, want.next_offsets);
    EXPECT_EQ(recycled.events_applied, want.events_applied);
    EncodeGlobal(want.global, &a);
    EncodeGlobal(recycled.global, &b);
    EXPECT_EQ(a, b);
  }
  EXPECT_EQ(take, std::size(chunks));
  EXPECT_GT(rows_compared, 100u);
}

TEST(Flusher, MaybeFlushHonoursTheDirtyThreshold) {
  config::Options o = SmallOptions();
  o.storage.flush_max_dirty = 500;
  const auto ev = Stream(1200, 4);
  engine::Engine e(o);
  RecordingStore store(o);
  Flusher flusher(e, store, o.storage);
  ApplyRange(e, ev, 0, 499);
  ASSERT_TRUE(flusher.MaybeFlush().ok());
  EXPECT_EQ(store.batches.size(), 0u);
  ApplyRange(e, ev, 499, 500);
  ASSERT_TRUE(flusher.MaybeFlush().ok());
  ASSERT_EQ(store.batches.size(), 1u);
  ApplyRange(e, ev, 500, 999);
  ASSERT_TRUE(flusher.MaybeFlush().ok());
  EXPECT_EQ(store.batches.size(), 1u);
  ApplyRange(e, ev, 999, 1000);
  ASSERT_TRUE(flusher.MaybeFlush().ok());
  EXPECT_EQ(store.batches.size(), 2u);
  EXPECT_EQ(store.batches.back().events_applied, 1000u);
}

// The daemon's backpressure: Behind() asks the consumer to pause once two size triggers' worth
// of applied events are not durable, or while a failed write waits for its retry.
TEST(Flusher, BehindBoundsWhatIsNotDurable) {
  config::Options o = SmallOptions();
  o.storage.flush_max_dirty = 500;
  const auto ev = Stream(2000, 5);
  engine::Engine e(o);
  RecordingStore store(o);
  Flusher flusher(e, store, o.storage);  // not started: this test flushes by hand
  ApplyRange(e, ev, 0, 999);
  EXPECT_FALSE(flusher.Behind()) << "999 not durable, under 2 x 500";
  ApplyRange(e, ev, 999, 1000);
  EXPECT_TRUE(flusher.Behind()) << "1000 not durable";
  ASSERT_TRUE(flusher.MaybeFlush().ok());
  EXPECT_FALSE(flusher.Behind());
  store.fail_next = 1;
  ApplyRange(e, ev, 1000, 1500);
  EXPECT_FALSE(flusher.MaybeFlush().ok());
  EXPECT_TRUE(flusher.Behind()) << "a failed write waits for its retry";
  ApplyRange(e, ev, 1500, 1600);
  ASSERT_TRUE(flusher.FlushNow().ok());  // the retry, with everything since
  EXPECT_FALSE(flusher.Behind());
  ASSERT_EQ(store.batches.size(), 2u);
  EXPECT_EQ(store.batches[0].events_applied, 1000u);
  EXPECT_EQ(store.batches[1].events_applied, 1600u);
}

// A restarted daemon's flusher starts with the loaded state counted as durable: the consumer is
// not paused, and no flush is due, before it applies anything new.
TEST(Flusher, LoadedStateCountsAsDurable) {
  config::Options o = SmallOptions();
  o.storage.flush_max_dirty = 500;
  const auto ev = Stream(1500, 6);
  engine::Engine before(o);
  auto store = NewInMemoryStore(o.model, "events");
  {
    Flusher flusher(before, *store, o.storage);
    ApplyRange(before, ev, 0, 1200);
    ASSERT_TRUE(flusher.FlushNow().ok());
  }
  engine::Engine after(o);
  ASSERT_TRUE(store->LoadInto(after).ok());
  ASSERT_EQ(after.events_applied(), 1200u);
  Flusher flusher(after, *store, o.storage);
  EXPECT_FALSE(flusher.Behind());
  EXPECT_EQ(flusher.stats().events_flushed, 1200u);
  ApplyRange(after, ev, 1200, 1499);
  ASSERT_TRUE(flusher.MaybeFlush().ok());
  EXPECT_EQ(flusher.stats().flushes, 0u) << "299 new events: under the trigger";
}

// The daemon's size trigger: Nudge() hands the flush to the background thread (the learner
// does not wait for RocksDB). Below the trigger it does nothing.
TEST(Flusher, NudgeFlushesOnTheBackgroundThread) {
  config::Options o = SmallOptions();
  o.storage.flush_interval_ms = 600000;  // only Nudge and Stop flush in this test
  o.storage.flush_max_dirty = 500;
  const auto ev = Stream(1200, 5);
  engine::Engine e(o);
  RecordingStore store(o);
  Flusher flusher(e, store, o.storage);
  flusher.Start();
  ApplyRange(e, ev, 0, 499);
  flusher.Nudge();  // below the trigger: nothing to do
  ApplyRange(e, ev, 499, 500);
  flusher.Nudge();
  test_support::WaitFor([&] { return flusher.stats().flushes >= 1; }, std::chrono::seconds(20));
  ASSERT_EQ(flusher.stats().flushes, 1u);
  EXPECT_EQ(flusher.stats().events_flushed, 500u) << "the first Nudge did not flush 499";
  ApplyRange(e, ev, 500, 1200);
  ASSERT_TRUE(flusher.Stop().ok());
  ASSERT_EQ(store.batches.size(), 2u);
  EXPECT_EQ(store.batches[0].events_applied, 500u);
  EXPECT_EQ(store.batches[1].events_applied, 1200u);
  EXPECT_EQ(store.Offsets().value().at(0), 1200);
}

TEST(Flusher, BackgroundThreadFlushesOnItsIntervalAndStopFlushesTheRest) {
  config::Options o = SmallOptions();
  o.storage.flush_interval_ms = 10;
  const auto ev = Stream(2000, 8);
  engine::Engine e(o);
  auto store = NewInMemoryStore(o.model, "events");
  Flusher flusher(e, *store, o.storage);
  flusher.Start();
  ApplyRange(e, ev, 0, 1000);
  // Wait on the flusher's own record: it is updated after the store write returns, so
  // polling the store and then reading stats() would race with that update.
  test_support::WaitFor([&] { return flusher.stats().events_flushed >= 1000; },
                        std::chrono::seconds(10));
  EXPECT_GE(flusher.stats().flushes, 1u);
  EXPECT_EQ(store->EventsApplied().value(), 1000u);
  ApplyRange(e, ev, 1000, 2000);
  ASSERT_TRUE(flusher.Stop().ok());
  EXPECT_EQ(store->EventsApplied().value(), 2000u);
  EXPECT_EQ(store->Offsets().value().at(0), 2000);
}

}  // namespace
}  // namespace simstream::storage
