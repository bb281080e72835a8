// CPagodaKernels: the numeric code Swift cannot spell (the AVX512-BF16 GEMM, SwiGLU's vectorized exp, paged attention, the prefetch hint), compiled with
// -O3 -march. Operating-system shims are CPagodaSystem. Keep it tiny.
#ifndef CPAGODA_KERNELS_H
#define CPAGODA_KERNELS_H
#include <stdint.h>
#include "pagoda_quant.h"

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

/// out[i] = silu(gate[i]) · up[i] = gate[i] / (1 + e^−gate[i]) · up[i] for i < count (SwiGLU); out may be gate.
void pagoda_silu_mul(const float *gate, const float *up, float *out, int64_t count);

/// Attention of `heads` consecutive query heads that share one KV head, over a block-paged float32 cache: for head h,
/// out[h·head_dim ..< (h+1)·head_dim] = softmax(q_h·kᵀ·scale) · v over positions 0 ..< context, position p read at
/// cache row table[p / block_size] · block_size + p % block_size of `keys` and `values` (each already offset to the
/// KV head; rows row_size floats apart); q_h at q + h·head_dim. scores: scratch of heads × context floats. AVX-512
/// for head_dim 16, 32, 64 and 128 (up to 4 heads per pass over the rows); scalar otherwise. Each head's floats are
/// the same whatever the grouping.
void pagoda_attend_heads(const float *q, float *out, int64_t heads, int64_t context, const int32_t *table,
                         const float *keys, const float *values, int64_t row_size, int64_t block_size, int64_t head_dim,
                         float scale, float *scores);

#endif
