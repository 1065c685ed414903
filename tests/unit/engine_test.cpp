// Engine: exactly-once by offset, forgetting, and readers running while the learner writes
// (run this file under -DSIMSTREAM_TSAN=ON to check the locking).
#include "engine/engine.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "engine/generator.hpp"
#include "engine/interner.hpp"
#include "engine/model.hpp"
#include "engine/rng.hpp"
#include "engine/rw_lock.hpp"
#include "tests/support/test_support.hpp"

namespace simstream::engine {
namespace {

std::vector<SourcedEvent> Stream(size_t events, uint64_t seed) {
  GeneratorOptions g;
  g.users = 200;
  g.items = 100;
  g.events = events;
  g.communities = 4;
  g.seed = seed;
  return test_support::GeneratedStream(g, /*partitions=*/3);
}

std::vector<float> Embedding(const Engine& e, const std::string& user) {
  auto info = e.GetUser(user, /*with_embedding=*/true);
  EXPECT_TRUE(info.ok());
  return info.ok() ? info->embedding : std::vector<float>{};
}

TEST(EngineTest, RedeliveredOffsetsAreSkippedAndStateIsUnchanged) {
  const auto events = Stream(3000, 1);
  Engine once{config::Options{}}, twice{config::Options{}};
  once.Apply(events);
  // Redeliver overlapping windows: everything at or below the applied offset is skipped.
  const size_t half = events.size() / 2;
  auto a = twice.Apply(std::span(events).first(half));
  EXPECT_EQ(a.applied, half);
  auto b = twice.Apply(events);  // the first half again, then the rest
  EXPECT_EQ(b.duplicates, half);
  EXPECT_EQ(b.applied, events.size() - half);
  EXPECT_EQ(once.events_applied(), events.size());
  EXPECT_EQ(twice.events_applied(), events.size());
  EXPECT_EQ(once.NextOffsets(), twice.NextOffsets());
  for (const std::string u : {"u0", "u1", "u57", "u199"}) {
    EXPECT_EQ(Embedding(once, u), Embedding(twice, u)) << u;
  }
}

TEST(EngineTest, EventsWithoutPartitionAreNeverDeduplicated) {
  Engine e{config::Options{}};
  std::vector<SourcedEvent> evs(3, SourcedEvent{Event{"a", "x", "", 1.0, 0}, -1, -1});
  EXPECT_EQ(e.Apply(evs).applied, 3u);
  EXPECT_EQ(e.GetUser("a", false)->events, 3u);
  EXPECT_TRUE(e.NextOffsets().empty());
}

TEST(EngineTest, ForgottenUserIsGoneFromEveryAnswer) {
  Engine e{config::Options{}};
  e.Apply(Stream(2000, 2));
  ASSERT_TRUE(e.GetUser("u3", false).ok());
  EXPECT_TRUE(e.ForgetUser("u3"));
  EXPECT_FALSE(e.ForgetUser("u3"));
  EXPECT_EQ(e.GetUser("u3", false).error().code, "not_found");
  EXPECT_EQ(e.SimilarUsers("u3", 5, Metric::kCosine).error().code, "not_found");
  const auto similar = e.SimilarUsers("u4", 199, Metric::kCosine);
  ASSERT_TRUE(similar.ok());
  for (const auto& s : *similar) EXPECT_NE(s.id, "u3");
  EXPECT_EQ(e.Recommend("u3", 5, {}, false).from_model, false);
  // A new event for the id starts a fresh user.
  e.Apply(std::vector<SourcedEvent>{{Event{"u3", "i1", "", 1.0, 0}, -1, -1}});
  EXPECT_EQ(e.GetUser("u3", false)->events, 1u);
}

TEST(EngineTest, UnknownUsersGetPopularItemsAndUnknownIdsAreNotFound) {
  Engine e{config::Options{}};
  e.Apply(Stream(2000, 3));
  const auto r = e.Recommend("nobody", 5, {}, true);
  EXPECT_FALSE(r.from_model);
  ASSERT_EQ(r.items.size(), 5u);
  for (const auto& i : r.items) EXPECT_TRUE(i.because.empty());
  EXPECT_EQ(e.SimilarItems("no-such-item", 5).error().code, "not_found");
  const auto known = e.Recommend("u0", 5, {"i1", "i2"}, true);
  EXPECT_TRUE(known.from_model);
  for (const auto& i : known.items) {
    EXPECT_NE(i.item, "i1");
    EXPECT_NE(i.item, "i2");
  }
}

// Readers on several threads while one writer applies batches: answers stay well-formed and
// the final state equals a single-threaded run (queries never change the model).
TEST(EngineTest, ConcurrentReadersWhileTheLearnerWrites) {
  const auto events = Stream(6000, 4);
  Engine live{config::Options{}}, alone{config::Options{}};
  alone.Apply(events);
  std::atomic<bool> done{false};
  std::atomic<size_t> answers{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      size_t n = 0;
      while (!done.load()) {
        const std::string u = "u" + std::to_string((n * 7 + t) % 200);
        const auto r = live.Recommend(u, 10, {}, n % 2 == 0);
        EXPECT_LE(r.items.size(), 10u);
        const auto s = live.SimilarUsers(u, 5, n % 3 == 0 ? Metric::kJaccard : Metric::kCosine);
        if (s.ok()) {
          EXPECT_LE(s->size(), 5u);
        }
        (void)live.Stats();
        ++n;
      }
      answers += n;
    });
  }
  for (size_t i = 0; i < events.size(); i += 100) {
    live.Apply(std::span(events).subspan(i, std::min<size_t>(100, events.size() - i)));
  }
  done = true;
  for (auto& r : readers) r.join();
  EXPECT_GT(answers.load(), 0u);
  EXPECT_EQ(live.events_applied(), events.size());
  for (const std::string u : {"u0", "u10", "u150"})
    EXPECT_EQ(Embedding(live, u), Embedding(alone, u));
}

// The slow twin of Engine::Apply's slices (duplicate checks and interning first, then learning
// with cache hints ahead): a bare model fed one event at a time, ids interned as they come,
// redelivered offsets skipped by hand. Every user's representation must match bit for bit.
TEST(EngineTest, AppliedSlicesMatchTheModelFedOneEventAtATime) {
  auto events = Stream(5000, 8);
  // Redeliveries in the middle of batches: offsets already applied.
  events.insert(events.begin() + 3000, events.begin() + 2900, events.begin() + 2990);
  const config::Options opts;
  Engine engine{opts};
  for (size_t i = 0; i < events.size(); i += 777) {
    engine.Apply(std::span(events).subspan(i, std::min<size_t>(777, events.size() - i)));
  }

  IdInterner users, items;
  OnlineModel twin(opts.model);
  std::map<int32_t, int64_t> next;
  size_t applied = 0;
  for (const SourcedEvent& se : events) {
    if (next.count(se.partition) && se.offset < next[se.partition]) continue;
    next[se.partition] = se.offset + 1;
    twin.Observe({users.Intern(se.event.user), items.Intern(se.event.item),
                  static_cast<float>(se.event.weight), se.event.ts_ms,
                  EventRngKey(static_cast<uint64_t>(opts.model.seed), se.partition, se.offset)});
    ++applied;
  }
  EXPECT_EQ(applied, 5000u);
  EXPECT_EQ(engine.events_applied(), applied);
  ASSERT_EQ(users.size(), twin.users());
  for (uint32_t u = 0; u < users.size(); ++u) {
    const std::vector<float> want(twin.UserVector(u), twin.UserVector(u) + twin.dim());
    ASSERT_EQ(Embedding(engine, users.Id(u)), want) << users.Id(u);
  }
}

// The learner hands the lock over between slices only when a reader waits for it, so the
// mutex must see readers blocked behind a writer, and only those.
TEST(EngineTest, WriterPreferringMutexCountsOnlyBlockedReaders) {
  WriterPreferringMutex mu;
  {
    std::shared_lock uncontended(mu);
    EXPECT_FALSE(mu.readers_waiting());
  }
  std::unique_lock writer(mu);
  std::atomic<bool> got{false};
  std::thread reader([&] {
    std::shared_lock lock(mu);
    got = true;
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!mu.readers_waiting() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(mu.readers_waiting());
  EXPECT_FALSE(got.load());
  writer.unlock();
  reader.join();
  EXPECT_TRUE(got.load());
  EXPECT_FALSE(mu.readers_waiting());
}

// A query that arrives while one long batch is applied is answered between two of its slices,
// not after the batch.
TEST(EngineTest, QueriesAreAnsweredWhileOneLongBatchIsApplied) {
  const auto events = Stream(40000, 6);
  Engine live{config::Options{}};
  live.Apply(std::span(events).first(1000));
  std::atomic<bool> applying{false}, done{false};
  std::atomic<size_t> answers{0}, during{0};
  std::thread reader([&] {
    while (!done.load()) {
      const bool before = applying.load();
      const auto info = live.GetUser("u1", /*with_embedding=*/false);
      EXPECT_TRUE(info.ok());
      ++answers;
      if (before && applying.load()) ++during;  // began and ended inside the batch
    }
  });
  while (answers.load() == 0) std::this_thread::yield();
  applying = true;
  live.Apply(std::span(events).subspan(1000));
  applying = false;
  done = true;
  reader.join();
  EXPECT_EQ(live.events_applied(), events.size());
  // ~1,200 slices of kEventsPerLock events: a reader kept out until the end would answer none.
  EXPECT_GE(during.load(), 10u);
}

// The live prequential HR@k of /v1/stats against a twin: a bare OnlineModel fed the same
// events, ranking the whole catalogue test-then-train for every sampled positive event (one in
// max(256, items / 4) positive events on known items, skipping unknown users and seen items).
TEST(EngineTest, LivePrequentialHitRateMatchesNaiveTwin) {
  const auto events = Stream(40000, 9);
  config::Options o;
  o.index.kind = "exact";
  Engine engine(o);
  for (size_t b = 0; b < events.size(); b += 777) {
    engine.Apply(std::span(events).subspan(b, std::min<size_t>(777, events.size() - b)));
  }

  OnlineModel twin(o.model);
  IdInterner users, items;
  std::vector<double> hits;
  uint64_t counter = 0;
  std::vector<float> scores;
  for (const SourcedEvent& se : events) {
    bool new_user = false, new_item = false;
    const uint32_t u = users.Intern(se.event.user, &new_user);
    const uint32_t i = items.Intern(se.event.item, &new_item);
    const uint64_t every = std::max<uint64_t>(256, twin.items() / 4);
    if (se.event.weight > 0 && !new_item && ++counter >= every) {
      counter = 0;
      const auto seen = twin.HasUser(u) ? twin.Seen(u) : std::span<const uint32_t>{};
      if (twin.HasUser(u) && twin.UserEvents(u) > 0 &&
          std::find(seen.begin(), seen.end(), i) == seen.end()) {
        scores.assign(twin.items(), 0.0f);
        twin.Score(u, scores);
        for (uint32_t s : seen) scores[s] = -std::numeric_limits<float>::infinity();
        hits.push_back(HitAtK(RankOf(scores, i), 10));
      }
    }
    twin.Observe(
        Interaction{u, i, static_cast<float>(se.event.weight), se.event.ts_ms,
                    EventRngKey(static_cast<uint64_t>(o.model.seed), se.partition, se.offset)});
  }
  ASSERT_GE(hits.size(), 30u);
  const EngineStats st = engine.Stats();
  EXPECT_EQ(st.prequential_samples, std::min<size_t>(hits.size(), 1000));
  double want = 0;
  for (double h : hits) want += h;
  want /= static_cast<double>(hits.size());
  EXPECT_NEAR(st.rolling_hr, want, 1e-12);
  EXPECT_GT(want, 0.0);  // the planted stream is learnable: some hits
}

}  // namespace
}  // namespace simstream::engine
