// GEMM with block-quantized weights (ggml layouts Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K) and int8 activations.
//
// Every weight block is rewritten, as it is read, into one common form: 32 unsigned codes u (0..255) and, per
// group of four consecutive weights, a scale s and an offset b with w = s·u + b. Activations are quantized per
// 32-block (x̂ = d·q, q int8), so a group's contribution is
//     Σ_4 w·x̂ = s · d · Σ_4 u·q  +  b · (d · Σ_4 q),
// where Σ_4 u·q is one lane of `vpdpbusd` (unsigned × signed bytes, four products per 32-bit lane) and d·Σ_4 q
// was computed once per activation (xs). Per-group scales cover every format, including Q6_K's 16-weight
// sub-blocks and the K-quants' per-sub-block minimums.
//
// Loop order (batched decode reads each weight once from memory): for a tile of TR = 4 weight rows and a chunk of
// KC weights, unpack the tile once into `scratch` (L1-resident: u, s, b), then let every register tile of
// TC = 4 activation rows pass over it, 4 × 4 f32 accumulator vectors kept in registers across the chunk and
// parked in scratch between chunks. The unpacked tile is shared by the whole batch: unpacking is paid once per
// weight, the inner loop per (weight, batch row) is dpbusd, convert, multiply and two FMAs per 64 weights.
// The portable kernel (any CPU; compiled for the build's target) does the same arithmetic lane by lane.
#include "pagoda_quant.h"
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define TR 4
#define TC 4
#define KC 1024

#define PAGODA_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,fma,f16c")))

int pagoda_cpu_has_avx512_vnni(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

/// IEEE binary16 bits → float (subnormals, infinities and NaN included).
static inline float half_to_float(const uint8_t *p) {
    uint32_t h = (uint32_t)p[0] | ((uint32_t)p[1] << 8);
    uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu, bits;
    if (exp == 0) {
        float f = (float)man * 5.9604644775390625e-8f;  // man · 2^-24
        return sign ? -f : f;
    }
    bits = exp == 31 ? (sign | 0x7F800000u | (man << 13)) : (sign | ((exp + 112) << 23) | (man << 13));
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/// The 6-bit scale and minimum of sub-block j (0..7) from a Q4_K/Q5_K 12-byte `scales` field.
static inline void k_scale_min(int j, const uint8_t *q, int *sc, int *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static inline void fill8(float *p, float v) {
    for (int i = 0; i < 8; i++) p[i] = v;
}

/// Writes 32-weight block j of `row` (weights 32j ..< 32j+32) as codes u[32] and per-group s[8], b[8].
static void unpack32(int32_t type, const uint8_t *row, int64_t j, uint8_t *u, float *s, float *b) {
    switch (type) {
    case PAGODA_QTYPE_Q8_0: {
        const uint8_t *blk = row + j * 34;
        const float d = half_to_float(blk);
        for (int i = 0; i < 32; i++) u[i] = blk[2 + i] ^ 0x80;  // int8 q → q + 128
        fill8(s, d);
        fill8(b, -128.0f * d);
        return;
    }
    case PAGODA_QTYPE_Q4_0:
    case PAGODA_QTYPE_Q4_1: {
        const int q41 = type == PAGODA_QTYPE_Q4_1;
        const uint8_t *blk = row + j * (q41 ? 20 : 18);
        const uint8_t *qs = blk + (q41 ? 4 : 2);
        const float d = half_to_float(blk);
        for (int i = 0; i < 16; i++) {
            u[i] = qs[i] & 0xF;
            u[i + 16] = qs[i] >> 4;
        }
        fill8(s, d);
        fill8(b, q41 ? half_to_float(blk + 2) : -8.0f * d);
        return;
    }
    case PAGODA_QTYPE_Q4_K:
    case PAGODA_QTYPE_Q5_K: {
        const int q5 = type == PAGODA_QTYPE_Q5_K;
        const uint8_t *blk = row + (j / 8) * (q5 ? 176 : 144);
        const int sub = (int)(j % 8), shift = (sub & 1) * 4;
        const uint8_t *qs = blk + (q5 ? 48 : 16) + (sub / 2) * 32;
        int sc, mn;
        k_scale_min(sub, blk + 4, &sc, &mn);
        if (q5) {
            const uint8_t *qh = blk + 16;
            for (int i = 0; i < 32; i++) u[i] = (uint8_t)(((qs[i] >> shift) & 0xF) | (((qh[i] >> sub) & 1) << 4));
        } else {
            for (int i = 0; i < 32; i++) u[i] = (qs[i] >> shift) & 0xF;
        }
        fill8(s, half_to_float(blk) * (float)sc);
        fill8(b, -(half_to_float(blk + 2) * (float)mn));
        return;
    }
    case PAGODA_QTYPE_Q6_K: {
        const uint8_t *blk = row + (j / 8) * 210;
        const int t = (int)(j % 8), half = t / 4, g = t % 4;
        const uint8_t *ql = blk + half * 64 + (g & 1) * 32, *qh = blk + 128 + half * 32;
        const int8_t *sc = (const int8_t *)(blk + 192) + half * 8 + 2 * g;
        const int lshift = (g >> 1) * 4, hshift = 2 * g;
        const float d = half_to_float(blk + 208);
        for (int i = 0; i < 32; i++) u[i] = (uint8_t)(((ql[i] >> lshift) & 0xF) | (((qh[i] >> hshift) & 3) << 4));
        const float s0 = d * (float)sc[0], s1 = d * (float)sc[1];  // weights 0..15, 16..31
        for (int i = 0; i < 4; i++) {
            s[i] = s0;
            s[i + 4] = s1;
            b[i] = -32.0f * s0;
            b[i + 4] = -32.0f * s1;
        }
        return;
    }
    default:
        memset(u, 0, 32);
        fill8(s, 0);
        fill8(b, 0);
    }
}

void pagoda_quantize_activations_q8(const float *x, int64_t ldx, int64_t m, int64_t k, int64_t kp, int8_t *xq,
                                    float *xd, float *xs) {
    for (int64_t r = 0; r < m; r++) {
        const float *src = x + r * ldx;
        int8_t *q = xq + r * kp;
        float *d4 = xd + r * (kp / 4), *s4 = xs + r * (kp / 4);
        for (int64_t blk = 0; blk < kp / 32; blk++) {
            int8_t *qb = q + blk * 32;
            if (blk * 32 >= k) {
                memset(qb, 0, 32);
                fill8(d4 + blk * 8, 0);
                fill8(s4 + blk * 8, 0);
                continue;
            }
            const float *xb = src + blk * 32;
            float amax = 0;
            for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(xb[i]));
            const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            for (int i = 0; i < 32; i++) qb[i] = (int8_t)roundf(xb[i] * id);
            for (int g = 0; g < 8; g++) {
                const int sum = qb[4 * g] + qb[4 * g + 1] + qb[4 * g + 2] + qb[4 * g + 3];
                d4[blk * 8 + g] = d;
                s4[blk * 8 + g] = d * (float)sum;
            }
        }
    }
}

/// f16 scale fields of two blocks (at a and b) as the 16-lane vector [a × 8, b × 8].
PAGODA_VNNI_TARGET static inline __m512 lanes_of_pair(const uint8_t *a, const uint8_t *b) {
    uint16_t ha, hb;
    memcpy(&ha, a, 2);
    memcpy(&hb, b, 2);
    return _mm512_insertf32x8(_mm512_set1_ps(_cvtsh_ss(ha)), _mm256_set1_ps(_cvtsh_ss(hb)), 1);
}

/// unpack32 for blocks j ..< j + 2·pairs of a Q8_0 / Q4_0 / Q4_1 row, two blocks per 64-byte vector (the hot
/// formats; the K-quants take the scalar unpack32). Same output as unpack32.
PAGODA_VNNI_TARGET static void unpack_pairs_vnni(int32_t type, const uint8_t *row, int64_t j, int64_t pairs, uint8_t *u,
                                                 float *s, float *b) {
    const __m128i low4 = _mm_set1_epi8(0x0F);
    for (int64_t p = 0; p < pairs; p++, j += 2, u += 64, s += 16, b += 16) {
        __m256i lo, hi;
        __m512 sv, bv;
        if (type == PAGODA_QTYPE_Q8_0) {
            const uint8_t *b0 = row + j * 34, *b1 = b0 + 34;
            lo = _mm256_loadu_si256((const __m256i *)(b0 + 2));
            hi = _mm256_loadu_si256((const __m256i *)(b1 + 2));
            sv = lanes_of_pair(b0, b1);
            bv = _mm512_mul_ps(sv, _mm512_set1_ps(-128.0f));
            __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
            _mm512_store_si512((void *)u, _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80)));
        } else {
            const int q41 = type == PAGODA_QTYPE_Q4_1;
            const int64_t bytes = q41 ? 20 : 18, qoff = q41 ? 4 : 2;
            const uint8_t *b0 = row + j * bytes, *b1 = b0 + bytes;
            const __m128i q0 = _mm_loadu_si128((const __m128i *)(b0 + qoff));
            const __m128i q1 = _mm_loadu_si128((const __m128i *)(b1 + qoff));
            lo = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q0, 4), low4), _mm_and_si128(q0, low4));
            hi = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q1, 4), low4), _mm_and_si128(q1, low4));
            sv = lanes_of_pair(b0, b1);
            bv = q41 ? lanes_of_pair(b0 + 2, b1 + 2)
                     : _mm512_mul_ps(sv, _mm512_set1_ps(-8.0f));
            _mm512_store_si512((void *)u, _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
        }
        _mm512_store_ps(s, sv);
        _mm512_store_ps(b, bv);
    }
}

/// The unpacked weight tile of one chunk: TR rows × KC codes, TR × KC/4 group scales and offsets.
typedef struct {
    uint8_t *u;
    float *s, *b;
} tile_t;

/// Per-call arguments of the apply step for activation rows c0 ..< c0 + nc over chunk [k0, k0 + kc).
typedef struct {
    const int8_t *xq;
    const float *xd, *xs;
    int64_t kp, k0, kc, c0;
    float *acc;  // parked accumulators: [m][TR][16] floats
    int first, last, rows;
    float *out;
    int64_t ldo, n;
} apply_args_t;

PAGODA_VNNI_TARGET __attribute__((always_inline)) static inline void apply_vnni_n(const int NC, const tile_t *t,
                                                                                  const apply_args_t *a) {
    __m512 acc[TR][TC];
    for (int c = 0; c < NC; c++)
        for (int r = 0; r < TR; r++)
            acc[r][c] = a->first ? _mm512_setzero_ps() : _mm512_load_ps(a->acc + ((a->c0 + c) * TR + r) * 16);
    const int8_t *xq[TC];
    const float *xd[TC], *xs[TC];
    for (int c = 0; c < NC; c++) {
        xq[c] = a->xq + (a->c0 + c) * a->kp + a->k0;
        xd[c] = a->xd + (a->c0 + c) * (a->kp / 4) + a->k0 / 4;
        xs[c] = a->xs + (a->c0 + c) * (a->kp / 4) + a->k0 / 4;
    }
    for (int64_t k = 0; k < a->kc; k += 64) {
        __m512i u[TR];
        __m512 s[TR], b[TR];
        for (int r = 0; r < TR; r++) {
            u[r] = _mm512_load_si512((const void *)(t->u + r * KC + k));
            s[r] = _mm512_load_ps(t->s + r * (KC / 4) + k / 4);
            b[r] = _mm512_load_ps(t->b + r * (KC / 4) + k / 4);
        }
        for (int c = 0; c < NC; c++) {
            const __m512i q = _mm512_loadu_si512((const void *)(xq[c] + k));
            const __m512 d = _mm512_loadu_ps(xd[c] + k / 4), qs = _mm512_loadu_ps(xs[c] + k / 4);
            for (int r = 0; r < TR; r++) {
                const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[r], q);
                const __m512 scaled = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), d);
                acc[r][c] = _mm512_fmadd_ps(scaled, s[r], acc[r][c]);
                acc[r][c] = _mm512_fmadd_ps(b[r], qs, acc[r][c]);
            }
        }
    }
    for (int c = 0; c < NC; c++) {
        if (a->last) {
            float *o = a->out + (a->c0 + c) * a->ldo + a->n;
            for (int r = 0; r < TR; r++)
                if (r < a->rows) o[r] = _mm512_reduce_add_ps(acc[r][c]);
        } else {
            for (int r = 0; r < TR; r++) _mm512_store_ps(a->acc + ((a->c0 + c) * TR + r) * 16, acc[r][c]);
        }
    }
}

PAGODA_VNNI_TARGET static void apply_vnni(int nc, const tile_t *t, const apply_args_t *a) {
    switch (nc) {
    case 4: apply_vnni_n(4, t, a); break;
    case 3: apply_vnni_n(3, t, a); break;
    case 2: apply_vnni_n(2, t, a); break;
    default: apply_vnni_n(1, t, a); break;
    }
}

/// The same arithmetic as apply_vnni, one 32-bit lane (group of four weights) at a time, accumulators in scratch.
static void apply_portable(int nc, const tile_t *t, const apply_args_t *a) {
    for (int c = 0; c < nc; c++) {
        const int8_t *xq = a->xq + (a->c0 + c) * a->kp + a->k0;
        const float *xd = a->xd + (a->c0 + c) * (a->kp / 4) + a->k0 / 4;
        const float *xs = a->xs + (a->c0 + c) * (a->kp / 4) + a->k0 / 4;
        for (int r = 0; r < TR; r++) {
            float *acc = a->acc + ((a->c0 + c) * TR + r) * 16;
            if (a->first) memset(acc, 0, 16 * sizeof(float));
            const uint8_t *u = t->u + r * KC;
            const float *s = t->s + r * (KC / 4), *b = t->b + r * (KC / 4);
            for (int64_t g = 0; g < a->kc / 4; g++) {
                const int32_t dot = u[4 * g] * xq[4 * g] + u[4 * g + 1] * xq[4 * g + 1] + u[4 * g + 2] * xq[4 * g + 2] +
                                    u[4 * g + 3] * xq[4 * g + 3];
                const float scaled = (float)dot * xd[g];
                float v = fmaf(scaled, s[g], acc[g % 16]);
                acc[g % 16] = fmaf(b[g], xs[g], v);
            }
            if (a->last && r < a->rows) {
                float sum = 0;
                for (int l = 0; l < 16; l++) sum += acc[l];
                a->out[(a->c0 + c) * a->ldo + a->n + r] = sum;
            }
        }
    }
}

int64_t pagoda_qgemm_scratch_bytes(int64_t m) {
    return (int64_t)TR * KC + 2 * (int64_t)TR * (KC / 4) * 4 + m * TR * 16 * 4;
}

void pagoda_qgemm_rows(int32_t type, const void *w, int64_t row_bytes, int64_t k, const int8_t *xq, const float *xd,
                       const float *xs, int64_t m, int64_t kp, int64_t n0, int64_t n1, float *out, int64_t ldo,
                       void *scratch, int32_t use_vnni) {
    tile_t t;
    t.u = (uint8_t *)scratch;
    t.s = (float *)(t.u + TR * KC);
    t.b = t.s + TR * (KC / 4);
    float *acc = t.b + TR * (KC / 4);
    const uint8_t *wb = (const uint8_t *)w;
    for (int64_t n = n0; n < n1; n += TR) {
        const int rows = n1 - n < TR ? (int)(n1 - n) : TR;
        for (int64_t k0 = 0; k0 < kp; k0 += KC) {
            const int64_t kc = kp - k0 < KC ? kp - k0 : KC;
            // Unpack the tile's chunk once; rows past n1 and blocks past k contribute zero.
            const int paired = use_vnni && type <= PAGODA_QTYPE_Q4_1;
            for (int r = 0; r < TR; r++) {
                int64_t j = 0;
                if (paired && r < rows) {
                    // Whole pairs of real blocks; a trailing single block and the padding go through unpack32.
                    int64_t real = (k - k0) / 32;
                    if (real > kc / 32) real = kc / 32;
                    const int64_t pairs = real / 2;
                    unpack_pairs_vnni(type, wb + (n + r) * row_bytes, k0 / 32, pairs, t.u + r * KC,
                                      t.s + r * (KC / 4), t.b + r * (KC / 4));
                    j = 2 * pairs;
                }
                for (; j < kc / 32; j++) {
                    const int64_t jj = k0 / 32 + j;
                    uint8_t *u = t.u + r * KC + j * 32;
                    float *s = t.s + r * (KC / 4) + j * 8, *b = t.b + r * (KC / 4) + j * 8;
                    if (r < rows && jj * 32 < k) {
                        unpack32(type, wb + (n + r) * row_bytes, jj, u, s, b);
                    } else {
                        memset(u, 0, 32);
                        fill8(s, 0);
                        fill8(b, 0);
                    }
                }
            }
            apply_args_t a = {xq, xd, xs, kp, k0, kc, 0, acc, k0 == 0, k0 + kc >= kp, rows, out, ldo, n};
            for (int64_t c = 0; c < m; c += TC) {
                a.c0 = c;
                const int nc = m - c < TC ? (int)(m - c) : TC;
                if (use_vnni) {
                    apply_vnni(nc, &t, &a);
                } else {
                    apply_portable(nc, &t, &a);
                }
            }
        }
    }
}
