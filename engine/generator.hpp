// Synthetic event streams with planted structure, behind `simstream generate`.
//
// Users belong to communities and items to clusters (as many clusters as communities).
// Community c likes its primary cluster c and its secondary cluster (c + 1) mod C; positive
// events mostly land there, a `noise` share lands on uniformly random items, and "dislike"
// events land on clusters the user does not like. Some users drift to another community once,
// in the second half of the stream. The ground truth is returned (and can be written as JSON)
// so tests and evaluations can check that a learned metric recovers the structure.
//
// Output is bit-identical for the same options on every platform and standard library: all
// randomness comes from our own xoshiro256** and the event loop uses only integer arithmetic
// and exact floating-point comparisons. (The Zipf tables use std::pow; a last-ulp difference
// between libms could move a draw only when it falls within 2^-52 of a table boundary.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "config/result.hpp"
#include "engine/event.hpp"

namespace simstream::engine {

struct GeneratorOptions {
  // Number of users, named "u0".."u<users-1>". Default: 2000.
  size_t users = 2000;
  // Number of items, named "i0".."i<items-1>". Default: 1000.
  size_t items = 1000;
  // Exact number of events produced; at least users * min_user_events. Default: 100000.
  size_t events = 100000;
  // User communities; items are split into the same number of clusters (sizes differ by at
  // most one, membership is random). Default: 10.
  size_t communities = 10;
  // Seed of every random choice. Default: 1.
  uint64_t seed = 1;
  // Share of positive events on a uniformly random item (exploration). Default: 0.1.
  double noise = 0.1;
  // Share of events that are "dislike" on an item of a cluster the user does not like. With
  // fewer than 3 communities every cluster is liked, so no dislikes are produced. Default: 0.03.
  double negative_rate = 0.03;
  // Share of users whose taste moves to another community once, at a random point in the
  // second half of the stream (none when there is a single community). Default: 0.1.
  double drift_fraction = 0.1;
  // Zipf exponent of item popularity inside a cluster (0: uniform). Default: 1.0.
  double item_zipf = 1.0;
  // Zipf exponent of user activity (0: uniform); every user still gets at least
  // min_user_events. Default: 0.5.
  double user_activity_zipf = 0.5;
  // Fewest events of any user. Default: 5.
  size_t min_user_events = 5;
  // Timestamp of the first event, epoch milliseconds. Default: 1700000000000.
  int64_t start_ts_ms = 1700000000000;
  // Mean gap between consecutive events; gaps are uniform in [1, 2 * mean - 1], so timestamps
  // strictly increase when the mean is at least 1 (and are all equal when it is 0).
  // Default: 1000.
  int64_t mean_gap_ms = 1000;
  // Share of a community's non-noise positive events that go to its secondary cluster.
  // Default: 0.2.
  double secondary_share = 0.2;
};

// What was planted. Indices are the numbers in the generator's ids: user "u<index>",
// item "i<index>".
struct GroundTruth {
  std::vector<uint32_t> user_community;          // final community of each user (after drift)
  std::vector<uint32_t> user_initial_community;  // community at the start of the stream
  std::vector<bool> user_drifted;
  // For drifted users, the timestamp of the first event of the stream (any user's) that follows
  // the drift: this user's events with ts_ms >= it follow the new community, earlier ones the
  // initial one. -1 for users who did not drift.
  std::vector<int64_t> user_drift_ts_ms;
  std::vector<uint32_t> item_cluster;  // cluster of each item
};

// The primary cluster liked by `community` is the cluster with the same number.
inline uint32_t PrimaryCluster(uint32_t community) {
  return community;
}
// The secondary cluster liked by `community` out of `communities`.
inline uint32_t SecondaryCluster(uint32_t community, size_t communities) {
  return static_cast<uint32_t>((community + 1) % communities);
}

// Checks ranges: users, items, communities >= 1; communities <= items; shares in [0, 1];
// Zipf exponents finite and >= 0; events >= 1 and >= users * min_user_events; timestamps
// that cannot overflow. Error code "invalid_generator_options", the message names the field.
[[nodiscard]] Status ValidateGeneratorOptions(const GeneratorOptions& opts);

// Calls `sink` once per event, in timestamp order, exactly opts.events times, and returns the
// truth. Deterministic for given options. Events are streamed, not held: memory is
// O(users + items) and time O(events * (log users + log items)). Positive events have types
// "click" (most), "view", "rating" and "purchase"; negatives have type "dislike". No event
// carries an explicit weight in the contract sense: `Event::weight` holds the type's default
// weight (config::ModelOptions::event_weights), as if resolved by ParseEvent with the
// defaults — serialise `type` without `weight` to let the consumer's weights apply.
// Options that fail ValidateGeneratorOptions produce no events and an empty truth.
GroundTruth Generate(const GeneratorOptions& opts, const std::function<void(const Event&)>& sink);

// Writes the truth as JSON:
// {"users":{"u0":{"community":3,"initial_community":3,"drifted":false},...},
//  "items":{"i0":{"cluster":2},...},"options":{...}}
// Drifted users also carry "drift_ts". Error code "io_error" when the file cannot be written.
[[nodiscard]] Status WriteTruth(const std::string& path, const GroundTruth& truth,
                                const GeneratorOptions& opts);

// Reads what WriteTruth wrote. Error codes: "io_error" (cannot open), "invalid_truth"
// (not JSON, missing fields, ids that are not "u<n>"/"i<n>" covering 0..n-1).
[[nodiscard]] Result<GroundTruth> ReadTruth(const std::string& path);

// Building blocks, public for tests only.
namespace generator_detail {

// xoshiro256** (Blackman & Vigna), seeded through splitmix64.
class Xoshiro256ss {
 public:
  explicit Xoshiro256ss(uint64_t seed);
  uint64_t Next();
  // Uniform in [0, n) without bias (Lemire's multiply-shift with rejection); n > 0.
  uint64_t Below(uint64_t n);
  // Uniform in [0, 1), 53 random bits.
  double Uniform01() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t s_[4];
};

// One step of splitmix64 on `state` (advances it), the reference seeding generator.
uint64_t SplitMix64Next(uint64_t& state);

// Counts per index with fast "pick the index holding the target-th remaining unit" and
// decrement: a Fenwick tree, O(log n) per operation.
class FenwickSampler {
 public:
  explicit FenwickSampler(const std::vector<uint64_t>& counts);
  uint64_t Total() const { return total_; }
  // The smallest i with counts[0] + ... + counts[i] > target; target < Total().
  size_t Find(uint64_t target) const;
  // counts[i] -= 1; counts[i] > 0.
  void Decrement(size_t i);

 private:
  std::vector<uint64_t> tree_;  // 1-based
  size_t top_bit_ = 0;
  uint64_t total_ = 0;
};

// Splits `total` into integer shares proportional to non-negative `weights` (sum > 0): the
// shares are differences of rounded-down cumulative sums, so they are >= 0 and sum to `total`.
std::vector<uint64_t> SplitProportionally(uint64_t total, const std::vector<double>& weights);

// Cumulative Zipf weights 1/(r+1)^exponent for ranks r = 0..n-1.
std::vector<double> ZipfCumulative(size_t n, double exponent);

// The index r with cumulative[r-1] <= u * cumulative.back() < cumulative[r]; u in [0, 1).
size_t SampleCumulative(const std::vector<double>& cumulative, double u);

}  // namespace generator_detail
}  // namespace simstream::engine
