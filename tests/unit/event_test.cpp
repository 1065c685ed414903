#include "engine/event.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace simstream::engine {
namespace {

EventRules TestRules() {
  EventRules rules;
  rules.type_weights = {{"click", 1.0}, {"purchase", 3.0}, {"dislike", -1.0}};
  rules.default_weight = 0.5;
  return rules;
}

Event MustParse(std::string_view json, const EventRules& rules = TestRules(),
                int64_t default_ts = 7) {
  auto result = ParseEvent(json, rules, default_ts);
  EXPECT_TRUE(result.ok()) << json << " -> " << (result.ok() ? "" : result.error().message);
  return result.ok() ? result.value() : Event{};
}

std::string RejectCode(std::string_view json, const EventRules& rules = TestRules()) {
  auto result = ParseEvent(json, rules, 7);
  if (result.ok()) return "accepted";
  EXPECT_FALSE(result.error().message.empty()) << json;
  return result.error().code;
}

TEST(ParseEventTest, FullContractEvent) {
  const Event e = MustParse(
      R"({"user": "u1", "item": "i9", "type": "click", "weight": 2.0, "ts": 1732838400123})");
  EXPECT_EQ(e.user, "u1");
  EXPECT_EQ(e.item, "i9");
  EXPECT_EQ(e.type, "click");
  EXPECT_EQ(e.weight, 2.0);  // explicit weight overrides the type's 1.0
  EXPECT_EQ(e.ts_ms, 1732838400123);
}

TEST(ParseEventTest, WeightComesFromTypeThenDefault) {
  EXPECT_EQ(MustParse(R"({"user":"u","item":"i","type":"purchase"})").weight, 3.0);
  EXPECT_EQ(MustParse(R"({"user":"u","item":"i"})").weight, 0.5);
  const Event dislike = MustParse(R"({"user":"u","item":"i","type":"dislike"})");
  EXPECT_EQ(dislike.weight, -1.0);
  EXPECT_EQ(dislike.type, "dislike");
  // An explicit negative weight is negative feedback too, and is kept as given.
  EXPECT_EQ(MustParse(R"({"user":"u","item":"i","weight":-2.5})").weight, -2.5);
  EXPECT_EQ(MustParse(R"({"user":"u","item":"i","weight":3})").weight, 3.0);
}

TEST(ParseEventTest, UnknownTypeRejectedOrDefaulted) {
  const std::string json = R"({"user":"u","item":"i","type":"hover"})";
  EventRules rules = TestRules();
  const Event e = MustParse(json, rules);
  EXPECT_EQ(e.weight, 0.5);
  EXPECT_EQ(e.type, "hover");

  rules.reject_unknown_type = true;
  auto rejected = ParseEvent(json, rules, 0);
  ASSERT_FALSE(rejected.ok());
  EXPECT_EQ(rejected.error().code, "unknown_type");
  EXPECT_NE(rejected.error().message.find("hover"), std::string::npos);
  // An explicit weight makes the type's weight irrelevant, so nothing to reject.
  EXPECT_EQ(MustParse(R"({"user":"u","item":"i","type":"hover","weight":4})", rules).weight, 4.0);
  // Known types still pass.
  EXPECT_EQ(MustParse(R"({"user":"u","item":"i","type":"click"})", rules).weight, 1.0);
}

TEST(ParseEventTest, TimestampDefaultsAndValidation) {
  EXPECT_EQ(MustParse(R"({"user":"u","item":"i"})", TestRules(), 99).ts_ms, 99);
  EXPECT_EQ(MustParse(R"({"user":"u","item":"i","ts":0})").ts_ms, 0);
  EXPECT_EQ(MustParse(R"({"user":"u","item":"i","ts":1.7e12})").ts_ms, 1700000000000);
  EXPECT_EQ(MustParse(R"({"user":"u","item":"i","ts":9223372036854775807})").ts_ms, INT64_MAX);
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i","ts":-1})"), "bad_timestamp");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i","ts":1.5})"), "bad_timestamp");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i","ts":"1732838400123"})"), "bad_timestamp");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i","ts":null})"), "bad_timestamp");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i","ts":9223372036854775808})"), "bad_timestamp");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i","ts":1e999})"), "bad_timestamp");
}

TEST(ParseEventTest, IdLengthLimit) {
  const std::string id256(256, 'a');
  const std::string id257(257, 'a');
  EXPECT_EQ(MustParse(R"({"user":")" + id256 + R"(","item":"i"})").user, id256);
  auto too_long = ParseEvent(R"({"user":")" + id257 + R"(","item":"i"})", TestRules(), 0);
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.error().code, "id_too_long");
  EXPECT_EQ(too_long.error().message,
            R"("user" must be a non-empty string of at most 256 bytes (got 257 bytes))");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":")" + id257 + R"("})"), "id_too_long");
  // The limit is in bytes, not characters: 128 two-byte characters fit, 129 do not.
  std::string two_byte_128;
  for (int k = 0; k < 128; ++k) two_byte_128 += "\xC3\xA9";
  EXPECT_EQ(MustParse(R"({"user":")" + two_byte_128 + R"(","item":"i"})").user, two_byte_128);
  EXPECT_EQ(RejectCode(R"({"user":")" + two_byte_128 + "\xC3\xA9" + R"(","item":"i"})"),
            "id_too_long");
}

TEST(ParseEventTest, NumericIdsBecomeDecimalStrings) {
  const Event e = MustParse(R"({"user": 42, "item": -7})");
  EXPECT_EQ(e.user, "42");
  EXPECT_EQ(e.item, "-7");
  EXPECT_EQ(MustParse(R"({"user": 42.0, "item": 1e3})").user, "42");
  EXPECT_EQ(MustParse(R"({"user": 42.0, "item": 1e3})").item, "1000");
  EXPECT_EQ(MustParse(R"({"user": 18446744073709551615, "item": 0})").user, "18446744073709551615");
  EXPECT_EQ(RejectCode(R"({"user": 4.5, "item": "i"})"), "wrong_type");
  EXPECT_EQ(RejectCode(R"({"user": 1e300, "item": "i"})"), "wrong_type");
  EXPECT_EQ(RejectCode(R"({"user": 1e999, "item": "i"})"), "wrong_type");
}

TEST(ParseEventTest, EveryReasonCode) {
  EventRules small = TestRules();
  small.max_message_bytes = 40;
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i","type":"click","ts":1})", small), "oversized");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i"})", small), "accepted");  // 23 bytes

  EXPECT_EQ(RejectCode("{\"user\":\"\xC3\x28\",\"item\":\"i\"}"), "invalid_utf8");
  EXPECT_EQ(RejectCode("{\"user\":\"\xC0\xAF\",\"item\":\"i\"}"), "invalid_utf8");  // overlong '/'
  EXPECT_EQ(RejectCode("{\"user\":\"\xED\xA0\x80\",\"item\":\"i\"}"), "invalid_utf8");  // surrogate
  EXPECT_EQ(RejectCode("\xFF"), "invalid_utf8");  // checked before JSON parsing

  EXPECT_EQ(RejectCode(""), "not_json");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i")"), "not_json");
  EXPECT_EQ(RejectCode(R"({"user":'u'})"), "not_json");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i"} trailing)"), "not_json");
  EXPECT_EQ(RejectCode(R"({"w": 1e999, )"), "not_json");  // overflow does not hide a syntax error

  EXPECT_EQ(RejectCode(R"([{"user":"u","item":"i"}])"), "not_object");
  EXPECT_EQ(RejectCode(R"("u")"), "not_object");
  EXPECT_EQ(RejectCode("42"), "not_object");

  EXPECT_EQ(RejectCode(R"({"item":"i"})"), "missing_user");
  EXPECT_EQ(RejectCode(R"({"user":"u"})"), "missing_item");
  EXPECT_EQ(RejectCode(R"({"user":"","item":"i"})"), "empty_user");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":""})"), "empty_item");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i","type":"hover"})",
                       [] {
                         EventRules r = TestRules();
                         r.reject_unknown_type = true;
                         return r;
                       }()),
            "unknown_type");

  EXPECT_EQ(RejectCode(R"({"user":true,"item":"i"})"), "wrong_type");
  EXPECT_EQ(RejectCode(R"({"user":null,"item":"i"})"), "wrong_type");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":["i"]})"), "wrong_type");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":{"id":"i"}})"), "wrong_type");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i","type":3})"), "wrong_type");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i","weight":"2"})"), "wrong_type");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i","weight":"NaN"})"), "wrong_type");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i","weight":null})"), "wrong_type");

  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i","weight":1e999})"), "weight_not_finite");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i","weight":-1e999})"), "weight_not_finite");
  // Finite but absurd weights would overflow the learner's step accumulators.
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i","weight":1e20})"), "weight_out_of_range");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i","weight":-1000.5})"), "weight_out_of_range");
  EXPECT_EQ(RejectCode(R"({"user":"u","item":"i","ts":-5})"), "bad_timestamp");
}

TEST(ParseEventTest, MessagesNameTheField) {
  auto missing = ParseEvent(R"({"user":"u"})", TestRules(), 0);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("\"item\""), std::string::npos);
  auto weight = ParseEvent(R"({"user":"u","item":"i","weight":1e999})", TestRules(), 0);
  ASSERT_FALSE(weight.ok());
  EXPECT_NE(weight.error().message.find("\"weight\""), std::string::npos);
  auto ts = ParseEvent(R"({"user":"u","item":"i","ts":true})", TestRules(), 0);
  ASSERT_FALSE(ts.ok());
  EXPECT_NE(ts.error().message.find("\"ts\""), std::string::npos);
}

TEST(ParseEventTest, OutOfRangeNumbersElsewhereAreHarmless) {
  // Extra fields are ignored, even when they hold numbers a double cannot represent.
  const Event e =
      MustParse(R"({"extra": 1e999, "user": "u", "nested": {"x": [1e999, -1e999]}, "item": "i",)"
                R"( "weight": 2})");
  EXPECT_EQ(e.user, "u");
  EXPECT_EQ(e.weight, 2.0);
  // The substituted value is the one that overflowed, not another null in the document.
  EXPECT_EQ(RejectCode(R"({"a": null, "b": 1e999, "user":"u","item":"i","weight":null})"),
            "wrong_type");
  EXPECT_EQ(RejectCode(R"({"a": null, "weight": 1e999, "c": null, "user":"u","item":"i"})"),
            "weight_not_finite");
}

TEST(ParseEventTest, EmptyTypeCountsAsNoType) {
  EventRules rules = TestRules();
  rules.reject_unknown_type = true;
  const Event e = MustParse(R"({"user":"u","item":"i","type":""})", rules);
  EXPECT_EQ(e.type, "");
  EXPECT_EQ(e.weight, 0.5);
}

TEST(ParseEventTest, ManyOutOfRangeNumbersAreBounded) {
  // Each out-of-range number costs a re-parse, so at most 16 are tolerated per message.
  std::string ok = R"({"user":"u","item":"i")";
  for (int k = 0; k < 16; ++k) ok += ",\"x" + std::to_string(k) + "\":1e999";
  EXPECT_EQ(RejectCode(ok + "}"), "accepted");
  EXPECT_EQ(RejectCode(ok + R"(,"x16":1e999})"), "not_json");
}

TEST(ParseEventTest, UnknownFieldsIgnoredAndDuplicatesTakeLast) {
  const Event e =
      MustParse(R"({"user":"a","item":"i","user":"b","context":{"user":"c"},"tags":["x"]})");
  EXPECT_EQ(e.user, "b");
}

TEST(ParseEventTest, MultibyteUtf8IdsAccepted) {
  const std::string user = "\xE7\x94\xA8\xE6\x88\xB7";      // 用户
  const std::string item = "caf\xC3\xA9-\xF0\x9F\x8E\xB5";  // café-🎵
  const Event e = MustParse(R"({"user":")" + user + R"(","item":")" + item + R"("})");
  EXPECT_EQ(e.user, user);
  EXPECT_EQ(e.item, item);
  // JSON escapes decode to the same bytes.
  EXPECT_EQ(MustParse(R"({"user":"\u7528\u6237","item":"x"})").user, user);
}

TEST(ToJsonTest, ContractOrderAndOmittedType) {
  Event e{"u1", "i9", "click", 2.0, 1732838400123};
  EXPECT_EQ(ToJson(e),
            R"({"user":"u1","item":"i9","type":"click","weight":2.0,"ts":1732838400123})");
  e.type.clear();
  EXPECT_EQ(ToJson(e), R"({"user":"u1","item":"i9","weight":2.0,"ts":1732838400123})");
}

TEST(ToJsonTest, RoundTripsThroughParseEvent) {
  std::mt19937_64 rng(20241129);
  const std::vector<std::string> types = {"", "click", "purchase", "dislike", "hover"};
  const std::vector<std::string> alphabet = {
      "a", "Z", "0", "\"", "\\", "\n", "\t", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x8E\xB5",
      " ", "/"};
  auto random_id = [&] {
    std::string id;
    const size_t n = 1 + rng() % 20;
    for (size_t k = 0; k < n; ++k) id += alphabet[rng() % alphabet.size()];
    return id;
  };
  std::uniform_real_distribution<double> weight(-10, 10);
  for (int trial = 0; trial < 2000; ++trial) {
    Event e;
    e.user = random_id();
    e.item = random_id();
    e.type = types[rng() % types.size()];
    e.weight = weight(rng);
    e.ts_ms = static_cast<int64_t>(rng() >> 1);
    const std::string json = ToJson(e);
    auto back = ParseEvent(json, TestRules(), -1);
    ASSERT_TRUE(back.ok()) << json << ": " << back.error().message;
    EXPECT_EQ(back->user, e.user);
    EXPECT_EQ(back->item, e.item);
    EXPECT_EQ(back->type, e.type);
    EXPECT_EQ(back->weight, e.weight) << json;  // exact: shortest round-trip formatting
    EXPECT_EQ(back->ts_ms, e.ts_ms);
  }
}

// --- The fast path for flat objects against the full parser (nlohmann), its slow twin. ---

// Same outcome: the same event bit for bit, or the same reason and message.
void ExpectSameAsFullParser(const std::string& json, const EventRules& rules) {
  const auto fast = ParseEvent(json, rules, 7);
  const auto full = detail::ParseEventWithFullParser(json, rules, 7);
  ASSERT_EQ(fast.ok(), full.ok()) << testing::PrintToString(json)
                                  << " fast: " << (fast.ok() ? "ok" : fast.error().code)
                                  << " full: " << (full.ok() ? "ok" : full.error().code);
  if (!full.ok()) {
    EXPECT_EQ(fast.error().code, full.error().code) << testing::PrintToString(json);
    EXPECT_EQ(fast.error().message, full.error().message) << testing::PrintToString(json);
    return;
  }
  EXPECT_EQ(fast->user, full->user) << testing::PrintToString(json);
  EXPECT_EQ(fast->item, full->item) << testing::PrintToString(json);
  EXPECT_EQ(fast->type, full->type) << testing::PrintToString(json);
  EXPECT_EQ(std::bit_cast<uint64_t>(fast->weight), std::bit_cast<uint64_t>(full->weight))
      << testing::PrintToString(json);
  EXPECT_EQ(fast->ts_ms, full->ts_ms) << testing::PrintToString(json);
}

// Random messages near the contract's shape: the five fields and others, numbers at the edges
// of JSON's grammar and of int64/uint64/double, escapes, nesting, odd whitespace and
// separators. Some are valid, many are not.
class MessageMaker {
 public:
  explicit MessageMaker(uint64_t seed) : rng_(seed) {}

  std::string Message() {
    std::string m = Pick({"{", "{", "{", "{", " {", "\n{", "[", "", "\xEF\xBB\xBF{"});
    const size_t fields = rng_() % 7;
    for (size_t f = 0; f < fields; ++f) {
      if (f > 0) m += Pick({",", ",", ",", ",", ", ", " ,\n", "", ",,"});
      m += Space();
      m += Key() + Space() + Pick({":", ":", ":", ": ", "", "::"}) + Space() + Value() + Space();
    }
    m += Pick({"}", "}", "}", "}", "} ", "}\n", ",}", "", "}}", "} x"});
    return m;
  }

  // Well-formed JSON with the contract's fields in any order, others beside them, any JSON
  // whitespace, and values of every kind (so some are still rejected by the contract).
  std::string WellFormed() {
    const auto id = [&] { return rng_() % 4 ? CleanId() : Id(); };
    std::vector<std::string> fields = {"\"user\":" + id(), "\"item\":" + id()};
    if (rng_() % 2) fields.push_back("\"type\":" + (rng_() % 4 ? Type() : Value()));
    if (rng_() % 2) fields.push_back("\"weight\":" + Number());
    if (rng_() % 2) fields.push_back("\"ts\":" + Number());
    if (rng_() % 3 == 0) fields.push_back("\"x\":" + Value());
    std::shuffle(fields.begin(), fields.end(), rng_);
    std::string m = "{";
    for (size_t f = 0; f < fields.size(); ++f) {
      m += JsonSpace() + fields[f] + JsonSpace() + (f + 1 < fields.size() ? "," : "");
    }
    return m + "}" + JsonSpace();
  }

  // A valid message, then one to three byte edits.
  std::string Mutated() {
    std::string m = R"({"user":"u)" + std::to_string(rng_() % 1000) + R"(","item":"i)" +
                    std::to_string(rng_() % 1000) + R"(","type":"click","weight":)" + Number() +
                    R"(,"ts":)" + std::to_string(rng_() % 2000000000000) + "}";
    const std::string bytes = "{}[]:,\"\\ -+.eE019atfnu\x01\x7F";
    for (int e = 0, n = 1 + static_cast<int>(rng_() % 3); e < n && !m.empty(); ++e) {
      const size_t at = rng_() % m.size();
      const char c = bytes[rng_() % bytes.size()];
      switch (rng_() % 3) {
        case 0:
          m.erase(at, 1);
          break;
        case 1:
          m.insert(m.begin() + static_cast<std::ptrdiff_t>(at), c);
          break;
        default:
          m[at] = c;
      }
    }
    return m;
  }

 private:
  std::string Pick(std::initializer_list<const char*> options) {
    return *(options.begin() + rng_() % options.size());
  }
  std::string Space() { return Pick({"", "", "", " ", "\t", "\r\n", "  ", "\v", "\f"}); }
  std::string JsonSpace() { return Pick({"", "", "", " ", "\t", "\r\n", "\n  "}); }
  std::string Key() {
    return Pick({"\"user\"", "\"item\"", "\"type\"", "\"weight\"", "\"ts\"", "\"user\"", "\"item\"",
                 "\"x\"", "\"\"", "\"Type\"", "\"us\\u0065r\"", "user", "\"ts"});
  }
  std::string Id() {
    static const char* const pieces[] = {
        "a",    "Z",    "0",   " ",       "/",  "\xC3\xA9", "\xF0\x9F\x8E\xB5",
        "\\\"", "\\\\", "\\n", "\\u00e9", "\t", "\x01"};
    std::string id;
    for (size_t k = 0, n = rng_() % 6; k < n; ++k) id += pieces[rng_() % 13];
    return "\"" + id + "\"";
  }
  std::string CleanId() {
    static const char* const pieces[] = {"a", "Z", "0", " ", "/", "\xC3\xA9", "\xF0\x9F\x8E\xB5"};
    std::string id;
    for (size_t k = 0, n = 1 + rng_() % 6; k < n; ++k) id += pieces[rng_() % 7];
    return "\"" + id + "\"";
  }
  std::string Type() {
    return Pick({"\"click\"", "\"purchase\"", "\"dislike\"", "\"hover\"", "\"\""});
  }
  std::string Number() {
    switch (rng_() % 4) {
      case 0:
        return std::to_string(static_cast<int64_t>(rng_()) >> (rng_() % 64));
      case 1: {
        char buf[40];
        const double d = std::ldexp(static_cast<double>(rng_() % 100000) - 50000.0,
                                    static_cast<int>(rng_() % 200) - 100);
        std::snprintf(buf, sizeof buf, rng_() % 2 ? "%.17g" : "%g", d);
        return buf;
      }
      default:
        return Pick({"0",
                     "-0",
                     "1",
                     "-1",
                     "01",
                     "1.",
                     ".5",
                     "1.5",
                     "-1.5e3",
                     "1E-2",
                     "1e+2",
                     "1e999",
                     "-1e999",
                     "1e-999",
                     "4.9e-324",
                     "2.2250738585072014e-308",
                     "1.7976931348623157e308",
                     "18446744073709551615",
                     "18446744073709551616",
                     "9223372036854775807",
                     "9223372036854775808",
                     "-9223372036854775808",
                     "-9223372036854775809",
                     "1700000000000",
                     "0.1",
                     "1e",
                     "-",
                     "+1",
                     "0x10",
                     "NaN",
                     "Infinity",
                     "1000",
                     "1000.0000000000001",
                     "-1000",
                     "42.0",
                     "3"});
    }
  }
  std::string Value() {
    switch (rng_() % 10) {
      case 0:
      case 1:
      case 2:
        return Id();
      case 3:
      case 4:
      case 5:
        return Number();
      case 6:
        return Pick({"true", "false", "null", "tru", "nul", "falsey", "True"});
      case 7:
        return Pick({"{}", "[]", "{\"user\":\"c\"}", "[1,2]", "{", "["});
      default:
        return Type();
    }
  }

  std::mt19937_64 rng_;
};

TEST(ParseEventFastPathTest, AgreesWithTheFullParserOnRandomMessages) {
  EventRules reject_unknown = TestRules();
  reject_unknown.reject_unknown_type = true;
  MessageMaker maker(20261130);
  size_t fast = 0, full_only = 0, accepted = 0;
  for (int trial = 0; trial < 200000; ++trial) {
    const std::string json = trial % 3 == 0   ? maker.Message()
                             : trial % 3 == 1 ? maker.WellFormed()
                                              : maker.Mutated();
    if (!IsValidUtf8(json)) continue;
    detail::TakesFastPath(json) ? ++fast : ++full_only;
    accepted += ParseEvent(json, TestRules(), 7).ok();
    ExpectSameAsFullParser(json, trial % 3 == 0 ? reject_unknown : TestRules());
    if (HasFailure()) return;
  }
  // Both paths and both outcomes are well represented.
  EXPECT_GT(fast, 30000u);
  EXPECT_GT(full_only, 30000u);
  EXPECT_GT(accepted, 15000u);
}

TEST(ParseEventFastPathTest, AgreesWithTheFullParserOnHandPickedMessages) {
  const std::vector<std::string> cases = {
      R"({"user":"u1","item":"i1"})",
      R"( { "user" : "u1" , "item" : "i1" , "ts" : 0 } )",
      R"({"user":"u","item":"i","weight":-0})",
      R"({"user":"u","item":"i","weight":-0.0})",
      R"({"user":"u","item":"i","weight":1e-400})",
      R"({"user":"u","item":"i","ts":18446744073709551616})",
      R"({"user":"u","item":"i","ts":1.7e12})",
      R"({"user":"u","item":"i","user":"v"})",
      R"({"user":"u","item":"i","user":{"a":1}})",
      R"({"user":12,"item":-3})",
      R"({"user":1.5,"item":"i"})",
      R"({"user":"u","item":"i","type":null})",
      R"({"user":"u","item":"i"}   )",
      "{\"user\":\"u\",\"item\":\"i\"}\n",
      R"({"user":"u","item":"i"},)",
      R"({"user":"u","item":"i",})",
      R"({})",
      R"({"user":"u\n","item":"i"})",
      "{\"user\":\"u\x01\",\"item\":\"i\"}",
      "{\"user\":\"u\",\"item\":\"i\"}\0",
      R"({"user":"u","item":"i","weight":1000})",
      R"({"user":"u","item":"i","weight":1000.0000000000001})",
  };
  for (const std::string& json : cases) ExpectSameAsFullParser(json, TestRules());
  EXPECT_TRUE(detail::TakesFastPath(cases[0]));
  EXPECT_TRUE(detail::TakesFastPath(cases[1]));
  EXPECT_FALSE(detail::TakesFastPath(R"({"user":"\u0075","item":"i"})"));
}

// --- UTF-8: the fast validator against an obviously-correct twin. ---

// Encodes a code point the textbook way (no validation).
std::string Encode(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Valid UTF-8 means: the bytes split into canonical encodings of Unicode scalar values. Tries
// every split (strings here are short) and checks each piece by re-encoding its decoded bits.
bool SlowIsValidUtf8(const std::string& s, size_t from = 0) {
  if (from == s.size()) return true;
  for (size_t len = 1; len <= 4 && from + len <= s.size(); ++len) {
    const std::string piece = s.substr(from, len);
    const auto b0 = static_cast<unsigned char>(piece[0]);
    uint32_t cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(piece[k]) & 0x3F);
    const bool scalar = cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (scalar && Encode(cp) == piece && SlowIsValidUtf8(s, from + len)) return true;
  }
  return false;
}

TEST(Utf8Test, HandPickedCases) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("\xC2\x80"));           // U+0080, smallest 2-byte
  EXPECT_TRUE(IsValidUtf8("\xED\x9F\xBF"));       // U+D7FF, just below the surrogates
  EXPECT_TRUE(IsValidUtf8("\xEE\x80\x80"));       // U+E000, just above
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));   // U+10FFFF, the last code point
  EXPECT_FALSE(IsValidUtf8("\xC3\x28"));          // bad continuation
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));      // overlong '/', 3 bytes
  EXPECT_FALSE(IsValidUtf8("\xF0\x80\x80\xAF"));  // overlong '/', 4 bytes
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // U+D800
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));          // truncated
  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation
  EXPECT_FALSE(IsValidUtf8("\xFE"));
}

TEST(Utf8Test, EveryCodePointRoundTrips) {
  for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
    ASSERT_EQ(IsValidUtf8(Encode(cp)), !surrogate) << std::hex << cp;
  }
}

TEST(Utf8Test, MatchesSlowTwinOnAllTwoByteStrings) {
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      const std::string s{static_cast<char>(a), static_cast<char>(b)};
      ASSERT_EQ(IsValidUtf8(s), SlowIsValidUtf8(s)) << a << " " << b;
    }
  }
}

TEST(Utf8Test, MatchesSlowTwinOnRandomStrings) {
  // Bytes biased towards the boundaries of Table 3-7, where validators go wrong.
  const std::vector<unsigned char> interesting = {
      0x00, 0x2F, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
      0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
  std::mt19937 rng(7);
  size_t valid = 0;
  for (int trial = 0; trial < 300000; ++trial) {
    std::string s;
    const size_t n = 1 + rng() % 7;
    for (size_t k = 0; k < n; ++k) {
      s +=
          static_cast<char>(rng() % 4 == 0 ? rng() % 256 : interesting[rng() % interesting.size()]);
    }
    const bool expected = SlowIsValidUtf8(s);
    valid += expected;
    ASSERT_EQ(IsValidUtf8(s), expected) << testing::PrintToString(s);
  }
  EXPECT_GT(valid, 1000u);  // the sample exercises both answers
}

}  // namespace
}  // namespace simstream::engine
