// Differential tests of the HNSW index against the exact index (the oracle) on seeded,
// clustered data, before and after many embedding updates.
#include "engine/ann_index.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/rng.hpp"
#include "engine/similarity.hpp"

namespace simstream::engine {
namespace {

constexpr int kDim = 64;

// n vectors around `clusters` gaussian centres (embedding-like: neighbours are mostly in the
// same cluster, and clusters overlap enough that the graph must be searched, not guessed).
struct Data {
  std::vector<float> centres;
  std::vector<float> rows;
  size_t n = 0;
  const float* row(uint32_t i) const { return &rows[size_t{i} * kDim]; }
  float* row(uint32_t i) { return &rows[size_t{i} * kDim]; }
};

Data Clustered(size_t n, size_t clusters, uint64_t seed) {
  Rng rng(seed);
  Data d;
  d.n = n;
  d.centres.resize(clusters * kDim);
  for (float& c : d.centres) c = static_cast<float>(rng.Normal());
  d.rows.resize(n * kDim);
  for (size_t i = 0; i < n; ++i) {
    const size_t c = rng.Below(static_cast<uint32_t>(clusters));
    for (int j = 0; j < kDim; ++j)
      d.rows[i * kDim + j] = d.centres[c * kDim + j] + 0.9f * static_cast<float>(rng.Normal());
  }
  return d;
}

// Mean recall@k of `approx` against `exact` over `queries` sampled rows (the query row itself
// excluded, as for similar users).
double MeanRecall(const AnnIndex& approx, const AnnIndex& exact, const Data& d, size_t queries,
                  size_t k, uint64_t seed, bool rescore) {
  Rng rng(seed);
  double sum = 0;
  for (size_t q = 0; q < queries; ++q) {
    const uint32_t id = rng.Below(static_cast<uint32_t>(d.n));
    const uint32_t ex[] = {id};
    const auto truth = exact.Search(d.row(id), k, 0, ex);
    const auto got =
        rescore ? SearchRescored(approx, d.row(id), k, 0, ex, [&](uint32_t i) { return d.row(i); })
                : approx.Search(d.row(id), k, 0, ex);
    EXPECT_EQ(got.size(), k);
    for (const Scored& s : got) EXPECT_NE(s.id, id);
    sum += RecallOf(got, truth);
  }
  return sum / static_cast<double>(queries);
}

TEST(AnnIndex, ExactMatchesABruteForceScan) {
  const Data d = Clustered(500, 10, 1);
  auto exact = MakeExactIndex(kDim);
  for (uint32_t i = 0; i < d.n; ++i) exact->Upsert(i, d.row(i));
  std::vector<float> scores(d.n);
  ScoreAll(Metric::kCosine, d.row(7), d.rows.data(), d.n, kDim, scores.data());
  scores[7] = -INFINITY;
  const auto want = TopK(scores, 10);
  const uint32_t ex[] = {7};
  const auto got = exact->Search(d.row(7), 10, 0, ex);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].id, want[i].id);
    EXPECT_NEAR(got[i].score, want[i].score, 1e-5);
  }
}

// Recall@10 of the graph itself after the drift below, with re-inserts searching
// `ef_reinsert` candidates (0: ef_construction, as a build): raw answers against an exact
// index of the vectors the HNSW index holds (so staleness within the drift threshold, which
// no graph can fix, is out of it).
double GraphRecallAfterDrift(size_t ef_reinsert) {
  constexpr size_t kN = 20000;
  Data d = Clustered(kN, 200, 42);
  AnnParams params;  // defaults: m 16, ef_construction 100, ef_search 64, drift 0.05
  params.ef_reinsert = ef_reinsert;
  auto hnsw = MakeHnswIndex(kDim, params, 1024);  // grows by doubling on the way
  auto exact = MakeExactIndex(kDim);
  auto stored = MakeExactIndex(kDim);  // what the HNSW index holds
  for (uint32_t i = 0; i < kN; ++i) {
    hnsw->Upsert(i, d.row(i));
    exact->Upsert(i, d.row(i));
    stored->Upsert(i, d.row(i));
  }
  EXPECT_EQ(hnsw->size(), kN);
  const double before = MeanRecall(*hnsw, *exact, d, 300, 10, 7, /*rescore=*/false);
  EXPECT_GE(before, 0.95) << "recall@10 of the fresh index";

  // Move 30% of the vectors to another cluster in 20 small steps each, through the drift
  // filter, as a learner moves embeddings a little per event.
  Rng rng(99);
  std::vector<uint32_t> moved;
  for (uint32_t i = 0; i < kN; ++i) {
    if (rng.Uniform() < 0.3) moved.push_back(i);
  }
  std::vector<float> from(kDim), to(kDim);
  uint64_t updates = 0, writes = 0;
  const uint64_t reinserts_before = hnsw->reinserts();
  for (uint32_t i : moved) {
    const size_t c = rng.Below(200);
    std::copy_n(d.row(i), kDim, from.data());
    for (int j = 0; j < kDim; ++j)
      to[j] = d.centres[c * kDim + j] + 0.9f * static_cast<float>(rng.Normal());
    for (int step = 1; step <= 20; ++step) {
      const float t = static_cast<float>(step) / 20.0f;
      for (int j = 0; j < kDim; ++j) d.row(i)[j] = (1 - t) * from[j] + t * to[j];
      ++updates;
      if (hnsw->Update(i, d.row(i))) {
        ++writes;
        stored->Upsert(i, d.row(i));
      }
      exact->Upsert(i, d.row(i));  // the oracle always holds the current vectors
    }
  }
  EXPECT_EQ(hnsw->reinserts() - reinserts_before, writes);
  // The drift filter skips most small steps, but not all of them.
  EXPECT_GT(writes, moved.size());
  EXPECT_LT(writes, updates / 2) << "drift filter let " << writes << " of " << updates << " by";
  // Every vector is within the drift threshold of its indexed version.
  for (uint32_t i : moved) EXPECT_LE(hnsw->Drift(i, d.row(i)), params.drift_threshold + 1e-6f);

  const double after = MeanRecall(*hnsw, *exact, d, 300, 10, 8, /*rescore=*/true);
  EXPECT_GE(after, 0.95) << "recall@10 after moving 30% of the vectors (re-scored)";
  const double after_raw = MeanRecall(*hnsw, *exact, d, 300, 10, 8, /*rescore=*/false);
  EXPECT_GE(after_raw, 0.90) << "recall@10 after moving 30% of the vectors (indexed scores)";
  const double graph = MeanRecall(*hnsw, *stored, d, 300, 10, 8, /*rescore=*/false);
  EXPECT_GE(graph, 0.95) << "recall@10 of the graph after moving 30% of the vectors";
  std::printf(
      "ef_reinsert %zu: recall@10 before %.4f after(rescored) %.4f after(raw) %.4f graph %.4f "
      "writes %llu/%llu\n",
      ef_reinsert, before, after, after_raw, graph, static_cast<unsigned long long>(writes),
      static_cast<unsigned long long>(updates));
  return graph;
}

TEST(AnnIndex, HnswRecallBeforeAndAfterDrift) {
  // The default re-insert list (32), and a build's (ef_construction 100): the shorter search
  // re-connects a moved node about as well.
  const double short_list = GraphRecallAfterDrift(AnnParams{}.ef_reinsert);
  const double build_list = GraphRecallAfterDrift(0);
  EXPECT_GE(short_list, build_list - 0.02);
}

TEST(AnnIndex, DriftFilterWritesOnlyPastTheThreshold) {
  AnnParams params;
  params.drift_threshold = 0.05f;
  for (AnnKind kind : {AnnKind::kExact, AnnKind::kHnsw}) {
    auto index = MakeAnnIndex(kind, 4, params);
    const float a[] = {1, 0, 0, 0};
    EXPECT_TRUE(index->Update(3, a)) << "absent ids are inserted";
    EXPECT_NEAR(index->Drift(3, a), 0.0f, 1e-6);
    const float small[] = {1, 0.2f, 0, 0};  // 1 - cos = 0.0194
    EXPECT_FALSE(index->Update(3, small));
    const float big[] = {1, 0.5f, 0, 0};  // 1 - cos = 0.106
    EXPECT_NEAR(index->Drift(3, big), 1.0f - 1.0f / std::sqrt(1.25f), 1e-5);
    EXPECT_TRUE(index->Update(3, big));
    EXPECT_EQ(index->reinserts(), 1u);
    EXPECT_NEAR(index->Drift(3, big), 0.0f, 1e-5);
    const float zero[] = {0, 0, 0, 0};
    EXPECT_NEAR(index->Drift(3, zero), 1.0f, 1e-6);
    EXPECT_FLOAT_EQ(index->Drift(4, a), 2.0f) << "absent";
  }
}

TEST(AnnIndex, RemoveAndExcludeKeepIdsOutOfResults) {
  const Data d = Clustered(3000, 30, 5);
  for (AnnKind kind : {AnnKind::kExact, AnnKind::kHnsw}) {
    SCOPED_TRACE(std::string(AnnKindName(kind)));
    auto index = MakeAnnIndex(kind, kDim, AnnParams{});
    for (uint32_t i = 0; i < d.n; ++i) index->Upsert(i, d.row(i));
    const uint32_t q = 11;
    const auto first = index->Search(d.row(q), 10);
    ASSERT_EQ(first.size(), 10u);
    EXPECT_EQ(first[0].id, q) << "the query row is its own nearest neighbour";
    // Exclusion: the query and the next two best.
    const uint32_t ex[] = {q, first[1].id, first[2].id};
    const auto excluded = index->Search(d.row(q), 10, 0, ex);
    ASSERT_EQ(excluded.size(), 10u);
    for (const Scored& s : excluded) {
      EXPECT_NE(s.id, q);
      EXPECT_NE(s.id, first[1].id);
      EXPECT_NE(s.id, first[2].id);
    }
    EXPECT_EQ(excluded[0].id, first[3].id);
    // Removal: the best five disappear, the size drops, re-adding brings one back.
    for (size_t r = 0; r < 5; ++r) index->Remove(first[r].id);
    index->Remove(first[0].id);  // twice: no-op
    EXPECT_EQ(index->size(), d.n - 5);
    EXPECT_FALSE(index->Contains(first[0].id));
    const auto removed = index->Search(d.row(q), 10);
    ASSERT_EQ(removed.size(), 10u);
    for (const Scored& s : removed) {
      for (size_t r = 0; r < 5; ++r) EXPECT_NE(s.id, first[r].id);
    }
    EXPECT_EQ(removed[0].id, first[5].id);
    index->Upsert(q, d.row(q));
    EXPECT_TRUE(index->Contains(q));
    EXPECT_EQ(index->size(), d.n - 4);
    EXPECT_EQ(index->Search(d.row(q), 1)[0].id, q);
    if (kind == AnnKind::kHnsw) {
      EXPECT_EQ(index->deleted(), 4u);
    }
  }
}

TEST(AnnIndex, EmptyAndTinyIndexes) {
  for (AnnKind kind : {AnnKind::kExact, AnnKind::kHnsw}) {
    SCOPED_TRACE(std::string(AnnKindName(kind)));
    auto index = MakeAnnIndex(kind, 4, AnnParams{}, 1);
    const float a[] = {1, 0, 0, 0}, b[] = {0, 1, 0, 0}, c[] = {1, 1, 0, 0};
    EXPECT_TRUE(index->Search(a, 10).empty());
    EXPECT_EQ(index->size(), 0u);
    index->Upsert(0, a);
    EXPECT_EQ(index->Search(a, 0).size(), 0u);
    const uint32_t self[] = {0};
    EXPECT_TRUE(index->Search(a, 10, 0, self).empty()) << "only the excluded id";
    index->Upsert(1, b);
    index->Upsert(2, c);
    const auto all = index->Search(a, 10);  // k beyond the size
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0].id, 0u);
    EXPECT_EQ(all[1].id, 2u);
    EXPECT_EQ(all[2].id, 1u);
    EXPECT_NEAR(all[1].score, 1.0f / std::sqrt(2.0f), 1e-5);
    // A zero vector is indexed and scores 0 against everything.
    const float zero[] = {0, 0, 0, 0};
    index->Upsert(3, zero);
    const auto with_zero = index->Search(b, 4);
    ASSERT_EQ(with_zero.size(), 4u);
    EXPECT_EQ(with_zero[0].id, 1u);
    // Remove everything: nothing comes back.
    for (uint32_t i = 0; i < 4; ++i) index->Remove(i);
    EXPECT_TRUE(index->Search(a, 10).empty());
    EXPECT_EQ(index->size(), 0u);
  }
}

TEST(AnnIndex, RecallOfCountsSharedIds) {
  const std::vector<Scored> exact = {{1, 0.9f}, {2, 0.8f}, {3, 0.7f}, {4, 0.6f}};
  const std::vector<Scored> approx = {{1, 0.9f}, {3, 0.7f}, {9, 0.65f}, {4, 0.6f}};
  EXPECT_DOUBLE_EQ(RecallOf(approx, exact), 0.75);
  EXPECT_DOUBLE_EQ(RecallOf(approx, {}), 1.0);
  EXPECT_DOUBLE_EQ(RecallOf({}, exact), 0.0);
}

}  // namespace
}  // namespace simstream::engine
