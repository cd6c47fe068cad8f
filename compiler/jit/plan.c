/* plan.c - the memory planner: where each temporary lives in the workspace.
 *
 * lp_add_buf first gives every temporary its own range of the workspace, in
 * the order the lowering makes them. Most die soon after they are born (a
 * layer's activation is read by the next kernel and never again), so the
 * planner places them again by liveness: a temporary is live from the first
 * kernel that touches it to the last, and two temporaries whose lifetimes
 * overlap may not overlap in memory. Placement is greedy by size, largest
 * first, each at the lowest 64-byte-aligned offset that clears every placed
 * buffer it is live with (the "greedy by size" offset assignment of
 * TensorFlow Lite's arena planner, which comes within a few percent of the
 * optimum on network graphs).
 *
 * Lifetimes are whole kernels, inclusive: a temporary born in the kernel
 * where another dies does not take its place, since a kernel may read its
 * input after it started writing its output (a reduction, a transposed
 * read). So no kernel works in place; elementwise chains are fused into one
 * kernel anyway, which needs no temporary at all.
 *
 * The lower bound reported with the plan is the largest sum of the sizes of
 * the temporaries live in any one kernel: no placement can do better.
 */
#include "loop.h"

#include <stdlib.h>

/* Expressions are DAGs (codegen memoizes by id): each is walked once per
 * kernel, seen[id] holding the last kernel + 1 that walked it. */
typedef struct Walk {
    struct Life *life;
    int nbufs, nexpr;
    int *seen;
} Walk;

typedef struct Life {
    int buf;
    int first, last; /* kernel indices; first > last: never touched */
    int64_t size;    /* bytes, 64-byte aligned */
} Life;

static void touch(Life *life, int nbufs, int buf, int k) {
    if (buf < 0 || buf >= nbufs) return;
    Life *l = &life[buf];
    if (k < l->first) l->first = k;
    if (k > l->last) l->last = k;
}

static void walk_expr(Walk *w, const LpExpr *e, int k) {
    if (!e) return;
    if (e->id >= 0 && e->id < w->nexpr) {
        if (w->seen[e->id] == k + 1) return;
        w->seen[e->id] = k + 1;
    }
    if (e->kind == LE_LOAD) touch(w->life, w->nbufs, e->buf, k);
    walk_expr(w, e->a, k);
    walk_expr(w, e->b, k);
    walk_expr(w, e->cc, k);
}

/* False when a statement kind is unknown here: then no plan. */
static bool walk_stmts(Walk *w, const LpStmt *s, int k) {
    for (; s; s = s->next) {
        switch (s->kind) {
        case LS_LOOP:
            walk_expr(w, s->trips, k);
            if (!walk_stmts(w, s->body, k)) return false;
            break;
        case LS_LOCAL:
        case LS_SET:
        case LS_CHECK:
            walk_expr(w, s->value, k);
            break;
        case LS_STORE:
            touch(w->life, w->nbufs, s->buf, k);
            walk_expr(w, s->index, k);
            walk_expr(w, s->value, k);
            break;
        case LS_GEMM:
            touch(w->life, w->nbufs, s->gemm->a, k);
            touch(w->life, w->nbufs, s->gemm->b, k);
            touch(w->life, w->nbufs, s->gemm->c, k);
            walk_expr(w, s->gemm->aoff, k);
            walk_expr(w, s->gemm->boff, k);
            walk_expr(w, s->gemm->coff, k);
            break;
        default:
            return false;
        }
    }
    return true;
}

static int by_size_desc(const void *a, const void *b) {
    const Life *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->buf - y->buf; /* deterministic: the cache key hashes the code */
}

static bool overlap(const Life *a, const Life *b) {
    return a->first <= b->last && b->first <= a->last;
}

void lp_plan_memory(LpProg *p) {
    p->ws_unplanned = p->workspace;
    p->ws_lower = p->workspace;
    Life *life = calloc((size_t)p->nbufs + 1, sizeof *life);
    if (!life) return; /* keep the first layout: correct, only larger */
    for (int i = 0; i < p->nbufs; i++) {
        life[i] = (Life){i, p->nkernels, -1, 0};
        if (p->bufs[i].kind == LB_TEMP)
            life[i].size =
                (shape_numel(&p->bufs[i].shape) * (int64_t)dtype_size(p->bufs[i].dtype) + 63) &
                ~(int64_t)63;
    }
    Walk w = {life, p->nbufs, p->nexpr, calloc((size_t)p->nexpr + 1, sizeof(int))};
    bool ok = w.seen != NULL;
    for (int k = 0; k < p->nkernels && ok; k++) ok = walk_stmts(&w, p->kernels[k].body, k);
    free(w.seen);
    if (!ok) {
        free(life);
        return;
    }
    /* the temporaries, largest first; an untouched one is placed at 0 */
    int n = 0;
    for (int i = 0; i < p->nbufs; i++)
        if (p->bufs[i].kind == LB_TEMP) life[n++] = life[i];
    qsort(life, (size_t)n, sizeof *life, by_size_desc);
    int64_t *off = malloc(((size_t)n + 1) * sizeof *off);
    if (!off) {
        free(life);
        return;
    }
    int64_t top = 0;
    for (int i = 0; i < n; i++) {
        int64_t at = 0;
        if (life[i].first <= life[i].last) {
            /* first fit: raise `at` past every conflicting placed buffer
             * until a pass moves it no more (n is small: a few hundred) */
            for (bool moved = true; moved;) {
                moved = false;
                for (int j = 0; j < i; j++)
                    if (life[j].first <= life[j].last && overlap(&life[i], &life[j]) &&
                        at < off[j] + life[j].size && off[j] < at + life[i].size) {
                        at = off[j] + life[j].size;
                        moved = true;
                    }
            }
        }
        off[i] = at;
        if (at + life[i].size > top) top = at + life[i].size;
    }
    int64_t lower = 0;
    for (int k = 0; k < p->nkernels; k++) {
        int64_t live = 0;
        for (int i = 0; i < n; i++)
            if (life[i].first <= k && k <= life[i].last) live += life[i].size;
        if (live > lower) lower = live;
    }
    for (int i = 0; i < n; i++) p->bufs[life[i].buf].offset = off[i];
    p->workspace = top;
    p->ws_lower = lower;
    free(off);
    free(life);
}

int64_t lp_kernel_bytes(const LpProg *p, int k) {
    Life *life = calloc((size_t)p->nbufs + 1, sizeof *life);
    Walk w = {life, p->nbufs, p->nexpr, calloc((size_t)p->nexpr + 1, sizeof(int))};
    int64_t bytes = 0;
    if (life && w.seen) {
        for (int i = 0; i < p->nbufs; i++) life[i] = (Life){i, p->nkernels, -1, 0};
        if (walk_stmts(&w, p->kernels[k].body, k))
            for (int i = 0; i < p->nbufs; i++)
                if (life[i].first <= life[i].last)
                    bytes += shape_numel(&p->bufs[i].shape) * (int64_t)dtype_size(p->bufs[i].dtype);
    }
    free(w.seen);
    free(life);
    return bytes;
}
