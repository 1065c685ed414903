// Durable state of the engine: one interface, two backends (RocksDB and an in-memory twin that
// passes the same contract suite, tests/unit/state_store_contract_test.cpp).
//
// A write is all-or-nothing: the rows that changed AND the consumed offsets that produced them
// go into one atomic batch, so after a crash the stored offsets always match the stored state.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "config/options.hpp"
#include "config/result.hpp"
#include "engine/engine.hpp"
#include "engine/state.hpp"

namespace simstream::storage {

class StateStore {
 public:
  virtual ~StateStore() = default;
  // Writes everything in `changes` in one atomic batch (WAL on for RocksDB).
  [[nodiscard]] virtual Status Write(const engine::ChangeSet& changes) = 0;
  // Loads the whole stored state into a fresh `engine` (nothing for an empty store).
  [[nodiscard]] virtual Status LoadInto(engine::Engine& engine) = 0;
  // Stored next offsets of the configured topic, per partition (empty for a new store).
  [[nodiscard]] virtual Result<std::map<int32_t, int64_t>> Offsets() const = 0;
  // Stored number of applied events (0 for a new store).
  [[nodiscard]] virtual Result<uint64_t> EventsApplied() const = 0;
  // A consistent copy of the live state in `dir` (must not exist). RocksDB: Checkpoint.
  [[nodiscard]] virtual Status Checkpoint(const std::string& dir) = 0;
  // Approximate bytes used (on disk for RocksDB).
  virtual uint64_t SizeBytes() const = 0;
};

// Opens (creating if needed) the RocksDB store at storage.path. Refuses with a clear Error when
// the directory is locked by another process, the stored schema/dimension/learner settings do not
// match `model`, or RocksDB reports corruption. `topic` names the offsets it stores.
[[nodiscard]] Result<std::unique_ptr<StateStore>> OpenRocksDbStore(
    const config::StorageOptions& storage, const config::ModelOptions& model,
    const std::string& topic);

// The in-memory twin (same contract, nothing survives the process).
std::unique_ptr<StateStore> NewInMemoryStore(const config::ModelOptions& model,
                                             const std::string& topic);

}  // namespace simstream::storage
