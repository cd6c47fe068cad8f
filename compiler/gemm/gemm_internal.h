/* gemm_internal.h - what the JIT (gemm_jit.c) hands the driver
 * (gemm_driver.c). Not part of the public API. */
#ifndef TT_GEMM_INTERNAL_H
#define TT_GEMM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The micro-tile of one build, chosen for the host's vector registers
 * (gemm_jit_build):
 *   8 lanes  (AVX2, 16 ymm):    6 x 16, 12 <8 x float> accumulators
 *   16 lanes (AVX-512, 32 zmm): 12 x 32, 24 <16 x float> accumulators
 * Either way each element of C is one fma chain over p from zero per KC
 * block, then added to C, and the KC blocks do not depend on the tile: the
 * results are bit-identical whichever tile the host gets. */
typedef struct GemmTile {
    int lanes; /* floats per vector register of the micro-kernel */
    int mr;    /* rows of the micro-tile */
    int nr;    /* columns of the micro-tile (one or two vectors) */
    /* k steps per iteration of the micro-kernel's loop. 4 for 6 x 16; 1 for
     * 12 x 32, where LLVM's scheduler hoists the broadcasts of unrolled
     * steps above the FMAs and spills them (measured: 106 against 190
     * GFLOP/s at 512 with 2 steps). */
    int ku;
} GemmTile;

#define GEMM_MR_MAX 12
#define GEMM_NR_MAX 32

/* C[0:mr, 0:min(nrem,nr)] = (acc ? C : 0) + A_tile @ Bpanel, mr fixed by the
 * variant. Row variant: A(i,p) = a[i*sa + p]. Column variant: A(i,p) =
 * a[p*sa + i]. b: the panel, B(p,j) = b[p*sb + j] for j < nr (all nr read
 * whatever nrem): a packed panel (sb = nr, zero past the edge) or nr
 * columns of a B in memory (sb = ldb). */
typedef void (*GemmUkr)(int64_t k, const float *a, int64_t sa, const float *b, int64_t sb, float *c,
                        int64_t ldc, int64_t nrem, int32_t acc);

/* Packs a kc x nc block of op(B) into nr-wide panels: panel q holds columns
 * nr*q..nr*q+nr-1 at dst + q*pstride*nr, row p at +p*nr, zero-filled past nc
 * (and, for the transposed packer, past kc up to a multiple of 8, so pstride
 * must be >= kc rounded up to 8). Non-transposed: op(B)(p,j) = b[p*ldb + j];
 * transposed: op(B)(p,j) = b[j*ldb + p]. */
typedef void (*GemmPack)(int64_t kc, int64_t nc, const float *b, int64_t ldb, float *dst,
                         int64_t pstride);

/* Small-M products (M <= GEMM_GEMV_MR rows), B read in place, no packing.
 *
 * gemv_n, op(B) = B: C[0:mr, 0:n] = (acc ? C : 0) + A_blk @ B_blk with
 * A(i,p) = a[i*sai + p*sak] and B(p,j) = b[p*ldb + j], p < k. Each element
 * is summed exactly like the micro-kernel (fma chain in p order from zero,
 * then added to C), so for the same k blocks the results are bit-identical
 * to the packed path. ct != 0: the sums are stored transposed, C(i,j) at
 * c[j*ldc + i] (a narrow product's C^T computed into C, gemm_driver.c).
 *
 * gemv_t, op(B) = B^T: C(i,j) = (acc ? C : 0) + sum_p a[i*sa + p] *
 * b[j*ldb + p] over p < k: dot products of contiguous rows, 8 lanes over p
 * and a horizontal sum (rounding differs from the packed path). */
#define GEMM_GEMV_MR 4
typedef void (*GemvN)(int64_t k, const float *a, int64_t sai, int64_t sak, const float *b,
                      int64_t ldb, float *c, int64_t ldc, int64_t n, int32_t acc, int32_t ct);
typedef void (*GemvT)(int64_t k, const float *a, int64_t sa, const float *b, int64_t ldb, float *c,
                      int64_t ldc, int64_t n, int32_t acc);

/* Narrow products, N <= GEMM_NARROW_N and M >= GEMM_NARROW_MIN_M (an
 * MLP's last layer: N = 10 classes), are computed as their transpose
 * C^T = op(B)^T op(A)^T (gemm_driver.c, gemm_narrow), bit-identical. */
#define GEMM_NARROW_N     16
#define GEMM_NARROW_MIN_M 32
static inline bool gemm_is_narrow(int64_t M, int64_t N) {
    return N <= GEMM_NARROW_N && M >= GEMM_NARROW_MIN_M;
}

/* The micro-kernels and packers of one tile. */
typedef struct GemmTileKernels {
    GemmTile tile;
    /* index mr-1. Only the full height, the powers of two below it and, for
     * the 6-row tile, 5 have a kernel (fewer variants compile faster); the
     * others are NULL. A block's last MR+1..2*MR-1 rows run as two even
     * tiles where that variant exists (10 = 5 + 5), a short edge on the
     * largest variant that fits, repeatedly. */
    GemmUkr ukr_row[GEMM_MR_MAX];
    GemmUkr ukr_col[GEMM_MR_MAX];
    GemmPack pack_n, pack_t;
} GemmTileKernels;

typedef struct GemmKernels {
    /* wide: the tile of the build. narrow: for products with N <= its nr,
     * where a wide panel would be mostly padding (16 lanes: 12 x 16, one
     * vector per row; 8 lanes: the wide tile again). */
    GemmTileKernels wide, narrow;
    GemvN gemv_n[GEMM_GEMV_MR]; /* index mr-1 */
    GemvT gemv_t[GEMM_GEMV_MR];
} GemmKernels;

typedef struct GemmJit GemmJit;

/* The host as the schedules see it: LLVM's name of its CPU ("znver4"),
 * a hash of its feature string, and whether it has AVX-512F. */
typedef struct GemmHost {
    char cpu[64];
    unsigned long long features;
    bool avx512;
} GemmHost;
void gemm_jit_host(GemmHost *h);

/* ---- the tuner (gemm_tune.c) ---- */
#include "gemm.h"

typedef struct GemmTuner GemmTuner;
/* Seconds one product of the shape being tuned takes with s (the driver
 * runs it on the calling thread into a scratch C); < 0 when it could not. */
typedef double (*GemmTimeFn)(void *ctx, const TtGemmSchedule *s);

GemmTuner *gemm_tuner_new(void); /* NULL when out of memory */
void gemm_tuner_free(GemmTuner *t);
int gemm_tuner_candidates(const GemmTuner *t, TtGemmSchedule *out, int max);
/* The schedule for a product: its class's, decided on the class's first
 * product (default table, disk cache, or timing the candidates through
 * time(ctx, s)). Thread-safe; a product that finds another tuning waits. */
TtGemmSchedule gemm_tuner_pick(GemmTuner *t, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
                               GemmTimeFn time, void *ctx);
/* The schedule a product of this shape would get now without tuning: its
 * class's if decided, else the default table's. Records nothing. */
TtGemmSchedule gemm_tuner_peek(GemmTuner *t, int64_t M, int64_t N, int64_t K, bool ta, bool tb);
/* The schedule the default table gives a large square product. */
TtGemmSchedule gemm_tuner_default_square(const GemmTuner *t);
void gemm_tuner_explain(GemmTuner *t, FILE *out);

/* ---- the thread split (gemm_split.c) ---- */

#define GEMM_MAXT 64
/* The defaults (TT_TUNE=0): threads from 2.6e5 multiply-adds at 2 threads,
 * the fixed threshold that preceded the model. */
#define GEMM_DEF_OVH_NS  8192.0
#define GEMM_DEF_MADD_NS (2 * GEMM_DEF_OVH_NS / 2.6e5)

/* The host's cost of a multiply-add of a serial product and of one
 * wake + join of the GEMM's pool (measured once per process, or the
 * defaults with TT_TUNE=0). */
typedef struct GemmSplitCost {
    double madd_ns, overhead_ns;
    const char *source;
} GemmSplitCost;
GemmSplitCost gemm_split_cost_default(void);

typedef enum GemmSplitBy { GS_SERIAL, GS_M, GS_N, GS_K } GemmSplitBy;

/* How a product runs: by GS_M / GS_N on `threads` threads (results
 * bit-identical to one thread: each C element's summation is unchanged);
 * by GS_K as `parts` partial products over whole KC blocks of K, summed
 * into C by the caller in part order after all are done, on `threads`
 * threads (1: the caller runs the parts in turn, same result). GS_K is
 * chosen by shape and nthreads alone (never by the measured costs: it
 * changes the rounding): when neither M nor N has nthreads micro-tiles and
 * K holds at least two KC blocks. GS_M / GS_N run threaded only when
 * share + overhead < serial under c, else GS_SERIAL, where share is the
 * largest part's whole micro-tiles (MR x NR x K each) at madd_ns. */
typedef struct GemmSplit {
    GemmSplitBy by;
    int threads, parts;
    bool share_b;             /* GS_M: op(B) is one block, packed once by the caller */
    double serial_ns, par_ns; /* the model's estimates (par_ns: threaded, even when not chosen) */
} GemmSplit;
GemmSplit gemm_split_choose(int64_t M, int64_t N, int64_t K, int64_t MR, int64_t NR, int64_t kc,
                            int64_t nc, int nthreads, bool gather, const GemmSplitCost *c);
const char *gemm_split_name(GemmSplitBy by);

/* Synthetic costs for tests (NULL: measure / default again). */
void gemm_split_cost_set(const GemmSplitCost *c);

/* The kernel families a build can hold, each compiled on its own when a
 * product first needs it (gemm_driver.c): the wide tile's micro-kernels and
 * packers, the narrow tile's (the wide one's at 8 lanes), and each small-M
 * kernel (<8 x float> at any width; a decode step uses gemv_n1 alone, and
 * the eight together cost more than a tile). */
#define GEMM_FAM_WIDE       1u
#define GEMM_FAM_NARROW     2u
#define GEMM_FAM_GEMV_N(mr) (1u << (1 + (mr))) /* mr = 1..GEMM_GEMV_MR */
#define GEMM_FAM_GEMV_T(mr) (1u << (5 + (mr)))
#define GEMM_FAM_ALL        0x3FFu

/* Sets k's wide and narrow tiles for lanes (8 or 16); no kernels. */
void gemm_jit_tiles(GemmKernels *k, int lanes);

/* Generates, optimises (default<O3>) and JIT-compiles the families fams of
 * the kernels (out's other kernels stay NULL), or links
 * their object code from the on-disk cache (objcache.h) when an earlier
 * process compiled the same IR for the same CPU and LLVM. lanes: 8 or 16,
 * or 0 for the host's choice (16 where the CPU has AVX-512F, else 8; the
 * environment variable TT_GEMM_LANES=8|16 overrides it). Any width runs on
 * any x86-64 host (LLVM splits wider vectors), only slower. On failure
 * returns NULL and writes err. *ir receives the generated IR (malloc'd). */
GemmJit *gemm_jit_build(GemmKernels *out, int lanes, unsigned fams, char **ir, char *err,
                        size_t errlen);
/* Whether j's code was linked from the cache rather than compiled. */
bool gemm_jit_from_cache(const GemmJit *j);
void gemm_jit_free(GemmJit *j);

#endif
