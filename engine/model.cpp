#include "engine/model.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cassert>
#include <cmath>

#include "engine/edge_sort.hpp"
#include "engine/rng.hpp"

namespace simstream::engine {
namespace {

constexpr uint64_t kUserInitTag = 0x5553455255534552ULL;
constexpr uint64_t kItemInitTag = 0x4954454D4954454DULL;
constexpr size_t kRecentPositives = 4096;

inline float DotRow(const float* __restrict a, const float* __restrict b, int dim) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int i = 0;
  for (; i + 4 <= dim; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < dim; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

inline void InsertSorted(std::vector<uint32_t>& v, uint32_t x) {
  auto it = std::lower_bound(v.begin(), v.end(), x);
  if (it == v.end() || *it != x) v.insert(it, x);
}

// Cache hints for every line of [p, p + bytes).
inline void PrefetchLines(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(c + o);
}

// A row from a recycled ChangeSet's pool (its vectors keep their capacity), or a new one.
template <typename Row>
Row TakeSpare(std::vector<Row>& pool) {
  if (pool.empty()) return Row{};
  Row row = std::move(pool.back());
  pool.pop_back();
  return row;
}

inline bool ContainsSorted(std::span<const uint32_t> v, uint32_t x) {
  return std::binary_search(v.begin(), v.end(), x);
}

inline float Sigmoid(float x) {
  return 1.0f / (1.0f + std::exp(-x));
}

}  // namespace

OnlineModel::OnlineModel(const config::ModelOptions& opts)
    : opts_(opts),
      dim_(static_cast<int>(opts.dim)),
      hybrid_(opts.scorer == "hybrid"),
      history_decay_(static_cast<float>(std::exp2(-1.0 / opts.history_half_life_events))),
      history_cap_(static_cast<size_t>(
          std::max<int64_t>({opts.cooccurrence_window, opts.neighbourhood_items, 1}))),
      pop_tau_(opts.popularity_half_life_events / std::log(2.0)),
      shrinkage_(static_cast<float>(opts.neighbour_shrinkage)),
      graph_(/*max_row=*/2000, shrinkage_) {
  loss_.kind = ParseLoss(opts.loss).value_or(LossKind::kBpr);
  loss_.margin = static_cast<float>(opts.margin);
  loss_.temperature = static_cast<float>(opts.temperature);
  const size_t m = static_cast<size_t>(opts.negatives);
  grad_q_.resize(dim_);
  grad_pos_.resize(dim_);
  q_tmp_.resize(dim_);
  grad_negs_.resize(m * dim_);
  grad_neg_bias_.resize(m);
  neg_ids_.resize(m);
  neg_ptrs_.resize(m);
  neg_bias_.resize(m);
  recent_positives_.reserve(kRecentPositives);
}

void OnlineModel::InitRow(float* row, uint64_t key) {
  Rng rng(key);
  const float scale = static_cast<float>(opts_.init_scale);
  for (int i = 0; i < dim_; ++i) row[i] = static_cast<float>(rng.Normal()) * scale;
}

void OnlineModel::EnsureUser(uint32_t u, bool init) {
  while (user_meta_.size() <= u) {
    const size_t idx = user_meta_.size();
    p_.resize((idx + 1) * dim_);
    h_.resize((idx + 1) * dim_, 0.0f);
    q_.resize((idx + 1) * dim_);
    if (init || idx != u) {
      InitRow(&p_[idx * dim_], SplitMix64(static_cast<uint64_t>(opts_.seed) ^ kUserInitTag ^ idx));
    }
    std::copy_n(&p_[idx * dim_], dim_, &q_[idx * dim_]);
    user_meta_.emplace_back();
    user_meta_.back().sketch = MinHashSketch(static_cast<int>(opts_.minhash_size));
  }
}

void OnlineModel::EnsureItem(uint32_t i, bool init) {
  while (item_count_.size() <= i) {
    const size_t idx = item_count_.size();
    v_.resize((idx + 1) * dim_);
    if (init || idx != i) {
      InitRow(&v_[idx * dim_], SplitMix64(static_cast<uint64_t>(opts_.seed) ^ kItemInitTag ^ idx));
    }
    item_bias_.push_back(0.0f);
    item_grad_sq_.push_back(0.0f);
    item_count_.push_back(0.0f);
    item_pop_.push_back(0.0);
  }
  graph_.EnsureItems(item_count_.size());
}

void OnlineModel::AdaptiveStep(float* row, const float* grad, float* grad_sq, float scale) {
  // AdaGrad with one accumulator per entity: rows touched often take smaller steps.
  float g2 = 0.0f;
  const float l2 = static_cast<float>(opts_.l2);
  for (int i = 0; i < dim_; ++i) {
    const float g = scale * grad[i] + l2 * row[i];
    g2 += g * g;
  }
  *grad_sq += g2 / static_cast<float>(dim_);
  const float step = static_cast<float>(opts_.learning_rate) / std::sqrt(*grad_sq + 1e-6f);
  for (int i = 0; i < dim_; ++i) row[i] -= step * (scale * grad[i] + l2 * row[i]);
}

float OnlineModel::EmbeddingScore(const float* q, uint32_t item) const {
  return PairScore(loss_.kind, q, ItemVector(item), item_bias_[item], dim_);
}

float OnlineModel::NeighbourScore(const UserMeta& m, uint32_t item) const {
  const size_t n = std::min(m.recent_items.size(), static_cast<size_t>(opts_.neighbourhood_items));
  float s = 0.0f;
  float decay = 1.0f;
  for (size_t r = 0; r < n; ++r) {
    s += decay * m.recent_weights[r] * graph_.Cosine(m.recent_items[r], item);
    decay *= history_decay_;
  }
  return s;
}

template <typename F>
void OnlineModel::ForEachNeighbourEvidence(const UserMeta& m, size_t rows, float scale,
                                           size_t limit, F&& f, const NeighbourLists* lists) const {
  const size_t r_n =
      std::min({m.recent_items.size(), static_cast<size_t>(opts_.neighbourhood_items), rows});
  float decay = 1.0f;
  for (size_t r = 0; r < r_n; ++r) {
    const uint32_t i = m.recent_items[r];
    const float weight = scale * decay * m.recent_weights[r];
    const float base = weight * graph_.Norm(i);
    decay *= history_decay_;
    if (base == 0.0f) continue;
    if (lists != nullptr && lists->Full(i)) {
      for (const Scored& s : lists->Of(i)) {
        if (s.id < limit) f(s.id, weight * s.score);
      }
      continue;
    }
    graph_.Row(i).ForEach([&](uint32_t j, float w) {
      if (j < limit) f(j, base * w * graph_.Norm(j));
    });
  }
}

double OnlineModel::PopularityScale() const {
  return std::exp(-static_cast<double>(clock_ - pop_anchor_) / pop_tau_);
}

float OnlineModel::PopularityFeature(uint32_t item, double scale) const {
  return static_cast<float>(std::log1p(item_pop_[item] * scale));
}

void OnlineModel::PopularityScores(std::span<float> out) const {
  std::fill(out.begin(), out.end(), 0.0f);
  AddPopularity(1.0f, out);
}

void OnlineModel::AddPopularity(float alpha, std::span<float> out) const {
  // A scalar log1p per item cost ~30 % of a query at 20k items. This is Goldberg's log1p
  // (log(u) * x / (u - 1) with u = 1 + x rounded, exact to a few ulps) on Eigen's vectorised
  // float log.
  const double scale = PopularityScale();
  const auto n = static_cast<Eigen::Index>(std::min(out.size(), item_pop_.size()));
  if (n == 0) return;
  Eigen::Map<const Eigen::ArrayXd> pop(item_pop_.data(), n);
  Eigen::Map<Eigen::ArrayXf> dst(out.data(), n);
  constexpr Eigen::Index kChunk = 1024;  // stays in L1 between the passes
  Eigen::Array<float, kChunk, 1> x, u, d;
  for (Eigen::Index b = 0; b < n; b += kChunk) {
    const Eigen::Index len = std::min(kChunk, n - b);
    x.head(len) = (pop.segment(b, len) * scale).cast<float>();
    u.head(len) = x.head(len) + 1.0f;
    d.head(len) = u.head(len) - 1.0f;
    dst.segment(b, len) +=
        alpha *
        (d.head(len) == 0.0f).select(x.head(len), u.head(len).log() * x.head(len) / d.head(len));
  }
}

void OnlineModel::DecayPopularity() {
  // Keep the stored exponentials bounded: fold the elapsed decay into the values.
  const double elapsed = static_cast<double>(clock_ - pop_anchor_);
  if (elapsed / pop_tau_ < 30.0) return;
  const double scale = std::exp(-elapsed / pop_tau_);
  for (double& p : item_pop_) p *= scale;
  pop_anchor_ = clock_;
  // Every item's stored popularity changed relative to the new anchor (rare: every 30 tau).
  for (uint32_t i = 0; i < items(); ++i) MarkItem(i);
}

void OnlineModel::HintFeatures(const UserMeta& m, uint32_t item) const {
  PrefetchLines(ItemVector(item), static_cast<size_t>(dim_) * sizeof(float));
  __builtin_prefetch(&item_bias_[item]);
  __builtin_prefetch(&item_pop_[item]);
  if (!hybrid_) return;  // no neighbourhood term
  const size_t rows =
      std::min(m.recent_items.size(), static_cast<size_t>(opts_.neighbourhood_items));
  for (size_t r = 0; r < rows; ++r) graph_.Row(m.recent_items[r]).PrefetchSlot(item);
}

OnlineModel::Features OnlineModel::FeaturesOf(const UserMeta& m, const float* q,
                                              uint32_t item) const {
  return {EmbeddingScore(q, item), NeighbourScore(m, item), PopularityFeature(item, pop_scale_)};
}

void OnlineModel::UpdateMix(const Features& xp, std::span<const Features> xns, float weight) {
  // Pairwise logistic regression of the three features, AdaGrad per weight.
  std::array<float, 3> grad{0, 0, 0};
  for (const Features& xn : xns) {
    float diff = 0.0f;
    for (int f = 0; f < 3; ++f) diff += mix_[f] * (xp[f] - xn[f]);
    const float g = -Sigmoid(-diff) * weight;
    for (int f = 0; f < 3; ++f) grad[f] += g * (xp[f] - xn[f]);
  }
  const float lr = static_cast<float>(opts_.mix_learning_rate);
  for (int f = 0; f < 3; ++f) {
    mix_grad_sq_[f] += grad[f] * grad[f];
    mix_[f] -= lr * grad[f] / std::sqrt(mix_grad_sq_[f] + 1e-6f);
  }
}

void OnlineModel::LearnMix(const UserMeta& m, const float* q, uint32_t pos, float weight,
                           std::span<const uint32_t> sampled, Rng& rng) {
  const Features xp = FeaturesOf(m, q, pos);
  cand_.clear();
  if (opts_.mix_candidates > 0) {
    // WARP-like: learn the mix against the candidates the current mix ranks highest, since
    // the top of the ranking is what matters (random negatives are too easy to teach it).
    const uint32_t n_items = static_cast<uint32_t>(items());
    const size_t c = static_cast<size_t>(opts_.mix_candidates);
    // The draws first (they do not depend on the features), then the features of each
    // candidate with cache hints for the one two ahead: its vector, its popularity and the
    // co-occurrence slots of its neighbourhood evidence, ~20 misses per candidate otherwise
    // taken one after another.
    for (size_t k = 0; k < c; ++k) {
      const bool popular = !recent_positives_.empty() && (k & 1) == 0;
      const uint32_t id =
          popular ? recent_positives_[rng.Below(static_cast<uint32_t>(recent_positives_.size()))]
                  : rng.Below(n_items);
      if (id == pos || ContainsSorted(m.seen, id)) continue;
      cand_.push_back({id, 0.0f, {}});
    }
    for (size_t k = 0; k < std::min(kFeatureHintAhead, cand_.size()); ++k) {
      HintFeatures(m, cand_[k].id);
    }
    for (size_t k = 0; k < cand_.size(); ++k) {
      if (k + kFeatureHintAhead < cand_.size()) HintFeatures(m, cand_[k + kFeatureHintAhead].id);
      Candidate& cand = cand_[k];
      cand.x = FeaturesOf(m, q, cand.id);
      cand.score = mix_[0] * cand.x[0] + mix_[1] * cand.x[1] + mix_[2] * cand.x[2];
    }
    const size_t hard = std::min<size_t>(cand_.size(), kHardNegatives);
    std::partial_sort(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(hard), cand_.end(),
                      [](const Candidate& a, const Candidate& b) {
                        return a.score != b.score ? a.score > b.score : a.id < b.id;
                      });
    cand_.resize(hard);
  } else {
    for (uint32_t id : sampled) {
      if (id == pos || ContainsSorted(m.seen, id)) continue;
      cand_.push_back({id, 0.0f, FeaturesOf(m, q, id)});
    }
  }
  cand_features_.clear();
  for (const Candidate& c : cand_) cand_features_.push_back(c.x);
  if (!cand_features_.empty()) UpdateMix(xp, cand_features_, weight);
}

void OnlineModel::RefreshUserVector(uint32_t u) {
  float* q = &q_[size_t{u} * dim_];
  const float* p = &p_[size_t{u} * dim_];
  const float* h = &h_[size_t{u} * dim_];
  const float z = user_meta_[u].z;
  const float inv = z > 1e-6f ? 1.0f / z : 0.0f;
  for (int i = 0; i < dim_; ++i) q[i] = p[i] + h[i] * inv;
}

void OnlineModel::HintUserRows(uint32_t u) const {
  const size_t row_bytes = static_cast<size_t>(dim_) * sizeof(float);
  const size_t at = size_t{u} * static_cast<size_t>(dim_);
  PrefetchLines(&user_meta_[u], sizeof(UserMeta));
  PrefetchLines(&p_[at], row_bytes);
  PrefetchLines(&h_[at], row_bytes);
}

void OnlineModel::HintUserLists(const UserMeta& m) const {
  if (!m.recent_items.empty()) {
    PrefetchLines(m.recent_items.data(), m.recent_items.size() * sizeof(uint32_t));
    __builtin_prefetch(m.recent_weights.data());
  }
  const auto sig = m.sketch.signature();
  if (!sig.empty()) PrefetchLines(sig.data(), sig.size() * sizeof(uint32_t));
}

void OnlineModel::Prefetch(uint32_t user, uint32_t item, int stage) const {
  const size_t row_bytes = static_cast<size_t>(dim_) * sizeof(float);
  const bool has_user = user < users(), has_item = item < items();
  if (stage >= 4) {
    if (has_user) {
      HintUserRows(user);
      PrefetchLines(&q_[size_t{user} * static_cast<size_t>(dim_)], row_bytes);
    }
    if (has_item) {
      PrefetchLines(&v_[size_t{item} * static_cast<size_t>(dim_)], row_bytes);
      __builtin_prefetch(&item_bias_[item]);
      __builtin_prefetch(&item_grad_sq_[item]);
      __builtin_prefetch(&item_count_[item]);
      __builtin_prefetch(&item_pop_[item]);
    }
    return;
  }
  if (!has_user) return;
  const UserMeta& m = user_meta_[user];
  if (stage <= 2) {
    // The co-occurrence rows Link() will probe (the window's items, liked or not: a superset):
    // their headers, then their slots.
    const size_t window =
        std::min(m.recent_items.size(), static_cast<size_t>(opts_.cooccurrence_window));
    const std::span<const uint32_t> recent(m.recent_items.data(), window);
    if (stage == 2) {
      graph_.PrefetchRows(item, recent);
    } else {
      graph_.PrefetchLink(item, recent);
    }
    return;
  }
  if (!m.seen.empty()) __builtin_prefetch(&m.seen[m.seen.size() / 2]);  // its binary search
  HintUserLists(m);
}

void OnlineModel::Observe(const Interaction& x) {
  EnsureUser(x.user);
  EnsureItem(x.item);
  MarkUser(x.user);
  MarkItem(x.item);
  ++clock_;
  pop_scale_ = PopularityScale();
  UserMeta& m = user_meta_[x.user];
  const bool first_time = !ContainsSorted(m.seen, x.item);
  Rng rng(x.rng_key);
  const uint32_t n_items = static_cast<uint32_t>(items());
  const size_t n_neg = neg_ids_.size();
  float* q = &q_[size_t{x.user} * dim_];

  LossInput in;
  in.dim = dim_;
  in.q = q;
  in.pos = ItemVector(x.item);
  in.pos_bias = item_bias_[x.item];
  LossGrad g{grad_q_, grad_pos_, 0.0f, grad_negs_, grad_neg_bias_};

  if (x.weight > 0) {
    // Sampled negatives: some by recent popularity (hard), the rest uniform (coverage).
    size_t m_used = 0;
    if (n_items > 1) {
      for (size_t k = 0; k < n_neg; ++k) {
        uint32_t c = 0;
        for (int attempt = 0; attempt < 3; ++attempt) {
          const bool popular =
              !recent_positives_.empty() && rng.Uniform() < opts_.popular_negative_share;
          c = popular
                  ? recent_positives_[rng.Below(static_cast<uint32_t>(recent_positives_.size()))]
                  : rng.Below(n_items);
          if (c != x.item && !ContainsSorted(m.seen, c)) break;
        }
        if (c == x.item) continue;
        neg_ids_[m_used] = c;
        neg_ptrs_[m_used] = ItemVector(c);
        neg_bias_[m_used] = item_bias_[c];
        ++m_used;
      }
    }
    if (hybrid_ && m.events > 0 && m_used > 0) {
      if (clock_ % static_cast<uint64_t>(opts_.mix_every) == 0) {
        LearnMix(m, q, x.item, x.weight, std::span<const uint32_t>(neg_ids_.data(), m_used), rng);
      }
    }
    in.negs = std::span<const float* const>(neg_ptrs_.data(), m_used);
    in.neg_biases = std::span<const float>(neg_bias_.data(), m_used);
    (void)PositiveLoss(loss_, in, g);
    const float w = x.weight;
    AdaptiveStep(&v_[size_t{x.item} * dim_], grad_pos_.data(), &item_grad_sq_[x.item], w);
    item_bias_[x.item] -= static_cast<float>(opts_.learning_rate) * 0.1f * w * g.dpos_bias;
    for (size_t k = 0; k < m_used; ++k) {
      const uint32_t c = neg_ids_[k];
      MarkItem(c);
      AdaptiveStep(&v_[size_t{c} * dim_], &grad_negs_[k * dim_], &item_grad_sq_[c], w);
      item_bias_[c] -= static_cast<float>(opts_.learning_rate) * 0.1f * w * grad_neg_bias_[k];
    }
    AdaptiveStep(&p_[size_t{x.user} * dim_], grad_q_.data(), &m.grad_sq, w);
  } else if (x.weight < 0) {
    in.negs = {};
    in.neg_biases = {};
    (void)NegativeFeedbackLoss(loss_, in, g);
    const float w = -x.weight;
    AdaptiveStep(&v_[size_t{x.item} * dim_], grad_pos_.data(), &item_grad_sq_[x.item], w);
    item_bias_[x.item] -= static_cast<float>(opts_.learning_rate) * 0.1f * w * g.dpos_bias;
    AdaptiveStep(&p_[size_t{x.user} * dim_], grad_q_.data(), &m.grad_sq, w);
  }

  // Fold the item into the user's decayed history profile, then refresh q_u.
  {
    float* h = &h_[size_t{x.user} * dim_];
    const float* v = ItemVector(x.item);
    const float w = x.weight;
    for (int i = 0; i < dim_; ++i) h[i] = history_decay_ * h[i] + w * v[i];
    m.z = history_decay_ * m.z + std::abs(w);
    RefreshUserVector(x.user);
  }

  // Neighbourhood graph and popularity learn from positive interactions only.
  if (x.weight > 0) {
    // Only items the user liked are linked: a dislike followed by a click is no evidence that
    // the two belong together.
    const size_t window =
        std::min(m.recent_items.size(), static_cast<size_t>(opts_.cooccurrence_window));
    link_scratch_.clear();
    for (size_t r = 0; r < window; ++r) {
      if (m.recent_weights[r] > 0) link_scratch_.push_back(m.recent_items[r]);
    }
    const std::span<const uint32_t> linked(link_scratch_);
    pruned_scratch_.clear();
    link_weights_.clear();
    graph_.Link(x.item, linked, 1.0f, track_changes_ ? &pruned_scratch_ : nullptr,
                track_changes_ ? &link_weights_ : nullptr);
    if (track_changes_) {
      size_t next = 0;
      for (uint32_t other : linked) {
        if (other == x.item) continue;
        MarkEdge(x.item, other, link_weights_[next++]);
        MarkEdge(other, x.item, link_weights_[next++]);
      }
      for (uint32_t r : pruned_scratch_) {
        // After a restart the flags cover only items marked since; rows pruned here can be older.
        if (row_rewritten_.size() <= r) row_rewritten_.resize(r + 1, 0);
        if (!row_rewritten_[r]) row_rewritten_[r] = 1, rewritten_rows_.push_back(r);
      }
    }
    item_count_[x.item] += 1.0f;
    item_pop_[x.item] += std::exp(static_cast<double>(clock_ - pop_anchor_) / pop_tau_);
    DecayPopularity();
    if (recent_positives_.size() < kRecentPositives) {
      recent_positives_.push_back(x.item);
    } else {
      recent_positives_[recent_pos_next_] = x.item;
      recent_pos_next_ = (recent_pos_next_ + 1) % kRecentPositives;
    }
    // Every positive event, not only an item's first: an item disliked first and liked later
    // belongs to the user's positive set too. MinHash is idempotent, so repeats change nothing.
    m.sketch.Add(x.item);
  }

  // Recent history, most recent first (negative feedback kept with its sign).
  m.recent_items.insert(m.recent_items.begin(), x.item);
  m.recent_weights.insert(m.recent_weights.begin(), x.weight);
  if (m.recent_items.size() > history_cap_) {
    m.recent_items.pop_back();
    m.recent_weights.pop_back();
  }
  if (first_time) InsertSorted(m.seen, x.item);
  ++m.events;
  m.last_ts = std::max(m.last_ts, x.ts_ms);
}

void OnlineModel::Score(uint32_t user, std::span<float> out) const {
  const size_t n = std::min(out.size(), items());
  if (!HasUser(user) || user_meta_[user].events == 0) {
    PopularityScores(out);
    return;
  }
  const UserMeta& m = user_meta_[user];
  const float* q = UserVector(user);
  const float a_e = hybrid_ ? mix_[0] : 1.0f;
  if (IsDistanceLoss(loss_.kind)) {
    for (size_t j = 0; j < n; ++j) {
      const float* v = ItemVector(static_cast<uint32_t>(j));
      float d = 0.0f;
      for (int i = 0; i < dim_; ++i) {
        const float t = q[i] - v[i];
        d += t * t;
      }
      out[j] = -a_e * d;
    }
  } else {
    // One matrix-vector product over the item table (Eigen, vectorised), then bias and weight.
    ScoreAll(Metric::kDot, q, v_.data(), n, dim_, out.data());
    for (size_t j = 0; j < n; ++j) out[j] = a_e * (out[j] + item_bias_[j]);
  }
  for (size_t j = n; j < out.size(); ++j) out[j] = 0.0f;
  if (!hybrid_) return;

  // Neighbourhood evidence: walk the rows of the user's recent items.
  ForEachNeighbourEvidence(m, /*rows=*/m.recent_items.size(), /*scale=*/mix_[1], /*limit=*/n,
                           [&](uint32_t j, float e) { out[j] += e; });
  AddPopularity(mix_[2], out.first(n));
}

std::vector<Scored> OnlineModel::Recommend(uint32_t user, size_t k,
                                           std::span<const uint32_t> exclude,
                                           bool* from_model) const {
  std::vector<float> scores(items());
  Score(user, scores);
  const bool known = HasUser(user) && user_meta_[user].events > 0;
  if (from_model) *from_model = known;
  const float masked = -std::numeric_limits<float>::infinity();
  if (known) {
    for (uint32_t s : user_meta_[user].seen) scores[s] = masked;
  }
  for (uint32_t e : exclude) {
    if (e < scores.size()) scores[e] = masked;
  }
  return TopK(scores, k);
}

void OnlineModel::ScoreCandidates(uint32_t user, std::span<const uint32_t> items,
                                  std::span<float> out) const {
  const UserMeta& m = user_meta_[user];
  const float* q = UserVector(user);
  const float a_e = hybrid_ ? mix_[0] : 1.0f;
  const bool distance = IsDistanceLoss(loss_.kind);
  const double scale = PopularityScale();
  for (size_t n = 0; n < std::min(kFeatureHintAhead, items.size()); ++n) {
    HintFeatures(m, items[n]);
  }
  for (size_t n = 0; n < items.size(); ++n) {
    if (n + kFeatureHintAhead < items.size()) HintFeatures(m, items[n + kFeatureHintAhead]);
    const uint32_t j = items[n];
    const float* v = ItemVector(j);
    float s = distance ? -a_e * SquaredL2(q, v, dim_) : a_e * (Dot(q, v, dim_) + item_bias_[j]);
    if (hybrid_) {
      s += mix_[1] * NeighbourScore(m, j);
      s += mix_[2] * PopularityFeature(j, scale);
    }
    out[n] = s;
  }
}

void OnlineModel::NeighbourCandidates(uint32_t user, size_t rows, size_t n,
                                      std::vector<uint32_t>& out,
                                      const NeighbourLists* lists) const {
  if (!hybrid_ || n == 0 || !HasUser(user)) return;
  const UserMeta& m = user_meta_[user];
  // Scratch per thread: queries run concurrently under the engine's shared lock.
  thread_local std::vector<float> acc;
  thread_local std::vector<uint32_t> touched;
  if (acc.size() < items()) acc.resize(items(), 0.0f);
  touched.clear();
  ForEachNeighbourEvidence(
      m, rows, /*scale=*/1.0f, /*limit=*/items(),
      [&](uint32_t j, float e) {
        if (acc[j] == 0.0f) touched.push_back(j);
        acc[j] += e;
        if (acc[j] == 0.0f) acc[j] = std::numeric_limits<float>::min();  // stays "touched"
      },
      lists);
  std::vector<Scored> best;
  best.reserve(touched.size());
  for (uint32_t j : touched) {
    best.push_back({j, acc[j]});
    acc[j] = 0.0f;
  }
  for (const Scored& s : TopK(std::move(best), n)) out.push_back(s.id);
}

void OnlineModel::PopularCandidates(size_t n, std::vector<uint32_t>& out) const {
  std::vector<Scored> pop(items());
  for (uint32_t j = 0; j < items(); ++j) pop[j] = {j, static_cast<float>(item_pop_[j])};
  for (const Scored& s : TopK(std::move(pop), n)) out.push_back(s.id);
}

std::vector<Because> OnlineModel::Explain(uint32_t user, uint32_t item, size_t max_items) const {
  std::vector<Because> out;
  if (max_items == 0 || !HasUser(user) || item >= items()) return out;
  const UserMeta& m = user_meta_[user];
  const float* v = ItemVector(item);
  float decay = 1.0f;
  for (size_t r = 0; r < m.recent_items.size(); ++r) {
    const uint32_t i = m.recent_items[r];
    if (m.recent_weights[r] > 0 && i != item) {
      const float s = decay * (graph_.Cosine(i, item) + Cosine(ItemVector(i), v, dim_));
      out.push_back({i, s});
    }
    decay *= history_decay_;
  }
  std::sort(out.begin(), out.end(), [](const Because& a, const Because& b) {
    return a.score != b.score ? a.score > b.score : a.item < b.item;
  });
  // The same item can appear twice in recent history; keep its best entry.
  std::vector<Because> unique;
  for (const auto& b : out) {
    if (std::none_of(unique.begin(), unique.end(),
                     [&](const Because& u) { return u.item == b.item; }))
      unique.push_back(b);
    if (unique.size() == max_items) break;
  }
  return unique;
}

void OnlineModel::MarkUser(uint32_t u) {
  if (!track_changes_) return;
  if (user_dirty_.size() <= u) user_dirty_.resize(u + 1, 0);
  if (!user_dirty_[u]) user_dirty_[u] = 1, dirty_users_.push_back(u);
}

void OnlineModel::MarkItem(uint32_t i) {
  if (!track_changes_) return;
  if (item_dirty_.size() <= i) item_dirty_.resize(i + 1, 0), row_rewritten_.resize(i + 1, 0);
  if (!item_dirty_[i]) item_dirty_[i] = 1, dirty_items_.push_back(i);
}

void OnlineModel::TakeChanges(ChangeSet& out) {
  // Reads rows, writes only the change-tracking members (no const method reads those): may run
  // beside const readers, never beside Observe()/ForgetUser() (see Engine::TakeChanges).
  assert(taken_edges_.empty() && "FinishTakeChanges() did not run after the last TakeChanges()");
  std::sort(dirty_users_.begin(), dirty_users_.end());
  std::sort(dirty_items_.begin(), dirty_items_.end());
  out.users.reserve(out.users.size() + dirty_users_.size());
  out.items.reserve(out.items.size() + dirty_items_.size());
  // Rows of the recycled pools first (no allocation while the learner waits), and cache hints
  // ahead: a user's meta and vectors kUserHintAhead users ahead, the lists its meta points to
  // half as far ahead (the meta is in cache by then).
  constexpr size_t kUserHintAhead = 8;
  for (size_t k = 0; k < dirty_users_.size(); ++k) {
    if (k + kUserHintAhead < dirty_users_.size()) HintUserRows(dirty_users_[k + kUserHintAhead]);
    if (k + kUserHintAhead / 2 < dirty_users_.size()) {
      const UserMeta& m = user_meta_[dirty_users_[k + kUserHintAhead / 2]];
      __builtin_prefetch(m.seen.data());  // copied from its start
      HintUserLists(m);
    }
    const uint32_t u = dirty_users_[k];
    user_dirty_[u] = 0;
    if (user_meta_[u].forgotten) continue;
    UserState s = TakeSpare(out.spare_users);
    ExportUserInto(u, s);
    out.users.emplace_back(u, std::move(s));
  }
  for (uint32_t i : dirty_items_) {
    item_dirty_[i] = 0;
    ItemState s = TakeSpare(out.spare_items);
    ExportItemInto(i, s);
    out.items.emplace_back(i, std::move(s));
  }
  out.forgotten_users.insert(out.forgotten_users.end(), forgotten_users_.begin(),
                             forgotten_users_.end());
  std::sort(rewritten_rows_.begin(), rewritten_rows_.end());
  taken_first_edge_ = out.edges.size();
  for (uint32_t r : rewritten_rows_) {
    row_rewritten_[r] = 0;
    out.rewritten_rows.push_back(r);
    // In slot order: FinishTakeChanges sorts, after the lock.
    graph_.Row(r).ForEach([&](uint32_t b, float w) { out.edges.push_back({r, b, w}); });
  }
  taken_edges_.swap(dirty_edges_);  // the emptied log of the last take comes back
  taken_rewritten_.swap(rewritten_rows_);
  out.global = ExportGlobal();
  out.dim = dim_;
  dirty_users_.clear();
  dirty_items_.clear();
  rewritten_rows_.clear();
  forgotten_users_.clear();
}

void OnlineModel::FinishTakeChanges(ChangeSet& out) {
  // The rows written whole carry all their edges already: their logged changes are dropped.
  taken_rewritten_mark_.assign(taken_rewritten_.empty() ? 0 : taken_rewritten_.back() + 1, 0);
  for (uint32_t r : taken_rewritten_) taken_rewritten_mark_[r] = 1;
  const size_t first = std::min(taken_first_edge_, out.edges.size());
  out.edges.reserve(out.edges.size() + taken_edges_.size());
  for (const EdgeState& e : taken_edges_.entries()) {
    if (e.a < taken_rewritten_mark_.size() && taken_rewritten_mark_[e.a]) continue;
    out.edges.push_back(e);
  }
  // The rows written whole and the patches, together: no row is both, so each row is one run.
  // The sort is stable, so of an edge logged more than once the last change comes last.
  const std::span<EdgeState> take = std::span(out.edges).subspan(first);
  SortEdges(take, edge_scratch_);
  out.edges.resize(first + KeepLastPerEdge(take));
  taken_edges_.Clear();
  taken_rewritten_.clear();
}

UserState OnlineModel::ExportUser(uint32_t u) const {
  UserState s;
  ExportUserInto(u, s);
  return s;
}

void OnlineModel::ExportUserInto(uint32_t u, UserState& s) const {
  const UserMeta& m = user_meta_[u];
  s.p.assign(&p_[size_t{u} * dim_], &p_[size_t{u} * dim_] + dim_);
  s.h.assign(&h_[size_t{u} * dim_], &h_[size_t{u} * dim_] + dim_);
  s.z = m.z;
  s.grad_sq = m.grad_sq;
  s.seen.assign(m.seen.begin(), m.seen.end());
  s.recent_items.assign(m.recent_items.begin(), m.recent_items.end());
  s.recent_weights.assign(m.recent_weights.begin(), m.recent_weights.end());
  s.events = m.events;
  s.last_ts = m.last_ts;
  s.sketch.assign(m.sketch.signature().begin(), m.sketch.signature().end());
  s.sketch_empty = m.sketch.empty();
}

ItemState OnlineModel::ExportItem(uint32_t i) const {
  ItemState s;
  ExportItemInto(i, s);
  return s;
}

void OnlineModel::ExportItemInto(uint32_t i, ItemState& s) const {
  s.v.assign(ItemVector(i), ItemVector(i) + dim_);
  s.bias = item_bias_[i];
  s.grad_sq = item_grad_sq_[i];
  s.count = item_count_[i];
  s.pop = item_pop_[i];
  s.graph_count = graph_.Count(i);
}

GlobalState OnlineModel::ExportGlobal() const {
  GlobalState g;
  g.clock = clock_;
  g.pop_anchor = pop_anchor_;
  g.recent_positives = recent_positives_;
  g.recent_pos_next = recent_pos_next_;
  g.mix = mix_;
  g.mix_grad_sq = mix_grad_sq_;
  return g;
}

void OnlineModel::ExportRow(uint32_t a, std::vector<EdgeState>& out) const {
  std::vector<EdgeState> row;
  graph_.Row(a).ForEach([&](uint32_t b, float w) { row.push_back({a, b, w}); });
  std::sort(row.begin(), row.end(),
            [](const EdgeState& x, const EdgeState& y) { return x.b < y.b; });
  out.insert(out.end(), row.begin(), row.end());
}

void OnlineModel::ImportUser(uint32_t u, const UserState& s) {
  EnsureUser(u, /*init=*/false);  // the row is overwritten below
  UserMeta& m = user_meta_[u];
  std::copy_n(s.p.data(), dim_, &p_[size_t{u} * dim_]);
  std::copy_n(s.h.data(), dim_, &h_[size_t{u} * dim_]);
  m.z = s.z;
  m.grad_sq = s.grad_sq;
  m.seen = s.seen;
  // Stored with a longer cooccurrence_window / neighbourhood_items than now: keep the most
  // recent history_cap_ (Observe() only ever trims one entry per event).
  const size_t recent = std::min(s.recent_items.size(), history_cap_);
  m.recent_items.assign(s.recent_items.begin(), s.recent_items.begin() + recent);
  m.recent_weights.assign(s.recent_weights.begin(),
                          s.recent_weights.begin() + std::min(recent, s.recent_weights.size()));
  m.events = s.events;
  m.last_ts = s.last_ts;
  m.sketch = MinHashSketch::FromSignature(s.sketch, s.sketch_empty);
  m.forgotten = false;
  RefreshUserVector(u);
}

void OnlineModel::ImportItem(uint32_t i, const ItemState& s) {
  EnsureItem(i, /*init=*/false);
  std::copy_n(s.v.data(), dim_, &v_[size_t{i} * dim_]);
  item_bias_[i] = s.bias;
  item_grad_sq_[i] = s.grad_sq;
  item_count_[i] = s.count;
  item_pop_[i] = s.pop;
  graph_.SetCount(i, s.graph_count);
}

void OnlineModel::ImportGlobal(const GlobalState& g) {
  clock_ = g.clock;
  pop_anchor_ = g.pop_anchor;
  // The ring is written at recent_pos_next_ once full: a stored state that decodes but does
  // not fit this build's ring (another ring size, a damaged value) is cut to fit, never
  // indexed out of bounds.
  recent_positives_ = g.recent_positives;
  if (recent_positives_.size() > kRecentPositives) recent_positives_.resize(kRecentPositives);
  recent_pos_next_ = recent_positives_.size() == kRecentPositives
                         ? static_cast<size_t>(g.recent_pos_next % kRecentPositives)
                         : 0;
  mix_ = g.mix;
  mix_grad_sq_ = g.mix_grad_sq;
}

void OnlineModel::ImportEdge(const EdgeState& e) {
  EnsureItem(std::max(e.a, e.b));
  if (e.w != 0.0f) graph_.SetEdge(e.a, e.b, e.w);
}

void OnlineModel::ForgetUser(uint32_t u) {
  if (!HasUser(u)) return;
  UserMeta& m = user_meta_[u];
  std::fill_n(&p_[size_t{u} * dim_], dim_, 0.0f);
  std::fill_n(&h_[size_t{u} * dim_], dim_, 0.0f);
  std::fill_n(&q_[size_t{u} * dim_], dim_, 0.0f);
  m = UserMeta();
  m.sketch = MinHashSketch(static_cast<int>(opts_.minhash_size));
  m.forgotten = true;
  if (track_changes_) forgotten_users_.push_back(u);
}

std::vector<Scored> OnlineModel::SimilarUsers(uint32_t u, size_t k, Metric metric) const {
  std::vector<float> scores(users());
  if (metric == Metric::kJaccard) {
    const MinHashSketch& s = Sketch(u);
    for (size_t v = 0; v < users(); ++v) {
      scores[v] = static_cast<float>(s.EstimateJaccard(user_meta_[v].sketch));
    }
  } else {
    ScoreAll(metric, UserVector(u), q_.data(), users(), dim_, scores.data());
  }
  scores[u] = -std::numeric_limits<float>::infinity();
  for (size_t v = 0; v < users(); ++v) {
    if (user_meta_[v].forgotten || user_meta_[v].events == 0)
      scores[v] = -std::numeric_limits<float>::infinity();
  }
  return TopK(scores, k);
}

std::vector<Scored> OnlineModel::SimilarItems(uint32_t i, size_t k, Metric metric) const {
  std::vector<float> scores(items());
  ScoreAll(metric == Metric::kJaccard ? Metric::kCosine : metric, ItemVector(i), v_.data(), items(),
           dim_, scores.data());
  scores[i] = -std::numeric_limits<float>::infinity();
  return TopK(scores, k);
}

size_t OnlineModel::MemoryBytes() const {
  size_t total = (p_.capacity() + h_.capacity() + q_.capacity() + v_.capacity()) * sizeof(float);
  total += (item_bias_.capacity() + item_grad_sq_.capacity()) * 4 + item_count_.capacity() * 8;
  total += item_pop_.capacity() * 8 + graph_.MemoryBytes();
  for (const auto& m : user_meta_) {
    total += sizeof(UserMeta) + m.seen.capacity() * 4 + m.recent_items.capacity() * 8 +
             m.sketch.signature().size() * 4;
  }
  return total;
}

}  // namespace simstream::engine
