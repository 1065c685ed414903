// Is the learned metric itself right? Precision@K of similar-users and similar-items lists
// against planted labels (communities, clusters) of a synthetic stream.
#pragma once

#include "engine/generator.hpp"
#include "engine/interner.hpp"
#include "engine/model.hpp"

namespace simstream::engine {

struct NeighbourQuality {
  double user_precision = 0;  // mean precision@K of same-community neighbours
  size_t users_evaluated = 0;
  double item_precision = 0;  // mean precision@K of same-cluster neighbours
  size_t items_evaluated = 0;
};

// Evaluates users with at least `min_events` events (and items with at least `min_events`
// positive interactions). Ids are mapped to truth indices by the generator's naming
// ("u<index>", "i<index>"); ids that do not follow it are skipped.
NeighbourQuality PlantedNeighbourQuality(const OnlineModel& model, const IdInterner& users,
                                         const IdInterner& items, const GroundTruth& truth,
                                         size_t k, uint64_t min_events, Metric metric);

}  // namespace simstream::engine
