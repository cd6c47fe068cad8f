/* loop.c - the loop IR: construction, index simplification, printing.
 *
 * Index expressions are kept affine where they can be: an i64 expression is
 * read as sum(k_j * atom_j) + c, where an atom is a loop variable or any
 * other index expression (a div, a mod, a loaded index), and rebuilt in one
 * canonical order (outer loop variables first). Division and modulo by a
 * constant d use the ranges of the loop variables (0 <= i < extent) to
 * cancel what the reshapes of a fused kernel add:
 *
 *   (q*d + r) / d = q,  (q*d + r) % d = r            when 0 <= r < d
 *   (k*v + r) / (k*m) = v / m                        when 0 <= r < k
 *   (k*v + r) % (k*m) = (v % m)*k + r                when 0 <= r < k
 *   (x / m)*(K*m) + (x % m)*K = x*K
 */
#include "loop.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* -- programs -- */

LpProg *lp_new(void) {
    LpProg *p = tt_xcalloc(1, sizeof *p);
    arena_init(&p->arena);
    return p;
}

void lp_free(LpProg *p) {
    if (!p) return;
    arena_free(&p->arena);
    free(p->bufs);
    free(p->kernels);
    free(p);
}

int lp_add_buf(LpProg *p, LpBufKind kind, int slot, DType dt, const Shape *s, int node) {
    LpBuf b = {0};
    b.kind = kind;
    b.slot = slot;
    b.dtype = dt;
    b.shape = *s;
    b.node = node;
    if (kind == LB_TEMP) {
        int64_t bytes = shape_numel(s) * (int64_t)dtype_size(dt);
        b.offset = p->workspace;
        p->workspace += (bytes + 63) & ~(int64_t)63; /* 64-byte aligned */
        snprintf(b.name, sizeof b.name, "t%d", node);
    } else {
        snprintf(b.name, sizeof b.name, "%s%d", kind == LB_INPUT ? "in" : "out", slot);
    }
    TT_VEC_PUSH(p->bufs, p->nbufs, p->bufcap, b);
    return p->nbufs - 1;
}

LpKernel *lp_begin_kernel(LpProg *p, const char *name, int node, int out) {
    LpKernel k = {0};
    snprintf(k.name, sizeof k.name, "k%d_%s", p->nkernels, name);
    k.node = node;
    k.out = out;
    TT_VEC_PUSH(p->kernels, p->nkernels, p->kcap, k);
    p->cur = &p->kernels[p->nkernels - 1];
    p->depth = 0;
    p->tail[0] = &p->cur->body;
    p->dead[0] = false;
    return p->cur;
}

void lp_end_kernel(LpProg *p) {
    TT_ASSERT(p->cur && p->depth == 0);
    p->cur = NULL;
}

/* -- statements -- */

static LpStmt *new_stmt(LpProg *p, LpStmtKind kind) {
    LpStmt *s = arena_alloc(&p->arena, sizeof *s);
    s->kind = kind;
    return s;
}

static void append(LpProg *p, LpStmt *s) {
    *p->tail[p->depth] = s;
    p->tail[p->depth] = &s->next;
}

static LpExpr *new_expr(LpProg *p, LpExprKind kind, LpType ty) {
    LpExpr *e = arena_alloc(&p->arena, sizeof *e);
    e->kind = kind;
    e->ty = ty;
    e->id = p->nexpr++;
    return e;
}

LpExpr *lp_open_loop(LpProg *p, int64_t extent) {
    return lp_open_loop_trips(p, extent, NULL);
}

LpExpr *lp_open_loop_trips(LpProg *p, int64_t extent, LpExpr *trips) {
    TT_ASSERT(p->cur && p->depth + 1 < 64 && extent >= 0);
    TT_ASSERT(!trips || trips->ty == LT_I64);
    int d = ++p->depth;
    p->open[d] = NULL;
    p->dead[d] = p->dead[d - 1] || extent == 0;
    if (p->dead[d]) {
        p->tail[d] = &p->sink;
        return lp_iconst(p, 0);
    }
    if (extent == 1 && !trips) { /* folded: the body goes straight into the parent */
        p->tail[d] = p->tail[d - 1];
        return lp_iconst(p, 0);
    }
    LpStmt *s = new_stmt(p, LS_LOOP);
    s->var = p->cur->nvars++;
    s->extent = extent;
    s->trips = trips;
    p->depth = d - 1;
    append(p, s);
    p->depth = d;
    p->tail[d] = &s->body;
    p->open[d] = s;
    LpExpr *v = new_expr(p, LE_VAR, LT_I64);
    v->var = s->var;
    v->extent = extent;
    return v;
}

void lp_close_loop(LpProg *p) {
    int d = p->depth;
    TT_ASSERT(d > 0);
    if (!p->open[d] && !p->dead[d]) p->tail[d - 1] = p->tail[d]; /* folded */
    p->depth--;
}

LpExpr *lp_local(LpProg *p, LpType ty, LpExpr *init) {
    LpKernel *k = p->cur;
    LpType *nt = arena_alloc(&p->arena, (size_t)(k->nlocals + 1) * sizeof *nt);
    if (k->nlocals) memcpy(nt, k->local_ty, (size_t)k->nlocals * sizeof *nt);
    nt[k->nlocals] = ty;
    k->local_ty = nt;
    LpStmt *s = new_stmt(p, LS_LOCAL);
    s->var = k->nlocals++;
    s->ty = ty;
    s->value = init;
    TT_ASSERT(init->ty == ty);
    append(p, s);
    LpExpr *e = new_expr(p, LE_LOCAL, ty);
    e->var = s->var;
    return e;
}

void lp_set(LpProg *p, LpExpr *local, LpExpr *value) {
    TT_ASSERT(local->kind == LE_LOCAL && value->ty == local->ty);
    LpStmt *s = new_stmt(p, LS_SET);
    s->var = local->var;
    s->value = value;
    append(p, s);
}

void lp_store(LpProg *p, int buf, LpExpr *index, LpExpr *value) {
    TT_ASSERT(buf >= 0 && buf < p->nbufs && index->ty == LT_I64);
    TT_ASSERT(value->ty == lp_type_of(p->bufs[buf].dtype));
    LpStmt *s = new_stmt(p, LS_STORE);
    s->buf = buf;
    s->index = index;
    s->value = value;
    append(p, s);
}

void lp_gemm(LpProg *p, const LpGemm *g) {
    TT_ASSERT(g->m >= 1 && g->n >= 1 && g->k >= 1);
    TT_ASSERT(g->aoff->ty == LT_I64 && g->boff->ty == LT_I64 && g->coff->ty == LT_I64);
    LpStmt *s = new_stmt(p, LS_GEMM);
    s->gemm = arena_alloc(&p->arena, sizeof *s->gemm);
    *s->gemm = *g;
    s->buf = g->c;
    append(p, s);
    p->ngemm++;
}

void lp_mark_epilogue(LpProg *p) {
    LpStmt *s = p->open[p->depth];
    if (s) s->epilogue = true;
}

void lp_check(LpProg *p, LpExpr *index, int64_t n, int node) {
    TT_ASSERT(index->ty == LT_I64 && n >= 0 && node >= 0);
    int w = 0;
    while (w < p->nchecks && p->check_node[w] != node) w++;
    if (w == p->nchecks) { /* arena arrays: grown by copying, as local_ty is */
        int *cn = arena_alloc(&p->arena, (size_t)(p->nchecks + 1) * sizeof *cn);
        if (p->nchecks) memcpy(cn, p->check_node, (size_t)p->nchecks * sizeof *cn);
        cn[p->nchecks++] = node;
        p->check_node = cn;
    }
    LpStmt *s = new_stmt(p, LS_CHECK);
    s->value = index;
    s->extent = n;
    s->check = w;
    append(p, s);
}

/* -- expressions -- */

LpType lp_type_of(DType t) {
    switch (t) {
    case TY_F32:
        return LT_F32;
    case TY_I32:
        return LT_I32;
    case TY_I8:
        return LT_I8;
    case TY__COUNT:
        break;
    }
    TT_UNREACHABLE();
}

const char *lp_type_name(LpType t) {
    static const char *names[LT__COUNT] = {"f32", "f64", "i32", "i8", "i64", "bool"};
    return t < LT__COUNT ? names[t] : "?";
}

const char *lp_op_name(LpOp op) {
    static const char *names[LO__COUNT] = {
#define OP(NAME, name, arity, flags, form, shape, flops, tol, attrs) [LO_##NAME] = #name,
#include "ops.def"
#undef OP
        [LO_MOD] = "mod",
        [LO_AND] = "and",
        [LO_OR] = "or",
    };
    return op < LO__COUNT ? names[op] : "?";
}

/* an elementwise graph op of the given arity (not one lowered by hand:
 * cast, where, the quantization ops have no operator of their own) */
static bool is_elem(LpOp op, int arity) {
    if ((int)op >= OP__COUNT) return false;
    OpForm f = ir_ops[op].form;
    return arity == 1 ? f == FORM_UNARY || f == FORM_CALL : arity == 2 && f == FORM_BINARY;
}

bool lp_op_is_libm(LpOp op) {
    return (int)op < OP__COUNT && (ir_ops[op].flags & OPF_LIBM);
}

LpExpr *lp_const_f(LpProg *p, LpType ty, double v) {
    TT_ASSERT(ty == LT_F32 || ty == LT_F64);
    LpExpr *e = new_expr(p, LE_CONST, ty);
    e->c.f = ty == LT_F32 ? (double)(float)v : v;
    return e;
}

LpExpr *lp_const_i(LpProg *p, LpType ty, int64_t v) {
    TT_ASSERT(ty != LT_F32 && ty != LT_F64);
    LpExpr *e = new_expr(p, LE_CONST, ty);
    e->c.i = v;
    return e;
}

LpExpr *lp_iconst(LpProg *p, int64_t v) {
    return lp_const_i(p, LT_I64, v);
}

LpExpr *lp_load(LpProg *p, int buf, LpExpr *index) {
    TT_ASSERT(buf >= 0 && buf < p->nbufs && index->ty == LT_I64);
    LpExpr *e = new_expr(p, LE_LOAD, lp_type_of(p->bufs[buf].dtype));
    e->buf = buf;
    e->a = index;
    return e;
}

LpExpr *lp_un(LpProg *p, LpOp op, LpExpr *a) {
    TT_ASSERT(is_elem(op, 1) && op != LO_CAST);
    LpExpr *e = new_expr(p, LE_UN, a->ty);
    e->op = op;
    e->a = a;
    return e;
}

static bool is_cmp(LpOp op) {
    return (int)op < OP__COUNT && (ir_ops[op].flags & OPF_CMP);
}

LpExpr *lp_bin(LpProg *p, LpOp op, LpExpr *a, LpExpr *b) {
    TT_ASSERT((is_elem(op, 2) || (op >= LO_MOD && op < LO__COUNT)) && a->ty == b->ty);
    LpExpr *e = new_expr(p, LE_BIN, is_cmp(op) ? LT_BOOL : a->ty);
    e->op = op;
    e->a = a;
    e->b = b;
    return e;
}

LpExpr *lp_select(LpProg *p, LpExpr *c, LpExpr *a, LpExpr *b) {
    TT_ASSERT(c->ty == LT_BOOL && a->ty == b->ty);
    LpExpr *e = new_expr(p, LE_SELECT, a->ty);
    e->a = c;
    e->b = a;
    e->cc = b;
    return e;
}

LpExpr *lp_cast(LpProg *p, LpType ty, LpExpr *a) {
    if (a->ty == ty) return a;
    LpExpr *e = new_expr(p, LE_CAST, ty);
    e->a = a;
    return e;
}

/* -- index simplification -- */

bool lp_expr_eq(const LpExpr *a, const LpExpr *b) {
    if (a == b) return true;
    if (!a || !b || a->kind != b->kind || a->ty != b->ty) return false;
    switch (a->kind) {
    case LE_CONST:
        return a->ty == LT_F32 || a->ty == LT_F64 ? a->c.f == b->c.f : a->c.i == b->c.i;
    case LE_VAR:
    case LE_LOCAL:
        return a->var == b->var;
    case LE_LOAD:
        return a->buf == b->buf && lp_expr_eq(a->a, b->a);
    case LE_UN:
        return a->op == b->op && lp_expr_eq(a->a, b->a);
    case LE_BIN:
        return a->op == b->op && lp_expr_eq(a->a, b->a) && lp_expr_eq(a->b, b->b);
    case LE_SELECT:
        return lp_expr_eq(a->a, b->a) && lp_expr_eq(a->b, b->b) && lp_expr_eq(a->cc, b->cc);
    case LE_CAST:
        return lp_expr_eq(a->a, b->a);
    }
    return false;
}

static bool is_iconst(const LpExpr *e) {
    return e->kind == LE_CONST && e->ty == LT_I64;
}

/* The range [lo, hi] of an i64 expression, if it can be bounded. */
static bool range(const LpExpr *e, int64_t *lo, int64_t *hi) {
    int64_t a0, a1, b0, b1;
    switch (e->kind) {
    case LE_CONST:
        if (e->ty != LT_I64) return false;
        *lo = *hi = e->c.i;
        return true;
    case LE_VAR:
        *lo = 0;
        *hi = e->extent - 1;
        return true;
    case LE_CAST:
        if (e->a->ty == LT_I32) {
            *lo = INT32_MIN;
            *hi = INT32_MAX;
            return true;
        }
        return false;
    case LE_SELECT:
        if (!range(e->b, &a0, &a1) || !range(e->cc, &b0, &b1)) return false;
        *lo = a0 < b0 ? a0 : b0;
        *hi = a1 > b1 ? a1 : b1;
        return true;
    case LE_BIN:
        if (e->ty != LT_I64 || !range(e->a, &a0, &a1)) return false;
        if (e->op == LO_ADD) {
            if (!range(e->b, &b0, &b1)) return false;
            *lo = a0 + b0;
            *hi = a1 + b1;
            return true;
        }
        if (!is_iconst(e->b)) return false;
        int64_t k = e->b->c.i;
        if (e->op == LO_MUL) {
            *lo = k >= 0 ? a0 * k : a1 * k;
            *hi = k >= 0 ? a1 * k : a0 * k;
            return true;
        }
        if (a0 < 0 || k <= 0) return false;
        if (e->op == LO_DIV) {
            *lo = a0 / k;
            *hi = a1 / k;
            return true;
        }
        if (e->op == LO_MOD) {
            *lo = a1 < k ? a0 : 0;
            *hi = a1 < k ? a1 : k - 1;
            return true;
        }
        return false;
    case LE_LOAD:
    case LE_LOCAL:
    case LE_UN:
        return false;
    }
    return false;
}

#define AFF_MAX 32
typedef struct Aff {
    int n;
    LpExpr *atom[AFF_MAX];
    int64_t k[AFF_MAX];
    int64_t c;
    bool overflow; /* too many atoms: the caller builds the plain expression */
} Aff;

static void aff_term(Aff *f, LpExpr *atom, int64_t k);

static void aff_collect(Aff *f, LpExpr *e, int64_t mult) {
    if (mult == 0) return;
    if (is_iconst(e)) {
        f->c += mult * e->c.i;
    } else if (e->kind == LE_BIN && e->ty == LT_I64 && e->op == LO_ADD) {
        aff_collect(f, e->a, mult);
        aff_collect(f, e->b, mult);
    } else if (e->kind == LE_BIN && e->ty == LT_I64 && e->op == LO_MUL && is_iconst(e->b)) {
        aff_collect(f, e->a, mult * e->b->c.i);
    } else {
        aff_term(f, e, mult);
    }
}

static void aff_term(Aff *f, LpExpr *atom, int64_t k) {
    for (int j = 0; j < f->n; j++)
        if (lp_expr_eq(f->atom[j], atom)) {
            f->k[j] += k;
            return;
        }
    /* (x / m)*(K*m) + (x % m)*K = x*K: find the partner of a div or mod */
    if (atom->kind == LE_BIN && (atom->op == LO_DIV || atom->op == LO_MOD) && atom->ty == LT_I64 &&
        is_iconst(atom->b)) {
        int64_t m = atom->b->c.i;
        LpOp other = atom->op == LO_DIV ? LO_MOD : LO_DIV;
        for (int j = 0; j < f->n; j++) {
            LpExpr *t = f->atom[j];
            if (t->kind != LE_BIN || t->op != other || !is_iconst(t->b) || t->b->c.i != m ||
                !lp_expr_eq(t->a, atom->a))
                continue;
            int64_t kdiv = atom->op == LO_DIV ? k : f->k[j],
                    kmod = atom->op == LO_DIV ? f->k[j] : k;
            if (kdiv != kmod * m) continue;
            f->atom[j] = f->atom[--f->n]; /* drop the partner, add x*K */
            f->k[j] = f->k[f->n];
            aff_collect(f, atom->a, kmod);
            return;
        }
    }
    if (f->n == AFF_MAX) {
        f->overflow = true;
        return;
    }
    f->atom[f->n] = atom;
    f->k[f->n] = k;
    f->n++;
}

static bool aff_range(const Aff *f, int64_t *lo, int64_t *hi) {
    int64_t l = f->c, h = f->c;
    for (int j = 0; j < f->n; j++) {
        int64_t a0, a1;
        if (!range(f->atom[j], &a0, &a1)) return false;
        int64_t k = f->k[j];
        l += k >= 0 ? a0 * k : a1 * k;
        h += k >= 0 ? a1 * k : a0 * k;
    }
    *lo = l;
    *hi = h;
    return true;
}

static LpExpr *raw_bin(LpProg *p, LpOp op, LpExpr *a, LpExpr *b) {
    LpExpr *e = new_expr(p, LE_BIN, LT_I64);
    e->op = op;
    e->a = a;
    e->b = b;
    return e;
}

/* Canonical order: loop variables by nesting depth, then other atoms. */
static int atom_rank(const LpExpr *e) {
    return e->kind == LE_VAR ? e->var : 1000;
}

static LpExpr *aff_build(LpProg *p, Aff *f) {
    for (int i = 1; i < f->n; i++) /* stable insertion sort */
        for (int j = i; j > 0 && atom_rank(f->atom[j - 1]) > atom_rank(f->atom[j]); j--) {
            LpExpr *t = f->atom[j];
            f->atom[j] = f->atom[j - 1];
            f->atom[j - 1] = t;
            int64_t k = f->k[j];
            f->k[j] = f->k[j - 1];
            f->k[j - 1] = k;
        }
    LpExpr *sum = NULL;
    for (int j = 0; j < f->n; j++) {
        if (f->k[j] == 0) continue;
        LpExpr *t =
            f->k[j] == 1 ? f->atom[j] : raw_bin(p, LO_MUL, f->atom[j], lp_iconst(p, f->k[j]));
        sum = sum ? raw_bin(p, LO_ADD, sum, t) : t;
    }
    if (!sum) return lp_iconst(p, f->c);
    if (f->c) sum = raw_bin(p, LO_ADD, sum, lp_iconst(p, f->c));
    return sum;
}

LpExpr *lp_iadd(LpProg *p, LpExpr *a, LpExpr *b) {
    Aff f = {0};
    aff_collect(&f, a, 1);
    aff_collect(&f, b, 1);
    return f.overflow ? raw_bin(p, LO_ADD, a, b) : aff_build(p, &f);
}

LpExpr *lp_imul(LpProg *p, LpExpr *a, int64_t k) {
    Aff f = {0};
    aff_collect(&f, a, k);
    return f.overflow ? raw_bin(p, LO_MUL, a, lp_iconst(p, k)) : aff_build(p, &f);
}

static int64_t floordiv(int64_t a, int64_t d) {
    int64_t q = a / d;
    return (a % d != 0 && a < 0) ? q - 1 : q;
}

/* Splits f into q*d + r: q gets the terms whose coefficient d divides and
 * the multiple of d in the constant; r the rest (constant in [0, d)). */
static void aff_split(const Aff *f, int64_t d, Aff *q, Aff *r) {
    memset(q, 0, sizeof *q);
    memset(r, 0, sizeof *r);
    for (int j = 0; j < f->n; j++) {
        Aff *t = f->k[j] % d == 0 ? q : r;
        t->atom[t->n] = f->atom[j];
        t->k[t->n] = f->k[j] % d == 0 ? f->k[j] / d : f->k[j];
        t->n++;
    }
    q->c = floordiv(f->c, d);
    r->c = f->c - q->c * d;
}

/* In r (non-negative), a term k*v with d % k == 0 whose rest is in [0, k):
 * its index, or -1. */
static int find_split_term(const Aff *r, int64_t d) {
    for (int j = 0; j < r->n; j++) {
        int64_t k = r->k[j], lo, hi;
        if (k <= 1 || d % k != 0) continue;
        if (!range(r->atom[j], &lo, &hi) || lo < 0) continue;
        Aff rest = *r;
        rest.atom[j] = rest.atom[--rest.n];
        rest.k[j] = rest.k[rest.n];
        if (aff_range(&rest, &lo, &hi) && lo >= 0 && hi < k) return j;
    }
    return -1;
}

LpExpr *lp_idiv(LpProg *p, LpExpr *a, int64_t d) {
    TT_ASSERT(d >= 1 && a->ty == LT_I64);
    if (d == 1) return a;
    Aff f = {0}, q, r;
    aff_collect(&f, a, 1);
    aff_split(&f, d, &q, &r);
    int64_t lo, hi;
    if (f.overflow || !aff_range(&r, &lo, &hi) || lo < 0)
        return raw_bin(p, LO_DIV, a, lp_iconst(p, d));
    if (hi < d) return aff_build(p, &q);
    LpExpr *qe = aff_build(p, &q), *extra;
    int j = find_split_term(&r, d);
    if (j >= 0)
        extra = lp_idiv(p, r.atom[j], d / r.k[j]);
    else
        extra = raw_bin(p, LO_DIV, aff_build(p, &r), lp_iconst(p, d));
    return lp_iadd(p, qe, extra);
}

LpExpr *lp_imod(LpProg *p, LpExpr *a, int64_t d) {
    TT_ASSERT(d >= 1 && a->ty == LT_I64);
    if (d == 1) return lp_iconst(p, 0);
    Aff f = {0}, q, r;
    aff_collect(&f, a, 1);
    aff_split(&f, d, &q, &r);
    int64_t lo, hi;
    if (f.overflow || !aff_range(&r, &lo, &hi) || lo < 0)
        return raw_bin(p, LO_MOD, a, lp_iconst(p, d));
    if (hi < d) return aff_build(p, &r);
    int j = find_split_term(&r, d);
    if (j >= 0) {
        int64_t k = r.k[j];
        LpExpr *v = lp_imod(p, r.atom[j], d / k);
        r.atom[j] = r.atom[--r.n];
        r.k[j] = r.k[r.n];
        return lp_iadd(p, lp_imul(p, v, k), aff_build(p, &r));
    }
    return raw_bin(p, LO_MOD, aff_build(p, &r), lp_iconst(p, d));
}

/* -- printing -- */

/* The infix operators: their symbol and precedence (higher binds
 * tighter). The others print by name, as calls (precedence 8). */
static const struct {
    const char *sym;
    int prec;
} infix[LO__COUNT] = {
    [LO_OR] = {"||", 2}, [LO_AND] = {"&&", 3}, [LO_EQ] = {"==", 4}, [LO_NE] = {"!=", 4},
    [LO_LT] = {"<", 4},  [LO_LE] = {"<=", 4},  [LO_GT] = {">", 4},  [LO_GE] = {">=", 4},
    [LO_ADD] = {"+", 5}, [LO_SUB] = {"-", 5},  [LO_MUL] = {"*", 6}, [LO_DIV] = {"/", 6},
    [LO_MOD] = {"%", 6},
};

static int prec(const LpExpr *e) {
    if (e->kind == LE_SELECT) return 1;
    if (e->kind == LE_UN && e->op == LO_NEG) return 7;
    if (e->kind != LE_BIN) return 8;
    return infix[e->op].sym ? infix[e->op].prec : 8; /* pow(a, b), max(a, b), .. */
}

/* how an infix operator prints (the others print by name) */
static const char *symbol(LpOp op) {
    return infix[op].sym ? infix[op].sym : lp_op_name(op);
}

static void print_expr(FILE *out, const LpProg *p, const LpExpr *e);

static void print_sub(FILE *out, const LpProg *p, const LpExpr *e, int min_prec) {
    bool paren = prec(e) < min_prec;
    if (paren) fputc('(', out);
    print_expr(out, p, e);
    if (paren) fputc(')', out);
}

static void print_float(FILE *out, double v) {
    if (isnan(v))
        fputs("nan", out);
    else if (isinf(v))
        fputs(v > 0 ? "inf" : "-inf", out);
    else {
        char buf[40];
        snprintf(buf, sizeof buf, "%.9g", v);
        fputs(buf, out);
        if (!strpbrk(buf, ".eE")) fputs(".0", out);
    }
}

static void print_expr(FILE *out, const LpProg *p, const LpExpr *e) {
    switch (e->kind) {
    case LE_CONST:
        if (e->ty == LT_F32 || e->ty == LT_F64)
            print_float(out, e->c.f);
        else if (e->ty == LT_BOOL)
            fputs(e->c.i ? "true" : "false", out);
        else
            fprintf(out, "%lld", (long long)e->c.i);
        break;
    case LE_VAR:
        fprintf(out, "i%d", e->var);
        break;
    case LE_LOCAL:
        fprintf(out, "s%d", e->var);
        break;
    case LE_LOAD:
        fprintf(out, "%s[", p->bufs[e->buf].name);
        print_expr(out, p, e->a);
        fputc(']', out);
        break;
    case LE_UN:
        if (e->op == LO_NEG) {
            fputc('-', out);
            print_sub(out, p, e->a, 8);
        } else {
            fprintf(out, "%s(", lp_op_name(e->op));
            print_expr(out, p, e->a);
            fputc(')', out);
        }
        break;
    case LE_BIN: {
        int pr = prec(e);
        if (pr == 8) {
            fprintf(out, "%s(", lp_op_name(e->op));
            print_expr(out, p, e->a);
            fputs(", ", out);
            print_expr(out, p, e->b);
            fputc(')', out);
        } else {
            print_sub(out, p, e->a, pr);
            fprintf(out, " %s ", symbol(e->op));
            print_sub(out, p, e->b, pr + 1); /* left-associative */
        }
        break;
    }
    case LE_SELECT:
        print_sub(out, p, e->a, 2);
        fputs(" ? ", out);
        print_sub(out, p, e->b, 2);
        fputs(" : ", out);
        print_sub(out, p, e->cc, 1);
        break;
    case LE_CAST:
        fprintf(out, "%s(", lp_type_name(e->ty));
        print_expr(out, p, e->a);
        fputc(')', out);
        break;
    }
}

static void indent(FILE *out, int n) {
    for (int i = 0; i < n; i++) fputs("    ", out);
}

static void print_block(FILE *out, const LpProg *p, const LpStmt *s, int depth) {
    for (; s; s = s->next) {
        indent(out, depth);
        switch (s->kind) {
        case LS_LOOP:
            fprintf(out, "%sfor i%d in 0..", s->parallel ? "parallel " : "", s->var);
            if (s->trips) { /* runtime trip count, at most extent */
                fputs("min(", out);
                print_expr(out, p, s->trips);
                fprintf(out, ", %lld)", (long long)s->extent);
            } else {
                fprintf(out, "%lld", (long long)s->extent);
            }
            fprintf(out, "%s%s {\n", s->vectorize ? " vectorize" : "",
                    s->epilogue ? " epilogue" : "");
            print_block(out, p, s->body, depth + 1);
            indent(out, depth);
            fputs("}\n", out);
            break;
        case LS_LOCAL:
            fprintf(out, "%s s%d = ", lp_type_name(s->ty), s->var);
            print_expr(out, p, s->value);
            fputc('\n', out);
            break;
        case LS_SET:
            fprintf(out, "s%d = ", s->var);
            print_expr(out, p, s->value);
            fputc('\n', out);
            break;
        case LS_GEMM: { /* t2[off] = gemm(4x5x3, in0[off] lda 3, in1[off]^T ldb 3) ldc 5 */
            const LpGemm *g = s->gemm;
            fprintf(out, "%s[", p->bufs[g->c].name);
            print_expr(out, p, g->coff);
            fprintf(out, "] %s= %sgemm(%lldx%lldx%lld, %s[", g->acc ? "+" : "", g->q ? "q" : "",
                    (long long)g->m, (long long)g->n, (long long)g->k, p->bufs[g->a].name);
            print_expr(out, p, g->aoff);
            fprintf(out, "]%s lda %lld, %s%s[", g->ta ? "^T" : "", (long long)g->lda,
                    g->gather ? "gather " : "", p->bufs[g->b].name);
            print_expr(out, p, g->boff);
            if (g->gather) /* rows, columns: dims [d0, d1] strides (s0, s1, s2) */
                fprintf(out, "] rows [%lld,%lld](%lld,%lld,%lld) cols [%lld,%lld](%lld,%lld,%lld))",
                        (long long)g->rdim[0], (long long)g->rdim[1], (long long)g->rstr[0],
                        (long long)g->rstr[1], (long long)g->rstr[2], (long long)g->cdim[0],
                        (long long)g->cdim[1], (long long)g->cstr[0], (long long)g->cstr[1],
                        (long long)g->cstr[2]);
            else
                fprintf(out, "]%s ldb %lld)", g->tb ? "^T" : "", (long long)g->ldb);
            fprintf(out, " ldc %lld", (long long)g->ldc);
            if (g->ocols > 0) /* C's columns in runs of ocols, ostride apart */
                fprintf(out, " runs %lld stride %lld", (long long)g->ocols, (long long)g->ostride);
            fputc('\n', out);
            break;
        }
        case LS_STORE:
            fprintf(out, "%s[", p->bufs[s->buf].name);
            print_expr(out, p, s->index);
            fputs("] = ", out);
            print_expr(out, p, s->value);
            fputc('\n', out);
            break;
        case LS_CHECK:
            fputs("check 0 <= ", out);
            print_expr(out, p, s->value);
            fprintf(out, " < %lld  # %%%d\n", (long long)s->extent, p->check_node[s->check]);
            break;
        }
    }
}

/* " %4 = exp, fused: %2 broadcast %3 sub": what a kernel computes */
static void print_computes(FILE *out, const LpKernel *k, const IrGraph *g) {
    if (k->node < 0) {
        fputs(" copy", out);
        return;
    }
    if (!g) return;
    fprintf(out, " %%%d = %s", k->node, ir_ops[ir_node(g, k->node)->op].name);
    if (k->nfused) {
        fputs(", fused:", out);
        for (int j = 0; j < k->nfused; j++)
            fprintf(out, " %%%d %s", k->fused[j], ir_ops[ir_node(g, k->fused[j])->op].name);
    }
}

void lp_print(FILE *out, const LpProg *p, const IrGraph *g) {
    char sb[192];
    fprintf(out, "# buffers\n");
    for (int i = 0; i < p->nbufs; i++) {
        const LpBuf *b = &p->bufs[i];
        fprintf(out, "#   %-6s %s%s", b->name, dtype_name(b->dtype),
                shape_str(&b->shape, sb, sizeof sb));
        if (b->kind == LB_INPUT)
            fprintf(out, "  input %d", b->slot);
        else if (b->kind == LB_OUTPUT)
            fprintf(out, "  output %d", b->slot);
        else
            fprintf(out, "  temp at workspace+%lld", (long long)b->offset);
        if (b->node >= 0) fprintf(out, "  (%%%d)", b->node);
        fputc('\n', out);
    }
    fprintf(out,
            "# workspace: %lld bytes, %d kernels (planned; lower bound %lld, %lld without "
            "reuse)\n",
            (long long)p->workspace, p->nkernels, (long long)p->ws_lower,
            (long long)p->ws_unplanned);
    for (int i = 0; i < p->nkernels; i++) {
        const LpKernel *k = &p->kernels[i];
        fprintf(out, "\nkernel %s", k->name);
        if (g || k->node < 0) {
            fputs("  #", out);
            print_computes(out, k, g);
            for (int j = 0; j < k->nmerged; j++) {
                fputc(';', out);
                print_computes(out, &k->merged[j], g);
            }
        }
        fputs(" {\n", out);
        print_block(out, p, k->body, 1);
        fputs("}\n", out);
    }
}
