/* shape.c - the shape rules and FLOP rules named in ops.def.
 *
 * shape_<rule>(g, n, err, errlen) checks node n (its op, inputs and
 * attributes; n need not be in g yet) against the graph g, and sets
 * n->shape and n->dtype. It never trusts its input: a bad id, dtype, rank or
 * attribute is an error message, never an assertion, because ir_add is
 * reachable from user programs. Messages name the op and the shapes and have
 * no trailing newline.
 *
 * flops_<rule>(g, n) counts the floating-point operations of a node.
 */
#include "ir.h"

#include <stdio.h>
#include <string.h>

#define OP(NAME, name, arity, flags, form, shape, flops, tol, attrs)                               \
    bool shape_##shape(const IrGraph *g, IrNode *n, char *err, size_t errlen);                     \
    int64_t flops_##flops(const IrGraph *g, const IrNode *n);
#include "ops.def"
#undef OP

#define SB 192 /* room for shape_str of any valid shape */

static const char *opname(const IrNode *n) {
    return ir_ops[n->op].name;
}
static const IrNode *input(const IrGraph *g, const IrNode *n, int i) {
    return &g->nodes[n->in[i]];
}
static const Shape *ishape(const IrGraph *g, const IrNode *n, int i) {
    return &g->nodes[n->in[i]].shape;
}
static bool dtype_ok(DType t) {
    return (int)t >= 0 && t < TY__COUNT;
}

/* Arity and input ids: the part every rule shares. */
static bool check_inputs(const IrGraph *g, const IrNode *n, char *err, size_t errlen) {
    int arity = ir_ops[n->op].arity;
    if (arity >= 0 && n->nin != arity)
        return tt_errf(err, errlen, "%s: expects %d input%s, got %d", opname(n), arity,
                       arity == 1 ? "" : "s", n->nin);
    if (arity < 0 && n->nin < 1)
        return tt_errf(err, errlen, "%s: expects at least 1 input, got %d", opname(n), n->nin);
    for (int i = 0; i < n->nin; i++)
        if (n->in[i] < 0 || n->in[i] >= g->n)
            return tt_errf(err, errlen, "%s: input %d is %%%d, not a node of the graph (%d nodes)",
                           opname(n), i, n->in[i], g->n);
    return true;
}

/* A shape an attribute carries: rank within IR_MAXDIM, no negative dim. */
static bool check_shape(const IrNode *n, const Shape *s, char *err, size_t errlen) {
    if (s->ndim < 0 || s->ndim > IR_MAXDIM)
        return tt_errf(err, errlen, "%s: rank %d out of range (at most %d dimensions)", opname(n),
                       s->ndim, IR_MAXDIM);
    for (int i = 0; i < s->ndim; i++)
        if (s->d[i] < 0)
            return tt_errf(err, errlen, "%s: negative dimension %lld in shape", opname(n),
                           (long long)s->d[i]);
    return true;
}

/* The most elements a tensor may have: keeps every size and FLOP count far
 * from int64 overflow. */
#define MAX_NUMEL (INT64_C(1) << 48)

static bool set_result(IrNode *n, DType t, const Shape *s, char *err, size_t errlen) {
    if (shape_numel(s) > MAX_NUMEL) {
        char sa[SB];
        return tt_errf(err, errlen, "%s: result shape %s has too many elements", opname(n),
                       shape_str(s, sa, SB));
    }
    n->dtype = t;
    n->shape = shape_make(s->ndim, s->d);
    return true;
}

/* -- leaves -- */

bool shape_leaf(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    if (!dtype_ok(n->attr.dtype))
        return tt_errf(err, errlen, "%s: unknown dtype %d", opname(n), (int)n->attr.dtype);
    if (!check_shape(n, &n->attr.shape, err, errlen)) return false;
    if (n->op == OP_INPUT && n->attr.index < 0)
        return tt_errf(err, errlen, "input: negative slot %d", n->attr.index);
    return set_result(n, n->attr.dtype, &n->attr.shape, err, errlen);
}

/* -- elementwise -- */

bool shape_unary(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    const IrNode *a = input(g, n, 0);
    if ((ir_ops[n->op].flags & OPF_FLOAT) && a->dtype != TY_F32)
        return tt_errf(err, errlen, "%s: expects f32, got %s", opname(n), dtype_name(a->dtype));
    return set_result(n, a->dtype, &a->shape, err, errlen);
}

static bool same_shapes(const IrGraph *g, const IrNode *n, int i, int j, char *err, size_t errlen) {
    const Shape *a = ishape(g, n, i), *b = ishape(g, n, j);
    if (shape_eq(a, b)) return true;
    char sa[SB], sb[SB];
    return tt_errf(err, errlen, "%s: input shapes %s and %s differ", opname(n),
                   shape_str(a, sa, SB), shape_str(b, sb, SB));
}

static bool same_dtypes(const IrGraph *g, const IrNode *n, int i, int j, char *err, size_t errlen) {
    DType a = input(g, n, i)->dtype, b = input(g, n, j)->dtype;
    if (a == b) return true;
    return tt_errf(err, errlen, "%s: input dtypes %s and %s differ", opname(n), dtype_name(a),
                   dtype_name(b));
}

bool shape_binary(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    if (!same_shapes(g, n, 0, 1, err, errlen) || !same_dtypes(g, n, 0, 1, err, errlen))
        return false;
    const IrNode *a = input(g, n, 0);
    if ((ir_ops[n->op].flags & OPF_FLOAT) && a->dtype != TY_F32)
        return tt_errf(err, errlen, "%s: expects f32, got %s", opname(n), dtype_name(a->dtype));
    return set_result(n, a->dtype, &a->shape, err, errlen);
}

bool shape_compare(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    if (!same_shapes(g, n, 0, 1, err, errlen) || !same_dtypes(g, n, 0, 1, err, errlen))
        return false;
    return set_result(n, TY_F32, ishape(g, n, 0), err, errlen);
}

bool shape_where(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    if (!same_shapes(g, n, 0, 1, err, errlen) || !same_shapes(g, n, 1, 2, err, errlen) ||
        !same_dtypes(g, n, 1, 2, err, errlen))
        return false;
    return set_result(n, input(g, n, 1)->dtype, ishape(g, n, 1), err, errlen);
}

bool shape_cast(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    if (!dtype_ok(n->attr.dtype))
        return tt_errf(err, errlen, "cast: unknown dtype %d", (int)n->attr.dtype);
    return set_result(n, n->attr.dtype, ishape(g, n, 0), err, errlen);
}

/* -- reductions -- */

bool shape_reduce(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    const IrNode *a = input(g, n, 0);
    char sa[SB];
    for (int i = 0; i < 32; i++)
        if ((n->attr.axes >> i & 1u) && i >= a->shape.ndim)
            return tt_errf(err, errlen, "%s: axis %d out of range for %s", opname(n), i,
                           shape_str(&a->shape, sa, SB));
    Shape s = {0};
    for (int i = 0; i < a->shape.ndim; i++) {
        if (n->attr.axes >> i & 1u) {
            if (n->op == OP_RMAX && a->shape.d[i] == 0)
                return tt_errf(err, errlen, "rmax: cannot reduce empty axis %d of %s", i,
                               shape_str(&a->shape, sa, SB));
            if (n->attr.keepdims) s.d[s.ndim++] = 1;
        } else {
            s.d[s.ndim++] = a->shape.d[i];
        }
    }
    return set_result(n, a->dtype, &s, err, errlen);
}

bool shape_argmax(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    const IrNode *a = input(g, n, 0);
    char sa[SB];
    int ax = n->attr.axis;
    if (ax < 0 || ax >= a->shape.ndim)
        return tt_errf(err, errlen, "argmax: axis %d out of range for %s", ax,
                       shape_str(&a->shape, sa, SB));
    if (a->shape.d[ax] == 0)
        return tt_errf(err, errlen, "argmax: cannot reduce empty axis %d of %s", ax,
                       shape_str(&a->shape, sa, SB));
    Shape s = {0};
    for (int i = 0; i < a->shape.ndim; i++) {
        if (i != ax)
            s.d[s.ndim++] = a->shape.d[i];
        else if (n->attr.keepdims)
            s.d[s.ndim++] = 1;
    }
    return set_result(n, TY_I32, &s, err, errlen);
}

/* argsort, cumsum: the input's shape along attr.axis (argsort: i32) */
bool shape_scan(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    const IrNode *a = input(g, n, 0);
    char sa[SB];
    int ax = n->attr.axis;
    if (ax < 0 || ax >= a->shape.ndim)
        return tt_errf(err, errlen, "%s: axis %d out of range for %s", opname(n), ax,
                       shape_str(&a->shape, sa, SB));
    return set_result(n, n->op == OP_ARGSORT ? TY_I32 : a->dtype, &a->shape, err, errlen);
}

/* -- movement -- */

bool shape_reshape(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    if (!check_shape(n, &n->attr.shape, err, errlen)) return false;
    const IrNode *a = input(g, n, 0);
    int64_t from = shape_numel(&a->shape), to = shape_numel(&n->attr.shape);
    if (from != to) {
        char sa[SB], sb[SB];
        return tt_errf(err, errlen,
                       "reshape: cannot reshape %s (%lld elements) to %s (%lld elements)",
                       shape_str(&a->shape, sa, SB), (long long)from,
                       shape_str(&n->attr.shape, sb, SB), (long long)to);
    }
    return set_result(n, a->dtype, &n->attr.shape, err, errlen);
}

bool shape_permute(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    const IrNode *a = input(g, n, 0);
    int nd = a->shape.ndim;
    bool seen[IR_MAXDIM] = {0};
    Shape s = {0};
    s.ndim = nd;
    for (int i = 0; i < nd; i++) {
        int p = n->attr.perm[i];
        if (p < 0 || p >= nd || seen[p]) {
            char buf[SB];
            size_t at = 0;
            for (int j = 0; j < nd && at < SB; j++)
                at += (size_t)snprintf(buf + at, SB - at, "%s%d", j ? ", " : "", n->attr.perm[j]);
            return tt_errf(err, errlen, "permute: [%s] is not a permutation of %d axes", buf, nd);
        }
        seen[p] = true;
        s.d[i] = a->shape.d[p];
    }
    return set_result(n, a->dtype, &s, err, errlen);
}

bool shape_broadcast(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    if (!check_shape(n, &n->attr.shape, err, errlen)) return false;
    const IrNode *a = input(g, n, 0);
    const Shape *to = &n->attr.shape;
    bool ok = a->shape.ndim == to->ndim;
    for (int i = 0; ok && i < to->ndim; i++) ok = a->shape.d[i] == to->d[i] || a->shape.d[i] == 1;
    if (!ok) {
        char sa[SB], sb[SB];
        return tt_errf(err, errlen, "broadcast: cannot broadcast %s to %s",
                       shape_str(&a->shape, sa, SB), shape_str(to, sb, SB));
    }
    return set_result(n, a->dtype, to, err, errlen);
}

bool shape_slice(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    const IrNode *a = input(g, n, 0);
    Shape s = {0};
    s.ndim = a->shape.ndim;
    for (int i = 0; i < s.ndim; i++) {
        int64_t d = a->shape.d[i], b = n->attr.start[i], e = n->attr.stop[i], st = n->attr.step[i];
        if (st < 1)
            return tt_errf(err, errlen, "slice: step must be positive, got %lld", (long long)st);
        if (b < 0 || b > d || e < 0 || e > d) {
            char sa[SB];
            return tt_errf(err, errlen, "slice: bounds %lld:%lld out of range for axis %d of %s",
                           (long long)b, (long long)e, i, shape_str(&a->shape, sa, SB));
        }
        s.d[i] = e > b ? (e - b + st - 1) / st : 0;
    }
    return set_result(n, a->dtype, &s, err, errlen);
}

bool shape_pad(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    if (!check_shape(n, &n->attr.shape, err, errlen)) return false;
    const IrNode *a = input(g, n, 0);
    const Shape *to = &n->attr.shape;
    char sa[SB], sb[SB];
    if (a->shape.ndim != to->ndim)
        return tt_errf(err, errlen, "pad: cannot pad %s to %s (ranks differ)",
                       shape_str(&a->shape, sa, SB), shape_str(to, sb, SB));
    for (int i = 0; i < to->ndim; i++) {
        int64_t d = a->shape.d[i], b = n->attr.start[i], st = n->attr.step[i];
        if (st < 1)
            return tt_errf(err, errlen, "pad: step must be positive, got %lld", (long long)st);
        int64_t last = d > 0 ? b + (d - 1) * st : b - 1; /* last index written */
        if (b < 0 || last >= to->d[i])
            return tt_errf(err, errlen,
                           "pad: %s placed at start %lld step %lld does not fit in %s on axis %d",
                           shape_str(&a->shape, sa, SB), (long long)b, (long long)st,
                           shape_str(to, sb, SB), i);
    }
    return set_result(n, a->dtype, to, err, errlen);
}

bool shape_concat(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    const IrNode *a = input(g, n, 0);
    int ax = n->attr.axis;
    char sa[SB], sb[SB];
    if (ax < 0 || ax >= a->shape.ndim)
        return tt_errf(err, errlen, "concat: axis %d out of range for %s", ax,
                       shape_str(&a->shape, sa, SB));
    Shape s = a->shape;
    for (int k = 1; k < n->nin; k++) {
        const IrNode *b = input(g, n, k);
        if (b->dtype != a->dtype)
            return tt_errf(err, errlen, "concat: input dtypes %s and %s differ",
                           dtype_name(a->dtype), dtype_name(b->dtype));
        if (b->shape.ndim != a->shape.ndim)
            return tt_errf(err, errlen, "concat: shapes %s and %s have different ranks",
                           shape_str(&a->shape, sa, SB), shape_str(&b->shape, sb, SB));
        for (int i = 0; i < s.ndim; i++)
            if (i != ax && b->shape.d[i] != a->shape.d[i])
                return tt_errf(err, errlen, "concat: shapes %s and %s differ outside axis %d",
                               shape_str(&a->shape, sa, SB), shape_str(&b->shape, sb, SB), ax);
        if (__builtin_add_overflow(s.d[ax], b->shape.d[ax], &s.d[ax])) s.d[ax] = INT64_MAX;
    }
    return set_result(n, a->dtype, &s, err, errlen);
}

/* -- matmul, gather, scatter -- */

bool shape_matmul(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    const IrNode *a = input(g, n, 0), *b = input(g, n, 1);
    const Shape *x = &a->shape, *y = &b->shape;
    /* the shapes as text, only for an error (traced on every step) */
    char sa[SB], sb[SB];
#define SHAPES (shape_str(x, sa, SB), shape_str(y, sb, SB))
    if (a->dtype != TY_F32 || b->dtype != TY_F32)
        return tt_errf(err, errlen, "matmul: expects f32 operands, got %s and %s",
                       dtype_name(a->dtype), dtype_name(b->dtype));
    if (x->ndim < 2 || y->ndim < 2)
        return SHAPES, tt_errf(err, errlen,
                               "matmul: operands need at least 2 dimensions, got %s @ %s", sa, sb);
    if (x->ndim != y->ndim)
        return SHAPES, tt_errf(err, errlen, "matmul: operand ranks differ: %s @ %s", sa, sb);
    int r = x->ndim;
    for (int i = 0; i < r - 2; i++)
        if (x->d[i] != y->d[i])
            return SHAPES, tt_errf(err, errlen, "matmul: batch dimensions differ: %s @ %s", sa, sb);
    if (x->d[r - 1] != y->d[r - 2])
        return SHAPES, tt_errf(err, errlen, "matmul shape mismatch: %s @ %s (inner %lld != %lld)",
                               sa, sb, (long long)x->d[r - 1], (long long)y->d[r - 2]);
#undef SHAPES
    Shape s = *x;
    s.d[r - 1] = y->d[r - 1];
    return set_result(n, TY_F32, &s, err, errlen);
}

bool shape_gather(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    const IrNode *t = input(g, n, 0), *ix = input(g, n, 1);
    char sa[SB], sb[SB];
    if (ix->dtype != TY_I32)
        return tt_errf(err, errlen, "gather: indices must be i32, got %s", dtype_name(ix->dtype));
    if (t->shape.ndim < 1)
        return tt_errf(err, errlen, "gather: table must have at least 1 dimension, got %s",
                       shape_str(&t->shape, sa, SB));
    int nd = ix->shape.ndim + t->shape.ndim - 1;
    if (nd > IR_MAXDIM)
        return tt_errf(err, errlen,
                       "gather: result of table %s and indices %s has %d dimensions (at most %d)",
                       shape_str(&t->shape, sa, SB), shape_str(&ix->shape, sb, SB), nd, IR_MAXDIM);
    Shape s = {0};
    for (int i = 0; i < ix->shape.ndim; i++) s.d[s.ndim++] = ix->shape.d[i];
    for (int i = 1; i < t->shape.ndim; i++) s.d[s.ndim++] = t->shape.d[i];
    return set_result(n, t->dtype, &s, err, errlen);
}

bool shape_scatter_add(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    if (!check_shape(n, &n->attr.shape, err, errlen)) return false;
    const IrNode *src = input(g, n, 0), *ix = input(g, n, 1);
    const Shape *to = &n->attr.shape;
    char sa[SB], sb[SB], sc[SB];
    if (ix->dtype != TY_I32)
        return tt_errf(err, errlen, "scatter_add: indices must be i32, got %s",
                       dtype_name(ix->dtype));
    if (to->ndim < 1)
        return tt_errf(err, errlen, "scatter_add: result shape must have at least 1 dimension");
    /* src must be idx.shape ++ to[1:] */
    bool ok = src->shape.ndim == ix->shape.ndim + to->ndim - 1;
    for (int i = 0; ok && i < ix->shape.ndim; i++) ok = src->shape.d[i] == ix->shape.d[i];
    for (int i = 1; ok && i < to->ndim; i++) ok = src->shape.d[ix->shape.ndim + i - 1] == to->d[i];
    if (!ok)
        return tt_errf(
            err, errlen, "scatter_add: source %s does not match indices %s and result %s",
            shape_str(&src->shape, sa, SB), shape_str(&ix->shape, sb, SB), shape_str(to, sc, SB));
    return set_result(n, src->dtype, to, err, errlen);
}

/* -- FLOP rules -- */

int64_t flops_zero(const IrGraph *g, const IrNode *n) {
    (void)g;
    (void)n;
    return 0;
}

/* One operation per element written (scatter_add: per source element). */
int64_t flops_elem(const IrGraph *g, const IrNode *n) {
    int64_t out = shape_numel(&n->shape);
    if (n->nin > 0) {
        int64_t in = shape_numel(&g->nodes[n->in[0]].shape);
        if (in > out) out = in;
    }
    return out;
}

/* One operation per input element. */
int64_t flops_reduce(const IrGraph *g, const IrNode *n) {
    return n->nin > 0 ? shape_numel(&g->nodes[n->in[0]].shape) : 0;
}

/* A multiply and an add per (batch, m, n, k). */
int64_t flops_matmul(const IrGraph *g, const IrNode *n) {
    const Shape *a = &g->nodes[n->in[0]].shape;
    int64_t f;
    if (__builtin_mul_overflow(2 * shape_numel(&n->shape), a->d[a->ndim - 1], &f)) return INT64_MAX;
    return f;
}

/* -- convolution and pooling -- */

/* Window parameters far from any overflow in the index arithmetic. */
#define MAX_WIN (INT64_C(1) << 30)

/* Writes "(a, b)" (a pair attribute as the user gave it). */
static const char *pair_str(const int64_t *v, char *buf, size_t len) {
    snprintf(buf, len, "(%lld, %lld)", (long long)v[0], (long long)v[1]);
    return buf;
}

/* Checks that every entry of the pair v is in [lo, MAX_WIN]. */
static bool check_pair(const IrNode *n, const char *arg, const int64_t *v, int64_t lo,
                       const char *ctx, char *err, size_t errlen) {
    char pb[64];
    for (int i = 0; i < 2; i++) {
        if (v[i] < lo)
            return tt_errf(err, errlen, "%s: %s must be %s, got %s%s", opname(n), arg,
                           lo > 0 ? "positive" : "non-negative", pair_str(v, pb, sizeof pb), ctx);
        if (v[i] > MAX_WIN)
            return tt_errf(err, errlen, "%s: %s %s is too large%s", opname(n), arg,
                           pair_str(v, pb, sizeof pb), ctx);
    }
    return true;
}

/* The output extent of a window of k taps, dilation d, sliding with stride s
 * over n elements padded by p on both sides (PyTorch's floor rule). 0 when
 * the dilated window is larger than the padded input. */
static int64_t window_out(int64_t n, int64_t k, int64_t s, int64_t p, int64_t d) {
    int64_t span = d * (k - 1) + 1;
    if (n + 2 * p < span) return 0;
    return (n + 2 * p - span) / s + 1;
}

/* The output shape of conv2d(x, w) with window win, or an error naming the
 * op, both shapes and the argument at fault. */
static bool conv_geometry(const IrNode *n, const Shape *xs, const Shape *ws, const IrWindow *win,
                          Shape *out, char *err, size_t errlen) {
    char sx[SB], sw[SB], ctx[2 * SB + 32], pb[64], pc[64];
    shape_str(xs, sx, SB);
    shape_str(ws, sw, SB);
    snprintf(ctx, sizeof ctx, " (x %s, weight %s)", sx, sw);
    if (xs->ndim != 4)
        return tt_errf(err, errlen, "%s: x must be 4-D [N, C, H, W], got %s (weight %s)", opname(n),
                       sx, sw);
    if (ws->ndim != 4)
        return tt_errf(err, errlen,
                       "%s: weight must be 4-D [out_channels, in_channels/groups, kh, kw], "
                       "got %s (x %s)",
                       opname(n), sw, sx);
    if (!check_pair(n, "stride", win->stride, 1, ctx, err, errlen) ||
        !check_pair(n, "padding", win->padding, 0, ctx, err, errlen) ||
        !check_pair(n, "dilation", win->dilation, 1, ctx, err, errlen))
        return false;
    int64_t G = win->groups, C = xs->d[1], O = ws->d[0];
    if (G < 1 || G > MAX_WIN)
        return tt_errf(err, errlen, "%s: groups must be positive, got %lld%s", opname(n),
                       (long long)G, ctx);
    if (C % G != 0)
        return tt_errf(err, errlen,
                       "%s: groups=%lld does not divide the %lld input channels of x %s "
                       "(weight %s)",
                       opname(n), (long long)G, (long long)C, sx, sw);
    if (O % G != 0)
        return tt_errf(
            err, errlen,
            "%s: groups=%lld does not divide the %lld output channels of weight %s (x %s)",
            opname(n), (long long)G, (long long)O, sw, sx);
    int64_t want;
    if (__builtin_mul_overflow(ws->d[1], G, &want) || want != C)
        return tt_errf(
            err, errlen,
            "%s: x %s has %lld channels but weight %s expects weight.shape[1] * groups = "
            "%lld * %lld",
            opname(n), sx, (long long)C, sw, (long long)ws->d[1], (long long)G);
    if (ws->d[2] < 1 || ws->d[3] < 1)
        return tt_errf(err, errlen, "%s: weight %s has an empty kernel (x %s)", opname(n), sw, sx);
    if (ws->d[2] > MAX_WIN || ws->d[3] > MAX_WIN)
        return tt_errf(err, errlen, "%s: weight %s has too large a kernel (x %s)", opname(n), sw,
                       sx);
    Shape s = {4, {xs->d[0], O, 0, 0}};
    for (int i = 0; i < 2; i++) {
        int64_t k = ws->d[2 + i], d = win->dilation[i], p = win->padding[i];
        s.d[2 + i] = window_out(xs->d[2 + i], k, win->stride[i], p, d);
        if (s.d[2 + i] == 0) {
            int64_t eff[2] = {win->dilation[0] * (ws->d[2] - 1) + 1,
                              win->dilation[1] * (ws->d[3] - 1) + 1};
            int64_t padded[2] = {xs->d[2] + 2 * win->padding[0], xs->d[3] + 2 * win->padding[1]};
            return tt_errf(err, errlen,
                           "%s: kernel %lldx%lld (dilated: %lldx%lld) is larger than the padded "
                           "input %lldx%lld (x %s, weight %s, padding %s, dilation %s)",
                           opname(n), (long long)ws->d[2], (long long)ws->d[3], (long long)eff[0],
                           (long long)eff[1], (long long)padded[0], (long long)padded[1], sx, sw,
                           pair_str(win->padding, pb, sizeof pb),
                           pair_str(win->dilation, pc, sizeof pc));
        }
    }
    *out = s;
    return true;
}

/* The output shape of a pooling of x with window win (PyTorch's rules:
 * padding at most half the kernel, floor of the output size). */
static bool pool_geometry(const IrNode *n, const Shape *xs, const IrWindow *win, Shape *out,
                          char *err, size_t errlen) {
    char sx[SB], ctx[SB + 16], pb[64], pc[64];
    shape_str(xs, sx, SB);
    snprintf(ctx, sizeof ctx, " (x %s)", sx);
    if (xs->ndim != 4)
        return tt_errf(err, errlen, "%s: x must be 4-D [N, C, H, W], got %s", opname(n), sx);
    if (xs->d[2] < 1 || xs->d[3] < 1)
        return tt_errf(err, errlen, "%s: x %s has an empty image (H and W must be positive)",
                       opname(n), sx);
    if (!check_pair(n, "kernel_size", win->kernel, 1, ctx, err, errlen) ||
        !check_pair(n, "stride", win->stride, 1, ctx, err, errlen) ||
        !check_pair(n, "padding", win->padding, 0, ctx, err, errlen))
        return false;
    for (int i = 0; i < 2; i++)
        if (win->padding[i] > win->kernel[i] / 2)
            return tt_errf(err, errlen, "%s: padding %s must be at most half the kernel_size %s%s",
                           opname(n), pair_str(win->padding, pb, sizeof pb),
                           pair_str(win->kernel, pc, sizeof pc), ctx);
    Shape s = {4, {xs->d[0], xs->d[1], 0, 0}};
    for (int i = 0; i < 2; i++) {
        s.d[2 + i] = window_out(xs->d[2 + i], win->kernel[i], win->stride[i], win->padding[i], 1);
        if (s.d[2 + i] == 0)
            return tt_errf(err, errlen,
                           "%s: kernel_size %s is larger than the padded input %lldx%lld (x %s, "
                           "padding %s)",
                           opname(n), pair_str(win->kernel, pb, sizeof pb),
                           (long long)(xs->d[2] + 2 * win->padding[0]),
                           (long long)(xs->d[3] + 2 * win->padding[1]), sx,
                           pair_str(win->padding, pc, sizeof pc));
    }
    *out = s;
    return true;
}

static bool want_f32(const IrNode *n, const IrNode *a, const char *arg, char *err, size_t errlen) {
    if (a->dtype == TY_F32) return true;
    return tt_errf(err, errlen, "%s: %s must be f32, got %s", opname(n), arg, dtype_name(a->dtype));
}

bool shape_conv2d(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    if (!want_f32(n, input(g, n, 0), "x", err, errlen) ||
        !want_f32(n, input(g, n, 1), "weight", err, errlen))
        return false;
    Shape s;
    if (!conv_geometry(n, ishape(g, n, 0), ishape(g, n, 1), &n->attr.win, &s, err, errlen))
        return false;
    return set_result(n, TY_F32, &s, err, errlen);
}

/* qconv2d: i8 operands, conv2d's geometry, an integer padding value that
 * fits i8 (the input zero point, which the kernels store as x's dtype) */
bool shape_qconv2d(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    for (int i = 0; i < 2; i++)
        if (input(g, n, i)->dtype != TY_I8)
            return tt_errf(err, errlen, "%s: %s must be i8, got %s", opname(n), i ? "weight" : "x",
                           dtype_name(input(g, n, i)->dtype));
    double v = n->attr.value;
    if (!(v >= -128 && v <= 127) || v != (double)(int)v)
        return tt_errf(err, errlen,
                       "%s: the padding value must be an integer in [-128, 127], got %g", opname(n),
                       v);
    Shape s;
    if (!conv_geometry(n, ishape(g, n, 0), ishape(g, n, 1), &n->attr.win, &s, err, errlen))
        return false;
    return set_result(n, TY_I32, &s, err, errlen);
}

/* A backward op's gradient input must have the shape of the forward
 * output: its attributes describe the forward op. */
static bool grad_matches(const IrNode *n, const char *arg, const Shape *got, const Shape *want,
                         char *err, size_t errlen) {
    if (shape_eq(got, want)) return true;
    char sa[SB], sb[SB];
    return tt_errf(err, errlen, "%s: %s %s does not match the forward output %s", opname(n), arg,
                   shape_str(got, sa, SB), shape_str(want, sb, SB));
}

bool shape_conv2d_backward_input(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    if (!check_shape(n, &n->attr.shape, err, errlen)) return false;
    if (!want_f32(n, input(g, n, 0), "grad_output", err, errlen) ||
        !want_f32(n, input(g, n, 1), "weight", err, errlen))
        return false;
    Shape y;
    if (!conv_geometry(n, &n->attr.shape, ishape(g, n, 1), &n->attr.win, &y, err, errlen) ||
        !grad_matches(n, "grad_output", ishape(g, n, 0), &y, err, errlen))
        return false;
    return set_result(n, TY_F32, &n->attr.shape, err, errlen);
}

bool shape_conv2d_backward_weight(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    if (!check_shape(n, &n->attr.shape, err, errlen)) return false;
    if (!want_f32(n, input(g, n, 0), "x", err, errlen) ||
        !want_f32(n, input(g, n, 1), "grad_output", err, errlen))
        return false;
    Shape y;
    if (!conv_geometry(n, ishape(g, n, 0), &n->attr.shape, &n->attr.win, &y, err, errlen) ||
        !grad_matches(n, "grad_output", ishape(g, n, 1), &y, err, errlen))
        return false;
    return set_result(n, TY_F32, &n->attr.shape, err, errlen);
}

/* max_pool2d (f32, or i8: a quantized model's), max_pool2d_index (i32, and
 * the index must fit), avg_pool2d */
bool shape_pool2d(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    bool i8 = n->op == OP_MAX_POOL2D && input(g, n, 0)->dtype == TY_I8;
    if (!i8 && !want_f32(n, input(g, n, 0), "x", err, errlen)) return false;
    Shape s;
    if (!pool_geometry(n, ishape(g, n, 0), &n->attr.win, &s, err, errlen)) return false;
    if (n->op == OP_MAX_POOL2D_INDEX && shape_numel(ishape(g, n, 0)) > INT32_MAX) {
        char sa[SB];
        return tt_errf(err, errlen, "%s: x %s has too many elements for i32 indices", opname(n),
                       shape_str(ishape(g, n, 0), sa, SB));
    }
    return set_result(n, n->op == OP_MAX_POOL2D_INDEX ? TY_I32 : input(g, n, 0)->dtype, &s, err,
                      errlen);
}

bool shape_avg_pool2d_backward(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    if (!check_shape(n, &n->attr.shape, err, errlen)) return false;
    if (!want_f32(n, input(g, n, 0), "grad_output", err, errlen)) return false;
    Shape y;
    if (!pool_geometry(n, &n->attr.shape, &n->attr.win, &y, err, errlen) ||
        !grad_matches(n, "grad_output", ishape(g, n, 0), &y, err, errlen))
        return false;
    return set_result(n, TY_F32, &n->attr.shape, err, errlen);
}

/* A multiply and an add per (n, o, oh, ow) and kernel tap (C/groups * kh *
 * kw of them); the same for both backward ops. */
int64_t flops_conv(const IrGraph *g, const IrNode *n) {
    const Shape *y, *w;
    if (n->op == OP_CONV2D || n->op == OP_QCONV2D) {
        y = &n->shape;
        w = &g->nodes[n->in[1]].shape;
    } else if (n->op == OP_CONV2D_BACKWARD_INPUT) {
        y = &g->nodes[n->in[0]].shape;
        w = &g->nodes[n->in[1]].shape;
    } else {
        y = &g->nodes[n->in[1]].shape;
        w = &n->shape;
    }
    int64_t taps = 0, f;
    if (w->ndim != 4 || __builtin_mul_overflow(w->d[1], w->d[2] * w->d[3], &taps) ||
        __builtin_mul_overflow(2 * shape_numel(y), taps, &f))
        return INT64_MAX;
    return f;
}

/* One operation per pooled element and window tap. */
int64_t flops_pool(const IrGraph *g, const IrNode *n) {
    const Shape *y = n->op == OP_AVG_POOL2D_BACKWARD ? &g->nodes[n->in[0]].shape : &n->shape;
    int64_t f;
    if (__builtin_mul_overflow(shape_numel(y), n->attr.win.kernel[0] * n->attr.win.kernel[1], &f))
        return INT64_MAX;
    return f;
}

/* -- INT8 quantization (issue 13) -- */

/* in0 of dtype want, scale f32 and zero point i32 of in0's shape */
static bool quant_inputs(const IrGraph *g, IrNode *n, DType want, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    DType t[3] = {want, TY_F32, TY_I32};
    static const char *const what[3] = {"input", "scale", "zero_point"};
    for (int i = 0; i < 3; i++)
        if (input(g, n, i)->dtype != t[i])
            return tt_errf(err, errlen, "%s: %s must be %s, got %s", opname(n), what[i],
                           dtype_name(t[i]), dtype_name(input(g, n, i)->dtype));
    return same_shapes(g, n, 0, 1, err, errlen) && same_shapes(g, n, 0, 2, err, errlen);
}

bool shape_quantize(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!quant_inputs(g, n, TY_F32, err, errlen)) return false;
    return set_result(n, TY_I8, ishape(g, n, 0), err, errlen);
}

bool shape_dequantize(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!quant_inputs(g, n, TY_I8, err, errlen)) return false;
    return set_result(n, TY_F32, ishape(g, n, 0), err, errlen);
}

bool shape_requantize(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!quant_inputs(g, n, TY_I32, err, errlen)) return false;
    if (n->attr.dtype != TY_I8 && n->attr.dtype != TY_F32)
        return tt_errf(err, errlen, "requantize: the result dtype must be i8 or f32, got %s",
                       dtype_ok(n->attr.dtype) ? dtype_name(n->attr.dtype) : "?");
    return set_result(n, n->attr.dtype, ishape(g, n, 0), err, errlen);
}

/* [..., m, k] @ [..., k, n], both i8, batch dims equal -> i32 */
bool shape_qmatmul(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_inputs(g, n, err, errlen)) return false;
    const IrNode *a = input(g, n, 0), *b = input(g, n, 1);
    const Shape *x = &a->shape, *y = &b->shape;
    char sa[SB], sb[SB];
#define SHAPES (shape_str(x, sa, SB), shape_str(y, sb, SB))
    if (a->dtype != TY_I8 || b->dtype != TY_I8)
        return tt_errf(err, errlen, "qmatmul: expects i8 operands, got %s and %s",
                       dtype_name(a->dtype), dtype_name(b->dtype));
    if (x->ndim < 2 || y->ndim < 2)
        return SHAPES, tt_errf(err, errlen,
                               "qmatmul: operands need at least 2 dimensions, got %s @ %s", sa, sb);
    if (x->ndim != y->ndim)
        return SHAPES, tt_errf(err, errlen, "qmatmul: operand ranks differ: %s @ %s", sa, sb);
    int r = x->ndim;
    for (int i = 0; i < r - 2; i++)
        if (x->d[i] != y->d[i])
            return SHAPES,
                   tt_errf(err, errlen, "qmatmul: batch dimensions differ: %s @ %s", sa, sb);
    if (x->d[r - 1] != y->d[r - 2])
        return SHAPES, tt_errf(err, errlen, "qmatmul shape mismatch: %s @ %s (inner %lld != %lld)",
                               sa, sb, (long long)x->d[r - 1], (long long)y->d[r - 2]);
#undef SHAPES
    Shape s = *x;
    s.d[r - 1] = y->d[r - 1];
    return set_result(n, TY_I32, &s, err, errlen);
}
