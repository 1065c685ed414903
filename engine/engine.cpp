#include "engine/engine.hpp"

#include <algorithm>
#include <limits>
#include <mutex>

#include "engine/rng.hpp"

namespace simstream::engine {
namespace {
EventRules RulesOf(const config::Options& o) {
  EventRules r;
  r.type_weights = o.model.event_weights;
  r.default_weight = o.model.default_event_weight;
  r.reject_unknown_type = o.kafka.unknown_event_type == "reject";
  r.max_message_bytes = static_cast<size_t>(o.kafka.max_message_bytes);
  return r;
}
// One event in this many is ranked for the live prequential HR@k (full ranking is costly).
constexpr uint64_t kPrequentialSampleEvery = 64;
}  // namespace

Engine::Engine(const config::Options& opts)
    : opts_(opts), rules_(RulesOf(opts)), model_(opts.model) {}

ApplyOutcome Engine::Apply(std::span<const SourcedEvent> events) {
  ApplyOutcome out;
  std::unique_lock lock(mu_);
  for (const SourcedEvent& se : events) {
    if (se.partition >= 0) {
      auto it = next_offsets_.find(se.partition);
      if (it != next_offsets_.end() && se.offset < it->second) {
        ++out.duplicates;
        continue;
      }
      next_offsets_[se.partition] = se.offset + 1;
    }
    bool new_user = false, new_item = false;
    const uint32_t u = users_.Intern(se.event.user, &new_user);
    const uint32_t i = items_.Intern(se.event.item, &new_item);
    if (tracking_) {
      if (new_user) new_user_ids_.emplace_back(u, se.event.user);
      if (new_item) new_item_ids_.emplace_back(i, se.event.item);
    }
    if (se.event.weight > 0 && !new_item) SamplePrequential(u, i);
    const uint64_t key =
        se.partition >= 0
            ? EventRngKey(static_cast<uint64_t>(opts_.model.seed), se.partition, se.offset)
            : EventRngKey(static_cast<uint64_t>(opts_.model.seed), -1,
                          static_cast<int64_t>(events_applied_.load(std::memory_order_relaxed)));
    model_.Observe(Interaction{u, i, static_cast<float>(se.event.weight), se.event.ts_ms, key});
    events_applied_.fetch_add(1, std::memory_order_relaxed);
    ++out.applied;
  }
  return out;
}

void Engine::SamplePrequential(uint32_t user, uint32_t item) {
  if (++sample_counter_ % kPrequentialSampleEvery != 0) return;
  if (!model_.HasUser(user) || model_.UserEvents(user) == 0) return;
  const auto seen = model_.Seen(user);
  if (std::binary_search(seen.begin(), seen.end(), item)) return;
  sample_scores_.resize(model_.items());
  model_.Score(user, sample_scores_);
  for (uint32_t s : seen) sample_scores_[s] = -std::numeric_limits<float>::infinity();
  rolling_hr_.Add(HitAtK(RankOf(sample_scores_, item), static_cast<size_t>(opts_.eval.k)));
}

void Engine::RecordRejected(std::string_view reason, uint64_t n) {
  std::unique_lock lock(mu_);
  events_rejected_ += n;
  auto it = rejected_by_reason_.find(reason);
  if (it == rejected_by_reason_.end())
    it = rejected_by_reason_.emplace(std::string(reason), 0).first;
  it->second += n;
}

bool Engine::ForgetUser(std::string_view user) {
  std::unique_lock lock(mu_);
  const auto idx = users_.Forget(user);
  if (!idx) return false;
  model_.ForgetUser(*idx);
  if (tracking_) new_user_ids_.emplace_back(*idx, std::string());  // tombstone in the dictionary
  return true;
}

void Engine::SetChangeTracking(bool on) {
  std::unique_lock lock(mu_);
  tracking_ = on;
  model_.SetChangeTracking(on);
}

void Engine::TakeChanges(ChangeSet& out) {
  std::unique_lock lock(mu_);
  if (!tracking_) {
    tracking_ = true;
    model_.SetChangeTracking(true);
  }
  model_.TakeChanges(out);
  out.new_user_ids = std::move(new_user_ids_);
  out.new_item_ids = std::move(new_item_ids_);
  new_user_ids_.clear();
  new_item_ids_.clear();
  out.next_offsets = next_offsets_;
  out.events_applied = events_applied_.load(std::memory_order_relaxed);
}

void Engine::RestoreUserId(uint32_t index, std::string_view id) {
  std::unique_lock lock(mu_);
  users_.Restore(index, id);
}
void Engine::RestoreItemId(uint32_t index, std::string_view id) {
  std::unique_lock lock(mu_);
  items_.Restore(index, id);
}
void Engine::RestoreUser(uint32_t index, const UserState& s) {
  std::unique_lock lock(mu_);
  model_.ImportUser(index, s);
}
void Engine::RestoreItem(uint32_t index, const ItemState& s) {
  std::unique_lock lock(mu_);
  model_.ImportItem(index, s);
}
void Engine::RestoreEdge(const EdgeState& e) {
  std::unique_lock lock(mu_);
  model_.ImportEdge(e);
}
void Engine::RestoreGlobal(const GlobalState& g, const std::map<int32_t, int64_t>& next_offsets,
                           uint64_t events_applied) {
  std::unique_lock lock(mu_);
  model_.ImportGlobal(g);
  next_offsets_ = next_offsets;
  events_applied_.store(events_applied, std::memory_order_relaxed);
  // Forgotten users are tombstones in the dictionary: make the model agree.
  for (uint32_t u = 0; u < users_.size(); ++u) {
    if (users_.Id(u).empty() && model_.HasUser(u)) {
      const bool tracking = tracking_;
      model_.SetChangeTracking(false);
      model_.ForgetUser(u);
      model_.SetChangeTracking(tracking);
    }
  }
}

Recommendations Engine::Recommend(std::string_view user, size_t k,
                                  const std::vector<std::string>& exclude, bool explain) const {
  std::shared_lock lock(mu_);
  Recommendations r;
  r.user = std::string(user);
  std::vector<uint32_t> ex;
  for (const auto& e : exclude) {
    if (auto i = items_.Find(e)) ex.push_back(*i);
  }
  const auto u = users_.Find(user);
  const uint32_t idx = u ? *u : std::numeric_limits<uint32_t>::max();
  bool from_model = false;
  for (const Scored& s : model_.Recommend(idx, k, ex, &from_model)) {
    ItemScore is{items_.Id(s.id), s.score, {}};
    if (explain && from_model) {
      for (const Because& b : model_.Explain(idx, s.id, 3)) is.because.push_back(items_.Id(b.item));
    }
    r.items.push_back(std::move(is));
  }
  r.from_model = from_model;
  return r;
}

Result<std::vector<EntityScore>> Engine::SimilarUsers(std::string_view user, size_t k,
                                                      Metric metric) const {
  std::shared_lock lock(mu_);
  const auto u = users_.Find(user);
  if (!u || !model_.HasUser(*u)) return Error{"not_found", "unknown user"};
  std::vector<EntityScore> out;
  for (const Scored& s : model_.SimilarUsers(*u, k, metric))
    out.push_back({users_.Id(s.id), s.score});
  return out;
}

Result<std::vector<EntityScore>> Engine::SimilarItems(std::string_view item, size_t k,
                                                      Metric metric) const {
  std::shared_lock lock(mu_);
  const auto i = items_.Find(item);
  if (!i || *i >= model_.items()) return Error{"not_found", "unknown item"};
  std::vector<EntityScore> out;
  for (const Scored& s : model_.SimilarItems(*i, k, metric))
    out.push_back({items_.Id(s.id), s.score});
  return out;
}

Result<UserInfo> Engine::GetUser(std::string_view user, bool with_embedding) const {
  std::shared_lock lock(mu_);
  const auto u = users_.Find(user);
  if (!u || !model_.HasUser(*u)) return Error{"not_found", "unknown user"};
  UserInfo info{std::string(user), model_.UserEvents(*u), model_.UserLastTs(*u), {}};
  if (with_embedding)
    info.embedding.assign(model_.UserVector(*u), model_.UserVector(*u) + model_.dim());
  return info;
}

EngineStats Engine::Stats() const {
  std::shared_lock lock(mu_);
  EngineStats s;
  s.events_applied = events_applied_.load(std::memory_order_relaxed);
  s.events_rejected = events_rejected_;
  s.rejected_by_reason.insert(rejected_by_reason_.begin(), rejected_by_reason_.end());
  s.users = model_.users();
  s.items = model_.items();
  s.next_offsets = next_offsets_;
  s.rolling_hr = rolling_hr_.mean();
  s.prequential_samples = rolling_hr_.count();
  s.k = static_cast<size_t>(opts_.eval.k);
  s.mix = model_.MixWeights();
  s.model_bytes = model_.MemoryBytes();
  s.dim = model_.dim();
  return s;
}

std::map<int32_t, int64_t> Engine::NextOffsets() const {
  std::shared_lock lock(mu_);
  return next_offsets_;
}

}  // namespace simstream::engine
