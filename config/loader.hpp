// Loading `Options` from a JSON file (comments allowed), environment variables and `--set`
// assignments, with every key checked against one table (`Keys()`).
//
// Precedence, lowest first: the defaults in options.hpp, the config file, environment variables
// `SIMSTREAM_<SECTION>_<KEY>`, then `--set section.key=value`. `Load` does all of it and then
// `Validate`; it is the one entry point the app uses. Every function here is pure apart from
// reading the file and the given environment, is thread-compatible, and throws nothing: errors
// come back as values (code "invalid_config", or "not_found" for a missing config file) whose
// message names the offending key and says what would be accepted.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/options.hpp"
#include "config/result.hpp"

namespace simstream::config {

// The value type of a key.
enum class KeyType { kString, kInt64, kDouble, kStringMap, kDoubleMap };

// "string", "int64", "double", "map<string,string>" or "map<string,double>".
std::string_view TypeName(KeyType type);

// One configurable key, for listings (`--help`, the example config) and tests.
struct KeyInfo {
  std::string name;     // "model.dim"
  std::string section;  // "model"
  std::string key;      // "dim"
  std::string env_var;  // "SIMSTREAM_MODEL_DIM"
  KeyType type = KeyType::kString;
  std::string doc;                   // one line: what the key does
  std::string constraint;            // e.g. "Range: [1, 1024]."; empty when anything goes
  std::vector<std::string> allowed;  // the allowed values of an enum-like string, else empty
  bool secret = false;               // redacted by ToJson(..., Secrets::kRedact)
  nlohmann::json default_value;      // the default of options.hpp
};

// Every key, grouped by section in the order kafka, storage, server, model, eval, index.
const std::vector<KeyInfo>& Keys();

// The key called `name` ("section.key"), or nullptr.
const KeyInfo* FindKey(std::string_view name);

// Applies a JSON object of sections, e.g. {"model": {"dim": 32}}. Keys not mentioned keep their
// value; a map-typed key replaces the whole map. On error `opts` is left unchanged.
Status ApplyJson(Options& opts, const nlohmann::json& doc);

// Reads a JSON file (with // and /* */ comments) and applies it over the defaults.
Result<Options> LoadFile(const std::string& path);

// Applies one "section.key=value" (the argument of `--set`). The value is read as JSON if it
// parses (`model.dim=32`, `model.event_weights={"click":1}`), else as a bare string
// (`kafka.brokers=localhost:9092`). For string keys the text is taken verbatim unless it is a
// quoted JSON string, so `server.read_token=12345` is the string "12345".
Status ApplyOverride(Options& opts, std::string_view assignment);

// Applies the variables `SIMSTREAM_<SECTION>_<KEY>=value` (upper case, e.g.
// SIMSTREAM_MODEL_HISTORY_HALF_LIFE_EVENTS=5), values read as by ApplyOverride. A variable
// `SIMSTREAM_<SECTION>_...` of a known section that names no key is an error (a typo must not
// be silently ignored); other variables are ignored. `envp` is a null-terminated array of
// "NAME=value" (as `environ`) and may be null. On error `opts` is left unchanged.
Status ApplyEnvironment(Options& opts, char** envp);
Status ApplyEnvironment(Options& opts, const std::vector<std::string>& env);

// Checks every key's type-independent constraint (ranges, allowed values, non-empty names,
// "host:port") and the cross-field rules (the dead-letter topic differs from the topic, event
// weights are finite). Loading already checks single keys; this also catches Options built in
// code.
Status Validate(const Options& opts);

// defaults <- file (skipped when `config_path` is empty) <- environment <- overrides, then
// Validate.
Result<Options> Load(const std::string& config_path, char** envp,
                     const std::vector<std::string>& overrides);
Result<Options> Load(const std::string& config_path, const std::vector<std::string>& env,
                     const std::vector<std::string>& overrides);

enum class Secrets { kShow, kRedact };

// Every key, as a JSON object of sections; ApplyJson(ToJson(o)) reproduces `o`. With
// Secrets::kRedact, non-empty tokens and Kafka properties that look like credentials
// (password, secret, key material) read "<redacted>", for logs.
nlohmann::json ToJson(const Options& opts, Secrets secrets = Secrets::kShow);

// The documented example config: every key with its default, a `// doc` comment above each.
// config/simstream.example.json holds exactly this text (a test keeps them equal).
std::string ExampleConfig();

// A parsed "host:port" ("[::1]:8080" for IPv6 literals).
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
Result<HostPort> ParseHostPort(std::string_view text);

// Why `name` is not a topic name Kafka accepts (1..249 of ASCII letters, digits, '.', '_', '-';
// not "." or ".."), or nullopt when it is.
std::optional<std::string> TopicNameError(const std::string& name);

}  // namespace simstream::config
