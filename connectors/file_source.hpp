// Event files for `simstream evaluate`, `tune` and `produce`: JSONL in the event contract, and
// the MovieLens rating formats.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "config/result.hpp"
#include "engine/event.hpp"

namespace simstream::connectors {

enum class FileFormat {
  // One contract event (README "Kafka ingestion") per line; blank lines are skipped.
  kJsonl,
  // MovieLens ratings: `ratings.csv` (header `userId,movieId,rating,timestamp`, seconds) or
  // `u.data` (tab-separated `user item rating timestamp`, no header). Lines separated by "::"
  // (ml-1m `ratings.dat`) are read too.
  kMovieLens,
};

// "jsonl" or "movielens"; anything else is an "invalid_argument" Error.
[[nodiscard]] Result<FileFormat> ParseFileFormat(std::string_view name);

// kMovieLens for names ending in ".csv" or ".data" (including "u.data"), else kJsonl.
[[nodiscard]] FileFormat GuessFormat(const std::string& path);

// A line that could not be turned into an event.
struct BadLine {
  size_t line = 0;   // 1-based line number in the file
  std::string code;  // a ParseEvent reason code, or "bad_csv" for MovieLens lines
  std::string message;
};

// Most BadLine entries kept in LoadedEvents::bad; later ones are only counted.
inline constexpr size_t kMaxBadLinesKept = 1000;

struct LoadedEvents {
  std::vector<engine::Event> events;
  std::vector<BadLine> bad;  // the first kMaxBadLinesKept bad lines, in file order
  size_t bad_count = 0;      // every bad line, including those not kept in `bad`
  size_t lines = 0;          // physical lines read, including blank lines and a header
};

// Reads every event of `path` ("-" reads standard input).
//
// JSONL lines go through engine::ParseEvent with `rules`; an event without "ts" gets its line
// number, so files without time keep their order. Lines longer than rules.max_message_bytes
// are reported as "oversized" without being held in memory.
// MovieLens: every rating is one interaction with user = userId, item = movieId,
// type = "rating", weight = rules.type_weights["rating"] if present else rules.default_weight
// (the number of stars is deliberately not used as a weight) and ts = timestamp × 1000.
// Malformed lines are collected in `bad` and never stop the load.
//
// With `sort_by_time`, events are stable-sorted by ts_ms, so ties keep file order.
// `progress`, when set, is called every few megabytes and once at the end with the bytes read
// so far and the file size (0 when unknown, e.g. for a pipe).
//
// The file is read in fixed-size chunks: memory is the events, not the raw bytes.
// Errors: "not_found" when the file does not exist, "io_error" when it cannot be read.
[[nodiscard]] Result<LoadedEvents> LoadEvents(
    const std::string& path, FileFormat format, const engine::EventRules& rules,
    bool sort_by_time = true,
    std::function<void(size_t bytes_read, size_t total_bytes)> progress = {});

// Writes one engine::ToJson line per event to `path` ("-" writes standard output), replacing
// the file. Errors: "io_error".
[[nodiscard]] Status WriteJsonl(const std::string& path, const std::vector<engine::Event>& events);

}  // namespace simstream::connectors
