// Helpers shared by the test executables: seeded event streams, waiting on a condition, unique
// names and the real-broker switch of the Kafka tests, and child processes for the tests that
// run the `simstream` binary and kill it.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.hpp"
#include "engine/event.hpp"
#include "engine/generator.hpp"

namespace simstream::test_support {

// A seeded stream of `n` clicks (weight 1) by `users` users on `items` items, at increasing
// timestamps from 1700000000000 ms.
std::vector<engine::Event> MakeEvents(size_t n, int users, int items, uint32_t seed);

// The events of generator `g`, weighted by type under the default model options; event n is at
// partition n % partitions, offset n / partitions.
std::vector<engine::SourcedEvent> GeneratedStream(const engine::GeneratorOptions& g,
                                                  int32_t partitions = 1);

// The broker of SIMSTREAM_TEST_KAFKA_BROKERS (set by scripts/test.sh); empty when there is none.
std::string RealBrokers();

// `prefix` made unique per process and call: ctest runs test processes in parallel against one
// broker.
std::string Unique(const std::string& prefix);

// Polls `pred` every 20 ms until it holds or `timeout` passed; its last value.
bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

// The whole file (empty if it cannot be read).
std::string ReadFile(const std::filesystem::path& p);

// The exit code in a wait status: WEXITSTATUS if the child exited, -1 if a signal ended it.
int ExitCode(int wait_status);

// A child process started with posix_spawn in this process's environment, its stdout and
// stderr both going to one log file. It owns the child: the destructor kills it with SIGKILL and
// reaps it, unless it was reaped already. Not thread-safe.
class ChildProcess {
 public:
  enum class Log { kTruncate, kAppend };
  // Starts argv[0] (a path; PATH is not searched) with arguments `argv`.
  ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& log, Log mode);
  ~ChildProcess() { Kill(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Started and not reaped yet.
  bool running() const { return pid_ > 0; }
  // Whether it still runs; once it has ended it is reaped (its status is not kept).
  bool Alive();
  // Sends `sig` (nothing if it is not running).
  void Signal(int sig);
  // Blocks until it ends; its wait status, or nullopt if it was not running or waitpid failed.
  std::optional<int> Wait();
  // Wait() for at most `timeout`; nullopt (and it still runs) if it did not end by then.
  std::optional<int> WaitFor(std::chrono::milliseconds timeout);
  // Signal(sig), then Wait().
  std::optional<int> Kill(int sig = SIGKILL);

 private:
  pid_t pid_ = -1;
};

}  // namespace simstream::test_support
