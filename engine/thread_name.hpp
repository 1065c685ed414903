// Names the calling thread (Linux: at most 15 characters are kept), so `top -H`, `perf report
// --sort=comm` and gdb show which of the daemon's threads does what.
#pragma once

#include <pthread.h>

namespace simstream::engine {

inline void SetThreadName(const char* name) {
  pthread_setname_np(pthread_self(), name);
}

}  // namespace simstream::engine
