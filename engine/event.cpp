#include "engine/event.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>

namespace simstream::engine {
namespace {

using Json = nlohmann::json;

// One top-level field of the event as the parser saw it. Only the five contract fields are
// kept; everything else in the object is skipped without building a DOM.
struct RawValue {
  enum class Kind { kAbsent, kNull, kBool, kInt, kUnsigned, kFloat, kOverflow, kString, kNested };
  Kind kind = Kind::kAbsent;
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;
  std::string s;
};

struct RawEvent {
  RawValue user, item, type, weight, ts;
};

// The field of the event a top-level key names, if it is one of the contract's.
RawValue* FieldFor(std::string_view name, RawEvent& e) {
  if (name == "user") return &e.user;
  if (name == "item") return &e.item;
  if (name == "type") return &e.type;
  if (name == "weight") return &e.weight;
  if (name == "ts") return &e.ts;
  return nullptr;
}

// SAX handler that records the contract fields of a top-level object.
//
// nlohmann rejects numbers that overflow a double (1e999) as a parse error, but for us such a
// number is valid JSON with an out-of-range value ("weight_not_finite", "bad_timestamp"). So
// the caller replaces the overflowing token with `null` and parses again; `overflow_ordinals`
// says which scalar values (counted in document order) were such substitutions. The text
// before the token is unchanged, so the ordinal is the same in every pass.
class FieldCollector final : public nlohmann::json_sax<Json> {
 public:
  explicit FieldCollector(const std::set<size_t>& overflow_ordinals)
      : overflow_ordinals_(overflow_ordinals) {}

  bool null() override {
    RawValue v;
    v.kind = overflow_ordinals_.count(scalars_) ? RawValue::Kind::kOverflow : RawValue::Kind::kNull;
    return Scalar(std::move(v));
  }
  bool boolean(bool) override { return Scalar(Make(RawValue::Kind::kBool)); }
  bool number_integer(number_integer_t value) override {
    RawValue v = Make(RawValue::Kind::kInt);
    v.i = value;
    return Scalar(std::move(v));
  }
  bool number_unsigned(number_unsigned_t value) override {
    RawValue v = Make(RawValue::Kind::kUnsigned);
    v.u = value;
    return Scalar(std::move(v));
  }
  bool number_float(number_float_t value, const string_t&) override {
    RawValue v = Make(RawValue::Kind::kFloat);
    v.d = value;
    return Scalar(std::move(v));
  }
  bool string(string_t& value) override {
    RawValue v = Make(RawValue::Kind::kString);
    if (depth_ == 1 && target_ != nullptr) v.s = std::move(value);
    return Scalar(std::move(v));
  }
  bool binary(binary_t&) override { return Scalar(Make(RawValue::Kind::kNested)); }
  bool start_object(std::size_t) override { return Open(/*is_object=*/true); }
  bool end_object() override { return Close(); }
  bool start_array(std::size_t) override { return Open(/*is_object=*/false); }
  bool end_array() override { return Close(); }
  bool key(string_t& name) override {
    if (depth_ == 1) target_ = FieldFor(name, event_);
    return true;
  }
  bool parse_error(std::size_t position, const std::string& last_token,
                   const nlohmann::detail::exception& ex) override {
    error_position_ = position;
    error_token_ = last_token;
    error_id_ = ex.id;
    error_message_ = ex.what();
    return false;
  }

  bool top_level_is_object() const { return top_level_is_object_; }
  RawEvent& event() { return event_; }
  size_t scalars_seen() const { return scalars_; }
  int error_id() const { return error_id_; }
  size_t error_position() const { return error_position_; }
  const std::string& error_token() const { return error_token_; }
  const std::string& error_message() const { return error_message_; }

 private:
  static RawValue Make(RawValue::Kind kind) {
    RawValue v;
    v.kind = kind;
    return v;
  }

  bool Scalar(RawValue v) {
    ++scalars_;
    if (depth_ == 1 && target_ != nullptr) *target_ = std::move(v);
    return true;
  }

  bool Open(bool is_object) {
    if (depth_ == 0) top_level_is_object_ = is_object;
    if (depth_ == 1 && target_ != nullptr) target_->kind = RawValue::Kind::kNested;
    ++depth_;
    return true;
  }

  bool Close() {
    --depth_;
    return true;
  }

  const std::set<size_t>& overflow_ordinals_;
  RawEvent event_;
  RawValue* target_ = nullptr;  // field named by the last key at depth 1, if any
  size_t depth_ = 0;
  size_t scalars_ = 0;
  bool top_level_is_object_ = false;
  int error_id_ = 0;
  size_t error_position_ = 0;
  std::string error_token_;
  std::string error_message_;
};

// The fast path: one flat JSON object whose values are strings without escapes, numbers,
// true, false or null — the shape every producer of the contract sends. It fills `out` exactly
// as FieldCollector would and returns true, or returns false on anything else (escapes, nested
// values, numbers that overflow, every malformed input), and the caller parses the message with
// nlohmann. So there is one implementation of errors and of rare inputs; this one only has to
// agree with it on what it accepts (tests/unit/event_test.cpp compares the two on valid,
// mutated and random messages).
class FlatObjectScanner {
 public:
  explicit FlatObjectScanner(std::string_view text)
      : p_(text.data()), end_(text.data() + text.size()) {}

  bool Scan(RawEvent& out) {
    SkipSpace();
    if (!Consume('{')) return false;
    SkipSpace();
    if (!Consume('}')) {
      for (;;) {
        std::string_view key;
        if (!String(&key)) return false;
        SkipSpace();
        if (!Consume(':')) return false;
        SkipSpace();
        if (!Value(FieldFor(key, out))) return false;
        SkipSpace();
        if (Consume('}')) break;
        if (!Consume(',')) return false;
        SkipSpace();
      }
    }
    SkipSpace();
    return p_ == end_;
  }

 private:
  static bool Digit(char c) { return c >= '0' && c <= '9'; }

  void SkipSpace() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  bool Consume(char c) {
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }
  // A string with no escape and no control character (which JSON forbids unescaped). The
  // message is already known to be valid UTF-8.
  bool String(std::string_view* s) {
    if (!Consume('"')) return false;
    const char* begin = p_;
    for (; p_ < end_; ++p_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        *s = std::string_view(begin, static_cast<size_t>(p_ - begin));
        ++p_;
        return true;
      }
      if (c == '\\' || c < 0x20) return false;
    }
    return false;
  }
  bool Word(std::string_view w) {
    if (static_cast<size_t>(end_ - p_) < w.size() || std::string_view(p_, w.size()) != w) {
      return false;
    }
    p_ += w.size();
    return true;
  }
  // JSON's number grammar; integers as nlohmann types them (a minus sign: int64, none:
  // uint64), fractions and exponents as doubles (std::from_chars rounds correctly, as strtod).
  bool Number(RawValue* v) {
    const char* begin = p_;
    const bool negative = Consume('-');
    if (p_ == end_) return false;
    if (*p_ == '0') {
      ++p_;
    } else if (*p_ >= '1' && *p_ <= '9') {
      while (p_ < end_ && Digit(*p_)) ++p_;
    } else {
      return false;
    }
    bool fractional = false;
    if (Consume('.')) {
      if (p_ == end_ || !Digit(*p_)) return false;
      while (p_ < end_ && Digit(*p_)) ++p_;
      fractional = true;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !Digit(*p_)) return false;
      while (p_ < end_ && Digit(*p_)) ++p_;
      fractional = true;
    }
    RawValue parsed;
    std::from_chars_result r{};
    if (fractional) {
      parsed.kind = RawValue::Kind::kFloat;
      r = std::from_chars(begin, p_, parsed.d);
    } else if (negative) {
      parsed.kind = RawValue::Kind::kInt;
      r = std::from_chars(begin, p_, parsed.i);
    } else {
      parsed.kind = RawValue::Kind::kUnsigned;
      r = std::from_chars(begin, p_, parsed.u);
    }
    // Out of range (an integer nlohmann would read as a double, a double that overflows or
    // underflows): the full parser decides.
    if (r.ec != std::errc() || r.ptr != p_) return false;
    if (v != nullptr) *v = std::move(parsed);
    return true;
  }
  bool Value(RawValue* v) {
    if (p_ == end_) return false;
    RawValue scalar;
    switch (*p_) {
      case '"': {
        std::string_view s;
        if (!String(&s)) return false;
        if (v != nullptr) {
          v->kind = RawValue::Kind::kString;
          v->s.assign(s);
        }
        return true;
      }
      case 't':
        if (!Word("true")) return false;
        scalar.kind = RawValue::Kind::kBool;
        break;
      case 'f':
        if (!Word("false")) return false;
        scalar.kind = RawValue::Kind::kBool;
        break;
      case 'n':
        if (!Word("null")) return false;
        scalar.kind = RawValue::Kind::kNull;
        break;
      default:
        return Number(v);  // also fails on '{' and '[': nested values take the full parser
    }
    if (v != nullptr) *v = std::move(scalar);
    return true;
  }

  const char* p_;
  const char* end_;
};

// A message may hold a few out-of-range numbers in fields we ignore; each costs a re-parse,
// so their number is bounded to keep the work per message linear.
constexpr int kMaxOverflowingNumbers = 16;
constexpr int kNumberOverflowId = 406;

Error Reject(std::string code, std::string message) {
  return Error{std::move(code), std::move(message)};
}

const char* KindName(RawValue::Kind kind) {
  switch (kind) {
    case RawValue::Kind::kAbsent:
      return "nothing";
    case RawValue::Kind::kNull:
      return "null";
    case RawValue::Kind::kBool:
      return "a boolean";
    case RawValue::Kind::kInt:
    case RawValue::Kind::kUnsigned:
      return "an integer";
    case RawValue::Kind::kFloat:
      return "a fractional number";
    case RawValue::Kind::kOverflow:
      return "a number out of range";
    case RawValue::Kind::kString:
      return "a string";
    case RawValue::Kind::kNested:
      return "an object or array";
  }
  return "an unknown value";
}

// A double holding an integer that fits int64_t, converted; false otherwise.
bool IntegralDouble(double d, int64_t* out) {
  // 2^63 is exactly representable; every double below it with no fraction fits int64_t.
  constexpr double kTwoPow63 = 9223372036854775808.0;
  if (!std::isfinite(d) || d != std::trunc(d) || d < -kTwoPow63 || d >= kTwoPow63) return false;
  *out = static_cast<int64_t>(d);
  return true;
}

// Resolves "user" or "item": a string, or a number written as its decimal integer form.
Result<std::string> ResolveId(const char* field, RawValue& v) {
  // Built only for a rejection: this runs twice for every event.
  const auto expectation = [field] {
    return std::string("\"") + field + "\" must be a non-empty string of at most " +
           std::to_string(kMaxIdBytes) + " bytes";
  };
  std::string id;
  switch (v.kind) {
    case RawValue::Kind::kAbsent:
      return Reject(std::string("missing_") + field, expectation() + " (field is missing)");
    case RawValue::Kind::kString:
      id = std::move(v.s);
      break;
    case RawValue::Kind::kInt:
      id = std::to_string(v.i);
      break;
    case RawValue::Kind::kUnsigned:
      id = std::to_string(v.u);
      break;
    case RawValue::Kind::kFloat: {
      int64_t as_int = 0;
      if (!IntegralDouble(v.d, &as_int)) {
        return Reject("wrong_type", expectation() + " or an integer (got a fractional number)");
      }
      id = std::to_string(as_int);
      break;
    }
    default:
      return Reject("wrong_type", expectation() + " (got " + KindName(v.kind) + ")");
  }
  if (id.empty()) return Reject(std::string("empty_") + field, expectation() + " (got \"\")");
  if (id.size() > kMaxIdBytes) {
    return Reject("id_too_long", expectation() + " (got " + std::to_string(id.size()) + " bytes)");
  }
  return id;
}

// The full parser: any JSON, every error with nlohmann's message.
Status ParseWithNlohmann(std::string_view bytes, RawEvent& raw) {
  std::set<size_t> overflow_ordinals;
  std::string patched;  // the message with out-of-range numbers replaced, once there is one
  std::string_view text = bytes;
  for (int attempt = 0;; ++attempt) {
    FieldCollector collector(overflow_ordinals);
    bool parsed = false;
    try {
      parsed = Json::sax_parse(text, &collector);
    } catch (const std::exception& e) {
      return Reject("not_json", std::string("message is not JSON: ") + e.what());
    }
    if (parsed) {
      if (!collector.top_level_is_object()) {
        return Reject("not_object", "message must be a JSON object");
      }
      raw = std::move(collector.event());
      break;
    }
    if (collector.error_id() != kNumberOverflowId) {
      return Reject("not_json", "message is not JSON: " + collector.error_message());
    }
    const std::string& token = collector.error_token();
    const size_t end = collector.error_position();
    if (attempt >= kMaxOverflowingNumbers || end < token.size() || end > text.size() ||
        text.substr(end - token.size(), token.size()) != token) {
      return Reject("not_json", "message is not JSON: " + collector.error_message());
    }
    overflow_ordinals.insert(collector.scalars_seen());
    patched =
        std::string(text.substr(0, end - token.size())) + "null" + std::string(text.substr(end));
    text = patched;
  }
  return Status::Ok();
}

// The contract's rules applied to the fields found.
Result<Event> Resolve(RawEvent& raw, const EventRules& rules, int64_t default_ts_ms) {
  Event event;
  auto user = ResolveId("user", raw.user);
  if (!user.ok()) return user.error();
  event.user = std::move(user).value();
  auto item = ResolveId("item", raw.item);
  if (!item.ok()) return item.error();
  event.item = std::move(item).value();

  switch (raw.type.kind) {
    case RawValue::Kind::kAbsent:
      break;
    case RawValue::Kind::kString:
      event.type = std::move(raw.type.s);
      break;
    default:
      return Reject("wrong_type",
                    std::string("\"type\" must be a string (got ") + KindName(raw.type.kind) + ")");
  }

  switch (raw.weight.kind) {
    case RawValue::Kind::kAbsent:
      if (event.type.empty()) {
        event.weight = rules.default_weight;
      } else if (auto it = rules.type_weights.find(event.type); it != rules.type_weights.end()) {
        event.weight = it->second;
      } else if (rules.reject_unknown_type) {
        return Reject("unknown_type", "\"type\" \"" + event.type +
                                          "\" is not in model.event_weights and unknown types "
                                          "are rejected (kafka.unknown_event_type)");
      } else {
        event.weight = rules.default_weight;
      }
      break;
    case RawValue::Kind::kInt:
      event.weight = static_cast<double>(raw.weight.i);
      break;
    case RawValue::Kind::kUnsigned:
      event.weight = static_cast<double>(raw.weight.u);
      break;
    case RawValue::Kind::kFloat:
      event.weight = raw.weight.d;
      break;
    case RawValue::Kind::kOverflow:
      return Reject("weight_not_finite",
                    "\"weight\" must be a finite number (got a number out of "
                    "range of a double)");
    default:
      return Reject("wrong_type", std::string("\"weight\" must be a finite number (got ") +
                                      KindName(raw.weight.kind) + ")");
  }
  if (!std::isfinite(event.weight)) {
    // Only reachable through a non-finite rule weight; never let one into the model.
    return Reject("weight_not_finite", "\"weight\" resolved from the event type is not finite");
  }
  if (std::abs(event.weight) > kMaxAbsWeight) {
    // One absurd weight would overflow the learner's step accumulators for good.
    return Reject("weight_out_of_range",
                  "\"weight\" must be within [-" + std::to_string(static_cast<int>(kMaxAbsWeight)) +
                      ", " + std::to_string(static_cast<int>(kMaxAbsWeight)) + "] (got " +
                      std::to_string(event.weight) + ")");
  }

  constexpr std::string_view ts_expectation =
      "\"ts\" must be a non-negative integer of epoch milliseconds";
  switch (raw.ts.kind) {
    case RawValue::Kind::kAbsent:
      event.ts_ms = default_ts_ms;
      break;
    case RawValue::Kind::kInt:
      if (raw.ts.i < 0) {
        return Reject("bad_timestamp",
                      std::string(ts_expectation) + " (got " + std::to_string(raw.ts.i) + ")");
      }
      event.ts_ms = raw.ts.i;
      break;
    case RawValue::Kind::kUnsigned:
      if (raw.ts.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Reject("bad_timestamp", std::string(ts_expectation) + " (got " +
                                           std::to_string(raw.ts.u) + ", out of range)");
      }
      event.ts_ms = static_cast<int64_t>(raw.ts.u);
      break;
    case RawValue::Kind::kFloat: {
      int64_t as_int = 0;
      if (!IntegralDouble(raw.ts.d, &as_int) || as_int < 0) {
        return Reject("bad_timestamp",
                      std::string(ts_expectation) + " (got " + Json(raw.ts.d).dump() + ")");
      }
      event.ts_ms = as_int;
      break;
    }
    default:
      return Reject("bad_timestamp",
                    std::string(ts_expectation) + " (got " + KindName(raw.ts.kind) + ")");
  }
  return event;
}

Result<Event> Parse(std::string_view bytes, const EventRules& rules, int64_t default_ts_ms,
                    bool fast_path) {
  if (bytes.size() > rules.max_message_bytes) {
    return Reject("oversized",
                  "message is " + std::to_string(bytes.size()) + " bytes, more than the limit of " +
                      std::to_string(rules.max_message_bytes) + " (kafka.max_message_bytes)");
  }
  if (!IsValidUtf8(bytes)) return Reject("invalid_utf8", "message is not valid UTF-8");

  RawEvent raw;
  if (!fast_path || !FlatObjectScanner(bytes).Scan(raw)) {
    raw = RawEvent{};
    if (auto parsed = ParseWithNlohmann(bytes, raw); !parsed.ok()) return parsed.error();
  }
  return Resolve(raw, rules, default_ts_ms);
}

}  // namespace

Result<Event> ParseEvent(std::string_view bytes, const EventRules& rules, int64_t default_ts_ms) {
  return Parse(bytes, rules, default_ts_ms, /*fast_path=*/true);
}

namespace detail {
Result<Event> ParseEventWithFullParser(std::string_view bytes, const EventRules& rules,
                                       int64_t default_ts_ms) {
  return Parse(bytes, rules, default_ts_ms, /*fast_path=*/false);
}

bool TakesFastPath(std::string_view bytes) {
  RawEvent raw;
  return FlatObjectScanner(bytes).Scan(raw);
}
}  // namespace detail

std::string ToJson(const Event& event) {
  nlohmann::ordered_json j;
  j["user"] = event.user;
  j["item"] = event.item;
  if (!event.type.empty()) j["type"] = event.type;
  j["weight"] = event.weight;
  j["ts"] = event.ts_ms;
  // `replace` keeps dump() from throwing on ids that are not UTF-8 (events built by hand).
  return j.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::ordered_json::error_handler_t::replace);
}

EventRules EventRulesFrom(const config::Options& options) {
  EventRules r;
  r.type_weights = options.model.event_weights;
  r.default_weight = options.model.default_event_weight;
  r.reject_unknown_type = options.kafka.unknown_event_type == "reject";
  r.max_message_bytes = static_cast<size_t>(options.kafka.max_message_bytes);
  return r;
}

}  // namespace simstream::engine
