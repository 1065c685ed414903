// IdInterner (open addressing, backward-shift deletion) against an obviously-correct twin: a
// std::unordered_map from id to index plus a vector of ids, driven by the same random operations.
#include "engine/interner.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace simstream::engine {
namespace {

struct Twin {
  std::unordered_map<std::string, uint32_t> index;
  std::vector<std::string> ids;
};

void ExpectSame(const IdInterner& got, const Twin& want, const std::vector<std::string>& pool) {
  ASSERT_EQ(got.size(), want.ids.size());
  ASSERT_EQ(got.mapped(), want.index.size());
  for (uint32_t i = 0; i < want.ids.size(); ++i) ASSERT_EQ(got.Id(i), want.ids[i]) << i;
  for (const std::string& id : pool) {
    const auto it = want.index.find(id);
    const auto found = got.Find(id);
    ASSERT_EQ(found.has_value(), it != want.index.end()) << id;
    if (found) {
      ASSERT_EQ(*found, it->second) << id;
    }
  }
}

// Random interns, finds, forgets and restores over a pool of ids of every length class (empty
// excepted: the engine never interns one), with many forgets so that backward shifts run
// across probe chains and the table's wrap-around.
TEST(IdInterner, MatchesAMapUnderRandomInternsForgetsAndRestores) {
  std::mt19937 rng(5);
  std::vector<std::string> pool;
  for (int k = 0; k < 3000; ++k) {
    std::string id = "u" + std::to_string(k);
    if (k % 7 == 0) id += std::string(40, 'x');  // longer than the inline buffer
    if (k % 11 == 0) id = std::string(1, static_cast<char>('a' + k % 26)) + std::to_string(k * 31);
    pool.push_back(id);
  }
  IdInterner got;
  Twin want;
  for (int step = 0; step < 60000; ++step) {
    const std::string& id = pool[rng() % pool.size()];
    const int op = static_cast<int>(rng() % 10);
    if (op < 6) {
      bool added = false;
      const uint32_t idx =
          (op == 0) ? got.Intern(id, IdInterner::Hash(id), &added) : got.Intern(id, &added);
      const auto it = want.index.find(id);
      if (it == want.index.end()) {
        want.index.emplace(id, static_cast<uint32_t>(want.ids.size()));
        want.ids.push_back(id);
        ASSERT_TRUE(added) << id;
        ASSERT_EQ(idx, want.ids.size() - 1);
      } else {
        ASSERT_FALSE(added) << id;
        ASSERT_EQ(idx, it->second);
      }
    } else if (op < 9) {
      const auto idx = got.Forget(id);
      const auto it = want.index.find(id);
      ASSERT_EQ(idx.has_value(), it != want.index.end()) << id;
      if (it != want.index.end()) {
        ASSERT_EQ(*idx, it->second);
        want.ids[it->second].clear();
        want.index.erase(it);
      }
    } else {
      // Restore (as a store load does) a forgotten index under a fresh id.
      if (want.ids.empty()) continue;
      const auto idx = static_cast<uint32_t>(rng() % want.ids.size());
      if (!want.ids[idx].empty()) continue;
      const std::string fresh = "restored-" + std::to_string(step);
      got.Restore(idx, fresh);
      want.ids[idx] = fresh;
      want.index[fresh] = idx;
      pool.push_back(fresh);
    }
    if (step % 5000 == 0) ExpectSame(got, want, pool);
  }
  ExpectSame(got, want, pool);
  EXPECT_GT(want.index.size(), 500u);  // the table held many ids at the end, not a few
}

// A store load restores indices in any order, tombstones (empty ids) included, and then
// interning goes on after the highest index.
TEST(IdInterner, RestoreInAnyOrderThenInternAppends) {
  IdInterner in;
  in.Restore(3, "c");
  in.Restore(0, "a");
  in.Restore(2, "");  // a forgotten user's index stays taken
  in.Restore(1, "b");
  EXPECT_EQ(in.size(), 4u);
  EXPECT_EQ(in.mapped(), 3u);
  EXPECT_EQ(in.Find("a"), 0u);
  EXPECT_EQ(in.Find("b"), 1u);
  EXPECT_EQ(in.Find("c"), 3u);
  EXPECT_EQ(in.Find(""), std::nullopt);
  bool added = false;
  EXPECT_EQ(in.Intern("d", &added), 4u);
  EXPECT_TRUE(added);
  EXPECT_EQ(in.Intern("b", &added), 1u);
  EXPECT_FALSE(added);
  EXPECT_EQ(in.Id(2), "");
}

// Restoring over an index that holds another id, and restoring an id at a second index,
// leave the table as a map and its reverse would: one mapping per id, one id per index.
TEST(IdInterner, RestoreOverAnotherIdOrAtASecondIndexLeavesNoStaleMapping) {
  IdInterner t;
  ASSERT_EQ(t.Intern("a"), 0u);
  t.Restore(0, "b");
  EXPECT_EQ(t.mapped(), 1u);
  EXPECT_FALSE(t.Find("a").has_value());
  EXPECT_EQ(t.Find("b"), 0u);
  ASSERT_EQ(t.Intern("c"), 1u);
  t.Restore(2, "c");
  EXPECT_EQ(t.Find("c"), 2u);
  EXPECT_EQ(t.Id(1), "");
  EXPECT_EQ(t.mapped(), 2u);
  t.Restore(2, "");  // a tombstone over a live id unmaps it
  EXPECT_FALSE(t.Find("c").has_value());
  EXPECT_EQ(t.mapped(), 1u);
  EXPECT_EQ(t.Intern("d"), 3u);
}

// The hints read only: a table hinted for ids it holds and ids it does not is unchanged, and
// hints on an empty table are harmless.
TEST(IdInterner, HintsChangeNothing) {
  IdInterner in;
  in.PrefetchSlot(IdInterner::Hash("x"));
  in.PrefetchCandidate(IdInterner::Hash("x"));
  for (int k = 0; k < 100; ++k) in.Intern("id" + std::to_string(k));
  for (int k = 0; k < 200; ++k) {
    const uint64_t h = IdInterner::Hash("id" + std::to_string(k));
    in.PrefetchSlot(h);
    in.PrefetchCandidate(h);
  }
  EXPECT_EQ(in.size(), 100u);
  for (int k = 0; k < 100; ++k) EXPECT_EQ(in.Find("id" + std::to_string(k)), uint32_t(k));
  EXPECT_EQ(in.Find("id150"), std::nullopt);
}

}  // namespace
}  // namespace simstream::engine
