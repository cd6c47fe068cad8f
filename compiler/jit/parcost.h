/* parcost.h - whether a kernel's top-level loop runs on the thread pool.
 *
 * A parallel loop pays the pool's wake-up and join (parallel.c) on every
 * run; it wins only when the work it splits saves more than that. The model:
 *
 *   serial   = work * unit_ns
 *   parallel = work * unit_ns / t + overhead_ns(t)
 *
 * and the loop runs on t threads when parallel < serial, else on one.
 * work is lp_work of the loop (innermost statement executions, which the
 * loop IR knows exactly); unit_ns the host's time of one such statement of
 * a streaming kernel and overhead_ns the extra time of that stream split
 * t ways by ttrt_parallel_for over its serial time / t (the pool's wake,
 * claims and join), both measured once per process (per thread count) on
 * first use. With TT_TUNE=0 (CI, tests) a shipped default is used instead,
 * so schedules are reproducible; the default reproduces the fixed work
 * threshold of 2^16 at 2 threads that preceded the model.
 */
#ifndef TT_PARCOST_H
#define TT_PARCOST_H

#include <stdint.h>
#include <stdio.h>

typedef struct LpParCost {
    double unit_ns;     /* one innermost statement execution, serial */
    double overhead_ns; /* wake + join of a parallel region on nthreads */
    int nthreads;
    const char *source; /* "measured", "default (TT_TUNE=0)", "set" */
} LpParCost;

/* The shipped default (TT_TUNE=0) for nthreads. */
LpParCost lp_par_cost_default(int nthreads);

/* The host's cost for nthreads: measured on first use (about a millisecond)
 * and kept for the process, or the default with TT_TUNE=0, or what
 * lp_par_cost_set installed. */
LpParCost lp_par_cost(int nthreads);

/* Installs c for every thread count (a test's synthetic costs); NULL goes
 * back to measuring / the default. */
void lp_par_cost_set(const LpParCost *c);

/* The thread count a loop of `work` units and `extent` iterations runs on
 * under cost c when nthreads are allowed: nthreads (capped by extent) when
 * its parallel estimate beats the serial one, else 1. Pure: the decision
 * the unit tests check. serial_ns / par_ns (may be NULL) get the estimates. */
int lp_par_threads(int64_t work, int64_t extent, int nthreads, const LpParCost *c,
                   double *serial_ns, double *par_ns);

/* Records a decision for lp_par_explain (kernel name, the loop's work, the
 * threads allowed and chosen, the estimates). */
void lp_par_note(const char *kernel, int64_t work, int nthreads, int chosen, double serial_ns,
                 double par_ns);

/* Prints the cost model's figures and each distinct decision recorded
 * (ttrun --explain-schedule, --profile). Nothing when none was recorded. */
void lp_par_explain(FILE *out);

#endif
