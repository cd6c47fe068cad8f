/* test_kshare.c - kernels alike up to their buffers share one LLVM
 * function (compiler/jit/ksig.c, codegen.c; spec/jit.md "Compile time").
 *
 * The graph: N layers of x = tanh(x @ w + b) - broadcast(sum(., 1)) +
 * gather(emb, idx), each layer with its own weights, so the layers' kernels
 * differ only in their buffers (and the gathers' status words). Checked:
 * the graph compiles to fewer functions than kernels, to as many for 8
 * layers as for 3 (the layers' code is built once), and to one per kernel
 * with sharing off; the results are the reference's, on 1 and 2 threads,
 * and bit-identical with sharing off; an index out of range in one layer is
 * reported at that layer's gather (the shared code writes the status word
 * its call site passes).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jit.h"
#include "kernels.h"
#include "randgraph.h"

static const SrcLoc L0 = {0};

#define ROWS 8
#define DIM  32
#define VOC  10

/* The graph of n layers; gathers[l] = layer l's gather node. */
static void build(IrGraph *g, int n, int *gathers) {
    Shape sx = {2, {ROWS, DIM}}, sw = {2, {DIM, DIM}}, sb = {1, {DIM}};
    Shape se = {2, {VOC, DIM}}, si = {1, {ROWS}};
    int x = ir_input(g, TY_F32, sx, "x", L0);
    for (int l = 0; l < n; l++) {
        int w = ir_input(g, TY_F32, sw, "w", L0);
        int b = ir_input(g, TY_F32, sb, "b", L0);
        int emb = ir_input(g, TY_F32, se, "emb", L0);
        int idx = ir_input(g, TY_I32, si, "idx", L0);
        int h = ir_binary(g, OP_ADD, ir_matmul(g, x, w, L0), ir_broadcast_to(g, b, sx, L0), L0);
        h = ir_unary(g, OP_TANH, h, L0);
        int axis = 1;
        int s = ir_reduce(g, OP_SUM, h, &axis, 1, true, L0);
        h = ir_binary(g, OP_SUB, h, ir_broadcast_to(g, s, sx, L0), L0);
        gathers[l] = ir_gather(g, emb, idx, L0);
        x = ir_binary(g, OP_ADD, h, gathers[l], L0);
    }
    ir_mark_output(g, x);
}

/* Random inputs in graph order; indices in range. */
static void **inputs(const IrGraph *g, RgRng *r) {
    void **in = calloc((size_t)g->ninputs + 1, sizeof *in);
    for (int i = 0, k = 0; i < g->n; i++) {
        const IrNode *x = &g->nodes[i];
        if (x->op != OP_INPUT) continue;
        int64_t len = shape_numel(&x->shape);
        if (x->dtype == TY_I32) {
            int32_t *d = malloc((size_t)len * sizeof *d);
            for (int64_t j = 0; j < len; j++) d[j] = rg_int(r, 0, VOC - 1);
            in[k++] = d;
        } else {
            float *d = malloc((size_t)len * sizeof *d);
            for (int64_t j = 0; j < len; j++) d[j] = (float)rg_unif(r, -0.5, 0.5);
            in[k++] = d;
        }
    }
    return in;
}

static void free_inputs(void **in, int n) {
    for (int i = 0; i < n; i++) free(in[i]);
    free(in);
}

/* Runs g by a fresh JIT (threads, sharing as given) into out; its stats. */
static JitStats run(const IrGraph *g, void **in, float *out, int threads, bool share) {
    jit_set_kernel_sharing(share);
    Jit *j = jit_new(2);
    jit_set_threads(j, threads);
    char err[256];
    bool ok = jit_run(j, g, in, (void **)&out, err, sizeof err);
    JitStats st = jit_stats(j);
    jit_free(j);
    jit_set_kernel_sharing(true);
    cr_assert(ok, "jit: %s", err);
    return st;
}

Test(jit_kshare, layers_share_functions_and_match_the_reference, .timeout = 120) {
    int64_t fns[2] = {0, 0};
    const int layers[2] = {3, 8};
    for (int t = 0; t < 2; t++) {
        IrGraph g;
        ir_init(&g);
        int gathers[8];
        build(&g, layers[t], gathers);
        RgRng r = {20261204u + (unsigned)t};
        void **in = inputs(&g, &r);
        float want[ROWS * DIM], got[3][ROWS * DIM];
        float *wp = want;
        KernelErr kerr;
        cr_assert(rt_naive_run(&g, in, (void **)&wp, NULL, &kerr), "naive: %s", kerr.msg);
        JitStats on = run(&g, in, got[0], 1, true);
        JitStats on2 = run(&g, in, got[1], 2, true);
        JitStats off = run(&g, in, got[2], 1, false);
        cr_expect_lt(on.kernel_fns, on.kernels, "%d layers: %lld kernels in %lld functions",
                     layers[t], (long long)on.kernels, (long long)on.kernel_fns);
        cr_expect_lt(on2.kernel_fns, on2.kernels, "%d layers, 2 threads: %lld kernels in %lld",
                     layers[t], (long long)on2.kernels, (long long)on2.kernel_fns);
        cr_expect_eq(off.kernel_fns, off.kernels, "sharing off: %lld kernels in %lld functions",
                     (long long)off.kernels, (long long)off.kernel_fns);
        cr_expect_eq(on.kernels, off.kernels);
        fns[t] = on.kernel_fns;
        double tol = 1e-4; /* tanh's rounding, carried through the layers */
        for (int k = 0; k < ROWS * DIM; k++) {
            double a = got[0][k], b = want[k];
            cr_expect(fabs(a - b) <= tol * fmax(1.0, fabs(b)),
                      "%d layers: element %d: %.9g, naive %.9g", layers[t], k, a, b);
            double a2 = got[1][k];
            cr_expect(fabs(a2 - b) <= tol * fmax(1.0, fabs(b)),
                      "%d layers, 2 threads: element %d: %.9g, naive %.9g", layers[t], k, a2, b);
            if (fabs(a - b) > tol * fmax(1.0, fabs(b))) break;
        }
        cr_expect(!memcmp(got[0], got[2], sizeof got[0]),
                  "%d layers: results differ with sharing off", layers[t]);
        free_inputs(in, g.ninputs);
        ir_free(&g);
    }
    cr_expect_eq(fns[0], fns[1], "3 layers compile to %lld functions, 8 layers to %lld",
                 (long long)fns[0], (long long)fns[1]);
}

Test(jit_kshare, a_bad_index_is_reported_at_its_layer, .timeout = 60) {
    IrGraph g;
    ir_init(&g);
    int gathers[4];
    build(&g, 4, gathers);
    RgRng r = {77};
    void **in = inputs(&g, &r);
    /* layer 2's idx: the 5th input of layer 2 counting x (1 + 4 * 2 + 3) */
    int32_t *idx = in[1 + 4 * 2 + 3];
    idx[5] = VOC;
    float out[ROWS * DIM];
    float *op = out;
    Jit *j = jit_new(2);
    jit_set_threads(j, 1);
    char err[256];
    bool ok = jit_run(j, &g, in, (void **)&op, err, sizeof err);
    cr_expect_not(ok, "an index out of range ran");
    cr_expect_eq(jit_error_node(j), gathers[2], "reported at node %d, not layer 2's gather %d",
                 jit_error_node(j), gathers[2]);
    cr_expect_lt(jit_stats(j).kernel_fns, jit_stats(j).kernels);
    jit_free(j);
    free_inputs(in, g.ninputs);
    ir_free(&g);
}
