#include "engine/tuner.hpp"

#include <cmath>

#include "engine/evaluation.hpp"
#include "engine/rng.hpp"

namespace simstream::engine {
namespace {
double LogUniform(Rng& rng, double lo, double hi) {
  return std::exp(std::log(lo) + rng.Uniform() * (std::log(hi) - std::log(lo)));
}
template <typename T, size_t N>
T Pick(Rng& rng, const T (&choices)[N]) {
  return choices[rng.Below(static_cast<uint32_t>(N))];
}
}  // namespace

config::ModelOptions SampleModelOptions(const config::ModelOptions& base, uint64_t rng_seed) {
  Rng rng(SplitMix64(rng_seed));
  config::ModelOptions m = base;
  static const char* const kLosses[] = {"bpr", "softmax", "triplet", "contrastive"};
  m.loss = Pick(rng, kLosses);
  m.learning_rate = LogUniform(rng, 0.005, 0.3);
  m.l2 = LogUniform(rng, 1e-6, 1e-2);
  static const int64_t kNegatives[] = {1, 2, 4, 8, 16};
  m.negatives = Pick(rng, kNegatives);
  m.popular_negative_share = rng.Uniform();
  m.margin = LogUniform(rng, 0.05, 2.0);
  m.temperature = LogUniform(rng, 0.1, 2.0);
  m.init_scale = LogUniform(rng, 0.01, 0.3);
  m.history_half_life_events = LogUniform(rng, 2, 200);
  static const int64_t kWindows[] = {2, 5, 10, 20, 50};
  m.cooccurrence_window = Pick(rng, kWindows);
  m.neighbourhood_items = Pick(rng, kWindows);
  m.mix_learning_rate = LogUniform(rng, 0.001, 0.1);
  return m;
}

TuneResult RandomSearch(const std::vector<Event>& events, const config::ModelOptions& base,
                        const TuneOptions& opts,
                        const std::function<void(size_t, size_t)>& progress) {
  TuneResult result;
  const size_t n =
      opts.budget_events > 0 ? std::min(opts.budget_events, events.size()) : events.size();
  const size_t trials = std::max<size_t>(opts.trials, 1);
  for (size_t t = 0; t < trials; ++t) {
    TuneTrial trial;
    trial.model = t == 0 ? base : SampleModelOptions(base, opts.seed * 1000003 + t);
    OnlineModel model(trial.model);
    PrequentialEvaluator eval(opts.k, {&model}, static_cast<uint64_t>(trial.model.seed));
    for (size_t i = 0; i < n; ++i) eval.Process(events[i], static_cast<int64_t>(i));
    const EvalReport r = eval.Report();
    trial.hr = r.models[0].hr;
    trial.ndcg = r.models[0].ndcg;
    result.trials.push_back(trial);
    if (trial.hr > result.trials[result.best].hr) result.best = t;
    if (progress) progress(t + 1, trials);
  }
  return result;
}

}  // namespace simstream::engine
