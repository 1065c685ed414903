// Where validated events posted over HTTP go: the event topic (Kafka, keyed by user), so they
// reach the engine through the same ordered, exactly-once path as every other event.
#pragma once

#include <cstdint>
#include <vector>

#include "config/result.hpp"
#include "engine/event.hpp"

namespace simstream::connectors {

// Where one published event landed in the log.
struct PublishedOffset {
  int32_t partition = 0;
  int64_t offset = 0;
};

// Thread safety: Publish may be called from several threads at once.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Publishes `events` (keyed by user, so one user's events stay ordered) and blocks until
  // every one is acknowledged. On success returns one offset per event, in order. On failure
  // some events may have been written; the caller reports the failure and the client retries
  // (the producer is idempotent, and the engine deduplicates by offset).
  [[nodiscard]] virtual Result<std::vector<PublishedOffset>> Publish(
      const std::vector<engine::Event>& events) = 0;
  // Shutdown: every Publish waiting now, and every later one, fails at once instead of waiting
  // out a broker that is down (HttpServer::Stop calls it once its clients are cut off). Events
  // of a cancelled Publish may or may not have been written; nobody was told they were.
  virtual void Cancel() {}
};

}  // namespace simstream::connectors
