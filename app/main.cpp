// simstream: the composition root. Parses the command line and dispatches to a subcommand;
// the subcommands wire the libraries together, and no algorithm lives in app/.
#include <csignal>
#include <cstdio>

#include "app/commands.hpp"

namespace simstream::app {

int Fail(const Error& e) {
  std::fprintf(stderr, "simstream: %s: %s\n", e.code.c_str(), e.message.c_str());
  return kExitFailure;
}

}  // namespace simstream::app

int main(int argc, char** argv) {
  using namespace simstream::app;
  // A write past RLIMIT_FSIZE is an EFBIG error for the storage layer to report, not a signal
  // that kills the daemon mid-write.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App cli{"simstream: a streaming recommender similarity engine"};
  cli.require_subcommand(1);
  std::vector<Command> commands;
  RegisterOfflineCommands(cli, commands);
  RegisterStorageCommands(cli, commands);
  RegisterKafkaCommands(cli, commands);
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e) == 0 ? 0 : kExitUsage;
  }
  for (const Command& c : commands) {
    if (c.sub->parsed()) return c.run();
  }
  return kExitUsage;
}
