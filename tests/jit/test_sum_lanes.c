/* test_sum_lanes.c - the JIT's f32 sums in lanes (lower.c, sum_lanes;
 * spec/jit.md "Reductions") against the reference.
 *
 * A sum whose reduced axes end with the innermost dims adds the contiguous
 * block of those dims into 16 f64 lanes, combined pairwise. Checked: random
 * shapes and axes with the producers BatchNorm feeds its sums (x, x * x,
 * x - broadcast(mean)), on 1 and 2 threads and bit-identical between them
 * and between runs; every single axis and BatchNorm's (0, 2, 3); long
 * reductions where rounding matters, against an exact sum; which shapes
 * take the path.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "jit.h"
#include "kernels.h"
#include "loop.h"
#include "randgraph.h"

static const SrcLoc L0 = {0};

/* Does the fused lowering of g sum in lanes (a kernel with 16 f64 locals)? */
static bool uses_lanes(const IrGraph *g) {
    LpProg *p = lp_lower(g, true);
    bool any = false;
    for (int k = 0; k < p->nkernels; k++) {
        int f64 = 0;
        for (int i = 0; i < p->kernels[k].nlocals; i++) f64 += p->kernels[k].local_ty[i] == LT_F64;
        any = any || f64 >= 16;
    }
    lp_free(p);
    return any;
}

static float *rand_f32(RgRng *r, int64_t n, double lo, double hi) {
    float *d = malloc((size_t)(n ? n : 1) * sizeof *d);
    for (int64_t i = 0; i < n; i++) d[i] = (float)rg_unif(r, lo, hi);
    return d;
}

/* Runs g (one f32 output) naive, and by the JIT on 1 and 2 threads and on
 * 1 thread again; the JIT results within tol of the reference and
 * bit-identical among themselves. */
static bool check(const IrGraph *g, void **in, const char *what) {
    const IrNode *o = &g->nodes[g->outputs[0]];
    int64_t n = shape_numel(&o->shape);
    size_t bytes = (size_t)(n ? n : 1) * sizeof(float);
    float *want = malloc(bytes), *got[3];
    KernelErr kerr;
    char err[256];
    cr_assert(rt_naive_run(g, in, (void **)&want, NULL, &kerr), "%s: naive: %s", what, kerr.msg);
    for (int t = 0; t < 3; t++) {
        Jit *j = jit_new(2);
        jit_set_threads(j, t == 1 ? 2 : 1);
        got[t] = malloc(bytes);
        memset(got[t], 0x7f, bytes);
        cr_assert(jit_run(j, g, in, (void **)&got[t], err, sizeof err), "%s: jit: %s", what, err);
        jit_free(j);
    }
    bool ok = true;
    double tol = ir_ops[o->op].tol; /* rmax: 0, exact */
    for (int64_t k = 0; k < n && ok; k++) {
        double a = got[0][k], b = want[k];
        bool close = tu_f32_close(got[0][k], want[k], tol);
        if (!close)
            cr_log_error("%s: element %lld: jit %.9g, naive %.9g", what, (long long)k, a, b);
        if (memcmp(&got[0][k], &got[1][k], 4) || memcmp(&got[0][k], &got[2][k], 4)) {
            cr_log_error("%s: element %lld differs between runs/threads: %.9g %.9g %.9g", what,
                         (long long)k, got[0][k], got[1][k], got[2][k]);
            close = false;
        }
        ok = close;
    }
    for (int t = 0; t < 3; t++) free(got[t]);
    free(want);
    return ok;
}

/* sum(prod(x), axes): prod 0: x, 1: x * x, 2: x - broadcast(m) with m of
 * x's shape with the reduced dims 1 (BatchNorm's centering), 3: x times a
 * weight of the last dim reshaped and broadcast (LayerNorm's). */
static int build(IrGraph *g, Shape s, const int *axes, int na, int prod, bool keep) {
    int x = ir_input(g, TY_F32, s, NULL, L0);
    if (prod == 1) x = ir_binary(g, OP_MUL, x, x, L0);
    if (prod == 2) {
        Shape t = s;
        for (int i = 0; i < na; i++) t.d[axes[i]] = 1;
        x = ir_binary(g, OP_SUB, x, ir_broadcast_to(g, ir_input(g, TY_F32, t, NULL, L0), s, L0),
                      L0);
    }
    if (prod == 3) { /* x * w, w [d] reshaped to [1, .., d] (LayerNorm's weight) */
        int64_t d = s.d[s.ndim - 1];
        Shape one = s;
        for (int k = 0; k < s.ndim - 1; k++) one.d[k] = 1;
        int w = ir_reshape(g, ir_input(g, TY_F32, (Shape){1, {d}}, NULL, L0), one, L0);
        x = ir_binary(g, OP_MUL, x, ir_broadcast_to(g, w, s, L0), L0);
    }
    int y = ir_reduce(g, OP_SUM, x, axes, na, keep, L0);
    ir_mark_output(g, y);
    return y;
}

/* Does the fused lowering of g take an f32 max in lanes (16 f32 locals)? */
static bool uses_max_lanes(const IrGraph *g) {
    LpProg *p = lp_lower(g, true);
    bool any = false;
    for (int k = 0; k < p->nkernels; k++) {
        int f32 = 0;
        for (int i = 0; i < p->kernels[k].nlocals; i++) f32 += p->kernels[k].local_ty[i] == LT_F32;
        any = any || f32 >= 16;
    }
    lp_free(p);
    return any;
}

static void **inputs(const IrGraph *g, RgRng *r, double lo, double hi) {
    void **in = calloc((size_t)g->ninputs + 1, sizeof *in);
    for (int i = 0, k = 0; i < g->n; i++)
        if (g->nodes[i].op == OP_INPUT)
            in[k++] = rand_f32(r, shape_numel(&g->nodes[i].shape), lo, hi);
    return in;
}

static void free_inputs(void **in, int n) {
    for (int i = 0; i < n; i++) free(in[i]);
    free(in);
}

Test(jit_sum_lanes, random_shapes, .timeout = 300) {
    RgRng r = {20261204};
    int lanes = 0, failures = 0;
    for (int v = 0; v < 60; v++) {
        Shape s = {rg_int(&r, 1, 4), {0}};
        for (int i = 0; i < s.ndim; i++)
            s.d[i] = rg_int(&r, 0, 3) ? rg_int(&r, 1, 40) : rg_int(&r, 1, 3);
        int axes[IR_MAXDIM], na = 0;
        for (int i = 0; i < s.ndim; i++)
            if (rg_int(&r, 0, 1) || i == s.ndim - 1) axes[na++] = i; /* mostly a reduced suffix */
        IrGraph g;
        ir_init(&g);
        build(&g, s, axes, na, rg_int(&r, 0, 2), rg_int(&r, 0, 1));
        lanes += uses_lanes(&g);
        void **in = inputs(&g, &r, -3, 3);
        char what[64];
        snprintf(what, sizeof what, "random variant %d", v);
        failures += !check(&g, in, what);
        free_inputs(in, g.ninputs);
        ir_free(&g);
    }
    cr_expect(failures == 0, "%d failures (see the log)", failures);
    cr_expect(lanes >= 15, "only %d of 60 graphs summed in lanes", lanes);
}

Test(jit_sum_lanes, each_axis_and_batchnorm) {
    static const int sets[][4] = {{0}, {1}, {2}, {3}, {0, 2, 3}, {2, 3}, {0, 1, 2, 3}};
    static const int nset[] = {1, 1, 1, 1, 3, 2, 4};
    RgRng r = {7};
    Shape s = {4, {5, 7, 9, 33}};
    for (int i = 0; i < 7; i++)
        for (int prod = 0; prod < 4; prod++) {
            IrGraph g;
            ir_init(&g);
            build(&g, s, sets[i], nset[i], prod, false);
            /* the path: a reduced suffix of 16 elements or more, or (set 0)
             * reduced dims before a kept suffix of 16 or more (columns);
             * the weight of producer 3 stretches part of any longer suffix
             * (no one linear offset), so only the last axis alone */
            bool want = prod == 3 ? i == 3 : (i >= 3 || i == 0);
            cr_expect(uses_lanes(&g) == want, "axes set %d, producer %d: lanes %d", i, prod,
                      uses_lanes(&g));
            void **in = inputs(&g, &r, -3, 3);
            char what[64];
            snprintf(what, sizeof what, "axes set %d, producer %d", i, prod);
            cr_expect(check(&g, in, what), "%s", what);
            free_inputs(in, g.ninputs);
            ir_free(&g);
        }
}

/* Sums down columns (lower.c, column_lanes): the reduced dims all before a
 * kept suffix, a bias gradient's [B, T, C] over B and T. Kept suffixes of
 * whole blocks of 16 and with a tail, one to three reduced dims, keepdims,
 * the three producers; an rmax the same way with NaNs in some columns
 * (NaN wins, exact). */
Test(jit_sum_lanes, columns) {
    RgRng r = {20261205};
    for (int v = 0; v < 24; v++) {
        int nred = rg_int(&r, 1, 3), nkeep = rg_int(&r, 1, 2);
        Shape s = {nred + nkeep, {0}};
        int axes[IR_MAXDIM];
        for (int i = 0; i < nred; i++) {
            s.d[i] = rg_int(&r, 1, 9);
            axes[i] = i;
        }
        s.d[nred] = v % 3 == 0 ? 32 : rg_int(&r, 16, 70); /* blocks only, or a tail */
        if (nkeep == 2) s.d[nred + 1] = rg_int(&r, 1, 3);
        IrGraph g;
        ir_init(&g);
        build(&g, s, axes, nred, v % 3, v % 2);
        cr_expect(uses_lanes(&g), "variant %d: not in column lanes", v);
        void **in = inputs(&g, &r, -3, 3);
        char what[64];
        snprintf(what, sizeof what, "columns variant %d", v);
        cr_expect(check(&g, in, what), "%s", what);
        free_inputs(in, g.ninputs);
        ir_free(&g);
    }
    IrGraph g;
    ir_init(&g);
    Shape s = {2, {13, 37}};
    int ax = 0;
    ir_mark_output(&g,
                   ir_reduce(&g, OP_RMAX, ir_input(&g, TY_F32, s, NULL, L0), &ax, 1, false, L0));
    cr_expect(uses_max_lanes(&g));
    RgRng r2 = {3};
    void **in = inputs(&g, &r2, -3, 3);
    ((float *)in[0])[5 * 37 + 2] = NAN;   /* a column of the first block */
    ((float *)in[0])[12 * 37 + 36] = NAN; /* the tail's last column, last row */
    cr_expect(check(&g, in, "rmax columns"));
    free_inputs(in, g.ninputs);
    ir_free(&g);
}

/* Short suffixes stay on the one-chain loop; integer sums too. */
Test(jit_sum_lanes, short_suffix_and_ints_keep_one_chain) {
    IrGraph g;
    ir_init(&g);
    int ax = 1;
    ir_mark_output(&g, ir_reduce(&g, OP_SUM, ir_input(&g, TY_F32, (Shape){2, {50, 15}}, NULL, L0),
                                 &ax, 1, false, L0));
    cr_expect(!uses_lanes(&g));
    ir_free(&g);
    ir_init(&g);
    ir_mark_output(&g, ir_reduce(&g, OP_SUM, ir_input(&g, TY_I32, (Shape){2, {50, 64}}, NULL, L0),
                                 &ax, 1, false, L0));
    cr_expect(!uses_lanes(&g));
    ir_free(&g);
}

/* 10^6 values near 10^4 (one f32 chain would lose ~3 digits): within tol of
 * the reference, and within 1e-7 of the exact sum (f64 lanes). Odd
 * lengths leave a remainder in the lanes. */
Test(jit_sum_lanes, long_reductions, .timeout = 120) {
    RgRng r = {99};
    static const Shape shapes[] = {{2, {3, 1000003}}, {3, {7, 2, 65537}}};
    static const int axes[][2] = {{1}, {0, 2}};
    static const int na[] = {1, 2};
    for (int c = 0; c < 2; c++) {
        IrGraph g;
        ir_init(&g);
        build(&g, shapes[c], axes[c], na[c], 0, false);
        cr_expect(uses_lanes(&g));
        void **in = inputs(&g, &r, 1e4 - 1, 1e4 + 1);
        cr_expect(check(&g, in, c ? "[7, 2, 65537] over 0, 2" : "[3, 1000003] over 1"));
        const IrNode *o = &g.nodes[g.outputs[0]];
        int64_t n = shape_numel(&o->shape);
        float *got = malloc((size_t)n * sizeof *got);
        char err[256];
        Jit *j = jit_new(2);
        cr_assert(jit_run(j, &g, in, (void **)&got, err, sizeof err), "%s", err);
        jit_free(j);
        const Shape *s = &shapes[c];
        const float *x = in[0];
        for (int64_t k = 0; k < n; k++) { /* exact enough: long double, in order */
            long double e = 0;
            if (c == 0)
                for (int64_t i = 0; i < s->d[1]; i++) e += x[k * s->d[1] + i];
            else
                for (int64_t a = 0; a < s->d[0]; a++)
                    for (int64_t i = 0; i < s->d[2]; i++) e += x[(a * s->d[1] + k) * s->d[2] + i];
            cr_expect(fabsl((long double)got[k] - e) <= 1e-7L * fabsl(e),
                      "element %lld: %.9g vs %.9Lg", (long long)k, got[k], e);
        }
        free(got);
        free_inputs(in, g.ninputs);
        ir_free(&g);
    }
}

/* rmax takes the same lanes in f32: exact against the reference on random
 * shapes (max in any order), a NaN anywhere in a row wins, -inf rows; on 1
 * and 2 threads, bit-identical. */
Test(jit_sum_lanes, rmax_in_lanes_exact, .timeout = 120) {
    RgRng r = {20261205};
    int lanes = 0, failures = 0;
    for (int v = 0; v < 40; v++) {
        Shape s = {rg_int(&r, 1, 3), {0}};
        for (int i = 0; i < s.ndim; i++) s.d[i] = rg_int(&r, 1, 40);
        int axes[IR_MAXDIM], na = 0;
        for (int i = 0; i < s.ndim; i++)
            if (rg_int(&r, 0, 1) || i == s.ndim - 1) axes[na++] = i;
        IrGraph g;
        ir_init(&g);
        int x = ir_input(&g, TY_F32, s, NULL, L0);
        if (v % 2) x = ir_binary(&g, OP_MUL, x, x, L0);
        ir_mark_output(&g, ir_reduce(&g, OP_RMAX, x, axes, na, false, L0));
        lanes += uses_max_lanes(&g);
        void **in = inputs(&g, &r, -3, 3);
        int64_t n = shape_numel(&s);
        float *d = in[0];
        if (v % 5 == 1) d[rg_int(&r, 0, (int)n - 1)] = NAN;
        if (v % 5 == 2)
            for (int64_t i = 0; i < n; i++) d[i] = -INFINITY;
        char what[64];
        snprintf(what, sizeof what, "rmax variant %d", v);
        failures += !check(&g, in, what);
        free_inputs(in, g.ninputs);
        ir_free(&g);
    }
    cr_expect(failures == 0, "%d failures (see the log)", failures);
    cr_expect(lanes >= 10, "only %d of 40 graphs took the max in lanes", lanes);
}
