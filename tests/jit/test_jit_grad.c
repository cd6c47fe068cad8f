/* test_jit_grad.c - gradients through the JIT, checked against the reference.
 *
 * For every differentiable op of ops.def (an op without a case fails the
 * suite), a small graph computes loss = sum(op(inputs) * R), ad_backward adds
 * the gradient of every f32 input, and the whole graph (forward + backward)
 * runs on the naive runtime and on the JIT; every gradient must agree within
 * a tolerance. The gradient rules themselves are checked by finite
 * differences in tests/unit/test_grad.c; this suite checks that the JIT runs
 * the graphs autodiff builds (fused, as in a training step) the same way.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jit.h"
#include "kernels.h"

static const SrcLoc L0 = {0};

static Shape shp(int n, int64_t a, int64_t b, int64_t c) {
    int64_t d[3] = {a, b, c};
    return shape_make(n, d);
}

/* An f32 input named "x" (differentiated) or "r" (the loss weights). */
static int in_f32(IrGraph *g, Shape s, const char *name) {
    return ir_input(g, TY_F32, s, name, L0);
}

typedef int (*GradCase)(IrGraph *g, OpKind op); /* returns the op's output node */

static int c_unary(IrGraph *g, OpKind op) {
    return ir_unary(g, op, in_f32(g, shp(2, 3, 5, 0), "x"), L0);
}

static int c_binary(IrGraph *g, OpKind op) {
    int a = in_f32(g, shp(2, 3, 5, 0), "x");
    int b = in_f32(g, shp(1, 5, 0, 0), "x"); /* broadcast: its gradient sums rows */
    return ir_binary(g, op, a, b, L0);
}

static int c_where(IrGraph *g, OpKind op) {
    int a = in_f32(g, shp(2, 3, 5, 0), "x"), b = in_f32(g, shp(2, 3, 5, 0), "x");
    return ir_where(g, ir_binary(g, OP_GT, a, b, L0), a, b, L0);
}

static int c_reduce(IrGraph *g, OpKind op) {
    int axes[1] = {1};
    return ir_reduce(g, op, in_f32(g, shp(3, 2, 4, 3), "x"), axes, 1, false, L0);
}

static int c_reshape(IrGraph *g, OpKind op) {
    return ir_reshape(g, in_f32(g, shp(2, 3, 4, 0), "x"), shp(2, 4, 3, 0), L0);
}

static int c_permute(IrGraph *g, OpKind op) {
    int perm[3] = {2, 0, 1};
    return ir_permute(g, in_f32(g, shp(3, 2, 3, 4), "x"), perm, L0);
}

static int c_broadcast(IrGraph *g, OpKind op) {
    return ir_broadcast_to(g, in_f32(g, shp(2, 3, 1, 0), "x"), shp(2, 3, 4, 0), L0);
}

static int c_slice(IrGraph *g, OpKind op) {
    IrSliceDim d[2] = {{.has_start = true, .start = 1},
                       {.has_start = true, .start = 0, .has_step = true, .step = 2}};
    return ir_slice(g, in_f32(g, shp(2, 4, 5, 0), "x"), d, 2, L0);
}

static int c_pad(IrGraph *g, OpKind op) {
    IrAttr at = {.shape = shp(2, 5, 7, 0), .start = {1, 0}, .step = {1, 2}};
    int x = in_f32(g, shp(2, 3, 4, 0), "x");
    return ir_add(g, OP_PAD, &x, 1, &at, L0);
}

static int c_concat(IrGraph *g, OpKind op) {
    int xs[2] = {in_f32(g, shp(2, 2, 3, 0), "x"), in_f32(g, shp(2, 4, 3, 0), "x")};
    return ir_concat(g, xs, 2, 0, L0);
}

static int c_matmul(IrGraph *g, OpKind op) {
    int a = in_f32(g, shp(3, 2, 3, 4), "x"), b = in_f32(g, shp(3, 2, 4, 5), "x");
    return ir_matmul(g, a, b, L0);
}

static int c_gather(IrGraph *g, OpKind op) {
    int table = in_f32(g, shp(2, 5, 3, 0), "x");
    int idx = ir_input(g, TY_I32, shp(1, 6, 0, 0), "idx", L0);
    return ir_gather(g, table, idx, L0);
}

static int c_scatter(IrGraph *g, OpKind op) {
    int src = in_f32(g, shp(2, 6, 3, 0), "x");
    int idx = ir_input(g, TY_I32, shp(1, 6, 0, 0), "idx", L0);
    int ins[2] = {src, idx};
    IrAttr at = {.shape = shp(2, 5, 3, 0)};
    return ir_add(g, OP_SCATTER_ADD, ins, 2, &at, L0);
}

/* cumsum from the end along the middle axis (its gradient: the other way),
 * and sorted values (a gather through argsort) added in */
static int c_cumsum(IrGraph *g, OpKind op) {
    int x = in_f32(g, shp(3, 2, 4, 3), "x");
    int c = ir_cumsum(g, x, 1, true, L0);
    int i = ir_argsort(g, x, 1, false, L0);
    return ir_binary(g, OP_ADD, c, ir_take_along(g, x, i, 1, L0), L0);
}

static int c_cast(IrGraph *g, OpKind op) {
    int x = in_f32(g, shp(2, 3, 4, 0), "x");
    IrAttr at = {.dtype = TY_F32};
    return ir_add(g, OP_CAST, &x, 1, &at, L0);
}

/* x [2, 4, 6, 5], w [6, 2, 3, 2]: groups 2, stride (2, 1), padding
 * (1, 0), dilation (1, 2), and a bias */
static IrWindow conv_window(void) {
    return (IrWindow){.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}, .groups = 2};
}

static int c_conv(IrGraph *g, OpKind op) {
    IrWindow win = conv_window();
    Shape xs = {4, {2, 4, 6, 5}}, ws = {4, {6, 2, 3, 2}}, ys = {4, {2, 6, 3, 3}};
    if (op == OP_CONV2D)
        return ir_conv2d(g, in_f32(g, xs, "x"), in_f32(g, ws, "x"), in_f32(g, shp(1, 6, 0, 0), "x"),
                         &win, L0);
    IrAttr at = {.win = win, .shape = op == OP_CONV2D_BACKWARD_INPUT ? xs : ws};
    int ins[2] = {op == OP_CONV2D_BACKWARD_INPUT ? in_f32(g, ys, "x") : in_f32(g, xs, "x"),
                  op == OP_CONV2D_BACKWARD_INPUT ? in_f32(g, ws, "x") : in_f32(g, ys, "x")};
    return ir_add(g, op, ins, 2, &at, L0);
}

/* x [2, 3, 7, 6], window 3x2, stride (2, 1), padding (1, 1) */
static int c_pool(IrGraph *g, OpKind op) {
    IrAttr at = {.win = {.kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 1}}};
    Shape xs = {4, {2, 3, 7, 6}}, ys = {4, {2, 3, 4, 7}};
    if (op != OP_AVG_POOL2D_BACKWARD) return ir_pool2d(g, op, in_f32(g, xs, "x"), &at.win, L0);
    at.shape = xs;
    int gy = in_f32(g, ys, "x");
    return ir_add(g, op, &gy, 1, &at, L0);
}

/* q [2, 3, 5], k [2, 7, 5], v [2, 7, 3]: Tq < Tk, causal (bottom right) */
static int c_attention(IrGraph *g, OpKind op) {
    int q = in_f32(g, shp(3, 2, 3, 5), "x"), k = in_f32(g, shp(3, 2, 7, 5), "x");
    return ir_attention(g, q, k, in_f32(g, shp(3, 2, 7, 3), "x"), -1, true, NAN, L0);
}

static GradCase grad_case(OpKind op) {
    unsigned f = ir_ops[op].flags;
    if (f & (OPF_LEAF | OPF_NODIFF)) return NULL;
    switch (op) {
    case OP_WHERE:
        return c_where;
    case OP_RESHAPE:
        return c_reshape;
    case OP_PERMUTE:
        return c_permute;
    case OP_BROADCAST:
        return c_broadcast;
    case OP_SLICE:
        return c_slice;
    case OP_PAD:
        return c_pad;
    case OP_CONCAT:
        return c_concat;
    case OP_MATMUL:
        return c_matmul;
    case OP_GATHER:
        return c_gather;
    case OP_SCATTER_ADD:
        return c_scatter;
    case OP_CAST:
        return c_cast;
    case OP_CUMSUM:
        return c_cumsum;
    case OP_ATTENTION:
        return c_attention;
    case OP_CONV2D:
    case OP_CONV2D_BACKWARD_INPUT:
    case OP_CONV2D_BACKWARD_WEIGHT:
        return c_conv;
    case OP_MAX_POOL2D:
    case OP_AVG_POOL2D:
    case OP_AVG_POOL2D_BACKWARD:
        return c_pool;
    default:
        break;
    }
    if (f & OPF_REDUCE) return c_reduce;
    if ((f & OPF_ELEMWISE) && ir_ops[op].arity == 1) return c_unary;
    if ((f & OPF_ELEMWISE) && ir_ops[op].arity == 2) return c_binary;
    return NULL;
}

Test(jit_grad, every_differentiable_op_has_a_case) {
    for (int op = 0; op < OP__COUNT; op++) {
        unsigned f = ir_ops[op].flags;
        /* attention's backward ops: no gradient of their own (test_grad.c,
         * grad_second_order); c_attention runs them */
        if ((f & (OPF_LEAF | OPF_NODIFF)) || op == OP_ATTENTION_LSE || op == OP_ATTENTION_GRAD)
            continue;
        cr_expect(grad_case((OpKind)op) != NULL, "op %s has no JIT gradient case", ir_ops[op].name);
    }
}

/* Values in [0.5, 2] keep log/sqrt/pow/div well-defined and away from the
 * kinks of relu/abs/max; indices in range. */
static void fill_inputs(const IrGraph *g, void **in, unsigned seed) {
    srand(seed);
    for (int i = 0; i < g->n; i++) {
        const IrNode *x = &g->nodes[i];
        if (x->op != OP_INPUT) continue;
        int64_t n = shape_numel(&x->shape);
        void *d = calloc((size_t)(n ? n : 1), dtype_size(x->dtype));
        for (int64_t k = 0; k < n; k++) {
            if (x->dtype == TY_I32)
                ((int32_t *)d)[k] = rand() % 5;
            else
                ((float *)d)[k] = 0.5f + 1.5f * (float)rand() / (float)RAND_MAX;
        }
        in[x->attr.index] = d;
    }
}

Test(jit_grad, forward_and_backward_agree_with_reference, .timeout = 120) {
    Jit *jit = jit_new(2);
    cr_assert(jit, "no JIT for this machine");
    int checked = 0;
    for (int op = 0; op < OP__COUNT; op++) {
        GradCase mk = grad_case((OpKind)op);
        if (!mk) continue;
        IrGraph g;
        ir_init(&g);
        int y = mk(&g, (OpKind)op);
        cr_assert(y >= 0, "%s: building the case failed: %s", ir_ops[op].name, g.err);
        int r = in_f32(&g, g.nodes[y].shape, "r");
        int loss = ir_reduce(&g, OP_SUM, ir_binary(&g, OP_MUL, y, r, L0), NULL, 0, false, L0);
        cr_assert(loss >= 0, "%s: %s", ir_ops[op].name, g.err);
        int wrt[8], nwrt = 0;
        for (int i = 0; i < g.n && nwrt < 8; i++)
            if (g.nodes[i].op == OP_INPUT && g.nodes[i].dtype == TY_F32 &&
                strcmp(g.nodes[i].name, "x") == 0)
                wrt[nwrt++] = i;
        int grads[8];
        cr_assert(ad_backward(&g, loss, wrt, nwrt, grads), "%s: %s", ir_ops[op].name, g.err);
        ir_mark_output(&g, loss);
        for (int k = 0; k < nwrt; k++)
            if (grads[k] >= 0) ir_mark_output(&g, grads[k]);
        cr_assert(g.nout > 1, "%s: no gradient reached an input", ir_ops[op].name);

        void **in = calloc((size_t)g.ninputs + 1, sizeof *in);
        fill_inputs(&g, in, 1234u + (unsigned)op);
        void **want = calloc((size_t)g.nout, sizeof *want),
             **got = calloc((size_t)g.nout, sizeof *got);
        for (int j = 0; j < g.nout; j++) {
            size_t bytes = (size_t)shape_numel(&g.nodes[g.outputs[j]].shape) * sizeof(float);
            want[j] = calloc(1, bytes ? bytes : 1);
            got[j] = calloc(1, bytes ? bytes : 1);
        }
        cr_assert(rt_naive_run(&g, in, want, NULL, NULL));
        char err[512];
        cr_assert(jit_run(jit, &g, in, got, err, sizeof err), "%s: %s", ir_ops[op].name, err);
        for (int j = 0; j < g.nout; j++) {
            int64_t n = shape_numel(&g.nodes[g.outputs[j]].shape);
            for (int64_t k = 0; k < n; k++) {
                double a = ((float *)got[j])[k], b = ((float *)want[j])[k];
                cr_expect(fabs(a - b) <= 1e-4 * fmax(1.0, fabs(b)),
                          "%s: output %d element %lld: jit %.9g, naive %.9g", ir_ops[op].name, j,
                          (long long)k, a, b);
            }
            free(want[j]);
            free(got[j]);
        }
        for (int k = 0; k < g.ninputs; k++) free(in[k]);
        free(in);
        free(want);
        free(got);
        ir_free(&g);
        checked++;
    }
    cr_expect(checked >= 20, "only %d ops checked", checked);
    jit_free(jit);
}
