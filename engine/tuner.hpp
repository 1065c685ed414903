// Random search over the learner's hyper-parameters with prequential HR@K as the objective.
#pragma once

#include <functional>
#include <vector>

#include "config/options.hpp"
#include "engine/event.hpp"

namespace simstream::engine {

struct TuneOptions {
  size_t trials = 20;
  size_t budget_events = 0;  // events replayed per trial, 0 = all
  size_t k = 10;
  uint64_t seed = 7;
};

struct TuneTrial {
  config::ModelOptions model;
  double hr = 0, ndcg = 0;
};

struct TuneResult {
  std::vector<TuneTrial> trials;  // in the order run; trials[0] is the given base configuration
  size_t best = 0;
};

// Draws one configuration around `base` from the search space (deterministic for `rng_seed`).
config::ModelOptions SampleModelOptions(const config::ModelOptions& base, uint64_t rng_seed);

// Runs the base configuration and `trials - 1` sampled ones on a prefix of `events`.
// `progress(done_trials, total_trials)` is called after each trial.
TuneResult RandomSearch(const std::vector<Event>& events, const config::ModelOptions& base,
                        const TuneOptions& opts,
                        const std::function<void(size_t, size_t)>& progress = {});

}  // namespace simstream::engine
