/* randgraph.h - random valid graphs for differential testing of backends.
 *
 * rg_build makes a random DAG of ops (random shapes, dtypes, broadcasting,
 * movement, reductions, matmul, gather, scatter) with the ir_* builders,
 * skipping whatever combination a builder rejects. Values are kept tame so
 * that two correct backends agree within a predictable bound:
 *   - inputs are small (f32 in [-2, 2], ints in [-20, 20], indices in
 *     [-1, V] so some are out of range);
 *   - ops that could blow up get guarded operands (exp(x) with |x| <= 8,
 *     log(|x| + 1), x / (|y| + 1), pow(|x| + 1, 2 tanh(y)), ...);
 *   - ops whose result jumps (comparisons, where's condition, f32 -> int
 *     casts, argmax) only read `exact` values: values every correct backend
 *     computes bit for bit (inputs, constants, movement, min/max/neg/abs/
 *     relu, sums in the reference's order, integers derived from those).
 * For each node the generator tracks mag (a bound on |value|) and scale (a
 * bound on the error a float backend may accumulate, in units of one f32
 * rounding), so a test compares an inexact output with
 *   |got - want| <= tol * max(1, scale).
 */
#ifndef TT_RANDGRAPH_H
#define TT_RANDGRAPH_H

#include "ir.h"

typedef struct RgRng {
    uint64_t s;
} RgRng;

uint64_t rg_next(RgRng *r);
int rg_int(RgRng *r, int lo, int hi); /* uniform in [lo, hi] */
double rg_unif(RgRng *r, double lo, double hi);

typedef struct RgGraph {
    IrGraph g;
    double *mag, *scale;   /* per node */
    bool *exact;           /* per node */
    double *in_lo, *in_hi; /* per input slot: the range of its values */
    int cap, incap;
} RgGraph;

/* Builds a random graph of about max_ops ops (at least one output). */
void rg_build(RgGraph *rg, uint64_t seed, int max_ops);
void rg_free(RgGraph *rg);

/* Input data for every slot of rg (malloc'd), drawn from the slot's range. */
void **rg_make_inputs(const RgGraph *rg, uint64_t seed);
void rg_free_inputs(const RgGraph *rg, void **in);

#endif
