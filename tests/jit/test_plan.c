/* test_plan.c - the memory planner (lp_plan_memory, plan.c).
 *
 * A chain of layers needs three activations at a time however long it is;
 * the plan never puts two temporaries that are live in the same kernel in
 * overlapping memory (checked here with an independent, plain count of
 * where each temporary is touched, on random graphs); it is never above
 * the unplanned layout nor below its lower bound. That the planned code
 * computes the right values is what every differential test checks: they
 * all run planned programs.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "randgraph.h"
#include "transform.h"

static const SrcLoc L0 = {0};

/* x @ w, then relu(.) @ w n times: n + 1 products of [64, 64]. Each
 * relu runs as its product's epilogue, so a kernel holds the product it
 * writes, its relu, and the relu of the kernel before: three activations,
 * however long the chain. */
static void g_chain(IrGraph *g, int n) {
    ir_init(g);
    int x = ir_input(g, TY_F32, (Shape){2, {64, 64}}, NULL, L0);
    int w = ir_input(g, TY_F32, (Shape){2, {64, 64}}, NULL, L0);
    int y = ir_matmul(g, x, w, L0);
    for (int i = 0; i < n; i++) y = ir_matmul(g, ir_unary(g, OP_RELU, y, L0), w, L0);
    ir_mark_output(g, y);
}

static int64_t temps(const LpProg *p) {
    int64_t n = 0;
    for (int i = 0; i < p->nbufs; i++) n += p->bufs[i].kind == LB_TEMP;
    return n;
}

Test(plan, chain_needs_three_activations) {
    for (int n = 2; n <= 8; n += 3) {
        IrGraph g;
        g_chain(&g, n);
        LpProg *p = lp_lower(&g, true);
        lp_fuse_kernels(p);
        lp_schedule(p, 1);
        int64_t act = 64 * 64 * 4;
        cr_expect_eq(temps(p), 2 * n, "n=%d: %lld temporaries", n, (long long)temps(p));
        cr_expect_eq(p->ws_unplanned, temps(p) * act, "n=%d: unplanned %lld", n,
                     (long long)p->ws_unplanned);
        cr_expect_eq(p->workspace, 3 * act, "n=%d: workspace %lld, want three activations", n,
                     (long long)p->workspace);
        cr_expect_eq(p->ws_lower, 3 * act);
        lp_free(p);
        ir_free(&g);
    }
}

/* The kernels that touch each buffer, by a plain scan of the printed loop
 * IR would be fragile; walk the statements instead, independently of
 * plan.c's walker: every load, store and GEMM operand. */
static void mark_expr(const LpExpr *e, int k, int *first, int *last) {
    if (!e) return;
    if (e->kind == LE_LOAD) {
        if (first[e->buf] < 0) first[e->buf] = k;
        last[e->buf] = k;
    }
    mark_expr(e->a, k, first, last);
    mark_expr(e->b, k, first, last);
    mark_expr(e->cc, k, first, last);
}

static void mark_buf(int b, int k, int *first, int *last) {
    if (first[b] < 0) first[b] = k;
    last[b] = k;
}

static void mark_stmts(const LpStmt *s, int k, int *first, int *last) {
    for (; s; s = s->next) {
        if (s->kind == LS_LOOP) mark_stmts(s->body, k, first, last);
        if (s->kind == LS_STORE) mark_buf(s->buf, k, first, last);
        if (s->kind == LS_GEMM) {
            mark_buf(s->gemm->a, k, first, last);
            mark_buf(s->gemm->b, k, first, last);
            mark_buf(s->gemm->c, k, first, last);
        }
        mark_expr(s->index, k, first, last);
        mark_expr(s->value, k, first, last);
    }
}

Test(plan, live_temporaries_never_overlap) {
    for (uint64_t seed = 1; seed <= 150; seed++) {
        RgGraph rg;
        rg_build(&rg, seed, 12);
        LpProg *p = lp_lower(&rg.g, true);
        lp_fuse_kernels(p);
        lp_schedule(p, 1 + (int)(seed % 2));
        int *first = malloc((size_t)p->nbufs * sizeof *first);
        int *last = malloc((size_t)p->nbufs * sizeof *last);
        for (int i = 0; i < p->nbufs; i++) first[i] = last[i] = -1;
        for (int k = 0; k < p->nkernels; k++) mark_stmts(p->kernels[k].body, k, first, last);
        cr_expect_leq(p->workspace, p->ws_unplanned, "seed %llu", (unsigned long long)seed);
        cr_expect_geq(p->workspace, p->ws_lower, "seed %llu", (unsigned long long)seed);
        for (int i = 0; i < p->nbufs; i++)
            for (int j = i + 1; j < p->nbufs; j++) {
                const LpBuf *a = &p->bufs[i], *b = &p->bufs[j];
                if (a->kind != LB_TEMP || b->kind != LB_TEMP || first[i] < 0 || first[j] < 0)
                    continue;
                bool live = first[i] <= last[j] && first[j] <= last[i];
                int64_t sa = shape_numel(&a->shape) * (int64_t)dtype_size(a->dtype);
                int64_t sb = shape_numel(&b->shape) * (int64_t)dtype_size(b->dtype);
                bool mem = a->offset < b->offset + sb && b->offset < a->offset + sa;
                cr_expect(!(live && mem && sa > 0 && sb > 0),
                          "seed %llu: %s and %s are live together and overlap",
                          (unsigned long long)seed, a->name, b->name);
                cr_expect_leq(a->offset + sa, p->workspace);
            }
        free(first);
        free(last);
        lp_free(p);
        rg_free(&rg);
    }
}
