// The HTTP API (README "HTTP API", docs/openapi.yaml), served with Boost.Beast on Asio.
//
// Shape (Beast's advanced server): a listener accepts connections; each connection is a
// session on its own strand with keep-alive, a bounded pipeline of responses, read and idle
// timeouts, and body, header and URL limits. Handlers that may block (publishing events,
// forgetting a user and flushing, checkpoints) run on a small separate pool so a slow broker
// or disk never stalls the I/O threads. No Beast or Asio type appears in this header.
//
// Thread safety: Start, port, Routes and metrics may be called from any thread; Stop from one.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/options.hpp"
#include "config/result.hpp"
#include "connectors/event_sink.hpp"
#include "connectors/metrics.hpp"
#include "engine/engine.hpp"
#include "engine/event.hpp"
#include "storage/flusher.hpp"
#include "storage/state_store.hpp"

namespace simstream::connectors {

// Limits and timeouts of the server. `simstream serve` fills them from config::ServerOptions
// (server.header_limit, url_limit, read/idle/write_timeout_ms, max_connections,
// pipeline_limit, wait_timeout_ms); the defaults here are the same.
struct HttpServerOptions {
  // Largest request line plus headers, in bytes; beyond it: 431. Default: 8192.
  uint32_t header_limit = 8192;
  // Longest request target (path and query), in bytes; beyond it: 414. Default: 2048.
  size_t url_limit = 2048;
  // Time a client has to send a whole request once its first byte arrived. Default: 10000.
  int64_t read_timeout_ms = 10000;
  // Time a connection may sit without a request (before the first one and between
  // keep-alive requests). Default: 30000.
  int64_t idle_timeout_ms = 30000;
  // Time a client has to take a response. Default: 10000.
  int64_t write_timeout_ms = 10000;
  // Open connections beyond which new ones get 503 and are closed. Default: 1024.
  size_t max_connections = 1024;
  // Responses queued per connection (pipelining) before the server stops reading. Default: 8.
  size_t pipeline_limit = 8;
  // Longest wait of POST /v1/events?wait=true for the events to be applied. Default: 5000.
  int64_t wait_timeout_ms = 5000;
  // Threads running handlers that block (publish, forget + flush, checkpoint). Default: 2.
  size_t blocking_threads = 2;
  // Such requests waiting or running at once beyond which new ones get 503 "overloaded" at
  // once (a broker that is down would otherwise queue them for minutes). Default: 64.
  size_t max_blocking = 64;
  // Time Stop() lets in-flight requests finish before cutting connections. Default: 5000.
  int64_t drain_timeout_ms = 5000;
  // Validation of POSTed events (the same rules the stream consumer applies).
  engine::EventRules event_rules;
  // Rejections a POST /v1/events reply lists (the first ones, by index; `rejected_total`
  // counts them all). Listing each element of a 1 MiB body of tiny invalid events would make
  // a reply ~40 times the request. Default: 100.
  size_t max_listed_rejections = 100;
};

// What the server serves and whom it tells. Only `engine` is required; the pointers must
// outlive the server.
struct HttpDeps {
  engine::Engine* engine = nullptr;
  // Null: POST /v1/events answers 503. HttpServer::Stop() cancels it.
  EventSink* sink = nullptr;
  // Null: POST /v1/admin/checkpoint answers 503.
  storage::StateStore* store = nullptr;
  // Called after DELETE /v1/users/{user} so the forgetting is durable. Null: not called.
  std::function<Status()> flush;
  // Readiness (state loaded, lag under threshold). Null: always ready.
  std::function<bool()> ready;
  // Consumer lag by partition, for /v1/stats and /metrics. Null: no lag reported.
  std::function<std::map<int32_t, int64_t>()> consumer_lag;
  // The consumer's counters (backpressure, rebalances, redeliveries), for /v1/stats and
  // /metrics. Null: "consumer" is null in /v1/stats and the series stay at 0.
  std::function<KafkaSourceStats()> consumer;
  // The write-behind of state to the store (storage/flusher.hpp), for /v1/stats. Null:
  // "storage" is null in /v1/stats.
  std::function<storage::FlushStats()> flusher;
  // Directory under which admin checkpoints are created (one subdirectory per checkpoint,
  // named by UTC time). Null or empty: checkpoint answers 503.
  std::function<std::string()> checkpoint_dir;
};

class HttpServer {
 public:
  // Binds `server.listen` ("host:port"; port 0 picks a free one), starts `server.threads`
  // I/O threads and returns once accepting. Errors: "invalid_config" (bad listen address or
  // limits), "bind_failed" (address in use, permission).
  [[nodiscard]] static Result<std::unique_ptr<HttpServer>> Start(
      const config::ServerOptions& server, const HttpServerOptions& options, HttpDeps deps);
  ~HttpServer();  // Stops if still running.
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port (the chosen one when listening on port 0).
  uint16_t port() const;
  // Stops accepting, lets in-flight requests finish (up to drain_timeout_ms), closes every
  // connection, cancels the sink (EventSink::Cancel: a publish still waiting fails) and joins
  // all threads. Idempotent.
  void Stop();
  MetricsRegistry& metrics();

  // Every served route as (method, path template), e.g. ("GET", "/v1/users/{user}").
  static std::vector<std::pair<std::string, std::string>> Routes();

  struct Impl;

 private:
  explicit HttpServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace simstream::connectors
