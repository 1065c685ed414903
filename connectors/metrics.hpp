// Prometheus metrics of the daemon, behind a small interface so no prometheus-cpp type leaves
// connectors/. Exposition (the text format) is done by prometheus-cpp's TextSerializer.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "connectors/kafka_source.hpp"
#include "engine/engine.hpp"

namespace simstream::connectors {

// Thread safety: every method may be called from any thread.
class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // One served HTTP request. `route` is the route template ("GET /v1/users/{user}") or
  // "unmatched", never a raw path, so the label set stays bounded.
  void ObserveRequest(std::string_view route, int status, double seconds);
  // One successful flush of dirty state to storage, and one that failed (called by whoever
  // owns the flusher: Flusher::SetObserver).
  void ObserveFlush(double seconds);
  void CountFlushFailure();
  // Events POSTed over HTTP and refused by validation, by reason code (engine/event.hpp).
  void CountHttpRejected(std::string_view reason, uint64_t n = 1);
  // Events POSTed over HTTP and published to the topic.
  void CountHttpAccepted(uint64_t n);
  // Connections currently open: +1 as one opens, -1 as it closes.
  void AddOpenConnections(int64_t delta);
  // Brings the engine-derived series (events applied and rejected, users, items, model bytes,
  // rolling prequential HR) up to date with `stats`. Counters advance by the difference to
  // the previous call, so they stay monotonic.
  void UpdateFromEngine(const engine::EngineStats& stats);
  // Consumer lag (messages behind the end of the log) by partition.
  void SetConsumerLag(const std::map<int32_t, int64_t>& lag);
  // Brings the consumer's series up to date (counters advance by the difference, as above).
  void UpdateFromConsumer(const KafkaSourceStats& c);

  // Everything registered, in the Prometheus text exposition format (version 0.0.4).
  std::string Serialize() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace simstream::connectors
