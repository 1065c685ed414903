// The event of the public contract (README "Kafka ingestion", docs/openapi.yaml "Event") and its
// validation.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "config/options.hpp"
#include "config/result.hpp"
#include "config/utf8.hpp"

namespace simstream::engine {

// Longest accepted user or item id, in bytes.
inline constexpr size_t kMaxIdBytes = 256;
// Largest accepted |weight| of an event: beyond it one event could swamp the learner.
inline constexpr double kMaxAbsWeight = config::kMaxAbsEventWeight;

// One validated interaction. `weight` is already resolved: the explicit "weight" if given,
// else the weight of "type" in model.event_weights, else the default weight.
struct Event {
  std::string user;
  std::string item;
  std::string type;     // empty when the event had none
  double weight = 1.0;  // finite; negative means negative feedback
  int64_t ts_ms = 0;    // epoch milliseconds
};

// How raw events are validated and weighted.
struct EventRules {
  std::map<std::string, double> type_weights;  // model.event_weights
  double default_weight = 1.0;                 // model.default_event_weight
  bool reject_unknown_type = false;            // kafka.unknown_event_type == "reject"
  size_t max_message_bytes = 65536;            // kafka.max_message_bytes
};

// The rules a configuration asks for (the fields named above): the one place they are derived,
// so the Kafka consumer, the HTTP intake and file replays validate identically.
EventRules EventRulesFrom(const config::Options& options);

// Reason codes of rejected events (the `code` of the Error), stable for metrics and the DLQ:
//   "oversized", "invalid_utf8", "not_json", "not_object", "missing_user", "missing_item",
//   "empty_user", "empty_item", "id_too_long", "wrong_type", "weight_not_finite",
//   "weight_out_of_range" (|weight| > kMaxAbsWeight), "unknown_type", "bad_timestamp".
// The message names the offending field.
//
// "user" and "item" may also be JSON numbers with an integral value; they become their decimal
// form (42 and 42.0 both become "42"). An empty "type" counts as no type. Numbers beyond the
// range of a double (1e999) are valid JSON here: "weight_not_finite" for "weight",
// "bad_timestamp" for "ts". Never throws.
//
// `default_ts_ms` is used when the event has no "ts" (the Kafka message timestamp, or the line
// number for files without time).
Result<Event> ParseEvent(std::string_view bytes, const EventRules& rules, int64_t default_ts_ms);

namespace detail {
// ParseEvent without its fast path for flat objects: every message goes through nlohmann's
// parser. The slow twin the tests hold ParseEvent to.
Result<Event> ParseEventWithFullParser(std::string_view bytes, const EventRules& rules,
                                       int64_t default_ts_ms);
// Whether ParseEvent reads `bytes` (valid UTF-8) on its fast path: one flat object of strings
// without escapes, numbers in range, true, false and null. Tests use it to check that their
// inputs exercise both paths.
bool TakesFastPath(std::string_view bytes);
}  // namespace detail

// Serialises an event back to contract JSON (one line, no trailing newline). Keys come in
// contract order: "user", "item", "type" (omitted when empty), "weight", "ts".
std::string ToJson(const Event& event);

// Strict UTF-8 check (config/utf8.hpp). ParseEvent runs it before JSON parsing.
using config::IsValidUtf8;

}  // namespace simstream::engine
