// An embedded Kafka cluster (librdkafka's mock cluster) for fast tests and `simstream demo`.
// It speaks the Kafka protocol on loopback ports, with consumer groups, idempotent producers
// and committed offsets, but keeps everything in memory and has no authentication.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/result.hpp"

namespace simstream::connectors {

// Thread safety: all methods may be called from any thread. Destroying the cluster closes
// its listeners; clients still connected to it then see the brokers as down.
class MockCluster {
 public:
  // Starts `brokers` mock brokers. Errors: "kafka_error".
  [[nodiscard]] static Result<std::unique_ptr<MockCluster>> Start(int brokers = 1);
  ~MockCluster();
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  // "host:port,host:port" for bootstrap.servers / kafka.brokers.
  const std::string& bootstrap_servers() const;
  // Creates `topic` with `partitions` partitions. Errors: "kafka_error".
  [[nodiscard]] Status CreateTopic(const std::string& topic, int partitions,
                                   int replication_factor = 1);
  // Takes broker `id` (1-based) down or up: its connections are closed and it refuses new ones
  // until up again. Errors: "kafka_error" for an unknown id.
  [[nodiscard]] Status SetBrokerDown(int32_t id);
  [[nodiscard]] Status SetBrokerUp(int32_t id);
  // The next requests with Kafka API key `api_key` (9: OffsetFetch, 0: Produce, ...) get these
  // error codes (librdkafka's rd_kafka_resp_err_t values), one each, in order.
  void FailNextRequests(int api_key, const std::vector<int>& errors);
  // Delays every answer of broker `id` by `rtt_ms` (0: none). Errors: "kafka_error".
  [[nodiscard]] Status SetBrokerRtt(int32_t id, int rtt_ms);
  // Broker `id` answers its next `count` requests with Kafka API key `api_key` with error
  // `error` (0: none), each `rtt_ms` late. The mock sends a connection's answers in order, so a
  // late answer also holds the answers queued behind it on that connection. Errors:
  // "kafka_error".
  [[nodiscard]] Status AnswerNextRequests(int32_t id, int api_key, int count, int error,
                                          int rtt_ms);
  // How many of those answers broker `id` has not given yet (requests not yet received).
  [[nodiscard]] Result<size_t> PendingAnswers(int32_t id, int api_key);

  struct Impl;  // implementation detail (librdkafka handles), defined in mock_cluster.cpp

 private:
  explicit MockCluster(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace simstream::connectors
