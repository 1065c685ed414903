// Kafka subcommands: produce (replay a file into a topic), serve (the daemon) and demo (the
// daemon on an embedded broker fed a paced synthetic stream).
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>

#include "app/commands.hpp"
#include "app/progress.hpp"
#include "connectors/file_source.hpp"
#include "connectors/http_server.hpp"
#include "connectors/kafka_sink.hpp"
#include "connectors/kafka_source.hpp"
#include "connectors/mock_cluster.hpp"
#include "engine/engine.hpp"
#include "engine/generator.hpp"
#include "storage/flusher.hpp"
#include "storage/state_store.hpp"

namespace simstream::app {
namespace {

using Clock = std::chrono::steady_clock;

// Readiness: the consumer reaches the cluster and is at most this many messages behind.
constexpr int64_t kReadyMaxLag = 10000;

Result<std::vector<engine::Event>> LoadForProduce(const std::string& path,
                                                  const std::string& format,
                                                  const engine::EventRules& rules) {
  auto loaded = ReadEventFile(path, format, rules);
  if (!loaded.ok()) return loaded.error();
  if (loaded->bad_count > 0) {
    std::fprintf(stderr, "simstream: %zu malformed line(s) of %s not produced\n", loaded->bad_count,
                 path.c_str());
  }
  return std::move(loaded->events);
}

// Publishes `events` keyed by user at up to `rate` events/s (0: as fast as possible) and
// waits for every delivery. Returns the number of failed deliveries. `stop` ends it early.
Result<uint64_t> ProduceEvents(connectors::KafkaEventSink& sink,
                               const std::vector<engine::Event>& events, double rate,
                               const std::atomic<bool>* stop, bool progress) {
  std::atomic<uint64_t> failed{0};
  std::atomic<uint64_t> acked{0};
  ProgressBar bar("producing", progress && isatty(STDERR_FILENO) == 1);
  const auto start = Clock::now();
  for (size_t i = 0; i < events.size(); ++i) {
    if (stop != nullptr && stop->load()) break;
    if (rate > 0) {
      const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(static_cast<double>(i) / rate));
      if (due > Clock::now()) std::this_thread::sleep_until(due);
    }
    const engine::Event& e = events[i];
    // The Kafka timestamp is the produce time, not e.ts_ms: brokers apply time-based
    // retention to message timestamps, and replayed history would be deleted on arrival.
    auto st = sink.PublishAsync(e.user, engine::ToJson(e), /*timestamp_ms=*/0,
                                [&](const connectors::KafkaEventSink::Delivery& d) {
                                  if (!d.ok) {
                                    if (failed.fetch_add(1) == 0) {
                                      std::fprintf(stderr, "simstream: delivery failed: %s\n",
                                                   d.error.c_str());
                                    }
                                  }
                                  acked.fetch_add(1);
                                });
    if (!st.ok()) return st.error();
    if ((i & 1023) == 0 || i + 1 == events.size()) bar.Update(i + 1, events.size());
  }
  bar.Finish();
  if (auto st = sink.Flush(120000); !st.ok()) return st.error();
  return failed.load();
}

int RunProduce(const ConfigArgs& cfg, std::string brokers, std::string topic,
               const std::string& input, const std::string& format, double rate) {
  auto opts = cfg.Load();
  if (!opts.ok()) return Fail(opts.error());
  if (!brokers.empty()) opts->kafka.brokers = brokers;
  if (!topic.empty()) {
    if (std::optional<std::string> error = config::TopicNameError(topic)) {
      return Fail({"invalid_argument", "--topic \"" + topic + "\" " + *error});
    }
    opts->kafka.topic = topic;
  }
  auto events = LoadForProduce(input, format, engine::EventRulesFrom(opts.value()));
  if (!events.ok()) return Fail(events.error());
  auto sink = connectors::KafkaEventSink::Create(opts->kafka, /*delivery_timeout_ms=*/60000);
  if (!sink.ok()) return Fail(sink.error());
  const auto start = Clock::now();
  auto failed = ProduceEvents(**sink, events.value(), rate, nullptr, /*progress=*/true);
  if (!failed.ok()) return Fail(failed.error());
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  const size_t n = events->size();
  std::fprintf(stderr, "simstream: produced %zu event(s) to %s in %.2f s (%.0f/s), %llu failed\n",
               n - failed.value(), opts->kafka.topic.c_str(), secs,
               secs > 0 ? static_cast<double>(n) / secs : 0.0,
               static_cast<unsigned long long>(failed.value()));
  return failed.value() == 0 ? 0 : kExitFailure;
}

// Blocks SIGINT and SIGTERM in this thread and every thread started after it; the daemon
// takes them with sigtimedwait, so shutdown runs on the main thread, not in a handler.
sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// The daemon: storage + engine + Kafka consumer + HTTP server, until SIGINT/SIGTERM.
// `on_ready(url)` runs once everything is up (demo prints its banner there).
int Serve(const config::Options& opts, const sigset_t& stop_signals,
          const std::function<void(const std::string&)>& on_ready = {}) {
  auto store = storage::OpenRocksDbStore(opts.storage, opts.model, opts.kafka.topic);
  if (!store.ok()) return Fail(store.error());
  storage::StateStore& st = **store;
  auto engine = std::make_unique<engine::Engine>(opts);
  if (Status s = st.LoadInto(*engine); !s.ok()) return Fail(s.error());
  storage::Flusher flusher(*engine, st, opts.storage);  // started once /metrics hears of it

  connectors::KafkaSourceHooks hooks;
  engine::Engine* eng = engine.get();
  hooks.seek_offsets = [&st, eng] {
    auto stored = st.Offsets();
    if (stored.ok()) return stored.value();
    std::fprintf(stderr, "simstream: reading stored offsets: %s\n", stored.error().message.c_str());
    return eng->NextOffsets();  // loaded from the same store at start
  };
  // A write that fails before partitions go to another member seals the flusher: the next
  // owner applies again what this process applied since the last stored offsets, so nothing of
  // it may be stored here later. Sealed, the daemon can only stop: it signals itself, the stop
  // runs as for SIGTERM (leaving the group at once), and the exit code is 75 (EX_TEMPFAIL) for
  // a supervisor to restart it; the restart reloads the stored state.
  hooks.before_revoke = [&flusher] {
    const bool was_sealed = flusher.sealed();
    Status flushed = flusher.FlushBeforeHandover();
    if (!was_sealed && flusher.sealed()) {
      std::fprintf(stderr,
                   "simstream: fatal: the state could not be stored before partitions were "
                   "handed over (%s: %s); stopping without storing anything more, so that no "
                   "event is applied twice; a restart reloads the stored state\n",
                   flushed.error().code.c_str(), flushed.error().message.c_str());
      ::kill(::getpid(), SIGTERM);  // the main thread's sigtimedwait starts the stop
    }
    return flushed;
  };
  // The size trigger wakes the flusher's thread: RocksDB writes beside the learner.
  hooks.after_batch = [&flusher] { flusher.Nudge(); };
  // Stop taking more from Kafka while a failed write waits for its retry, or while the writer
  // is a whole flush behind the learner (bounded memory).
  hooks.backpressure = [&flusher] { return flusher.Behind(); };
  // Committed to Kafka, so they must outlive a power loss too: written and WAL-synced, by the
  // flusher's thread (the fsync never waits in the consumer's path).
  hooks.durable_offsets = [&flusher] { return flusher.SyncedOffsets(); };
  connectors::KafkaSourceOptions source_opts;
  source_opts.close_timeout_ms = 2500;
  auto source = connectors::KafkaSource::Create(opts.kafka, engine::EventRulesFrom(opts), *engine,
                                                hooks, source_opts);
  if (!source.ok()) return Fail(source.error());
  auto sink = connectors::KafkaEventSink::Create(opts.kafka);
  if (!sink.ok()) return Fail(sink.error());

  connectors::KafkaSource* src = source->get();
  connectors::HttpDeps deps;
  deps.engine = engine.get();
  deps.sink = sink->get();
  deps.store = &st;
  deps.flush = [&flusher] { return flusher.FlushNow(); };
  deps.ready = [src] {
    const std::optional<int64_t> lag = src->TotalLag();  // unknown while joining: not ready
    return src->Healthy() && lag.has_value() && *lag <= kReadyMaxLag;
  };
  deps.consumer_lag = [src] { return src->Lag(); };
  deps.consumer = [src] { return src->Stats(); };
  deps.flusher = [&flusher] { return flusher.stats(); };
  const std::string checkpoints =
      (std::filesystem::path(opts.storage.path) / "checkpoints").string();
  deps.checkpoint_dir = [checkpoints] { return checkpoints; };
  connectors::HttpServerOptions http_opts;
  http_opts.event_rules = engine::EventRulesFrom(opts);
  http_opts.header_limit = static_cast<uint32_t>(opts.server.header_limit);
  http_opts.url_limit = static_cast<size_t>(opts.server.url_limit);
  http_opts.read_timeout_ms = opts.server.read_timeout_ms;
  http_opts.idle_timeout_ms = opts.server.idle_timeout_ms;
  http_opts.write_timeout_ms = opts.server.write_timeout_ms;
  http_opts.max_connections = static_cast<size_t>(opts.server.max_connections);
  http_opts.pipeline_limit = static_cast<size_t>(opts.server.pipeline_limit);
  http_opts.wait_timeout_ms = opts.server.wait_timeout_ms;
  http_opts.drain_timeout_ms = 1000;
  auto server = connectors::HttpServer::Start(opts.server, http_opts, deps);
  if (!server.ok()) return Fail(server.error());
  // Every flush into /metrics (its duration, or a failure). Detached before the server (and
  // its registry) goes, since the flusher and the consumer, which flush, outlive it.
  connectors::MetricsRegistry* metrics = &(*server)->metrics();
  flusher.SetObserver([metrics](bool ok, double seconds) {
    if (ok) {
      metrics->ObserveFlush(seconds);
    } else {
      metrics->CountFlushFailure();
    }
  });
  struct DetachObserver {
    storage::Flusher& flusher;
    ~DetachObserver() { flusher.SetObserver({}); }
  } detach{flusher};
  flusher.Start();
  if (Status s = (*source)->Start(); !s.ok()) return Fail(s.error());

  std::string host = opts.server.listen.substr(0, opts.server.listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  const std::string url = "http://" + host + ":" + std::to_string((*server)->port());
  std::fprintf(stderr,
               "simstream: serving %s; consuming %s from %s as group %s; state in %s (%llu "
               "events applied so far)\n",
               url.c_str(), opts.kafka.topic.c_str(), opts.kafka.brokers.c_str(),
               opts.kafka.group.c_str(), opts.storage.path.c_str(),
               static_cast<unsigned long long>(engine->events_applied()));
  if (on_ready) on_ready(url);

  int sig = 0;
  while (sig <= 0) {
    timespec tick{1, 0};
    sig = sigtimedwait(&stop_signals, nullptr, &tick);
  }
  std::fprintf(stderr, "simstream: %s: shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  const auto t0 = Clock::now();
  (*server)->Stop();                    // no new requests
  Status consumer = (*source)->Stop();  // applies what was read, flushes, leaves the group
  Status final_flush = flusher.Stop();  // anything applied since (e.g. forgets)
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (flusher.sealed()) {
    std::fprintf(stderr,
                 "simstream: stopped in %.2f s without storing what was applied since the last "
                 "stored offsets (the state could not be stored before a handover); restart to "
                 "reload the stored state\n",
                 secs);
    return kExitStateNotStored;
  }
  if (!consumer.ok()) return Fail(consumer.error());
  if (!final_flush.ok()) return Fail(final_flush.error());
  std::fprintf(stderr, "simstream: stopped in %.2f s; %llu events applied and stored\n", secs,
               static_cast<unsigned long long>(engine->events_applied()));
  return 0;
}

int RunServe(const ConfigArgs& cfg) {
  const sigset_t signals = BlockStopSignals();  // before any thread exists
  auto opts = cfg.Load();
  if (!opts.ok()) return Fail(opts.error());
  return Serve(opts.value(), signals);
}

int RunDemo(const ConfigArgs& cfg, const std::string& input, const std::string& format, double rate,
            size_t events_n) {
  const sigset_t signals = BlockStopSignals();
  auto opts = cfg.Load();
  if (!opts.ok()) return Fail(opts.error());
  auto cluster = connectors::MockCluster::Start(1);
  if (!cluster.ok()) return Fail(cluster.error());
  if (Status s = (*cluster)->CreateTopic(opts->kafka.topic, 4); !s.ok()) return Fail(s.error());
  opts->kafka.brokers = (*cluster)->bootstrap_servers();
  if (cfg.config_path.empty()) {
    // A fresh state per demo unless a configuration says where.
    std::string tmpl = (std::filesystem::temp_directory_path() / "simstream-demo-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return Fail({"io_error", "cannot create a temp dir"});
    opts->storage.path = tmpl;
  }

  std::vector<engine::Event> events;
  if (!input.empty()) {
    auto loaded = LoadForProduce(input, format, engine::EventRulesFrom(opts.value()));
    if (!loaded.ok()) return Fail(loaded.error());
    events = std::move(loaded.value());
  } else {
    engine::GeneratorOptions g;
    g.events = events_n;
    if (auto st = engine::ValidateGeneratorOptions(g); !st.ok()) return Fail(st.error());
    (void)engine::Generate(g, [&](const engine::Event& e) { events.push_back(e); });
  }
  auto sink = connectors::KafkaEventSink::Create(opts->kafka);
  if (!sink.ok()) return Fail(sink.error());
  std::atomic<bool> stop{false};
  std::thread feeder;
  const std::string sample_user = events.empty() ? "u1" : events.front().user;
  const std::string sample_item = events.empty() ? "i1" : events.front().item;
  const int code = Serve(opts.value(), signals, [&](const std::string& url) {
    std::printf(
        "\nsimstream demo: an embedded Kafka broker at %s, topic %s, state in %s\n"
        "feeding %zu events at %.0f events/s; try (Ctrl-C to stop):\n\n"
        "  curl '%s/v1/stats'\n"
        "  curl '%s/v1/users/%s'\n"
        "  curl '%s/v1/users/%s/recommendations?k=10&explain=true'\n"
        "  curl '%s/v1/users/%s/similar?k=10'\n"
        "  curl '%s/v1/items/%s/similar?k=10'\n"
        "  curl -X POST '%s/v1/events' -d '{\"user\":\"%s\",\"item\":\"%s\",\"type\":\"like\"}'\n"
        "  curl '%s/metrics'\n\n",
        opts->kafka.brokers.c_str(), opts->kafka.topic.c_str(), opts->storage.path.c_str(),
        events.size(), rate, url.c_str(), url.c_str(), sample_user.c_str(), url.c_str(),
        sample_user.c_str(), url.c_str(), sample_user.c_str(), url.c_str(), sample_item.c_str(),
        url.c_str(), sample_user.c_str(), sample_item.c_str(), url.c_str());
    std::fflush(stdout);
    feeder = std::thread([&] {
      auto failed = ProduceEvents(**sink, events, rate, &stop, /*progress=*/false);
      if (!failed.ok()) {
        std::fprintf(stderr, "simstream: demo feed: %s\n", failed.error().message.c_str());
      } else if (!stop.load()) {
        std::fprintf(stderr, "simstream: demo feed done (%zu events)\n", events.size());
      }
    });
  });
  stop.store(true);
  if (feeder.joinable()) feeder.join();
  return code;
}

}  // namespace

void RegisterKafkaCommands(CLI::App& cli, std::vector<Command>& out) {
  struct State {
    ConfigArgs produce_cfg, serve_cfg, demo_cfg;
    std::string brokers, topic, input, format;
    double rate = 0;
    std::string demo_input, demo_format;
    double demo_rate = 2000;
    size_t demo_events = 200000;
  };
  auto st = std::make_shared<State>();
  State& s = *st;

  auto* produce =
      cli.add_subcommand("produce", "Replay an event file into a Kafka topic, keyed by user");
  s.produce_cfg.Attach(produce);
  produce->add_option("--brokers", s.brokers, "Bootstrap servers (default: kafka.brokers)");
  produce->add_option("--topic", s.topic, "Topic (default: kafka.topic)");
  produce->add_option("--input", s.input, "Event file (contract JSONL or MovieLens; '-' for stdin)")
      ->required();
  produce->add_option("--format", s.format, "jsonl or movielens (default: from the file name)");
  produce->add_option("--rate", s.rate, "Events per second (0: as fast as possible)")
      ->capture_default_str();
  out.push_back({produce, [st] {
                   return RunProduce(st->produce_cfg, st->brokers, st->topic, st->input, st->format,
                                     st->rate);
                 }});

  auto* serve =
      cli.add_subcommand("serve", "Run the daemon: Kafka -> learner -> RocksDB, HTTP API");
  s.serve_cfg.Attach(serve);
  out.push_back({serve, [st] { return RunServe(st->serve_cfg); }});

  auto* demo = cli.add_subcommand(
      "demo", "Run the daemon on an embedded Kafka broker fed a paced synthetic stream");
  s.demo_cfg.Attach(demo);
  demo->add_option("--input", s.demo_input, "Feed this event file instead of a generated stream");
  demo->add_option("--format", s.demo_format, "jsonl or movielens (default: from the file name)");
  demo->add_option("--rate", s.demo_rate, "Events per second fed to the broker")
      ->capture_default_str();
  demo->add_option("--events", s.demo_events, "Generated events")->capture_default_str();
  out.push_back({demo, [st] {
                   return RunDemo(st->demo_cfg, st->demo_input, st->demo_format, st->demo_rate,
                                  st->demo_events);
                 }});
}

}  // namespace simstream::app
