// The command line as a user runs it: the binary, its files and its exit codes.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/test_support.hpp"

namespace simstream {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test_support::ReadFile;

struct TempDir {
  fs::path dir = fs::temp_directory_path() / ("simstream_cli_" + std::to_string(::getpid()));
  TempDir() { fs::remove_all(dir), fs::create_directories(dir); }
  ~TempDir() { fs::remove_all(dir); }
};

// Runs `simstream ARGS` through the shell (ARGS may redirect); the exit code, -1 on a signal.
int Simstream(const std::string& args) {
  const int status = std::system((std::string(SIMSTREAM_BINARY) + " " + args).c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// `tune` prints the best model on stdout as a config file that loads as it is (it once added
// an "_objective" section the loader refuses); the scores go to stderr.
TEST(Cli, TunePrintsAConfigFileThatLoadsAsItIs) {
  TempDir t;
  const fs::path events = t.dir / "events.jsonl";
  const fs::path best = t.dir / "best.json";
  const fs::path err = t.dir / "tune.err";
  ASSERT_EQ(
      Simstream("generate --users 60 --items 40 --events 3000 --seed 3 -o " + events.string()), 0);
  ASSERT_EQ(Simstream("tune --input " + events.string() + " --trials 2 --set model.dim=8 > " +
                      best.string() + " 2> " + err.string()),
            0)
      << ReadFile(err);
  const json out = json::parse(ReadFile(best), nullptr, false);
  ASSERT_TRUE(out.is_object()) << ReadFile(best);
  EXPECT_EQ(out.size(), 1u) << out.dump();
  ASSERT_TRUE(out.contains("model")) << out.dump();
  EXPECT_EQ(out["model"]["dim"], 8) << "the configured model is the base of the search";
  EXPECT_NE(ReadFile(err).find("best: trial"), std::string::npos) << ReadFile(err);
  EXPECT_EQ(Simstream("config --config " + best.string() + " > /dev/null 2> " + err.string()), 0)
      << ReadFile(err);
}

// A config the loader refuses is an error message and a non-zero exit, never an abort: a
// number beyond a double in the file, bytes that are not UTF-8 from --set.
TEST(Cli, AConfigThatCannotLoadIsAnErrorNotACrash) {
  TempDir t;
  const fs::path file = t.dir / "huge.json";
  const fs::path err = t.dir / "config.err";
  { std::ofstream(file) << R"({"model": {"learning_rate": 1e999}})"; }
  const int huge =
      Simstream("config --config " + file.string() + " > /dev/null 2> " + err.string());
  EXPECT_GT(huge, 0) << "exit code " << huge;
  EXPECT_NE(ReadFile(err).find("not valid JSON"), std::string::npos) << ReadFile(err);
  const int bytes =
      Simstream("config --set \"model.loss=$(printf '\\377')\" > /dev/null 2> " + err.string());
  EXPECT_GT(bytes, 0) << "exit code " << bytes;
  EXPECT_NE(ReadFile(err).find("UTF-8"), std::string::npos) << ReadFile(err);
  // produce --topic overrides kafka.topic after the config is checked: checked too.
  const int topic = Simstream("produce --brokers 127.0.0.1:1 --topic 'no spaces' --input " +
                              file.string() + " > /dev/null 2> " + err.string());
  EXPECT_GT(topic, 0) << "exit code " << topic;
  EXPECT_NE(ReadFile(err).find("--topic \"no spaces\""), std::string::npos) << ReadFile(err);
}

}  // namespace
}  // namespace simstream
