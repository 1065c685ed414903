// Transport of the HTTP API: listener, sessions, limits, timeouts, pipelining, stop.
// What each route answers lives in http_routes.cpp (internal header http_routes.hpp).
#include "connectors/http_server.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "connectors/http_routes.hpp"
#include "engine/thread_name.hpp"

namespace simstream::connectors {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

void LogLine(const char* what, const std::string& detail) {
  std::fprintf(stderr, "simstream: http: %s: %s\n", what, detail.c_str());
}

// The peer left, a timeout fired or we are shutting down: part of normal life.
bool IsPeerGone(beast::error_code ec) {
  return ec == net::error::operation_aborted || ec == beast::error::timeout ||
         ec == net::error::eof || ec == http::error::end_of_stream ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == net::error::not_connected || ec == net::error::bad_descriptor;
}

// Every failure is labelled with the step that failed. Departed peers and malformed requests
// (answered with a 4xx and counted in metrics) are not logged, so garbage cannot flood the log.
void Fail(beast::error_code ec, const char* what) {
  if (IsPeerGone(ec)) return;
  if (ec.category() == http::make_error_code(http::error::bad_method).category()) return;
  LogLine(what, ec.message());
}

class Session;

}  // namespace

struct HttpServer::Impl {
  Impl(const config::ServerOptions& s, const HttpServerOptions& o, HttpDeps d)
      : server(s),
        options(o),
        sink(d.sink),
        routes(server, options, std::move(d), metrics),
        ioc(static_cast<int>(s.threads)),
        pool(o.blocking_threads == 0 ? 1 : o.blocking_threads),
        acceptor(net::make_strand(ioc)) {}

  void DoAccept();
  void OnAccept(beast::error_code ec, tcp::socket socket);

  const config::ServerOptions server;
  const HttpServerOptions options;
  EventSink* const sink;  // cancelled by Stop()
  MetricsRegistry metrics;
  RouteTable routes;

  // Touched by sessions until the very end: declared before the io_context so they outlive
  // the session objects it destroys.
  std::atomic<int64_t> open_connections{0};
  std::atomic<size_t> blocking{0};  // requests waiting for or running on `pool`
  std::atomic<bool> stopping{false};
  std::mutex sessions_mu;
  uint64_t next_session_id = 0;
  std::unordered_map<uint64_t, std::weak_ptr<Session>> sessions;

  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  net::thread_pool pool;  // blocking handlers
  tcp::acceptor acceptor;
  net::steady_timer accept_backoff{acceptor.get_executor()};
  uint16_t port = 0;
  std::vector<std::thread> threads;
  std::mutex running_mu;
  std::condition_variable running_cv;
  size_t running = 0;
  bool stopped = false;
};

namespace {

using Response = http::response<http::string_body>;

// How long a connection closed after an early answer keeps reading (and dropping) input.
constexpr std::chrono::milliseconds kLinger{1000};

// One connection. All its handlers run on its strand, so its members need no lock.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, HttpServer::Impl* server, bool reject)
      : stream_(std::move(socket)), server_(server), reject_(reject) {
    if (!reject_) {
      ++server_->open_connections;
      server_->metrics.AddOpenConnections(1);
    }
  }
  ~Session() {
    if (!reject_) {
      --server_->open_connections;
      server_->metrics.AddOpenConnections(-1);
      std::lock_guard lock(server_->sessions_mu);
      server_->sessions.erase(id_);
    }
  }

  void Run() {
    if (!reject_) {
      std::lock_guard lock(server_->sessions_mu);
      id_ = server_->next_session_id++;
      server_->sessions[id_] = weak_from_this();
    }
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (self->reject_) {
        // Over the connection limit: answer without reading and close (no lingering: in a flood
        // that would hold sockets beyond the limit).
        self->closing_ = true;
        auto slot = self->NewSlot();
        self->Finish(slot, ErrorReply(503, "overloaded", "too many connections; retry later"),
                     Meta{false, 11, Clock::now(), "rejected"});
        return;
      }
      self->WaitForRequest();
    });
  }

  net::any_io_executor GetExecutor() { return stream_.get_executor(); }

  // Server stop: idle connections close now, busy ones after their current responses.
  void OnStop() {
    closing_ = true;
    if (lingering_) return stream_.close();  // its answer is out; the rest is dropped input
    // Waiting for a request and nothing left to send: close now. Otherwise OnWrite closes once
    // the queued responses are out (the close also cancels the idle read).
    if (idle_ && queue_.empty() && !writing_) Close();
  }

 private:
  struct Slot {
    std::optional<Response> res;
  };
  struct Meta {
    bool keep_alive = true;
    unsigned version = 11;
    Clock::time_point start;
    std::string route_label;
  };

  std::shared_ptr<Slot> NewSlot() {
    queue_.push_back(std::make_shared<Slot>());
    return queue_.back();
  }

  // Waits (idle timeout) for the first byte of the next request unless one is buffered.
  void WaitForRequest() {
    if (closing_ || server_->stopping) return CloseWhenDrained();  // a response may be leaving
    reading_ = true;
    if (buffer_.size() > 0) return ReadRequest();
    idle_ = true;
    stream_.expires_after(std::chrono::milliseconds(server_->options.idle_timeout_ms));
    stream_.async_read_some(buffer_.prepare(4096),
                            beast::bind_front_handler(&Session::OnFirstBytes, shared_from_this()));
  }

  void OnFirstBytes(beast::error_code ec, size_t n) {
    idle_ = false;
    if (ec) {
      reading_ = false;
      Fail(ec, "idle read");
      // A client that half-closed still gets the responses it is owed: close once they are out.
      if (ec == net::error::eof) return CloseWhenDrained();
      return Close();
    }
    buffer_.commit(n);
    if (closing_) return CloseWhenDrained();
    ReadRequest();
  }

  // The whole request must arrive within the read timeout: slow clients cannot hold a slot.
  void ReadRequest() {
    parser_.emplace();
    parser_->header_limit(server_->options.header_limit);
    parser_->body_limit(static_cast<uint64_t>(server_->server.body_limit));
    stream_.expires_after(std::chrono::milliseconds(server_->options.read_timeout_ms));
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, size_t) {
    reading_ = false;
    const auto start = Clock::now();
    if (ec == http::error::end_of_stream) return CloseWhenDrained();
    if (ec == beast::error::timeout) return;  // the stream closed the socket
    if (ec) {
      Fail(ec, "read");
      closing_ = true;
      // Answer what can be answered; the connection is unusable afterwards.
      Reply reply;
      if (ec == http::error::body_limit) {
        reply = ErrorReply(413, "payload_too_large", "request body exceeds the limit");
      } else if (ec == http::error::header_limit && RequestLineTooLong()) {
        reply = ErrorReply(414, "uri_too_long", "request target exceeds the limit");
      } else if (ec == http::error::header_limit) {
        reply = ErrorReply(431, "header_too_large", "request headers exceed the limit");
      } else if (IsPeerGone(ec)) {
        return CloseWhenDrained();
      } else {
        reply = ErrorReply(400, "bad_request", "malformed HTTP request");
      }
      linger_ = true;  // the rest of the request is unread
      auto slot = NewSlot();
      return Finish(slot, std::move(reply), Meta{false, 11, start, "unmatched"});
    }
    http::request<http::string_body> req = parser_->release();
    parser_.reset();
    Meta meta{req.keep_alive(), req.version(), start, "unmatched"};
    if (!meta.keep_alive) closing_ = true;
    auto slot = NewSlot();
    // One request is handled at a time, in order (a pipelined GET sees the effect of the POST
    // before it); reading resumes from Finish.
    handling_ = true;
    Handle(slot, std::move(req), std::move(meta));
  }

  // Bounded pipelining: read the next request while fewer than pipeline_limit responses wait.
  void MaybeRead() {
    if (reading_ || handling_ || closing_) return;
    if (queue_.size() >= server_->options.pipeline_limit) return;  // resumed by OnWrite
    WaitForRequest();
  }

  void Handle(const std::shared_ptr<Slot>& slot, http::request<http::string_body>&& req,
              Meta meta) {
    Prepared prepared =
        server_->routes.Prepare(std::string(req.method_string()),
                                std::string_view(req.target().data(), req.target().size()),
                                std::string_view(req[http::field::authorization].data(),
                                                 req[http::field::authorization].size()),
                                std::move(req.body()));
    meta.route_label = prepared.route_label;
    if (prepared.immediate) return Complete(slot, std::move(*prepared.immediate), std::move(meta));
    if (!prepared.blocking) {
      Reply reply = server_->routes.Run(prepared);
      return Complete(slot, std::move(reply), std::move(meta));
    }
    // Publishing, flushing and checkpoints may block: run them off the I/O threads, as many
    // at once as max_blocking allows. The work guard keeps the io_context alive until the
    // answer is posted back.
    if (server_->blocking.fetch_add(1) >= server_->options.max_blocking) {
      server_->blocking.fetch_sub(1);
      return Complete(slot,
                      ErrorReply(503, "overloaded",
                                 "too many requests are waiting to publish or write; retry later"),
                      std::move(meta));
    }
    net::post(server_->pool, [self = shared_from_this(), slot, meta = std::move(meta),
                              prepared = std::move(prepared),
                              guard = net::make_work_guard(server_->ioc)]() mutable {
      Reply reply = self->server_->routes.Run(prepared);
      self->server_->blocking.fetch_sub(1);
      net::post(self->stream_.get_executor(),
                [self, slot, meta = std::move(meta), reply = std::move(reply)]() mutable {
                  self->Complete(slot, std::move(reply), std::move(meta));
                });
    });
  }

  void Complete(const std::shared_ptr<Slot>& slot, Reply reply, Meta meta) {
    if (reply.wait_for.empty()) return Finish(slot, std::move(reply), std::move(meta));
    auto timer = std::make_shared<net::steady_timer>(stream_.get_executor());
    const auto deadline =
        Clock::now() + std::chrono::milliseconds(server_->options.wait_timeout_ms);
    PollApplied(slot, std::make_shared<Reply>(std::move(reply)), std::move(meta), timer, deadline);
  }

  // ?wait=true: polls the engine's offsets on a timer (no thread is blocked while waiting).
  void PollApplied(const std::shared_ptr<Slot>& slot, const std::shared_ptr<Reply>& reply,
                   Meta meta, const std::shared_ptr<net::steady_timer>& timer,
                   Clock::time_point deadline) {
    const bool applied = server_->routes.Applied(reply->wait_for);
    if (applied || Clock::now() >= deadline || server_->stopping) {
      FinishWait(*reply, applied);
      return Finish(slot, std::move(*reply), std::move(meta));
    }
    timer->expires_after(std::chrono::milliseconds(2));
    timer->async_wait([self = shared_from_this(), slot, reply, meta = std::move(meta), timer,
                       deadline](beast::error_code) mutable {
      self->PollApplied(slot, reply, std::move(meta), timer, deadline);
    });
  }

  void Finish(const std::shared_ptr<Slot>& slot, Reply reply, Meta meta) {
    Response res{static_cast<http::status>(reply.status), meta.version};
    res.set(http::field::server, "simstream");
    res.set(http::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) res.set(name, value);
    res.keep_alive(meta.keep_alive && !closing_ && !server_->stopping);
    res.body() = std::move(reply.body);
    res.prepare_payload();
    const double seconds = std::chrono::duration<double>(Clock::now() - meta.start).count();
    server_->metrics.ObserveRequest(meta.route_label, reply.status, seconds);
    slot->res.emplace(std::move(res));
    handling_ = false;
    Write();
    MaybeRead();
  }

  // Responses leave in request order: only the front of the queue is ever written.
  void Write() {
    if (writing_ || queue_.empty() || !queue_.front()->res) return;
    writing_ = true;
    stream_.expires_after(std::chrono::milliseconds(server_->options.write_timeout_ms));
    http::async_write(stream_, *queue_.front()->res,
                      beast::bind_front_handler(&Session::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, size_t) {
    writing_ = false;
    if (ec) {
      Fail(ec, "write");
      return Close();
    }
    const bool close = queue_.front()->res->need_eof();
    queue_.pop_front();
    if (close) {
      // "Connection: close" was promised: nothing may follow it.
      closing_ = true;
      return Close();
    }
    if (!queue_.empty()) return Write();
    if (closing_ && !handling_) return Close();
    MaybeRead();
  }

  void CloseWhenDrained() {
    closing_ = true;
    if (queue_.empty() && !writing_) Close();
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (linger_ && !ec && !server_->stopping) return Linger();
    stream_.close();
  }

  // Closing with unread input makes the kernel reset the connection, and a client still
  // sending (a body over the limit, say) would read the reset instead of the answer. After
  // answering a request that was not read to its end, read and drop the rest for a moment.
  void Linger() {
    linger_ = false;
    lingering_ = true;
    stream_.expires_after(kLinger);  // on expiry the stream closes the socket
    DiscardInput(beast::error_code{}, 0);
  }
  void DiscardInput(beast::error_code ec, size_t) {
    buffer_.consume(buffer_.size());
    if (ec) return stream_.close();  // the client's EOF, an error or kLinger
    stream_.async_read_some(buffer_.prepare(16384),
                            beast::bind_front_handler(&Session::DiscardInput, shared_from_this()));
  }

  // After a header_limit error: whether the request line is longer than a target of url_limit
  // allows. Beast counts it in the header limit, but a long target deserves its own 414. A
  // parsed line has its target; an unparsed one is still in the input, where the longest
  // method, two spaces and "HTTP/1.1" take at most 17 bytes besides the target.
  bool RequestLineTooLong() const {
    if (const auto target = parser_->get().target(); !target.empty()) {
      return target.size() > server_->options.url_limit;
    }
    const auto data = buffer_.cdata();
    const std::string_view in(static_cast<const char*>(data.data()), data.size());
    const size_t eol = in.find("\r\n");
    return (eol == std::string_view::npos ? in.size() : eol) > server_->options.url_limit + 17;
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpServer::Impl* server_;
  const bool reject_;
  uint64_t id_ = 0;
  std::deque<std::shared_ptr<Slot>> queue_;
  bool writing_ = false;
  bool reading_ = false;   // waiting for or reading a request
  bool handling_ = false;  // a request is being answered (possibly on the blocking pool)
  bool idle_ = false;
  bool closing_ = false;
  bool linger_ = false;  // answered before the request was read to its end: Linger() on close
  bool lingering_ = false;
};

}  // namespace

void HttpServer::Impl::DoAccept() {
  acceptor.async_accept(net::make_strand(ioc), beast::bind_front_handler(&Impl::OnAccept, this));
}

void HttpServer::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (stopping) return;
  if (ec) {
    Fail(ec, "accept");
    if (ec == net::error::operation_aborted) return;
    // Out of descriptors and similar: back off briefly instead of spinning; existing
    // connections are unaffected.
    accept_backoff.expires_after(std::chrono::milliseconds(50));
    accept_backoff.async_wait([this](beast::error_code wait_ec) {
      if (!wait_ec && !stopping) DoAccept();
    });
    return;
  } else {
    const bool reject = open_connections.load() >= static_cast<int64_t>(options.max_connections);
    std::make_shared<Session>(std::move(socket), this, reject)->Run();
  }
  DoAccept();
}

namespace {

struct Endpoint {
  net::ip::address address;
  uint16_t port = 0;
};

Result<Endpoint> ParseListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 == listen.size()) {
    return Error{"invalid_config", "server.listen must be host:port, got \"" + listen + "\""};
  }
  std::string host = listen.substr(0, colon);
  const std::string port_text = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") host = "127.0.0.1";
  if (host.empty()) host = "0.0.0.0";
  uint32_t port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9' || port > 65535) {
      return Error{"invalid_config", "server.listen has a bad port \"" + port_text + "\""};
    }
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port > 65535) {
    return Error{"invalid_config", "server.listen has a bad port \"" + port_text + "\""};
  }
  beast::error_code ec;
  const auto address = net::ip::make_address(host, ec);
  if (ec) {
    return Error{"invalid_config",
                 "server.listen needs an IP address (or localhost), got \"" + host + "\""};
  }
  return Endpoint{address, static_cast<uint16_t>(port)};
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const config::ServerOptions& server,
                                                      const HttpServerOptions& options,
                                                      HttpDeps deps) {
  if (deps.engine == nullptr) return Error{"invalid_config", "HTTP server needs an engine"};
  if (server.threads < 1 || server.threads > 256) {
    return Error{"invalid_config", "server.threads must be in [1, 256]"};
  }
  if (server.body_limit < 1) return Error{"invalid_config", "server.body_limit must be positive"};
  if (options.header_limit < 256 || options.url_limit < 16 || options.max_connections < 1 ||
      options.max_blocking < 1 || options.pipeline_limit < 1 || options.read_timeout_ms < 1 ||
      options.idle_timeout_ms < 1 || options.write_timeout_ms < 1 || options.wait_timeout_ms < 0) {
    return Error{"invalid_config", "HTTP server limits must be positive"};
  }
  auto endpoint = ParseListen(server.listen);
  if (!endpoint.ok()) return endpoint.error();

  auto impl = std::make_shared<Impl>(server, options, std::move(deps));
  beast::error_code ec;
  const tcp::endpoint ep{endpoint->address, endpoint->port};
  auto bind_error = [&](const char* step) {
    return Error{"bind_failed",
                 "cannot " + std::string(step) + " " + server.listen + ": " + ec.message()};
  };
  if (impl->acceptor.open(ep.protocol(), ec); ec) return bind_error("open");
  if (impl->acceptor.set_option(net::socket_base::reuse_address(true), ec); ec) {
    return bind_error("configure");
  }
  if (impl->acceptor.bind(ep, ec); ec) return bind_error("bind");
  if (impl->acceptor.listen(net::socket_base::max_listen_connections, ec); ec) {
    return bind_error("listen on");
  }
  impl->port = impl->acceptor.local_endpoint(ec).port();

  if (!endpoint->address.is_loopback() && server.read_token.empty() && server.write_token.empty() &&
      server.admin_token.empty()) {
    LogLine("WARNING",
            "listening on non-loopback " + server.listen +
                " with NO tokens: anyone who can reach this port may read, write events, "
                "forget users and take checkpoints. Set server.read_token, "
                "server.write_token and server.admin_token.");
  }

  impl->work.emplace(impl->ioc.get_executor());
  impl->DoAccept();
  impl->running = static_cast<size_t>(server.threads);
  for (int64_t t = 0; t < server.threads; ++t) {
    impl->threads.emplace_back([raw = impl.get()] {
      engine::SetThreadName("ss-http");
      for (;;) {
        try {
          raw->ioc.run();
          break;
        } catch (const std::exception& e) {
          // A handler threw: log it and keep serving the other connections.
          LogLine("handler exception", e.what());
        }
      }
      std::lock_guard lock(raw->running_mu);
      --raw->running;
      raw->running_cv.notify_all();
    });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  Stop();
}

uint16_t HttpServer::port() const {
  return impl_->port;
}

MetricsRegistry& HttpServer::metrics() {
  return impl_->metrics;
}

std::vector<std::pair<std::string, std::string>> HttpServer::Routes() {
  return RouteList();
}

void HttpServer::Stop() {
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.running_mu);
    if (s.stopped) return;
    s.stopped = true;
  }
  s.stopping = true;
  net::post(s.acceptor.get_executor(), [&s] {
    beast::error_code ec;
    s.acceptor.close(ec);
    s.accept_backoff.cancel();
  });
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(s.sessions_mu);
    for (auto& [id, weak] : s.sessions) {
      if (auto session = weak.lock()) live.push_back(std::move(session));
    }
  }
  for (auto& session : live) {
    // Post on the session's strand: its members are only touched there.
    net::post(session->GetExecutor(), [session] { session->OnStop(); });
  }
  live.clear();
  s.work.reset();
  // In-flight requests finish; then whatever is left (stuck peers) is cut.
  {
    std::unique_lock lock(s.running_mu);
    s.running_cv.wait_for(lock, std::chrono::milliseconds(s.options.drain_timeout_ms),
                          [&s] { return s.running == 0; });
  }
  s.ioc.stop();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
  // Handlers still on the blocking pool answer nobody now. A publish waiting out a broker that
  // is down would hold the join for up to message.timeout.ms: fail it, and any queued after.
  if (s.sink != nullptr) s.sink->Cancel();
  s.pool.join();
}

}  // namespace simstream::connectors
