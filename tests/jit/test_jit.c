/* test_jit.c - the LLVM JIT against the naive runtime.
 *
 * jit_ops:    for every op of ops.def, small graphs over random inputs of
 *             several shapes (size-1 dims, odd sizes, empty tensors,
 *             broadcasting, permuted / sliced / reshaped operands), run by
 *             rt_naive_run and by jit_run with fusion off and on, compared
 *             within ir_ops[op].tol (exact for ints and tol-0 ops).
 *             jit_ops::every_op_has_a_case fails for an op without a case.
 * jit_fusion: kernel counts of the loop IR (chains fuse into one kernel,
 *             softmax, reductions and matmul stay separate).
 * jit_cache:  one compile per structure; shapes and constants are structure.
 * jit_random: random graphs (randgraph.c), naive vs JIT. TT_RANDGRAPH_N
 *             sets the count (default 1000), TT_RANDGRAPH_SEED the first seed.
 * jit_emit:   the learner-facing dumps.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compare.h"
#include "dump_text.h"
#include "jit.h"
#include "kernels.h"
#include "loop.h"
#include "randgraph.h"

static const SrcLoc L0 = {0};

/* -- data and comparison -- */

/* Random data for every input slot of g; specials: 0, -0, inf, NaN, and
 * integer extremes, sometimes. */
static void **make_inputs(const IrGraph *g, RgRng *r, bool specials) {
    void **in = calloc((size_t)g->ninputs + 1, sizeof *in);
    for (int i = 0; i < g->n; i++) {
        const IrNode *x = &g->nodes[i];
        if (x->op != OP_INPUT) continue;
        int64_t len = shape_numel(&x->shape);
        void *d = malloc((size_t)(len ? len : 1) * dtype_size(x->dtype));
        bool idx = x->name && strncmp(x->name, "idx", 3) == 0; /* gather/scatter indices */
        int64_t V = idx ? atoll(x->name + 3) : 0;
        for (int64_t k = 0; k < len; k++) {
            int sp = specials ? rg_int(r, 0, 15) : 99;
            switch (x->dtype) {
            case TY_F32: {
                static const float sv[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1.0f};
                ((float *)d)[k] = sp < 6 ? sv[sp] : (float)rg_unif(r, -3, 3);
                break;
            }
            case TY_I32: {
                /* indices: in range, but with specials one in 16 is out
                 * (-1 or V), so that the error paths are compared too */
                int32_t v = idx && V > 0 && sp > 0 ? rg_int(r, 0, (int)V - 1)
                            : idx                  ? (rg_int(r, 0, 1) ? -1 : (int32_t)V)
                            : sp == 0              ? INT32_MIN
                            : sp == 1              ? -1
                            : sp == 2              ? INT32_MAX
                            : rg_int(r, 0, 2)      ? rg_int(r, -6, 6)
                                                   : (int32_t)rg_next(r);
                ((int32_t *)d)[k] = v;
                break;
            }
            default: {
                int8_t v = sp == 0           ? INT8_MIN
                           : sp == 1         ? -1
                           : rg_int(r, 0, 2) ? rg_int(r, -6, 6)
                                             : (int8_t)rg_next(r);
                ((int8_t *)d)[k] = v;
            }
            }
        }
        in[x->attr.index] = d;
    }
    return in;
}

static void free_ptrs(void **p, int n) {
    for (int i = 0; i < n; i++) free(p[i]);
    free(p);
}

static void **alloc_outputs(const IrGraph *g, bool poison) {
    void **out = calloc((size_t)g->nout + 1, sizeof *out);
    for (int j = 0; j < g->nout; j++) {
        const IrNode *x = &g->nodes[g->outputs[j]];
        size_t bytes = (size_t)shape_numel(&x->shape) * dtype_size(x->dtype);
        out[j] = malloc(bytes ? bytes : 1);
        memset(out[j], poison ? 0x7f : 0, bytes ? bytes : 1); /* catches unwritten elements */
    }
    return out;
}

/* Compares output j; tol_of(k) gives the tolerance of element k's output.
 * Reports the first mismatch. */
static bool compare_output(const IrGraph *g, int j, const void *got, const void *want, double tol,
                           const char *what) {
    const IrNode *x = &g->nodes[g->outputs[j]];
    int64_t len = shape_numel(&x->shape);
    for (int64_t k = 0; k < len; k++) {
        bool ok;
        double a, b;
        switch (x->dtype) {
        case TY_F32:
            a = ((const float *)got)[k];
            b = ((const float *)want)[k];
            ok = tu_f32_close((float)a, (float)b, tol);
            break;
        case TY_I32:
            a = ((const int32_t *)got)[k];
            b = ((const int32_t *)want)[k];
            ok = a == b;
            break;
        default:
            a = ((const int8_t *)got)[k];
            b = ((const int8_t *)want)[k];
            ok = a == b;
        }
        if (!ok) {
            cr_log_error("%s: output %d (%%%d %s) element %lld: jit %.9g, naive %.9g (tol %g)",
                         what, j, g->outputs[j], ir_ops[x->op].name, (long long)k, a, b, tol);
            return false;
        }
    }
    return true;
}

/* Runs g both ways; false when they disagree on failing: a run that fails
 * on its data (an index out of range) must fail on both backends with the
 * same message at the same node. *failed: both failed alike (the outputs
 * are then not compared). */
static bool run_both(Jit *jit, const IrGraph *g, void **in, void **want, void **got,
                     const char *what, bool *failed) {
    KernelErr kerr;
    char err[512];
    bool nok = rt_naive_run(g, in, want, NULL, &kerr);
    bool jok = jit_run(jit, g, in, got, err, sizeof err);
    *failed = false;
    if (nok && jok) return true;
    if (!jok && nok) {
        cr_log_error("%s: jit_run failed: %s", what, err);
        return false;
    }
    if (!nok && jok) {
        cr_log_error("%s: naive failed (%%%d: %s), the jit did not", what, kerr.node, kerr.msg);
        return false;
    }
    if (strcmp(kerr.msg, err) != 0 || kerr.node != jit_error_node(jit)) {
        cr_log_error("%s: the backends fail differently: naive %%%d: %s; jit %%%d: %s", what,
                     kerr.node, kerr.msg, jit_error_node(jit), err);
        return false;
    }
    *failed = true;
    return true;
}

/* Runs g both ways on the same inputs; true when every output agrees (or
 * both failed alike). */
static bool differential(Jit *jit, const IrGraph *g, void **in, double tol, const char *what) {
    char err[512];
    if (!ir_verify(g, err, sizeof err)) {
        cr_log_error("%s: invalid graph: %s", what, err);
        return false;
    }
    void **want = alloc_outputs(g, false), **got = alloc_outputs(g, true);
    bool failed;
    bool ok = run_both(jit, g, in, want, got, what, &failed);
    for (int j = 0; ok && !failed && j < g->nout; j++)
        ok = compare_output(g, j, got[j], want[j], tol, what);
    if (!ok) {
        char *buf = tu_graph_text(g);
        cr_log_error("%s: the graph:\n%s", what, buf);
        free(buf);
    }
    free_ptrs(want, g->nout);
    free_ptrs(got, g->nout);
    return ok;
}

/* -- the op table cases -- */

static const Shape shapes[] = {
    {0, {0}},       {1, {1}},          {1, {7}},    {2, {3, 1}},    {2, {2, 5}}, {3, {1, 4, 3}},
    {3, {2, 3, 4}}, {4, {5, 1, 2, 3}}, {2, {1, 1}}, {3, {3, 1, 5}}, {2, {0, 3}}, {1, {17}},
};
#define NSHAPES ((int)(sizeof shapes / sizeof shapes[0]))

static Shape rshape(RgRng *r, bool allow_empty, int minrank) {
    for (;;) {
        Shape s = shapes[rg_int(r, 0, NSHAPES - 1)];
        if ((allow_empty || shape_numel(&s) > 0) && s.ndim >= minrank) return s;
    }
}

static DType rdtype(RgRng *r) {
    return (DType)rg_int(r, 0, 2);
}

/* An operand of shape s: a plain input, or one reached through a permute,
 * a strided slice, a broadcast or a reshape (index remaps the JIT folds). */
static int operand(IrGraph *g, RgRng *r, DType dt, Shape s) {
    int mode = rg_int(r, 0, 5);
    if (mode == 1 && s.ndim >= 2) { /* permuted: input with dims reversed */
        Shape t = s;
        int perm[IR_MAXDIM];
        for (int i = 0; i < s.ndim; i++) {
            t.d[i] = s.d[s.ndim - 1 - i];
            perm[i] = s.ndim - 1 - i;
        }
        return ir_permute(g, ir_input(g, dt, t, NULL, L0), perm, L0);
    }
    if (mode == 2 && s.ndim >= 1) { /* every other element of a bigger input */
        Shape t = s;
        IrSliceDim d[IR_MAXDIM] = {0};
        for (int i = 0; i < s.ndim; i++) {
            t.d[i] = 2 * s.d[i] + 1;
            d[i] = (IrSliceDim){true, false, true, 1, 0, 2};
        }
        return ir_slice(g, ir_input(g, dt, t, NULL, L0), d, s.ndim, L0);
    }
    if (mode == 3 && s.ndim >= 1) { /* broadcast from size-1 dims */
        Shape t = s;
        for (int i = 0; i < s.ndim; i++)
            if (rg_int(r, 0, 1)) t.d[i] = 1;
        return ir_broadcast_to(g, ir_input(g, dt, t, NULL, L0), s, L0);
    }
    if (mode == 4) { /* reshaped from flat */
        Shape t = {1, {shape_numel(&s)}};
        return ir_reshape(g, ir_input(g, dt, t, NULL, L0), s, L0);
    }
    return ir_input(g, dt, s, NULL, L0);
}

/* An index input with values in [-1, V]: make_inputs reads V from the
 * name ("idx5"), which is not part of the structure. */
static int index_input(IrGraph *g, Shape s, int64_t V) {
    char name[32];
    snprintf(name, sizeof name, "idx%lld", (long long)V);
    return ir_input(g, TY_I32, s, name, L0);
}

typedef bool (*CaseFn)(IrGraph *g, RgRng *r, OpKind op);

static bool case_input(IrGraph *g, RgRng *r, OpKind op) {
    int a = ir_input(g, rdtype(r), rshape(r, true, 0), NULL, L0);
    ir_mark_output(g, a);
    if (rg_int(r, 0, 1)) ir_mark_output(g, ir_unary(g, OP_NEG, a, L0));
    if (rg_int(r, 0, 1)) ir_mark_output(g, a); /* twice */
    return true;
}

static bool case_const(IrGraph *g, RgRng *r, OpKind op) {
    static const double vals[] = {2.5, -7, 300, -1e10, 0, -0.0, 1e10, NAN, -129.5};
    DType dt = rdtype(r);
    double v = vals[rg_int(r, 0, 8)];
    int c = ir_const(g, dt, rshape(r, true, 0), v, L0);
    ir_mark_output(g, c);
    int a = ir_input(g, dt, g->nodes[c].shape, NULL, L0);
    ir_mark_output(g, ir_binary(g, OP_ADD, a, c, L0)); /* inlined into a kernel */
    return true;
}

static bool case_unary(IrGraph *g, RgRng *r, OpKind op) {
    DType dt = (ir_ops[op].flags & OPF_FLOAT) ? TY_F32 : rdtype(r);
    int a = operand(g, r, dt, rshape(r, true, 0));
    ir_mark_output(g, ir_unary(g, op, a, L0));
    return true;
}

/* b's shape: a's, with some dims 1 and maybe fewer leading dims */
static Shape bshape(RgRng *r, Shape s) {
    Shape t = {0};
    int drop = rg_int(r, 0, 2) == 0 ? rg_int(r, 0, s.ndim) : 0;
    for (int i = drop; i < s.ndim; i++) t.d[t.ndim++] = rg_int(r, 0, 2) == 0 ? 1 : s.d[i];
    return t;
}

static bool case_binary(IrGraph *g, RgRng *r, OpKind op) {
    DType dt = (ir_ops[op].flags & OPF_FLOAT) ? TY_F32 : rdtype(r);
    Shape s = rshape(r, true, 0), t = bshape(r, s);
    int a = operand(g, r, dt, s), b = operand(g, r, dt, t);
    if (rg_int(r, 0, 1)) { /* swap: broadcasting on either side */
        int x = a;
        a = b;
        b = x;
    }
    if (rg_int(r, 0, 5) == 0) b = a; /* x op x */
    ir_mark_output(g, ir_binary(g, op, a, b, L0));
    return true;
}

static bool case_where(IrGraph *g, RgRng *r, OpKind op) {
    Shape s = rshape(r, true, 0);
    DType dt = rdtype(r);
    int c = operand(g, r, rdtype(r), bshape(r, s));
    int a = operand(g, r, dt, s), b = operand(g, r, dt, bshape(r, s));
    ir_mark_output(g, ir_where(g, c, a, b, L0));
    return true;
}

static bool case_reduce(IrGraph *g, RgRng *r, OpKind op) {
    Shape s = rshape(r, op == OP_SUM, 0);
    int a = operand(g, r, rdtype(r), s);
    int axes[IR_MAXDIM], na = 0;
    for (int i = 0; i < s.ndim; i++)
        if (rg_int(r, 0, 1)) axes[na++] = i;
    if (rg_int(r, 0, 2) == 0) a = ir_unary(g, OP_ABS, a, L0); /* a fused producer */
    ir_mark_output(g, ir_reduce(g, op, a, axes, na, rg_int(r, 0, 1), L0));
    return true;
}

static bool case_argmax(IrGraph *g, RgRng *r, OpKind op) {
    Shape s = rshape(r, false, 1);
    int a = operand(g, r, rdtype(r), s);
    if (rg_int(r, 0, 3) == 0) { /* many ties */
        a = ir_cast(g, a, TY_I32, L0);
        a = ir_binary(g, OP_DIV, a, ir_const(g, TY_I32, shape_scalar(), 4, L0), L0);
    }
    ir_mark_output(g, ir_argmax(g, a, rg_int(r, 0, s.ndim - 1), rg_int(r, 0, 1), L0));
    return true;
}

/* argsort (with the sorted values taken through it: gather) and cumsum:
 * random shapes and axes, ties (ints divided by 4), long rows whose
 * length is no power of two (several merge passes with padding) */
static bool case_scan(IrGraph *g, RgRng *r, OpKind op) {
    static const Shape longs[] = {{2, {3, 37}}, {3, {2, 17, 3}}, {1, {64}}, {1, {1}}};
    Shape s = rg_int(r, 0, 2) ? rshape(r, true, 1) : longs[rg_int(r, 0, 3)];
    int a = operand(g, r, rdtype(r), s);
    if (rg_int(r, 0, 2) == 0) { /* many ties */
        a = ir_cast(g, a, TY_I32, L0);
        a = ir_binary(g, OP_DIV, a, ir_const(g, TY_I32, shape_scalar(), 4, L0), L0);
    }
    int ax = rg_int(r, -s.ndim, s.ndim - 1);
    bool rev = rg_int(r, 0, 1);
    if (op == OP_CUMSUM) {
        ir_mark_output(g, ir_cumsum(g, a, ax, rev, L0));
        return true;
    }
    int i = ir_argsort(g, a, ax, rev, L0);
    ir_mark_output(g, i);
    if (i >= 0) ir_mark_output(g, ir_take_along(g, a, i, ax, L0));
    return true;
}

static bool case_reshape(IrGraph *g, RgRng *r, OpKind op) {
    static const Shape pairs[][2] = {
        {{2, {2, 6}}, {2, {3, 4}}},       {{3, {2, 3, 4}}, {2, {6, 4}}},
        {{3, {2, 3, 4}}, {3, {4, 3, 2}}}, {{1, {12}}, {3, {2, 2, 3}}},
        {{2, {3, 5}}, {1, {15}}},         {{0, {0}}, {3, {1, 1, 1}}},
        {{2, {4, 3}}, {4, {2, 2, 1, 3}}}, {{2, {0, 5}}, {2, {5, 0}}},
    };
    int k = rg_int(r, 0, 7);
    Shape from = pairs[k][0], to = pairs[k][1];
    if (rg_int(r, 0, 1)) {
        Shape t = from;
        from = to;
        to = t;
    }
    int a = operand(g, r, rdtype(r), from);
    if (rg_int(r, 0, 1)) a = ir_unary(g, OP_NEG, a, L0);
    int x = ir_reshape(g, a, to, L0);
    if (x == a) return false;
    ir_mark_output(g, rg_int(r, 0, 1) ? x : ir_unary(g, OP_ABS, x, L0));
    return true;
}

static bool case_permute(IrGraph *g, RgRng *r, OpKind op) {
    Shape s = rshape(r, true, 2);
    int perm[IR_MAXDIM];
    for (int i = 0; i < s.ndim; i++) perm[i] = i;
    for (int i = s.ndim - 1; i > 0; i--) {
        int j = rg_int(r, 0, i), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    perm[0] = 1; /* never the identity */
    perm[1] = 0;
    for (int i = 2; i < s.ndim; i++) perm[i] = i;
    if (s.ndim >= 3 && rg_int(r, 0, 1)) perm[0] = 2, perm[1] = 0, perm[2] = 1;
    int a = operand(g, r, rdtype(r), s);
    ir_mark_output(g, ir_permute(g, a, perm, L0));
    return true;
}

static bool case_broadcast(IrGraph *g, RgRng *r, OpKind op) {
    Shape s = rshape(r, true, 1), t = s;
    for (int i = 0; i < s.ndim; i++)
        if (rg_int(r, 0, 1)) s.d[i] = 1;
    if (shape_eq(&s, &t)) s.d[0] = 1, t.d[0] = 3;
    int a = operand(g, r, rdtype(r), s);
    ir_mark_output(g, ir_broadcast_to(g, a, t, L0));
    return true;
}

static bool case_slice(IrGraph *g, RgRng *r, OpKind op) {
    Shape s = rshape(r, true, 1);
    IrSliceDim d[IR_MAXDIM] = {0};
    for (int i = 0; i < s.ndim; i++) {
        int n = (int)s.d[i];
        d[i] = (IrSliceDim){rg_int(r, 0, 1),  rg_int(r, 0, 1),  rg_int(r, 0, 1),
                            rg_int(r, -n, n), rg_int(r, -n, n), rg_int(r, 1, 3)};
    }
    d[0].has_start = true, d[0].start = 1; /* never the whole input */
    int a = operand(g, r, rdtype(r), s);
    int x = ir_slice(g, a, d, s.ndim, L0);
    ir_mark_output(g, x);
    return true;
}

static bool case_pad(IrGraph *g, RgRng *r, OpKind op) {
    Shape s = rshape(r, true, 0);
    IrAttr at = {0};
    at.shape = s;
    for (int i = 0; i < s.ndim; i++) {
        at.start[i] = rg_int(r, 0, 2);
        at.step[i] = rg_int(r, 1, 3);
        at.shape.d[i] =
            s.d[i] ? at.start[i] + (s.d[i] - 1) * at.step[i] + 1 + rg_int(r, 0, 2) : at.start[i];
    }
    int a = operand(g, r, rdtype(r), s);
    ir_mark_output(g, ir_add(g, OP_PAD, &a, 1, &at, L0));
    return true;
}

static bool case_concat(IrGraph *g, RgRng *r, OpKind op) {
    Shape s = rshape(r, true, 1);
    int ax = rg_int(r, 0, s.ndim - 1), n = rg_int(r, 2, 3), ins[3];
    for (int k = 0; k < n; k++) {
        Shape t = s;
        t.d[ax] = rg_int(r, 0, 3);
        ins[k] = operand(g, r, rdtype(r), t);
    }
    ir_mark_output(g, ir_concat(g, ins, n, ax, L0));
    return true;
}

static bool case_matmul(IrGraph *g, RgRng *r, OpKind op) {
    int m = rg_int(r, 1, 6), k = rg_int(r, 0, 9), n = rg_int(r, 1, 17), kind = rg_int(r, 0, 4);
    int a, b;
    if (kind == 0) { /* vector @ matrix, matrix @ vector */
        a = operand(g, r, TY_F32, (Shape){1, {k}});
        b = operand(g, r, TY_F32, (Shape){2, {k, n}});
        if (rg_int(r, 0, 1)) {
            int t = operand(g, r, TY_F32, (Shape){2, {m, k}});
            b = a;
            a = t;
        }
    } else if (kind == 1) { /* batched with a broadcast operand */
        a = operand(g, r, TY_F32, (Shape){3, {3, m, k}});
        b = operand(g, r, TY_F32, (Shape){2, {k, n}});
    } else if (kind == 2) { /* a @ b^T (the backward pass shape) */
        a = operand(g, r, TY_F32, (Shape){2, {m, k}});
        b = ir_transpose(g, operand(g, r, TY_F32, (Shape){2, {n, k}}), 0, 1, L0);
    } else {
        a = operand(g, r, kind == 3 ? TY_F32 : TY_I32, (Shape){2, {m, k}});
        b = operand(g, r, TY_F32, (Shape){2, {k, n}});
    }
    ir_mark_output(g, ir_matmul(g, a, b, L0));
    return true;
}

/* qmatmul: i8 operands with the random extremes of make_inputs (-128),
 * through the index remaps of operand(); vectors and broadcast batches */
static bool case_qmatmul(IrGraph *g, RgRng *r, OpKind op) {
    int m = rg_int(r, 1, 6), k = rg_int(r, 0, 9), n = rg_int(r, 1, 17), kind = rg_int(r, 0, 3);
    int a, b;
    if (kind == 0) {
        a = operand(g, r, TY_I8, (Shape){1, {k}});
        b = operand(g, r, TY_I8, (Shape){2, {k, n}});
    } else if (kind == 1) {
        a = operand(g, r, TY_I8, (Shape){3, {3, m, k}});
        b = operand(g, r, TY_I8, (Shape){2, {k, n}});
    } else if (kind == 2) {
        a = operand(g, r, TY_I8, (Shape){2, {m, k}});
        b = ir_transpose(g, operand(g, r, TY_I8, (Shape){2, {n, k}}), 0, 1, L0);
    } else {
        a = operand(g, r, TY_I8, (Shape){2, {m, k}});
        b = operand(g, r, TY_I8, (Shape){2, {k, n}});
    }
    ir_mark_output(g, ir_qmatmul(g, a, b, L0));
    return true;
}

/* quantize, dequantize, requantize: a scale that is a number, a tensor of
 * the data's shape or a per-channel vector; zero points likewise; data with
 * exact ties (halves) and the specials of make_inputs (NaN, inf, 0 scales,
 * INT32_MIN accumulators) */
static bool case_quant(IrGraph *g, RgRng *r, OpKind op) {
    Shape s = rshape(r, true, 0);
    DType in = op == OP_QUANTIZE ? TY_F32 : op == OP_DEQUANTIZE ? TY_I8 : TY_I32;
    int x = operand(g, r, in, s);
    bool ties = rg_int(r, 0, 1);
    if (op == OP_QUANTIZE && ties) /* halves: x / 1 has ties */
        x = ir_binary(g, OP_MUL, ir_cast(g, operand(g, r, TY_I32, s), TY_F32, L0),
                      ir_const(g, TY_F32, shape_scalar(), 0.5, L0), L0);
    int axis = IR_NO_AXIS, kind = ties ? 0 : rg_int(r, 0, 2), sc, zp;
    if (kind == 2 && s.ndim == 0) kind = 0;
    if (kind == 0) { /* numbers; ties: 1 (quantize), 0.5 (acc * 0.5, requantize) */
        static const double scales[] = {1.0, 0.5, 0.25, 1.0 / 3.0, 0.01, 40.0};
        double v = ties ? (op == OP_QUANTIZE ? 1.0 : 0.5) : scales[rg_int(r, 0, 5)];
        sc = ir_const(g, TY_F32, shape_scalar(), v, L0);
        zp = ir_const(g, TY_I32, shape_scalar(), rg_int(r, -128, 127), L0);
    } else if (kind == 1) { /* tensors of the data's shape */
        sc = operand(g, r, TY_F32, s);
        zp = operand(g, r, rg_int(r, 0, 1) ? TY_I32 : TY_I8, s);
    } else { /* per channel */
        axis = rg_int(r, 0, s.ndim - 1);
        Shape v = {1, {s.d[axis]}};
        sc = operand(g, r, TY_F32, v);
        zp = operand(g, r, TY_I32, v);
    }
    int y = op == OP_QUANTIZE ? ir_quantize(g, x, sc, zp, axis, L0)
            : op == OP_DEQUANTIZE
                ? ir_dequantize(g, x, sc, zp, axis, L0)
                : ir_requantize(g, x, sc, zp, rg_int(r, 0, 1) ? TY_I8 : TY_F32, axis, L0);
    ir_mark_output(g, y);
    return true;
}

static bool case_gather(IrGraph *g, RgRng *r, OpKind op) {
    Shape ts = rshape(r, true, 1), is = rshape(r, true, 0);
    if (ts.ndim + is.ndim - 1 > IR_MAXDIM) return false;
    int t = operand(g, r, rdtype(r), ts), idx = index_input(g, is, ts.d[0]);
    ir_mark_output(g, ir_gather(g, t, idx, L0));
    return true;
}

static bool case_scatter(IrGraph *g, RgRng *r, OpKind op) {
    Shape src = rshape(r, true, 1);
    int ni = rg_int(r, 0, src.ndim < 2 ? src.ndim : 2);
    Shape is = {0};
    IrAttr at = {0};
    for (int i = 0; i < ni; i++) is.d[is.ndim++] = src.d[i];
    at.shape.ndim = 1 + src.ndim - ni;
    at.shape.d[0] = rg_int(r, 0, 4);
    for (int i = ni; i < src.ndim; i++) at.shape.d[1 + i - ni] = src.d[i];
    int ins[2] = {operand(g, r, rdtype(r), src), index_input(g, is, at.shape.d[0])};
    ir_mark_output(g, ir_add(g, OP_SCATTER_ADD, ins, 2, &at, L0));
    return true;
}

static bool case_cast(IrGraph *g, RgRng *r, OpKind op) {
    DType from = rdtype(r), to = rdtype(r);
    if (from == to) to = (DType)((to + 1) % 3);
    int a = operand(g, r, from, rshape(r, true, 0));
    if (from == TY_F32 && rg_int(r, 0, 1)) /* values around the integer ranges */
        a = ir_binary(g, OP_MUL, a, ir_const(g, TY_F32, shape_scalar(), to == TY_I8 ? 60 : 1e9, L0),
                      L0);
    ir_mark_output(g, ir_cast(g, a, to, L0));
    return true;
}

/* A spatial size at least as large as a window of span taps padded by pad. */
static int64_t spatial(RgRng *r, int64_t span, int64_t pad) {
    int64_t lo = span - 2 * pad;
    return (lo < 1 ? 1 : lo) + rg_int(r, 0, 4);
}

static int64_t win_out(int64_t n, int64_t span, int64_t s, int64_t p) {
    return (n + 2 * p - span) / s + 1;
}

/* conv2d and its backward ops: random groups, stride, padding, dilation,
 * kernel sizes, 1..maxc channels per group; operands through the index
 * remaps of operand() */
static bool conv_case(IrGraph *g, RgRng *r, OpKind op, int maxc) {
    int64_t N = rg_int(r, 1, 2), G = rg_int(r, 1, 2), Cg = rg_int(r, 1, maxc),
            Og = rg_int(r, 1, maxc);
    int64_t k[2], H[2], Ho[2];
    IrAttr at = {0};
    at.win.groups = G;
    for (int i = 0; i < 2; i++) {
        k[i] = rg_int(r, 1, 3);
        at.win.stride[i] = rg_int(r, 1, 2);
        at.win.padding[i] = rg_int(r, 0, 2);
        at.win.dilation[i] = rg_int(r, 1, 2);
        int64_t span = at.win.dilation[i] * (k[i] - 1) + 1;
        H[i] = spatial(r, span, at.win.padding[i]);
        Ho[i] = win_out(H[i], span, at.win.stride[i], at.win.padding[i]);
    }
    Shape xs = {4, {N, G * Cg, H[0], H[1]}}, ws = {4, {G * Og, Cg, k[0], k[1]}};
    Shape ys = {4, {N, G * Og, Ho[0], Ho[1]}};
    int y;
    if (op == OP_CONV2D) {
        int x = operand(g, r, TY_F32, xs), w = operand(g, r, TY_F32, ws);
        int b = rg_int(r, 0, 1) ? operand(g, r, TY_F32, (Shape){1, {G * Og}}) : -1;
        y = ir_conv2d(g, x, w, b, &at.win, L0);
    } else if (op == OP_CONV2D_BACKWARD_INPUT) {
        at.shape = xs;
        int ins[2] = {operand(g, r, TY_F32, ys), operand(g, r, TY_F32, ws)};
        y = ir_add(g, op, ins, 2, &at, L0);
    } else {
        at.shape = ws;
        int ins[2] = {operand(g, r, TY_F32, xs), operand(g, r, TY_F32, ys)};
        y = ir_add(g, op, ins, 2, &at, L0);
    }
    if (y < 0) return false;
    ir_mark_output(g, y);
    return true;
}

static bool case_conv(IrGraph *g, RgRng *r, OpKind op) {
    return conv_case(g, r, op, 3);
}

/* qconv2d: conv_case's random windows (stride, padding, dilation, groups)
 * on i8 operands with make_inputs' extremes, any padding value */
static bool case_qconv(IrGraph *g, RgRng *r, OpKind op) {
    (void)op;
    int64_t N = rg_int(r, 1, 3), G = rg_int(r, 1, 2), Cg = rg_int(r, 1, 5), Og = rg_int(r, 1, 9);
    IrWindow win = {.groups = G};
    int64_t k[2], H[2];
    for (int i = 0; i < 2; i++) {
        k[i] = rg_int(r, 1, 3);
        win.stride[i] = rg_int(r, 1, 2);
        win.padding[i] = rg_int(r, 0, 2);
        win.dilation[i] = rg_int(r, 1, 2);
        H[i] = spatial(r, win.dilation[i] * (k[i] - 1) + 1, win.padding[i]);
    }
    int x = operand(g, r, TY_I8, (Shape){4, {N, G * Cg, H[0], H[1]}});
    int w = operand(g, r, TY_I8, (Shape){4, {G * Og, Cg, k[0], k[1]}});
    int y = ir_qconv2d(g, x, w, rg_int(r, -128, 127), &win, L0);
    if (y < 0) return false;
    ir_mark_output(g, y);
    return true;
}

/* the pooling ops: random kernel, stride, padding (at most half the kernel) */
static bool case_pool(IrGraph *g, RgRng *r, OpKind op) {
    IrAttr at = {0};
    int64_t H[2], Ho[2];
    for (int i = 0; i < 2; i++) {
        at.win.kernel[i] = rg_int(r, 1, 3);
        at.win.stride[i] = rg_int(r, 1, 3);
        at.win.padding[i] = rg_int(r, 0, (int)at.win.kernel[i] / 2);
        H[i] = spatial(r, at.win.kernel[i], at.win.padding[i]);
        Ho[i] = win_out(H[i], at.win.kernel[i], at.win.stride[i], at.win.padding[i]);
    }
    int64_t N = rg_int(r, 1, 2), C = rg_int(r, 1, 3);
    Shape xs = {4, {N, C, H[0], H[1]}}, ys = {4, {N, C, Ho[0], Ho[1]}};
    int y;
    if (op == OP_AVG_POOL2D_BACKWARD) {
        at.shape = xs;
        int gy = operand(g, r, TY_F32, ys);
        y = ir_add(g, op, &gy, 1, &at, L0);
    } else {
        /* max_pool2d takes i8 too (a quantized model's) */
        DType dt = op == OP_MAX_POOL2D && rg_int(r, 0, 1) ? TY_I8 : TY_F32;
        int x = operand(g, r, dt, xs);
        y = ir_add(g, op, &x, 1, &at, L0);
    }
    if (y < 0) return false;
    ir_mark_output(g, y);
    return true;
}

/* attention's operands q [..., Tq, D], k [..., Tk, D], v [..., Tk, Dv]
 * with 0 to 2 random batch dims, Tq in 1..tmax, Tk mostly Tq to Tq + over,
 * else any in 0..tmax (fewer keys than queries), through index remaps;
 * returns the shape of the output, [..., Tq, Dv]. */
static Shape attention_qkv(IrGraph *g, RgRng *r, int tmax, int over, int *q, int *k, int *v) {
    int nb = rg_int(r, 0, 2);
    Shape qs = {nb + 2, {0}};
    for (int i = 0; i < nb; i++) qs.d[i] = rg_int(r, 1, 3);
    Shape ks = qs, vs = qs;
    int64_t tq = rg_int(r, 1, tmax);
    int64_t tk = rg_int(r, 0, 2) ? tq + rg_int(r, 0, over) : rg_int(r, 0, tmax);
    int64_t d = rg_int(r, 1, 19), dv = rg_int(r, 1, 11);
    qs.d[nb] = tq, qs.d[nb + 1] = d;
    ks.d[nb] = tk, ks.d[nb + 1] = d;
    vs.d[nb] = tk, vs.d[nb + 1] = dv;
    *q = operand(g, r, TY_F32, qs);
    *k = operand(g, r, TY_F32, ks);
    *v = operand(g, r, TY_F32, vs);
    Shape ys = qs;
    ys.d[nb + 1] = dv;
    return ys;
}

/* attention: random batch dims, Tq <= Tk or not, D and Dv not multiples of
 * 8, causal or not, a runtime len (random i32, extremes included: clamped)
 * or none, operands through index remaps */
static bool case_attention(IrGraph *g, RgRng *r, OpKind op) {
    int q, k, v;
    attention_qkv(g, r, 9, 6, &q, &k, &v);
    int len = rg_int(r, 0, 1) ? ir_input(g, TY_I32, shape_scalar(), NULL, L0) : -1;
    double scale = rg_int(r, 0, 1) ? NAN : rg_unif(r, -1, 1);
    ir_mark_output(g, ir_attention(g, q, k, v, len, rg_int(r, 0, 1), scale, L0));
    return true;
}

/* write_rows: random batch dims, rows N, R <= N rows written, D; dst and
 * src through index remaps, src sometimes computed (fused into the kernel);
 * the position in [0, N - R], or with specials -1 or N - R + 1 (both
 * backends must refuse alike). Not aliased: the whole result is written
 * (the in-place form: tests/jit/test_kvcache.c). */
static bool case_write_rows(IrGraph *g, RgRng *r, OpKind op) {
    (void)op;
    int nb = rg_int(r, 0, 2);
    Shape ds = {nb + 2, {0}};
    for (int i = 0; i < nb; i++) ds.d[i] = rg_int(r, 1, 3);
    int64_t n = rg_int(r, 1, 9), rows = rg_int(r, 0, (int)n), d = rg_int(r, 1, 7);
    ds.d[nb] = n, ds.d[nb + 1] = d;
    Shape ss = ds;
    ss.d[nb] = rows;
    int src = operand(g, r, TY_F32, ss);
    if (rg_int(r, 0, 2) == 0) src = ir_unary(g, OP_NEG, src, L0);
    int dst = operand(g, r, TY_F32, ds), pos = index_input(g, shape_scalar(), n - rows + 1);
    ir_mark_output(g, ir_write_rows(g, dst, src, pos, L0));
    return true;
}

/* attention's fused backward, as its gradient rule emits it (lse, delta,
 * then dq, dk and dv, all outputs) on the shapes of case_attention: Tk = 0,
 * causal with Tq != Tk, a runtime len (extremes clamped) */
static bool case_attention_bwd(IrGraph *g, RgRng *r, OpKind op) {
    int q, k, v;
    Shape ys = attention_qkv(g, r, 19, 12, &q, &k, &v);
    int gy = operand(g, r, TY_F32, ys);
    int len = rg_int(r, 0, 1) ? ir_input(g, TY_I32, shape_scalar(), NULL, L0) : -1;
    IrAttr at = {0};
    at.causal = rg_int(r, 0, 1);
    at.scale = rg_unif(r, -1, 1);
    int y = ir_attention(g, q, k, v, len, at.causal, at.scale, L0);
    int lse = ir_add(g, OP_ATTENTION_LSE, (int[]){q, k, len}, len >= 0 ? 3 : 2, &at, L0);
    int last = -1;
    int delta = ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, gy, y, L0), &last, 1, false, L0);
    if (op == OP_ATTENTION_LSE) {
        ir_mark_output(g, lse);
        return true;
    }
    for (int i = 0; i < 3; i++) {
        at.axis = i;
        ir_mark_output(g, ir_add(g, OP_ATTENTION_GRAD, (int[]){q, k, v, gy, lse, delta, len},
                                 len >= 0 ? 7 : 6, &at, L0));
    }
    return true;
}

static CaseFn op_case(OpKind op) {
    switch (op) {
    case OP_INPUT:
        return case_input;
    case OP_CONST:
        return case_const;
    case OP_WHERE:
        return case_where;
    case OP_SUM:
    case OP_RMAX:
        return case_reduce;
    case OP_ARGMAX:
        return case_argmax;
    case OP_ARGSORT:
    case OP_CUMSUM:
        return case_scan;
    case OP_RESHAPE:
        return case_reshape;
    case OP_PERMUTE:
        return case_permute;
    case OP_BROADCAST:
        return case_broadcast;
    case OP_SLICE:
        return case_slice;
    case OP_PAD:
        return case_pad;
    case OP_CONCAT:
        return case_concat;
    case OP_MATMUL:
        return case_matmul;
    case OP_QMATMUL:
        return case_qmatmul;
    case OP_QUANTIZE:
    case OP_DEQUANTIZE:
    case OP_REQUANTIZE:
        return case_quant;
    case OP_GATHER:
        return case_gather;
    case OP_SCATTER_ADD:
        return case_scatter;
    case OP_CAST:
        return case_cast;
    case OP_ATTENTION:
        return case_attention;
    case OP_WRITE_ROWS:
        return case_write_rows;
    case OP_ATTENTION_LSE:
    case OP_ATTENTION_GRAD:
        return case_attention_bwd;
    case OP_CONV2D:
    case OP_CONV2D_BACKWARD_INPUT:
    case OP_CONV2D_BACKWARD_WEIGHT:
        return case_conv;
    case OP_QCONV2D:
        return case_qconv;
    case OP_MAX_POOL2D:
    case OP_MAX_POOL2D_INDEX:
    case OP_AVG_POOL2D:
    case OP_AVG_POOL2D_BACKWARD:
        return case_pool;
    default:
        break;
    }
    if ((ir_ops[op].flags & OPF_ELEMWISE) && ir_ops[op].arity == 1) return case_unary;
    if ((ir_ops[op].flags & OPF_ELEMWISE) && ir_ops[op].arity == 2) return case_binary;
    return NULL;
}

/* Does g contain op (the builders may have folded it away)? */
static bool has_op(const IrGraph *g, OpKind op) {
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == op) return true;
    return false;
}

#define VARIANTS 14

Test(jit_ops, every_op_has_a_case) {
    for (int op = 0; op < OP__COUNT; op++)
        cr_expect(op_case((OpKind)op) != NULL, "op %s has no case in test_jit.c", ir_ops[op].name);
}

Test(jit_ops, differential, .timeout = 120) {
    Jit *fused = jit_new(2), *plain = jit_new(2);
    cr_assert(fused && plain);
    jit_set_fusion(plain, false);
    int failures = 0, graphs = 0;
    for (int op = 0; op < OP__COUNT; op++) {
        CaseFn fn = op_case((OpKind)op);
        if (!fn) continue;
        RgRng r = {(uint64_t)op * 7919 + 13};
        int built = 0;
        for (int v = 0; v < VARIANTS; v++) {
            IrGraph g;
            ir_init(&g);
            bool ok = fn(&g, &r, (OpKind)op);
            for (int j = 0; ok && j < g.nout; j++) ok = g.outputs[j] >= 0;
            if (!ok || g.nout == 0 || !has_op(&g, (OpKind)op)) {
                ir_free(&g);
                continue;
            }
            built++;
            void **in = make_inputs(&g, &r, v % 3 == 2);
            char what[96];
            double tol = ir_ops[op].tol;
            snprintf(what, sizeof what, "%s variant %d (fused)", ir_ops[op].name, v);
            failures += !differential(fused, &g, in, tol, what);
            snprintf(what, sizeof what, "%s variant %d (one kernel per node)", ir_ops[op].name, v);
            failures += !differential(plain, &g, in, tol, what);
            free_ptrs(in, g.ninputs);
            ir_free(&g);
        }
        cr_expect(built >= VARIANTS / 2, "op %s: only %d graphs built", ir_ops[op].name, built);
        graphs += built;
    }
    JitStats sf = jit_stats(fused), sp = jit_stats(plain);
    cr_log_info("jit_ops: %d graphs, %lld + %lld compiles, %.0f + %.0f ms compiling", graphs,
                (long long)sf.compiles, (long long)sp.compiles, sf.compile_ms, sp.compile_ms);
    cr_expect(failures == 0, "%d differential failures (see the log)", failures);
    jit_free(fused);
    jit_free(plain);
}

/* The lowerings of the three conv ops (jit_set_conv_lowering: the direct
 * loop nests, explicit im2col + GEMM, implicit im2col where the GEMM
 * gathers B) against the reference, on random windows,
 * groups and up to 40 channels per group, so the GEMM's products cross its
 * tile edges (12 x 32 or 6 x 16) and its small-M path; "gemm chunks": the
 * batch cut into one image per chunk (a tiny column budget), where the
 * weight gradient accumulates over the chunks. Finite inputs only:
 * the GEMM multiplies the padding's zeros, where the reference skips the tap
 * (an inf weight makes NaN there, as in PyTorch; spec/jit.md). */
static bool stmts_gather(const LpStmt *s) {
    for (; s; s = s->next)
        if ((s->kind == LS_GEMM && s->gemm->gather) ||
            (s->kind == LS_LOOP && stmts_gather(s->body)))
            return true;
    return false;
}

/* Whether the implicit lowering of g has the GEMM gather B (else it fell
 * back to explicit im2col). */
static bool lowers_to_gather(const IrGraph *g) {
    LpProg *p = lp_lower_conv(g, true, LP_CONV_IMPLICIT);
    bool any = false;
    for (int k = 0; k < p->nkernels; k++) any = any || stmts_gather(p->kernels[k].body);
    lp_free(p);
    return any;
}

Test(jit_ops, conv_lowerings, .timeout = 120) {
    static const OpKind ops[] = {OP_CONV2D, OP_CONV2D_BACKWARD_INPUT, OP_CONV2D_BACKWARD_WEIGHT};
    static const char *names[] = {"auto", "direct", "im2col", "im2col chunks", "implicit"};
    static const int mode[] = {0, 1, 2, 2, 3};
    enum { NM = 5 };
    Jit *jit[NM];
    for (int m = 0; m < NM; m++) {
        jit[m] = jit_new(2);
        cr_assert(jit[m]);
        jit_set_conv_lowering(jit[m], mode[m]);
    }
    int failures = 0, built = 0, gemm_chosen = 0, gathered[3] = {0, 0, 0}, per_op[3] = {0, 0, 0};
    for (int o = 0; o < 3; o++) {
        RgRng r = {(uint64_t)o * 104729 + 7};
        for (int v = 0; v < 14; v++) {
            IrGraph g;
            ir_init(&g);
            bool ok = conv_case(&g, &r, ops[o], v < 4 ? 3 : 40);
            if (!ok || g.nout == 0 || g.outputs[0] < 0) {
                ir_free(&g);
                continue;
            }
            built++;
            for (int i = 0; i < g.n; i++)
                if (g.nodes[i].op == ops[o] && lp_conv_uses_gemm(&g, i, true)) gemm_chosen++;
            gathered[o] += lowers_to_gather(&g);
            per_op[o]++;
            void **in = make_inputs(&g, &r, false);
            for (int m = 0; m < NM; m++) {
                char what[96];
                snprintf(what, sizeof what, "%s variant %d (%s)", ir_ops[ops[o]].name, v, names[m]);
                lp_set_conv_col_budget(m == 3 ? 1 : 0);
                failures += !differential(jit[m], &g, in, 1e-4, what);
            }
            lp_set_conv_col_budget(0);
            free_ptrs(in, g.ninputs);
            ir_free(&g);
        }
    }
    cr_expect(built >= 24, "only %d graphs built", built);
    cr_expect(gemm_chosen > 0 && gemm_chosen < built, "the rule chose the GEMM %d times of %d",
              gemm_chosen, built);
    /* every forward and weight gradient gathers; the input gradient where
     * its stride is 1 (some of the cases, not all) */
    cr_log_info("conv_lowerings: implicit gathers %d/%d, %d/%d, %d/%d graphs", gathered[0],
                per_op[0], gathered[1], per_op[1], gathered[2], per_op[2]);
    cr_expect(gathered[0] == per_op[0] && gathered[2] == per_op[2] && gathered[1] > 0 &&
                  gathered[1] < per_op[1],
              "gathered %d/%d, %d/%d, %d/%d", gathered[0], per_op[0], gathered[1], per_op[1],
              gathered[2], per_op[2]);
    cr_expect(failures == 0, "%d differential failures (see the log)", failures);
    for (int m = 0; m < NM; m++) jit_free(jit[m]);
}

/* conv2d in lanes (compiler/jit/lower_conv_lanes.c), taken by the direct
 * lowering for rows of 8+ outputs: rows of 8-40 (whole blocks of 16 lanes
 * and the rest), 1-11 output rows (blocks of 4 and the rest), padding
 * 0-2 per dim (the zeroed slots, copied a group ahead), stride and
 * dilation 1-2, kernels 1-5 per dim, one group, two or depthwise, operands
 * through index remaps and x through a fused relu, a bias and a relu as
 * the epilogue; conv2d_backward_input as the forward of gy with the
 * kernel flipped (stride 1, padding up to the kernel's extent), and
 * conv2d_backward_weight (lower_conv_dw.c: up to 3x3 taps, stride 1 along
 * the rows); on 1 and 2 threads against the reference. */
Test(jit_ops, conv_lanes, .timeout = 120) {
    Jit *jit[2] = {jit_new(1), jit_new(2)};
    for (int t = 0; t < 2; t++) {
        cr_assert(jit[t]);
        jit_set_conv_lowering(jit[t], 1);
    }
    RgRng r = {424242};
    int cases = 0, lanes = 0, failures = 0;
    for (int v = 0; v < 70; v++) {
        bool bwd = v >= 30 && v < 50; /* the input gradient */
        bool dw = v >= 50;            /* the weight gradient */
        int kind = v % 3;             /* one group, two, depthwise */
        int64_t N = rg_int(&r, 1, 3), Cg = kind == 2 ? 1 : rg_int(&r, 1, 4);
        int64_t Og = kind == 2 ? 1 : rg_int(&r, 1, 3), G = kind == 0   ? 1
                                                           : kind == 1 ? 2
                                                                       : rg_int(&r, 3, 6);
        IrWindow win = {.groups = G};
        int64_t k[2], H[2], Ho[2];
        for (int i = 0; i < 2; i++) {
            k[i] = rg_int(&r, 1, i == 0 || dw ? 3 : 5);
            win.stride[i] = !bwd && !(dw && i == 1) && rg_int(&r, 1, 3) == 3 ? 2 : 1;
            win.dilation[i] = rg_int(&r, 1, 4) == 4 ? 2 : 1;
            int64_t span = win.dilation[i] * (k[i] - 1) + 1;
            win.padding[i] = rg_int(&r, 0, bwd ? (int)(span - 1) : 2);
            if (bwd) { /* dx's rows are the ones in lanes */
                H[i] = i == 0 ? rg_int(&r, 1, 11) : rg_int(&r, 8, 40);
                if (H[i] + 2 * win.padding[i] < span) H[i] = span - 2 * win.padding[i];
            } else {
                int64_t out = i == 0 ? rg_int(&r, 1, 11) : rg_int(&r, 8, 40);
                H[i] = (out - 1) * win.stride[i] + span - 2 * win.padding[i];
                if (H[i] < 1) H[i] = 1;
            }
            Ho[i] = win_out(H[i], span, win.stride[i], win.padding[i]);
        }
        IrGraph g;
        ir_init(&g);
        Shape xs = {4, {N, G * Cg, H[0], H[1]}}, ws = {4, {G * Og, Cg, k[0], k[1]}};
        Shape ys = {4, {N, G * Og, Ho[0], Ho[1]}};
        int x = operand(&g, &r, TY_F32, bwd ? ys : xs);
        int w = dw ? -1 : operand(&g, &r, TY_F32, ws);
        if (rg_int(&r, 0, 1)) x = ir_unary(&g, OP_RELU, x, L0);
        int y;
        if (bwd) {
            IrAttr at = {.win = win, .shape = xs};
            y = ir_add(&g, OP_CONV2D_BACKWARD_INPUT, (int[]){x, w}, 2, &at, L0);
        } else if (dw) {
            IrAttr at = {.win = win, .shape = ws};
            int gy = operand(&g, &r, TY_F32, ys);
            y = ir_add(&g, OP_CONV2D_BACKWARD_WEIGHT, (int[]){x, gy}, 2, &at, L0);
        } else {
            int b = rg_int(&r, 0, 1) ? operand(&g, &r, TY_F32, (Shape){1, {G * Og}}) : -1;
            y = ir_conv2d(&g, x, w, b, &win, L0);
        }
        cr_assert(y >= 0, "case %d: conv2d rejected", v);
        bool relu = rg_int(&r, 0, 1);
        if (relu) y = ir_unary(&g, OP_RELU, y, L0);
        ir_mark_output(&g, y);
        cases++;
        /* the lanes: the conv's kernel keeps one local per output of a block */
        LpProg *p = lp_lower_conv(&g, true, LP_CONV_DIRECT);
        for (int kk = 0; kk < p->nkernels; kk++)
            if (strstr(p->kernels[kk].name, "conv2d") && p->kernels[kk].nlocals >= 8) {
                lanes++;
                break;
            }
        lp_free(p);
        void **in = make_inputs(&g, &r, false);
        for (int t = 0; t < 2; t++) {
            char what[160];
            snprintf(what, sizeof what,
                     "%s case %d, %d thread(s): N %lld G %lld Cg %lld Og %lld k %lldx%lld stride "
                     "%lld,%lld pad %lld,%lld dil %lld,%lld, x %lldx%lld, relu %d",
                     bwd  ? "input gradient"
                     : dw ? "weight gradient"
                          : "forward",
                     v, t + 1, (long long)N, (long long)G, (long long)Cg, (long long)Og,
                     (long long)k[0], (long long)k[1], (long long)win.stride[0],
                     (long long)win.stride[1], (long long)win.padding[0], (long long)win.padding[1],
                     (long long)win.dilation[0], (long long)win.dilation[1], (long long)H[0],
                     (long long)H[1], relu);
            failures += !differential(jit[t], &g, in, 1e-4, what);
        }
        free_ptrs(in, g.ninputs);
        ir_free(&g);
    }
    cr_expect(lanes == cases, "the lanes lowering took %d of %d cases", lanes, cases);
    cr_expect(failures == 0, "%d differential failures (see the log)", failures);
    for (int t = 0; t < 2; t++) jit_free(jit[t]);
}

/* The rule's depthwise case: one output channel per group goes to the
 * GEMM in the JIT when its output rows have 8+ positions (the gathered
 * product of one row, computed from the image: gather_small_m), and stays
 * direct with narrower rows and in ttc's lowering (no gather there); the
 * JIT's result matches the reference either way. */
Test(jit_ops, conv_rule_depthwise) {
    Jit *jit = jit_new(2);
    cr_assert(jit);
    RgRng r = {777};
    const int64_t sizes[2] = {12, 6}; /* Wo = 12 and 6 with padding 1 */
    for (int v = 0; v < 2; v++) {
        IrGraph g;
        ir_init(&g);
        SrcLoc L0 = {0};
        IrWindow win = {{3, 3}, {1, 1}, {1, 1}, {1, 1}, 8};
        Shape xs = {4, {2, 8, sizes[v], sizes[v]}}, ws = {4, {8, 1, 3, 3}};
        int x = ir_input(&g, TY_F32, xs, "x", L0), w = ir_input(&g, TY_F32, ws, "w", L0);
        int y = ir_conv2d(&g, x, w, -1, &win, L0);
        ir_mark_output(&g, y);
        bool wide = v == 0;
        cr_expect(lp_conv_uses_gemm(&g, y, true) == wide, "Wo %lld: JIT rule", (long long)sizes[v]);
        cr_expect(!lp_conv_uses_gemm(&g, y, false), "Wo %lld: ttc's rule", (long long)sizes[v]);
        LpProg *p = lp_lower_conv(&g, true, LP_CONV_AUTO);
        bool gathers = false;
        for (int k = 0; k < p->nkernels; k++) gathers = gathers || stmts_gather(p->kernels[k].body);
        lp_free(p);
        cr_expect(gathers == wide, "Wo %lld: the JIT's lowering %s", (long long)sizes[v],
                  gathers ? "gathers" : "does not gather");
        void **in = make_inputs(&g, &r, false);
        cr_expect(differential(jit, &g, in, 1e-4, "depthwise conv2d"));
        free_ptrs(in, g.ninputs);
        ir_free(&g);
    }
    jit_free(jit);
}

/* qconv2d with the batch cut into chunks of one image (a column budget of
 * 1) and with the whole batch at once: the same integers as the reference */
Test(jit_ops, qconv_chunks, .timeout = 120) {
    Jit *jit = jit_new(2);
    cr_assert(jit);
    int failures = 0, built = 0;
    RgRng r = {424242};
    for (int v = 0; v < 12; v++) {
        IrGraph g;
        ir_init(&g);
        if (!case_qconv(&g, &r, OP_QCONV2D) || g.nout == 0 || g.outputs[0] < 0) {
            ir_free(&g);
            continue;
        }
        built++;
        void **in = make_inputs(&g, &r, false);
        for (int m = 0; m < 2; m++) {
            char what[96];
            snprintf(what, sizeof what, "qconv2d variant %d (%s)", v, m ? "chunks" : "whole");
            lp_set_conv_col_budget(m ? 1 : 0);
            failures += !differential(jit, &g, in, 0, what);
        }
        lp_set_conv_col_budget(0);
        free_ptrs(in, g.ninputs);
        ir_free(&g);
    }
    cr_expect(built >= 10, "only %d graphs built", built);
    cr_expect(failures == 0, "%d differential failures (see the log)", failures);
    jit_free(jit);
}

/* A few hand-picked values with exact answers (integer corner cases). */
Test(jit_ops, integer_corners) {
    Jit *j = jit_new(3);
    IrGraph g;
    ir_init(&g);
    Shape s = {1, {6}};
    int a = ir_input(&g, TY_I32, s, NULL, L0), b = ir_input(&g, TY_I32, s, NULL, L0);
    int f = ir_input(&g, TY_F32, s, NULL, L0);
    ir_mark_output(&g, ir_binary(&g, OP_DIV, a, b, L0));
    ir_mark_output(&g, ir_unary(&g, OP_ABS, a, L0));
    ir_mark_output(&g, ir_cast(&g, f, TY_I32, L0));
    ir_mark_output(&g, ir_cast(&g, f, TY_I8, L0));
    int32_t A[6] = {INT32_MIN, 7, -7, 5, INT32_MIN, 0}, B[6] = {-1, 0, 2, -1, 1, 0};
    float F[6] = {NAN, 3e9f, -3e9f, -2.9f, 127.9f, -128.9f};
    int32_t div[6], abs_[6], ci[6];
    int8_t c8[6];
    void *in[3] = {A, B, F}, *out[4] = {div, abs_, ci, c8};
    char err[256];
    cr_assert(jit_run(j, &g, in, out, err, sizeof err), "%s", err);
    int32_t wdiv[6] = {INT32_MIN, 0, -3, -5, INT32_MIN, 0};
    int32_t wabs[6] = {INT32_MIN, 7, 7, 5, INT32_MIN, 0};
    int32_t wci[6] = {0, INT32_MAX, INT32_MIN, -2, 127, -128};
    int8_t wc8[6] = {0, 127, -128, -2, 127, -128};
    for (int i = 0; i < 6; i++) {
        cr_expect_eq(div[i], wdiv[i], "div %d: %d", i, div[i]);
        cr_expect_eq(abs_[i], wabs[i], "abs %d: %d", i, abs_[i]);
        cr_expect_eq(ci[i], wci[i], "cast i32 %d: %d", i, ci[i]);
        cr_expect_eq(c8[i], wc8[i], "cast i8 %d: %d", i, c8[i]);
    }
    ir_free(&g);
    jit_free(j);
}

/* The conversions to i8 (cast f32 -> i8; quantize and requantize, which
 * round in f64) over whole vectors, where the JIT clamps in float before a
 * plain conversion instead of llvm.fptosi.sat: every corner of the
 * saturation (127.5, 128, -128.5, -129, huge values, infinities), NaN (0),
 * ties (half to even) and -0, against the reference, tolerance 0. 203
 * elements: several vector iterations and a remainder. */
Test(jit_ops, i8_conversions_vectorized_exact) {
    static const float fc[] = {NAN,     INFINITY, -INFINITY, 0.0f,   -0.0f,   127.0f,  127.49f,
                               127.5f,  127.99f,  128.0f,    128.5f, -128.0f, -128.5f, -128.99f,
                               -129.0f, -129.5f,  1e30f,     -1e30f, 3e9f,    -3e9f,   0.5f,
                               1.5f,    2.5f,     -0.5f,     -2.5f,  1e-40f,  254.0f,  -256.0f,
                               63.5f,   -64.5f,   255.5f,    -255.5f};
    static const int32_t ic[] = {INT32_MIN, INT32_MAX, 0,    1,    -1,  254,  255, 256, 257,
                                 -255,      -256,      -257, -258, 511, -513, 127, -129};
    enum { N = 203 };
    float x[N];
    int32_t acc[N];
    RgRng r = {0x5eed1234u};
    for (int i = 0; i < N; i++) {
        int c = rg_int(&r, 0, 2);
        x[i] = i < (int)(sizeof fc / sizeof *fc) || c == 0 ? fc[i % (sizeof fc / sizeof *fc)]
                                                           : (float)rg_unif(&r, -300, 300);
        acc[i] = i < (int)(sizeof ic / sizeof *ic) || c == 0 ? ic[i % (sizeof ic / sizeof *ic)]
                                                             : rg_int(&r, -600, 600);
    }
    static const double scales[] = {1.0, 0.5, 0.25, 3.0};
    for (int si = 0; si < 4; si++) {
        IrGraph g;
        ir_init(&g);
        Shape s = {1, {N}};
        int xi = ir_input(&g, TY_F32, s, NULL, L0), ai = ir_input(&g, TY_I32, s, NULL, L0);
        int sc = ir_const(&g, TY_F32, shape_scalar(), scales[si], L0);
        int zp = ir_const(&g, TY_I32, shape_scalar(), si * 5 - 7, L0);
        ir_mark_output(&g, ir_cast(&g, xi, TY_I8, L0));
        ir_mark_output(&g, ir_quantize(&g, xi, sc, zp, IR_NO_AXIS, L0));
        ir_mark_output(&g, ir_requantize(&g, ai, sc, zp, TY_I8, IR_NO_AXIS, L0));
        Jit *j = jit_new(1);
        void *in[2] = {x, acc};
        cr_expect(differential(j, &g, in, 0, "i8 conversions"), "scale %g", scales[si]);
        jit_free(j);
        ir_free(&g);
    }
}

/* -- fusion -- */

static int kernels_of(const IrGraph *g, bool fuse) {
    LpProg *p = lp_lower(g, fuse);
    int n = p->nkernels;
    lp_free(p);
    return n;
}

static void check_runs(const IrGraph *g, double tol) {
    Jit *j = jit_new(2);
    RgRng r = {42};
    void **in = make_inputs(g, &r, false);
    cr_expect(differential(j, g, in, tol, "fusion graph"));
    free_ptrs(in, g->ninputs);
    jit_free(j);
}

Test(jit_fusion, elementwise_chain_is_one_kernel) {
    IrGraph g;
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){2, {4, 5}}, NULL, L0);
    int y = ir_input(&g, TY_F32, (Shape){1, {5}}, NULL, L0);
    int t = ir_unary(&g, OP_EXP, x, L0);
    t = ir_binary(&g, OP_MUL, t, ir_const(&g, TY_F32, shape_scalar(), 0.5, L0), L0);
    t = ir_binary(&g, OP_ADD, t, y, L0); /* y: reshape + broadcast */
    t = ir_unary(&g, OP_TANH, t, L0);
    t = ir_unary(&g, OP_RELU, ir_transpose(&g, t, 0, 1, L0), L0);
    ir_mark_output(&g, t);
    cr_expect_eq(kernels_of(&g, true), 1);
    int ops = 0; /* every node but inputs and the const is a kernel without fusion */
    for (int i = 0; i < g.n; i++) ops += g.nodes[i].op != OP_INPUT && g.nodes[i].op != OP_CONST;
    cr_expect_eq(kernels_of(&g, false), ops);
    cr_expect_geq(ops, 8);
    check_runs(&g, 1e-5);
    ir_free(&g);
}

/* A constant broadcast to a shape and read by two kernels (GELU's 0.5, kept
 * by autodiff for the backward) is recomputed in each, never stored: the
 * two outputs are two kernels and there is no temporary. */
Test(jit_fusion, broadcast_constant_with_two_readers_is_not_stored) {
    IrGraph g;
    ir_init(&g);
    Shape s = {2, {4, 64}};
    int x = ir_input(&g, TY_F32, s, NULL, L0);
    int c = ir_broadcast_to(&g, ir_const(&g, TY_F32, shape_scalar(), 0.5, L0), s, L0);
    int sum = 1;
    ir_mark_output(&g, ir_binary(&g, OP_MUL, x, c, L0));
    ir_mark_output(&g, ir_reduce(&g, OP_SUM, ir_binary(&g, OP_ADD, x, c, L0), &sum, 1, false, L0));
    cr_expect_eq(kernels_of(&g, true), 2);
    LpProg *p = lp_lower(&g, true);
    for (int b = 0; b < p->nbufs; b++)
        cr_expect(p->bufs[b].kind != LB_TEMP, "buffer %d (node %%%d) is a temporary", b,
                  p->bufs[b].node);
    lp_free(p);
    check_runs(&g, 1e-5);
    ir_free(&g);
}

/* softmax(x, axis=-1) = exp(x - max) / sum(exp(x - max)): the max, the
 * exp (read twice, so kept), the sum, the division */
Test(jit_fusion, softmax_kernel_count) {
    IrGraph g;
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){2, {4, 7}}, NULL, L0), ax = -1;
    int m = ir_reduce(&g, OP_RMAX, x, &ax, 1, true, L0);
    int e = ir_unary(&g, OP_EXP, ir_binary(&g, OP_SUB, x, m, L0), L0);
    int s = ir_reduce(&g, OP_SUM, e, &ax, 1, true, L0);
    ir_mark_output(&g, ir_binary(&g, OP_DIV, e, s, L0));
    cr_expect_eq(kernels_of(&g, true), 4);
    check_runs(&g, 1e-5);
    ir_free(&g);
}

Test(jit_fusion, producers_fuse_into_reductions) {
    IrGraph g;
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){2, {3, 8}}, NULL, L0), ax = 1;
    int t = ir_binary(&g, OP_MUL, ir_unary(&g, OP_EXP, x, L0), x, L0);
    ir_mark_output(&g, ir_reduce(&g, OP_SUM, t, &ax, 1, false, L0));
    cr_expect_eq(kernels_of(&g, true), 1);
    check_runs(&g, 1e-5);
    ir_free(&g);
}

Test(jit_fusion, matmul_and_reductions_are_never_fused) {
    IrGraph g;
    ir_init(&g);
    int a = ir_input(&g, TY_F32, (Shape){2, {5, 3}}, NULL, L0);
    int b = ir_input(&g, TY_F32, (Shape){2, {4, 3}}, NULL, L0);
    int mm = ir_matmul(&g, a, ir_transpose(&g, b, 0, 1, L0), L0); /* transpose folds in */
    int r = ir_unary(&g, OP_RELU, mm, L0);
    int ax = 0;
    int s = ir_reduce(&g, OP_SUM, r, &ax, 1, false, L0);
    ir_mark_output(&g, ir_unary(&g, OP_NEG, s, L0));
    cr_expect_eq(kernels_of(&g, true), 3); /* matmul; relu + sum; neg */
    check_runs(&g, 1e-4);
    ir_free(&g);
}

Test(jit_fusion, expanding_broadcast_does_not_recompute) {
    IrGraph g;
    ir_init(&g);
    int v = ir_input(&g, TY_F32, (Shape){1, {6}}, NULL, L0);
    int x = ir_input(&g, TY_F32, (Shape){2, {50, 6}}, NULL, L0);
    int e = ir_unary(&g, OP_EXP, v, L0);
    ir_mark_output(&g, ir_binary(&g, OP_ADD, x, e, L0));
    cr_expect_eq(kernels_of(&g, true), 2); /* exp once per element of v */
    check_runs(&g, 1e-5);
    ir_free(&g);
}

Test(jit_fusion, outputs_are_kept) {
    IrGraph g;
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){1, {9}}, NULL, L0);
    int y = ir_unary(&g, OP_EXP, x, L0);
    ir_mark_output(&g, y);
    ir_mark_output(&g, ir_unary(&g, OP_NEG, y, L0));
    ir_mark_output(&g, y);
    cr_expect_eq(kernels_of(&g, true), 3); /* exp, neg, a copy for the repeat */
    check_runs(&g, 1e-5);
    ir_free(&g);
}

Test(jit_fusion, reshape_of_transpose_splits_indices) {
    IrGraph g;
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){3, {2, 3, 4}}, NULL, L0);
    int t = ir_permute(&g, x, (int[]){2, 0, 1}, L0);
    int r = ir_reshape(&g, t, (Shape){2, {4, 6}}, L0);
    ir_mark_output(&g, ir_unary(&g, OP_SIN, r, L0));
    cr_expect_eq(kernels_of(&g, true), 1);
    check_runs(&g, 1e-5);
    ir_free(&g);
}

/* -- cache -- */

static void build_mlp(IrGraph *g, int64_t batch, double slope) {
    ir_init(g);
    int x = ir_input(g, TY_F32, (Shape){2, {batch, 8}}, "x", L0);
    int w = ir_input(g, TY_F32, (Shape){2, {8, 4}}, "w", L0);
    int bb = ir_input(g, TY_F32, (Shape){1, {4}}, "b", L0);
    int h = ir_binary(g, OP_ADD, ir_matmul(g, x, w, L0), bb, L0);
    h = ir_binary(g, OP_MUL, h, ir_const(g, TY_F32, shape_scalar(), slope, L0), L0);
    ir_mark_output(g, ir_unary(g, OP_TANH, h, L0));
}

Test(jit_cache, same_structure_compiles_once) {
    Jit *j = jit_new(2);
    IrGraph g1, g2, g3, g4;
    build_mlp(&g1, 3, 0.5);
    build_mlp(&g2, 3, 0.5);  /* built again: same structure */
    build_mlp(&g3, 5, 0.5);  /* another batch size */
    build_mlp(&g4, 3, 0.25); /* another constant */
    RgRng r = {7};
    void **in1 = make_inputs(&g1, &r, false), **in3 = make_inputs(&g3, &r, false);
    cr_expect(differential(j, &g1, in1, 1e-4, "g1"));
    cr_expect(differential(j, &g1, in1, 1e-4, "g1 again"));
    JitStats s = jit_stats(j);
    cr_expect_eq(s.compiles, 1);
    cr_expect_eq(s.hits, 1);
    cr_expect(s.compile_ms > 0);
    cr_expect(differential(j, &g2, in1, 1e-4, "g2"));
    cr_expect_eq(jit_stats(j).compiles, 1);
    cr_expect_eq(jit_stats(j).compile_ms, s.compile_ms, "a cache hit compiles nothing");
    cr_expect(differential(j, &g3, in3, 1e-4, "g3"));
    cr_expect_eq(jit_stats(j).compiles, 2);
    cr_expect_gt(jit_stats(j).compile_ms, s.compile_ms, "a compile is timed");
    cr_expect(differential(j, &g4, in1, 1e-4, "g4"));
    cr_expect_eq(jit_stats(j).compiles, 3);
    cr_expect(differential(j, &g3, in3, 1e-4, "g3 again"));
    cr_expect_eq(jit_stats(j).compiles, 3);
    cr_expect_eq(jit_stats(j).hits, 3);
    free_ptrs(in1, g1.ninputs);
    free_ptrs(in3, g3.ninputs);
    ir_free(&g1);
    ir_free(&g2);
    ir_free(&g3);
    ir_free(&g4);
    jit_free(j);
}

/* --profile: a profiled graph is its own cache entry, still computes the
 * same values, and reports every kernel with its run count. */
Test(jit_cache, profile_times_every_kernel) {
    Jit *j = jit_new(2);
    IrGraph g;
    build_mlp(&g, 3, 0.5);
    RgRng r = {11};
    void **in = make_inputs(&g, &r, false);
    cr_expect(differential(j, &g, in, 1e-4, "plain"));
    jit_set_profile(j, true);
    cr_expect(differential(j, &g, in, 1e-4, "profiled"));
    cr_expect(differential(j, &g, in, 1e-4, "profiled again"));
    cr_expect_eq(jit_stats(j).compiles, 2);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    jit_print_profile(j, f, 0);
    fclose(f);
    cr_expect(strstr(text, "k0_matmul") != NULL, "%s", text);
    cr_expect(strstr(text, "       2 ") != NULL, "two runs: %s", text);
    cr_expect(strstr(text, "total") != NULL, "%s", text);
    free(text);
    free_ptrs(in, g.ninputs);
    ir_free(&g);
    jit_free(j);
}

/* Runs g once on a fresh JIT: its outputs (malloc'd) and stats. */
static void **run_fresh(const IrGraph *g, void **in, JitStats *st) {
    Jit *j = jit_new(2);
    jit_set_threads(j, 1);
    void **out = calloc((size_t)g->nout + 1, sizeof *out);
    for (int k = 0; k < g->nout; k++) {
        const IrNode *x = &g->nodes[g->outputs[k]];
        out[k] = calloc(1, (size_t)shape_numel(&x->shape) * dtype_size(x->dtype) + 1);
    }
    char err[256];
    cr_assert(jit_run(j, g, (void *const *)in, (void *const *)out, err, sizeof err), "%s", err);
    *st = jit_stats(j);
    jit_free(j);
    return out;
}

/* Flips a byte in the middle of every cache file of dir. */
static int corrupt_all(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "for f in %s/*.ttobj; do printf 'X' | dd of=\"$f\" bs=1 seek=200 conv=notrunc "
             "status=none; done",
             dir);
    return system(cmd);
}

/* A second process (here: a second JIT) links the graph's object code from
 * the on-disk cache instead of compiling it, and computes the same bits; a
 * corrupt entry is compiled again. */
Test(jit_cache, on_disk_object_cache) {
    char dir[] = "/tmp/tt_jitcache_XXXXXX";
    cr_assert(mkdtemp(dir));
    setenv("TT_CACHE_DIR", dir, 1);
    IrGraph g;
    build_mlp(&g, 5, 0.5);
    RgRng r = {3};
    void **in = make_inputs(&g, &r, false);
    JitStats s1, s2, s3;
    void **a = run_fresh(&g, in, &s1), **b = run_fresh(&g, in, &s2);
    cr_expect_eq(s1.disk_hits, 0);
    cr_expect_eq(s2.disk_hits, 1);
    size_t bytes = (size_t)shape_numel(&g.nodes[g.outputs[0]].shape) * sizeof(float);
    cr_expect(memcmp(a[0], b[0], bytes) == 0, "cached code computes other bits");
    cr_expect_eq(corrupt_all(dir), 0);
    void **c = run_fresh(&g, in, &s3);
    cr_expect_eq(s3.disk_hits, 0, "a corrupt entry was used");
    cr_expect(memcmp(a[0], c[0], bytes) == 0);
    free_ptrs(a, g.nout);
    free_ptrs(b, g.nout);
    free_ptrs(c, g.nout);
    free_ptrs(in, g.ninputs);
    ir_free(&g);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* The error is a whole message with one "jit: " in front, which the
 * runtime prints as it is (it used to add its own: "jit: jit: ..."). */
Test(jit_cache, invalid_graph_is_an_error) {
    Jit *j = jit_new(1);
    IrGraph g;
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){1, {4}}, NULL, L0);
    int y = ir_unary(&g, OP_EXP, x, L0);
    ir_mark_output(&g, y);
    g.nodes[y].shape.d[0] = 5; /* a pass bug: recorded shape disagrees */
    float in[4] = {0}, out[5];
    void *ins[1] = {in}, *outs[1] = {out};
    char err[256] = "";
    cr_expect(!jit_run(j, &g, ins, outs, err, sizeof err));
    cr_expect(strstr(err, "verify") != NULL, "err: %s", err);
    cr_expect(!strncmp(err, "jit: ", 5), "%s", err);
    cr_expect(!strstr(err + 5, "jit:"), "%s", err);
    cr_expect_eq(jit_stats(j).compiles, 0);
    ir_free(&g);
    jit_free(j);
}

/* An output buffer that is also an input buffer (an in-place update). */
Test(jit_cache, output_may_alias_an_input) {
    Jit *j = jit_new(2);
    IrGraph g;
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){2, {3, 3}}, NULL, L0);
    ir_mark_output(&g, ir_unary(&g, OP_NEG, ir_transpose(&g, x, 0, 1, L0), L0));
    float a[9], want[9];
    for (int i = 0; i < 9; i++) a[i] = (float)i;
    for (int i = 0; i < 9; i++) want[i] = -a[(i % 3) * 3 + i / 3];
    void *ins[1] = {a}, *outs[1] = {a};
    char err[256];
    cr_assert(jit_run(j, &g, ins, outs, err, sizeof err), "%s", err);
    for (int i = 0; i < 9; i++) cr_expect_eq(a[i], want[i], "element %d: %g", i, a[i]);
    ir_free(&g);
    jit_free(j);
}

/* -- random graphs -- */

Test(jit_random, graphs, .timeout = 600) {
    const char *env = getenv("TT_RANDGRAPH_N");
    int count = env ? atoi(env) : 1000;
    const char *senv = getenv("TT_RANDGRAPH_SEED"); /* first seed, to hunt further */
    uint64_t seed0 = senv ? strtoull(senv, NULL, 10) : 0;
    Jit *j = jit_new(2);
    int failures = 0, outputs = 0;
    int64_t nodes = 0;
    clock_t t0 = clock();
    for (int i = 0; i < count; i++) {
        RgGraph rg;
        rg_build(&rg, seed0 + (uint64_t)i, 10);
        IrGraph *g = &rg.g;
        void **in = rg_make_inputs(&rg, seed0 + (uint64_t)i);
        char err[512], what[64];
        snprintf(what, sizeof what, "random graph %llu", (unsigned long long)(seed0 + (uint64_t)i));
        if (!ir_verify(g, err, sizeof err)) {
            cr_log_error("%s: the generator made an invalid graph: %s", what, err);
            failures++;
            rg_free_inputs(&rg, in);
            rg_free(&rg);
            continue;
        }
        void **want = alloc_outputs(g, false), **got = alloc_outputs(g, true);
        bool failed;
        bool ok = run_both(j, g, in, want, got, what, &failed);
        for (int k = 0; ok && !failed && k < g->nout; k++) {
            int id = g->outputs[k];
            double tol = rg.exact[id] ? 0 : 1e-4 * fmax(1, rg.scale[id]);
            ok = compare_output(g, k, got[k], want[k], tol, what);
        }
        if (!ok) {
            failures++;
            char *buf = NULL;
            size_t len = 0;
            FILE *f = open_memstream(&buf, &len);
            ir_print(f, g);
            jit_emit_loops(f, g);
            fclose(f);
            cr_log_error("%s:\n%s", what, buf);
            free(buf);
        }
        outputs += g->nout;
        nodes += g->n;
        free_ptrs(want, g->nout);
        free_ptrs(got, g->nout);
        rg_free_inputs(&rg, in);
        rg_free(&rg);
    }
    JitStats s = jit_stats(j);
    cr_log_info("jit_random: %d graphs (%lld nodes, %d outputs), %d failures, %lld compiles "
                "(%.0f ms compiling), %.2f s CPU in all",
                count, (long long)nodes, outputs, failures, (long long)s.compiles, s.compile_ms,
                (double)(clock() - t0) / CLOCKS_PER_SEC);
    cr_expect(failures == 0, "%d of %d random graphs differ (see the log)", failures, count);
    jit_free(j);
}

/* -- dumps -- */

Test(jit_emit, loops_llvm_asm) {
    IrGraph g;
    build_mlp(&g, 2, 1.0);
    char *loops = tu_loops_text(&g);
    cr_expect(strstr(loops, "kernel k0_matmul") != NULL, "%s", loops);
    /* bias, scale and tanh run as the GEMM's epilogue, row by row */
    cr_expect(strstr(loops, "for i0 in 0..2 epilogue {") != NULL, "%s", loops);
    cr_expect(strstr(loops, "tanh(") != NULL, "%s", loops);
    free(loops);

    char err[256], *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_expect(jit_emit_llvm(f, &g, 3, err, sizeof err), "%s", err);
    fclose(f);
    cr_expect(strstr(buf, "define void @graph(ptr") != NULL, "%s", buf);
    free(buf);

    buf = NULL;
    f = open_memstream(&buf, &len);
    cr_expect(jit_emit_asm(f, &g, 2, err, sizeof err), "%s", err);
    fclose(f);
    cr_expect(strstr(buf, "graph:") != NULL, "%s", buf);
    free(buf);
    ir_free(&g);
}

Test(jit_emit, loops_read_like_pseudo_c) {
    IrGraph g;
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){2, {3, 4}}, NULL, L0), ax = 1;
    ir_mark_output(&g, ir_reduce(&g, OP_SUM, ir_unary(&g, OP_EXP, x, L0), &ax, 1, false, L0));
    char *s = tu_loops_text(&g);
    const char *want = "kernel k0_sum  # %2 = sum, fused: %1 exp {\n"
                       "    for i0 in 0..3 {\n"
                       "        f64 s0 = 0.0\n"
                       "        for i1 in 0..4 {\n"
                       "            s0 = s0 + f64(exp(in0[i0 * 4 + i1]))\n"
                       "        }\n"
                       "        out0[i0] = f32(s0)\n"
                       "    }\n"
                       "}\n";
    cr_expect(strstr(s, want) != NULL, "got:\n%s", s);
    free(s);
    ir_free(&g);
}

/* -- matmul through the GEMM -- */

/* Lowers g (fused), expects each of want[] in the loop IR, and runs it
 * against the naive runtime on jit (threads as set). */
static void check_gemm(Jit *jit, const IrGraph *g, const char *const *want, int nwant,
                       const char *what) {
    char *loops = tu_loops_text(g);
    for (int i = 0; i < nwant; i++)
        cr_expect(strstr(loops, want[i]) != NULL, "%s: no '%s' in\n%s", what, want[i], loops);
    free(loops);
    RgRng r = {99};
    void **in = make_inputs(g, &r, false);
    cr_expect(differential(jit, g, in, 1e-4, what));
    free_ptrs(in, g->ninputs);
}

/* x^T @ y and x @ y^T, as the backward pass builds them: the GEMM reads the
 * untransposed buffers with transA / transB; no copy kernel. */
Test(jit_gemm, transposed_operands) {
    Jit *j = jit_new(2);
    static const int64_t dims[][3] = {{5, 7, 3}, {64, 10, 128}, {33, 70, 300}, {1, 9, 4}};
    for (int d = 0; d < 4; d++) {
        int64_t m = dims[d][0], n = dims[d][1], k = dims[d][2];
        IrGraph g;
        ir_init(&g);
        int xt = ir_input(&g, TY_F32, (Shape){2, {k, m}}, NULL, L0); /* A stored transposed */
        int b = ir_input(&g, TY_F32, (Shape){2, {k, n}}, NULL, L0);
        int a = ir_input(&g, TY_F32, (Shape){2, {m, k}}, NULL, L0);
        int yt = ir_input(&g, TY_F32, (Shape){2, {n, k}}, NULL, L0); /* B stored transposed */
        ir_mark_output(&g, ir_matmul(&g, ir_transpose(&g, xt, 0, 1, L0), b, L0));
        ir_mark_output(&g, ir_matmul(&g, a, ir_transpose(&g, yt, 0, 1, L0), L0));
        ir_mark_output(
            &g, ir_matmul(&g, ir_transpose(&g, xt, 0, 1, L0), ir_transpose(&g, yt, 0, 1, L0), L0));
        char w0[96], w1[96], w2[96];
        snprintf(w0, sizeof w0, "in0[0]^T lda %lld, in1[0] ldb %lld", (long long)m, (long long)n);
        snprintf(w1, sizeof w1, "in2[0] lda %lld, in3[0]^T ldb %lld", (long long)k, (long long)k);
        snprintf(w2, sizeof w2, "in0[0]^T lda %lld, in3[0]^T ldb %lld", (long long)m, (long long)k);
        const char *want[] = {w0, w1, w2};
        char what[64];
        snprintf(what, sizeof what, "transposed %lldx%lldx%lld", (long long)m, (long long)n,
                 (long long)k);
        check_gemm(j, &g, m > 1 ? want : NULL, m > 1 ? 3 : 0, what);
        cr_expect_eq(kernels_of(&g, true), 3, "%s: a copy was made", what);
        ir_free(&g);
    }
    jit_free(j);
}

/* Batched products: a loop over the batch around one GEMM call, operands
 * broadcast over the batch (stride 0), transposed inside the batch. */
Test(jit_gemm, batched) {
    Jit *j = jit_new(2);
    IrGraph g;
    ir_init(&g);
    int a = ir_input(&g, TY_F32, (Shape){3, {4, 6, 5}}, NULL, L0);
    int w = ir_input(&g, TY_F32, (Shape){2, {5, 7}}, NULL, L0);
    ir_mark_output(&g, ir_matmul(&g, a, w, L0)); /* w shared by the batch */
    int q = ir_input(&g, TY_F32, (Shape){4, {2, 3, 6, 8}}, NULL, L0);
    int kk = ir_input(&g, TY_F32, (Shape){4, {2, 3, 9, 8}}, NULL, L0);
    ir_mark_output(&g, ir_matmul(&g, q, ir_transpose(&g, kk, -1, -2, L0), L0)); /* q k^T */
    int at = ir_permute(&g, a, (int[]){0, 2, 1}, L0);                           /* [4, 5, 6] */
    ir_mark_output(&g,
                   ir_matmul(&g, at, ir_input(&g, TY_F32, (Shape){3, {4, 6, 3}}, NULL, L0), L0));
    const char *want[] = {
        "for i0 in 0..4 {",
        /* w is the same for every batch element: one product of 4 * 6 rows */
        "= gemm(24x7x5, in0[0] lda 5, in1[0] ldb 7) ldc 7",
        "= gemm(6x9x8, in2[i0 * 144 + i1 * 48] lda 8, in3[i0 * 216 + i1 * 72]^T ldb 8) ldc 9",
        "= gemm(5x3x6, in0[i0 * 30]^T lda 5, in4[i0 * 18] ldb 3) ldc 3",
    };
    check_gemm(j, &g, want, 4, "batched");
    cr_expect_eq(kernels_of(&g, true), 3);
    ir_free(&g);
    jit_free(j);
}

/* Operands the GEMM cannot address in place (a column slice with step 2, a
 * reshape of a transpose that interleaves dims, a constant) are copied into
 * a temporary first; views it can address (a slice of rows, a reshape of a
 * transpose that keeps dims contiguous) are read in place. */
Test(jit_gemm, strided_views_and_copies) {
    Jit *j = jit_new(2);
    IrGraph g;
    ir_init(&g);
    int big = ir_input(&g, TY_F32, (Shape){2, {9, 12}}, NULL, L0);
    int b = ir_input(&g, TY_F32, (Shape){2, {6, 4}}, NULL, L0);
    IrSliceDim every_other[2] = {{true, true, false, 1, 5, 1}, {true, false, true, 0, 0, 2}};
    ir_mark_output(&g, ir_matmul(&g, ir_slice(&g, big, every_other, 2, L0), b, L0)); /* copy */
    IrSliceDim rows[2] = {{true, true, false, 2, 8, 1}, {true, true, false, 3, 9, 1}};
    ir_mark_output(&g, ir_matmul(&g, ir_slice(&g, big, rows, 2, L0), b, L0)); /* in place */
    int x = ir_input(&g, TY_F32, (Shape){3, {2, 3, 4}}, NULL, L0);
    int kept = ir_reshape(&g, ir_permute(&g, x, (int[]){2, 0, 1}, L0), (Shape){2, {4, 6}}, L0);
    ir_mark_output(&g, ir_matmul(&g, kept, b, L0)); /* in place, transposed */
    int mixed = ir_reshape(&g, ir_permute(&g, x, (int[]){1, 0, 2}, L0), (Shape){2, {6, 4}}, L0);
    ir_mark_output(&g, ir_matmul(&g, ir_transpose(&g, mixed, 0, 1, L0), b, L0)); /* copy */
    int c = ir_const(&g, TY_F32, (Shape){2, {3, 6}}, 0.5, L0);
    ir_mark_output(&g, ir_matmul(&g, c, b, L0)); /* copy */
    const char *want[] = {
        "out0[0] = gemm(4x4x6, t",
        "out1[0] = gemm(6x4x6, in0[27] lda 12, in1[0] ldb 4) ldc 4",
        "out2[0] = gemm(4x4x6, in2[0]^T lda 4, in1[0] ldb 4) ldc 4",
        "out3[0] = gemm(4x4x6, t",
        "out4[0] = gemm(3x4x6, t",
    };
    check_gemm(j, &g, want, 5, "strided");
    ir_free(&g);

    /* a vector operand (reshaped to [1, k] / [k, 1]) of a transposed matrix */
    ir_init(&g);
    int v = ir_input(&g, TY_F32, (Shape){1, {7}}, NULL, L0);
    int mt = ir_input(&g, TY_F32, (Shape){2, {5, 7}}, NULL, L0);
    ir_mark_output(&g, ir_matmul(&g, v, ir_transpose(&g, mt, 0, 1, L0), L0));
    ir_mark_output(&g, ir_matmul(&g, mt, v, L0));
    check_gemm(j, &g, NULL, 0, "vector");
    cr_expect_eq(kernels_of(&g, true), 4); /* two GEMMs, the reshapes of their results */
    ir_free(&g);
    jit_free(j);
}

/* Products big enough for the GEMM's thread split give the same results on
 * 1 and 2 threads (the split is over rows or columns, never over k). */
Test(jit_gemm, threads) {
    IrGraph g;
    ir_init(&g);
    int a = ir_input(&g, TY_F32, (Shape){2, {150, 400}}, NULL, L0);
    int b = ir_input(&g, TY_F32, (Shape){2, {200, 400}}, NULL, L0);
    ir_mark_output(&g, ir_matmul(&g, a, ir_transpose(&g, b, 0, 1, L0), L0));
    RgRng r = {5};
    void **in = make_inputs(&g, &r, false);
    void **o1 = alloc_outputs(&g, true), **o2 = alloc_outputs(&g, true);
    Jit *j1 = jit_new(2), *j2 = jit_new(2);
    jit_set_threads(j1, 1);
    jit_set_threads(j2, 2);
    char err[256];
    cr_assert(jit_run(j1, &g, in, o1, err, sizeof err), "%s", err);
    cr_assert(jit_run(j2, &g, in, o2, err, sizeof err), "%s", err);
    cr_expect(memcmp(o1[0], o2[0], 150 * 200 * sizeof(float)) == 0);
    cr_expect(differential(j2, &g, in, 1e-4, "threads"));
    free_ptrs(in, g.ninputs);
    free_ptrs(o1, g.nout);
    free_ptrs(o2, g.nout);
    ir_free(&g);
    jit_free(j1);
    jit_free(j2);
}

/* -- qmatmul through the int8 GEMM (compiler/gemm/qgemm.h) -- */

/* Shapes the micro-tiles do not divide (odd m, n; k not a multiple of 4;
 * k past one KC block), a batch with B shared, a transposed B (copied: the
 * int8 GEMM takes none), a vector, the MLP's first layer with a requantize
 * fused as the GEMM's epilogue; inputs with -128 and random bytes. Exact
 * (tol 0) against the naive runtime, on each path the host runs (TT_QGEMM,
 * read when the process-wide instance is made: each Jit here is the only
 * one), on 1 and 2 threads. */
Test(jit_gemm, qmatmul_int8) {
    static const char *const paths[] = {"vnni", "avx2", "scalar"};
    IrGraph g;
    ir_init(&g);
    int a = ir_input(&g, TY_I8, (Shape){3, {3, 37, 130}}, NULL, L0);
    int b = ir_input(&g, TY_I8, (Shape){2, {130, 45}}, NULL, L0);
    ir_mark_output(&g, ir_qmatmul(&g, a, b, L0));
    int c = ir_input(&g, TY_I8, (Shape){2, {13, 1029}}, NULL, L0);
    int dt = ir_input(&g, TY_I8, (Shape){2, {33, 1029}}, NULL, L0);
    ir_mark_output(&g, ir_qmatmul(&g, c, ir_transpose(&g, dt, 0, 1, L0), L0));
    int v = ir_input(&g, TY_I8, (Shape){1, {130}}, NULL, L0);
    ir_mark_output(&g, ir_qmatmul(&g, v, b, L0));
    int x = ir_input(&g, TY_I8, (Shape){2, {64, 784}}, NULL, L0);
    int w = ir_input(&g, TY_I8, (Shape){2, {784, 128}}, NULL, L0);
    int acc = ir_qmatmul(&g, x, w, L0);
    int s = ir_const(&g, TY_F32, (Shape){0, {0}}, 1.0 / 4096, L0);
    int zp = ir_const(&g, TY_I32, (Shape){0, {0}}, 3, L0);
    ir_mark_output(&g, ir_requantize(&g, acc, s, zp, TY_I8, IR_NO_AXIS, L0));
    const char *want[] = {"= qgemm(37x45x130, in0[i0 * 4810] lda 130, in1[0] ldb 45) ldc 45",
                          "= qgemm(13x33x1029, in2[0] lda 1029, t", "= qgemm(1x45x130, in4[0]",
                          "= qgemm(64x128x784, in5[0] lda 784, in6[0] ldb 128) ldc 128",
                          "epilogue"};
    for (int t = 1; t <= 2; t++)
        for (int pth = 0; pth < 3; pth++) {
            setenv("TT_QGEMM", paths[pth], 1);
            Jit *j = jit_new(2);
            jit_set_threads(j, t);
            char what[64];
            snprintf(what, sizeof what, "qmatmul %s, %d threads", paths[pth], t);
            check_gemm(j, &g, want, 5, what); /* tol 0 for integer outputs */
            jit_free(j);
        }
    unsetenv("TT_QGEMM");
    ir_free(&g);
}

/* attention's gradient rule in its fused form (forced: the rule takes it
 * past IR_ATTENTION_FUSED_MIN pairs), end to end through ad_backward: q, k,
 * v [2, 3, T, 24] (the heads' permute of a [2, T, 3, 24] projection, read
 * in place), causal with Tq = 37 != Tk = 45 and a runtime len, on 1 and 2
 * threads (the row loops are parallel) against the naive runtime. */
Test(jit_ops, attention_fused_backward_threads, .timeout = 120) {
    int64_t old = ir_set_attention_fused_min(0);
    IrGraph g;
    ir_init(&g);
    int perm[4] = {0, 2, 1, 3};
    int q = ir_permute(&g, ir_input(&g, TY_F32, (Shape){4, {2, 37, 3, 24}}, NULL, L0), perm, L0);
    int k = ir_input(&g, TY_F32, (Shape){4, {2, 3, 45, 24}}, NULL, L0);
    int v = ir_input(&g, TY_F32, (Shape){4, {2, 3, 45, 20}}, NULL, L0);
    int len = ir_input(&g, TY_I32, shape_scalar(), NULL, L0);
    int y = ir_attention(&g, q, k, v, len, true, NAN, L0);
    int r = ir_input(&g, TY_F32, ir_node(&g, y)->shape, NULL, L0);
    int loss = ir_reduce(&g, OP_SUM, ir_binary(&g, OP_MUL, y, r, L0), NULL, 0, false, L0);
    int wrt[3] = {q, k, v}, grads[3];
    cr_assert(ad_backward(&g, loss, wrt, 3, grads), "%s", g.err);
    ir_set_attention_fused_min(old);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ir_node(&g, grads[i])->op, OP_ATTENTION_GRAD);
        ir_mark_output(&g, grads[i]);
    }
    RgRng rng = {99};
    void **in = make_inputs(&g, &rng, false);
    for (int32_t l = 30; l <= 50; l += 20) { /* len below Tk, and past it (clamped) */
        *(int32_t *)in[ir_node(&g, len)->attr.index] = l;
        for (int t = 1; t <= 2; t++) {
            Jit *j = jit_new(2);
            jit_set_threads(j, t);
            char what[64];
            snprintf(what, sizeof what, "fused attention backward, len %d, %d threads", l, t);
            cr_expect(differential(j, &g, in, ir_ops[OP_ATTENTION_GRAD].tol, what));
            jit_free(j);
        }
    }
    free_ptrs(in, g.ninputs);
    ir_free(&g);
}

/* The forward's vector path (compiler/jit/lower_attn.c, attention_rows): keys in
 * blocks of 16 lanes, features in chunks of 64. D = 70 (a whole chunk and a
 * part, neither a multiple of the lanes), Tk = 37 (two whole blocks and 5
 * keys of zero padding), causal with Tq = 21 != Tk (each row's mask ends at
 * another lane), and runtime lens that end a block mid-vector, on a block
 * edge, or clamp (0, -3, past Tk); q through a permute. attention and
 * attention_lse (the same row loop) against the naive runtime, on 1 and 2
 * threads. The random cases (case_attention) stay below one block. */
Test(jit_ops, attention_vector_lanes_and_tails, .timeout = 120) {
    for (int causal = 0; causal <= 1; causal++) {
        IrGraph g;
        ir_init(&g);
        int perm[4] = {0, 2, 1, 3};
        int q =
            ir_permute(&g, ir_input(&g, TY_F32, (Shape){4, {2, 21, 3, 70}}, NULL, L0), perm, L0);
        int k = ir_input(&g, TY_F32, (Shape){4, {2, 3, 37, 70}}, NULL, L0);
        int v = ir_input(&g, TY_F32, (Shape){4, {2, 3, 37, 19}}, NULL, L0);
        int len = ir_input(&g, TY_I32, shape_scalar(), NULL, L0);
        ir_mark_output(&g, ir_attention(&g, q, k, v, len, causal, NAN, L0));
        IrAttr at = {0};
        at.causal = causal;
        at.scale = 0.3;
        ir_mark_output(&g, ir_add(&g, OP_ATTENTION_LSE, (int[]){q, k, len}, 3, &at, L0));
        RgRng rng = {7 + causal};
        void **in = make_inputs(&g, &rng, false);
        static const int32_t lens[] = {37, 33, 32, 16, 21, 5, 1, 0, -3, 100};
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
            *(int32_t *)in[ir_node(&g, len)->attr.index] = lens[li];
            for (int t = 1; t <= 2; t++) {
                Jit *j = jit_new(2);
                jit_set_threads(j, t);
                char what[80];
                snprintf(what, sizeof what, "attention %s, len %d, %d threads",
                         causal ? "causal" : "full", lens[li], t);
                cr_expect(differential(j, &g, in, ir_ops[OP_ATTENTION].tol, what));
                jit_free(j);
            }
        }
        /* values past len poisoned (inf, NaN): a key no row sees is never
         * multiplied, not even by 0 (the last, partial block's keys) */
        float *vv = in[ir_node(&g, v)->attr.index];
        for (int32_t l = 5; l <= 21; l += 16) {
            *(int32_t *)in[ir_node(&g, len)->attr.index] = l;
            for (int bh = 0; bh < 6; bh++)
                for (int jj = l; jj < 37; jj++)
                    for (int e = 0; e < 19; e++)
                        vv[(bh * 37 + jj) * 19 + e] = e % 2 ? INFINITY : NAN;
            Jit *j = jit_new(2);
            char what[80];
            snprintf(what, sizeof what, "attention %s, len %d, values past it inf/NaN",
                     causal ? "causal" : "full", l);
            cr_expect(differential(j, &g, in, ir_ops[OP_ATTENTION].tol, what));
            jit_free(j);
        }
        free_ptrs(in, g.ninputs);
        ir_free(&g);
    }
}
