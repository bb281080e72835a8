// CPagodaSystem: the operating-system shims Swift cannot express well (CPU affinity, futex, atomics on plain
// memory, the pause instruction; pagoda_process.h: shared-memory futex, parent-death signal). No numeric code,
// hence no -march: the kernels are CPagodaKernels. Keep it tiny.
#ifndef CPAGODA_SYSTEM_H
#define CPAGODA_SYSTEM_H
#include <stdint.h>
#include "pagoda_process.h"

/// Pins the calling thread to one CPU. Returns 0 on success, an errno value otherwise.
int pagoda_pin_thread_to_cpu(int cpu);
/// Number of CPUs this process may run on (sched_getaffinity).
int pagoda_available_cpus(void);

/// Sleeps while `*addr == expected` (futex FUTEX_WAIT_PRIVATE); returns on change, wake or signal.
void pagoda_futex_wait(uint32_t *addr, uint32_t expected);
/// Wakes up to `count` threads sleeping on `addr`.
void pagoda_futex_wake(uint32_t *addr, int count);

// Sequentially consistent atomics on plain memory the thread pool shares between threads.
static inline uint32_t pagoda_atomic_load_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void pagoda_atomic_store_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t pagoda_atomic_fetch_add_u32(uint32_t *p, uint32_t v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline int64_t pagoda_atomic_fetch_add_i64(int64_t *p, int64_t v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline void pagoda_atomic_store_i64(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
/// The x86 `pause` hint for spin loops.
static inline void pagoda_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

#endif
