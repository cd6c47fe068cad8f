/* transform.c - loop IR transformations (see transform.h).
 *
 * A transformation builds the statements that replace a loop by copying its
 * body with the loop variables substituted (i -> io*T + ii, ...): index
 * expressions are rebuilt with lp_iadd / lp_imul / lp_idiv / lp_imod, so
 * they stay in canonical affine form and the reshape div/mods simplify
 * against the new ranges; every loop of a copy gets a fresh variable. The
 * new statements are spliced in where the loop was.
 */
#include "transform.h"

#include "parcost.h"

#include <stdlib.h>
#include <string.h>

/* -- finding statements -- */

/* The link (parent's body or previous statement's next) that points at s. */
static LpStmt **link_of(LpStmt **head, const LpStmt *s) {
    for (LpStmt **l = head; *l; l = &(*l)->next) {
        if (*l == s) return l;
        if ((*l)->kind == LS_LOOP) {
            LpStmt **r = link_of(&(*l)->body, s);
            if (r) return r;
        }
    }
    return NULL;
}

static LpStmt *find_loop(LpStmt *s, int var) {
    for (; s; s = s->next)
        if (s->kind == LS_LOOP) {
            if (s->var == var) return s;
            LpStmt *r = find_loop(s->body, var);
            if (r) return r;
        }
    return NULL;
}

LpStmt *lp_find_loop(LpKernel *k, int var) {
    return find_loop(k->body, var);
}

static bool is_loop_of(LpKernel *k, const LpStmt *s) {
    return s && s->kind == LS_LOOP && link_of(&k->body, s);
}

int64_t lp_work(const LpStmt *s) {
    const int64_t cap = INT64_MAX / 4;
    int64_t w = 0;
    for (; s; s = s->next) {
        int64_t x = 1;
        if (s->kind == LS_LOOP) {
            int64_t b = lp_work(s->body);
            __int128 prod = (__int128)s->extent * (b > 1 ? b : 1);
            x = prod > cap ? cap : (int64_t)prod;
        }
        w = w > cap - x ? cap : w + x;
    }
    return w;
}

/* -- building -- */

static LpStmt *new_stmt(LpProg *p, LpStmtKind kind) {
    LpStmt *s = arena_alloc(&p->arena, sizeof *s);
    s->kind = kind;
    return s;
}

static LpExpr *new_var(LpProg *p, int var, int64_t extent) {
    LpExpr *e = arena_alloc(&p->arena, sizeof *e);
    e->kind = LE_VAR;
    e->ty = LT_I64;
    e->id = p->nexpr++;
    e->var = var;
    e->extent = extent;
    return e;
}

/* Starts `for v in 0..extent` (extent >= 1) with a fresh variable: returns
 * the loop, or NULL for an extent of 1 (folded: *v is the constant 0). */
static LpStmt *loop_begin(LpProg *p, LpKernel *k, int64_t extent, LpExpr **v) {
    TT_ASSERT(extent >= 1);
    if (extent == 1) {
        *v = lp_iconst(p, 0);
        return NULL;
    }
    LpStmt *s = new_stmt(p, LS_LOOP);
    s->var = k->nvars++;
    s->extent = extent;
    *v = new_var(p, s->var, extent);
    return s;
}

/* The statements of a loop from loop_begin with the given body. */
static LpStmt *loop_end(LpStmt *loop, LpStmt *body) {
    if (!loop) return body;
    loop->body = body;
    return loop;
}

static LpStmt *concat(LpStmt *a, LpStmt *b) {
    if (!a) return b;
    LpStmt *t = a;
    while (t->next) t = t->next;
    t->next = b;
    return a;
}

/* Replaces the statement *link (old) by the non-empty list. */
static void splice(LpStmt **link, LpStmt *old, LpStmt *list) {
    TT_ASSERT(list);
    LpStmt *last = list;
    while (last->next) last = last->next;
    last->next = old->next;
    *link = list;
}

/* -- substitution -- */

typedef struct Subst {
    LpProg *p;
    LpKernel *k;
    LpExpr **var; /* by variable: its replacement, or NULL */
    int nvar;
    LpExpr **memo; /* by expression id (ids from before the substitution) */
    int nmemo;
    int local_off; /* added to every local (copying another kernel's statements) */
} Subst;

static void subst_init(Subst *S, LpProg *p, LpKernel *k) {
    S->p = p;
    S->k = k;
    S->local_off = 0;
    S->nvar = k->nvars;
    S->var = tt_xcalloc((size_t)S->nvar + 1, sizeof *S->var);
    S->nmemo = p->nexpr;
    S->memo = tt_xcalloc((size_t)S->nmemo + 1, sizeof *S->memo);
}

static void subst_free(Subst *S) {
    free(S->var);
    free(S->memo);
}

/* Sets var -> e for the next copy (and forgets the memoized results). */
static void subst_set(Subst *S, int var, LpExpr *e) {
    TT_ASSERT(var < S->nvar);
    S->var[var] = e;
    memset(S->memo, 0, ((size_t)S->nmemo + 1) * sizeof *S->memo);
}

static bool is_iconst(const LpExpr *e) {
    return e->kind == LE_CONST && e->ty == LT_I64;
}

static LpExpr *sub(Subst *S, LpExpr *e) {
    if (e->id < S->nmemo && S->memo[e->id]) return S->memo[e->id];
    LpProg *p = S->p;
    LpExpr *r = e, *a, *b, *c;
    switch (e->kind) {
    case LE_CONST:
        break;
    case LE_LOCAL:
        if (S->local_off) {
            r = arena_alloc(&p->arena, sizeof *r);
            *r = *e;
            r->id = p->nexpr++;
            r->var = e->var + S->local_off;
        }
        break;
    case LE_VAR:
        if (e->var < S->nvar && S->var[e->var]) r = S->var[e->var];
        break;
    case LE_LOAD:
        a = sub(S, e->a);
        if (a != e->a) r = lp_load(p, e->buf, a);
        break;
    case LE_UN:
        a = sub(S, e->a);
        if (a != e->a) r = lp_un(p, e->op, a);
        break;
    case LE_BIN:
        a = sub(S, e->a);
        b = sub(S, e->b);
        if (a == e->a && b == e->b) break;
        if (e->ty == LT_I64 && e->op == LO_ADD)
            r = lp_iadd(p, a, b);
        else if (e->ty == LT_I64 && e->op == LO_MUL && is_iconst(b))
            r = lp_imul(p, a, b->c.i);
        else if (e->ty == LT_I64 && e->op == LO_DIV && is_iconst(b) && b->c.i >= 1)
            r = lp_idiv(p, a, b->c.i);
        else if (e->ty == LT_I64 && e->op == LO_MOD && is_iconst(b) && b->c.i >= 1)
            r = lp_imod(p, a, b->c.i);
        else
            r = lp_bin(p, e->op, a, b);
        r->exact = e->exact;
        break;
    case LE_SELECT:
        a = sub(S, e->a);
        b = sub(S, e->b);
        c = sub(S, e->cc);
        if (a != e->a || b != e->b || c != e->cc) r = lp_select(p, a, b, c);
        break;
    case LE_CAST:
        a = sub(S, e->a);
        if (a != e->a) r = lp_cast(p, e->ty, a);
        break;
    }
    if (e->id < S->nmemo) S->memo[e->id] = r;
    return r;
}

/* A copy of the statement list s under the substitution; each loop of the
 * copy gets a fresh variable. */
static LpStmt *copy_list(Subst *S, const LpStmt *s) {
    LpProg *p = S->p;
    LpStmt *head = NULL, **tail = &head;
    for (; s; s = s->next) {
        LpStmt *c = new_stmt(p, s->kind);
        *c = *s;
        c->next = NULL;
        c->parallel = 0; /* a copy is nested: never a top-level loop */
        switch (s->kind) {
        case LS_LOOP: /* only the body uses the variable: nothing memoized uses it */
            if (s->trips) c->trips = sub(S, s->trips); /* enclosing variables only */
            c->var = S->k->nvars++;
            S->var[s->var] = new_var(p, c->var, s->extent);
            c->body = copy_list(S, s->body);
            break;
        case LS_LOCAL:
        case LS_SET:
            c->var = s->var + S->local_off;
            c->value = sub(S, s->value);
            break;
        case LS_STORE:
            c->index = sub(S, s->index);
            c->value = sub(S, s->value);
            break;
        case LS_CHECK:
            c->value = sub(S, s->value);
            break;
        case LS_GEMM: {
            LpGemm *g = arena_alloc(&p->arena, sizeof *g);
            *g = *s->gemm;
            g->aoff = sub(S, g->aoff);
            g->boff = sub(S, g->boff);
            g->coff = sub(S, g->coff);
            c->gemm = g;
            p->ngemm++;
            break;
        }
        }
        *tail = c;
        tail = &c->next;
    }
    return head;
}

/* -- independence -- */

typedef struct Dep {
    const LpProg *p;
    bool *declared;      /* by local: declared in the statements checked */
    bool *bound;         /* by variable: a loop of the statements checked */
    int64_t *extent;     /* by variable */
    const LpExpr **idx;  /* by buffer: the index of its stores, or NULL */
    unsigned char *seen; /* by expression id: checked */
    bool ok;
    bool call; /* an op the vectorizer cannot widen (a libm call, OPF_LIBM) */
} Dep;

static void dep_collect(Dep *D, const LpStmt *s, bool one) {
    for (; s && D->ok; s = one ? NULL : s->next) {
        switch (s->kind) {
        case LS_LOOP:
            D->bound[s->var] = true;
            D->extent[s->var] = s->extent;
            dep_collect(D, s->body, false);
            break;
        case LS_STORE:
            if (!D->idx[s->buf])
                D->idx[s->buf] = s->index;
            else if (!lp_expr_eq(D->idx[s->buf], s->index))
                D->ok = false; /* one buffer, two indices: refused */
            break;
        case LS_LOCAL:
        case LS_SET:
        case LS_CHECK: /* its status word is written atomically (codegen) */
            break;
        case LS_GEMM:
            D->ok = false;
            break;
        }
    }
}

/* Locals read are private (declared earlier in the statements checked),
 * loads of stored buffers are at the store index. */
static void dep_expr(Dep *D, const LpExpr *e) {
    if (!D->ok || D->seen[e->id]) return;
    D->seen[e->id] = 1;
    switch (e->kind) {
    case LE_LOCAL:
        if (!D->declared[e->var]) D->ok = false;
        break;
    case LE_LOAD:
        if (D->idx[e->buf] && !lp_expr_eq(D->idx[e->buf], e->a)) D->ok = false;
        dep_expr(D, e->a);
        break;
    case LE_CONST:
    case LE_VAR:
        break;
    case LE_UN:
        D->call = D->call || lp_op_is_libm(e->op);
        dep_expr(D, e->a);
        break;
    case LE_CAST:
        dep_expr(D, e->a);
        break;
    case LE_BIN:
        dep_expr(D, e->a);
        dep_expr(D, e->b);
        break;
    case LE_SELECT:
        dep_expr(D, e->a);
        dep_expr(D, e->b);
        dep_expr(D, e->cc);
        break;
    }
}

static void dep_uses(Dep *D, const LpStmt *s, bool one) {
    for (; s && D->ok; s = one ? NULL : s->next) {
        switch (s->kind) {
        case LS_LOOP:
            if (s->trips) dep_expr(D, s->trips);
            dep_uses(D, s->body, false);
            break;
        case LS_SET:
            if (!D->declared[s->var]) D->ok = false; /* carried from iteration to iteration */
            dep_expr(D, s->value);
            break;
        case LS_LOCAL: /* private: declared (in program order) before any use */
            dep_expr(D, s->value);
            D->declared[s->var] = true;
            break;
        case LS_STORE:
            dep_expr(D, s->index);
            dep_expr(D, s->value);
            break;
        case LS_CHECK:
            dep_expr(D, s->value);
            break;
        case LS_GEMM:
            D->ok = false;
            break;
        }
    }
}

/* idx = sum coef[v]*v + c with every atom a loop variable. */
static bool affine(const LpExpr *e, int64_t mult, int64_t *coef, int nvars) {
    if (is_iconst(e)) return true;
    if (e->kind == LE_VAR && e->var < nvars) {
        coef[e->var] += mult;
        return true;
    }
    if (e->kind == LE_BIN && e->ty == LT_I64) {
        if (e->op == LO_ADD)
            return affine(e->a, mult, coef, nvars) && affine(e->b, mult, coef, nvars);
        if (e->op == LO_MUL && is_iconst(e->b)) return affine(e->a, mult * e->b->c.i, coef, nvars);
        if (e->op == LO_MUL && is_iconst(e->a)) return affine(e->b, mult * e->a->c.i, coef, nvars);
    }
    return false;
}

/* The store index separates the bound variables and depends on each key. */
static bool separates(const Dep *D, const LpExpr *idx, int nvars, const int *key, int nkey) {
    int64_t *coef = tt_xcalloc((size_t)nvars + 1, sizeof *coef);
    bool ok = affine(idx, 1, coef, nvars);
    for (int i = 0; ok && i < nkey; i++) ok = coef[key[i]] != 0;
    /* mixed radix: in decreasing order of |coef|, each exceeds the span of
     * the rest, so equal indices mean equal values of every bound variable */
    int n = 0, *ord = tt_xcalloc((size_t)nvars + 1, sizeof *ord);
    for (int v = 0; ok && v < nvars; v++)
        if (D->bound[v] && coef[v]) {
            if (coef[v] < 0) coef[v] = -coef[v];
            int j = n++;
            for (; j > 0 && coef[ord[j - 1]] < coef[v]; j--) ord[j] = ord[j - 1];
            ord[j] = v;
        }
    for (int i = 0; ok && i < n; i++) {
        __int128 span = 0;
        for (int j = i + 1; j < n; j++) span += (__int128)coef[ord[j]] * (D->extent[ord[j]] - 1);
        ok = (__int128)coef[ord[i]] > span;
    }
    free(ord);
    free(coef);
    return ok;
}

bool lp_independent(const LpProg *p, const LpKernel *k, const LpStmt *loop, const LpStmt *inner) {
    if (!loop || loop->kind != LS_LOOP) return false;
    Dep D = {0};
    D.p = p;
    D.ok = true;
    D.declared = tt_xcalloc((size_t)k->nlocals + 1, sizeof *D.declared);
    D.bound = tt_xcalloc((size_t)k->nvars + 1, sizeof *D.bound);
    D.extent = tt_xcalloc((size_t)k->nvars + 1, sizeof *D.extent);
    D.idx = tt_xcalloc((size_t)p->nbufs + 1, sizeof *D.idx);
    D.seen = tt_xcalloc((size_t)p->nexpr + 1, 1);
    dep_collect(&D, loop, true);
    dep_uses(&D, loop, true);
    int key[2] = {loop->var, inner ? inner->var : 0};
    for (int b = 0; D.ok && b < p->nbufs; b++)
        if (D.idx[b]) D.ok = separates(&D, D.idx[b], k->nvars, key, inner ? 2 : 1);
    free(D.declared);
    free(D.bound);
    free(D.extent);
    free(D.idx);
    free(D.seen);
    return D.ok;
}

/* -- the transformations -- */

bool lp_tile(LpProg *p, LpKernel *k, LpStmt *loop, int64_t size) {
    if (!is_loop_of(k, loop) || size < 2 || loop->epilogue || loop->trips) return false;
    LpStmt *inner = loop->body;
    if (!inner || inner->kind != LS_LOOP || inner->next) return false; /* not a perfect 2-D nest */
    if (inner->trips) return false; /* runtime trip counts: left alone */
    int64_t n = loop->extent, m = inner->extent, t = size;
    if (t >= n && t >= m) return false; /* one block: nothing to tile */
    if (!lp_independent(p, k, loop, inner)) return false;
    LpStmt **link = link_of(&k->body, loop);
    int64_t nt = n / t, nr = n % t, mt = m / t, mr = m % t;
    Subst S;
    subst_init(&S, p, k);
    int vi = loop->var, vj = inner->var;
    LpStmt *out = NULL;
    LpExpr *io, *jo, *ii, *jj;
    if (nt > 0) { /* full rows of blocks */
        LpStmt *lio = loop_begin(p, k, nt, &io), *rows = NULL;
        if (mt > 0) { /* the T x T blocks */
            LpStmt *ljo = loop_begin(p, k, mt, &jo), *lii = loop_begin(p, k, t, &ii),
                   *ljj = loop_begin(p, k, t, &jj);
            subst_set(&S, vi, lp_iadd(p, lp_imul(p, io, t), ii));
            subst_set(&S, vj, lp_iadd(p, lp_imul(p, jo, t), jj));
            rows = loop_end(ljo, loop_end(lii, loop_end(ljj, copy_list(&S, inner->body))));
        }
        if (mr > 0) { /* the right edge: T x (m % T) */
            LpStmt *lii = loop_begin(p, k, t, &ii), *ljr = loop_begin(p, k, mr, &jj);
            subst_set(&S, vi, lp_iadd(p, lp_imul(p, io, t), ii));
            subst_set(&S, vj, lp_iadd(p, lp_iconst(p, mt * t), jj));
            rows = concat(rows, loop_end(lii, loop_end(ljr, copy_list(&S, inner->body))));
        }
        out = loop_end(lio, rows);
    }
    if (nr > 0) { /* the bottom edge: (n % T) x m */
        LpStmt *lir = loop_begin(p, k, nr, &ii), *lj = loop_begin(p, k, m, &jj);
        subst_set(&S, vi, lp_iadd(p, lp_iconst(p, nt * t), ii));
        subst_set(&S, vj, jj);
        out = concat(out, loop_end(lir, loop_end(lj, copy_list(&S, inner->body))));
    }
    subst_free(&S);
    splice(link, loop, out);
    return true;
}

bool lp_interchange(LpProg *p, LpKernel *k, LpStmt *outer, LpStmt *inner) {
    if (!is_loop_of(k, outer) || !inner || outer->body != inner || inner->kind != LS_LOOP ||
        inner->next || outer->epilogue)
        return false;                               /* not a perfect 2-D nest */
    if (outer->trips || inner->trips) return false; /* runtime trip counts: left alone */
    if (!lp_independent(p, k, outer, inner)) return false;
    int v = outer->var;
    int64_t e = outer->extent;
    outer->var = inner->var;
    outer->extent = inner->extent;
    inner->var = v;
    inner->extent = e;
    outer->vectorize = inner->vectorize = false;
    outer->parallel = inner->parallel = 0;
    return true;
}

#define UNROLL_MAX 64

bool lp_unroll(LpProg *p, LpKernel *k, LpStmt *loop, int factor) {
    if (!is_loop_of(k, loop) || factor < 2 || factor > UNROLL_MAX || loop->epilogue || loop->trips)
        return false;
    LpStmt **link = link_of(&k->body, loop);
    int64_t n = loop->extent, f = factor, nf = n / f, r = n % f;
    Subst S;
    subst_init(&S, p, k);
    LpStmt *out = NULL;
    if (nf > 0) {
        LpExpr *io;
        LpStmt *lio = loop_begin(p, k, nf, &io), *body = NULL;
        for (int64_t u = 0; u < f; u++) {
            subst_set(&S, loop->var, lp_iadd(p, lp_imul(p, io, f), lp_iconst(p, u)));
            body = concat(body, copy_list(&S, loop->body));
        }
        if (lio) {
            lio->vectorize = loop->vectorize;
            lio->parallel = loop->parallel;
        }
        out = loop_end(lio, body);
    }
    for (int64_t u = 0; u < r; u++) { /* the remainder, straight-line */
        subst_set(&S, loop->var, lp_iconst(p, nf * f + u));
        out = concat(out, copy_list(&S, loop->body));
    }
    subst_free(&S);
    splice(link, loop, out);
    return true;
}

/* No statement of the body reads or sets a local it does not declare, and
 * none calls a function the vectorizer cannot widen. */
static bool vectorizable(const LpProg *p, const LpKernel *k, const LpStmt *loop) {
    Dep D = {0};
    D.p = p;
    D.ok = true;
    D.declared = tt_xcalloc((size_t)k->nlocals + 1, sizeof *D.declared);
    D.bound = tt_xcalloc((size_t)k->nvars + 1, sizeof *D.bound);
    D.extent = tt_xcalloc((size_t)k->nvars + 1, sizeof *D.extent);
    D.idx = tt_xcalloc((size_t)p->nbufs + 1, sizeof *D.idx); /* stays empty: loads unchecked */
    D.seen = tt_xcalloc((size_t)p->nexpr + 1, 1);
    dep_uses(&D, loop, true);
    free(D.declared);
    free(D.bound);
    free(D.extent);
    free(D.idx);
    free(D.seen);
    return D.ok && !D.call;
}

bool lp_mark_vectorize(LpProg *p, LpKernel *k, LpStmt *loop) {
    if (!is_loop_of(k, loop)) return false;
    for (const LpStmt *s = loop->body; s; s = s->next)
        if (s->kind == LS_LOOP || s->kind == LS_GEMM) return false; /* not innermost */
    for (const LpStmt *s = loop->body; s; s = s->next)
        if (s->kind == LS_CHECK) return false; /* a branch to an atomic: stays scalar */
    if (!vectorizable(p, k, loop)) return false;
    loop->vectorize = true;
    return true;
}

bool lp_mark_parallel(LpProg *p, LpKernel *k, LpStmt *loop, int nthreads) {
    if (nthreads < 2 || !loop || loop->kind != LS_LOOP) return false;
    bool top = false;
    for (const LpStmt *s = k->body; s; s = s->next) top = top || s == loop;
    if (!top || loop->epilogue) return false; /* the GEMM's threads run an epilogue */
    if (loop->trips) return false;            /* the pool splits a constant range */
    if (!lp_independent(p, k, loop, NULL) && !lp_row_local(p, k, loop, -1, 0)) return false;
    loop->parallel = nthreads < loop->extent ? nthreads : (int)loop->extent;
    return true;
}

/* -- fusing kernels -- */

/* idx = c0 + sum coef[v]*v, every atom a loop variable (affine, with the
 * constant term). */
static bool affine_c(const LpExpr *e, int64_t mult, int64_t *coef, int64_t *c0, int nvars) {
    if (is_iconst(e)) {
        *c0 += mult * e->c.i;
        return true;
    }
    if (e->kind == LE_VAR && e->var < nvars) {
        coef[e->var] += mult;
        return true;
    }
    if (e->kind == LE_BIN && e->ty == LT_I64) {
        if (e->op == LO_ADD)
            return affine_c(e->a, mult, coef, c0, nvars) && affine_c(e->b, mult, coef, c0, nvars);
        if (e->op == LO_MUL && is_iconst(e->b))
            return affine_c(e->a, mult * e->b->c.i, coef, c0, nvars);
        if (e->op == LO_MUL && is_iconst(e->a))
            return affine_c(e->b, mult * e->a->c.i, coef, c0, nvars);
    }
    return false;
}

/* The row-local test (transform.h): statements run in each iteration of the
 * loop of variable var touch, in every buffer they write, only the slice
 * [c*var, c*var + c) of that buffer, for one c per buffer. */
typedef struct Rows {
    int var, nvars;
    int64_t *extent;     /* by variable: extent of a loop of the statements, else 0 */
    bool *written;       /* by buffer */
    int64_t *slice;      /* by buffer: c, 0 before its first access */
    unsigned char *seen; /* by expression id */
    bool ok;
} Rows;

static void rows_bind(Rows *R, const LpStmt *s) {
    for (; s; s = s->next)
        if (s->kind == LS_LOOP) {
            R->extent[s->var] = s->extent;
            rows_bind(R, s->body);
        } else if (s->kind == LS_STORE) {
            R->written[s->buf] = true;
        }
}

static void rows_access(Rows *R, int buf, const LpExpr *idx) {
    if (!R->ok || !R->written[buf]) return;
    int64_t *coef = tt_xcalloc((size_t)R->nvars + 1, sizeof *coef), c0 = 0;
    bool ok = affine_c(idx, 1, coef, &c0, R->nvars);
    int64_t c = ok && R->var < R->nvars ? coef[R->var] : 0;
    ok = ok && c > 0 && (R->slice[buf] == 0 || R->slice[buf] == c);
    __int128 lo = c0, hi = c0; /* the range of the rest of the index */
    for (int v = 0; ok && v < R->nvars; v++) {
        if (v == R->var || !coef[v]) continue;
        if (R->extent[v] <= 0) { /* not a loop of these statements */
            ok = false;
            break;
        }
        __int128 span = (__int128)coef[v] * (R->extent[v] - 1);
        if (span < 0)
            lo += span;
        else
            hi += span;
    }
    ok = ok && lo >= 0 && hi < c;
    if (ok) R->slice[buf] = c;
    free(coef);
    R->ok = ok;
}

static void rows_expr(Rows *R, const LpExpr *e) {
    if (!e || !R->ok || R->seen[e->id]) return;
    R->seen[e->id] = 1;
    if (e->kind == LE_LOAD) rows_access(R, e->buf, e->a);
    rows_expr(R, e->a);
    rows_expr(R, e->b);
    rows_expr(R, e->cc);
}

static void rows_stmts(Rows *R, const LpStmt *s) {
    for (; s && R->ok; s = s->next) switch (s->kind) {
        case LS_LOOP:
            if (s->trips) rows_expr(R, s->trips);
            rows_stmts(R, s->body);
            break;
        case LS_STORE:
            rows_access(R, s->buf, s->index);
            rows_expr(R, s->index);
            rows_expr(R, s->value);
            break;
        case LS_LOCAL:
        case LS_SET:
        case LS_CHECK:
            rows_expr(R, s->value);
            break;
        case LS_GEMM:
            R->ok = false;
            break;
        }
}

/* The statement lists, run in order in each iteration of the loop of
 * variable var of a kernel with nvars variables and nlocals locals, are
 * row-local, and their locals are private to an iteration. cbuf >= 0: that
 * buffer (the C of an epilogue's GEMM) counts as written, rows of crow. */
static bool rows_ok(const LpProg *p, int nvars, int nlocals, int var, LpStmt *const *lists,
                    int nlists, int cbuf, int64_t crow) {
    Rows R = {.var = var, .nvars = nvars, .ok = true};
    R.extent = tt_xcalloc((size_t)nvars + 1, sizeof *R.extent);
    R.written = tt_xcalloc((size_t)p->nbufs + 1, sizeof *R.written);
    R.slice = tt_xcalloc((size_t)p->nbufs + 1, sizeof *R.slice);
    R.seen = tt_xcalloc((size_t)p->nexpr + 1, 1);
    for (int i = 0; i < nlists; i++) rows_bind(&R, lists[i]);
    if (cbuf >= 0) {
        R.ok = !R.written[cbuf] && crow > 0; /* the epilogue never writes C */
        R.written[cbuf] = true;
        R.slice[cbuf] = crow;
    }
    for (int i = 0; i < nlists; i++) rows_stmts(&R, lists[i]);
    Dep D = {0};
    D.p = p;
    D.ok = R.ok;
    D.declared = tt_xcalloc((size_t)nlocals + 1, sizeof *D.declared);
    D.idx = tt_xcalloc((size_t)p->nbufs + 1, sizeof *D.idx); /* empty: loads unchecked */
    D.seen = tt_xcalloc((size_t)p->nexpr + 1, 1);
    for (int i = 0; i < nlists; i++) dep_uses(&D, lists[i], false);
    free(R.extent);
    free(R.written);
    free(R.slice);
    free(R.seen);
    free(D.declared);
    free(D.idx);
    free(D.seen);
    return D.ok;
}

bool lp_row_local(const LpProg *p, const LpKernel *k, const LpStmt *loop, int cbuf, int64_t crow) {
    if (!loop || loop->kind != LS_LOOP) return false;
    LpStmt *body = loop->body;
    return rows_ok(p, k->nvars, k->nlocals, loop->var, &body, 1, cbuf, crow);
}

/* The kernel's only statement when it is a loop (not yet parallel). */
static LpStmt *only_loop(const LpKernel *k) {
    LpStmt *s = k->body;
    return s && s->kind == LS_LOOP && !s->next && !s->parallel && !s->epilogue && !s->trips ? s
                                                                                            : NULL;
}

/* A copy of the body of loop (a loop of src) for kernel k, run for each
 * value of v: with c = 1, loop's variable becomes v; with c > 1 (loop
 * extent = c * v's extent, strip-mining), the copy is wrapped in a fresh
 * `for q in 0..c` and the variable becomes v*c + q, so iterations keep
 * their order. Other variables become fresh ones of k; locals are shifted
 * by local_off. */
static LpStmt *copy_body_into(LpProg *p, LpKernel *k, const LpKernel *src, const LpStmt *loop,
                              LpExpr *v, int64_t c, int local_off) {
    Subst S = {.p = p, .k = k, .nvar = src->nvars, .nmemo = p->nexpr, .local_off = local_off};
    S.var = tt_xcalloc((size_t)S.nvar + 1, sizeof *S.var);
    S.memo = tt_xcalloc((size_t)S.nmemo + 1, sizeof *S.memo);
    LpStmt *strip = NULL;
    if (c > 1) {
        LpExpr *q;
        strip = loop_begin(p, k, c, &q);
        S.var[loop->var] = lp_iadd(p, lp_imul(p, v, c), q);
    } else {
        S.var[loop->var] = v;
    }
    LpStmt *r = loop_end(strip, copy_list(&S, loop->body));
    subst_free(&S);
    return r;
}

static bool stores_to(const LpStmt *s, int buf) {
    for (; s; s = s->next)
        if ((s->kind == LS_STORE && s->buf == buf) ||
            (s->kind == LS_LOOP && stores_to(s->body, buf)))
            return true;
    return false;
}

/* Records that k now also computes what src did: locals, name, parts. */
static void add_merged(LpProg *p, LpKernel *k, const LpKernel *src) {
    int n = k->nmerged + 1 + src->nmerged;
    LpKernel *m = arena_alloc(&p->arena, (size_t)n * sizeof *m);
    if (k->nmerged) memcpy(m, k->merged, (size_t)k->nmerged * sizeof *m);
    m[k->nmerged] = *src;
    m[k->nmerged].merged = NULL;
    m[k->nmerged].nmerged = 0;
    if (src->nmerged) memcpy(m + k->nmerged + 1, src->merged, (size_t)src->nmerged * sizeof *m);
    k->merged = m;
    k->nmerged = n;
    LpType *lt = arena_alloc(&p->arena, ((size_t)k->nlocals + src->nlocals + 1) * sizeof *lt);
    if (k->nlocals) memcpy(lt, k->local_ty, (size_t)k->nlocals * sizeof *lt);
    if (src->nlocals) memcpy(lt + k->nlocals, src->local_ty, (size_t)src->nlocals * sizeof *lt);
    k->local_ty = lt;
    k->nlocals += src->nlocals;
    const char *op = strchr(src->name, '_');
    op = op ? op + 1 : src->name;
    size_t len = strlen(k->name);
    if (len + 1 + strlen(op) < sizeof k->name)
        snprintf(k->name + len, sizeof k->name - len, "_%s", op);
}

/* Fuses kernel k2 into k1 (the kernel before it), or returns false and
 * leaves k1 untouched:
 *   k1 = [L1], k2 = [L2]                           -> [one loop: L1; L2]
 *   k1 = [gemm], k2 = [L2], L2 over the rows of C  -> [gemm, L2 epilogue]
 *   k1 = [gemm, L1 epilogue], k2 = [L2]            -> [gemm, L1; L2 epilogue]
 * The fused loop runs R iterations (the rows of C, or the smaller extent);
 * a loop of R * c iterations (an elementwise kernel over the flattened
 * matrix) is strip-mined into R rows of c first. */
static bool fuse_pair(LpProg *p, LpKernel *k1, const LpKernel *k2) {
    LpStmt *l2 = only_loop(k2), *gemm = NULL, *l1 = k1->body;
    if (!l2 || !l1) return false;
    if (l1->kind == LS_GEMM) {
        gemm = l1;
        l1 = l1->next;
    }
    if (l1 && (l1->kind != LS_LOOP || l1->next || l1->parallel || l1->trips)) return false;
    if (!gemm && !l1) return false;
    int64_t rows = gemm ? gemm->gemm->m : l1->extent < l2->extent ? l1->extent : l2->extent;
    /* a GEMM's epilogue may be one row (batch-1 inference: M = 1) */
    if (rows < (gemm ? 1 : 2) || l2->extent % rows || (l1 && l1->extent % rows)) return false;
    if (gemm) {
        const LpGemm *g = gemm->gemm;
        if (g->ldc != g->n || !is_iconst(g->coff) || g->coff->c.i != 0 ||
            stores_to(l2->body, g->a) || stores_to(l2->body, g->b))
            return false;
    }
    int nvars0 = k1->nvars;
    LpStmt *loop = l1;
    if (!l1 || l1->extent != rows) { /* a new loop over the rows */
        loop = new_stmt(p, LS_LOOP);
        loop->var = k1->nvars++;
        loop->extent = rows;
        loop->epilogue = gemm != NULL;
    }
    LpExpr *v = new_var(p, loop->var, rows);
    LpStmt *body1 = !l1          ? NULL
                    : loop == l1 ? l1->body
                                 : copy_body_into(p, k1, k1, l1, v, l1->extent / rows, 0);
    LpStmt *body2 = copy_body_into(p, k1, k2, l2, v, l2->extent / rows, k1->nlocals);
    LpStmt *lists[2] = {body1, body2};
    if (!rows_ok(p, k1->nvars, k1->nlocals + k2->nlocals, loop->var, lists, 2,
                 gemm ? gemm->gemm->c : -1, gemm ? gemm->gemm->ldc : 0)) {
        k1->nvars = nvars0;
        return false;
    }
    loop->body = concat(body1, body2);
    if (loop != l1) {
        if (gemm)
            gemm->next = loop;
        else
            k1->body = loop;
    }
    add_merged(p, k1, k2);
    return true;
}

int lp_fuse_kernels(LpProg *p) {
    int n = 0;
    for (int i = 0; i + 1 < p->nkernels;) {
        if (fuse_pair(p, &p->kernels[i], &p->kernels[i + 1])) {
            memmove(&p->kernels[i + 1], &p->kernels[i + 2],
                    (size_t)(p->nkernels - i - 2) * sizeof *p->kernels);
            p->nkernels--;
            n++;
        } else {
            i++;
        }
    }
    return n;
}

/* -- the default schedule -- */

static bool uses_var(const LpExpr *e, int var) {
    if (!e) return false;
    if (e->kind == LE_VAR) return e->var == var;
    return uses_var(e->a, var) || uses_var(e->b, var) || uses_var(e->cc, var);
}

/* Every load and store in e (or at index idx) steps by 0 or 1 element per
 * iteration of loop variable var. */
static bool unit_stride(const LpExpr *idx, int var, int nvars) {
    int64_t *coef = tt_xcalloc((size_t)nvars + 1, sizeof *coef);
    bool ok = affine(idx, 1, coef, nvars) ? coef[var] == 0 || coef[var] == 1 : !uses_var(idx, var);
    free(coef);
    return ok;
}

static bool loads_contiguous(const LpExpr *e, int var, int nvars, unsigned char *seen) {
    if (!e || seen[e->id]) return true;
    seen[e->id] = 1;
    if (e->kind == LE_LOAD && !unit_stride(e->a, var, nvars)) return false;
    return loads_contiguous(e->a, var, nvars, seen) && loads_contiguous(e->b, var, nvars, seen) &&
           loads_contiguous(e->cc, var, nvars, seen);
}

/* The accesses of an innermost loop are contiguous (or invariant): where
 * vectorizing pays without gathers and scatters. */
static bool contiguous(const LpProg *p, const LpKernel *k, const LpStmt *loop) {
    unsigned char *seen = tt_xcalloc((size_t)p->nexpr + 1, 1);
    bool ok = true;
    for (const LpStmt *s = loop->body; s && ok; s = s->next) {
        if (s->kind == LS_STORE)
            ok = unit_stride(s->index, loop->var, k->nvars) &&
                 loads_contiguous(s->index, loop->var, k->nvars, seen);
        if (ok && s->value) ok = loads_contiguous(s->value, loop->var, k->nvars, seen);
    }
    free(seen);
    return ok;
}

/* The divisor d of the first `v / d` or `v % d` in e (v: variable var
 * alone, d a constant), 0 if none. */
static int64_t divmod_of(const LpExpr *e, int var, unsigned char *seen) {
    if (!e || seen[e->id]) return 0;
    seen[e->id] = 1;
    if (e->kind == LE_BIN && (e->op == LO_DIV || e->op == LO_MOD) && e->ty == LT_I64 &&
        e->a->kind == LE_VAR && e->a->var == var && is_iconst(e->b))
        return e->b->c.i;
    int64_t d = divmod_of(e->a, var, seen);
    if (!d) d = divmod_of(e->b, var, seen);
    return d ? d : divmod_of(e->cc, var, seen);
}

/* A leaf loop over v whose accesses are not contiguous because they read
 * v / d and v % d (a reshape of a permuted tensor: the gradients of q, k
 * and v joined into [B, T, 3d] read [B, H, T, dh] at (t, c / dh, c % dh))
 * split into v = vo * d + vi: the inner loop over vi then reads
 * contiguous runs of d and vectorizes. Returns the new outer loop, or
 * NULL (nothing split). */
static LpStmt *split_divmod(LpProg *p, LpKernel *k, LpStmt *loop) {
    if (loop->trips || loop->epilogue || loop->parallel) return NULL;
    unsigned char *seen = tt_xcalloc((size_t)p->nexpr + 1, 1);
    int64_t d = 0;
    for (const LpStmt *s = loop->body; s && !d; s = s->next) {
        d = divmod_of(s->index, loop->var, seen);
        if (!d) d = divmod_of(s->value, loop->var, seen);
    }
    free(seen);
    if (d < 4 || d >= loop->extent || loop->extent % d) return NULL;
    LpStmt **link = link_of(&k->body, loop);
    if (!link) return NULL;
    Subst S;
    subst_init(&S, p, k);
    LpExpr *vo, *vi;
    LpStmt *lo = loop_begin(p, k, loop->extent / d, &vo), *li = loop_begin(p, k, d, &vi);
    subst_set(&S, loop->var, lp_iadd(p, lp_imul(p, vo, d), vi));
    LpStmt *out = loop_end(lo, loop_end(li, copy_list(&S, loop->body)));
    subst_free(&S);
    splice(link, loop, out);
    return out;
}

static void mark_innermost(LpProg *p, LpKernel *k, LpStmt *s) {
    for (; s; s = s->next) {
        if (s->kind != LS_LOOP) continue;
        bool leaf = true;
        for (const LpStmt *b = s->body; b; b = b->next) leaf = leaf && b->kind != LS_LOOP;
        LpStmt *outer;
        if (leaf && contiguous(p, k, s))
            lp_mark_vectorize(p, k, s);
        else if (leaf && (outer = split_divmod(p, k, s)) != NULL) {
            if (contiguous(p, k, outer->body)) lp_mark_vectorize(p, k, outer->body);
            s = outer; /* its next is s's */
        } else
            mark_innermost(p, k, s->body);
    }
}

void lp_schedule(LpProg *p, int nthreads) {
    lp_schedule_with(p, nthreads, NULL);
}

void lp_schedule_with(LpProg *p, int nthreads, const LpParCost *cost) {
    for (int i = 0; i < p->nkernels; i++) {
        LpKernel *k = &p->kernels[i];
        mark_innermost(p, k, k->body);
        if (nthreads < 2) continue;
        LpParCost c = cost ? *cost : lp_par_cost(nthreads);
        for (LpStmt *s = k->body; s; s = s->next) {
            if (s->kind != LS_LOOP || s->epilogue || s->trips) continue;
            double ser, par;
            int64_t w = lp_work(s);
            int t = lp_par_threads(w, s->extent, nthreads, &c, &ser, &par);
            if (t > 1 && !lp_mark_parallel(p, k, s, t)) t = 0;
            lp_par_note(k->name, w, nthreads, t, ser, par);
        }
    }
    lp_plan_memory(p); /* after kernel fusion: what it merged shares lifetimes */
}
