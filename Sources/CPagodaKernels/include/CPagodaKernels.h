// CPagodaKernels: only what Swift cannot express well (CPU affinity, futex, atomics on plain memory,
// the pause instruction). Keep it tiny.
#ifndef CPAGODA_KERNELS_H
#define CPAGODA_KERNELS_H
#include <stdint.h>
#include "pagoda_process.h"
#include "pagoda_quant.h"

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
/// 1 when the CPU (and this build) can run the AVX512-BF16 kernels below.
int pagoda_cpu_has_avx512_bf16(void);
/// dst[i] = src[i] rounded to bf16 (nearest even), for i < count.
void pagoda_convert_f32_to_bf16(const float *src, uint16_t *dst, int64_t count);
/// out[r, n] = Σ_c x[r, c] · w[n, c] for r < m, n0 ≤ n < n1, with bf16 activations x [m, k] (row stride k) and bf16
/// weights w (row stride ldw elements), f32 accumulation. Requires k % 32 == 0 and pagoda_cpu_has_avx512_bf16().
void pagoda_gemm_bf16_rows(const uint16_t *x, int64_t m, int64_t k, const uint16_t *w, int64_t ldw, int64_t n0,
                           int64_t n1, float *out, int64_t ldo);

#endif
}

/// Hints the CPU to bring the cache line at `p` into L2 (streaming weight rows far ahead of use; an L1 hint evicted lines before use).
static inline void pagoda_prefetch(const void *p) { __builtin_prefetch(p, 0, 1); }

/// 1 when the CPU (and this build) can run the AVX512-BF16 kernels below.
int pagoda_cpu_has_avx512_bf16(void);
/// dst[i] = src[i] rounded to bf16 (nearest even), for i < count.
void pagoda_convert_f32_to_bf16(const float *src, uint16_t *dst, int64_t count);
/// out[r, n] = Σ_c x[r, c] · w[n, c] for r < m, n0 ≤ n < n1, with bf16 activations x [m, k] (row stride k) and bf16
/// weights w (row stride ldw elements), f32 accumulation. Requires k % 32 == 0 and pagoda_cpu_has_avx512_bf16().
void pagoda_gemm_bf16_rows(const uint16_t *x, int64_t m, int64_t k, const uint16_t *w, int64_t ldw, int64_t n0,
                           int64_t n1, float *out, int64_t ldo);

#endif
