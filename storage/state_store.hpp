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
#include <string_view>

#include "config/options.hpp"
#include "config/result.hpp"
#include "engine/engine.hpp"
#include "engine/state.hpp"

namespace rocksdb {
class MergeOperator;
}  // namespace rocksdb

namespace simstream::storage {

// Receives the stored state, in this order: id dictionaries, item rows, user rows (ascending
// index within each kind), co-occurrence edges (ascending (a, b)), then Global() once, unless
// the store is empty. Row references are valid only during the call.
class StateVisitor {
 public:
  virtual ~StateVisitor() = default;
  virtual void UserId(uint32_t index, std::string_view id) = 0;  // empty id: a forgotten user
  virtual void ItemId(uint32_t index, std::string_view id) = 0;
  virtual void Item(uint32_t index, const engine::ItemState& s) = 0;
  virtual void User(uint32_t index, const engine::UserState& s) = 0;
  virtual void Edge(const engine::EdgeState& e) = 0;
  virtual void Global(const engine::GlobalState& g, const std::map<int32_t, int64_t>& next_offsets,
                      uint64_t events_applied) = 0;
};

class StateStore {
 public:
  virtual ~StateStore() = default;
  // Writes everything in `changes` in one atomic batch (WAL on for RocksDB). Within the batch:
  // forgotten users (row deleted, dictionary entry emptied), rewritten co-occurrence rows
  // (deleted whole), then upserts of users, items, edges (w == 0: deleted), dictionary entries
  // (in order, an empty id is a tombstone), the global state, next offsets and events_applied.
  [[nodiscard]] virtual Status Write(const engine::ChangeSet& changes) = 0;
  // Loads the whole stored state into a fresh `engine` (nothing for an empty store), through
  // Visit(). Errors: "schema_mismatch" when engine.dim() differs from the store's;
  // "storage_corrupt" when the rows do not hold together (a user or item row beyond its
  // dictionary, an item named beyond the item rows: see EngineLoader); the engine is then
  // partly loaded: discard it.
  [[nodiscard]] virtual Status LoadInto(engine::Engine& engine);
  // Streams the stored state to `visitor` (see StateVisitor for the order).
  [[nodiscard]] virtual Status Visit(StateVisitor& visitor) = 0;
  // The model dimension of the stored rows.
  virtual int dim() const = 0;
  // Stored next offsets of the configured topic, per partition (empty for a new store).
  [[nodiscard]] virtual Result<std::map<int32_t, int64_t>> Offsets() const = 0;
  // Makes everything written so far survive a power loss too (RocksDB: fsync the WAL). The
  // Flusher calls it so that the offsets committed to Kafka are never ahead of the disk.
  [[nodiscard]] virtual Status SyncWal() { return Status::Ok(); }
  // Stored number of applied events (0 for a new store).
  [[nodiscard]] virtual Result<uint64_t> EventsApplied() const = 0;
  // A consistent copy of the live state in `dir` (must not exist). RocksDB: Checkpoint.
  [[nodiscard]] virtual Status Checkpoint(const std::string& dir) = 0;
  // Approximate bytes used (RocksDB: live SST files and write-ahead log on disk, without
  // checkpoints; in-memory twin: an estimate of its rows).
  virtual uint64_t SizeBytes() const = 0;
  // Rewrites the stored files so that deleted rows (forgotten users, their dictionary entries)
  // no longer exist anywhere on disk, not even as stale SST or WAL bytes. Slow on a large
  // store; `simstream forget` calls it after flushing. In-memory twin: nothing to do.
  [[nodiscard]] virtual Status PurgeDeleted() = 0;
};

// Opens (creating if needed) the RocksDB store at storage.path. Refuses with a clear Error when
// the directory is locked by another process, the stored schema/dimension/learner settings do not
// match `model`, or RocksDB reports corruption. `topic` names the offsets it stores.
//
// Error codes: "storage_locked" (another process, or another handle in this one, has the
// directory open), "schema_mismatch" (stored model.dim / loss / seed / minhash_size or schema
// version differ from the configured ones: the message names both values), "storage_corrupt"
// (RocksDB detected corruption: restore from a checkpoint), "storage_io" (disk full, permissions,
// other I/O errors). The same codes come back from Write(); a failed Write() changes nothing.
//
// Durability: writes go through the WAL without fsync, so a crash of the process (kill -9)
// loses nothing written, while a power loss or kernel crash may lose the last writes of the OS
// page cache. That is safe: the stored offsets always match the stored rows, so the events after
// them are consumed again from Kafka. Only the re-consumption window grows. The offsets
// committed to Kafka come from Flusher::SyncedOffsets() (written, then SyncWal()), so they are
// never ahead of what a power loss leaves stored.
//
// Thread safety: Write, LoadInto and the readers may be called from different threads; the
// flusher serialises writes.
[[nodiscard]] Result<std::unique_ptr<StateStore>> OpenRocksDbStore(
    const config::StorageOptions& storage, const config::ModelOptions& model,
    const std::string& topic);

// The merge operator of the store's co-occurrence rows (column family "edges"), for a tool or
// test that opens the store's RocksDB directly. Without it, recovering the WAL stops at the
// first row patch (a Merge), and the rest of the log is not seen.
std::shared_ptr<rocksdb::MergeOperator> EdgeRowMergeOperator();

// The in-memory twin (same contract, nothing survives the process).
std::unique_ptr<StateStore> NewInMemoryStore(const config::ModelOptions& model,
                                             const std::string& topic);

}  // namespace simstream::storage
