// The dead-letter producer: malformed events go to kafka.dlq_topic with why and where from.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "config/options.hpp"
#include "config/result.hpp"

namespace simstream::connectors {

// Header names of a dead-lettered message (values are UTF-8 text).
inline constexpr const char* kDlqReasonHeader = "simstream.reason";        // e.g. "not_json"
inline constexpr const char* kDlqErrorHeader = "simstream.error";          // human-readable
inline constexpr const char* kDlqTopicHeader = "simstream.topic";          // original topic
inline constexpr const char* kDlqPartitionHeader = "simstream.partition";  // decimal
inline constexpr const char* kDlqOffsetHeader = "simstream.offset";        // decimal

// Where a dead-lettered message came from and why it was refused.
struct DeadLetter {
  std::string_view key;      // the original key (the user id, if the producer set one)
  std::string_view payload;  // the original bytes, unchanged (oversized ones are truncated
                             // to kafka.max_message_bytes so the DLQ itself never refuses them)
  std::string reason;        // a reason code of engine::ParseEvent, e.g. "not_json"
  std::string message;       // the validation error message
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
};

// An idempotent (acks=all) producer to the dead-letter topic.
//
// Thread safety: Send() and the counters may be called from any thread. Send() is
// asynchronous; Flush() waits for outstanding deliveries. Counts are per reason code and
// count messages handed to Send(), whether or not the broker has acknowledged them yet.
class DlqProducer {
 public:
  // Errors: "invalid_config" (a bad kafka.properties entry), "kafka_error".
  [[nodiscard]] static Result<std::unique_ptr<DlqProducer>> Create(
      const config::KafkaOptions& opts);
  ~DlqProducer();
  DlqProducer(const DlqProducer&) = delete;
  DlqProducer& operator=(const DlqProducer&) = delete;

  // Queues one dead letter. Errors: "kafka_error" when the local queue refuses it (full
  // for longer than a few seconds); the message is then only counted.
  [[nodiscard]] Status Send(const DeadLetter& letter);
  // Waits up to `timeout_ms` for every queued dead letter to be acknowledged.
  // Errors: "timeout" with how many are still outstanding.
  [[nodiscard]] Status Flush(int timeout_ms);
  // Dead letters queued or in flight: not yet acknowledged, nor failed for good.
  uint64_t Unacknowledged() const;

  std::map<std::string, uint64_t> CountsByReason() const;
  uint64_t delivery_failures() const;
  const std::string& topic() const;

  struct Impl;  // implementation detail (librdkafka handle), defined in dlq.cpp

 private:
  explicit DlqProducer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace simstream::connectors
