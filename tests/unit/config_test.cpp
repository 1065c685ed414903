#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "config/loader.hpp"

namespace simstream::config {
namespace {

using nlohmann::json;

const json& Defaults() {
  static const json defaults = ToJson(Options{});
  return defaults;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A file in a fresh temporary directory, removed with the fixture.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    dir_ =
        std::filesystem::temp_directory_path() /
        ("simstream-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "config.json").string();
    std::ofstream(path_, std::ios::binary) << text;
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::filesystem::path dir_;
  std::string path_;
};

// The ranges the brief asks for, written out independently of the loader's table: the loader
// must agree with this list at every boundary.
struct ExpectedRange {
  const char* name;
  double lo;
  double hi;
  bool lo_open;
};
const std::vector<ExpectedRange> kExpectedRanges = {
    {"kafka.batch_size", 1, 1000000, false},
    {"kafka.max_message_bytes", 1, 100 * 1024 * 1024, false},
    {"storage.flush_interval_ms", 1, 3600000, false},
    {"storage.flush_max_dirty", 1, 1e9, false},
    {"server.threads", 1, 256, false},
    {"server.body_limit", 1, 1073741824, false},
    {"server.header_limit", 256, 1048576, false},
    {"server.url_limit", 16, 1048576, false},
    {"server.read_timeout_ms", 1, 3600000, false},
    {"server.idle_timeout_ms", 1, 86400000, false},
    {"server.write_timeout_ms", 1, 3600000, false},
    {"server.max_connections", 1, 1000000, false},
    {"server.pipeline_limit", 1, 1024, false},
    {"server.wait_timeout_ms", 1, 600000, false},
    {"model.dim", 1, 1024, false},
    {"model.negatives", 0, 256, false},
    {"model.learning_rate", 0, 10, true},
    {"model.l2", 0, 1, false},
    {"model.popular_negative_share", 0, 1, false},
    {"model.margin", 0, 10, false},
    {"model.temperature", 1e-3, 100, false},
    {"model.init_scale", 0, 10, true},
    {"model.history_half_life_events", 0, 1e9, true},
    {"model.cooccurrence_window", 0, 10000, false},
    {"model.neighbourhood_items", 0, 10000, false},
    {"model.mix_learning_rate", 0, 10, false},
    {"model.mix_candidates", 0, 1024, false},
    {"model.mix_every", 1, 1000000, false},
    {"model.neighbour_shrinkage", 0, 1e6, false},
    {"model.popularity_half_life_events", 1, 1e12, false},
    {"model.default_event_weight", -1000, 1000, false},
    {"model.minhash_size", 1, 4096, false},
    {"eval.k", 1, 1000, false},
    {"eval.popularity_half_life_events", 1, 1e12, false},
    {"index.hnsw_min_size", 0, 1e10, false},
    {"index.m", 2, 256, false},
    {"index.ef_construction", 1, 4096, false},
    {"index.ef_reinsert", 0, 4096, false},
    {"index.ef_search", 1, 4096, false},
    {"index.drift_threshold", 0, 2, false},
    {"index.maintenance_interval_ms", 0, 86400000, false},
    {"index.rebuild_below_recall", 0, 1, false},
    {"index.max_reinserts_per_batch", 0, 1e9, false},
    {"index.defer_builds_above_lag", 0, 1e15, false},
    {"index.neighbour_lists_interval_ms", 0, 86400000, false},
};

const ExpectedRange* FindExpectedRange(const std::string& name) {
  for (const ExpectedRange& r : kExpectedRanges) {
    if (name == r.name) return &r;
  }
  return nullptr;
}

Status ApplyOne(Options& opts, const std::string& name, const json& value) {
  const size_t dot = name.find('.');
  json doc;
  doc[name.substr(0, dot)][name.substr(dot + 1)] = value;
  return ApplyJson(opts, doc);
}

Status AsStatus(const Result<Options>& result) {
  return result.ok() ? Status::Ok() : Status(result.error());
}

::testing::AssertionResult Fails(const Status& status, const std::vector<std::string>& parts) {
  if (status.ok()) return ::testing::AssertionFailure() << "expected an error, got ok";
  if (status.error().code != "invalid_config") {
    return ::testing::AssertionFailure() << "code " << status.error().code;
  }
  for (const std::string& part : parts) {
    if (status.error().message.find(part) == std::string::npos) {
      return ::testing::AssertionFailure()
             << "message \"" << status.error().message << "\" lacks \"" << part << "\"";
    }
  }
  return ::testing::AssertionSuccess() << status.error().message;
}

// ---------------------------------------------------------------------------------------------

TEST(ConfigKeys, EveryKeyIsListedOnceWithItsDefault) {
  const std::vector<KeyInfo>& keys = Keys();
  // 8 kafka + 3 storage + 14 server + 22 model + 2 eval + 12 index fields in options.hpp.
  EXPECT_EQ(keys.size(), 61u);
  std::set<std::string> names;
  std::set<std::string> env_vars;
  for (const KeyInfo& info : keys) {
    EXPECT_TRUE(names.insert(info.name).second) << info.name;
    EXPECT_TRUE(env_vars.insert(info.env_var).second) << info.env_var;
    EXPECT_EQ(info.name, info.section + "." + info.key);
    EXPECT_FALSE(info.doc.empty()) << info.name;
    EXPECT_EQ(info.doc.find('\n'), std::string::npos) << info.name;
    EXPECT_EQ(info.default_value, Defaults()[info.section][info.key]) << info.name;
    EXPECT_EQ(FindKey(info.name), &info);
  }
  // ToJson has exactly these keys.
  size_t count = 0;
  for (const auto& section : Defaults().items()) count += section.value().size();
  EXPECT_EQ(count, keys.size());
  EXPECT_EQ(FindKey("model.nope"), nullptr);

  const KeyInfo* weights = FindKey("model.event_weights");
  ASSERT_NE(weights, nullptr);
  EXPECT_EQ(weights->type, KeyType::kDoubleMap);
  EXPECT_EQ(TypeName(weights->type), "map<string,double>");
  EXPECT_EQ(FindKey("kafka.properties")->type, KeyType::kStringMap);
  EXPECT_EQ(FindKey("model.dim")->type, KeyType::kInt64);
  EXPECT_EQ(FindKey("model.l2")->type, KeyType::kDouble);
  EXPECT_EQ(FindKey("model.loss")->type, KeyType::kString);
  EXPECT_EQ(FindKey("model.history_half_life_events")->env_var,
            "SIMSTREAM_MODEL_HISTORY_HALF_LIFE_EVENTS");
  EXPECT_EQ(FindKey("model.loss")->allowed,
            (std::vector<std::string>{"bpr", "contrastive", "triplet", "softmax"}));
  EXPECT_TRUE(FindKey("server.admin_token")->secret);
}

TEST(ConfigDefaults, MatchOptionsHppAndValidate) {
  Result<Options> loaded = Load("", std::vector<std::string>{}, {});
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(ToJson(*loaded), Defaults());
  EXPECT_TRUE(Validate(Options{}).ok());
  // Spot checks by hand against the README configuration table / options.hpp.
  EXPECT_EQ(Defaults()["kafka"]["topic"], "events");
  EXPECT_EQ(Defaults()["server"]["listen"], "127.0.0.1:8080");
  EXPECT_EQ(Defaults()["model"]["dim"], 64);
  EXPECT_EQ(Defaults()["model"]["event_weights"]["dislike"], -1.0);
  EXPECT_EQ(loaded->kafka.EffectiveDlqTopic(), "events.dlq");
}

// The committed example can never drift from the code: same text, loads to the defaults,
// documents every key.
TEST(ConfigExample, CommittedFileIsExampleConfigAndLoadsToDefaults) {
  const std::string path = std::string(SIMSTREAM_SOURCE_DIR) + "/config/simstream.example.json";
  const std::string text = ReadText(path);
  ASSERT_FALSE(text.empty()) << path;
  EXPECT_EQ(text, ExampleConfig())
      << "regenerate config/simstream.example.json from ExampleConfig()";

  Result<Options> loaded = LoadFile(path);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(ToJson(*loaded), Defaults());

  // The comment lines right above each key, joined, must be its doc and constraint.
  std::map<std::string, std::string> comments;  // "section.key" -> joined comment
  std::istringstream lines(text);
  std::string line;
  std::string section;
  std::string comment;
  const std::regex section_line(R"re(^  "(\w+)": \{$)re");
  const std::regex key_line(R"re(^    "(\w+)": )re");
  const std::regex comment_line(R"re(^ *// (.*)$)re");
  std::smatch m;
  while (std::getline(lines, line)) {
    if (std::regex_match(line, m, comment_line)) {
      comment += (comment.empty() ? "" : " ") + m[1].str();
      continue;
    }
    if (std::regex_match(line, m, section_line)) section = m[1];
    if (std::regex_search(line, m, key_line)) {
      EXPECT_TRUE(comments.emplace(section + "." + m[1].str(), comment).second) << line;
    }
    comment.clear();
  }
  EXPECT_EQ(comments.size(), Keys().size());
  for (const KeyInfo& info : Keys()) {
    const std::string expected = info.doc + (info.constraint.empty() ? "" : " " + info.constraint);
    EXPECT_EQ(comments[info.name], expected) << info.name;
  }
}

TEST(ConfigFile, CommentsAreAllowedAndUnsetKeysKeepDefaults) {
  TempFile file(R"(// a line comment
{
  /* a block
     comment */
  "model": {
    "dim": 32,  // trailing comment
    "loss": "triplet"
  },
  "kafka": {"brokers": "k1:9092,k2:9092", "properties": {"security.protocol": "SSL"}}
})");
  Result<Options> loaded = LoadFile(file.path());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->model.dim, 32);
  EXPECT_EQ(loaded->model.loss, "triplet");
  EXPECT_EQ(loaded->kafka.brokers, "k1:9092,k2:9092");
  EXPECT_EQ(loaded->kafka.properties,
            (std::map<std::string, std::string>{{"security.protocol", "SSL"}}));
  json expected = Defaults();
  expected["model"]["dim"] = 32;
  expected["model"]["loss"] = "triplet";
  expected["kafka"]["brokers"] = "k1:9092,k2:9092";
  expected["kafka"]["properties"] = {{"security.protocol", "SSL"}};
  EXPECT_EQ(ToJson(*loaded), expected);
}

TEST(ConfigFile, MissingMalformedAndInvalidFilesAreClearErrors) {
  Result<Options> missing = LoadFile("/nonexistent/simstream.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, "not_found");
  EXPECT_NE(missing.error().message.find("/nonexistent/simstream.json"), std::string::npos);

  TempFile malformed(R"({"model": {"dim": 32,, }})");
  Result<Options> bad = LoadFile(malformed.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "invalid_config");
  EXPECT_NE(bad.error().message.find(malformed.path()), std::string::npos);
  EXPECT_NE(bad.error().message.find("line 1"), std::string::npos) << bad.error().message;

  TempFile invalid(R"({"model": {"dim": 0}})");
  Result<Options> out_of_range = LoadFile(invalid.path());
  ASSERT_FALSE(out_of_range.ok());
  EXPECT_NE(out_of_range.error().message.find(invalid.path()), std::string::npos);
  EXPECT_NE(out_of_range.error().message.find("model.dim"), std::string::npos);

  Result<Options> via_load = Load("/nonexistent/simstream.json", std::vector<std::string>{}, {});
  ASSERT_FALSE(via_load.ok());
  EXPECT_EQ(via_load.error().code, "not_found");
}

TEST(ConfigPrecedence, EnvironmentBeatsFileAndSetBeatsEnvironment) {
  TempFile file(R"({"model": {"dim": 16, "loss": "softmax"}, "kafka": {"topic": "from-file"}})");
  const std::vector<std::string> env = {"SIMSTREAM_MODEL_DIM=32", "SIMSTREAM_KAFKA_TOPIC=from-env",
                                        "PATH=/usr/bin"};
  Result<Options> file_env = Load(file.path(), env, {});
  ASSERT_TRUE(file_env.ok()) << file_env.error().message;
  EXPECT_EQ(file_env->model.dim, 32);
  EXPECT_EQ(file_env->model.loss, "softmax");  // only in the file
  EXPECT_EQ(file_env->kafka.topic, "from-env");

  Result<Options> all = Load(file.path(), env, {"model.dim=48", "model.dim=8"});
  ASSERT_TRUE(all.ok()) << all.error().message;
  EXPECT_EQ(all->model.dim, 8);  // the last --set wins
  EXPECT_EQ(all->kafka.topic, "from-env");

  // The char** overload reads a null-terminated environ-style array.
  std::vector<std::string> storage = {"SIMSTREAM_MODEL_DIM=24", "HOME=/root"};
  std::vector<char*> envp;
  for (std::string& s : storage) envp.push_back(s.data());
  envp.push_back(nullptr);
  Result<Options> with_envp = Load(file.path(), envp.data(), {});
  ASSERT_TRUE(with_envp.ok()) << with_envp.error().message;
  EXPECT_EQ(with_envp->model.dim, 24);
  Result<Options> null_envp = Load(file.path(), static_cast<char**>(nullptr), {});
  ASSERT_TRUE(null_envp.ok());
  EXPECT_EQ(null_envp->model.dim, 16);
}

TEST(ConfigEnvironment, MultiWordKeysMapsAndIgnoredVariables) {
  Options opts;
  ASSERT_TRUE(ApplyEnvironment(opts,
                               std::vector<std::string>{
                                   "SIMSTREAM_MODEL_HISTORY_HALF_LIFE_EVENTS=5",
                                   "SIMSTREAM_KAFKA_DLQ_TOPIC=x",
                                   "SIMSTREAM_SERVER_READ_TOKEN=12345",
                                   R"(SIMSTREAM_MODEL_EVENT_WEIGHTS={"click": 1.5})",
                                   "SIMSTREAM_CONFIG=/etc/simstream.json",  // not a section
                                   "SIMSTREAM_SOURCE_DIR=/src",
                                   "SIMSTREAM_MODEL",  // no '='
                                   "OTHER_MODEL_DIM=1",
                               })
                  .ok());
  EXPECT_EQ(opts.model.history_half_life_events, 5.0);
  EXPECT_EQ(opts.kafka.dlq_topic, "x");
  EXPECT_EQ(opts.server.read_token, "12345");  // a string key takes the text verbatim
  EXPECT_EQ(opts.model.event_weights, (std::map<std::string, double>{{"click", 1.5}}));
  EXPECT_EQ(opts.model.dim, 64);
}

TEST(ConfigEnvironment, UnknownVariableOfAKnownSectionIsAnErrorAndChangesNothing) {
  Options opts;
  const Status status = ApplyEnvironment(
      opts, std::vector<std::string>{"SIMSTREAM_MODEL_DIM=32", "SIMSTREAM_MODEL_DIMM=32"});
  EXPECT_TRUE(Fails(status, {"SIMSTREAM_MODEL_DIMM", "SIMSTREAM_MODEL_DIM", "did you mean"}));
  EXPECT_EQ(opts.model.dim, 64);  // all or nothing

  EXPECT_TRUE(Fails(ApplyEnvironment(opts, std::vector<std::string>{"SIMSTREAM_MODEL_DIM=big"}),
                    {"SIMSTREAM_MODEL_DIM", "model.dim", "int64", "string"}));
  // A value that is not allowed names the variable and the allowed values.
  EXPECT_TRUE(Fails(ApplyEnvironment(opts, std::vector<std::string>{"SIMSTREAM_MODEL_LOSS=adam"}),
                    {"SIMSTREAM_MODEL_LOSS", "bpr, contrastive, triplet, softmax"}));
}

TEST(ConfigOverride, ValuesAreJsonWhenTheyParseElseStrings) {
  Options opts;
  ASSERT_TRUE(ApplyOverride(opts, "model.dim=32").ok());
  EXPECT_EQ(opts.model.dim, 32);
  ASSERT_TRUE(ApplyOverride(opts, "kafka.brokers=localhost:9092,other:9093").ok());
  EXPECT_EQ(opts.kafka.brokers, "localhost:9092,other:9093");
  ASSERT_TRUE(ApplyOverride(opts, R"(model.event_weights={"click":1,"skip":-0.5})").ok());
  EXPECT_EQ(opts.model.event_weights,
            (std::map<std::string, double>{{"click", 1.0}, {"skip", -0.5}}));
  ASSERT_TRUE(ApplyOverride(opts, R"(kafka.properties={"sasl.mechanism":"PLAIN"})").ok());
  EXPECT_EQ(opts.kafka.properties.at("sasl.mechanism"), "PLAIN");
  ASSERT_TRUE(ApplyOverride(opts, "server.admin_token=true").ok());
  EXPECT_EQ(opts.server.admin_token, "true");
  ASSERT_TRUE(ApplyOverride(opts, R"(kafka.topic="quoted")").ok());
  EXPECT_EQ(opts.kafka.topic, "quoted");
  ASSERT_TRUE(ApplyOverride(opts, "kafka.dlq_topic=").ok());
  EXPECT_EQ(opts.kafka.dlq_topic, "");
  ASSERT_TRUE(ApplyOverride(opts, "model.learning_rate=1e-3").ok());
  EXPECT_EQ(opts.model.learning_rate, 1e-3);
  ASSERT_TRUE(ApplyOverride(opts, "storage.flush_max_dirty=1e6").ok());  // a whole number
  EXPECT_EQ(opts.storage.flush_max_dirty, 1000000);

  EXPECT_TRUE(Fails(ApplyOverride(opts, "model.dim=abc"), {"model.dim", "int64", "string"}));
  EXPECT_TRUE(Fails(ApplyOverride(opts, "model.dim="), {"model.dim", "int64"}));
  EXPECT_TRUE(Fails(ApplyOverride(opts, "model.dim"), {"section.key=value"}));
  EXPECT_TRUE(Fails(ApplyOverride(opts, "dim=3"), {"section.key=value"}));
  EXPECT_TRUE(Fails(ApplyOverride(opts, "modle.dim=3"), {"modle", "model", "valid sections"}));
  EXPECT_TRUE(Fails(ApplyOverride(opts, "model.dimm=3"), {"model.dimm", "learning_rate"}));
  EXPECT_EQ(opts.model.dim, 32);  // failed overrides change nothing
}

TEST(ConfigErrors, UnknownKeyNamesTheKeyAndListsTheSection) {
  Options opts;
  EXPECT_TRUE(Fails(ApplyJson(opts, {{"model", {{"dimm", 3}}}}),
                    {"\"model.dimm\"", "did you mean \"dim\"", "valid keys of section \"model\"",
                     "dim, loss, learning_rate", "minhash_size"}));
  EXPECT_TRUE(Fails(ApplyJson(opts, {{"server", {{"port", 80}}}}),
                    {"server.port", "listen, threads, body_limit"}));
  EXPECT_TRUE(
      Fails(ApplyJson(opts, {{"modle", json::object()}}),
            {"\"modle\"", "did you mean \"model\"", "kafka, storage, server, model, eval"}));
  EXPECT_TRUE(Fails(ApplyJson(opts, json::array()), {"object"}));
  EXPECT_TRUE(Fails(ApplyJson(opts, {{"model", 3}}), {"model", "object"}));
}

TEST(ConfigErrors, WrongTypeNamesKeyExpectedAndGot) {
  Options opts;
  EXPECT_TRUE(Fails(ApplyOne(opts, "model.dim", "big"), {"model.dim", "expected int64", "string"}));
  EXPECT_TRUE(Fails(ApplyOne(opts, "model.dim", 32.5), {"model.dim", "int64", "number 32.5"}));
  EXPECT_TRUE(Fails(ApplyOne(opts, "model.dim", true), {"model.dim", "int64", "boolean"}));
  EXPECT_TRUE(Fails(ApplyOne(opts, "model.l2", "0.1"), {"model.l2", "double", "string"}));
  EXPECT_TRUE(Fails(ApplyOne(opts, "model.loss", 1), {"model.loss", "string", "number"}));
  EXPECT_TRUE(Fails(ApplyOne(opts, "kafka.brokers", nullptr), {"kafka.brokers", "null"}));
  EXPECT_TRUE(Fails(ApplyOne(opts, "kafka.properties", json::array({"a"})),
                    {"kafka.properties", "map<string,string>", "array"}));
  EXPECT_TRUE(Fails(ApplyOne(opts, "kafka.properties", {{"linger.ms", 5}}),
                    {"kafka.properties[\"linger.ms\"]", "expected string", "number"}));
  EXPECT_TRUE(Fails(ApplyOne(opts, "model.event_weights", {{"click", "high"}}),
                    {"model.event_weights[\"click\"]", "double", "string"}));
  // Secrets are never echoed back.
  const Status secret = ApplyOne(opts, "kafka.properties", {{"sasl.password", 12345}});
  ASSERT_FALSE(secret.ok());
  EXPECT_EQ(secret.error().message.find("12345"), std::string::npos) << secret.error().message;
  EXPECT_EQ(ToJson(opts), Defaults());  // nothing applied
}

TEST(ConfigErrors, OutOfRangeNamesTheRange) {
  Options opts;
  EXPECT_TRUE(Fails(ApplyOne(opts, "model.dim", 0), {"model.dim", "0", "[1, 1024]"}));
  EXPECT_TRUE(Fails(ApplyOne(opts, "model.learning_rate", 0), {"model.learning_rate", "(0, 10]"}));
  EXPECT_TRUE(Fails(ApplyOne(opts, "server.body_limit", std::numeric_limits<uint64_t>::max()),
                    {"server.body_limit", "[1, 1073741824]"}));
  EXPECT_TRUE(Fails(ApplyOne(opts, "model.seed", 1e30), {"model.seed", "out of range"}));
  EXPECT_TRUE(ApplyOne(opts, "model.seed", std::numeric_limits<int64_t>::min()).ok());
  EXPECT_EQ(opts.model.seed, std::numeric_limits<int64_t>::min());
  EXPECT_TRUE(Fails(ApplyOverride(opts, "model.temperature=1e999"), {"model.temperature"}));
}

// Every bounded key accepts its bounds and rejects just outside them, checked against the
// independent table above; every unbounded numeric key is one we meant to leave unbounded.
TEST(ConfigErrors, EveryRangeMatchesTheSpecAtItsBoundaries) {
  const std::set<std::string> unbounded = {"model.seed"};
  size_t checked = 0;
  for (const KeyInfo& info : Keys()) {
    if (info.type != KeyType::kInt64 && info.type != KeyType::kDouble) continue;
    const ExpectedRange* range = FindExpectedRange(info.name);
    if (range == nullptr) {
      EXPECT_TRUE(unbounded.count(info.name)) << info.name << " has no expected range";
      EXPECT_TRUE(info.constraint.empty()) << info.name;
      continue;
    }
    ++checked;
    const bool is_int = info.type == KeyType::kInt64;
    const auto value = [&](double d) { return is_int ? json(static_cast<int64_t>(d)) : json(d); };
    const double below = is_int ? range->lo - 1 : std::nextafter(range->lo, -1e300);
    const double above = is_int ? range->hi + 1 : std::nextafter(range->hi, 1e300);
    Options opts;
    EXPECT_TRUE(ApplyOne(opts, info.name, value(range->hi)).ok()) << info.name;
    EXPECT_TRUE(Fails(ApplyOne(opts, info.name, value(above)), {info.name, "out of range"}));
    EXPECT_TRUE(Fails(ApplyOne(opts, info.name, value(below)), {info.name, "out of range"}));
    const Status at_lo = ApplyOne(opts, info.name, value(range->lo));
    EXPECT_EQ(at_lo.ok(), !range->lo_open) << info.name;
    if (range->lo_open) {
      EXPECT_TRUE(ApplyOne(opts, info.name, value(range->lo + 1e-9)).ok()) << info.name;
      EXPECT_NE(info.constraint.find("(" + std::to_string(static_cast<int>(range->lo)) + ", "),
                std::string::npos)
          << info.name << ": " << info.constraint;
    } else {
      EXPECT_NE(info.constraint.find("["), std::string::npos) << info.name;
    }
  }
  EXPECT_EQ(checked, kExpectedRanges.size());
}

TEST(ConfigErrors, EnumsListTheAllowedValues) {
  Options opts;
  EXPECT_TRUE(Fails(ApplyOne(opts, "model.loss", "adam"),
                    {"model.loss", "\"adam\"", "bpr, contrastive, triplet, softmax"}));
  EXPECT_TRUE(
      Fails(ApplyOne(opts, "model.scorer", "Hybrid"), {"model.scorer", "hybrid, embedding"}));
  EXPECT_TRUE(Fails(ApplyOne(opts, "kafka.unknown_event_type", "drop"),
                    {"kafka.unknown_event_type", "reject, default"}));
  for (const char* loss : {"bpr", "contrastive", "triplet", "softmax"}) {
    ASSERT_TRUE(ApplyOne(opts, "model.loss", loss).ok()) << loss;
    EXPECT_EQ(opts.model.loss, loss);
  }
  ASSERT_TRUE(ApplyOne(opts, "kafka.unknown_event_type", "reject").ok());
  EXPECT_EQ(opts.kafka.unknown_event_type, "reject");
}

TEST(ConfigMaps, AMapReplacesTheWholeMap) {
  Options opts;
  ASSERT_TRUE(ApplyOne(opts, "model.event_weights", {{"click", 2}}).ok());
  EXPECT_EQ(opts.model.event_weights, (std::map<std::string, double>{{"click", 2.0}}));
  ASSERT_TRUE(ApplyOne(opts, "model.event_weights", json::object()).ok());
  EXPECT_TRUE(opts.model.event_weights.empty());
  ASSERT_TRUE(ApplyOne(opts, "kafka.properties",
                       {{"security.protocol", "SASL_SSL"}, {"sasl.password", "pw"}})
                  .ok());
  ASSERT_TRUE(ApplyOne(opts, "kafka.properties", {{"client.id", "a"}}).ok());
  EXPECT_EQ(opts.kafka.properties, (std::map<std::string, std::string>{{"client.id", "a"}}));
  EXPECT_TRUE(Fails(ApplyOne(opts, "model.event_weights", {{"", 1}}), {"model.event_weights"}));
  EXPECT_TRUE(Fails(ApplyOne(opts, "kafka.properties", {{"", "x"}}), {"kafka.properties"}));
}

TEST(ConfigValidate, ListenMustBeHostPort) {
  Options opts;
  for (const char* bad :
       {"localhost", "localhost:", ":8080", "host:70000", "host:-1", "host:80a", "::1:8080",
        "[::1]8080", "[::1", "", "example.com:443", "myhost:8080", "256.0.0.1:80"}) {
    EXPECT_TRUE(Fails(ApplyOne(opts, "server.listen", bad), {"server.listen"})) << bad;
    Options direct;
    direct.server.listen = bad;
    EXPECT_TRUE(Fails(Validate(direct), {"server.listen"})) << bad;
  }
  EXPECT_TRUE(Fails(ApplyOverride(opts, "server.listen=host:65536"), {"server.listen", "65535"}));
  // The server binds, it does not resolve: a name other than localhost is refused when the
  // config is loaded, not after the store and the Kafka clients are up.
  EXPECT_TRUE(Fails(ApplyOverride(opts, "server.listen=myhost:8080"),
                    {"server.listen", "myhost", "not an IP address"}));
  for (const char* good :
       {"0.0.0.0:0", "localhost:65535", "[::1]:8080", "10.1.2.3:443", "[fe80::1%lo]:8080"}) {
    EXPECT_TRUE(ApplyOne(opts, "server.listen", good).ok()) << good;
  }
  Result<HostPort> v6 = ParseHostPort("[::1]:8080");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 8080);
  Result<HostPort> v4 = ParseHostPort("127.0.0.1:65535");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 65535);
}

TEST(ConfigValidate, CrossFieldAndProgrammaticOptions) {
  Options opts;
  opts.model.event_weights["click"] = std::nan("");
  EXPECT_TRUE(Fails(Validate(opts), {"model.event_weights[\"click\"]", "finite"}));
  opts = Options{};
  opts.model.default_event_weight = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(Fails(Validate(opts), {"model.default_event_weight", "finite"}));
  // Configured weights are held to the range events are validated against: a default of 5000
  // would dead-letter every event without a weight.
  opts = Options{};
  opts.model.event_weights["buy"] = 1000.5;
  EXPECT_TRUE(Fails(Validate(opts), {"model.event_weights[\"buy\"]", "[-1000, 1000]"}));
  opts.model.event_weights["buy"] = -1000;
  EXPECT_TRUE(Validate(opts).ok());
  EXPECT_TRUE(
      Fails(AsStatus(Load("", std::vector<std::string>{}, {"model.default_event_weight=5000"})),
            {"model.default_event_weight", "[-1000, 1000]"}));
  // Only the maintainer builds an HNSW index: "hnsw" with it off would silently stay exact.
  EXPECT_TRUE(Fails(AsStatus(Load("", std::vector<std::string>{},
                                  {"index.kind=hnsw", "index.maintenance_interval_ms=0"})),
                    {"index.kind", "index.maintenance_interval_ms"}));
  EXPECT_TRUE(
      Load("", std::vector<std::string>{}, {"index.kind=exact", "index.maintenance_interval_ms=0"})
          .ok());
  opts = Options{};
  opts.model.dim = 0;
  EXPECT_TRUE(Fails(Validate(opts), {"model.dim", "[1, 1024]"}));
  opts = Options{};
  opts.model.scorer = "fancy";
  EXPECT_TRUE(Fails(Validate(opts), {"model.scorer", "hybrid, embedding"}));
  opts = Options{};
  opts.kafka.topic = "";
  EXPECT_TRUE(Fails(Validate(opts), {"kafka.topic", "empty"}));

  // Dead-lettering into the input topic would loop; Load runs Validate.
  EXPECT_TRUE(Fails(AsStatus(Load("", std::vector<std::string>{}, {"kafka.dlq_topic=events"})),
                    {"kafka.dlq_topic", "kafka.topic"}));
  EXPECT_TRUE(Load("", std::vector<std::string>{}, {"kafka.dlq_topic=events.bad"}).ok());

  // Topic names follow Kafka's rule, checked at load rather than by the broker much later.
  for (const std::string& bad :
       std::vector<std::string>{"a b", "x/y", "ev\xc3\xa9", ".", "..", std::string(250, 't')}) {
    EXPECT_TRUE(Fails(ApplyOne(opts, "kafka.topic", bad), {"kafka.topic"})) << bad;
    EXPECT_TRUE(Fails(ApplyOne(opts, "kafka.dlq_topic", bad), {"kafka.dlq_topic"})) << bad;
  }
  EXPECT_TRUE(ApplyOne(opts, "kafka.topic", "Events_v2.clicks-eu").ok());
  EXPECT_TRUE(ApplyOne(opts, "kafka.topic", std::string(249, 't')).ok());
  EXPECT_TRUE(ApplyOne(opts, "kafka.dlq_topic", "").ok()) << "empty: <topic>.dlq";
  // The default "<topic>.dlq" must be a topic name too.
  EXPECT_TRUE(Fails(
      AsStatus(Load("", std::vector<std::string>{}, {"kafka.topic=" + std::string(246, 't')})),
      {"kafka.dlq_topic", "249", "set kafka.dlq_topic"}));
  EXPECT_TRUE(Load("", std::vector<std::string>{}, {"kafka.topic=" + std::string(245, 't')}).ok());
  EXPECT_TRUE(Load("", std::vector<std::string>{},
                   {"kafka.topic=" + std::string(246, 't'), "kafka.dlq_topic=dead"})
                  .ok());
  EXPECT_EQ(TopicNameError("events"), std::nullopt);
  EXPECT_NE(TopicNameError("a:b"), std::nullopt);
}

// A token on a role with none above it would open the higher routes (forget users, checkpoints)
// to anyone while reading needs a token: refused, naming both keys.
TEST(ConfigValidate, ATokenNeedsTokensOnEveryRoleAboveIt) {
  const auto load = [](std::vector<std::string> sets) {
    return AsStatus(Load("", std::vector<std::string>{}, sets));
  };
  // The message names every empty role above the lowest token, so one fix is enough.
  EXPECT_TRUE(Fails(load({"server.read_token=r", "server.write_token=w"}),
                    {"server.admin_token is empty while server.read_token is set", "open to anyone",
                     "set server.admin_token"}));
  EXPECT_TRUE(Fails(load({"server.read_token=r"}),
                    {"server.write_token and server.admin_token are empty while "
                     "server.read_token is set",
                     "set server.write_token and server.admin_token"}));
  EXPECT_TRUE(Fails(load({"server.write_token=w"}),
                    {"server.admin_token is empty while server.write_token is set"}));
  EXPECT_TRUE(Fails(load({"server.read_token=r", "server.admin_token=a"}),
                    {"server.write_token is empty while server.read_token is set"}));
  // Fine: none, admin only, write and admin (reads open), all three.
  EXPECT_TRUE(load({}).ok());
  EXPECT_TRUE(load({"server.admin_token=a"}).ok());
  EXPECT_TRUE(load({"server.write_token=w", "server.admin_token=a"}).ok());
  EXPECT_TRUE(load({"server.read_token=r", "server.write_token=w", "server.admin_token=a"}).ok());
}

// Raw bytes from the environment or --set that are not UTF-8 are an error naming the key (they
// used to abort the process when the error message or the printed config was serialised).
TEST(ConfigErrors, InvalidUtf8FromTheEnvironmentOrSetIsAnError) {
  EXPECT_TRUE(Fails(AsStatus(Load("", std::vector<std::string>{}, {"model.loss=\xff"})),
                    {"model.loss", "UTF-8"}));
  EXPECT_TRUE(Fails(AsStatus(Load("", std::vector<std::string>{}, {"storage.path=/tmp/a\xc3"})),
                    {"storage.path", "UTF-8"}));
  EXPECT_TRUE(
      Fails(AsStatus(Load("", std::vector<std::string>{"SIMSTREAM_SERVER_THREADS=a\xff"}, {})),
            {"server.threads", "expected"}));
  EXPECT_TRUE(
      Fails(AsStatus(Load("", std::vector<std::string>{"SIMSTREAM_SERVER_ADMIN_TOKEN=\xfe"}, {})),
            {"server.admin_token", "UTF-8"}));
}

// A number no double holds is a JSON error of the file, not an exception out of LoadFile.
TEST(ConfigFile, ANumberTooLargeForADoubleIsAnError) {
  for (const char* text : {R"({"model": {"learning_rate": 1e999}})",
                           R"({"model": {"event_weights": {"x": -1e309}}})"}) {
    TempFile file(text);
    Result<Options> loaded = LoadFile(file.path());
    ASSERT_FALSE(loaded.ok()) << text;
    EXPECT_EQ(loaded.error().code, "invalid_config");
    EXPECT_NE(loaded.error().message.find("not valid JSON"), std::string::npos)
        << loaded.error().message;
  }
}

TEST(ConfigToJson, RedactsSecretsOnlyWhenAsked) {
  Options opts;
  opts.server.admin_token = "s3cret";
  opts.kafka.properties = {{"sasl.password", "pw"}, {"security.protocol", "SSL"}};
  const json shown = ToJson(opts);
  EXPECT_EQ(shown["server"]["admin_token"], "s3cret");
  const json redacted = ToJson(opts, Secrets::kRedact);
  EXPECT_EQ(redacted["server"]["admin_token"], "<redacted>");
  EXPECT_EQ(redacted["server"]["read_token"], "");  // empty stays visibly empty
  EXPECT_EQ(redacted["kafka"]["properties"]["sasl.password"], "<redacted>");
  EXPECT_EQ(redacted["kafka"]["properties"]["security.protocol"], "SSL");
  EXPECT_EQ(redacted.dump().find("s3cret"), std::string::npos);
}

// ToJson -> ApplyJson reproduces any valid Options; seeded random options cover every key.
TEST(ConfigToJson, RoundTripOfRandomOptions) {
  std::mt19937_64 rng(20240601);
  for (int trial = 0; trial < 200; ++trial) {
    json doc = json::object();
    for (const KeyInfo& info : Keys()) {
      json value;
      const ExpectedRange* range = FindExpectedRange(info.name);
      switch (info.type) {
        case KeyType::kInt64: {
          const int64_t lo = range ? static_cast<int64_t>(range->lo) : -1000000;
          const int64_t hi = range ? static_cast<int64_t>(range->hi) : 1000000;
          value = std::uniform_int_distribution<int64_t>(lo, hi)(rng);
          break;
        }
        case KeyType::kDouble: {
          const double lo = range ? range->lo : -100;
          const double hi = range ? std::min(range->hi, 1e6) : 100;
          double d = std::uniform_real_distribution<double>(lo, hi)(rng);
          if (range && range->lo_open && d <= lo) d = hi;
          value = d;
          break;
        }
        case KeyType::kString:
          if (!info.allowed.empty()) {
            value = info.allowed[rng() % info.allowed.size()];
          } else if (info.name == "kafka.topic" || info.name == "kafka.dlq_topic") {
            value = "t" + std::to_string(rng() % 1000) + (rng() % 2 ? "._-X" : "");
          } else if (info.name == "server.listen") {
            value = "10.0.0." + std::to_string(rng() % 256) + ":" + std::to_string(rng() % 65536);
          } else {
            value = "v" + std::to_string(rng() % 1000) + (rng() % 2 ? " ü\"\\" : "");
          }
          break;
        case KeyType::kStringMap:
          value = json::object();
          for (uint64_t i = rng() % 4; i > 0; --i) value["p" + std::to_string(rng() % 10)] = "x";
          break;
        case KeyType::kDoubleMap:
          value = json::object();
          for (uint64_t i = rng() % 4; i > 0; --i) {
            value["t" + std::to_string(rng() % 10)] =
                std::uniform_real_distribution<double>(-5, 5)(rng);
          }
          break;
      }
      doc[info.section][info.key] = value;
    }
    Options first;
    const Status applied = ApplyJson(first, doc);
    ASSERT_TRUE(applied.ok()) << applied.error().message << "\n" << doc.dump();
    EXPECT_EQ(ToJson(first), doc);  // every key was set, so ToJson is exactly the input
    Options second;
    ASSERT_TRUE(ApplyJson(second, ToJson(first)).ok());
    EXPECT_EQ(ToJson(second), ToJson(first));
    EXPECT_EQ(second.model.learning_rate, first.model.learning_rate);  // doubles survive exactly
  }
}

}  // namespace
}  // namespace simstream::config
