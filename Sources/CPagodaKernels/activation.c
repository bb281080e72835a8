// Activation functions over float vectors: SwiGLU's silu(gate) · up with a vectorized exp (AVX-512 when the build
// targets it; the scalar libm loop otherwise).
#include "CPagodaKernels.h"
#include <math.h>
#if defined(__AVX512F__)
#include <immintrin.h>

/// e^x for 8 double lanes: x = n·ln2 + r with |r| ≤ ln2/2, e^r by its degree-11 Taylor polynomial (truncation below
/// 7e-15 relative), scaled by 2^n (vscalefpd, 0 and infinity past the ends). Rounded to float afterwards this is the
/// correctly rounded e^x nearly always, as glibc's expf is (which also evaluates in double): a float polynomial that
/// was off by an ulp here and there moved SmolLM2's teacher-forced agreement with llama.cpp from 503 to 499 of 512
/// steps, because every layer re-quantizes its input and a flipped code carries on.
static inline __m512d exp8d(__m512d x) {
    x = _mm512_max_pd(_mm512_min_pd(x, _mm512_set1_pd(200.0)), _mm512_set1_pd(-200.0));
    const __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(0.6931471805599453), x);
    r = _mm512_fnmadd_pd(n, _mm512_set1_pd(2.3190468138462996e-17), r);
    static const double inverseFactorials[12] = {1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880, 1.0 / 40320, 1.0 / 5040,
                                                 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0};
    __m512d p = _mm512_set1_pd(inverseFactorials[0]);
    for (int i = 1; i < 12; i++) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(inverseFactorials[i]));
    return _mm512_scalef_pd(p, n);
}

/// e^x for 16 float lanes through exp8d, rounded once to float.
static inline __m512 exp16(__m512 x) {
    const __m512d lo = exp8d(_mm512_cvtps_pd(_mm512_castps512_ps256(x)));
    const __m512d hi = exp8d(_mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1)));
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)), _mm512_cvtpd_ps(hi), 1);
}

void pagoda_silu_mul(const float *gate, const float *up, float *out, int64_t count) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < count; i += 16) {
        const __mmask16 m = count - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - i)) - 1);
        const __m512 g = _mm512_maskz_loadu_ps(m, gate + i), u = _mm512_maskz_loadu_ps(m, up + i);
        // The float operations of the scalar loop below, in its order: g / (1 + e^−g) · u.
        const __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(silu, u));
    }
}
#else
void pagoda_silu_mul(const float *gate, const float *up, float *out, int64_t count) {
    for (int64_t i = 0; i < count; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}
#endif
