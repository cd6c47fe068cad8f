/* qgemm_internal.h - what the int8 GEMM's JIT (qgemm_jit.c) hands its
 * driver (qgemm_driver.c). Not part of the public API. */
#ifndef TT_QGEMM_INTERNAL_H
#define TT_QGEMM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "qgemm.h"

/* Packed operands are arrays of 32-bit words: one word holds `group` k
 * steps of one row of A or one column of B (vnni: 4 bytes, A as u8 = a + 128,
 * B as s8; avx2: 2 sign-extended i16). */
typedef struct QgemmTile {
    TtQgemmPath path;
    int lanes; /* i32 lanes of a vector register (16 or 8) */
    int mr;    /* rows of the micro-tile */
    int nr;    /* columns (two vectors) */
    int group; /* k steps per 32-bit word */
} QgemmTile;

#define QGEMM_MR_MAX 12

/* C[i*ldc + j] = (acc ? C[i*ldc + j] : 0) + init[j] + sum_{g<kg} dot(a word
 * (g, i), b word (g, j)) for i < mr (the variant's), j < nr: a word (g, i)
 * at a[g*sa + i], b word (g, j) at b[g*nr + j] (b aligned to 64 bytes). The
 * sums wrap modulo 2^32. */
typedef void (*QgemmUkr)(int64_t kg, const int32_t *a, int64_t sa, const int32_t *b,
                         const int32_t *init, int32_t *c, int64_t ldc, int32_t acc);

/* Small-M products (M <= QGEMM_GEMV_MR), A and B read in place, no
 * packing: C[i*ldc + j] = sum_{p<k} a[i*lda + p] * b[p*ldb + j] (wrapping)
 * for i < mr (the variant's), j < nb * lanes: per row of B, its lanes bytes
 * sign-extended to i32 and multiplied by each row's a, in plain LLVM IR. */
#define QGEMM_GEMV_MR 4
#define QGEMV_NV      4 /* vectors of columns per step of the wide variants */
typedef void (*QgemvUkr)(int64_t k, const int8_t *a, int64_t lda, const int8_t *b, int64_t ldb,
                         int32_t *c, int64_t ldc, int64_t nb);

typedef struct QgemmKernels {
    QgemmTile tile;
    /* for products with N <= narrow.nr, where a wide panel would be mostly
     * padding (vnni: 12 x 16; avx2: the tile again) */
    QgemmTile narrow;
    QgemmUkr ukr_narrow[QGEMM_MR_MAX];
    QgemvUkr gemv[QGEMM_GEMV_MR];      /* index mr-1; nb vectors of lanes columns */
    QgemvUkr gemv_wide[QGEMM_GEMV_MR]; /* nb blocks of QGEMV_NV vectors */
    /* index mr-1: the full height and the powers of two below it; a short
     * edge is covered by the largest variant that fits, repeatedly */
    QgemmUkr ukr[QGEMM_MR_MAX];
} QgemmKernels;

typedef struct QgemmJit QgemmJit;

/* Generates and JIT-compiles the micro-kernels of path (vnni or avx2).
 * NULL with err on failure. */
QgemmJit *qgemm_jit_build(QgemmKernels *out, TtQgemmPath path, char *err, size_t errlen);
void qgemm_jit_free(QgemmJit *j);

/* Whether LLVM's host feature string has what path needs. */
bool qgemm_host_has(TtQgemmPath path);

#endif
