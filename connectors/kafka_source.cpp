#include "connectors/kafka_source.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <thread>
#include <vector>

#include "connectors/dlq.hpp"
#include "connectors/kafka_common.hpp"
#include "engine/thread_name.hpp"

namespace simstream::connectors {

using Clock = std::chrono::steady_clock;

// How long a batch that dead-lettered anything waits for the DLQ's acknowledgements.
constexpr std::chrono::milliseconds kDlqAckWait{2000};

struct KafkaSource::Impl {
  config::KafkaOptions kafka;
  engine::EventRules rules;
  engine::Engine* engine = nullptr;
  KafkaSourceHooks hooks;
  KafkaSourceOptions options;
  std::unique_ptr<DlqProducer> dlq;
  kafka::HandlePtr rk;

  // ---- poll thread only ----
  std::vector<engine::SourcedEvent> pending;  // read, not yet handed to the learner thread
  std::map<int32_t, int64_t> pending_skip;    // partition -> offset after the last rejected one
  std::map<std::string, uint64_t, std::less<>> pending_rejected;  // reason -> messages
  // partition -> the engine's next offset at assignment: a message below it was already
  // applied or dead-lettered by this process (redelivered after the stored offsets lagged).
  std::map<int32_t, int64_t> skip_below;
  bool paused = false;
  // Partitions this consumer paused and has not resumed since. librdkafka keeps an
  // application's pause on a partition through its revocation and reassignment (and through a
  // cooperative rebalance for the partitions kept), so they stay paused until resumed by name.
  std::set<int32_t> app_paused;
  bool revoked_for_stop = false;
  // Once stopping: how long a batch may still wait for its dead letters' acknowledgements.
  Clock::time_point dlq_wait_until = Clock::time_point::max();
  bool dlq_stalled = false;  // poll thread: the DLQ did not answer within kDlqAckWait

  // ---- shared, under mu ----
  mutable std::mutex mu;
  std::map<int32_t, int64_t> assigned;       // partition -> offset sought
  std::map<int32_t, int64_t> consumed_next;  // partition -> next offset to read
  std::map<int32_t, int64_t> lag;
  bool assignment_known = false;  // an assignment (perhaps empty) has been recorded
  KafkaSourceStats stats;

  // Health: the last successful probe, and whether librdkafka has since reported every broker
  // down (a probe can block longer than its timeout while brokers are unreachable).
  std::atomic<int64_t> last_probe_ok_ms{-1};
  std::atomic<bool> all_brokers_down{false};
  std::atomic<bool> stopping{false};
  bool started = false;
  bool stopped = false;
  std::thread poller;
  std::thread prober;

  // ---- the hand-over from the poll thread to the learner thread, under hand_mu ----
  // Validation (JSON, UTF-8, ids) of the next batch runs on the poll thread while the learner
  // thread applies the previous one. At most one batch waits in `handed` and one is applied:
  // the poll thread waits for the slot, so memory stays bounded (three batches with the one
  // being read).
  struct Batch {
    std::vector<engine::SourcedEvent> events;
    std::map<int32_t, int64_t> skip;  // dead-lettered positions, consumed after `events`
    // Dead-lettered messages by reason, for Engine::RecordRejected: recorded by the learner
    // thread, so validation never waits on the engine's writer lock.
    std::map<std::string, uint64_t, std::less<>> rejected;
  };
  std::mutex hand_mu;
  std::condition_variable hand_cv;
  std::optional<Batch> handed;
  bool applying = false;
  // Events read but not yet applied (in `handed` or being applied): part of the lag NoteLag
  // reports, which counts what is not applied yet.
  std::atomic<int64_t> in_flight{0};
  bool learner_stop = false;
  std::thread learner;
  std::mutex probe_mu;
  std::condition_variable probe_cv;

  void PollLoop();
  void ProbeLoop();
  // The lag of each assigned partition from one pair of offsets queries; nullopt when either
  // failed or a stop began between them.
  std::optional<std::map<int32_t, int64_t>> MeasureLag(
      const std::map<int32_t, int64_t>& assigned_now,
      const std::map<int32_t, int64_t>& consumed_now, int timeout_ms);
  void Handle(rd_kafka_message_t* msg);
  // Hands what was read to the learner thread (waiting while the previous batch still waits,
  // and, when the batch dead-lettered anything, for the DLQ's acknowledgements).
  void Submit();
  // Waits until no dead letter is outstanding (at most kDlqAckWait); false when stopping cut
  // the wait short.
  bool AwaitDeadLetters();
  // Submit(), then waits until the learner thread has applied everything handed to it.
  void Drain();
  void LearnLoop();
  void StopLearner();
  // Tells the engine how many events wait in Kafka behind what was read (Engine::NoteLag),
  // from the high watermarks librdkafka caches from every fetch response: no request.
  void NoteLag();
  Status Revoke();
  void OnRebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts);
  void SetPaused(bool pause);
  // Commits offsets of owned partitions; wait_ms > 0 waits up to that long for the result.
  void Commit(const std::map<int32_t, int64_t>& offsets, int wait_ms);
  // The group's committed offsets of `parts`; nullopt when they could not be read.
  std::optional<std::map<int32_t, int64_t>> Committed(const rd_kafka_topic_partition_list_t* parts);
};

namespace {

void RebalanceCb(rd_kafka_t* /*rk*/, rd_kafka_resp_err_t err,
                 rd_kafka_topic_partition_list_t* parts, void* opaque) {
  static_cast<KafkaSource::Impl*>(opaque)->OnRebalance(err, parts);
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

void ErrorCb(rd_kafka_t* /*rk*/, int err, const char* reason, void* opaque) {
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
    static_cast<KafkaSource::Impl*>(opaque)->all_brokers_down.store(true);
  }
  // librdkafka retries on its own; these are reports, not decisions. Fatal errors (e.g. a
  // fenced idempotent producer) do not occur on a consumer.
  std::fprintf(stderr, "simstream: kafka: %s: %s\n",
               rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)), reason);
}

// Events of one partition behind what was read: the high watermark `hi` less the next offset to
// read, which is `consumed` (the offset after the last message read, or -1 before the first),
// else `sought` (the offset the partition was assigned at), else the low watermark `lo` (a
// logical `sought`: the beginning of the log). An unknown `lo` (librdkafka's -1001 before a
// fetch) counts as 0. The prober and NoteLag both use it.
int64_t PartitionLag(int64_t lo, int64_t hi, int64_t sought, int64_t consumed) {
  lo = std::max<int64_t>(lo, 0);
  const int64_t next = consumed >= 0 ? consumed : (sought >= 0 ? sought : lo);
  return std::max<int64_t>(0, hi - std::max(lo, next));
}

// The offsets of `topic`'s partitions `parts` at `which` (RD_KAFKA_OFFSET_BEGINNING: the low
// watermarks, RD_KAFKA_OFFSET_END: the high ones), one ListOffsets request per leader, waiting
// at most `timeout_ms`; nullopt when any partition has no answer. Not
// rd_kafka_query_watermark_offsets: once its request is sent it waits for the answer past its
// timeout (until the request times out, socket.timeout.ms), and the stop joins the prober.
std::optional<std::map<int32_t, int64_t>> ListOffsets(rd_kafka_t* rk, const std::string& topic,
                                                      const std::vector<int32_t>& parts,
                                                      int64_t which, int timeout_ms) {
  kafka::PartitionListPtr list(
      rd_kafka_topic_partition_list_new(static_cast<int>(std::max<size_t>(1, parts.size()))));
  for (int32_t p : parts)
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = which;
  if (rd_kafka_offsets_for_times(rk, list.get(), timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return std::nullopt;
  }
  std::map<int32_t, int64_t> out;
  for (int i = 0; i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& e = list->elems[i];
    if (e.err != RD_KAFKA_RESP_ERR_NO_ERROR || e.offset < 0) return std::nullopt;
    out[e.partition] = e.offset;
  }
  if (out.size() != parts.size()) return std::nullopt;  // an answer for each, or none
  return out;
}

bool IsCooperative(rd_kafka_t* rk) {
  const char* proto = rd_kafka_rebalance_protocol(rk);
  return proto != nullptr && std::strcmp(proto, "COOPERATIVE") == 0;
}

}  // namespace

void KafkaSource::Impl::OnRebalance(rd_kafka_resp_err_t err,
                                    rd_kafka_topic_partition_list_t* parts) {
  const bool cooperative = IsCooperative(rk.get());
  {
    std::lock_guard lock(mu);
    ++stats.rebalances;
  }
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    Drain();  // the engine's offsets read below include everything read so far
    const std::map<int32_t, int64_t> stored =
        hooks.seek_offsets ? hooks.seek_offsets() : engine->NextOffsets();
    // Another instance (with its own store) may have consumed further: it committed its
    // durable offsets before giving the partition up. Start at the later of the two.
    // Until they are read: starting at our own, older offsets would apply again what another
    // instance holds. The rebalance waits meanwhile (past max.poll.interval.ms the group goes
    // on without this member, which then rejoins).
    std::optional<std::map<int32_t, int64_t>> committed = Committed(parts);
    for (int attempt = 1; !committed && !stopping.load(); ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(attempt, 10) * 200));
      committed = Committed(parts);
    }
    if (!committed) committed.emplace();  // stopping: nothing more is applied
    const std::map<int32_t, int64_t> engine_next = engine->NextOffsets();
    std::map<int32_t, int64_t> taken_over;
    {
      std::lock_guard lock(mu);
      for (int i = 0; i < parts->cnt; ++i) {
        rd_kafka_topic_partition_t& p = parts->elems[i];
        auto st = stored.find(p.partition);
        int64_t offset = st != stored.end() ? st->second : RD_KAFKA_OFFSET_BEGINNING;
        if (auto co = committed->find(p.partition); co != committed->end() && co->second > offset) {
          offset = co->second;
          taken_over[p.partition] = offset;
        }
        p.offset = offset;
        assigned[p.partition] = p.offset;
        consumed_next.erase(p.partition);
        auto en = engine_next.find(p.partition);
        skip_below[p.partition] = en != engine_next.end() ? en->second : 0;
      }
      stats.assigned = assigned;
      assignment_known = true;
    }
    // What lies before the committed offset is in the other instance's state: this one must
    // neither apply it nor store (or commit) an offset below it.
    engine->AdvanceOffsets(taken_over);
  } else {
    // Everything read from these partitions is applied and made durable before another
    // consumer may start on them from the stored offsets.
    if (auto st = Revoke(); !st.ok()) {
      std::fprintf(stderr, "simstream: kafka: flush before revocation failed: %s\n",
                   st.error().message.c_str());
    }
    std::lock_guard lock(mu);
    for (int i = 0; i < parts->cnt; ++i) {
      assigned.erase(parts->elems[i].partition);
      lag.erase(parts->elems[i].partition);
    }
    stats.assigned = assigned;
    // Eager: everything goes, and the next assignment is not known yet (an empty map now is
    // not "no partitions, lag 0"). Cooperative: the partitions kept stay known.
    if (!cooperative) assignment_known = false;
  }
  if (cooperative) {
    rd_kafka_error_t* e = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
                              ? rd_kafka_incremental_assign(rk.get(), parts)
                              : rd_kafka_incremental_unassign(rk.get(), parts);
    if (e != nullptr) {
      std::fprintf(stderr, "simstream: kafka: incremental assignment: %s\n",
                   rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
    }
  } else {
    const rd_kafka_resp_err_t e =
        rd_kafka_assign(rk.get(), err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? parts : nullptr);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::fprintf(stderr, "simstream: kafka: assignment: %s\n", rd_kafka_err2str(e));
    }
  }
  // Every assigned partition as backpressure asks, before a message of the new assignment is
  // fetched: one paused before it was revoked would otherwise stay paused for good.
  SetPaused(hooks.backpressure && hooks.backpressure());
}

Status KafkaSource::Impl::Revoke() {
  Drain();
  if (stopping.load()) {
    if (revoked_for_stop) return Status::Ok();
    revoked_for_stop = true;
  }
  Status st = hooks.before_revoke ? hooks.before_revoke() : Status::Ok();
  // The next owner of these partitions may have a state of its own: it starts at the later of
  // its stored offsets and the committed ones, so commit what was just made durable, and wait.
  // Not when stopping with every broker down: the commit could only time out, and one still
  // outstanding holds the consumer's destruction for seconds past the stop's budget. The
  // stored offsets are durable either way, and the next start commits them.
  // After a failed flush too: what is synced is durable whatever the failure, and the next
  // owner should not apply it again.
  const bool unreachable = stopping.load() && all_brokers_down.load();
  if (hooks.durable_offsets && !unreachable) {
    Commit(hooks.durable_offsets(), /*wait_ms=*/2000);
  }
  return st;
}

std::optional<std::map<int32_t, int64_t>> KafkaSource::Impl::Committed(
    const rd_kafka_topic_partition_list_t* parts) {
  std::map<int32_t, int64_t> out;
  kafka::PartitionListPtr list(rd_kafka_topic_partition_list_copy(parts));
  const rd_kafka_resp_err_t e = rd_kafka_committed(rk.get(), list.get(), 5000);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::fprintf(stderr, "simstream: kafka: reading committed offsets: %s\n", rd_kafka_err2str(e));
    return std::nullopt;
  }
  for (int i = 0; i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = list->elems[i];
    if (p.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::fprintf(stderr, "simstream: kafka: reading the committed offset of partition %d: %s\n",
                   static_cast<int>(p.partition), rd_kafka_err2str(p.err));
      return std::nullopt;
    }
    if (p.offset >= 0) out[p.partition] = p.offset;  // none committed: RD_KAFKA_OFFSET_INVALID
  }
  return out;
}

void KafkaSource::Impl::SetPaused(bool pause) {
  kafka::PartitionListPtr list;
  {
    std::lock_guard lock(mu);
    list.reset(rd_kafka_topic_partition_list_new(static_cast<int>(assigned.size())));
    for (const auto& [p, off] : assigned) {
      // Each partition paused once and resumed once: a fresh partition's fetch is left alone.
      if (pause ? !app_paused.insert(p).second : app_paused.erase(p) == 0) continue;
      rd_kafka_topic_partition_list_add(list.get(), kafka.topic.c_str(), p);
    }
    stats.paused = pause;
    if (pause && !paused) ++stats.pauses;
  }
  const rd_kafka_resp_err_t e = list->cnt == 0 ? RD_KAFKA_RESP_ERR_NO_ERROR
                                : pause        ? rd_kafka_pause_partitions(rk.get(), list.get())
                                               : rd_kafka_resume_partitions(rk.get(), list.get());
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::fprintf(stderr, "simstream: kafka: %s partitions: %s\n", pause ? "pausing" : "resuming",
                 rd_kafka_err2str(e));
  }
  paused = pause;
}

void KafkaSource::Impl::Handle(rd_kafka_message_t* msg) {
  if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      std::fprintf(stderr, "simstream: kafka: consume: %s\n", rd_kafka_message_errstr(msg));
    }
    return;
  }
  {
    std::lock_guard lock(mu);
    ++stats.messages;
    consumed_next[msg->partition] = msg->offset + 1;
    if (auto it = skip_below.find(msg->partition);
        it != skip_below.end() && msg->offset < it->second) {
      ++stats.duplicates;  // applied or dead-lettered already: not again
      return;
    }
  }
  const std::string_view payload(static_cast<const char*>(msg->payload), msg->len);
  Result<engine::Event> parsed = Error{"oversized", ""};
  if (msg->len > rules.max_message_bytes) {
    parsed = Error{"oversized", "message of " + std::to_string(msg->len) +
                                    " bytes exceeds kafka.max_message_bytes (" +
                                    std::to_string(rules.max_message_bytes) + ")"};
  } else {
    // An event without "ts" takes the message's timestamp (stored in the log, so a replay
    // sees the same), or 0 for a message without one: never the clock, which would make the
    // state depend on when the log was consumed.
    rd_kafka_timestamp_type_t ts_type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
    const int64_t ts = rd_kafka_message_timestamp(msg, &ts_type);
    parsed = engine::ParseEvent(payload, rules, std::max<int64_t>(ts, 0));
  }
  if (parsed.ok()) {
    pending.push_back({std::move(parsed.value()), msg->partition, msg->offset});
    return;
  }
  const Error& err = parsed.error();
  DeadLetter letter;
  letter.key = std::string_view(static_cast<const char*>(msg->key), msg->key_len);
  letter.payload = payload;
  letter.reason = err.code;
  letter.message = err.message;
  letter.topic = kafka.topic;
  letter.partition = msg->partition;
  letter.offset = msg->offset;
  if (auto st = dlq->Send(letter); !st.ok()) {
    std::fprintf(stderr, "simstream: kafka: %s\n", st.error().message.c_str());
  }
  ++pending_rejected[err.code];
  pending_skip[msg->partition] = msg->offset + 1;
  std::lock_guard lock(mu);
  ++stats.dead_lettered;
}

void KafkaSource::Impl::Submit() {
  if (pending.empty() && pending_skip.empty() && pending_rejected.empty()) return;
  if (!pending_skip.empty() && !AwaitDeadLetters()) {
    // Stopping with a dead letter of this batch unacknowledged: apply none of it. Its offsets
    // stay where they were, so the next start reads it again (dead-lettering again): nothing
    // is lost, a letter may be sent twice.
    pending.clear();
    pending_skip.clear();
    pending_rejected.clear();
    return;
  }
  std::unique_lock lock(hand_mu);
  hand_cv.wait(lock, [&] { return !handed.has_value(); });
  in_flight.fetch_add(static_cast<int64_t>(pending.size()), std::memory_order_relaxed);
  handed.emplace(Batch{std::move(pending), std::move(pending_skip), std::move(pending_rejected)});
  pending.clear();
  pending_skip.clear();
  pending_rejected.clear();
  pending.reserve(static_cast<size_t>(std::max<int64_t>(1, kafka.batch_size)));
  lock.unlock();
  hand_cv.notify_all();
}

bool KafkaSource::Impl::AwaitDeadLetters() {
  // A batch's dead-lettered offsets (and the valid events after them) are applied, then stored
  // and committed within a flush interval: the DLQ should hold the letters first. One round
  // trip per batch that has any; none for the others. A DLQ that does not answer within
  // kDlqAckWait (topic missing, not authorised, too few replicas) is not waited for again until
  // it has drained: ingestion never stops for a dead letter, and a letter the producer finally
  // gives up on is counted in dlq_delivery_failures.
  if (!stopping.load() && dlq_stalled && dlq->Unacknowledged() > 0) return true;
  dlq_stalled = false;
  const auto until = Clock::now() + kDlqAckWait;
  for (;;) {
    if (dlq->Flush(50).ok()) return true;
    if (stopping.load()) {
      if (Clock::now() >= dlq_wait_until) return false;
    } else if (Clock::now() >= until) {
      dlq_stalled = true;
      std::fprintf(stderr,
                   "simstream: kafka: %llu dead letter(s) not acknowledged by %s within %lld ms; "
                   "not waiting for it until it has caught up\n",
                   static_cast<unsigned long long>(dlq->Unacknowledged()), dlq->topic().c_str(),
                   static_cast<long long>(kDlqAckWait.count()));
      return true;
    }
  }
}

void KafkaSource::Impl::Drain() {
  Submit();
  std::unique_lock lock(hand_mu);
  hand_cv.wait(lock, [&] { return !handed.has_value() && !applying; });
}

void KafkaSource::Impl::LearnLoop() {
  std::unique_lock lock(hand_mu);
  for (;;) {
    hand_cv.wait(lock, [&] { return handed.has_value() || learner_stop; });
    if (!handed) return;  // stopping, and nothing left to apply
    Batch batch = std::move(*handed);
    handed.reset();
    applying = true;
    lock.unlock();
    hand_cv.notify_all();  // the slot is free: the poll thread may hand over the next batch
    const engine::ApplyOutcome out = engine->Apply(batch.events);
    for (const auto& [reason, n] : batch.rejected) engine->RecordRejected(reason, n);
    // After the valid events before them: the dead-lettered positions count as consumed.
    engine->AdvanceOffsets(batch.skip);
    in_flight.fetch_sub(static_cast<int64_t>(batch.events.size()), std::memory_order_relaxed);
    {
      std::lock_guard g(mu);
      stats.applied += out.applied;
      stats.duplicates += out.duplicates;
      ++stats.batches;
    }
    if (hooks.after_batch) hooks.after_batch();
    lock.lock();
    applying = false;
    hand_cv.notify_all();  // Drain() waits for this
  }
}

void KafkaSource::Impl::StopLearner() {
  {
    std::lock_guard lock(hand_mu);
    learner_stop = true;
  }
  hand_cv.notify_all();
  if (learner.joinable()) learner.join();
}

void KafkaSource::Impl::NoteLag() {
  std::map<int32_t, int64_t> assigned_now, consumed_now, probed;
  {
    std::lock_guard lock(mu);
    assigned_now = assigned;
    consumed_now = consumed_next;
    probed = lag;
  }
  // No partitions (before the first assignment, or all handed to another instance): nothing
  // new to say; the engine keeps the last figure (its own stall rule covers an idle learner).
  if (assigned_now.empty()) return;
  int64_t total = 0;
  for (const auto& [p, sought] : assigned_now) {
    int64_t lo = 0, hi = 0;
    if (rd_kafka_get_watermark_offsets(rk.get(), kafka.topic.c_str(), p, &lo, &hi) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        hi < 0) {
      // Nothing fetched from it yet: the prober's figure (a watermark request), if it has one.
      auto known = probed.find(p);
      if (known == probed.end()) {
        engine->NoteLag(engine::Engine::kLagUnknown);
        return;
      }
      total += known->second;
      continue;
    }
    auto it = consumed_now.find(p);
    total += PartitionLag(lo, hi, sought, it != consumed_now.end() ? it->second : -1);
  }
  engine->NoteLag(total + in_flight.load(std::memory_order_relaxed));
}

void KafkaSource::Impl::PollLoop() {
  const size_t batch_size = static_cast<size_t>(std::max<int64_t>(1, kafka.batch_size));
  auto last_commit = Clock::now();
  while (!stopping.load()) {
    if (hooks.backpressure) {
      const bool behind = hooks.backpressure();
      if (behind != paused) SetPaused(behind);
    }
    // The first poll waits; the rest of the batch is whatever has already arrived.
    rd_kafka_message_t* first = rd_kafka_consumer_poll(rk.get(), options.poll_timeout_ms);
    if (first != nullptr) {
      kafka::MessagePtr m(first);
      Handle(m.get());
      while (pending.size() < batch_size) {
        kafka::MessagePtr next(rd_kafka_consumer_poll(rk.get(), 0));
        if (!next) break;
        Handle(next.get());
      }
      Submit();
    }
    NoteLag();
    // Not while every broker is down: commits would only pile up, each outstanding one holding
    // a stop for seconds. The first one after the outage carries the same offsets.
    if (hooks.durable_offsets && !all_brokers_down.load() &&
        Clock::now() - last_commit >= std::chrono::milliseconds(options.commit_interval_ms)) {
      last_commit = Clock::now();
      Commit(hooks.durable_offsets(), /*wait_ms=*/0);
    }
  }
  Drain();
}

void KafkaSource::Impl::Commit(const std::map<int32_t, int64_t>& offsets, int wait_ms) {
  kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  {
    std::lock_guard lock(mu);
    for (const auto& [p, off] : offsets) {
      // Only partitions we own: a late commit must not move back another owner's offset. Nor
      // below where we started (taken over from a committed offset, not yet flushed here).
      auto it = assigned.find(p);
      if (it == assigned.end() || off < 0 || off < it->second) continue;
      rd_kafka_topic_partition_list_add(list.get(), kafka.topic.c_str(), p)->offset = off;
    }
  }
  if (list->cnt == 0) return;
  rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (wait_ms <= 0) {
    e = rd_kafka_commit(rk.get(), list.get(), /*async=*/1);
  } else {
    // Waited for on a queue of its own, with a deadline: a synchronous commit has none, and
    // must not hold up a revocation or Stop() while the coordinator is unreachable.
    kafka::QueuePtr q(rd_kafka_queue_new(rk.get()));
    e = rd_kafka_commit_queue(rk.get(), list.get(), q.get(), nullptr, nullptr);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_event_t* ev = rd_kafka_queue_poll(q.get(), wait_ms);
      if (ev == nullptr) {
        e = RD_KAFKA_RESP_ERR__TIMED_OUT;
      } else {
        e = rd_kafka_event_error(ev);
        rd_kafka_event_destroy(ev);
      }
    }
  }
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
    std::fprintf(stderr, "simstream: kafka: commit: %s\n", rd_kafka_err2str(e));
  }
}

std::optional<std::map<int32_t, int64_t>> KafkaSource::Impl::MeasureLag(
    const std::map<int32_t, int64_t>& assigned_now, const std::map<int32_t, int64_t>& consumed_now,
    int timeout_ms) {
  std::vector<int32_t> parts;
  for (const auto& entry : assigned_now) parts.push_back(entry.first);
  // Every partition asked is in both answers: ListOffsets answers all of them or none.
  const auto lows =
      ListOffsets(rk.get(), kafka.topic, parts, RD_KAFKA_OFFSET_BEGINNING, timeout_ms);
  if (!lows || stopping.load()) return std::nullopt;
  const auto highs = ListOffsets(rk.get(), kafka.topic, parts, RD_KAFKA_OFFSET_END, timeout_ms);
  if (!highs) return std::nullopt;
  std::map<int32_t, int64_t> out;
  for (const auto& [p, sought] : assigned_now) {
    const auto it = consumed_now.find(p);
    out[p] =
        PartitionLag(lows->at(p), highs->at(p), sought, it != consumed_now.end() ? it->second : -1);
  }
  return out;
}

void KafkaSource::Impl::ProbeLoop() {
  // An offsets query left unanswered stays in flight until socket.timeout.ms: the next one waits
  // (twice as long after each failure, at most 8 timeouts), so a broker too busy to answer in
  // time does not get two more requests every interval.
  int offsets_failures = 0;
  Clock::time_point offsets_not_before{};
  std::unique_lock lock(probe_mu);
  while (!stopping.load()) {
    lock.unlock();
    const int timeout = std::max(200, options.probe_interval_ms);
    const rd_kafka_metadata_t* md = nullptr;
    // A metadata request answered by any broker: the cluster is reachable.
    const rd_kafka_resp_err_t e =
        rd_kafka_metadata(rk.get(), /*all_topics=*/0, nullptr, &md, timeout);
    if (md != nullptr) rd_kafka_metadata_destroy(md);
    bool ok = e == RD_KAFKA_RESP_ERR_NO_ERROR;
    // A broker answered: commits may go again, whatever the watermark requests below do.
    if (ok) all_brokers_down.store(false);
    std::map<int32_t, int64_t> assigned_now, consumed_now;
    {
      std::lock_guard g(mu);
      assigned_now = assigned;
      consumed_now = consumed_next;
    }
    std::optional<std::map<int32_t, int64_t>> lag_now = std::map<int32_t, int64_t>{};
    if (ok && !assigned_now.empty() && !stopping.load()) {
      if (Clock::now() < offsets_not_before) {
        lag_now = std::nullopt;  // backing off: the lag stays unmeasured
      } else {
        lag_now = MeasureLag(assigned_now, consumed_now, timeout);
        if (lag_now) {
          offsets_failures = 0;
        } else if (!stopping.load()) {
          offsets_failures = std::min(offsets_failures + 1, 3);
          offsets_not_before =
              Clock::now() + std::chrono::milliseconds(int64_t{timeout} << offsets_failures);
        }
      }
    }
    ok = ok && lag_now.has_value();
    if (ok) {
      last_probe_ok_ms.store(NowMs());
      std::lock_guard g(mu);
      for (const auto& [p, l] : *lag_now) {
        if (assigned.count(p) != 0) lag[p] = l;
      }
    }
    lock.lock();
    probe_cv.wait_for(lock, std::chrono::milliseconds(options.probe_interval_ms),
                      [&] { return stopping.load(); });
  }
}

KafkaSource::KafkaSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<KafkaSource>> KafkaSource::Create(const config::KafkaOptions& kafka_opts,
                                                         const engine::EventRules& rules,
                                                         engine::Engine& engine,
                                                         KafkaSourceHooks hooks,
                                                         KafkaSourceOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->kafka = kafka_opts;
  impl->rules = rules;
  impl->engine = &engine;
  impl->hooks = std::move(hooks);
  impl->options = options;
  auto conf = kafka::MakeConf(kafka_opts,
                              {{"auto.offset.reset", "earliest"},
                               {"client.id", "simstream"},
                               {"queued.max.messages.kbytes", "16384"},
                               {"fetch.wait.max.ms", "50"},
                               {"session.timeout.ms", "10000"},
                               {"heartbeat.interval.ms", "1000"}},
                              {{"group.id", kafka_opts.group},
                               {"enable.auto.commit", "false"},
                               {"enable.auto.offset.store", "false"},
                               {"enable.partition.eof", "false"}});
  if (!conf.ok()) return conf.error();
  rd_kafka_conf_set_rebalance_cb(conf->get(), &RebalanceCb);
  rd_kafka_conf_set_error_cb(conf->get(), &ErrorCb);
  rd_kafka_conf_set_opaque(conf->get(), impl.get());
  auto dlq = DlqProducer::Create(kafka_opts);
  if (!dlq.ok()) return dlq.error();
  impl->dlq = std::move(dlq.value());
  auto rk = kafka::MakeHandle(RD_KAFKA_CONSUMER, std::move(conf.value()));
  if (!rk.ok()) return rk.error();
  impl->rk = std::move(rk.value());
  // Route every event (rebalances, errors) through rd_kafka_consumer_poll on our thread.
  rd_kafka_poll_set_consumer(impl->rk.get());
  return std::unique_ptr<KafkaSource>(new KafkaSource(std::move(impl)));
}

KafkaSource::~KafkaSource() {
  (void)Stop();
}

Status KafkaSource::Start() {
  Impl& s = *impl_;
  if (s.started) return Status::Ok();
  kafka::PartitionListPtr topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), s.kafka.topic.c_str(), RD_KAFKA_PARTITION_UA);
  if (const rd_kafka_resp_err_t e = rd_kafka_subscribe(s.rk.get(), topics.get());
      e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return kafka::KafkaError("subscribing to " + s.kafka.topic, e);
  }
  s.started = true;
  // Not measured until partitions are assigned and fetched from: a restart with a backlog must
  // not start an index build in the meantime (Engine::NoteLag).
  s.engine->NoteLag(engine::Engine::kLagUnknown);
  s.learner = std::thread([&s] {
    engine::SetThreadName("ss-learn");
    s.LearnLoop();
  });
  s.poller = std::thread([&s] {
    engine::SetThreadName("ss-consume");
    s.PollLoop();
  });
  s.prober = std::thread([&s] {
    engine::SetThreadName("ss-probe");
    s.ProbeLoop();
  });
  return Status::Ok();
}

Status KafkaSource::Stop() {
  Impl& s = *impl_;
  if (s.stopped) return Status::Ok();
  s.stopped = true;
  const auto deadline = Clock::now() + std::chrono::milliseconds(s.options.close_timeout_ms);
  s.dlq_wait_until = Clock::now() + std::chrono::milliseconds(s.options.close_timeout_ms / 2);
  {
    std::lock_guard lock(s.probe_mu);
    s.stopping.store(true);
  }
  s.probe_cv.notify_all();
  // Ends after at most one poll timeout, plus learning what was read (at most three batches).
  if (s.poller.joinable()) s.poller.join();
  // Flush first, ourselves: whether or not leaving the group produces a revocation event.
  Status flushed = s.started ? s.Revoke() : Status::Ok();
  bool closed = false;
  if (s.started) {
    kafka::QueuePtr q(rd_kafka_queue_new(s.rk.get()));
    if (rd_kafka_error_t* e = rd_kafka_consumer_close_queue(s.rk.get(), q.get()); e != nullptr) {
      std::fprintf(stderr, "simstream: kafka: close: %s\n", rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
    } else {
      while (!rd_kafka_consumer_closed(s.rk.get()) && Clock::now() < deadline) {
        rd_kafka_event_t* ev = rd_kafka_queue_poll(q.get(), 50);
        if (ev == nullptr) continue;
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE) {
          s.OnRebalance(rd_kafka_event_error(ev), rd_kafka_event_topic_partition_list(ev));
        }
        rd_kafka_event_destroy(ev);
      }
      closed = rd_kafka_consumer_closed(s.rk.get()) != 0;
    }
  }
  if (s.prober.joinable()) s.prober.join();
  s.StopLearner();  // after the close: a revocation event there drains through it
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (auto st = s.dlq->Flush(static_cast<int>(std::max<int64_t>(100, left.count()))); !st.ok()) {
    std::fprintf(stderr, "simstream: kafka: %s\n", st.error().message.c_str());
  }
  if (!closed && s.started) {
    std::fprintf(stderr, "simstream: kafka: consumer did not close within %d ms; leaving anyway\n",
                 s.options.close_timeout_ms);
    rd_kafka_destroy_flags(s.rk.release(), RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  }
  s.rk.reset();
  return flushed;
}

bool KafkaSource::Healthy() const {
  const int64_t last = impl_->last_probe_ok_ms.load();
  const int64_t stale_after = 3 * static_cast<int64_t>(impl_->options.probe_interval_ms) + 1000;
  return last >= 0 && !impl_->all_brokers_down.load() && NowMs() - last <= stale_after;
}

std::map<int32_t, int64_t> KafkaSource::Lag() const {
  std::lock_guard lock(impl_->mu);
  return impl_->lag;
}

std::optional<int64_t> KafkaSource::TotalLag() const {
  std::lock_guard lock(impl_->mu);
  if (!impl_->assignment_known) return std::nullopt;
  int64_t total = 0;
  for (const auto& [p, sought] : impl_->assigned) {
    const auto it = impl_->lag.find(p);
    if (it == impl_->lag.end()) return std::nullopt;  // not probed since it was assigned
    total += it->second;
  }
  return total;
}

KafkaSourceStats KafkaSource::Stats() const {
  KafkaSourceStats out;
  {
    std::lock_guard lock(impl_->mu);
    out = impl_->stats;
  }
  out.dead_lettered_by_reason = impl_->dlq->CountsByReason();
  out.dlq_delivery_failures = impl_->dlq->delivery_failures();
  out.dlq_unacknowledged = impl_->dlq->Unacknowledged();
  return out;
}

}  // namespace simstream::connectors
