#include "engine/evaluation.hpp"

#include <algorithm>
#include <limits>

#include "engine/metrics.hpp"
#include "engine/rng.hpp"
#include "engine/topk.hpp"

namespace simstream::engine {

PrequentialEvaluator::PrequentialEvaluator(size_t k, std::vector<StreamingScorer*> scorers,
                                           uint64_t seed)
    : k_(k), seed_(seed), scorers_(std::move(scorers)), per_(scorers_.size()) {}

void PrequentialEvaluator::Process(const Event& e, int64_t offset) {
  using Clock = std::chrono::steady_clock;
  ++events_;
  bool new_user = false, new_item = false;
  const uint32_t u = users_.Intern(e.user, &new_user);
  const uint32_t i = items_.Intern(e.item, &new_item);
  if (seen_.size() <= u) seen_.resize(u + 1);
  auto& seen = seen_[u];
  const bool already_seen = std::binary_search(seen.begin(), seen.end(), i);
  const bool eligible = e.weight > 0 && !new_item && !already_seen;
  const size_t catalogue = new_item ? items_.size() - 1 : items_.size();
  if (eligible) ++evaluated_;
  const Interaction x{u, i, static_cast<float>(e.weight), e.ts_ms,
                      EventRngKey(seed_, /*partition=*/0, offset)};
  for (size_t m = 0; m < scorers_.size(); ++m) {
    PerModel& pm = per_[m];
    const auto start = Clock::now();
    if (eligible) {
      scores_.resize(catalogue);
      scorers_[m]->ScoreItems(u, scores_);
      for (uint32_t s : seen) scores_[s] = -std::numeric_limits<float>::infinity();
      const size_t rank = RankOf(scores_, i);
      pm.hr += HitAtK(rank, k_);
      pm.ndcg += NdcgAtK(rank, k_);
      pm.mrr += ReciprocalRank(rank);
      if (pm.in_top_k.size() < catalogue) pm.in_top_k.resize(catalogue, false);
      for (const Scored& s : TopK(scores_, k_)) pm.in_top_k[s.id] = true;
    }
    scorers_[m]->Observe(x);
    pm.time += Clock::now() - start;
  }
  auto it = std::lower_bound(seen.begin(), seen.end(), i);
  if (it == seen.end() || *it != i) seen.insert(it, i);
}

EvalReport PrequentialEvaluator::Report() const {
  EvalReport r;
  r.events = events_;
  r.evaluated = evaluated_;
  r.k = k_;
  const double n = evaluated_ > 0 ? static_cast<double>(evaluated_) : 1.0;
  for (size_t m = 0; m < scorers_.size(); ++m) {
    const PerModel& pm = per_[m];
    ModelScore s;
    s.name = std::string(scorers_[m]->name());
    s.hr = pm.hr / n;
    s.ndcg = pm.ndcg / n;
    s.mrr = pm.mrr / n;
    const size_t covered =
        static_cast<size_t>(std::count(pm.in_top_k.begin(), pm.in_top_k.end(), true));
    s.coverage =
        items_.size() > 0 ? static_cast<double>(covered) / static_cast<double>(items_.size()) : 0;
    const double secs = std::chrono::duration<double>(pm.time).count();
    s.events_per_s = secs > 0 ? static_cast<double>(events_) / secs : 0;
    r.models.push_back(std::move(s));
  }
  return r;
}

}  // namespace simstream::engine
