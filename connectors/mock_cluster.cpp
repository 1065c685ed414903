#include "connectors/mock_cluster.hpp"

// rdkafka_mock.h expects rdkafka.h (via kafka_common.hpp) to be included first.
#include "connectors/kafka_common.hpp"
// clang-format off
#include <librdkafka/rdkafka_mock.h>
// clang-format on

namespace simstream::connectors {

struct MockCluster::Impl {
  // The mock cluster lives inside a client handle; destroy order: cluster, then handle.
  kafka::HandlePtr rk;
  rd_kafka_mock_cluster_t* cluster = nullptr;
  std::string bootstraps;
  ~Impl() {
    if (cluster != nullptr) rd_kafka_mock_cluster_destroy(cluster);
  }
};

MockCluster::MockCluster(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MockCluster::~MockCluster() = default;

Result<std::unique_ptr<MockCluster>> MockCluster::Start(int brokers) {
  kafka::ConfPtr conf(rd_kafka_conf_new());
  // The carrier handle never talks to a broker itself; keep it quiet.
  if (auto st = kafka::SetProperty(conf.get(), "log_level", "3"); !st.ok()) return st.error();
  auto rk = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(conf));
  if (!rk.ok()) return rk.error();
  auto impl = std::make_unique<Impl>();
  impl->rk = std::move(rk.value());
  impl->cluster = rd_kafka_mock_cluster_new(impl->rk.get(), brokers);
  if (impl->cluster == nullptr) {
    return Error{"kafka_error", "could not start the embedded Kafka cluster"};
  }
  impl->bootstraps = rd_kafka_mock_cluster_bootstraps(impl->cluster);
  return std::unique_ptr<MockCluster>(new MockCluster(std::move(impl)));
}

const std::string& MockCluster::bootstrap_servers() const {
  return impl_->bootstraps;
}

Status MockCluster::CreateTopic(const std::string& topic, int partitions, int replication_factor) {
  const rd_kafka_resp_err_t err =
      rd_kafka_mock_topic_create(impl_->cluster, topic.c_str(), partitions, replication_factor);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka::KafkaError("creating " + topic, err);
  return Status::Ok();
}

Status MockCluster::SetBrokerDown(int32_t id) {
  const rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_down(impl_->cluster, id);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return kafka::KafkaError("taking broker " + std::to_string(id) + " down", err);
  }
  return Status::Ok();
}

void MockCluster::FailNextRequests(int api_key, const std::vector<int>& errors) {
  std::vector<rd_kafka_resp_err_t> codes;
  for (int e : errors) codes.push_back(static_cast<rd_kafka_resp_err_t>(e));
  rd_kafka_mock_push_request_errors_array(impl_->cluster, static_cast<int16_t>(api_key),
                                          codes.size(), codes.data());
}

Status MockCluster::SetBrokerRtt(int32_t id, int rtt_ms) {
  const rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_rtt(impl_->cluster, id, rtt_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return kafka::KafkaError("delaying broker " + std::to_string(id), err);
  }
  return Status::Ok();
}

Status MockCluster::AnswerNextRequests(int32_t id, int api_key, int count, int error, int rtt_ms) {
  for (int i = 0; i < count; ++i) {
    const rd_kafka_resp_err_t err = rd_kafka_mock_broker_push_request_error_rtts(
        impl_->cluster, id, static_cast<int16_t>(api_key), 1,
        static_cast<rd_kafka_resp_err_t>(error), rtt_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return kafka::KafkaError("scripting answers of broker " + std::to_string(id), err);
    }
  }
  return Status::Ok();
}

Result<size_t> MockCluster::PendingAnswers(int32_t id, int api_key) {
  size_t n = 0;
  const rd_kafka_resp_err_t err =
      rd_kafka_mock_broker_error_stack_cnt(impl_->cluster, id, static_cast<int16_t>(api_key), &n);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return kafka::KafkaError("counting scripted answers of broker " + std::to_string(id), err);
  }
  return n;
}

Status MockCluster::SetBrokerUp(int32_t id) {
  const rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_up(impl_->cluster, id);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return kafka::KafkaError("bringing broker " + std::to_string(id) + " up", err);
  }
  return Status::Ok();
}

}  // namespace simstream::connectors
