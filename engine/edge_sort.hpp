// Sorting a flush's co-occurrence edges by (a, b), the order storage writes them in.
//
// A flush hands storage a few hundred thousand edges in hash-slot order. std::sort with a
// two-field comparator took ~17 % of the flusher thread's CPU in a 1M-event replay
// (bench/NOTES.md, session 6); this LSD radix sort reads and writes the array twice per byte
// of key that varies, and skips the bytes that do not (item indices rarely need more than 3).
#pragma once

#include <span>
#include <vector>

#include "engine/state.hpp"

namespace simstream::engine {

// Sorts `edges` by (a, b) ascending; stable. `scratch` is working memory (resized to
// edges.size(), kept by the caller so a steady flusher does not allocate).
void SortEdges(std::span<EdgeState> edges, std::vector<EdgeState>& scratch);

// Given edges sorted by (a, b) with equal edges in log order (as SortEdges leaves a log, being
// stable), keeps the last entry of each edge, in place; returns how many are kept (the first ones
// of `edges`, still sorted).
size_t KeepLastPerEdge(std::span<EdgeState> edges);

}  // namespace simstream::engine
