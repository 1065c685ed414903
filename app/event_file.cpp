// Reading event files for the subcommands that take --input.
#include "app/commands.hpp"
#include "app/progress.hpp"

namespace simstream::app {

Result<connectors::FileFormat> ResolveFileFormat(const std::string& path,
                                                 const std::string& format) {
  if (format.empty()) return connectors::GuessFormat(path);
  return connectors::ParseFileFormat(format);
}

Result<connectors::LoadedEvents> ReadEventFile(const std::string& path, const std::string& format,
                                               const engine::EventRules& rules) {
  auto fmt = ResolveFileFormat(path, format);
  if (!fmt.ok()) return fmt.error();
  ProgressBar bar("reading");
  auto loaded = connectors::LoadEvents(path, fmt.value(), rules, /*sort_by_time=*/true,
                                       [&](size_t done, size_t total) { bar.Update(done, total); });
  bar.Finish();
  return loaded;
}

}  // namespace simstream::app
