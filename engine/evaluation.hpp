// Prequential (test-then-train) evaluation of streaming scorers.
//
// For each positive event whose item is already in the catalogue and not yet seen by the
// user, every scorer ranks ALL items the user has not seen (no sampled negatives); the rank
// of the event's item gives HR@K, NDCG@K and reciprocal rank. Then every scorer learns from
// the event. Coverage is the share of the catalogue that appeared in at least one top-K list.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/event.hpp"
#include "engine/interner.hpp"
#include "engine/model.hpp"

namespace simstream::engine {

struct ModelScore {
  std::string name;
  double hr = 0, ndcg = 0, mrr = 0, coverage = 0;
  double events_per_s = 0;  // events scored and learned per second of this scorer's time
};

struct EvalReport {
  uint64_t events = 0;     // events replayed
  uint64_t evaluated = 0;  // events ranked (positive, known item, unseen by the user)
  size_t k = 10;
  std::vector<ModelScore> models;
};

class PrequentialEvaluator {
 public:
  // Scorers are borrowed and must outlive the evaluator.
  PrequentialEvaluator(size_t k, std::vector<StreamingScorer*> scorers, uint64_t seed);
  // Ranks (when eligible) then trains on one event; `offset` keys its randomness.
  void Process(const Event& e, int64_t offset);
  EvalReport Report() const;
  const IdInterner& users() const { return users_; }
  const IdInterner& items() const { return items_; }

 private:
  struct PerModel {
    double hr = 0, ndcg = 0, mrr = 0;
    std::chrono::nanoseconds time{0};
    std::vector<bool> in_top_k;
  };
  size_t k_;
  uint64_t seed_;
  std::vector<StreamingScorer*> scorers_;
  std::vector<PerModel> per_;
  IdInterner users_, items_;
  std::vector<std::vector<uint32_t>> seen_;  // sorted per user
  std::vector<float> scores_;
  uint64_t events_ = 0, evaluated_ = 0;
};

}  // namespace simstream::engine
