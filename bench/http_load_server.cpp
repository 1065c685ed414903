// Load-test target for bench/http_load.sh: an Engine trained on a synthetic stream, served over
// HTTP on loopback, while a writer thread keeps applying new events at a fixed rate (the way the
// Kafka consumer would). Not a Google Benchmark: wrk drives it from outside.
//
//   http_load_server [--users N] [--items N] [--events N] [--dim D] [--threads T]
//                    [--port P] [--ingest-rate EVENTS_PER_S] [--ef-search N]
//                    [--ef-reinsert N] [--neighbour-lists-interval-ms N]
//
// Prints "ready <port>" on stdout once serving; stops on SIGINT/SIGTERM and prints how many
// events the writer applied while serving.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "connectors/http_server.hpp"
#include "engine/engine.hpp"
#include "engine/generator.hpp"

namespace {

using simstream::engine::Event;
using simstream::engine::SourcedEvent;
using Clock = std::chrono::steady_clock;

struct Args {
  size_t users = 100000;
  size_t items = 20000;
  size_t events = 2000000;
  int64_t dim = 64;
  int64_t threads = 2;
  int port = 8080;
  double ingest_rate = 10000;
  int64_t ef_search = 0;                     // 0: the configuration default
  int64_t ef_reinsert = -1;                  // -1: the configuration default
  int64_t neighbour_lists_interval_ms = -1;  // -1: the configuration default
};

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--users")
      a.users = std::strtoull(v, nullptr, 10);
    else if (k == "--items")
      a.items = std::strtoull(v, nullptr, 10);
    else if (k == "--events")
      a.events = std::strtoull(v, nullptr, 10);
    else if (k == "--dim")
      a.dim = std::strtoll(v, nullptr, 10);
    else if (k == "--threads")
      a.threads = std::strtoll(v, nullptr, 10);
    else if (k == "--port")
      a.port = std::atoi(v);
    else if (k == "--ingest-rate")
      a.ingest_rate = std::strtod(v, nullptr);
    else if (k == "--ef-search") {
      a.ef_search = std::strtoll(v, nullptr, 10);
      if (a.ef_search < 1 || a.ef_search > 4096) {  // the range of index.ef_search
        std::fprintf(stderr, "--ef-search must be in [1, 4096]\n");
        std::exit(2);
      }
    } else if (k == "--ef-reinsert") {
      a.ef_reinsert = std::strtoll(v, nullptr, 10);
      if (a.ef_reinsert < 0 || a.ef_reinsert > 4096) {  // the range of index.ef_reinsert
        std::fprintf(stderr, "--ef-reinsert must be in [0, 4096]\n");
        std::exit(2);
      }
    } else if (k == "--neighbour-lists-interval-ms") {
      a.neighbour_lists_interval_ms = std::strtoll(v, nullptr, 10);
      if (a.neighbour_lists_interval_ms < 0 || a.neighbour_lists_interval_ms > 86400000) {
        std::fprintf(stderr, "--neighbour-lists-interval-ms must be in [0, 86400000]\n");
        std::exit(2);
      }
    } else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      std::exit(2);
    }
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = Parse(argc, argv);
  simstream::config::Options opts;
  opts.model.dim = args.dim;
  if (args.ef_search > 0) opts.index.ef_search = args.ef_search;
  if (args.ef_reinsert >= 0) opts.index.ef_reinsert = args.ef_reinsert;
  if (args.neighbour_lists_interval_ms >= 0) {
    opts.index.neighbour_lists_interval_ms = args.neighbour_lists_interval_ms;
  }
  simstream::engine::Engine engine(opts);

  // Block the stop signals in every thread; the main thread waits for them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // Training: the generated stream, applied in batches with offsets on partition 0, as a
  // backlog is: the engine is told the events still to come (Engine::NoteLag), so the
  // maintainer builds no index until the end, as `serve` catching up on Kafka does.
  simstream::engine::GeneratorOptions gen;
  gen.users = args.users;
  gen.items = args.items;
  gen.events = args.events;
  gen.communities = 20;
  int64_t offset = 0;
  std::vector<SourcedEvent> batch;
  const auto train_start = Clock::now();
  engine.NoteLag(static_cast<int64_t>(args.events));
  simstream::engine::Generate(gen, [&](const Event& e) {
    batch.push_back({e, 0, offset++});
    if (batch.size() == 10000) {
      (void)engine.Apply(batch);
      batch.clear();
      engine.NoteLag(static_cast<int64_t>(args.events) - offset);
    }
  });
  (void)engine.Apply(batch);
  batch.clear();
  engine.NoteLag(0);
  const double train_s = std::chrono::duration<double>(Clock::now() - train_start).count();
  // Build the indexes now (the maintenance thread would, within a second): measure the steady
  // state, not the exact scan before the first build. If the maintainer got there first, this
  // waits for its build (MaintainIndexes runs one at a time) and builds nothing more.
  const auto build_start = Clock::now();
  engine.MaintainIndexes();
  const double build_s = std::chrono::duration<double>(Clock::now() - build_start).count();
  const auto stats = engine.Stats();
  std::fprintf(stderr, "indexes: users %s (%zu), items %s (%zu), built in %.1f s\n",
               stats.user_index.mode.c_str(), stats.user_index.indexed,
               stats.item_index.mode.c_str(), stats.item_index.indexed, build_s);
  std::fprintf(stderr,
               "trained: %llu events, %zu users, %zu items, d=%d in %.1f s (%.0f events/s)\n",
               static_cast<unsigned long long>(stats.events_applied), stats.users, stats.items,
               stats.dim, train_s, static_cast<double>(stats.events_applied) / train_s);

  simstream::config::ServerOptions so;
  so.listen = "127.0.0.1:" + std::to_string(args.port);
  so.threads = args.threads;
  simstream::connectors::HttpServerOptions ho;
  ho.event_rules.type_weights = opts.model.event_weights;
  simstream::connectors::HttpDeps deps;
  deps.engine = &engine;
  auto server = simstream::connectors::HttpServer::Start(so, ho, deps);
  if (!server.ok()) {
    std::fprintf(stderr, "cannot start: %s\n", server.error().message.c_str());
    return 1;
  }

  // Live ingest at a fixed rate, in batches of 100 (every 10 ms at 10k events/s), from a second
  // stream over the same users and items.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> live_applied{0};
  std::thread writer([&] {
    if (args.ingest_rate <= 0) return;
    simstream::engine::GeneratorOptions live = gen;
    live.seed = 2;
    live.events = std::max<size_t>(gen.events, gen.users * gen.min_user_events);
    const size_t per_batch = 100;
    const auto period =
        std::chrono::duration<double>(static_cast<double>(per_batch) / args.ingest_rate);
    auto next = Clock::now();
    std::vector<SourcedEvent> b;
    for (;;) {
      simstream::engine::Generate(live, [&](const Event& e) {
        if (stop) return;
        b.push_back({e, 0, offset++});
        if (b.size() < per_batch) return;
        (void)engine.Apply(b);
        live_applied += b.size();
        b.clear();
        next += std::chrono::duration_cast<Clock::duration>(period);
        std::this_thread::sleep_until(next);
      });
      if (stop) return;
      ++live.seed;
    }
  });

  std::printf("ready %u\n", (*server)->port());
  std::fflush(stdout);
  const auto serve_start = Clock::now();
  int sig = 0;
  sigwait(&stop_signals, &sig);
  stop = true;
  writer.join();
  (*server)->Stop();
  const double serve_s = std::chrono::duration<double>(Clock::now() - serve_start).count();
  std::fprintf(stderr, "served %.1f s; writer applied %llu events (%.0f events/s)\n", serve_s,
               static_cast<unsigned long long>(live_applied.load()),
               static_cast<double>(live_applied.load()) / serve_s);
  return 0;
}
