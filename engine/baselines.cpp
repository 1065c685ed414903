#include "engine/baselines.hpp"

#include <algorithm>
#include <cmath>

namespace simstream::engine {
namespace {
// Inserts x into sorted v; returns false when it was already there.
bool InsertUnique(std::vector<uint32_t>& v, uint32_t x) {
  auto it = std::lower_bound(v.begin(), v.end(), x);
  if (it != v.end() && *it == x) return false;
  v.insert(it, x);
  return true;
}
}  // namespace

PopularityScorer::PopularityScorer(double half_life_events)
    : tau_(half_life_events / std::log(2.0)) {}

void PopularityScorer::Observe(const Interaction& x) {
  ++clock_;
  if (pop_.size() <= x.item) pop_.resize(x.item + 1, 0.0);
  if (x.weight <= 0) return;
  pop_[x.item] += std::exp(static_cast<double>(clock_ - anchor_) / tau_);
  if (static_cast<double>(clock_ - anchor_) / tau_ > 30.0) {
    const double scale = std::exp(-static_cast<double>(clock_ - anchor_) / tau_);
    for (double& p : pop_) p *= scale;
    anchor_ = clock_;
  }
}

void PopularityScorer::ScoreItems(uint32_t /*user*/, std::span<float> out) {
  const double scale = std::exp(-static_cast<double>(clock_ - anchor_) / tau_);
  for (size_t j = 0; j < out.size(); ++j) {
    out[j] = j < pop_.size() ? static_cast<float>(pop_[j] * scale) : 0.0f;
  }
}

void ItemKnnScorer::Observe(const Interaction& x) {
  if (items_of_user_.size() <= x.user) {
    items_of_user_.resize(x.user + 1);
    user_weight_.resize(x.user + 1, 0.0f);
  }
  if (users_of_item_.size() <= x.item) users_of_item_.resize(x.item + 1);
  if (x.weight <= 0) return;
  if (InsertUnique(items_of_user_[x.user], x.item)) {
    InsertUnique(users_of_item_[x.item], x.user);
  }
}

void ItemKnnScorer::ScoreItems(uint32_t user, std::span<float> out) {
  const size_t n = out.size();
  for (size_t j = 0; j < n; ++j) {
    const size_t c = j < users_of_item_.size() ? users_of_item_[j].size() : 0;
    out[j] = kPopularityTieBreak * std::log1p(static_cast<float>(c));
  }
  if (user >= items_of_user_.size()) return;
  // w_v = sum over items i shared by u and v of 1/sqrt(|U(i)|).
  touched_.clear();
  for (uint32_t i : items_of_user_[user]) {
    const float inv = 1.0f / std::sqrt(static_cast<float>(users_of_item_[i].size()));
    for (uint32_t v : users_of_item_[i]) {
      if (user_weight_[v] == 0.0f) touched_.push_back(v);
      user_weight_[v] += inv;
    }
  }
  // Sorting the touched users makes the float summation order independent of history order.
  std::sort(touched_.begin(), touched_.end());
  std::vector<float> acc(n, 0.0f);
  for (uint32_t v : touched_) {
    const float w = user_weight_[v];
    for (uint32_t j : items_of_user_[v]) {
      if (j < n) acc[j] += w;
    }
    user_weight_[v] = 0.0f;
  }
  for (size_t j = 0; j < n; ++j) {
    if (acc[j] == 0.0f) continue;
    float s = acc[j] / std::sqrt(static_cast<float>(users_of_item_[j].size()));
    // The sum above includes i == j for items u has seen (self-similarity 1): remove it.
    if (std::binary_search(items_of_user_[user].begin(), items_of_user_[user].end(),
                           static_cast<uint32_t>(j))) {
      s -= 1.0f;
    }
    out[j] += s;
  }
}

size_t ItemKnnScorer::Cooccurrence(uint32_t i, uint32_t j) const {
  if (i >= users_of_item_.size() || j >= users_of_item_.size()) return 0;
  const auto& a = users_of_item_[i];
  const auto& b = users_of_item_[j];
  size_t c = 0;
  for (size_t x = 0, y = 0; x < a.size() && y < b.size();) {
    if (a[x] < b[y])
      ++x;
    else if (a[x] > b[y])
      ++y;
    else
      ++c, ++x, ++y;
  }
  return c;
}

}  // namespace simstream::engine
