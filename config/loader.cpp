#include "config/loader.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <variant>

#include "config/utf8.hpp"

namespace simstream::config {
namespace {

using nlohmann::json;
using StringMap = std::map<std::string, std::string>;
using DoubleMap = std::map<std::string, double>;

// Reads and writes one member of one section of Options.
template <typename T>
struct Accessor {
  std::function<T&(Options&)> get;
  std::function<const T&(const Options&)> read;
};

template <typename S, typename T>
Accessor<T> At(S Options::*section, T S::*member) {
  return {[=](Options& o) -> T& { return (o.*section).*member; },
          [=](const Options& o) -> const T& { return (o.*section).*member; }};
}

// The alternatives are in the order of KeyType, so `field.index()` is the KeyType.
using Field = std::variant<Accessor<std::string>, Accessor<int64_t>, Accessor<double>,
                           Accessor<StringMap>, Accessor<DoubleMap>>;

// Formats a number for messages: integers without a fraction, others in shortest form.
std::string FormatNumber(double d) {
  if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 1e15) {
    return std::to_string(static_cast<long long>(d));
  }
  return json(d).dump();
}

// An interval of allowed numbers, closed unless marked open.
struct Range {
  double lo = 0;
  double hi = 0;
  bool lo_open = false;
  bool hi_open = false;

  bool Contains(double v) const {
    return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  }
  std::string ToString() const {
    return std::string(lo_open ? "(" : "[") + FormatNumber(lo) + ", " + FormatNumber(hi) +
           (hi_open ? ")" : "]");
  }
};

Range Closed(double lo, double hi) {
  return {.lo = lo, .hi = hi};
}
Range LeftOpen(double lo, double hi) {
  return {.lo = lo, .hi = hi, .lo_open = true};
}

// Extra check of a string value: an error message, or nullopt when the value is fine.
using StringCheck = std::optional<std::string> (*)(const std::string&);

std::optional<std::string> NonEmpty(const std::string& value) {
  if (value.empty()) return "must not be empty";
  return std::nullopt;
}

// The HTTP server binds an address, it does not resolve names: an IP address or localhost.
std::optional<std::string> ValidListen(const std::string& value) {
  Result<HostPort> parsed = ParseHostPort(value);
  if (!parsed.ok()) return parsed.error().message;
  const std::string& host = parsed->host;
  unsigned char addr[16];
  // An IPv6 address may carry a zone ("fe80::1%eth0"), as the server's parser accepts.
  const std::string unscoped = host.substr(0, host.find('%'));
  if (host != "localhost" && inet_pton(AF_INET, host.c_str(), addr) != 1 &&
      inet_pton(AF_INET6, unscoped.c_str(), addr) != 1) {
    return "\"" + host +
           "\" is not an IP address or localhost (the server binds, it does not resolve names)";
  }
  return std::nullopt;
}

std::optional<std::string> EmptyOrValidTopic(const std::string& value) {
  if (value.empty()) return std::nullopt;
  return TopicNameError(value);
}

// Whether a Kafka property carries a credential (redacted in logged configs).
bool IsSecretProperty(const std::string& name) {
  for (const char* marker : {"password", "secret", "key", "token", "credential", "jaas"}) {
    if (name.find(marker) != std::string::npos) return true;
  }
  return false;
}

// One row of the key table, as written in MakeBindings.
struct Spec {
  const char* section;
  const char* key;
  Field field;
  const char* doc;
  std::optional<Range> range = std::nullopt;
  std::vector<std::string> allowed = {};
  StringCheck check = nullptr;
  const char* check_doc = "";  // the constraint `check` enforces, for the docs
  bool secret = false;
};

struct Binding {
  KeyInfo info;
  Field field;
  std::optional<Range> range;
  StringCheck check = nullptr;
};

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

json ReadAsJson(const Field& field, const Options& opts) {
  return std::visit([&](const auto& accessor) { return json(accessor.read(opts)); }, field);
}

Binding MakeBinding(Spec spec) {
  Binding b;
  b.info.section = spec.section;
  b.info.key = spec.key;
  b.info.name = b.info.section + "." + b.info.key;
  b.info.env_var = "SIMSTREAM_" + Upper(b.info.section) + "_" + Upper(b.info.key);
  b.info.type = static_cast<KeyType>(spec.field.index());
  b.info.doc = spec.doc;
  b.info.allowed = std::move(spec.allowed);
  b.info.secret = spec.secret;
  b.info.default_value = ReadAsJson(spec.field, Options{});
  std::string constraint;
  if (spec.range) constraint = "Range: " + spec.range->ToString() + ".";
  if (!b.info.allowed.empty()) {
    constraint = "One of:";
    for (size_t i = 0; i < b.info.allowed.size(); ++i) {
      constraint += (i == 0 ? " " : ", ") + b.info.allowed[i];
    }
    constraint += ".";
  }
  if (*spec.check_doc != '\0') constraint = spec.check_doc;
  b.info.constraint = std::move(constraint);
  b.field = std::move(spec.field);
  b.range = spec.range;
  b.check = spec.check;
  return b;
}

constexpr const char* kSections[] = {"kafka", "storage", "server", "model", "eval", "index"};

std::vector<Binding> MakeBindings() {
  std::vector<Spec> specs = {
      // kafka
      {.section = "kafka",
       .key = "brokers",
       .field = At(&Options::kafka, &KafkaOptions::brokers),
       .doc = "Bootstrap servers, comma-separated.",
       .check = NonEmpty,
       .check_doc = "Must not be empty."},
      {.section = "kafka",
       .key = "topic",
       .field = At(&Options::kafka, &KafkaOptions::topic),
       .doc = "Topic the events are consumed from.",
       .check = TopicNameError,
       .check_doc = "A Kafka topic name: 1..249 of ASCII letters, digits, '.', '_', '-'."},
      {.section = "kafka",
       .key = "group",
       .field = At(&Options::kafka, &KafkaOptions::group),
       .doc = "Consumer group id.",
       .check = NonEmpty,
       .check_doc = "Must not be empty."},
      {.section = "kafka",
       .key = "dlq_topic",
       .field = At(&Options::kafka, &KafkaOptions::dlq_topic),
       .doc = "Dead-letter topic for malformed events; empty means \"<topic>.dlq\".",
       .check = EmptyOrValidTopic,
       .check_doc = "Empty, or a Kafka topic name."},
      {.section = "kafka",
       .key = "properties",
       .field = At(&Options::kafka, &KafkaOptions::properties),
       .doc = "Extra librdkafka properties passed through verbatim (SASL, TLS, ...)."},
      {.section = "kafka",
       .key = "batch_size",
       .field = At(&Options::kafka, &KafkaOptions::batch_size),
       .doc = "Largest number of messages handed to the learner at once.",
       .range = Closed(1, 1000000)},
      {.section = "kafka",
       .key = "unknown_event_type",
       .field = At(&Options::kafka, &KafkaOptions::unknown_event_type),
       .doc = "What to do with an event whose \"type\" is not in model.event_weights: "
              "\"reject\" (dead-letter it) or \"default\" (use model.default_event_weight).",
       .allowed = {"reject", "default"}},
      {.section = "kafka",
       .key = "max_message_bytes",
       .field = At(&Options::kafka, &KafkaOptions::max_message_bytes),
       .doc = "Largest accepted message, in bytes.",
       .range = Closed(1, 100.0 * 1024 * 1024)},
      // storage
      {.section = "storage",
       .key = "path",
       .field = At(&Options::storage, &StorageOptions::path),
       .doc = "Directory of the RocksDB state.",
       .check = NonEmpty,
       .check_doc = "Must not be empty."},
      {.section = "storage",
       .key = "flush_interval_ms",
       .field = At(&Options::storage, &StorageOptions::flush_interval_ms),
       .doc = "Flush dirty rows and offsets at least this often, in milliseconds.",
       .range = Closed(1, 3600000)},
      {.section = "storage",
       .key = "flush_max_dirty",
       .field = At(&Options::storage, &StorageOptions::flush_max_dirty),
       .doc = "Flush early once this many applied events are not yet durable; at twice this "
              "many, the Kafka consumer pauses until a flush lands (bounded memory).",
       .range = Closed(1, 1e9)},
      // server
      {.section = "server",
       .key = "listen",
       .field = At(&Options::server, &ServerOptions::listen),
       .doc = "Address the HTTP server binds, \"IP:port\" (\"[::1]:8080\" for IPv6).",
       .check = ValidListen,
       .check_doc =
           "Format: IP:port or localhost:port with port 0..65535 (names are not resolved)."},
      {.section = "server",
       .key = "threads",
       .field = At(&Options::server, &ServerOptions::threads),
       .doc = "I/O threads serving HTTP.",
       .range = Closed(1, 256)},
      {.section = "server",
       .key = "body_limit",
       .field = At(&Options::server, &ServerOptions::body_limit),
       .doc = "Largest request body, in bytes.",
       .range = Closed(1, 1073741824)},
      {.section = "server",
       .key = "header_limit",
       .field = At(&Options::server, &ServerOptions::header_limit),
       .doc = "Largest request line plus headers, in bytes (beyond: 431).",
       .range = Closed(256, 1048576)},
      {.section = "server",
       .key = "url_limit",
       .field = At(&Options::server, &ServerOptions::url_limit),
       .doc = "Longest request target, path and query, in bytes (beyond: 414).",
       .range = Closed(16, 1048576)},
      {.section = "server",
       .key = "read_timeout_ms",
       .field = At(&Options::server, &ServerOptions::read_timeout_ms),
       .doc = "Time a client has to send a whole request once its first byte arrived.",
       .range = Closed(1, 3600000)},
      {.section = "server",
       .key = "idle_timeout_ms",
       .field = At(&Options::server, &ServerOptions::idle_timeout_ms),
       .doc = "Time a connection may sit idle before and between requests.",
       .range = Closed(1, 86400000)},
      {.section = "server",
       .key = "write_timeout_ms",
       .field = At(&Options::server, &ServerOptions::write_timeout_ms),
       .doc = "Time a client has to take a response.",
       .range = Closed(1, 3600000)},
      {.section = "server",
       .key = "max_connections",
       .field = At(&Options::server, &ServerOptions::max_connections),
       .doc = "Open connections beyond which new ones get 503 and are closed.",
       .range = Closed(1, 1000000)},
      {.section = "server",
       .key = "pipeline_limit",
       .field = At(&Options::server, &ServerOptions::pipeline_limit),
       .doc = "Responses queued per connection (pipelining) before the server stops reading.",
       .range = Closed(1, 1024)},
      {.section = "server",
       .key = "wait_timeout_ms",
       .field = At(&Options::server, &ServerOptions::wait_timeout_ms),
       .doc = "Longest wait of POST /v1/events?wait=true for the events to be applied.",
       .range = Closed(1, 600000)},
      {.section = "server",
       .key = "read_token",
       .field = At(&Options::server, &ServerOptions::read_token),
       .doc = "Bearer token of the read role (the write and admin tokens also read); empty leaves "
              "reads open. Set it only with write_token and admin_token.",
       .secret = true},
      {.section = "server",
       .key = "write_token",
       .field = At(&Options::server, &ServerOptions::write_token),
       .doc = "Bearer token of the write role (the admin token also writes); empty leaves writes "
              "open. Set it only with admin_token.",
       .secret = true},
      {.section = "server",
       .key = "admin_token",
       .field = At(&Options::server, &ServerOptions::admin_token),
       .doc = "Bearer token of the admin role; empty leaves forgetting users and checkpoints open.",
       .secret = true},
      // model
      {.section = "model",
       .key = "dim",
       .field = At(&Options::model, &ModelOptions::dim),
       .doc = "Embedding dimension of users and items.",
       .range = Closed(1, 1024)},
      {.section = "model",
       .key = "loss",
       .field = At(&Options::model, &ModelOptions::loss),
       .doc = "Loss of the online metric learner.",
       .allowed = {"bpr", "contrastive", "triplet", "softmax"}},
      {.section = "model",
       .key = "learning_rate",
       .field = At(&Options::model, &ModelOptions::learning_rate),
       .doc = "Base step size of the per-entity adaptive (AdaGrad) updates.",
       .range = LeftOpen(0, 10)},
      {.section = "model",
       .key = "l2",
       .field = At(&Options::model, &ModelOptions::l2),
       .doc = "L2 regularisation on touched rows.",
       .range = Closed(0, 1)},
      {.section = "model",
       .key = "negatives",
       .field = At(&Options::model, &ModelOptions::negatives),
       .doc = "Sampled negatives per positive event.",
       .range = Closed(0, 256)},
      {.section = "model",
       .key = "popular_negative_share",
       .field = At(&Options::model, &ModelOptions::popular_negative_share),
       .doc = "Share of negatives drawn by popularity (from recent events) instead of uniformly.",
       .range = Closed(0, 1)},
      {.section = "model",
       .key = "margin",
       .field = At(&Options::model, &ModelOptions::margin),
       .doc = "Margin of the contrastive and triplet losses.",
       .range = Closed(0, 10)},
      {.section = "model",
       .key = "temperature",
       .field = At(&Options::model, &ModelOptions::temperature),
       .doc = "Temperature of the sampled softmax loss.",
       .range = Closed(1e-3, 100)},
      {.section = "model",
       .key = "init_scale",
       .field = At(&Options::model, &ModelOptions::init_scale),
       .doc = "Standard deviation of new embeddings.",
       .range = LeftOpen(0, 10)},
      {.section = "model",
       .key = "history_half_life_events",
       .field = At(&Options::model, &ModelOptions::history_half_life_events),
       .doc = "Half-life of a user's history, in that user's events: older interactions weigh "
              "less in the user's representation and neighbourhood evidence.",
       .range = LeftOpen(0, 1e9)},
      {.section = "model",
       .key = "event_weights",
       .field = At(&Options::model, &ModelOptions::event_weights),
       .doc = "Weight of each event type; a negative weight is negative feedback.",
       .range = Closed(-kMaxAbsEventWeight, kMaxAbsEventWeight)},
      {.section = "model",
       .key = "default_event_weight",
       .field = At(&Options::model, &ModelOptions::default_event_weight),
       .doc = "Weight of an event without a type (and of unknown types when accepted).",
       .range = Closed(-kMaxAbsEventWeight, kMaxAbsEventWeight)},
      {.section = "model",
       .key = "scorer",
       .field = At(&Options::model, &ModelOptions::scorer),
       .doc = "Scorer used for recommendations: \"hybrid\" (learned metric + neighbourhood "
              "evidence + popularity, mixed online) or \"embedding\" (learned metric only).",
       .allowed = {"hybrid", "embedding"}},
      {.section = "model",
       .key = "cooccurrence_window",
       .field = At(&Options::model, &ModelOptions::cooccurrence_window),
       .doc = "Recent items of a user linked to a new item in the co-occurrence graph.",
       .range = Closed(0, 10000)},
      {.section = "model",
       .key = "neighbourhood_items",
       .field = At(&Options::model, &ModelOptions::neighbourhood_items),
       .doc = "Recent items of a user consulted for neighbourhood evidence at query time.",
       .range = Closed(0, 10000)},
      {.section = "model",
       .key = "mix_learning_rate",
       .field = At(&Options::model, &ModelOptions::mix_learning_rate),
       .doc = "Step size of the online mixing weights of the hybrid scorer.",
       .range = Closed(0, 10)},
      {.section = "model",
       .key = "mix_candidates",
       .field = At(&Options::model, &ModelOptions::mix_candidates),
       .doc = "Candidates scored to find the hardest negatives the mixing weights learn from "
              "(0: learn from the sampled negatives).",
       .range = Closed(0, 1024)},
      {.section = "model",
       .key = "mix_every",
       .field = At(&Options::model, &ModelOptions::mix_every),
       .doc = "The mixing weights learn from one event in this many.",
       .range = Closed(1, 1000000)},
      {.section = "model",
       .key = "neighbour_shrinkage",
       .field = At(&Options::model, &ModelOptions::neighbour_shrinkage),
       .doc = "Support shrinkage of neighbourhood evidence: w(i,j) / sqrt((n_i + s)(n_j + s)).",
       .range = Closed(0, 1e6)},
      {.section = "model",
       .key = "popularity_half_life_events",
       .field = At(&Options::model, &ModelOptions::popularity_half_life_events),
       .doc = "Half-life of item popularity, in events of the whole stream.",
       .range = Closed(1, 1e12)},
      {.section = "model",
       .key = "seed",
       .field = At(&Options::model, &ModelOptions::seed),
       .doc = "Seed of all learner randomness (mixed with partition and offset per event)."},
      {.section = "model",
       .key = "minhash_size",
       .field = At(&Options::model, &ModelOptions::minhash_size),
       .doc = "Number of MinHash functions of each user's Jaccard sketch.",
       .range = Closed(1, 4096)},
      // eval
      {.section = "eval",
       .key = "k",
       .field = At(&Options::eval, &EvalOptions::k),
       .doc = "Cut-off K of HR@K, NDCG@K and recall.",
       .range = Closed(1, 1000)},
      {.section = "eval",
       .key = "popularity_half_life_events",
       .field = At(&Options::eval, &EvalOptions::popularity_half_life_events),
       .doc = "Half-life of the popularity baseline, in events of the whole stream.",
       .range = Closed(1, 1e12)},
      // index
      {.section = "index",
       .key = "kind",
       .field = At(&Options::index, &IndexOptions::kind),
       .doc = "Index answering cosine similar-users / similar-items queries: \"exact\" (scan "
              "every row), \"hnsw\" (approximate) or \"auto\" (HNSW once a table has "
              "index.hnsw_min_size rows). Other metrics are always exact.",
       .allowed = {"auto", "exact", "hnsw"}},
      {.section = "index",
       .key = "hnsw_min_size",
       .field = At(&Options::index, &IndexOptions::hnsw_min_size),
       .doc = "Rows of a table (users, items) from which \"auto\" uses an HNSW index.",
       .range = Closed(0, 1e10)},
      {.section = "index",
       .key = "m",
       .field = At(&Options::index, &IndexOptions::m),
       .doc = "HNSW graph degree M (layer 0 keeps 2M links).",
       .range = Closed(2, 256)},
      {.section = "index",
       .key = "ef_construction",
       .field = At(&Options::index, &IndexOptions::ef_construction),
       .doc = "HNSW candidate list while inserting.",
       .range = Closed(1, 4096)},
      {.section = "index",
       .key = "ef_reinsert",
       .field = At(&Options::index, &IndexOptions::ef_reinsert),
       .doc = "HNSW candidate list when a drifted row is re-inserted (0: ef_construction; "
              "values below m count as m). A re-insert reconnects one node near where it moved; "
              "a shorter list than a build's costs the learner less at the same recall.",
       .range = Closed(0, 4096)},
      {.section = "index",
       .key = "ef_search",
       .field = At(&Options::index, &IndexOptions::ef_search),
       .doc = "HNSW candidate list of a query (higher: better recall, slower).",
       .range = Closed(1, 4096)},
      {.section = "index",
       .key = "drift_threshold",
       .field = At(&Options::index, &IndexOptions::drift_threshold),
       .doc = "Cosine distance (1 - cos) a vector may drift from its indexed version before it "
              "is re-inserted.",
       .range = Closed(0, 2)},
      {.section = "index",
       .key = "maintenance_interval_ms",
       .field = At(&Options::index, &IndexOptions::maintenance_interval_ms),
       .doc = "How often the background maintainer samples recall@10 against exact search, "
              "sweeps for drifted rows and decides on rebuilds, in milliseconds; 0 disables it.",
       .range = Closed(0, 86400000)},
      {.section = "index",
       .key = "rebuild_below_recall",
       .field = At(&Options::index, &IndexOptions::rebuild_below_recall),
       .doc = "Rebuild the index in the background when its rolling recall@10 falls below this.",
       .range = Closed(0, 1)},
      {.section = "index",
       .key = "max_reinserts_per_batch",
       .field = At(&Options::index, &IndexOptions::max_reinserts_per_batch),
       .doc = "Re-inserts of drifted rows per applied batch, at most (0: no limit). Each costs "
              "about an HNSW insert on the learner thread; drifted rows over the cap wait for "
              "the next batches, in order.",
       .range = Closed(0, 1e9)},
      {.section = "index",
       .key = "defer_builds_above_lag",
       .field = At(&Options::index, &IndexOptions::defer_builds_above_lag),
       .doc = "Consumer lag (events waiting in Kafka) above which the maintainer starts no index "
              "build or rebuild: while the daemon catches up on a backlog (and /readyz says not "
              "ready), the learner has the CPU, queries use the current index or the exact scan, "
              "and the build runs once the lag falls, from the caught-up vectors. A learner that "
              "applies nothing for 5 s, or 10 minutes of catching up, lets a due build start "
              "anyway. 0: never defer.",
       .range = Closed(0, 1e15)},
      {.section = "index",
       .key = "neighbour_lists_interval_ms",
       .field = At(&Options::index, &IndexOptions::neighbour_lists_interval_ms),
       .doc = "How often the maintainer rebuilds each item's list of its strongest co-occurrence "
              "neighbours, in milliseconds, while the item index is active; 0: never (every "
              "query walks the whole rows). Recommendations draw their neighbourhood candidates "
              "from these lists (at most this old; a row too short to fill its list is read "
              "live) and score them against the current state.",
       .range = Closed(0, 86400000)},
  };
  std::vector<Binding> bindings;
  bindings.reserve(specs.size());
  for (Spec& spec : specs) bindings.push_back(MakeBinding(std::move(spec)));
  return bindings;
}

const std::vector<Binding>& Bindings() {
  static const std::vector<Binding> bindings = MakeBindings();
  return bindings;
}

Error Invalid(std::string message) {
  return Error{"invalid_config", std::move(message)};
}

bool IsSection(std::string_view name) {
  return std::find(std::begin(kSections), std::end(kSections), name) != std::end(kSections);
}

const Binding* FindBinding(std::string_view section, std::string_view key) {
  for (const Binding& b : Bindings()) {
    if (b.info.section == section && b.info.key == key) return &b;
  }
  return nullptr;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// " (did you mean "x"?)" for the closest candidate within a small edit distance, else "".
std::string Suggestion(std::string_view got, const std::vector<std::string>& candidates) {
  const std::string* best = nullptr;
  size_t best_distance = 3;  // more than two edits away is no longer a typo
  for (const std::string& c : candidates) {
    const size_t d = EditDistance(got, c);
    if (d < best_distance) best_distance = d, best = &c;
  }
  return best ? " (did you mean \"" + *best + "\"?)" : "";
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::vector<std::string> KeysOfSection(std::string_view section) {
  std::vector<std::string> keys;
  for (const Binding& b : Bindings()) {
    if (b.info.section == section) keys.push_back(b.info.key);
  }
  return keys;
}

std::string UnknownSectionMessage(std::string_view section) {
  const std::vector<std::string> sections(std::begin(kSections), std::end(kSections));
  return "unknown section \"" + std::string(section) + "\"" + Suggestion(section, sections) +
         "; valid sections: " + Join(sections);
}

std::string UnknownKeyMessage(std::string_view section, std::string_view key) {
  const std::vector<std::string> keys = KeysOfSection(section);
  return "unknown key \"" + std::string(section) + "." + std::string(key) + "\"" +
         Suggestion(key, keys) + "; valid keys of section \"" + std::string(section) +
         "\": " + Join(keys);
}

// "string \"abc\"", "number 32.5", ...; the value is left out for secrets and cut when long.
std::string Describe(const json& v, bool secret) {
  std::string out = v.type_name();
  if (secret || v.is_null()) return out;
  std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return out + " " + text;
}

// ---- checks of typed values; each returns an error message that starts with the key name ----

std::optional<std::string> Check(const Binding& b, const std::string& value) {
  const std::string& name = b.info.name;
  // Values come from the environment and --set as raw bytes; the config is JSON, which is text.
  if (!IsValidUtf8(value)) return name + ": the value is not valid UTF-8";
  if (!b.info.allowed.empty() &&
      std::find(b.info.allowed.begin(), b.info.allowed.end(), value) == b.info.allowed.end()) {
    return name + ": " + json(value).dump() +
           " is not allowed; expected one of: " + Join(b.info.allowed);
  }
  if (b.check != nullptr) {
    if (std::optional<std::string> error = b.check(value)) return name + ": " + *error;
  }
  return std::nullopt;
}

std::optional<std::string> Check(const Binding& b, int64_t value) {
  if (b.range && !b.range->Contains(static_cast<double>(value))) {
    return b.info.name + ": " + std::to_string(value) + " is out of range; allowed " +
           b.range->ToString();
  }
  return std::nullopt;
}

std::optional<std::string> Check(const Binding& b, double value) {
  if (!std::isfinite(value)) return b.info.name + ": must be a finite number";
  if (b.range && !b.range->Contains(value)) {
    return b.info.name + ": " + FormatNumber(value) + " is out of range; allowed " +
           b.range->ToString();
  }
  return std::nullopt;
}

std::optional<std::string> Check(const Binding& b, const StringMap& value) {
  if (value.count("") != 0) return b.info.name + ": names must not be empty";
  return std::nullopt;
}

std::optional<std::string> Check(const Binding& b, const DoubleMap& value) {
  for (const auto& [name, weight] : value) {
    if (name.empty()) return b.info.name + ": names must not be empty";
    if (!std::isfinite(weight)) {
      return b.info.name + "[" + json(name).dump() + "]: must be a finite number";
    }
    if (b.range && !b.range->Contains(weight)) {
      return b.info.name + "[" + json(name).dump() + "]: " + FormatNumber(weight) +
             " is out of range; allowed " + b.range->ToString();
    }
  }
  return std::nullopt;
}

// ---- conversions from JSON; on failure they return the message ----

// A failed conversion; a distinct type so that Converted<std::string> is unambiguous.
struct ConvertError {
  std::string message;
};

template <typename T>
using Converted = std::variant<T, ConvertError>;

ConvertError TypeError(const Binding& b, const json& v, std::string_view expected) {
  return {b.info.name + ": expected " + std::string(expected) + ", got " +
          Describe(v, b.info.secret)};
}

Converted<std::string> Convert(const Binding& b, const json& v, std::string*) {
  if (!v.is_string()) return TypeError(b, v, "string");
  return v.get<std::string>();
}

Converted<int64_t> Convert(const Binding& b, const json& v, int64_t*) {
  const ConvertError too_big{b.info.name + ": " + Describe(v, b.info.secret) +
                             " is out of range; allowed " +
                             (b.range ? b.range->ToString() : std::string("64-bit integers"))};
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return too_big;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    // Whole numbers written as floats ("1e6") are accepted: they mean an integer exactly.
    const double d = v.get<double>();
    if (std::isfinite(d) && std::trunc(d) == d) {
      if (d < -9.2233720368547758e18 || d >= 9.2233720368547758e18) return too_big;
      return static_cast<int64_t>(d);
    }
  }
  return TypeError(b, v, "int64 (a whole number)");
}

Converted<double> Convert(const Binding& b, const json& v, double*) {
  if (!v.is_number()) return TypeError(b, v, "double (a number)");
  return v.get<double>();
}

Converted<StringMap> Convert(const Binding& b, const json& v, StringMap*) {
  if (!v.is_object()) return TypeError(b, v, "map<string,string> (an object of strings)");
  StringMap out;
  for (const auto& item : v.items()) {
    const bool secret = b.info.secret || IsSecretProperty(item.key());
    if (!item.value().is_string()) {
      return ConvertError{b.info.name + "[" + json(item.key()).dump() + "]: expected string, got " +
                          Describe(item.value(), secret)};
    }
    out[item.key()] = item.value().get<std::string>();
  }
  return out;
}

Converted<DoubleMap> Convert(const Binding& b, const json& v, DoubleMap*) {
  if (!v.is_object()) return TypeError(b, v, "map<string,double> (an object of numbers)");
  DoubleMap out;
  for (const auto& item : v.items()) {
    if (!item.value().is_number()) {
      return ConvertError{b.info.name + "[" + json(item.key()).dump() +
                          "]: expected double (a number), got " +
                          Describe(item.value(), b.info.secret)};
    }
    out[item.key()] = item.value().get<double>();
  }
  return out;
}

// Converts, checks and stores one value; returns the error message on failure.
std::optional<std::string> Assign(const Binding& b, Options& opts, const json& v) {
  return std::visit(
      [&](const auto& accessor) -> std::optional<std::string> {
        using T = std::decay_t<decltype(accessor.read(opts))>;
        Converted<T> converted = Convert(b, v, static_cast<T*>(nullptr));
        if (auto* error = std::get_if<ConvertError>(&converted)) return std::move(error->message);
        T& value = std::get<T>(converted);
        if (std::optional<std::string> error = Check(b, value)) return error;
        accessor.get(opts) = std::move(value);
        return std::nullopt;
      },
      b.field);
}

// A value given as text (environment, --set): JSON if it parses, else the text itself; string
// keys take the text verbatim unless it is a quoted JSON string.
json ValueFromText(const Binding& b, std::string_view text) {
  json parsed = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  const bool verbatim =
      b.info.type == KeyType::kString ? !parsed.is_string() : parsed.is_discarded();
  return verbatim ? json(std::string(text)) : parsed;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

Status ApplyEnvironmentEntries(Options& opts, const std::vector<std::string_view>& entries) {
  constexpr std::string_view kPrefix = "SIMSTREAM_";
  Options next = opts;
  for (std::string_view entry : entries) {
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view name = entry.substr(0, eq);
    const std::string_view text = entry.substr(eq + 1);
    if (!StartsWith(name, kPrefix)) continue;
    const std::string_view rest = name.substr(kPrefix.size());
    for (const char* section : kSections) {
      const std::string section_prefix = Upper(section) + "_";
      if (!StartsWith(rest, section_prefix)) continue;
      const Binding* binding = nullptr;
      std::vector<std::string> valid;
      for (const Binding& b : Bindings()) {
        if (b.info.section != section) continue;
        valid.push_back(b.info.env_var);
        if (b.info.env_var == name) binding = &b;
      }
      if (binding == nullptr) {
        return Invalid("unknown environment variable " + std::string(name) +
                       Suggestion(name, valid) + "; valid variables of section \"" + section +
                       "\": " + Join(valid));
      }
      if (std::optional<std::string> error =
              Assign(*binding, next, ValueFromText(*binding, text))) {
        return Invalid("environment variable " + std::string(name) + ": " + *error);
      }
      break;
    }
  }
  opts = std::move(next);
  return Status::Ok();
}

// Wraps `text` into lines of at most `width` characters (longer words stay whole).
std::vector<std::string> Wrap(std::string_view text, size_t width) {
  std::vector<std::string> lines;
  std::string line;
  std::istringstream words{std::string(text)};
  std::string word;
  while (words >> word) {
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      lines.push_back(std::move(line));
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  if (!line.empty()) lines.push_back(std::move(line));
  return lines;
}

}  // namespace

std::string_view TypeName(KeyType type) {
  switch (type) {
    case KeyType::kString:
      return "string";
    case KeyType::kInt64:
      return "int64";
    case KeyType::kDouble:
      return "double";
    case KeyType::kStringMap:
      return "map<string,string>";
    case KeyType::kDoubleMap:
      return "map<string,double>";
  }
  return "unknown";
}

const std::vector<KeyInfo>& Keys() {
  static const std::vector<KeyInfo> keys = [] {
    std::vector<KeyInfo> out;
    for (const Binding& b : Bindings()) out.push_back(b.info);
    return out;
  }();
  return keys;
}

const KeyInfo* FindKey(std::string_view name) {
  for (const KeyInfo& info : Keys()) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

Status ApplyJson(Options& opts, const nlohmann::json& doc) {
  if (!doc.is_object()) {
    return Invalid("the config must be a JSON object of sections, got " +
                   Describe(doc, /*secret=*/false));
  }
  Options next = opts;
  for (const auto& section : doc.items()) {
    if (!IsSection(section.key())) return Invalid(UnknownSectionMessage(section.key()));
    if (!section.value().is_object()) {
      return Invalid("section \"" + section.key() + "\" must be an object, got " +
                     Describe(section.value(), /*secret=*/false));
    }
    for (const auto& item : section.value().items()) {
      const Binding* binding = FindBinding(section.key(), item.key());
      if (binding == nullptr) return Invalid(UnknownKeyMessage(section.key(), item.key()));
      if (std::optional<std::string> error = Assign(*binding, next, item.value())) {
        return Invalid(std::move(*error));
      }
    }
  }
  opts = std::move(next);
  return Status::Ok();
}

Result<Options> LoadFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return Error{"not_found", "config file \"" + path + "\" does not exist"};
  }
  if (std::filesystem::is_directory(path, ec)) {
    return Invalid("config file \"" + path + "\" is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) return Invalid("config file \"" + path + "\" cannot be read");
  json doc;
  try {
    doc = json::parse(text.str(), nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const json::exception& e) {
    // parse_error, and out_of_range for a number no double holds (1e999).
    return Invalid("config file \"" + path + "\" is not valid JSON: " + e.what());
  }
  Options opts;
  if (Status status = ApplyJson(opts, doc); !status.ok()) {
    return Invalid("config file \"" + path + "\": " + status.error().message);
  }
  return opts;
}

Status ApplyOverride(Options& opts, std::string_view assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string_view::npos) {
    return Invalid("--set " + std::string(assignment) + ": expected section.key=value");
  }
  const std::string_view name = assignment.substr(0, eq);
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos) {
    return Invalid("--set " + std::string(assignment) +
                   ": expected section.key=value, the key has no section");
  }
  const std::string_view section = name.substr(0, dot);
  const std::string_view key = name.substr(dot + 1);
  if (!IsSection(section)) return Invalid("--set: " + UnknownSectionMessage(section));
  const Binding* binding = FindBinding(section, key);
  if (binding == nullptr) return Invalid("--set: " + UnknownKeyMessage(section, key));
  Options next = opts;
  if (std::optional<std::string> error =
          Assign(*binding, next, ValueFromText(*binding, assignment.substr(eq + 1)))) {
    return Invalid("--set " + *error);
  }
  opts = std::move(next);
  return Status::Ok();
}

Status ApplyEnvironment(Options& opts, char** envp) {
  std::vector<std::string_view> entries;
  for (char** e = envp; e != nullptr && *e != nullptr; ++e) entries.emplace_back(*e);
  return ApplyEnvironmentEntries(opts, entries);
}

Status ApplyEnvironment(Options& opts, const std::vector<std::string>& env) {
  return ApplyEnvironmentEntries(opts, std::vector<std::string_view>(env.begin(), env.end()));
}

Status Validate(const Options& opts) {
  for (const Binding& b : Bindings()) {
    std::optional<std::string> error =
        std::visit([&](const auto& accessor) { return Check(b, accessor.read(opts)); }, b.field);
    if (error) return Invalid(std::move(*error));
  }
  if (opts.index.kind == "hnsw" && opts.index.maintenance_interval_ms == 0) {
    // Only the maintainer builds an index: with it off, "hnsw" would silently stay exact.
    return Invalid(
        "index.kind: \"hnsw\" needs index.maintenance_interval_ms > 0 (the maintainer builds "
        "the index); use \"exact\" to run without it");
  }
  // Every role above the lowest role with a token needs one too: else the higher routes (write
  // events; forget users, checkpoints) would be open to anyone while reading asks for a token.
  const std::pair<const char*, const std::string*> roles[] = {
      {"server.read_token", &opts.server.read_token},
      {"server.write_token", &opts.server.write_token},
      {"server.admin_token", &opts.server.admin_token}};
  for (size_t lowest = 0; lowest < std::size(roles); ++lowest) {
    if (roles[lowest].second->empty()) continue;
    std::vector<std::string> missing;
    for (size_t r = lowest + 1; r < std::size(roles); ++r) {
      if (roles[r].second->empty()) missing.emplace_back(roles[r].first);
    }
    if (!missing.empty()) {
      const std::string names =
          missing.size() == 1 ? missing[0] : missing[0] + " and " + missing[1];
      return Invalid(names + (missing.size() == 1 ? " is" : " are") + " empty while " +
                     roles[lowest].first +
                     " is set: every role above a role with a token needs one, else its routes "
                     "are open to anyone while reading asks for a token; set " +
                     names);
    }
    break;
  }
  if (opts.kafka.dlq_topic.empty()) {
    // The default "<topic>.dlq" is a topic name too (a 246-character topic makes it too long).
    if (std::optional<std::string> error = TopicNameError(opts.kafka.EffectiveDlqTopic())) {
      return Invalid("kafka.dlq_topic: the default \"" + opts.kafka.EffectiveDlqTopic() + "\" " +
                     *error + "; set kafka.dlq_topic");
    }
  }
  if (opts.kafka.EffectiveDlqTopic() == opts.kafka.topic) {
    // Dead-lettering into the input topic would feed every bad event back in forever.
    return Invalid("kafka.dlq_topic: must differ from kafka.topic (\"" + opts.kafka.topic + "\")");
  }
  return Status::Ok();
}

Result<Options> Load(const std::string& config_path, char** envp,
                     const std::vector<std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = envp; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);
  return Load(config_path, env, overrides);
}

Result<Options> Load(const std::string& config_path, const std::vector<std::string>& env,
                     const std::vector<std::string>& overrides) {
  Options opts;
  if (!config_path.empty()) {
    Result<Options> loaded = LoadFile(config_path);
    if (!loaded.ok()) return loaded.error();
    opts = std::move(loaded).value();
  }
  if (Status status = ApplyEnvironment(opts, env); !status.ok()) return status.error();
  for (const std::string& assignment : overrides) {
    if (Status status = ApplyOverride(opts, assignment); !status.ok()) return status.error();
  }
  if (Status status = Validate(opts); !status.ok()) return status.error();
  return opts;
}

nlohmann::json ToJson(const Options& opts, Secrets secrets) {
  json out = json::object();
  for (const char* section : kSections) out[section] = json::object();
  for (const Binding& b : Bindings()) {
    json value = ReadAsJson(b.field, opts);
    if (secrets == Secrets::kRedact) {
      if (b.info.secret && value.is_string() && !value.get<std::string>().empty()) {
        value = "<redacted>";
      }
      if (b.info.type == KeyType::kStringMap) {
        for (auto& item : value.items()) {
          if (IsSecretProperty(item.key())) item.value() = "<redacted>";
        }
      }
    }
    out[b.info.section][b.info.key] = std::move(value);
  }
  return out;
}

std::string ExampleConfig() {
  constexpr size_t kWidth = 100;
  constexpr std::string_view kIndent = "    ";
  std::string out =
      "// simstream configuration: every key with its default value.\n"
      "//\n"
      "// JSON with // and /* */ comments; keys left out keep their default. Every key can also "
      "be\n"
      "// set by an environment variable SIMSTREAM_<SECTION>_<KEY> (e.g. SIMSTREAM_MODEL_DIM=32)\n"
      "// or by --set section.key=value. Precedence, lowest first: defaults, this file, the\n"
      "// environment, --set.\n"
      "{\n";
  const std::vector<Binding>& bindings = Bindings();
  for (size_t s = 0; s < std::size(kSections); ++s) {
    out += "  \"" + std::string(kSections[s]) + "\": {\n";
    std::vector<const Binding*> in_section;
    for (const Binding& b : bindings) {
      if (b.info.section == kSections[s]) in_section.push_back(&b);
    }
    for (size_t i = 0; i < in_section.size(); ++i) {
      const KeyInfo& info = in_section[i]->info;
      // The constraint starts its own line so that a range is never split by the wrapping.
      for (const std::string& text : {info.doc, info.constraint}) {
        for (const std::string& line : Wrap(text, kWidth - kIndent.size() - 3)) {
          out += std::string(kIndent) + "// " + line + "\n";
        }
      }
      // Nested values (the maps) are indented under their key.
      std::string value = info.default_value.dump(2);
      std::string indented;
      for (char c : value) {
        indented += c;
        if (c == '\n') indented += kIndent;
      }
      out += std::string(kIndent) + json(info.key).dump() + ": " + indented +
             (i + 1 < in_section.size() ? ",\n" : "\n");
    }
    out += std::string("  }") + (s + 1 < std::size(kSections) ? ",\n" : "\n");
  }
  out += "}\n";
  return out;
}

Result<HostPort> ParseHostPort(std::string_view text) {
  const auto fail = [&](std::string_view why) -> Error {
    return Invalid("\"" + std::string(text) + "\" is not host:port: " + std::string(why));
  };
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return fail("missing ']' after the IPv6 address");
    host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') return fail("missing ':port'");
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail("missing ':port'");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return fail("write IPv6 addresses in brackets, e.g. [::1]:8080");
    }
  }
  if (host.empty()) return fail("the host is empty");
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return fail("the port must be a number in 0..65535");
  }
  const int value = std::stoi(std::string(port));
  if (value > 65535) return fail("the port must be a number in 0..65535");
  return HostPort{std::string(host), static_cast<uint16_t>(value)};
}

// Kafka's rule for topic names: 1..249 of [a-zA-Z0-9._-], not "." or "..".
std::optional<std::string> TopicNameError(const std::string& value) {
  if (value.empty()) return "must not be empty";
  if (value.size() > 249) return "is longer than Kafka's 249 characters";
  if (value == "." || value == "..") return "may not be \".\" or \"..\"";
  for (const char c : value) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return "may hold only ASCII letters, digits, '.', '_' and '-' (Kafka's rule)";
    }
  }
  return std::nullopt;
}

}  // namespace simstream::config
