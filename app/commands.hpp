// Subcommands of the `simstream` binary. Each cmd_*.cpp registers its subcommands on the CLI
// and returns the function that runs them once parsed; main() only dispatches.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/loader.hpp"
#include "connectors/file_source.hpp"
#include "engine/event.hpp"

extern char** environ;

namespace simstream::app {

inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;
// serve: the state could not be stored before Kafka partitions were handed to another member
// (EX_TEMPFAIL). The daemon stops without storing anything more, so that the events it applied
// but did not store, which the next owner reads again, are not stored here too; a restart
// reloads the store.
inline constexpr int kExitStateNotStored = 75;

// Prints "simstream: <code>: <message>" on stderr and returns kExitFailure.
int Fail(const Error& e);

// --config and --set, shared by every subcommand that reads the configuration.
struct ConfigArgs {
  std::string config_path;
  std::vector<std::string> sets;
  void Attach(CLI::App* cmd) {
    cmd->add_option("--config", config_path, "JSON configuration file (comments allowed)");
    cmd->add_option("--set", sets, "Override one key: section.key=value (repeatable)");
  }
  Result<config::Options> Load() const { return config::Load(config_path, environ, sets); }
};

// The format of an event file: `format` when given (a connectors::ParseFileFormat name), else
// guessed from the file name.
Result<connectors::FileFormat> ResolveFileFormat(const std::string& path,
                                                 const std::string& format);

// Reads an event file (format as ResolveFileFormat) sorted by time, with a "reading" progress
// bar on a terminal. Malformed lines are skipped and counted in the result, for the command to
// report in its own words.
Result<connectors::LoadedEvents> ReadEventFile(const std::string& path, const std::string& format,
                                               const engine::EventRules& rules);

struct Command {
  CLI::App* sub = nullptr;
  std::function<int()> run;
};

// Registrars, one per cmd_*.cpp. State captured by `run` must be heap-owned (shared_ptr).
void RegisterOfflineCommands(CLI::App& cli,
                             std::vector<Command>& out);  // evaluate, generate, tune, config
void RegisterStorageCommands(CLI::App& cli,
                             std::vector<Command>& out);  // apply, checkpoint, export, forget
void RegisterKafkaCommands(CLI::App& cli, std::vector<Command>& out);  // produce, serve, demo

}  // namespace simstream::app
