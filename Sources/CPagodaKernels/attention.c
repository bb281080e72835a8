// Attention of the query heads that share one KV head over a block-paged float32 KV cache (PagedAttention): scores
// q·k·scale for every cached position, an exact-maximum softmax, then the weighted sum of the value rows. AVX-512 when
// the build targets it and the head size is 16, 32, 64 or 128 floats (16 scores per pass, reduced together; up to four
// heads per walk of the rows); the scalar loops otherwise.
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

/// NH ≤ 4 query heads of one KV head (NV = d / 16 vectors per head, NV · NH ≤ 16): each 16 positions' key rows are
/// found once (one walk of the block table) and each position's value row is loaded once for all NH heads, whose
/// NH · NV accumulators keep the FMA units busy where one head's NV chains waited on each other. Every head's
/// arithmetic is the single-head order: scores by the halving-tree reduction, libm's expf in position order, one FMA
/// chain per vector.
__attribute__((always_inline)) static inline void attend_heads_avx512(const int NV, const int NH, const float *q,
                                                                     float *out, int64_t context, const int32_t *table,
                                                                     const float *keys, const float *values,
                                                                     int64_t row_size, int64_t bs, float scale,
                                                                     float *scores) {
    const __m512 vscale = _mm512_set1_ps(scale);
    __m512 vmax[4];
    for (int h = 0; h < NH; h++) vmax[h] = _mm512_set1_ps(-INFINITY);
    for (int64_t p0 = 0; p0 < context; p0 += 16) {
        const int n = context - p0 < 16 ? (int)(context - p0) : 16;
        const float *krow[16];
        int64_t blk = p0 / bs, off = p0 % bs;
        for (int j = 0; j < n; j++) {
            krow[j] = keys + ((int64_t)table[blk] * bs + off) * row_size;
            if (++off == bs) off = 0, blk++;
        }
        for (int j = n; j < 16; j++) krow[j] = krow[0];  // past the context: computed, never stored
        const __mmask16 m = (__mmask16)(n == 16 ? 0xFFFF : (1u << n) - 1);
        for (int h = 0; h < NH; h++) {
            const float *qh = q + 16 * NV * h;
            __m512 part[16];
            for (int j = 0; j < 16; j++) {
                __m512 a = _mm512_mul_ps(_mm512_loadu_ps(qh), _mm512_loadu_ps(krow[j]));
                for (int i = 1; i < NV; i++) a = _mm512_fmadd_ps(_mm512_loadu_ps(qh + 16 * i), _mm512_loadu_ps(krow[j] + 16 * i), a);
                part[j] = a;
            }
            const __m512 sc = _mm512_mul_ps(attention_reduce16(part), vscale);
            vmax[h] = _mm512_mask_max_ps(vmax[h], m, vmax[h], sc);
            _mm512_mask_storeu_ps(scores + h * context + p0, m, sc);
        }
    }
    float inv[4];
    for (int h = 0; h < NH; h++) {
        float *sh = scores + h * context;
        const float max_score = _mm512_reduce_max_ps(vmax[h]);
        float sum = 0;
        for (int64_t p = 0; p < context; p++) {
            sh[p] = expf(sh[p] - max_score);
            sum += sh[p];
        }
        inv[h] = 1.0f / sum;
    }
    __m512 acc[4][8];
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < NV; i++) acc[h][i] = _mm512_setzero_ps();
    int64_t blk = 0, off = 0;
    for (int64_t p = 0; p < context; p++) {
        const float *v = values + ((int64_t)table[blk] * bs + off) * row_size;
        if (++off == bs) off = 0, blk++;
        __m512 vv[8];
        for (int i = 0; i < NV; i++) vv[i] = _mm512_loadu_ps(v + 16 * i);
        for (int h = 0; h < NH; h++) {
            const __m512 w = _mm512_set1_ps(scores[h * context + p] * inv[h]);
            for (int i = 0; i < NV; i++) acc[h][i] = _mm512_fmadd_ps(w, vv[i], acc[h][i]);
        }
    }
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < NV; i++) _mm512_storeu_ps(out + 16 * NV * h + 16 * i, acc[h][i]);
}
#endif

#define ATTEND_HEADS(NV, NH) attend_heads_avx512(NV, NH, q, out, context, table, keys, values, row_size, block_size, scale, scores)
#define ATTEND_HEAD_COUNTS(NV)    \
    switch (nh) {                 \
    case 1: ATTEND_HEADS(NV, 1); break; \
    case 2: ATTEND_HEADS(NV, 2); break; \
    case 3: ATTEND_HEADS(NV, 3); break; \
    default: ATTEND_HEADS(NV, 4); break; \
    }

void pagoda_attend_heads(const float *q, float *out, int64_t heads, int64_t context, const int32_t *table,
                         const float *keys, const float *values, int64_t row_size, int64_t block_size, int64_t head_dim,
                         float scale, float *scores) {
#if defined(__AVX512F__)
    if (head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128) {
        const int64_t most = head_dim == 128 ? 2 : 4;  // NV · NH ≤ 16 accumulators
        for (int64_t h0 = 0; h0 < heads; h0 += most, q += most * head_dim, out += most * head_dim) {
            const int nh = (int)(heads - h0 < most ? heads - h0 : most);
            switch (head_dim) {
            case 16: ATTEND_HEAD_COUNTS(1) break;
            case 32: ATTEND_HEAD_COUNTS(2) break;
            case 64: ATTEND_HEAD_COUNTS(4) break;
            default:
                if (nh == 1) ATTEND_HEADS(8, 1);
                else ATTEND_HEADS(8, 2);
                break;
            }
        }
        return;
    }
#endif
    for (int64_t h = 0; h < heads; h++)
        attend_row_scalar(q + h * head_dim, out + h * head_dim, context, table, keys, values, row_size, block_size,
                          head_dim, scale, scores);
}
