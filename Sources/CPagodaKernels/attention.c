// One query row's attention over a block-paged float32 KV cache (PagedAttention.attendOne): scores q·k·scale for
// every cached position, an exact-maximum softmax, then the weighted sum of the value rows. AVX-512 when the build
// targets it and the head size is 16, 32, 64 or 128 floats (16 scores per pass, reduced together); the scalar loops
// otherwise.
#include "CPagodaKernels.h"
#include <math.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

/// Cache row of position p through the block table: table[p / bs] · bs + p % bs.
static inline int64_t attention_slot(const int32_t *table, int64_t p, int64_t bs) {
    return (int64_t)table[p / bs] * bs + p % bs;
}

static void attend_row_scalar(const float *q, float *out, int64_t context, const int32_t *table, const float *keys,
                              const float *values, int64_t row_size, int64_t bs, int64_t d, float scale, float *scores) {
    float max_score = -INFINITY;
    for (int64_t p = 0; p < context; p++) {
        const float *k = keys + attention_slot(table, p, bs) * row_size;
        float s = 0;
        for (int64_t i = 0; i < d; i++) s += q[i] * k[i];
        s *= scale;
        scores[p] = s;
        if (s > max_score) max_score = s;
    }
    float sum = 0;
    for (int64_t p = 0; p < context; p++) {
        scores[p] = expf(scores[p] - max_score);
        sum += scores[p];
    }
    const float inv = 1.0f / sum;
    memset(out, 0, (size_t)d * sizeof(float));
    for (int64_t p = 0; p < context; p++) {
        const float *v = values + attention_slot(table, p, bs) * row_size;
        const float w = scores[p] * inv;
        for (int64_t i = 0; i < d; i++) out[i] += w * v[i];
    }
}

#if defined(__AVX512F__)
/// Lane j of the result = the sum of the 16 lanes of part[j], added in the pairs of a halving tree (lane i with
/// i + 8, then i + 4, i + 2, i + 1), the order of the scalar reduction Pagoda's attention has always used, so that the
/// scores are the same floats bit for bit.
static inline __m512 attention_reduce16(const __m512 part[16]) {
    __m512 s1[8], s2[4], s3[2];
    for (int i = 0; i < 8; i++)  // [A lanes k + (k + 8) for k < 8 | B's]
        s1[i] = _mm512_add_ps(_mm512_shuffle_f32x4(part[2 * i], part[2 * i + 1], 0x44),
                              _mm512_shuffle_f32x4(part[2 * i], part[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; i++)  // 128-bit lane L: position 4i + L's lanes k + (k + 4) for k < 4
        s2[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s1[2 * i], s1[2 * i + 1], 0x88),
                              _mm512_shuffle_f32x4(s1[2 * i], s1[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; i++) {  // 128-bit lane L: [k + (k + 2) for k < 2] of position 8i + L, then of 8i + 4 + L
        const __m512d x = _mm512_castps_pd(s2[2 * i]), y = _mm512_castps_pd(s2[2 * i + 1]);
        s3[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    // 128-bit lane L: the sums of positions L, 4 + L, 8 + L, 12 + L; lane 4L + k holds position 4k + L.
    const __m512 t = _mm512_add_ps(_mm512_shuffle_ps(s3[0], s3[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_ps(s3[0], s3[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i back = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(back, t);
}

/// NV = d / 16 vectors per head. Positions go 16 at a time: their row addresses first (one walk of the block table),
/// then 16 dot products reduced into one vector of scores.
__attribute__((always_inline)) static inline void attend_row_avx512(const int NV, const float *q, float *out,
                                                                    int64_t context, const int32_t *table,
                                                                    const float *keys, const float *values,
                                                                    int64_t row_size, int64_t bs, float scale,
                                                                    float *scores) {
    __m512 qv[8];
    for (int i = 0; i < NV; i++) qv[i] = _mm512_loadu_ps(q + 16 * i);
    const __m512 vscale = _mm512_set1_ps(scale);
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int64_t p0 = 0; p0 < context; p0 += 16) {
        const int n = context - p0 < 16 ? (int)(context - p0) : 16;
        __m512 part[16];
        int64_t blk = p0 / bs, off = p0 % bs;
        for (int j = 0; j < 16; j++) {
            if (j < n) {
                const float *k = keys + ((int64_t)table[blk] * bs + off) * row_size;
                if (++off == bs) off = 0, blk++;
                __m512 a = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k));
                for (int i = 1; i < NV; i++) a = _mm512_fmadd_ps(qv[i], _mm512_loadu_ps(k + 16 * i), a);
                part[j] = a;
            } else {
                part[j] = _mm512_setzero_ps();
            }
        }
        const __mmask16 m = (__mmask16)(n == 16 ? 0xFFFF : (1u << n) - 1);
        const __m512 s = _mm512_mul_ps(attention_reduce16(part), vscale);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, s);
        _mm512_mask_storeu_ps(scores + p0, m, s);
    }
    // The softmax and the weighted sum in the scalar loop's order (libm's expf, one running sum, one FMA chain per
    // vector): the same floats as before the kernel was vectorized, which the oracle tests' agreement rates rest on.
    const float max_score = _mm512_reduce_max_ps(vmax);
    float sum = 0;
    for (int64_t p = 0; p < context; p++) {
        scores[p] = expf(scores[p] - max_score);
        sum += scores[p];
    }
    const float inv = 1.0f / sum;
    __m512 acc[8];
    for (int i = 0; i < NV; i++) acc[i] = _mm512_setzero_ps();
    int64_t blk = 0, off = 0;
    for (int64_t p = 0; p < context; p++) {
        const float *v = values + ((int64_t)table[blk] * bs + off) * row_size;
        if (++off == bs) off = 0, blk++;
        const __m512 w = _mm512_set1_ps(scores[p] * inv);
        for (int i = 0; i < NV; i++) acc[i] = _mm512_fmadd_ps(w, _mm512_loadu_ps(v + 16 * i), acc[i]);
    }
    for (int i = 0; i < NV; i++) _mm512_storeu_ps(out + 16 * i, acc[i]);
}
#endif

void pagoda_attend_row(const float *q, float *out, int64_t context, const int32_t *table, const float *keys,
                       const float *values, int64_t row_size, int64_t block_size, int64_t head_dim, float scale,
                       float *scores) {
#if defined(__AVX512F__)
    switch (head_dim) {
    case 16: attend_row_avx512(1, q, out, context, table, keys, values, row_size, block_size, scale, scores); return;
    case 32: attend_row_avx512(2, q, out, context, table, keys, values, row_size, block_size, scale, scores); return;
    case 64: attend_row_avx512(4, q, out, context, table, keys, values, row_size, block_size, scale, scores); return;
    case 128: attend_row_avx512(8, q, out, context, table, keys, values, row_size, block_size, scale, scores); return;
    default: break;
    }
#endif
    attend_row_scalar(q, out, context, table, keys, values, row_size, block_size, head_dim, scale, scores);
}
