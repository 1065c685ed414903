// Kafka ingestion end to end: KafkaSource -> Engine, dead-lettering, consumer-group takeover
// (against the real broker of scripts/kafka-local.sh, SIMSTREAM_TEST_KAFKA_BROKERS), and
// backpressure and broker outages (against the embedded mock cluster, where they are fast).
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/options.hpp"
#include "connectors/dlq.hpp"
#include "connectors/kafka_sink.hpp"
#include "connectors/kafka_source.hpp"
#include "connectors/mock_cluster.hpp"
#include "engine/engine.hpp"
#include "engine/event.hpp"
#include "storage/flusher.hpp"
#include "storage/state_store.hpp"
#include "tests/support/test_support.hpp"

namespace simstream::connectors {
namespace {

using namespace std::chrono_literals;
using test_support::MakeEvents;
using test_support::RealBrokers;
using test_support::Unique;
using test_support::WaitFor;

#define REQUIRE_REAL_BROKER()                                                            \
  const std::string brokers = RealBrokers();                                             \
  if (brokers.empty()) {                                                                 \
    GTEST_SKIP() << "SIMSTREAM_TEST_KAFKA_BROKERS is not set (scripts/test.sh starts a " \
                    "broker and sets it)";                                               \
  }

config::Options MakeOptions(const std::string& brokers, const std::string& topic) {
  config::Options o;
  o.kafka.brokers = brokers;
  o.kafka.topic = topic;
  o.kafka.group = topic + "-group";
  o.kafka.batch_size = 256;
  o.kafka.max_message_bytes = 4096;
  o.model.dim = 8;
  o.model.negatives = 1;
  return o;
}

// Items in every stream of this file (test_support::MakeEvents; each event keyed by its user).
constexpr int kItems = 200;

std::map<std::string, uint64_t> CountByUser(const std::vector<engine::Event>& events) {
  std::map<std::string, uint64_t> c;
  for (const auto& e : events) ++c[e.user];
  return c;
}

// Raw messages (key, value), produced in order and acknowledged before returning.
void ProduceRaw(const config::KafkaOptions& k,
                const std::vector<std::pair<std::string, std::string>>& msgs) {
  auto sink = KafkaEventSink::Create(k);
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  std::atomic<int> failed{0};
  for (const auto& [key, value] : msgs) {
    ASSERT_TRUE((*sink)
                    ->PublishAsync(key, value, 0,
                                   [&](const KafkaEventSink::Delivery& d) {
                                     if (!d.ok) ++failed;
                                   })
                    .ok());
  }
  ASSERT_TRUE((*sink)->Flush(30000).ok());
  ASSERT_EQ(failed.load(), 0);
}

void PublishAll(const config::KafkaOptions& k, const std::vector<engine::Event>& events) {
  auto sink = KafkaEventSink::Create(k);
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  auto offsets = (*sink)->Publish(events);
  ASSERT_TRUE(offsets.ok()) << offsets.error().message;
  ASSERT_EQ(offsets->size(), events.size());
  // Keyed by user: one user's events share a partition, at increasing offsets.
  std::map<std::string, PublishedOffset> last;
  for (size_t i = 0; i < events.size(); ++i) {
    const PublishedOffset& o = (*offsets)[i];
    auto it = last.find(events[i].user);
    if (it != last.end()) {
      EXPECT_EQ(it->second.partition, o.partition);
      EXPECT_LT(it->second.offset, o.offset);
    }
    last[events[i].user] = o;
  }
}

void ExpectUserCounts(const std::vector<const engine::Engine*>& engines,
                      const std::map<std::string, uint64_t>& expected) {
  for (const auto& [user, n] : expected) {
    uint64_t got = 0;
    for (const auto* e : engines) {
      auto info = e->GetUser(user, false);
      if (info.ok()) got += info->events;
    }
    EXPECT_EQ(got, n) << user;
  }
}

struct DlqRecord {
  std::string payload, reason, topic, partition, offset, error;
};

// Reads `n` records of a DLQ topic from the beginning (assign, no group).
std::vector<DlqRecord> ReadDlq(const std::string& brokers, const std::string& topic, size_t n,
                               int partitions) {
  std::vector<DlqRecord> out;
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", (topic + "-reader").c_str(), err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (rk == nullptr) return out;
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  auto header = [](rd_kafka_message_t* m, const char* name) {
    rd_kafka_headers_t* h = nullptr;
    const void* v = nullptr;
    size_t size = 0;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::string();
    if (rd_kafka_header_get_last(h, name, &v, &size) != RD_KAFKA_RESP_ERR_NO_ERROR)
      return std::string();
    return std::string(static_cast<const char*>(v), size);
  };
  while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 200);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      out.push_back({std::string(static_cast<const char*>(m->payload), m->len),
                     header(m, kDlqReasonHeader), header(m, kDlqTopicHeader),
                     header(m, kDlqPartitionHeader), header(m, kDlqOffsetHeader),
                     header(m, kDlqErrorHeader)});
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return out;
}

// ---- real broker -------------------------------------------------------------------------

TEST(KafkaIngest, EndToEndExactCountsRealBroker) {
  REQUIRE_REAL_BROKER();
  const config::Options o = MakeOptions(brokers, Unique("e2e"));
  const auto events = MakeEvents(3000, 40, kItems, 7);
  PublishAll(o.kafka, events);
  engine::Engine engine(o);
  auto src = KafkaSource::Create(o.kafka, engine::EventRulesFrom(o), engine);
  ASSERT_TRUE(src.ok()) << src.error().message;
  ASSERT_TRUE((*src)->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return engine.events_applied() >= events.size(); }, 60s))
      << engine.events_applied();
  std::this_thread::sleep_for(300ms);  // nothing more may arrive
  EXPECT_EQ(engine.events_applied(), events.size());
  ExpectUserCounts({&engine}, CountByUser(events));
  int64_t next_sum = 0;
  for (const auto& [p, next] : engine.NextOffsets()) next_sum += next;
  EXPECT_EQ(next_sum, static_cast<int64_t>(events.size()));  // a fresh topic starts at 0
  EXPECT_TRUE(WaitFor([&] { return (*src)->Healthy(); }, 10s));
  EXPECT_TRUE(WaitFor([&] { return (*src)->TotalLag() == 0 && !(*src)->Lag().empty(); }, 10s));
  EXPECT_TRUE((*src)->Stop().ok());
}

TEST(KafkaIngest, EveryMalformedClassIsDeadLetteredRealBroker) {
  REQUIRE_REAL_BROKER();
  config::Options o = MakeOptions(brokers, Unique("dlq"));
  o.kafka.unknown_event_type = "reject";
  // One key for all: one partition, so DLQ offsets are predictable.
  const std::string key = "k";
  const std::string long_id(300, 'x');
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"not_json", "{not json"},
      {"not_object", "[1,2,3]"},
      {"missing_user", R"({"item":"i1"})"},
      {"missing_item", R"({"user":"u1"})"},
      {"empty_user", R"({"user":"","item":"i1"})"},
      {"empty_item", R"({"user":"u1","item":""})"},
      {"id_too_long", R"({"user":")" + long_id + R"(","item":"i1"})"},
      {"wrong_type", R"({"user":"u1","item":"i1","weight":"heavy"})"},
      {"weight_not_finite", R"({"user":"u1","item":"i1","weight":1e999})"},
      {"invalid_utf8", "{\"user\":\"u\xff\",\"item\":\"i1\"}"},
      {"oversized", R"({"user":"u1","item":")" + std::string(5000, 'y') + R"("})"},
      {"unknown_type", R"({"user":"u1","item":"i1","type":"teleport"})"},
  };
  std::vector<std::pair<std::string, std::string>> msgs;
  std::vector<std::string> expected_reasons;
  int valid = 0;
  for (const auto& [reason, payload] : bad) {
    msgs.push_back({key, R"({"user":"good","item":"before-)" + reason + R"("})"});
    ++valid;
    msgs.push_back({key, payload});
    expected_reasons.push_back(reason);
  }
  msgs.push_back({key, R"({"user":"good","item":"last","type":"like"})"});
  ++valid;
  ProduceRaw(o.kafka, msgs);

  engine::Engine engine(o);
  auto src = KafkaSource::Create(o.kafka, engine::EventRulesFrom(o), engine);
  ASSERT_TRUE(src.ok()) << src.error().message;
  ASSERT_TRUE((*src)->Start().ok());
  ASSERT_TRUE(
      WaitFor([&] { return engine.events_applied() >= static_cast<uint64_t>(valid); }, 60s));
  ASSERT_TRUE(WaitFor([&] { return (*src)->Stats().dead_lettered >= bad.size(); }, 30s));
  // The engine counts them when the learner thread takes their batch, just after.
  ASSERT_TRUE(WaitFor([&] { return engine.Stats().events_rejected >= bad.size(); }, 30s));
  EXPECT_EQ(engine.events_applied(), static_cast<uint64_t>(valid));
  auto user = engine.GetUser("good", false);
  ASSERT_TRUE(user.ok());
  EXPECT_EQ(user->events, static_cast<uint64_t>(valid));
  const auto stats = engine.Stats();
  EXPECT_EQ(stats.events_rejected, bad.size());
  for (const auto& reason : expected_reasons) {
    EXPECT_EQ(stats.rejected_by_reason.count(reason) ? stats.rejected_by_reason.at(reason) : 0, 1u)
        << reason;
    EXPECT_EQ((*src)->Stats().dead_lettered_by_reason[reason], 1u) << reason;
  }
  ASSERT_TRUE((*src)->Stop().ok());

  // The DLQ (auto-created with the broker's default partition count; one key: one partition).
  const auto records = ReadDlq(brokers, o.kafka.EffectiveDlqTopic(), bad.size(), 4);
  ASSERT_EQ(records.size(), bad.size());
  int32_t partition = -1;
  for (size_t i = 0; i < records.size(); ++i) {
    const DlqRecord& r = records[i];
    EXPECT_EQ(r.reason, expected_reasons[i]);
    EXPECT_EQ(r.topic, o.kafka.topic);
    EXPECT_FALSE(r.error.empty()) << r.reason;
    // Message i of the bad ones sits at offset 2i+1 (each follows one valid event).
    EXPECT_EQ(r.offset, std::to_string(2 * i + 1)) << r.reason;
    if (partition < 0) partition = std::stoi(r.partition);
    EXPECT_EQ(r.partition, std::to_string(partition));
    if (r.reason != "oversized") {
      EXPECT_EQ(r.payload, bad[i].second);
    } else {
      EXPECT_EQ(r.payload.size(), static_cast<size_t>(o.kafka.max_message_bytes));
    }
  }
}

// Offsets shared by two instances stand in for durable state (each instance flushes its
// engine's offsets there before a revocation; a new owner seeks to them).
struct SharedOffsets {
  std::mutex mu;
  std::map<int32_t, int64_t> offsets;
  KafkaSourceHooks HooksFor(engine::Engine& engine) {
    KafkaSourceHooks h;
    h.seek_offsets = [this] {
      std::lock_guard lock(mu);
      return offsets;
    };
    h.before_revoke = [this, &engine] {
      std::lock_guard lock(mu);
      for (const auto& [p, next] : engine.NextOffsets()) {
        offsets[p] = std::max(offsets[p], next);
      }
      return Status::Ok();
    };
    return h;
  }
};

// One daemon instance as `simstream serve` wires it: a RocksDB store of its own, the engine
// loaded from it, the flusher, and the consumer's hooks (seek to the stored offsets, flush before
// a revocation, commit the durable offsets, backpressure).
struct DurableInstance {
  std::filesystem::path dir;
  std::unique_ptr<storage::StateStore> store;
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<storage::Flusher> flusher;
  std::unique_ptr<KafkaSource> source;

  DurableInstance(const config::Options& base, std::filesystem::path d) : dir(std::move(d)) {
    config::Options o = base;
    o.storage.path = dir.string();
    o.storage.flush_interval_ms = 50;
    auto st = storage::OpenRocksDbStore(o.storage, o.model, o.kafka.topic);
    EXPECT_TRUE(st.ok()) << st.error().message;
    if (!st.ok()) return;
    store = std::move(st.value());
    engine = std::make_unique<engine::Engine>(o);
    EXPECT_TRUE(store->LoadInto(*engine).ok());
    flusher = std::make_unique<storage::Flusher>(*engine, *store, o.storage);
    flusher->Start();
    KafkaSourceHooks h;
    h.seek_offsets = [this] {
      auto stored = store->Offsets();
      return stored.ok() ? stored.value() : std::map<int32_t, int64_t>{};
    };
    h.before_revoke = [this] { return flusher->FlushNow(); };
    h.after_batch = [this] { (void)flusher->MaybeFlush(); };
    h.backpressure = [this] { return flusher->stats().pending; };
    h.durable_offsets = [this] { return flusher->SyncedOffsets(); };
    auto src = KafkaSource::Create(o.kafka, engine::EventRulesFrom(o), *engine, h);
    EXPECT_TRUE(src.ok()) << src.error().message;
    if (src.ok()) source = std::move(src.value());
  }
  bool ok() const { return source != nullptr; }
  // Stops consuming (flush, commit, leave the group) and flushes once more, as serve does.
  void Stop() {
    if (source) {
      EXPECT_TRUE(source->Stop().ok());
    }
    if (flusher) {
      EXPECT_TRUE(flusher->Stop().ok());
    }
  }
  ~DurableInstance() {
    if (source) (void)source->Stop();
    if (flusher) (void)flusher->Stop();
  }
};

// What a store holds: events_applied and each user's event count, read back into a fresh engine.
struct Stored {
  uint64_t events_applied = 0;
  std::unique_ptr<engine::Engine> engine;
};
Stored ReadStore(const config::Options& base, storage::StateStore& store) {
  Stored out;
  out.engine = std::make_unique<engine::Engine>(base);
  EXPECT_TRUE(store.LoadInto(*out.engine).ok());
  out.events_applied = out.engine->events_applied();
  return out;
}

struct TempDir {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / Unique("simstream_kafka");
  TempDir() { std::filesystem::create_directories(dir); }
  ~TempDir() { std::filesystem::remove_all(dir); }
};

TEST(KafkaIngest, TwoConsumersSplitPartitionsAndTakeOverRealBroker) {
  REQUIRE_REAL_BROKER();
  TempDir tmp;
  const config::Options o = MakeOptions(brokers, Unique("group"));
  const auto first = MakeEvents(2000, 60, kItems, 11);
  const auto second = MakeEvents(2000, 60, kItems, 12);
  const auto third = MakeEvents(2000, 60, kItems, 13);
  // Half of the first stream creates the topic (4 partitions: the broker's default); the other
  // half is published once the group has split the partitions, so both members must apply
  // some (the first member may well drain the first half alone before the second joins).
  const std::vector<engine::Event> first_early(first.begin(), first.begin() + 1000);
  const std::vector<engine::Event> first_late(first.begin() + 1000, first.end());
  PublishAll(o.kafka, first_early);

  // Each instance has a RocksDB store of its own: a partition moving between them starts at
  // the later of the new owner's stored offset and the offset the old owner committed.
  auto a = std::make_unique<DurableInstance>(o, tmp.dir / "a");
  DurableInstance b(o, tmp.dir / "b");
  ASSERT_TRUE(a->ok() && b.ok());
  ASSERT_TRUE(a->source->Start().ok());
  ASSERT_TRUE(b.source->Start().ok());
  auto split = [&] {
    return a->source->Stats().assigned.size() == 2 && b.source->Stats().assigned.size() == 2;
  };
  ASSERT_TRUE(WaitFor(split, 90s))
      << a->source->Stats().assigned.size() << " " << b.source->Stats().assigned.size();
  PublishAll(o.kafka, first_late);
  ASSERT_TRUE(WaitFor(
      [&] {
        return split() && a->engine->events_applied() + b.engine->events_applied() >= first.size();
      },
      90s))
      << a->source->Stats().assigned.size() << " " << b.source->Stats().assigned.size() << " "
      << a->engine->events_applied() + b.engine->events_applied();
  EXPECT_GT(a->engine->events_applied(), 0u);
  EXPECT_GT(b.engine->events_applied(), 0u);
  const uint64_t a_before = a->engine->events_applied();

  // A leaves (flushing and committing first); B takes over its partitions.
  a->Stop();
  PublishAll(o.kafka, second);
  ASSERT_TRUE(WaitFor(
      [&] {
        return b.source->Stats().assigned.size() == 4 &&
               a->engine->events_applied() + b.engine->events_applied() >=
                   first.size() + second.size();
      },
      90s))
      << a->engine->events_applied() + b.engine->events_applied();
  EXPECT_EQ(a->engine->events_applied(), a_before);
  a.reset();  // closes A's store

  // A comes back on its old store, whose offsets for the partitions it gets back are now
  // behind what B consumed of them: it must start where B stopped, not re-apply B's events.
  a = std::make_unique<DurableInstance>(o, tmp.dir / "a");
  ASSERT_TRUE(a->ok());
  EXPECT_EQ(a->engine->events_applied(), a_before);
  ASSERT_TRUE(a->source->Start().ok());
  ASSERT_TRUE(WaitFor(split, 90s))
      << a->source->Stats().assigned.size() << " " << b.source->Stats().assigned.size();
  PublishAll(o.kafka, third);
  const uint64_t total = first.size() + second.size() + third.size();
  ASSERT_TRUE(WaitFor(
      [&] { return a->engine->events_applied() + b.engine->events_applied() >= total; }, 90s))
      << a->engine->events_applied() + b.engine->events_applied();
  EXPECT_GT(a->engine->events_applied(), a_before);
  a->Stop();
  b.Stop();

  // Exact across both stores: every event in exactly one of them.
  Stored sa = ReadStore(o, *a->store), sb = ReadStore(o, *b.store);
  EXPECT_EQ(sa.events_applied + sb.events_applied, total);
  std::vector<engine::Event> all = first;
  all.insert(all.end(), second.begin(), second.end());
  all.insert(all.end(), third.begin(), third.end());
  ExpectUserCounts({sa.engine.get(), sb.engine.get()}, CountByUser(all));
}

// ---- embedded mock cluster ---------------------------------------------------------------

TEST(KafkaIngest, BackpressurePausesAndResumesMock) {
  auto cluster = MockCluster::Start(1);
  ASSERT_TRUE(cluster.ok()) << cluster.error().message;
  const config::Options o = MakeOptions((*cluster)->bootstrap_servers(), Unique("bp"));
  ASSERT_TRUE((*cluster)->CreateTopic(o.kafka.topic, 2).ok());
  const auto events = MakeEvents(500, 20, kItems, 3);
  PublishAll(o.kafka, events);

  std::atomic<bool> behind{true};
  KafkaSourceHooks hooks;
  hooks.backpressure = [&] { return behind.load(); };
  engine::Engine engine(o);
  auto src = KafkaSource::Create(o.kafka, engine::EventRulesFrom(o), engine, hooks);
  ASSERT_TRUE(src.ok());
  ASSERT_TRUE((*src)->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return (*src)->Stats().assigned.size() == 2; }, 30s));
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(engine.events_applied(), 0u);
  EXPECT_TRUE((*src)->Stats().paused);
  behind = false;
  ASSERT_TRUE(WaitFor([&] { return engine.events_applied() == events.size(); }, 30s))
      << engine.events_applied();
  EXPECT_FALSE((*src)->Stats().paused);
  EXPECT_GE((*src)->Stats().pauses, 1u);
  ExpectUserCounts({&engine}, CountByUser(events));
  EXPECT_TRUE((*src)->Stop().ok());
}

// librdkafka keeps a partition paused through its revocation and reassignment. Here the flush
// before the revocation clears the backlog (as the flusher's does), so the reassigned
// partitions must be resumed by name, not left paused for good.
TEST(KafkaIngest, PartitionsPausedBeforeARebalanceAreResumedAfterItMock) {
  auto cluster = MockCluster::Start(1);
  ASSERT_TRUE(cluster.ok()) << cluster.error().message;
  const config::Options o = MakeOptions((*cluster)->bootstrap_servers(), Unique("bp_rebalance"));
  ASSERT_TRUE((*cluster)->CreateTopic(o.kafka.topic, 4).ok());
  const auto events = MakeEvents(800, 40, kItems, 5);
  PublishAll(o.kafka, events);

  std::atomic<bool> behind{true};
  std::atomic<int> revocations{0};
  KafkaSourceHooks hooks;
  hooks.backpressure = [&] { return behind.load(); };
  hooks.before_revoke = [&] {
    ++revocations;
    behind = false;  // the flush caught up
    return Status::Ok();
  };
  engine::Engine a(o), b(o);
  auto src_a = KafkaSource::Create(o.kafka, engine::EventRulesFrom(o), a, hooks);
  ASSERT_TRUE(src_a.ok());
  ASSERT_TRUE((*src_a)->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return (*src_a)->Stats().assigned.size() == 4; }, 30s));
  std::this_thread::sleep_for(1000ms);
  EXPECT_EQ(a.events_applied(), 0u);
  ASSERT_TRUE((*src_a)->Stats().paused);

  // A second member: A's partitions are revoked (paused) and two come back to it.
  auto src_b = KafkaSource::Create(o.kafka, engine::EventRulesFrom(o), b, {});
  ASSERT_TRUE(src_b.ok());
  ASSERT_TRUE((*src_b)->Start().ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        return (*src_a)->Stats().assigned.size() == 2 && (*src_b)->Stats().assigned.size() == 2;
      },
      60s))
      << (*src_a)->Stats().assigned.size() << " " << (*src_b)->Stats().assigned.size();
  EXPECT_GE(revocations.load(), 1);
  ASSERT_TRUE(
      WaitFor([&] { return a.events_applied() + b.events_applied() == events.size(); }, 30s))
      << a.events_applied() << " + " << b.events_applied();
  EXPECT_GT(a.events_applied(), 0u);
  EXPECT_GT(b.events_applied(), 0u);
  EXPECT_FALSE((*src_a)->Stats().paused);
  ExpectUserCounts({&a, &b}, CountByUser(events));
  EXPECT_TRUE((*src_b)->Stop().ok());
  EXPECT_TRUE((*src_a)->Stop().ok());
}

// A new owner that cannot read the group's committed offsets (OffsetFetch fails) starts where
// the group committed, not at its own (empty) store's offsets: the previous owner's events are
// in that owner's store, and applying them here too would count them twice across the group.
TEST(KafkaIngest, AnUnreadableCommittedOffsetStartsWhereTheGroupCommittedMock) {
  auto cluster = MockCluster::Start(1);
  ASSERT_TRUE(cluster.ok()) << cluster.error().message;
  const config::Options o = MakeOptions((*cluster)->bootstrap_servers(), Unique("committed"));
  ASSERT_TRUE((*cluster)->CreateTopic(o.kafka.topic, 1).ok());
  TempDir tmp;
  const auto first = MakeEvents(300, 30, kItems, 9);
  const auto second = MakeEvents(200, 30, kItems, 10);
  PublishAll(o.kafka, first);
  {
    DurableInstance a(o, tmp.dir / "a");
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(a.source->Start().ok());
    ASSERT_TRUE(WaitFor([&] { return a.engine->events_applied() == first.size(); }, 30s));
    a.Stop();  // flushes, then commits the durable offsets
  }
  PublishAll(o.kafka, second);
  // The next OffsetFetch (the new owner's own read in its assignment) fails outright.
  constexpr int kOffsetFetch = 9, kGroupAuthorizationFailed = 30;
  (*cluster)->FailNextRequests(kOffsetFetch, {kGroupAuthorizationFailed});
  DurableInstance b(o, tmp.dir / "b");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b.source->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return b.engine->events_applied() >= second.size(); }, 30s))
      << b.engine->events_applied();
  std::this_thread::sleep_for(500ms);  // anything more would arrive now
  EXPECT_EQ(b.engine->events_applied(), second.size());
  ExpectUserCounts({b.engine.get()}, CountByUser(second));
  b.Stop();
}

// A dead letter's offset is applied (and so stored and committed) only once the DLQ holds the
// letter: with every broker answer delayed, the batch that passes a malformed message is not
// applied while its letter is unacknowledged (a crash then would have lost it).
TEST(KafkaIngest, DeadLetteredOffsetsAdvanceOnlyOnceTheDlqHasTheLetterMock) {
  auto cluster = MockCluster::Start(1);
  ASSERT_TRUE(cluster.ok()) << cluster.error().message;
  const config::Options o = MakeOptions((*cluster)->bootstrap_servers(), Unique("dlq_ack"));
  ASSERT_TRUE((*cluster)->CreateTopic(o.kafka.topic, 1).ok());
  ASSERT_TRUE((*cluster)->CreateTopic(o.kafka.EffectiveDlqTopic(), 1).ok());
  const auto events = MakeEvents(60, 10, kItems, 8);
  std::vector<std::pair<std::string, std::string>> msgs;
  for (size_t i = 0; i < events.size(); ++i) {
    if (i == 30) msgs.emplace_back("bad", "{not json");  // offset 30
    msgs.emplace_back(events[i].user, engine::ToJson(events[i]));
  }
  ProduceRaw(o.kafka, msgs);
  ASSERT_TRUE((*cluster)->SetBrokerRtt(1, 300).ok());

  engine::Engine engine(o);
  std::atomic<KafkaSource*> self{nullptr};
  std::atomic<int> passed_checks{0}, unacknowledged_when_passed{0};
  KafkaSourceHooks hooks;
  hooks.after_batch = [&] {
    KafkaSource* src = self.load();
    if (src == nullptr) return;
    const auto next = engine.NextOffsets();
    if (next.count(0) == 0 || next.at(0) <= 30) return;
    ++passed_checks;
    if (src->Stats().dlq_unacknowledged > 0) ++unacknowledged_when_passed;
  };
  auto src = KafkaSource::Create(o.kafka, engine::EventRulesFrom(o), engine, hooks);
  ASSERT_TRUE(src.ok());
  self = src->get();
  ASSERT_TRUE((*src)->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return engine.events_applied() == events.size(); }, 60s))
      << engine.events_applied();
  EXPECT_GT(passed_checks.load(), 0);
  EXPECT_EQ(unacknowledged_when_passed.load(), 0);
  EXPECT_EQ(engine.NextOffsets().at(0), static_cast<int64_t>(msgs.size()));
  EXPECT_EQ((*src)->Stats().dlq_delivery_failures, 0u);
  ASSERT_TRUE((*cluster)->SetBrokerRtt(1, 0).ok());
  EXPECT_TRUE((*src)->Stop().ok());
  const auto records = ReadDlq((*cluster)->bootstrap_servers(), o.kafka.EffectiveDlqTopic(), 1, 1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].offset, "30");
  EXPECT_EQ(records[0].reason, "not_json");
}

// A DLQ that does not answer (here: 150 produce requests in a row refused with a retriable
// error, some 15 s of retries) holds ingestion at most 2 s, not until it answers.
TEST(KafkaIngest, AnUnansweringDlqHoldsIngestionAtMostBrieflyMock) {
  auto cluster = MockCluster::Start(1);
  ASSERT_TRUE(cluster.ok()) << cluster.error().message;
  config::Options o = MakeOptions((*cluster)->bootstrap_servers(), Unique("dlq_slow"));
  o.kafka.batch_size = 20;
  ASSERT_TRUE((*cluster)->CreateTopic(o.kafka.topic, 1).ok());
  ASSERT_TRUE((*cluster)->CreateTopic(o.kafka.EffectiveDlqTopic(), 1).ok());
  const auto events = MakeEvents(90, 10, kItems, 12);
  std::vector<std::pair<std::string, std::string>> msgs;
  for (size_t i = 0; i < events.size(); ++i) {
    if (i % 30 == 29) msgs.emplace_back("bad", "[1,2]");  // not an object
    msgs.emplace_back(events[i].user, engine::ToJson(events[i]));
  }
  ProduceRaw(o.kafka, msgs);
  constexpr int kProduce = 0, kNotEnoughReplicas = 19;
  (*cluster)->FailNextRequests(kProduce, std::vector<int>(150, kNotEnoughReplicas));
  engine::Engine engine(o);
  auto src = KafkaSource::Create(o.kafka, engine::EventRulesFrom(o), engine, {});
  ASSERT_TRUE(src.ok());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE((*src)->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return engine.events_applied() == events.size(); }, 60s))
      << engine.events_applied();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 10s);
  EXPECT_GT((*src)->Stats().dlq_unacknowledged, 0u);  // the DLQ is still retrying
  EXPECT_EQ(engine.NextOffsets().at(0), static_cast<int64_t>(msgs.size()));
  EXPECT_TRUE((*src)->Stop().ok());
}

// /readyz reads TotalLag(): while a member joins the group with a backlog waiting, its lag is
// unknown, not 0; once each assigned partition is probed it is the backlog; an empty
// assignment (more members than partitions) is a lag of 0.
TEST(KafkaIngest, LagIsUnknownUntilEveryAssignedPartitionIsMeasuredMock) {
  auto cluster = MockCluster::Start(1);
  ASSERT_TRUE(cluster.ok()) << cluster.error().message;
  const config::Options o = MakeOptions((*cluster)->bootstrap_servers(), Unique("lag_known"));
  ASSERT_TRUE((*cluster)->CreateTopic(o.kafka.topic, 1).ok());
  const auto events = MakeEvents(300, 20, kItems, 6);
  PublishAll(o.kafka, events);

  std::atomic<bool> behind{true};  // paused: the backlog stays where it is
  KafkaSourceHooks hooks;
  hooks.backpressure = [&] { return behind.load(); };
  engine::Engine a(o), b(o);
  auto src_a = KafkaSource::Create(o.kafka, engine::EventRulesFrom(o), a, hooks);
  ASSERT_TRUE(src_a.ok());
  EXPECT_FALSE((*src_a)->TotalLag().has_value());
  ASSERT_TRUE((*src_a)->Start().ok());
  int unassigned_seen = 0;
  while ((*src_a)->Stats().assigned.empty()) {
    const bool unassigned = (*src_a)->Stats().rebalances == 0;
    const auto lag = (*src_a)->TotalLag();
    if (unassigned) {
      ++unassigned_seen;
      EXPECT_FALSE(lag.has_value()) << *lag;
    }
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_GT(unassigned_seen, 0);
  ASSERT_TRUE(WaitFor([&] { return (*src_a)->TotalLag().has_value(); }, 10s));
  EXPECT_EQ((*src_a)->TotalLag(), static_cast<int64_t>(events.size()));
  behind = false;
  ASSERT_TRUE(WaitFor([&] { return (*src_a)->TotalLag() == 0; }, 30s));
  EXPECT_EQ(a.events_applied(), events.size());

  // A second member gets no partition of the one there is: known, and 0.
  auto src_b = KafkaSource::Create(o.kafka, engine::EventRulesFrom(o), b, {});
  ASSERT_TRUE(src_b.ok());
  ASSERT_TRUE((*src_b)->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return (*src_b)->Stats().rebalances > 0; }, 60s));
  ASSERT_TRUE(WaitFor([&] { return (*src_b)->TotalLag().has_value(); }, 30s));
  if ((*src_b)->Stats().assigned.empty()) {
    EXPECT_EQ((*src_b)->TotalLag(), 0);
  }
  EXPECT_TRUE((*src_b)->Stop().ok());
  EXPECT_TRUE((*src_a)->Stop().ok());
}

// The consumer tells the engine its lag (Engine::NoteLag, which holds index builds back during
// a catch-up): the events left in the partition behind what it read, 0 once it has read them all.
TEST(KafkaIngest, LagReachesTheEngineMock) {
  auto cluster = MockCluster::Start(1);
  ASSERT_TRUE(cluster.ok()) << cluster.error().message;
  config::Options o = MakeOptions((*cluster)->bootstrap_servers(), Unique("lag"));
  o.kafka.batch_size = 100;
  ASSERT_TRUE((*cluster)->CreateTopic(o.kafka.topic, 1).ok());
  const auto events = MakeEvents(600, 20, kItems, 4);
  PublishAll(o.kafka, events);

  std::atomic<bool> behind{false};
  std::atomic<int> batches{0};
  KafkaSourceHooks hooks;
  hooks.after_batch = [&] {
    if (++batches == 1) behind = true;  // pause after the first batch
  };
  hooks.backpressure = [&] { return behind.load(); };
  engine::Engine engine(o);
  engine.NoteLag(-1);
  auto src = KafkaSource::Create(o.kafka, engine::EventRulesFrom(o), engine, hooks);
  ASSERT_TRUE(src.ok());
  ASSERT_TRUE((*src)->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return (*src)->Stats().paused; }, 30s));
  // The poll thread may have read one more batch while the learner thread applied the first:
  // once paused, everything read gets applied, and the lag is what was not read.
  ASSERT_TRUE(WaitFor([&] { return engine.events_applied() == (*src)->Stats().messages; }, 10s));
  const auto read = static_cast<int64_t>((*src)->Stats().messages);
  EXPECT_GT(read, 0);
  EXPECT_LT(read, static_cast<int64_t>(events.size()));
  const int64_t expected = static_cast<int64_t>(events.size()) - read;
  EXPECT_TRUE(WaitFor([&] { return engine.lag() == expected; }, 10s))
      << engine.lag() << " != " << expected;

  behind = false;
  ASSERT_TRUE(WaitFor([&] { return engine.events_applied() == events.size(); }, 30s))
      << engine.events_applied();
  EXPECT_TRUE(WaitFor([&] { return engine.lag() == 0; }, 10s)) << engine.lag();
  EXPECT_TRUE((*src)->Stop().ok());
}

TEST(KafkaIngest, BrokerDownAndUpRecoversByItselfMock) {
  auto cluster = MockCluster::Start(1);
  ASSERT_TRUE(cluster.ok()) << cluster.error().message;
  const config::Options o = MakeOptions((*cluster)->bootstrap_servers(), Unique("down"));
  ASSERT_TRUE((*cluster)->CreateTopic(o.kafka.topic, 3).ok());
  const auto first = MakeEvents(600, 30, kItems, 5);
  const auto second = MakeEvents(600, 30, kItems, 6);
  PublishAll(o.kafka, first);

  engine::Engine engine(o);
  KafkaSourceOptions so;
  so.probe_interval_ms = 300;
  auto src = KafkaSource::Create(o.kafka, engine::EventRulesFrom(o), engine, {}, so);
  ASSERT_TRUE(src.ok());
  ASSERT_TRUE((*src)->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return engine.events_applied() == first.size(); }, 30s))
      << engine.events_applied() << " applied, " << (*src)->Stats().messages << " consumed, "
      << (*src)->Stats().assigned.size() << " partitions";
  ASSERT_TRUE(WaitFor([&] { return (*src)->Healthy(); }, 10s));

  ASSERT_TRUE((*cluster)->SetBrokerDown(1).ok());
  EXPECT_TRUE(WaitFor([&] { return !(*src)->Healthy(); }, 15s));
  // Produced while the broker is down: the producer retries until it is back.
  auto sink = KafkaEventSink::Create(o.kafka, 60000);
  ASSERT_TRUE(sink.ok());
  std::thread producer([&] {
    auto r = (*sink)->Publish(second);
    EXPECT_TRUE(r.ok()) << r.error().message;
  });
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(engine.events_applied(), first.size());
  ASSERT_TRUE((*cluster)->SetBrokerUp(1).ok());
  producer.join();
  ASSERT_TRUE(WaitFor([&] { return engine.events_applied() >= first.size() + second.size(); }, 60s))
      << engine.events_applied();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(engine.events_applied(), first.size() + second.size());
  std::vector<engine::Event> all = first;
  all.insert(all.end(), second.begin(), second.end());
  ExpectUserCounts({&engine}, CountByUser(all));
  EXPECT_TRUE(WaitFor([&] { return (*src)->Healthy(); }, 15s));
  EXPECT_TRUE((*src)->Stop().ok());
}

// The Kafka API key of the lag probe's offset queries.
constexpr int kListOffsets = 2;

// A consumer whose lag is probed every 300 ms, on a new topic (`tag`) of two partitions that
// holds 300 events (seed `seed`): started, caught up and healthy. The source stops first.
struct ProbedConsumer {
  std::unique_ptr<MockCluster> cluster;
  config::Options options;
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<KafkaSource> source;
};
void StartProbedConsumer(const std::string& tag, uint32_t seed, ProbedConsumer& c) {
  auto cluster = MockCluster::Start(1);
  ASSERT_TRUE(cluster.ok()) << cluster.error().message;
  c.cluster = std::move(*cluster);
  c.options = MakeOptions(c.cluster->bootstrap_servers(), Unique(tag));
  ASSERT_TRUE(c.cluster->CreateTopic(c.options.kafka.topic, 2).ok());
  const auto events = MakeEvents(300, 20, kItems, seed);
  PublishAll(c.options.kafka, events);
  c.engine = std::make_unique<engine::Engine>(c.options);
  KafkaSourceOptions so;
  so.probe_interval_ms = 300;
  auto src =
      KafkaSource::Create(c.options.kafka, engine::EventRulesFrom(c.options), *c.engine, {}, so);
  ASSERT_TRUE(src.ok());
  c.source = std::move(*src);
  ASSERT_TRUE(c.source->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return c.engine->events_applied() == events.size(); }, 30s))
      << c.engine->events_applied();
  ASSERT_TRUE(WaitFor([&] { return c.source->Healthy(); }, 10s));
}

// A broker that stops answering the lag probe's offset queries (ListOffsets) does not hold the
// stop. rd_kafka_query_watermark_offsets waited for the answer past its own timeout (until the
// request timed out, socket.timeout.ms: 60 s by default), and Stop joins the prober.
TEST(KafkaIngest, AnUnansweredLagProbeDoesNotHoldTheStopMock) {
  ProbedConsumer c;
  ASSERT_NO_FATAL_FAILURE(StartProbedConsumer("probe_stall", 41, c));
  MockCluster* cluster = c.cluster.get();
  KafkaSource* src = c.source.get();
  // From now on the broker answers offset queries only after 30 s.
  ASSERT_TRUE(cluster->AnswerNextRequests(1, kListOffsets, 100, 0, 30000).ok());
  std::this_thread::sleep_for(1500ms);  // several probe intervals: a query is outstanding
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(src->Stop().ok());
  const auto took = std::chrono::steady_clock::now() - t0;
  std::printf("stop with an unanswered offset query: %.2f s\n",
              std::chrono::duration<double>(took).count());
  EXPECT_LT(took, 5s);
}

// Offsets queries that fail are retried after a growing pause, not every probe interval (an
// unanswered one stays in flight until socket.timeout.ms), and the lag is measured again once
// they are answered.
TEST(KafkaIngest, FailedOffsetQueriesBackOffAndTheLagIsMeasuredAgainMock) {
  ProbedConsumer c;
  ASSERT_NO_FATAL_FAILURE(StartProbedConsumer("probe_backoff", 43, c));
  MockCluster* cluster = c.cluster.get();
  KafkaSource* src = c.source.get();
  // The next four offsets queries fail at once (a permanent error: no retry inside librdkafka).
  constexpr int kTopicAuthorizationFailed = 29;
  ASSERT_TRUE(cluster->AnswerNextRequests(1, kListOffsets, 4, kTopicAuthorizationFailed, 0).ok());
  const auto t0 = std::chrono::steady_clock::now();
  bool seen_unhealthy = false;  // the lag is unmeasured while its queries fail
  ASSERT_TRUE(WaitFor(
      [&] {
        seen_unhealthy |= !src->Healthy();
        auto n = cluster->PendingAnswers(1, kListOffsets);
        return n.ok() && *n == 0;
      },
      30s));
  const auto took = std::chrono::steady_clock::now() - t0;
  std::printf("four failing offsets queries sent within %.2f s\n",
              std::chrono::duration<double>(took).count());
  // One a probe without a pause (about every 0.3 s: all four within ~1.5 s). With it, the second
  // waits 0.6 s after the first failed, the third 1.2 s and the fourth 2.4 s: 4.2 s at least.
  EXPECT_GE(took, 3s);
  EXPECT_TRUE(seen_unhealthy);
  // The next query is answered: the lag is measured again.
  EXPECT_TRUE(WaitFor([&] { return src->Healthy(); }, 15s));
  EXPECT_TRUE(src->Stop().ok());
}

TEST(KafkaIngest, StopFlushesAndRestartResumesFromStoredOffsetsMock) {
  auto cluster = MockCluster::Start(1);
  ASSERT_TRUE(cluster.ok());
  const config::Options o = MakeOptions((*cluster)->bootstrap_servers(), Unique("restart"));
  ASSERT_TRUE((*cluster)->CreateTopic(o.kafka.topic, 2).ok());
  const auto first = MakeEvents(400, 10, kItems, 21);
  const auto second = MakeEvents(400, 10, kItems, 22);
  PublishAll(o.kafka, first);
  SharedOffsets stored;
  engine::Engine e1(o);
  {
    auto src = KafkaSource::Create(o.kafka, engine::EventRulesFrom(o), e1, stored.HooksFor(e1));
    ASSERT_TRUE(src.ok());
    ASSERT_TRUE((*src)->Start().ok());
    ASSERT_TRUE(WaitFor([&] { return e1.events_applied() == first.size(); }, 30s));
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE((*src)->Stop().ok());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  }
  {
    std::lock_guard lock(stored.mu);
    int64_t sum = 0;
    for (const auto& [p, next] : stored.offsets) sum += next;
    EXPECT_EQ(sum, static_cast<int64_t>(first.size()));  // before_revoke ran on Stop
  }
  PublishAll(o.kafka, second);
  // A second "process": a fresh engine that only knows the stored offsets applies only the
  // second half.
  engine::Engine e2(o);
  auto src = KafkaSource::Create(o.kafka, engine::EventRulesFrom(o), e2, stored.HooksFor(e2));
  ASSERT_TRUE(src.ok());
  ASSERT_TRUE((*src)->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return e2.events_applied() >= second.size(); }, 30s));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(e2.events_applied(), second.size());
  ExpectUserCounts({&e2}, CountByUser(second));
  EXPECT_TRUE((*src)->Stop().ok());
}

// Messages in a topic (the sum of its partitions' high watermarks).
int64_t TopicSize(const std::string& brokers, const std::string& topic, int partitions) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (rk == nullptr) return -1;
  int64_t total = 0;
  for (int p = 0; p < partitions; ++p) {
    int64_t lo = 0, hi = 0;
    if (rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &lo, &hi, 10000) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      total = -1;
      break;
    }
    total += hi;
  }
  rd_kafka_destroy(rk);
  return total;
}

// A dead-lettered message counts as consumed: after a restart it is neither read nor
// dead-lettered again, while the stored offsets cover valid and rejected messages alike.
TEST(KafkaIngest, DeadLetteredMessagesAreNotDeadLetteredAgainAfterRestartMock) {
  auto cluster = MockCluster::Start(1);
  ASSERT_TRUE(cluster.ok());
  TempDir tmp;
  const config::Options o = MakeOptions((*cluster)->bootstrap_servers(), Unique("dlqonce"));
  ASSERT_TRUE((*cluster)->CreateTopic(o.kafka.topic, 2).ok());
  ASSERT_TRUE((*cluster)->CreateTopic(o.kafka.EffectiveDlqTopic(), 1).ok());
  std::vector<std::pair<std::string, std::string>> msgs;
  const int rounds = 20;
  for (int i = 0; i < rounds; ++i) {
    const std::string user = "u" + std::to_string(i % 5);
    msgs.push_back({user, R"({"user":")" + user + R"(","item":"i)" + std::to_string(i) + R"("})"});
    msgs.push_back({user, "{broken " + std::to_string(i)});
  }
  // Each user's (so each partition's) last message is a rejected one: only counting rejected
  // messages as consumed moves the stored offsets to the end.
  msgs.push_back({"u0", "not json at the end"});
  msgs.push_back({"u1", "not json at the end"});
  const size_t bad_first = rounds + 2;
  ProduceRaw(o.kafka, msgs);
  {
    DurableInstance one(o, tmp.dir / "state");
    ASSERT_TRUE(one.ok());
    ASSERT_TRUE(one.source->Start().ok());
    ASSERT_TRUE(WaitFor(
        [&] {
          return one.engine->events_applied() == static_cast<uint64_t>(rounds) &&
                 one.source->Stats().dead_lettered == bad_first;
        },
        30s))
        << one.engine->events_applied() << " " << one.source->Stats().dead_lettered;
    one.Stop();
    auto offsets = one.store->Offsets();
    ASSERT_TRUE(offsets.ok());
    int64_t sum = 0;
    for (const auto& [p, next] : offsets.value()) sum += next;
    EXPECT_EQ(sum, static_cast<int64_t>(msgs.size()));  // rejected ones included
  }
  // A second process on the same state: more of both kinds.
  ProduceRaw(o.kafka, {{"u2", R"({"user":"u2","item":"later"})"}, {"u3", "[1]"}});
  DurableInstance two(o, tmp.dir / "state");
  ASSERT_TRUE(two.ok());
  ASSERT_EQ(two.engine->events_applied(), static_cast<uint64_t>(rounds));
  ASSERT_TRUE(two.source->Start().ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        return two.engine->events_applied() == static_cast<uint64_t>(rounds + 1) &&
               two.source->Stats().dead_lettered >= 1;
      },
      30s))
      << two.engine->events_applied() << " " << two.source->Stats().dead_lettered;
  two.Stop();
  const KafkaSourceStats st = two.source->Stats();
  EXPECT_EQ(st.dead_lettered, 1u);
  EXPECT_EQ(st.messages, 2u);  // nothing of the first process's share was read again
  EXPECT_EQ(two.engine->Stats().events_rejected, 1u);
  EXPECT_EQ(two.engine->Stats().rejected_by_reason.at("not_object"), 1u);
  EXPECT_EQ(TopicSize(o.kafka.brokers, o.kafka.EffectiveDlqTopic(), 1),
            static_cast<int64_t>(bad_first + 1));
  EXPECT_EQ(two.engine->events_applied(), static_cast<uint64_t>(rounds + 1));
}

// An event without "ts" takes its message's timestamp, kept in the log: replaying the log
// gives the same state, whenever it is consumed.
TEST(KafkaIngest, EventWithoutTsTakesTheMessageTimestampMock) {
  auto cluster = MockCluster::Start(1);
  ASSERT_TRUE(cluster.ok());
  const config::Options o = MakeOptions((*cluster)->bootstrap_servers(), Unique("ts"));
  ASSERT_TRUE((*cluster)->CreateTopic(o.kafka.topic, 1).ok());
  {
    auto sink = KafkaEventSink::Create(o.kafka);
    ASSERT_TRUE(sink.ok());
    ASSERT_TRUE((*sink)->PublishAsync("a", R"({"user":"a","item":"i1"})", 1234567, {}).ok());
    ASSERT_TRUE(
        (*sink)->PublishAsync("b", R"({"user":"b","item":"i1","ts":42})", 1234567, {}).ok());
    ASSERT_TRUE((*sink)->Flush(30000).ok());
  }
  for (int replay = 0; replay < 2; ++replay) {
    engine::Engine engine(o);
    auto src = KafkaSource::Create(o.kafka, engine::EventRulesFrom(o), engine);
    ASSERT_TRUE(src.ok());
    ASSERT_TRUE((*src)->Start().ok());
    ASSERT_TRUE(WaitFor([&] { return engine.events_applied() == 2; }, 30s));
    EXPECT_EQ(engine.GetUser("a", false)->last_ts, 1234567);
    EXPECT_EQ(engine.GetUser("b", false)->last_ts, 42);
    EXPECT_TRUE((*src)->Stop().ok());
  }
}

}  // namespace
}  // namespace simstream::connectors
