// e^x over float arrays, 16 lanes at a time where the CPU has AVX-512 (SiLU of the MLP, the softmax of attention):
// the libm expf call per element cost more than the matrix work around it at batch 64. Cephes' expf reduction and
// polynomial (relative error about 2e-7, ~2 ulp, against expf's < 1 ulp); scalar expf on other CPUs and for tails.
#include "CPagodaKernels.h"
#include <immintrin.h>
#include <math.h>

#define PAGODA_AVX512_TARGET __attribute__((target("avx512f,avx512dq,fma")))

static int has_avx512 = -1;

static inline int use_avx512(void) {
    if (has_avx512 < 0) {
#if defined(__x86_64__)
        __builtin_cpu_init();
        has_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
#else
        has_avx512 = 0;
#endif
    }
    return has_avx512;
}

/// e^x for 16 lanes: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 in two parts), e^r by Cephes' degree-6 polynomial, times 2^n
/// by vscalefps. Inputs are clamped to [-88, 88.7]: e^-88 ≈ 6e-39, e^88.7 is near FLT_MAX.
PAGODA_AVX512_TARGET static inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.7f)), _mm512_set1_ps(-88.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

PAGODA_AVX512_TARGET static int64_t silu_mul_avx512(const float *gate, const float *up, float *out, int64_t n) {
    int64_t i = 0;
    const __m512 one = _mm512_set1_ps(1.0f);
    for (; i + 16 <= n; i += 16) {
        const __m512 g = _mm512_loadu_ps(gate + i);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_loadu_ps(up + i)));
    }
    return i;
}

void pagoda_silu_mul(const float *gate, const float *up, float *out, int64_t n) {
    int64_t i = use_avx512() ? silu_mul_avx512(gate, up, out, n) : 0;
    for (; i < n; i++) {
        const float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

PAGODA_AVX512_TARGET static int64_t exp_shifted_avx512(float *x, int64_t n, float shift, float *sum) {
    int64_t i = 0;
    __m512 acc = _mm512_setzero_ps();
    const __m512 s = _mm512_set1_ps(shift);
    for (; i + 16 <= n; i += 16) {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), s));
        _mm512_storeu_ps(x + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    *sum = _mm512_reduce_add_ps(acc);
    return i;
}

float pagoda_exp_shifted(float *x, int64_t n, float shift) {
    float sum = 0;
    int64_t i = use_avx512() ? exp_shifted_avx512(x, n, shift, &sum) : 0;
    for (; i < n; i++) {
        x[i] = expf(x[i] - shift);
        sum += x[i];
    }
    return sum;
}
