// Many HTTP clients querying while events are applied: the test to run under TSan
// (-DSIMSTREAM_TSAN=ON). Deterministic inputs, bounded work, no sleeps on the success path.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <thread>

#include "connectors/http_server.hpp"

namespace simstream::connectors {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using nlohmann::json;

constexpr int kUsers = 200;
constexpr int kItems = 300;
constexpr int kClients = 8;
constexpr int kRequestsPerClient = 150;
constexpr int kWriterBatches = 100;
constexpr int kBatchSize = 50;

engine::Event MakeEvent(uint64_t n) {
  // A fixed pseudo-random walk: user and item from a multiplicative hash of n.
  const uint64_t h = n * 0x9E3779B97F4A7C15ull;
  engine::Event e;
  e.user = "u" + std::to_string((h >> 20) % kUsers);
  e.item = "i" + std::to_string((h >> 40) % kItems);
  e.ts_ms = static_cast<int64_t>(n);
  return e;
}

// Applies published events on partition 0 (the in-process stand-in for the consumer).
class EngineSink : public EventSink {
 public:
  explicit EngineSink(engine::Engine& e, std::atomic<int64_t>& next) : engine_(e), next_(next) {}
  Result<std::vector<PublishedOffset>> Publish(const std::vector<engine::Event>& events) override {
    std::lock_guard lock(mu_);
    std::vector<engine::SourcedEvent> batch;
    std::vector<PublishedOffset> out;
    for (const auto& ev : events) {
      const int64_t off = next_++;
      batch.push_back({ev, 0, off});
      out.push_back({0, off});
    }
    (void)engine_.Apply(batch);
    return out;
  }
  std::mutex& mu() { return mu_; }

 private:
  engine::Engine& engine_;
  std::atomic<int64_t>& next_;
  std::mutex mu_;
};

TEST(HttpConcurrency, ClientsQueryWhileEventsAreApplied) {
  config::Options opts;
  opts.model.dim = 16;
  engine::Engine eng(opts);
  std::atomic<int64_t> next_offset{0};
  EngineSink sink(eng, next_offset);
  {
    // Every user and item exists before the clients start, so no answer may be a 404.
    std::vector<engine::Event> seed;
    for (int u = 0; u < kUsers; ++u) {
      for (int j = 0; j < 3; ++j) {
        engine::Event e;
        e.user = "u" + std::to_string(u);
        e.item = "i" + std::to_string((u * 3 + j) % kItems);
        seed.push_back(e);
      }
    }
    ASSERT_TRUE(sink.Publish(seed).ok());
  }

  config::ServerOptions so;
  so.listen = "127.0.0.1:0";
  so.threads = 2;
  HttpServerOptions ho;
  ho.event_rules.type_weights = opts.model.event_weights;
  HttpDeps deps;
  deps.engine = &eng;
  deps.sink = &sink;
  auto started = HttpServer::Start(so, ho, deps);
  ASSERT_TRUE(started.ok()) << started.error().message;
  std::unique_ptr<HttpServer> server = std::move(*started);
  const uint16_t port = server->port();

  // Writer: applies events straight into the engine (as the Kafka consumer would), in
  // batches, on the same partition and offsets as the sink.
  std::atomic<bool> writer_done{false};
  std::thread writer([&] {
    for (int b = 0; b < kWriterBatches; ++b) {
      std::lock_guard lock(sink.mu());
      std::vector<engine::SourcedEvent> batch;
      for (int i = 0; i < kBatchSize; ++i) {
        const int64_t off = next_offset++;
        batch.push_back({MakeEvent(static_cast<uint64_t>(off)), 0, off});
      }
      (void)eng.Apply(batch);
    }
    writer_done = true;
  });

  std::atomic<int> failures{0}, served{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      net::io_context ioc;
      tcp::socket sock(ioc);
      beast::error_code ec;
      sock.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), ec);
      if (ec) {
        ++failures;
        return;
      }
      timeval tv{10, 0};
      setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      beast::flat_buffer buffer;
      for (int r = 0; r < kRequestsPerClient; ++r) {
        const int user = (c * 37 + r * 11) % kUsers;
        std::string target;
        http::verb verb = http::verb::get;
        std::string body;
        switch (r % 5) {
          case 0:
          case 1:
            target = "/v1/users/u" + std::to_string(user) + "/recommendations?k=10";
            break;
          case 2:
            target = "/v1/users/u" + std::to_string(user) +
                     "/similar?k=5&metric=" + (r % 2 ? "jaccard" : "cosine");
            break;
          case 3:
            target = (r % 3 == 0) ? "/v1/stats" : "/v1/items/i" + std::to_string(user) + "/similar";
            break;
          case 4:
            verb = http::verb::post;
            target = (r % 2) ? "/v1/events?wait=true" : "/v1/events";
            body = json{{"user", "u" + std::to_string(user)}, {"item", "i" + std::to_string(r)}}
                       .dump();
            break;
        }
        http::request<http::string_body> req{verb, target, 11};
        req.set(http::field::host, "x");
        req.body() = body;
        req.prepare_payload();
        http::write(sock, req, ec);
        http::response<http::string_body> res;
        if (!ec) http::read(sock, buffer, res, ec);
        if (ec) {
          ++failures;
          return;
        }
        const json j = json::parse(res.body(), nullptr, false);
        const int want = verb == http::verb::post ? 202 : 200;
        bool ok = res.result_int() == static_cast<unsigned>(want) && j.is_object();
        if (ok && r % 5 <= 1) ok = j["items"].is_array() && j["items"].size() <= 10;
        if (ok && r % 5 == 2) ok = j["users"].is_array() && j["users"].size() <= 5;
        if (ok && verb == http::verb::post && r % 2) ok = j["applied"] == true;
        if (!ok) {
          ++failures;
          ADD_FAILURE() << target << " -> " << res.result_int() << " " << res.body();
        }
        ++served;
      }
    });
  }
  for (auto& t : clients) t.join();
  writer.join();
  EXPECT_TRUE(writer_done);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(served.load(), kClients * kRequestsPerClient);
  // Every event is accounted for: seed + writer + one per POST.
  const int posts = kClients * (kRequestsPerClient / 5);
  EXPECT_EQ(eng.events_applied(),
            static_cast<uint64_t>(kUsers * 3 + kWriterBatches * kBatchSize + posts));
  EXPECT_EQ(eng.NextOffsets().at(0), next_offset.load());
  server->Stop();
}

}  // namespace
}  // namespace simstream::connectors
