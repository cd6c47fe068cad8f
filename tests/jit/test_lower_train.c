/* test_lower_train.c - the lowering choices a training step leans on
 * (compiler/jit/lower.c), each against the reference:
 *
 *   - a matmul whose B is shared by the batch (x @ W, x 3-D) is one GEMM
 *     over batch * m rows (fold_batch_rows);
 *   - a sum over a matmul's batch (a shared weight's gradient) is one GEMM
 *     over batch * k (lower_batch_sum), with the materialized fallback when
 *     the operands do not line up;
 *   - a cheap elementwise value read by several elementwise kernels is
 *     recomputed by each (decide_recompute) with the bits its buffer had;
 *   - attention's forward writes the log-sum-exp its backward reads
 *     (decide_twins), and max_pool2d's forward the index its backward reads.
 *
 * The loop IR (jit_emit_loops) shows which lowering a graph got; the
 * results are compared with the naive runtime on random inputs, on 1 and 2
 * threads.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dump_text.h"
#include "jit.h"
#include "kernels.h"
#include "randgraph.h"

static const SrcLoc L0 = {0};

static int count(const char *s, const char *what) {
    int n = 0;
    size_t w = strlen(what);
    for (size_t at = 0; strstr(s + at, what); n++) at = (size_t)(strstr(s + at, what) - s) + w;
    return n;
}

static float **random_inputs(const IrGraph *g, uint64_t seed) {
    RgRng r = {seed};
    float **in = calloc((size_t)g->ninputs + 1, sizeof *in);
    for (int i = 0; i < g->n; i++) {
        const IrNode *x = &g->nodes[i];
        if (x->op != OP_INPUT) continue;
        int64_t n = shape_numel(&x->shape);
        in[x->attr.index] = malloc(((size_t)n + 1) * sizeof(float));
        for (int64_t k = 0; k < n; k++) in[x->attr.index][k] = (float)rg_unif(&r, -2, 2);
    }
    return in;
}

static void free_all(float **p, int n) {
    for (int i = 0; i < n; i++) free(p[i]);
    free(p);
}

/* Runs g on jit; its outputs (caller frees). */
static float **run_jit(Jit *jit, const IrGraph *g, float **in) {
    float **out = calloc((size_t)g->nout, sizeof *out);
    for (int j = 0; j < g->nout; j++) {
        int64_t n = shape_numel(&g->nodes[g->outputs[j]].shape);
        out[j] = malloc(((size_t)n + 1) * sizeof(float));
        memset(out[j], 0x7f, ((size_t)n + 1) * sizeof(float));
    }
    char err[512];
    bool ok = jit_run(jit, g, (void *const *)in, (void *const *)out, err, sizeof err);
    cr_assert(ok, "jit failed: %s", err);
    return out;
}

/* g on the naive runtime and on the JIT with 1 and 2 threads: every
 * output within tol (relative, floor 1) of the reference. */
static bool matches_reference(const IrGraph *g, double tol, const char *what) {
    char err[512];
    cr_assert(ir_verify(g, err, sizeof err), "%s: %s", what, err);
    float **in = random_inputs(g, 7);
    float **want = calloc((size_t)g->nout, sizeof *want);
    for (int j = 0; j < g->nout; j++)
        want[j] = calloc((size_t)shape_numel(&g->nodes[g->outputs[j]].shape) + 1, sizeof(float));
    KernelErr kerr;
    cr_assert(rt_naive_run(g, (void *const *)in, (void *const *)want, NULL, &kerr), "%s: %s", what,
              kerr.msg);
    bool ok = true;
    for (int t = 1; t <= 2; t++) {
        Jit *jit = jit_new(2);
        jit_set_threads(jit, t);
        float **got = run_jit(jit, g, in);
        for (int j = 0; j < g->nout; j++)
            for (int64_t k = 0; ok && k < shape_numel(&g->nodes[g->outputs[j]].shape); k++) {
                double a = got[j][k], b = want[j][k];
                if (isnan(a) && isnan(b)) continue;
                if (!(fabs(a - b) <= tol * fmax(1.0, fabs(b)))) {
                    cr_log_error("%s: %d threads, output %d element %lld: jit %.9g, naive %.9g",
                                 what, t, j, (long long)k, a, b);
                    ok = false;
                }
            }
        free_all(got, g->nout);
        jit_free(jit);
    }
    free_all(in, g->ninputs);
    free_all(want, g->nout);
    return ok;
}

/* y = x @ w with x [4, 6, 5] and w [5, 7], and w's gradient sum_b x_b^T g_b
 * as autodiff builds it (w broadcast over the batch; the broadcast's
 * gradient sums over it) */
Test(lower_train, shared_weight_forward_and_gradient_are_one_gemm_each) {
    IrGraph g;
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){3, {4, 6, 5}}, NULL, L0);
    int w = ir_input(&g, TY_F32, (Shape){2, {5, 7}}, NULL, L0);
    int gy = ir_input(&g, TY_F32, (Shape){3, {4, 6, 7}}, NULL, L0);
    int y = ir_matmul(&g, x, w, L0);
    int loss = ir_reduce(&g, OP_SUM, ir_binary(&g, OP_MUL, y, gy, L0), NULL, 0, false, L0);
    int grads[2];
    cr_assert(ad_backward(&g, loss, (int[]){w, x}, 2, grads));
    ir_mark_output(&g, y);
    ir_mark_output(&g, grads[0]);
    ir_mark_output(&g, grads[1]);
    char *s = tu_loops_text(&g);
    cr_expect(strstr(s, "gemm(24x7x5, in0[0] lda 5, in1[0] ldb 7)") != NULL, "forward:\n%s", s);
    cr_expect(strstr(s, "gemm(5x7x24, in0[0]^T lda 5, ") != NULL, "w's gradient:\n%s", s);
    cr_expect(strstr(s, "gemm(24x5x7, ") != NULL, "x's gradient:\n%s", s);
    cr_expect_eq(count(s, "gemm("), 3, "%s", s);
    free(s);
    cr_expect(matches_reference(&g, 1e-4, "shared weight"));
    ir_free(&g);
}

/* Batches the GEMM cannot take as rows or as contraction: a's batch
 * interleaved with its rows (a permuted input) keeps a product per batch
 * element; a sum over a batch whose B is itself broadcast (stride 0 along
 * the contraction) is materialized and summed. */
Test(lower_train, batches_that_do_not_line_up_fall_back) {
    IrGraph g;
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){3, {6, 4, 5}}, NULL, L0);
    int w = ir_input(&g, TY_F32, (Shape){2, {5, 7}}, NULL, L0);
    int xa = ir_permute(&g, x, (int[]){1, 0, 2}, L0); /* [4, 6, 5], rows 20 apart */
    ir_mark_output(&g, ir_matmul(&g, xa, w, L0));
    int a = ir_input(&g, TY_F32, (Shape){3, {3, 2, 4}}, NULL, L0);
    int b = ir_input(&g, TY_F32, (Shape){2, {4, 5}}, NULL, L0);
    int prod = ir_matmul(&g, a, b, L0); /* b broadcast: its batch stride is 0 */
    ir_mark_output(&g, ir_reduce(&g, OP_SUM, prod, (int[]){0}, 1, false, L0));
    char *s = tu_loops_text(&g);
    cr_expect(strstr(s, "gemm(6x7x5, in0[i0 * 5] lda 20, in1[0] ldb 7)") != NULL, "%s", s);
    cr_expect(strstr(s, "gemm(6x5x4, ") != NULL, "a sum over b's own batch folds rows:\n%s", s);
    free(s);
    cr_expect(matches_reference(&g, 1e-4, "fallbacks"));
    ir_free(&g);
}

/* The first nout outputs of a and b (the same graph, b with one more
 * output) computed by the JIT on one thread from the same random inputs
 * are the same bits. */
static void expect_same_bits(const IrGraph *a, const IrGraph *b, int nout, uint64_t seed) {
    float **in = random_inputs(a, seed);
    Jit *jit = jit_new(2);
    jit_set_threads(jit, 1);
    float **ga = run_jit(jit, a, in), **gb = run_jit(jit, b, in);
    for (int j = 0; j < nout; j++) {
        int64_t n = shape_numel(&a->nodes[a->outputs[j]].shape), diff = 0;
        for (int64_t k = 0; k < n; k++) diff += memcmp(&ga[j][k], &gb[j][k], sizeof(float)) != 0;
        cr_expect_eq(diff, 0, "output %d: %lld of %lld elements differ", j, (long long)diff,
                     (long long)n);
    }
    free_all(ga, a->nout);
    free_all(gb, b->nout);
    free_all(in, a->ninputs);
    jit_free(jit);
}

/* m = tanh(h * c) * c (a mul) read by two elementwise outputs: recomputed
 * by each, with m's bits: m + d equals the same graph's m + d when m is
 * also an output (stored, then read), bit for bit, although m + d could be
 * contracted into one FMA. */
static void g_recompute(IrGraph *g, bool t_out) {
    ir_init(g);
    int h = ir_input(g, TY_F32, (Shape){2, {64, 32}}, NULL, L0);
    int c = ir_input(g, TY_F32, (Shape){2, {64, 32}}, NULL, L0);
    int d = ir_input(g, TY_F32, (Shape){2, {64, 32}}, NULL, L0);
    int t = ir_unary(g, OP_TANH, ir_binary(g, OP_MUL, h, c, L0), L0);
    int m = ir_binary(g, OP_MUL, t, c, L0);
    ir_mark_output(g, ir_binary(g, OP_ADD, m, d, L0));
    ir_mark_output(g, ir_binary(g, OP_MUL, m, h, L0));
    if (t_out) ir_mark_output(g, m);
}

Test(lower_train, recomputed_values_keep_their_bits) {
    IrGraph a, b;
    g_recompute(&a, false);
    g_recompute(&b, true);
    char *s = tu_loops_text(&a);
    cr_expect(strstr(s, "f32[64, 32]  temp") == NULL, "m has no buffer:\n%s", s);
    free(s);
    s = tu_loops_text(&b);
    cr_expect(strstr(s, "out2") != NULL, "m is an output:\n%s", s);
    free(s);
    cr_expect(matches_reference(&a, 1e-5, "recompute"));
    expect_same_bits(&a, &b, 2, 11);
    ir_free(&a);
    ir_free(&b);
}

/* m, four tanh deep (over the recomputation budget), read three times by
 * one kernel: computed there (no buffer, one kernel), with the bits of
 * the same graph where m is also an output and so stored. */
static void g_shared(IrGraph *g, bool m_out) {
    ir_init(g);
    int h = ir_input(g, TY_F32, (Shape){2, {64, 32}}, NULL, L0);
    int c = ir_input(g, TY_F32, (Shape){2, {64, 32}}, NULL, L0);
    int d = ir_input(g, TY_F32, (Shape){2, {64, 32}}, NULL, L0);
    int t = h;
    for (int i = 0; i < 4; i++)
        t = ir_unary(g, OP_TANH, ir_binary(g, OP_MUL, t, i % 2 ? c : d, L0), L0);
    int m = ir_binary(g, OP_MUL, t, c, L0);
    int a =
        ir_binary(g, OP_ADD, ir_binary(g, OP_MUL, m, h, L0), ir_binary(g, OP_MUL, m, d, L0), L0);
    ir_mark_output(g, ir_binary(g, OP_MUL, a, m, L0));
    if (m_out) ir_mark_output(g, m);
}

Test(lower_train, a_value_read_only_by_one_kernel_is_computed_there) {
    IrGraph a, b;
    g_shared(&a, false);
    g_shared(&b, true);
    char *s = tu_loops_text(&a);
    cr_expect(strstr(s, "f32[64, 32]  temp") == NULL, "m has no buffer:\n%s", s);
    cr_expect_eq(count(s, "kernel k"), 1, "one kernel:\n%s", s);
    free(s);
    cr_expect(matches_reference(&a, 1e-5, "shared"));
    expect_same_bits(&a, &b, 1, 12);
    ir_free(&a);
    ir_free(&b);
}

/* The gradients of q, k, v joined into [B, T, 3d]: a concat of heads
 * [B, H, T, dh] permuted to [B, T, H, dh] and reshaped to [B, T, H*dh]
 * reads (t, c / dh, c % dh); the loop over c is split at dh so its inner
 * loop reads runs of dh floats and vectorizes (transform.c, split_divmod). */
Test(lower_train, reshaped_permutes_read_in_runs) {
    IrGraph g;
    ir_init(&g);
    int parts[3];
    for (int i = 0; i < 3; i++) {
        int h = ir_input(&g, TY_F32, (Shape){4, {2, 4, 8, 32}}, NULL, L0);
        int t = ir_permute(&g, h, (int[]){0, 2, 1, 3}, L0);
        parts[i] = ir_reshape(&g, t, (Shape){3, {2, 8, 128}}, L0);
    }
    ir_mark_output(&g, ir_concat(&g, parts, 3, 2, L0));
    char *s = tu_loops_text(&g);
    cr_expect_eq(count(s, "0..32 vectorize"), 3, "three inner loops over runs of 32:\n%s", s);
    cr_expect(strstr(s, "/ 32") == NULL, "no division left:\n%s", s);
    free(s);
    cr_expect(matches_reference(&g, 0, "concat of reshaped permutes"));
    ir_free(&g);
}

/* The forward of a causal attention and its backward (autodiff: the
 * composed form reads attention_lse): the forward's kernel writes the lse,
 * and no kernel of its own computes it; with and without a runtime len. */
Test(lower_train, attention_forward_writes_the_backward_lse) {
    for (int with_len = 0; with_len < 2; with_len++) {
        IrGraph g;
        ir_init(&g);
        int q = ir_input(&g, TY_F32, (Shape){3, {2, 21, 8}}, NULL, L0);
        int k = ir_input(&g, TY_F32, (Shape){3, {2, 37, 8}}, NULL, L0);
        int v = ir_input(&g, TY_F32, (Shape){3, {2, 37, 8}}, NULL, L0);
        int gy = ir_input(&g, TY_F32, (Shape){3, {2, 21, 8}}, NULL, L0);
        int len = with_len ? ir_const(&g, TY_I32, shape_scalar(), 30, L0) : -1;
        int y = ir_attention(&g, q, k, v, len, true, NAN, L0);
        int loss = ir_reduce(&g, OP_SUM, ir_binary(&g, OP_MUL, y, gy, L0), NULL, 0, false, L0);
        int grads[3];
        cr_assert(ad_backward(&g, loss, (int[]){q, k, v}, 3, grads));
        ir_mark_output(&g, y);
        for (int i = 0; i < 3; i++) ir_mark_output(&g, grads[i]);
        bool has_lse = false;
        for (int i = 0; i < g.n; i++) has_lse = has_lse || g.nodes[i].op == OP_ATTENTION_LSE;
        cr_assert(has_lse, "the backward reads attention_lse");
        char *s = tu_loops_text(&g);
        cr_expect(strstr(s, "_attention ") != NULL && strstr(s, "_attention_lse ") == NULL,
                  "len %d: no attention_lse kernel:\n%s", with_len, s);
        free(s);
        cr_expect(matches_reference(&g, 1e-4, with_len ? "attention, len" : "attention"));
        ir_free(&g);
    }
}

/* A row statistic broadcast to the rows and read by two kernels (a layer
 * norm's backward): the broadcast is read through by both, never stored;
 * the statistic keeps its [rows, 1] buffer. */
Test(lower_train, broadcast_of_a_root_is_read_through) {
    IrGraph g;
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){2, {48, 40}}, NULL, L0);
    int y = ir_input(&g, TY_F32, (Shape){2, {48, 40}}, NULL, L0);
    int r = ir_reduce(&g, OP_SUM, ir_binary(&g, OP_MUL, x, y, L0), (int[]){1}, 1, true, L0);
    int b = ir_broadcast_to(&g, ir_unary(&g, OP_RSQRT, ir_unary(&g, OP_ABS, r, L0), L0),
                            (Shape){2, {48, 40}}, L0);
    ir_mark_output(&g, ir_binary(&g, OP_MUL, b, x, L0));
    ir_mark_output(
        &g, ir_reduce(&g, OP_SUM, ir_binary(&g, OP_SUB, b, y, L0), (int[]){0}, 1, false, L0));
    char *s = tu_loops_text(&g);
    cr_expect(strstr(s, "f32[48, 40]  temp") == NULL, "the broadcast is stored:\n%s", s);
    cr_expect(strstr(s, "f32[48, 1]  temp") != NULL, "the statistic has a buffer:\n%s", s);
    free(s);
    cr_expect(matches_reference(&g, 1e-5, "broadcast of a root"));
    ir_free(&g);
}

/* max_pool2d's forward and backward (autodiff: the backward scatters
 * through max_pool2d_index): the forward's loop writes the index, no
 * kernel of its own scans the windows again; windows with padding and
 * overlap (3x3, stride 2, padding 1). */
Test(lower_train, max_pool_forward_writes_the_backward_index) {
    IrGraph g;
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){4, {2, 3, 9, 11}}, NULL, L0);
    int gy = ir_input(&g, TY_F32, (Shape){4, {2, 3, 5, 6}}, NULL, L0);
    IrWindow win = {{3, 3}, {2, 2}, {1, 1}, {1, 1}, 1};
    int y = ir_pool2d(&g, OP_MAX_POOL2D, ir_unary(&g, OP_RELU, x, L0), &win, L0);
    cr_assert(y >= 0, "%s", g.err);
    int loss = ir_reduce(&g, OP_SUM, ir_binary(&g, OP_MUL, y, gy, L0), NULL, 0, false, L0);
    int grads[1];
    cr_assert(ad_backward(&g, loss, (int[]){x}, 1, grads));
    ir_mark_output(&g, y);
    ir_mark_output(&g, grads[0]);
    bool has_index = false;
    for (int i = 0; i < g.n; i++) has_index = has_index || g.nodes[i].op == OP_MAX_POOL2D_INDEX;
    cr_assert(has_index, "the backward reads max_pool2d_index");
    char *s = tu_loops_text(&g);
    cr_expect(strstr(s, "max_pool2d ") != NULL && strstr(s, "_max_pool2d_index ") == NULL,
              "no max_pool2d_index kernel:\n%s", s);
    free(s);
    cr_expect(matches_reference(&g, 1e-5, "max_pool2d and its index"));
    ir_free(&g);
}

/* Windows that do not overlap (2x2, stride 2) read each element once, so a
 * training step's relu (with the batch norm before it) is computed inside
 * the pool's loop, for the forward and its twin index, and never stored;
 * with overlapping windows (3x3, stride 2) it keeps its buffer. */
Test(lower_train, relu_fused_into_a_pool_of_disjoint_windows) {
    for (int overlap = 0; overlap < 2; overlap++) {
        IrGraph g;
        ir_init(&g);
        int x = ir_input(&g, TY_F32, (Shape){4, {2, 3, 8, 10}}, NULL, L0);
        int s = ir_input(&g, TY_F32, (Shape){4, {2, 3, 8, 10}}, NULL, L0);
        IrWindow win = {{2 + overlap, 2 + overlap}, {2, 2}, {overlap, overlap}, {1, 1}, 1};
        int r = ir_unary(&g, OP_RELU, ir_binary(&g, OP_MUL, x, s, L0), L0);
        int y = ir_pool2d(&g, OP_MAX_POOL2D, r, &win, L0);
        cr_assert(y >= 0, "%s", g.err);
        Shape ys = g.nodes[y].shape;
        int gy = ir_input(&g, TY_F32, ys, NULL, L0);
        int loss = ir_reduce(&g, OP_SUM, ir_binary(&g, OP_MUL, y, gy, L0), NULL, 0, false, L0);
        int grads[1];
        cr_assert(ad_backward(&g, loss, (int[]){x}, 1, grads));
        ir_mark_output(&g, y);
        ir_mark_output(&g, grads[0]);
        char *txt = tu_loops_text(&g);
        bool stored = strstr(txt, "f32[2, 3, 8, 10]  temp") != NULL;
        cr_expect_eq(stored, overlap == 1, "overlap %d: relu stored %d:\n%s", overlap, stored, txt);
        free(txt);
        cr_expect(matches_reference(&g, 1e-5, overlap ? "overlapping pool" : "disjoint pool"));
        ir_free(&g);
    }
}
