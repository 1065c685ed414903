// The storage contract, run over both backends (RocksDB in a temp dir, the in-memory twin), plus
// the RocksDB-only failure modes: reopen, lock, schema mismatch, corruption, purge of forgotten
// data from the files.
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bit>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/engine.hpp"
#include "engine/generator.hpp"
#include "engine/model.hpp"
#include "storage/codec.hpp"
#include "storage/export.hpp"
#include "storage/snapshot.hpp"
#include "storage/state_store.hpp"

namespace simstream::storage {
namespace {

namespace fs = std::filesystem;

fs::path UniqueTempDir(const std::string& tag) {
  static int counter = 0;
  fs::path p = fs::temp_directory_path() / ("simstream_" + tag + "_" + std::to_string(::getpid()) +
                                            "_" + std::to_string(counter++));
  fs::remove_all(p);
  return p;
}

config::Options SmallOptions() {
  config::Options o;
  o.model.dim = 8;
  o.model.minhash_size = 16;
  o.model.negatives = 3;
  return o;
}

// Runs the simstream binary with `args`; its exit code, with stdout and stderr in `output`.
int RunBinary(const std::string& args, std::string& output) {
  const std::string cmd = std::string(SIMSTREAM_BINARY) + args + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof(buf), pipe)) output.append(buf, n);
  return WEXITSTATUS(::pclose(pipe));
}

std::vector<engine::Event> Stream(size_t events, uint64_t seed) {
  engine::GeneratorOptions g;
  g.users = 120;
  g.items = 60;
  g.events = events;
  g.min_user_events = 2;
  g.seed = seed;
  std::vector<engine::Event> out;
  (void)engine::Generate(g, [&](const engine::Event& e) { out.push_back(e); });
  return out;
}

void ApplyRange(engine::Engine& e, const std::vector<engine::Event>& ev, size_t from, size_t to,
                int32_t partition = 0) {
  std::vector<engine::SourcedEvent> batch;
  for (size_t i = from; i < to; ++i) batch.push_back({ev[i], partition, static_cast<int64_t>(i)});
  (void)e.Apply(batch);
}

Status Flush(engine::Engine& e, StateStore& store) {
  engine::ChangeSet cs;
  e.TakeChanges(cs);
  return store.Write(cs);
}

// Everything observable of an engine, floats as bits.
std::string Fingerprint(const engine::Engine& e) {
  std::string out;
  e.ForEachEmbedding([&](char kind, const std::string& id, std::span<const float> v) {
    out += kind + id + ":";
    for (float f : v) out += std::to_string(std::bit_cast<uint32_t>(f)) + ",";
    out += "\n";
    if (kind == 'u') {
      const auto r = e.Recommend(id, 5, {}, false);
      for (const auto& it : r.items)
        out += it.item + "=" + std::to_string(std::bit_cast<uint32_t>(it.score)) + " ";
      const auto sim = e.SimilarUsers(id, 3, engine::Metric::kJaccard);
      if (sim.ok())
        for (const auto& s : sim.value()) out += s.id + "~" + std::to_string(s.score) + " ";
      const auto info = e.GetUser(id, false);
      if (info.ok())
        out += "events=" + std::to_string(info->events) + " ts=" + std::to_string(info->last_ts);
      out += "\n";
    }
  });
  const auto st = e.Stats();
  out += "applied=" + std::to_string(st.events_applied) + " users=" + std::to_string(st.users) +
         " items=" + std::to_string(st.items);
  for (const auto& [p, o] : st.next_offsets)
    out += " p" + std::to_string(p) + "=" + std::to_string(o);
  for (float m : st.mix) out += " mix=" + std::to_string(std::bit_cast<uint32_t>(m));
  return out;
}

// ---- backends ----------------------------------------------------------------------------

struct RocksBackend {
  static constexpr bool kDurable = true;
  fs::path dir = UniqueTempDir("contract");
  ~RocksBackend() { fs::remove_all(dir); }
  std::unique_ptr<StateStore> Open(const config::Options& o) {
    config::StorageOptions s = o.storage;
    s.path = dir.string();
    auto r = OpenRocksDbStore(s, o.model, "events");
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().code + ": " + r.error().message);
    return r.ok() ? std::move(r.value()) : nullptr;
  }
};

struct MemoryBackend {
  static constexpr bool kDurable = false;
  std::unique_ptr<StateStore> Open(const config::Options& o) {
    return NewInMemoryStore(o.model, "events");
  }
};

template <typename B>
class StateStoreContract : public ::testing::Test {
 protected:
  B backend_;
  config::Options opts_ = SmallOptions();
};

using Backends = ::testing::Types<RocksBackend, MemoryBackend>;
TYPED_TEST_SUITE(StateStoreContract, Backends);

TYPED_TEST(StateStoreContract, EmptyStoreHasNothing) {
  auto store = this->backend_.Open(this->opts_);
  ASSERT_TRUE(store);
  auto offsets = store->Offsets();
  ASSERT_TRUE(offsets.ok());
  EXPECT_TRUE(offsets->empty());
  auto applied = store->EventsApplied();
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(applied.value(), 0u);
  engine::Engine e(this->opts_);
  ASSERT_TRUE(store->LoadInto(e).ok());
  EXPECT_EQ(e.Stats().users, 0u);
  EXPECT_EQ(e.Stats().items, 0u);
  EXPECT_EQ(e.events_applied(), 0u);
}

TYPED_TEST(StateStoreContract, LoadGivesBitIdenticalEngineThatKeepsLearningIdentically) {
  auto store = this->backend_.Open(this->opts_);
  ASSERT_TRUE(store);
  const auto ev = Stream(4000, 7);
  engine::Engine live(this->opts_);
  live.SetChangeTracking(true);
  for (size_t from = 0; from < 3000; from += 700) {  // several flushes, uneven batches
    ApplyRange(live, ev, from, std::min<size_t>(from + 700, 3000));
    ASSERT_TRUE(Flush(live, *store).ok());
  }
  engine::Engine restored(this->opts_);
  ASSERT_TRUE(store->LoadInto(restored).ok());
  EXPECT_EQ(Fingerprint(restored), Fingerprint(live));
  EXPECT_EQ(restored.events_applied(), 3000u);
  // The hidden state (histories, accumulators, graph, global) must match too: the same next
  // events must move both engines to the same bits.
  ApplyRange(live, ev, 3000, 4000);
  ApplyRange(restored, ev, 3000, 4000);
  EXPECT_EQ(Fingerprint(restored), Fingerprint(live));
}

TYPED_TEST(StateStoreContract, OffsetsAndEventsAppliedPersist) {
  auto store = this->backend_.Open(this->opts_);
  ASSERT_TRUE(store);
  const auto ev = Stream(600, 3);
  engine::Engine live(this->opts_);
  live.SetChangeTracking(true);
  ApplyRange(live, ev, 0, 250, /*partition=*/0);
  ApplyRange(live, ev, 250, 600, /*partition=*/3);
  ASSERT_TRUE(Flush(live, *store).ok());
  auto offsets = store->Offsets();
  ASSERT_TRUE(offsets.ok());
  const std::map<int32_t, int64_t> want{{0, 250}, {3, 600}};
  EXPECT_EQ(offsets.value(), want);
  // A WAL sync (what makes them committable to Kafka) changes nothing stored.
  ASSERT_TRUE(store->SyncWal().ok());
  EXPECT_EQ(store->Offsets().value(), want);
  EXPECT_EQ(store->EventsApplied().value(), 600u);
  engine::Engine restored(this->opts_);
  ASSERT_TRUE(store->LoadInto(restored).ok());
  EXPECT_EQ(restored.NextOffsets(), want);
  EXPECT_EQ(restored.events_applied(), 600u);
  // Redelivered events are skipped after the restore (exactly-once across restarts).
  std::vector<engine::SourcedEvent> again{{ev[10], 0, 10}, {ev[300], 3, 300}};
  EXPECT_EQ(restored.Apply(again).duplicates, 2u);
}

TYPED_TEST(StateStoreContract, ForgetRemovesRowAndIdAndKeepsIndexTaken) {
  auto store = this->backend_.Open(this->opts_);
  ASSERT_TRUE(store);
  const auto ev = Stream(1500, 11);
  engine::Engine live(this->opts_);
  live.SetChangeTracking(true);
  ApplyRange(live, ev, 0, 1000);
  ASSERT_TRUE(Flush(live, *store).ok());
  const std::string victim = ev[5].user;
  ASSERT_TRUE(live.ForgetUser(victim));
  ASSERT_TRUE(Flush(live, *store).ok());

  auto snap = TakeSnapshot(*store);
  ASSERT_TRUE(snap.ok());
  uint32_t victim_index = UINT32_MAX;
  for (const auto& [idx, id] : snap->user_ids) {
    EXPECT_NE(id, victim);
    if (id.empty()) victim_index = idx;
  }
  ASSERT_NE(victim_index, UINT32_MAX) << "the forgotten index keeps a tombstone";
  EXPECT_EQ(snap->users.count(victim_index), 0u) << "row (embedding, history, sketch) deleted";

  engine::Engine restored(this->opts_);
  ASSERT_TRUE(store->LoadInto(restored).ok());
  EXPECT_FALSE(restored.GetUser(victim, false).ok());
  EXPECT_EQ(Fingerprint(restored), Fingerprint(live));
  // The same id coming back is a new user at a new index, in both engines alike.
  ApplyRange(live, ev, 1000, 1500);
  ApplyRange(restored, ev, 1000, 1500);
  EXPECT_EQ(Fingerprint(restored), Fingerprint(live));
}

// A row that decodes but names an item or user the dictionaries do not hold (a damaged or
// hand-edited store) is reported as storage_corrupt by the load, naming the row; loaded, the
// engine would index its arrays out of bounds at the next event or query.
TYPED_TEST(StateStoreContract, ARowReferringToAnIndexWithoutAnIdIsReportedNotLoaded) {
  auto base = [] {
    engine::ChangeSet cs;
    cs.dim = 8;
    for (uint32_t i = 0; i < 3; ++i) {
      engine::ItemState it;
      it.v.assign(8, 0.1f);
      cs.items.emplace_back(i, it);
      cs.new_item_ids.emplace_back(i, "item-" + std::to_string(i));
    }
    engine::UserState u;
    u.p.assign(8, 0.5f);
    u.h.assign(8, 0.0f);
    u.sketch.assign(16, 1u);
    u.seen = {0, 2};
    u.recent_items = {2, 0};
    u.recent_weights = {1.0f, 1.0f};
    cs.users.emplace_back(0, u);
    cs.new_user_ids.emplace_back(0, "user-0");
    cs.edges = {{0, 2, 1.0f}, {2, 0, 1.0f}};
    return cs;
  };
  struct Case {
    const char* what;
    std::function<void(engine::ChangeSet&)> damage;
    const char* message;
  };
  const Case cases[] = {
      {"none", [](engine::ChangeSet&) {}, ""},
      {"seen", [](engine::ChangeSet& cs) { cs.users[0].second.seen.push_back(7); },
       "seen item of user row 0 refers to index 7, beyond the 3"},
      {"recent", [](engine::ChangeSet& cs) { cs.users[0].second.recent_items[1] = 3; },
       "recent item of user row 0 refers to index 3"},
      {"edge",
       [](engine::ChangeSet& cs) {
         cs.edges.push_back({2, 9, 1.0f});
       },
       "co-occurrence entry of row 2 refers to index 9"},
      {"item row", [](engine::ChangeSet& cs) { cs.items.emplace_back(5, cs.items[0].second); },
       "item row 5 refers to index 5"},
      {"user row", [](engine::ChangeSet& cs) { cs.users.emplace_back(4, cs.users[0].second); },
       "user row 4 refers to index 4, beyond the 1"},
      {"co-occurrence row",
       [](engine::ChangeSet& cs) {
         cs.edges.push_back({7, 1, 1.0f});
       },
       "co-occurrence row 7 refers to index 7, beyond the 3 of the item rows"},
      {"recent positive",
       [](engine::ChangeSet& cs) {
         cs.global.recent_positives = {1, 8};
       },
       "a recent positive of the global state refers to index 8"},
      // An id without its row: the model holds items up to the highest row only.
      {"item without a row",
       [](engine::ChangeSet& cs) {
         cs.new_item_ids.emplace_back(3, "item-3");
         cs.users[0].second.seen.push_back(3);
       },
       "seen item of user row 0 refers to index 3, beyond the 3 of the item rows"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    TypeParam backend;  // a new store for each case
    auto store = backend.Open(this->opts_);
    ASSERT_TRUE(store);
    engine::ChangeSet cs = base();
    c.damage(cs);
    ASSERT_TRUE(store->Write(cs).ok());
    engine::Engine e(this->opts_);
    const Status st = store->LoadInto(e);
    if (std::string(c.message).empty()) {
      EXPECT_TRUE(st.ok()) << st.error().message;
      EXPECT_TRUE(e.GetUser("user-0", false).ok());
    } else {
      ASSERT_FALSE(st.ok());
      EXPECT_EQ(st.error().code, "storage_corrupt");
      EXPECT_NE(st.error().message.find(c.message), std::string::npos) << st.error().message;
    }
  }
}

TYPED_TEST(StateStoreContract, RewrittenRowReplacesTheWholeRowAndZeroWeightDeletes) {
  auto store = this->backend_.Open(this->opts_);
  ASSERT_TRUE(store);
  engine::ChangeSet a;
  a.dim = 8;
  a.edges = {{1, 2, 1.0f}, {1, 3, 2.0f}, {1, 9, 5.0f}, {2, 1, 1.0f}, {4, 1, 3.0f}};
  ASSERT_TRUE(store->Write(a).ok());
  engine::ChangeSet b;
  b.dim = 8;
  b.rewritten_rows = {1};
  b.edges = {{1, 3, 2.5f}, {1, 7, 1.0f}, {4, 1, 0.0f}};  // row 1 whole; (4,1) deleted
  ASSERT_TRUE(store->Write(b).ok());
  auto snap = TakeSnapshot(*store);
  ASSERT_TRUE(snap.ok());
  const std::map<std::pair<uint32_t, uint32_t>, float> want{
      {{1, 3}, 2.5f}, {{1, 7}, 1.0f}, {{2, 1}, 1.0f}};
  EXPECT_EQ(snap->edges, want);
}

using EdgeMap = std::map<std::pair<uint32_t, uint32_t>, float>;

// Co-occurrence rows are written one key per row (RocksDB: Put of a rewritten row, Merge of a
// patch). Whatever the backend does underneath, the visible graph follows one rule: a
// rewritten row starts empty, then every entry applies in order, w == 0 deleting b.
TYPED_TEST(StateStoreContract, EdgeRowPatchesCombineLaterWinsAndRewrittenRowsSupersedeThem) {
  auto store = this->backend_.Open(this->opts_);
  ASSERT_TRUE(store);
  auto write = [&](std::vector<uint32_t> rewritten, std::vector<engine::EdgeState> edges) {
    engine::ChangeSet cs;
    cs.dim = 8;
    cs.rewritten_rows = std::move(rewritten);
    cs.edges = std::move(edges);
    ASSERT_TRUE(store->Write(cs).ok());
  };
  auto edges = [&] {
    auto snap = TakeSnapshot(*store);
    EXPECT_TRUE(snap.ok());
    return snap.ok() ? snap->edges : EdgeMap{};
  };
  write({}, {{1, 2, 1.0f}, {1, 3, 2.0f}, {2, 5, 1.0f}});
  // A later patch wins per b; a zero weight deletes; untouched entries stay.
  write({}, {{1, 2, 0.0f}, {1, 3, 4.0f}, {1, 8, 1.0f}});
  EXPECT_EQ(edges(), (EdgeMap{{{1, 3}, 4.0f}, {{1, 8}, 1.0f}, {{2, 5}, 1.0f}}));
  // Within one batch too: (1, 9) twice (two runs of row 1), the later one wins; deleting an
  // absent b is nothing.
  write({}, {{1, 8, 0.0f}, {1, 9, 2.0f}, {1, 9, 3.0f}, {1, 11, 0.0f}});
  EXPECT_EQ(edges(), (EdgeMap{{{1, 3}, 4.0f}, {{1, 9}, 3.0f}, {{2, 5}, 1.0f}}));
  // A rewritten row replaces every older patch; a patch after it applies on top.
  write({2}, {{2, 6, 1.0f}, {2, 7, 0.0f}});
  write({}, {{2, 7, 5.0f}});
  EXPECT_EQ(edges(), (EdgeMap{{{1, 3}, 4.0f}, {{1, 9}, 3.0f}, {{2, 6}, 1.0f}, {{2, 7}, 5.0f}}));
  // Rewritten to nothing (no entries, or only zeros): the row is gone; a rewritten row's
  // entries in a second run of the same batch still count; patches deleting every entry leave
  // no row behind.
  write({2, 4}, {{4, 1, 0.0f}, {1, 3, 0.0f}, {1, 9, 0.0f}});
  EXPECT_EQ(edges(), EdgeMap{});
  write({5}, {{5, 1, 1.0f}, {6, 2, 2.0f}, {5, 0, 3.0f}, {5, 1, 4.0f}});
  const EdgeMap want{{{5, 0}, 3.0f}, {{5, 1}, 4.0f}, {{6, 2}, 2.0f}};
  EXPECT_EQ(edges(), want);
  if constexpr (TypeParam::kDurable) {
    ASSERT_TRUE(store->PurgeDeleted().ok());  // compaction merges the patches for good
    EXPECT_EQ(edges(), want);
    store.reset();
    store = this->backend_.Open(this->opts_);
    ASSERT_TRUE(store);
    EXPECT_EQ(edges(), want) << "after reopening";
  }
}

// The graph a store reloads is exactly the live engine's, pruned rows (rewritten whole)
// included, whatever the flush points.
TYPED_TEST(StateStoreContract, ReloadedGraphIsExactlyTheLiveGraph) {
  auto store = this->backend_.Open(this->opts_);
  ASSERT_TRUE(store);
  engine::OnlineModel live(this->opts_.model);
  live.SetChangeTracking(true);
  // Item 0 in every user's history, 2600 other items: row 0 outgrows the 2000 kept neighbours
  // and is pruned (rewritten) again and again.
  std::mt19937 rng(7);
  size_t rewrites = 0;
  uint64_t key = 0;
  auto flush = [&] {
    engine::ChangeSet cs;
    live.TakeChanges(cs);
    live.FinishTakeChanges(cs);  // as Engine::TakeChanges does
    rewrites += cs.rewritten_rows.size();
    ASSERT_TRUE(store->Write(cs).ok());
  };
  for (uint32_t u = 0; u < 700; ++u) {
    for (int k = 0; k < 12; ++k) {
      const uint32_t item = k == 3 ? 0 : 1 + static_cast<uint32_t>(rng() % 2600);
      live.Observe({u, item, rng() % 7 == 0 ? -1.0f : 1.0f, int64_t{1000} * (u * 12 + k), ++key});
    }
    if (rng() % 17 == 0) flush();
  }
  flush();
  EXPECT_GT(rewrites, 0u) << "pruning was exercised";
  if constexpr (TypeParam::kDurable) {
    store.reset();
    store = this->backend_.Open(this->opts_);
    ASSERT_TRUE(store);
  }
  auto snap = TakeSnapshot(*store);
  ASSERT_TRUE(snap.ok());
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> want, got;
  std::vector<engine::EdgeState> row;
  for (uint32_t a = 0; a < live.items(); ++a) {
    row.clear();
    live.ExportRow(a, row);
    for (const auto& e : row) want[{e.a, e.b}] = std::bit_cast<uint32_t>(e.w);
  }
  for (const auto& [ab, w] : snap->edges) got[ab] = std::bit_cast<uint32_t>(w);
  EXPECT_GT(want.size(), 10000u);
  EXPECT_TRUE(got == want) << got.size() << " stored vs " << want.size() << " live edges";
}

TYPED_TEST(StateStoreContract, DictionaryEntriesApplyInOrderAndTombstonesKeepTheIndex) {
  auto store = this->backend_.Open(this->opts_);
  ASSERT_TRUE(store);
  engine::ChangeSet cs;
  cs.dim = 8;
  cs.new_user_ids = {{0, "alice"}, {1, "bob"}, {1, ""}};  // bob added then forgotten
  cs.new_item_ids = {{0, "book"}};
  ASSERT_TRUE(store->Write(cs).ok());
  auto snap = TakeSnapshot(*store);
  ASSERT_TRUE(snap.ok());
  const std::map<uint32_t, std::string> users{{0, "alice"}, {1, ""}};
  const std::map<uint32_t, std::string> items{{0, "book"}};
  EXPECT_EQ(snap->user_ids, users);
  EXPECT_EQ(snap->item_ids, items);
}

TYPED_TEST(StateStoreContract, WritingTheSameChangesTwiceIsIdempotent) {
  auto once = this->backend_.Open(this->opts_);
  ASSERT_TRUE(once);
  auto twice = NewInMemoryStore(this->opts_.model, "events");
  const auto ev = Stream(800, 5);
  engine::Engine live(this->opts_);
  live.SetChangeTracking(true);
  ApplyRange(live, ev, 0, 800);
  engine::ChangeSet cs;
  live.TakeChanges(cs);
  ASSERT_TRUE(twice->Write(cs).ok());
  ASSERT_TRUE(once->Write(cs).ok());
  ASSERT_TRUE(once->Write(cs).ok());
  auto a = TakeSnapshot(*once);
  auto b = TakeSnapshot(*twice);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(DiffSnapshots(a.value(), b.value()), "");
}

TYPED_TEST(StateStoreContract, DimensionOfChangesMustMatch) {
  auto store = this->backend_.Open(this->opts_);
  ASSERT_TRUE(store);
  engine::ChangeSet cs;
  cs.dim = 16;
  const Status st = store->Write(cs);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, "schema_mismatch");
  config::Options other = this->opts_;
  other.model.dim = 16;
  engine::Engine e(other);
  const Status load = store->LoadInto(e);
  ASSERT_FALSE(load.ok());
  EXPECT_EQ(load.error().code, "schema_mismatch");
}

// ---- differential: the two backends hold the same state after the same writes ------------

TEST(StateStoreBackends, AgreeOnARandomHistoryWithForgets) {
  RocksBackend rocks;
  const config::Options o = SmallOptions();
  auto disk = rocks.Open(o);
  ASSERT_TRUE(disk);
  auto mem = NewInMemoryStore(o.model, "events");
  const auto ev = Stream(5000, 21);
  engine::Engine live(o);
  live.SetChangeTracking(true);
  std::mt19937 rng(4);
  size_t pos = 0;
  while (pos < ev.size()) {
    const size_t n = std::min<size_t>(ev.size() - pos, 1 + rng() % 900);
    ApplyRange(live, ev, pos, pos + n);
    pos += n;
    if (rng() % 3 == 0) (void)live.ForgetUser(ev[rng() % pos].user);
    engine::ChangeSet cs;
    live.TakeChanges(cs);
    ASSERT_TRUE(disk->Write(cs).ok());
    ASSERT_TRUE(mem->Write(cs).ok());
  }
  auto a = TakeSnapshot(*disk);
  auto b = TakeSnapshot(*mem);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(DiffSnapshots(a.value(), b.value()), "");
  EXPECT_EQ(a->events_applied, ev.size());
}

// ---- codec -------------------------------------------------------------------------------

TEST(Codec, RoundTripsAndRejectsDamagedValues) {
  engine::UserState u;
  u.p = {1.5f, -0.0f, 3.0f};
  u.h = {0.25f, 2.0f, -1.0f};
  u.z = 0.75f;
  u.grad_sq = 9.0f;
  u.seen = {1, 5, 9};
  u.recent_items = {9, 1};
  u.recent_weights = {1.0f, -1.0f};
  u.events = 3;
  u.last_ts = -42;
  u.sketch = {7, 8, 9, 10};
  u.sketch_empty = false;
  std::string enc;
  EncodeUser(u, &enc);
  // version + dim + 2*3 floats + z + grad + events + ts + (1+3) + (1+2) + 2 + flag + (1+4)
  EXPECT_EQ(enc.size(), 1u + 4 + 24 + 4 + 4 + 8 + 8 + 16 + 12 + 8 + 1 + 20);
  EXPECT_EQ(static_cast<uint8_t>(enc[0]), kCodecVersion);
  engine::UserState back;
  ASSERT_TRUE(DecodeUser(enc, 3, &back));
  std::string again;
  EncodeUser(back, &again);
  EXPECT_EQ(again, enc);
  EXPECT_EQ(back.last_ts, -42);
  EXPECT_EQ(back.seen, u.seen);
  EXPECT_FALSE(DecodeUser(enc, 4, &back)) << "wrong dimension";
  for (size_t cut = 0; cut < enc.size(); ++cut)
    EXPECT_FALSE(DecodeUser(std::string_view(enc).substr(0, cut), 3, &back)) << cut;
  EXPECT_FALSE(DecodeUser(enc + "x", 3, &back)) << "trailing bytes";
  std::string bad = enc;
  bad[0] = 99;
  EXPECT_FALSE(DecodeUser(bad, 3, &back)) << "unknown version";

  // Keys: big-endian, so byte order is numeric order.
  EXPECT_EQ(IndexKey(258), std::string("\0\0\1\2", 4));
  EXPECT_LT(IndexKey(1), IndexKey(256));
  EXPECT_LT(OffsetKey("t", -1), OffsetKey("t", 0));
  int32_t p = 0;
  ASSERT_TRUE(DecodeOffsetKey(OffsetKey("t", -7), OffsetKeyPrefix("t"), &p));
  EXPECT_EQ(p, -7);
}

// An item row as the release before schema 3 wrote it (version 1): its counters as f32.
std::string EncodeItemVersion1(const engine::ItemState& s) {
  std::string out;
  const auto put = [&out](const auto& v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
  };
  static_assert(std::endian::native == std::endian::little);
  put(uint8_t{1});
  put(static_cast<uint32_t>(s.v.size()));
  for (float x : s.v) put(x);
  put(s.bias);
  put(s.grad_sq);
  put(static_cast<float>(s.count));
  put(s.pop);
  put(static_cast<float>(s.graph_count));
  return out;
}

// Item rows hold their counters as f64 (a float stops counting at 2^24), and rows of the
// previous version (f32 counters) are still read.
TEST(Codec, ItemCountersAreF64AndVersion1RowsAreStillRead) {
  engine::ItemState it;
  it.v = {1.5f, -2.0f, 0.25f};
  it.bias = 0.5f;
  it.grad_sq = 4.0f;
  it.count = 16777217.0;  // 2^24 + 1: not a float
  it.pop = 3.25;
  it.graph_count = 8388608.5;  // 2^23 + 0.5: not a float
  std::string enc;
  EncodeItem(it, &enc);
  // version + dim + 3 floats + bias + grad + count (f64) + pop + graph_count (f64)
  EXPECT_EQ(enc.size(), 1u + 4 + 12 + 4 + 4 + 8 + 8 + 8);
  EXPECT_EQ(static_cast<uint8_t>(enc[0]), kItemRowVersion);
  engine::ItemState back;
  ASSERT_TRUE(DecodeItem(enc, 3, &back));
  EXPECT_EQ(back.v, it.v);
  EXPECT_EQ(back.count, 16777217.0);
  EXPECT_EQ(back.graph_count, 8388608.5);
  EXPECT_EQ(back.pop, 3.25);
  EXPECT_FALSE(DecodeItem(enc, 4, &back)) << "wrong dimension";
  for (size_t cut = 0; cut < enc.size(); ++cut)
    EXPECT_FALSE(DecodeItem(std::string_view(enc).substr(0, cut), 3, &back)) << cut;
  EXPECT_FALSE(DecodeItem(enc + "x", 3, &back)) << "trailing bytes";
  std::string bad = enc;
  bad[0] = 99;
  EXPECT_FALSE(DecodeItem(bad, 3, &back)) << "unknown version";

  it.count = 12.0;
  it.graph_count = 7.5;
  const std::string v1 = EncodeItemVersion1(it);
  engine::ItemState old;
  ASSERT_TRUE(DecodeItem(v1, 3, &old));
  EXPECT_EQ(old.v, it.v);
  EXPECT_EQ(old.bias, 0.5f);
  EXPECT_EQ(old.grad_sq, 4.0f);
  EXPECT_EQ(old.count, 12.0);
  EXPECT_EQ(old.pop, 3.25);
  EXPECT_EQ(old.graph_count, 7.5);
  for (size_t cut = 0; cut < v1.size(); ++cut)
    EXPECT_FALSE(DecodeItem(std::string_view(v1).substr(0, cut), 3, &old)) << cut;
  EXPECT_FALSE(DecodeItem(v1 + "x", 3, &old)) << "trailing bytes";
}

// Co-occurrence row values: patches merge later-wins per b; a partial merge keeps zero weights
// (an older base may hold b), a full merge drops them; merging is associative.
TEST(Codec, EdgeRowsMergeLaterWinsAssociativelyAndRejectDamage) {
  auto enc = [](std::vector<engine::EdgeState> entries, bool drop_zeros = false) {
    std::string out;
    EncodeEdgeRow(entries, drop_zeros, &out);
    return out;
  };
  const std::string base = enc({{7, 1, 1.0f}, {7, 4, 2.0f}, {7, 9, 3.0f}});
  EXPECT_EQ(base.size(), 1u + 3 * 8);
  std::vector<engine::EdgeState> back;
  ASSERT_TRUE(DecodeEdgeRow(base, 7, &back));
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[1].a, 7u);
  EXPECT_EQ(back[1].b, 4u);
  EXPECT_EQ(back[1].w, 2.0f);
  EXPECT_EQ(enc({{7, 1, 0.0f}, {7, 2, 1.0f}}, true), enc({{7, 2, 1.0f}}));

  const std::string p1 = enc({{7, 1, 0.0f}, {7, 5, 1.0f}});
  const std::string p2 = enc({{7, 4, 6.0f}, {7, 5, 0.0f}, {7, 12, 2.0f}});
  const std::string p3 = enc({{7, 5, 8.0f}, {7, 9, 0.0f}});
  const std::string_view bv = base;
  std::string full, left, right, merged;
  const std::vector<std::string_view> all{p1, p2, p3};
  ASSERT_TRUE(MergeEdgeRows(&bv, all, true, &full));
  EXPECT_EQ(full, enc({{7, 4, 6.0f}, {7, 5, 8.0f}, {7, 12, 2.0f}}));
  // (p1 p2) p3 and p1 (p2 p3), partially merged first, give the same row.
  const std::vector<std::string_view> first{p1, p2}, last{p2, p3};
  ASSERT_TRUE(MergeEdgeRows(nullptr, first, false, &left));
  EXPECT_EQ(left, enc({{7, 1, 0.0f}, {7, 4, 6.0f}, {7, 5, 0.0f}, {7, 12, 2.0f}}))
      << "a partial merge keeps the deletions";
  ASSERT_TRUE(MergeEdgeRows(nullptr, last, false, &right));
  const std::vector<std::string_view> l3{left, p3}, p1r{p1, right};
  ASSERT_TRUE(MergeEdgeRows(&bv, l3, true, &merged));
  EXPECT_EQ(merged, full);
  ASSERT_TRUE(MergeEdgeRows(&bv, p1r, true, &merged));
  EXPECT_EQ(merged, full);
  // No base: the patches alone, zeros dropped.
  ASSERT_TRUE(MergeEdgeRows(nullptr, all, true, &merged));
  EXPECT_EQ(merged, full);

  // Damage: cut entries, unknown version, b out of order.
  for (size_t cut = 0; cut < base.size(); ++cut) {
    if (cut % 8 == 1) continue;  // whole entries: a valid shorter row (1: the empty row)
    EXPECT_FALSE(DecodeEdgeRow(std::string_view(base).substr(0, cut), 7, &back)) << cut;
  }
  std::string bad = base;
  bad[0] = 99;
  EXPECT_FALSE(DecodeEdgeRow(bad, 7, &back));
  const std::vector<std::string_view> with_bad{p1, bad};
  EXPECT_FALSE(MergeEdgeRows(nullptr, with_bad, true, &merged));
  const std::string unordered = enc({{7, 4, 1.0f}, {7, 2, 1.0f}});
  EXPECT_FALSE(DecodeEdgeRow(unordered, 7, &back));
  const std::vector<std::string_view> with_unordered{unordered};
  EXPECT_FALSE(MergeEdgeRows(&bv, with_unordered, true, &merged));
}

// ---- export ------------------------------------------------------------------------------

TEST(Export, NpyHeaderIsNumpyV1AndPadded) {
  const std::string h = NpyHeader(3, 2);
  ASSERT_EQ(h.size() % 64, 0u);
  EXPECT_EQ(h.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t len = static_cast<unsigned char>(h[8]) | static_cast<unsigned char>(h[9]) << 8;
  EXPECT_EQ(len, h.size() - 10);
  EXPECT_EQ(h.substr(10, 59), "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }");
  EXPECT_EQ(h.back(), '\n');
}

TEST(Export, NpyAndJsonlHoldEveryEmbeddingBitForBit) {
  const config::Options o = SmallOptions();
  engine::Engine e(o);
  ApplyRange(e, Stream(800, 2), 0, 800);
  std::map<std::string, std::vector<float>> want;
  e.ForEachEmbedding([&](char kind, const std::string& id, std::span<const float> v) {
    want[std::string(1, kind) + id].assign(v.begin(), v.end());
  });
  const fs::path dir = UniqueTempDir("export");
  fs::create_directories(dir);
  auto counts = ExportNpy(e, (dir / "x").string());
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->users + counts->items, want.size());
  for (const char* kind : {"users", "items"}) {
    std::ifstream npy(dir / (std::string("x.") + kind + ".npy"), std::ios::binary);
    std::ifstream ids(dir / (std::string("x.") + kind + ".ids.txt"));
    const std::string bytes((std::istreambuf_iterator<char>(npy)),
                            std::istreambuf_iterator<char>());
    std::vector<std::string> names;
    for (std::string line; std::getline(ids, line);) names.push_back(line);
    const std::string header = NpyHeader(names.size(), 8);
    ASSERT_EQ(bytes.substr(0, header.size()), header) << kind;
    ASSERT_EQ(bytes.size(), header.size() + names.size() * 8 * 4) << kind;
    for (size_t r = 0; r < names.size(); ++r) {
      std::vector<float> row(8);
      std::memcpy(row.data(), bytes.data() + header.size() + r * 32, 32);
      EXPECT_EQ(row, want.at(std::string(1, kind[0]) + names[r])) << names[r];
    }
  }
  ASSERT_TRUE(ExportJsonl(e, (dir / "x.jsonl").string()).ok());
  std::ifstream in(dir / "x.jsonl");
  size_t lines = 0;
  for (std::string line; std::getline(in, line); ++lines) {
    const auto j = nlohmann::json::parse(line);
    const std::string key = (j["kind"] == "user" ? "u" : "i") + j["id"].get<std::string>();
    std::vector<float> v;
    for (const auto& x : j["embedding"]) v.push_back(static_cast<float>(x.get<double>()));
    EXPECT_EQ(v, want.at(key)) << "shortest round-trip floats parse back to the same bits";
  }
  EXPECT_EQ(lines, want.size());
  fs::remove_all(dir);
}

// ---- RocksDB only --------------------------------------------------------------------------

class RocksDbStoreTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const auto& d : dirs_) fs::remove_all(d);
  }
  fs::path Dir(const std::string& tag) {
    dirs_.push_back(UniqueTempDir(tag));
    return dirs_.back();
  }
  static Result<std::unique_ptr<StateStore>> OpenAt(const fs::path& dir, const config::Options& o) {
    config::StorageOptions s = o.storage;
    s.path = dir.string();
    return OpenRocksDbStore(s, o.model, "events");
  }
  static void Fill(StateStore& store, const config::Options& o, size_t n,
                   const std::string& extra_user = "") {
    engine::Engine e(o);
    ASSERT_TRUE(store.LoadInto(e).ok());
    e.SetChangeTracking(true);
    auto ev = Stream(n, 9);
    if (!extra_user.empty()) ev.push_back({extra_user, ev[0].item, "click", 1.0, ev.back().ts_ms});
    ApplyRange(e, ev, 0, ev.size());
    ASSERT_TRUE(Flush(e, store).ok());
  }
  // A new store at `dir` filled with `n` events and closed; `snapshot` gets its content.
  static void FillAndClose(const fs::path& dir, const config::Options& o, size_t n,
                           Snapshot& snapshot) {
    auto store = OpenAt(dir, o);
    ASSERT_TRUE(store.ok()) << store.error().message;
    Fill(*store.value(), o, n);
    auto s = TakeSnapshot(*store.value());
    ASSERT_TRUE(s.ok());
    snapshot = std::move(s.value());
  }
  // Fill with `victim` among other users, then forget `victim` and flush (no purge).
  static void FillThenForget(StateStore& store, const config::Options& o,
                             const std::string& victim) {
    Fill(store, o, 500, victim);
    engine::Engine e(o);
    ASSERT_TRUE(store.LoadInto(e).ok());
    e.SetChangeTracking(true);
    ASSERT_TRUE(e.ForgetUser(victim));
    ASSERT_TRUE(Flush(e, store).ok());
  }
  std::vector<fs::path> dirs_;
};

TEST_F(RocksDbStoreTest, ReopenAfterCloseGivesTheSameState) {
  const auto dir = Dir("reopen");
  const config::Options o = SmallOptions();
  Snapshot before;
  ASSERT_NO_FATAL_FAILURE(FillAndClose(dir, o, 2000, before));
  auto store = OpenAt(dir, o);
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto after = TakeSnapshot(*store.value());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(DiffSnapshots(before, after.value()), "");
  EXPECT_EQ(after->events_applied, 2000u);
  EXPECT_GT(store.value()->SizeBytes(), 0u);
}

TEST_F(RocksDbStoreTest, SecondOpenIsRefusedAsLocked) {
  const auto dir = Dir("lock");
  const config::Options o = SmallOptions();
  auto first = OpenAt(dir, o);
  ASSERT_TRUE(first.ok());
  auto second = OpenAt(dir, o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, "storage_locked");
  EXPECT_NE(second.error().message.find(dir.string()), std::string::npos);
  EXPECT_NE(second.error().message.find("storage.path"), std::string::npos) << "says what to do";

  // Another process (the real binary) is refused the same way.
  std::string output;
  const int rc =
      RunBinary(" checkpoint --data-dir " + dir.string() + " --to " + (dir / "cp").string() +
                    " --set model.dim=8 --set model.minhash_size=16",
                output);
  EXPECT_NE(rc, 0);
  EXPECT_NE(output.find("storage_locked"), std::string::npos) << output;
}

TEST_F(RocksDbStoreTest, SettingsMismatchIsRefusedNamingBothValues) {
  const auto dir = Dir("schema");
  config::Options o = SmallOptions();
  { ASSERT_TRUE(OpenAt(dir, o).ok()); }
  config::Options other = o;
  other.model.dim = 32;
  auto r = OpenAt(dir, other);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "schema_mismatch");
  EXPECT_NE(r.error().message.find("model.dim: stored 8, configured 32"), std::string::npos)
      << r.error().message;
  other = o;
  other.model.loss = "softmax";
  r = OpenAt(dir, other);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("model.loss"), std::string::npos) << r.error().message;
  // Settings that do not change the meaning of stored rows may change freely.
  other = o;
  other.model.learning_rate = 0.5;
  EXPECT_TRUE(OpenAt(dir, other).ok());
}

TEST_F(RocksDbStoreTest, PopularityHalfLifeIsCheckedAndTheRefusalSaysWhatToDo) {
  const auto dir = Dir("schema_pop");
  config::Options o = SmallOptions();
  {
    auto store = OpenAt(dir, o);
    ASSERT_TRUE(store.ok());
    Fill(*store.value(), o, 300);
  }
  config::Options other = o;
  other.model.popularity_half_life_events = 500;
  auto r = OpenAt(dir, other);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "schema_mismatch");
  const std::string& msg = r.error().message;
  EXPECT_NE(msg.find("model.popularity_half_life_events: stored 10000.0, configured 500.0"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("popularity"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--set model.popularity_half_life_events=10000.0"), std::string::npos)
      << "names the value to start with: " << msg;
  EXPECT_NE(msg.find("storage.path"), std::string::npos) << msg;
  // The stored value itself is accepted, and the state loads.
  auto again = OpenAt(dir, o);
  ASSERT_TRUE(again.ok()) << again.error().message;
  engine::Engine e(o);
  EXPECT_TRUE(again.value()->LoadInto(e).ok());
}

// Each of these changes what the learner does next, not what the stored rows mean: a store
// built with the defaults opens, loads and keeps learning under every one of them.
TEST_F(RocksDbStoreTest, SettingsThatDoNotShapeStoredRowsMayChange) {
  const auto dir = Dir("schema_free");
  const config::Options o = SmallOptions();
  {
    auto store = OpenAt(dir, o);
    ASSERT_TRUE(store.ok());
    Fill(*store.value(), o, 800);
  }
  std::vector<std::pair<std::string, std::function<void(config::ModelOptions&)>>> changes = {
      {"scorer", [](auto& m) { m.scorer = "embedding"; }},
      {"cooccurrence_window", [](auto& m) { m.cooccurrence_window = 3; }},
      {"neighbourhood_items", [](auto& m) { m.neighbourhood_items = 2; }},
      {"history_half_life_events", [](auto& m) { m.history_half_life_events = 3; }},
      {"neighbour_shrinkage", [](auto& m) { m.neighbour_shrinkage = 0; }},
      {"init_scale", [](auto& m) { m.init_scale = 0.5; }},
      {"negatives", [](auto& m) { m.negatives = 7; }},
      {"l2", [](auto& m) { m.l2 = 0.01; }},
  };
  const auto ev = Stream(200, 31);
  int64_t offset = 0;  // partition 1 is new to the store; every round applies fresh offsets
  for (const auto& [name, change] : changes) {
    config::Options other = o;
    change(other.model);
    auto store = OpenAt(dir, other);
    ASSERT_TRUE(store.ok()) << name << ": " << store.error().message;
    engine::Engine e(other);
    ASSERT_TRUE(store.value()->LoadInto(e).ok()) << name;
    e.SetChangeTracking(true);
    std::vector<engine::SourcedEvent> batch;
    for (const auto& x : ev) {
      batch.push_back({x, 1, offset++});
      batch.back().event.user += "-" + name;  // new users too
    }
    EXPECT_EQ(e.Apply(batch).applied, ev.size()) << name;
    EXPECT_TRUE(Flush(e, *store.value()).ok()) << name;
  }
}

// Opens the store's RocksDB directly, without simstream, and hands `edit` the database and its
// column families by name (simulates a store written by an older release).
using RawColumnFamilies = std::map<std::string, rocksdb::ColumnFamilyHandle*>;
void EditRawStore(const fs::path& dir,
                  const std::function<void(rocksdb::DB&, const RawColumnFamilies&)>& edit) {
  rocksdb::Options opts;
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(opts, dir.string(), &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const auto& n : names) {
    cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    // Without it, recovering the WAL stops at the first co-occurrence patch: the rows after it
    // (the dictionaries among them) would be missing here and lost at the next open.
    if (n == "edges") cfs.back().options.merge_operator = EdgeRowMergeOperator();
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(opts, dir.string(), cfs, &handles, &db).ok());
  RawColumnFamilies by_name;
  for (size_t i = 0; i < names.size(); ++i) by_name[names[i]] = handles[i];
  edit(*db, by_name);
  for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  ASSERT_TRUE(db->Close().ok());
  delete db;
}

// Rewrites the stored settings record directly.
void EditStoredSettings(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  EditRawStore(dir, [&](rocksdb::DB& db, const RawColumnFamilies& cf) {
    ASSERT_EQ(cf.count("meta"), 1u);
    std::string value;
    ASSERT_TRUE(db.Get(rocksdb::ReadOptions(), cf.at("meta"), "settings", &value).ok());
    nlohmann::json j = nlohmann::json::parse(value);
    edit(j);
    ASSERT_TRUE(db.Put(rocksdb::WriteOptions(), cf.at("meta"), "settings", j.dump()).ok());
  });
}

// A store the previous release wrote (schema 2, item rows with f32 counters) opens with the same
// state, and is recorded as schema 3 with the first f64 item rows written: that release would
// not read them, so it must refuse the store rather than call it damaged. Opened only, the
// store stays schema 2 (that release can still take it back).
TEST_F(RocksDbStoreTest, ASchema2StoreIsReadAsItIsAndRecordedAsSchema3WithItsFirstNewRows) {
  const auto dir = Dir("schema_2");
  const config::Options o = SmallOptions();
  Snapshot before;
  ASSERT_NO_FATAL_FAILURE(FillAndClose(dir, o, 2000, before));
  size_t rewritten = 0;
  EditRawStore(dir, [&](rocksdb::DB& db, const RawColumnFamilies& cf) {
    ASSERT_EQ(cf.count("items"), 1u);
    std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions(), cf.at("items")));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      engine::ItemState item;
      ASSERT_TRUE(DecodeItem(it->value().ToStringView(), o.model.dim, &item));
      ASSERT_TRUE(
          db.Put(rocksdb::WriteOptions(), cf.at("items"), it->key(), EncodeItemVersion1(item))
              .ok());
      ++rewritten;
    }
  });
  ASSERT_GT(rewritten, 0u);
  EditStoredSettings(dir, [](nlohmann::json& j) { j["schema_version"] = 2; });

  {
    auto store = OpenAt(dir, o);
    ASSERT_TRUE(store.ok()) << store.error().message;
    auto after = TakeSnapshot(*store.value());
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(DiffSnapshots(before, after.value()), "");
  }
  EditStoredSettings(dir, [](nlohmann::json& j) { EXPECT_EQ(j["schema_version"], 2) << j; });
  {
    auto store = OpenAt(dir, o);
    ASSERT_TRUE(store.ok()) << store.error().message;
    engine::Engine e(o);
    ASSERT_TRUE(store.value()->LoadInto(e).ok());
    e.SetChangeTracking(true);
    ApplyRange(e, Stream(300, 77), 0, 300, /*partition=*/1);  // new events: item rows change
    ASSERT_TRUE(Flush(e, *store.value()).ok());
  }
  EditStoredSettings(dir, [](nlohmann::json& j) { EXPECT_EQ(j["schema_version"], 3) << j; });
  auto again = OpenAt(dir, o);
  ASSERT_TRUE(again.ok()) << again.error().message;
  auto last = TakeSnapshot(*again.value());
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->events_applied, 2300u);
}

TEST_F(RocksDbStoreTest, StoreRecordedBeforeAKeyWasCheckedAdoptsTheConfiguredValueOnce) {
  const auto dir = Dir("schema_old");
  const config::Options o = SmallOptions();
  { ASSERT_TRUE(OpenAt(dir, o).ok()); }
  EditStoredSettings(dir, [](nlohmann::json& j) { j.erase("popularity_half_life_events"); });
  config::Options other = o;
  other.model.popularity_half_life_events = 2500;
  { ASSERT_TRUE(OpenAt(dir, other).ok()) << "an older store cannot be checked: it adopts"; }
  auto r = OpenAt(dir, o);  // ... and from then on the adopted value is checked
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("stored 2500.0, configured 10000.0"), std::string::npos)
      << r.error().message;
  // A key recorded from the start is never adopted: its absence is a mismatch.
  EditStoredSettings(dir, [](nlohmann::json& j) { j.erase("seed"); });
  r = OpenAt(dir, other);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("model.seed: stored (absent)"), std::string::npos)
      << r.error().message;
}

TEST_F(RocksDbStoreTest, StoreOfAnotherLayoutIsRefusedSayingWhatToDo) {
  const auto dir = Dir("schema_layout");
  const config::Options o = SmallOptions();
  { ASSERT_TRUE(OpenAt(dir, o).ok()); }
  EditStoredSettings(dir, [](nlohmann::json& j) { j["schema_version"] = 1; });
  auto r = OpenAt(dir, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "schema_mismatch");
  const std::string& m = r.error().message;
  EXPECT_NE(m.find("schema_version: stored 1, configured " + std::to_string(kSchemaVersion)),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("new directory"), std::string::npos) << m;
  EXPECT_EQ(m.find("--set"), std::string::npos) << "no setting can fix a layout: " << m;
}

TEST(ModelImport, ShorterHistorySettingsCutStoredRecentItems) {
  config::ModelOptions m = SmallOptions().model;
  m.cooccurrence_window = 3;
  m.neighbourhood_items = 2;
  engine::OnlineModel model(m);
  engine::UserState s;
  s.p.assign(8, 0.1f);
  s.h.assign(8, 0.0f);
  for (uint32_t i = 0; i < 10; ++i) {
    s.recent_items.push_back(9 - i);
    s.recent_weights.push_back(static_cast<float>(i + 1));
    s.seen.push_back(i);
  }
  s.sketch.assign(16, 7u);
  s.sketch_empty = false;
  s.events = 10;
  model.ImportUser(0, s);
  const engine::UserState out = model.ExportUser(0);
  EXPECT_EQ(out.recent_items, (std::vector<uint32_t>{9, 8, 7})) << "the most recent three";
  EXPECT_EQ(out.recent_weights, (std::vector<float>{1.0f, 2.0f, 3.0f}));
  EXPECT_EQ(out.seen, s.seen) << "seen items are not history: all kept";
}

// Damages a copy of a closed store; opening or loading it must fail with a clear error.
TEST_F(RocksDbStoreTest, CorruptionIsReportedNotCrashedOn) {
  const auto dir = Dir("corrupt");
  const config::Options o = SmallOptions();
  {
    auto store = OpenAt(dir, o);
    ASSERT_TRUE(store.ok());
    Fill(*store.value(), o, 3000);
    ASSERT_TRUE(store.value()->PurgeDeleted().ok());  // everything into SST files
  }
  auto damaged_copy = [&](const std::string& tag, const std::string& ext, bool truncate) {
    const auto copy = Dir(tag);
    fs::copy(dir, copy, fs::copy_options::recursive);
    bool touched = false;
    for (const auto& f : fs::directory_iterator(copy)) {
      const std::string name = f.path().filename().string();
      if (name.find(ext) == std::string::npos) continue;
      const auto size = fs::file_size(f.path());
      if (truncate) {
        fs::resize_file(f.path(), size / 2);
      } else {
        std::fstream io(f.path(), std::ios::in | std::ios::out | std::ios::binary);
        for (uintmax_t at = size / 8; at < size / 2; at += 97) {  // flip bytes in data blocks
          io.seekp(static_cast<std::streamoff>(at));
          io.put('\x5a');
        }
      }
      touched = true;
    }
    EXPECT_TRUE(touched) << "no " << ext << " file in " << copy;
    return copy;
  };
  for (const auto& [tag, ext, truncate] :
       {std::tuple<std::string, std::string, bool>{"sst_flip", ".sst", false},
        {"manifest_cut", "MANIFEST", true}}) {
    const auto copy = damaged_copy(tag, ext, truncate);
    auto r = OpenAt(copy, o);
    Error err;
    if (r.ok()) {
      engine::Engine e(o);
      const Status st = r.value()->LoadInto(e);
      ASSERT_FALSE(st.ok()) << tag << ": damage went unnoticed";
      err = st.error();
    } else {
      err = r.error();
    }
    EXPECT_TRUE(err.code == "storage_corrupt" || err.code == "storage_io")
        << tag << ": " << err.code;
    EXPECT_FALSE(err.message.empty());
    if (err.code == "storage_corrupt") {
      EXPECT_NE(err.message.find("checkpoint"), std::string::npos) << err.message;
      // Either way of recovering needs a new group, or the committed offsets skip events.
      EXPECT_NE(err.message.find("new kafka.group"), std::string::npos) << err.message;
    }
  }
}

TEST_F(RocksDbStoreTest, CheckpointIsAUsableCopy) {
  const auto dir = Dir("cp_src");
  const auto cp = Dir("cp_dst");
  const config::Options o = SmallOptions();
  auto store = OpenAt(dir, o);
  ASSERT_TRUE(store.ok());
  Fill(*store.value(), o, 1500);
  ASSERT_TRUE(store.value()->Checkpoint(cp.string()).ok());
  const Status again = store.value()->Checkpoint(cp.string());
  EXPECT_FALSE(again.ok()) << "an existing directory is never overwritten";
  auto copy = OpenAt(cp, o);
  ASSERT_TRUE(copy.ok()) << copy.error().message;
  auto a = TakeSnapshot(*store.value());
  auto b = TakeSnapshot(*copy.value());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(DiffSnapshots(a.value(), b.value()), "");
}

// The daemon's admin checkpoints live in <storage.path>/checkpoints as hard links to the
// store's SST files; /v1/stats reports SizeBytes as the store's bytes on disk, so they must
// not count (a directory walk counted each checkpoint as another copy of the store).
TEST_F(RocksDbStoreTest, CheckpointsInsideTheStoreDirectoryDoNotCountAsItsSize) {
  const auto dir = Dir("size");
  const config::Options o = SmallOptions();
  auto store = OpenAt(dir, o);
  ASSERT_TRUE(store.ok()) << store.error().message;
  Fill(*store.value(), o, 3000);
  // The first checkpoint flushes the memtables; after it the live files stay as they are.
  fs::create_directories(dir / "checkpoints");
  ASSERT_TRUE(store.value()->Checkpoint((dir / "checkpoints" / "a").string()).ok());
  const uint64_t before = store.value()->SizeBytes();
  uint64_t sst_on_disk = 0;
  for (const auto& f : fs::directory_iterator(dir)) {
    if (f.path().extension() == ".sst") sst_on_disk += f.file_size();
  }
  EXPECT_GT(sst_on_disk, 0u);
  EXPECT_GE(before, sst_on_disk) << "the live SST files are counted";
  ASSERT_TRUE(store.value()->Checkpoint((dir / "checkpoints" / "b").string()).ok());
  ASSERT_TRUE(store.value()->Checkpoint((dir / "checkpoints" / "c").string()).ok());
  EXPECT_EQ(store.value()->SizeBytes(), before) << "three checkpoints, the same store";
}

bool AnyFileContains(const fs::path& dir, const std::string& needle) {
  for (const auto& f : fs::recursive_directory_iterator(dir)) {
    if (!f.is_regular_file()) continue;
    std::ifstream in(f.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.find(needle) != std::string::npos) return true;
  }
  return false;
}

TEST_F(RocksDbStoreTest, ForgottenUserLeavesNoBytesOnDiskAfterPurge) {
  const auto dir = Dir("purge");
  const config::Options o = SmallOptions();
  const std::string victim = "forget-me-7f3a9c";
  auto store = OpenAt(dir, o);
  ASSERT_TRUE(store.ok());
  FillThenForget(*store.value(), o, victim);
  ASSERT_TRUE(AnyFileContains(dir, victim)) << "the scan must see the id before the purge";
  ASSERT_TRUE(store.value()->PurgeDeleted().ok());
  EXPECT_FALSE(AnyFileContains(dir, victim));
}

// A forget whose purge never ran (a DELETE through the daemon, or `simstream forget` stopped
// after its flush) is completed by `simstream forget` for the same user, which no longer
// exists: the purge still runs, and the command succeeds.
TEST_F(RocksDbStoreTest, TheForgetCommandPurgesAUserForgottenEarlierWithoutAPurge) {
  const auto dir = Dir("purge_later");
  const config::Options o = SmallOptions();
  const std::string victim = "forget-me-later-5b21e0";
  {
    auto store = OpenAt(dir, o);
    ASSERT_TRUE(store.ok());
    FillThenForget(*store.value(), o, victim);
  }
  ASSERT_TRUE(AnyFileContains(dir, victim)) << "without a purge the bytes stay";
  std::string output;
  const int rc = RunBinary(" forget --data-dir " + dir.string() + " --user " + victim +
                               " --set model.dim=8 --set model.minhash_size=16",
                           output);
  EXPECT_EQ(rc, 0) << output;
  EXPECT_NE(output.find("purged"), std::string::npos) << output;
  EXPECT_FALSE(AnyFileContains(dir, victim));
}

}  // namespace
}  // namespace simstream::storage
