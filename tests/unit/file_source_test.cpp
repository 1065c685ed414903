#include "connectors/file_source.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace simstream::connectors {
namespace {

namespace fs = std::filesystem;

std::string Fixture(const std::string& name) {
  return std::string(SIMSTREAM_SOURCE_DIR) + "/tests/fixtures/" + name;
}

engine::EventRules TestRules() {
  engine::EventRules rules;
  rules.type_weights = {{"click", 1.0}, {"purchase", 3.0}, {"dislike", -1.0}};
  rules.default_weight = 0.5;
  return rules;
}

// A scratch directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("simstream_file_source_" + std::to_string(::getpid()) +
                                         "_" + std::to_string(std::random_device{}()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  ASSERT_TRUE(out.good());
}

TEST(FileFormatTest, ParseAndGuess) {
  ASSERT_TRUE(ParseFileFormat("jsonl").ok());
  EXPECT_EQ(*ParseFileFormat("jsonl"), FileFormat::kJsonl);
  EXPECT_EQ(*ParseFileFormat("movielens"), FileFormat::kMovieLens);
  auto bad = ParseFileFormat("csv");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "invalid_argument");

  EXPECT_EQ(GuessFormat("data/ratings.csv"), FileFormat::kMovieLens);
  EXPECT_EQ(GuessFormat("ml-100k/u.data"), FileFormat::kMovieLens);
  EXPECT_EQ(GuessFormat("u.data"), FileFormat::kMovieLens);
  EXPECT_EQ(GuessFormat("events.jsonl"), FileFormat::kJsonl);
  EXPECT_EQ(GuessFormat("events"), FileFormat::kJsonl);
  EXPECT_EQ(GuessFormat("-"), FileFormat::kJsonl);
}

TEST(LoadEventsTest, JsonlFixtureReportsBadLinesAndLoadsTheRest) {
  auto loaded = LoadEvents(Fixture("events_sample.jsonl"), FileFormat::kJsonl, TestRules());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->lines, 8u);
  ASSERT_EQ(loaded->bad_count, 2u);
  ASSERT_EQ(loaded->bad.size(), 2u);
  EXPECT_EQ(loaded->bad[0].line, 4u);
  EXPECT_EQ(loaded->bad[0].code, "not_json");
  EXPECT_EQ(loaded->bad[1].line, 8u);
  EXPECT_EQ(loaded->bad[1].code, "missing_user");

  // Sorted by time; "u2" and "42" share ts 1000 and keep file order; the "dislike" event has
  // no ts and gets its line number, 7.
  const auto& ev = loaded->events;
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0].user, "u5");
  EXPECT_EQ(ev[0].ts_ms, 7);
  EXPECT_EQ(ev[0].weight, -1.0);
  EXPECT_EQ(ev[1].user, "u2");
  EXPECT_EQ(ev[1].weight, 2.5);
  EXPECT_EQ(ev[1].ts_ms, 1000);
  EXPECT_EQ(ev[2].user, "42");
  EXPECT_EQ(ev[2].ts_ms, 1000);
  EXPECT_EQ(ev[2].weight, 0.5);
  EXPECT_EQ(ev[3].user, "u1");
  EXPECT_EQ(ev[3].ts_ms, 3000);
  EXPECT_EQ(ev[3].type, "click");
}

TEST(LoadEventsTest, JsonlUnsortedKeepsFileOrder) {
  auto loaded = LoadEvents(Fixture("events_sample.jsonl"), FileFormat::kJsonl, TestRules(),
                           /*sort_by_time=*/false);
  ASSERT_TRUE(loaded.ok());
  std::vector<std::string> users;
  for (const auto& e : loaded->events) users.push_back(e.user);
  EXPECT_EQ(users, (std::vector<std::string>{"u1", "u2", "42", "u5"}));
}

TEST(LoadEventsTest, MovieLensCsvFixture) {
  engine::EventRules rules = TestRules();
  rules.type_weights["rating"] = 2.0;
  auto loaded = LoadEvents(Fixture("ml_ratings_sample.csv"), FileFormat::kMovieLens, rules);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->lines, 7u);
  ASSERT_EQ(loaded->bad.size(), 2u);
  EXPECT_EQ(loaded->bad[0].line, 5u);  // non-numeric movieId
  EXPECT_EQ(loaded->bad[0].code, "bad_csv");
  EXPECT_EQ(loaded->bad[1].line, 6u);  // three fields
  EXPECT_EQ(loaded->bad[1].code, "bad_csv");

  const auto& ev = loaded->events;
  ASSERT_EQ(ev.size(), 4u);
  // Seconds become milliseconds; (2,20) and (1,30) tie and keep file order.
  EXPECT_EQ(ev[0].user, "2");
  EXPECT_EQ(ev[0].item, "50");
  EXPECT_EQ(ev[0].ts_ms, 964981000000);
  EXPECT_EQ(ev[1].item, "20");
  EXPECT_EQ(ev[1].ts_ms, 964982000000);
  EXPECT_EQ(ev[2].item, "30");
  EXPECT_EQ(ev[2].ts_ms, 964982000000);
  EXPECT_EQ(ev[3].item, "10");
  EXPECT_EQ(ev[3].ts_ms, 964982703000);
  for (const auto& e : ev) {
    EXPECT_EQ(e.type, "rating");
    EXPECT_EQ(e.weight, 2.0);  // the rule's weight, never the stars
  }
}

TEST(LoadEventsTest, MovieLensUDataFixtureUsesDefaultWeight) {
  auto loaded = LoadEvents(Fixture("ml_u_sample.data"), FileFormat::kMovieLens, TestRules());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->lines, 5u);
  ASSERT_EQ(loaded->bad_count, 1u);
  EXPECT_EQ(loaded->bad[0].line, 5u);
  EXPECT_EQ(loaded->bad[0].code, "bad_csv");

  const auto& ev = loaded->events;
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0].user, "22");
  EXPECT_EQ(ev[0].ts_ms, 878887116000);
  EXPECT_EQ(ev[1].user, "196");
  EXPECT_EQ(ev[1].item, "242");  // ties with (196, 51) and comes first in the file
  EXPECT_EQ(ev[2].user, "196");
  EXPECT_EQ(ev[2].item, "51");
  EXPECT_EQ(ev[1].ts_ms, ev[2].ts_ms);
  EXPECT_EQ(ev[3].user, "186");
  EXPECT_EQ(ev[3].ts_ms, 891717742000);
  for (const auto& e : ev) EXPECT_EQ(e.weight, 0.5);
}

TEST(LoadEventsTest, MissingFileIsAnError) {
  auto loaded = LoadEvents("/nonexistent/simstream/events.jsonl", FileFormat::kJsonl, TestRules());
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().code, "not_found");
  EXPECT_NE(loaded.error().message.find("/nonexistent/simstream/events.jsonl"), std::string::npos);

  TempDir dir;
  auto directory = LoadEvents(dir.File(""), FileFormat::kJsonl, TestRules());
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.error().code, "io_error");
}

TEST(LoadEventsTest, LastLineWithoutNewlineAndCrlf) {
  TempDir dir;
  const std::string path = dir.File("e.jsonl");
  WriteFile(path, "{\"user\":\"a\",\"item\":\"x\"}\r\n\r\n{\"user\":\"b\",\"item\":\"y\"}");
  auto loaded = LoadEvents(path, FileFormat::kJsonl, TestRules(), /*sort_by_time=*/false);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->lines, 3u);
  EXPECT_EQ(loaded->bad_count, 0u);
  ASSERT_EQ(loaded->events.size(), 2u);
  EXPECT_EQ(loaded->events[1].user, "b");
  EXPECT_EQ(loaded->events[1].ts_ms, 3);
}

TEST(LoadEventsTest, OversizedLineIsReportedNotHeld) {
  TempDir dir;
  const std::string path = dir.File("big.jsonl");
  engine::EventRules rules = TestRules();
  rules.max_message_bytes = 100;
  const std::string huge = "{\"user\":\"" + std::string(10 << 20, 'u') + "\",\"item\":\"i\"}";
  WriteFile(path,
            "{\"user\":\"a\",\"item\":\"x\"}\n" + huge + "\n{\"user\":\"b\",\"item\":\"y\"}\n");
  auto loaded = LoadEvents(path, FileFormat::kJsonl, rules);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->events.size(), 2u);
  ASSERT_EQ(loaded->bad.size(), 1u);
  EXPECT_EQ(loaded->bad[0].line, 2u);
  EXPECT_EQ(loaded->bad[0].code, "oversized");
  EXPECT_NE(loaded->bad[0].message.find(std::to_string(huge.size())), std::string::npos);
}

TEST(LoadEventsTest, KeepsFirstThousandBadLinesButCountsAll) {
  TempDir dir;
  const std::string path = dir.File("bad.jsonl");
  std::string content;
  for (int k = 0; k < 1500; ++k) content += "not json\n";
  content += "{\"user\":\"a\",\"item\":\"x\"}\n";
  WriteFile(path, content);
  auto loaded = LoadEvents(path, FileFormat::kJsonl, TestRules());
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->bad_count, 1500u);
  EXPECT_EQ(loaded->bad.size(), kMaxBadLinesKept);
  EXPECT_EQ(loaded->bad.back().line, kMaxBadLinesKept);
  EXPECT_EQ(loaded->events.size(), 1u);
  EXPECT_EQ(loaded->lines, 1501u);
}

// The chunked reader and the stable sort against the obvious twin: parse every line of the
// whole file held in memory, then order by (ts, line).
TEST(LoadEventsTest, LargeRandomFileMatchesSlowTwin) {
  TempDir dir;
  const std::string path = dir.File("random.jsonl");
  std::mt19937_64 rng(42);
  std::string content;
  struct Expected {
    int64_t ts;
    size_t line;
    std::string user;
  };
  std::vector<Expected> expected;
  size_t line = 0;
  size_t bad = 0;
  // About 9 MB: several 4 MiB chunks, so lines straddle chunk boundaries.
  while (content.size() < (9u << 20)) {
    ++line;
    const uint64_t r = rng() % 100;
    if (r == 0) {
      content += "{broken\n";
      ++bad;
      continue;
    }
    if (r == 1) {
      content += "\n";
      continue;
    }
    const std::string user =
        "user-" + std::to_string(rng() % 5000) + std::string(rng() % 120, 'p');  // varied lengths
    const bool has_ts = r >= 10;
    const int64_t ts = has_ts ? static_cast<int64_t>(rng() % 2000) : static_cast<int64_t>(line);
    content += "{\"user\":\"" + user + "\",\"item\":\"i" + std::to_string(rng() % 100) + "\"";
    if (has_ts) content += ",\"ts\":" + std::to_string(ts);
    content += "}\n";
    expected.push_back({ts, line, user});
  }
  WriteFile(path, content);
  std::sort(expected.begin(), expected.end(), [](const Expected& a, const Expected& b) {
    return a.ts != b.ts ? a.ts < b.ts : a.line < b.line;
  });

  size_t progress_calls = 0;
  size_t last_read = 0;
  auto loaded = LoadEvents(path, FileFormat::kJsonl, TestRules(), /*sort_by_time=*/true,
                           [&](size_t read, size_t total) {
                             ++progress_calls;
                             EXPECT_EQ(total, content.size());
                             EXPECT_GE(read, last_read);
                             last_read = read;
                           });
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->lines, line);
  EXPECT_EQ(loaded->bad_count, bad);
  EXPECT_GE(progress_calls, 1u);
  EXPECT_EQ(last_read, content.size());
  ASSERT_EQ(loaded->events.size(), expected.size());
  for (size_t k = 0; k < expected.size(); ++k) {
    ASSERT_EQ(loaded->events[k].user, expected[k].user) << k;
    ASSERT_EQ(loaded->events[k].ts_ms, expected[k].ts) << k;
  }
}

TEST(WriteJsonlTest, RoundTripsThroughLoadEvents) {
  TempDir dir;
  const std::string path = dir.File("out.jsonl");
  const std::vector<engine::Event> events = {
      {"u1", "i1", "click", 1.0, 10},
      {"u\"2", "caf\xC3\xA9", "", -0.25, 20},
      {"u3", "i3", "dislike", -1.0, 30},
  };
  ASSERT_TRUE(WriteJsonl(path, events).ok());
  auto loaded = LoadEvents(path, FileFormat::kJsonl, TestRules());
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->bad_count, 0u);
  ASSERT_EQ(loaded->events.size(), events.size());
  for (size_t k = 0; k < events.size(); ++k) {
    EXPECT_EQ(loaded->events[k].user, events[k].user);
    EXPECT_EQ(loaded->events[k].item, events[k].item);
    EXPECT_EQ(loaded->events[k].type, events[k].type);
    EXPECT_EQ(loaded->events[k].weight, events[k].weight);
    EXPECT_EQ(loaded->events[k].ts_ms, events[k].ts_ms);
  }

  auto unwritable = WriteJsonl(dir.File("no/such/dir/out.jsonl"), events);
  ASSERT_FALSE(unwritable.ok());
}

TEST(LoadEventsTest, RealMovieLensSmall) {
  const std::string path = SIMSTREAM_SOURCE_DIR "/../shared/datasets/ml-latest-small/ratings.csv";
  if (!fs::exists(path)) GTEST_SKIP() << path << " not present";
  auto loaded = LoadEvents(path, GuessFormat(path), TestRules());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->events.size(), 100836u);
  EXPECT_EQ(loaded->bad_count, 0u);
  std::set<std::string> users;
  for (const auto& e : loaded->events) users.insert(e.user);
  EXPECT_EQ(users.size(), 610u);
  EXPECT_TRUE(std::is_sorted(
      loaded->events.begin(), loaded->events.end(),
      [](const engine::Event& a, const engine::Event& b) { return a.ts_ms < b.ts_ms; }));
}

}  // namespace
}  // namespace simstream::connectors
