/* gemm.h - shape-generic single-precision GEMM, generated at run time with
 * the LLVM C API and JIT-compiled once per process.
 *
 *   C[M,N] = (accumulate ? C : 0) + op(A) @ op(B),   op(X) = X or X^T
 *
 * All matrices are row-major with leading dimensions (lda, ldb, ldc, in
 * elements): A is M x K (K x M when transA), B is K x N (N x K when transB).
 * Any shape is accepted, including 0 and 1, odd sizes, leading dimensions
 * wider than the rows and unaligned pointers. C must not overlap A or B.
 *
 * The JIT builds micro-kernels sized for vector registers: 6x16 with 12
 * <8 x float> accumulators, 12x32 with 24 <16 x float> accumulators (built
 * only where a schedule asks for it; see "schedules" below), one variant
 * per layout of A and for a few row counts, and the
 * routines that pack B into panels as wide as the tile; the blocking loops
 * (BLIS order, KC 256 / MC 144 / NC 4080 balanced at run time) and the
 * thread split are plain C in gemm_driver.c. A narrow product (N <= 16,
 * M >= 32) is computed as its transpose C^T = op(B)^T op(A)^T, its N
 * columns the kernel's rows (the same bits). Every tile sums each element
 * in the same order, so results do not depend on the host's width. See
 * spec/design.md section 4.
 *
 * tt_gemm_new returns a process-wide instance (reference counted); its
 * kernels are compiled once per process, each family when first needed. tt_gemm_run may be called
 * from several threads at once; each call uses per-thread packing buffers, and a call that finds
 * the worker pool busy runs on its own thread (a split over K then runs its parts in turn: the same
 * result).
 */
#ifndef TT_GEMM_H
#define TT_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct TtGemm TtGemm;

/* Creates the process-wide instance on the first call (no kernels yet: see
 * "lazily built kernels" below); later calls return the same instance.
 * NULL with a message in err on failure. */
TtGemm *tt_gemm_new(char *err, size_t errlen);
/* Drops one reference; the last one stops the workers and frees the JIT. */
void tt_gemm_free(TtGemm *g);

/* An epilogue: fn(ctx, r0, r1) is called once for every block of rows
 * [r0, r1) of C as soon as those rows are final (all of K summed, every
 * column written), while they are still in cache; the blocks partition
 * [0, M) and may come from several threads at once, in any order. This is
 * how the JIT fuses a matmul's elementwise consumers (bias, activation)
 * into it. */
typedef struct TtGemmEpilogue {
    void (*fn)(void *ctx, int64_t r0, int64_t r1);
    void *ctx;
} TtGemmEpilogue;

/* nthreads: 1, 2 or more; the product runs threaded only where the cost
 * model says it pays (gemm_split.c, spec/jit.md "Threads"). The thread
 * count does not change the result, except for products split over K
 * (fewer micro-tiles than threads, K of 512 or more): rounded differently,
 * the same on every run with that thread count.
 * epi: NULL, or called on the rows of C as they are finished. */
void tt_gemm_run(TtGemm *g, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                 bool transA, const float *B, int64_t ldb, bool transB, float *C, int64_t ldc,
                 bool accumulate, int nthreads, const TtGemmEpilogue *epi);

/* An op(B) that is not in memory but gathered while it is packed: the
 * implicit im2col of a convolution (spec/jit.md, "Convolution").
 *   op(B)(p, j) = x[roff(p) + coff(j)]
 * where an index i (p or j) is read as the digits (u, v, w) of
 * i = (u * dim[0] + v) * dim[1] + w, and its offset is
 * u * str[0] + v * str[1] + w * str[2]. For a convolution's forward,
 * p = (channel, kernel row, kernel column) and j = (image, output row,
 * output column); for its weight gradient the two are swapped. Every
 * offset must be in x: padding is a zero border already in x. */
typedef struct TtGemmGather {
    const float *x;
    int64_t rdim[2], rstr[3]; /* rows of op(B) (p) */
    int64_t cdim[2], cstr[3]; /* columns (j) */
} TtGemmGather;

/* tt_gemm_run with op(B) gathered (always packed, on the same micro-kernels
 * and K blocks as a B in memory: the result is bit-identical to
 * tt_gemm_run on the materialized matrix, except where tt_gemm_run reads a
 * small-M product's B in place). */
void tt_gemm_run_gather(TtGemm *g, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                        bool transA, const TtGemmGather *B, float *C, int64_t ldc, bool accumulate,
                        int nthreads, const TtGemmEpilogue *epi);

/* Where a convolution's product stores C: its columns j = (image, position)
 * grouped in runs of `cols` (the positions of one image), run n at C +
 * n * stride:
 *   C(i, j) at C[i * ldc + (j / cols) * stride + j % cols]
 * so y'[O, N*P] lands as y[N, O, P] (cols = P, ldc = P, stride = O*P): no
 * [O, N*P] temporary and no copy. Tiles that cross from one run to the
 * next are computed in a scratch tile and stored element by element; the
 * bits are those of the plain product (tests/gemm/test_gemm_gather.c). */
typedef struct TtGemmOut {
    int64_t cols, stride; /* cols >= 1 */
} TtGemmOut;

/* tt_gemm_run_gather with C laid out by out (NULL: C[i * ldc + j]). The
 * epilogue, if any, is still called on rows of C as they are finished. */
void tt_gemm_run_gather_out(TtGemm *g, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                            bool transA, const TtGemmGather *B, float *C, int64_t ldc,
                            const TtGemmOut *out, bool accumulate, int nthreads,
                            const TtGemmEpilogue *epi);

/* Vector lanes of the default schedule's tile for a large square product
 * on this host (8 or 16; TT_GEMM_LANES when set). */
int tt_gemm_lanes(const TtGemm *g);

/* ---- schedules (gemm_tune.c, spec/jit.md "GEMM schedules") ----
 *
 * A schedule is the micro-tile and the blocking one product runs with. The
 * tile comes from the lanes: 8 -> 6x16 of <8 x float> (unroll 4), 16 ->
 * 12x32 of <16 x float> (unroll 1; 12x16 for N <= 16). Every schedule sums
 * each element of C in the same order (KC is the same in all of them), so
 * the schedule changes the speed, never the result.
 *
 * Each product's shape falls in a class (M, N, K in size buckets, and the
 * transposes). A class's schedule is the shipped default table's choice
 * until it has been tuned: the first product of a class times the
 * candidates on that product (one thread, a scratch C) and keeps the
 * fastest, on disk next to the compiled-code cache (objcache.h, the same
 * trust rules), keyed by the host CPU and its features, so a host tunes a
 * class once. TT_TUNE=0 turns tuning off (the defaults then, as in tests
 * and CI); TT_GEMM_LANES=8|16 restricts every choice to that tile. */
typedef struct TtGemmSchedule {
    int lanes;      /* 8 or 16 */
    int mr, nr, ku; /* the wide tile and its unroll (follow from lanes) */
    int mc, kc, nc; /* block sizes: rows of A, depth, columns of B */
} TtGemmSchedule;

/* The candidates on this host (as many as fit in max); their count. */
int tt_gemm_candidates(TtGemm *g, TtGemmSchedule *out, int max);
/* tt_gemm_run with schedule s (one of the candidates) instead of the
 * class's: for tests and the tuner. */
void tt_gemm_run_with(TtGemm *g, const TtGemmSchedule *s, int64_t M, int64_t N, int64_t K,
                      const float *A, int64_t lda, bool transA, const float *B, int64_t ldb,
                      bool transB, float *C, int64_t ldc, bool accumulate, int nthreads,
                      const TtGemmEpilogue *epi);
/* Prints, for each product shape this process ran, the schedule it got and
 * why (default, tuned now, from the tuning cache, forced), with the
 * measured alternatives where they were timed. Nothing when no product
 * ran. (`ttrun --explain-schedule`, `--profile`.) */
void tt_gemm_explain(FILE *out);

/* ---- lazily built kernels ----
 *
 * The kernels come in families, each JIT-compiled (or linked from the
 * on-disk cache) on its own the first time a product needs it: each
 * small-M kernel (M <= 4, B read in place; one per M and layout of B), and
 * the micro-kernels and packers of each tile (6x16 at 8 lanes; 12x32 and
 * 12x16 at 16 lanes). A process that only decodes one token at a time
 * builds gemv_n1 and perhaps gemv_t1. A family is built under a lock the first time, then read
 * lock-free. */

/* Builds now the family a product of this shape will use under its class's
 * schedule (decided, or the default table's), so that the first run does
 * not pay for it; what tuning times later is built when it is timed. The
 * JIT calls it for each GEMM of a graph it compiles. false with err when
 * LLVM cannot build it. */
bool tt_gemm_prepare(TtGemm *g, int64_t M, int64_t N, int64_t K, bool transA, bool transB,
                     bool gather, char *err, size_t errlen);

#define TT_GEMM_FAMILIES         11
#define TT_GEMM_SMALL_M_FAMILIES 8 /* families 0..7: one small-M kernel each */
typedef struct TtGemmStats {
    int families;      /* families built so far */
    unsigned mask;     /* which: bit f for tt_gemm_family_name(f) */
    int from_cache;    /* of them linked from the on-disk cache */
    double compile_ms; /* their IR generation + O3 + codegen (or linking), wall */
} TtGemmStats;
void tt_gemm_stats(const TtGemm *g, TtGemmStats *out);
/* "gemv_n1".."gemv_n4" (M = 1..4, B as stored), "gemv_t1".."gemv_t4" (B
 * transposed), then the tiles "6x16/8", "12x32/16", "12x16/16". */
const char *tt_gemm_family_name(int f);

/* The families' build time so far, in ms (TtGemmStats.compile_ms). */
double tt_gemm_compile_ms(const TtGemm *g);

/* Writes the generated LLVM IR (before optimisation) to out. */
bool tt_gemm_emit_llvm(TtGemm *g, FILE *out);

#endif
