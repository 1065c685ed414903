// The engine's similar-users / similar-items index (engine/live_ann.hpp) against the exact
// scan, while the learner keeps moving the embeddings.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "config/options.hpp"
#include "engine/engine.hpp"
#include "engine/generator.hpp"
#include "engine/similarity.hpp"
#include "engine/state.hpp"
#include "engine/topk.hpp"

namespace simstream::engine {
namespace {

std::vector<SourcedEvent> Stream(size_t users, size_t items, size_t events, uint64_t seed) {
  GeneratorOptions g;
  g.users = users;
  g.items = items;
  g.events = events;
  g.communities = 20;
  g.seed = seed;
  std::vector<SourcedEvent> out;
  int64_t offset = 0;
  (void)Generate(g, [&](const Event& e) { out.push_back({e, 0, offset++}); });
  return out;
}

// 20k events of 400 users on 300 items, uniformly at random: a model for LiveAnn on its own.
void ObserveRandom(OnlineModel& model, uint32_t seed) {
  std::mt19937 gen(seed);
  for (uint64_t n = 0; n < 20000; ++n) {
    model.Observe({static_cast<uint32_t>(gen() % 400), static_cast<uint32_t>(gen() % 300), 1.0f,
                   static_cast<int64_t>(n), n});
  }
}

config::Options WithIndex(const std::string& kind) {
  config::Options o;
  o.index.kind = kind;
  o.index.maintenance_interval_ms = 0;  // the test drives MaintainIndexes()
  return o;
}

void ApplyAll(Engine& e, const std::vector<SourcedEvent>& events, size_t from, size_t to) {
  for (size_t b = from; b < to; b += 500) {
    const size_t end = std::min(to, b + 500);
    e.Apply(std::span<const SourcedEvent>(events.data() + b, end - b));
  }
}

double MeanRecall(const Engine& approx, const Engine& exact, size_t users, bool items) {
  double sum = 0;
  size_t n = 0;
  for (size_t u = 0; u < users; u += 37) {
    const std::string id = (items ? "i" : "u") + std::to_string(u);
    auto a = items ? approx.SimilarItems(id, 10) : approx.SimilarUsers(id, 10, Metric::kCosine);
    auto x = items ? exact.SimilarItems(id, 10) : exact.SimilarUsers(id, 10, Metric::kCosine);
    if (!a.ok() || !x.ok()) continue;
    std::set<std::string> truth;
    for (const auto& s : x.value()) truth.insert(s.id);
    size_t hit = 0;
    for (const auto& s : a.value()) {
      EXPECT_NE(s.id, id);
      hit += truth.count(s.id);
    }
    EXPECT_EQ(a.value().size(), x.value().size());
    sum += truth.empty() ? 1.0 : static_cast<double>(hit) / static_cast<double>(truth.size());
    ++n;
  }
  EXPECT_GT(n, 20u);
  return sum / static_cast<double>(n);
}

TEST(LiveAnn, HnswFollowsTheLearnerAndMatchesExactSearch) {
  const auto events = Stream(5000, 2000, 100000, 11);
  Engine hnsw(WithIndex("hnsw"));
  Engine exact(WithIndex("exact"));
  ApplyAll(hnsw, events, 0, events.size() / 2);
  ApplyAll(exact, events, 0, events.size() / 2);
  EXPECT_EQ(hnsw.Stats().user_index.mode, "exact") << "no index before the first maintenance";
  hnsw.MaintainIndexes();  // builds both indexes from a snapshot
  EngineStats s = hnsw.Stats();
  EXPECT_EQ(s.user_index.mode, "hnsw");
  EXPECT_EQ(s.item_index.mode, "hnsw");
  EXPECT_EQ(s.user_index.builds, 1u);
  EXPECT_EQ(s.user_index.indexed, s.users);
  EXPECT_EQ(exact.Stats().user_index.mode, "exact");
  const double before = MeanRecall(hnsw, exact, 5000, false);
  EXPECT_GE(before, 0.95);

  // The second half moves most embeddings; the index follows through Sync after each batch.
  ApplyAll(hnsw, events, events.size() / 2, events.size());
  ApplyAll(exact, events, events.size() / 2, events.size());
  s = hnsw.Stats();
  EXPECT_GT(s.user_index.reinserts, 0u) << "drifted users were re-inserted";
  EXPECT_EQ(s.user_index.builds, 1u) << "no rebuild was needed";
  const double after_users = MeanRecall(hnsw, exact, 5000, false);
  EXPECT_GE(after_users, 0.95);
  hnsw.MaintainIndexes();  // the sweep finds items moved as negatives; the next batch applies
  ApplyAll(hnsw, events, 0, 1);
  const double after_items = MeanRecall(hnsw, exact, 2000, true);
  EXPECT_GE(after_items, 0.95);
  for (int i = 0; i < 60; ++i) hnsw.MaintainIndexes();
  s = hnsw.Stats();
  EXPECT_GE(s.user_index.recall_samples, 60u);
  EXPECT_GE(s.user_index.recall_at_10, 0.9);
  EXPECT_GE(s.item_index.recall_samples, 60u);
  std::printf("recall@10 users before %.4f after %.4f items %.4f; sampled users %.4f items %.4f\n",
              before, after_users, after_items, s.user_index.recall_at_10,
              s.item_index.recall_at_10);

  // Forgotten users leave the index; other metrics stay exact (same answers as exact).
  ASSERT_TRUE(hnsw.ForgetUser("u1"));
  ASSERT_TRUE(exact.ForgetUser("u1"));
  const auto near_u2 = hnsw.SimilarUsers("u2", 50, Metric::kCosine);  // not a temporary: the
  ASSERT_TRUE(near_u2.ok());  // range-for below would dangle on Result::value() of one
  for (const auto& x : near_u2.value()) EXPECT_NE(x.id, "u1");
  const auto dot_a = hnsw.SimilarUsers("u3", 10, Metric::kDot).value();
  const auto dot_x = exact.SimilarUsers("u3", 10, Metric::kDot).value();
  ASSERT_EQ(dot_a.size(), dot_x.size());
  for (size_t i = 0; i < dot_a.size(); ++i) EXPECT_EQ(dot_a[i].id, dot_x[i].id);
}

TEST(LiveAnn, AutoStaysExactBelowTheMinimumSize) {
  config::Options o = WithIndex("auto");
  o.index.hnsw_min_size = 3000;
  Engine e(o);
  const auto events = Stream(2000, 500, 20000, 3);
  ApplyAll(e, events, 0, events.size());
  e.MaintainIndexes();
  EXPECT_EQ(e.Stats().user_index.mode, "exact") << "2000 users < 3000";
  EXPECT_EQ(e.Stats().item_index.mode, "exact");
  o.index.hnsw_min_size = 1000;
  Engine big(o);
  ApplyAll(big, events, 0, events.size());
  big.MaintainIndexes();
  EXPECT_EQ(big.Stats().user_index.mode, "hnsw") << "2000 users >= 1000";
  EXPECT_EQ(big.Stats().item_index.mode, "exact") << "500 items < 1000";
}

// A backlog is caught up before it is indexed (index.defer_builds_above_lag): no build or
// rebuild starts while the consumer's lag is above the bound, queries are answered meanwhile,
// and the first maintenance after the lag falls builds.
TEST(LiveAnn, BuildsWaitWhileTheConsumerCatchesUp) {
  config::Options o = WithIndex("hnsw");
  o.index.defer_builds_above_lag = 1000;
  Engine e(o);
  const auto events = Stream(2000, 500, 20000, 3);
  ApplyAll(e, events, 0, events.size());
  e.NoteLag(1001);
  e.MaintainIndexes();
  for (const AnnStats& s : {e.Stats().user_index, e.Stats().item_index}) {
    EXPECT_EQ(s.mode, "exact");
    EXPECT_EQ(s.builds, 0u);
    EXPECT_TRUE(s.build_deferred);
  }
  auto answer = e.SimilarUsers("u1", 10, Metric::kCosine);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->size(), 10u);

  e.NoteLag(1000);  // at the bound, not above it
  e.MaintainIndexes();
  for (const AnnStats& s : {e.Stats().user_index, e.Stats().item_index}) {
    EXPECT_EQ(s.mode, "hnsw");
    EXPECT_EQ(s.builds, 1u);
    EXPECT_FALSE(s.build_deferred);
  }

  // A rebuild waits too: forgetting over a quarter of the users makes one due.
  for (int u = 0; u < 700; ++u) ASSERT_TRUE(e.ForgetUser("u" + std::to_string(u)));
  ASSERT_GT(e.Stats().user_index.deleted, 0u);
  // The learner is making progress (the first build and the forgetting can outlast kDeferStall
  // in a sanitizer build): one more event, at a fresh offset, of a user still known.
  for (const SourcedEvent& se : events) {
    if (std::stoi(se.event.user.substr(1)) < 700) continue;
    SourcedEvent fresh = se;
    fresh.offset = static_cast<int64_t>(events.size());
    ASSERT_EQ(e.Apply(std::span(&fresh, 1)).applied, 1u);
    break;
  }
  e.NoteLag(5000);
  e.MaintainIndexes();
  EXPECT_EQ(e.Stats().user_index.builds, 1u);
  EXPECT_TRUE(e.Stats().user_index.build_deferred);
  EXPECT_FALSE(e.Stats().item_index.build_deferred) << "no item rebuild is due";
  e.NoteLag(0);
  e.MaintainIndexes();
  EXPECT_EQ(e.Stats().user_index.builds, 2u);
  EXPECT_EQ(e.Stats().user_index.deleted, 0u);
  EXPECT_FALSE(e.Stats().user_index.build_deferred);

  // A learner that applies nothing (a consumer that cannot reach Kafka, or one not yet assigned
  // its partitions, whose lag is unknown) does not hold builds back for long.
  Engine stalled(o);
  ApplyAll(stalled, events, 0, events.size());
  stalled.NoteLag(Engine::kLagUnknown);
  stalled.MaintainIndexes();
  EXPECT_TRUE(stalled.Stats().user_index.build_deferred);
  EXPECT_EQ(stalled.Stats().user_index.builds, 0u);
  std::this_thread::sleep_for(Engine::kDeferStall + std::chrono::milliseconds(500));
  stalled.MaintainIndexes();
  EXPECT_EQ(stalled.Stats().user_index.builds, 1u) << "no event applied for kDeferStall";
  EXPECT_FALSE(stalled.Stats().user_index.build_deferred);

  // 0: never deferred.
  o.index.defer_builds_above_lag = 0;
  Engine never(o);
  ApplyAll(never, events, 0, events.size());
  never.NoteLag(int64_t{1} << 40);
  never.MaintainIndexes();
  EXPECT_EQ(never.Stats().user_index.mode, "hnsw");
  EXPECT_FALSE(never.Stats().user_index.build_deferred);
}

// A catch-up that lasts (a consumer slower than its producers) holds a due build back for at most
// kDeferAtMost: on the maintainer's clock, passed in, with events applied before every tick.
TEST(LiveAnn, ACatchUpHoldsBuildsBackForAtMostKDeferAtMost) {
  config::Options o = WithIndex("hnsw");
  o.index.defer_builds_above_lag = 1000;
  Engine e(o);
  const auto events = Stream(2000, 500, 22000, 4);
  constexpr size_t kSlice = 2000;
  ApplyAll(e, events, 0, kSlice);
  e.NoteLag(50000);
  const auto t0 = std::chrono::steady_clock::now();
  size_t next = kSlice;
  const auto tick = [&](std::chrono::steady_clock::duration at) {
    ApplyAll(e, events, next, next + kSlice);  // the learner is making progress
    next += kSlice;
    e.MaintainIndexes(t0 + at);
  };
  e.MaintainIndexes(t0);
  for (int minute = 1; minute <= 9; ++minute) {
    tick(std::chrono::minutes(minute));
    EXPECT_EQ(e.Stats().user_index.builds, 0u) << "minute " << minute;
    EXPECT_TRUE(e.Stats().user_index.build_deferred) << "minute " << minute;
  }
  tick(Engine::kDeferAtMost);  // the limit itself still defers
  EXPECT_EQ(e.Stats().user_index.builds, 0u);
  tick(Engine::kDeferAtMost + std::chrono::seconds(1));
  EXPECT_EQ(e.Stats().user_index.builds, 1u) << "the catch-up lasted longer than kDeferAtMost";
  EXPECT_EQ(e.Stats().item_index.builds, 1u);
  EXPECT_FALSE(e.Stats().user_index.build_deferred);
  EXPECT_EQ(e.Stats().user_index.mode, "hnsw");
}

// After a restart the rows come from storage (Engine::Restore*), not from Apply: the next
// maintenance must index them, queries must be exact until then, and an index built while the
// restore was still running must not survive it.
TEST(LiveAnn, RestoredRowsAreIndexedByTheNextMaintenance) {
  const auto events = Stream(3000, 1000, 40000, 13);
  Engine src(WithIndex("exact"));
  src.SetChangeTracking(true);
  ApplyAll(src, events, 0, events.size());
  ChangeSet cs;
  src.TakeChanges(cs);
  ASSERT_GT(cs.users.size(), 2000u);

  Engine dst(WithIndex("hnsw"));
  for (const auto& [i, id] : cs.new_user_ids) dst.RestoreUserId(i, id);
  for (const auto& [i, id] : cs.new_item_ids) dst.RestoreItemId(i, id);
  for (const auto& [i, row] : cs.items) dst.RestoreItem(i, row);
  const size_t half = cs.users.size() / 2;
  for (size_t r = 0; r < half; ++r) dst.RestoreUser(cs.users[r].first, cs.users[r].second);
  dst.MaintainIndexes();  // a tick in the middle of the restore indexes half the users
  ASSERT_EQ(dst.Stats().user_index.mode, "hnsw");
  EXPECT_LE(dst.Stats().user_index.indexed, half);
  for (size_t r = half; r < cs.users.size(); ++r)
    dst.RestoreUser(cs.users[r].first, cs.users[r].second);
  for (const EdgeState& e : cs.edges) dst.RestoreEdge(e);
  dst.RestoreGlobal(cs.global, cs.next_offsets, cs.events_applied);

  EngineStats s = dst.Stats();
  EXPECT_EQ(s.user_index.mode, "exact") << "restored rows drop the stale index";
  EXPECT_EQ(s.item_index.mode, "exact");
  // Until the rebuild, answers are the exact scan's: the same as the source engine's.
  for (const char* u : {"u0", "u5", "u77", "u1234", "u2999"}) {
    const auto a = dst.SimilarUsers(u, 10, Metric::kCosine);
    const auto x = src.SimilarUsers(u, 10, Metric::kCosine);
    ASSERT_TRUE(a.ok() && x.ok()) << u;
    ASSERT_EQ(a.value().size(), x.value().size());
    for (size_t i = 0; i < a.value().size(); ++i) EXPECT_EQ(a.value()[i].id, x.value()[i].id);
  }

  dst.MaintainIndexes();  // the first tick after the restore builds from every restored row
  s = dst.Stats();
  EXPECT_EQ(s.user_index.mode, "hnsw");
  EXPECT_EQ(s.item_index.mode, "hnsw");
  EXPECT_EQ(s.user_index.indexed, src.Stats().users);
  EXPECT_EQ(s.item_index.indexed, src.Stats().items);
  EXPECT_GE(MeanRecall(dst, src, 3000, false), 0.95);
  EXPECT_GE(MeanRecall(dst, src, 1000, true), 0.95);
}

// index.max_reinserts_per_batch bounds the HNSW work on the learner thread per batch; drifted
// rows over the cap wait, first in line, for the next batches.
TEST(LiveAnn, ReinsertCapDefersDriftedRowsToLaterBatches) {
  const auto events = Stream(5000, 2000, 60000, 17);
  config::Options o = WithIndex("hnsw");
  o.index.max_reinserts_per_batch = 2;
  Engine e(o);
  ApplyAll(e, events, 0, 30000);
  e.MaintainIndexes();
  ApplyAll(e, events, 30000, 60000);  // 60 batches
  EngineStats s = e.Stats();
  EXPECT_GT(s.user_index.reinserts, 0u);
  EXPECT_LE(s.user_index.reinserts, 60u * 2);
  EXPECT_LE(s.item_index.reinserts, 60u * 2);
  const size_t backlog = s.user_index.deferred;
  ASSERT_GT(backlog, 2u) << "more users drifted than the cap lets through";
  e.Apply({});  // an empty batch re-inserts the first two deferred rows
  s = e.Stats();
  EXPECT_EQ(s.user_index.deferred, backlog - 2);
}

TEST(LiveAnn, BackgroundMaintainerBuildsTheIndexWithoutBeingAsked) {
  config::Options o = WithIndex("hnsw");
  o.index.maintenance_interval_ms = 10;
  // No recall-triggered rebuild: on a slow run (TSan, loaded CI) the maintainer samples 50+
  // times while the stream is applied and may rebuild; this test is about the first build
  // (RecallIsCarriedOverARebuildUntilTheNewIndexIsSampled is about rebuilds).
  o.index.rebuild_below_recall = 0.0;
  Engine e(o);
  const auto events = Stream(500, 200, 5000, 5);
  ApplyAll(e, events, 0, events.size());
  for (int i = 0; i < 500 && e.Stats().user_index.recall_samples < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const EngineStats s = e.Stats();
  EXPECT_EQ(s.user_index.mode, "hnsw");
  EXPECT_GE(s.user_index.recall_samples, 3u);
  EXPECT_GT(s.user_index.recall_at_10, 0.5);
}

// A build takes a while; the rows the learner touches meanwhile (new users among them) are
// caught up in rounds off the exclusive lock, the last few by a Sync after the swap. When the
// build ends, every user is in the index and the answers match the exact scan.
TEST(LiveAnn, RowsTouchedDuringABuildAreIndexedWhenItEnds) {
  const auto events = Stream(6000, 2000, 120000, 23);
  Engine hnsw(WithIndex("hnsw"));
  Engine exact(WithIndex("exact"));
  const size_t head = 20000;  // about half the users exist when the build starts
  ApplyAll(hnsw, events, 0, head);
  ApplyAll(exact, events, 0, events.size());
  const size_t users_at_start = hnsw.Stats().users;
  std::thread maintainer([&] { hnsw.MaintainIndexes(); });
  while (!hnsw.Stats().user_index.building && hnsw.Stats().user_index.builds == 0)
    std::this_thread::yield();
  size_t batches_during_build = 0;
  for (size_t b = head; b < events.size(); b += 500) {
    if (hnsw.Stats().user_index.building) ++batches_during_build;
    hnsw.Apply(std::span(events).subspan(b, std::min<size_t>(500, events.size() - b)));
  }
  maintainer.join();
  const EngineStats s = hnsw.Stats();
  ASSERT_GT(batches_during_build, 0u) << "the learner ran while the index was built";
  ASSERT_GT(s.users, users_at_start) << "users were created during or after the build";
  EXPECT_EQ(s.user_index.mode, "hnsw");
  EXPECT_EQ(s.user_index.builds, 1u);
  EXPECT_EQ(s.user_index.indexed, s.users) << "every user, old and new, is indexed";
  EXPECT_EQ(s.item_index.indexed, s.items);
  // The bar is the engine's own: below index.rebuild_below_recall (0.9) it would rebuild. How
  // much of the stream lands during the build depends on the machine's speed; measured 0.95 when
  // the build ends early (the rest goes through Sync as usual) to 0.99 when it all lands in it.
  const double users = MeanRecall(hnsw, exact, 6000, false);
  EXPECT_GE(users, 0.9);
  std::printf("batches during the build %zu, users %zu -> %zu, recall@10 users %.4f\n",
              batches_during_build, users_at_start, s.users, users);
}

// A rebuild starts a new recall window. Until the new index is sampled, Stats reports the
// previous index's recall (not 0) and says so with recall_window_samples == 0.
TEST(LiveAnn, RecallIsCarriedOverARebuildUntilTheNewIndexIsSampled) {
  config::Options o = WithIndex("hnsw");
  OnlineModel model(o.model);
  ObserveRandom(model, 3);
  LiveAnn ann(LiveAnn::Table::kUsers, o.index, static_cast<int>(o.model.dim));
  Rng rng(5);
  const auto build = [&] {
    LiveAnn::Snapshot snap = ann.BeginBuild(model);
    ann.FinishBuild(ann.Build(snap));
  };
  build();
  AnnStats s = ann.Stats();
  EXPECT_EQ(s.recall_window_samples, 0u);
  EXPECT_EQ(s.recall_at_10, 0.0) << "no sample yet";
  for (int i = 0; i < 20; ++i) ann.SampleRecall(model, rng);
  s = ann.Stats();
  ASSERT_EQ(s.recall_window_samples, 20u);
  ASSERT_EQ(s.recall_samples, 20u);
  const double before = s.recall_at_10;
  ASSERT_GT(before, 0.5);
  build();
  s = ann.Stats();
  EXPECT_EQ(s.builds, 2u);
  EXPECT_EQ(s.recall_window_samples, 0u);
  EXPECT_EQ(s.recall_samples, 20u);
  EXPECT_EQ(s.recall_at_10, before) << "the previous index's, until the new one is sampled";
  ann.SampleRecall(model, rng);
  s = ann.Stats();
  EXPECT_EQ(s.recall_window_samples, 1u);
  EXPECT_EQ(s.recall_samples, 21u);
}

// The two steps a query takes around its lock-free search: SearchCandidates (no engine lock),
// then Rescore (shared lock). A user forgotten between the two is in the candidates but must not
// be in the answer; the rest is scored by the exact cosine to the query row as it is now.
TEST(LiveAnn, RescoreDropsUsersForgottenAfterTheSearch) {
  config::Options o = WithIndex("hnsw");
  OnlineModel model(o.model);
  ObserveRandom(model, 8);
  LiveAnn ann(LiveAnn::Table::kUsers, o.index, static_cast<int>(o.model.dim));
  ann.FinishBuild(ann.Build(ann.BeginBuild(model)));
  constexpr uint32_t kQuery = 5;
  const std::vector<float> row = ann.QueryRow(model, kQuery);
  std::vector<Scored> cand = ann.SearchCandidates(row.data(), 10, kQuery);
  ASSERT_GE(cand.size(), 10u);
  for (const Scored& c : cand) ASSERT_NE(c.id, kQuery);
  const uint32_t gone = cand.front().id;  // the nearest: it would lead the answer
  model.ForgetUser(gone);                 // between the search and the re-scoring
  // Every candidate asked for back: a forgotten row (zeroed) would otherwise just rank last.
  const std::vector<Scored> top = ann.Rescore(model, kQuery, cand, cand.size());
  // The slow twin: every eligible candidate scored by the cosine of the current rows.
  std::vector<Scored> want;
  for (const Scored& c : cand) {
    if (c.id == gone) continue;
    want.push_back({c.id, Cosine(model.UserVector(kQuery), model.UserVector(c.id),
                                 static_cast<int>(o.model.dim))});
  }
  want = TopK(std::move(want), want.size());
  ASSERT_EQ(top.size(), cand.size() - 1);
  ASSERT_EQ(top.size(), want.size());
  for (size_t n = 0; n < top.size(); ++n) {
    EXPECT_NE(top[n].id, gone);
    EXPECT_EQ(top[n].id, want[n].id);
    EXPECT_FLOAT_EQ(top[n].score, want[n].score);
  }
}

// Answers of a cosine similar-users/items query: at most k, distinct, never the query itself,
// finite cosine scores in order.
void ExpectWellFormed(const Result<std::vector<EntityScore>>& r, const std::string& self,
                      size_t k) {
  if (!r.ok()) return;
  EXPECT_LE(r->size(), k);
  std::set<std::string> ids;
  for (size_t n = 0; n < r->size(); ++n) {
    const EntityScore& e = (*r)[n];
    EXPECT_NE(e.id, self);
    EXPECT_TRUE(ids.insert(e.id).second) << "duplicate " << e.id;
    EXPECT_TRUE(std::isfinite(e.score));
    EXPECT_LE(std::abs(e.score), 1.0f + 1e-4f);
    if (n > 0) {
      EXPECT_LE(e.score, (*r)[n - 1].score);
    }
  }
}

// Queries through the HNSW indexes (similar users, similar items, two-stage recommendations)
// on several threads while the learner applies batches and re-inserts drifted rows beside them
// (Sync runs under the shared lock) and the background maintainer samples recall and sweeps
// drift. Run under ThreadSanitizer in CI. The learned state must equal a single-threaded run's.
TEST(LiveAnn, QueriesRunBesideReinsertsAndMaintenance) {
  config::Options o = WithIndex("hnsw");
  o.index.maintenance_interval_ms = 2;
  o.index.drift_threshold = 0.01;      // many re-inserts while the readers search
  o.index.rebuild_below_recall = 0.0;  // no rebuild: reinserts counts the whole run's
  Engine live(o), alone(WithIndex("exact"));
  const auto events = Stream(400, 150, 6000, 9);
  alone.Apply(events);
  ApplyAll(live, events, 0, 1000);
  live.MaintainIndexes();  // the indexes exist before the readers start
  ASSERT_EQ(live.Stats().user_index.mode, "hnsw");
  ASSERT_EQ(live.Stats().item_index.mode, "hnsw");
  const uint64_t reinserts_before = live.Stats().user_index.reinserts;
  constexpr int kReaders = 3;
  std::atomic<bool> done{false};
  std::atomic<int> started{0};
  std::atomic<size_t> answers{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < kReaders; ++t) {
    readers.emplace_back([&, t] {
      size_t n = 0;
      while (!done.load()) {
        const std::string u = "u" + std::to_string((n * 13 + t) % 400);
        const std::string i = "i" + std::to_string(n % 150);
        ExpectWellFormed(live.SimilarUsers(u, 5, Metric::kCosine), u, 5);
        ExpectWellFormed(live.SimilarItems(i, 5), i, 5);
        EXPECT_LE(live.Recommend(u, 10, {}, false).items.size(), 10u);
        (void)live.Stats();
        if (n++ == 0) ++started;
      }
      answers += n;
    });
  }
  while (started.load() < kReaders) std::this_thread::yield();  // every reader is querying
  for (size_t b = 1000; b < events.size(); b += 100) {
    live.Apply(std::span(events).subspan(b, std::min<size_t>(100, events.size() - b)));
  }
  done = true;
  for (auto& r : readers) r.join();
  EXPECT_GE(answers.load(), size_t{kReaders});
  const EngineStats s = live.Stats();
  EXPECT_EQ(s.events_applied, events.size());
  EXPECT_EQ(s.user_index.builds, 1u);
  EXPECT_GT(s.user_index.reinserts, reinserts_before);  // Sync re-inserted beside the readers
  // The index never feeds back into learning: the rows equal the exact engine's.
  for (const char* u : {"u0", "u77", "u399"}) {
    const auto a = live.GetUser(u, true);
    const auto b = alone.GetUser(u, true);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->embedding, b->embedding) << u;
  }
}

// Queries search the indexes with no engine lock held (between two holds of the shared lock):
// a user forgotten before a query starts must still never appear in its answer, and an index
// swapped in by a rebuild (here: forgetting a quarter of the users leaves that many tombstones)
// must not pull the index out from under a search.
TEST(LiveAnn, ForgottenUsersNeverAnswerWhileTheIndexIsRebuiltBesideQueries) {
  config::Options o = WithIndex("hnsw");
  o.index.maintenance_interval_ms = 1;  // the background maintainer rebuilds as soon as it may
  o.index.rebuild_below_recall = 0.0;   // only tombstones trigger a rebuild
  Engine live(o);
  constexpr int kUsers = 400, kForget = 160;  // 40 % > the 25 % of tombstones that rebuild
  const auto events = Stream(kUsers, 150, 6000, 21);
  ApplyAll(live, events, 0, events.size());
  live.MaintainIndexes();
  ASSERT_EQ(live.Stats().user_index.mode, "hnsw");
  ASSERT_EQ(live.Stats().user_index.builds, 1u);
  std::atomic<int> forgotten{0};  // users u0 .. u(forgotten - 1) are forgotten
  std::atomic<bool> done{false};
  std::atomic<size_t> answers{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      size_t n = 0;
      while (!done.load()) {
        const int before = forgotten.load();
        const int q =
            kForget + static_cast<int>((n * 7 + static_cast<size_t>(t)) % (kUsers - kForget));
        const std::string u = "u" + std::to_string(q);
        const auto near = live.SimilarUsers(u, 20, Metric::kCosine);
        ASSERT_TRUE(near.ok()) << u;
        ExpectWellFormed(near, u, 20);
        for (const auto& x : near.value()) {
          const int id = std::stoi(x.id.substr(1));
          EXPECT_FALSE(id < before) << x.id << " was forgotten before the query started";
        }
        EXPECT_LE(live.Recommend(u, 10, {}, false).items.size(), 10u);
        ++n;
      }
      answers += n;
    });
  }
  for (int u = 0; u < kForget; ++u) {
    ASSERT_TRUE(live.ForgetUser("u" + std::to_string(u)));
    forgotten.store(u + 1);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  // The maintainer rebuilds once the tombstones pass a quarter; the readers go on meanwhile.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (live.Stats().user_index.builds < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // queries on the new index too
  done = true;
  for (auto& r : readers) r.join();
  EXPECT_GE(live.Stats().user_index.builds, 2u) << "the tombstones triggered a rebuild";
  EXPECT_GT(answers.load(), 0u);
  // And after it all, sequentially: nobody forgotten anywhere.
  const auto near = live.SimilarUsers("u399", 100, Metric::kCosine);
  ASSERT_TRUE(near.ok());
  for (const auto& x : near.value()) EXPECT_GE(std::stoi(x.id.substr(1)), kForget) << x.id;
}

// The neighbour lists of the recommendations are rebuilt by the background maintainer (here as
// often as it may) and swapped in while the learner applies events and two threads ask for
// recommendations: every answer stays whole (ThreadSanitizer runs this one).
TEST(LiveAnn, NeighbourListsAreRebuiltAndSwappedBesideQueriesAndTheLearner) {
  config::Options o = WithIndex("hnsw");
  o.index.neighbour_lists_interval_ms = 1;
  const auto events = Stream(300, 200, 12000, 23);
  Engine live(o);
  ApplyAll(live, events, 0, 4000);
  live.MaintainIndexes();
  ASSERT_EQ(live.Stats().item_index.mode, "hnsw");
  ASSERT_EQ(live.Stats().neighbour_lists_builds, 1u);
  std::atomic<bool> done{false};
  std::atomic<size_t> answers{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      size_t n = 0;
      while (!done.load()) {
        const std::string u = "u" + std::to_string((n * 13 + static_cast<size_t>(t)) % 300);
        const Recommendations r = live.Recommend(u, 10, {}, false);
        if (r.from_model) {
          EXPECT_EQ(r.items.size(), 10u) << u;
          for (size_t i = 1; i < r.items.size(); ++i) {
            EXPECT_GE(r.items[i - 1].score, r.items[i].score) << u;
          }
        }
        ++n;
      }
      answers += n;
    });
  }
  threads.emplace_back([&] {  // the maintainer, as the daemon's thread runs it
    while (!done.load()) {
      live.MaintainIndexes();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  ApplyAll(live, events, 4000, events.size());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (live.Stats().neighbour_lists_builds < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  done = true;
  for (auto& t : threads) t.join();
  EXPECT_GE(live.Stats().neighbour_lists_builds, 2u);
  EXPECT_GT(answers.load(), 0u);
}

}  // namespace
}  // namespace simstream::engine
