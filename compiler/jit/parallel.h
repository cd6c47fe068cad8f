/* parallel.h - the runtime of parallel loops: a small persistent thread pool.
 *
 * Code generated for a loop marked parallel (transform.h) calls
 * ttrt_parallel_for with the loop's body outlined into a function of an
 * iteration range. The JIT defines the symbol for its code by address
 * (jit.c): a static library's symbols are not visible to the process-symbol
 * generator.
 */
#ifndef TT_PARALLEL_H
#define TT_PARALLEL_H

#include <stdint.h>

typedef void (*TtParBody)(void **bufs, int64_t lo, int64_t hi);

/* Runs body(bufs, lo, hi) over 0..n cut into min(nthreads, n) contiguous
 * ranges of near-equal size, one per thread (the caller runs the first),
 * and returns when all are done. With nthreads <= 1, or when another thread
 * is using the pool, the caller runs body(bufs, 0, n) alone. */
void ttrt_parallel_for(TtParBody body, void **bufs, int64_t n, int32_t nthreads);

/* With fn set, each thread's range of a parallel loop is reported as an
 * event "parallel range" on row 1 (the caller) or w + 2 (worker w), with
 * CLOCK_MONOTONIC nanoseconds (jit_set_trace). */
typedef void (*TtParTrace)(const char *name, const char *cat, double t0_ns, double t1_ns, int tid);
void ttrt_parallel_set_trace(TtParTrace fn);

#endif
