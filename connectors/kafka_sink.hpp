// Publishes events to the event topic with an idempotent producer (the EventSink of POST
// /v1/events and of `simstream produce`).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/options.hpp"
#include "config/result.hpp"
#include "connectors/event_sink.hpp"

namespace simstream::connectors {

// enable.idempotence=true and acks=all: a retried send is never written twice, and an
// acknowledged event survives the loss of the partition leader. Messages are keyed by user
// (one user's events stay in one partition, in order) and carry engine::ToJson bytes.
//
// Thread safety: Publish may be called from several threads at once; each call waits only
// for its own events. Delivery reports are served by an internal thread.
class KafkaEventSink final : public EventSink {
 public:
  // Publishes to opts.topic. `delivery_timeout_ms` bounds how long an event is retried before
  // Publish reports it failed (librdkafka message.timeout.ms, unless kafka.properties sets it).
  // Errors: "invalid_config", "kafka_error".
  [[nodiscard]] static Result<std::unique_ptr<KafkaEventSink>> Create(
      const config::KafkaOptions& opts, int delivery_timeout_ms = 30000);
  ~KafkaEventSink() override;
  KafkaEventSink(const KafkaEventSink&) = delete;
  KafkaEventSink& operator=(const KafkaEventSink&) = delete;

  // Errors: "kafka_unavailable" (not acknowledged within the delivery timeout: broker down,
  // topic missing) with the first failure's reason; some events may have been written.
  [[nodiscard]] Result<std::vector<PublishedOffset>> Publish(
      const std::vector<engine::Event>& events) override;
  // Purges what is queued and in flight; Publish answers "kafka_unavailable" from now on.
  void Cancel() override;

  // Queues one already-serialised message without waiting (for bulk replay). `timestamp_ms`
  // 0 means now; pass event times only for recent events, since brokers delete messages
  // whose timestamp is older than retention.ms. `done` is
  // called from the delivery thread with the outcome. Blocks while the local queue is full.
  // Errors: "kafka_error" when librdkafka refuses the message outright.
  struct Delivery {
    bool ok = false;
    PublishedOffset where;
    std::string error;
  };
  [[nodiscard]] Status PublishAsync(const std::string& key, const std::string& value,
                                    int64_t timestamp_ms,
                                    std::function<void(const Delivery&)> done);
  // Waits up to `timeout_ms` for every queued message. Errors: "timeout".
  [[nodiscard]] Status Flush(int timeout_ms);

  struct Impl;  // implementation detail (librdkafka handle), defined in kafka_sink.cpp

 private:
  explicit KafkaEventSink(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace simstream::connectors
