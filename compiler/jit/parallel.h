/* parallel.h - the process's thread pool: parallel loops of JIT code and
 * the GEMM's threaded products run on the same workers.
 *
 * Code generated for a loop marked parallel (transform.h) calls
 * ttrt_parallel_for with the loop's body outlined into a function of an
 * iteration range. The JIT defines the symbol for its code by address
 * (jit.c): a static library's symbols are not visible to the process-symbol
 * generator. The GEMM (gemm_driver.c) hands its parts to ttrt_pool_run.
 *
 * One pool, not one per user: on a machine with as many cores as threads,
 * a second pool's workers spinning between jobs would take the cores the
 * first one's need.
 */
#ifndef TT_PARALLEL_H
#define TT_PARALLEL_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*TtParBody)(void **bufs, int64_t lo, int64_t hi);

/* Runs body(bufs, lo, hi) over 0..n, cut into contiguous ranges (a few per
 * thread; the threads claim them in turn, so a descheduled worker delays
 * nobody), on up to nthreads threads (the caller is one), and returns when
 * all are done. Which thread runs which range varies: the body's
 * iterations must be independent. With nthreads <= 1, or when the pool is
 * running another job, the caller runs body(bufs, 0, n) alone. */
void ttrt_parallel_for(TtParBody body, void **bufs, int64_t n, int32_t nthreads);

/* The pool's job: chunk c of ctx, run on thread tid (1: the caller, w + 2:
 * worker w). */
typedef void (*TtPoolChunk)(void *ctx, int chunk, int tid);

#define TTRT_POOL_MAXCHUNK 4096

/* Runs fn(ctx, c, tid) for every c in 0..nchunks (at most
 * TTRT_POOL_MAXCHUNK) on up to nthreads threads, the caller one of them,
 * and returns true when all are done; false, having run nothing, when the
 * pool is busy with another job (the caller then runs the chunks itself). */
bool ttrt_pool_run(TtPoolChunk fn, void *ctx, int nchunks, int nthreads);

/* With fn set, each thread's range of a parallel loop is reported as an
 * event "parallel range" on row 1 (the caller) or w + 2 (worker w), with
 * CLOCK_MONOTONIC nanoseconds (jit_set_trace). */
typedef void (*TtParTrace)(const char *name, const char *cat, double t0_ns, double t1_ns, int tid);
void ttrt_parallel_set_trace(TtParTrace fn);

#endif
