// The stream consumer: Kafka topic -> validation -> engine, with dead-lettering, durable-offset
// seeking, backpressure and health for /readyz.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "config/options.hpp"
#include "config/result.hpp"
#include "engine/engine.hpp"
#include "engine/event.hpp"

namespace simstream::connectors {

// How the consumer cooperates with durable state. Every hook is optional and, unless noted,
// called on the consumer's poll thread, never concurrently with itself; before_revoke and
// seek_offsets also never concurrently with Apply.
struct KafkaSourceHooks {
  // The stored next offset per partition (storage::StateStore::Offsets()). Called on every
  // assignment. An assigned partition starts at the later of its stored offset and the group's
  // committed offset (another instance, with a state of its own, may have consumed further
  // before handing it over: what lies before is in that instance's state, and
  // Engine::AdvanceOffsets marks it consumed here); with neither, at the beginning of the log.
  // Unset: the engine's own NextOffsets().
  std::function<std::map<int32_t, int64_t>()> seek_offsets;
  // Makes state and offsets durable (storage::Flusher::FlushNow()). Called before partitions
  // are revoked (rebalance, Stop()), after the last batch of those partitions was applied.
  std::function<Status()> before_revoke;
  // Called after each applied batch (storage::Flusher::MaybeFlush(): the size trigger), on the
  // learner thread, so possibly beside backpressure on the poll thread.
  std::function<void()> after_batch;
  // True while the state writer is behind: the consumer pauses its partitions (it keeps
  // polling, so group membership and rebalances go on) and resumes once this turns false.
  std::function<bool()> backpressure;
  // The offsets known durable (storage::StateStore::Offsets()); polled every
  // `commit_interval_ms` and committed to Kafka (async: for lag tools), and committed again,
  // waiting up to 2 s for the result, right after before_revoke made them durable (so the next
  // owner starts where this one stopped). Only offsets of owned partitions, and never below the
  // offset a partition was assigned at, are committed. Unset: nothing is committed.
  std::function<std::map<int32_t, int64_t>()> durable_offsets;
};

struct KafkaSourceOptions {
  // How long the first poll of a batch waits for a message. Default: 100.
  int poll_timeout_ms = 100;
  // How often durable_offsets is committed to Kafka. Default: 1000.
  int commit_interval_ms = 1000;
  // How often health and lag are probed (metadata and watermark requests). Default: 1000.
  int probe_interval_ms = 1000;
  // Longest Stop(): the final flush plus leaving the group. Default: 4000.
  int close_timeout_ms = 4000;
};

struct KafkaSourceStats {
  uint64_t messages = 0;       // messages consumed (valid and invalid)
  uint64_t applied = 0;        // events newly applied to the engine
  uint64_t duplicates = 0;     // messages skipped as already applied or dead-lettered
  uint64_t dead_lettered = 0;  // messages sent to the DLQ
  uint64_t batches = 0;
  uint64_t pauses = 0;  // times consumption was paused by backpressure
  bool paused = false;
  uint64_t rebalances = 0;
  std::map<int32_t, int64_t> assigned;  // partition -> offset sought at assignment
  std::map<std::string, uint64_t> dead_lettered_by_reason;
  uint64_t dlq_delivery_failures = 0;
  uint64_t dlq_unacknowledged = 0;  // dead letters sent and not yet acknowledged
};

// Consumes `kafka.topic` in consumer group `kafka.group` (enable.auto.commit=false,
// auto.offset.reset=earliest, kafka.properties passed through), validates each message with
// engine::ParseEvent and applies valid events to the engine in batches of up to
// kafka.batch_size, each with its (partition, offset) so a redelivered event is skipped. An event
// without "ts" takes the message timestamp (CreateTime or LogAppendTime, kept in the log), or 0
// when the message has none: never the wall clock, so replaying a log is deterministic.
// Messages larger than kafka.max_message_bytes and invalid events go to the DLQ
// (kafka.dlq_topic) with their reason and origin in headers, are counted with
// Engine::RecordRejected, and their offsets count as consumed (Engine::AdvanceOffsets), so once
// flushed they are not read again after a restart; a message below the engine's next offset at
// assignment is skipped before validation, so it is not dead-lettered twice by one process.
// Ingestion never stops for them. (A kill -9 between a dead-lettering and the next flush
// dead-letters that message again after the restart: the DLQ is at-least-once.)
//
// Two threads: the poll thread ("ss-consume") reads and validates a batch while the learner
// thread ("ss-learn") applies the previous one, so validation (JSON, UTF-8, ids) is off the
// learner's path. Memory is bounded: at most one validated batch waits for the learner, so
// beyond librdkafka's prefetch queue (capped by queued.max.messages.kbytes, default here 16 MiB)
// at most three batches are held; when the state writer falls behind, `backpressure` pauses
// fetching altogether. A rebalance and Stop() first wait until everything read is applied.
//
// A broker outage is ridden out: librdkafka reconnects on its own, Healthy() turns false
// while no broker answers, and consumption resumes where it stopped.
//
// Thread safety: Start/Stop from one thread; everything else from any thread.
class KafkaSource {
 public:
  // `engine` must outlive the source. Errors: "invalid_config" (e.g. a bad property),
  // "kafka_error".
  [[nodiscard]] static Result<std::unique_ptr<KafkaSource>> Create(
      const config::KafkaOptions& kafka, const engine::EventRules& rules, engine::Engine& engine,
      KafkaSourceHooks hooks = {}, KafkaSourceOptions options = {});
  ~KafkaSource();  // Stop()
  KafkaSource(const KafkaSource&) = delete;
  KafkaSource& operator=(const KafkaSource&) = delete;

  // Subscribes and starts the poll and learner threads. Errors: "kafka_error".
  [[nodiscard]] Status Start();
  // Stops polling, applies what was already read, calls before_revoke, flushes the DLQ and
  // leaves the group, all within close_timeout_ms (past it, the group is left uncleanly and the
  // broker notices at session timeout). Idempotent. Returns before_revoke's error, if any.
  Status Stop();

  // True when a recent probe reached the cluster and measured the lag of every assigned
  // partition (false until the first does, and while offsets queries fail or back off: at most
  // 8 probe timeouts after the last failed one).
  bool Healthy() const;
  // Messages behind the high watermark per assigned partition (as of the last probe).
  std::map<int32_t, int64_t> Lag() const;
  // Their sum, or nullopt while it is not known: before the first assignment (a group join
  // with a backlog must not read as "caught up") and until every partition assigned since has
  // been probed. An empty assignment (more members than partitions) has a lag of 0.
  std::optional<int64_t> TotalLag() const;
  KafkaSourceStats Stats() const;

  struct Impl;  // implementation detail (librdkafka handles), defined in kafka_source.cpp

 private:
  explicit KafkaSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace simstream::connectors
