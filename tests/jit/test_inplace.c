/* test_inplace.c - outputs that alias inputs (ir_alias_output) and the op
 * that updates them in place, write_rows (spec/ir.md, "Input/output
 * aliasing"; spec/jit.md, "In-place updates").
 *
 * On random shapes both backends, run in place, give what the reference
 * gives out of place; the in-place run writes nothing but the new rows (the
 * other rows are read-only pages: a copy of the cache would fault); a bad
 * position is the same error on both, with nothing written; the contract
 * (one buffer for both) and the verifier's conditions are enforced; AOT
 * libraries refuse aliased graphs.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "aot.h"
#include "jit.h"
#include "kernels.h"
#include "randgraph.h"

#define L0 SRCLOC_NONE

/* g: dst f32 ds (slot 0), src f32 ss (slot 1), pos i32[] (slot 2);
 * output 0 = write_rows(dst, src or -src, pos), aliasing slot 0 when alias. */
static void rows_graph(IrGraph *g, Shape ds, Shape ss, bool negate, bool alias) {
    ir_init(g);
    int dst = ir_input(g, TY_F32, ds, "cache", L0);
    int src = ir_input(g, TY_F32, ss, "row", L0);
    int pos = ir_input(g, TY_I32, shape_scalar(), "pos", L0);
    if (negate) src = ir_unary(g, OP_NEG, src, L0); /* fused into the write */
    int w = ir_write_rows(g, dst, src, pos, L0);
    cr_assert(w >= 0, "%s", g->err);
    ir_mark_output(g, w);
    if (alias) cr_assert(ir_alias_output(g, 0, 0), "%s", g->err);
    char err[256];
    cr_assert(ir_verify(g, err, sizeof err), "%s", err);
}

static float *randf(RgRng *r, int64_t n) {
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = (float)rg_unif(r, -2, 2);
    return p;
}

/* Random batch dims, rows, R <= rows and positions: in place on both
 * backends == the reference out of place, bit for bit (a copy). */
Test(inplace, write_rows_in_place_matches_the_reference) {
    Jit *jit = jit_new(2);
    cr_assert(jit);
    RgRng r = {12345};
    for (int v = 0; v < 40; v++) {
        int nb = rg_int(&r, 0, 2);
        Shape ds = {nb + 2, {0}};
        for (int i = 0; i < nb; i++) ds.d[i] = rg_int(&r, 1, 3);
        int64_t n = rg_int(&r, 1, 12), rows = rg_int(&r, 1, (int)n), d = rg_int(&r, 1, 9);
        ds.d[nb] = n, ds.d[nb + 1] = d;
        Shape ss = ds;
        ss.d[nb] = rows;
        bool neg = rg_int(&r, 0, 1);
        IrGraph out, in;
        rows_graph(&out, ds, ss, neg, false);
        rows_graph(&in, ds, ss, neg, true);
        int64_t nd = shape_numel(&ds);
        float *dst = randf(&r, nd), *src = randf(&r, shape_numel(&ss));
        int32_t pos = rg_int(&r, 0, (int)(n - rows));
        float *want = malloc((size_t)nd * sizeof *want);
        KernelErr kerr;
        void *ins[3] = {dst, src, &pos}, *outs[1] = {want};
        cr_assert(rt_naive_run(&out, ins, outs, NULL, &kerr), "%s", kerr.msg);
        for (int b = 0; b < 2; b++) { /* naive, then the JIT */
            float *cache = malloc((size_t)nd * sizeof *cache);
            memcpy(cache, dst, (size_t)nd * sizeof *cache);
            void *cin[3] = {cache, src, &pos}, *cout[1] = {cache};
            char err[512] = "";
            bool ok = b == 0 ? rt_naive_run(&in, cin, cout, NULL, &kerr)
                             : jit_run(jit, &in, cin, cout, err, sizeof err);
            cr_assert(ok, "variant %d %s: %s%s", v, b ? "jit" : "naive", err, kerr.msg);
            cr_expect(memcmp(cache, want, (size_t)nd * sizeof *cache) == 0,
                      "variant %d (%s): in place differs from the reference", v,
                      b ? "jit" : "naive");
            free(cache);
        }
        free(dst);
        free(src);
        free(want);
        ir_free(&out);
        ir_free(&in);
    }
    jit_free(jit);
}

/* A cache [2, 8, 1024] whose rows are one page each, all read-only but
 * row p of each batch: the in-place update must touch nothing else (a
 * whole-cache copy faults, and the test crashes). Both backends, several
 * positions, the same buffer throughout. */
Test(inplace, writes_only_the_new_rows) {
    long page = sysconf(_SC_PAGESIZE);
    int64_t d = page / (int64_t)sizeof(float), n = 8, nb = 2;
    size_t bytes = (size_t)(nb * n) * (size_t)page;
    float *cache = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(cache != MAP_FAILED);
    for (int64_t i = 0; i < nb * n * d; i++) cache[i] = -1.0f;
    IrGraph g;
    rows_graph(&g, shape_make(3, (int64_t[]){nb, n, d}), shape_make(3, (int64_t[]){nb, 1, d}), true,
               true);
    float *src = malloc((size_t)(nb * d) * sizeof *src);
    Jit *jit = jit_new(2);
    cr_assert(jit);
    int32_t pos;
    void *ins[3] = {cache, src, &pos}, *outs[1] = {cache};
    for (int step = 0; step < 6; step++) {
        pos = (int32_t)((step * 3) % n);
        for (int64_t i = 0; i < nb * d; i++) src[i] = (float)(step * 100 + i);
        cr_assert_eq(mprotect(cache, bytes, PROT_READ), 0);
        for (int64_t b = 0; b < nb; b++)
            cr_assert_eq(mprotect((char *)cache + (size_t)(b * n + pos) * (size_t)page,
                                  (size_t)page, PROT_READ | PROT_WRITE),
                         0);
        KernelErr kerr;
        char err[512] = "";
        bool ok = step % 2 ? jit_run(jit, &g, ins, outs, err, sizeof err)
                           : rt_naive_run(&g, ins, outs, NULL, &kerr);
        cr_assert(ok, "step %d: %s%s", step, err, kerr.msg);
        cr_assert_eq(mprotect(cache, bytes, PROT_READ | PROT_WRITE), 0);
        for (int64_t b = 0; b < nb; b++)
            for (int64_t i = 0; i < d; i++)
                cr_assert_eq(cache[(b * n + pos) * d + i], -src[b * d + i], "step %d", step);
    }
    /* rows never written kept their value: 0, 3, 6, 1, 4, 7 were; 2, 5 not */
    for (int64_t b = 0; b < nb; b++)
        for (int64_t i = 0; i < d; i++) {
            cr_expect_eq(cache[(b * n + 2) * d + i], -1.0f);
            cr_expect_eq(cache[(b * n + 5) * d + i], -1.0f);
        }
    jit_free(jit);
    free(src);
    ir_free(&g);
    munmap(cache, bytes);
}

/* A position outside [0, N - R] is the same error on both backends, in
 * place or not, and writes nothing. */
Test(inplace, bad_position_is_an_error_on_both_backends) {
    Jit *jit = jit_new(2);
    cr_assert(jit);
    Shape ds = shape_make(3, (int64_t[]){2, 8, 3}), ss = shape_make(3, (int64_t[]){2, 2, 3});
    static const int32_t bad[] = {-1, 7, 8, INT32_MAX, INT32_MIN};
    for (int alias = 0; alias < 2; alias++) {
        IrGraph g;
        rows_graph(&g, ds, ss, alias, alias);
        for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
            float cache[48], keep[48], src[12], other[48];
            for (int i = 0; i < 48; i++) cache[i] = keep[i] = other[i] = (float)i;
            for (int i = 0; i < 12; i++) src[i] = 100.0f + (float)i;
            int32_t pos = bad[k];
            void *ins[3] = {cache, src, &pos}, *outs[1] = {alias ? (void *)cache : other};
            KernelErr kerr;
            char err[512];
            cr_assert_not(rt_naive_run(&g, ins, outs, NULL, &kerr));
            cr_expect_eq(memcmp(cache, keep, sizeof cache), 0, "naive wrote at position %d", pos);
            cr_assert_not(jit_run(jit, &g, ins, outs, err, sizeof err));
            cr_expect_eq(memcmp(cache, keep, sizeof cache), 0, "jit wrote at position %d", pos);
            char want[200];
            snprintf(want, sizeof want,
                     "position %d out of range: writing 2 rows into 8 needs 0 <= position <= 6",
                     pos);
            cr_expect_str_eq(kerr.msg, want);
            cr_expect_str_eq(err, want);
            cr_expect_eq(kerr.node, jit_error_node(jit));
            cr_expect_eq(ir_node(&g, kerr.node)->op, OP_WRITE_ROWS);
        }
        ir_free(&g);
    }
    jit_free(jit);
}

/* The contract: the caller passes one buffer for an aliased pair. */
Test(inplace, another_buffer_for_an_aliased_output_is_refused) {
    IrGraph g;
    rows_graph(&g, shape_make(2, (int64_t[]){4, 2}), shape_make(2, (int64_t[]){1, 2}), false, true);
    float cache[8] = {0}, other[8] = {0}, src[2] = {1, 2};
    int32_t pos = 1;
    void *ins[3] = {cache, src, &pos}, *outs[1] = {other};
    KernelErr kerr;
    char err[512];
    cr_expect_not(rt_naive_run(&g, ins, outs, NULL, &kerr));
    cr_expect(strstr(kerr.msg, "updates input slot 0 in place but was given another buffer"), "%s",
              kerr.msg);
    Jit *jit = jit_new(2);
    cr_expect_not(jit_run(jit, &g, ins, outs, err, sizeof err));
    cr_expect(strstr(err, "jit: output 0 updates input slot 0 in place but was given another"),
              "%s", err);
    for (int i = 0; i < 8; i++) cr_expect(cache[i] == 0 && other[i] == 0);
    jit_free(jit);
    ir_free(&g);
}

/* The same graph with and without the alias: different structures (hash,
 * the JIT's cache), each run right. */
Test(inplace, the_alias_is_part_of_the_structure) {
    Shape ds = shape_make(2, (int64_t[]){5, 3}), ss = shape_make(2, (int64_t[]){1, 3});
    IrGraph a, b;
    rows_graph(&a, ds, ss, false, false);
    rows_graph(&b, ds, ss, false, true);
    cr_expect_neq(ir_hash(&a), ir_hash(&b));
    Jit *jit = jit_new(2);
    float cache[15], out[15], src[3] = {7, 8, 9};
    for (int i = 0; i < 15; i++) cache[i] = (float)i;
    int32_t pos = 4;
    char err[512];
    void *ins[3] = {cache, src, &pos}, *oa[1] = {out}, *ob[1] = {cache};
    cr_assert(jit_run(jit, &a, ins, oa, err, sizeof err), "%s", err);
    cr_assert(jit_run(jit, &b, ins, ob, err, sizeof err), "%s", err);
    cr_expect_eq(jit_stats(jit).compiles, 2);
    cr_expect_eq(memcmp(cache, out, sizeof out), 0);
    cr_expect(cache[12] == 7 && cache[14] == 9 && cache[11] == 11);
    jit_free(jit);
    ir_free(&a);
    ir_free(&b);
}

/* What ir_verify refuses: an alias that is not an in-place update of that
 * input, an input read by another node too, two aliases of one slot, an
 * aliased node that is also another output; ir_alias_output a bad index. */
Test(inplace, verify_refuses_unsafe_aliases) {
    char err[512];
    Shape ds = shape_make(2, (int64_t[]){4, 2}), ss = shape_make(2, (int64_t[]){1, 2});
    IrGraph g;
    ir_init(&g);
    int dst = ir_input(&g, TY_F32, ds, "cache", L0), src = ir_input(&g, TY_F32, ss, "row", L0);
    int pos = ir_input(&g, TY_I32, shape_scalar(), "pos", L0);
    int neg = ir_unary(&g, OP_NEG, dst, L0);
    ir_mark_output(&g, neg);
    cr_assert(ir_alias_output(&g, 0, 0));
    cr_expect_not(ir_verify(&g, err, sizeof err));
    cr_expect(strstr(err, "is not an in-place update"), "%s", err);
    ir_free(&g);

    /* the old cache read by another node (it would see the new row) */
    ir_init(&g);
    dst = ir_input(&g, TY_F32, ds, "cache", L0), src = ir_input(&g, TY_F32, ss, "row", L0);
    pos = ir_input(&g, TY_I32, shape_scalar(), "pos", L0);
    int w = ir_write_rows(&g, dst, src, pos, L0);
    ir_mark_output(&g, w);
    ir_mark_output(&g, ir_unary(&g, OP_NEG, dst, L0));
    cr_assert(ir_alias_output(&g, 0, 0));
    cr_expect_not(ir_verify(&g, err, sizeof err));
    cr_expect(strstr(err, "read 2 times"), "%s", err);
    /* a slot that does not exist */
    cr_expect_not(ir_alias_output(&g, 0, 3));
    cr_expect_not(ir_alias_output(&g, 2, 0));
    ir_free(&g);

    /* the write's source is the aliased input: read twice as well */
    ir_init(&g);
    dst = ir_input(&g, TY_F32, ds, "cache", L0);
    pos = ir_input(&g, TY_I32, shape_scalar(), "pos", L0);
    ir_mark_output(&g, ir_write_rows(&g, dst, dst, pos, L0));
    cr_assert(ir_alias_output(&g, 0, 0));
    cr_expect_not(ir_verify(&g, err, sizeof err));
    ir_free(&g);

    /* the update listed twice, both aliased (or one plain) */
    ir_init(&g);
    dst = ir_input(&g, TY_F32, ds, "cache", L0), src = ir_input(&g, TY_F32, ss, "row", L0);
    pos = ir_input(&g, TY_I32, shape_scalar(), "pos", L0);
    w = ir_write_rows(&g, dst, src, pos, L0);
    ir_mark_output(&g, w);
    ir_mark_output(&g, w);
    cr_assert(ir_alias_output(&g, 0, 0));
    cr_expect_not(ir_verify(&g, err, sizeof err));
    cr_expect(strstr(err, "is also output 1"), "%s", err);
    cr_assert(ir_alias_output(&g, 1, 0));
    cr_expect_not(ir_verify(&g, err, sizeof err));
    ir_free(&g);

    /* the aliased input as an output itself */
    ir_init(&g);
    dst = ir_input(&g, TY_F32, ds, "cache", L0), src = ir_input(&g, TY_F32, ss, "row", L0);
    pos = ir_input(&g, TY_I32, shape_scalar(), "pos", L0);
    ir_mark_output(&g, ir_write_rows(&g, dst, src, pos, L0));
    ir_mark_output(&g, dst);
    cr_assert(ir_alias_output(&g, 0, 0));
    cr_expect_not(ir_verify(&g, err, sizeof err));
    cr_expect(strstr(err, "and also output 1"), "%s", err);
    ir_free(&g);
}

/* The shape rule's refusals name the op and the shapes. */
Test(inplace, write_rows_shape_errors) {
    IrGraph g;
    ir_init(&g);
    int dst = ir_input(&g, TY_F32, shape_make(2, (int64_t[]){4, 2}), NULL, L0);
    int big = ir_input(&g, TY_F32, shape_make(2, (int64_t[]){5, 2}), NULL, L0);
    int wide = ir_input(&g, TY_F32, shape_make(2, (int64_t[]){1, 3}), NULL, L0);
    int vec = ir_input(&g, TY_F32, shape_make(1, (int64_t[]){2}), NULL, L0);
    int pos = ir_input(&g, TY_I32, shape_scalar(), NULL, L0);
    int pv = ir_input(&g, TY_I32, shape_make(1, (int64_t[]){1}), NULL, L0);
    cr_expect_lt(ir_write_rows(&g, dst, big, pos, L0), 0);
    cr_expect(strstr(g.err, "write_rows: src [5, 2] has more rows than dst [4, 2]"), "%s", g.err);
    cr_expect_lt(ir_write_rows(&g, dst, wide, pos, L0), 0);
    cr_expect(strstr(g.err, "differ outside the rows"), "%s", g.err);
    cr_expect_lt(ir_write_rows(&g, vec, vec, pos, L0), 0);
    cr_expect(strstr(g.err, "at least 2"), "%s", g.err);
    cr_expect_lt(ir_write_rows(&g, dst, vec, pos, L0), 0);
    cr_expect_lt(ir_write_rows(&g, dst, wide, pv, L0), 0);
    int row = ir_input(&g, TY_F32, shape_make(2, (int64_t[]){1, 2}), NULL, L0);
    cr_expect_lt(ir_write_rows(&g, dst, row, pv, L0), 0);
    cr_expect(strstr(g.err, "pos must be an i32 scalar"), "%s", g.err);
    ir_free(&g);
}

/* Compiled libraries take outputs and inputs apart: aot_build refuses an
 * aliased graph, saying so, before compiling anything. */
Test(inplace, aot_refuses_aliased_graphs) {
    IrGraph g;
    rows_graph(&g, shape_make(2, (int64_t[]){4, 2}), shape_make(2, (int64_t[]){1, 2}), false, true);
    int src[3] = {0, 1, 2};
    AotGraph ag = {&g, 1, src};
    AotSpec s = {.prefix = "p", .nargs = 3, .nouts = 1, .graphs = &ag, .ngraphs = 1, .threads = 1};
    char *out = NULL, err[512] = "";
    size_t len = 0;
    cr_expect_not(aot_build(&s, AOT_LLVM, &out, &len, err, sizeof err));
    cr_expect(strstr(err, "aot: graph 0: output 0 updates an input in place"), "%s", err);
    cr_expect_null(out);
    ir_free(&g);
}
