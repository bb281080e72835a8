// Process and shared-memory primitives for PagodaDistributed: cross-process atomics on 32-bit words,
// futex wait/wake (shared, not private: the words live in a shm segment), the parent-death signal.
#ifndef PAGODA_PROCESS_H
#define PAGODA_PROCESS_H
#include <stdint.h>

/// Sequentially consistent atomics on a 32-bit word in shared memory.
static inline uint32_t pagoda_shm_load_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void pagoda_shm_store_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
/// Returns the new value.
static inline uint32_t pagoda_shm_add_u32(uint32_t *p, uint32_t v) { return __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST); }
static inline void pagoda_shm_pause(void) { __builtin_ia32_pause(); }

/// Sleeps while *word == expected, at most timeout_ns (0: no limit). Returns 0 when woken or the value
/// differed, ETIMEDOUT on timeout, EINTR when interrupted.
int pagoda_shm_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns);
/// Wakes up to n waiters on word. Returns the number woken.
int pagoda_shm_futex_wake(uint32_t *word, int n);
/// Asks the kernel to send `sig` to this process when its parent dies; returns 0 or errno.
/// Also returns ESRCH when the parent is already gone (getppid() != expected_parent).
int pagoda_set_parent_death_signal(int sig, int expected_parent);
/// 1 when the process exists and is not a zombie, 0 otherwise (reads /proc/<pid>/stat).
int pagoda_process_alive(int pid);

#endif
