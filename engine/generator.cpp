#include "engine/generator.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "config/options.hpp"

namespace simstream::engine {
namespace generator_detail {

uint64_t SplitMix64Next(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

Xoshiro256ss::Xoshiro256ss(uint64_t seed) {
  uint64_t state = seed;
  for (uint64_t& word : s_) word = SplitMix64Next(state);
}

namespace {
inline uint64_t Rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}
}  // namespace

uint64_t Xoshiro256ss::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

uint64_t Xoshiro256ss::Below(uint64_t n) {
  // Lemire, "Fast random integer generation in an interval" (2019): the rejection makes every
  // value exactly equally likely, so the output does not depend on how large n is.
  unsigned __int128 m = static_cast<unsigned __int128>(Next()) * n;
  auto low = static_cast<uint64_t>(m);
  if (low < n) {
    const uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      m = static_cast<unsigned __int128>(Next()) * n;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

FenwickSampler::FenwickSampler(const std::vector<uint64_t>& counts) : tree_(counts.size() + 1, 0) {
  const size_t n = counts.size();
  for (size_t i = 1; i <= n; ++i) {
    tree_[i] += counts[i - 1];
    total_ += counts[i - 1];
    const size_t parent = i + (i & (~i + 1));
    if (parent <= n) tree_[parent] += tree_[i];
  }
  top_bit_ = 1;
  while (top_bit_ * 2 <= n) top_bit_ *= 2;
  if (n == 0) top_bit_ = 0;
}

size_t FenwickSampler::Find(uint64_t target) const {
  const size_t n = tree_.size() - 1;
  size_t pos = 0;
  for (size_t step = top_bit_; step != 0; step >>= 1) {
    const size_t next = pos + step;
    if (next <= n) {
      // Written for conditional moves: which way the descent goes is unpredictable.
      const uint64_t value = tree_[next];
      const bool go = value <= target;
      pos = go ? next : pos;
      target -= go ? value : 0;
    }
  }
  return pos;  // 1-based position pos + 1, i.e. 0-based index pos
}

void FenwickSampler::Decrement(size_t i) {
  for (size_t pos = i + 1; pos < tree_.size(); pos += pos & (~pos + 1)) --tree_[pos];
  --total_;
}

std::vector<uint64_t> SplitProportionally(uint64_t total, const std::vector<double>& weights) {
  std::vector<uint64_t> shares(weights.size(), 0);
  if (weights.empty()) return shares;
  double sum = 0;
  for (double w : weights) sum += w;
  double cumulative = 0;
  uint64_t given = 0;
  for (size_t i = 0; i + 1 < weights.size(); ++i) {
    cumulative += weights[i];
    // Rounded-down cumulative targets are monotone, so every share is >= 0; clamping guards
    // against rounding pushing a target past `total`.
    const double exact = static_cast<double>(total) * (cumulative / sum);
    auto target = static_cast<uint64_t>(std::floor(exact));
    target = std::clamp(target, given, total);
    shares[i] = target - given;
    given = target;
  }
  shares.back() = total - given;
  return shares;
}

std::vector<double> ZipfCumulative(size_t n, double exponent) {
  std::vector<double> cumulative(n);
  double sum = 0;
  for (size_t r = 0; r < n; ++r) {
    sum += exponent == 0 ? 1.0 : std::pow(static_cast<double>(r + 1), -exponent);
    cumulative[r] = sum;
  }
  return cumulative;
}

size_t SampleCumulative(const std::vector<double>& cumulative, double u) {
  // A branch-free upper_bound: this runs per event on unpredictable targets, where a
  // mispredicted branch per halving step costs more than the comparisons.
  const double target = u * cumulative.back();
  const double* data = cumulative.data();
  size_t lo = 0;  // the answer lies in [lo, lo + n]
  for (size_t n = cumulative.size(); n > 1; n -= n / 2) {
    lo = data[lo + n / 2 - 1] <= target ? lo + n / 2 : lo;
  }
  lo += data[lo] <= target ? 1 : 0;
  return std::min(lo, cumulative.size() - 1);
}

}  // namespace generator_detail

namespace {

using generator_detail::FenwickSampler;
using generator_detail::Xoshiro256ss;

Error InvalidOption(const std::string& field, const std::string& why) {
  return Error{"invalid_generator_options", "generator option '" + field + "' " + why};
}

bool IsShare(double x) {
  return std::isfinite(x) && x >= 0.0 && x <= 1.0;
}

std::vector<uint32_t> Permutation(size_t n, Xoshiro256ss& rng) {
  std::vector<uint32_t> perm(n);
  for (size_t i = 0; i < n; ++i) perm[i] = static_cast<uint32_t>(i);
  for (size_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[rng.Below(i)]);
  return perm;
}

// Writes `prefix` and `index` into `out`, reusing its capacity (this runs per event).
void AssignId(std::string& out, char prefix, uint64_t index) {
  char buf[24];
  buf[0] = prefix;
  const auto end = std::to_chars(buf + 1, buf + sizeof(buf), index).ptr;
  out.assign(buf, end);
}

struct PositiveType {
  const char* name;
  uint32_t per_mille;  // cumulative share out of 1000
};
// Mostly clicks; the rest vary so that type weighting has something to do.
constexpr PositiveType kPositiveTypes[] = {
    {"click", 700}, {"view", 850}, {"rating", 950}, {"purchase", 1000}};

}  // namespace

Status ValidateGeneratorOptions(const GeneratorOptions& opts) {
  constexpr size_t kMaxIndex = std::numeric_limits<uint32_t>::max();
  if (opts.users < 1) return InvalidOption("users", "must be at least 1");
  if (opts.users > kMaxIndex) return InvalidOption("users", "must be below 2^32");
  if (opts.items < 1) return InvalidOption("items", "must be at least 1");
  if (opts.items > kMaxIndex) return InvalidOption("items", "must be below 2^32");
  if (opts.communities < 1) return InvalidOption("communities", "must be at least 1");
  if (opts.communities > opts.items) {
    return InvalidOption("communities", "must not exceed items (" + std::to_string(opts.items) +
                                            "): every item cluster needs an item");
  }
  if (opts.events < 1) return InvalidOption("events", "must be at least 1");
  if (opts.min_user_events > 0 && opts.users > opts.events / opts.min_user_events) {
    return InvalidOption("events", "must be at least users * min_user_events (" +
                                       std::to_string(opts.users) + " * " +
                                       std::to_string(opts.min_user_events) + ")");
  }
  const std::pair<const char*, double> shares[] = {{"noise", opts.noise},
                                                   {"negative_rate", opts.negative_rate},
                                                   {"drift_fraction", opts.drift_fraction},
                                                   {"secondary_share", opts.secondary_share}};
  for (const auto& [name, value] : shares) {
    if (!IsShare(value)) return InvalidOption(name, "must be in [0, 1]");
  }
  if (!std::isfinite(opts.item_zipf) || opts.item_zipf < 0) {
    return InvalidOption("item_zipf", "must be finite and >= 0");
  }
  if (!std::isfinite(opts.user_activity_zipf) || opts.user_activity_zipf < 0) {
    return InvalidOption("user_activity_zipf", "must be finite and >= 0");
  }
  if (opts.start_ts_ms < 0) return InvalidOption("start_ts_ms", "must be >= 0");
  if (opts.mean_gap_ms < 0) return InvalidOption("mean_gap_ms", "must be >= 0");
  // The last timestamp is at most start + (events - 1) * (2 * mean - 1).
  const __int128 last = static_cast<__int128>(opts.start_ts_ms) +
                        static_cast<__int128>(opts.events) * 2 * opts.mean_gap_ms;
  if (last > std::numeric_limits<int64_t>::max()) {
    return InvalidOption("mean_gap_ms", "with this many events overflows the timestamps");
  }
  return Status::Ok();
}

GroundTruth Generate(const GeneratorOptions& opts, const std::function<void(const Event&)>& sink) {
  GroundTruth truth;
  if (!ValidateGeneratorOptions(opts).ok()) return truth;

  Xoshiro256ss rng(opts.seed);
  const size_t num_users = opts.users;
  const size_t num_items = opts.items;
  const size_t num_clusters = opts.communities;

  // Items: balanced clusters with random membership; a member's position in its cluster is
  // its popularity rank.
  truth.item_cluster.resize(num_items);
  std::vector<std::vector<uint32_t>> members(num_clusters);
  {
    const std::vector<uint32_t> perm = Permutation(num_items, rng);
    for (size_t k = 0; k < num_items; ++k) {
      const auto cluster = static_cast<uint32_t>(k % num_clusters);
      truth.item_cluster[perm[k]] = cluster;
      members[cluster].push_back(perm[k]);
    }
  }
  // Cluster sizes differ by at most one, so two tables serve all clusters.
  std::map<size_t, std::vector<double>> zipf_by_size;
  for (const auto& m : members) {
    if (!zipf_by_size.count(m.size())) {
      zipf_by_size[m.size()] = generator_detail::ZipfCumulative(m.size(), opts.item_zipf);
    }
  }
  std::vector<const std::vector<double>*> zipf(num_clusters);
  for (size_t c = 0; c < num_clusters; ++c) zipf[c] = &zipf_by_size[members[c].size()];

  // Users: balanced communities with random membership.
  truth.user_initial_community.resize(num_users);
  {
    const std::vector<uint32_t> perm = Permutation(num_users, rng);
    for (size_t k = 0; k < num_users; ++k) {
      truth.user_initial_community[perm[k]] = static_cast<uint32_t>(k % num_clusters);
    }
  }
  truth.user_community = truth.user_initial_community;
  truth.user_drifted.assign(num_users, false);
  truth.user_drift_ts_ms.assign(num_users, -1);

  // Drift: an exact share of users, each moving to a different community at a global event
  // index in the second half of the stream.
  const uint64_t num_events = opts.events;
  std::vector<uint64_t> drift_at(num_users, std::numeric_limits<uint64_t>::max());
  std::vector<std::pair<uint64_t, uint32_t>> drift_order;  // (event index, user)
  if (num_clusters > 1) {
    const auto num_drifted =
        static_cast<size_t>(std::llround(opts.drift_fraction * static_cast<double>(num_users)));
    const std::vector<uint32_t> perm = Permutation(num_users, rng);
    const uint64_t half = num_events / 2;
    for (size_t k = 0; k < std::min(num_drifted, num_users); ++k) {
      const uint32_t u = perm[k];
      const uint32_t from = truth.user_initial_community[u];
      truth.user_community[u] =
          static_cast<uint32_t>((from + 1 + rng.Below(num_clusters - 1)) % num_clusters);
      truth.user_drifted[u] = true;
      drift_at[u] = half + rng.Below(num_events - half);
      drift_order.emplace_back(drift_at[u], u);
    }
    std::sort(drift_order.begin(), drift_order.end());
  }

  // Activity: everyone gets min_user_events, the rest is split by a Zipf law over a random
  // ranking of the users (a few heavy users, a long tail).
  std::vector<uint64_t> counts(num_users, opts.min_user_events);
  {
    const uint64_t extra = num_events - static_cast<uint64_t>(num_users) * opts.min_user_events;
    std::vector<double> weights(num_users);
    for (size_t r = 0; r < num_users; ++r) {
      weights[r] = opts.user_activity_zipf == 0
                       ? 1.0
                       : std::pow(static_cast<double>(r + 1), -opts.user_activity_zipf);
    }
    const std::vector<uint64_t> shares = generator_detail::SplitProportionally(extra, weights);
    const std::vector<uint32_t> perm = Permutation(num_users, rng);
    for (size_t r = 0; r < num_users; ++r) counts[perm[r]] += shares[r];
  }

  // What the event loop needs per user, packed so a random user costs one cache miss.
  struct UserState {
    uint64_t drift_at;
    uint32_t initial;
    uint32_t final;
  };
  std::vector<UserState> user_state(num_users);
  for (size_t u = 0; u < num_users; ++u) {
    user_state[u] = {drift_at[u], truth.user_initial_community[u], truth.user_community[u]};
  }
  drift_at.clear();
  drift_at.shrink_to_fit();

  // Schedule: drawing the next user in proportion to the events they have left yields a
  // uniformly random interleaving of everybody's events with exact per-user counts.
  FenwickSampler remaining(counts);
  counts.clear();
  counts.shrink_to_fit();

  // Weights as ParseEvent would resolve them under the default model options, so in-process
  // consumers see a dislike as negative without an explicit weight in the stream.
  const config::ModelOptions model_defaults;
  const auto weight_of = [&](const std::string& type) {
    const auto it = model_defaults.event_weights.find(type);
    return it == model_defaults.event_weights.end() ? model_defaults.default_event_weight
                                                    : it->second;
  };
  double positive_weights[std::size(kPositiveTypes)];
  for (size_t t = 0; t < std::size(kPositiveTypes); ++t) {
    positive_weights[t] = weight_of(kPositiveTypes[t].name);
  }
  const double dislike_weight = weight_of("dislike");
  const bool can_dislike = num_clusters >= 3;  // otherwise every cluster is liked

  Event event;
  int64_t ts = opts.start_ts_ms;
  size_t next_drift = 0;
  for (uint64_t index = 0; index < num_events; ++index) {
    if (index > 0 && opts.mean_gap_ms > 0) {
      ts += 1 + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(2 * opts.mean_gap_ms - 1)));
    }
    while (next_drift < drift_order.size() && drift_order[next_drift].first <= index) {
      truth.user_drift_ts_ms[drift_order[next_drift].second] = ts;
      ++next_drift;
    }
    const size_t u = remaining.Find(rng.Below(remaining.Total()));
    remaining.Decrement(u);
    const UserState& state = user_state[u];
    const uint32_t community = index >= state.drift_at ? state.final : state.initial;
    const uint32_t secondary = SecondaryCluster(community, num_clusters);

    uint32_t item;
    if (can_dislike && rng.Uniform01() < opts.negative_rate) {
      // Clusters secondary+1 .. secondary+C-2 (mod C) are exactly the ones not liked.
      const auto cluster =
          static_cast<uint32_t>((secondary + 1 + rng.Below(num_clusters - 2)) % num_clusters);
      item = members[cluster][generator_detail::SampleCumulative(*zipf[cluster], rng.Uniform01())];
      event.type.assign("dislike");
      event.weight = dislike_weight;
    } else {
      if (rng.Uniform01() < opts.noise) {
        item = static_cast<uint32_t>(rng.Below(num_items));
      } else {
        const uint32_t cluster =
            rng.Uniform01() < opts.secondary_share ? secondary : PrimaryCluster(community);
        item =
            members[cluster][generator_detail::SampleCumulative(*zipf[cluster], rng.Uniform01())];
      }
      const uint64_t draw = rng.Below(1000);
      size_t t = 0;
      while (draw >= kPositiveTypes[t].per_mille) ++t;
      event.type.assign(kPositiveTypes[t].name);
      event.weight = positive_weights[t];
    }
    AssignId(event.user, 'u', u);
    AssignId(event.item, 'i', item);
    event.ts_ms = ts;
    sink(event);
  }
  return truth;
}

Status WriteTruth(const std::string& path, const GroundTruth& truth, const GeneratorOptions& opts) {
  nlohmann::json users = nlohmann::json::object();
  for (size_t u = 0; u < truth.user_community.size(); ++u) {
    nlohmann::json user = {{"community", truth.user_community[u]},
                           {"initial_community", truth.user_initial_community[u]},
                           {"drifted", static_cast<bool>(truth.user_drifted[u])}};
    if (truth.user_drifted[u]) user["drift_ts"] = truth.user_drift_ts_ms[u];
    users["u" + std::to_string(u)] = std::move(user);
  }
  nlohmann::json items = nlohmann::json::object();
  for (size_t i = 0; i < truth.item_cluster.size(); ++i) {
    items["i" + std::to_string(i)] = {{"cluster", truth.item_cluster[i]}};
  }
  const nlohmann::json options = {{"users", opts.users},
                                  {"items", opts.items},
                                  {"events", opts.events},
                                  {"communities", opts.communities},
                                  {"seed", opts.seed},
                                  {"noise", opts.noise},
                                  {"negative_rate", opts.negative_rate},
                                  {"drift_fraction", opts.drift_fraction},
                                  {"item_zipf", opts.item_zipf},
                                  {"user_activity_zipf", opts.user_activity_zipf},
                                  {"min_user_events", opts.min_user_events},
                                  {"start_ts_ms", opts.start_ts_ms},
                                  {"mean_gap_ms", opts.mean_gap_ms},
                                  {"secondary_share", opts.secondary_share}};
  const nlohmann::json doc = {
      {"users", std::move(users)}, {"items", std::move(items)}, {"options", options}};
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return Error{"io_error", "cannot open '" + path + "' for writing the ground truth"};
  out << doc.dump() << '\n';
  out.close();
  if (!out) return Error{"io_error", "cannot write the ground truth to '" + path + "'"};
  return Status::Ok();
}

namespace {

Error InvalidTruth(const std::string& path, const std::string& why) {
  return Error{"invalid_truth", "ground truth '" + path + "': " + why};
}

// Index of an id "<prefix><n>" with n < count, or -1.
int64_t IdIndex(std::string_view id, char prefix, size_t count) {
  if (id.size() < 2 || id[0] != prefix) return -1;
  if (id.size() > 2 && id[1] == '0') return -1;  // one spelling per index
  uint64_t n = 0;
  const auto [ptr, ec] = std::from_chars(id.data() + 1, id.data() + id.size(), n);
  if (ec != std::errc() || ptr != id.data() + id.size() || n >= count) return -1;
  return static_cast<int64_t>(n);
}

bool GetUint32(const nlohmann::json& obj, const char* key, uint32_t& out) {
  const auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_unsigned()) return false;
  const auto v = it->get<uint64_t>();
  if (v > std::numeric_limits<uint32_t>::max()) return false;
  out = static_cast<uint32_t>(v);
  return true;
}

}  // namespace

Result<GroundTruth> ReadTruth(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"io_error", "cannot open ground truth '" + path + "'"};
  const nlohmann::json doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return InvalidTruth(path, "not valid JSON");
  if (!doc.is_object()) return InvalidTruth(path, "not a JSON object");
  const auto users = doc.find("users");
  const auto items = doc.find("items");
  if (users == doc.end() || !users->is_object()) return InvalidTruth(path, "no \"users\" object");
  if (items == doc.end() || !items->is_object()) return InvalidTruth(path, "no \"items\" object");

  GroundTruth truth;
  const size_t num_users = users->size();
  truth.user_community.resize(num_users);
  truth.user_initial_community.resize(num_users);
  truth.user_drifted.resize(num_users);
  truth.user_drift_ts_ms.assign(num_users, -1);
  // n distinct keys each naming an index below n cover 0..n-1 exactly.
  for (const auto& [id, user] : users->items()) {
    const int64_t u = IdIndex(id, 'u', num_users);
    if (u < 0) return InvalidTruth(path, "user id '" + id + "' is not u0..u<users-1>");
    if (!user.is_object() || !GetUint32(user, "community", truth.user_community[u]) ||
        !GetUint32(user, "initial_community", truth.user_initial_community[u])) {
      return InvalidTruth(path, "user '" + id + "' lacks community/initial_community");
    }
    const auto drifted = user.find("drifted");
    if (drifted == user.end() || !drifted->is_boolean()) {
      return InvalidTruth(path, "user '" + id + "' lacks a boolean \"drifted\"");
    }
    truth.user_drifted[u] = drifted->get<bool>();
    const auto drift_ts = user.find("drift_ts");
    if (drift_ts != user.end()) {
      if (!drift_ts->is_number_integer()) {
        return InvalidTruth(path, "user '" + id + "' has a non-integer \"drift_ts\"");
      }
      truth.user_drift_ts_ms[u] = drift_ts->get<int64_t>();
    }
  }
  const size_t num_items = items->size();
  truth.item_cluster.resize(num_items);
  for (const auto& [id, item] : items->items()) {
    const int64_t i = IdIndex(id, 'i', num_items);
    if (i < 0) return InvalidTruth(path, "item id '" + id + "' is not i0..i<items-1>");
    if (!item.is_object() || !GetUint32(item, "cluster", truth.item_cluster[i])) {
      return InvalidTruth(path, "item '" + id + "' lacks a cluster");
    }
  }
  return truth;
}

}  // namespace simstream::engine
