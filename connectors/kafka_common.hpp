// Internal to connectors/: librdkafka handles in RAII wrappers and configuration from options.
// No header outside connectors/*.cpp includes this one, so no rd_kafka_ type leaves the folder.
#pragma once

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "config/options.hpp"
#include "config/result.hpp"

namespace simstream::connectors::kafka {

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
};
struct HeadersDeleter {
  void operator()(rd_kafka_headers_t* h) const { rd_kafka_headers_destroy(h); }
};

using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;
using MessagePtr = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;
using HeadersPtr = std::unique_ptr<rd_kafka_headers_t, HeadersDeleter>;

// Builds a librdkafka configuration in three layers, later ones winning:
//   1. `defaults` (our choices, e.g. acks=all), 2. `opts.properties` (the user's passthrough,
//   so SASL/TLS and tuning work), 3. `forced` (settings our guarantees depend on, e.g.
//   enable.auto.commit=false, which the user must not turn off by accident).
// bootstrap.servers comes from opts.brokers unless the properties set it.
// Errors: "invalid_config" naming the property and librdkafka's reason.
[[nodiscard]] Result<ConfPtr> MakeConf(const config::KafkaOptions& opts,
                                       const std::map<std::string, std::string>& defaults,
                                       const std::map<std::string, std::string>& forced);

// Sets one property; "invalid_config" on failure.
[[nodiscard]] Status SetProperty(rd_kafka_conf_t* conf, const std::string& key,
                                 const std::string& value);

// Creates a handle of `type` from `conf` (ownership of conf passes to the handle on success).
// Errors: "kafka_error".
[[nodiscard]] Result<HandlePtr> MakeHandle(rd_kafka_type_t type, ConfPtr conf);

// "kafka_error" Error from a librdkafka error code, with `what` naming the step.
Error KafkaError(const std::string& what, rd_kafka_resp_err_t err);

// Reads a header value of a message as a string ("" when absent).
std::string HeaderValue(const rd_kafka_message_t* msg, const char* name);

}  // namespace simstream::connectors::kafka
