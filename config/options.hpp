// Typed options for every part of simstream, with their defaults.
//
// Each field is documented with what it does; `config/simstream.example.json` shows every key
// with its default, and `config/loader.hpp` loads them from a JSON file (comments allowed),
// environment variables `SIMSTREAM_<SECTION>_<KEY>` and `--set section.key=value`.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace simstream::config {

// Largest accepted |weight| of an event (engine::kMaxAbsWeight): beyond it one event could
// swamp the learner. Configured weights are held to it too.
inline constexpr double kMaxAbsEventWeight = 1000.0;

struct KafkaOptions {
  // Bootstrap servers, comma-separated. Default: "localhost:9092".
  std::string brokers = "localhost:9092";
  // Topic the events are consumed from. Default: "events".
  std::string topic = "events";
  // Consumer group id. Default: "simstream".
  std::string group = "simstream";
  // Dead-letter topic for malformed events; empty means "<topic>.dlq". Default: "".
  std::string dlq_topic;
  // Extra librdkafka properties passed through verbatim (SASL, TLS, ...). Default: {}.
  std::map<std::string, std::string> properties;
  // Largest number of messages handed to the learner at once. Default: 1000.
  int64_t batch_size = 1000;
  // What to do with an event whose "type" is not in model.event_weights:
  // "reject" (dead-letter it) or "default" (use model.default_event_weight). Default: "default".
  std::string unknown_event_type = "default";
  // Largest accepted message, in bytes. Default: 65536.
  int64_t max_message_bytes = 65536;

  // The dead-letter topic actually used.
  std::string EffectiveDlqTopic() const { return dlq_topic.empty() ? topic + ".dlq" : dlq_topic; }
};

struct StorageOptions {
  // Directory of the RocksDB state. Default: "./simstream-data".
  std::string path = "./simstream-data";
  // Flush dirty rows and offsets at least this often, in milliseconds. Default: 1000.
  int64_t flush_interval_ms = 1000;
  // Flush early once this many applied events are not yet durable; at twice this many, the
  // Kafka consumer pauses until a flush lands (bounded memory). Default: 100000.
  int64_t flush_max_dirty = 100000;
};

struct ServerOptions {
  // Address the HTTP server binds, "host:port". Default: "127.0.0.1:8080".
  std::string listen = "127.0.0.1:8080";
  // I/O threads serving HTTP. Default: 2.
  int64_t threads = 2;
  // Largest request body, in bytes. Default: 1048576 (1 MiB).
  int64_t body_limit = 1048576;
  // Largest request line plus headers, in bytes (beyond: 431). Default: 8192.
  int64_t header_limit = 8192;
  // Longest request target, path and query, in bytes (beyond: 414). Default: 2048.
  int64_t url_limit = 2048;
  // Time a client has to send a whole request once its first byte arrived. Default: 10000.
  int64_t read_timeout_ms = 10000;
  // Time a connection may sit idle before and between requests. Default: 30000.
  int64_t idle_timeout_ms = 30000;
  // Time a client has to take a response. Default: 10000.
  int64_t write_timeout_ms = 10000;
  // Open connections beyond which new ones get 503 and are closed. Default: 1024.
  int64_t max_connections = 1024;
  // Responses queued per connection (pipelining) before the server stops reading. Default: 8.
  int64_t pipeline_limit = 8;
  // Longest wait of POST /v1/events?wait=true for the events to be applied. Default: 5000.
  int64_t wait_timeout_ms = 5000;
  // Bearer tokens per role (read < write < admin; a higher token grants the lower roles); empty
  // leaves that role open. Every role above one with a token needs a token too (Validate).
  // Default: "".
  std::string read_token;
  std::string write_token;
  std::string admin_token;
};

struct ModelOptions {
  // Embedding dimension of users and items. Default: 64.
  int64_t dim = 64;
  // Loss of the online metric learner: "bpr", "contrastive", "triplet" or "softmax". Default:
  // "bpr".
  std::string loss = "bpr";
  // Base step size of the per-entity adaptive (AdaGrad) updates. Default: 0.05.
  double learning_rate = 0.05;
  // L2 regularisation on touched rows. Default: 0.0001.
  double l2 = 0.0001;
  // Sampled negatives per positive event. Default: 4.
  int64_t negatives = 4;
  // Share of negatives drawn by popularity (from recent events) instead of uniformly. Default: 0.5.
  double popular_negative_share = 0.5;
  // Margin of the contrastive and triplet losses. Default: 0.5.
  double margin = 0.5;
  // Temperature of the sampled softmax loss. Default: 1.0.
  double temperature = 1.0;
  // Standard deviation of new embeddings. Default: 0.1.
  double init_scale = 0.1;
  // Half-life of a user's history, in that user's events: older interactions weigh less
  // in the user's representation and neighbourhood evidence. Default: 20.
  double history_half_life_events = 20;
  // Weight of each event type; a negative weight is negative feedback.
  std::map<std::string, double> event_weights = {{"view", 0.5},     {"click", 1.0},
                                                 {"rating", 1.0},   {"like", 2.0},
                                                 {"purchase", 3.0}, {"dislike", -1.0}};
  // Weight of an event without a type (and of unknown types when accepted). Default: 1.0.
  double default_event_weight = 1.0;
  // Scorer used for recommendations: "hybrid" (learned metric + neighbourhood evidence +
  // popularity, mixed online) or "embedding" (learned metric only). Default: "hybrid".
  std::string scorer = "hybrid";
  // Recent items of a user linked to a new item in the co-occurrence graph. Default: 20.
  int64_t cooccurrence_window = 20;
  // Recent items of a user consulted for neighbourhood evidence at query time. Default: 20.
  int64_t neighbourhood_items = 20;
  // Step size of the online mixing weights of the hybrid scorer. Default: 0.01.
  double mix_learning_rate = 0.01;
  // Candidates scored to find the hardest negatives the mixing weights learn from (the top of
  // the ranking is what matters, not random items); 0 learns from the sampled negatives.
  // Default: 16.
  int64_t mix_candidates = 16;
  // The mixing weights learn from one event in this many (three weights need few examples;
  // scoring the candidates is the learner's most expensive step). Default: 8.
  int64_t mix_every = 8;
  // Support shrinkage of neighbourhood evidence: link weight w(i,j) counts as
  // w / sqrt((n_i + s)(n_j + s)), so pairs of rarely seen items do not dominate. Default: 5.
  double neighbour_shrinkage = 5;
  // Half-life of item popularity, in events of the whole stream. Default: 10000.
  double popularity_half_life_events = 10000;
  // Seed of all learner randomness (mixed with partition and offset per event). Default: 42.
  int64_t seed = 42;
  // Number of MinHash functions of each user's Jaccard sketch. Default: 128.
  int64_t minhash_size = 128;
};

struct EvalOptions {
  // Cut-off K of HR@K, NDCG@K and recall. Default: 10.
  int64_t k = 10;
  // Half-life of the popularity baseline, in events of the whole stream. Default: 10000.
  double popularity_half_life_events = 10000;
};

struct IndexOptions {
  // Index answering cosine similar-users / similar-items queries: "exact" (scan every row),
  // "hnsw" (approximate, HNSW graph) or "auto" (HNSW once a table has hnsw_min_size rows).
  // Other metrics are always exact. Default: "auto".
  std::string kind = "auto";
  // Rows of a table (users, items) from which "auto" builds and uses an HNSW index. Default: 20000.
  int64_t hnsw_min_size = 20000;
  // HNSW graph degree M (layer 0 keeps 2M links). Default: 16.
  int64_t m = 16;
  // HNSW candidate list while inserting. Default: 100.
  int64_t ef_construction = 100;
  // HNSW candidate list when a drifted row is re-inserted (0: ef_construction; values below m
  // count as m). A re-insert reconnects one node near where it moved; with 32 (2m) the learner
  // took 0.75 of the CPU time it took with 100, at the same sampled recall (README
  // "Approximate nearest neighbours"). Default: 32.
  int64_t ef_reinsert = 32;
  // HNSW candidate list of a query (higher: better recall, slower); the candidates are
  // re-scored with the current vectors, so it also sets how much drift below drift_threshold
  // a query absorbs. Default: 128 (with 64, a drifting user index settles below
  // rebuild_below_recall and is rebuilt over and over: README "Approximate nearest neighbours").
  int64_t ef_search = 128;
  // Cosine distance (1 - cos) a vector may drift from its indexed version before it is
  // re-inserted. Default: 0.05.
  double drift_threshold = 0.05;
  // How often the background maintainer samples recall@10 against exact search, sweeps for
  // drifted rows and decides on rebuilds, in milliseconds; 0 disables it. Default: 1000.
  int64_t maintenance_interval_ms = 1000;
  // Rebuild the index in the background when its rolling recall@10 falls below this.
  // Default: 0.9.
  double rebuild_below_recall = 0.9;
  // Re-inserts of drifted rows per applied batch, at most (0: no limit). Each costs about an
  // HNSW insert on the learner thread; drifted rows over the cap wait for the next batches, in
  // order. Default: 0 (a cap trades index freshness for learner throughput: README
  // "Approximate nearest neighbours").
  int64_t max_reinserts_per_batch = 0;
  // Consumer lag (events waiting in Kafka) above which the maintainer starts no index build or
  // rebuild: while the daemon catches up on a backlog (and /readyz says not ready), the learner
  // has the CPU, queries use the current index or the exact scan, and the build runs once the
  // lag falls, from the caught-up vectors. A learner that applies nothing for 5 s, or 10
  // minutes of catching up, lets a due build start anyway. 0: never defer. Default: 10000 (the
  // /readyz bound).
  int64_t defer_builds_above_lag = 10000;
  // How often the maintainer rebuilds each item's list of its strongest co-occurrence
  // neighbours, in milliseconds, while the item index is active; 0: never (every query walks the
  // whole rows). Recommendations draw their neighbourhood candidates from these lists (at most
  // this old; a row too short to fill its list is read live) and score them against the current
  // state. Default: 10000 (README "Recommendations").
  int64_t neighbour_lists_interval_ms = 10000;
};

struct Options {
  KafkaOptions kafka;
  StorageOptions storage;
  ServerOptions server;
  ModelOptions model;
  EvalOptions eval;
  IndexOptions index;
};

}  // namespace simstream::config
