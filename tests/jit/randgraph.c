/* randgraph.c - random valid graphs (see randgraph.h). */
#include "randgraph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NUMEL 600 /* keeps every tensor, and the whole test, small */
#define MAX_MAG   1e6

uint64_t rg_next(RgRng *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int rg_int(RgRng *r, int lo, int hi) {
    return lo + (int)(rg_next(r) % (uint64_t)(hi - lo + 1));
}

double rg_unif(RgRng *r, double lo, double hi) {
    return lo + (hi - lo) * (double)(rg_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

typedef struct Gen {
    RgGraph *rg;
    RgRng r;
} Gen;

static const SrcLoc noloc = {0};

static IrNode *nd(Gen *G, int id) {
    return &G->rg->g.nodes[id];
}

static bool is_f(Gen *G, int id) {
    return nd(G, id)->dtype == TY_F32;
}

static double dmax(double a, double b) {
    return a > b ? a : b;
}

/* mag, scale and exactness of node id from its inputs */
static void infer(Gen *G, int id) {
    RgGraph *rg = G->rg;
    const IrNode *n = nd(G, id);
    double m0 = 0, s0 = 0, m1 = 0, s1 = 0, m = 0, s = 0;
    bool ex = true;
    for (int k = 0; k < n->nin; k++) {
        ex = ex && rg->exact[n->in[k]];
        m = dmax(m, rg->mag[n->in[k]]);
        s = dmax(s, rg->scale[n->in[k]]);
    }
    if (n->nin > 0) m0 = rg->mag[n->in[0]], s0 = rg->scale[n->in[0]];
    if (n->nin > 1) m1 = rg->mag[n->in[1]], s1 = rg->scale[n->in[1]];
    bool fl = n->dtype == TY_F32;
    switch (n->op) {
    case OP_INPUT:
        m = dmax(fabs(rg->in_lo[n->attr.index]), fabs(rg->in_hi[n->attr.index]));
        s = m;
        break;
    case OP_CONST:
        m = s = fabs(n->attr.value);
        break;
    case OP_EXP:
        m = exp(m0);
        s = m * dmax(1, s0);
        ex = false;
        break;
    case OP_LOG:
        m = log(dmax(m0, 1)) + 1;
        s = dmax(1, s0);
        ex = false;
        break;
    case OP_SQRT:
        m = sqrt(m0);
        s = dmax(1, s0);
        ex = false;
        break;
    case OP_RSQRT:
        m = 1;
        s = dmax(1, s0);
        ex = false;
        break;
    case OP_TANH:
    case OP_SIGMOID:
    case OP_SIN:
    case OP_COS:
        m = 1;
        s = dmax(1, s0);
        ex = false;
        break;
    case OP_ADD:
    case OP_SUB:
        m = m0 + m1;
        s = s0 + s1;
        ex = ex && !fl;
        break;
    case OP_MUL:
        m = m0 * m1;
        s = s0 * dmax(1, m1) + s1 * dmax(1, m0);
        ex = ex && !fl;
        break;
    case OP_DIV:
        m = m0;
        s = s0 + m0 * s1;
        ex = ex && !fl;
        break;
    case OP_POW:
        m = (m0 + 1) * (m0 + 1);
        s = m * (s0 + s1 * (1 + log(m0 + 1)) + 1);
        ex = false;
        break;
    case OP_EQ:
    case OP_NE:
    case OP_LT:
    case OP_LE:
    case OP_GT:
    case OP_GE:
        m = s = 1;
        break;
    case OP_SUM: {
        const Shape *is = &nd(G, n->in[0])->shape;
        double cnt = (double)shape_numel(is) / dmax(1, (double)shape_numel(&n->shape));
        m = m0 * cnt;
        s = s0 * cnt;
        break;
    }
    case OP_ARGMAX:
        m = s = (double)(nd(G, n->in[0])->shape.ndim ? nd(G, n->in[0])->shape.d[n->attr.axis] : 1);
        break;
    case OP_MATMUL: {
        const Shape *as = &nd(G, n->in[0])->shape;
        double k = (double)as->d[as->ndim - 1];
        m = m0 * m1 * k;
        s = (s0 * dmax(1, m1) + s1 * dmax(1, m0)) * dmax(1, k);
        ex = false;
        break;
    }
    case OP_SCATTER_ADD: {
        double cnt = (double)shape_numel(&nd(G, n->in[1])->shape);
        m = m0 * dmax(1, cnt);
        s = s0 * dmax(1, cnt);
        break;
    }
    case OP_GATHER:
        m = m0;
        s = s0;
        break;
    default: /* neg abs relu max min where rmax movement cast: as the inputs */
        break;
    }
    if (n->dtype == TY_I32 && m > 2147483648.0) m = 2147483648.0;
    if (n->dtype == TY_I8 && m > 128) m = 128;
    if (!fl) s = m;
    rg->mag[id] = m;
    rg->scale[id] = dmax(s, m);
    rg->exact[id] = ex;
}

static void grow(Gen *G) {
    RgGraph *rg = G->rg;
    if (rg->g.n <= rg->cap) return;
    int cap = rg->g.n * 2 + 16;
    rg->mag = realloc(rg->mag, (size_t)cap * sizeof *rg->mag);
    rg->scale = realloc(rg->scale, (size_t)cap * sizeof *rg->scale);
    rg->exact = realloc(rg->exact, (size_t)cap * sizeof *rg->exact);
    rg->cap = cap;
}

/* Records the nodes a builder added (result r, or -1: nothing was added). */
static int done(Gen *G, int first, int r) {
    grow(G);
    for (int i = first; i < G->rg->g.n; i++) infer(G, i);
    return r;
}

static Shape rand_shape(Gen *G, int maxrank) {
    Shape s = {0};
    s.ndim = rg_int(&G->r, 0, maxrank);
    for (int i = 0; i < s.ndim; i++) s.d[i] = rg_int(&G->r, 0, 3) == 0 ? 1 : rg_int(&G->r, 1, 5);
    return s;
}

static int new_input(Gen *G, DType dt, Shape s, double lo, double hi) {
    RgGraph *rg = G->rg;
    int slot = rg->g.ninputs;
    if (slot >= rg->incap) {
        rg->incap = 2 * slot + 8;
        rg->in_lo = realloc(rg->in_lo, (size_t)rg->incap * sizeof *rg->in_lo);
        rg->in_hi = realloc(rg->in_hi, (size_t)rg->incap * sizeof *rg->in_hi);
    }
    rg->in_lo[slot] = lo;
    rg->in_hi[slot] = hi;
    int first = rg->g.n;
    return done(G, first, ir_input(&rg->g, dt, s, NULL, noloc));
}

static DType rand_dtype(Gen *G) {
    int x = rg_int(&G->r, 0, 9);
    return x < 7 ? TY_F32 : x < 9 ? TY_I32 : TY_I8;
}

static int rand_input(Gen *G) {
    DType dt = rand_dtype(G);
    return new_input(G, dt, rand_shape(G, 3), dt == TY_F32 ? -2 : -20, dt == TY_F32 ? 2 : 20);
}

/* A recent node most of the time, so chains grow deep. */
static int pick(Gen *G) {
    int n = G->rg->g.n;
    if (rg_int(&G->r, 0, 1)) return n - 1 - rg_int(&G->r, 0, n > 3 ? 2 : n - 1);
    return rg_int(&G->r, 0, n - 1);
}

static int pick_exact(Gen *G) {
    for (int t = 0; t < 8; t++) {
        int id = pick(G);
        if (G->rg->exact[id]) return id;
    }
    return rand_input(G);
}

/* Builder wrappers that record the nodes they add. */
static int un(Gen *G, OpKind op, int a) {
    int f = G->rg->g.n;
    return a < 0 ? -1 : done(G, f, ir_unary(&G->rg->g, op, a, noloc));
}
static int bin(Gen *G, OpKind op, int a, int b) {
    int f = G->rg->g.n;
    return a < 0 || b < 0 ? -1 : done(G, f, ir_binary(&G->rg->g, op, a, b, noloc));
}
static int cnst(Gen *G, DType dt, double v) {
    int f = G->rg->g.n;
    return done(G, f, ir_const(&G->rg->g, dt, shape_scalar(), v, noloc));
}

/* x with |x| <= limit (tanh when it could be larger) */
static int tame(Gen *G, int x, double limit) {
    if (x < 0 || G->rg->mag[x] <= limit) return x;
    return un(G, OP_TANH, x);
}

/* x + 1 with x >= 0: |x| + 1, always f32 */
static int abs1(Gen *G, int x) {
    x = un(G, OP_ABS, x);
    if (x >= 0 && !is_f(G, x)) {
        int f = G->rg->g.n;
        x = done(G, f, ir_cast(&G->rg->g, x, TY_F32, noloc));
    }
    return bin(G, OP_ADD, x, cnst(G, TY_F32, 1));
}

/* A partner for a binary op: an existing node or a new input whose shape
 * broadcasts against a's. */
static int partner(Gen *G, int a, bool exact) {
    if (rg_int(&G->r, 0, 1)) {
        int b = exact ? pick_exact(G) : pick(G);
        return b;
    }
    Shape s = nd(G, a)->shape, t = {0};
    int drop = rg_int(&G->r, 0, s.ndim); /* keep a suffix, some dims as 1 */
    for (int i = drop; i < s.ndim; i++) t.d[t.ndim++] = rg_int(&G->r, 0, 3) == 0 ? 1 : s.d[i];
    if (rg_int(&G->r, 0, 4) == 0 && s.ndim < 4) { /* or a longer one */
        memmove(t.d + 1, t.d, (size_t)t.ndim * sizeof t.d[0]);
        t.d[0] = rg_int(&G->r, 1, 3);
        t.ndim++;
    }
    DType dt = rand_dtype(G);
    return new_input(G, dt, t, dt == TY_F32 ? -2 : -20, dt == TY_F32 ? 2 : 20);
}

static bool too_big(Gen *G, int id) {
    return id >= 0 && shape_numel(&nd(G, id)->shape) > MAX_NUMEL;
}

static int op_unary_float(Gen *G) {
    static const OpKind ops[] = {OP_EXP,  OP_LOG,     OP_SQRT, OP_RSQRT,
                                 OP_TANH, OP_SIGMOID, OP_SIN,  OP_COS};
    OpKind op = ops[rg_int(&G->r, 0, 7)];
    int x = pick(G);
    switch (op) {
    case OP_EXP:
        return un(G, op, tame(G, x, 8));
    case OP_LOG:
    case OP_SQRT:
    case OP_RSQRT:
        return un(G, op, abs1(G, x));
    default:
        return un(G, op, x);
    }
}

static int op_binary(Gen *G) {
    static const OpKind ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAX, OP_MIN, OP_POW};
    OpKind op = ops[rg_int(&G->r, 0, 6)];
    int a = pick(G), b = partner(G, a, false);
    switch (op) {
    case OP_MUL:
        return bin(G, op, tame(G, a, 1e3), tame(G, b, 1e3));
    case OP_DIV:
        if (!is_f(G, a) && !is_f(G, b) && rg_int(&G->r, 0, 1)) return bin(G, op, a, b); /* int */
        return bin(G, op, tame(G, a, 1e3), abs1(G, tame(G, b, 1e3)));
    case OP_POW: {
        int e = un(G, OP_TANH, b);
        e = bin(G, OP_MUL, e, cnst(G, TY_F32, 2));
        return bin(G, op, abs1(G, tame(G, a, 100)), e);
    }
    default:
        return bin(G, op, tame(G, a, MAX_MAG), tame(G, b, MAX_MAG));
    }
}

static int op_compare(Gen *G) {
    OpKind op = (OpKind)(OP_EQ + rg_int(&G->r, 0, 5));
    int a = pick_exact(G);
    if (rg_int(&G->r, 0, 2) == 0) return bin(G, op, a, a);
    return bin(G, op, a, partner(G, a, true));
}

static int op_where(Gen *G) {
    int c = pick_exact(G), a = pick(G), b = partner(G, a, false);
    int f = G->rg->g.n;
    if (b < 0) return -1;
    return done(G, f, ir_where(&G->rg->g, c, a, b, noloc));
}

static int op_cast(Gen *G) {
    int x = pick(G);
    DType to = (DType)rg_int(&G->r, 0, 2);
    if (is_f(G, x) && to != TY_F32 && !G->rg->exact[x]) x = pick_exact(G);
    int f = G->rg->g.n;
    return done(G, f, ir_cast(&G->rg->g, x, to, noloc));
}

static int op_reduce(Gen *G) {
    int x = pick(G), f = G->rg->g.n;
    Shape sv = nd(G, x)->shape; /* a copy: builders move the nodes */
    const Shape *s = &sv;
    int axes[IR_MAXDIM], na = 0;
    for (int i = 0; i < s->ndim; i++)
        if (rg_int(&G->r, 0, 1)) axes[na++] = rg_int(&G->r, 0, 1) ? i : i - s->ndim;
    bool keep = rg_int(&G->r, 0, 1);
    if (rg_int(&G->r, 0, 1)) {
        x = tame(G, x, 1e4);
        return done(G, f, ir_reduce(&G->rg->g, OP_SUM, x, axes, na, keep, noloc));
    }
    return done(G, f, ir_reduce(&G->rg->g, OP_RMAX, x, axes, na, keep, noloc));
}

static int op_argmax(Gen *G) {
    int x = pick_exact(G), f = G->rg->g.n;
    int nd0 = nd(G, x)->shape.ndim;
    if (nd0 == 0) return -1;
    return done(G, f,
                ir_argmax(&G->rg->g, x, rg_int(&G->r, -nd0, nd0 - 1), rg_int(&G->r, 0, 1), noloc));
}

static int op_movement(Gen *G) {
    int x = pick(G), f = G->rg->g.n;
    IrGraph *g = &G->rg->g;
    Shape s = nd(G, x)->shape;
    switch (rg_int(&G->r, 0, 3)) {
    case 0: { /* reshape: merge two neighbours, split one, or flatten */
        Shape t = s;
        int how = rg_int(&G->r, 0, 2);
        if (how == 0 && s.ndim >= 2) {
            int i = rg_int(&G->r, 0, s.ndim - 2);
            t.d[i] *= t.d[i + 1];
            memmove(t.d + i + 1, t.d + i + 2, (size_t)(s.ndim - i - 2) * sizeof t.d[0]);
            t.ndim--;
        } else if (how == 1 && s.ndim < 5) {
            int i = rg_int(&G->r, 0, s.ndim);
            memmove(t.d + i + 1, t.d + i, (size_t)(s.ndim - i) * sizeof t.d[0]);
            t.d[i] = 1;
            t.ndim++;
            if (i < s.ndim && s.d[i] % 2 == 0) { /* split d into [2, d/2] */
                t.d[i] = 2;
                t.d[i + 1] = s.d[i] / 2;
            }
        } else {
            t.ndim = 1;
            t.d[0] = -1;
        }
        return done(G, f, ir_reshape(g, x, t, noloc));
    }
    case 1: {
        int perm[IR_MAXDIM];
        for (int i = 0; i < s.ndim; i++) perm[i] = i;
        for (int i = s.ndim - 1; i > 0; i--) {
            int j = rg_int(&G->r, 0, i), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        return done(G, f, ir_permute(g, x, perm, noloc));
    }
    case 2: {
        Shape t = s;
        for (int i = 0; i < t.ndim; i++)
            if (t.d[i] == 1) t.d[i] = rg_int(&G->r, 1, 4);
        if (t.ndim < 4 && rg_int(&G->r, 0, 1)) {
            memmove(t.d + 1, t.d, (size_t)t.ndim * sizeof t.d[0]);
            t.d[0] = rg_int(&G->r, 1, 3);
            t.ndim++;
        }
        return done(G, f, ir_broadcast_to(g, x, t, noloc));
    }
    default: {
        IrSliceDim d[IR_MAXDIM] = {0};
        for (int i = 0; i < s.ndim; i++) {
            d[i].has_start = rg_int(&G->r, 0, 1);
            d[i].start = rg_int(&G->r, -(int)s.d[i], (int)s.d[i]);
            d[i].has_stop = rg_int(&G->r, 0, 1);
            d[i].stop = rg_int(&G->r, -(int)s.d[i], (int)s.d[i]);
            d[i].has_step = rg_int(&G->r, 0, 1);
            d[i].step = rg_int(&G->r, 1, 3);
        }
        return done(G, f, ir_slice(g, x, d, s.ndim, noloc));
    }
    }
}

static int op_pad(Gen *G) {
    int x = pick(G), f = G->rg->g.n;
    Shape sv = nd(G, x)->shape; /* a copy: builders move the nodes */
    const Shape *s = &sv;
    IrAttr at = {0};
    at.shape = *s;
    for (int i = 0; i < s->ndim; i++) {
        at.start[i] = rg_int(&G->r, 0, 2);
        at.step[i] = rg_int(&G->r, 1, 2);
        at.shape.d[i] = at.start[i] + (s->d[i] - 1) * at.step[i] + 1 + rg_int(&G->r, 0, 2);
        if (s->d[i] == 0) at.shape.d[i] = at.start[i];
    }
    return done(G, f, ir_add(&G->rg->g, OP_PAD, &x, 1, &at, noloc));
}

static int op_concat(Gen *G) {
    int a = pick(G), f = G->rg->g.n;
    Shape sv = nd(G, a)->shape; /* a copy: builders move the nodes */
    const Shape *s = &sv;
    if (s->ndim == 0) return -1;
    int ax = rg_int(&G->r, 0, s->ndim - 1);
    int ins[3] = {a, a, a}, n = rg_int(&G->r, 2, 3);
    for (int k = 1; k < n; k++) {
        if (rg_int(&G->r, 0, 1)) continue; /* a itself */
        Shape t = *s;
        t.d[ax] = rg_int(&G->r, 1, 3);
        DType dt = rand_dtype(G);
        ins[k] = new_input(G, dt, t, dt == TY_F32 ? -2 : -20, dt == TY_F32 ? 2 : 20);
    }
    f = G->rg->g.n;
    return done(G, f,
                ir_concat(&G->rg->g, ins, n, ax - (rg_int(&G->r, 0, 1) ? s->ndim : 0), noloc));
}

static int op_matmul(Gen *G) {
    int a = tame(G, pick(G), 100), f;
    if (a < 0) return -1;
    Shape sv = nd(G, a)->shape; /* a copy: builders move the nodes */
    const Shape *s = &sv;
    if (s->ndim == 0) return -1;
    int b;
    if (s->ndim >= 2 && rg_int(&G->r, 0, 2) == 0) { /* a @ a^T */
        f = G->rg->g.n;
        b = done(G, f, ir_transpose(&G->rg->g, a, -1, -2, noloc));
    } else {
        Shape t = {0};
        int64_t k = s->d[s->ndim - 1];
        if (rg_int(&G->r, 0, 3) == 0) {
            t.ndim = 1;
            t.d[0] = k;
        } else {
            for (int i = 0; i + 2 < s->ndim && rg_int(&G->r, 0, 1); i++) t.d[t.ndim++] = s->d[i];
            t.d[t.ndim++] = k;
            t.d[t.ndim++] = rg_int(&G->r, 1, 5);
        }
        b = new_input(G, TY_F32, t, -2, 2);
        if (rg_int(&G->r, 0, 1)) b = un(G, OP_TANH, b); /* an inexact operand */
    }
    f = G->rg->g.n;
    return done(G, f, ir_matmul(&G->rg->g, a, b, noloc));
}

/* The range of an index input for an axis of V: in range, but one graph in
 * eight gets -1..V, so that both backends also meet (and must report
 * alike) indices out of range. */
static void index_range(Gen *G, int64_t V, double *lo, double *hi) {
    bool bad = V == 0 || rg_int(&G->r, 0, 7) == 0;
    *lo = bad ? -1 : 0;
    *hi = bad ? (double)V : (double)(V - 1);
}

static int op_gather(Gen *G) {
    int t = pick(G), f;
    Shape sv = nd(G, t)->shape; /* a copy: builders move the nodes */
    const Shape *s = &sv;
    if (s->ndim == 0) return -1;
    Shape is = rand_shape(G, 2);
    double lo, hi;
    index_range(G, s->d[0], &lo, &hi);
    int idx = new_input(G, TY_I32, is, lo, hi);
    f = G->rg->g.n;
    return done(G, f, ir_gather(&G->rg->g, t, idx, noloc));
}

static int op_scatter(Gen *G) {
    int src = pick(G), f;
    Shape sv = nd(G, src)->shape; /* a copy: builders move the nodes */
    const Shape *s = &sv;
    if (s->ndim == 0) return -1;
    int ni = rg_int(&G->r, 0, s->ndim < 2 ? s->ndim : 2);
    IrAttr at = {0};
    Shape is = {0};
    for (int i = 0; i < ni; i++) is.d[is.ndim++] = s->d[i];
    at.shape.ndim = 1 + s->ndim - ni;
    at.shape.d[0] = rg_int(&G->r, 1, 4);
    for (int i = ni; i < s->ndim; i++) at.shape.d[1 + i - ni] = s->d[i];
    double lo, hi;
    index_range(G, at.shape.d[0], &lo, &hi);
    int idx = new_input(G, TY_I32, is, lo, hi);
    int ins[2] = {src, idx};
    f = G->rg->g.n;
    return done(G, f, ir_add(&G->rg->g, OP_SCATTER_ADD, ins, 2, &at, noloc));
}

void rg_build(RgGraph *rg, uint64_t seed, int max_ops) {
    memset(rg, 0, sizeof *rg);
    ir_init(&rg->g);
    Gen G = {rg, {seed * 0x2545f4914f6cdd1dull + 1}};
    int nin = rg_int(&G.r, 1, 3);
    for (int i = 0; i < nin; i++) rand_input(&G);
    int nops = rg_int(&G.r, 1, max_ops);
    for (int i = 0; i < nops; i++) {
        int before = rg->g.n, w = rg_int(&G.r, 0, 99), r;
        if (w < 14)
            r = op_unary_float(&G);
        else if (w < 20)
            r = un(&G,
                   (OpKind)(rg_int(&G.r, 0, 2) == 0 ? OP_NEG
                            : rg_int(&G.r, 0, 1)    ? OP_ABS
                                                    : OP_RELU),
                   pick(&G));
        else if (w < 38)
            r = op_binary(&G);
        else if (w < 43)
            r = op_compare(&G);
        else if (w < 47)
            r = op_where(&G);
        else if (w < 52)
            r = op_cast(&G);
        else if (w < 61)
            r = op_reduce(&G);
        else if (w < 64)
            r = op_argmax(&G);
        else if (w < 79)
            r = op_movement(&G);
        else if (w < 82)
            r = op_pad(&G);
        else if (w < 86)
            r = op_concat(&G);
        else if (w < 92)
            r = op_matmul(&G);
        else if (w < 96)
            r = op_gather(&G);
        else
            r = op_scatter(&G);
        (void)r;
        /* drop what got too big: graphs stay small and fast */
        bool big = false;
        for (int k = before; k < rg->g.n; k++) big = big || too_big(&G, k);
        if (big) {
            rg->g.n = before; /* the builders only append nodes */
            int slots = 0;
            for (int k = 0; k < rg->g.n; k++)
                if (rg->g.nodes[k].op == OP_INPUT) slots++;
            rg->g.ninputs = slots;
        }
    }
    /* outputs: the last node, sometimes a few more (an input, a repeat) */
    int n = rg->g.n;
    ir_mark_output(&rg->g, n - 1);
    int extra = rg_int(&G.r, 0, 2);
    for (int k = 0; k < extra; k++) ir_mark_output(&rg->g, rg_int(&G.r, 0, n - 1));
}

void rg_free(RgGraph *rg) {
    ir_free(&rg->g);
    free(rg->mag);
    free(rg->scale);
    free(rg->exact);
    free(rg->in_lo);
    free(rg->in_hi);
    memset(rg, 0, sizeof *rg);
}

void **rg_make_inputs(const RgGraph *rg, uint64_t seed) {
    RgRng r = {seed ^ 0x5deece66dull};
    int n = rg->g.ninputs;
    void **in = calloc((size_t)n + 1, sizeof *in);
    for (int i = 0; i < rg->g.n; i++) {
        const IrNode *x = &rg->g.nodes[i];
        if (x->op != OP_INPUT) continue;
        int slot = x->attr.index;
        int64_t len = shape_numel(&x->shape);
        double lo = rg->in_lo[slot], hi = rg->in_hi[slot];
        in[slot] = malloc((size_t)(len ? len : 1) * dtype_size(x->dtype));
        for (int64_t k = 0; k < len; k++) {
            switch (x->dtype) {
            case TY_F32:
                ((float *)in[slot])[k] = (float)rg_unif(&r, lo, hi);
                break;
            case TY_I32:
                ((int32_t *)in[slot])[k] = rg_int(&r, (int)lo, (int)hi);
                break;
            default:
                ((int8_t *)in[slot])[k] = (int8_t)rg_int(&r, (int)lo, (int)hi);
            }
        }
    }
    return in;
}

void rg_free_inputs(const RgGraph *rg, void **in) {
    for (int i = 0; i < rg->g.ninputs; i++) free(in[i]);
    free(in);
}
