// A reader-writer lock that lets a waiting writer in ahead of new readers.
//
// glibc's std::shared_mutex prefers readers: under a steady query load the single writer
// (the learner) could wait forever and ingestion would stall. This wraps pthread_rwlock with
// PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP and meets the SharedMutex requirements, so
// std::shared_lock / std::unique_lock work with it. Readers must not lock it recursively.
#pragma once

#include <pthread.h>

#include <cstdlib>

namespace simstream::engine {

class WriterPreferringMutex {
 public:
  WriterPreferringMutex() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    if (pthread_rwlock_init(&lock_, &attr) != 0) std::abort();
    pthread_rwlockattr_destroy(&attr);
  }
  ~WriterPreferringMutex() { pthread_rwlock_destroy(&lock_); }
  WriterPreferringMutex(const WriterPreferringMutex&) = delete;
  WriterPreferringMutex& operator=(const WriterPreferringMutex&) = delete;

  void lock() { pthread_rwlock_wrlock(&lock_); }
  bool try_lock() { return pthread_rwlock_trywrlock(&lock_) == 0; }
  void unlock() { pthread_rwlock_unlock(&lock_); }
  void lock_shared() { pthread_rwlock_rdlock(&lock_); }
  bool try_lock_shared() { return pthread_rwlock_tryrdlock(&lock_) == 0; }
  void unlock_shared() { pthread_rwlock_unlock(&lock_); }

 private:
  pthread_rwlock_t lock_;
};

}  // namespace simstream::engine
