#include "engine/live_ann.hpp"

#include <algorithm>
#include <chrono>
#include <shared_mutex>
#include <thread>

namespace simstream::engine {
namespace {
constexpr size_t kRecallK = 10;
// Samples needed before a low rolling recall may trigger a rebuild.
constexpr size_t kMinRecallSamples = 50;
// Tombstones (removed rows) beyond this share of the index trigger a rebuild.
constexpr double kMaxDeletedShare = 0.25;
// Longest hold of the index's write lock by Sync() before it lets waiting queries in.
constexpr auto kMaxIndexWriteHold = std::chrono::microseconds(250);

AnnParams ParamsOf(const config::IndexOptions& o) {
  AnnParams p;
  p.m = static_cast<size_t>(o.m);
  p.ef_construction = static_cast<size_t>(o.ef_construction);
  p.ef_reinsert = static_cast<size_t>(o.ef_reinsert);
  p.ef_search = static_cast<size_t>(o.ef_search);
  p.drift_threshold = static_cast<float>(o.drift_threshold);
  return p;
}
}  // namespace

LiveAnn::LiveAnn(Table table, const config::IndexOptions& opts, int dim)
    : table_(table),
      kind_(opts.kind),
      min_size_(kind_ == "hnsw" ? 0 : static_cast<size_t>(opts.hnsw_min_size)),
      rebuild_below_recall_(opts.rebuild_below_recall),
      max_reinserts_(static_cast<size_t>(opts.max_reinserts_per_batch)),
      dim_(dim),
      params_(ParamsOf(opts)) {}

bool LiveAnn::Apply(const OnlineModel& model, AnnIndex& index, uint32_t id) {
  if (!Eligible(model, id)) {
    index.Remove(id);
    return false;
  }
  const bool present = index.Contains(id);
  return index.Update(id, Row(model, id)) && present;
}

void LiveAnn::Sync(const OnlineModel& model) {
  std::lock_guard syncing(sync_mu_);
  if (!tracking_) return;
  // Index writes hold index_mu_ for at most kMaxIndexWriteHold at a time (plus one re-insert),
  // so a query waits about that long at worst, never for the whole batch, and the handful of
  // cheap drift checks between two re-inserts do not each hand the lock over.
  std::unique_lock writing(index_mu_, std::defer_lock);
  auto held_since = std::chrono::steady_clock::time_point{};
  const auto hold = [&] {
    const auto now = std::chrono::steady_clock::now();
    if (writing.owns_lock() && now - held_since > kMaxIndexWriteHold) {
      writing.unlock();
      // Let the queries woken by the unlock in first; with none waiting, keep the core.
      if (index_mu_.readers_waiting()) std::this_thread::yield();
    }
    if (!writing.owns_lock()) {
      writing.lock();
      held_since = std::chrono::steady_clock::now();
    }
  };
  const auto apply = [&](uint32_t id) {
    hold();
    return Apply(model, *index_, id);
  };
  {
    std::lock_guard lock(mu_);
    for (uint32_t id : drifted_) Touch(id);
    drifted_.clear();
  }
  const bool capped = max_reinserts_ > 0;
  size_t budget = max_reinserts_;
  // The oldest deferred rows first (a row also touched in this batch is left to the loop below).
  while (capped && budget > 0 && !deferred_.empty()) {
    const uint32_t id = deferred_.front();
    deferred_.pop_front();
    touched_flag_[id] &= static_cast<uint8_t>(~kDeferred);
    if (touched_flag_[id] & kTouched) continue;
    if (index_ && apply(id)) --budget;
  }
  for (uint32_t id : touched_) {
    touched_flag_[id] &= static_cast<uint8_t>(~kTouched);
    if (building_) since_snapshot_.push_back(id);
    if (!index_) continue;
    if (touched_flag_[id] & kDeferred) {  // still queued: only a removal cannot wait
      if (!Eligible(model, id)) {
        hold();
        index_->Remove(id);
      }
      continue;
    }
    if (capped && budget == 0 && Eligible(model, id) && (hold(), Drifted(model, id))) {
      touched_flag_[id] |= kDeferred;
      deferred_.push_back(id);
      continue;
    }
    if (apply(id) && capped) --budget;
  }
  touched_.clear();
  deferred_count_.store(deferred_.size(), std::memory_order_relaxed);
}

bool LiveAnn::Drifted(const OnlineModel& model, uint32_t id) const {
  return index_->Contains(id) && index_->Drift(id, Row(model, id)) > params_.drift_threshold;
}

std::vector<Scored> LiveAnn::Search(const OnlineModel& model, uint32_t id, size_t k) const {
  return Rescore(model, id, SearchCandidates(Row(model, id), k, id), k);
}

std::vector<Scored> LiveAnn::SearchCandidates(const float* query, size_t k,
                                              uint32_t exclude) const {
  const uint32_t excluded[] = {exclude};
  return SearchVector(query, k, params_.ef_search, /*all_candidates=*/true, excluded);
}

std::vector<Scored> LiveAnn::Rescore(const OnlineModel& model, uint32_t id,
                                     std::vector<Scored> cand, size_t k) const {
  const float* query = Row(model, id);
  std::erase_if(cand, [&](const Scored& s) { return !Eligible(model, s.id); });
  return RescoreByCosine(std::move(cand), query, dim_, k,
                         [&](uint32_t x) { return Row(model, x); });
}

std::vector<Scored> LiveAnn::SearchVector(const float* query, size_t k, size_t ef,
                                          bool all_candidates,
                                          std::span<const uint32_t> exclude) const {
  std::shared_lock reading(index_mu_);  // the pointer too: no engine lock is held
  if (!index_) return {};
  return index_->Search(query, k, ef, exclude, all_candidates);
}

bool LiveAnn::WantsBuild(const OnlineModel& model) const {
  if (!enabled() || building_) return false;
  if (!index_) return Rows(model) >= min_size_;
  {
    std::lock_guard lock(mu_);
    if (recall_.count() >= kMinRecallSamples && recall_.mean() < rebuild_below_recall_) return true;
  }
  std::shared_lock reading(index_mu_);
  const double total = static_cast<double>(index_->size() + index_->deleted());
  return total > 0 && static_cast<double>(index_->deleted()) > kMaxDeletedShare * total;
}

LiveAnn::Snapshot LiveAnn::BeginBuild(const OnlineModel& model) {
  std::lock_guard syncing(sync_mu_);  // tracking_, building_, since_snapshot_ are Sync()'s too
  Snapshot snap;
  const size_t n = Rows(model);
  snap.ids.reserve(n);
  snap.rows.reserve(n * static_cast<size_t>(dim_));
  for (uint32_t id = 0; id < n; ++id) {
    if (!Eligible(model, id)) continue;
    snap.ids.push_back(id);
    const float* row = Row(model, id);
    snap.rows.insert(snap.rows.end(), row, row + dim_);
  }
  // From here on, Sync records every touched row for the catch-up in FinishBuild.
  tracking_ = true;
  building_ = true;
  since_snapshot_.clear();
  return snap;
}

std::unique_ptr<AnnIndex> LiveAnn::Build(const Snapshot& snap) const {
  auto index = MakeHnswIndex(dim_, params_, snap.ids.size() + 1024);
  for (size_t i = 0; i < snap.ids.size(); ++i) {
    index->Upsert(snap.ids[i], &snap.rows[i * static_cast<size_t>(dim_)]);
  }
  return index;
}

LiveAnn::Delta LiveAnn::TakeTouchedSinceSnapshot(const OnlineModel& model) {
  std::vector<uint32_t> ids;
  {
    std::lock_guard syncing(sync_mu_);
    ids.swap(since_snapshot_);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  Delta d;
  d.rows.ids.reserve(ids.size());
  d.rows.rows.reserve(ids.size() * static_cast<size_t>(dim_));
  for (uint32_t id : ids) {
    if (!Eligible(model, id)) {
      d.removed.push_back(id);
      continue;
    }
    d.rows.ids.push_back(id);
    const float* row = Row(model, id);
    d.rows.rows.insert(d.rows.rows.end(), row, row + dim_);
  }
  return d;
}

void LiveAnn::ApplyDelta(AnnIndex& built, const Delta& delta) const {
  for (uint32_t id : delta.removed) built.Remove(id);
  for (size_t i = 0; i < delta.rows.ids.size(); ++i) {
    built.Update(delta.rows.ids[i], &delta.rows.rows[i * static_cast<size_t>(dim_)]);
  }
}

void LiveAnn::FinishBuild(std::unique_ptr<AnnIndex> built) {
  if (discard_build_) {  // the snapshot predates a Reset(): the next maintenance rebuilds
    discard_build_ = false;
    building_ = false;
    since_snapshot_.clear();
    return;
  }
  // Rows touched since the last catch-up round (including rows created since the snapshot) are
  // touched again, for the next Sync to apply to the new index (with the rows still pending in
  // touched_), beside queries: not here, under the exclusive lock.
  for (uint32_t id : since_snapshot_) Touch(id);
  since_snapshot_.clear();
  since_snapshot_.shrink_to_fit();
  building_ = false;
  {
    std::unique_lock writing(index_mu_);  // SearchVector reads the pointer under it alone
    index_.swap(built);
  }
  built.reset();  // the old index is freed outside index_mu_
  std::lock_guard lock(mu_);
  ++builds_;
  if (recall_.count() > 0) last_recall_ = recall_.mean();
  recall_ = RollingMean(200);
}

void LiveAnn::SampleRecall(const OnlineModel& model, Rng& rng) {
  if (!index_) return;
  const size_t n = Rows(model);
  if (n < 2) return;
  for (int attempt = 0; attempt < 16; ++attempt) {
    const uint32_t id = rng.Below(static_cast<uint32_t>(n));
    if (!Eligible(model, id)) continue;
    const std::vector<Scored> approx = Search(model, id, kRecallK);
    const std::vector<Scored> exact = table_ == Table::kUsers
                                          ? model.SimilarUsers(id, kRecallK, Metric::kCosine)
                                          : model.SimilarItems(id, kRecallK, Metric::kCosine);
    std::lock_guard lock(mu_);
    recall_.Add(RecallOf(approx, exact));
    ++recall_samples_;
    return;
  }
}

void LiveAnn::SweepDrift(const OnlineModel& model) {
  if (!index_) return;
  std::vector<uint32_t> found;
  const size_t n = Rows(model);
  constexpr uint32_t kRowsPerLock = 1024;  // a Sync() waiting to write waits for one chunk
  for (uint32_t begin = 0; begin < n; begin += kRowsPerLock) {
    std::shared_lock reading(index_mu_);
    const uint32_t end = static_cast<uint32_t>(std::min<size_t>(n, size_t{begin} + kRowsPerLock));
    for (uint32_t id = begin; id < end; ++id) {
      if (Eligible(model, id) && index_->Drift(id, Row(model, id)) > params_.drift_threshold)
        found.push_back(id);
    }
  }
  std::lock_guard lock(mu_);
  drifted_.insert(drifted_.end(), found.begin(), found.end());
}

AnnStats LiveAnn::Stats() const {
  AnnStats s;
  s.mode = index_ ? "hnsw" : "exact";
  s.building = building_;
  s.build_deferred = build_deferred_.load(std::memory_order_relaxed);
  if (index_) {
    std::shared_lock reading(index_mu_);
    s.indexed = index_->size();
    s.deleted = index_->deleted();
    s.reinserts = index_->reinserts();
    s.deferred = deferred_count_.load(std::memory_order_relaxed);
  }
  std::lock_guard lock(mu_);
  s.recall_window_samples = recall_.count();
  s.recall_at_10 = recall_.count() > 0 ? recall_.mean() : last_recall_;
  s.recall_samples = recall_samples_;
  s.builds = builds_;
  return s;
}

}  // namespace simstream::engine
