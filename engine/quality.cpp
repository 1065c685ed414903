#include "engine/quality.hpp"

#include <charconv>
#include <optional>

namespace simstream::engine {
namespace {
std::optional<uint32_t> TruthIndex(const std::string& id, char prefix, size_t limit) {
  if (id.size() < 2 || id[0] != prefix) return std::nullopt;
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(id.data() + 1, id.data() + id.size(), v);
  if (ec != std::errc() || p != id.data() + id.size() || v >= limit) return std::nullopt;
  return v;
}
}  // namespace

NeighbourQuality PlantedNeighbourQuality(const OnlineModel& model, const IdInterner& users,
                                         const IdInterner& items, const GroundTruth& truth,
                                         size_t k, uint64_t min_events, Metric metric) {
  NeighbourQuality q;
  // Truth labels by dense index (-1: unknown).
  std::vector<int64_t> community(users.size(), -1), cluster(items.size(), -1);
  for (uint32_t u = 0; u < users.size(); ++u) {
    if (auto t = TruthIndex(users.Id(u), 'u', truth.user_community.size())) {
      community[u] = truth.user_community[*t];
    }
  }
  for (uint32_t i = 0; i < items.size(); ++i) {
    if (auto t = TruthIndex(items.Id(i), 'i', truth.item_cluster.size())) {
      cluster[i] = truth.item_cluster[*t];
    }
  }
  double sum = 0;
  for (uint32_t u = 0; u < model.users() && u < users.size(); ++u) {
    if (community[u] < 0 || model.UserEvents(u) < min_events) continue;
    const auto nn = model.SimilarUsers(u, k, metric);
    size_t hits = 0;
    for (const auto& s : nn) hits += community[s.id] == community[u];
    sum += static_cast<double>(hits) / static_cast<double>(k);
    ++q.users_evaluated;
  }
  q.user_precision = q.users_evaluated ? sum / static_cast<double>(q.users_evaluated) : 0;

  // Items: count positive interactions from the users' seen lists.
  std::vector<uint64_t> item_events(model.items(), 0);
  for (uint32_t u = 0; u < model.users(); ++u) {
    for (uint32_t i : model.Seen(u)) ++item_events[i];
  }
  sum = 0;
  const Metric item_metric = metric == Metric::kJaccard ? Metric::kCosine : metric;
  for (uint32_t i = 0; i < model.items() && i < items.size(); ++i) {
    if (cluster[i] < 0 || item_events[i] < min_events) continue;
    const auto nn = model.SimilarItems(i, k, item_metric);
    size_t hits = 0;
    for (const auto& s : nn) hits += cluster[s.id] == cluster[i];
    sum += static_cast<double>(hits) / static_cast<double>(k);
    ++q.items_evaluated;
  }
  q.item_precision = q.items_evaluated ? sum / static_cast<double>(q.items_evaluated) : 0;
  return q;
}

}  // namespace simstream::engine
