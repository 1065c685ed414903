#include "tests/support/test_support.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include "config/options.hpp"

extern char** environ;

namespace simstream::test_support {

using Clock = std::chrono::steady_clock;

std::vector<engine::Event> MakeEvents(size_t n, int users, int items, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<engine::Event> out;
  for (size_t i = 0; i < n; ++i) {
    engine::Event e;
    e.user = "u" + std::to_string(rng() % users);
    e.item = "i" + std::to_string(rng() % items);
    e.type = "click";
    e.weight = 1.0;
    e.ts_ms = 1700000000000 + static_cast<int64_t>(i);
    out.push_back(e);
  }
  return out;
}

std::vector<engine::SourcedEvent> GeneratedStream(const engine::GeneratorOptions& g,
                                                  int32_t partitions) {
  std::vector<engine::SourcedEvent> out;
  const config::ModelOptions defaults;
  (void)engine::Generate(g, [&](const engine::Event& e) {
    engine::Event ev = e;
    auto it = defaults.event_weights.find(e.type);
    ev.weight = it != defaults.event_weights.end() ? it->second : defaults.default_event_weight;
    out.push_back({ev, static_cast<int32_t>(out.size() % partitions),
                   static_cast<int64_t>(out.size() / partitions)});
  });
  return out;
}

std::string RealBrokers() {
  const char* b = std::getenv("SIMSTREAM_TEST_KAFKA_BROKERS");
  return b == nullptr ? std::string() : std::string(b);
}

std::string Unique(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + "-" + std::to_string(getpid()) + "-" +
         std::to_string(Clock::now().time_since_epoch().count() % 1000000007) + "-" +
         std::to_string(counter++);
}

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

int ExitCode(int wait_status) {
  return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1;
}

ChildProcess::ChildProcess(const std::vector<std::string>& args, const std::filesystem::path& log,
                           Log mode) {
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int flags = O_WRONLY | O_CREAT | (mode == Log::kAppend ? O_APPEND : O_TRUNC);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), flags, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) == 0) pid_ = pid;
  posix_spawn_file_actions_destroy(&fa);
}

bool ChildProcess::Alive() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == 0) return true;
  pid_ = -1;
  return false;
}

void ChildProcess::Signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

std::optional<int> ChildProcess::Wait() {
  if (pid_ <= 0) return std::nullopt;
  int status = 0;
  const pid_t reaped = waitpid(pid_, &status, 0);
  pid_ = -1;
  if (reaped <= 0) return std::nullopt;
  return status;
}

std::optional<int> ChildProcess::WaitFor(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  const auto deadline = Clock::now() + timeout;
  int status = 0;
  while (Clock::now() < deadline) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::nullopt;
}

std::optional<int> ChildProcess::Kill(int sig) {
  Signal(sig);
  return Wait();
}

}  // namespace simstream::test_support
