#include "engine/engine.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <mutex>

#include "engine/rng.hpp"
#include "engine/thread_name.hpp"

namespace simstream::engine {
namespace {
// The live prequential HR@k ranks the whole catalogue for one event in
// max(kMinSampleEvery, items / kItemsPerSampleEvery): a full ranking costs ~20 ns per item, so
// this keeps it near 1 % of the learner's time whatever the catalogue size (at 20k items, one
// event in 5000; at 10k events/s the rolling window of 1000 samples spans ~8 minutes).
constexpr uint64_t kMinSampleEvery = 256;
constexpr uint64_t kItemsPerSampleEvery = 4;
}  // namespace

Engine::Engine(const config::Options& opts)
    : opts_(opts),
      model_(opts.model),
      user_ann_(LiveAnn::Table::kUsers, opts.index, static_cast<int>(opts.model.dim)),
      item_ann_(LiveAnn::Table::kItems, opts.index, static_cast<int>(opts.model.dim)),
      maintain_rng_(SplitMix64(static_cast<uint64_t>(opts.model.seed) ^ 0x1D3Bu)) {
  const int64_t interval = opts.index.maintenance_interval_ms;
  if (user_ann_.enabled() && interval > 0) {
    maintainer_ = std::thread([this, interval] {
      SetThreadName("ss-maintain");
      std::unique_lock lock(stop_mu_);
      while (!stop_cv_.wait_for(lock, std::chrono::milliseconds(interval), [&] { return stop_; })) {
        lock.unlock();
        MaintainIndexes();
        lock.lock();
      }
    });
  }
}

Engine::~Engine() {
  {
    std::lock_guard lock(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (maintainer_.joinable()) maintainer_.join();
}

void Engine::MaintainIndexes(std::chrono::steady_clock::time_point now) {
  std::lock_guard maintaining(maintain_mu_);
  const bool catching_up = CatchingUp(now);
  for (LiveAnn* ann : {&user_ann_, &item_ann_}) {
    LiveAnn::Snapshot snap;
    bool build = false;
    {
      std::shared_lock lock(mu_);
      build = ann->WantsBuild(model_);
      // A build during a catch-up takes a core from the learner, and chases rows that every
      // batch moves again; the one after it indexes the caught-up vectors.
      ann->SetBuildDeferred(build && catching_up);
      build = build && !catching_up;
      if (build) snap = ann->BeginBuild(model_);
    }
    if (build) {
      std::unique_ptr<AnnIndex> built = ann->Build(snap);  // no lock: the long part
      snap = {};
      // Catch up with the rows touched meanwhile, off the exclusive lock, until few are left
      // (or a few rounds did not get there: a stream touching rows faster than they index).
      for (int round = 0; round < kCatchUpRounds; ++round) {
        LiveAnn::Delta delta;
        {
          std::shared_lock lock(mu_);
          delta = ann->TakeTouchedSinceSnapshot(model_);
        }
        ann->ApplyDelta(*built, delta);
        if (delta.size() <= kCatchUpEnough) break;
      }
      // write_mu_ first, as every writer: waiting for mu_ while Apply's Sync holds it shared
      // would make the writer-preferring mu_ hold back every new query until that Sync ends.
      std::lock_guard writer(write_mu_);
      std::vector<uint32_t> popular;
      if (ann == &item_ann_) {  // the two-stage path starts with the swap below: its list
        std::shared_lock lock(mu_);
        popular = PopularNow();
      }
      {
        std::unique_lock lock(mu_);
        ann->FinishBuild(std::move(built));
        if (ann == &item_ann_) SetPopular(std::move(popular));
      }
      // The rows touched since the last round, as the writer (write_mu_ held), beside queries.
      std::shared_lock lock(mu_);
      ann->Sync(model_);
    }
    {
      std::shared_lock lock(mu_);
      ann->SampleRecall(model_, maintain_rng_);
    }
    if (ann == &item_ann_) {  // user rows only move with their own events, which Apply tracks
      std::shared_lock lock(mu_);
      ann->SweepDrift(model_);
    }
  }
  if (!catching_up) RefreshNeighbourLists(now);
}

void Engine::RefreshNeighbourLists(std::chrono::steady_clock::time_point now) {
  const int64_t every_ms = opts_.index.neighbour_lists_interval_ms;
  if (every_ms <= 0) return;
  if (neighbour_lists_at_ != std::chrono::steady_clock::time_point{} &&
      now - neighbour_lists_at_ < std::chrono::milliseconds(every_ms)) {
    return;
  }
  const uint64_t applied = events_applied_.load(std::memory_order_relaxed);
  if (neighbour_lists_at_ != std::chrono::steady_clock::time_point{} &&
      applied == neighbour_lists_applied_) {
    return;  // nothing learned since the last build (an idle daemon stays idle)
  }
  size_t items = 0;
  {
    std::shared_lock lock(mu_);
    if (!item_ann_.Active() || !model_.hybrid()) return;  // only the two-stage path reads them
    items = model_.items();
  }
  auto lists = std::make_shared<NeighbourLists>(kNeighbourCandidates);
  std::vector<Scored> row;
  for (uint32_t begin = 0; begin < items; begin += kNeighbourListRowsPerLock) {
    const uint32_t end =
        static_cast<uint32_t>(std::min<size_t>(items, begin + kNeighbourListRowsPerLock));
    std::shared_lock lock(mu_);
    for (uint32_t i = begin; i < end; ++i) {
      model_.StrongestNeighbours(i, kNeighbourCandidates, row);
      lists->Append(row);
    }
  }
  lists->ShrinkToFit();
  std::shared_ptr<const NeighbourLists> old;  // freed after the unlock
  {
    std::lock_guard writer(write_mu_);  // before mu_, as every writer (see MaintainIndexes)
    std::unique_lock lock(mu_);
    old = std::exchange(neighbour_lists_, std::move(lists));
    ++neighbour_lists_builds_;
  }
  neighbour_lists_at_ = now;
  neighbour_lists_applied_ = applied;
}

bool Engine::CatchingUp(std::chrono::steady_clock::time_point now) {
  const uint64_t applied = events_applied_.load(std::memory_order_relaxed);
  if (applied != progress_applied_) progress_applied_ = applied, progress_at_ = now;
  const int64_t defer_above = opts_.index.defer_builds_above_lag;
  const bool lagging = defer_above > 0 && lag_.load(std::memory_order_relaxed) > defer_above;
  if (!lagging || now - progress_at_ > kDeferStall) {
    deferring_since_ = {};
    return false;
  }
  if (deferring_since_ == std::chrono::steady_clock::time_point{}) deferring_since_ = now;
  if (now - deferring_since_ <= kDeferAtMost) return true;
  deferring_since_ = {};  // builds this tick; the next stretch of lag may defer again
  return false;
}

ApplyOutcome Engine::Apply(std::span<const SourcedEvent> events) {
  ApplyOutcome out;
  std::lock_guard writer(write_mu_);
  // The exclusive lock is taken per slice of the batch, not for the whole batch: a query waits
  // for at most one slice (~kEventsPerLock events of learning, well under a millisecond), not
  // for a Kafka batch of thousands. TakeChanges() cannot run between slices (it takes write_mu_
  // too), so a flush still sees whole batches.
  for (size_t begin = 0; begin < events.size(); begin += kEventsPerLock) {
    // Let queries woken by the unlock in first; with none waiting, keep the core.
    if (begin > 0 && mu_.readers_waiting()) std::this_thread::yield();
    std::unique_lock lock(mu_);
    const size_t end = std::min(events.size(), begin + kEventsPerLock);
    ApplySlice(events.subspan(begin, end - begin), out);
  }
  // Drift-filtered index updates once per batch: a row moved by many events of the batch is
  // checked once. Under the shared lock: queries run beside the re-inserts (each index write
  // takes the index's own lock, see LiveAnn), and write_mu_ keeps every other writer out, so
  // the rows Sync reads do not move.
  std::vector<uint32_t> popular;
  bool refresh = false;
  {
    std::shared_lock lock(mu_);
    user_ann_.Sync(model_);
    item_ann_.Sync(model_);
    const uint64_t applied = events_applied_.load(std::memory_order_relaxed);
    refresh = item_ann_.Active() &&
              (popular_items_.empty() || applied - popular_at_ >= kPopularRefreshEvents);
    if (refresh) popular = PopularNow();  // the scan beside queries
  }
  // The exclusive lock (queries read popular_items_) only for the swap, when the list is due.
  if (refresh) {
    std::unique_lock lock(mu_);
    SetPopular(std::move(popular));
  }
  return out;
}

std::vector<uint32_t> Engine::PopularNow() const {
  std::vector<uint32_t> popular;
  model_.PopularCandidates(kPopularCandidates, popular);
  return popular;
}

void Engine::SetPopular(std::vector<uint32_t> popular) {
  popular_items_ = std::move(popular);
  popular_at_ = events_applied_.load(std::memory_order_relaxed);
}

void Engine::ApplySlice(std::span<const SourcedEvent> slice, ApplyOutcome& out) {
  // The id lookups of the whole slice in three passes, so that their cache misses overlap
  // instead of coming one after another: hash every id and hint its table slot; hint the stored
  // id each slot points to (HintPairs); then intern below (the lookups find both in cache).
  HintPairs(
      users_, items_, slice.size(),
      [&](size_t k) {
        return std::pair<std::string_view, std::string_view>(slice[k].event.user,
                                                             slice[k].event.item);
      },
      slice_hashes_);
  slice_.clear();
  for (size_t k = 0; k < slice.size(); ++k) {
    const SourcedEvent& se = slice[k];
    if (se.partition >= 0) {
      auto it = next_offsets_.find(se.partition);
      if (it != next_offsets_.end() && se.offset < it->second) {
        ++out.duplicates;
        continue;
      }
      next_offsets_[se.partition] = se.offset + 1;
    }
    bool new_user = false, new_item = false;
    const uint32_t u = users_.Intern(se.event.user, slice_hashes_[k].first, &new_user);
    const uint32_t i = items_.Intern(se.event.item, slice_hashes_[k].second, &new_item);
    if (tracking_) {
      if (new_user) new_user_ids_.emplace_back(u, se.event.user);
      if (new_item) new_item_ids_.emplace_back(i, se.event.item);
    }
    slice_.push_back({&se, u, i, new_item});
  }
  // Stage s of the hints is given s events ahead (see OnlineModel::Prefetch); the loop starts
  // that many steps early so the first events get every stage, in order.
  constexpr auto kAhead = static_cast<ptrdiff_t>(OnlineModel::kPrefetchStages);
  const auto n = static_cast<ptrdiff_t>(slice_.size());
  for (ptrdiff_t k = -kAhead; k < n; ++k) {
    for (ptrdiff_t s = 1; s <= kAhead; ++s) {
      if (k + s >= 0 && k + s < n) {
        const Resolved& next = slice_[static_cast<size_t>(k + s)];
        model_.Prefetch(next.user, next.item, static_cast<int>(s));
      }
    }
    if (k < 0) continue;
    const Resolved& r = slice_[static_cast<size_t>(k)];
    const SourcedEvent& se = *r.se;
    if (se.event.weight > 0 && !r.new_item) SamplePrequential(r.user, r.item);
    const uint64_t key =
        se.partition >= 0
            ? EventRngKey(static_cast<uint64_t>(opts_.model.seed), se.partition, se.offset)
            : EventRngKey(static_cast<uint64_t>(opts_.model.seed), -1,
                          static_cast<int64_t>(events_applied_.load(std::memory_order_relaxed)));
    model_.Observe(
        Interaction{r.user, r.item, static_cast<float>(se.event.weight), se.event.ts_ms, key});
    user_ann_.Touch(r.user);
    item_ann_.Touch(r.item);
    events_applied_.fetch_add(1, std::memory_order_relaxed);
    ++out.applied;
  }
}

void Engine::SamplePrequential(uint32_t user, uint32_t item) {
  const uint64_t every = std::max<uint64_t>(kMinSampleEvery, model_.items() / kItemsPerSampleEvery);
  if (++sample_counter_ < every) return;
  sample_counter_ = 0;
  if (!model_.HasUser(user) || model_.UserEvents(user) == 0) return;
  const auto seen = model_.Seen(user);
  if (std::binary_search(seen.begin(), seen.end(), item)) return;
  sample_scores_.resize(model_.items());
  model_.Score(user, sample_scores_);
  for (uint32_t s : seen) sample_scores_[s] = -std::numeric_limits<float>::infinity();
  rolling_hr_.Add(HitAtK(RankOf(sample_scores_, item), static_cast<size_t>(opts_.eval.k)));
}

void Engine::RecordRejected(std::string_view reason, uint64_t n) {
  std::lock_guard writer(write_mu_);
  std::unique_lock lock(mu_);
  events_rejected_ += n;
  auto it = rejected_by_reason_.find(reason);
  if (it == rejected_by_reason_.end())
    it = rejected_by_reason_.emplace(std::string(reason), 0).first;
  it->second += n;
}

void Engine::AdvanceOffsets(const std::map<int32_t, int64_t>& next) {
  if (next.empty()) return;
  std::lock_guard writer(write_mu_);
  std::unique_lock lock(mu_);
  for (const auto& [p, off] : next) {
    if (p < 0) continue;
    auto [it, inserted] = next_offsets_.emplace(p, off);
    if (!inserted) it->second = std::max(it->second, off);
  }
}

bool Engine::ForgetUser(std::string_view user) {
  std::lock_guard writer(write_mu_);
  // Sync under the exclusive lock, unlike Apply(): a query that starts after the removal must
  // not find a forgotten user in the index. (A query that searched before it drops the user
  // when it re-scores: LiveAnn::Rescore keeps eligible rows only.)
  std::unique_lock lock(mu_);
  const auto idx = users_.Forget(user);
  if (!idx) return false;
  model_.ForgetUser(*idx);
  user_ann_.Touch(*idx);
  user_ann_.Sync(model_);
  if (tracking_) new_user_ids_.emplace_back(*idx, std::string());  // tombstone in the dictionary
  return true;
}

void Engine::SetChangeTracking(bool on) {
  std::lock_guard writer(write_mu_);
  std::unique_lock lock(mu_);
  tracking_ = on;
  model_.SetChangeTracking(on);
}

void Engine::TakeChanges(ChangeSet& out) {
  // Why a shared lock suffices here:
  // - every change of the model, the dictionaries, next_offsets_ and events_applied_ happens
  //   under mu_ held exclusively, which cannot be held while we hold it shared. So the rows we
  //   copy, next_offsets_ and events_applied_ are of one instant: the batch stays consistent.
  // - we do write: the change record (dirty lists, new ids, tracking_), which only writers and
  //   TakeChanges touch and no reader reads. write_mu_ makes us the only one of those.
  // - write_mu_ (not mu_) is what Apply() waits on meanwhile, so the writer-preferring mu_ sees
  //   no waiting writer and lets queries in: only the learner waits for the copy.
  // take_mu_: the edges one take hands over are read (FinishTakeChanges) before the next take.
  std::lock_guard taking(take_mu_);
  {
    std::lock_guard writer(write_mu_);
    std::shared_lock lock(mu_);
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
  model_.FinishTakeChanges(out);  // the learner goes on meanwhile
}

void Engine::RestoreUserId(uint32_t index, std::string_view id) {
  std::lock_guard writer(write_mu_);
  std::unique_lock lock(mu_);
  users_.Restore(index, id);
}
void Engine::RestoreItemId(uint32_t index, std::string_view id) {
  std::lock_guard writer(write_mu_);
  std::unique_lock lock(mu_);
  items_.Restore(index, id);
}
void Engine::RestoreUser(uint32_t index, const UserState& s) {
  std::lock_guard writer(write_mu_);
  std::unique_lock lock(mu_);
  model_.ImportUser(index, s);
  user_ann_.Reset();  // restored rows: exact until the next build
}
void Engine::RestoreItem(uint32_t index, const ItemState& s) {
  std::lock_guard writer(write_mu_);
  std::unique_lock lock(mu_);
  model_.ImportItem(index, s);
  item_ann_.Reset();
}
void Engine::RestoreEdge(const EdgeState& e) {
  std::lock_guard writer(write_mu_);
  std::unique_lock lock(mu_);
  model_.ImportEdge(e);
}
void Engine::RestoreGlobal(const GlobalState& g, const std::map<int32_t, int64_t>& next_offsets,
                           uint64_t events_applied) {
  std::lock_guard writer(write_mu_);
  std::unique_lock lock(mu_);
  model_.ImportGlobal(g);
  user_ann_.Reset();
  item_ann_.Reset();
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
  // In phases, each under its own hold of the shared lock, and the item-index search under
  // none: the learner's exclusive slices wait for the phase a query is in, not for the whole
  // query, and queries waiting behind a slice wait that much less. Every phase reads one
  // consistent state; the candidates of an earlier phase are only a set of item ids, scored,
  // filtered by the seen list and turned into ids in the last phase, at one instant.
  Recommendations r;
  r.user = std::string(user);
  std::vector<uint32_t> ex;
  uint32_t idx = std::numeric_limits<uint32_t>::max();
  bool two_stage = false;
  std::vector<float> query;
  {
    std::shared_lock lock(mu_);
    for (const auto& e : exclude) {
      if (auto i = items_.Find(e)) ex.push_back(*i);
    }
    if (const auto u = users_.Find(user)) idx = *u;  // a forgotten user's index is not reused
    two_stage = KnownUser(idx) && item_ann_.Active();
    if (two_stage) query.assign(model_.UserVector(idx), model_.UserVector(idx) + model_.dim());
  }
  std::vector<uint32_t> cand;
  if (two_stage) {
    for (const Scored& s : item_ann_.SearchVector(query.data(), kIndexCandidates, kIndexEf,
                                                  /*all_candidates=*/true)) {
      cand.push_back(s.id);
    }
    two_stage = !cand.empty();  // empty: the index went away meanwhile (restored rows)
  }
  if (two_stage) {
    std::shared_lock lock(mu_);
    two_stage = KnownUser(idx);
    if (two_stage) AddTwoStageCandidates(idx, cand);
  }
  std::shared_lock lock(mu_);
  bool from_model = KnownUser(idx);
  std::vector<Scored> top = two_stage && from_model ? RecommendTwoStage(idx, k, ex, std::move(cand))
                                                    : std::vector<Scored>{};
  if (top.size() < std::min(k, model_.items())) top = model_.Recommend(idx, k, ex, &from_model);
  for (const Scored& s : top) {
    ItemScore is{items_.Id(s.id), s.score, {}};
    if (explain && from_model) {
      for (const Because& b : model_.Explain(idx, s.id, 3)) is.because.push_back(items_.Id(b.item));
    }
    r.items.push_back(std::move(is));
  }
  r.from_model = from_model;
  return r;
}

bool Engine::KnownUser(uint32_t user) const {
  return model_.HasUser(user) && model_.UserEvents(user) > 0;
}

void Engine::AddTwoStageCandidates(uint32_t user, std::vector<uint32_t>& cand) const {
  model_.NeighbourCandidates(user, kNeighbourRows, kNeighbourCandidates, cand,
                             neighbour_lists_.get());
  if (popular_items_.empty()) {  // the index became active after the last Apply()
    model_.PopularCandidates(kPopularCandidates, cand);
  } else {
    cand.insert(cand.end(), popular_items_.begin(), popular_items_.end());
  }
}

std::vector<Scored> Engine::RecommendTwoStage(uint32_t user, size_t k,
                                              std::span<const uint32_t> exclude,
                                              std::vector<uint32_t> cand) const {
  // Candidates (gathered by Recommend): the items nearest the user's vector in the item index
  // (cosine; re-scored here with the exact dot product and bias), the items with the strongest
  // co-occurrence evidence, and the most popular items. Scoring only these touches a few
  // hundred item rows instead of the whole table. The exact scan is the oracle:
  // tests/unit/two_stage_test.cpp compares.
  std::sort(cand.begin(), cand.end());
  cand.erase(std::unique(cand.begin(), cand.end()), cand.end());
  const auto seen = model_.Seen(user);
  std::erase_if(cand, [&](uint32_t j) {
    return j >= model_.items() || std::binary_search(seen.begin(), seen.end(), j) ||
           std::find(exclude.begin(), exclude.end(), j) != exclude.end();
  });
  std::vector<float> scores(cand.size());
  model_.ScoreCandidates(user, cand, scores);
  std::vector<Scored> scored(cand.size());
  for (size_t n = 0; n < cand.size(); ++n) scored[n] = {cand[n], scores[n]};
  return TopK(std::move(scored), k);
}

Result<std::vector<EntityScore>> Engine::SimilarUsers(std::string_view user, size_t k,
                                                      Metric metric) const {
  return Similar(user_ann_, users_, user, k, metric);
}

Result<std::vector<EntityScore>> Engine::SimilarItems(std::string_view item, size_t k,
                                                      Metric metric) const {
  return Similar(item_ann_, items_, item, k, metric);
}

Result<std::vector<EntityScore>> Engine::Similar(const LiveAnn& ann, const IdInterner& ids,
                                                 std::string_view id, size_t k,
                                                 Metric metric) const {
  const bool users = &ann == &user_ann_;
  const auto known = [&](uint32_t x) { return users ? model_.HasUser(x) : x < model_.items(); };
  const auto answer = [&](const std::vector<Scored>& top) {
    std::vector<EntityScore> out;
    for (const Scored& s : top) out.push_back({ids.Id(s.id), s.score});
    return out;
  };
  const auto exact = [&](uint32_t x) {  // caller holds mu_
    return answer(users ? model_.SimilarUsers(x, k, metric) : model_.SimilarItems(x, k, metric));
  };
  // Cosine goes through the index when there is one (searched with no engine lock held, as in
  // Recommend); other metrics are exact.
  uint32_t x = 0;
  std::vector<float> query;
  {
    std::shared_lock lock(mu_);
    const auto found = ids.Find(id);
    if (!found || !known(*found)) return NotFound(users);
    x = *found;
    if (metric != Metric::kCosine || !ann.Active()) return exact(x);
    query = ann.QueryRow(model_, x);
  }
  std::vector<Scored> cand = ann.SearchCandidates(query.data(), k, x);
  std::shared_lock lock(mu_);
  // Forgotten meanwhile? A forgotten user keeps its slot in the model, not in the dictionary.
  if (const auto again = ids.Find(id); !again || *again != x || !known(x)) return NotFound(users);
  if (cand.empty() && !ann.Active()) return exact(x);  // the index went away (restored rows)
  return answer(ann.Rescore(model_, x, std::move(cand), k));
}

Error Engine::NotFound(bool user) {
  return user ? Error{"not_found", "unknown user"} : Error{"not_found", "unknown item"};
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
  if (neighbour_lists_) {
    s.neighbour_lists_items = neighbour_lists_->items();
    s.neighbour_lists_bytes = neighbour_lists_->MemoryBytes();
    s.model_bytes += s.neighbour_lists_bytes;
  }
  s.neighbour_lists_builds = neighbour_lists_builds_;
  s.dim = model_.dim();
  s.user_index = user_ann_.Stats();
  s.item_index = item_ann_.Stats();
  return s;
}

std::map<int32_t, int64_t> Engine::NextOffsets() const {
  std::shared_lock lock(mu_);
  return next_offsets_;
}

}  // namespace simstream::engine
