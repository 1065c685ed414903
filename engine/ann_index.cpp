#include "engine/ann_index.hpp"

// hnswlib 0.6.2 defines non-inline functions in hnswlib.h (cpuid, AVXCapable, ...): it may be
// included by exactly one translation unit of a program, this one.
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "engine/ann_distance.hpp"
#include "engine/similarity.hpp"

namespace simstream::engine {
namespace {

bool Excluded(std::span<const uint32_t> exclude, uint32_t id) {
  return std::find(exclude.begin(), exclude.end(), id) != exclude.end();
}

// Cosine distance between `vec` (norm computed here) and a row of known norm.
float CosineDistance(const float* vec, const float* row, float row_norm, int dim) {
  const float n = Norm(vec, dim);
  if (n == 0.0f || row_norm == 0.0f) return (n == 0.0f && row_norm == 0.0f) ? 0.0f : 1.0f;
  return std::clamp(1.0f - Dot(vec, row, dim) / (n * row_norm), 0.0f, 2.0f);
}

// Inner-product distance 1 - <a, b> over unit vectors (so cosine distance), with the kernel
// chosen for this CPU at run time (engine/ann_distance.hpp) instead of hnswlib's, which is
// fixed at compile time by -march (SSE only in the portable x86-64-v2 build).
class UnitIpSpace final : public hnswlib::SpaceInterface<float> {
 public:
  explicit UnitIpSpace(size_t dim) : dim_(dim), dot_(BestDotKernel()) {}
  size_t get_data_size() override { return dim_ * sizeof(float); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return &Distance; }
  void* get_dist_func_param() override { return this; }

 private:
  static float Distance(const void* a, const void* b, const void* self) {
    const auto* space = static_cast<const UnitIpSpace*>(self);
    return 1.0f -
           space->dot_(static_cast<const float*>(a), static_cast<const float*>(b), space->dim_);
  }

  size_t dim_;
  DotKernelFn dot_;
};

class ExactIndex final : public AnnIndex {
 public:
  ExactIndex(int dim, const AnnParams& params) : AnnIndex(dim, params) {}
  AnnKind kind() const override { return AnnKind::kExact; }

  void Upsert(uint32_t id, const float* vec) override {
    if (id >= live_.size()) {
      live_.resize(size_t{id} + 1, 0);
      norms_.resize(size_t{id} + 1, 0.0f);
      rows_.resize((size_t{id} + 1) * dim(), 0.0f);
    }
    if (live_[id]) ++reinserts_;
    std::copy_n(vec, dim(), &rows_[size_t{id} * dim()]);
    norms_[id] = Norm(vec, dim());
    if (!live_[id]) ++size_;
    live_[id] = 1;
  }
  void Remove(uint32_t id) override {
    if (!Contains(id)) return;
    live_[id] = 0;
    --size_;
  }
  bool Contains(uint32_t id) const override { return id < live_.size() && live_[id] != 0; }
  float Drift(uint32_t id, const float* vec) const override {
    if (!Contains(id)) return 2.0f;
    return CosineDistance(vec, &rows_[size_t{id} * dim()], norms_[id], dim());
  }
  size_t size() const override { return size_; }
  size_t deleted() const override { return 0; }

  std::vector<Scored> Search(const float* query, size_t k, size_t /*ef*/,
                             std::span<const uint32_t> exclude, bool) const override {
    if (k == 0 || size_ == 0) return {};
    std::vector<float> scores(live_.size());
    ScoreAll(Metric::kCosine, query, rows_.data(), live_.size(), dim(), scores.data(),
             norms_.data());
    for (size_t i = 0; i < live_.size(); ++i) {
      if (!live_[i]) scores[i] = -std::numeric_limits<float>::infinity();
    }
    for (uint32_t x : exclude) {
      if (x < scores.size()) scores[x] = -std::numeric_limits<float>::infinity();
    }
    return TopK(scores, k);
  }
  size_t MemoryBytes() const override {
    return rows_.capacity() * 4 + norms_.capacity() * 4 + live_.capacity();
  }

 private:
  std::vector<float> rows_, norms_;
  std::vector<uint8_t> live_;
  size_t size_ = 0;
};

class HnswIndex final : public AnnIndex {
 public:
  HnswIndex(int dim, const AnnParams& params, size_t capacity)
      : AnnIndex(dim, params),
        space_(static_cast<size_t>(dim)),
        hnsw_(&space_, std::max<size_t>(capacity, 16), std::max<size_t>(params.m, 2),
              std::max<size_t>(params.ef_construction, 1), params.seed),
        normalised_(static_cast<size_t>(dim)) {
    // Every search passes its own candidate-list size as searchKnn's k (hnswlib uses
    // max(ef_, k)), so ef is a per-call parameter and concurrent searches never write ef_.
    hnsw_.setEf(1);
  }
  AnnKind kind() const override { return AnnKind::kHnsw; }

  void Upsert(uint32_t id, const float* vec) override {
    Normalise(vec, normalised_.data());
    const auto it = hnsw_.label_lookup_.find(id);
    if (it != hnsw_.label_lookup_.end()) {
      if (hnsw_.isMarkedDeleted(it->second)) {
        --deleted_;
        ++size_;
      } else {
        ++reinserts_;
      }
    } else {
      if (hnsw_.cur_element_count >= hnsw_.max_elements_)
        hnsw_.resizeIndex(hnsw_.max_elements_ * 2);
      ++size_;
    }
    if (it != hnsw_.label_lookup_.end() && !hnsw_.isMarkedDeleted(it->second)) {
      // A live label moves in place: its links are repaired, and its old neighbours' links
      // re-selected with update_neighbour_probability (addPoint would always do it).
      // With its own candidate list (ef_reinsert): hnswlib's repair search reads
      // ef_construction_, which no query reads (searchKnn uses ef_) and no other writer runs
      // beside (LiveAnn holds the index's write lock; a build's catch-up writes to the index
      // it builds, with the same short list for the rows it moves). Restored on every exit.
      struct RestoreEf {
        size_t& ef;
        size_t saved;
        ~RestoreEf() { ef = saved; }
      } restore{hnsw_.ef_construction_, hnsw_.ef_construction_};
      if (params().ef_reinsert > 0)
        hnsw_.ef_construction_ = std::max(params().ef_reinsert, hnsw_.M_);
      hnsw_.updatePoint(normalised_.data(), it->second, params().update_neighbour_probability);
      return;
    }
    // A new label is inserted; a deleted one is un-deleted and updated.
    hnsw_.addPoint(normalised_.data(), id);
  }
  void Remove(uint32_t id) override {
    const auto it = hnsw_.label_lookup_.find(id);
    if (it == hnsw_.label_lookup_.end() || hnsw_.isMarkedDeleted(it->second)) return;
    hnsw_.markDelete(id);
    --size_;
    ++deleted_;
  }
  bool Contains(uint32_t id) const override {
    const auto it = hnsw_.label_lookup_.find(id);
    return it != hnsw_.label_lookup_.end() && !hnsw_.isMarkedDeleted(it->second);
  }
  float Drift(uint32_t id, const float* vec) const override {
    const auto it = hnsw_.label_lookup_.find(id);
    if (it == hnsw_.label_lookup_.end() || hnsw_.isMarkedDeleted(it->second)) return 2.0f;
    const auto* row = reinterpret_cast<const float*>(hnsw_.getDataByInternalId(it->second));
    // Stored rows are unit vectors, or zero for a zero input.
    return CosineDistance(vec, row, Norm(row, dim()), dim());
  }
  size_t size() const override { return size_; }
  size_t deleted() const override { return deleted_; }

  std::vector<Scored> Search(const float* query, size_t k, size_t ef,
                             std::span<const uint32_t> exclude,
                             bool all_candidates) const override {
    if (k == 0 || size_ == 0) return {};
    std::vector<float> q(static_cast<size_t>(dim()));
    Normalise(query, q.data());
    // Excluded ids may take places among the results: ask for that many more.
    const size_t want = k + exclude.size();
    const size_t fetch = std::max(want, ef == 0 ? params().ef_search : ef);
    auto heap = hnsw_.searchKnn(q.data(), fetch);
    std::vector<Scored> out;
    out.reserve(heap.size());
    while (!heap.empty()) {
      const auto [dist, label] = heap.top();
      heap.pop();
      const auto id = static_cast<uint32_t>(label);
      if (!Excluded(exclude, id)) out.push_back({id, 1.0f - dist});
    }
    return TopK(std::move(out), all_candidates ? fetch : k);
  }
  size_t MemoryBytes() const override {
    size_t bytes = hnsw_.max_elements_ * hnsw_.size_data_per_element_;  // level 0 + data
    bytes += hnsw_.max_elements_ * (sizeof(void*) + sizeof(int) + sizeof(std::mutex));
    for (size_t i = 0; i < hnsw_.cur_element_count; ++i) {
      if (hnsw_.element_levels_[i] > 0)
        bytes += hnsw_.size_links_per_element_ * static_cast<size_t>(hnsw_.element_levels_[i]);
    }
    // label_lookup_: an unordered_map node (label, id, next) plus a bucket per element.
    bytes += hnsw_.label_lookup_.size() * (sizeof(void*) * 2 + 16);
    return bytes;
  }

 private:
  void Normalise(const float* in, float* out) const {
    const float n = Norm(in, dim());
    const float inv = n > 0.0f ? 1.0f / n : 0.0f;
    for (int j = 0; j < dim(); ++j) out[j] = in[j] * inv;
  }

  UnitIpSpace space_;
  hnswlib::HierarchicalNSW<float> hnsw_;
  std::vector<float> normalised_;  // writer scratch
  size_t size_ = 0;
  size_t deleted_ = 0;
};

}  // namespace

std::string_view AnnKindName(AnnKind k) {
  return k == AnnKind::kExact ? "exact" : "hnsw";
}

bool AnnIndex::Update(uint32_t id, const float* vec) {
  if (Contains(id) && Drift(id, vec) <= params_.drift_threshold) return false;
  Upsert(id, vec);
  return true;
}

std::unique_ptr<AnnIndex> MakeExactIndex(int dim, const AnnParams& params) {
  return std::make_unique<ExactIndex>(dim, params);
}
std::unique_ptr<AnnIndex> MakeHnswIndex(int dim, const AnnParams& params, size_t capacity) {
  return std::make_unique<HnswIndex>(dim, params, capacity);
}
std::unique_ptr<AnnIndex> MakeAnnIndex(AnnKind kind, int dim, const AnnParams& params,
                                       size_t capacity) {
  if (kind == AnnKind::kExact) return MakeExactIndex(dim, params);
  return MakeHnswIndex(dim, params, capacity);
}

double RecallOf(std::span<const Scored> approx, std::span<const Scored> exact) {
  if (exact.empty()) return 1.0;
  size_t hit = 0;
  for (const Scored& e : exact) {
    for (const Scored& a : approx) {
      if (a.id == e.id) {
        ++hit;
        break;
      }
    }
  }
  return static_cast<double>(hit) / static_cast<double>(exact.size());
}

}  // namespace simstream::engine
