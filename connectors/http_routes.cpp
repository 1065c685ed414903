// What each route of the HTTP contract (README "HTTP API", docs/openapi.yaml) answers.
#include "connectors/http_routes.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <exception>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/similarity.hpp"

namespace simstream::connectors {

using nlohmann::json;

namespace {

enum class Role { kOpen, kRead, kWrite, kAdmin };

struct RouteDef {
  std::string_view method;
  std::string_view path;  // template; "{name}" matches one non-empty segment
  Role role;
  bool blocking;
  // The query parameters it takes, comma-separated; any other is a 400 (a typo such as
  // "exlude" must not be silently ignored). "*": any, ignored (probes and scrapers).
  std::string_view params;
};

// The table of the README's "HTTP API" (docs/openapi.yaml). Order matters only for
// documentation (RouteList).
constexpr RouteDef kRoutes[] = {
    {"GET", "/v1/users/{user}/recommendations", Role::kRead, false, "k,explain,exclude"},
    {"GET", "/v1/users/{user}/similar", Role::kRead, false, "k,metric"},
    {"GET", "/v1/items/{item}/similar", Role::kRead, false, "k,metric"},
    {"GET", "/v1/users/{user}", Role::kRead, false, "embedding"},
    {"DELETE", "/v1/users/{user}", Role::kAdmin, true, ""},
    {"POST", "/v1/events", Role::kWrite, true, "wait"},
    {"POST", "/v1/admin/checkpoint", Role::kAdmin, true, ""},
    {"GET", "/v1/stats", Role::kRead, false, ""},
    {"GET", "/healthz", Role::kOpen, false, "*"},
    {"GET", "/readyz", Role::kOpen, false, "*"},
    {"GET", "/metrics", Role::kRead, false, "*"},
};

enum RouteId {
  kRecommend,
  kSimilarUsers,
  kSimilarItems,
  kGetUser,
  kDeleteUser,
  kPostEvents,
  kCheckpoint,
  kStats,
  kHealth,
  kReady,
  kMetrics,
};

constexpr size_t kMaxK = 1000;

// nlohmann parses iteratively but serialises recursively, one stack frame per level: a 1 MiB
// body of '[' parses, then overflows the thread's stack in Dump(). Events are flat objects; 64
// levels is far beyond any real body.
constexpr size_t kMaxJsonDepth = 64;

// Whether `text` opens more than `limit` arrays and objects at once (brackets inside strings
// do not count). Malformed JSON is the parser's to reject; this only bounds the depth.
bool NestsDeeperThan(std::string_view text, size_t limit) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, which may be a quote
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

void Log(const char* what, const std::string& detail) {
  std::fprintf(stderr, "simstream: http: %s: %s\n", what, detail.c_str());
}

std::string Dump(const json& j) {
  // Replace rather than throw on invalid UTF-8: ids are validated on the way in, but a reply
  // must never fail because of one odd byte.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A similar-users / similar-items index in /v1/stats (engine/live_ann.hpp AnnStats).
json AnnStatsJson(const engine::AnnStats& a) {
  return json{{"mode", a.mode},
              {"indexed", a.indexed},
              {"deleted", a.deleted},
              {"recall_at_10", a.recall_at_10},
              {"recall_samples", a.recall_samples},
              {"recall_window_samples", a.recall_window_samples},
              {"reinserts", a.reinserts},
              {"builds", a.builds},
              {"building", a.building},
              {"build_deferred", a.build_deferred},
              {"deferred", a.deferred}};
}

// The Kafka consumer in /v1/stats; null without one (an engine served without Kafka).
json ConsumerJson(const std::function<KafkaSourceStats()>& consumer) {
  if (!consumer) return nullptr;
  const KafkaSourceStats c = consumer();
  return json{{"paused", c.paused},
              {"pauses", c.pauses},
              {"rebalances", c.rebalances},
              {"duplicates", c.duplicates},
              {"dlq_delivery_failures", c.dlq_delivery_failures},
              {"dlq_unacknowledged", c.dlq_unacknowledged}};
}

// The flusher in /v1/stats; null without one. `events_applied` is the engine's count read just
// before: events applied but not yet in the store are its difference with the flushed count.
json StorageJson(const std::function<storage::FlushStats()>& flusher,
                 const storage::StateStore* store, uint64_t events_applied) {
  if (!flusher) return nullptr;
  const storage::FlushStats f = flusher();
  json last_error = nullptr;
  if (f.last_error) last_error = {{"code", f.last_error->code}, {"message", f.last_error->message}};
  return json{{"flushes", f.flushes},
              {"failures", f.failures},
              {"sync_failures", f.sync_failures},
              {"retry_pending", f.pending},
              {"last_error", std::move(last_error)},
              {"last_flush_ms", f.last_latency_ms},
              {"last_rows", f.last_rows},
              {"rows_written", f.rows_written},
              {"edges_written", f.edges_written},
              {"events_durable", f.events_flushed},
              {"events_synced", f.events_synced},
              {"events_not_durable",
               events_applied > f.events_flushed ? events_applied - f.events_flushed : 0},
              {"bytes_on_disk", store != nullptr ? json(store->SizeBytes()) : json(nullptr)}};
}

Reply JsonReply(int status, const json& j) {
  Reply r;
  r.status = status;
  r.body = Dump(j);
  return r;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    const size_t pos = s.find(sep, start);
    out.push_back(
        s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) return out;
    start = pos + 1;
  }
}

// The first query parameter the route does not take, if any.
std::optional<std::string> UnknownParam(const RouteDef& route,
                                        const std::map<std::string, std::string>& query) {
  if (route.params == "*" || query.empty()) return std::nullopt;
  const std::vector<std::string_view> takes = Split(route.params, ',');
  for (const auto& [key, value] : query) {
    // An empty key ("?=x") is never one (Split("") yields one empty name).
    if (key.empty() || std::find(takes.begin(), takes.end(), key) == takes.end()) return key;
  }
  return std::nullopt;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Matches decoded segments against a template; fills `vars`.
bool Match(std::string_view templ, const std::vector<std::string>& segments,
           std::vector<std::string>& vars) {
  const auto parts = Split(templ.substr(1), '/');
  if (parts.size() != segments.size()) return false;
  std::vector<std::string> found;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!parts[i].empty() && parts[i].front() == '{') {
      if (segments[i].empty()) return false;
      found.push_back(segments[i]);
    } else if (parts[i] != segments[i]) {
      return false;
    }
  }
  vars = std::move(found);
  return true;
}

const std::string* Find(const std::map<std::string, std::string>& q, const char* key) {
  const auto it = q.find(key);
  return it == q.end() ? nullptr : &it->second;
}

// Parameters are validated strictly: a typo in a value is a 400, not a silent default.
std::optional<Reply> ParseK(const std::map<std::string, std::string>& q, size_t& k) {
  k = 10;
  const std::string* raw = Find(q, "k");
  if (raw == nullptr) return std::nullopt;
  size_t v = 0;
  const auto [end, ec] = std::from_chars(raw->data(), raw->data() + raw->size(), v);
  if (ec != std::errc() || end != raw->data() + raw->size() || v < 1 || v > kMaxK) {
    return ErrorReply(400, "invalid_parameter", "k must be an integer from 1 to 1000");
  }
  k = v;
  return std::nullopt;
}

std::optional<Reply> ParseBool(const std::map<std::string, std::string>& q, const char* key,
                               bool& out) {
  out = false;
  const std::string* raw = Find(q, key);
  if (raw == nullptr) return std::nullopt;
  if (*raw == "true" || *raw == "1") {
    out = true;
  } else if (*raw != "false" && *raw != "0") {
    return ErrorReply(400, "invalid_parameter", std::string(key) + " must be true or false");
  }
  return std::nullopt;
}

std::optional<Reply> ParseMetricParam(const std::map<std::string, std::string>& q,
                                      engine::Metric& out, bool allow_jaccard) {
  out = engine::Metric::kCosine;
  const std::string* raw = Find(q, "metric");
  if (raw == nullptr) return std::nullopt;
  const auto m = engine::ParseMetric(*raw);
  if (!m || (!allow_jaccard && *m == engine::Metric::kJaccard)) {
    return ErrorReply(400, "invalid_parameter",
                      allow_jaccard ? "metric must be cosine, dot, euclidean or jaccard"
                                    : "metric must be cosine, dot or euclidean");
  }
  out = *m;
  return std::nullopt;
}

std::string UtcStamp() {
  const auto now = std::chrono::system_clock::now();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%04d%02d%02dT%02d%02d%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Reply ErrorReply(int status, std::string_view code, std::string_view message) {
  return JsonReply(status, json{{"error", {{"code", code}, {"message", message}}}});
}

void FinishWait(Reply& reply, bool applied) {
  // The waiting reply is a JSON object built by PostEvents: insert one more member.
  if (reply.body.empty() || reply.body.back() != '}') return;
  reply.body.pop_back();
  reply.body += applied ? ",\"applied\":true}" : ",\"applied\":false}";
}

std::vector<std::pair<std::string, std::string>> RouteList() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const RouteDef& r : kRoutes) out.emplace_back(std::string(r.method), std::string(r.path));
  return out;
}

std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int hi = HexValue(text[i + 1]);
      const int lo = HexValue(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  if (!engine::IsValidUtf8(out)) return std::nullopt;
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Runs over the longer input whatever the contents; the length difference is folded in.
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

RouteTable::RouteTable(const config::ServerOptions& server, const HttpServerOptions& options,
                       HttpDeps deps, MetricsRegistry& metrics)
    : server_(server), options_(options), deps_(std::move(deps)), metrics_(metrics) {}

Prepared RouteTable::Prepare(std::string_view method, std::string_view target,
                             std::string_view authorization, std::string body) const {
  Prepared p;
  p.route_label = "unmatched";
  if (target.size() > options_.url_limit) {
    p.immediate = ErrorReply(414, "uri_too_long", "request target exceeds the limit");
    return p;
  }
  if (target.empty() || target.front() != '/') {
    p.immediate = ErrorReply(400, "bad_request", "request target must be an absolute path");
    return p;
  }
  const size_t qmark = target.find('?');
  const std::string_view path = target.substr(0, qmark);
  std::vector<std::string> segments;
  for (std::string_view raw : Split(path.substr(1), '/')) {
    auto decoded = PercentDecode(raw, /*plus_is_space=*/false);
    if (!decoded) {
      p.immediate = ErrorReply(400, "bad_request", "path has invalid percent-encoding or UTF-8");
      return p;
    }
    segments.push_back(std::move(*decoded));
  }
  std::optional<std::string> repeated;  // the first key given twice
  if (qmark != std::string_view::npos) {
    for (std::string_view pair : Split(target.substr(qmark + 1), '&')) {
      if (pair.empty()) continue;
      const size_t eq = pair.find('=');
      auto key = PercentDecode(pair.substr(0, eq), true);
      const std::string_view value =
          eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      // Every value must decode cleanly; exclude= stays encoded, since it splits on raw commas
      // and decodes each part (an id may hold an encoded comma).
      auto decoded = PercentDecode(value, true);
      if (!key || !decoded) {
        p.immediate = ErrorReply(400, "bad_request", "query has invalid percent-encoding or UTF-8");
        return p;
      }
      const auto [it, fresh] =
          p.query.try_emplace(*key, *key == "exclude" ? std::string(value) : std::move(*decoded));
      if (!fresh) {
        // exclude= may be repeated (a list, as form encoders send one); its values join. Any
        // other key given twice is answered once the route is known (probes ignore it).
        if (*key == "exclude") {
          it->second += ",";
          it->second += value;
        } else if (!repeated) {
          repeated = *key;
        }
      }
    }
  }

  std::string allow;
  for (size_t i = 0; i < std::size(kRoutes); ++i) {
    std::vector<std::string> vars;
    if (!Match(kRoutes[i].path, segments, vars)) continue;
    if (kRoutes[i].method != method) {
      allow += allow.empty() ? "" : ", ";
      allow += kRoutes[i].method;
      continue;
    }
    p.route = static_cast<int>(i);
    p.vars = std::move(vars);
    p.route_label = std::string(kRoutes[i].method) + " " + std::string(kRoutes[i].path);
    p.blocking = kRoutes[i].blocking;
    break;
  }
  if (p.route < 0) {
    if (allow.empty()) {
      p.immediate = ErrorReply(404, "not_found", "no such route");
    } else {
      p.immediate = ErrorReply(405, "method_not_allowed", "method not allowed on this route");
      p.immediate->headers.emplace_back("Allow", allow);
    }
    return p;
  }

  // Roles: read < write < admin; a role with no token configured is open.
  const Role need = kRoutes[p.route].role;
  const std::string* tokens[] = {&server_.read_token, &server_.write_token, &server_.admin_token};
  if (need != Role::kOpen && !tokens[static_cast<int>(need) - 1]->empty()) {
    std::string_view presented;
    // The scheme is case-insensitive (RFC 7235): "bearer x" is "Bearer x".
    constexpr std::string_view kBearer = "bearer ";
    const bool has_bearer =
        authorization.size() > kBearer.size() &&
        std::equal(kBearer.begin(), kBearer.end(), authorization.begin(),
                   [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); });
    if (has_bearer) presented = authorization.substr(kBearer.size());
    // Compare against every configured token so timing does not depend on which matched.
    int granted = 0;  // highest role the token grants
    for (int r = 1; r <= 3; ++r) {
      const std::string& t = *tokens[r - 1];
      if (!t.empty() && has_bearer && ConstantTimeEquals(presented, t))
        granted = std::max(granted, r);
    }
    if (granted == 0) {
      p.immediate = ErrorReply(401, "unauthorized",
                               has_bearer ? "invalid bearer token" : "a bearer token is required");
      p.immediate->headers.emplace_back("WWW-Authenticate", "Bearer realm=\"simstream\"");
      return p;
    }
    if (granted < static_cast<int>(need)) {
      p.immediate = ErrorReply(403, "forbidden", "this token may not use this route");
      return p;
    }
  }
  if (repeated && kRoutes[p.route].params != "*") {
    // Which one counts would be a guess ("?k=abc&k=2" answered with k=2).
    p.immediate =
        ErrorReply(400, "invalid_parameter",
                   "query parameter " + Dump(json(*repeated)) + " is given more than once");
    return p;
  }
  if (std::optional<std::string> unknown = UnknownParam(kRoutes[p.route], p.query)) {
    const std::string_view takes = kRoutes[p.route].params;
    p.immediate =
        ErrorReply(400, "invalid_parameter",
                   "unknown query parameter " + Dump(json(*unknown)) + "; this route takes " +
                       (takes.empty() ? std::string("none") : std::string(takes)));
    return p;
  }
  p.body = std::move(body);
  return p;
}

bool RouteTable::Applied(const std::vector<PublishedOffset>& offsets) const {
  const auto next = deps_.engine->NextOffsets();
  for (const PublishedOffset& o : offsets) {
    const auto it = next.find(o.partition);
    if (it == next.end() || it->second <= o.offset) return false;
  }
  return true;
}

Reply RouteTable::Run(const Prepared& p) const {
  try {
    engine::Engine& eng = *deps_.engine;
    switch (p.route) {
      case kRecommend: {
        size_t k = 0;
        bool explain = false;
        if (auto e = ParseK(p.query, k)) return *e;
        if (auto e = ParseBool(p.query, "explain", explain)) return *e;
        std::vector<std::string> exclude;
        if (const std::string* raw = Find(p.query, "exclude")) {
          for (std::string_view part : Split(*raw, ',')) {
            if (part.empty()) continue;
            exclude.push_back(*PercentDecode(part, true));  // validated in Prepare
          }
        }
        const engine::Recommendations recs = eng.Recommend(p.vars[0], k, exclude, explain);
        json items = json::array();
        for (const engine::ItemScore& s : recs.items) {
          json item{{"item", s.item}, {"score", s.score}};
          if (explain) item["because"] = s.because;
          items.push_back(std::move(item));
        }
        return JsonReply(200, json{{"user", recs.user},
                                   {"source", recs.from_model ? "model" : "popular"},
                                   {"items", std::move(items)}});
      }
      case kSimilarUsers:
      case kSimilarItems: {
        const bool users = p.route == kSimilarUsers;
        size_t k = 0;
        engine::Metric metric{};
        if (auto e = ParseK(p.query, k)) return *e;
        if (auto e = ParseMetricParam(p.query, metric, /*allow_jaccard=*/users)) return *e;
        auto res =
            users ? eng.SimilarUsers(p.vars[0], k, metric) : eng.SimilarItems(p.vars[0], k, metric);
        if (!res.ok()) {
          if (res.error().code == "not_found") {
            return ErrorReply(404, "not_found", users ? "unknown user" : "unknown item");
          }
          Log("similar", res.error().code + ": " + res.error().message);
          return ErrorReply(500, "internal", "internal error");
        }
        json list = json::array();
        for (const engine::EntityScore& s : *res) {
          list.push_back(json{{users ? "user" : "item", s.id}, {"score", s.score}});
        }
        return JsonReply(200, json{{users ? "user" : "item", p.vars[0]},
                                   {"metric", engine::MetricName(metric)},
                                   {users ? "users" : "items", std::move(list)}});
      }
      case kGetUser: {
        bool with_embedding = false;
        if (auto e = ParseBool(p.query, "embedding", with_embedding)) return *e;
        auto info = eng.GetUser(p.vars[0], with_embedding);
        if (!info.ok()) return ErrorReply(404, "not_found", "unknown user");
        json j{{"user", info->user}, {"events", info->events}, {"last_ts", info->last_ts}};
        if (with_embedding) j["embedding"] = info->embedding;
        return JsonReply(200, j);
      }
      case kDeleteUser: {
        if (!eng.ForgetUser(p.vars[0])) return ErrorReply(404, "not_found", "unknown user");
        if (deps_.flush) {
          const Status st = deps_.flush();
          if (!st.ok()) {
            Log("flush after forget", st.error().code + ": " + st.error().message);
            // Sealed (Flusher::FlushBeforeHandover): no flush writes again and the daemon is
            // stopping, so the stored user comes back at the restart.
            if (st.error().code == "storage_sealed") {
              return ErrorReply(503, "unavailable",
                                "user forgotten in memory, but the state store takes no more "
                                "writes and the daemon is stopping: the user is still stored; "
                                "repeat the DELETE after the restart");
            }
            return ErrorReply(500, "internal",
                              "user forgotten in memory, but storing the change failed; the "
                              "next flush retries it");
          }
        }
        return JsonReply(200, json{{"user", p.vars[0]}, {"forgotten", true}});
      }
      case kPostEvents: {
        if (deps_.sink == nullptr) {
          return ErrorReply(503, "unavailable", "event intake is not configured");
        }
        bool wait = false;
        if (auto e = ParseBool(p.query, "wait", wait)) return *e;
        if (NestsDeeperThan(p.body, kMaxJsonDepth)) {
          return ErrorReply(400, "bad_json",
                            "body nests arrays and objects more than " +
                                std::to_string(kMaxJsonDepth) + " levels deep");
        }
        const json doc = json::parse(p.body, nullptr, /*allow_exceptions=*/false);
        if (doc.is_discarded()) return ErrorReply(400, "bad_json", "body is not valid JSON");
        if (!doc.is_object() && !doc.is_array()) {
          return ErrorReply(400, "bad_request", "body must be an event or an array of events");
        }
        const bool single = doc.is_object();
        const int64_t now = NowMs();
        std::vector<engine::Event> accepted;
        json rejected = json::array();  // the first max_listed_rejections, by index
        size_t rejected_total = 0;
        Error first_error;  // of a single event: its 400 whatever max_listed_rejections says
        const auto check = [&](const json& element, size_t index) {
          auto ev = engine::ParseEvent(Dump(element), options_.event_rules, now);
          if (ev.ok()) {
            accepted.push_back(std::move(*ev));
          } else {
            metrics_.CountHttpRejected(ev.error().code);
            if (rejected_total == 0) first_error = ev.error();
            if (++rejected_total <= options_.max_listed_rejections) {
              rejected.push_back(json{
                  {"index", index}, {"error", ev.error().code}, {"message", ev.error().message}});
            }
          }
        };
        if (single) {
          check(doc, 0);
        } else {
          for (size_t i = 0; i < doc.size(); ++i) check(doc[i], i);
        }
        if (single && accepted.empty())
          return ErrorReply(400, first_error.code, first_error.message);
        std::vector<PublishedOffset> offsets;
        if (!accepted.empty()) {
          auto published = deps_.sink->Publish(accepted);
          if (!published.ok()) {
            Log("publish", published.error().code + ": " + published.error().message);
            return ErrorReply(503, "unavailable", "events could not be published; retry");
          }
          offsets = std::move(*published);
          metrics_.CountHttpAccepted(accepted.size());
        }
        Reply r = JsonReply(202, json{{"accepted", accepted.size()},
                                      {"rejected_total", rejected_total},
                                      {"rejected", std::move(rejected)}});
        if (wait) {
          if (offsets.empty()) {
            FinishWait(r, true);  // nothing to wait for
          } else {
            r.wait_for = std::move(offsets);
          }
        }
        return r;
      }
      case kCheckpoint: {
        const std::string base = deps_.checkpoint_dir ? deps_.checkpoint_dir() : std::string();
        if (deps_.store == nullptr || base.empty()) {
          return ErrorReply(503, "unavailable", "no state store to checkpoint");
        }
        static std::atomic<uint64_t> sequence{0};
        std::error_code fec;
        std::filesystem::create_directories(base, fec);
        if (fec) {
          Log("checkpoint", "cannot create " + base + ": " + fec.message());
          return ErrorReply(500, "internal", "checkpoint failed");
        }
        // The name is reserved under a lock (two checkpoints in one millisecond would otherwise
        // both pick it between the check and the store's creating it); the checkpoints run
        // beside each other.
        static std::mutex names_mu;
        static std::set<std::string> reserved;
        std::string dir;
        {
          std::lock_guard lock(names_mu);
          dir = base + "/" + UtcStamp();
          while (std::filesystem::exists(dir) || reserved.count(dir) != 0) {
            dir = base + "/" + UtcStamp() + "-" + std::to_string(++sequence);
          }
          reserved.insert(dir);
        }
        const Status st = deps_.store->Checkpoint(dir);
        {
          std::lock_guard lock(names_mu);
          reserved.erase(dir);
        }
        if (!st.ok()) {
          Log("checkpoint", st.error().code + ": " + st.error().message);
          return ErrorReply(500, "internal", "checkpoint failed");
        }
        return JsonReply(200, json{{"checkpoint", dir}});
      }
      case kStats: {
        const engine::EngineStats s = eng.Stats();
        const auto lag = deps_.consumer_lag ? deps_.consumer_lag() : std::map<int32_t, int64_t>{};
        std::map<int32_t, std::pair<std::optional<int64_t>, std::optional<int64_t>>> parts;
        for (const auto& [part, next] : s.next_offsets) parts[part].first = next;
        for (const auto& [part, l] : lag) parts[part].second = l;
        json partitions = json::array();
        for (const auto& [part, v] : parts) {
          partitions.push_back(json{{"partition", part},
                                    {"next_offset", v.first ? json(*v.first) : json(nullptr)},
                                    {"lag", v.second ? json(*v.second) : json(nullptr)}});
        }
        return JsonReply(
            200,
            json{{"events_applied", s.events_applied},
                 {"events_rejected", s.events_rejected},
                 {"rejected_by_reason", s.rejected_by_reason},
                 {"users", s.users},
                 {"items", s.items},
                 {"dim", s.dim},
                 {"model_bytes", s.model_bytes},
                 {"partitions", std::move(partitions)},
                 {"consumer", ConsumerJson(deps_.consumer)},
                 {"storage", StorageJson(deps_.flusher, deps_.store, s.events_applied)},
                 {"prequential",
                  {{"k", s.k}, {"hr", s.rolling_hr}, {"samples", s.prequential_samples}}},
                 {"mix",
                  {{"embedding", s.mix[0]}, {"neighbourhood", s.mix[1]}, {"popularity", s.mix[2]}}},
                 {"index",
                  {{"users", AnnStatsJson(s.user_index)}, {"items", AnnStatsJson(s.item_index)}}},
                 {"neighbour_lists",
                  {{"items", s.neighbour_lists_items},
                   {"bytes", s.neighbour_lists_bytes},
                   {"builds", s.neighbour_lists_builds}}}});
      }
      case kHealth:
        return JsonReply(200, json{{"status", "ok"}});
      case kReady:
        if (deps_.ready && !deps_.ready()) {
          return ErrorReply(503, "not_ready", "state is loading or consumer lag is too high");
        }
        return JsonReply(200, json{{"status", "ready"}});
      case kMetrics: {
        metrics_.UpdateFromEngine(eng.Stats());
        if (deps_.consumer_lag) metrics_.SetConsumerLag(deps_.consumer_lag());
        if (deps_.consumer) metrics_.UpdateFromConsumer(deps_.consumer());
        Reply r;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = metrics_.Serialize();
        return r;
      }
      default:
        break;
    }
    return ErrorReply(404, "not_found", "no such route");
  } catch (const std::exception& e) {
    Log("handler", e.what());
  } catch (...) {
    Log("handler", "unknown exception");
  }
  return ErrorReply(500, "internal", "internal error");
}

}  // namespace simstream::connectors
