/* transform.h - transformations of the loop IR: tiling, interchange,
 * unrolling, and the vectorize / parallel marks codegen acts on.
 *
 * Each transformation rewrites one loop of a kernel in place (new loops get
 * fresh loop variables, new expressions come from the program's arena) and
 * returns true, or returns false and leaves the program untouched when it
 * cannot prove the result computes exactly what the original did. The
 * loops tiling and interchange rearrange lose their marks (lp_schedule, run
 * after the transformations, sets them); unrolling keeps them on its main
 * loop; loops copied with a body keep their vectorize marks.
 *
 *
 *   lp_tile(p, k, L, T)        a perfect 2-D nest `for i { for j { S } }`
 *                              becomes T x T blocks (cache blocking), with
 *                              edge strips for extents T does not divide
 *   lp_interchange(p, k, L, M) a perfect 2-D nest L { M { S } } becomes
 *                              M { L { S } }
 *   lp_unroll(p, k, L, F)      F copies of the body per iteration, then the
 *                              remainder (extent % F copies); always legal
 *   lp_mark_vectorize(p, k, L) L is innermost and carries no scalar from one
 *                              iteration to the next (forcing the vectorizer
 *                              lets it reassociate float reductions: never
 *                              wanted), and calls nothing it cannot widen
 *   lp_mark_parallel(p, k, L, n) L is a top-level loop of k (not an epilogue)
 *                              whose iterations are independent, or
 *                              row-local (lp_row_local); codegen outlines
 *                              its body and runs it on n threads
 *                              (ttrt_parallel_for)
 *
 * Tiling, interchange and parallel loops reorder iterations, so they need
 * the iterations of the loops involved to be independent, which is checked
 * conservatively: no LS_GEMM; every local used in the body is declared in
 * it (a private scalar); every buffer the body stores to is stored and
 * loaded at one affine index whose coefficients are positive and separate
 * all loop variables of the body (mixed radix: each coefficient exceeds the
 * span of the smaller terms), and it depends on each reordered loop. Two
 * iterations of those loops then never touch the same element of a buffer
 * that is written. Distinct buffers never overlap (the JIT's contract).
 */
#ifndef TT_TRANSFORM_H
#define TT_TRANSFORM_H

#include "loop.h"

bool lp_tile(LpProg *p, LpKernel *k, LpStmt *loop, int64_t size);
bool lp_interchange(LpProg *p, LpKernel *k, LpStmt *outer, LpStmt *inner);
bool lp_unroll(LpProg *p, LpKernel *k, LpStmt *loop, int factor);
bool lp_mark_vectorize(LpProg *p, LpKernel *k, LpStmt *loop);
bool lp_mark_parallel(LpProg *p, LpKernel *k, LpStmt *loop, int nthreads);

/* True when the iterations of loop (and, if inner is not NULL, of the loop
 * nested in it) can run in any order: the test above. */
bool lp_independent(const LpProg *p, const LpKernel *k, const LpStmt *loop, const LpStmt *inner);

/* Row-local (the test kernel fusion and epilogues rely on): in each
 * iteration i of loop (a top-level loop of k), every buffer the body stores
 * to is accessed (stored and loaded) only in its slice [c*i, c*i + c), one
 * constant c per buffer: every index affine, with coefficient c on i and the
 * rest between 0 and c - 1 over the body's loops; every local used is
 * declared in the body; no GEMM. Iterations then touch disjoint parts of
 * what they write and run in any order. cbuf >= 0 adds a buffer the body
 * must only load, in slices of crow (an epilogue reading its GEMM's C). */
bool lp_row_local(const LpProg *p, const LpKernel *k, const LpStmt *loop, int cbuf, int64_t crow);

/* Kernel fusion, after lowering: merges each kernel into the one before it
 * where that keeps every iteration row-local (above), so the rows an
 * iteration produces are consumed while still in cache:
 *   - two kernels that are each one loop of the same extent become one
 *     loop running both bodies (softmax: row max, exp, row sum and the
 *     division in one pass over the rows);
 *   - a kernel that is one loop over the rows of the matrix the previous
 *     kernel's GEMM produces (a 2-D matmul, dense C) becomes that GEMM's
 *     epilogue (for i in 0..M epilogue): the GEMM runs it on each block of
 *     rows as soon as they are final (bias add and activation in the
 *     matmul).
 * Returns the number of kernels merged away. */
int lp_fuse_kernels(LpProg *p);

/* Work of a statement list: the number of innermost statement executions. */
int64_t lp_work(const LpStmt *s);

/* The default schedule the JIT applies after lowering: every innermost loop
 * whose loads and stores step by 0 or 1 element per iteration (no gathers)
 * and that lp_mark_vectorize accepts is marked; with nthreads > 1, every
 * top-level loop that lp_mark_parallel accepts runs on min(nthreads, extent)
 * threads when the cost model (parcost.h: the host's measured wake + join
 * against the loop's lp_work) says that beats one thread. Each decision is
 * recorded for lp_par_explain. */
void lp_schedule(LpProg *p, int nthreads);

/* lp_schedule with the given costs (NULL: the host's, lp_par_cost): ttc
 * schedules with the defaults, so that an object does not depend on the
 * load of the machine that compiled it. */
struct LpParCost;
void lp_schedule_with(LpProg *p, int nthreads, const struct LpParCost *cost);

/* The loop of variable var in k, or NULL (for tests and tools). */
LpStmt *lp_find_loop(LpKernel *k, int var);

#endif
