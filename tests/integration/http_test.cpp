// The HTTP API end to end over real sockets: every route, every error, limits, timeouts,
// pipelining, tokens, stop. The server runs on an ephemeral loopback port.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "connectors/http_routes.hpp"
#include "connectors/http_server.hpp"
#include "storage/flusher.hpp"
#include "storage/state_store.hpp"

namespace simstream::connectors {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Consumer statistics as deps.consumer reports them: the fields /v1/stats and /metrics show.
KafkaSourceStats Consumer(bool paused, uint64_t pauses, uint64_t rebalances, uint64_t duplicates,
                          uint64_t dlq_delivery_failures) {
  KafkaSourceStats s;
  s.paused = paused;
  s.pauses = pauses;
  s.rebalances = rebalances;
  s.duplicates = duplicates;
  s.dlq_delivery_failures = dlq_delivery_failures;
  return s;
}

// The server's real collaborator in-process: applies published events straight into the
// engine on partition 0 with increasing offsets (what the Kafka consumer would do).
class EngineSink : public EventSink {
 public:
  explicit EngineSink(engine::Engine& e) : engine_(e) {}
  Result<std::vector<PublishedOffset>> Publish(const std::vector<engine::Event>& events) override {
    std::lock_guard lock(mu_);
    std::vector<engine::SourcedEvent> batch;
    std::vector<PublishedOffset> out;
    for (const auto& ev : events) {
      batch.push_back({ev, 0, next_});
      out.push_back({0, next_++});
    }
    (void)engine_.Apply(batch);
    return out;
  }
  int64_t published() {
    std::lock_guard lock(mu_);
    return next_;
  }

 private:
  engine::Engine& engine_;
  std::mutex mu_;
  int64_t next_ = 0;
};

// Applies on partition 5 only after a delay (like a consumer lagging behind the producer).
class DelayedSink : public EventSink {
 public:
  DelayedSink(engine::Engine& e, std::chrono::milliseconds delay) : engine_(e), delay_(delay) {}
  ~DelayedSink() override {
    for (auto& t : threads_) t.join();
  }
  Result<std::vector<PublishedOffset>> Publish(const std::vector<engine::Event>& events) override {
    std::lock_guard lock(mu_);
    std::vector<engine::SourcedEvent> batch;
    std::vector<PublishedOffset> out;
    for (const auto& ev : events) {
      batch.push_back({ev, 5, next_});
      out.push_back({5, next_++});
    }
    threads_.emplace_back([this, batch] {
      std::this_thread::sleep_for(delay_);
      (void)engine_.Apply(batch);
    });
    return out;
  }

 private:
  engine::Engine& engine_;
  std::chrono::milliseconds delay_;
  std::mutex mu_;
  int64_t next_ = 0;
  std::vector<std::thread> threads_;
};

// Takes `delay` to publish (a broker slow to acknowledge), to a partition nobody consumes.
class SlowSink : public EventSink {
 public:
  explicit SlowSink(std::chrono::milliseconds delay) : delay_(delay) {}
  Result<std::vector<PublishedOffset>> Publish(const std::vector<engine::Event>& events) override {
    std::this_thread::sleep_for(delay_);
    std::vector<PublishedOffset> out;
    for (size_t i = 0; i < events.size(); ++i) out.push_back({9, static_cast<int64_t>(i)});
    return out;
  }

 private:
  std::chrono::milliseconds delay_;
};

// Publishes to a partition nobody consumes, or fails outright.
class StuckSink : public EventSink {
 public:
  explicit StuckSink(bool fail) : fail_(fail) {}
  Result<std::vector<PublishedOffset>> Publish(const std::vector<engine::Event>& events) override {
    if (fail_) return Error{"broker_down", "secret internal broker detail 10.0.0.7"};
    std::vector<PublishedOffset> out;
    for (size_t i = 0; i < events.size(); ++i) out.push_back({9, static_cast<int64_t>(i)});
    return out;
  }

 private:
  bool fail_;
};

struct Resp {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
  json Json() const { return json::parse(body, nullptr, false); }
};

void SetSocketTimeout(tcp::socket& s, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// One keep-alive connection.
class Client {
 public:
  explicit Client(uint16_t port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    SetSocketTimeout(socket_, 10000);
  }
  Resp Send(http::verb method, const std::string& target, const std::string& body = "",
            const std::string& token = "") {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "localhost");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    if (!body.empty() || method == http::verb::post) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();
    http::write(socket_, req);
    return Read();
  }
  Resp Read() {
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    http::read(socket_, buffer_, parser);
    Resp r;
    r.status = static_cast<int>(parser.get().result_int());
    r.body = parser.get().body();
    for (const auto& f : parser.get())
      r.headers[std::string(f.name_string())] = std::string(f.value());
    return r;
  }
  void WriteRaw(const std::string& bytes) { net::write(socket_, net::buffer(bytes)); }
  // True when the server closed the connection (EOF or reset) with no more bytes.
  bool ClosedByPeer() {
    char c;
    beast::error_code ec;
    socket_.read_some(net::buffer(&c, 1), ec);
    return ec == net::error::eof || ec == net::error::connection_reset;
  }
  tcp::socket& socket() { return socket_; }

 private:
  net::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

Resp Call(uint16_t port, http::verb method, const std::string& target, const std::string& body = "",
          const std::string& token = "") {
  Client c(port);
  return c.Send(method, target, body, token);
}

config::Options EngineOptions() {
  config::Options o;
  o.model.dim = 16;
  return o;
}

class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = std::make_unique<engine::Engine>(EngineOptions());
    sink_ = std::make_unique<EngineSink>(*engine_);
    // u1..u20 over items i0..i29, so models and neighbourhoods exist.
    std::vector<engine::Event> events;
    for (int u = 1; u <= 20; ++u) {
      for (int j = 0; j < 6; ++j) {
        engine::Event e;
        e.user = "u" + std::to_string(u);
        e.item = "i" + std::to_string((u * 7 + j * 3) % 30);
        e.ts_ms = 1000 + u * 10 + j;
        events.push_back(e);
      }
    }
    ASSERT_TRUE(sink_->Publish(events).ok());
    base_events_ = events.size();
  }
  void TearDown() override {
    if (server_) server_->Stop();
    std::filesystem::remove_all(checkpoints_);
  }

  void StartServer(config::ServerOptions so = {}, HttpServerOptions ho = {},
                   EventSink* sink = nullptr, bool no_sink = false) {
    so.listen = "127.0.0.1:0";
    so.threads = 2;
    ho.event_rules.type_weights = config::ModelOptions{}.event_weights;
    HttpDeps deps;
    deps.engine = engine_.get();
    deps.sink = no_sink ? nullptr : (sink ? sink : sink_.get());
    deps.store = store_;
    deps.flush = [this] {
      ++flushes_;
      std::lock_guard lock(flush_result_mu_);
      return flush_result_;
    };
    deps.ready = [this] { return ready_.load(); };
    deps.consumer_lag = [] { return std::map<int32_t, int64_t>{{0, 3}}; };
    deps.consumer = [this] {
      std::lock_guard lock(consumer_mu_);
      return consumer_;
    };
    deps.flusher = flusher_stats_;
    deps.checkpoint_dir = [this] { return checkpoints_; };
    auto s = HttpServer::Start(so, ho, deps);
    ASSERT_TRUE(s.ok()) << s.error().message;
    server_ = std::move(*s);
    port_ = server_->port();
    ASSERT_NE(port_, 0);
  }

  // A sink that outlives the server (Stop() cancels it, after the test body).
  template <typename S, typename... Args>
  S* OwnSink(Args&&... args) {
    owned_sinks_.push_back(std::make_unique<S>(std::forward<Args>(args)...));
    return static_cast<S*>(owned_sinks_.back().get());
  }

  Resp Get(const std::string& target, const std::string& token = "") {
    return Call(port_, http::verb::get, target, "", token);
  }
  Resp Post(const std::string& target, const std::string& body, const std::string& token = "") {
    return Call(port_, http::verb::post, target, body, token);
  }

  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<EngineSink> sink_;
  std::vector<std::unique_ptr<EventSink>> owned_sinks_;
  std::unique_ptr<HttpServer> server_;
  storage::StateStore* store_ = nullptr;
  uint16_t port_ = 0;
  size_t base_events_ = 0;
  std::atomic<int> flushes_{0};
  std::mutex flush_result_mu_;
  Status flush_result_ = Status::Ok();  // what deps.flush returns
  std::atomic<bool> ready_{true};
  std::mutex consumer_mu_;
  KafkaSourceStats consumer_;                           // what the consumer reports (deps.consumer)
  std::function<storage::FlushStats()> flusher_stats_;  // deps.flusher (null: none)
  std::string checkpoints_ = (std::filesystem::temp_directory_path() /
                              ("simstream-http-test-" + std::to_string(::getpid())))
                                 .string();
};

void ExpectError(const Resp& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << r.body;
  const json j = r.Json();
  ASSERT_TRUE(j.is_object()) << r.body;
  ASSERT_TRUE(j.contains("error")) << r.body;
  EXPECT_EQ(j["error"]["code"], code) << r.body;
  EXPECT_TRUE(j["error"]["message"].is_string());
}

TEST_F(HttpTest, HealthAndReadiness) {
  StartServer();
  EXPECT_EQ(Get("/healthz").status, 200);
  EXPECT_EQ(Get("/readyz").status, 200);
  ready_ = false;
  ExpectError(Get("/readyz"), 503, "not_ready");
  EXPECT_EQ(Get("/healthz").status, 200);
}

TEST_F(HttpTest, RecommendationsExcludeSeenAndRequested) {
  StartServer();
  Resp r = Get("/v1/users/u1/recommendations?k=5");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.Json();
  EXPECT_EQ(j["user"], "u1");
  EXPECT_TRUE(j["source"] == "model" || j["source"] == "popular");
  ASSERT_TRUE(j["items"].is_array());
  EXPECT_GE(j["items"].size(), 1u);
  EXPECT_LE(j["items"].size(), 5u);
  // u1's history: (7 + 3j) % 30 for j < 6.
  std::set<std::string> seen;
  for (int jj = 0; jj < 6; ++jj) seen.insert("i" + std::to_string((7 + jj * 3) % 30));
  std::string first;
  for (const auto& it : j["items"]) {
    EXPECT_EQ(seen.count(it["item"].get<std::string>()), 0u) << it;
    EXPECT_TRUE(it["score"].is_number());
    EXPECT_FALSE(it.contains("because"));
    if (first.empty()) first = it["item"];
  }
  // exclude= removes what was asked (commas split, each value percent-decoded).
  r = Get("/v1/users/u1/recommendations?k=5&exclude=nothing," + first);
  ASSERT_EQ(r.status, 200);
  const auto excluded = r.Json();  // range-for over a temporary's member would dangle
  for (const auto& it : excluded["items"]) EXPECT_NE(it["item"], first);
  // exclude= repeated (as form encoders send a list) is one list: both values are excluded.
  {
    std::string second;
    for (const auto& it : excluded["items"]) {
      if (second.empty()) second = it["item"];
    }
    ASSERT_FALSE(second.empty());
    Resp both = Get("/v1/users/u1/recommendations?k=5&exclude=" + first + "&exclude=" + second);
    ASSERT_EQ(both.status, 200) << both.body;
    const auto listed = both.Json();
    EXPECT_FALSE(listed["items"].empty());
    for (const auto& it : listed["items"]) {
      EXPECT_NE(it["item"], first);
      EXPECT_NE(it["item"], second);
    }
  }
  // explain=true adds "because" (history items) to every item.
  r = Get("/v1/users/u1/recommendations?k=3&explain=true");
  ASSERT_EQ(r.status, 200);
  const auto explained = r.Json();
  for (const auto& it : explained["items"]) {
    ASSERT_TRUE(it["because"].is_array()) << it;
    for (const auto& b : it["because"]) EXPECT_EQ(seen.count(b.get<std::string>()), 1u) << b;
  }
}

TEST_F(HttpTest, UnknownUserGetsPopularItems) {
  StartServer();
  Resp r = Get("/v1/users/stranger/recommendations?k=3");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["source"], "popular");
  EXPECT_EQ(r.Json()["items"].size(), 3u);
}

TEST_F(HttpTest, BadQueryParameters) {
  StartServer();
  for (const char* k : {"0", "1001", "abc", "5x", "-1", ""}) {
    ExpectError(Get(std::string("/v1/users/u1/recommendations?k=") + k), 400, "invalid_parameter");
  }
  EXPECT_EQ(Get("/v1/users/u1/recommendations?k=1000").status, 200);
  ExpectError(Get("/v1/users/u1/recommendations?explain=maybe"), 400, "invalid_parameter");
  ExpectError(Get("/v1/users/u1/similar?metric=manhattan"), 400, "invalid_parameter");
  ExpectError(Get("/v1/items/i7/similar?metric=jaccard"), 400, "invalid_parameter");
  ExpectError(Get("/v1/users/u1?embedding=yes"), 400, "invalid_parameter");
  // Values are percent-decoded before they are read ("%31" is '1', "%63" 'c', "%2C" ',').
  Resp r = Get("/v1/users/u1/recommendations?k=%31&explain=tru%65");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["items"].size(), 1u) << r.body;
  EXPECT_EQ(Get("/v1/users/u1/similar?metric=%63osine").status, 200);
  EXPECT_EQ(Get("/v1/users/u1?embedding=%74rue").Json()["embedding"].size(), 16u);
  ExpectError(Get("/v1/users/u1/recommendations?k=1%2C0"), 400, "invalid_parameter");
  // A parameter given twice is an error (which one counts would be a guess), and so is one the
  // route does not take (a typo must not be silently ignored); the message says which.
  for (const char* twice :
       {"?k=abc&k=2", "?k=2&k=abc", "?k=2&%6B=3", "?explain=true&k=2&explain=false"}) {
    Resp dup = Get(std::string("/v1/users/u1/recommendations") + twice);
    ExpectError(dup, 400, "invalid_parameter");
    EXPECT_NE(dup.body.find("more than once"), std::string::npos) << twice << " " << dup.body;
  }
  Resp typo = Get("/v1/users/u1/recommendations?k=2&exlude=i1");
  ExpectError(typo, 400, "invalid_parameter");
  const std::string said = typo.Json()["error"]["message"].get<std::string>();
  EXPECT_NE(said.find("\"exlude\""), std::string::npos) << said;
  EXPECT_NE(said.find("k,explain,exclude"), std::string::npos) << said;
  ExpectError(Get("/v1/items/i7/similar?explain=true"), 400, "invalid_parameter");
  ExpectError(Get("/v1/users/u1?k=3"), 400, "invalid_parameter");
  ExpectError(Get("/v1/stats?verbose=1"), 400, "invalid_parameter");
  ExpectError(Get("/v1/stats?=x"), 400, "invalid_parameter");
  ExpectError(Get("/v1/users/u1/similar?=x"), 400, "invalid_parameter");
  EXPECT_EQ(Get("/v1/users/u1/similar?k=2&metric=dot").status, 200);
  // Probes and the scrape take any parameters and ignore them.
  EXPECT_EQ(Get("/healthz?probe=1").status, 200);
  EXPECT_EQ(Get("/healthz?a=1&a=2").status, 200);
  EXPECT_EQ(Get("/readyz?a=1&a=2").status, 200);
  EXPECT_EQ(Get("/metrics?match%5B%5D=a&match%5B%5D=b").status, 200);
  // An unknown path is a 404 whatever its query.
  ExpectError(Get("/v1/nope?a=1&a=1"), 404, "not_found");
}

TEST_F(HttpTest, SimilarUsersEveryMetricAndUnknown) {
  StartServer();
  for (const char* m : {"cosine", "dot", "euclidean", "jaccard"}) {
    Resp r = Get(std::string("/v1/users/u1/similar?k=4&metric=") + m);
    ASSERT_EQ(r.status, 200) << m << " " << r.body;
    json j = r.Json();
    EXPECT_EQ(j["user"], "u1");
    EXPECT_EQ(j["metric"], m);
    ASSERT_TRUE(j["users"].is_array());
    EXPECT_GE(j["users"].size(), 1u);
    EXPECT_LE(j["users"].size(), 4u);
    for (const auto& u : j["users"]) EXPECT_TRUE(u["user"].is_string() && u["score"].is_number());
  }
  ExpectError(Get("/v1/users/nobody/similar"), 404, "not_found");
}

TEST_F(HttpTest, SimilarItemsAndUnknown) {
  StartServer();
  Resp r = Get("/v1/items/i7/similar?k=3");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["item"], "i7");
  EXPECT_LE(r.Json()["items"].size(), 3u);
  EXPECT_GE(r.Json()["items"].size(), 1u);
  ExpectError(Get("/v1/items/nothing/similar"), 404, "not_found");
}

TEST_F(HttpTest, UserInfoWithAndWithoutEmbedding) {
  StartServer();
  Resp r = Get("/v1/users/u3");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.Json();
  EXPECT_EQ(j["user"], "u3");
  EXPECT_EQ(j["events"], 6);
  EXPECT_EQ(j["last_ts"], 1000 + 30 + 5);
  EXPECT_FALSE(j.contains("embedding"));
  r = Get("/v1/users/u3?embedding=true");
  ASSERT_EQ(r.status, 200);
  ASSERT_TRUE(r.Json()["embedding"].is_array());
  EXPECT_EQ(r.Json()["embedding"].size(), 16u);
  ExpectError(Get("/v1/users/nobody"), 404, "not_found");
}

TEST_F(HttpTest, PercentEncodedAndNonAsciiIds) {
  StartServer();
  // "ü ser/1+x": non-ASCII, a space, a slash and a plus inside one id.
  const std::string id = "\xC3\xBC ser/1+x";
  Resp r = Post("/v1/events?wait=true", json{{"user", id}, {"item", "i1"}, {"ts", 5}}.dump());
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.Json()["applied"], true);
  r = Get("/v1/users/%C3%BC%20ser%2F1+x");  // '+' in a path is a plus
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["user"], id);
  EXPECT_EQ(r.Json()["events"], 1);
  r = Get("/v1/users/%c3%bc%20ser%2f1%2Bx/recommendations?exclude=i%31,%C3%BC");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["user"], id);
  // Malformed escapes and invalid UTF-8 are refused, in paths and in queries.
  ExpectError(Get("/v1/users/%zz"), 400, "bad_request");
  ExpectError(Get("/v1/users/ab%4"), 400, "bad_request");
  ExpectError(Get("/v1/users/%C3"), 400, "bad_request");     // truncated UTF-8
  ExpectError(Get("/v1/users/%C0%AF"), 400, "bad_request");  // overlong '/'
  ExpectError(Get("/v1/users/u1/recommendations?exclude=%G1"), 400, "bad_request");
  ExpectError(Get("/v1/users/u1/recommendations?k=%FF"), 400, "bad_request");
  // An empty id segment matches no route.
  ExpectError(Get("/v1/users//similar"), 404, "not_found");
}

TEST_F(HttpTest, PostEventsSingleArrayAndRejections) {
  StartServer();
  Resp r = Post("/v1/events", R"({"user":"new1","item":"i2","type":"click"})");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.Json()["accepted"], 1);
  EXPECT_EQ(r.Json()["rejected"], json::array());
  EXPECT_EQ(r.Json()["rejected_total"], 0);
  EXPECT_FALSE(r.Json().contains("applied"));
  EXPECT_EQ(sink_->published(), static_cast<int64_t>(base_events_ + 1));

  r = Post("/v1/events", R"([{"user":"new2","item":"i3"},{"user":"new2"},{"user":"","item":"x"},)"
                         R"({"user":"new2","item":"i4","weight":"heavy"},42,{"user":7,"item":8}])");
  ASSERT_EQ(r.status, 202) << r.body;
  json j = r.Json();
  EXPECT_EQ(j["accepted"], 2);
  EXPECT_EQ(j["rejected_total"], 4);
  ASSERT_EQ(j["rejected"].size(), 4u);
  EXPECT_EQ(j["rejected"][0]["index"], 1);
  EXPECT_EQ(j["rejected"][0]["error"], "missing_item");
  EXPECT_EQ(j["rejected"][1]["index"], 2);
  EXPECT_EQ(j["rejected"][1]["error"], "empty_user");
  EXPECT_EQ(j["rejected"][2]["index"], 3);
  EXPECT_EQ(j["rejected"][2]["error"], "wrong_type");
  EXPECT_EQ(j["rejected"][3]["index"], 4);
  EXPECT_EQ(j["rejected"][3]["error"], "not_object");
  EXPECT_EQ(sink_->published(), static_cast<int64_t>(base_events_ + 3));
  EXPECT_TRUE(engine_->GetUser("7", false).ok());  // numeric ids become strings

  // A body of many invalid events: every one is counted, the first 100 are listed, and the
  // reply stays small (listing all 100k would be ~40 times the body).
  std::string many = "[";
  for (int i = 0; i < 100000; ++i) many += i == 0 ? "1" : ",1";
  many += R"(,{"user":"new3","item":"i5"}])";
  r = Post("/v1/events", many);
  ASSERT_EQ(r.status, 202) << r.body.substr(0, 200);
  j = r.Json();
  EXPECT_EQ(j["accepted"], 1);
  EXPECT_EQ(j["rejected_total"], 100000);
  ASSERT_EQ(j["rejected"].size(), 100u);
  EXPECT_EQ(j["rejected"][0]["index"], 0);
  EXPECT_EQ(j["rejected"][99]["index"], 99);
  EXPECT_EQ(j["rejected"][99]["error"], "not_object");
  EXPECT_LT(r.body.size(), many.size());
  EXPECT_EQ(sink_->published(), static_cast<int64_t>(base_events_ + 4));

  // A single invalid event is a plain 400 with its reason.
  ExpectError(Post("/v1/events", R"({"user":"a"})"), 400, "missing_item");
  ExpectError(Post("/v1/events", R"({"user":"a","item":"b")"), 400, "bad_json");
  ExpectError(Post("/v1/events", ""), 400, "bad_json");
  ExpectError(Post("/v1/events", "\"just a string\""), 400, "bad_request");
  ExpectError(Post("/v1/events?wait=perhaps", R"({"user":"a","item":"b"})"), 400,
              "invalid_parameter");
  // Empty array: nothing to do, still an answer.
  r = Post("/v1/events?wait=true", "[]");
  ASSERT_EQ(r.status, 202);
  EXPECT_EQ(r.Json()["accepted"], 0);
  EXPECT_EQ(r.Json()["applied"], true);
  // Rejections are counted by reason in /metrics.
  const std::string m = Get("/metrics").body;
  EXPECT_NE(m.find("simstream_events_rejected_total{reason=\"missing_item\",source=\"http\"} 2"),
            std::string::npos)
      << m;
}

// With no rejection listed, a single invalid event is still a 400 with its reason.
TEST_F(HttpTest, ASingleInvalidEventIsA400EvenWithNoRejectionListed) {
  HttpServerOptions ho;
  ho.max_listed_rejections = 0;
  StartServer({}, ho);
  ExpectError(Post("/v1/events", R"({"user":"a"})"), 400, "missing_item");
  const Resp r = Post("/v1/events", R"([{"user":"a"},{"user":"b","item":"c"}])");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.Json()["rejected_total"], 1);
  EXPECT_EQ(r.Json()["rejected"], json::array());
}

TEST_F(HttpTest, DeeplyNestedBodiesAreRefusedAndTheServerLives) {
  StartServer();
  // 200k levels inside an event, and as the whole body: parsed, these would be serialised
  // recursively and overflow the stack. Refused before parsing, with the server still up.
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  ExpectError(Post("/v1/events", R"({"user":"u","item":"i","x":)" + deep + "}"), 400, "bad_json");
  ExpectError(Post("/v1/events", deep), 400, "bad_json");
  ExpectError(Post("/v1/events", "[" + std::string(65, '{')), 400, "bad_json");
  EXPECT_EQ(Get("/healthz").status, 200);
  EXPECT_EQ(sink_->published(), static_cast<int64_t>(base_events_));
  // Shallow nesting in a field, brackets inside strings (escaped quotes too) and 64 levels
  // in all are fine.
  const std::string brackets(100, '[');
  Resp r = Post("/v1/events", R"([{"user":"n1","item":"i1","extra":[[[{"a":[1]}]]]},)"
                              R"({"user":"n2","item":"i2","note":"\")" +
                                  brackets + R"("}])");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.Json()["accepted"], 2) << r.body;
  r = Post("/v1/events", std::string("[") + R"({"user":"n3","item":"i3","x":)" +
                             std::string(62, '[') + std::string(62, ']') + "}]");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.Json()["accepted"], 1) << r.body;
  EXPECT_EQ(sink_->published(), static_cast<int64_t>(base_events_ + 3));
}

// A client that sends its request and half-closes (shutdown(SHUT_WR)) before reading still
// gets the whole response, even one far larger than the socket buffers.
TEST_F(HttpTest, HalfClosedClientGetsTheWholeResponse) {
  HttpServerOptions ho;
  ho.max_listed_rejections = 1 << 20;  // every rejection listed: a reply of megabytes
  StartServer({}, ho);
  std::string body = "[0";
  for (int i = 1; i < 100000; ++i) body += ",0";
  body += "]";  // 100k elements, each rejected: a reply of several megabytes
  Client c(port_);
  const int small = 16 << 10;
  setsockopt(c.socket().native_handle(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  c.WriteRaw(
      "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body);
  c.socket().shutdown(tcp::socket::shutdown_send);
  std::this_thread::sleep_for(
      std::chrono::milliseconds(300));  // the server sees the EOF while its write is pending
  const Resp r = c.Read();
  ASSERT_EQ(r.status, 202);
  const json j = r.Json();
  ASSERT_TRUE(j.is_object()) << r.body.size() << " bytes";
  EXPECT_EQ(j["accepted"], 0);
  EXPECT_EQ(j["rejected"].size(), 100000u);
  EXPECT_GT(r.body.size(), size_t{1} << 20);
  EXPECT_TRUE(c.ClosedByPeer());
}

TEST_F(HttpTest, PostEventsWaitsUntilApplied) {
  StartServer({}, {}, OwnSink<DelayedSink>(*engine_, std::chrono::milliseconds(150)));
  const auto start = Clock::now();
  Resp r =
      Post("/v1/events?wait=true", R"([{"user":"late","item":"i1"},{"user":"late","item":"i2"}])");
  const auto waited = Clock::now() - start;
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.Json()["applied"], true);
  EXPECT_GE(waited, std::chrono::milliseconds(140));
  EXPECT_EQ(engine_->GetUser("late", false)->events, 2u);  // applied before the answer
}

TEST_F(HttpTest, PostEventsWaitTimesOutWithAppliedFalse) {
  HttpServerOptions ho;
  ho.wait_timeout_ms = 200;
  StartServer({}, ho, OwnSink<StuckSink>(/*fail=*/false));
  Resp r = Post("/v1/events?wait=true", R"({"user":"x","item":"y"})");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(r.Json()["accepted"], 1);
  EXPECT_EQ(r.Json()["applied"], false);
}

TEST_F(HttpTest, PostEventsWithoutOrFailingSinkIs503WithoutInternals) {
  StartServer({}, {}, nullptr, /*no_sink=*/true);
  ExpectError(Post("/v1/events", R"({"user":"x","item":"y"})"), 503, "unavailable");
  server_->Stop();
  StartServer({}, {}, OwnSink<StuckSink>(/*fail=*/true));
  Resp r = Post("/v1/events", R"({"user":"x","item":"y"})");
  ExpectError(r, 503, "unavailable");
  EXPECT_EQ(r.body.find("10.0.0.7"), std::string::npos);
  EXPECT_EQ(r.body.find("broker_down"), std::string::npos);
}

// Publishes waiting on a slow broker are bounded: beyond max_blocking, 503 at once.
TEST_F(HttpTest, BlockingRequestsBeyondTheLimitGet503AtOnce) {
  HttpServerOptions ho;
  ho.blocking_threads = 1;
  ho.max_blocking = 2;
  StartServer({}, ho, OwnSink<SlowSink>(std::chrono::milliseconds(1000)));
  std::vector<Resp> replies(4);
  std::vector<std::chrono::milliseconds> took(4);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < replies.size(); ++i) {
    clients.emplace_back([&, i] {
      const auto start = Clock::now();
      replies[i] = Post("/v1/events", R"({"user":"slow","item":"i1"})");
      took[i] = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    });
  }
  for (auto& t : clients) t.join();
  int accepted = 0, overloaded = 0;
  for (size_t i = 0; i < replies.size(); ++i) {
    if (replies[i].status == 202) ++accepted;
    if (replies[i].status == 503) {
      ++overloaded;
      ExpectError(replies[i], 503, "overloaded");
      EXPECT_LT(took[i], std::chrono::milliseconds(600));  // not queued behind the others
    }
  }
  EXPECT_EQ(accepted, 2);
  EXPECT_EQ(overloaded, 2);
  // The slots free up once the publishes finish.
  EXPECT_EQ(Post("/v1/events", R"({"user":"slow","item":"i2"})").status, 202);
}

TEST_F(HttpTest, DeleteUserForgetsAndFlushes) {
  StartServer();
  ExpectError(Call(port_, http::verb::delete_, "/v1/users/nobody"), 404, "not_found");
  EXPECT_EQ(flushes_, 0);
  Resp r = Call(port_, http::verb::delete_, "/v1/users/u2");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["forgotten"], true);
  EXPECT_EQ(flushes_, 1);
  ExpectError(Get("/v1/users/u2"), 404, "not_found");
  ExpectError(Get("/v1/users/u2/similar"), 404, "not_found");
}

// A forget whose store write fails is answered as what it is: a failed write is retried by the
// next flush (500), a sealed flusher (a failed write before a rebalance; the daemon is stopping)
// stores nothing more, so the user comes back at the restart unless the DELETE is repeated.
TEST_F(HttpTest, DeleteUserSaysWhetherAFailedStoreWillBeRetried) {
  StartServer();
  {
    std::lock_guard lock(flush_result_mu_);
    flush_result_ = Error{"storage_io", "writing a batch failed"};
  }
  Resp r = Call(port_, http::verb::delete_, "/v1/users/u2");
  ExpectError(r, 500, "internal");
  EXPECT_NE(r.Json()["error"]["message"].get<std::string>().find("next flush retries"),
            std::string::npos)
      << r.body;
  {
    std::lock_guard lock(flush_result_mu_);
    flush_result_ = Error{"storage_sealed", "the flusher is sealed"};
  }
  r = Call(port_, http::verb::delete_, "/v1/users/u3");
  ExpectError(r, 503, "unavailable");
  const std::string message = r.Json()["error"]["message"].get<std::string>();
  EXPECT_EQ(message.find("retries"), std::string::npos) << message;
  EXPECT_NE(message.find("repeat the DELETE"), std::string::npos) << message;
  EXPECT_EQ(message.find("sealed"), std::string::npos) << "no internals: " << message;
}

// A real RocksDB store whose next writes can be made to fail (a full disk), to show a failed
// flush in /v1/stats; everything else goes to the store.
class FailingWritesStore final : public storage::StateStore {
 public:
  explicit FailingWritesStore(std::unique_ptr<storage::StateStore> inner)
      : inner_(std::move(inner)) {}
  Status Write(const engine::ChangeSet& cs) override {
    if (fail_next > 0) {
      --fail_next;
      return Error{"storage_io", "no space left on device (simulated)"};
    }
    return inner_->Write(cs);
  }
  Status Visit(storage::StateVisitor& v) override { return inner_->Visit(v); }
  int dim() const override { return inner_->dim(); }
  Result<std::map<int32_t, int64_t>> Offsets() const override { return inner_->Offsets(); }
  Status SyncWal() override {
    if (fail_sync > 0) {
      --fail_sync;
      return Error{"storage_io", "fsync: input/output error (simulated)"};
    }
    return inner_->SyncWal();
  }
  Result<uint64_t> EventsApplied() const override { return inner_->EventsApplied(); }
  Status Checkpoint(const std::string& dir) override { return inner_->Checkpoint(dir); }
  uint64_t SizeBytes() const override { return inner_->SizeBytes(); }
  Status PurgeDeleted() override { return inner_->PurgeDeleted(); }

  int fail_next = 0;  // only while no flush runs (the test flushes on its own thread)
  int fail_sync = 0;  // likewise

 private:
  std::unique_ptr<storage::StateStore> inner_;
};

TEST_F(HttpTest, StatsReportTheFlusherOfARealStore) {
  StartServer();
  {
    const json without = Get("/v1/stats").Json();
    ASSERT_TRUE(without.contains("storage")) << without.dump();
    EXPECT_TRUE(without.at("storage").is_null()) << "no flusher: null";
  }
  server_->Stop();
  server_.reset();

  // A fresh engine: the flusher sees only rows changed after it was created.
  engine_ = std::make_unique<engine::Engine>(EngineOptions());
  sink_ = std::make_unique<EngineSink>(*engine_);
  config::StorageOptions storage_opts;
  storage_opts.path = checkpoints_ + "-flushed";
  std::filesystem::remove_all(storage_opts.path);
  {
    auto rocks = storage::OpenRocksDbStore(storage_opts, EngineOptions().model, "events");
    ASSERT_TRUE(rocks.ok()) << rocks.error().message;
    FailingWritesStore store(std::move(*rocks));
    store_ = &store;
    storage::Flusher flusher(*engine_, store, storage_opts);
    flusher_stats_ = [&flusher] { return flusher.stats(); };
    // The server reads the flusher and the store: it stops before they go, even when an
    // ASSERT below leaves the block early.
    struct AtExit {
      std::function<void()> run;
      ~AtExit() { run(); }
    } stop_server{[this] {
      if (server_) server_->Stop();
      server_.reset();
      store_ = nullptr;
      flusher_stats_ = nullptr;
    }};
    StartServer();

    std::vector<engine::Event> events;
    for (int u = 1; u <= 12; ++u) {
      for (int j = 0; j < 5; ++j) {
        engine::Event e;
        e.user = "u" + std::to_string(u);
        e.item = "i" + std::to_string((u * 5 + j * 7) % 17);
        e.ts_ms = 2000 + u * 10 + j;
        events.push_back(e);
      }
    }
    ASSERT_TRUE(sink_->Publish(events).ok());
    json st = Get("/v1/stats").Json()["storage"];
    EXPECT_EQ(st["flushes"], 0);
    EXPECT_EQ(st["events_durable"], 0);
    EXPECT_EQ(st["events_not_durable"], events.size());
    EXPECT_TRUE(st["last_error"].is_null());

    ASSERT_TRUE(flusher.FlushNow().ok());
    json j = Get("/v1/stats").Json();
    st = j["storage"];
    const uint64_t rows = j["users"].get<uint64_t>() + j["items"].get<uint64_t>();
    EXPECT_EQ(j["users"], 12);
    EXPECT_EQ(st["flushes"], 1);
    EXPECT_EQ(st["failures"], 0);
    EXPECT_EQ(st["retry_pending"], false);
    EXPECT_TRUE(st["last_error"].is_null());
    EXPECT_EQ(st["events_durable"], events.size());
    EXPECT_EQ(st["events_not_durable"], 0);
    EXPECT_EQ(st["last_rows"], rows) << "every user and item row was new";
    EXPECT_EQ(st["rows_written"], rows);
    EXPECT_GT(st["edges_written"].get<uint64_t>(), 0u);
    EXPECT_GT(st["last_flush_ms"].get<double>(), 0.0);
    EXPECT_GT(st["bytes_on_disk"].get<uint64_t>(), 0u);

    // One more event for u1 and a write that fails: the events stay not durable, the error
    // shows, and the retry that succeeds clears it.
    ASSERT_TRUE(sink_->Publish({events[0]}).ok());
    store.fail_next = 1;
    ASSERT_FALSE(flusher.FlushNow().ok());
    st = Get("/v1/stats").Json()["storage"];
    EXPECT_EQ(st["flushes"], 1);
    EXPECT_EQ(st["failures"], 1);
    EXPECT_EQ(st["retry_pending"], true);
    EXPECT_EQ(st["last_error"],
              (json{{"code", "storage_io"}, {"message", "no space left on device (simulated)"}}));
    EXPECT_EQ(st["events_durable"], events.size());
    EXPECT_EQ(st["events_not_durable"], 1);
    ASSERT_TRUE(flusher.FlushNow().ok());
    st = Get("/v1/stats").Json()["storage"];
    EXPECT_EQ(st["flushes"], 2);
    EXPECT_EQ(st["failures"], 1);
    EXPECT_EQ(st["retry_pending"], false);
    EXPECT_TRUE(st["last_error"].is_null());
    EXPECT_EQ(st["events_durable"], events.size() + 1);
    EXPECT_EQ(st["events_not_durable"], 0);
    // u1 and its item at least (the negatives the loss pushed away are rows too).
    EXPECT_GE(st["last_rows"].get<uint64_t>(), 2u);
    EXPECT_EQ(st["rows_written"], rows + st["last_rows"].get<uint64_t>());
    EXPECT_EQ(st["events_synced"], events.size() + 1);
    EXPECT_EQ(st["sync_failures"], 0);

    // A write that lands but whose WAL fsync fails: durable against a process crash, not yet
    // against a power loss, and said so; the next flush syncs it.
    ASSERT_TRUE(sink_->Publish({events[1]}).ok());
    store.fail_sync = 1;
    ASSERT_FALSE(flusher.FlushNow().ok());
    st = Get("/v1/stats").Json()["storage"];
    EXPECT_EQ(st["flushes"], 3);
    EXPECT_EQ(st["failures"], 1) << "the write did not fail";
    EXPECT_EQ(st["sync_failures"], 1);
    EXPECT_EQ(st["retry_pending"], false);
    EXPECT_EQ(st["events_durable"], events.size() + 2);
    EXPECT_EQ(st["events_synced"], events.size() + 1);
    EXPECT_EQ(st["events_not_durable"], 0);
    ASSERT_TRUE(st["last_error"].is_object()) << st.dump();
    EXPECT_NE(st["last_error"]["message"].get<std::string>().find("fsync: input/output error"),
              std::string::npos)
        << st.dump();
    ASSERT_TRUE(flusher.FlushNow().ok());
    st = Get("/v1/stats").Json()["storage"];
    EXPECT_EQ(st["events_synced"], events.size() + 2);
    EXPECT_TRUE(st["last_error"].is_null());

    // The daemon's admin checkpoints live inside the store's directory and share its SST
    // files: they are not the store's bytes. (The first one flushes the memtables.)
    const auto checkpoints = std::filesystem::path(storage_opts.path) / "checkpoints";
    std::filesystem::create_directories(checkpoints);
    ASSERT_TRUE(store.Checkpoint((checkpoints / "1").string()).ok());
    const uint64_t bytes = Get("/v1/stats").Json()["storage"]["bytes_on_disk"].get<uint64_t>();
    ASSERT_TRUE(store.Checkpoint((checkpoints / "2").string()).ok());
    ASSERT_TRUE(store.Checkpoint((checkpoints / "3").string()).ok());
    EXPECT_EQ(Get("/v1/stats").Json()["storage"]["bytes_on_disk"], bytes);
  }
  std::filesystem::remove_all(storage_opts.path);
}

TEST_F(HttpTest, CheckpointNeedsAStoreAndWritesOne) {
  StartServer();
  ExpectError(Post("/v1/admin/checkpoint", ""), 503, "unavailable");
  server_->Stop();

  // The real RocksDB store: its checkpoint is a directory with a CURRENT file.
  config::StorageOptions storage_opts;
  storage_opts.path = checkpoints_ + "-db";
  {
    auto rocks = storage::OpenRocksDbStore(storage_opts, EngineOptions().model, "events");
    ASSERT_TRUE(rocks.ok()) << rocks.error().message;
    store_ = rocks->get();
    StartServer();
    // Pairs at once (they often share a millisecond, so a directory name): each gets its own.
    std::set<std::string> dirs;
    for (int round = 0; round < 4; ++round) {
      Resp a, b;
      std::thread other([&] { b = Post("/v1/admin/checkpoint", ""); });
      a = Post("/v1/admin/checkpoint", "");
      other.join();
      for (const Resp* r : {&a, &b}) {
        ASSERT_EQ(r->status, 200) << r->body;
        const std::string dir = r->Json()["checkpoint"];
        EXPECT_EQ(dir.rfind(checkpoints_ + "/", 0), 0u) << dir;
        EXPECT_TRUE(std::filesystem::exists(dir + "/CURRENT")) << dir;
        EXPECT_TRUE(dirs.insert(dir).second) << dir << " twice";
      }
    }
    server_->Stop();
    server_.reset();
  }
  std::filesystem::remove_all(storage_opts.path);

  // A store that cannot checkpoint: 500, and its message stays in the log.
  auto memory = storage::NewInMemoryStore(EngineOptions().model, "events");
  store_ = memory.get();
  StartServer();
  Resp c = Post("/v1/admin/checkpoint", "");
  ExpectError(c, 500, "internal");
  EXPECT_EQ(c.body.find("in-memory"), std::string::npos);
  server_->Stop();
  server_.reset();
}

TEST_F(HttpTest, StatsReportsEngineAndPartitions) {
  StartServer();
  Resp r = Get("/v1/stats");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.Json();
  EXPECT_EQ(j["events_applied"], base_events_);
  EXPECT_EQ(j["events_rejected"], 0);
  EXPECT_EQ(j["users"], 20);
  EXPECT_EQ(j["items"], 30);
  ASSERT_EQ(j["partitions"].size(), 1u);
  EXPECT_EQ(j["partitions"][0]["partition"], 0);
  EXPECT_EQ(j["partitions"][0]["next_offset"], base_events_);
  EXPECT_EQ(j["partitions"][0]["lag"], 3);
  EXPECT_EQ(j["consumer"], (json{{"paused", false},
                                 {"pauses", 0},
                                 {"rebalances", 0},
                                 {"duplicates", 0},
                                 {"dlq_delivery_failures", 0},
                                 {"dlq_unacknowledged", 0}}));
  {
    std::lock_guard lock(consumer_mu_);
    consumer_ = Consumer(true, 4, 2, 17, 1);
    consumer_.dlq_unacknowledged = 3;
  }
  const json c = Get("/v1/stats").Json()["consumer"];
  EXPECT_EQ(c, (json{{"paused", true},
                     {"pauses", 4},
                     {"rebalances", 2},
                     {"duplicates", 17},
                     {"dlq_delivery_failures", 1},
                     {"dlq_unacknowledged", 3}}));
  EXPECT_EQ(j["prequential"]["k"], 10);
  EXPECT_TRUE(j["prequential"]["hr"].is_number());
  EXPECT_TRUE(j["prequential"]["samples"].is_number());
  EXPECT_TRUE(j["mix"]["embedding"].is_number());
  EXPECT_TRUE(j["mix"]["neighbourhood"].is_number());
  EXPECT_TRUE(j["mix"]["popularity"].is_number());
  // The similarity indexes (docs/openapi.yaml IndexStats); 20 users < index.hnsw_min_size.
  for (const char* table : {"users", "items"}) {
    const json& ix = j["index"][table];
    EXPECT_EQ(ix["mode"], "exact") << table;
    for (const char* f : {"indexed", "deleted", "recall_samples", "recall_window_samples",
                          "reinserts", "deferred", "builds"})
      EXPECT_TRUE(ix[f].is_number_integer()) << table << "." << f;
    EXPECT_TRUE(ix["recall_at_10"].is_number()) << table;
    EXPECT_TRUE(ix["building"].is_boolean()) << table;
  }
}

TEST_F(HttpTest, MetricsInPrometheusTextFormat) {
  StartServer();
  ASSERT_EQ(Get("/healthz").status, 200);
  ASSERT_EQ(Get("/v1/users/nobody").status, 404);
  server_->metrics().ObserveFlush(0.003);
  server_->metrics().CountFlushFailure();
  Resp r = Get("/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["Content-Type"].rfind("text/plain; version=0.0.4", 0), 0u);
  const std::string& m = r.body;
  for (const std::string& want : std::vector<std::string>{
           "# TYPE simstream_http_request_duration_seconds histogram",
           "simstream_http_request_duration_seconds_count{route=\"GET /healthz\",status=\"200\"} "
           "1",
           "simstream_http_request_duration_seconds_count{route=\"GET /v1/users/{user}\",status="
           "\"404\"} 1",
           "simstream_events_applied_total " + std::to_string(base_events_),
           "simstream_consumer_lag{partition=\"0\"} 3", "simstream_flush_duration_seconds_count 1",
           "simstream_flush_failures_total 1", "simstream_prequential_hit_rate{k=\"10\"}",
           "simstream_model_entities{kind=\"user\"} 20",
           "simstream_model_entities{kind=\"item\"} 30", "simstream_model_bytes ",
           "simstream_embedding_dimension 16", "simstream_http_open_connections ",
           "simstream_index_recall_at_10{table=\"users\"} ",
           "simstream_index_entries{table=\"items\"} 0",
           "simstream_index_deleted_entries{table=\"users\"} 0",
           "simstream_index_builds{table=\"users\"} 0",
           "simstream_index_hnsw{table=\"items\"} 0"}) {
    EXPECT_NE(m.find(want), std::string::npos) << "missing: " << want << "\n" << m;
  }
  // Counters stay monotonic across scrapes and follow the engine.
  ASSERT_EQ(Post("/v1/events", R"({"user":"m","item":"n"})").status, 202);
  EXPECT_NE(Get("/metrics")
                .body.find("simstream_events_applied_total " + std::to_string(base_events_ + 1)),
            std::string::npos);
  // The consumer's series: as reported, and counters never go back (a lower report, as from a
  // recreated consumer, leaves them where they were).
  auto consumer_series = [&](const KafkaSourceStats& c, const std::vector<std::string>& want) {
    {
      std::lock_guard lock(consumer_mu_);
      consumer_ = c;
    }
    const std::string body = Get("/metrics").body;
    for (const std::string& w : want)
      EXPECT_NE(body.find(w + "\n"), std::string::npos) << "missing: " << w << "\n" << body;
  };
  consumer_series({},
                  {"simstream_consumer_paused 0", "simstream_consumer_pauses_total 0",
                   "simstream_consumer_rebalances_total 0", "simstream_consumer_duplicates_total 0",
                   "simstream_dlq_delivery_failures_total 0"});
  consumer_series(
      Consumer(true, 3, 1, 250, 2),
      {"simstream_consumer_paused 1", "simstream_consumer_pauses_total 3",
       "simstream_consumer_rebalances_total 1", "simstream_consumer_duplicates_total 250",
       "simstream_dlq_delivery_failures_total 2"});
  consumer_series(Consumer(false, 1, 1, 260, 2),
                  {"simstream_consumer_paused 0", "simstream_consumer_pauses_total 3",
                   "simstream_consumer_duplicates_total 260"});
}

// Connections open and close on different I/O threads: the gauge must come back to exactly
// the one connection reading it.
TEST_F(HttpTest, OpenConnectionsGaugeStaysExactUnderChurn) {
  StartServer();
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < 40; ++i) EXPECT_EQ(Get("/healthz").status, 200);
    });
  }
  for (auto& c : clients) c.join();
  const std::string want = "\nsimstream_http_open_connections 1\n";
  std::string metrics;
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  do {
    metrics = Get("/metrics").body;  // its own connection is the one open
  } while (metrics.find(want) == std::string::npos && Clock::now() < deadline);
  EXPECT_NE(metrics.find(want), std::string::npos) << metrics;
}

TEST_F(HttpTest, WrongMethodsAndUnknownPaths) {
  StartServer();
  Resp r = Call(port_, http::verb::put, "/v1/events", "{}");
  ExpectError(r, 405, "method_not_allowed");
  EXPECT_EQ(r.headers["Allow"], "POST");
  r = Call(port_, http::verb::post, "/v1/users/u1", "{}");
  ExpectError(r, 405, "method_not_allowed");
  EXPECT_EQ(r.headers["Allow"], "GET, DELETE");
  r = Call(port_, http::verb::delete_, "/healthz");
  EXPECT_EQ(r.headers["Allow"], "GET");
  ExpectError(Get("/v1/nothing"), 404, "not_found");
  ExpectError(Get("/healthz/"), 404, "not_found");
  ExpectError(Get("/"), 404, "not_found");
}

TEST_F(HttpTest, TokensGateRoles) {
  config::ServerOptions so;
  so.read_token = "r-token";
  so.write_token = "w-token";
  so.admin_token = "a-token";
  StartServer(so);
  // No token and wrong tokens: 401 with a challenge.
  Resp r = Get("/v1/users/u1");
  ExpectError(r, 401, "unauthorized");
  EXPECT_EQ(r.headers["WWW-Authenticate"], "Bearer realm=\"simstream\"");
  ExpectError(Get("/v1/users/u1", "r-tokenX"), 401, "unauthorized");
  ExpectError(Get("/v1/users/u1", "r-toke"), 401, "unauthorized");
  ExpectError(Get("/metrics"), 401, "unauthorized");
  {
    Client c(port_);
    c.WriteRaw("GET /v1/stats HTTP/1.1\r\nHost: x\r\nAuthorization: Basic r-token\r\n\r\n");
    ExpectError(c.Read(), 401, "unauthorized");
  }
  // The token is checked before the query: no token, no word on its parameters.
  ExpectError(Get("/v1/users/u1/recommendations?k=1&k=1"), 401, "unauthorized");
  ExpectError(Get("/v1/users/u1/recommendations?exlude=x"), 401, "unauthorized");
  // The scheme is case-insensitive (RFC 7235); the token is not.
  for (const char* scheme : {"bearer", "BEARER", "bEaReR"}) {
    Client c(port_);
    c.WriteRaw(std::string("GET /v1/stats HTTP/1.1\r\nHost: x\r\nAuthorization: ") + scheme +
               " r-token\r\n\r\n");
    EXPECT_EQ(c.Read().status, 200) << scheme;
  }
  {
    Client c(port_);
    c.WriteRaw("GET /v1/stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer R-TOKEN\r\n\r\n");
    ExpectError(c.Read(), 401, "unauthorized");
  }
  // Read < write < admin.
  EXPECT_EQ(Get("/v1/users/u1", "r-token").status, 200);
  EXPECT_EQ(Get("/v1/users/u1", "w-token").status, 200);
  EXPECT_EQ(Get("/v1/users/u1", "a-token").status, 200);
  const std::string ev = R"({"user":"t","item":"i1"})";
  ExpectError(Post("/v1/events", ev, "r-token"), 403, "forbidden");
  EXPECT_EQ(Post("/v1/events", ev, "w-token").status, 202);
  EXPECT_EQ(Post("/v1/events", ev, "a-token").status, 202);
  ExpectError(Call(port_, http::verb::delete_, "/v1/users/u1", "", "w-token"), 403, "forbidden");
  ExpectError(Post("/v1/admin/checkpoint", "", "r-token"), 403, "forbidden");
  EXPECT_EQ(Call(port_, http::verb::delete_, "/v1/users/u1", "", "a-token").status, 200);
  // Probes stay open.
  EXPECT_EQ(Get("/healthz").status, 200);
  EXPECT_EQ(Get("/readyz").status, 200);
}

TEST_F(HttpTest, EmptyTokenLeavesThatRoleOpen) {
  config::ServerOptions so;
  so.admin_token = "a-token";  // reads and writes open, admin gated
  StartServer(so);
  EXPECT_EQ(Get("/v1/users/u1").status, 200);
  EXPECT_EQ(Post("/v1/events", R"({"user":"t","item":"i1"})").status, 202);
  ExpectError(Call(port_, http::verb::delete_, "/v1/users/u1"), 401, "unauthorized");
}

TEST_F(HttpTest, BodyHeaderAndUrlLimits) {
  config::ServerOptions so;
  so.body_limit = 1024;
  HttpServerOptions ho;
  ho.header_limit = 2048;
  ho.url_limit = 512;
  StartServer(so, ho);
  const std::string big(2000, ' ');
  ExpectError(Post("/v1/events", "[" + big + "]"), 413, "payload_too_large");
  EXPECT_EQ(Post("/v1/events", "[" + std::string(900, ' ') + "]").status, 202);
  {
    Client c(port_);
    c.WriteRaw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n");
    ExpectError(c.Read(), 431, "header_too_large");
    EXPECT_TRUE(c.ClosedByPeer());
  }
  ExpectError(Get("/v1/users/" + std::string(600, 'a')), 414, "uri_too_long");
  EXPECT_EQ(Get("/v1/users/" + std::string(400, 'a')).status, 404);
  // A lying Content-Length beyond the limit is refused before the body is read.
  {
    Client c(port_);
    c.WriteRaw("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n");
    ExpectError(c.Read(), 413, "payload_too_large");
  }
  // A target longer than the header limit is still a 414, not a 431.
  ExpectError(Get("/v1/users/" + std::string(3000, 'a')), 414, "uri_too_long");
  // A client sending a 16 MiB body in full can: the server reads and drops the rest before it
  // closes, so the client's writes are not reset, and it reads the 413.
  for (int round = 0; round < 3; ++round) {
    Client c(port_);
    const std::string body(16 << 20, ' ');
    beast::error_code ec;
    std::thread sender([&] {
      net::write(c.socket(),
                 net::buffer("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body),
                 ec);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // well into the body
    Resp r;
    EXPECT_NO_THROW(r = c.Read()) << "round " << round;
    sender.join();
    EXPECT_FALSE(ec) << ec.message() << " in round " << round;
    ExpectError(r, 413, "payload_too_large");
  }
}

TEST_F(HttpTest, GarbageBytesGet400AndClose) {
  StartServer();
  for (const std::string& garbage :
       {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + "garbage\r\n\r\n",
        std::string("HELLO WORLD\r\n\r\n"), std::string("GET /healthz HTTX/1.1\r\n\r\n"),
        std::string("GET /healthz HTTP/1.1\r\nNo colon here\r\n\r\n"),
        std::string("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n")}) {
    Client c(port_);
    c.WriteRaw(garbage);
    Resp r = c.Read();
    EXPECT_EQ(r.status, 400) << garbage;
    EXPECT_TRUE(c.ClosedByPeer()) << garbage;
  }
  EXPECT_EQ(Get("/healthz").status, 200);  // still serving
}

TEST_F(HttpTest, SlowClientsAreDisconnected) {
  HttpServerOptions ho;
  ho.idle_timeout_ms = 300;
  ho.read_timeout_ms = 300;
  StartServer({}, ho);
  {
    Client silent(port_);  // never sends a byte
    const auto start = Clock::now();
    EXPECT_TRUE(silent.ClosedByPeer());
    const auto took = Clock::now() - start;
    EXPECT_GE(took, std::chrono::milliseconds(250));
    EXPECT_LT(took, std::chrono::seconds(5));
  }
  {
    Client trickle(port_);  // starts a request and stalls
    trickle.WriteRaw("GET /healthz HTTP/1.1\r\nHo");
    const auto start = Clock::now();
    EXPECT_TRUE(trickle.ClosedByPeer());
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  }
  {
    Client kept(port_);  // an idle keep-alive connection is closed too
    EXPECT_EQ(kept.Send(http::verb::get, "/healthz").status, 200);
    EXPECT_TRUE(kept.ClosedByPeer());
  }
}

TEST_F(HttpTest, KeepAliveAndPipelining) {
  StartServer();
  Client c(port_);
  EXPECT_EQ(c.Send(http::verb::get, "/healthz").status, 200);
  EXPECT_EQ(c.Send(http::verb::get, "/v1/users/u1").status, 200);
  // Many requests in one write; answers come back in order. More than the pipeline limit, so
  // the server has to pause reading and resume.
  std::string batch;
  const std::vector<std::string> targets = {"/healthz", "/v1/users/u1", "/v1/users/nobody",
                                            "/v1/stats", "/v1/users/u4"};
  for (int round = 0; round < 4; ++round) {
    for (const auto& t : targets) batch += "GET " + t + " HTTP/1.1\r\nHost: x\r\n\r\n";
  }
  batch += "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 24\r\n\r\n";
  batch += R"({"user":"p","item":"q"})"
           " ";
  batch += "GET /v1/users/p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  c.WriteRaw(batch);
  for (int round = 0; round < 4; ++round) {
    EXPECT_EQ(c.Read().status, 200);
    Resp u1 = c.Read();
    EXPECT_EQ(u1.status, 200);
    EXPECT_EQ(u1.Json()["user"], "u1");
    EXPECT_EQ(c.Read().status, 404);
    EXPECT_TRUE(c.Read().Json().contains("events_applied"));
    EXPECT_EQ(c.Read().Json()["user"], "u4");
  }
  EXPECT_EQ(c.Read().status, 202);  // blocking route, still in order
  Resp last = c.Read();
  EXPECT_EQ(last.status, 200) << last.body;  // published before this request was handled
  EXPECT_TRUE(c.ClosedByPeer());
}

TEST_F(HttpTest, ConnectionLimit) {
  HttpServerOptions ho;
  ho.max_connections = 2;
  StartServer({}, ho);
  Client a(port_), b(port_);
  EXPECT_EQ(a.Send(http::verb::get, "/healthz").status, 200);
  EXPECT_EQ(b.Send(http::verb::get, "/healthz").status, 200);
  {
    Client c(port_);
    Resp r = c.Read();
    ExpectError(r, 503, "overloaded");
    EXPECT_TRUE(c.ClosedByPeer());
  }
  b.socket().close();
  // The slot frees once the server notices the close.
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    Client d(port_);
    served = d.Send(http::verb::get, "/healthz").status == 200;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(served);
}

TEST_F(HttpTest, StopClosesIdleConnectionsAndIsIdempotent) {
  StartServer();
  Client idle(port_);
  EXPECT_EQ(idle.Send(http::verb::get, "/healthz").status, 200);
  const auto start = Clock::now();
  server_->Stop();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  EXPECT_TRUE(idle.ClosedByPeer());
  server_->Stop();
  beast::error_code ec;
  net::io_context ioc;
  tcp::socket fresh(ioc);
  fresh.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_), ec);
  EXPECT_TRUE(ec) << "still accepting after Stop";
}

TEST_F(HttpTest, StartRejectsBadConfig) {
  HttpDeps deps;
  deps.engine = engine_.get();
  config::ServerOptions so;
  for (const char* listen : {"nonsense", "127.0.0.1:", "127.0.0.1:99999", "no.such.host:80"}) {
    so.listen = listen;
    auto s = HttpServer::Start(so, {}, deps);
    ASSERT_FALSE(s.ok()) << listen;
    EXPECT_EQ(s.error().code, "invalid_config");
  }
  so.listen = "127.0.0.1:0";
  so.threads = 0;
  EXPECT_FALSE(HttpServer::Start(so, {}, deps).ok());
  // Address in use.
  StartServer();
  so.threads = 1;
  so.listen = "127.0.0.1:" + std::to_string(port_);
  auto s = HttpServer::Start(so, {}, deps);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, "bind_failed");
}

// Every served route must be documented: docs/openapi.yaml lists each path once at two
// spaces of indent, with its methods at four.
TEST(HttpOpenApi, EveryRouteIsDocumented) {
  std::ifstream in(std::string(SIMSTREAM_SOURCE_DIR) + "/docs/openapi.yaml");
  ASSERT_TRUE(in.good());
  std::map<std::string, std::set<std::string>> documented;
  std::string line, path;
  while (std::getline(in, line)) {
    if (line.rfind("  /", 0) == 0 && line.back() == ':') {
      path = line.substr(2, line.size() - 3);
      documented[path];
    } else if (line.size() > 2 && line[0] == ' ' && line[1] == ' ' && line[2] != ' ') {
      path.clear();
    } else if (!path.empty() && line.rfind("    ", 0) == 0 && line[4] != ' ' &&
               line.back() == ':') {
      documented[path].insert(line.substr(4, line.size() - 5));
    } else if (!line.empty() && line[0] != ' ') {
      path.clear();
    }
  }
  const auto routes = HttpServer::Routes();
  EXPECT_EQ(routes.size(), 11u);
  for (const auto& [method, templ] : routes) {
    std::string lower;
    for (char c : method) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ASSERT_TRUE(documented.count(templ)) << templ << " missing from docs/openapi.yaml";
    EXPECT_TRUE(documented[templ].count(lower)) << method << " " << templ << " not documented";
  }
}

// Hand-computed cases of the decoding and comparison helpers.
TEST(HttpHelpers, PercentDecode) {
  EXPECT_EQ(PercentDecode("a%20b", false), "a b");
  EXPECT_EQ(PercentDecode("a+b", false), "a+b");
  EXPECT_EQ(PercentDecode("a+b", true), "a b");
  EXPECT_EQ(PercentDecode("%2f%2F", false), "//");
  EXPECT_EQ(PercentDecode("%E2%82%AC", false), "\xE2\x82\xAC");
  EXPECT_EQ(PercentDecode("", false), "");
  EXPECT_FALSE(PercentDecode("%", false));
  EXPECT_FALSE(PercentDecode("%2", false));
  EXPECT_FALSE(PercentDecode("%g0", false));
  EXPECT_FALSE(PercentDecode("%E2%82", false));     // truncated UTF-8
  EXPECT_FALSE(PercentDecode("%ED%A0%80", false));  // surrogate
}

TEST(HttpHelpers, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", std::string("secret\0", 7)));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secre"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
}

}  // namespace
}  // namespace simstream::connectors
