#include "connectors/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <mutex>

namespace simstream::connectors {

struct MetricsRegistry::Impl {
  prometheus::Registry registry;
  prometheus::Family<prometheus::Histogram>& request_seconds =
      prometheus::BuildHistogram()
          .Name("simstream_http_request_duration_seconds")
          .Help("Latency of HTTP requests by route template and status")
          .Register(registry);
  prometheus::Family<prometheus::Histogram>& flush_seconds_family =
      prometheus::BuildHistogram()
          .Name("simstream_flush_duration_seconds")
          .Help("Latency of flushing dirty state and offsets to storage")
          .Register(registry);
  prometheus::Histogram& flush_seconds = flush_seconds_family.Add(
      {}, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1, 0.25, 0.5, 1, 2.5, 5});
  prometheus::Family<prometheus::Counter>& flush_failures_family =
      prometheus::BuildCounter()
          .Name("simstream_flush_failures_total")
          .Help(
              "Flushes whose write failed (their changes are kept for the next flush, unless "
              "the flusher was sealed before a handover)")
          .Register(registry);
  prometheus::Counter& flush_failures = flush_failures_family.Add({});
  prometheus::Family<prometheus::Counter>& events_applied_family =
      prometheus::BuildCounter()
          .Name("simstream_events_applied_total")
          .Help("Events applied to the model")
          .Register(registry);
  prometheus::Counter& events_applied = events_applied_family.Add({});
  prometheus::Family<prometheus::Counter>& events_rejected =
      prometheus::BuildCounter()
          .Name("simstream_events_rejected_total")
          .Help("Events rejected by validation, by source (stream, http) and reason")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& http_accepted_family =
      prometheus::BuildCounter()
          .Name("simstream_http_events_accepted_total")
          .Help("Events posted over HTTP and published to the topic")
          .Register(registry);
  prometheus::Counter& http_accepted = http_accepted_family.Add({});
  prometheus::Family<prometheus::Gauge>& lag =
      prometheus::BuildGauge()
          .Name("simstream_consumer_lag")
          .Help("Messages between the consumed position and the end of the log, by partition")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& paused_family =
      prometheus::BuildGauge()
          .Name("simstream_consumer_paused")
          .Help(
              "1 while backpressure pauses consumption: applied events not yet durable reached "
              "2 x storage.flush_max_dirty, or a failed flush waits for its retry")
          .Register(registry);
  prometheus::Gauge& paused = paused_family.Add({});
  prometheus::Family<prometheus::Counter>& pauses_family =
      prometheus::BuildCounter()
          .Name("simstream_consumer_pauses_total")
          .Help("Times backpressure paused consumption")
          .Register(registry);
  prometheus::Counter& pauses = pauses_family.Add({});
  prometheus::Family<prometheus::Counter>& rebalances_family =
      prometheus::BuildCounter()
          .Name("simstream_consumer_rebalances_total")
          .Help("Rebalance callbacks (assignments and revocations) of this group member")
          .Register(registry);
  prometheus::Counter& rebalances = rebalances_family.Add({});
  prometheus::Family<prometheus::Counter>& duplicates_family =
      prometheus::BuildCounter()
          .Name("simstream_consumer_duplicates_total")
          .Help(
              "Messages redelivered after a restart or rebalance and skipped, being applied or "
              "dead-lettered already")
          .Register(registry);
  prometheus::Counter& duplicates = duplicates_family.Add({});
  prometheus::Family<prometheus::Counter>& dlq_failures_family =
      prometheus::BuildCounter()
          .Name("simstream_dlq_delivery_failures_total")
          .Help("Dead letters the producer could not deliver to the dead-letter topic")
          .Register(registry);
  prometheus::Counter& dlq_failures = dlq_failures_family.Add({});
  KafkaSourceStats last_consumer;  // the counters as of the last UpdateFromConsumer
  prometheus::Family<prometheus::Gauge>& model_family =
      prometheus::BuildGauge()
          .Name("simstream_model_entities")
          .Help("Users and items with an embedding")
          .Register(registry);
  prometheus::Gauge& users = model_family.Add({{"kind", "user"}});
  prometheus::Gauge& items = model_family.Add({{"kind", "item"}});
  prometheus::Family<prometheus::Gauge>& bytes_family =
      prometheus::BuildGauge()
          .Name("simstream_model_bytes")
          .Help("Memory held by embeddings, histories and indexes")
          .Register(registry);
  prometheus::Gauge& model_bytes = bytes_family.Add({});
  prometheus::Family<prometheus::Gauge>& dim_family =
      prometheus::BuildGauge()
          .Name("simstream_embedding_dimension")
          .Help("Dimension of user and item embeddings")
          .Register(registry);
  prometheus::Gauge& dim = dim_family.Add({});
  prometheus::Family<prometheus::Gauge>& hr_family =
      prometheus::BuildGauge()
          .Name("simstream_prequential_hit_rate")
          .Help("Rolling prequential HR@k of the live model over recent sampled events")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& connections_family =
      prometheus::BuildGauge()
          .Name("simstream_http_open_connections")
          .Help("HTTP connections currently open")
          .Register(registry);
  prometheus::Gauge& connections = connections_family.Add({});
  // Similar-users / similar-items indexes (engine/live_ann.hpp), by table.
  prometheus::Family<prometheus::Gauge>& ann_recall =
      prometheus::BuildGauge()
          .Name("simstream_index_recall_at_10")
          .Help("Rolling recall@10 of the similarity index against exact search (sampled)")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& ann_indexed =
      prometheus::BuildGauge()
          .Name("simstream_index_entries")
          .Help("Rows in the similarity index (0: queries use the exact scan)")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& ann_deleted =
      prometheus::BuildGauge()
          .Name("simstream_index_deleted_entries")
          .Help("Removed rows still occupying the similarity index (tombstones)")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& ann_builds =
      prometheus::BuildGauge()
          .Name("simstream_index_builds")
          .Help("Similarity index builds and rebuilds completed since start")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& ann_hnsw =
      prometheus::BuildGauge()
          .Name("simstream_index_hnsw")
          .Help("1 when cosine similarity queries are answered by the HNSW index, 0 when exact")
          .Register(registry);

  // Engine counters are cumulative; remember what was already added to ours.
  std::mutex mu;
  uint64_t last_applied = 0;
  std::map<std::string, uint64_t> last_rejected;
  std::map<int32_t, prometheus::Gauge*> lag_gauges;
};

namespace {
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets{
      0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5};
  return kBuckets;
}
}  // namespace

MetricsRegistry::MetricsRegistry() : impl_(std::make_unique<Impl>()) {}
MetricsRegistry::~MetricsRegistry() = default;

void MetricsRegistry::ObserveRequest(std::string_view route, int status, double seconds) {
  impl_->request_seconds
      .Add({{"route", std::string(route)}, {"status", std::to_string(status)}}, LatencyBuckets())
      .Observe(seconds);
}

void MetricsRegistry::ObserveFlush(double seconds) {
  impl_->flush_seconds.Observe(seconds);
}

void MetricsRegistry::CountFlushFailure() {
  impl_->flush_failures.Increment();
}

void MetricsRegistry::CountHttpRejected(std::string_view reason, uint64_t n) {
  impl_->events_rejected.Add({{"source", "http"}, {"reason", std::string(reason)}})
      .Increment(static_cast<double>(n));
}

void MetricsRegistry::CountHttpAccepted(uint64_t n) {
  impl_->http_accepted.Increment(static_cast<double>(n));
}

void MetricsRegistry::AddOpenConnections(int64_t delta) {
  impl_->connections.Increment(static_cast<double>(delta));  // atomic: no stale Set() race
}

void MetricsRegistry::UpdateFromEngine(const engine::EngineStats& stats) {
  std::lock_guard lock(impl_->mu);
  if (stats.events_applied > impl_->last_applied) {
    impl_->events_applied.Increment(
        static_cast<double>(stats.events_applied - impl_->last_applied));
    impl_->last_applied = stats.events_applied;
  }
  for (const auto& [reason, n] : stats.rejected_by_reason) {
    uint64_t& last = impl_->last_rejected[reason];
    if (n > last) {
      impl_->events_rejected.Add({{"source", "stream"}, {"reason", reason}})
          .Increment(static_cast<double>(n - last));
      last = n;
    }
  }
  impl_->users.Set(static_cast<double>(stats.users));
  impl_->items.Set(static_cast<double>(stats.items));
  impl_->model_bytes.Set(static_cast<double>(stats.model_bytes));
  impl_->dim.Set(stats.dim);
  impl_->hr_family.Add({{"k", std::to_string(stats.k)}}).Set(stats.rolling_hr);
  for (const auto& [table, a] :
       {std::pair<const char*, const engine::AnnStats&>{"users", stats.user_index},
        {"items", stats.item_index}}) {
    const prometheus::Labels labels{{"table", table}};
    impl_->ann_recall.Add(labels).Set(a.recall_at_10);
    impl_->ann_indexed.Add(labels).Set(static_cast<double>(a.indexed));
    impl_->ann_deleted.Add(labels).Set(static_cast<double>(a.deleted));
    impl_->ann_builds.Add(labels).Set(static_cast<double>(a.builds));
    impl_->ann_hnsw.Add(labels).Set(a.mode == "hnsw" ? 1.0 : 0.0);
  }
}

void MetricsRegistry::SetConsumerLag(const std::map<int32_t, int64_t>& lag) {
  std::lock_guard lock(impl_->mu);
  for (const auto& [partition, messages] : lag) {
    prometheus::Gauge*& g = impl_->lag_gauges[partition];
    if (g == nullptr) g = &impl_->lag.Add({{"partition", std::to_string(partition)}});
    g->Set(static_cast<double>(messages));
  }
}

void MetricsRegistry::UpdateFromConsumer(const KafkaSourceStats& c) {
  std::lock_guard lock(impl_->mu);
  KafkaSourceStats& last = impl_->last_consumer;
  auto advance = [](prometheus::Counter& counter, uint64_t now, uint64_t& before) {
    if (now <= before) return;  // a lower report (a recreated consumer) leaves it where it was
    counter.Increment(static_cast<double>(now - before));
    before = now;
  };
  impl_->paused.Set(c.paused ? 1.0 : 0.0);
  advance(impl_->pauses, c.pauses, last.pauses);
  advance(impl_->rebalances, c.rebalances, last.rebalances);
  advance(impl_->duplicates, c.duplicates, last.duplicates);
  advance(impl_->dlq_failures, c.dlq_delivery_failures, last.dlq_delivery_failures);
}

std::string MetricsRegistry::Serialize() const {
  return prometheus::TextSerializer().Serialize(impl_->registry.Collect());
}

}  // namespace simstream::connectors
