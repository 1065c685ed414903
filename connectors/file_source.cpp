#include "connectors/file_source.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>

namespace simstream::connectors {
namespace {

// Read size: large enough that fread and memchr dominate, small enough to be irrelevant
// next to the events themselves.
constexpr size_t kChunkBytes = size_t{4} << 20;
constexpr size_t kProgressEveryBytes = size_t{16} << 20;
// MovieLens lines are a few dozen bytes; anything much longer is not a rating line.
constexpr size_t kMaxCsvLineBytes = 4096;

struct FileCloser {
  void operator()(FILE* f) const {
    if (f != stdin && f != stdout) std::fclose(f);
  }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;

Error IoError(const std::string& what, const std::string& path, int err) {
  return Error{err == ENOENT ? "not_found" : "io_error",
               what + " " + path + ": " + std::strerror(err)};
}

// One physical line. `text` excludes the newline and a trailing '\r'. When the line is longer
// than the reader's limit, `too_long` is set, `length` is its real length and `text` is cut.
struct Line {
  size_t number = 0;
  std::string_view text;
  size_t length = 0;
  bool too_long = false;
};

// Calls `on_line(const Line&)` for each line of `f`, reading in chunks so that a multi-GB file
// never sits in memory; only a line that spans two chunks is copied (bounded by `max_line`).
template <typename OnLine, typename OnChunk>
Status ForEachLine(FILE* f, const std::string& path, size_t max_line, OnLine&& on_line,
                   OnChunk&& on_chunk) {
  std::vector<char> buffer(kChunkBytes);
  std::string carry;        // start of a line that continues in the next chunk
  size_t carry_length = 0;  // its real length, which may exceed carry.size()
  size_t line_number = 0;
  size_t bytes_read = 0;

  auto append_carry = [&](const char* begin, size_t n) {
    carry_length += n;
    const size_t room = max_line + 1 > carry.size() ? max_line + 1 - carry.size() : 0;
    carry.append(begin, std::min(n, room));
  };
  auto emit = [&](std::string_view text, size_t length) {
    Line line;
    line.number = ++line_number;
    line.length = length;
    line.too_long = length > max_line;
    if (!line.too_long && !text.empty() && text.back() == '\r') text.remove_suffix(1);
    line.text = text;
    on_line(line);
  };

  for (;;) {
    const size_t n = std::fread(buffer.data(), 1, buffer.size(), f);
    if (n == 0) {
      if (std::ferror(f)) return IoError("cannot read", path, errno);
      break;
    }
    bytes_read += n;
    const char* p = buffer.data();
    const char* const end = p + n;
    while (p < end) {
      const auto* newline = static_cast<const char*>(std::memchr(p, '\n', end - p));
      if (newline == nullptr) {
        append_carry(p, end - p);
        break;
      }
      const size_t n_line = newline - p;
      if (carry_length == 0) {
        emit(std::string_view(p, n_line), n_line);
      } else {
        append_carry(p, n_line);
        emit(carry, carry_length);
        carry.clear();
        carry_length = 0;
      }
      p = newline + 1;
    }
    on_chunk(bytes_read, line_number);
  }
  if (carry_length > 0) emit(carry, carry_length);
  return Status::Ok();
}

bool IsBlank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

bool IsDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Splits a MovieLens line on its separator: tab (u.data), "::" (ml-1m) or comma (ratings.csv).
// Returns the number of fields; at most `max_fields` are stored.
size_t SplitFields(std::string_view line, std::string_view* fields, size_t max_fields) {
  std::string_view separator = ",";
  if (line.find('\t') != std::string_view::npos) {
    separator = "\t";
  } else if (line.find("::") != std::string_view::npos) {
    separator = "::";
  }
  size_t count = 0;
  for (;;) {
    const size_t at = line.find(separator);
    const std::string_view field = line.substr(0, at);
    if (count < max_fields) fields[count] = Trim(field);
    ++count;
    if (at == std::string_view::npos) break;
    line.remove_prefix(at + separator.size());
  }
  return count;
}

class BadLines {
 public:
  explicit BadLines(LoadedEvents* out) : out_(out) {}
  void Add(size_t line, std::string code, std::string message) {
    ++out_->bad_count;
    if (out_->bad.size() < kMaxBadLinesKept) {
      out_->bad.push_back(BadLine{line, std::move(code), std::move(message)});
    }
  }

 private:
  LoadedEvents* out_;
};

// Parses one MovieLens rating line into `event`, or explains why it is not one.
bool ParseRatingLine(std::string_view text, double weight, engine::Event* event, std::string* why) {
  std::string_view fields[4];
  const size_t count = SplitFields(text, fields, 4);
  if (count != 4) {
    *why = "expected 4 fields (user, item, rating, timestamp), got " + std::to_string(count);
    return false;
  }
  const std::string_view user = fields[0], item = fields[1], rating = fields[2],
                         seconds = fields[3];
  if (!IsDigits(user) || user.size() > engine::kMaxIdBytes) {
    *why = "user id must be a non-negative integer, got \"" + std::string(user) + "\"";
    return false;
  }
  if (!IsDigits(item) || item.size() > engine::kMaxIdBytes) {
    *why = "item id must be a non-negative integer, got \"" + std::string(item) + "\"";
    return false;
  }
  double stars = 0;
  const auto [rating_end, rating_ec] =
      std::from_chars(rating.data(), rating.data() + rating.size(), stars);
  if (rating.empty() || rating_ec != std::errc() || rating_end != rating.data() + rating.size()) {
    *why = "rating must be a number, got \"" + std::string(rating) + "\"";
    return false;
  }
  int64_t ts_seconds = 0;
  const auto [ts_end, ts_ec] =
      std::from_chars(seconds.data(), seconds.data() + seconds.size(), ts_seconds);
  if (!IsDigits(seconds) || ts_ec != std::errc() || ts_end != seconds.data() + seconds.size() ||
      ts_seconds > std::numeric_limits<int64_t>::max() / 1000) {
    *why = "timestamp must be epoch seconds, got \"" + std::string(seconds) + "\"";
    return false;
  }
  event->user.assign(user);
  event->item.assign(item);
  event->type = "rating";
  event->weight = weight;
  event->ts_ms = ts_seconds * 1000;
  return true;
}

// Equivalent to std::stable_sort by ts_ms, but sorts 16-byte (ts, position) keys and then
// moves each event once, instead of moving whole events O(n log n) times; several times
// faster on MovieLens, and needs no second vector of events.
void StableSortByTime(std::vector<engine::Event>& events) {
  const auto by_time = [](const engine::Event& a, const engine::Event& b) {
    return a.ts_ms < b.ts_ms;
  };
  if (std::is_sorted(events.begin(), events.end(), by_time)) return;
  std::vector<std::pair<int64_t, size_t>> keys(events.size());
  for (size_t k = 0; k < events.size(); ++k) keys[k] = {events[k].ts_ms, k};
  std::sort(keys.begin(), keys.end());  // the position breaks ties: stable
  // Apply the permutation "slot k takes events[from[k]]" cycle by cycle, in place.
  std::vector<size_t> from(events.size());
  for (size_t k = 0; k < events.size(); ++k) from[k] = keys[k].second;
  keys = {};
  for (size_t start = 0; start < events.size(); ++start) {
    if (from[start] == start) continue;
    engine::Event held = std::move(events[start]);
    size_t slot = start;
    while (from[slot] != start) {
      const size_t next = from[slot];
      events[slot] = std::move(events[next]);
      from[slot] = slot;
      slot = next;
    }
    events[slot] = std::move(held);
    from[slot] = slot;
  }
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

Result<FileFormat> ParseFileFormat(std::string_view name) {
  if (name == "jsonl") return FileFormat::kJsonl;
  if (name == "movielens") return FileFormat::kMovieLens;
  return Error{"invalid_argument",
               "unknown file format \"" + std::string(name) + "\" (expected jsonl or movielens)"};
}

FileFormat GuessFormat(const std::string& path) {
  // "u.data" ends in ".data" too.
  if (EndsWith(path, ".csv") || EndsWith(path, ".data")) return FileFormat::kMovieLens;
  return FileFormat::kJsonl;
}

Result<LoadedEvents> LoadEvents(const std::string& path, FileFormat format,
                                const engine::EventRules& rules, bool sort_by_time,
                                std::function<void(size_t, size_t)> progress) {
  FilePtr file(path == "-" ? stdin : std::fopen(path.c_str(), "rb"));
  if (!file) return IoError("cannot open", path, errno);
  size_t total_bytes = 0;
  struct stat info {};
  if (::fstat(::fileno(file.get()), &info) == 0) {
    if (S_ISDIR(info.st_mode)) return IoError("cannot read", path, EISDIR);
    if (S_ISREG(info.st_mode)) total_bytes = static_cast<size_t>(info.st_size);
  }

  LoadedEvents out;
  BadLines bad(&out);
  const bool csv = format == FileFormat::kMovieLens;
  const size_t max_line = csv ? kMaxCsvLineBytes : rules.max_message_bytes;
  double rating_weight = rules.default_weight;
  if (auto it = rules.type_weights.find("rating"); it != rules.type_weights.end()) {
    rating_weight = it->second;
  }

  std::string why;
  auto on_line = [&](const Line& line) {
    out.lines = line.number;
    if (line.too_long) {
      bad.Add(line.number, csv ? "bad_csv" : "oversized",
              "line is " + std::to_string(line.length) + " bytes, more than the limit of " +
                  std::to_string(max_line));
      return;
    }
    if (IsBlank(line.text)) return;
    if (csv) {
      // ratings.csv starts with "userId,movieId,rating,timestamp".
      if (line.number == 1 && std::isalpha(static_cast<unsigned char>(line.text.front()))) return;
      engine::Event event;
      if (ParseRatingLine(line.text, rating_weight, &event, &why)) {
        out.events.push_back(std::move(event));
      } else {
        bad.Add(line.number, "bad_csv", why);
      }
      return;
    }
    auto event = engine::ParseEvent(line.text, rules, static_cast<int64_t>(line.number));
    if (event.ok()) {
      out.events.push_back(std::move(event).value());
    } else {
      bad.Add(line.number, event.error().code, event.error().message);
    }
  };

  size_t next_progress = kProgressEveryBytes;
  bool reserved = false;
  size_t bytes_done = 0;
  auto on_chunk = [&](size_t bytes_read, size_t lines_so_far) {
    bytes_done = bytes_read;
    // One reservation from the first chunk's line density avoids regrowing (and briefly
    // doubling) a vector of millions of events.
    if (!reserved && total_bytes > bytes_read && lines_so_far > 0) {
      const double lines_per_byte = static_cast<double>(lines_so_far) / bytes_read;
      out.events.reserve(static_cast<size_t>(lines_per_byte * total_bytes * 1.05) + 16);
    }
    reserved = true;
    if (progress && bytes_read >= next_progress) {
      progress(bytes_read, total_bytes);
      next_progress = bytes_read + kProgressEveryBytes;
    }
  };

  Status read = ForEachLine(file.get(), path, max_line, on_line, on_chunk);
  if (!read.ok()) return read.error();
  if (progress) progress(bytes_done, total_bytes);
  if (sort_by_time) StableSortByTime(out.events);
  return out;
}

Status WriteJsonl(const std::string& path, const std::vector<engine::Event>& events) {
  const bool to_stdout = path == "-";
  FilePtr file(to_stdout ? stdout : std::fopen(path.c_str(), "wb"));
  if (!file) return IoError("cannot create", path, errno);
  std::string line;
  for (const engine::Event& event : events) {
    line = engine::ToJson(event);
    line.push_back('\n');
    if (std::fwrite(line.data(), 1, line.size(), file.get()) != line.size()) {
      return IoError("cannot write", path, errno);
    }
  }
  if (std::fflush(file.get()) != 0) return IoError("cannot write", path, errno);
  if (!to_stdout) {
    FILE* raw = file.release();
    if (std::fclose(raw) != 0) return IoError("cannot close", path, errno);
  }
  return Status::Ok();
}

}  // namespace simstream::connectors
