// GEMM with block-quantized weights (ggml layouts Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K) and int8 activations.
//
// Every weight block is rewritten, as it is read, into one common form: 32 unsigned codes u (0..255) and, per
// 16-weight half block h, a scale s and an offset b with w = s·u + b. Activations are quantized per 32-block
// (x̂ = d·q, q int8), so a scale group's contribution is
//     Σ w·x̂ = s · d · Σ u·q  +  b · (d · Σ q),
// where Σ u·q is accumulated exactly in int32 by `vpdpbusd` (unsigned × signed bytes, four products per lane) and
// d·Σ q was computed once per activation block (xs16 / xs32). Per-half scales cover Q6_K's 16-weight sub-blocks;
// the other formats have one scale per 32 and use 32-weight groups (half the float work).
//
// Layout and loop order (batched decode reads each weight once from memory): the weights of a tile of TR = 16
// rows and a chunk of KC weights are unpacked once into `scratch`, transposed so that one 64-byte vector holds
// four consecutive codes of each of the 16 rows (lane r = row r). One vpdpbusd of that vector with four
// activation bytes broadcast to all lanes advances 16 rows by 4 weights; NC ≤ 8 activation rows share each
// loaded weight vector. Per scale group and activation row only four float operations remain (convert, scale
// product, two FMAs), and the 16 results of a tile leave as one vector store: no horizontal sums.
// At m ≤ 2 (batch-1 decode) rows are streamed instead: Q4_0/Q4_1 against a per-call plan (gemv_row_lanes), Q8_0
// (gemv_row_q8) and Q6_K (gemv_row_q6k_vnni): no unpack, no transpose.
// The portable kernel (any CPU; compiled for the build's target) does the same arithmetic one lane at a time.
#include "pagoda_quant.h"
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define TR 16
#define TC 8
#define KC 512
#define GEMV_MAX_M 2  // activation rows up to which the batch-1 kernels stream weight rows (no tile unpack)

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

/// f16 scale fields of two blocks at a and b.
PAGODA_VNNI_TARGET static inline void scales_of_pair(const uint8_t *a, const uint8_t *b, float *fa, float *fb) {
    uint16_t ha, hb;
    memcpy(&ha, a, 2);
    memcpy(&hb, b, 2);
    *fa = _cvtsh_ss(ha);
    *fb = _cvtsh_ss(hb);
}

/// The unpacked weight tile of one chunk. `u`: KC/4 vectors of 64 bytes, vector g holding codes 4g ..< 4g+4 of
/// rows 0..15 (row r at bytes 4r ..< 4r+4). `s`, `b`: KC/16 vectors of 16 floats, vector h the scale / offset of
/// half block h of each row. `rowu`: the same codes row-major [TR][KC] before the transpose.
typedef struct {
    uint8_t *u, *rowu;
    float *s, *b;
} tile_t;

/// Records the per-half scale and offset of 32-block jl (chunk-local) of tile row r from unpack32's groups.
static inline void put_scales(tile_t *t, int r, int64_t jl, const float *s8, const float *b8) {
    t->s[(2 * jl) * TR + r] = s8[0];
    t->s[(2 * jl + 1) * TR + r] = s8[4];
    t->b[(2 * jl) * TR + r] = b8[0];
    t->b[(2 * jl + 1) * TR + r] = b8[4];
}

/// The codes of blocks j0 ..< j0 + 2·pairs of a Q8_0 / Q4_0 / Q4_1 row, two blocks per 64-byte vector, into row r of
/// the tile (row-major at t->rowu + r·KC + 32·jl). Their scales come from pair_scales_vnni; the K-quants take
/// unpack_kquants_vnni.
PAGODA_VNNI_TARGET static void unpack_pairs_vnni(int32_t type, const uint8_t *row, int64_t j0, int64_t pairs, tile_t *t,
                                                 int r) {
    const __m128i low4 = _mm_set1_epi8(0x0F);
    for (int64_t p = 0; p < pairs; p++) {
        const int64_t j = j0 + 2 * p, jl = 2 * p;
        __m512i v;
        if (type == PAGODA_QTYPE_Q8_0) {
            const uint8_t *b0 = row + j * 34, *b1 = b0 + 34;
            const __m256i lo = _mm256_loadu_si256((const __m256i *)(b0 + 2));
            const __m256i hi = _mm256_loadu_si256((const __m256i *)(b1 + 2));
            v = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), _mm512_set1_epi8((char)0x80));
        } else {
            const int q41 = type == PAGODA_QTYPE_Q4_1;
            const int64_t bytes = q41 ? 20 : 18, qoff = q41 ? 4 : 2;
            const uint8_t *b0 = row + j * bytes, *b1 = b0 + bytes;
            const __m128i q0 = _mm_loadu_si128((const __m128i *)(b0 + qoff));
            const __m128i q1 = _mm_loadu_si128((const __m128i *)(b1 + qoff));
            const __m256i lo = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q0, 4), low4), _mm_and_si128(q0, low4));
            const __m256i hi = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q1, 4), low4), _mm_and_si128(q1, low4));
            v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        }
        _mm512_store_si512((void *)(t->rowu + r * KC + 32 * jl), v);
    }
}

/// The scales s and offsets b (w = s·u + b) of `count` ≤ 16 consecutive Q8_0 / Q4_0 / Q4_1 blocks from j0 of a row, as
/// 16-lane vectors (lanes past count zero): one masked gather reads each block's first four bytes (the f16 scale,
/// and Q4_1's f16 minimum after it).
PAGODA_VNNI_TARGET static void pair_scales_vnni(int32_t type, const uint8_t *row, int64_t j0, int count, __m512 *s,
                                                __m512 *b) {
    const int64_t bytes = type == PAGODA_QTYPE_Q8_0 ? 34 : (type == PAGODA_QTYPE_Q4_1 ? 20 : 18);
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)bytes));
    const __mmask16 mask = (__mmask16)((1u << count) - 1);
    const __m512i g = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask, idx, row + j0 * bytes, 1);
    *s = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
    if (type == PAGODA_QTYPE_Q4_1) {
        *b = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(g, 16)));
    } else {
        *b = _mm512_mul_ps(*s, _mm512_set1_ps(type == PAGODA_QTYPE_Q8_0 ? -128.0f : -8.0f));
    }
}

/// unpack32 for super-blocks sb0 ..< sb0 + count of a Q4_K / Q5_K / Q6_K row (256 weights each), 32 codes per vector
/// operation, into row r of the tile from chunk-local block jl0 on; scales and minimums stay scalar (8 or 16 per
/// super-block).
PAGODA_VNNI_TARGET static void unpack_kquants_vnni(int32_t type, const uint8_t *row, int64_t sb0, int64_t count,
                                                   tile_t *t, int r, int64_t jl0) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1), three = _mm256_set1_epi8(3);
    for (int64_t i = 0; i < count; i++) {
        const int64_t jl = jl0 + 8 * i;
        uint8_t *dst = t->rowu + r * KC + 32 * jl;
        float s8[8] = {0}, b8[8] = {0};
        if (type == PAGODA_QTYPE_Q6_K) {
            const uint8_t *blk = row + (sb0 + i) * 210;
            uint16_t hd;
            memcpy(&hd, blk + 208, 2);
            const float d = _cvtsh_ss(hd);
            const int8_t *sc = (const int8_t *)(blk + 192);
            for (int h = 0; h < 2; h++) {
                const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h));
                const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h + 32));
                const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h));
                for (int g = 0; g < 4; g++) {
                    const __m256i ql = (g & 1) ? ql1 : ql0;
                    const __m256i lo = _mm256_and_si256(g >> 1 ? _mm256_srli_epi16(ql, 4) : ql, low4);
                    const __m256i hi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), three), 4);
                    _mm256_store_si256((__m256i *)(dst + 32 * (4 * h + g)), _mm256_or_si256(lo, hi));
                    const float s0 = d * (float)sc[8 * h + 2 * g], s1 = d * (float)sc[8 * h + 2 * g + 1];
                    s8[0] = s0;
                    s8[4] = s1;
                    b8[0] = -32.0f * s0;
                    b8[4] = -32.0f * s1;
                    put_scales(t, r, jl + 4 * h + g, s8, b8);
                }
            }
            continue;
        }
        const int q5 = type == PAGODA_QTYPE_Q5_K;
        const uint8_t *blk = row + (sb0 + i) * (q5 ? 176 : 144);
        float d, dmin;
        scales_of_pair(blk, blk + 2, &d, &dmin);
        const uint8_t *qs = blk + (q5 ? 48 : 16);
        const __m256i qh = q5 ? _mm256_loadu_si256((const __m256i *)(blk + 16)) : _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
            __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
            if (q5) {
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
            }
            _mm256_store_si256((__m256i *)(dst + 32 * (2 * c)), lo);
            _mm256_store_si256((__m256i *)(dst + 32 * (2 * c + 1)), hi);
        }
        for (int j = 0; j < 8; j++) {
            int sc, mn;
            k_scale_min(j, blk + 4, &sc, &mn);
            s8[0] = s8[4] = d * (float)sc;
            b8[0] = b8[4] = -(dmin * (float)mn);
            put_scales(t, r, jl + j, s8, b8);
        }
    }
}

/// out[g] lane r = a[r] lane g: a 16 × 16 transpose of 32-bit words in registers (interleaves of words, then of word
/// pairs, then two rounds of 128-bit lane shuffles: four operations per output vector).
PAGODA_VNNI_TARGET static inline void transpose16x16_epi32(const __m512i a[16], __m512i out[16]) {
    __m512i b[16], c[16];
    for (int i = 0; i < 8; i++) {
        b[2 * i] = _mm512_unpacklo_epi32(a[2 * i], a[2 * i + 1]);
        b[2 * i + 1] = _mm512_unpackhi_epi32(a[2 * i], a[2 * i + 1]);
    }
    // c[4i + j], 128-bit lane L: word 4L + j of rows 4i ..< 4i + 4.
    for (int i = 0; i < 4; i++) {
        c[4 * i] = _mm512_unpacklo_epi64(b[4 * i], b[4 * i + 2]);
        c[4 * i + 1] = _mm512_unpackhi_epi64(b[4 * i], b[4 * i + 2]);
        c[4 * i + 2] = _mm512_unpacklo_epi64(b[4 * i + 1], b[4 * i + 3]);
        c[4 * i + 3] = _mm512_unpackhi_epi64(b[4 * i + 1], b[4 * i + 3]);
    }
    for (int j = 0; j < 4; j++) {
        const __m512i lo0 = _mm512_shuffle_i32x4(c[j], c[4 + j], 0x44), lo1 = _mm512_shuffle_i32x4(c[8 + j], c[12 + j], 0x44);
        const __m512i hi0 = _mm512_shuffle_i32x4(c[j], c[4 + j], 0xEE), hi1 = _mm512_shuffle_i32x4(c[8 + j], c[12 + j], 0xEE);
        out[j] = _mm512_shuffle_i32x4(lo0, lo1, 0x88);
        out[4 + j] = _mm512_shuffle_i32x4(lo0, lo1, 0xDD);
        out[8 + j] = _mm512_shuffle_i32x4(hi0, hi1, 0x88);
        out[12 + j] = _mm512_shuffle_i32x4(hi0, hi1, 0xDD);
    }
}

/// Moves the row-major codes of `groups` 4-byte groups (a multiple of 16) into the lane-per-row layout: a 16 × groups
/// transpose of 32-bit words, 16 × 16 at a time (where gathers cost a load per word).
PAGODA_VNNI_TARGET static void transpose_vnni(tile_t *t, int64_t groups) {
    for (int64_t g0 = 0; g0 < groups; g0 += 16) {
        __m512i a[16], out[16];
        for (int r = 0; r < 16; r++) a[r] = _mm512_load_si512((const void *)(t->rowu + r * KC + 4 * g0));
        transpose16x16_epi32(a, out);
        for (int g = 0; g < 16; g++) _mm512_store_si512((void *)(t->u + (g0 + g) * 64), out[g]);
    }
}

static void transpose_portable(tile_t *t, int64_t groups) {
    for (int64_t g = 0; g < groups; g++)
        for (int r = 0; r < TR; r++) memcpy(t->u + g * 64 + 4 * r, t->rowu + r * KC + 4 * g, 4);
}

/// float → IEEE binary16 → float, rounding to nearest even (what F16C's vcvtps2ph does, subnormals included): the
/// value a ggml f16 scale field holds.
static inline float round_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint32_t sign = x & 0x80000000u, ax = x & 0x7FFFFFFFu;
    uint32_t h;
    if (ax >= 0x7F800000u) {
        h = ax > 0x7F800000u ? 0x7E00u : 0x7C00u;
    } else if (ax >= 0x477FF000u) {  // rounds to ≥ 65520: infinity
        h = 0x7C00u;
    } else if (ax >= 0x38800000u) {  // normal half
        const uint32_t mant = ax & 0x7FFFFFu, exp = (ax >> 23) - 112;
        h = (exp << 10) | (mant >> 13);
        const uint32_t rest = mant & 0x1FFFu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) h++;  // carries into the exponent correctly
    } else {  // subnormal half (or zero): value · 2^24 rounded to an integer, nearest even
        float scaled;
        memcpy(&scaled, &ax, 4);
        h = (uint32_t)nearbyintf(scaled * 16777216.0f);
    }
    uint8_t b[2] = {(uint8_t)(h & 0xFF), (uint8_t)(h >> 8)};
    const float r = half_to_float(b);
    return sign ? -r : r;
}

/// One 32-element block quantized as the scalar loop below does it, 16 lanes at a time: the same amax, reciprocal
/// 127 / amax and round-to-nearest-even, so the codes and scales are identical.
PAGODA_VNNI_TARGET static void quantize_block_avx512(const float *xb, int8_t *qb, float *d, float *s16a, float *s16b,
                                                     float *s32, float *s1, int *half0, int *half1) {
    const __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    const float scale = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    __m512i q[2];
    for (int h = 0; h < 2; h++) {
        const __m512 v = _mm512_mul_ps(h ? x1 : x0, vid);
        q[h] = _mm512_cvtps_epi32(_mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        _mm_storeu_si128((__m128i *)(qb + 16 * h), _mm512_cvtepi32_epi8(q[h]));
    }
    const int sum0 = _mm512_reduce_add_epi32(q[0]), sum1 = _mm512_reduce_add_epi32(q[1]);
    *half0 = sum0;
    *half1 = sum1;
    const float dh = _cvtsh_ss(_cvtss_sh(scale, _MM_FROUND_TO_NEAREST_INT));
    *d = dh;
    *s16a = dh * (float)sum0;
    *s16b = dh * (float)sum1;
    *s32 = dh * (float)(sum0 + sum1);
    *s1 = _cvtsh_ss(_cvtss_sh(scale * (float)(sum0 + sum1), _MM_FROUND_TO_NEAREST_INT));
}

static int quantize_has_avx512 = -1;

void pagoda_quantize_activations_q8(const float *x, int64_t ldx, int64_t m, int64_t r0, int64_t r1, int64_t k, int64_t kp,
                                    int8_t *xq, float *xd, float *xs16, float *xs32, float *xs1, int32_t *xneg) {
    if (quantize_has_avx512 < 0) quantize_has_avx512 = pagoda_cpu_has_avx512_vnni();
    for (int64_t r = r0; r < r1; r++) {
        const float *src = x + r * ldx;
        int8_t *q = xq + r * kp;
        float *d = xd + r * (kp / 32), *s16 = xs16 + r * (kp / 16), *s32 = xs32 + r * (kp / 32), *s1 = xs1 + r * (kp / 32);
        int32_t *n8 = xneg + r * (kp / 32), *n128 = xneg + (m + r) * (kp / 32);
        int32_t *n32 = xneg + 2 * m * (kp / 32) + r * (kp / 16);
        for (int64_t blk = 0; blk < kp / 32; blk++) {
            int8_t *qb = q + blk * 32;
            if (blk * 32 >= k) {
                memset(qb, 0, 32);
                d[blk] = s32[blk] = s1[blk] = s16[2 * blk] = s16[2 * blk + 1] = 0;
                n8[blk] = n128[blk] = n32[2 * blk] = n32[2 * blk + 1] = 0;
                continue;
            }
            const float *xb = src + blk * 32;
            int sum0 = 0, sum1 = 0;  // the block's halves' sums of q
            if (quantize_has_avx512) {
                quantize_block_avx512(xb, qb, d + blk, s16 + 2 * blk, s16 + 2 * blk + 1, s32 + blk, s1 + blk, &sum0, &sum1);
            } else {
                float amax = 0;
                for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(xb[i]));
                const float scale = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
                for (int i = 0; i < 32; i++) qb[i] = (int8_t)nearbyintf(xb[i] * id);  // default mode: nearest even
                for (int i = 0; i < 16; i++) {
                    sum0 += qb[i];
                    sum1 += qb[16 + i];
                }
                const float dh = round_to_half(scale);
                d[blk] = dh;
                s16[2 * blk] = dh * (float)sum0;
                s16[2 * blk + 1] = dh * (float)sum1;
                s32[blk] = dh * (float)(sum0 + sum1);
                s1[blk] = round_to_half(scale * (float)(sum0 + sum1));
            }
            n8[blk] = -8 * (sum0 + sum1);
            n128[blk] = -128 * (sum0 + sum1);
            n32[2 * blk] = -32 * sum0;
            n32[2 * blk + 1] = -32 * sum1;
        }
    }
}

/// Per-call arguments of the apply step for activation rows c0 ..< c0 + nc over chunk [k0, k0 + kc).
typedef struct {
    const int8_t *xq;
    const float *xd, *xs16, *xs32;
    const int32_t *xneg;  // Q8_0 / Q4_0 / Q6_K: the weights' offset times Σq per scale group ([m, kp/32] or
                          // [m, kp/16]), else NULL
    int64_t kp, k0, kc, c0;
    float *acc;  // parked accumulators between chunks: [m][TR] floats
    int first, last, rows;
    float *out;
    int64_t ldo, n;
} apply_args_t;

static inline int32_t load_i32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/// NC activation rows × the 16-row tile; G = 4 (16-weight scale groups, Q6_K) or 8 (32-weight groups). NEG (Q8_0,
/// Q4_0, Q6_K): the weights' constant offset (w = s·(u − 8), u − 128, u − 32) enters as each group's integer dot starting
/// at offset·Σq (`a->xneg`) instead of a second FMA with the offset vector, so a group costs each activation row
/// three vector operations besides its `vpdpbusd` instead of four (they share the same pipes).
PAGODA_VNNI_TARGET __attribute__((always_inline)) static inline void apply_vnni_n(const int NC, const int G, const int NEG,
                                                                                  const tile_t *t,
                                                                                  const apply_args_t *a) {
    __m512 acc[TC];
    const int8_t *xq[TC];
    const float *xd[TC], *xs[TC];
    const int32_t *xn[TC];
    for (int c = 0; c < NC; c++) {
        const int64_t row = a->c0 + c;
        acc[c] = a->first ? _mm512_setzero_ps() : _mm512_load_ps(a->acc + row * TR);
        xq[c] = a->xq + row * a->kp + a->k0;
        xd[c] = a->xd + row * (a->kp / 32) + a->k0 / 32;
        xs[c] = G == 4 ? a->xs16 + row * (a->kp / 16) + a->k0 / 16 : a->xs32 + row * (a->kp / 32) + a->k0 / 32;
        xn[c] = NEG ? a->xneg + row * (a->kp / (4 * G)) + a->k0 / (4 * G) : 0;
    }
    const int64_t groups = a->kc / (4 * G);
    for (int64_t sg = 0; sg < groups; sg++) {
        __m512i dot[TC];
        for (int c = 0; c < NC; c++) dot[c] = NEG ? _mm512_set1_epi32(xn[c][sg]) : _mm512_setzero_si512();
        for (int g = 0; g < G; g++) {
            const int64_t w4 = sg * G + g;
            const __m512i u = _mm512_load_si512((const void *)(t->u + w4 * 64));
            for (int c = 0; c < NC; c++) dot[c] = _mm512_dpbusd_epi32(dot[c], u, _mm512_set1_epi32(load_i32(xq[c] + 4 * w4)));
        }
        const int64_t half = sg * (G / 4), blk = sg * G / 8;
        const __m512 s = _mm512_load_ps(t->s + half * TR);
        if (NEG) {
            for (int c = 0; c < NC; c++) {
                const __m512 sd = _mm512_mul_ps(s, _mm512_set1_ps(xd[c][blk]));
                acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[c]), sd, acc[c]);
            }
        } else {
            const __m512 b = _mm512_load_ps(t->b + half * TR);
            for (int c = 0; c < NC; c++) {
                const __m512 sd = _mm512_mul_ps(s, _mm512_set1_ps(xd[c][blk]));
                acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[c]), sd, acc[c]);
                acc[c] = _mm512_fmadd_ps(b, _mm512_set1_ps(xs[c][sg]), acc[c]);
            }
        }
    }
    const __mmask16 mask = (__mmask16)((1u << a->rows) - 1);
    for (int c = 0; c < NC; c++) {
        const int64_t row = a->c0 + c;
        if (a->last) {
            _mm512_mask_storeu_ps(a->out + row * a->ldo + a->n, mask, acc[c]);
        } else {
            _mm512_store_ps(a->acc + row * TR, acc[c]);
        }
    }
}

#define APPLY_CASES(G, NEG)                              \
    switch (nc) {                                        \
    case 8: apply_vnni_n(8, G, NEG, t, a); break;        \
    case 7: apply_vnni_n(7, G, NEG, t, a); break;        \
    case 6: apply_vnni_n(6, G, NEG, t, a); break;        \
    case 5: apply_vnni_n(5, G, NEG, t, a); break;        \
    case 4: apply_vnni_n(4, G, NEG, t, a); break;        \
    case 3: apply_vnni_n(3, G, NEG, t, a); break;        \
    case 2: apply_vnni_n(2, G, NEG, t, a); break;        \
    default: apply_vnni_n(1, G, NEG, t, a); break;       \
    }

PAGODA_VNNI_TARGET static void apply_vnni(int nc, int halves, const tile_t *t, const apply_args_t *a) {
    if (halves && a->xneg) {
        APPLY_CASES(4, 1)
    } else if (halves) {
        APPLY_CASES(4, 0)
    } else if (a->xneg) {
        APPLY_CASES(8, 1)
    } else {
        APPLY_CASES(8, 0)
    }
}

/// The same arithmetic as apply_vnni, one row (lane) at a time, accumulators in scratch.
static void apply_portable(int nc, int halves, const tile_t *t, const apply_args_t *a) {
    const int G = halves ? 4 : 8;
    const int64_t groups = a->kc / (4 * G);
    for (int c = 0; c < nc; c++) {
        const int64_t row = a->c0 + c;
        const int8_t *xq = a->xq + row * a->kp + a->k0;
        const float *xd = a->xd + row * (a->kp / 32) + a->k0 / 32;
        const float *xs = halves ? a->xs16 + row * (a->kp / 16) + a->k0 / 16 : a->xs32 + row * (a->kp / 32) + a->k0 / 32;
        for (int r = 0; r < TR; r++) {
            float acc = a->first ? 0.0f : a->acc[row * TR + r];
            for (int64_t sg = 0; sg < groups; sg++) {
                int32_t dot = 0;
                for (int g = 0; g < G; g++) {
                    const int64_t w4 = sg * G + g;
                    const uint8_t *u = t->u + w4 * 64 + 4 * r;
                    const int8_t *q = xq + 4 * w4;
                    dot += u[0] * q[0] + u[1] * q[1] + u[2] * q[2] + u[3] * q[3];
                }
                const int64_t half = sg * (G / 4), blk = sg * G / 8;
                const float sd = t->s[half * TR + r] * xd[blk];
                acc = fmaf((float)dot, sd, acc);
                acc = fmaf(t->b[half * TR + r], xs[sg], acc);
            }
            if (!a->last) {
                a->acc[row * TR + r] = acc;
            } else if (r < a->rows) {
                a->out[row * a->ldo + a->n + r] = acc;
            }
        }
    }
}

/// The 16 lane sums of part[0..15] as one vector (lane r: Σ of part[r]'s lanes), by a tree of in-lane interleaves and
/// 128-bit shuffles: about three operations per row where a separate horizontal sum costs eight or more.
PAGODA_VNNI_TARGET static inline __m512 gemv_rows_reduce(const __m512 part[16]) {
    __m512 s[8], t[4];
    for (int i = 0; i < 8; i++)  // per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3]
        s[i] = _mm512_add_ps(_mm512_unpacklo_ps(part[2 * i], part[2 * i + 1]), _mm512_unpackhi_ps(part[2 * i], part[2 * i + 1]));
    for (int i = 0; i < 4; i++) {  // per 128-bit lane: the lane's sums of rows 4i ..< 4i + 4
        const __m512d a = _mm512_castps_pd(s[2 * i]), b = _mm512_castps_pd(s[2 * i + 1]);
        t[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    const __m512 u0 = _mm512_add_ps(_mm512_shuffle_f32x4(t[0], t[1], 0x44), _mm512_shuffle_f32x4(t[0], t[1], 0xEE));
    const __m512 u1 = _mm512_add_ps(_mm512_shuffle_f32x4(t[2], t[3], 0x44), _mm512_shuffle_f32x4(t[2], t[3], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_f32x4(u0, u1, 0x88), _mm512_shuffle_f32x4(u0, u1, 0xDD));
}

/// Bytes of one 64-byte weight vector's share of a batch-1 plan: xlo, xhi (64 int8 each), off (16 int32), xdl, xsl (16
/// floats each), sidx, midx (32 words each).
#define PLAN_VECTOR_BYTES (7 * 64)

/// Where the parts of one activation row's batch-1 plan lie (gemv_row_lanes).
typedef struct {
    const int8_t *xlo, *xhi;  // the activation codes that meet each stored byte's low / high nibble; 0 at headers
    const int32_t *off;       // each int32 lane's starting dot: Q4_0 −8 · (Σ of its xlo and xhi codes), Q4_1 0
    const float *xdl;         // each lane's activation block scale (0 past the row)
    const float *xsl;         // Q4_1: the activation block sum f16(d · Σq) on the lane that holds the block's header
    const uint16_t *sidx;     // each lane's f16 weight scale: a word of [previous vector | this vector]
    const uint16_t *midx;     // Q4_1: each lane's f16 minimum, the same way
} lane_plan_t;

static inline int64_t lane_row_length(int32_t type, int64_t k) { return k / 32 * (type == PAGODA_QTYPE_Q4_1 ? 20 : 18); }

static inline lane_plan_t lane_plan_at(const void *base, int64_t vectors) {
    const uint8_t *p = (const uint8_t *)base;
    lane_plan_t t = {
        (const int8_t *)p, (const int8_t *)(p + 64 * vectors), (const int32_t *)(p + 128 * vectors),
        (const float *)(p + 192 * vectors), (const float *)(p + 256 * vectors), (const uint16_t *)(p + 320 * vectors),
        (const uint16_t *)(p + 384 * vectors),
    };
    return t;
}

int64_t pagoda_qgemv_plan_bytes(int32_t type, int64_t k, int64_t m) {
    if ((type != PAGODA_QTYPE_Q4_0 && type != PAGODA_QTYPE_Q4_1) || m > GEMV_MAX_M || k % 32) return 0;
    return (lane_row_length(type, k) + 63) / 64 * PLAN_VECTOR_BYTES;
}

void pagoda_qgemv_plan(int32_t type, int64_t k, int64_t m, const int8_t *xq, const float *xd, const float *xs32,
                       const float *xs1, int64_t kp, void *plan) {
    const int q41 = type == PAGODA_QTYPE_Q4_1;
    const int64_t bytes = q41 ? 20 : 18, qoff = q41 ? 4 : 2, blocks = k / 32, rowLength = blocks * bytes;
    const int64_t vectors = (rowLength + 63) / 64, planBytes = vectors * PLAN_VECTOR_BYTES;
    for (int64_t c = 0; c < m; c++) {
        uint8_t *base = (uint8_t *)plan + c * planBytes;
        memset(base, 0, (size_t)planBytes);
        int8_t *xlo = (int8_t *)base, *xhi = (int8_t *)(base + 64 * vectors);
        int32_t *off = (int32_t *)(base + 128 * vectors);
        float *xdl = (float *)(base + 192 * vectors), *xsl = (float *)(base + 256 * vectors);
        uint16_t *sidx = (uint16_t *)(base + 320 * vectors), *midx = (uint16_t *)(base + 384 * vectors);
        const int8_t *x = xq + c * kp;
        const float *d = xd + c * (kp / 32), *s = (q41 ? xs1 : xs32) + c * (kp / 32);
        for (int64_t b = 0; b < blocks; b++)
            for (int i = 0; i < 16; i++) {  // byte i of a block's codes: weight i (low nibble), weight i + 16 (high)
                xlo[b * bytes + qoff + i] = x[32 * b + i];
                xhi[b * bytes + qoff + i] = x[32 * b + 16 + i];
            }
        for (int64_t v = 0; v < vectors; v++)
            for (int lane = 0; lane < 16; lane++) {
                // A lane (4 bytes) never holds codes of two blocks: blocks start at multiples of 18 or 20 bytes, so a
                // lane that crosses into a block holds only that block's header, whose activation codes are 0.
                const int64_t pos = 64 * v + 4 * lane, b = pos / bytes < blocks ? pos / bytes : blocks - 1;
                const int64_t i = 16 * v + lane;
                int sum = 0;
                for (int j = 0; j < 4; j++) sum += xlo[pos + j] + xhi[pos + j];
                off[i] = q41 ? 0 : -8 * sum;
                xdl[i] = pos < rowLength ? d[b] : 0.0f;
                xsl[i] = q41 && pos < rowLength && pos == b * bytes ? s[b] : 0.0f;
                sidx[32 * v + lane] = (uint16_t)((b * bytes - 64 * (v - 1)) / 2);  // ≥ 0: a header is ≤ 20 bytes back
                midx[32 * v + lane] = (uint16_t)((b * bytes + 2 - 64 * (v - 1)) / 2);
            }
    }
}

/// One Q4_0 / Q4_1 weight row against one activation row's plan, for m ≤ GEMV_MAX_M (batch-1 decode). The row is read
/// as it is stored, 64 bytes at a time from its start (the last vector masked to the row), with no byte moved: the
/// plan (pagoda_qgemv_plan, once per activation row and matrix) holds the activation codes at the positions of the
/// bytes whose nibbles they meet, so the low nibbles (and then the high ones, shifted down) go straight into
/// vpdpbusd against them, and header bytes meet zeros. Every int32 lane belongs to one block; one two-source word
/// permute brings each lane its block's f16 scale from this vector or the previous one. Per 64 bytes (3.6 blocks):
/// two dot steps, one permute, one f16 conversion, three float operations. Returns the row's 16 partial sums.
PAGODA_VNNI_TARGET __attribute__((always_inline)) static inline __m512 gemv_row_lanes(const int q41, const lane_plan_t *p,
                                                                                    int64_t vectors, const uint8_t *row,
                                                                                    int64_t rowLength) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), accm = _mm512_setzero_ps();
    __m512i prev = _mm512_setzero_si512();
    const int64_t full = rowLength / 64;
    for (int64_t v = 0; v < vectors; v++) {
        const __m512i raw = v < full ? _mm512_loadu_si512((const void *)(row + 64 * v))
                                     : _mm512_maskz_loadu_epi8((1ULL << (rowLength - 64 * v)) - 1, row + 64 * v);
        __m512i dot = _mm512_dpbusd_epi32(_mm512_loadu_si512((const void *)(p->off + 16 * v)), _mm512_and_si512(raw, low4),
                                          _mm512_loadu_si512((const void *)(p->xlo + 64 * v)));
        dot = _mm512_dpbusd_epi32(dot, _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4),
                                  _mm512_loadu_si512((const void *)(p->xhi + 64 * v)));
        const __m512 sc = _mm512_cvtph_ps(
            _mm512_castsi512_si256(_mm512_permutex2var_epi16(prev, _mm512_loadu_si512((const void *)(p->sidx + 32 * v)), raw)));
        const __m512 term = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), _mm512_loadu_ps(p->xdl + 16 * v));
        if (v & 1) {
            acc1 = _mm512_fmadd_ps(term, sc, acc1);
        } else {
            acc0 = _mm512_fmadd_ps(term, sc, acc0);
        }
        if (q41) {
            const __m512 mn = _mm512_cvtph_ps(_mm512_castsi512_si256(
                _mm512_permutex2var_epi16(prev, _mm512_loadu_si512((const void *)(p->midx + 32 * v)), raw)));
            accm = _mm512_fmadd_ps(mn, _mm512_loadu_ps(p->xsl + 16 * v), accm);
        }
        prev = raw;
    }
    return _mm512_add_ps(_mm512_add_ps(acc0, acc1), accm);
}

/// Rows n0 ..< n1 of a Q4_0 / Q4_1 matrix against one activation row's plan (gemv_row_lanes).
PAGODA_VNNI_TARGET __attribute__((noinline)) static void gemv_q4_lanes(int32_t type, const uint8_t *w, int64_t row_bytes,
                                                                      int64_t k, const void *plan, int64_t n0,
                                                                      int64_t n1, float *out) {
    const int64_t rowLength = lane_row_length(type, k), vectors = (rowLength + 63) / 64;
    const lane_plan_t p = lane_plan_at(plan, vectors);
    const int q41 = type == PAGODA_QTYPE_Q4_1;
    int64_t n = n0;
    for (; n + 16 <= n1; n += 16) {
        __m512 part[16];
        if (q41) {
            for (int r = 0; r < 16; r++) part[r] = gemv_row_lanes(1, &p, vectors, w + (n + r) * row_bytes, rowLength);
        } else {
            for (int r = 0; r < 16; r++) part[r] = gemv_row_lanes(0, &p, vectors, w + (n + r) * row_bytes, rowLength);
        }
        _mm512_storeu_ps(out + n, gemv_rows_reduce(part));
    }
    for (; n < n1; n++)
        out[n] = _mm512_reduce_add_ps(q41 ? gemv_row_lanes(1, &p, vectors, w + n * row_bytes, rowLength)
                                          : gemv_row_lanes(0, &p, vectors, w + n * row_bytes, rowLength));
}

/// One Q8_0 weight row against one activation row, for m ≤ GEMV_MAX_M (the LM head llama-quantize leaves in Q8_0
/// beside Q4_0 layers, and Q8_0 models), streamed once, a pair of blocks (64 weights) per vpdpbusd. A pair's codes
/// arrive by two 32-byte loads (q + 128 after one xor, so vpdpbusd can take them unsigned; the +128 comes back out through the activation
/// block sums in the per-quad offset term), a quad's eight f16 scales by two word permutes of the pairs' first 64
/// bytes (a quad: four pairs), spread to each pair's lanes by one permute; four accumulators keep the FMAs apart.
/// Blocks after the last whole quad go one at a time in 256-bit registers, so no load leaves the row. Returns the
/// row's 16 partial sums (gemv_rows_reduce adds them up, 16 rows at a time).
PAGODA_VNNI_TARGET __attribute__((always_inline)) static inline __m512 gemv_row_q8(const __m512i quadIdx, const uint8_t *row,
                                                                                 int64_t k, const int8_t *xq,
                                                                                 const float *xd, const float *xs) {
    const int64_t blocks = k / 32, bytes = 34;
    const __m512i pairLane = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    __m256 offset8 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= blocks; j += 8) {
        const uint8_t *b = row + j * bytes;
        const __m512i s01 = _mm512_permutex2var_epi16(_mm512_loadu_si512((const void *)b), quadIdx,
                                                      _mm512_loadu_si512((const void *)(b + 2 * bytes)));
        const __m512i s23 = _mm512_permutex2var_epi16(_mm512_loadu_si512((const void *)(b + 4 * bytes)), quadIdx,
                                                      _mm512_loadu_si512((const void *)(b + 6 * bytes)));
        const __m256 d8 = _mm256_cvtph_ps(_mm_unpacklo_epi64(_mm512_castsi512_si128(s01), _mm512_castsi512_si128(s23)));
        offset8 = _mm256_fmadd_ps(d8, _mm256_loadu_ps(xs + j), offset8);
        const __m512 sd = _mm512_castps256_ps512(_mm256_mul_ps(d8, _mm256_loadu_ps(xd + j)));
        for (int i = 0; i < 4; i++) {
            const uint8_t *pb = b + 2 * i * bytes;
            const __m512i v = _mm512_xor_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(pb + 2))),
                                   _mm256_loadu_si256((const __m256i *)(pb + bytes + 2)), 1),
                flip);
            const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v, _mm512_loadu_si512((const void *)(xq + 32 * (j + 2 * i))));
            const __m512 sdp = _mm512_permutexvar_ps(_mm512_add_epi32(pairLane, _mm512_set1_epi32(2 * i)), sd);
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sdp, acc[i]);
        }
    }
    float offset = 0;
    __m256 tail = _mm256_setzero_ps();
    for (; j < blocks; j++) {
        const uint8_t *b = row + j * bytes;
        uint16_t h;
        memcpy(&h, b, 2);
        const float d = _cvtsh_ss(h);
        const __m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(b + 2)), _mm256_set1_epi8((char)0x80));
        const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), v, _mm256_loadu_si256((const __m256i *)(xq + 32 * j)));
        tail = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(d * xd[j]), tail);
        offset += d * xs[j];
    }
    // The −128 · Σ d · xs offset of the quads (8 lanes) and of the blocks after them (one lane).
    const __m256 offsets = _mm256_add_ps(offset8, _mm256_setr_ps(offset, 0, 0, 0, 0, 0, 0, 0));
    const __m512 all = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    return _mm512_fmadd_ps(_mm512_zextps256_ps512(offsets), _mm512_set1_ps(-128.0f),
                           _mm512_add_ps(all, _mm512_zextps256_ps512(tail)));
}

/// Rows n0 ..< n1 of a Q8_0 matrix against activation row xq (gemv_row_q8); xs: the activation blocks' xs32.
PAGODA_VNNI_TARGET __attribute__((noinline)) static void gemv_q8_vnni(const uint8_t *w, int64_t row_bytes, int64_t k,
                                                                     const int8_t *xq, const float *xd, const float *xs,
                                                                     int64_t n0, int64_t n1, float *out) {
    uint16_t quad[32];
    // Words 0–3: the scales of a pair's two blocks (words 0 and 17) in the first source, then in the second (32 +).
    for (int i = 0; i < 32; i++) quad[i] = (uint16_t)(32 * ((i % 4) / 2) + 17 * (i % 2));
    const __m512i quadIdx = _mm512_loadu_si512(quad);
    int64_t n = n0;
    for (; n + 16 <= n1; n += 16) {
        __m512 part[16];
        for (int r = 0; r < 16; r++) part[r] = gemv_row_q8(quadIdx, w + (n + r) * row_bytes, k, xq, xd, xs);
        _mm512_storeu_ps(out + n, gemv_rows_reduce(part));
    }
    for (; n < n1; n++) out[n] = _mm512_reduce_add_ps(gemv_row_q8(quadIdx, w + n * row_bytes, k, xq, xd, xs));
}

/// One Q6_K weight row against one activation row, for m ≤ GEMV_MAX_M (the LM head that llama-quantize leaves in
/// Q6_K beside Q4_0 layers, at batch-1 decode): each 256-weight super-block is streamed once, 64 codes per vector
/// (ql nibbles | two qh bits), no unpack into scratch. Lane i of a dot product holds weights 4i ..< 4i+4 of the 64, in
/// 16-weight sub-block i/4 (scale sc[·]) and 32-weight activation block i/8 (scale xd[·]); both reach the lanes by
/// permutes of one per-super-block vector of d·sc·xd. The −32 offset is applied once through xs16. Same arithmetic
/// per sub-block as the tile kernel up to the order of the f32 sums.
PAGODA_VNNI_TARGET static float gemv_row_q6k_vnni(const uint8_t *row, int64_t k, const int8_t *xq, const float *xd,
                                                  const float *xs16) {
    const int64_t supers = k / 256;
    const __m512i low4 = _mm512_set1_epi8(0x0F), three = _mm512_set1_epi8(3);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i quarter = _mm512_srli_epi32(lane, 2);             // sub-block of a lane within its 64 weights
    const __m512i halfIndex = _mm512_srli_epi32(lane, 1);           // sub-block j → its activation block j/2
    __m512 acc = _mm512_setzero_ps(), accb = _mm512_setzero_ps();
    for (int64_t sb = 0; sb < supers; sb++) {
        const uint8_t *blk = row + sb * 210;
        uint16_t hd;
        memcpy(&hd, blk + 208, 2);
        const __m512 d = _mm512_set1_ps(_cvtsh_ss(hd));
        const __m512 sc = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 192)))));
        const __m512 xd8 = _mm512_castps256_ps512(_mm256_loadu_ps(xd + 8 * sb));
        const __m512 comb = _mm512_mul_ps(sc, _mm512_permutexvar_ps(halfIndex, xd8));  // d·sc[j]·xd[j/2]
        accb = _mm512_fmadd_ps(sc, _mm512_loadu_ps(xs16 + 16 * sb), accb);
        const int8_t *xs = xq + 256 * sb;
        for (int h = 0; h < 2; h++) {
            const __m512i ql = _mm512_loadu_si512((const void *)(blk + 64 * h));  // ql0 | ql1
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h));
            const __m512i qhp = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
            // Weights 128h + 0..63: low nibbles | qh bits 0-1 (first 32) and 2-3 (next 32).
            const __m512i va = _mm512_or_si512(_mm512_and_si512(ql, low4),
                                               _mm512_slli_epi16(_mm512_and_si512(qhp, three), 4));
            // Weights 128h + 64..127: high nibbles | qh bits 4-5 and 6-7.
            const __m512i vb = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                                               _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(qhp, 4), three), 4));
            const __m512i da = _mm512_dpbusd_epi32(_mm512_setzero_si512(), va, _mm512_loadu_si512((const void *)(xs + 128 * h)));
            const __m512i db = _mm512_dpbusd_epi32(_mm512_setzero_si512(), vb, _mm512_loadu_si512((const void *)(xs + 128 * h + 64)));
            const __m512 sa = _mm512_permutexvar_ps(_mm512_add_epi32(quarter, _mm512_set1_epi32(8 * h)), comb);
            const __m512 sbv = _mm512_permutexvar_ps(_mm512_add_epi32(quarter, _mm512_set1_epi32(8 * h + 4)), comb);
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(da), sa, acc);
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(db), sbv, acc);
        }
    }
    return _mm512_reduce_add_ps(acc) - 32.0f * _mm512_reduce_add_ps(accb);
}

/// Asks for the bytes of weight columns k0 ..< k0 + kc of rows n ..< min(n + TR, n1) (the tile after the current one),
/// into L2, while the current tile is applied: the unpack then reads cached lines instead of waiting on memory once
/// per row (the scale gather touched each row's lines first and stalled on them).
static inline void prefetch_next_tile(const uint8_t *wb, int64_t row_bytes, int64_t k, int64_t n, int64_t n1,
                                      int64_t k0, int64_t kc) {
    if (n >= n1 || k0 >= k) return;
    const int64_t rows = n1 - n < TR ? n1 - n : TR;
    const int64_t lo = k0 * row_bytes / k, hi = (k0 + kc < k ? k0 + kc : k) * row_bytes / k;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = wb + (n + r) * row_bytes;
        for (int64_t b = lo; b < hi; b += 64) __builtin_prefetch(row + b, 0, 2);
    }
}

/// Unpacks weight columns k0 ..< k0 + kc of rows n ..< n + rows (≤ TR) into `t` in the lane-per-row layout the apply
/// step reads (codes transposed into t->u, per-half scales and offsets into t->s and t->b); rows past `rows` and
/// blocks past k are zero.
static void unpack_tile_chunk(int32_t type, const uint8_t *wb, int64_t row_bytes, int64_t k, int64_t n, int rows,
                              int64_t k0, int64_t kc, tile_t *t, int paired, int32_t use_vnni) {
    // Unpack the tile's chunk once; rows past n1 and blocks past k contribute zero.
    int64_t real = (k - k0) / 32;
    if (real > kc / 32) real = kc / 32;
    // Q8_0 / Q4_0 / Q4_1 on the VNNI kernel: the codes of whole pairs per row, their scales gathered per row
    // and turned into the lane-per-row layout by one transpose (rows past n1 scale by zero).
    const int pairedBlocks = paired ? (int)(2 * (real / 2)) : 0;
    if (pairedBlocks > 0) {
        __m512i sr[16], br[16], sc[16], bc[16];
        for (int r = 0; r < TR; r++) {
            __m512 sv = _mm512_setzero_ps(), bv = _mm512_setzero_ps();
            if (r < rows) pair_scales_vnni(type, wb + (n + r) * row_bytes, k0 / 32, pairedBlocks, &sv, &bv);
            sr[r] = _mm512_castps_si512(sv);
            br[r] = _mm512_castps_si512(bv);
        }
        transpose16x16_epi32(sr, sc);
        transpose16x16_epi32(br, bc);
        for (int jl = 0; jl < pairedBlocks; jl++) {  // one scale per 32 weights: both halves of block jl
            _mm512_store_si512((void *)(t->s + (2 * jl) * TR), sc[jl]);
            _mm512_store_si512((void *)(t->s + (2 * jl + 1) * TR), sc[jl]);
            _mm512_store_si512((void *)(t->b + (2 * jl) * TR), bc[jl]);
            _mm512_store_si512((void *)(t->b + (2 * jl + 1) * TR), bc[jl]);
        }
    }
    for (int r = 0; r < TR; r++) {
        int64_t jl = 0;
        if (paired && r < rows) {
            unpack_pairs_vnni(type, wb + (n + r) * row_bytes, k0 / 32, real / 2, t, r);
            jl = pairedBlocks;
        } else if (use_vnni && !paired && r < rows) {
            // KC is a multiple of 256 and so is k: the chunk holds whole super-blocks.
            unpack_kquants_vnni(type, wb + (n + r) * row_bytes, k0 / 256, real / 8, t, r, 0);
            jl = 8 * (real / 8);
        }
        for (; jl < kc / 32; jl++) {
            uint8_t *u = t->rowu + r * KC + 32 * jl;
            float s8[8], b8[8];
            if (r < rows && jl < real) {
                unpack32(type, wb + (n + r) * row_bytes, k0 / 32 + jl, u, s8, b8);
            } else {
                memset(u, 0, 32);
                fill8(s8, 0);
                fill8(b8, 0);
            }
            put_scales(t, r, jl, s8, b8);
        }
    }
    if (use_vnni) {
        transpose_vnni(t, kc / 4);
    } else {
        transpose_portable(t, kc / 4);
    }
}

/// The part of `pagoda_quantize_activations_q8`'s xneg that a type's integer offset starts from (−128·Σq for Q8_0,
/// −8·Σq for Q4_0, −32·half-block Σq for Q6_K), or NULL for the types without one.
static const int32_t *offset_sums(int32_t type, const int32_t *xneg, int64_t m, int64_t kp) {
    return type == PAGODA_QTYPE_Q8_0   ? xneg + m * (kp / 32)
           : type == PAGODA_QTYPE_Q4_0 ? xneg
           : type == PAGODA_QTYPE_Q6_K ? xneg + 2 * m * (kp / 32)
                                       : 0;
}

int64_t pagoda_qgemm_scratch_bytes(int64_t m) {
    // rowu + u (TR·KC bytes each), s and b (KC floats each), parked accumulators (m·TR floats).
    return 2 * (int64_t)TR * KC + 2 * (int64_t)KC * 4 + m * TR * 4 + 64;
}

void pagoda_qgemm_rows(int32_t type, const void *w, int64_t row_bytes, int64_t k, const int8_t *xq, const float *xd,
                       const float *xs16, const float *xs32, const float *xs1, const int32_t *xneg, int64_t m, int64_t kp, int64_t n0,
                       int64_t n1, float *out, int64_t ldo, void *scratch, const void *plan, int32_t use_vnni) {
    // Q4_1's minimum multiplies the activation block's f16 sum field (ggml's Q8_1 `s`), the others the exact one.
    if (type == PAGODA_QTYPE_Q4_1) xs32 = xs1;
    tile_t t;
    t.rowu = (uint8_t *)scratch;
    t.u = t.rowu + TR * KC;
    t.s = (float *)(t.u + TR * KC);
    t.b = t.s + KC;
    float *acc = t.b + KC;
    const uint8_t *wb = (const uint8_t *)w;
    const int halves = type == PAGODA_QTYPE_Q6_K;
    const int paired = use_vnni && type <= PAGODA_QTYPE_Q4_1;
    // Q8_0 / Q4_0 on the VNNI tile kernel: the offsets' integer block sums (−128·Σq, −8·Σq).
    const int32_t *neg = use_vnni ? offset_sums(type, xneg, m, kp) : 0;
    if (paired && type == PAGODA_QTYPE_Q8_0 && m <= GEMV_MAX_M) {
        for (int64_t c = 0; c < m; c++)
            gemv_q8_vnni(wb, row_bytes, k, xq + c * kp, xd + c * (kp / 32), xs32 + c * (kp / 32), n0, n1, out + c * ldo);
        return;
    }
    if (paired && plan && m <= GEMV_MAX_M) {  // Q4_0 / Q4_1 with their activation rows' plans
        const int64_t planBytes = pagoda_qgemv_plan_bytes(type, k, m);
        for (int64_t c = 0; c < m; c++)
            gemv_q4_lanes(type, wb, row_bytes, k, (const uint8_t *)plan + c * planBytes, n0, n1, out + c * ldo);
        return;
    }
    if (use_vnni && type == PAGODA_QTYPE_Q6_K && m <= GEMV_MAX_M) {
        for (int64_t n = n0; n < n1; n++)
            for (int64_t c = 0; c < m; c++)
                out[c * ldo + n] = gemv_row_q6k_vnni(wb + n * row_bytes, k, xq + c * kp, xd + c * (kp / 32),
                                                     xs16 + c * (kp / 16));
        return;
    }
    for (int64_t n = n0; n < n1; n += TR) {
        const int rows = n1 - n < TR ? (int)(n1 - n) : TR;
        for (int64_t k0 = 0; k0 < kp; k0 += KC) {
            const int64_t kc = kp - k0 < KC ? kp - k0 : KC;
            prefetch_next_tile(wb, row_bytes, k, n + TR, n1, k0, kc);
            unpack_tile_chunk(type, wb, row_bytes, k, n, rows, k0, kc, &t, paired, use_vnni);
            apply_args_t a = {xq, xd, xs16, xs32, neg, kp, k0, kc, 0, acc, k0 == 0, k0 + kc >= kp, rows, out, ldo, n};
            for (int64_t c = 0; c < m; c += TC) {
                a.c0 = c;
                const int nc = m - c < TC ? (int)(m - c) : TC;
                if (use_vnni) {
                    apply_vnni(nc, halves, &t, &a);
                } else {
                    apply_portable(nc, halves, &t, &a);
                }
            }
        }
    }
}

// ---- Q4_0 in 16-row tiles (a copy made at load for batch-1 decode) -------------------------------------------------

int64_t pagoda_q4_0_tiles_bytes(int64_t rows, int64_t k) { return (rows + 15) / 16 * (k / 32) * 288; }

/// Tiles t0 ..< t1 of a matrix of 2-byte-scale blocks with `codes` code bytes each (Q4_0: 16, Q8_0: 32): per block,
/// codes / 4 vectors of 64 bytes whose lane r holds row r's code bytes 4j ..< 4j+4, then the 16 rows' scales.
static void block_tiles_pack(const void *w, int64_t row_bytes, int64_t rows, int64_t k, int64_t t0, int64_t t1, void *out,
                             int codes) {
    const int64_t blocks = k / 32, tileBlock = 16 * codes + 32;
    for (int64_t t = t0; t < t1; t++) {
        for (int64_t b = 0; b < blocks; b++) {
            uint8_t *dst = (uint8_t *)out + (t * blocks + b) * tileBlock;
            memset(dst, 0, (size_t)tileBlock);
            for (int r = 0; r < 16 && 16 * t + r < rows; r++) {
                const uint8_t *blk = (const uint8_t *)w + (16 * t + r) * row_bytes + b * (codes + 2);
                for (int j = 0; j < codes / 4; j++) memcpy(dst + 64 * j + 4 * r, blk + 2 + 4 * j, 4);
                memcpy(dst + 16 * codes + 2 * r, blk, 2);
            }
        }
    }
}

void pagoda_q4_0_tiles_pack(const void *w, int64_t row_bytes, int64_t rows, int64_t k, int64_t t0, int64_t t1, void *out) {
    block_tiles_pack(w, row_bytes, rows, k, t0, t1, out, 16);
}

PAGODA_VNNI_TARGET void pagoda_q4_0_tiles_gemv(const void *tiles, int64_t rows, int64_t k, const int8_t *xq, const float *xd,
                                               const int32_t *xneg8, int64_t t0, int64_t t1, float *out) {
    const int64_t blocks = k / 32;
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    for (int64_t t = t0; t < t1; t++) {
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        const uint8_t *p = (const uint8_t *)tiles + t * blocks * 288;
        for (int64_t b = 0; b < blocks; b++, p += 288) {
            const int8_t *x = xq + 32 * b;
            __m512i d = _mm512_set1_epi32(xneg8[b]), e = _mm512_setzero_si512();
            for (int j = 0; j < 4; j++) {
                const __m512i v = _mm512_loadu_si512((const void *)(p + 64 * j));
                d = _mm512_dpbusd_epi32(d, _mm512_and_si512(v, low4), _mm512_set1_epi32(load_i32(x + 4 * j)));
                e = _mm512_dpbusd_epi32(e, _mm512_and_si512(_mm512_srli_epi16(v, 4), low4), _mm512_set1_epi32(load_i32(x + 16 + 4 * j)));
            }
            const __m512 sc = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 256))), _mm512_set1_ps(xd[b]));
            const __m512 dot = _mm512_cvtepi32_ps(_mm512_add_epi32(d, e));
            if (b & 1) {
                a1 = _mm512_fmadd_ps(dot, sc, a1);
            } else {
                a0 = _mm512_fmadd_ps(dot, sc, a0);
            }
        }
        const int64_t left = rows - 16 * t;
        const __mmask16 mask = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        _mm512_mask_storeu_ps(out + 16 * t, mask, _mm512_add_ps(a0, a1));
    }
}

/// NC activation rows × one tile over blocks b0 ..< b1: each block's eight 64-byte code vectors (low and high nibbles of
/// the tile's four stored vectors) are split once and serve all NC rows. The arithmetic of apply_vnni_n on the unpacked
/// tile (integer dot from −8·Σq, then one FMA by scale · xd per block), so both give the same floats.
PAGODA_VNNI_TARGET __attribute__((always_inline)) static inline void q4_0_tiles_apply_n(
    const int NC, const uint8_t *tile, int64_t b0, int64_t b1, const int8_t *xq, const float *xd, const int32_t *xneg8,
    int64_t kp, int64_t c0, int first, int last, float *acc, float *out, int64_t ldo, int64_t n, int rows) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    __m512 a[TC];
    const int8_t *x[TC];
    const float *d[TC];
    const int32_t *ng[TC];
    for (int c = 0; c < NC; c++) {
        const int64_t row = c0 + c;
        a[c] = first ? _mm512_setzero_ps() : _mm512_load_ps(acc + row * TR);
        x[c] = xq + row * kp;
        d[c] = xd + row * (kp / 32);
        ng[c] = xneg8 + row * (kp / 32);
    }
    for (int64_t b = b0; b < b1; b++) {
        const uint8_t *p = tile + b * 288;
        __m512i u[8];
        for (int j = 0; j < 4; j++) {
            const __m512i v = _mm512_loadu_si512((const void *)(p + 64 * j));
            u[j] = _mm512_and_si512(v, low4);
            u[4 + j] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
        }
        const __m512 s = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 256)));
        for (int c = 0; c < NC; c++) {
            const int8_t *xb = x[c] + 32 * b;
            __m512i dot = _mm512_set1_epi32(ng[c][b]);
            for (int j = 0; j < 8; j++) dot = _mm512_dpbusd_epi32(dot, u[j], _mm512_set1_epi32(load_i32(xb + 4 * (j % 4) + 16 * (j / 4))));
            const __m512 sd = _mm512_mul_ps(s, _mm512_set1_ps(d[c][b]));
            a[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sd, a[c]);
        }
    }
    const __mmask16 mask = (__mmask16)((1u << rows) - 1);
    for (int c = 0; c < NC; c++) {
        const int64_t row = c0 + c;
        if (last) {
            _mm512_mask_storeu_ps(out + row * ldo + n, mask, a[c]);
        } else {
            _mm512_store_ps(acc + row * TR, a[c]);
        }
    }
}

PAGODA_VNNI_TARGET void pagoda_q4_0_tiles_gemm(const void *tiles, int64_t rows, int64_t k, const int8_t *xq, const float *xd,
                                               const int32_t *xneg8, int64_t m, int64_t kp, int64_t t0, int64_t t1,
                                               float *out, int64_t ldo, void *scratch) {
    const int64_t blocks = k / 32, chunk = KC / 32;
    float *acc = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    for (int64_t t = t0; t < t1; t++) {
        const uint8_t *tile = (const uint8_t *)tiles + t * blocks * 288;
        const int64_t left = rows - 16 * t;
        const int tileRows = left >= 16 ? 16 : (int)left;
        for (int64_t b0 = 0; b0 < blocks; b0 += chunk) {
            const int64_t b1 = blocks - b0 < chunk ? blocks : b0 + chunk;
            const int first = b0 == 0, last = b1 == blocks;
            // The next chunk (or tile) into L2 while this one is applied, as in pagoda_qtiles_gemm.
            const uint8_t *next = b1 < blocks ? tile + b1 * 288 : (t + 1 < t1 ? tile + blocks * 288 : 0);
            if (next)
                for (int64_t i = 0; i < chunk * 288; i += 64) __builtin_prefetch(next + i, 0, 2);
            for (int64_t c = 0; c < m; c += TC) {
                switch (m - c < TC ? (int)(m - c) : TC) {
#define Q4_0_TILES_CASE(NC) \
    case NC: q4_0_tiles_apply_n(NC, tile, b0, b1, xq, xd, xneg8, kp, c, first, last, acc, out, ldo, 16 * t, tileRows); break;
                    Q4_0_TILES_CASE(8)
                    Q4_0_TILES_CASE(7)
                    Q4_0_TILES_CASE(6)
                    Q4_0_TILES_CASE(5)
                    Q4_0_TILES_CASE(4)
                    Q4_0_TILES_CASE(3)
                    Q4_0_TILES_CASE(2)
                    default: q4_0_tiles_apply_n(1, tile, b0, b1, xq, xd, xneg8, kp, c, first, last, acc, out, ldo, 16 * t, tileRows); break;
#undef Q4_0_TILES_CASE
                }
            }
        }
    }
}

// ---- Unpacked tiles (a copy made at load for batched products) ------------------------------------------------------

/// Whether a type's unpacked tiles keep per-half offsets (t->b): the types without the integer offset (Q4_1, Q4_K, Q5_K).
static int qtiles_has_offsets(int32_t type) {
    return type != PAGODA_QTYPE_Q8_0 && type != PAGODA_QTYPE_Q4_0 && type != PAGODA_QTYPE_Q6_K;
}

int64_t pagoda_qtiles_tile_bytes(int32_t type, int64_t k) {
    const int64_t kp = (k + 63) / 64 * 64;
    return kp * TR + kp * 4 * (qtiles_has_offsets(type) ? 2 : 1);
}

void pagoda_qtiles_pack(int32_t type, const void *w, int64_t row_bytes, int64_t rows, int64_t k, int64_t t0, int64_t t1,
                        void *out, void *scratch) {
    const int64_t kp = (k + 63) / 64 * 64, tileBytes = pagoda_qtiles_tile_bytes(type, k);
    tile_t t;
    t.rowu = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    t.u = t.rowu + TR * KC;
    t.s = (float *)(t.u + TR * KC);
    t.b = t.s + KC;
    const int paired = type <= PAGODA_QTYPE_Q4_1;
    for (int64_t tile = t0; tile < t1; tile++) {
        uint8_t *dst = (uint8_t *)out + tile * tileBytes;
        float *s = (float *)(dst + kp * TR), *b = s + kp;
        const int64_t n = 16 * tile;
        const int tileRows = rows - n < TR ? (int)(rows - n) : TR;
        for (int64_t k0 = 0; k0 < kp; k0 += KC) {
            const int64_t kc = kp - k0 < KC ? kp - k0 : KC;
            unpack_tile_chunk(type, (const uint8_t *)w, row_bytes, k, n, tileRows, k0, kc, &t, paired, 1);
            memcpy(dst + k0 * TR, t.u, (size_t)(kc * TR));
            memcpy(s + k0, t.s, (size_t)kc * 4);
            if (qtiles_has_offsets(type)) memcpy(b + k0, t.b, (size_t)kc * 4);
        }
    }
}

void pagoda_qtiles_gemm(int32_t type, const void *tiles, int64_t rows, int64_t k, const int8_t *xq, const float *xd,
                        const float *xs16, const float *xs32, const float *xs1, const int32_t *xneg, int64_t m, int64_t kp,
                        int64_t t0, int64_t t1, float *out, int64_t ldo, void *scratch) {
    if (type == PAGODA_QTYPE_Q4_1) xs32 = xs1;  // as pagoda_qgemm_rows
    const int32_t *neg = offset_sums(type, xneg, m, kp);
    const int halves = type == PAGODA_QTYPE_Q6_K;
    const int64_t tileBytes = pagoda_qtiles_tile_bytes(type, k);
    float *acc = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    for (int64_t tile = t0; tile < t1; tile++) {
        const uint8_t *src = (const uint8_t *)tiles + tile * tileBytes;
        const float *s = (const float *)(src + kp * TR), *b = s + kp;
        const int64_t n = 16 * tile;
        const int tileRows = rows - n < TR ? (int)(rows - n) : TR;
        for (int64_t k0 = 0; k0 < kp; k0 += KC) {
            const int64_t kc = kp - k0 < KC ? kp - k0 : KC;
            // The chunk as unpack_tile_chunk left it in scratch (apply reads only u, s and b).
            tile_t t = {(uint8_t *)(src + k0 * TR), 0, (float *)(s + k0), (float *)(b + k0)};
            // The next chunk's codes (or the next tile's first) into L2 while this one is applied: the copy is read
            // once per call, from memory.
            const uint8_t *next = k0 + KC < kp ? src + (k0 + KC) * TR : (tile + 1 < t1 ? src + tileBytes : 0);
            if (next)
                for (int64_t i = 0; i < KC * TR; i += 64) __builtin_prefetch(next + i, 0, 2);
            apply_args_t a = {xq, xd, xs16, xs32, neg, kp, k0, kc, 0, acc, k0 == 0, k0 + kc >= kp, tileRows, out, ldo, n};
            for (int64_t c = 0; c < m; c += TC) {
                a.c0 = c;
                apply_vnni(m - c < TC ? (int)(m - c) : TC, halves, &t, &a);
            }
        }
    }
}

// ---- Q8_0 in 16-row tiles (a copy made at load for batch-1 decode) -------------------------------------------------

int64_t pagoda_q8_0_tiles_bytes(int64_t rows, int64_t k) { return (rows + 15) / 16 * (k / 32) * 544; }

void pagoda_q8_0_tiles_pack(const void *w, int64_t row_bytes, int64_t rows, int64_t k, int64_t t0, int64_t t1, void *out) {
    block_tiles_pack(w, row_bytes, rows, k, t0, t1, out, 32);
}

/// S tiles (numbers t, t + step, ..., t + (S-1)·step) walked side by side, block by block: S memory streams instead
/// of one, which on this CPU reads 21.7 GB/s against 18.0 GB/s (C probe, 4 against 1, 2026-12-04).
PAGODA_VNNI_TARGET __attribute__((always_inline)) static inline void q8_0_tiles_gemv_n(const int S, const uint8_t *tiles,
                                                                                    int64_t rows, int64_t blocks,
                                                                                    const int8_t *xq, const float *xd,
                                                                                    const int32_t *xneg128, int64_t t,
                                                                                    int64_t step, float *out) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512 acc[4];
    const uint8_t *p[4];
    for (int i = 0; i < S; i++) {
        acc[i] = _mm512_setzero_ps();
        p[i] = tiles + (t + i * step) * blocks * 544;
    }
    for (int64_t b = 0; b < blocks; b++) {
        const int8_t *x = xq + 32 * b;
        for (int i = 0; i < S; i++) {
            const uint8_t *q = p[i] + b * 544;
            __m512i d = _mm512_set1_epi32(xneg128[b]);
            for (int j = 0; j < 8; j++)
                d = _mm512_dpbusd_epi32(d, _mm512_xor_si512(_mm512_loadu_si512((const void *)(q + 64 * j)), flip),
                                        _mm512_set1_epi32(load_i32(x + 4 * j)));
            const __m512 s = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(q + 512))), _mm512_set1_ps(xd[b]));
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), s, acc[i]);
        }
    }
    for (int i = 0; i < S; i++) {
        const int64_t tile = t + i * step;
        const int64_t left = rows - 16 * tile;
        const __mmask16 mask = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        _mm512_mask_storeu_ps(out + 16 * tile, mask, acc[i]);
    }
}

/// Tiles [t0, t1) in four quarters walked side by side: each of the four streams runs through a quarter's tiles one
/// after another, long enough for the hardware prefetcher at any K (four adjacent tiles of a 896-column matrix are
/// only 15 KB each: walked together they read 20.2 GB/s where the quarters read more, 2026-12-05).
PAGODA_VNNI_TARGET void pagoda_q8_0_tiles_gemv(const void *tiles, int64_t rows, int64_t k, const int8_t *xq, const float *xd,
                                               const int32_t *xneg128, int64_t t0, int64_t t1, float *out) {
    const int64_t blocks = k / 32;
    const int64_t quarter = (t1 - t0) / 4;
    for (int64_t i = 0; i < quarter; i++)
        q8_0_tiles_gemv_n(4, (const uint8_t *)tiles, rows, blocks, xq, xd, xneg128, t0 + i, quarter, out);
    for (int64_t t = t0 + 4 * quarter; t < t1; t++) q8_0_tiles_gemv_n(1, (const uint8_t *)tiles, rows, blocks, xq, xd, xneg128, t, 0, out);
}
