// Acceptance 1 of the durable-state issue: `simstream apply` is killed with SIGKILL at random
// moments (with a 1 ms flush interval and small batches the flusher is nearly always writing,
// so many kills land mid-flush) and restarted until it completes; the final state must equal,
// bit for bit, the state of one uninterrupted run, with events_applied == number of events.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bit>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <thread>

#include "engine/engine.hpp"
#include "engine/generator.hpp"
#include "storage/snapshot.hpp"
#include "storage/state_store.hpp"
#include "tests/support/test_support.hpp"

namespace simstream::storage {
namespace {

namespace fs = std::filesystem;
using test_support::ChildProcess;
using test_support::ExitCode;
using test_support::ReadFile;

constexpr size_t kEvents = 30000;
constexpr int kMinKills = 20;
const std::vector<std::string> kModelSets = {"--set", "model.dim=16", "--set",
                                             "model.minhash_size=32"};

struct TempRoot {
  fs::path dir = fs::temp_directory_path() / ("simstream_crash_" + std::to_string(::getpid()));
  TempRoot() { fs::remove_all(dir), fs::create_directories(dir); }
  ~TempRoot() { fs::remove_all(dir); }
};

// Starts `simstream apply` into `data_dir`; its output is appended to `log`.
ChildProcess StartApply(const fs::path& data_dir, const fs::path& input, const fs::path& log,
                        const std::vector<std::string>& extra) {
  std::vector<std::string> args = {SIMSTREAM_BINARY,  "apply",   "--data-dir",
                                   data_dir.string(), "--input", input.string()};
  args.insert(args.end(), kModelSets.begin(), kModelSets.end());
  args.insert(args.end(), extra.begin(), extra.end());
  return ChildProcess(args, log, ChildProcess::Log::kAppend);
}

config::Options ModelOptions() {
  config::Options o;
  o.model.dim = 16;
  o.model.minhash_size = 32;
  return o;
}

struct Loaded {
  Snapshot snapshot;
  std::string embeddings;  // every user and item embedding, as bits
  uint64_t events_applied = 0;
};

Loaded Load(const fs::path& dir, const std::string& topic) {
  config::Options o = ModelOptions();
  o.storage.path = dir.string();
  auto store = OpenRocksDbStore(o.storage, o.model, topic);
  EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.error().message);
  Loaded out;
  if (!store.ok()) return out;
  auto snap = TakeSnapshot(*store.value());
  EXPECT_TRUE(snap.ok());
  if (snap.ok()) out.snapshot = std::move(snap.value());
  engine::Engine e(o);
  EXPECT_TRUE(store.value()->LoadInto(e).ok());
  e.ForEachEmbedding([&](char kind, const std::string& id, std::span<const float> v) {
    out.embeddings += kind + id + ":";
    for (float f : v) out.embeddings += std::to_string(std::bit_cast<uint32_t>(f)) + ",";
    out.embeddings += "\n";
  });
  out.events_applied = e.events_applied();
  return out;
}

TEST(CrashRecovery, KilledAndRestartedApplyEndsBitIdenticalToAnUninterruptedRun) {
  TempRoot root;
  const fs::path input = root.dir / "stream.jsonl";
  {
    engine::GeneratorOptions g;
    g.users = 400;
    g.items = 200;
    g.events = kEvents;
    g.seed = 5;
    std::vector<engine::Event> events;
    (void)engine::Generate(g, [&](const engine::Event& e) { events.push_back(e); });
    std::ofstream out(input, std::ios::binary);
    for (const auto& e : events) out << engine::ToJson(e) << '\n';
    ASSERT_TRUE(out.good());
  }
  const std::string topic = "file:stream.jsonl";

  // The uninterrupted reference run.
  const fs::path dir_a = root.dir / "a";
  const auto t0 = std::chrono::steady_clock::now();
  {
    ChildProcess child = StartApply(dir_a, input, root.dir / "a.log", {});
    ASSERT_TRUE(child.running());
    const std::optional<int> status = child.Wait();
    ASSERT_TRUE(status.has_value());
    ASSERT_EQ(ExitCode(*status), 0) << ReadFile(root.dir / "a.log");
  }
  const double full_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const Loaded a = Load(dir_a, topic);
  ASSERT_EQ(a.events_applied, kEvents);
  ASSERT_FALSE(a.embeddings.empty());

  // Kill points are spread over the whole life of a child, start-up and loading included.
  std::mt19937 rng(12345);
  const int max_delay_ms = std::max(20, static_cast<int>(full_ms * 0.6));
  const std::vector<std::string> busy_flushing = {"--set", "storage.flush_interval_ms=1",
                                                  "--set", "storage.flush_max_dirty=300",
                                                  "--set", "kafka.batch_size=100"};
  int kills = 0, rounds = 0, restarts = 0;
  while (kills < kMinKills && rounds < 8) {
    const fs::path dir_b = root.dir / ("b" + std::to_string(rounds++));
    const fs::path log = root.dir / (dir_b.filename().string() + ".log");
    for (int life = 0;; ++life) {
      ASSERT_LT(life, 500) << "the child never completes";
      ChildProcess child = StartApply(dir_b, input, log, busy_flushing);
      ASSERT_TRUE(child.running());
      // The bound grows with every kill of this round: on a loaded machine a restart (start-up
      // and loading the state, with these busy flush settings) can outlast the reference run's
      // fraction, and the round must still end with a child that completes.
      const int bound = max_delay_ms + life * max_delay_ms / 10;
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % bound));
      const std::optional<int> status = child.Kill(SIGKILL);
      ASSERT_TRUE(status.has_value());
      if (WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) {
        ++kills;
        ++restarts;
        continue;
      }
      ASSERT_EQ(ExitCode(*status), 0) << ReadFile(log);
      break;
    }
    // One more clean run must find nothing left to do.
    ChildProcess child = StartApply(dir_b, input, log, busy_flushing);
    const std::optional<int> status = child.Wait();
    ASSERT_TRUE(status.has_value());
    ASSERT_EQ(ExitCode(*status), 0) << ReadFile(log);

    const Loaded b = Load(dir_b, topic);
    EXPECT_EQ(b.events_applied, kEvents) << dir_b;
    EXPECT_TRUE(b.embeddings == a.embeddings) << "embeddings differ after kills in " << dir_b;
    EXPECT_EQ(DiffSnapshots(a.snapshot, b.snapshot), "") << dir_b;
    EXPECT_EQ(b.snapshot.next_offsets, a.snapshot.next_offsets);
  }
  EXPECT_GE(kills, kMinKills);
  RecordProperty("kills", kills);
  RecordProperty("rounds", rounds);
  std::printf("crash test: %d kills over %d round(s), %d restarts; uninterrupted run %.0f ms\n",
              kills, rounds, restarts, full_ms);
}

}  // namespace
}  // namespace simstream::storage
