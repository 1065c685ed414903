#include "connectors/dlq.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

#include "connectors/kafka_common.hpp"
#include "engine/thread_name.hpp"

namespace simstream::connectors {

struct DlqProducer::Impl {
  kafka::HandlePtr rk;
  std::string topic;
  size_t max_bytes = 0;
  mutable std::mutex mu;
  std::map<std::string, uint64_t> counts;
  std::atomic<uint64_t> failures{0};
  // Delivery reports are served by this thread, so Send() never blocks on them.
  std::atomic<bool> stop{false};
  std::thread poller;
};

namespace {

void OnDelivery(rd_kafka_t* /*rk*/, const rd_kafka_message_t* msg, void* opaque) {
  auto* impl = static_cast<DlqProducer::Impl*>(opaque);
  if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    impl->failures.fetch_add(1, std::memory_order_relaxed);
    std::fprintf(stderr, "simstream: dlq: delivery to %s failed: %s\n", impl->topic.c_str(),
                 rd_kafka_err2str(msg->err));
  }
}

}  // namespace

DlqProducer::DlqProducer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<DlqProducer>> DlqProducer::Create(const config::KafkaOptions& opts) {
  auto conf = kafka::MakeConf(opts,
                              {{"acks", "all"},
                               {"linger.ms", "5"},
                               {"message.timeout.ms", "30000"},
                               {"client.id", "simstream-dlq"}},
                              {{"enable.idempotence", "true"}});
  if (!conf.ok()) return conf.error();
  auto impl = std::make_unique<Impl>();
  impl->topic = opts.EffectiveDlqTopic();
  impl->max_bytes = static_cast<size_t>(opts.max_message_bytes);
  rd_kafka_conf_set_dr_msg_cb(conf->get(), &OnDelivery);
  rd_kafka_conf_set_opaque(conf->get(), impl.get());
  auto rk = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(conf.value()));
  if (!rk.ok()) return rk.error();
  impl->rk = std::move(rk.value());
  Impl* raw = impl.get();
  impl->poller = std::thread([raw] {
    engine::SetThreadName("ss-dlq");
    while (!raw->stop.load()) rd_kafka_poll(raw->rk.get(), 100);
  });
  return std::unique_ptr<DlqProducer>(new DlqProducer(std::move(impl)));
}

DlqProducer::~DlqProducer() {
  // KafkaSource applies no batch before its letters are acknowledged (it stops without applying
  // one whose letters are not), so what is still outstanding here is read and dead-lettered
  // again on the next start: a short grace, not a long wait.
  if (auto st = Flush(500); !st.ok()) {
    std::fprintf(stderr, "simstream: dlq: %s\n", st.error().message.c_str());
  }
  impl_->stop.store(true);
  if (impl_->poller.joinable()) impl_->poller.join();
}

Status DlqProducer::Send(const DeadLetter& letter) {
  {
    std::lock_guard lock(impl_->mu);
    ++impl_->counts[letter.reason];
  }
  const std::string partition = std::to_string(letter.partition);
  const std::string offset = std::to_string(letter.offset);
  const std::string_view payload = letter.payload.substr(0, impl_->max_bytes);
  // The header list is owned by librdkafka once produce succeeds, and by us otherwise.
  kafka::HeadersPtr headers(rd_kafka_headers_new(5));
  rd_kafka_header_add(headers.get(), kDlqReasonHeader, -1, letter.reason.data(),
                      static_cast<ssize_t>(letter.reason.size()));
  rd_kafka_header_add(headers.get(), kDlqErrorHeader, -1, letter.message.data(),
                      static_cast<ssize_t>(letter.message.size()));
  rd_kafka_header_add(headers.get(), kDlqTopicHeader, -1, letter.topic.data(),
                      static_cast<ssize_t>(letter.topic.size()));
  rd_kafka_header_add(headers.get(), kDlqPartitionHeader, -1, partition.data(),
                      static_cast<ssize_t>(partition.size()));
  rd_kafka_header_add(headers.get(), kDlqOffsetHeader, -1, offset.data(),
                      static_cast<ssize_t>(offset.size()));
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  // The local queue is bounded; when it is full, wait a little for deliveries to drain it.
  for (int attempt = 0; attempt < 50; ++attempt) {
    err = rd_kafka_producev(impl_->rk.get(), RD_KAFKA_V_TOPIC(impl_->topic.c_str()),
                            RD_KAFKA_V_KEY(const_cast<char*>(letter.key.data()), letter.key.size()),
                            RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_HEADERS(headers.get()), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    impl_->failures.fetch_add(1, std::memory_order_relaxed);
    return kafka::KafkaError("dead-lettering to " + impl_->topic, err);
  }
  headers.release();  // librdkafka owns them now
  return Status::Ok();
}

Status DlqProducer::Flush(int timeout_ms) {
  const rd_kafka_resp_err_t err = rd_kafka_flush(impl_->rk.get(), timeout_ms);
  if (err == RD_KAFKA_RESP_ERR__TIMED_OUT) {
    return Error{"timeout", std::to_string(rd_kafka_outq_len(impl_->rk.get())) +
                                " dead letter(s) still unacknowledged for " + impl_->topic};
  }
  return Status::Ok();
}

uint64_t DlqProducer::Unacknowledged() const {
  return static_cast<uint64_t>(std::max(0, rd_kafka_outq_len(impl_->rk.get())));
}

std::map<std::string, uint64_t> DlqProducer::CountsByReason() const {
  std::lock_guard lock(impl_->mu);
  return impl_->counts;
}

uint64_t DlqProducer::delivery_failures() const {
  return impl_->failures.load();
}

const std::string& DlqProducer::topic() const {
  return impl_->topic;
}

}  // namespace simstream::connectors
