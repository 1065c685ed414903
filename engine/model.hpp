// The online metric learner and the hybrid recommender built on it.
//
// Users and items live in one metric space. Every event moves the user's free vector and
// the item (and a few sampled negative items) by one step of the configured loss, with
// per-row adaptive step sizes. A user's representation is q_u = p_u + h_u, where h_u is a
// time-decayed average of the vectors of the items the user interacted with (negative
// feedback counts against), so a brand-new user is personalised after their first event.
//
// Recommendations mix three signals with weights learned online (pairwise logistic loss on
// the same positives and sampled negatives the embeddings learn from):
//   E(u,j) the learned metric's score, N(u,j) neighbourhood evidence from the items the user
//   touched recently (cosine over a windowed co-occurrence graph), P(j) decayed popularity.
// Similar users and similar items are answered by the learned embeddings alone.
//
// Thread safety: none. `Engine` serialises the single writer against readers.
// Determinism: the state after a sequence of Observe() calls depends only on the options and
// the (interaction, rng_key) sequence.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "config/options.hpp"
#include "engine/cooccurrence.hpp"
#include "engine/dirty_set.hpp"
#include "engine/losses.hpp"
#include "engine/minhash.hpp"
#include "engine/rng.hpp"
#include "engine/similarity.hpp"
#include "engine/state.hpp"
#include "engine/topk.hpp"

namespace simstream::engine {

// One interaction in dense-index form. `rng_key` seeds every random draw made for it
// (see EventRngKey): the same key reproduces the same update.
struct Interaction {
  uint32_t user = 0;
  uint32_t item = 0;
  float weight = 1.0f;
  int64_t ts_ms = 0;
  uint64_t rng_key = 0;
};

// A scorer that learns from a stream (the model and the baselines share this interface so
// prequential evaluation treats them alike).
class StreamingScorer {
 public:
  virtual ~StreamingScorer() = default;
  virtual std::string_view name() const = 0;
  // Learn from one interaction. Indices may be new (== current count); they are added.
  virtual void Observe(const Interaction& x) = 0;
  // Scores of items [0, out.size()) for `user` (which may be unknown: out-of-range index).
  // Higher is better; the caller masks items it does not want.
  virtual void ScoreItems(uint32_t user, std::span<float> out) = 0;
};

// A supporting history item of a recommendation.
struct Because {
  uint32_t item;
  float score;
};

class OnlineModel final : public StreamingScorer {
 public:
  // `opts` must have passed config validation.
  explicit OnlineModel(const config::ModelOptions& opts);

  std::string_view name() const override { return "simstream"; }
  void Observe(const Interaction& x) override;
  // Cache hints for an Observe() of (user, item) a few events ahead: reads nothing the caller
  // depends on and changes nothing. `stage` 4 (four events ahead) asks for the rows found from
  // the indices alone (user meta and vectors, the item's vector and scalars); stage 3 for what
  // the user's meta points to (history, seen list, sketch), which stage 4 brought in; stage 2
  // for the headers of the co-occurrence rows of that history; stage 1 for the slots Link()
  // will probe in them. Indices not yet known to the model are ignored.
  void Prefetch(uint32_t user, uint32_t item, int stage) const;
  static constexpr int kPrefetchStages = 4;
  void ScoreItems(uint32_t user, std::span<float> out) override { Score(user, out); }
  // ScoreItems without the interface's non-const contract (the model keeps no query scratch).
  void Score(uint32_t user, std::span<float> out) const;

  int dim() const { return dim_; }
  size_t users() const { return user_meta_.size(); }
  size_t items() const { return item_count_.size(); }
  bool HasUser(uint32_t u) const { return u < users(); }

  // The user's representation q_u and the item's vector v_i (dim() floats each).
  const float* UserVector(uint32_t u) const { return &q_[size_t{u} * dim_]; }
  const float* ItemVector(uint32_t i) const { return &v_[size_t{i} * dim_]; }
  // All user representations / item vectors, row-major (users() x dim(), items() x dim()).
  std::span<const float> UserMatrix() const { return q_; }
  std::span<const float> ItemMatrix() const { return v_; }

  // Items the user interacted with, sorted ascending.
  std::span<const uint32_t> Seen(uint32_t u) const { return user_meta_[u].seen; }
  uint64_t UserEvents(uint32_t u) const { return user_meta_[u].events; }
  int64_t UserLastTs(uint32_t u) const { return user_meta_[u].last_ts; }
  const MinHashSketch& Sketch(uint32_t u) const { return user_meta_[u].sketch; }

  // Exact top-k similar users / items by the learned embeddings (Jaccard: MinHash sketches).
  // The query entity itself is excluded. Ties: lower index first.
  std::vector<Scored> SimilarUsers(uint32_t u, size_t k, Metric metric) const;
  std::vector<Scored> SimilarItems(uint32_t i, size_t k, Metric metric) const;

  // Top-k recommendations for `user` (unknown users: popularity), excluding seen items and
  // `exclude`. `from_model` tells whether the learned model produced them.
  std::vector<Scored> Recommend(uint32_t user, size_t k, std::span<const uint32_t> exclude,
                                bool* from_model = nullptr) const;
  // Two-stage retrieval (the serving path for large catalogues; see Engine::Recommend):
  // Score() restricted to `items`: out[n] is what Score() gives items[n] (the same terms,
  // summed in another order, so equal up to float rounding). `user` must have events.
  void ScoreCandidates(uint32_t user, std::span<const uint32_t> items, std::span<float> out) const;
  // Appends the up to `n` items with the largest neighbourhood evidence for `user` from the rows
  // of the user's `rows` most recent items (at most model.neighbourhood_items), strongest first.
  // Cost: the size of those rows, not the catalogue. With `lists`, a recent item whose list is
  // full (NeighbourLists::Full) contributes its list's entries, at their cosines when it was
  // built, instead of its whole row: the evidence of its weaker neighbours is left out.
  void NeighbourCandidates(uint32_t user, size_t rows, size_t n, std::vector<uint32_t>& out,
                           const NeighbourLists* lists = nullptr) const;
  // Item `item`'s up to `n` strongest co-occurrence neighbours (CooccurrenceGraph), for
  // NeighbourLists.
  void StrongestNeighbours(uint32_t item, size_t n, std::vector<Scored>& out) const {
    graph_.StrongestNeighbours(item, n, items(), out);
  }
  // Whether scores mix the embedding with neighbourhood and popularity (model.hybrid).
  bool hybrid() const { return hybrid_; }
  // Appends the `n` items of largest decayed popularity, most popular first.
  void PopularCandidates(size_t n, std::vector<uint32_t>& out) const;

  // The user's recent items that most support recommending `item`.
  std::vector<Because> Explain(uint32_t user, uint32_t item, size_t max_items) const;

  // Current mixing weights of the hybrid scorer (embedding, neighbourhood, popularity).
  std::array<float, 3> MixWeights() const { return mix_; }
  // Decayed popularity feature log(1 + decayed count) of every item.
  void PopularityScores(std::span<float> out) const;

  size_t MemoryBytes() const;
  const config::ModelOptions& options() const { return opts_; }

  // ---- Durable state -------------------------------------------------------------------
  // With tracking on, Observe() and ForgetUser() record what changed; TakeChanges() and then
  // FinishTakeChanges() copy it into `out` and clear the record. Off by default (evaluation,
  // benchmarks).
  void SetChangeTracking(bool on) { track_changes_ = on; }
  // Copies the changed rows and hands the changed edges over to FinishTakeChanges(). Reads rows
  // and writes only the change record, which no const method reads: it may run concurrently
  // with const readers, but never with Observe(), ForgetUser() or an import.
  void TakeChanges(ChangeSet& out);
  // Appends the edges handed over by the last TakeChanges() to out.edges (the same `out`),
  // with their weights as of that TakeChanges(), and sorts that take's edges by (a, b): storage
  // writes one key per run of a row. It reads only what was handed over, so it may run beside
  // anything, Observe() included (the caller releases its lock first); it must end before the
  // next TakeChanges() starts.
  void FinishTakeChanges(ChangeSet& out);
  UserState ExportUser(uint32_t u) const;
  ItemState ExportItem(uint32_t i) const;
  // The same, overwriting every field of `out` (its vectors keep their capacity).
  void ExportUserInto(uint32_t u, UserState& out) const;
  void ExportItemInto(uint32_t i, ItemState& out) const;
  GlobalState ExportGlobal() const;
  // Every directed co-occurrence edge of item a's row.
  void ExportRow(uint32_t a, std::vector<EdgeState>& out) const;
  // Restores rows written by TakeChanges (storage load). Indices may arrive in any order;
  // missing rows in between are created fresh and must be imported too.
  void ImportUser(uint32_t u, const UserState& s);
  void ImportItem(uint32_t i, const ItemState& s);
  void ImportGlobal(const GlobalState& g);
  void ImportEdge(const EdgeState& e);
  // Marks a user forgotten: its vectors, history and sketch are cleared, and it no longer
  // appears in similar-user answers. The index is never reused.
  void ForgetUser(uint32_t u);
  bool IsForgotten(uint32_t u) const { return user_meta_[u].forgotten; }

 private:
  // out[j] += alpha * log1p(decayed popularity of j) for j < min(out.size(), items()).
  void AddPopularity(float alpha, std::span<float> out) const;
  struct UserMeta {
    std::vector<uint32_t> seen;          // sorted
    std::vector<uint32_t> recent_items;  // most recent first, at most history_cap_
    std::vector<float> recent_weights;
    uint64_t events = 0;
    int64_t last_ts = 0;
    float z = 0.0f;        // denominator of h_u
    float grad_sq = 0.0f;  // adaptive step accumulator of p_u
    MinHashSketch sketch;
    bool forgotten = false;
  };
  void MarkUser(uint32_t u);
  void MarkItem(uint32_t i);
  void MarkEdge(uint32_t a, uint32_t b, float w) { dirty_edges_.Add(a, b, w); }

  // Grows the tables to hold index u / i; new rows get their seeded random start, except the
  // last one when `init` is false (an import overwrites it).
  void EnsureUser(uint32_t u, bool init = true);
  void EnsureItem(uint32_t i, bool init = true);
  void InitRow(float* row, uint64_t key);
  void AdaptiveStep(float* row, const float* grad, float* grad_sq, float scale);
  float EmbeddingScore(const float* q, uint32_t item) const;
  float NeighbourScore(const UserMeta& m, uint32_t item) const;
  // The walk over the co-occurrence rows of the user's `rows` most recent items (at most
  // model.neighbourhood_items) that Score() and NeighbourCandidates() share: f(j, e) for each
  // edge (i, j) of those rows with j < `limit`, where
  // e = scale × decay^r × weight_r × Norm(i) × w(i, j) × Norm(j). With `lists`, a row i whose
  // list is full gives its list's entries instead, e = scale × decay^r × weight_r × cosine.
  template <typename F>
  void ForEachNeighbourEvidence(const UserMeta& m, size_t rows, float scale, size_t limit, F&& f,
                                const NeighbourLists* lists = nullptr) const;
  // exp(-(clock_ - pop_anchor_) / tau): takes the stored popularity to the current event.
  double PopularityScale() const;
  // The popularity feature log1p(item_pop_[item] × scale) of one item, by std::log1p in double.
  // AddPopularity computes the same feature for a whole table with a vectorised float log1p that
  // may differ by a few ulps, so the two are kept apart: each caller's numbers stay as they were.
  float PopularityFeature(uint32_t item, double scale) const;
  using Features = std::array<float, 3>;  // embedding, neighbourhood, popularity
  struct Candidate {
    uint32_t id;
    float score;
    Features x;
  };
  // The mix learns (on one event in model.mix_every) against this many hardest candidates.
  static constexpr size_t kHardNegatives = 3;
  Features FeaturesOf(const UserMeta& m, const float* q, uint32_t item) const;
  // Cache hints for a user's own rows (meta, p, h), and for the lists its meta points to (the
  // recent history, its weights, the sketch; the seen list is hinted by each caller where it
  // reads it). Shared by Prefetch (the learner) and TakeChanges (the flusher's copy).
  void HintUserRows(uint32_t u) const;
  void HintUserLists(const UserMeta& m) const;
  // Cache hints for FeaturesOf(m, ·, item): the item's vector, bias and popularity, and the
  // co-occurrence slots of its neighbourhood evidence (~20 misses otherwise taken one by one).
  // Scoring a list gives them this many items ahead.
  void HintFeatures(const UserMeta& m, uint32_t item) const;
  static constexpr size_t kFeatureHintAhead = 2;
  void UpdateMix(const Features& pos, std::span<const Features> negs, float weight);
  void LearnMix(const UserMeta& m, const float* q, uint32_t pos, float weight,
                std::span<const uint32_t> sampled, Rng& rng);
  void DecayPopularity();
  void RefreshUserVector(uint32_t u);

  config::ModelOptions opts_;
  LossParams loss_;
  int dim_;
  bool hybrid_;
  float history_decay_;  // per user event
  size_t history_cap_;
  double pop_tau_;   // popularity time constant, in events
  float shrinkage_;  // neighbourhood support shrinkage

  // Users: free vectors p, history sums H, representations q = p + H / z.
  std::vector<float> p_, h_, q_;
  std::vector<UserMeta> user_meta_;
  // Items: vectors, biases, adaptive accumulators, decayed popularity.
  std::vector<float> v_, item_bias_, item_grad_sq_;
  std::vector<double> item_count_;  // a float would stop counting at 2^24
  std::vector<double> item_pop_;    // sum of exp((t_e - pop_anchor_) / tau)
  uint64_t clock_ = 0;              // events observed
  uint64_t pop_anchor_ = 0;
  double pop_scale_ = 1.0;  // exp(-(clock_ - pop_anchor_) / tau) of the current event

  CooccurrenceGraph graph_;
  std::vector<uint32_t> recent_positives_;  // ring buffer for popularity-biased negatives
  size_t recent_pos_next_ = 0;

  std::array<float, 3> mix_{1.0f, 1.0f, 0.1f};
  std::array<float, 3> mix_grad_sq_{0.0f, 0.0f, 0.0f};

  // Change tracking for durable storage.
  bool track_changes_ = false;
  std::vector<uint8_t> user_dirty_, item_dirty_, row_rewritten_;
  std::vector<uint32_t> dirty_users_, dirty_items_, rewritten_rows_, forgotten_users_;
  EdgeLog dirty_edges_;
  // Handed from TakeChanges() to FinishTakeChanges(): the changed edges, the rows written
  // whole (sorted), whose edges are not patched, and where that take's edges start in
  // out.edges (the rows written whole, still unsorted).
  EdgeLog taken_edges_;
  std::vector<uint32_t> taken_rewritten_;
  std::vector<uint8_t> taken_rewritten_mark_;  // FinishTakeChanges: by row, 1 if written whole
  size_t taken_first_edge_ = 0;
  std::vector<EdgeState> edge_scratch_;  // FinishTakeChanges' sort
  std::vector<uint32_t> pruned_scratch_;
  std::vector<float> link_weights_;

  // Scratch buffers reused across events (no allocation on the hot path).
  std::vector<float> grad_q_, grad_pos_, grad_negs_, grad_neg_bias_, q_tmp_;
  std::vector<uint32_t> neg_ids_, link_scratch_;
  std::vector<Candidate> cand_;
  std::vector<Features> cand_features_;
  std::vector<const float*> neg_ptrs_;
  std::vector<float> neg_bias_;
};

}  // namespace simstream::engine
