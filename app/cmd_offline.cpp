// Offline subcommands: evaluate, generate, tune, config.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "app/commands.hpp"
#include "app/progress.hpp"
#include "config/loader.hpp"
#include "connectors/file_source.hpp"
#include "engine/baselines.hpp"
#include "engine/evaluation.hpp"
#include "engine/generator.hpp"
#include "engine/quality.hpp"
#include "engine/tuner.hpp"

namespace simstream::app {
namespace {

// Loads an event file, reporting malformed lines with their line numbers on stderr.
Result<connectors::LoadedEvents> LoadInput(const std::string& path, const std::string& format,
                                           const engine::EventRules& rules) {
  auto loaded = ReadEventFile(path, format, rules);
  if (!loaded.ok()) return loaded;
  const auto& l = loaded.value();
  if (l.bad_count > 0) {
    std::fprintf(stderr, "simstream: %zu malformed line(s) skipped in %s:\n", l.bad_count,
                 path.c_str());
    for (size_t i = 0; i < l.bad.size() && i < 20; ++i) {
      std::fprintf(stderr, "  line %zu: %s: %s\n", l.bad[i].line, l.bad[i].code.c_str(),
                   l.bad[i].message.c_str());
    }
    if (l.bad_count > 20) std::fprintf(stderr, "  ... and %zu more\n", l.bad_count - 20);
  }
  return loaded;
}

int RunEvaluate(const ConfigArgs& cfg, const std::string& input, const std::string& format,
                int64_t k, bool json, const std::vector<std::string>& models, int64_t limit,
                const std::string& truth_path) {
  auto opts = cfg.Load();
  if (!opts.ok()) return Fail(opts.error());
  if (k > 0) opts->eval.k = k;
  auto loaded = LoadInput(input, format, engine::EventRulesFrom(opts.value()));
  if (!loaded.ok()) return Fail(loaded.error());
  auto& events = loaded->events;
  if (limit > 0 && static_cast<size_t>(limit) < events.size()) events.resize(limit);

  engine::OnlineModel model(opts->model);
  engine::PopularityScorer popular(opts->eval.popularity_half_life_events);
  engine::ItemKnnScorer knn;
  std::vector<engine::StreamingScorer*> scorers;
  for (const auto& name : models) {
    if (name == "simstream")
      scorers.push_back(&model);
    else if (name == "popular")
      scorers.push_back(&popular);
    else if (name == "item-knn")
      scorers.push_back(&knn);
    else
      return Fail(
          {"usage", "unknown model '" + name + "' (allowed: simstream, popular, item-knn)"});
  }
  engine::PrequentialEvaluator eval(static_cast<size_t>(opts->eval.k), scorers,
                                    static_cast<uint64_t>(opts->model.seed));
  {
    ProgressBar bar("evaluating");
    for (size_t i = 0; i < events.size(); ++i) {
      eval.Process(events[i], static_cast<int64_t>(i));
      if ((i & 1023) == 0 || i + 1 == events.size()) bar.Update(i + 1, events.size());
    }
  }
  const engine::EvalReport r = eval.Report();
  // With planted labels: is the learned metric itself right?
  std::optional<engine::NeighbourQuality> quality;
  if (!truth_path.empty()) {
    auto truth = engine::ReadTruth(truth_path);
    if (!truth.ok()) return Fail(truth.error());
    quality = engine::PlantedNeighbourQuality(model, eval.users(), eval.items(), truth.value(),
                                              static_cast<size_t>(opts->eval.k),
                                              /*min_events=*/20, engine::Metric::kCosine);
  }
  if (json) {
    nlohmann::json out = {{"events", r.events},
                          {"evaluated", r.evaluated},
                          {"k", r.k},
                          {"malformed", loaded->bad_count}};
    out["models"] = nlohmann::json::array();
    for (const auto& m : r.models) {
      out["models"].push_back({{"name", m.name},
                               {"hr", m.hr},
                               {"ndcg", m.ndcg},
                               {"mrr", m.mrr},
                               {"coverage", m.coverage},
                               {"events_per_s", m.events_per_s}});
    }
    if (quality) {
      out["planted"] = {{"similar_users_precision", quality->user_precision},
                        {"users_evaluated", quality->users_evaluated},
                        {"similar_items_precision", quality->item_precision},
                        {"items_evaluated", quality->items_evaluated}};
    }
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::printf(
      "events %llu, ranked %llu (full ranking over all unseen items), k=%zu, malformed %zu\n",
      static_cast<unsigned long long>(r.events), static_cast<unsigned long long>(r.evaluated), r.k,
      loaded->bad_count);
  std::printf("%-10s %8s %8s %8s %9s %12s\n", "model", ("HR@" + std::to_string(r.k)).c_str(),
              ("NDCG@" + std::to_string(r.k)).c_str(), "MRR", "coverage", "events/s");
  for (const auto& m : r.models) {
    std::printf("%-10s %8.4f %8.4f %8.4f %9.4f %12.0f\n", m.name.c_str(), m.hr, m.ndcg, m.mrr,
                m.coverage, m.events_per_s);
  }
  if (std::find(models.begin(), models.end(), "simstream") != models.end() &&
      opts->model.scorer == "hybrid") {
    const auto mix = model.MixWeights();
    std::printf("simstream mix weights: embedding %.4f, neighbourhood %.4f, popularity %.4f\n",
                mix[0], mix[1], mix[2]);
  }
  if (quality) {
    std::printf(
        "planted structure: similar-users precision@%lld %.4f (%zu users with >= 20 events), "
        "similar-items precision@%lld %.4f (%zu items)\n",
        static_cast<long long>(opts->eval.k), quality->user_precision, quality->users_evaluated,
        static_cast<long long>(opts->eval.k), quality->item_precision, quality->items_evaluated);
  }
  return 0;
}

int RunGenerate(engine::GeneratorOptions g, const std::string& output, const std::string& truth) {
  if (auto st = engine::ValidateGeneratorOptions(g); !st.ok()) return Fail(st.error());
  std::ofstream file;
  std::ostream* out = &std::cout;
  if (!output.empty() && output != "-") {
    file.open(output, std::ios::binary | std::ios::trunc);
    if (!file) return Fail({"io_error", "cannot write " + output});
    out = &file;
  }
  std::string line;
  const engine::GroundTruth t = engine::Generate(g, [&](const engine::Event& e) {
    // No explicit "weight": the consumer's model.event_weights decide what a type is worth.
    line = nlohmann::json{{"user", e.user}, {"item", e.item}, {"type", e.type}, {"ts", e.ts_ms}}
               .dump();
    line.push_back('\n');
    out->write(line.data(), static_cast<std::streamsize>(line.size()));
  });
  out->flush();
  if (!*out) return Fail({"io_error", "writing events failed"});
  if (!truth.empty()) {
    if (auto st = engine::WriteTruth(truth, t, g); !st.ok()) return Fail(st.error());
  }
  return 0;
}

int RunTune(const ConfigArgs& cfg, const std::string& input, const std::string& format,
            engine::TuneOptions t) {
  auto opts = cfg.Load();
  if (!opts.ok()) return Fail(opts.error());
  auto loaded = LoadInput(input, format, engine::EventRulesFrom(opts.value()));
  if (!loaded.ok()) return Fail(loaded.error());
  if (t.k == 0) t.k = static_cast<size_t>(opts->eval.k);
  ProgressBar bar("trials");
  const engine::TuneResult r = engine::RandomSearch(
      loaded->events, opts->model, t, [&](size_t done, size_t total) { bar.Update(done, total); });
  bar.Finish();
  for (size_t i = 0; i < r.trials.size(); ++i) {
    std::fprintf(stderr, "trial %2zu: HR@%zu %.4f NDCG@%zu %.4f loss=%s lr=%.4g neg=%lld%s\n", i,
                 t.k, r.trials[i].hr, t.k, r.trials[i].ndcg, r.trials[i].model.loss.c_str(),
                 r.trials[i].model.learning_rate,
                 static_cast<long long>(r.trials[i].model.negatives), i == 0 ? " (base)" : "");
  }
  config::Options best = opts.value();
  best.model = r.trials[r.best].model;
  // stdout is the config section alone, so that it can be used as a config file as it is.
  std::fprintf(stderr, "best: trial %zu, HR@%zu %.4f NDCG@%zu %.4f\n", r.best, t.k,
               r.trials[r.best].hr, t.k, r.trials[r.best].ndcg);
  const nlohmann::json out = {{"model", config::ToJson(best)["model"]}};
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace

void RegisterOfflineCommands(CLI::App& cli, std::vector<Command>& out) {
  struct State {
    ConfigArgs eval_cfg;
    std::string eval_input, eval_format, eval_truth;
    int64_t eval_k = 0, eval_limit = 0;
    bool eval_json = false;
    std::vector<std::string> eval_models{"simstream", "popular", "item-knn"};
    engine::GeneratorOptions gen;
    std::string gen_output = "-", gen_truth;
    ConfigArgs tune_cfg;
    std::string tune_input, tune_format;
    engine::TuneOptions tune_opts;
    ConfigArgs show_cfg;
    bool show_example = false;
  };
  auto st = std::make_shared<State>();
  st->tune_opts.k = 0;
  State& s = *st;

  auto* evaluate = cli.add_subcommand(
      "evaluate", "Replay a file through the learner and the baselines (prequential HR/NDCG/MRR)");
  s.eval_cfg.Attach(evaluate);
  evaluate->add_option("--input", s.eval_input, "Event file (contract JSONL or MovieLens)")
      ->required();
  evaluate->add_option("--format", s.eval_format,
                       "jsonl or movielens (default: from the file name)");
  evaluate->add_option("--k", s.eval_k, "Cut-off K (default: eval.k)");
  evaluate->add_option("--models", s.eval_models, "Scorers to run")->delimiter(',');
  evaluate->add_option("--limit", s.eval_limit, "Replay only the first N events (in time order)");
  evaluate->add_flag("--json", s.eval_json, "Print one JSON object instead of a table");
  evaluate->add_option("--truth", s.eval_truth,
                       "Planted labels from `generate --truth`: also report similar-users and "
                       "similar-items precision@K");
  out.push_back({evaluate, [st] {
                   return RunEvaluate(st->eval_cfg, st->eval_input, st->eval_format, st->eval_k,
                                      st->eval_json, st->eval_models, st->eval_limit,
                                      st->eval_truth);
                 }});

  auto* generate =
      cli.add_subcommand("generate", "Write a synthetic stream with planted structure");
  generate->add_option("--users", s.gen.users, "Users")->capture_default_str();
  generate->add_option("--items", s.gen.items, "Items")->capture_default_str();
  generate->add_option("--events", s.gen.events, "Events")->capture_default_str();
  generate->add_option("--communities", s.gen.communities, "User communities (= item clusters)")
      ->capture_default_str();
  generate->add_option("--seed", s.gen.seed, "Random seed")->capture_default_str();
  generate->add_option("--noise", s.gen.noise, "Share of random positive events")
      ->capture_default_str();
  generate->add_option("--negative-rate", s.gen.negative_rate, "Share of dislike events")
      ->capture_default_str();
  generate->add_option("--drift", s.gen.drift_fraction, "Share of users whose taste drifts")
      ->capture_default_str();
  generate->add_option("--output,-o", s.gen_output, "Output JSONL file ('-' for stdout)")
      ->capture_default_str();
  generate->add_option("--truth", s.gen_truth, "Write the planted labels (JSON) here");
  out.push_back({generate, [st] { return RunGenerate(st->gen, st->gen_output, st->gen_truth); }});

  auto* tune = cli.add_subcommand("tune", "Random search of the learner's hyper-parameters");
  s.tune_cfg.Attach(tune);
  tune->add_option("--input", s.tune_input, "Event file")->required();
  tune->add_option("--format", s.tune_format, "jsonl or movielens");
  tune->add_option("--trials", s.tune_opts.trials, "Configurations to try (the first is the base)")
      ->capture_default_str();
  tune->add_option("--budget-events", s.tune_opts.budget_events, "Events per trial (0: all)")
      ->capture_default_str();
  tune->add_option("--seed", s.tune_opts.seed, "Seed of the search")->capture_default_str();
  out.push_back({tune, [st] {
                   return RunTune(st->tune_cfg, st->tune_input, st->tune_format, st->tune_opts);
                 }});

  auto* show = cli.add_subcommand("config", "Print the effective configuration as JSON");
  s.show_cfg.Attach(show);
  show->add_flag("--example", s.show_example, "Print the documented example configuration");
  out.push_back({show, [st] {
                   if (st->show_example) {
                     std::cout << config::ExampleConfig();
                     return 0;
                   }
                   auto opts = st->show_cfg.Load();
                   if (!opts.ok()) return Fail(opts.error());
                   std::cout << config::ToJson(opts.value(), config::Secrets::kRedact)
                                    .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
                             << "\n";
                   return 0;
                 }});
}

}  // namespace simstream::app
