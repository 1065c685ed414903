// Plain row types of the learner's state, for durable storage and export. storage/ encodes
// them; the engine never sees a storage type. Indices are the engine's dense ids, which the
// id dictionaries (also stored) map to external ids.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace simstream::engine {

struct UserState {
  std::vector<float> p;                // free vector
  std::vector<float> h;                // decayed history sum
  float z = 0.0f;                      // history normaliser
  float grad_sq = 0.0f;                // adaptive step accumulator
  std::vector<uint32_t> seen;          // sorted item indices
  std::vector<uint32_t> recent_items;  // most recent first
  std::vector<float> recent_weights;
  uint64_t events = 0;
  int64_t last_ts = 0;
  std::vector<uint32_t> sketch;  // MinHash signature
  bool sketch_empty = true;
};

struct ItemState {
  std::vector<float> v;
  float bias = 0.0f;
  float grad_sq = 0.0f;
  // Counters are doubles: a float stops counting at 2^24 (16.8M events), which a popular item
  // reaches within months.
  double count = 0.0;        // positive interactions (learner's view)
  double pop = 0.0;          // decayed popularity relative to GlobalState::pop_anchor
  double graph_count = 0.0;  // sum of the weights of its co-occurrence links
};

struct GlobalState {
  uint64_t clock = 0;
  uint64_t pop_anchor = 0;
  std::vector<uint32_t> recent_positives;
  uint64_t recent_pos_next = 0;
  std::array<float, 3> mix{};
  std::array<float, 3> mix_grad_sq{};
};

// One directed co-occurrence edge (a's row holds b with weight w; w == 0 means absent).
struct EdgeState {
  uint32_t a = 0;
  uint32_t b = 0;
  float w = 0.0f;
};

// Everything that changed since the last TakeChanges(), as copies taken under the engine's
// lock, together with the stream position that produced it: storage writes it in one batch.
struct ChangeSet {
  std::vector<std::pair<uint32_t, UserState>> users;
  std::vector<uint32_t> forgotten_users;  // indices whose rows must be deleted
  std::vector<std::pair<uint32_t, ItemState>> items;
  std::vector<EdgeState> edges;
  std::vector<uint32_t> rewritten_rows;  // co-occurrence rows to replace whole (after pruning)
  GlobalState global;
  // New id-dictionary entries: index -> external id.
  std::vector<std::pair<uint32_t, std::string>> new_user_ids;
  std::vector<std::pair<uint32_t, std::string>> new_item_ids;
  std::map<int32_t, int64_t> next_offsets;  // per partition: first offset not yet applied
  uint64_t events_applied = 0;
  int dim = 0;
  bool empty() const {
    return users.empty() && forgotten_users.empty() && items.empty() && edges.empty() &&
           rewritten_rows.empty() && new_user_ids.empty() && new_item_ids.empty();
  }

  // Empties the set for the next take but keeps its rows' memory: the user and item rows move
  // to the spare pools below (at most as many as this set held, so a catch-up's pool shrinks
  // back with the stream), and the next TakeChanges copies into their vectors instead of
  // allocating five per user under the engine's lock (and the flusher frees none afterwards).
  void Recycle() {
    Keep(users, spare_users);
    Keep(items, spare_items);
    forgotten_users.clear();
    edges.clear();
    rewritten_rows.clear();
    global = GlobalState{};
    new_user_ids.clear();
    new_item_ids.clear();
    next_offsets.clear();
    events_applied = 0;
    dim = 0;
  }
  // Rows for TakeChanges to overwrite whole; not part of the change.
  std::vector<UserState> spare_users;
  std::vector<ItemState> spare_items;

 private:
  template <typename Row>
  static void Keep(std::vector<std::pair<uint32_t, Row>>& rows, std::vector<Row>& spare) {
    const size_t used = rows.size();
    for (auto& entry : rows) spare.push_back(std::move(entry.second));
    rows.clear();
    if (spare.size() > used)
      spare.erase(spare.begin(), spare.end() - static_cast<std::ptrdiff_t>(used));
  }
};

}  // namespace simstream::engine
