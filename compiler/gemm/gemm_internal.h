/* gemm_internal.h - what the JIT (gemm_jit.c) hands the driver
 * (gemm_driver.c). Not part of the public API. */
#ifndef TT_GEMM_INTERNAL_H
#define TT_GEMM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GEMM_MR 6  /* rows of the micro-tile */
#define GEMM_NR 16 /* columns of the micro-tile (two <8 x float>) */

/* C[0:mr, 0:min(nrem,16)] = (acc ? C : 0) + A_tile @ Bpanel, mr fixed by the
 * variant. Row variant: A(i,p) = a[i*sa + p]. Column variant: A(i,p) =
 * a[p*sa + i]. b: packed panel, b[p*16 + j], 32-byte aligned, zero past the
 * edge. */
typedef void (*GemmUkr)(int64_t k, const float *a, int64_t sa, const float *b, float *c,
                        int64_t ldc, int64_t nrem, int32_t acc);

/* Packs a kc x nc block of op(B) into 16-wide panels: panel q holds columns
 * 16q..16q+15 at dst + q*pstride*16, row p at +p*16, zero-filled past nc
 * (and, for the transposed packer, past kc up to a multiple of 8, so pstride
 * must be >= kc rounded up to 8). Non-transposed: op(B)(p,j) = b[p*ldb + j];
 * transposed: op(B)(p,j) = b[j*ldb + p]. */
typedef void (*GemmPack)(int64_t kc, int64_t nc, const float *b, int64_t ldb, float *dst,
                         int64_t pstride);

/* Row counts with a kernel of their own (fewer variants compile faster);
 * other counts are covered by the largest variant that fits, repeatedly. */
#define GEMM_HAS_MR(mr) ((mr) == 1 || (mr) == 2 || (mr) == 4 || (mr) == 6)

/* Small-M products (M <= GEMM_GEMV_MR rows), B read in place, no packing.
 *
 * gemv_n, op(B) = B: C[0:mr, 0:n] = (acc ? C : 0) + A_blk @ B_blk with
 * A(i,p) = a[i*sai + p*sak] and B(p,j) = b[p*ldb + j], p < k. Each element
 * is summed exactly like the micro-kernel (fma chain in p order from zero,
 * then added to C), so for the same k blocks the results are bit-identical
 * to the packed path.
 *
 * gemv_t, op(B) = B^T: C(i,j) = (acc ? C : 0) + sum_p a[i*sa + p] *
 * b[j*ldb + p] over p < k: dot products of contiguous rows, 8 lanes over p
 * and a horizontal sum (rounding differs from the packed path). */
#define GEMM_GEMV_MR 4
typedef void (*GemvN)(int64_t k, const float *a, int64_t sai, int64_t sak, const float *b,
                      int64_t ldb, float *c, int64_t ldc, int64_t n, int32_t acc);
typedef void (*GemvT)(int64_t k, const float *a, int64_t sa, const float *b, int64_t ldb, float *c,
                      int64_t ldc, int64_t n, int32_t acc);

typedef struct GemmKernels {
    GemmUkr ukr_row[GEMM_MR]; /* index mr-1; NULL where !GEMM_HAS_MR(mr) */
    GemmUkr ukr_col[GEMM_MR];
    GemmPack pack_n, pack_t;
    GemvN gemv_n[GEMM_GEMV_MR]; /* index mr-1 */
    GemvT gemv_t[GEMM_GEMV_MR];
} GemmKernels;

typedef struct GemmJit GemmJit;

/* Generates, optimises (default<O3>) and JIT-compiles the kernels, or links
 * their object code from the on-disk cache (objcache.h) when an earlier
 * process compiled the same IR for the same CPU and LLVM. On failure returns
 * NULL and writes err. *ir receives the generated IR (malloc'd). */
GemmJit *gemm_jit_build(GemmKernels *out, char **ir, char *err, size_t errlen);
/* Whether j's code was linked from the cache rather than compiled. */
bool gemm_jit_from_cache(const GemmJit *j);
void gemm_jit_free(GemmJit *j);

#endif
