/* test_vtune.c - the vector schedule of the JIT's loops (compiler/jit/
 * vtune.c): every candidate width and interleave gives the same bits as
 * LLVM's own choice, and those match the reference. Shapes with tails (37
 * rows of 131) so that the vector remainders run too. The timing and the
 * cache are tested end to end by tests/run_tune.py.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dump_text.h"
#include "jit.h"
#include "kernels.h"
#include "loop.h"
#include "randgraph.h"

static const SrcLoc L0 = {0};

#define R 37
#define C 131

static void build(IrGraph *g) {
    ir_init(g);
    Shape s = shape_make(2, (int64_t[]){R, C});
    int x = ir_input(g, TY_F32, s, NULL, L0), a = ir_input(g, TY_F32, s, NULL, L0);
    int b = ir_input(g, TY_F32, s, NULL, L0);
    int f = ir_binary(g, OP_ADD, ir_binary(g, OP_MUL, x, a, L0), b, L0);
    ir_mark_output(g, ir_unary(g, OP_RELU, f, L0));
    ir_mark_output(
        g, ir_binary(g, OP_MUL, ir_unary(g, OP_EXP, x, L0), ir_unary(g, OP_TANH, a, L0), L0));
    ir_mark_output(g,
                   ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, x, b, L0), (int[]){1}, 1, false, L0));
    ir_mark_output(g,
                   ir_reduce(g, OP_SUM, ir_binary(g, OP_SUB, x, a, L0), (int[]){0}, 1, true, L0));
    ir_mark_output(g, ir_reduce(g, OP_RMAX, x, (int[]){1}, 1, false, L0));
    ir_mark_output(g, ir_where(g, ir_binary(g, OP_LT, x, a, L0), b,
                               ir_unary(g, OP_SQRT, ir_unary(g, OP_ABS, x, L0), L0), L0));
}

Test(vtune, every_schedule_gives_the_same_bits) {
    IrGraph g;
    build(&g);
    RgRng r = {5};
    float *in[3];
    for (int i = 0; i < 3; i++) {
        in[i] = malloc(sizeof(float) * R * C);
        for (int k = 0; k < R * C; k++) in[i][k] = (float)rg_unif(&r, -3, 3);
    }
    float *want[6], *base[6], *got[6];
    int64_t n[6];
    for (int j = 0; j < g.nout; j++) {
        n[j] = shape_numel(&g.nodes[g.outputs[j]].shape);
        want[j] = calloc((size_t)n[j], sizeof(float));
        base[j] = calloc((size_t)n[j], sizeof(float));
        got[j] = calloc((size_t)n[j], sizeof(float));
    }
    KernelErr kerr;
    cr_assert(rt_naive_run(&g, (void *const *)in, (void *const *)want, NULL, &kerr), "%s",
              kerr.msg);
    static const int sched[][2] = {{0, 0}, {8, 1}, {8, 2}, {8, 4}, {16, 1}, {16, 2}, {4, 1}};
    char err[256];
    for (int s = 0; s < 7; s++) {
        for (int t = 1; t <= 2; t++) {
            Jit *j = jit_new(2);
            jit_set_threads(j, t);
            jit_set_vec(j, sched[s][0], sched[s][1]);
            cr_assert(
                jit_run(j, &g, (void *const *)in, (void *const *)(s ? got : base), err, sizeof err),
                "%s", err);
            jit_free(j);
            if (s == 0 && t == 1)
                for (int o = 0; o < g.nout; o++)
                    for (int64_t k = 0; k < n[o]; k++)
                        cr_expect(fabs((double)base[o][k] - want[o][k]) <=
                                      1e-5 * fmax(1.0, fabs((double)want[o][k])),
                                  "LLVM's choice, output %d element %lld: %g, reference %g", o,
                                  (long long)k, base[o][k], want[o][k]);
            if (s == 0) continue;
            for (int o = 0; o < g.nout; o++) {
                int64_t diff = 0;
                for (int64_t k = 0; k < n[o]; k++)
                    diff += memcmp(&got[o][k], &base[o][k], sizeof(float)) != 0;
                cr_expect_eq(diff, 0, "%d lanes x %d, %d threads: output %d, %lld elements differ",
                             sched[s][0], sched[s][1], t, o, (long long)diff);
            }
        }
    }
    for (int j = 0; j < g.nout; j++) {
        free(want[j]);
        free(base[j]);
        free(got[j]);
    }
    for (int i = 0; i < 3; i++) free(in[i]);
    ir_free(&g);
}

/* Convolution lowerings per node (ctune.h decides them on the host;
 * lp_lower_modes applies them): two convolutions of one graph, one forced
 * to the direct loops and one to explicit im2col, get those lowerings, and
 * LP_CONV_AUTO leaves a node to the graph's own mode. */
static char *loops_with(const IrGraph *g, const LpConvLowering *modes) {
    LpProg *p = lp_lower_modes(g, true, LP_CONV_AUTO, modes);
    char *buf = tu_prog_text(p, g);
    lp_free(p);
    return buf;
}

Test(ctune, a_lowering_per_node) {
    IrGraph g;
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){4, {2, 8, 10, 10}}, NULL, L0);
    int w1 = ir_input(&g, TY_F32, (Shape){4, {8, 8, 3, 3}}, NULL, L0);
    int w2 = ir_input(&g, TY_F32, (Shape){4, {8, 8, 3, 3}}, NULL, L0);
    IrWindow win = {{3, 3}, {1, 1}, {1, 1}, {1, 1}, 1};
    int c1 = ir_conv2d(&g, x, w1, -1, &win, L0);
    int c2 = ir_conv2d(&g, c1, w2, -1, &win, L0);
    ir_mark_output(&g, c2);
    cr_assert(c1 >= 0 && c2 >= 0, "%s", g.err);
    LpConvLowering *modes = calloc((size_t)g.n, sizeof *modes);
    modes[c1] = LP_CONV_DIRECT;
    modes[c2] = LP_CONV_IM2COL;
    char *s = loops_with(&g, modes);
    int gemms = 0;
    for (const char *q = s; (q = strstr(q, "gemm(")) != NULL; q++) gemms++;
    cr_expect_eq(gemms, 1, "one product (c2), c1 direct:\n%s", s);
    cr_expect(strstr(s, "gather") == NULL, "explicit im2col, not gathered:\n%s", s);
    free(s);
    modes[c1] = modes[c2] = LP_CONV_DIRECT;
    s = loops_with(&g, modes);
    cr_expect(strstr(s, "gemm(") == NULL, "both direct:\n%s", s);
    free(s);
    free(modes);
    ir_free(&g);
}
