// Block-quantized weight GEMM (ggml block layouts; see Sources/PagodaKernels/QuantizedBlocks.swift for the
// byte tables). Implemented in gemm_quant.c.
#ifndef PAGODA_QUANT_H
#define PAGODA_QUANT_H
#include <stdint.h>

/// Weight block types, numbered as `WeightDType.quantKernelType` passes them.
enum {
    PAGODA_QTYPE_Q8_0 = 0,
    PAGODA_QTYPE_Q4_0 = 1,
    PAGODA_QTYPE_Q4_1 = 2,
    PAGODA_QTYPE_Q4_K = 3,
    PAGODA_QTYPE_Q5_K = 4,
    PAGODA_QTYPE_Q6_K = 5,
};

/// 1 when the CPU can run the AVX512-VNNI kernel (`vpdpbusd` on zmm registers).
int pagoda_cpu_has_avx512_vnni(void);

/// Quantizes activations per 32-element block to int8 exactly as ggml's quantize_row_q8_0 / q8_1 do on x86:
/// q = round-to-nearest-even(x · (127 / max|x|)), the scale d = max|x| / 127 kept as an f16 value.
///
/// x: [m, k] floats, row stride ldx; k % 32 == 0. kp: k rounded up to a multiple of 64 (the padded block is zero).
/// Quantizes rows r0 ..< r1 of the m (disjoint row ranges may run on different threads).
/// Outputs, row-major with m rows: xq [m, kp] int8; xd [m, kp / 32] the block scales f16(d); xs16 [m, kp / 16]
/// f16(d) · (sum of q over each 16-element half block); xs32 [m, kp / 32] f16(d) · (sum of q over the block);
/// xs1 [m, kp / 32] f16(d · sum of q): Q8_1's `s` field, which Q4_1 weights' minimums multiply in ggml;
/// xneg int32: [2, m, kp / 32] −8 · (sum of q over the block), then −128 · the same (Q4_0's and Q8_0's offsets),
/// then [m, kp / 16] −32 · (sum of q over each half block) (Q6_K's offset).
void pagoda_quantize_activations_q8(const float *x, int64_t ldx, int64_t m, int64_t r0, int64_t r1, int64_t k, int64_t kp,
                                    int8_t *xq, float *xd, float *xs16, float *xs32, float *xs1, int32_t *xneg);

/// Bytes of per-task scratch `pagoda_qgemm_rows` needs for `m` activation rows (a multiple of 64).
int64_t pagoda_qgemm_scratch_bytes(int64_t m);

/// out[r, n] = Σ_c x̂[r, c] · w[n, c] for r < m, n0 ≤ n < n1, where x̂ are the activations quantized by
/// `pagoda_quantize_activations_q8` (xq, xd, xs16, xs32, xs1, xneg, padded width kp) and w[n] is the row of `k` weights
/// starting at `w + n * row_bytes`, made of blocks of `type`. Exact int32 dot products per scale group, f32
/// accumulation of the scaled group sums; Q4_1's minimums multiply xs1 (as ggml's Q4_1 × Q8_1 dot does).
///
/// scratch: `pagoda_qgemm_scratch_bytes(m)` bytes, 64-byte aligned, private to the call.
/// plan: for Q4_0 / Q4_1 weights at m ≤ 2, the activation rows' batch-1 plans (`pagoda_qgemv_plan`), which take the
/// streaming kernel; NULL otherwise (the tile kernel then serves every m).
/// use_vnni: nonzero takes the AVX512-VNNI kernel (requires pagoda_cpu_has_avx512_vnni()); zero the portable one.
void pagoda_qgemm_rows(int32_t type, const void *w, int64_t row_bytes, int64_t k, const int8_t *xq, const float *xd,
                       const float *xs16, const float *xs32, const float *xs1, const int32_t *xneg, int64_t m, int64_t kp, int64_t n0,
                       int64_t n1, float *out, int64_t ldo, void *scratch, const void *plan, int32_t use_vnni);

/// Bytes of the batch-1 plans of `m` activation rows for `type` weights of `k` columns, or 0 where that type and m
/// take no plan (types other than Q4_0 / Q4_1, or m > 2). Needed only with the AVX512-VNNI kernel.
int64_t pagoda_qgemv_plan_bytes(int32_t type, int64_t k, int64_t m);

/// Writes the batch-1 plans of activation rows 0 ..< m (`pagoda_quantize_activations_q8`'s outputs, padded width kp)
/// for `type` weights into `plan` (`pagoda_qgemv_plan_bytes` bytes): the activation codes laid out at the byte
/// positions of the weights' nibbles, per-lane offsets, scales and block sums, and word indices of each lane's f16
/// scale (and Q4_1 minimum). Once per matrix type and activation rows; every weight row then reuses it.
void pagoda_qgemv_plan(int32_t type, int64_t k, int64_t m, const int8_t *xq, const float *xd, const float *xs32,
                       const float *xs1, int64_t kp, void *plan);

/// Q4_0 weights copied into 16-row tiles for batch-1 decode: per tile and 32-weight block 288 bytes — four 64-byte
/// vectors whose 4-byte lane r holds bytes 4j ..< 4j+4 of row r's 16 code bytes (vector j), then the 16 rows' f16
/// scales. Rows past `rows` in the last tile are zero. Bytes for `rows` rows of `k` weights:
int64_t pagoda_q4_0_tiles_bytes(int64_t rows, int64_t k);

/// Writes tiles t0 ..< t1 of the Q4_0 matrix at `w` (row stride `row_bytes`) into `out`.
void pagoda_q4_0_tiles_pack(const void *w, int64_t row_bytes, int64_t rows, int64_t k, int64_t t0, int64_t t1, void *out);

/// out[16·t ..< 16·t + 16] (rows < `rows` only) for tiles t0 ..< t1: one activation row (quantized by
/// `pagoda_quantize_activations_q8`: xq, xd and xneg's −8·Σq per block) against the tiles. Requires AVX512-VNNI.
void pagoda_q4_0_tiles_gemv(const void *tiles, int64_t rows, int64_t k, const int8_t *xq, const float *xd,
                            const int32_t *xneg8, int64_t t0, int64_t t1, float *out);

/// The same products for m activation rows (batched decode, prefill): out[r · ldo + 16·t ..] for r < m, tiles t0 ..< t1,
/// each tile's codes split once per block for up to eight rows; the same floats as pagoda_qgemm_rows on the Q4_0 matrix.
/// scratch: pagoda_qgemm_scratch_bytes(m) bytes. Requires AVX512-VNNI.
void pagoda_q4_0_tiles_gemm(const void *tiles, int64_t rows, int64_t k, const int8_t *xq, const float *xd,
                            const int32_t *xneg8, int64_t m, int64_t kp, int64_t t0, int64_t t1, float *out, int64_t ldo,
                            void *scratch);

/// Block-quantized weights unpacked into 16-row tiles for batched products (a copy made at load): per tile, the codes
/// of k_p = k rounded up to 64 columns in the tile kernel's lane-per-row layout (16 bytes per column), then k_p floats of
/// per-16-weight scales, then (Q4_1, Q4_K, Q5_K) k_p floats of offsets. The apply step then runs without the per-call
/// unpack and transpose, on the same numbers. Bytes of one tile:
int64_t pagoda_qtiles_tile_bytes(int32_t type, int64_t k);

/// Writes tiles t0 ..< t1 of a matrix of `type` at `w` (row stride `row_bytes`); scratch: pagoda_qgemm_scratch_bytes(0).
/// Requires AVX512-VNNI.
void pagoda_qtiles_pack(int32_t type, const void *w, int64_t row_bytes, int64_t rows, int64_t k, int64_t t0, int64_t t1,
                        void *out, void *scratch);

/// pagoda_qgemm_rows for rows 16·t0 ..< min(rows, 16·t1) read from unpacked tiles, the same floats; scratch:
/// pagoda_qgemm_scratch_bytes(m). Requires AVX512-VNNI.
void pagoda_qtiles_gemm(int32_t type, const void *tiles, int64_t rows, int64_t k, const int8_t *xq, const float *xd,
                        const float *xs16, const float *xs32, const float *xs1, const int32_t *xneg, int64_t m, int64_t kp,
                        int64_t t0, int64_t t1, float *out, int64_t ldo, void *scratch);

/// Q8_0 weights copied into 16-row tiles for batch-1 decode: per tile and 32-weight block 544 bytes (the blocks' own
/// size) — eight 64-byte vectors whose 4-byte lane r holds codes 4j ..< 4j+4 of row r (vector j), then the 16 rows'
/// f16 scales. Rows past `rows` in the last tile are zero.
int64_t pagoda_q8_0_tiles_bytes(int64_t rows, int64_t k);
void pagoda_q8_0_tiles_pack(const void *w, int64_t row_bytes, int64_t rows, int64_t k, int64_t t0, int64_t t1, void *out);
/// out[16·t ..< 16·t + 16] (rows < `rows` only) for tiles t0 ..< t1 against one activation row (xq, xd and xneg's
/// −128·Σq per block), the tiles' four quarters walked side by side. Requires AVX512-VNNI.
void pagoda_q8_0_tiles_gemv(const void *tiles, int64_t rows, int64_t k, const int8_t *xq, const float *xd,
                            const int32_t *xneg128, int64_t t0, int64_t t1, float *out);

#endif
