// State maintenance subcommands: apply, checkpoint, export, forget.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "app/commands.hpp"
#include "connectors/file_source.hpp"
#include "engine/engine.hpp"
#include "storage/export.hpp"
#include "storage/flusher.hpp"
#include "storage/state_store.hpp"

namespace simstream::app {
namespace {

struct LoadedState {
  std::unique_ptr<storage::StateStore> store;
  std::unique_ptr<engine::Engine> engine;
};

Result<config::Options> LoadOptions(const ConfigArgs& cfg, const std::string& data_dir) {
  auto opts = cfg.Load();
  if (opts.ok() && !data_dir.empty()) opts->storage.path = data_dir;
  return opts;
}

// Opens the store at storage.path and loads it into a new engine.
Result<LoadedState> OpenState(const config::Options& opts, const std::string& topic) {
  auto store = storage::OpenRocksDbStore(opts.storage, opts.model, topic);
  if (!store.ok()) return store.error();
  LoadedState s{std::move(store.value()), std::make_unique<engine::Engine>(opts)};
  if (Status st = s.store->LoadInto(*s.engine); !st.ok()) return st.error();
  return s;
}

int RunApply(const ConfigArgs& cfg, const std::string& data_dir, const std::string& input,
             const std::string& format) {
  auto opts = LoadOptions(cfg, data_dir);
  if (!opts.ok()) return Fail(opts.error());
  auto fmt = ResolveFileFormat(input, format);
  if (!fmt.ok()) return Fail(fmt.error());
  // The file is one partition (0) of a stream named after it; the offset of an event is its
  // position among the file's valid events, in file order (as a Kafka log keeps it).
  const std::string topic = "file:" + std::filesystem::path(input).filename().string();
  const auto t0 = std::chrono::steady_clock::now();
  auto state = OpenState(opts.value(), topic);
  if (!state.ok()) return Fail(state.error());
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  engine::Engine& eng = *state->engine;
  auto loaded = connectors::LoadEvents(input, fmt.value(), engine::EventRulesFrom(opts.value()),
                                       /*sort_by_time=*/false);
  if (!loaded.ok()) return Fail(loaded.error());
  const auto& events = loaded->events;

  const auto offsets = eng.NextOffsets();
  const auto it = offsets.find(0);
  const size_t start =
      it == offsets.end() ? 0 : static_cast<size_t>(std::max<int64_t>(it->second, 0));
  storage::Flusher flusher(eng, *state->store, opts->storage);
  flusher.Start();
  const size_t batch = static_cast<size_t>(std::max<int64_t>(opts->kafka.batch_size, 1));
  std::vector<engine::SourcedEvent> chunk;
  size_t applied = 0;
  for (size_t i = start; i < events.size(); i += batch) {
    chunk.clear();
    for (size_t j = i; j < std::min(events.size(), i + batch); ++j)
      chunk.push_back({events[j], /*partition=*/0, static_cast<int64_t>(j)});
    applied += eng.Apply(chunk).applied;
    if (Status st = flusher.MaybeFlush(); !st.ok()) return Fail(st.error());
  }
  if (Status st = flusher.Stop(); !st.ok()) return Fail(st.error());
  std::fprintf(stderr,
               "simstream: applied %zu event(s) of %s (resumed at offset %zu, state loaded in "
               "%.2f s); events_applied %llu; state in %s\n",
               applied, input.c_str(), start, load_s,
               static_cast<unsigned long long>(eng.events_applied()), opts->storage.path.c_str());
  return 0;
}

int RunCheckpoint(const ConfigArgs& cfg, const std::string& data_dir, const std::string& to) {
  auto opts = LoadOptions(cfg, data_dir);
  if (!opts.ok()) return Fail(opts.error());
  auto store = storage::OpenRocksDbStore(opts->storage, opts->model, opts->kafka.topic);
  if (!store.ok()) return Fail(store.error());
  if (Status st = store.value()->Checkpoint(to); !st.ok()) return Fail(st.error());
  std::fprintf(stderr,
               "simstream: checkpoint of %s written to %s (start on it with --data-dir %s or "
               "storage.path)\n",
               opts->storage.path.c_str(), to.c_str(), to.c_str());
  return 0;
}

int RunExport(const ConfigArgs& cfg, const std::string& data_dir, const std::string& format,
              const std::string& output) {
  auto opts = LoadOptions(cfg, data_dir);
  if (!opts.ok()) return Fail(opts.error());
  if (format == "npy" && (output.empty() || output == "-"))
    return Fail({"usage", "--format npy needs --output PREFIX (files PREFIX.users.npy, ...)"});
  auto state = OpenState(opts.value(), opts->kafka.topic);
  if (!state.ok()) return Fail(state.error());
  auto counts = format == "npy"
                    ? storage::ExportNpy(*state->engine, output)
                    : storage::ExportJsonl(*state->engine, output.empty() ? "-" : output);
  if (!counts.ok()) return Fail(counts.error());
  std::fprintf(stderr, "simstream: exported %zu user(s) and %zu item(s) of dimension %d\n",
               counts->users, counts->items, state->engine->dim());
  return 0;
}

int RunForget(const ConfigArgs& cfg, const std::string& data_dir, const std::string& user) {
  auto opts = LoadOptions(cfg, data_dir);
  if (!opts.ok()) return Fail(opts.error());
  auto state = OpenState(opts.value(), opts->kafka.topic);
  if (!state.ok()) return Fail(state.error());
  storage::Flusher flusher(*state->engine, *state->store, opts->storage);
  const bool known = state->engine->ForgetUser(user);
  if (known) {
    if (Status st = flusher.FlushNow(); !st.ok()) return Fail(st.error());
  }
  // Deleted rows must leave the files too, not only the live view. Also when the user is no
  // longer known: a forget through DELETE /v1/users/{id}, or an earlier run stopped before its
  // purge, left the deleted rows' bytes in older files, and only this purge removes them.
  if (Status st = state->store->PurgeDeleted(); !st.ok()) return Fail(st.error());
  if (known) {
    std::fprintf(stderr, "simstream: forgot user '%s' (embedding, history, sketch, id mapping)\n",
                 user.c_str());
  } else {
    std::fprintf(stderr,
                 "simstream: no user '%s' in %s (never seen, or forgotten already); the rows of "
                 "earlier forgets are purged from disk\n",
                 user.c_str(), opts->storage.path.c_str());
  }
  return 0;
}

}  // namespace

void RegisterStorageCommands(CLI::App& cli, std::vector<Command>& out) {
  struct State {
    ConfigArgs apply_cfg, cp_cfg, export_cfg, forget_cfg;
    std::string apply_dir, apply_input, apply_format;
    std::string cp_dir, cp_to;
    std::string export_dir, export_format = "jsonl", export_output = "-";
    std::string forget_dir, forget_user;
  };
  auto st = std::make_shared<State>();
  State& s = *st;
  const char* kDataDirHelp = "State directory (overrides storage.path)";

  auto* apply = cli.add_subcommand(
      "apply", "Apply a file's events to the durable state (resumes where a previous run stopped)");
  s.apply_cfg.Attach(apply);
  apply->add_option("--data-dir", s.apply_dir, kDataDirHelp);
  apply->add_option("--input", s.apply_input, "Event file (contract JSONL or MovieLens)")
      ->required();
  apply->add_option("--format", s.apply_format, "jsonl or movielens (default: from the file name)");
  out.push_back({apply, [st] {
                   return RunApply(st->apply_cfg, st->apply_dir, st->apply_input, st->apply_format);
                 }});

  auto* cp =
      cli.add_subcommand("checkpoint", "Write a consistent copy of the state (RocksDB checkpoint)");
  s.cp_cfg.Attach(cp);
  cp->add_option("--data-dir", s.cp_dir, kDataDirHelp);
  cp->add_option("--to", s.cp_to, "New directory for the copy (must not exist)")->required();
  out.push_back({cp, [st] { return RunCheckpoint(st->cp_cfg, st->cp_dir, st->cp_to); }});

  auto* ex = cli.add_subcommand("export", "Export user and item embeddings with their ids");
  s.export_cfg.Attach(ex);
  ex->add_option("--data-dir", s.export_dir, kDataDirHelp);
  ex->add_option("--format", s.export_format, "jsonl or npy")
      ->check(CLI::IsMember({"jsonl", "npy"}))
      ->capture_default_str();
  ex->add_option(
        "--output,-o", s.export_output,
        "jsonl: file ('-' for stdout); npy: prefix of PREFIX.{users,items}.npy and .ids.txt")
      ->capture_default_str();
  out.push_back({ex, [st] {
                   return RunExport(st->export_cfg, st->export_dir, st->export_format,
                                    st->export_output);
                 }});

  auto* forget = cli.add_subcommand(
      "forget", "Forget a user: embedding, history, sketch and id mapping are removed from disk");
  s.forget_cfg.Attach(forget);
  forget->add_option("--data-dir", s.forget_dir, kDataDirHelp);
  forget->add_option("--user", s.forget_user, "External user id")->required();
  out.push_back(
      {forget, [st] { return RunForget(st->forget_cfg, st->forget_dir, st->forget_user); }});
}

}  // namespace simstream::app
