// The RocksDB backend of StateStore.
//
// Column families (one per kind of row, so a load is five sequential scans):
//   users  IndexKey(u) -> EncodeUser      items  IndexKey(i) -> EncodeItem
//   edges  IndexKey(a) -> EncodeEdgeRow   dict   DictKey('u'|'i', index) -> external id
//   meta   "settings" (JSON), "global", "events_applied", OffsetKey(topic, partition)
// Co-occurrence rows: a flush writes ONE key per touched row a, never one per edge. A row
// rewritten whole (after pruning) is a Put of the full row; otherwise the row's dirty entries
// are a Merge of a patch (w == 0 deletes b). EdgeRowMerge combines them (later wins per b), in
// reads and in compactions; a Put supersedes every older patch.
// A forgotten user's dictionary entry keeps its key with an empty value: the index stays taken
// (indices are never reused) while the external id is gone.
#include <rocksdb/db.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cctype>
#include <deque>
#include <filesystem>
#include <iterator>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "storage/codec.hpp"
#include "storage/state_store.hpp"

namespace simstream::storage {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSettingsKey = "settings";
constexpr const char* kGlobalKey = "global";
constexpr const char* kEventsAppliedKey = "events_applied";

enum Cf : size_t { kUsers = 0, kItems, kEdges, kDict, kMeta, kNumCf };
constexpr const char* kCfNames[kNumCf] = {"users", "items", "edges", "dict", "meta"};

bool ContainsNoCase(std::string haystack, std::string needle) {
  auto lower = [](std::string& s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  };
  lower(haystack);
  lower(needle);
  return haystack.find(needle) != std::string::npos;
}

// Turns a RocksDB status into the storage error codes of state_store.hpp.
Error MapStatus(const rocksdb::Status& s, const std::string& path, const std::string& what) {
  const std::string msg = s.ToString();
  if (s.IsIOError() && (ContainsNoCase(msg, "lock") && !s.IsNoSpace())) {
    return {"storage_locked",
            "another simstream process (or another open handle in this one) is using " + path +
                " (" + msg +
                "). Stop that process first, or point storage.path (--data-dir) at a different "
                "directory."};
  }
  if (s.IsCorruption()) {
    return {"storage_corrupt",
            what + ": RocksDB detected corruption in " + path + ": " + msg +
                ". Restore the state from a checkpoint (`simstream checkpoint` copy; point "
                "storage.path at it), or start on an empty directory to rebuild from the topic; "
                "either way under a new kafka.group (the old group's committed offsets would "
                "skip the events in between)."};
  }
  if (s.IsNoSpace()) {
    return {"storage_io", what + ": the disk holding " + path + " is full (" + msg +
                              "). Free space and restart; nothing of the failed write was kept."};
  }
  return {"storage_io", what + " failed on " + path + ": " + msg};
}

// Combines co-occurrence row values (see codec.hpp: MergeEdgeRows). Full merges (a read, or a
// compaction that reaches the row's base) drop zero weights; partial merges keep them.
class EdgeRowMerge final : public rocksdb::MergeOperator {
 public:
  const char* Name() const override { return "simstream.EdgeRowMerge"; }

  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override {
    std::vector<std::string_view> patches;
    patches.reserve(in.operand_list.size());
    for (const rocksdb::Slice& s : in.operand_list) patches.push_back(s.ToStringView());
    std::string_view base;
    if (in.existing_value != nullptr) base = in.existing_value->ToStringView();
    // False reports Corruption to the reader (mapped to storage_corrupt).
    return MergeEdgeRows(in.existing_value != nullptr ? &base : nullptr, patches,
                         /*drop_zeros=*/true, &out->new_value);
  }

  bool PartialMergeMulti(const rocksdb::Slice& /*key*/,
                         const std::deque<rocksdb::Slice>& operand_list, std::string* new_value,
                         rocksdb::Logger* /*logger*/) const override {
    std::vector<std::string_view> patches;
    patches.reserve(operand_list.size());
    for (const rocksdb::Slice& s : operand_list) patches.push_back(s.ToStringView());
    return MergeEdgeRows(nullptr, patches, /*drop_zeros=*/false, new_value);
  }
};

// The settings whose change would change the meaning of stored rows, each with the reason the
// refusal names:
//   dim                          the length of every stored vector
//   loss                         the geometry the vectors were learned in (dot vs distance)
//   seed                         every replayed random draw and fresh row: replaying events
//                                after a crash must reproduce the same state bit for bit
//   minhash_size                 the length of every stored sketch
//   popularity_half_life_events  stored item popularity is a sum of exp((t - anchor) / tau):
//                                tau is baked into the stored numbers
// Safe to change under existing state (not recorded): learning_rate, l2, negatives,
// popular_negative_share, margin, temperature, init_scale (new rows only), event weights,
// scorer (the co-occurrence graph and the mix are kept up to date in both modes), mix_*,
// neighbour_shrinkage (norms are recomputed from stored counts on load),
// history_half_life_events (h / z is a normalised decayed average: a new decay applies from the
// next event on), cooccurrence_window and neighbourhood_items (stored recent-item lists are cut
// to the new length on load; past co-occurrence counts stay counts).
struct SettingReason {
  const char* key;
  const char* why;
};
constexpr SettingReason kSettingReasons[] = {
    {"schema_version", "the layout of the store"},
    {"dim", "the length of every stored vector"},
    {"loss", "the geometry the stored vectors were learned in"},
    {"seed", "the random draws of replayed events and of new rows"},
    {"minhash_size", "the length of every stored sketch"},
    {"popularity_half_life_events", "the scale of the stored item popularity"},
};
// Keys recorded since the first schema record. A store written before lacks them: it cannot be
// checked, so it adopts the configured value, which is recorded and checked from then on.
constexpr const char* kSettingsAddedLater[] = {"popularity_half_life_events"};

nlohmann::json SettingsOf(const config::ModelOptions& m) {
  return {{"schema_version", kSchemaVersion},
          {"dim", m.dim},
          {"loss", m.loss},
          {"seed", m.seed},
          {"minhash_size", m.minhash_size},
          {"popularity_half_life_events", m.popularity_half_life_events}};
}

class RocksDbStore final : public StateStore {
 public:
  RocksDbStore(std::string path, const config::ModelOptions& model, std::string topic)
      : path_(std::move(path)), model_(model), topic_(std::move(topic)) {}

  ~RocksDbStore() override {
    if (!db_) return;
    for (auto* h : handles_) (void)db_->DestroyColumnFamilyHandle(h);
    (void)db_->Close();
  }

  Status Open() {
    std::error_code ec;
    fs::create_directories(path_, ec);
    if (ec) return Error{"storage_io", "cannot create " + path_ + ": " + ec.message()};

    rocksdb::Options opts;
    opts.create_if_missing = true;
    opts.create_missing_column_families = true;
    opts.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
    opts.keep_log_file_num = 5;
    opts.max_background_jobs = 2;
    // Serial memtable writes, which the insert hints below need: the flusher is the only
    // steady writer (settings and checkpoints write rarely), so nothing runs in parallel anyway.
    opts.allow_concurrent_memtable_write = false;
    rocksdb::ColumnFamilyOptions cf_opts;
    rocksdb::BlockBasedTableOptions table;
    table.block_size = 32 * 1024;  // rows are read in scans: fewer, larger blocks load faster
    cf_opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    cf_opts.compression = rocksdb::kLZ4Compression;
    // One flush of a busy second is tens of MB (user rows are ~1.4 KB at d = 64): memtables
    // large enough to take it without a write stall.
    cf_opts.write_buffer_size = 128 << 20;
    cf_opts.max_write_buffer_number = 4;
    // A flush writes each column family's keys in ascending order (TakeChanges sorts them):
    // one insert hint for the whole family (an empty prefix) starts each skip-list insert at the
    // previous one instead of at the head.
    cf_opts.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(0));
    // So no DeleteRange in these families: RocksDB 7.8's memtable shares the hint between its
    // keys and its range deletions, and one misleads an insert into the other (an assertion in
    // this RocksDB, `recompute_height <= max_height`, seen when a range deletion was tried).

    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const char* name : kCfNames) {
      cfs.emplace_back(name, cf_opts);
      if (std::string_view(name) == kCfNames[kEdges])
        cfs.back().options.merge_operator = EdgeRowMergeOperator();
    }
    cfs.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_opts);
    // Column families of a later version are opened too (RocksDB requires all of them).
    std::vector<std::string> existing;
    if (rocksdb::DB::ListColumnFamilies(opts, path_, &existing).ok()) {
      for (const auto& name : existing) {
        if (std::none_of(cfs.begin(), cfs.end(), [&](const auto& d) { return d.name == name; }))
          cfs.emplace_back(name, cf_opts);
      }
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(opts, path_, cfs, &handles, &db);
    if (!s.ok()) return MapStatus(s, path_, "opening the state store");
    db_.reset(db);
    handles_ = handles;
    return CheckSettings();
  }

  Status Write(const engine::ChangeSet& cs) override {
    if (cs.dim != 0 && cs.dim != model_.dim) {
      return Error{"schema_mismatch", "changes of dimension " + std::to_string(cs.dim) +
                                          " written to a store of dimension " +
                                          std::to_string(model_.dim)};
    }
    // One batch kept across writes: Clear() keeps its buffer, so a flush of tens of MB appends
    // into memory already mapped instead of growing a new string by doubling (each growth a copy
    // and fresh pages to fault in: a third of the flusher's time in a 1M-event catch-up, perf).
    std::lock_guard lock(batch_mu_);
    rocksdb::WriteBatch& batch = batch_;
    batch.Clear();
    std::string& buf = buf_;
    auto check = [&](const rocksdb::Status& st) { return st.ok(); };
    bool ok = true;
    for (uint32_t u : cs.forgotten_users) {
      ok &= check(batch.Delete(handles_[kUsers], IndexKey(u)));
      ok &= check(batch.Put(handles_[kDict], DictKey('u', u), rocksdb::Slice()));
    }
    for (const auto& [u, st] : cs.users) {
      EncodeUser(st, &buf);
      ok &= check(batch.Put(handles_[kUsers], IndexKey(u), buf));
    }
    for (const auto& [i, st] : cs.items) {
      EncodeItem(st, &buf);
      ok &= check(batch.Put(handles_[kItems], IndexKey(i), buf));
    }
    // The first item rows of the current version recorded with the layout they need, in the
    // same batch: until then an older store keeps its schema, and its release can still open it.
    const bool upgrade = !schema_upgrade_.empty() && !cs.items.empty();
    if (upgrade) ok &= check(batch.Put(handles_[kMeta], kSettingsKey, schema_upgrade_));
    ok &= WriteEdgeRows(cs, batch, buf);
    // An empty id is a tombstone: the index stays taken, the external id is gone.
    for (const auto& [idx, id] : cs.new_user_ids)
      ok &= check(batch.Put(handles_[kDict], DictKey('u', idx), id));
    for (const auto& [idx, id] : cs.new_item_ids)
      ok &= check(batch.Put(handles_[kDict], DictKey('i', idx), id));
    EncodeGlobal(cs.global, &buf);
    ok &= check(batch.Put(handles_[kMeta], kGlobalKey, buf));
    for (const auto& [partition, offset] : cs.next_offsets) {
      EncodeI64(offset, &buf);
      ok &= check(batch.Put(handles_[kMeta], OffsetKey(topic_, partition), buf));
    }
    EncodeU64(cs.events_applied, &buf);
    ok &= check(batch.Put(handles_[kMeta], kEventsAppliedKey, buf));
    if (!ok) return Error{"storage_io", "could not build the write batch for " + path_};

    rocksdb::WriteOptions wo;
    wo.sync = false;  // see state_store.hpp: a process crash loses nothing; power loss re-reads
    wo.disableWAL = false;
    const rocksdb::Status s = db_->Write(wo, &batch);
    if (s.ok() && upgrade) schema_upgrade_.clear();
    // A catch-up's flushes are tens of MB, a steady stream's far smaller: give a buffer left
    // much larger than its last use back.
    if (batch.Data().capacity() > kKeptBatchBytes &&
        batch.GetDataSize() * 4 < batch.Data().capacity())
      batch = rocksdb::WriteBatch();
    if (!s.ok()) return MapStatus(s, path_, "writing a batch");
    return Status::Ok();
  }

  Status Visit(StateVisitor& visitor) override {
    const int dim = static_cast<int>(model_.dim);
    Status st = Scan(kDict, [&](std::string_view k, std::string_view v) {
      char kind;
      uint32_t idx;
      if (!DecodeDictKey(k, &kind, &idx)) return false;
      if (kind == 'u')
        visitor.UserId(idx, v);
      else
        visitor.ItemId(idx, v);
      return true;
    });
    if (!st.ok()) return st;
    engine::ItemState item;  // decoded into in place: no allocation per row once warm
    st = Scan(kItems, [&](std::string_view k, std::string_view v) {
      uint32_t idx;
      if (!DecodeIndexKey(k, &idx) || !DecodeItem(v, dim, &item)) return false;
      visitor.Item(idx, item);
      return true;
    });
    if (!st.ok()) return st;
    engine::UserState user;
    st = Scan(kUsers, [&](std::string_view k, std::string_view v) {
      uint32_t idx;
      if (!DecodeIndexKey(k, &idx) || !DecodeUser(v, dim, &user)) return false;
      visitor.User(idx, user);
      return true;
    });
    if (!st.ok()) return st;
    std::vector<engine::EdgeState> row;
    st = Scan(kEdges, [&](std::string_view k, std::string_view v) {
      uint32_t a;
      if (!DecodeIndexKey(k, &a) || !DecodeEdgeRow(v, a, &row)) return false;
      for (const engine::EdgeState& e : row)
        if (e.w != 0.0f) visitor.Edge(e);  // a full merge has none; a damaged row may
      return true;
    });
    if (!st.ok()) return st;

    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[kMeta], kGlobalKey, &value);
    if (s.IsNotFound()) return Status::Ok();  // nothing was ever written
    if (!s.ok()) return MapStatus(s, path_, "reading the global state");
    engine::GlobalState g;
    if (!DecodeGlobal(value, &g)) return Corrupt("meta/global");
    auto offsets = Offsets();
    if (!offsets.ok()) return offsets.error();
    auto applied = EventsApplied();
    if (!applied.ok()) return applied.error();
    visitor.Global(g, offsets.value(), applied.value());
    return Status::Ok();
  }

  int dim() const override { return static_cast<int>(model_.dim); }

  Status SyncWal() override {
    const rocksdb::Status s = db_->SyncWAL();
    if (!s.ok()) return MapStatus(s, path_, "syncing the write-ahead log");
    return Status::Ok();
  }

  Result<std::map<int32_t, int64_t>> Offsets() const override {
    std::map<int32_t, int64_t> out;
    const std::string prefix = OffsetKeyPrefix(topic_);
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), handles_[kMeta]));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      int32_t partition;
      int64_t offset;
      if (!DecodeOffsetKey(it->key().ToStringView(), prefix, &partition) ||
          !DecodeI64(it->value().ToStringView(), &offset))
        return Corrupt("meta/offset");
      out[partition] = offset;
    }
    if (!it->status().ok()) return MapStatus(it->status(), path_, "reading offsets");
    return out;
  }

  Result<uint64_t> EventsApplied() const override {
    std::string value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), handles_[kMeta], kEventsAppliedKey, &value);
    if (s.IsNotFound()) return uint64_t{0};
    if (!s.ok()) return MapStatus(s, path_, "reading events_applied");
    uint64_t n;
    if (!DecodeU64(value, &n)) return Corrupt("meta/events_applied");
    return n;
  }

  Status Checkpoint(const std::string& dir) override {
    std::error_code ec;
    if (fs::exists(dir, ec)) {
      return Error{"already_exists",
                   "checkpoint directory " + dir + " exists; name a new directory"};
    }
    rocksdb::Checkpoint* raw = nullptr;
    rocksdb::Status s = rocksdb::Checkpoint::Create(db_.get(), &raw);
    std::unique_ptr<rocksdb::Checkpoint> cp(raw);
    if (s.ok()) s = cp->CreateCheckpoint(dir);
    if (!s.ok()) return MapStatus(s, dir, "creating a checkpoint");
    return Status::Ok();
  }

  // The live SST files of every column family (RocksDB's own count, no walk) and the
  // write-ahead log files (the store's top directory only). Admin checkpoints live in
  // <path>/checkpoints as hard links to the same SST files: not counted. Not GetSortedWalFiles:
  // it waits for pending file purges and may purge on the caller's thread, and /v1/stats reads
  // this on an HTTP I/O thread. A failed read counts as 0 (approximate by contract).
  uint64_t SizeBytes() const override {
    if (!db_) return 0;
    uint64_t sst = 0;
    if (!db_->GetAggregatedIntProperty(rocksdb::DB::Properties::kLiveSstFilesSize, &sst)) sst = 0;
    uint64_t wal = 0;
    std::error_code ec;
    for (fs::directory_iterator it(path_, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code fec;
      if (it->path().extension() == ".log" && it->is_regular_file(fec)) {
        const uintmax_t size = it->file_size(fec);
        if (!fec) wal += size;
      }
    }
    return sst + wal;
  }

  Status PurgeDeleted() override {
    rocksdb::FlushOptions fo;
    fo.wait = true;
    // Flushing every family retires the WAL files that still hold deleted values.
    rocksdb::Status s = db_->Flush(fo, handles_);
    rocksdb::CompactRangeOptions co;
    co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    for (size_t cf = 0; cf < kNumCf && s.ok(); ++cf)
      s = db_->CompactRange(co, handles_[cf], nullptr, nullptr);
    if (s.ok()) s = db_->FlushWAL(/*sync=*/true);
    if (!s.ok()) return MapStatus(s, path_, "purging deleted rows");
    return Status::Ok();
  }

 private:
  // The co-occurrence part of a batch, one operation per run of `cs.edges` that stays in one
  // row a with strictly ascending b (TakeChanges and MergeChangeSets emit each row as one such
  // run, so one key per touched row). Semantics, as the contract states: a rewritten row is
  // replaced whole (its first run is a Put of the non-zero entries, or a Delete when it has
  // none), every other run is a Merge of a patch (w == 0 deletes b); later runs win.
  bool WriteEdgeRows(const engine::ChangeSet& cs, rocksdb::WriteBatch& batch, std::string& buf) {
    std::vector<uint32_t> rewritten(cs.rewritten_rows);
    std::sort(rewritten.begin(), rewritten.end());
    rewritten.erase(std::unique(rewritten.begin(), rewritten.end()), rewritten.end());
    std::vector<char> replaced(rewritten.size(), 0);
    bool ok = true;
    const std::vector<engine::EdgeState>& e = cs.edges;
    for (size_t i = 0; i < e.size();) {
      const uint32_t a = e[i].a;
      size_t j = i + 1;
      while (j < e.size() && e[j].a == a && e[j].b > e[j - 1].b) ++j;
      const auto it = std::lower_bound(rewritten.begin(), rewritten.end(), a);
      const bool whole = it != rewritten.end() && *it == a &&
                         !replaced[static_cast<size_t>(it - rewritten.begin())];
      const std::span<const engine::EdgeState> run(e.data() + i, j - i);
      const std::string key = IndexKey(a);
      EncodeEdgeRow(run, /*drop_zeros=*/whole, &buf);
      if (whole) {
        replaced[static_cast<size_t>(it - rewritten.begin())] = 1;
        ok &= (buf.size() > 1 ? batch.Put(handles_[kEdges], key, buf)
                              : batch.Delete(handles_[kEdges], key))
                  .ok();
      } else {
        ok &= batch.Merge(handles_[kEdges], key, buf).ok();
      }
      i = j;
    }
    for (size_t r = 0; r < rewritten.size(); ++r)  // rewritten to nothing
      if (!replaced[r]) ok &= batch.Delete(handles_[kEdges], IndexKey(rewritten[r])).ok();
    return ok;
  }

  Error Corrupt(const std::string& what) const {
    return {"storage_corrupt",
            "undecodable " + what + " value in " + path_ +
                ". Restore the state from a checkpoint (point storage.path at "
                "it), or start on an empty directory to rebuild from the topic; either way "
                "under a new kafka.group (the old group's committed offsets would skip the "
                "events in between)."};
  }

  // Calls f(key, value) for every row of `cf` in key order; f returns false on a bad row.
  template <typename F>
  Status Scan(Cf cf, F&& f) {
    rocksdb::ReadOptions ro;
    ro.readahead_size = 4 << 20;
    ro.fill_cache = false;  // one pass: do not evict what queries later need
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, handles_[cf]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (!f(it->key().ToStringView(), it->value().ToStringView()))
        return Corrupt(std::string(kCfNames[cf]) + " row");
    }
    if (!it->status().ok()) return MapStatus(it->status(), path_, "loading the state");
    return Status::Ok();
  }

  Status CheckSettings() {
    const nlohmann::json want = SettingsOf(model_);
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[kMeta], kSettingsKey, &value);
    if (s.IsNotFound()) {
      s = db_->Put(rocksdb::WriteOptions(), handles_[kMeta], kSettingsKey, want.dump());
      if (!s.ok()) return MapStatus(s, path_, "writing the schema");
      return Status::Ok();
    }
    if (!s.ok()) return MapStatus(s, path_, "reading the schema");
    nlohmann::json have = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
    if (have.is_discarded() || !have.is_object()) return Corrupt("meta/settings");
    bool adopted = false;
    // An older layout this release reads as it is. It is recorded as the current one with the
    // first rows only the current one can read (Write), so that the release that wrote it then
    // refuses the store instead of calling it damaged, and can still open it until then.
    std::optional<nlohmann::json> older_schema;
    if (const auto ver = have.find("schema_version");
        ver != have.end() && ver->is_number_unsigned() &&
        ver->get<uint32_t>() >= kOldestReadableSchema && ver->get<uint32_t>() < kSchemaVersion) {
      older_schema = *ver;
      *ver = kSchemaVersion;
    }
    // Another layout cannot be read at all: refuse before comparing anything else.
    if (const auto ver = have.find("schema_version");
        ver == have.end() || *ver != want["schema_version"]) {
      return Error{
          "schema_mismatch",
          "the state in " + path_ + " has another store layout (schema_version: stored " +
              (ver == have.end() ? std::string("(absent)") : ver->dump()) + ", configured " +
              want["schema_version"].dump() +
              "; schema 1 stored one key per co-occurrence edge, schema 2 one key per row, schema "
              "3 also item counters as f64) and cannot be read in place. Point storage.path "
              "(--data-dir) at a new "
              "directory to rebuild the state from the topic, or keep running the simstream "
              "release that wrote it."};
    }
    std::string diffs, keep;
    for (const auto& [key, wanted] : want.items()) {
      const auto it = have.find(key);
      if (it == have.end() &&
          std::any_of(std::begin(kSettingsAddedLater), std::end(kSettingsAddedLater),
                      [&](const char* k) { return key == k; })) {
        have[key] = wanted;
        adopted = true;
        continue;
      }
      if (it != have.end() && *it == wanted) continue;
      const std::string stored = it == have.end() ? "(absent)" : it->dump();
      const std::string name = key == "schema_version" ? key : "model." + key;
      std::string why;
      for (const auto& r : kSettingReasons)
        if (key == r.key) why = r.why;
      if (!diffs.empty()) diffs += "; ";
      diffs += name + ": stored " + stored + ", configured " + wanted.dump();
      if (!why.empty()) diffs += " (it determines " + why + ")";
      if (key != "schema_version" && it != have.end())
        keep += " --set " + name + "=" + (it->is_string() ? it->get<std::string>() : stored);
    }
    if (diffs.empty()) {
      if (older_schema) schema_upgrade_ = have.dump();
      if (!adopted) return Status::Ok();
      nlohmann::json record = have;
      if (older_schema) record["schema_version"] = *older_schema;
      s = db_->Put(rocksdb::WriteOptions(), handles_[kMeta], kSettingsKey, record.dump());
      if (!s.ok()) return MapStatus(s, path_, "recording the schema");
      return Status::Ok();
    }
    std::string what_to_do = "Start with the stored settings";
    if (!keep.empty()) what_to_do += " (" + keep.substr(1) + ")";
    return Error{"schema_mismatch",
                 "the state in " + path_ +
                     " was built with settings that cannot change under "
                     "existing state: " +
                     diffs + ". " + what_to_do +
                     ", or point storage.path (--data-dir) at a new directory to build a new "
                     "state with the new ones (it is rebuilt from the topic)."};
  }

  const std::string path_;
  const config::ModelOptions model_;
  const std::string topic_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  static constexpr size_t kKeptBatchBytes = 64 << 20;
  std::mutex batch_mu_;  // Write() may be called from several threads
  // Settings recording the current schema, written with the first item rows (set on opening a
  // store of an older schema; guarded by batch_mu_ from then on). Empty: nothing to record.
  std::string schema_upgrade_;
  rocksdb::WriteBatch batch_;
  std::string buf_;
};

}  // namespace

std::shared_ptr<rocksdb::MergeOperator> EdgeRowMergeOperator() {
  return std::make_shared<EdgeRowMerge>();
}

Result<std::unique_ptr<StateStore>> OpenRocksDbStore(const config::StorageOptions& storage,
                                                     const config::ModelOptions& model,
                                                     const std::string& topic) {
  auto store = std::make_unique<RocksDbStore>(storage.path, model, topic);
  if (Status st = store->Open(); !st.ok()) return st.error();
  return std::unique_ptr<StateStore>(std::move(store));
}

}  // namespace simstream::storage
