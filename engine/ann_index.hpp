// Nearest-neighbour indexes over embeddings that keep moving: exact (the oracle) and HNSW.
//
// Both rank by COSINE similarity (the default metric of similar users / similar items); the
// engine answers the other metrics with its exact scan. Ids are dense uint32 indices (the
// engine's user or item rows); an id is either live (indexed, searchable) or absent.
//
// Moving embeddings: Update(id, vec) re-inserts a vector only when it drifted past
// `drift_threshold` (cosine distance between `vec` and the vector as last indexed), so a hot
// user updated thousands of times costs one O(d) check per call and a re-insert only now and
// then. Callers re-score the returned candidates with the current vectors (see LiveAnn in
// engine/live_ann.hpp), so drift below the threshold only risks a neighbour being missed, never a
// wrong score.
//
// Thread safety: const methods (Search, Drift, Contains, size, ...) may run concurrently with
// each other. Every non-const method needs exclusive access: the caller serialises writers
// against readers (the engine does with its reader-writer lock). hnswlib itself allows addPoint
// concurrently with searchKnn, but not markDelete, resizeIndex or re-adding an existing label
// (an update) concurrently with searches, so we never rely on its internal locking.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "engine/similarity.hpp"
#include "engine/topk.hpp"

namespace simstream::engine {

enum class AnnKind { kExact, kHnsw };
[[nodiscard]] std::string_view AnnKindName(AnnKind k);

struct AnnParams {
  // HNSW graph degree (hnswlib M; layer 0 keeps 2M links). 16 is hnswlib's default.
  size_t m = 16;
  // Candidate list while inserting; higher builds a better graph, more slowly.
  size_t ef_construction = 100;
  // Candidate list while re-inserting a moved vector (0: ef_construction; at least m). A
  // re-insert only reconnects one node near where it moved; see config IndexOptions::ef_reinsert.
  size_t ef_reinsert = 32;
  // Candidate list of a search when the caller passes ef = 0.
  size_t ef_search = 64;
  // Cosine distance (1 - cos) between a vector and its indexed version beyond which Update()
  // re-inserts it. 0.05 is an angle of about 18 degrees. See README "Approximate nearest
  // neighbours" for why this value.
  float drift_threshold = 0.05f;
  // Seed of hnswlib's level generator (builds are deterministic for one insertion order).
  uint64_t seed = 100;
  // Re-inserting a moved vector (hnswlib updatePoint) reconnects the moved node at its new
  // place, and re-selects the links of each of its old neighbours with this probability.
  // hnswlib's addPoint uses 1.0, which costs ~(2M)^2 distances per neighbour; 0 measured the
  // same recall in tests/unit/ann_index_test.cpp and live_ann_test.cpp in a third of the time
  // (README "Approximate nearest neighbours"); the background rebuild on low sampled recall
  // covers slow decay of the graph.
  float update_neighbour_probability = 0.0f;
};

class AnnIndex {
 public:
  virtual ~AnnIndex() = default;
  [[nodiscard]] virtual AnnKind kind() const = 0;
  [[nodiscard]] int dim() const { return dim_; }
  [[nodiscard]] const AnnParams& params() const { return params_; }

  // Inserts `vec` (dim() floats) under `id`, or replaces the indexed vector of `id`.
  virtual void Upsert(uint32_t id, const float* vec) = 0;
  // Inserts if absent; replaces only if Drift(id, vec) > drift_threshold. True if it wrote.
  bool Update(uint32_t id, const float* vec);
  // Removes `id` from search results (no-op when absent).
  virtual void Remove(uint32_t id) = 0;
  [[nodiscard]] virtual bool Contains(uint32_t id) const = 0;
  // Cosine distance 1 - cos(vec, indexed vector of id), in [0, 2]; 2 when id is absent. Two
  // zero vectors are at distance 0; a zero and a non-zero vector at 1.
  [[nodiscard]] virtual float Drift(uint32_t id, const float* vec) const = 0;
  // Live ids.
  [[nodiscard]] virtual size_t size() const = 0;
  // Removed ids still occupying the structure (HNSW tombstones); 0 for exact.
  [[nodiscard]] virtual size_t deleted() const = 0;
  // Writes through Update()/Upsert() that replaced an existing vector.
  [[nodiscard]] uint64_t reinserts() const { return reinserts_; }

  // The k live ids most cosine-similar to `query` (dim() floats), best first (ties: lower id),
  // never any id in `exclude` (a few ids, e.g. the query entity; exclude long-lived ids with
  // Remove()). Scores are cosine similarities against the INDEXED vectors. `ef` is the HNSW
  // candidate list (0: params().ef_search; raised to k); the exact index ignores it. An HNSW
  // search returns up to max(k, ef) candidates when `all_candidates` is set, for callers
  // that re-score them.
  [[nodiscard]] virtual std::vector<Scored> Search(const float* query, size_t k, size_t ef = 0,
                                                   std::span<const uint32_t> exclude = {},
                                                   bool all_candidates = false) const = 0;
  [[nodiscard]] virtual size_t MemoryBytes() const = 0;

 protected:
  AnnIndex(int dim, const AnnParams& params) : dim_(dim), params_(params) {}
  uint64_t reinserts_ = 0;

 private:
  int dim_;
  AnnParams params_;
};

// Brute force over a private copy of the vectors (engine/similarity.hpp ScoreAll + TopK).
[[nodiscard]] std::unique_ptr<AnnIndex> MakeExactIndex(int dim, const AnnParams& params = {});
// hnswlib HierarchicalNSW over L2-normalised vectors with the inner-product space, so inner
// product = cosine. `capacity` is a sizing hint (the index grows by doubling).
[[nodiscard]] std::unique_ptr<AnnIndex> MakeHnswIndex(int dim, const AnnParams& params,
                                                      size_t capacity = 1024);
[[nodiscard]] std::unique_ptr<AnnIndex> MakeAnnIndex(AnnKind kind, int dim, const AnnParams& params,
                                                     size_t capacity = 1024);

// Top k of candidates re-scored by exact cosine of `query` against `row(id)` -> const float*
// (dim floats).
template <typename RowFn>
[[nodiscard]] std::vector<Scored> RescoreByCosine(std::vector<Scored> cand, const float* query,
                                                  int dim, size_t k, RowFn&& row) {
  for (Scored& s : cand) s.score = Cosine(query, row(s.id), dim);
  return TopK(std::move(cand), k);
}

// Re-ranks the index's candidates (Search with all_candidates) by exact cosine against the
// CURRENT vectors, `row(id)` -> const float* (dim floats): scores are exact, and a neighbour
// whose indexed vector lags its current one by less than the drift threshold is still found
// when it is among the candidates.
template <typename RowFn>
[[nodiscard]] std::vector<Scored> SearchRescored(const AnnIndex& index, const float* query,
                                                 size_t k, size_t ef,
                                                 std::span<const uint32_t> exclude, RowFn&& row) {
  return RescoreByCosine(index.Search(query, k, ef, exclude, /*all_candidates=*/true), query,
                         index.dim(), k, row);
}

// |approx ∩ exact| / |exact| over ids (1 when exact is empty).
[[nodiscard]] double RecallOf(std::span<const Scored> approx, std::span<const Scored> exact);

}  // namespace simstream::engine
