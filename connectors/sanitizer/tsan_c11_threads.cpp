// Linked into every executable of a ThreadSanitizer build (SIMSTREAM_TSAN), nowhere else.
//
// librdkafka creates its threads and locks its queues through C11 <threads.h> (thrd_create,
// mtx_lock, cnd_wait, ...). glibc implements those by calling its pthread internals directly,
// past the pthread_* symbols that TSan intercepts: a thread started that way is unknown to
// TSan and crashes in its allocator at the first malloc, and a lock taken that way orders
// nothing for TSan. These definitions, in the executable, take precedence over glibc's for
// librdkafka's calls and forward to the public pthread functions, which TSan does intercept.
// glibc's C11 types are its pthread types under other names (thrd_t is pthread_t, mtx_t and
// cnd_t share pthread_mutex_t's and pthread_cond_t's layout, once_flag is pthread_once_t's),
// which is what glibc's own implementation relies on.
//
// The mutex and condition-variable forwarders keep the synchronisation TSan records (so what
// librdkafka's queues order between our threads stays ordered) but not the memory accesses TSan
// models for the objects themselves: those objects live in librdkafka, which orders their
// creation, use and destruction with atomics TSan does not see.
#include <pthread.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <ctime>

extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();

namespace {
// Memory accesses TSan models inside `f` are not checked; its synchronisation still counts.
template <typename F>
int Unchecked(F f) {
  __tsan_ignore_thread_begin();
  const int r = f();
  __tsan_ignore_thread_end();
  return r;
}

// <threads.h> values (glibc): thrd_success 0, thrd_busy 1, thrd_error 2, thrd_nomem 3,
// thrd_timedout 4; mtx_recursive 1.
constexpr int kSuccess = 0, kBusy = 1, kError = 2, kNoMem = 3, kTimedOut = 4;
constexpr int kMtxRecursive = 1;

int FromErrno(int err) {
  switch (err) {
    case 0:
      return kSuccess;
    case EBUSY:
      return kBusy;
    case ENOMEM:
      return kNoMem;
    case ETIMEDOUT:
      return kTimedOut;
    default:
      return kError;
  }
}

using StartFn = int (*)(void*);
struct Start {
  StartFn fn;
  void* arg;
};

void* Trampoline(void* p) {
  const Start s = *static_cast<Start*>(p);
  std::free(p);
  return reinterpret_cast<void*>(static_cast<intptr_t>(s.fn(s.arg)));
}
}  // namespace

extern "C" {

int thrd_create(pthread_t* thr, StartFn fn, void* arg) {
  auto* s = static_cast<Start*>(std::malloc(sizeof(Start)));
  if (s == nullptr) return kNoMem;
  *s = Start{fn, arg};
  const int err = pthread_create(thr, nullptr, Trampoline, s);
  if (err != 0) std::free(s);
  return FromErrno(err);
}

int thrd_join(pthread_t thr, int* res) {
  void* out = nullptr;
  const int err = pthread_join(thr, &out);
  if (err == 0 && res != nullptr) *res = static_cast<int>(reinterpret_cast<intptr_t>(out));
  return FromErrno(err);
}

int thrd_detach(pthread_t thr) {
  return FromErrno(pthread_detach(thr));
}

int mtx_init(pthread_mutex_t* m, int type) {
  return Unchecked([&] {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    if (type & kMtxRecursive) pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    const int err = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return FromErrno(err);
  });
}
int mtx_lock(pthread_mutex_t* m) {
  return Unchecked([&] { return FromErrno(pthread_mutex_lock(m)); });
}
int mtx_trylock(pthread_mutex_t* m) {
  return Unchecked([&] { return FromErrno(pthread_mutex_trylock(m)); });
}
int mtx_timedlock(pthread_mutex_t* m, const timespec* at) {
  return Unchecked([&] { return FromErrno(pthread_mutex_timedlock(m, at)); });
}
int mtx_unlock(pthread_mutex_t* m) {
  return Unchecked([&] { return FromErrno(pthread_mutex_unlock(m)); });
}
void mtx_destroy(pthread_mutex_t* m) {
  Unchecked([&] { return pthread_mutex_destroy(m); });
}

int cnd_init(pthread_cond_t* c) {
  return Unchecked([&] { return FromErrno(pthread_cond_init(c, nullptr)); });
}
int cnd_signal(pthread_cond_t* c) {
  return Unchecked([&] { return FromErrno(pthread_cond_signal(c)); });
}
int cnd_broadcast(pthread_cond_t* c) {
  return Unchecked([&] { return FromErrno(pthread_cond_broadcast(c)); });
}
int cnd_wait(pthread_cond_t* c, pthread_mutex_t* m) {
  return Unchecked([&] { return FromErrno(pthread_cond_wait(c, m)); });
}
int cnd_timedwait(pthread_cond_t* c, pthread_mutex_t* m, const timespec* at) {
  return Unchecked([&] { return FromErrno(pthread_cond_timedwait(c, m, at)); });
}
void cnd_destroy(pthread_cond_t* c) {
  Unchecked([&] { return pthread_cond_destroy(c); });
}

void call_once(pthread_once_t* flag, void (*fn)()) {
  pthread_once(flag, fn);
}

}  // extern "C"
