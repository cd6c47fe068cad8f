/* test_fuse.c - kernel fusion (lp_fuse_kernels, transform.h).
 *
 * What merges: the four kernels of a softmax become one row loop; the bias
 * and activation after a matmul become the GEMM's epilogue. What must not:
 * a kernel that reads rows other than the one the merged loop is on (a
 * transpose, row 0 in every row). Merging only reorders loops, never
 * arithmetic, so a program runs bit for bit like the unmerged one: checked
 * on random graphs, on 1 and 2 threads (merged loops run in parallel,
 * epilogues on the GEMM's threads).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dump_text.h"
#include "jit.h"
#include "loop.h"
#include "randgraph.h"
#include "transform.h"

static const SrcLoc L0 = {0};

/* The loop IR of g after lowering and kernel fusion; *nmerged: kernels merged away. */
static char *fused_text(const IrGraph *g, int *nmerged) {
    LpProg *p = lp_lower(g, true);
    int n = lp_fuse_kernels(p);
    if (nmerged) *nmerged = n;
    char *buf = tu_prog_text(p, g);
    lp_free(p);
    return buf;
}

static int count(const char *s, const char *what) {
    int n = 0;
    for (const char *at = s; (at = strstr(at, what)); at++) n++;
    return n;
}

/* softmax(x) over the rows of x[n, m], as the standard library builds it */
static void g_softmax(IrGraph *g, int64_t n, int64_t m) {
    ir_init(g);
    int x = ir_input(g, TY_F32, (Shape){2, {n, m}}, NULL, L0), ax = 1;
    int e = ir_unary(g, OP_EXP,
                     ir_binary(g, OP_SUB, x, ir_reduce(g, OP_RMAX, x, &ax, 1, true, L0), L0), L0);
    ir_mark_output(g, ir_binary(g, OP_DIV, e, ir_reduce(g, OP_SUM, e, &ax, 1, true, L0), L0));
}

/* relu(x @ w + b) */
static void g_layer(IrGraph *g, int64_t n, int64_t k, int64_t m) {
    ir_init(g);
    int x = ir_input(g, TY_F32, (Shape){2, {n, k}}, NULL, L0);
    int w = ir_input(g, TY_F32, (Shape){2, {k, m}}, NULL, L0);
    int b = ir_input(g, TY_F32, (Shape){1, {m}}, NULL, L0);
    ir_mark_output(g,
                   ir_unary(g, OP_RELU, ir_binary(g, OP_ADD, ir_matmul(g, x, w, L0), b, L0), L0));
}

Test(xform_fuse, softmax_is_one_row_loop) {
    IrGraph g;
    g_softmax(&g, 6, 10);
    int merged = 0;
    char *s = fused_text(&g, &merged);
    cr_expect_eq(merged, 3, "%s", s);
    cr_expect_eq(count(s, "\nkernel "), 1, "%s", s);
    cr_expect(strstr(s, "kernel k0_rmax_exp_sum_div") != NULL, "%s", s);
    cr_expect_eq(count(s, "for i0 in 0..6 {"), 1, "one loop over the rows:\n%s", s);
    free(s);
    ir_free(&g);
}

Test(xform_fuse, bias_and_relu_are_the_gemm_epilogue) {
    IrGraph g;
    g_layer(&g, 5, 7, 9);
    char *s = fused_text(&g, NULL);
    cr_expect_eq(count(s, "\nkernel "), 1, "%s", s);
    cr_expect(strstr(s, "gemm(5x9x7") != NULL, "%s", s);
    cr_expect(strstr(s, "for i0 in 0..5 epilogue {") != NULL, "%s", s);
    free(s);
    ir_free(&g);
}

/* Batch-1 inference (M = 1): the epilogue is one row, still fused. */
Test(xform_fuse, one_row_epilogue) {
    IrGraph g;
    g_layer(&g, 1, 7, 9);
    char *s = fused_text(&g, NULL);
    cr_expect_eq(count(s, "\nkernel "), 1, "%s", s);
    cr_expect(strstr(s, "for i0 in 0..1 epilogue {") != NULL, "%s", s);
    free(s);
    ir_free(&g);
}

/* t = log(x) (read twice, and a libm call: materialized, never recomputed);
 * out = t*t + t read across rows */
static void g_across(IrGraph *g, int how) {
    ir_init(g);
    int x = ir_input(g, TY_F32, (Shape){2, {4, 4}}, NULL, L0);
    int t = ir_unary(g, OP_LOG, x, L0);
    int other = t; /* how 2: the same row (the control: merged) */
    if (how == 1) {
        other = ir_transpose(g, t, 0, 1, L0);
    } else if (how == 0) {
        IrSliceDim d[1] = {{false, true, false, 0, 1, 1}};
        other = ir_broadcast_to(g, ir_slice(g, t, d, 1, L0), (Shape){2, {4, 4}}, L0); /* t[0] */
    }
    ir_mark_output(g, ir_binary(g, OP_ADD, ir_binary(g, OP_MUL, t, t, L0), other, L0));
}

Test(xform_fuse, refuses_reading_other_rows) {
    for (int how = 0; how < 3; how++) {
        IrGraph g;
        g_across(&g, how);
        int merged = -1;
        char *s = fused_text(&g, &merged);
        static const char *what[] = {"row 0 broadcast", "transpose", "same row"};
        cr_expect_eq(merged, how == 2, "%s: %d merged:\n%s", what[how], merged, s);
        free(s);
        ir_free(&g);
    }
}

/* A matmul whose consumer reads C transposed keeps its own kernel. */
Test(xform_fuse, refuses_epilogue_reading_c_across) {
    IrGraph g;
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){2, {6, 3}}, NULL, L0);
    int w = ir_input(&g, TY_F32, (Shape){2, {3, 6}}, NULL, L0);
    int c = ir_matmul(&g, x, w, L0);
    ir_mark_output(&g, ir_unary(&g, OP_TANH, ir_transpose(&g, c, 0, 1, L0), L0));
    int merged = -1;
    char *s = fused_text(&g, &merged);
    cr_expect_eq(merged, 0, "%s", s);
    free(s);
    ir_free(&g);
}

static size_t out_bytes(const IrGraph *g, int j) {
    const IrNode *x = &g->nodes[g->outputs[j]];
    return (size_t)shape_numel(&x->shape) * dtype_size(x->dtype);
}

/* *bad_node: the node of an index out of range that failed the run (both
 * versions must fail alike), else -1 */
static void **run(Jit *j, const IrGraph *g, void **in, bool *ok, int *bad_node) {
    void **out = calloc((size_t)g->nout + 1, sizeof *out);
    for (int k = 0; k < g->nout; k++) out[k] = calloc(1, out_bytes(g, k) + 1);
    char err[256];
    *ok = jit_run(j, g, (void *const *)in, (void *const *)out, err, sizeof err);
    *bad_node = *ok ? -1 : jit_error_node(j);
    if (!*ok && *bad_node < 0) cr_log_error("%s", err);
    return out;
}

static void free_outs(void **out, int n) {
    for (int i = 0; i < n; i++) free(out[i]);
    free(out);
}

/* Random graphs, plus the hand-made ones at sizes that split over threads
 * and over the GEMM's row blocks: fused and unfused agree bit for bit. */
Test(xform_fuse, bit_exact_against_unfused, .timeout = 300) {
    const char *env = getenv("TT_FUSE_N");
    int n = env ? atoi(env) : 150, bad = 0, merged = 0;
    for (int threads = 1; threads <= 2; threads++) {
        Jit *plain = jit_new(2), *fused = jit_new(2);
        jit_set_kernel_fusion(plain, false);
        jit_set_threads(plain, threads);
        jit_set_threads(fused, threads);
        for (int s = -4; s < n; s++) {
            RgGraph rg = {0};
            IrGraph hand, *g = &hand;
            if (s == -4)
                g_layer(&hand, 1, 70, 130); /* a one-row epilogue */
            else if (s == -3)
                g_softmax(&hand, 300, 301);
            else if (s == -2)
                g_layer(&hand, 300, 70, 130);
            else if (s == -1)
                g_layer(&hand, 3, 70, 130);
            else {
                rg_build(&rg, 9000 + (uint64_t)s, 8);
                g = &rg.g;
            }
            void **in = s >= 0 ? rg_make_inputs(&rg, (uint64_t)s) : NULL;
            if (s < 0) {
                RgRng r = {(uint64_t)(s + 10)};
                in = calloc((size_t)g->ninputs + 1, sizeof *in);
                for (int i = 0; i < g->n; i++) {
                    const IrNode *x = &g->nodes[i];
                    if (x->op != OP_INPUT) continue;
                    int64_t len = shape_numel(&x->shape);
                    float *d = malloc((size_t)len * sizeof *d);
                    for (int64_t k = 0; k < len; k++) d[k] = (float)rg_unif(&r, -2, 2);
                    in[x->attr.index] = d;
                }
            }
            LpProg *p = lp_lower(g, true);
            merged += lp_fuse_kernels(p);
            lp_free(p);
            bool ok1, ok2;
            int bad1, bad2;
            void **a = run(plain, g, in, &ok1, &bad1), **b = run(fused, g, in, &ok2, &bad2);
            bool failed_alike = !ok1 && !ok2 && bad1 >= 0 && bad1 == bad2;
            bool same = (ok1 && ok2) || failed_alike;
            for (int k = 0; same && !failed_alike && k < g->nout; k++)
                same = memcmp(a[k], b[k], out_bytes(g, k)) == 0;
            if (!same) {
                cr_log_error("graph %d, %d threads: fused and unfused differ", s, threads);
                bad++;
            }
            free_outs(a, g->nout);
            free_outs(b, g->nout);
            if (s >= 0) {
                rg_free_inputs(&rg, in);
                rg_free(&rg);
            } else {
                for (int i = 0; i < g->ninputs; i++) free(in[i]);
                free(in);
                ir_free(&hand);
            }
        }
        jit_free(plain);
        jit_free(fused);
    }
    cr_expect_eq(bad, 0);
    cr_expect(merged > n / 4, "only %d kernels merged in %d graphs", merged, 2 * n);
    cr_log_info("xform_fuse: %d kernels merged away", merged);
}
