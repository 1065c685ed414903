// Internal to connectors/: what each HTTP route answers, independent of the transport
// (http_server.cpp). No Beast type here, so routes can be read without knowing Asio.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "connectors/http_server.hpp"

namespace simstream::connectors {

// A response before it is put on the wire.
struct Reply {
  int status = 200;
  std::string body;  // JSON unless content_type says otherwise
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. Allow, WWW-Authenticate
  // POST /v1/events?wait=true: offsets that must be applied before the reply is sent.
  std::vector<PublishedOffset> wait_for;
};

// {"error":{"code":...,"message":...}} with `status`. Messages are for clients: no internals.
Reply ErrorReply(int status, std::string_view code, std::string_view message);
// Adds "applied": true|false to a waiting POST /v1/events reply.
void FinishWait(Reply& reply, bool applied);

// A request that passed parsing, routing and authorisation (or the reply that stops it).
struct Prepared {
  std::optional<Reply> immediate;  // set: answer this, run nothing
  bool blocking = false;           // true: run on the blocking pool, not an I/O thread
  std::string route_label;         // "GET /v1/users/{user}" or "unmatched"
  int route = -1;
  std::vector<std::string> vars;             // decoded path variables, in template order
  std::map<std::string, std::string> query;  // raw (still percent-encoded) values
  std::string body;
};

// Thread safety: const methods may run concurrently.
class RouteTable {
 public:
  RouteTable(const config::ServerOptions& server, const HttpServerOptions& options, HttpDeps deps,
             MetricsRegistry& metrics);
  // Decodes the target, matches a route and checks the bearer token. Never throws.
  Prepared Prepare(std::string_view method, std::string_view target, std::string_view authorization,
                   std::string body) const;
  // Runs a prepared route. Never throws: unexpected failures become a 500 without details.
  Reply Run(const Prepared& prepared) const;
  // True once the engine has applied every offset in `offsets`.
  bool Applied(const std::vector<PublishedOffset>& offsets) const;

 private:
  const config::ServerOptions& server_;
  const HttpServerOptions& options_;
  const HttpDeps deps_;
  MetricsRegistry& metrics_;
};

// Method and path template of every route, in table order.
std::vector<std::pair<std::string, std::string>> RouteList();

// Percent-decodes `text` ("+" becomes a space when `plus_is_space`). Nullopt for a malformed
// escape or a result that is not valid UTF-8.
std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space);

// Equal without an early exit, so timing does not reveal how much of a token matched.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace simstream::connectors
