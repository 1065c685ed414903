// A progress bar on stderr, shown only when stderr is a terminal.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace simstream::app {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label, bool enabled = isatty(STDERR_FILENO) == 1)
      : label_(std::move(label)), enabled_(enabled), start_(Clock::now()), last_(start_) {}
  ~ProgressBar() { Finish(); }
  // `done` of `total` units (total 0: unknown).
  void Update(size_t done, size_t total) {
    if (!enabled_) return;
    const auto now = Clock::now();
    if (now - last_ < std::chrono::milliseconds(100) && done != total) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    if (total > 0) {
      const int width = 30;
      const int filled =
          static_cast<int>(width * static_cast<double>(done) / static_cast<double>(total));
      std::fprintf(stderr, "\r%s [%.*s%*s] %3d%% %zu/%zu %.0f/s ", label_.c_str(), filled,
                   "==============================", width - filled, "",
                   static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total)),
                   done, total, rate);
    } else {
      std::fprintf(stderr, "\r%s %zu %.0f/s ", label_.c_str(), done, rate);
    }
    std::fflush(stderr);
    drawn_ = true;
  }
  void Finish() {
    if (drawn_) std::fprintf(stderr, "\n");
    drawn_ = false;
  }

 private:
  using Clock = std::chrono::steady_clock;
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  Clock::time_point start_, last_;
};

}  // namespace simstream::app
