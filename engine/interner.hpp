// Interning of external string ids to dense indices.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace simstream::engine {

// Maps external ids to dense indices 0..size()-1 in order of first appearance.
// Not thread-safe: the owner (Engine) serialises writers against readers.
class IdInterner {
 public:
  // Index of `id`, adding it when new. `added` (optional) tells whether it was new.
  uint32_t Intern(std::string_view id, bool* added = nullptr) {
    auto it = index_.find(id);
    if (it != index_.end()) {
      if (added) *added = false;
      return it->second;
    }
    const auto idx = static_cast<uint32_t>(ids_.size());
    ids_.emplace_back(id);
    index_.emplace(ids_.back(), idx);
    if (added) *added = true;
    return idx;
  }
  std::optional<uint32_t> Find(std::string_view id) const {
    auto it = index_.find(id);
    if (it == index_.end()) return std::nullopt;
    return it->second;
  }
  const std::string& Id(uint32_t idx) const { return ids_[idx]; }
  // Removes the mapping of `id`; its index becomes a tombstone (Id() is empty) and is never
  // reused. Returns the index it had.
  std::optional<uint32_t> Forget(std::string_view id) {
    auto it = index_.find(id);
    if (it == index_.end()) return std::nullopt;
    const uint32_t idx = it->second;
    index_.erase(it);
    ids_[idx].clear();
    return idx;
  }
  // Storage restore: puts `id` at `idx` (an empty id restores a tombstone).
  void Restore(uint32_t idx, std::string_view id) {
    if (ids_.size() <= idx) ids_.resize(idx + 1);
    ids_[idx] = std::string(id);
    if (!id.empty()) index_[ids_[idx]] = idx;
  }
  size_t size() const { return ids_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<std::string> ids_;
  std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>> index_;
};

}  // namespace simstream::engine
