/* test_transform.c - the loop IR transformations (transform.h).
 *
 * For each transformation: the transformed loop IR of a small kernel prints
 * as expected; running the transformed program (through codegen and the JIT,
 * applied by a jit_set_loop_hook) gives bit-for-bit the results of the
 * untransformed one on random inputs, including extents the tile / unroll
 * factor does not divide; illegal requests are refused and leave the IR as
 * it was.
 *
 * xform_tile, xform_interchange, xform_unroll, xform_vectorize,
 * xform_parallel: one suite per transformation.
 * xform_schedule: the default schedule (lp_schedule) and its thread count.
 * xform_parcost:  the threading cost model's decisions on synthetic costs.
 * xform_runtime:  ttrt_parallel_for on its own.
 * xform_random:   random graphs (randgraph.c) with random transformations of
 *                 random loops, against the untransformed program.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dump_text.h"
#include "jit.h"
#include "loop.h"
#include "parallel.h"
#include "parcost.h"
#include "randgraph.h"
#include "transform.h"

static const SrcLoc L0 = {0};

/* -- graphs, data, runs -- */

/* out[n, m] = transpose(x[m, n]) + y[n, m]: a 2-D nest reading x across. */
static void g_transpose(IrGraph *g, int64_t n, int64_t m) {
    ir_init(g);
    int x = ir_input(g, TY_F32, (Shape){2, {m, n}}, NULL, L0);
    int y = ir_input(g, TY_F32, (Shape){2, {n, m}}, NULL, L0);
    ir_mark_output(g, ir_binary(g, OP_ADD, ir_transpose(g, x, 0, 1, L0), y, L0));
}

/* out[n] = sum(exp(x[n, m]), axis 1): a row reduction. */
static void g_rowsum(IrGraph *g, int64_t n, int64_t m) {
    ir_init(g);
    int x = ir_input(g, TY_F32, (Shape){2, {n, m}}, NULL, L0), ax = 1;
    ir_mark_output(g, ir_reduce(g, OP_SUM, ir_unary(g, OP_EXP, x, L0), &ax, 1, false, L0));
}

/* out[n, m] = x * y + x: flat elementwise, one loop. */
static void g_elem(IrGraph *g, int64_t n, int64_t m) {
    ir_init(g);
    int x = ir_input(g, TY_F32, (Shape){2, {n, m}}, NULL, L0);
    int y = ir_input(g, TY_F32, (Shape){2, {n, m}}, NULL, L0);
    ir_mark_output(g, ir_binary(g, OP_ADD, ir_binary(g, OP_MUL, x, y, L0), x, L0));
}

static void **inputs(const IrGraph *g, uint64_t seed) {
    RgRng r = {seed * 2654435761u + 1};
    void **in = calloc((size_t)g->ninputs + 1, sizeof *in);
    for (int i = 0; i < g->n; i++) {
        const IrNode *x = &g->nodes[i];
        if (x->op != OP_INPUT) continue;
        int64_t len = shape_numel(&x->shape);
        float *d = malloc((size_t)(len ? len : 1) * sizeof *d);
        for (int64_t k = 0; k < len; k++) d[k] = (float)rg_unif(&r, -2, 2);
        in[x->attr.index] = d;
    }
    return in;
}

static void free_ptrs(void **p, int n) {
    for (int i = 0; i < n; i++) free(p[i]);
    free(p);
}

static size_t out_bytes(const IrGraph *g, int j) {
    const IrNode *x = &g->nodes[g->outputs[j]];
    return (size_t)shape_numel(&x->shape) * dtype_size(x->dtype);
}

/* Runs g on a fresh JIT with the hook and thread count; the outputs. */
static void **run(const IrGraph *g, void **in, JitLoopHook hook, void *arg, int threads) {
    Jit *j = jit_new(2);
    cr_assert(j);
    jit_set_threads(j, threads);
    jit_set_loop_hook(j, hook, arg);
    void **out = calloc((size_t)g->nout + 1, sizeof *out);
    for (int k = 0; k < g->nout; k++) {
        size_t b = out_bytes(g, k);
        out[k] = malloc(b ? b : 1);
        memset(out[k], 0x7f, b ? b : 1);
    }
    char err[256];
    cr_assert(jit_run(j, g, (void *const *)in, (void *const *)out, err, sizeof err), "%s", err);
    jit_free(j);
    return out;
}

/* Every output bit for bit equal. */
static bool same(const IrGraph *g, void **a, void **b, const char *what) {
    for (int k = 0; k < g->nout; k++)
        if (memcmp(a[k], b[k], out_bytes(g, k)) != 0) {
            cr_log_error("%s: output %d differs", what, k);
            return false;
        }
    return true;
}

/* What a hook does: one transformation of one loop of kernel 0 (the loop of
 * variable var; for interchange, with the loop nested in it). */
typedef enum { T_TILE, T_INTERCHANGE, T_UNROLL, T_VECTORIZE, T_PARALLEL } TKind;
typedef struct Req {
    TKind kind;
    int kernel, var;
    int64_t arg;
    int done; /* -1 not run, 0 refused, 1 applied */
} Req;

static bool apply(LpProg *p, LpKernel *k, LpStmt *l, TKind kind, int64_t arg) {
    switch (kind) {
    case T_TILE:
        return lp_tile(p, k, l, arg);
    case T_INTERCHANGE:
        return lp_interchange(p, k, l, l ? l->body : NULL);
    case T_UNROLL:
        return lp_unroll(p, k, l, (int)arg);
    case T_VECTORIZE:
        return lp_mark_vectorize(p, k, l);
    case T_PARALLEL:
        return lp_mark_parallel(p, k, l, (int)arg);
    }
    return false;
}

static void req_hook(LpProg *p, void *arg) {
    Req *r = arg;
    LpKernel *k = &p->kernels[r->kernel];
    r->done = apply(p, k, lp_find_loop(k, r->var), r->kind, r->arg);
}

/* The printed kernels of g after the request (the buffer lines dropped). */
static char *transformed_text(const IrGraph *g, Req *r) {
    LpProg *p = lp_lower(g, true);
    req_hook(p, r);
    char *s = tu_prog_text(p, NULL);
    size_t at = strstr(s, "\nkernel ") ? (size_t)(strstr(s, "\nkernel ") - s) + 1 : 0;
    memmove(s, s + at, strlen(s + at) + 1);
    lp_free(p);
    return s;
}

/* The request applied, and the printed kernels exactly want. */
static void expect_printed(const IrGraph *g, Req r, const char *want) {
    char *s = transformed_text(g, &r);
    cr_expect(r.done == 1);
    cr_expect(strcmp(s, want) == 0, "got:\n%s", s);
    free(s);
}

/* Lowers g, applies the request, and checks that it is refused and the
 * printed IR did not change. */
static void expect_refused(const IrGraph *g, Req r, const char *what) {
    LpProg *p = lp_lower(g, true);
    char *before = tu_prog_text(p, NULL);
    req_hook(p, &r);
    char *after = tu_prog_text(p, NULL);
    cr_expect(r.done == 0, "%s: not refused:\n%s", what, after);
    cr_expect(strcmp(before, after) == 0, "%s: refused but changed:\n%s", what, after);
    free(before);
    free(after);
    lp_free(p);
}

/* The request applied, and the results bit for bit those of the plain
 * program (also on threads threads). */
static void expect_same_results(const IrGraph *g, Req r, int threads, const char *what) {
    void **in = inputs(g, 7);
    void **want = run(g, in, NULL, NULL, 1);
    r.done = -1;
    void **got = run(g, in, req_hook, &r, threads);
    cr_expect(r.done == 1, "%s: refused", what);
    cr_expect(same(g, got, want, what), "%s: results differ", what);
    free_ptrs(in, g->ninputs);
    free_ptrs(want, g->nout);
    free_ptrs(got, g->nout);
}

/* -- tiling -- */

Test(xform_tile, prints_blocks_and_edges) {
    IrGraph g;
    g_transpose(&g, 10, 9);
    /* 10 = 2*4 + 2 rows, 9 = 2*4 + 1 columns: 2x2 blocks of 4x4, the right
     * edge (one column: its loop folded), the bottom edge (2 rows) */
    const char *want =
        "kernel k0_add {\n"
        "    for i2 in 0..2 {\n"
        "        for i3 in 0..2 {\n"
        "            for i4 in 0..4 {\n"
        "                for i5 in 0..4 {\n"
        "                    out0[i2 * 36 + i3 * 4 + i4 * 9 + i5] = "
        "in0[i2 * 4 + i3 * 40 + i4 + i5 * 10] + in1[i2 * 36 + i3 * 4 + i4 * 9 + i5]\n"
        "                }\n"
        "            }\n"
        "        }\n"
        "        for i6 in 0..4 {\n"
        "            out0[i2 * 36 + i6 * 9 + 8] = in0[i2 * 4 + i6 + 80] + in1[i2 * 36 + i6 * 9 + "
        "8]\n"
        "        }\n"
        "    }\n"
        "    for i7 in 0..2 {\n"
        "        for i8 in 0..9 {\n"
        "            out0[i7 * 9 + i8 + 72] = in0[i7 + i8 * 10 + 8] + in1[i7 * 9 + i8 + 72]\n"
        "        }\n"
        "    }\n"
        "}\n";
    expect_printed(&g, (Req){T_TILE, 0, 0, 4, -1}, want);
    ir_free(&g);
}

Test(xform_tile, same_results) {
    static const int64_t cases[][3] = {{8, 8, 4},  {5, 6, 4}, {13, 7, 3}, {3, 17, 4},
                                       {17, 3, 4}, {9, 9, 2}, {6, 40, 8}, {33, 31, 16}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        IrGraph g;
        g_transpose(&g, cases[i][0], cases[i][1]);
        char what[64];
        snprintf(what, sizeof what, "tile %lldx%lld by %lld", (long long)cases[i][0],
                 (long long)cases[i][1], (long long)cases[i][2]);
        expect_same_results(&g, (Req){T_TILE, 0, 0, cases[i][2], -1}, 1, what);
        ir_free(&g);
    }
}

Test(xform_tile, refuses) {
    IrGraph g;
    g_rowsum(&g, 8, 8);
    expect_refused(&g, (Req){T_TILE, 0, 0, 4, -1}, "tile of a reduction nest");
    ir_free(&g);
    g_elem(&g, 8, 8);
    expect_refused(&g, (Req){T_TILE, 0, 0, 4, -1}, "tile of a 1-D loop");
    ir_free(&g);
    g_transpose(&g, 8, 8);
    expect_refused(&g, (Req){T_TILE, 0, 0, 1, -1}, "tile size 1");
    expect_refused(&g, (Req){T_TILE, 0, 0, 8, -1}, "tile as large as the nest");
    expect_refused(&g, (Req){T_TILE, 0, 1, 4, -1}, "tile of the inner loop");
    ir_free(&g);
}

/* -- interchange -- */

Test(xform_interchange, prints_swapped_loops) {
    IrGraph g;
    g_transpose(&g, 3, 4);
    const char *want = "kernel k0_add {\n"
                       "    for i1 in 0..4 {\n"
                       "        for i0 in 0..3 {\n"
                       "            out0[i0 * 4 + i1] = in0[i0 + i1 * 3] + in1[i0 * 4 + i1]\n"
                       "        }\n"
                       "    }\n"
                       "}\n";
    expect_printed(&g, (Req){T_INTERCHANGE, 0, 0, 0, -1}, want);
    ir_free(&g);
}

Test(xform_interchange, same_results) {
    IrGraph g;
    g_transpose(&g, 7, 13);
    expect_same_results(&g, (Req){T_INTERCHANGE, 0, 0, 0, -1}, 1, "interchange 7x13");
    ir_free(&g);
}

/* A hand-built kernel: for i in 0..4 { for j in 0..8 { out[store] = out[load] + x[i*8+j] } } */
static LpProg *accumulate(bool row_store, bool other_load) {
    LpProg *p = lp_new();
    Shape s = {2, {4, 8}};
    int x = lp_add_buf(p, LB_INPUT, 0, TY_F32, &s, -1),
        o = lp_add_buf(p, LB_OUTPUT, 0, TY_F32, &s, -1);
    lp_begin_kernel(p, "acc", -1, o);
    LpExpr *i = lp_open_loop(p, 4), *j = lp_open_loop(p, 8);
    LpExpr *ij = lp_iadd(p, lp_imul(p, i, 8), j);
    LpExpr *st = row_store ? ij : j, *ld = other_load ? lp_imul(p, i, 8) : st;
    lp_store(p, o, st, lp_bin(p, LO_ADD, lp_load(p, o, ld), lp_load(p, x, ij)));
    lp_close_loop(p);
    lp_close_loop(p);
    lp_end_kernel(p);
    return p;
}

static void expect_prog_refuses(LpProg *p, TKind kind, int var, int64_t arg, const char *what) {
    char *before = tu_prog_text(p, NULL);
    LpKernel *k = &p->kernels[0];
    cr_expect(!apply(p, k, lp_find_loop(k, var), kind, arg), "%s: not refused", what);
    char *after = tu_prog_text(p, NULL);
    cr_expect(strcmp(before, after) == 0, "%s: changed:\n%s", what, after);
    free(before);
    free(after);
}

Test(xform_interchange, refuses_dependences) {
    LpProg *p = accumulate(false, false); /* out[j] += x[i, j]: carried on i */
    expect_prog_refuses(p, T_INTERCHANGE, 0, 0, "interchange of a carried accumulation");
    expect_prog_refuses(p, T_TILE, 0, 2, "tile of a carried accumulation");
    expect_prog_refuses(p, T_PARALLEL, 0, 2, "parallel accumulation");
    lp_free(p);
    p = accumulate(true, true); /* out[i, j] = out[i, 0] + ...: reads another element */
    expect_prog_refuses(p, T_INTERCHANGE, 0, 0, "interchange reading another element");
    /* ... of its own row: rows are independent (row-local), so i runs in parallel */
    cr_expect(lp_mark_parallel(p, &p->kernels[0], lp_find_loop(&p->kernels[0], 0), 2));
    lp_free(p);
    p = accumulate(true, false); /* out[i, j] += x[i, j]: independent */
    LpKernel *k = &p->kernels[0];
    LpStmt *l = lp_find_loop(k, 0);
    cr_expect(lp_interchange(p, k, l, l->body));
    lp_free(p);

    IrGraph g;
    g_rowsum(&g, 4, 8);
    expect_refused(&g, (Req){T_INTERCHANGE, 0, 0, 0, -1}, "interchange of an imperfect nest");
    ir_free(&g);
}

/* -- unrolling -- */

Test(xform_unroll, prints_copies_and_remainder) {
    IrGraph g;
    g_elem(&g, 2, 5); /* for i0 in 0..10 */
    const char *want =
        "kernel k0_add {\n"
        "    for i1 in 0..2 {\n"
        "        out0[i1 * 4] = in0[i1 * 4] * in1[i1 * 4] + in0[i1 * 4]\n"
        "        out0[i1 * 4 + 1] = in0[i1 * 4 + 1] * in1[i1 * 4 + 1] + in0[i1 * 4 + 1]\n"
        "        out0[i1 * 4 + 2] = in0[i1 * 4 + 2] * in1[i1 * 4 + 2] + in0[i1 * 4 + 2]\n"
        "        out0[i1 * 4 + 3] = in0[i1 * 4 + 3] * in1[i1 * 4 + 3] + in0[i1 * 4 + 3]\n"
        "    }\n"
        "    out0[8] = in0[8] * in1[8] + in0[8]\n"
        "    out0[9] = in0[9] * in1[9] + in0[9]\n"
        "}\n";
    expect_printed(&g, (Req){T_UNROLL, 0, 0, 4, -1}, want);
    ir_free(&g);
}

Test(xform_unroll, same_results) {
    static const int64_t cases[][3] = {{2, 5, 4}, {3, 7, 2}, {1, 3, 8}, {4, 8, 8}, {5, 13, 3}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        IrGraph g;
        char what[64];
        g_elem(&g, cases[i][0], cases[i][1]);
        snprintf(what, sizeof what, "unroll 0..%lld by %lld",
                 (long long)(cases[i][0] * cases[i][1]), (long long)cases[i][2]);
        expect_same_results(&g, (Req){T_UNROLL, 0, 0, cases[i][2], -1}, 1, what);
        ir_free(&g);
        /* the reduction loop: the same order of additions */
        g_rowsum(&g, cases[i][0] + 1, cases[i][1]);
        snprintf(what, sizeof what, "unroll reduction 0..%lld by %lld", (long long)cases[i][1],
                 (long long)cases[i][2]);
        expect_same_results(&g, (Req){T_UNROLL, 0, 1, cases[i][2], -1}, 1, what);
        /* the outer loop, with the reduction nest inside */
        expect_same_results(&g, (Req){T_UNROLL, 0, 0, cases[i][2], -1}, 1, what);
        ir_free(&g);
    }
}

Test(xform_unroll, refuses) {
    IrGraph g;
    g_elem(&g, 2, 5);
    expect_refused(&g, (Req){T_UNROLL, 0, 0, 1, -1}, "unroll by 1");
    expect_refused(&g, (Req){T_UNROLL, 0, 0, 1000, -1}, "unroll by 1000");
    expect_refused(&g, (Req){T_UNROLL, 0, 7, 2, -1}, "unroll of no loop");
    ir_free(&g);
}

/* -- vectorize marks -- */

Test(xform_vectorize, prints_and_reaches_llvm) {
    IrGraph g;
    g_transpose(&g, 3, 4);
    Req r = {T_VECTORIZE, 0, 1, 0, -1};
    char *s = transformed_text(&g, &r);
    cr_expect(r.done == 1);
    cr_expect(strstr(s, "    for i0 in 0..3 {\n        for i1 in 0..4 vectorize {\n") != NULL,
              "got:\n%s", s);
    free(s);
    expect_same_results(&g, (Req){T_VECTORIZE, 0, 1, 0, -1}, 1, "vectorize");
    /* the default schedule leaves it (a strided read: gathers) ... */
    LpProg *p = lp_lower(&g, true);
    lp_schedule(p, 1);
    s = tu_prog_text(p, NULL);
    cr_expect(strstr(s, "vectorize") == NULL, "got:\n%s", s);
    free(s);
    lp_free(p);
    ir_free(&g);
    /* ... but marks a contiguous loop, and codegen makes it loop metadata */
    g_elem(&g, 3, 4);
    char err[256], *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_expect(jit_emit_llvm(f, &g, 0, err, sizeof err), "%s", err);
    fclose(f);
    cr_expect(strstr(buf, "!llvm.loop !") != NULL, "%s", buf);
    cr_expect(strstr(buf, "!{!\"llvm.loop.vectorize.enable\", i1 true}") != NULL, "%s", buf);
    free(buf);
    ir_free(&g);
}

Test(xform_vectorize, refuses) {
    IrGraph g;
    g_transpose(&g, 3, 4);
    expect_refused(&g, (Req){T_VECTORIZE, 0, 0, 0, -1}, "vectorize an outer loop");
    ir_free(&g);
    g_rowsum(&g, 3, 4);
    expect_refused(&g, (Req){T_VECTORIZE, 0, 1, 0, -1}, "vectorize a float reduction");
    ir_free(&g);
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){1, {16}}, NULL, L0);
    ir_mark_output(&g, ir_unary(&g, OP_TANH, x, L0));
    /* tanh is inline code (codegen.c, cg_tanh), not a libm call: it widens */
    Req r = {T_VECTORIZE, 0, 0, 0, -1};
    char *t = transformed_text(&g, &r);
    cr_expect(r.done == 1 && strstr(t, "vectorize"), "tanh's loop is not vectorized:\n%s", t);
    free(t);
    ir_free(&g);
}

/* -- parallel loops -- */

Test(xform_parallel, prints) {
    IrGraph g;
    g_rowsum(&g, 64, 16);
    Req r = {T_PARALLEL, 0, 0, 2, -1};
    char *s = transformed_text(&g, &r);
    cr_expect(r.done == 1);
    cr_expect(strstr(s, "    parallel for i0 in 0..64 {\n        f64 s0 = 0.0\n") != NULL,
              "got:\n%s", s);
    free(s);
    ir_free(&g);
}

Test(xform_parallel, same_results_on_two_threads) {
    IrGraph g;
    static const int64_t sizes[][2] = {{2, 3}, {3, 5}, {64, 16}, {257, 129}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        int64_t n = sizes[i][0], m = sizes[i][1];
        g_rowsum(&g, n, m);
        expect_same_results(&g, (Req){T_PARALLEL, 0, 0, 2, -1}, 2, "parallel row sums");
        ir_free(&g);
        g_transpose(&g, n, m);
        expect_same_results(&g, (Req){T_PARALLEL, 0, 0, 2, -1}, 2, "parallel transpose");
        expect_same_results(&g, (Req){T_PARALLEL, 0, 0, 5, -1}, 5, "parallel on 5 threads");
        ir_free(&g);
        g_elem(&g, n, m);
        expect_same_results(&g, (Req){T_PARALLEL, 0, 0, 2, -1}, 2, "parallel elementwise");
        ir_free(&g);
    }
}

Test(xform_parallel, refuses) {
    IrGraph g;
    g_transpose(&g, 8, 8);
    expect_refused(&g, (Req){T_PARALLEL, 0, 1, 2, -1}, "parallel inner loop");
    expect_refused(&g, (Req){T_PARALLEL, 0, 0, 1, -1}, "parallel on 1 thread");
    ir_free(&g);
    ir_init(&g); /* a full reduction: the accumulator is carried */
    int x = ir_input(&g, TY_F32, (Shape){2, {8, 8}}, NULL, L0);
    ir_mark_output(&g, ir_reduce(&g, OP_SUM, x, NULL, 0, false, L0));
    expect_refused(&g, (Req){T_PARALLEL, 0, 0, 2, -1}, "parallel full reduction");
    ir_free(&g);

    /* a store at a loaded index (scatter): nothing is known */
    LpProg *p = lp_new();
    Shape s = {1, {8}};
    int ix = lp_add_buf(p, LB_INPUT, 0, TY_I32, &s, -1),
        o = lp_add_buf(p, LB_OUTPUT, 0, TY_F32, &s, -1);
    lp_begin_kernel(p, "scatter", -1, o);
    LpExpr *i = lp_open_loop(p, 8);
    LpExpr *at = lp_cast(p, LT_I64, lp_load(p, ix, i));
    lp_store(p, o, at, lp_bin(p, LO_ADD, lp_load(p, o, at), lp_const_f(p, LT_F32, 1)));
    lp_close_loop(p);
    lp_end_kernel(p);
    expect_prog_refuses(p, T_PARALLEL, 0, 2, "parallel scatter");
    lp_free(p);
}

/* -- the default schedule -- */

Test(xform_schedule, marks) {
    setenv("TT_TUNE", "0", 1); /* the model's default costs, not the host's */
    IrGraph g;
    g_elem(&g, 512, 512); /* 2^18 elements: parallel with 2 threads */
    LpProg *p = lp_lower(&g, true);
    lp_schedule(p, 1);
    char *s = tu_prog_text(p, NULL);
    cr_expect(strstr(s, "    for i0 in 0..262144 vectorize {\n") != NULL, "got:\n%s", s);
    free(s);
    lp_free(p);
    p = lp_lower(&g, true);
    lp_schedule(p, 2);
    s = tu_prog_text(p, NULL);
    cr_expect(strstr(s, "    parallel for i0 in 0..262144 vectorize {\n") != NULL, "got:\n%s", s);
    free(s);
    lp_free(p);
    ir_free(&g);
    g_elem(&g, 16, 16); /* small: serial */
    p = lp_lower(&g, true);
    lp_schedule(p, 2);
    s = tu_prog_text(p, NULL);
    cr_expect(strstr(s, "parallel") == NULL, "got:\n%s", s);
    free(s);
    lp_free(p);
    ir_free(&g);
}

/* -- the cost model (parcost.h), on synthetic costs: deterministic -- */

Test(xform_parcost, decisions) {
    LpParCost c = {.unit_ns = 0.25, .overhead_ns = 8192, .nthreads = 2, .source = "set"};
    double s, p;
    /* tiny: 100 units = 25 ns of work against 8 us of wake + join */
    cr_expect_eq(lp_par_threads(100, 100, 2, &c, &s, &p), 1);
    cr_expect(s == 25 && p == 25 / 2.0 + 8192, "s %g p %g", s, p);
    /* large: 2^22 units, 1 ms serial, 0.53 ms on 2 */
    cr_expect_eq(lp_par_threads(1 << 22, 1 << 10, 2, &c, NULL, NULL), 2);
    cr_expect_eq(lp_par_threads(1 << 22, 1 << 10, 8, &c, NULL, NULL), 8);
    /* at the break-even point serial wins: work * unit / 2 == overhead */
    cr_expect_eq(lp_par_threads(1 << 16, 1 << 10, 2, &c, NULL, NULL), 1);
    cr_expect_eq(lp_par_threads((1 << 16) + 1, 1 << 10, 2, &c, NULL, NULL), 2);
    /* never more threads than iterations, none with one thread allowed */
    cr_expect_eq(lp_par_threads(1 << 22, 3, 8, &c, NULL, NULL), 3);
    cr_expect_eq(lp_par_threads(1 << 22, 1 << 10, 1, &c, NULL, NULL), 1);
    /* a dearer wake-up moves the break-even point, a cheaper one too */
    c.overhead_ns = 1e6;
    cr_expect_eq(lp_par_threads(1 << 22, 1 << 10, 2, &c, NULL, NULL), 1);
    c.overhead_ns = 0;
    cr_expect_eq(lp_par_threads(4, 4, 2, &c, NULL, NULL), 2);
}

/* lp_schedule follows the model: the same graph goes serial or parallel
 * with the host's costs, and TT_TUNE=0 (the suite) keeps the default. */
Test(xform_parcost, schedule_follows_costs) {
    IrGraph g;
    g_elem(&g, 512, 512);
    LpParCost dear = {.unit_ns = 0.25, .overhead_ns = 1e9, .source = "set"};
    lp_par_cost_set(&dear);
    LpProg *p = lp_lower(&g, true);
    lp_schedule(p, 2);
    char *s = tu_prog_text(p, NULL);
    cr_expect(strstr(s, "parallel") == NULL, "got:\n%s", s);
    free(s);
    lp_free(p);
    ir_free(&g);
    g_elem(&g, 16, 16);
    LpParCost cheap = {.unit_ns = 0.25, .overhead_ns = 0, .source = "set"};
    lp_par_cost_set(&cheap);
    p = lp_lower(&g, true);
    lp_schedule(p, 2);
    s = tu_prog_text(p, NULL);
    cr_expect(strstr(s, "parallel for i0 in 0..256") != NULL, "got:\n%s", s);
    free(s);
    lp_free(p);
    ir_free(&g);
    lp_par_cost_set(NULL);
    setenv("TT_TUNE", "0", 1); /* as the suite runs */
    /* explicit costs (ttc's) win over the process's */
    g_elem(&g, 16, 16);
    p = lp_lower(&g, true);
    lp_schedule_with(p, 2, &cheap);
    s = tu_prog_text(p, NULL);
    cr_expect(strstr(s, "parallel for i0 in 0..256") != NULL, "got:\n%s", s);
    free(s);
    lp_free(p);
    ir_free(&g);
    LpParCost d = lp_par_cost(2);
    cr_expect(d.unit_ns == lp_par_cost_default(2).unit_ns &&
                  d.overhead_ns == lp_par_cost_default(2).overhead_ns,
              "TT_TUNE=0 is set for the suite: %s", d.source);
    /* every decision is explained */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    lp_par_explain(f);
    fclose(f);
    cr_expect(strstr(text, "-> serial (cheaper)") && strstr(text, "-> threaded on 2"), "%s", text);
    free(text);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Large graphs on 1 and 2 threads by the default schedule: identical. */
Test(xform_schedule, two_threads_equal_one) {
    IrGraph g[3];
    g_elem(&g[0], 1024, 1024);
    g_rowsum(&g[1], 2048, 300);
    g_transpose(&g[2], 700, 600);
    for (int i = 0; i < 3; i++) {
        void **in = inputs(&g[i], 3);
        void **one = run(&g[i], in, NULL, NULL, 1), **two = run(&g[i], in, NULL, NULL, 2);
        cr_expect(same(&g[i], one, two, "1 vs 2 threads"), "graph %d", i);
        free_ptrs(in, g[i].ninputs);
        free_ptrs(one, g[i].nout);
        free_ptrs(two, g[i].nout);
    }
    /* timing, for the log only (never asserted) */
    static const char *names[] = {"x*y + x, 1024x1024", "row sums of exp, 2048x300"};
    for (int i = 0; i < 2; i++)
        for (int t = 1; t <= 2; t++) {
            Jit *j = jit_new(3);
            jit_set_threads(j, t);
            void **in = inputs(&g[i], 5);
            void **out = calloc(1, sizeof *out);
            out[0] = malloc(out_bytes(&g[i], 0));
            char err[256];
            cr_assert(jit_run(j, &g[i], (void *const *)in, (void *const *)out, err, sizeof err));
            double t0 = now_s();
            for (int r = 0; r < 20; r++)
                jit_run(j, &g[i], (void *const *)in, (void *const *)out, err, sizeof err);
            cr_log_info("%s, %d thread(s): %.3f ms per run", names[i], t,
                        (now_s() - t0) / 20 * 1e3);
            free_ptrs(in, g[i].ninputs);
            free_ptrs(out, 1);
            jit_free(j);
        }
    for (int i = 0; i < 3; i++) ir_free(&g[i]);
}

/* -- the runtime -- */

static void count_body(void **bufs, int64_t lo, int64_t hi) {
    int *hits = bufs[0];
    for (int64_t i = lo; i < hi; i++) __atomic_fetch_add(&hits[i], 1, __ATOMIC_RELAXED);
}

static void *hammer(void *arg) {
    int *hits = arg;
    void *bufs[1] = {hits};
    for (int r = 0; r < 200; r++) ttrt_parallel_for(count_body, bufs, 1000, 3);
    return NULL;
}

Test(xform_runtime, every_iteration_once) {
    static const int64_t ns[] = {0, 1, 2, 3, 7, 64, 1000};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (int t = 1; t <= 9; t++) {
            int64_t n = ns[a];
            int *hits = calloc((size_t)n + 1, sizeof *hits);
            void *bufs[1] = {hits};
            ttrt_parallel_for(count_body, bufs, n, t);
            for (int64_t i = 0; i < n; i++)
                cr_expect(hits[i] == 1, "n %lld, %d threads: iteration %lld ran %d times",
                          (long long)n, t, (long long)i, hits[i]);
            free(hits);
        }
    /* two callers at once: one gets the pool, the other runs alone */
    int *h1 = calloc(1000, sizeof *h1), *h2 = calloc(1000, sizeof *h2);
    pthread_t th;
    pthread_create(&th, NULL, hammer, h1);
    hammer(h2);
    pthread_join(th, NULL);
    for (int i = 0; i < 1000; i++) cr_expect(h1[i] == 200 && h2[i] == 200);
    free(h1);
    free(h2);
}

/* -- random graphs, random transformations -- */

typedef struct Chaos {
    uint64_t seed;
    int applied, refused;
} Chaos;

static int collect_loops(LpStmt *s, LpStmt **out, int n, int cap) {
    for (; s && n < cap; s = s->next)
        if (s->kind == LS_LOOP) {
            out[n++] = s;
            n = collect_loops(s->body, out, n, cap);
        }
    return n;
}

static void chaos_hook(LpProg *p, void *arg) {
    Chaos *c = arg;
    RgRng r = {c->seed};
    for (int i = 0; i < p->nkernels; i++)
        for (int t = 0; t < 4; t++) {
            LpKernel *k = &p->kernels[i];
            LpStmt *loops[256];
            int n = collect_loops(k->body, loops, 0, 256);
            if (!n) break;
            LpStmt *l = loops[rg_int(&r, 0, n - 1)];
            TKind kind = (TKind)rg_int(&r, 0, 4);
            bool ok =
                apply(p, k, l, kind, kind == T_PARALLEL ? rg_int(&r, 2, 3) : rg_int(&r, 2, 5));
            if (ok)
                c->applied++;
            else
                c->refused++;
        }
}

Test(xform_random, graphs, .timeout = 300) {
    const char *env = getenv("TT_XFORM_N");
    int count = env ? atoi(env) : 150, failures = 0;
    Chaos c = {0};
    Jit *plain = jit_new(2), *xf = jit_new(2);
    jit_set_threads(plain, 1);
    jit_set_threads(xf, 2);
    jit_set_loop_hook(xf, chaos_hook, &c);
    for (int s = 0; s < count; s++) {
        RgGraph rg;
        rg_build(&rg, 5000 + (uint64_t)s, 8);
        IrGraph *g = &rg.g;
        void **in = rg_make_inputs(&rg, (uint64_t)s);
        void **a = calloc((size_t)g->nout + 1, sizeof *a),
             **b = calloc((size_t)g->nout + 1, sizeof *b);
        for (int k = 0; k < g->nout; k++) {
            size_t n = out_bytes(g, k);
            a[k] = calloc(1, n ? n : 1);
            b[k] = calloc(1, n ? n : 1);
        }
        char err[256];
        c.seed = 77 + (uint64_t)s;
        bool ok1 = jit_run(plain, g, (void *const *)in, (void *const *)a, err, sizeof err);
        int bad1 = ok1 ? -1 : jit_error_node(plain);
        bool ok2 = jit_run(xf, g, (void *const *)in, (void *const *)b, err, sizeof err);
        int bad2 = ok2 ? -1 : jit_error_node(xf);
        /* an index out of range fails both alike (outputs then undefined) */
        bool failed_alike = !ok1 && !ok2 && bad1 >= 0 && bad1 == bad2;
        bool ok = (ok1 && ok2) || failed_alike;
        char what[48];
        snprintf(what, sizeof what, "random graph %d", s);
        if (!ok || (!failed_alike && !same(g, a, b, what))) {
            failures++;
            if (!ok) cr_log_error("%s: %s", what, err);
        }
        free_ptrs(a, g->nout);
        free_ptrs(b, g->nout);
        rg_free_inputs(&rg, in);
        rg_free(&rg);
    }
    cr_log_info("xform_random: %d graphs, %d transformations applied, %d refused", count, c.applied,
                c.refused);
    cr_expect(failures == 0, "%d of %d transformed random graphs differ", failures, count);
    cr_expect(c.applied > count / 2, "only %d transformations applied", c.applied);
    jit_free(plain);
    jit_free(xf);
}
