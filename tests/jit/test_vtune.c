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

#include "jit.h"
#include "kernels.h"
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
