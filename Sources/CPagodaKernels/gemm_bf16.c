// bf16 × bf16 → f32 GEMM rows with AVX512-BF16 (`vdpbf16ps`: 32 products per instruction, twice the f32 FMA rate
// on this CPU). Swift has no spelling for the instruction, hence C. Same tiling as Gemm.swift: 4 weight rows × 4
// activation rows of accumulators, weights stationary while the activation tiles of a 64-row block pass, the
// first tile of each weight block prefetching ahead; one activation row reads the matrix as one stream.
#include "CPagodaKernels.h"
#include <immintrin.h>

#define PAGODA_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))
#define PREFETCH_AHEAD 16384

int pagoda_cpu_has_avx512_bf16(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
#else
    return 0;
#endif
}

PAGODA_BF16_TARGET
void pagoda_convert_f32_to_bf16(const float *src, uint16_t *dst, int64_t count) {
    int64_t i = 0;
    for (; i + 32 <= count; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
        _mm512_storeu_si512((void *)(dst + i), (__m512i)v);
    }
    for (; i < count; i++) {
        // Round to nearest even, as vcvtne2ps2bf16 does (inputs here are finite activations).
        uint32_t u;
        __builtin_memcpy(&u, src + i, 4);
        u += 0x7FFF + ((u >> 16) & 1);
        dst[i] = (uint16_t)(u >> 16);
    }
}

/// Prefetches, into L2, the line PREFETCH_AHEAD bytes past byte `off` of four consecutive weight rows.
static inline void prefetch_rows(const uint16_t *w, int64_t ldw, int64_t off) {
    for (int i = 0; i < 4; i++) _mm_prefetch((const char *)(w + i * ldw) + off + PREFETCH_AHEAD, _MM_HINT_T1);
}

#define LOAD(p, off) ((__m512bh)_mm512_loadu_si512((const void *)((const char *)(p) + (off))))

PAGODA_BF16_TARGET
static inline void tile4x4(const uint16_t *x, int64_t k, const uint16_t *w, int64_t ldw, float *out, int64_t ldo,
                           int prefetch) {
    const uint16_t *w0 = w, *w1 = w + ldw, *w2 = w + 2 * ldw, *w3 = w + 3 * ldw;
    const uint16_t *x0 = x, *x1 = x + k, *x2 = x + 2 * k, *x3 = x + 3 * k;
    __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    __m512 a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
    const int64_t bytes = k * 2;
    for (int64_t off = 0; off < bytes; off += 64) {
        if (prefetch) prefetch_rows(w0, ldw, off);
        __m512bh e0 = LOAD(w0, off), e1 = LOAD(w1, off), e2 = LOAD(w2, off), e3 = LOAD(w3, off);
        __m512bh v = LOAD(x0, off);
        a00 = _mm512_dpbf16_ps(a00, v, e0); a01 = _mm512_dpbf16_ps(a01, v, e1);
        a02 = _mm512_dpbf16_ps(a02, v, e2); a03 = _mm512_dpbf16_ps(a03, v, e3);
        v = LOAD(x1, off);
        a10 = _mm512_dpbf16_ps(a10, v, e0); a11 = _mm512_dpbf16_ps(a11, v, e1);
        a12 = _mm512_dpbf16_ps(a12, v, e2); a13 = _mm512_dpbf16_ps(a13, v, e3);
        v = LOAD(x2, off);
        a20 = _mm512_dpbf16_ps(a20, v, e0); a21 = _mm512_dpbf16_ps(a21, v, e1);
        a22 = _mm512_dpbf16_ps(a22, v, e2); a23 = _mm512_dpbf16_ps(a23, v, e3);
        v = LOAD(x3, off);
        a30 = _mm512_dpbf16_ps(a30, v, e0); a31 = _mm512_dpbf16_ps(a31, v, e1);
        a32 = _mm512_dpbf16_ps(a32, v, e2); a33 = _mm512_dpbf16_ps(a33, v, e3);
    }
    out[0] = _mm512_reduce_add_ps(a00); out[1] = _mm512_reduce_add_ps(a01);
    out[2] = _mm512_reduce_add_ps(a02); out[3] = _mm512_reduce_add_ps(a03);
    out += ldo;
    out[0] = _mm512_reduce_add_ps(a10); out[1] = _mm512_reduce_add_ps(a11);
    out[2] = _mm512_reduce_add_ps(a12); out[3] = _mm512_reduce_add_ps(a13);
    out += ldo;
    out[0] = _mm512_reduce_add_ps(a20); out[1] = _mm512_reduce_add_ps(a21);
    out[2] = _mm512_reduce_add_ps(a22); out[3] = _mm512_reduce_add_ps(a23);
    out += ldo;
    out[0] = _mm512_reduce_add_ps(a30); out[1] = _mm512_reduce_add_ps(a31);
    out[2] = _mm512_reduce_add_ps(a32); out[3] = _mm512_reduce_add_ps(a33);
}

PAGODA_BF16_TARGET
static inline void tile1x4(const uint16_t *x, int64_t k, const uint16_t *w, int64_t ldw, float *out, int prefetch) {
    const uint16_t *w0 = w, *w1 = w + ldw, *w2 = w + 2 * ldw, *w3 = w + 3 * ldw;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const int64_t bytes = k * 2;
    for (int64_t off = 0; off < bytes; off += 64) {
        if (prefetch) prefetch_rows(w0, ldw, off);
        __m512bh v = LOAD(x, off);
        a0 = _mm512_dpbf16_ps(a0, v, LOAD(w0, off)); a1 = _mm512_dpbf16_ps(a1, v, LOAD(w1, off));
        a2 = _mm512_dpbf16_ps(a2, v, LOAD(w2, off)); a3 = _mm512_dpbf16_ps(a3, v, LOAD(w3, off));
    }
    out[0] = _mm512_reduce_add_ps(a0); out[1] = _mm512_reduce_add_ps(a1);
    out[2] = _mm512_reduce_add_ps(a2); out[3] = _mm512_reduce_add_ps(a3);
}

/// One row, read as a sequential stream (two accumulators, 128 bytes per iteration).
PAGODA_BF16_TARGET
static inline float dot_stream(const uint16_t *x, int64_t k, const uint16_t *w) {
    __m512 a = _mm512_setzero_ps(), b = a;
    const int64_t bytes = k * 2;
    int64_t off = 0;
    for (; off + 128 <= bytes; off += 128) {
        a = _mm512_dpbf16_ps(a, LOAD(x, off), LOAD(w, off));
        b = _mm512_dpbf16_ps(b, LOAD(x, off + 64), LOAD(w, off + 64));
    }
    if (off < bytes) a = _mm512_dpbf16_ps(a, LOAD(x, off), LOAD(w, off));
    return _mm512_reduce_add_ps(_mm512_add_ps(a, b));
}

PAGODA_BF16_TARGET
void pagoda_gemm_bf16_rows(const uint16_t *x, int64_t m, int64_t k, const uint16_t *w, int64_t ldw, int64_t n0,
                           int64_t n1, float *out, int64_t ldo) {
    if (m == 1) {
        for (int64_t n = n0; n < n1; n++) out[n] = dot_stream(x, k, w + n * ldw);
        return;
    }
    const int64_t m_block = 64;
    for (int64_t mb = 0; mb < m; mb += m_block) {
        const int64_t m_end = mb + m_block < m ? mb + m_block : m;
        int64_t n = n0;
        for (; n + 4 <= n1; n += 4) {
            int64_t r = mb;
            for (; r + 4 <= m_end; r += 4) tile4x4(x + r * k, k, w + n * ldw, ldw, out + r * ldo + n, ldo, r == mb);
            for (; r < m_end; r++) tile1x4(x + r * k, k, w + n * ldw, ldw, out + r * ldo + n, r == mb);
        }
        for (; n < n1; n++)
            for (int64_t r = mb; r < m_end; r++) out[r * ldo + n] = dot_stream(x + r * k, k, w + n * ldw);
    }
}
