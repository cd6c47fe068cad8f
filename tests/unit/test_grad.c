/* test_grad.c - gradient rules and ad_backward, checked by finite differences.
 *
 * Every differentiable op of ops.def (no OPF_NODIFF, not a leaf) must have at
 * least one case in `cases` below; grad_coverage::every_op_has_a_case fails
 * otherwise, so a new op cannot land without a gradient check.
 *
 * A case builds a small graph out = f(inputs) from seeded random inputs
 * chosen away from kinks and ties. The harness adds loss = sum(out * R) with
 * R a fixed random tensor, differentiates it with ad_backward, runs the graph
 * with the reference runtime, and compares each analytic gradient element
 * with a central difference of the loss computed in double.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "kernels.h"

#define SH(...)                                                                                    \
    shape_make((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})

#define FD_EPS  2e-3
#define FD_RTOL 2e-2
#define FD_ATOL 1e-3

#define MAXIN 12

/* -- test context: a graph and the data of its inputs -- */

typedef struct Ctx {
    IrGraph g;
    int nin;
    int node[MAXIN];
    bool wrt[MAXIN]; /* differentiate with respect to this input */
    void *data[MAXIN];
    uint64_t rng;
    int line; /* for the source locations of the nodes built */
} Ctx;

static void ctx_init(Ctx *c, uint64_t seed) {
    memset(c, 0, sizeof *c);
    ir_init(&c->g);
    c->rng = seed * 0x9E3779B97F4A7C15ull + 12345;
}

static void ctx_free(Ctx *c) {
    for (int i = 0; i < c->nin; i++) free(c->data[i]);
    ir_free(&c->g);
}

static SrcLoc L(Ctx *c) {
    return (SrcLoc){"grad_test.tt", ++c->line, 5, c->line, 9};
}

static double rnd(Ctx *c) { /* uniform in [0, 1) */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return (double)((c->rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static double unif(Ctx *c, double lo, double hi) {
    return lo + (hi - lo) * rnd(c);
}

static int add_input(Ctx *c, DType dt, Shape s, bool wrt) {
    cr_assert(c->nin < MAXIN);
    int id = ir_input(&c->g, dt, s, NULL, L(c));
    cr_assert(id >= 0, "ir_input: %s", c->g.err);
    cr_assert_eq(ir_node(&c->g, id)->attr.index, c->nin);
    int k = c->nin++;
    c->node[k] = id;
    c->wrt[k] = wrt;
    c->data[k] = calloc((size_t)(shape_numel(&s) ? shape_numel(&s) : 1), 4);
    return id;
}

static int slot_of(Ctx *c, int node) {
    for (int k = 0; k < c->nin; k++)
        if (c->node[k] == node) return k;
    cr_assert_fail("node %d is not an input", node);
    return -1;
}

static float *fdata(Ctx *c, int node) {
    return c->data[slot_of(c, node)];
}
static int64_t numel(Ctx *c, int node) {
    return shape_numel(&ir_node(&c->g, node)->shape);
}

/* f32 input, uniform in [lo, hi) */
static int in_unif(Ctx *c, Shape s, double lo, double hi) {
    int id = add_input(c, TY_F32, s, true);
    float *p = fdata(c, id);
    for (int64_t i = 0; i < shape_numel(&s); i++) p[i] = (float)unif(c, lo, hi);
    return id;
}

/* f32 input, |x| uniform in [lo, hi) with a random sign: away from 0 */
static int in_away(Ctx *c, Shape s, double lo, double hi) {
    int id = add_input(c, TY_F32, s, true);
    float *p = fdata(c, id);
    for (int64_t i = 0; i < shape_numel(&s); i++)
        p[i] = (float)(unif(c, lo, hi) * (rnd(c) < 0.5 ? -1 : 1));
    return id;
}

/* f32 input of distinct values at least 0.08 apart: no ties within eps */
static int in_distinct(Ctx *c, Shape s) {
    int id = add_input(c, TY_F32, s, true);
    float *p = fdata(c, id);
    int64_t n = shape_numel(&s);
    for (int64_t i = 0; i < n; i++) p[i] = (float)((double)i - (double)n / 2);
    for (int64_t i = n - 1; i > 0; i--) { /* shuffle */
        int64_t j = (int64_t)(rnd(c) * (double)(i + 1));
        float t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    for (int64_t i = 0; i < n; i++) p[i] = (float)(p[i] * 0.1 + unif(c, 0, 0.02));
    return id;
}

/* i32 input with the given values (indices: never differentiated) */
static int in_idx(Ctx *c, Shape s, const int32_t *vals) {
    int id = add_input(c, TY_I32, s, false);
    memcpy(fdata(c, id), vals, (size_t)shape_numel(&s) * 4);
    return id;
}

/* f32 input of 0/1 values, not differentiated */
static int in_mask(Ctx *c, Shape s) {
    int id = add_input(c, TY_F32, s, false);
    float *p = fdata(c, id);
    for (int64_t i = 0; i < shape_numel(&s); i++) p[i] = rnd(c) < 0.5f ? 0.0f : 1.0f;
    return id;
}

static void no_wrt(Ctx *c, int node) {
    c->wrt[slot_of(c, node)] = false;
}

/* -- running graphs -- */

static void run(Ctx *c, const int *outs, int nout, float **bufs) {
    c->g.nout = 0;
    for (int j = 0; j < nout; j++) ir_mark_output(&c->g, outs[j]);
    cr_assert(rt_naive_run(&c->g, c->data, (void *const *)bufs, NULL, NULL));
}

/* Runs the graph and returns node `id`'s values (caller frees). */
static float *eval(Ctx *c, int id) {
    float *buf = calloc((size_t)(numel(c, id) ? numel(c, id) : 1), 4);
    run(c, &id, 1, &buf);
    return buf;
}

/* -- the finite-difference harness -- */

typedef int (*BuildFn)(Ctx *c);

typedef struct GradCase {
    const char *name;
    OpKind op; /* the op this case checks; OP__COUNT for composites */
    BuildFn build;
} GradCase;

static double loss_of(Ctx *c, int out, const float *r, float *obuf) {
    run(c, &out, 1, &obuf);
    double l = 0;
    for (int64_t i = 0; i < numel(c, out); i++) l += (double)obuf[i] * r[i];
    return l;
}

/* set by the grad_fd_fused tests: the graph must hold attention_grad */
static bool expect_fused;

static void check_case(const GradCase *k) {
    uint64_t seed = 1469598103934665603ull;
    for (const char *s = k->name; *s; s++) seed = (seed ^ (unsigned char)*s) * 1099511628211ull;
    Ctx c;
    ctx_init(&c, seed);
    IrGraph *g = &c.g;
    int out = k->build(&c);
    cr_assert(out >= 0, "%s: building the graph failed: %s", k->name, g->err);
    cr_assert_eq(ir_node(g, out)->dtype, TY_F32, "%s: output is not f32", k->name);
    if (k->op != OP__COUNT) {
        bool has = false;
        for (int i = 0; i <= out; i++) has |= ir_node(g, i)->op == k->op;
        cr_assert(has, "%s: the graph has no %s node", k->name, ir_ops[k->op].name);
    }

    int r = add_input(&c, TY_F32, ir_node(g, out)->shape, false);
    float *rd = fdata(&c, r);
    for (int64_t i = 0; i < numel(&c, r); i++) rd[i] = (float)unif(&c, -1, 1);
    int loss = ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, out, r, L(&c)), NULL, 0, false, L(&c));
    cr_assert(loss >= 0, "%s: loss: %s", k->name, g->err);
    cr_assert_eq(ir_node(g, loss)->shape.ndim, 0);

    int wrt[MAXIN], slot[MAXIN], grads[MAXIN], nw = 0;
    for (int i = 0; i < c.nin; i++)
        if (c.wrt[i]) {
            slot[nw] = i;
            wrt[nw++] = c.node[i];
        }
    cr_assert(nw > 0, "%s: nothing to differentiate", k->name);
    int before = g->n;
    cr_assert(ad_backward(g, loss, wrt, nw, grads), "%s: ad_backward: %s", k->name, g->err);
    if (expect_fused) {
        bool fused = false;
        for (int i = before; i < g->n; i++) fused |= ir_node(g, i)->op == OP_ATTENTION_GRAD;
        cr_assert(fused, "%s: the fused backward was not taken", k->name);
    }
    char err[512];
    cr_assert(ir_verify(g, err, sizeof err), "%s: ir_verify after ad_backward: %s", k->name, err);
    for (int i = before; i < g->n; i++)
        cr_assert(ir_node(g, i)->loc.line > 0, "%s: gradient node %d has no location", k->name, i);

    /* analytic gradients; a missing one (-1) must be 0 numerically */
    int outs[MAXIN + 1], nout = 1;
    float *bufs[MAXIN + 1], *ana_of[MAXIN];
    outs[0] = out;
    bufs[0] = calloc((size_t)numel(&c, out) + 1, 4);
    for (int j = 0; j < nw; j++) {
        const IrNode *w = ir_node(g, wrt[j]);
        ana_of[j] = calloc((size_t)numel(&c, wrt[j]) + 1, 4);
        if (grads[j] < 0) continue;
        const IrNode *gn = ir_node(g, grads[j]);
        char s1[64], s2[64];
        cr_assert(shape_eq(&gn->shape, &w->shape) && gn->dtype == w->dtype,
                  "%s: gradient of input %d is %s%s, the input %s%s", k->name, slot[j],
                  dtype_name(gn->dtype), shape_str(&gn->shape, s1, 64), dtype_name(w->dtype),
                  shape_str(&w->shape, s2, 64));
        outs[nout] = grads[j];
        bufs[nout++] = ana_of[j];
    }
    run(&c, outs, nout, bufs);

    /* numeric gradients: central differences of the loss in double */
    for (int j = 0; j < nw; j++) {
        float *x = c.data[slot[j]];
        for (int64_t i = 0; i < numel(&c, wrt[j]); i++) {
            float x0 = x[i], xp = (float)(x0 + FD_EPS), xm = (float)(x0 - FD_EPS);
            x[i] = xp;
            double lp = loss_of(&c, out, rd, bufs[0]);
            x[i] = xm;
            double lm = loss_of(&c, out, rd, bufs[0]);
            x[i] = x0;
            double num = (lp - lm) / ((double)xp - (double)xm), ana = ana_of[j][i];
            double tol = FD_ATOL + FD_RTOL * fmax(fabs(num), fabs(ana));
            cr_assert(fabs(num - ana) <= tol,
                      "%s: d loss / d input%d[%lld]: analytic %.6g, numeric %.6g (x = %g)", k->name,
                      slot[j], (long long)i, ana, num, (double)x0);
        }
    }
    free(bufs[0]);
    for (int j = 0; j < nw; j++) free(ana_of[j]);
    ctx_free(&c);
}

/* -- cases: one or more per differentiable op, then composites -- */

#define UNARY_CASE(name, OPK, lo, hi, away)                                                        \
    static int build_##name(Ctx *c) {                                                              \
        int x = (away) ? in_away(c, SH(3, 4), lo, hi) : in_unif(c, SH(3, 4), lo, hi);              \
        return ir_unary(&c->g, OPK, x, L(c));                                                      \
    }

UNARY_CASE(neg, OP_NEG, -2, 2, false)
UNARY_CASE(exp, OP_EXP, -2, 2, false)
UNARY_CASE(log, OP_LOG, 0.3, 3, false)
UNARY_CASE(sqrt, OP_SQRT, 0.3, 3, false)
UNARY_CASE(rsqrt, OP_RSQRT, 0.3, 3, false)
UNARY_CASE(tanh, OP_TANH, -2, 2, false)
UNARY_CASE(sigmoid, OP_SIGMOID, -3, 3, false)
UNARY_CASE(relu, OP_RELU, 0.1, 2, true)
UNARY_CASE(abs, OP_ABS, 0.1, 2, true)
UNARY_CASE(sin, OP_SIN, -3, 3, false)
UNARY_CASE(cos, OP_COS, -3, 3, false)

static int build_add_bcast(Ctx *c) { /* [3, 4] + [4] */
    int a = in_unif(c, SH(3, 4), -1, 1), b = in_unif(c, SH(4), -1, 1);
    return ir_binary(&c->g, OP_ADD, a, b, L(c));
}

static int build_add_same(Ctx *c) { /* also a + a: accumulation */
    int a = in_unif(c, SH(2, 3), -1, 1), b = in_unif(c, SH(2, 3), -1, 1);
    int s = ir_binary(&c->g, OP_ADD, a, b, L(c));
    return ir_binary(&c->g, OP_ADD, s, a, L(c));
}

static int build_sub_bcast(Ctx *c) { /* [3, 4] - [3, 1] and [3, 1] - [3, 4] */
    int a = in_unif(c, SH(3, 4), -1, 1), b = in_unif(c, SH(3, 1), -1, 1);
    int d = ir_binary(&c->g, OP_SUB, a, b, L(c));
    return ir_binary(&c->g, OP_SUB, b, d, L(c));
}

static int build_mul_bcast(Ctx *c) { /* [2, 1, 4] * [3, 1] -> [2, 3, 4] */
    int a = in_unif(c, SH(2, 1, 4), -1, 1), b = in_unif(c, SH(3, 1), -1, 1);
    return ir_binary(&c->g, OP_MUL, a, b, L(c));
}

static int build_mul_scalar(Ctx *c) { /* [3, 4] * [] */
    int a = in_unif(c, SH(3, 4), -1, 1), b = in_unif(c, shape_scalar(), 0.5, 2);
    return ir_binary(&c->g, OP_MUL, a, b, L(c));
}

static int build_div(Ctx *c) {
    int a = in_unif(c, SH(3, 4), -1, 1), b = in_away(c, SH(3, 4), 0.5, 2);
    return ir_binary(&c->g, OP_DIV, a, b, L(c));
}

static int build_div_bcast(Ctx *c) { /* [4] / [3, 4] */
    int a = in_unif(c, SH(4), -1, 1), b = in_away(c, SH(3, 4), 0.5, 2);
    return ir_binary(&c->g, OP_DIV, a, b, L(c));
}

static int build_pow(Ctx *c) {
    int a = in_unif(c, SH(3, 4), 0.5, 2), b = in_unif(c, SH(3, 4), -1.5, 2.5);
    return ir_binary(&c->g, OP_POW, a, b, L(c));
}

static int build_pow_scalar_exp(Ctx *c) { /* [3, 4] ^ [] */
    int a = in_unif(c, SH(3, 4), 0.5, 2), b = in_unif(c, shape_scalar(), 1.5, 2.5);
    return ir_binary(&c->g, OP_POW, a, b, L(c));
}

/* a and b differ by at least 0.1 everywhere, in both directions */
static void separated(Ctx *c, int a, int b) {
    float *pa = fdata(c, a), *pb = fdata(c, b);
    for (int64_t i = 0; i < numel(c, a); i++)
        pb[i] = pa[i] + (float)(unif(c, 0.1, 0.8) * (rnd(c) < 0.5 ? -1 : 1));
}

static int build_max(Ctx *c) {
    int a = in_unif(c, SH(3, 4), -1, 1), b = in_unif(c, SH(3, 4), -1, 1);
    separated(c, a, b);
    return ir_binary(&c->g, OP_MAX, a, b, L(c));
}

static int build_min(Ctx *c) {
    int a = in_unif(c, SH(3, 4), -1, 1), b = in_unif(c, SH(3, 4), -1, 1);
    separated(c, a, b);
    return ir_binary(&c->g, OP_MIN, a, b, L(c));
}

static int build_max_bcast(Ctx *c) { /* relu-like: max(x, [0.05]) */
    int a = in_away(c, SH(3, 4), 0.2, 1), b = in_unif(c, SH(1), 0.04, 0.06);
    return ir_binary(&c->g, OP_MAX, a, b, L(c));
}

static int build_where(Ctx *c) {
    int m = in_mask(c, SH(3, 4));
    int a = in_unif(c, SH(3, 4), -1, 1), b = in_unif(c, SH(3, 4), -1, 1);
    return ir_where(&c->g, m, a, b, L(c));
}

static int build_where_cmp(Ctx *c) { /* where(x > y, x * x, y) with a scalar y */
    int x = in_away(c, SH(3, 4), 0.2, 1), y = in_unif(c, SH(1), -0.01, 0.01);
    int m = ir_binary(&c->g, OP_GT, x, y, L(c));
    return ir_where(&c->g, m, ir_binary(&c->g, OP_MUL, x, x, L(c)), y, L(c));
}

static int build_sum_axis(Ctx *c) {
    int x = in_unif(c, SH(3, 4), -1, 1);
    return ir_reduce(&c->g, OP_SUM, x, (int[]){1}, 1, false, L(c));
}

static int build_sum_keepdims(Ctx *c) { /* [2, 3, 4] over axes 0, 2, keepdims */
    int x = in_unif(c, SH(2, 3, 4), -1, 1);
    return ir_reduce(&c->g, OP_SUM, x, (int[]){0, 2}, 2, true, L(c));
}

static int build_sum_all(Ctx *c) {
    int x = in_unif(c, SH(2, 3, 4), -1, 1);
    return ir_reduce(&c->g, OP_SUM, x, NULL, 0, false, L(c));
}

static int build_sum_neg_axis(Ctx *c) { /* sum(x, -2) * x.sum(0, keepdims) */
    int x = in_unif(c, SH(2, 3), -1, 1);
    int a = ir_reduce(&c->g, OP_SUM, x, (int[]){-2}, 1, false, L(c));
    int b = ir_reduce(&c->g, OP_SUM, x, (int[]){0}, 1, true, L(c));
    return ir_binary(&c->g, OP_MUL, a, b, L(c));
}

static int build_rmax_axis(Ctx *c) {
    int x = in_distinct(c, SH(3, 4));
    return ir_reduce(&c->g, OP_RMAX, x, (int[]){1}, 1, false, L(c));
}

static int build_rmax_keepdims(Ctx *c) {
    int x = in_distinct(c, SH(2, 3, 4));
    return ir_reduce(&c->g, OP_RMAX, x, (int[]){0, 2}, 2, true, L(c));
}

static int build_rmax_all(Ctx *c) {
    int x = in_distinct(c, SH(3, 4));
    return ir_reduce(&c->g, OP_RMAX, x, NULL, 0, false, L(c));
}

static int build_reshape(Ctx *c) {
    int x = in_unif(c, SH(2, 6), -1, 1);
    return ir_reshape(&c->g, x, SH(3, -1, 2), L(c));
}

static int build_permute(Ctx *c) { /* a 3-cycle: its own inverse it is not */
    int x = in_unif(c, SH(2, 3, 4), -1, 1);
    return ir_permute(&c->g, x, (int[]){2, 0, 1}, L(c));
}

static int build_transpose(Ctx *c) {
    int x = in_unif(c, SH(3, 5), -1, 1);
    return ir_transpose(&c->g, x, 0, 1, L(c));
}

static int build_broadcast_col(Ctx *c) { /* [3, 1] -> [3, 4] */
    int x = in_unif(c, SH(3, 1), -1, 1);
    return ir_broadcast_to(&c->g, x, SH(3, 4), L(c));
}

static int build_broadcast_rank(Ctx *c) { /* [4] -> [2, 3, 4] */
    int x = in_unif(c, SH(4), -1, 1);
    return ir_broadcast_to(&c->g, x, SH(2, 3, 4), L(c));
}

static int build_broadcast_two(Ctx *c) { /* [1, 3, 1] -> [2, 3, 4] */
    int x = in_unif(c, SH(1, 3, 1), -1, 1);
    return ir_broadcast_to(&c->g, x, SH(2, 3, 4), L(c));
}

static int build_slice_step(Ctx *c) { /* x[1:5:2, ::3] of [5, 7] */
    int x = in_unif(c, SH(5, 7), -1, 1);
    IrSliceDim d[2] = {{true, true, true, 1, 5, 2}, {false, false, true, 0, 0, 3}};
    return ir_slice(&c->g, x, d, 2, L(c));
}

/* a * b + c with a, b, c side by side along axis 1 of x (q, k, v of one
 * projection); width 6: they cover x (the gradient is one concat), 7: not
 * the last column (a padded concat) */
static int slices_side_by_side(Ctx *c, int64_t width, int *xo) {
    int x = in_unif(c, SH(3, width), -1, 1), p[3];
    for (int i = 0; i < 3; i++) {
        IrSliceDim d[2] = {{false, false, false, 0, 0, 1},
                           {true, true, false, 2 * i, 2 * i + 2, 1}};
        p[i] = ir_slice(&c->g, x, d, 2, L(c));
    }
    if (xo) *xo = x;
    return ir_binary(&c->g, OP_ADD, ir_binary(&c->g, OP_MUL, p[0], p[1], L(c)), p[2], L(c));
}

static int build_slices_cover(Ctx *c) {
    return slices_side_by_side(c, 6, NULL);
}

static int build_slices_part(Ctx *c) {
    return slices_side_by_side(c, 7, NULL);
}

static int build_slice_neg(Ctx *c) { /* x[-3:, 1:-1] of [4, 5] */
    int x = in_unif(c, SH(4, 5), -1, 1);
    IrSliceDim d[2] = {{true, false, false, -3, 0, 1}, {true, true, false, 1, -1, 1}};
    return ir_slice(&c->g, x, d, 2, L(c));
}

static int build_pad(Ctx *c) { /* [3, 4] into [7, 8] at (1, 2) step (2, 1) */
    int x = in_unif(c, SH(3, 4), -1, 1);
    IrAttr a = {0};
    a.shape = SH(7, 8);
    a.start[0] = 1, a.start[1] = 2;
    a.step[0] = 2, a.step[1] = 1;
    return ir_add(&c->g, OP_PAD, &x, 1, &a, L(c));
}

static int build_concat0(Ctx *c) {
    int x = in_unif(c, SH(1, 3), -1, 1), y = in_unif(c, SH(2, 3), -1, 1);
    return ir_concat(&c->g, (int[]){x, y}, 2, 0, L(c));
}

static int build_concat1(Ctx *c) { /* three inputs on the last axis, one twice */
    int x = in_unif(c, SH(2, 2), -1, 1), y = in_unif(c, SH(2, 3), -1, 1);
    int z = in_unif(c, SH(2, 1), -1, 1);
    return ir_concat(&c->g, (int[]){x, y, z, x}, 4, -1, L(c));
}

static int build_matmul(Ctx *c) {
    int a = in_unif(c, SH(3, 4), -1, 1), b = in_unif(c, SH(4, 5), -1, 1);
    return ir_matmul(&c->g, a, b, L(c));
}

static int build_matmul_batched(Ctx *c) {
    int a = in_unif(c, SH(2, 3, 4), -1, 1), b = in_unif(c, SH(2, 4, 2), -1, 1);
    return ir_matmul(&c->g, a, b, L(c));
}

static int build_matmul_bcast(Ctx *c) { /* [2, 3, 4] @ [4, 5]: b broadcast */
    int a = in_unif(c, SH(2, 3, 4), -1, 1), b = in_unif(c, SH(4, 5), -1, 1);
    return ir_matmul(&c->g, a, b, L(c));
}

static int build_matmul_self(Ctx *c) { /* a @ a^T */
    int a = in_unif(c, SH(3, 4), -1, 1);
    return ir_matmul(&c->g, a, ir_transpose(&c->g, a, 0, 1, L(c)), L(c));
}

static int build_gather(Ctx *c) { /* repeated indices accumulate */
    int t = in_unif(c, SH(5, 3), -1, 1);
    int i = in_idx(c, SH(6), (int32_t[]){0, 2, 2, 4, 0, 2});
    return ir_gather(&c->g, t, i, L(c));
}

static int build_gather_2d(Ctx *c) { /* table [4] (rows of scalars), idx [2, 3] */
    int t = in_unif(c, SH(4), -1, 1);
    int i = in_idx(c, SH(2, 3), (int32_t[]){3, 1, 3, 0, 3, 1});
    return ir_gather(&c->g, t, i, L(c));
}

static int build_cumsum(Ctx *c) { /* middle axis */
    int x = in_unif(c, SH(2, 4, 3), -1, 1);
    return ir_cumsum(&c->g, x, 1, false, L(c));
}

static int build_cumsum_reverse(Ctx *c) {
    int x = in_unif(c, SH(3, 5), -1, 1);
    return ir_cumsum(&c->g, x, -1, true, L(c));
}

static int build_round(Ctx *c) { /* zero almost everywhere; away from halves */
    int x = in_unif(c, SH(2, 3), 0.1, 0.4);
    return ir_binary(&c->g, OP_ADD, ir_unary(&c->g, OP_ROUND, x, L(c)), x, L(c));
}

/* sorted values: take_along(x, argsort(x)); each gradient goes back to the
 * element it came from (values are distinct with probability 1) */
static int build_sort_values(Ctx *c) {
    int x = in_unif(c, SH(3, 6), -1, 1);
    int i = ir_argsort(&c->g, x, 1, true, L(c));
    return ir_take_along(&c->g, x, i, 1, L(c));
}

static int build_scatter_add(Ctx *c) {
    int s = in_unif(c, SH(6, 3), -1, 1);
    int i = in_idx(c, SH(6), (int32_t[]){1, 4, 1, 0, 1, 4});
    IrAttr a = {0};
    a.shape = SH(5, 3);
    return ir_add(&c->g, OP_SCATTER_ADD, (int[]){s, i}, 2, &a, L(c));
}

static int build_cast(Ctx *c) { /* an explicit f32 -> f32 cast node */
    int x = in_unif(c, SH(3, 4), -1, 1);
    IrAttr a = {0};
    a.dtype = TY_F32;
    int y = ir_add(&c->g, OP_CAST, &x, 1, &a, L(c));
    return ir_unary(&c->g, OP_EXP, y, L(c));
}

/* convolution and pooling */

static IrWindow conv_win(int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                         int64_t groups) {
    IrWindow w = {.stride = {sh, sw}, .padding = {ph, pw}, .dilation = {dh, dw}, .groups = groups};
    return w;
}

static IrWindow pool_win(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
    IrWindow w = {.kernel = {kh, kw}, .stride = {sh, sw}, .padding = {ph, pw}};
    return w;
}

static int build_conv2d(Ctx *c) { /* every option at once, and a bias */
    int x = in_unif(c, SH(2, 4, 5, 6), -1, 1), w = in_unif(c, SH(6, 2, 3, 2), -1, 1);
    int b = in_unif(c, SH(6), -1, 1);
    IrWindow win = conv_win(2, 1, 1, 0, 1, 2, 2);
    return ir_conv2d(&c->g, x, w, b, &win, L(c));
}

static int build_conv2d_same(Ctx *c) { /* 3x3, padding 1 */
    int x = in_unif(c, SH(1, 2, 4, 4), -1, 1), w = in_unif(c, SH(3, 2, 3, 3), -1, 1);
    IrWindow win = conv_win(1, 1, 1, 1, 1, 1, 1);
    return ir_conv2d(&c->g, x, w, -1, &win, L(c));
}

static int build_conv2d_backward_input(Ctx *c) {
    int gy = in_unif(c, SH(2, 4, 3, 3), -1, 1), w = in_unif(c, SH(4, 2, 3, 3), -1, 1);
    IrAttr a = {0};
    a.win = conv_win(2, 2, 1, 1, 1, 1, 1);
    a.shape = SH(2, 2, 5, 5);
    return ir_add(&c->g, OP_CONV2D_BACKWARD_INPUT, (int[]){gy, w}, 2, &a, L(c));
}

static int build_conv2d_backward_weight(Ctx *c) {
    int x = in_unif(c, SH(2, 4, 5, 5), -1, 1), gy = in_unif(c, SH(2, 4, 3, 3), -1, 1);
    IrAttr a = {0};
    a.win = conv_win(2, 2, 1, 1, 1, 1, 2);
    a.shape = SH(4, 2, 3, 3);
    return ir_add(&c->g, OP_CONV2D_BACKWARD_WEIGHT, (int[]){x, gy}, 2, &a, L(c));
}

static int build_max_pool2d(Ctx *c) { /* overlapping windows, -inf padding */
    int x = in_distinct(c, SH(2, 3, 5, 5));
    IrWindow win = pool_win(3, 3, 2, 2, 1, 1);
    return ir_pool2d(&c->g, OP_MAX_POOL2D, x, &win, L(c));
}

static int build_avg_pool2d(Ctx *c) {
    int x = in_unif(c, SH(2, 2, 5, 5), -1, 1);
    IrWindow win = pool_win(3, 2, 2, 1, 1, 1);
    return ir_pool2d(&c->g, OP_AVG_POOL2D, x, &win, L(c));
}

static int build_avg_pool2d_backward(Ctx *c) {
    int gy = in_unif(c, SH(2, 2, 3, 3), -1, 1);
    IrAttr a = {0};
    a.win = pool_win(3, 3, 2, 2, 1, 1);
    a.shape = SH(2, 2, 5, 5);
    return ir_add(&c->g, OP_AVG_POOL2D_BACKWARD, &gy, 1, &a, L(c));
}

/* composites */

static int build_cmp_mask(Ctx *c) { /* x * (x > y): comparisons pass nothing */
    int x = in_away(c, SH(3, 4), 0.2, 1), y = in_unif(c, SH(3, 4), -0.05, 0.05);
    int m = ir_binary(&c->g, OP_GT, x, y, L(c));
    return ir_binary(&c->g, OP_MUL, x, m, L(c));
}

static int build_two_uses(Ctx *c) { /* x * y + sin(x) */
    int x = in_unif(c, SH(2, 3), -1, 1), y = in_unif(c, SH(2, 3), -1, 1);
    IrGraph *g = &c->g;
    return ir_binary(g, OP_ADD, ir_binary(g, OP_MUL, x, y, L(c)), ir_unary(g, OP_SIN, x, L(c)),
                     L(c));
}

/* log_softmax over the last axis of x [N, C], max-subtracted */
static int log_softmax(Ctx *c, int x) {
    IrGraph *g = &c->g;
    int m = ir_reduce(g, OP_RMAX, x, (int[]){-1}, 1, true, L(c));
    int z = ir_binary(g, OP_SUB, x, m, L(c));
    int s = ir_reduce(g, OP_SUM, ir_unary(g, OP_EXP, z, L(c)), (int[]){-1}, 1, true, L(c));
    return ir_binary(g, OP_SUB, z, ir_unary(g, OP_LOG, s, L(c)), L(c));
}

static int build_softmax_xent_onehot(Ctx *c) { /* -sum(onehot * log_softmax(x)) / N */
    IrGraph *g = &c->g;
    int x = in_distinct(c, SH(4, 5));
    int y = add_input(c, TY_F32, SH(4, 5), false);
    const int label[4] = {1, 0, 4, 2};
    for (int i = 0; i < 4; i++) fdata(c, y)[i * 5 + label[i]] = 1;
    int nll = ir_binary(g, OP_MUL, y, log_softmax(c, x), L(c));
    int s = ir_reduce(g, OP_SUM, nll, NULL, 0, false, L(c));
    return ir_binary(g, OP_DIV, s, ir_const(g, TY_F32, shape_scalar(), -4.0, L(c)), L(c));
}

static int build_softmax_xent_gather(Ctx *c) { /* picks log p[i, label i] with gather */
    IrGraph *g = &c->g;
    int x = in_distinct(c, SH(3, 4));
    int flat = in_idx(c, SH(3), (int32_t[]){0 * 4 + 2, 1 * 4 + 3, 2 * 4 + 0});
    int lp = ir_reshape(g, log_softmax(c, x), SH(12), L(c));
    return ir_unary(g, OP_NEG, ir_gather(g, lp, flat, L(c)), L(c));
}

static int build_mlp(Ctx *c) { /* sum((tanh(x @ w1 + b1) @ w2 + b2 - t)^2) */
    IrGraph *g = &c->g;
    int x = in_unif(c, SH(4, 3), -1, 1);
    no_wrt(c, x);
    int w1 = in_unif(c, SH(3, 5), -1, 1), b1 = in_unif(c, SH(5), -0.5, 0.5);
    int w2 = in_unif(c, SH(5, 2), -1, 1), b2 = in_unif(c, SH(2), -0.5, 0.5);
    int t = in_unif(c, SH(4, 2), -1, 1);
    no_wrt(c, t);
    int h = ir_unary(g, OP_TANH, ir_binary(g, OP_ADD, ir_matmul(g, x, w1, L(c)), b1, L(c)), L(c));
    int o = ir_binary(g, OP_ADD, ir_matmul(g, h, w2, L(c)), b2, L(c));
    int d = ir_binary(g, OP_SUB, o, t, L(c));
    return ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, d, d, L(c)), NULL, 0, false, L(c));
}

static int build_mlp_relu(Ctx *c) { /* relu hidden layer; x @ w1 kept away from 0 */
    IrGraph *g = &c->g;
    int x = in_away(c, SH(2, 3), 0.3, 1), w1 = in_away(c, SH(3, 4), 0.3, 1);
    float *px = fdata(c, x), *pw = fdata(c, w1);
    for (bool kink = true; kink;) { /* redraw w1 until no pre-activation is near 0 */
        kink = false;
        for (int i = 0; i < 12; i++) pw[i] = (float)unif(c, -1, 1);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 4; j++) {
                double s = 0;
                for (int k = 0; k < 3; k++) s += px[i * 3 + k] * pw[k * 4 + j];
                kink |= fabs(s) < 0.1;
            }
    }
    int h = ir_unary(g, OP_RELU, ir_matmul(g, x, w1, L(c)), L(c));
    int w2 = in_unif(c, SH(4, 2), -1, 1);
    return ir_matmul(g, h, w2, L(c));
}

static int build_layernorm(Ctx *c) { /* (x - mean) * rsqrt(var + 1e-5) * gamma */
    IrGraph *g = &c->g;
    int x = in_unif(c, SH(3, 4), -2, 2), gamma = in_unif(c, SH(4), 0.5, 1.5);
    int n = ir_const(g, TY_F32, shape_scalar(), 4.0, L(c));
    int mean = ir_binary(g, OP_DIV, ir_reduce(g, OP_SUM, x, (int[]){-1}, 1, true, L(c)), n, L(c));
    int d = ir_binary(g, OP_SUB, x, mean, L(c));
    int var = ir_binary(
        g, OP_DIV,
        ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, d, d, L(c)), (int[]){-1}, 1, true, L(c)), n,
        L(c));
    int eps = ir_const(g, TY_F32, shape_scalar(), 1e-5, L(c));
    int inv = ir_unary(g, OP_RSQRT, ir_binary(g, OP_ADD, var, eps, L(c)), L(c));
    return ir_binary(g, OP_MUL, ir_binary(g, OP_MUL, d, inv, L(c)), gamma, L(c));
}

static int build_attention(Ctx *c) { /* softmax(q k^T / 2) v with embedded tokens */
    IrGraph *g = &c->g;
    int emb = in_unif(c, SH(5, 4), -1, 1);
    int tok = in_idx(c, SH(3), (int32_t[]){4, 1, 4});
    int wq = in_unif(c, SH(4, 4), -1, 1), wk = in_unif(c, SH(4, 4), -1, 1);
    int h = ir_gather(g, emb, tok, L(c));
    int q = ir_matmul(g, h, wq, L(c)), k = ir_matmul(g, h, wk, L(c));
    int s = ir_matmul(g, q, ir_transpose(g, k, 0, 1, L(c)), L(c));
    s = ir_binary(g, OP_MUL, s, ir_const(g, TY_F32, shape_scalar(), 0.5, L(c)), L(c));
    int p = ir_unary(g, OP_EXP, log_softmax(c, s), L(c));
    return ir_matmul(g, p, h, L(c));
}

static int build_sigmoid_bce(Ctx *c) { /* -(t log s + (1 - t) log(1 - s)), s = sigmoid(x) */
    IrGraph *g = &c->g;
    int x = in_unif(c, SH(6), -2, 2), t = in_mask(c, SH(6));
    int s = ir_unary(g, OP_SIGMOID, x, L(c));
    int one = ir_const(g, TY_F32, shape_scalar(), 1.0, L(c));
    int a = ir_binary(g, OP_MUL, t, ir_unary(g, OP_LOG, s, L(c)), L(c));
    int b = ir_binary(g, OP_MUL, ir_binary(g, OP_SUB, one, t, L(c)),
                      ir_unary(g, OP_LOG, ir_binary(g, OP_SUB, one, s, L(c)), L(c)), L(c));
    return ir_unary(g, OP_NEG, ir_binary(g, OP_ADD, a, b, L(c)), L(c));
}

/* the attention op: batch dims, Tq < Tk, D != Dv, causal (bottom-right)
 * with a runtime len that masks the last key */
static int build_attention_op(Ctx *c) {
    int q = in_unif(c, SH(2, 3, 4), -1, 1), k = in_unif(c, SH(2, 5, 4), -1, 1);
    int v = in_unif(c, SH(2, 5, 3), -1, 1);
    return ir_attention(&c->g, q, k, v, -1, false, NAN, L(c));
}
static int build_attention_causal(Ctx *c) {
    int q = in_unif(c, SH(2, 3, 4), -1, 1), k = in_unif(c, SH(2, 5, 4), -1, 1);
    int v = in_unif(c, SH(2, 5, 3), -1, 1);
    int len = in_idx(c, shape_scalar(), (int32_t[]){4});
    return ir_attention(&c->g, q, k, v, len, true, 0.7, L(c));
}

/* causal, Tq > Tk and len 2: queries 0 and 1 see no key (their output is 0,
 * so no gradient), query 2 sees key 0 alone, query 3 keys 0 and 1; key 2
 * is past len */
static int build_attention_masked_rows(Ctx *c) {
    int q = in_unif(c, SH(1, 4, 3), -1, 1), k = in_unif(c, SH(1, 3, 3), -1, 1);
    int v = in_unif(c, SH(1, 3, 2), -1, 1);
    int len = in_idx(c, shape_scalar(), (int32_t[]){2});
    return ir_attention(&c->g, q, k, v, len, true, 1.3, L(c));
}

static const GradCase cases[] = {
    {"neg", OP_NEG, build_neg},
    {"exp", OP_EXP, build_exp},
    {"log", OP_LOG, build_log},
    {"sqrt", OP_SQRT, build_sqrt},
    {"rsqrt", OP_RSQRT, build_rsqrt},
    {"tanh", OP_TANH, build_tanh},
    {"sigmoid", OP_SIGMOID, build_sigmoid},
    {"relu", OP_RELU, build_relu},
    {"abs", OP_ABS, build_abs},
    {"sin", OP_SIN, build_sin},
    {"cos", OP_COS, build_cos},
    {"add_bcast", OP_ADD, build_add_bcast},
    {"add_same", OP_ADD, build_add_same},
    {"sub_bcast", OP_SUB, build_sub_bcast},
    {"mul_bcast", OP_MUL, build_mul_bcast},
    {"mul_scalar", OP_MUL, build_mul_scalar},
    {"div", OP_DIV, build_div},
    {"div_bcast", OP_DIV, build_div_bcast},
    {"pow", OP_POW, build_pow},
    {"pow_scalar_exp", OP_POW, build_pow_scalar_exp},
    {"max", OP_MAX, build_max},
    {"max_bcast", OP_MAX, build_max_bcast},
    {"min", OP_MIN, build_min},
    {"where", OP_WHERE, build_where},
    {"where_cmp", OP_WHERE, build_where_cmp},
    {"sum_axis", OP_SUM, build_sum_axis},
    {"sum_keepdims", OP_SUM, build_sum_keepdims},
    {"sum_all", OP_SUM, build_sum_all},
    {"sum_neg_axis", OP_SUM, build_sum_neg_axis},
    {"rmax_axis", OP_RMAX, build_rmax_axis},
    {"rmax_keepdims", OP_RMAX, build_rmax_keepdims},
    {"rmax_all", OP_RMAX, build_rmax_all},
    {"reshape", OP_RESHAPE, build_reshape},
    {"permute", OP_PERMUTE, build_permute},
    {"transpose", OP_PERMUTE, build_transpose},
    {"broadcast_col", OP_BROADCAST, build_broadcast_col},
    {"broadcast_rank", OP_BROADCAST, build_broadcast_rank},
    {"broadcast_two", OP_BROADCAST, build_broadcast_two},
    {"slice_step", OP_SLICE, build_slice_step},
    {"slice_neg", OP_SLICE, build_slice_neg},
    {"slices_cover", OP_SLICE, build_slices_cover},
    {"slices_part", OP_SLICE, build_slices_part},
    {"pad", OP_PAD, build_pad},
    {"concat0", OP_CONCAT, build_concat0},
    {"concat1", OP_CONCAT, build_concat1},
    {"matmul", OP_MATMUL, build_matmul},
    {"matmul_batched", OP_MATMUL, build_matmul_batched},
    {"matmul_bcast", OP_MATMUL, build_matmul_bcast},
    {"matmul_self", OP_MATMUL, build_matmul_self},
    {"gather", OP_GATHER, build_gather},
    {"gather_2d", OP_GATHER, build_gather_2d},
    {"scatter_add", OP_SCATTER_ADD, build_scatter_add},
    {"cast", OP_CAST, build_cast},
    {"conv2d", OP_CONV2D, build_conv2d},
    {"conv2d_same", OP_CONV2D, build_conv2d_same},
    {"conv2d_backward_input", OP_CONV2D_BACKWARD_INPUT, build_conv2d_backward_input},
    {"conv2d_backward_weight", OP_CONV2D_BACKWARD_WEIGHT, build_conv2d_backward_weight},
    {"max_pool2d", OP_MAX_POOL2D, build_max_pool2d},
    {"avg_pool2d", OP_AVG_POOL2D, build_avg_pool2d},
    {"avg_pool2d_backward", OP_AVG_POOL2D_BACKWARD, build_avg_pool2d_backward},
    {"cumsum", OP_CUMSUM, build_cumsum},
    {"cumsum_reverse", OP_CUMSUM, build_cumsum_reverse},
    {"round", OP_ROUND, build_round},
    {"sort_values", OP__COUNT, build_sort_values},
    {"cmp_mask", OP__COUNT, build_cmp_mask},
    {"two_uses", OP__COUNT, build_two_uses},
    {"softmax_xent_onehot", OP__COUNT, build_softmax_xent_onehot},
    {"softmax_xent_gather", OP__COUNT, build_softmax_xent_gather},
    {"mlp", OP__COUNT, build_mlp},
    {"mlp_relu", OP__COUNT, build_mlp_relu},
    {"layernorm", OP__COUNT, build_layernorm},
    {"attention", OP__COUNT, build_attention},
    {"attention_op", OP_ATTENTION, build_attention_op},
    {"attention_causal", OP_ATTENTION, build_attention_causal},
    {"attention_masked_rows", OP_ATTENTION, build_attention_masked_rows},
    {"sigmoid_bce", OP__COUNT, build_sigmoid_bce},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

static void run_named(const char *name) {
    for (int i = 0; i < NCASES; i++)
        if (!strcmp(cases[i].name, name)) {
            check_case(&cases[i]);
            return;
        }
    cr_assert_fail("no case %s", name);
}

/* One test per case, so a failure names its case. */
#define FD(name)                                                                                   \
    Test(grad_fd, name) {                                                                          \
        run_named(#name);                                                                          \
    }

FD(neg)
FD(exp)
FD(log)
FD(sqrt)
FD(rsqrt)
FD(tanh)
FD(sigmoid)
FD(relu)
FD(abs)
FD(sin)
FD(cos)
FD(add_bcast)
FD(add_same)
FD(sub_bcast)
FD(mul_bcast)
FD(mul_scalar)
FD(div)
FD(div_bcast)
FD(pow)
FD(pow_scalar_exp)
FD(max)
FD(max_bcast)
FD(min)
FD(where)
FD(where_cmp)
FD(sum_axis)
FD(sum_keepdims)
FD(sum_all)
FD(sum_neg_axis)
FD(rmax_axis)
FD(rmax_keepdims)
FD(rmax_all)
FD(reshape)
FD(permute)
FD(transpose)
FD(broadcast_col)
FD(broadcast_rank)
FD(broadcast_two)
FD(slice_step)
FD(slice_neg)
FD(slices_cover)
FD(slices_part)
FD(pad)
FD(concat0)
FD(concat1)
FD(matmul)
FD(matmul_batched)
FD(matmul_bcast)
FD(matmul_self)
FD(gather)
FD(gather_2d)
FD(scatter_add)
FD(cast)
FD(conv2d)
FD(conv2d_same)
FD(conv2d_backward_input)
FD(conv2d_backward_weight)
FD(max_pool2d)
FD(avg_pool2d)
FD(avg_pool2d_backward)
FD(cumsum)
FD(cumsum_reverse)
FD(round)
FD(sort_values)
FD(cmp_mask)
FD(two_uses)
FD(softmax_xent_onehot)
FD(softmax_xent_gather)
FD(mlp)
FD(mlp_relu)
FD(layernorm)
FD(attention)
FD(attention_op)
FD(attention_causal)
FD(attention_masked_rows)
FD(sigmoid_bce)

/* The attention cases again through the fused backward (attention_lse,
 * attention_grad), which grad_attention takes only past
 * IR_ATTENTION_FUSED_MIN pairs: forced here. */
#define FD_FUSED(name)                                                                             \
    Test(grad_fd_fused, name) {                                                                    \
        int64_t old = ir_set_attention_fused_min(0);                                               \
        expect_fused = true;                                                                       \
        run_named(#name);                                                                          \
        expect_fused = false;                                                                      \
        ir_set_attention_fused_min(old);                                                           \
    }

FD_FUSED(attention_op)
FD_FUSED(attention_causal)
FD_FUSED(attention_masked_rows)

/* -- coverage: every differentiable op has a case, every case a test -- */

/* The ops of attention's fused backward: differentiating them (a second
 * derivative of attention) is an error, checked by grad_second_order. */
static bool second_order_error(int op) {
    return op == OP_ATTENTION_LSE || op == OP_ATTENTION_GRAD;
}

Test(grad_coverage, every_op_has_a_case) {
    for (int op = 0; op < OP__COUNT; op++) {
        unsigned f = ir_ops[op].flags;
        if ((f & (OPF_NODIFF | OPF_LEAF)) || second_order_error(op)) continue;
        bool has = false;
        for (int i = 0; i < NCASES; i++) has |= cases[i].op == (OpKind)op;
        cr_expect(has, "op %s is differentiable but has no gradient check in test_grad.c",
                  ir_ops[op].name);
    }
}

Test(grad_coverage, every_op_has_a_rule) {
    for (int op = 0; op < OP__COUNT; op++)
        cr_expect(ir_grad_rules[op] != NULL, "op %s has no gradient rule", ir_ops[op].name);
}

Test(grad_coverage, case_names_unique) {
    for (int i = 0; i < NCASES; i++)
        for (int j = i + 1; j < NCASES; j++)
            cr_expect(strcmp(cases[i].name, cases[j].name), "case %s twice", cases[i].name);
}

/* -- OPF_NODIFF ops: the rule gives no gradient and builds nothing -- */

Test(grad_nodiff, rules_give_none) {
    int checked = 0;
    for (int op = 0; op < OP__COUNT; op++) {
        unsigned f = ir_ops[op].flags;
        if (!(f & OPF_NODIFF)) continue;
        Ctx c;
        ctx_init(&c, (uint64_t)op);
        IrGraph *g = &c.g;
        int a = in_unif(&c, SH(3, 4), -1, 1), b = in_unif(&c, SH(3, 4), -1, 1), id = -1;
        if (f & OPF_LEAF) {
            IrAttr at = {0};
            at.dtype = TY_F32;
            at.shape = SH(3, 4);
            at.index = g->ninputs;
            id = ir_add(g, (OpKind)op, NULL, 0, &at, L(&c));
        } else if (f & OPF_CMP) {
            id = ir_binary(g, (OpKind)op, a, b, L(&c));
        } else if (op == OP_MAX_POOL2D_INDEX) {
            IrAttr at = {0};
            at.win = pool_win(2, 2, 2, 2, 0, 0);
            int x = in_unif(&c, SH(1, 1, 4, 4), -1, 1);
            id = ir_add(g, (OpKind)op, &x, 1, &at, L(&c));
        } else if ((f & OPF_REDUCE) || op == OP_ARGSORT) {
            IrAttr at = {0};
            at.axis = 1;
            at.axes = 2;
            id = ir_add(g, (OpKind)op, &a, 1, &at, L(&c));
        } else if (op == OP_QUANTIZE || op == OP_DEQUANTIZE || op == OP_REQUANTIZE ||
                   op == OP_QMATMUL) {
            int s = ir_const(g, TY_F32, shape_scalar(), 0.5, L(&c));
            int z = ir_const(g, TY_I32, shape_scalar(), 0, L(&c));
            int q = ir_quantize(g, a, s, z, IR_NO_AXIS, L(&c));
            if (op == OP_QUANTIZE)
                id = q;
            else if (op == OP_DEQUANTIZE)
                id = ir_dequantize(g, q, s, z, IR_NO_AXIS, L(&c));
            else if (op == OP_REQUANTIZE)
                id =
                    ir_requantize(g, ir_cast(g, a, TY_I32, L(&c)), s, z, TY_F32, IR_NO_AXIS, L(&c));
            else
                id = ir_qmatmul(g, q, ir_transpose(g, q, 0, 1, L(&c)), L(&c));
        } else if (op == OP_WRITE_ROWS) {
            int src = in_unif(&c, SH(1, 4), -1, 1);
            id = ir_write_rows(g, a, src, ir_const(g, TY_I32, shape_scalar(), 1, L(&c)), L(&c));
        } else if (op == OP_QCONV2D) {
            int s = ir_const(g, TY_F32, shape_scalar(), 0.5, L(&c));
            int z = ir_const(g, TY_I32, shape_scalar(), 0, L(&c));
            int q =
                ir_quantize(g, ir_reshape(g, a, SH(1, 1, 3, 4), L(&c)), s, z, IR_NO_AXIS, L(&c));
            IrWindow win = {.stride = {1, 1}, .dilation = {1, 1}, .groups = 1};
            id = ir_qconv2d(g, q, q, 0, &win, L(&c));
        } else {
            cr_expect_fail("no way to build a node of OPF_NODIFF op %s in this test",
                           ir_ops[op].name);
            ctx_free(&c);
            continue;
        }
        cr_assert(id >= 0, "%s: %s", ir_ops[op].name, g->err);
        cr_assert_eq(ir_node(g, id)->op, (OpKind)op);
        int gout = ir_const(g, TY_F32, ir_node(g, id)->shape, 1.0, L(&c));
        cr_assert(gout >= 0);
        int nin = ir_node(g, id)->nin, gin[4] = {0, 0, 0, 0}, before = g->n;
        cr_assert(ir_grad_rules[op](g, id, gout, gin), "%s: %s", ir_ops[op].name, g->err);
        for (int i = 0; i < nin; i++)
            cr_expect_eq(gin[i], -1, "%s: input %d got a gradient", ir_ops[op].name, i);
        cr_expect_eq(g->n, before, "%s: the rule built nodes", ir_ops[op].name);
        checked++;
        ctx_free(&c);
    }
    cr_expect(checked >= 9, "only %d OPF_NODIFF ops", checked);
}

Test(grad_nodiff, argmax_stops_gradient) { /* loss = sum(cast(argmax(x))) * 1 + sum(x) */
    Ctx c;
    ctx_init(&c, 7);
    IrGraph *g = &c.g;
    int x = in_unif(&c, SH(3, 4), -1, 1);
    int am = ir_cast(g, ir_argmax(g, x, 1, false, L(&c)), TY_F32, L(&c));
    int loss = ir_reduce(g, OP_SUM, am, NULL, 0, false, L(&c));
    int gr = 0;
    cr_assert(ad_backward(g, loss, &x, 1, &gr), "%s", g->err);
    cr_expect_eq(gr, -1);
    ctx_free(&c);
}

/* -- ad_backward -- */

/* The gradients of slices side by side are one concat (padded where they
 * do not cover x), not pads added together (autodiff.c, add_grads). */
Test(grad_backward, slices_side_by_side_are_one_concat) {
    for (int64_t w = 6; w <= 7; w++) {
        Ctx c;
        ctx_init(&c, 3);
        IrGraph *g = &c.g;
        int x, out = slices_side_by_side(&c, w, &x);
        int loss = ir_reduce(g, OP_SUM, out, NULL, 0, false, L(&c));
        int gr = -1;
        cr_assert(ad_backward(g, loss, &x, 1, &gr), "%s", g->err);
        const IrNode *n = ir_node(g, gr);
        if (w == 7) {
            cr_expect_eq(n->op, OP_PAD, "width 7: a padded concat, got %s", ir_ops[n->op].name);
            n = ir_node(g, n->in[0]);
        }
        cr_expect_eq(n->op, OP_CONCAT, "width %lld: got %s", (long long)w, ir_ops[n->op].name);
        cr_expect_eq(n->nin, 3, "one concat of the three pieces");
        ctx_free(&c);
    }
}

Test(grad_backward, unrelated_wrt_is_none) {
    Ctx c;
    ctx_init(&c, 1);
    IrGraph *g = &c.g;
    int x = in_unif(&c, SH(2, 3), -1, 1), y = in_unif(&c, SH(2, 3), -1, 1);
    int loss = ir_reduce(g, OP_SUM, ir_unary(g, OP_EXP, x, L(&c)), NULL, 0, false, L(&c));
    int grads[2];
    cr_assert(ad_backward(g, loss, (int[]){y, x}, 2, grads), "%s", g->err);
    cr_expect_eq(grads[0], -1);
    cr_expect_geq(grads[1], 0);
    ctx_free(&c);
}

Test(grad_backward, x_times_x_is_2x) {
    Ctx c;
    ctx_init(&c, 2);
    IrGraph *g = &c.g;
    int x = in_unif(&c, SH(5), -2, 2);
    int loss = ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, x, x, L(&c)), NULL, 0, false, L(&c));
    int gx;
    cr_assert(ad_backward(g, loss, &x, 1, &gx), "%s", g->err);
    float *v = eval(&c, gx), *px = fdata(&c, x);
    for (int i = 0; i < 5; i++) cr_expect_float_eq(v[i], 2 * px[i], 1e-6);
    free(v);
    ctx_free(&c);
}

Test(grad_backward, nonscalar_loss_is_sum) { /* d sum(3x) / dx = 3 */
    Ctx c;
    ctx_init(&c, 3);
    IrGraph *g = &c.g;
    int x = in_unif(&c, SH(2, 3), -2, 2);
    int y = ir_binary(g, OP_MUL, x, ir_const(g, TY_F32, SH(2, 3), 3.0, L(&c)), L(&c));
    int gx;
    cr_assert(ad_backward(g, y, &x, 1, &gx), "%s", g->err);
    float *v = eval(&c, gx);
    for (int i = 0; i < 6; i++) cr_expect_float_eq(v[i], 3.0f, 1e-6);
    free(v);
    ctx_free(&c);
}

Test(grad_backward, wrt_loss_is_ones) {
    Ctx c;
    ctx_init(&c, 4);
    IrGraph *g = &c.g;
    int x = in_unif(&c, SH(2, 2), -2, 2);
    int gx;
    cr_assert(ad_backward(g, x, &x, 1, &gx), "%s", g->err);
    float *v = eval(&c, gx);
    for (int i = 0; i < 4; i++) cr_expect_float_eq(v[i], 1.0f, 0);
    free(v);
    ctx_free(&c);
}

Test(grad_backward, wrt_intermediate) { /* h = 2x, loss = sum(h h): dh = 2h, dx = 8x */
    Ctx c;
    ctx_init(&c, 5);
    IrGraph *g = &c.g;
    int x = in_unif(&c, SH(4), -2, 2);
    int h = ir_binary(g, OP_MUL, x, ir_const(g, TY_F32, SH(4), 2.0, L(&c)), L(&c));
    int loss = ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, h, h, L(&c)), NULL, 0, false, L(&c));
    int gr[2];
    cr_assert(ad_backward(g, loss, (int[]){h, x}, 2, gr), "%s", g->err);
    cr_assert(gr[0] >= 0 && gr[1] >= 0);
    float *vh = eval(&c, gr[0]), *vx = eval(&c, gr[1]), *px = fdata(&c, x);
    for (int i = 0; i < 4; i++) {
        cr_expect_float_eq(vh[i], 4 * px[i], 1e-5);
        cr_expect_float_eq(vx[i], 8 * px[i], 1e-5);
    }
    free(vh);
    free(vx);
    ctx_free(&c);
}

Test(grad_backward, duplicate_wrt) {
    Ctx c;
    ctx_init(&c, 6);
    IrGraph *g = &c.g;
    int x = in_unif(&c, SH(3), -2, 2);
    int loss = ir_reduce(g, OP_SUM, ir_unary(g, OP_SIN, x, L(&c)), NULL, 0, false, L(&c));
    int gr[2];
    cr_assert(ad_backward(g, loss, (int[]){x, x}, 2, gr), "%s", g->err);
    cr_expect_eq(gr[0], gr[1]);
    cr_expect_geq(gr[0], 0);
    ctx_free(&c);
}

Test(grad_backward, int_wrt_is_none) {
    Ctx c;
    ctx_init(&c, 8);
    IrGraph *g = &c.g;
    int i = in_idx(&c, SH(3), (int32_t[]){1, 2, 3});
    int x = in_unif(&c, SH(3), -1, 1);
    int f = ir_binary(g, OP_MUL, ir_cast(g, i, TY_F32, L(&c)), x, L(&c));
    int loss = ir_reduce(g, OP_SUM, f, NULL, 0, false, L(&c));
    int gr[2];
    cr_assert(ad_backward(g, loss, (int[]){i, x}, 2, gr), "%s", g->err);
    cr_expect_eq(gr[0], -1);
    cr_assert_geq(gr[1], 0);
    float *v = eval(&c, gr[1]);
    for (int k = 0; k < 3; k++) cr_expect_float_eq(v[k], (float)(k + 1), 1e-6);
    free(v);
    ctx_free(&c);
}

Test(grad_backward, cast_to_int_stops_gradient) { /* f32 -> i32 -> f32 */
    Ctx c;
    ctx_init(&c, 9);
    IrGraph *g = &c.g;
    int x = in_unif(&c, SH(3), -3, 3);
    int y = ir_cast(g, ir_cast(g, x, TY_I32, L(&c)), TY_F32, L(&c));
    cr_assert(y >= 0, "%s", g->err);
    int loss = ir_reduce(g, OP_SUM, y, NULL, 0, false, L(&c));
    int gx = 0, before = g->n;
    cr_assert(ad_backward(g, loss, &x, 1, &gx), "%s", g->err);
    cr_expect_eq(gx, -1);
    cr_expect_eq(g->n, before, "built %d useless nodes", g->n - before);
    ctx_free(&c);
}

Test(grad_backward, int_loss_has_no_gradient) {
    Ctx c;
    ctx_init(&c, 10);
    IrGraph *g = &c.g;
    int x = in_unif(&c, SH(3), -3, 3);
    int loss = ir_cast(g, x, TY_I32, L(&c));
    int gx = 0;
    cr_assert(ad_backward(g, loss, &x, 1, &gx), "%s", g->err);
    cr_expect_eq(gx, -1);
    ctx_free(&c);
}

Test(grad_backward, no_useless_nodes) { /* loss = sum(x * w), wrt x: nothing reads x */
    Ctx c;
    ctx_init(&c, 11);
    IrGraph *g = &c.g;
    int x = in_unif(&c, SH(2, 3), -1, 1), w = in_unif(&c, SH(2, 3), -1, 1);
    int u = in_unif(&c, SH(2, 3), -1, 1);
    int p = ir_binary(g, OP_MUL, x, w, L(&c));
    int q = ir_unary(g, OP_EXP, u, L(&c)); /* off the path from x */
    int loss = ir_reduce(g, OP_SUM, ir_binary(g, OP_ADD, p, q, L(&c)), NULL, 0, false, L(&c));
    int gx, before = g->n;
    cr_assert(ad_backward(g, loss, &x, 1, &gx), "%s", g->err);
    for (int i = before; i < g->n; i++) {
        const IrNode *n = ir_node(g, i);
        for (int k = 0; k < n->nin; k++) {
            cr_expect_neq(n->in[k], x, "node %d (%s) reads x", i, ir_ops[n->op].name);
            cr_expect_neq(n->in[k], q, "node %d (%s) reads exp(u)", i, ir_ops[n->op].name);
        }
    }
    /* seed, and the gradient of x is seed * w (no adds, no exp rule) */
    cr_expect_leq(g->n - before, 4, "built %d nodes", g->n - before);
    ctx_free(&c);
}

Test(grad_backward, gradient_nodes_carry_forward_loc) {
    Ctx c;
    ctx_init(&c, 12);
    IrGraph *g = &c.g;
    int x = in_unif(&c, SH(3), -1, 1);
    SrcLoc at = {"model.tt", 42, 7, 42, 12};
    int e = ir_unary(g, OP_EXP, x, at);
    int loss = ir_reduce(g, OP_SUM, e, NULL, 0, false, L(&c));
    int gx;
    cr_assert(ad_backward(g, loss, &x, 1, &gx), "%s", g->err);
    const IrNode *n = ir_node(g, gx);
    cr_expect_eq(n->op, OP_MUL);
    cr_expect_str_eq(n->loc.file, "model.tt");
    cr_expect_eq(n->loc.line, 42);
    cr_expect_eq(n->loc.col, 7);
    ctx_free(&c);
}

Test(grad_backward, accumulates_with_add) { /* sin(x) + cos(x): two gradients summed */
    Ctx c;
    ctx_init(&c, 13);
    IrGraph *g = &c.g;
    int x = in_unif(&c, SH(4), -2, 2);
    int s =
        ir_binary(g, OP_ADD, ir_unary(g, OP_SIN, x, L(&c)), ir_unary(g, OP_COS, x, L(&c)), L(&c));
    int gx;
    cr_assert(ad_backward(g, s, &x, 1, &gx), "%s", g->err);
    cr_expect_eq(ir_node(g, gx)->op, OP_ADD);
    float *v = eval(&c, gx), *px = fdata(&c, x);
    for (int i = 0; i < 4; i++) cr_expect_float_eq(v[i], cosf(px[i]) - sinf(px[i]), 1e-5);
    free(v);
    ctx_free(&c);
}

Test(grad_backward, pow_negative_base_exponent_grad_is_zero) {
    Ctx c;
    ctx_init(&c, 14);
    IrGraph *g = &c.g;
    int a = add_input(&c, TY_F32, SH(3), true), b = add_input(&c, TY_F32, SH(3), true);
    float *pa = fdata(&c, a), *pb = fdata(&c, b);
    pa[0] = -2, pa[1] = -0.5f, pa[2] = 3;
    pb[0] = 2, pb[1] = 3, pb[2] = 2;
    int loss = ir_reduce(g, OP_SUM, ir_binary(g, OP_POW, a, b, L(&c)), NULL, 0, false, L(&c));
    int gr[2];
    cr_assert(ad_backward(g, loss, (int[]){a, b}, 2, gr), "%s", g->err);
    float *ga = eval(&c, gr[0]), *gb = eval(&c, gr[1]);
    cr_expect_float_eq(ga[0], -4.0f, 1e-5); /* 2 * (-2)^1 */
    cr_expect_float_eq(ga[1], 0.75f, 1e-5); /* 3 * (-0.5)^2 */
    cr_expect_float_eq(gb[0], 0.0f, 0);
    cr_expect_float_eq(gb[1], 0.0f, 0);
    cr_expect_float_eq(gb[2], (float)(9 * log(3.0)), 1e-4);
    free(ga);
    free(gb);
    ctx_free(&c);
}

Test(grad_backward, rmax_ties_all_get_gradient) { /* documented: each maximum gets g */
    Ctx c;
    ctx_init(&c, 15);
    IrGraph *g = &c.g;
    int x = add_input(&c, TY_F32, SH(4), true);
    float *px = fdata(&c, x);
    px[0] = 1, px[1] = 3, px[2] = 3, px[3] = 2;
    int loss = ir_reduce(g, OP_RMAX, x, NULL, 0, false, L(&c));
    int gx;
    cr_assert(ad_backward(g, loss, &x, 1, &gx), "%s", g->err);
    float *v = eval(&c, gx);
    float want[4] = {0, 1, 1, 0};
    for (int i = 0; i < 4; i++) cr_expect_float_eq(v[i], want[i], 0);
    free(v);
    ctx_free(&c);
}

Test(grad_backward, max_tie_goes_to_first) {
    Ctx c;
    ctx_init(&c, 16);
    IrGraph *g = &c.g;
    int a = add_input(&c, TY_F32, SH(2), true), b = add_input(&c, TY_F32, SH(2), true);
    fdata(&c, a)[0] = fdata(&c, b)[0] = 1.5f;
    fdata(&c, a)[1] = fdata(&c, b)[1] = -1.0f;
    int m = ir_binary(g, OP_MAX, a, b, L(&c)), n = ir_binary(g, OP_MIN, a, b, L(&c));
    int loss = ir_binary(g, OP_ADD, m, n, L(&c));
    int gr[2];
    cr_assert(ad_backward(g, loss, (int[]){a, b}, 2, gr), "%s", g->err);
    float *ga = eval(&c, gr[0]), *gb = eval(&c, gr[1]);
    for (int i = 0; i < 2; i++) {
        cr_expect_float_eq(ga[i], 2.0f, 0);
        cr_expect_float_eq(gb[i], 0.0f, 0);
    }
    free(ga);
    free(gb);
    ctx_free(&c);
}

Test(grad_backward, verify_and_shapes_on_mlp) {
    Ctx c;
    ctx_init(&c, 17);
    int loss = build_mlp(&c);
    cr_assert(loss >= 0, "%s", c.g.err);
    int wrt[MAXIN], gr[MAXIN], nw = 0;
    for (int i = 0; i < c.nin; i++)
        if (c.wrt[i]) wrt[nw++] = c.node[i];
    cr_assert(ad_backward(&c.g, loss, wrt, nw, gr), "%s", c.g.err);
    char err[512];
    cr_assert(ir_verify(&c.g, err, sizeof err), "%s", err);
    for (int i = 0; i < nw; i++) {
        cr_assert_geq(gr[i], 0);
        cr_expect(shape_eq(&ir_node(&c.g, gr[i])->shape, &ir_node(&c.g, wrt[i])->shape));
    }
    ctx_free(&c);
}

/* -- attention's backward ops: a gradient of them is an error naming the
 * op, never a silent zero (grad_attn.c) -- */

Test(grad_second_order, attention_backward_ops_refuse) {
    Ctx c;
    ctx_init(&c, 5);
    IrGraph *g = &c.g;
    int q = in_unif(&c, SH(2, 3, 4), -1, 1), k = in_unif(&c, SH(2, 5, 4), -1, 1);
    int v = in_unif(&c, SH(2, 5, 3), -1, 1);
    int y = ir_attention(g, q, k, v, -1, true, NAN, L(&c));
    cr_assert(y >= 0, "%s", g->err);
    int wrt[3] = {q, k, v}, grads[3];
    int64_t old = ir_set_attention_fused_min(0);
    cr_assert(ad_backward(g, y, wrt, 3, grads), "%s", g->err);
    ir_set_attention_fused_min(old);
    bool seen[OP__COUNT] = {false};
    for (int i = 0; i < 3; i++) {
        cr_assert(grads[i] >= 0);
        cr_expect_eq(ir_node(g, grads[i])->op, OP_ATTENTION_GRAD);
        cr_expect_eq(ir_node(g, grads[i])->attr.axis, i);
        seen[ir_node(g, ir_node(g, grads[i])->in[4])->op] = true;
    }
    cr_expect(seen[OP_ATTENTION_LSE], "dq, dk, dv read attention_lse");
    /* d(sum(dq^2))/dq goes through attention_grad: an error */
    int loss = ir_binary(g, OP_MUL, grads[0], grads[0], L(&c));
    int g2;
    cr_expect(!ad_backward(g, loss, &q, 1, &g2));
    cr_expect(strstr(g->err, "attention_grad: second derivatives of attention are not implemented"),
              "%s", g->err);
    /* and through attention_lse alone */
    IrAttr at = {0};
    at.scale = 0.5;
    int lse = ir_add(g, OP_ATTENTION_LSE, (int[]){q, k}, 2, &at, L(&c));
    cr_assert(lse >= 0, "%s", g->err);
    cr_expect(!ad_backward(g, lse, &k, 1, &g2));
    cr_expect(strstr(g->err, "attention_lse: second derivatives"), "%s", g->err);
    ctx_free(&c);
}

/* the composed form takes P as exp(S - lse) from attention_lse, the
 * forward's row loop: no masked row maximum (rmax) over the Tq x Tk scores
 * (the grad_fd attention cases check its values) */
Test(grad_attention_form, composed_recomputes_p_from_lse) {
    IrGraph g;
    ir_init(&g);
    SrcLoc l0 = {0};
    Shape s = shape_make(3, (int64_t[]){2, 5, 3});
    int q = ir_input(&g, TY_F32, s, NULL, l0), k = ir_input(&g, TY_F32, s, NULL, l0);
    int v = ir_input(&g, TY_F32, s, NULL, l0);
    int y = ir_attention(&g, q, k, v, -1, true, NAN, l0);
    int wrt[3] = {q, k, v}, grads[3];
    cr_assert(ad_backward(&g, y, wrt, 3, grads), "%s", g.err);
    int lse = 0, rmax = 0;
    for (int i = y + 1; i < g.n; i++) {
        lse += ir_node(&g, i)->op == OP_ATTENTION_LSE;
        rmax += ir_node(&g, i)->op == OP_RMAX;
    }
    cr_expect_eq(lse, 1, "%d attention_lse nodes", lse);
    cr_expect_eq(rmax, 0, "%d rmax nodes", rmax);
    ir_free(&g);
}

/* grad_attention's choice: composed up to IR_ATTENTION_FUSED_MIN pairs
 * (batch x Tq x Tk), fused past it (graphs built, never run) */
Test(grad_attention_form, fused_past_the_threshold) {
    static const int64_t t[2] = {4096, 4097}; /* 4096^2 = 2^24: composed */
    for (int big = 0; big < 2; big++) {
        IrGraph g;
        ir_init(&g);
        SrcLoc l0 = {0};
        Shape s = shape_make(3, (int64_t[]){1, t[big], 2});
        int q = ir_input(&g, TY_F32, s, NULL, l0), k = ir_input(&g, TY_F32, s, NULL, l0);
        int v = ir_input(&g, TY_F32, s, NULL, l0);
        int y = ir_attention(&g, q, k, v, -1, true, NAN, l0);
        int wrt[3] = {q, k, v}, grads[3];
        cr_assert(ad_backward(&g, y, wrt, 3, grads), "%s", g.err);
        for (int i = 0; i < 3; i++)
            cr_expect_eq(ir_node(&g, grads[i])->op == OP_ATTENTION_GRAD, big,
                         "T = %lld: gradient %d is %s", (long long)t[big], i,
                         ir_ops[ir_node(&g, grads[i])->op].name);
        ir_free(&g);
    }
}
