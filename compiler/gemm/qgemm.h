/* qgemm.h - exact int8 GEMM (qmatmul's kernel), generated at run time with
 * the LLVM C API like the f32 GEMM (gemm.h), JIT-compiled once per process.
 *
 *   C[M,N] (i32) = A[M,K] (i8) @ B[K,N] (i8)
 *
 * Row-major, leading dimensions in elements, any shape (0 and 1 included),
 * unaligned pointers. C must not overlap A or B. Every entry equals the
 * reference kern_qmatmul_ref bit for bit for every K: the products are summed
 * modulo 2^32 (the reference's wrapping i32), and the sum of integers modulo
 * 2^32 does not depend on the order; below K * 128 * 128 < 2^31 no sum wraps.
 *
 * Paths (picked from LLVM's host feature string, TT_QGEMM=vnni|avx2|scalar
 * overrides; a forced path the host cannot run falls back to the best one):
 *   vnni:   AVX-512 VNNI vpdpbusd, 12 x 32 tile of <16 x i32> accumulators;
 *           u8 x s8 with the offset trick (a + 128 is unsigned; each KC
 *           block's accumulators start at -128 * colsum(B block)).
 *   avx2:   vpmaddwd on sign-extended i16 pairs, 6 x 16 tile of <8 x i32>
 *           (no vpmaddubsw: its i16 sums saturate at 2 * 255 * 127).
 *   scalar: plain C.
 * See spec/jit.md, "Integer GEMM".
 */
#ifndef TT_QGEMM_H
#define TT_QGEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gemm.h"

typedef struct TtQgemm TtQgemm;

typedef enum TtQgemmPath {
    TT_QGEMM_HOST,
    TT_QGEMM_SCALAR,
    TT_QGEMM_AVX2,
    TT_QGEMM_VNNI
} TtQgemmPath;

/* The process-wide instance (reference counted; kernels compiled on the
 * first call). NULL with a message in err on failure. */
TtQgemm *tt_qgemm_new(char *err, size_t errlen);
/* A private instance of one path (tests, benchmarks); NULL with err when
 * the host cannot run it. Freed with tt_qgemm_free. */
TtQgemm *tt_qgemm_new_path(TtQgemmPath path, char *err, size_t errlen);
void tt_qgemm_free(TtQgemm *q);

/* The path the instance runs ("vnni", "avx2" or "scalar"). */
const char *tt_qgemm_path(const TtQgemm *q);

/* C = A @ B. nthreads: 1, 2 or more (small products run on one thread).
 * epi: NULL, or called on blocks of rows of C once they are final (as
 * tt_gemm_run's: the blocks partition [0, M), from any thread). Safe to call
 * from several threads at once. */
void tt_qgemm_run(TtQgemm *q, int64_t M, int64_t N, int64_t K, const int8_t *A, int64_t lda,
                  const int8_t *B, int64_t ldb, int32_t *C, int64_t ldc, int nthreads,
                  const TtGemmEpilogue *epi);

#endif
