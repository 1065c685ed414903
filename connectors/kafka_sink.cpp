#include "connectors/kafka_sink.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "connectors/kafka_common.hpp"
#include "engine/event.hpp"
#include "engine/thread_name.hpp"

namespace simstream::connectors {

struct KafkaEventSink::Impl {
  kafka::HandlePtr rk;
  std::string topic;
  std::atomic<bool> stop{false};
  std::atomic<bool> cancelled{false};  // Cancel(): every Publish fails at once
  std::thread poller;                  // serves delivery reports
};

namespace {

// One message in flight: what to call when its delivery report arrives.
struct Pending {
  std::function<void(const KafkaEventSink::Delivery&)> done;
};

void OnDelivery(rd_kafka_t* /*rk*/, const rd_kafka_message_t* msg, void* /*opaque*/) {
  std::unique_ptr<Pending> pending(static_cast<Pending*>(msg->_private));
  if (!pending || !pending->done) return;
  KafkaEventSink::Delivery d;
  d.ok = msg->err == RD_KAFKA_RESP_ERR_NO_ERROR;
  d.where = {msg->partition, msg->offset};
  if (!d.ok) d.error = rd_kafka_err2str(msg->err);
  pending->done(d);
}

}  // namespace

KafkaEventSink::KafkaEventSink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<KafkaEventSink>> KafkaEventSink::Create(const config::KafkaOptions& opts,
                                                               int delivery_timeout_ms) {
  auto conf = kafka::MakeConf(opts,
                              {{"linger.ms", "5"},
                               {"message.timeout.ms", std::to_string(delivery_timeout_ms)},
                               {"client.id", "simstream-producer"},
                               {"compression.codec", "lz4"}},
                              {{"enable.idempotence", "true"}, {"acks", "all"}});
  if (!conf.ok()) return conf.error();
  rd_kafka_conf_set_dr_msg_cb(conf->get(), &OnDelivery);
  auto rk = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(conf.value()));
  if (!rk.ok()) return rk.error();
  auto impl = std::make_unique<Impl>();
  impl->rk = std::move(rk.value());
  impl->topic = opts.topic;
  Impl* raw = impl.get();
  impl->poller = std::thread([raw] {
    engine::SetThreadName("ss-produce");
    while (!raw->stop.load()) rd_kafka_poll(raw->rk.get(), 50);
  });
  return std::unique_ptr<KafkaEventSink>(new KafkaEventSink(std::move(impl)));
}

KafkaEventSink::~KafkaEventSink() {
  // After Cancel() nobody waits for what is queued (a Publish that queued just after the purge
  // has returned): purge it too rather than wait on a broker that may be down.
  if (impl_->cancelled.load()) {
    rd_kafka_purge(impl_->rk.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  }
  (void)Flush(5000);
  // Whatever is still queued fails now; the poller serves those delivery reports, so every
  // waiting Publish returns and every Pending is freed before the handle goes away.
  rd_kafka_purge(impl_->rk.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  (void)Flush(1000);
  impl_->stop.store(true);
  if (impl_->poller.joinable()) impl_->poller.join();
}

Status KafkaEventSink::PublishAsync(const std::string& key, const std::string& value,
                                    int64_t timestamp_ms,
                                    std::function<void(const Delivery&)> done) {
  auto pending = std::make_unique<Pending>(Pending{std::move(done)});
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  for (;;) {
    err = rd_kafka_producev(impl_->rk.get(), RD_KAFKA_V_TOPIC(impl_->topic.c_str()),
                            RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
                            RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_TIMESTAMP(timestamp_ms > 0 ? timestamp_ms : 0),
                            RD_KAFKA_V_OPAQUE(pending.get()), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
    // Backpressure: the poller drains delivery reports, freeing room in the local queue.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return kafka::KafkaError("producing to " + impl_->topic, err);
  pending.release();  // freed by OnDelivery
  return Status::Ok();
}

Result<std::vector<PublishedOffset>> KafkaEventSink::Publish(
    const std::vector<engine::Event>& events) {
  struct Batch {
    std::mutex mu;
    std::condition_variable cv;
    size_t remaining = 0;
    std::vector<PublishedOffset> offsets;
    std::string first_error;
  };
  const auto cancelled = [&] {  // built only when it is the answer, not on every publish
    return Error{"kafka_unavailable", "publishing to " + impl_->topic + ": shutting down"};
  };
  if (impl_->cancelled.load()) return cancelled();
  auto batch = std::make_shared<Batch>();
  batch->remaining = events.size();
  batch->offsets.resize(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    const engine::Event& e = events[i];
    // Kafka timestamp: now (the event's ts travels in the payload; see PublishAsync).
    auto st = PublishAsync(e.user, engine::ToJson(e), 0, [batch, i](const Delivery& d) {
      std::lock_guard lock(batch->mu);
      if (d.ok) {
        batch->offsets[i] = d.where;
      } else if (batch->first_error.empty()) {
        batch->first_error = d.error;
      }
      if (--batch->remaining == 0) batch->cv.notify_all();
    });
    if (!st.ok()) {
      // Events already queued still get their reports; the batch outlives this call.
      std::lock_guard lock(batch->mu);
      batch->remaining -= events.size() - i;
      if (batch->first_error.empty()) batch->first_error = st.error().message;
      break;
    }
  }
  std::unique_lock lock(batch->mu);
  // Every queued message gets a delivery report within message.timeout.ms, or at once after a
  // Cancel() (which may come between the check above and the queueing: hence the slices).
  while (!batch->cv.wait_for(lock, std::chrono::milliseconds(50),
                             [&] { return batch->remaining == 0; })) {
    if (impl_->cancelled.load()) return cancelled();  // the batch outlives this call
  }
  if (!batch->first_error.empty()) {
    return Error{"kafka_unavailable", "publishing to " + impl_->topic + ": " + batch->first_error};
  }
  return std::move(batch->offsets);
}

void KafkaEventSink::Cancel() {
  impl_->cancelled.store(true);
  rd_kafka_purge(impl_->rk.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
}

Status KafkaEventSink::Flush(int timeout_ms) {
  if (rd_kafka_flush(impl_->rk.get(), timeout_ms) == RD_KAFKA_RESP_ERR__TIMED_OUT) {
    return Error{"timeout", std::to_string(rd_kafka_outq_len(impl_->rk.get())) +
                                " message(s) still unacknowledged for " + impl_->topic};
  }
  return Status::Ok();
}

}  // namespace simstream::connectors
