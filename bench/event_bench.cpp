// Validation cost of one event (engine::ParseEvent), the poll thread's main work: the fast path
// for flat objects against the full nlohmann parser it falls back to, on the same messages in
// one run. Messages are the contract JSON of `simstream generate` (engine/generator.hpp), with
// and without the optional fields.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "config/options.hpp"
#include "engine/event.hpp"
#include "engine/generator.hpp"

namespace {

namespace engine = simstream::engine;

const std::vector<std::string>& Messages() {
  static const std::vector<std::string> messages = [] {
    engine::GeneratorOptions g;
    g.users = 10000;
    g.items = 20000;
    g.events = 100000;
    std::vector<std::string> out;
    (void)engine::Generate(g, [&](const engine::Event& e) {
      engine::Event copy = e;
      if (out.size() % 2 == 0) copy.type.clear();  // half carry a weight and no type
      out.push_back(engine::ToJson(copy));
    });
    return out;
  }();
  return messages;
}

// Out of the template: GCC 12 fails on `config::Options{}` inside it.
engine::EventRules DefaultRules() {
  const simstream::config::Options defaults;
  return engine::EventRulesFrom(defaults);
}

template <bool kFast>
void BM_ParseEvent(benchmark::State& state) {
  const auto& messages = Messages();
  if (messages.empty()) {
    state.SkipWithError("the generator produced no events");
    return;
  }
  const engine::EventRules rules = DefaultRules();
  size_t next = 0, ok = 0;
  for (auto _ : state) {
    const std::string& m = messages[next];
    auto r = kFast ? engine::ParseEvent(m, rules, 0)
                   : engine::detail::ParseEventWithFullParser(m, rules, 0);
    ok += r.ok();
    benchmark::DoNotOptimize(r);
    if (++next == messages.size()) next = 0;
  }
  if (ok != static_cast<size_t>(state.iterations())) state.SkipWithError("a message was rejected");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseEvent<true>)->Name("BM_ParseEvent/fast_path");
BENCHMARK(BM_ParseEvent<false>)->Name("BM_ParseEvent/full_parser");

}  // namespace

BENCHMARK_MAIN();
