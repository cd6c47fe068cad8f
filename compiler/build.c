/* build.c - graph builders with NumPy semantics.
 *
 * The IR's elementwise ops want identical shapes and dtypes; these builders
 * make them so, the way NumPy would:
 *   - broadcasting: shapes are aligned on the right, a missing or size-1 dim
 *     stretches to the other's size ([3, 1] + [4] -> [3, 4]). An operand of
 *     lower rank gets a RESHAPE adding leading 1s, then a BROADCAST;
 *   - promotion: i8 < i32 < f32, by CAST; OPF_FLOAT ops cast ints to f32;
 *   - negative axes count from the end.
 * Everything is checked before the first node is added, so a failed call
 * leaves the graph as it was. No-op nodes are never made: broadcasting to the
 * same shape, casting to the same dtype, reshaping to the same shape or an
 * identity permute return the input's id.
 */
#include "build.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SB 192

int build_fail(IrGraph *g, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err, sizeof g->err, fmt, ap);
    va_end(ap);
    return -1;
}

bool build_valid(IrGraph *g, const char *what, int id) {
    if (id >= 0 && id < g->n) return true;
    build_fail(g, "%s: operand %%%d is not a node of the graph (%d nodes)", what, id, g->n);
    return false;
}

static const Shape *shp(const IrGraph *g, int id) {
    return &g->nodes[id].shape;
}
static DType dt(const IrGraph *g, int id) {
    return g->nodes[id].dtype;
}

/* i8 < i32 < f32 */
static int dtype_rank(DType t) {
    return t == TY_F32 ? 2 : t == TY_I32 ? 1 : 0;
}
static DType promote(DType a, DType b) {
    return dtype_rank(a) >= dtype_rank(b) ? a : b;
}

/* NumPy broadcast of a and b into out; false if some dims clash. */
static bool broadcast_shapes(const Shape *a, const Shape *b, Shape *out) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    Shape s = {0};
    s.ndim = nd;
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t x = ia >= 0 ? a->d[ia] : 1, y = ib >= 0 ? b->d[ib] : 1;
        if (x != y && x != 1 && y != 1) return false;
        s.d[i] = x == 1 ? y : x;
    }
    *out = s;
    return true;
}

/* Can a broadcast to s (NumPy broadcast_to rules)? */
static bool broadcastable_to(const Shape *a, const Shape *s) {
    if (a->ndim > s->ndim) return false;
    int off = s->ndim - a->ndim;
    for (int i = 0; i < a->ndim; i++)
        if (a->d[i] != 1 && a->d[i] != s->d[i + off]) return false;
    return true;
}

/* Unchecked building blocks: the callers have validated everything. */

static int add1(IrGraph *g, OpKind op, int a, const IrAttr *attr, SrcLoc loc) {
    return ir_add(g, op, &a, 1, attr, loc);
}

static int cast_to(IrGraph *g, int a, DType to, SrcLoc loc) {
    if (dt(g, a) == to) return a;
    IrAttr at = {0};
    at.dtype = to;
    return add1(g, OP_CAST, a, &at, loc);
}

static int reshape_to(IrGraph *g, int a, const Shape *s, SrcLoc loc) {
    if (shape_eq(shp(g, a), s)) return a;
    IrAttr at = {0};
    at.shape = *s;
    return add1(g, OP_RESHAPE, a, &at, loc);
}

/* a must be broadcastable to s. */
static int expand_to(IrGraph *g, int a, const Shape *s, SrcLoc loc) {
    const Shape *as = shp(g, a);
    if (shape_eq(as, s)) return a;
    if (as->ndim < s->ndim) {
        Shape r = {0};
        r.ndim = s->ndim;
        int off = s->ndim - as->ndim;
        for (int i = 0; i < s->ndim; i++) r.d[i] = i < off ? 1 : as->d[i - off];
        a = reshape_to(g, a, &r, loc);
        if (a < 0 || shape_eq(shp(g, a), s)) return a;
    }
    IrAttr at = {0};
    at.shape = *s;
    return add1(g, OP_BROADCAST, a, &at, loc);
}

/* -- elementwise -- */

int ir_unary(IrGraph *g, OpKind op, int a, SrcLoc loc) {
    if ((int)op < 0 || op >= OP__COUNT || ir_ops[op].arity != 1 ||
        !(ir_ops[op].flags & OPF_ELEMWISE) || op == OP_CAST)
        return build_fail(g, "ir_unary: op %d is not an elementwise unary op", (int)op);
    const char *name = ir_ops[op].name;
    if (!build_valid(g, name, a)) return -1;
    if (ir_ops[op].flags & OPF_FLOAT) a = cast_to(g, a, TY_F32, loc);
    if (a < 0) return -1;
    return add1(g, op, a, NULL, loc);
}

/* Brings the operands ids[0..n) to one shape and (from `first` on) one
 * dtype. Checks everything before adding a node. */
static bool unify(IrGraph *g, const char *name, int *ids, int n, int first, bool float_only,
                  SrcLoc loc) {
    for (int i = 0; i < n; i++)
        if (!build_valid(g, name, ids[i])) return false;
    Shape s = *shp(g, ids[0]);
    for (int i = 1; i < n; i++) {
        Shape t;
        if (!broadcast_shapes(&s, shp(g, ids[i]), &t)) {
            char sa[SB], sb[SB];
            /* name the two operands that clash */
            int j = 0;
            while (j < i && broadcast_shapes(shp(g, ids[j]), shp(g, ids[i]), &t)) j++;
            if (j == i) j = 0;
            build_fail(g, "%s: cannot broadcast %s and %s", name, shape_str(shp(g, ids[j]), sa, SB),
                       shape_str(shp(g, ids[i]), sb, SB));
            return false;
        }
        s = t;
    }
    DType t = dt(g, ids[first]);
    for (int i = first + 1; i < n; i++) t = promote(t, dt(g, ids[i]));
    if (float_only) t = TY_F32;
    for (int i = 0; i < n; i++) {
        if (i >= first) ids[i] = cast_to(g, ids[i], t, loc);
        if (ids[i] < 0) return false;
        ids[i] = expand_to(g, ids[i], &s, loc);
        if (ids[i] < 0) return false;
    }
    return true;
}

int ir_binary(IrGraph *g, OpKind op, int a, int b, SrcLoc loc) {
    if ((int)op < 0 || op >= OP__COUNT || ir_ops[op].arity != 2 ||
        !(ir_ops[op].flags & OPF_ELEMWISE))
        return build_fail(g, "ir_binary: op %d is not an elementwise binary op", (int)op);
    int ids[2] = {a, b};
    if (!unify(g, ir_ops[op].name, ids, 2, 0, (ir_ops[op].flags & OPF_FLOAT) != 0, loc)) return -1;
    return ir_add(g, op, ids, 2, NULL, loc);
}

int ir_where(IrGraph *g, int cond, int a, int b, SrcLoc loc) {
    int ids[3] = {cond, a, b};
    if (!unify(g, "where", ids, 3, 1, false, loc)) return -1;
    return ir_add(g, OP_WHERE, ids, 3, NULL, loc);
}

int ir_cast(IrGraph *g, int a, DType to, SrcLoc loc) {
    if (!build_valid(g, "cast", a)) return -1;
    if ((int)to < 0 || to >= TY__COUNT) return build_fail(g, "cast: unknown dtype %d", (int)to);
    return cast_to(g, a, to, loc);
}

/* -- reductions -- */

/* Normalizes a possibly negative axis of a rank-nd tensor; -1 if out of range. */
static int norm_axis(int axis, int nd) {
    if (axis < 0) axis += nd;
    return axis >= 0 && axis < nd ? axis : -1;
}

int ir_reduce(IrGraph *g, OpKind op, int a, const int *axes, int naxes, bool keepdims, SrcLoc loc) {
    if ((int)op < 0 || op >= OP__COUNT || ir_ops[op].shape != ir_ops[OP_SUM].shape)
        return build_fail(g, "ir_reduce: op %d is not a reduction over axes", (int)op);
    const char *name = ir_ops[op].name;
    if (!build_valid(g, name, a)) return -1;
    const Shape *s = shp(g, a);
    char sa[SB];
    uint32_t mask = 0;
    if (naxes <= 0) {
        mask = s->ndim ? (uint32_t)((1ull << s->ndim) - 1) : 0;
    } else {
        for (int i = 0; i < naxes; i++) {
            int ax = norm_axis(axes[i], s->ndim);
            if (ax < 0)
                return build_fail(g, "%s: axis %d out of range for %s", name, axes[i],
                                  shape_str(s, sa, SB));
            if (mask >> ax & 1u) return build_fail(g, "%s: axis %d repeated", name, axes[i]);
            mask |= 1u << ax;
        }
    }
    if (!mask) return a; /* a scalar: nothing to reduce */
    IrAttr at = {0};
    at.axes = mask;
    at.keepdims = keepdims;
    return add1(g, op, a, &at, loc);
}

int ir_argmax(IrGraph *g, int a, int axis, bool keepdims, SrcLoc loc) {
    if (!build_valid(g, "argmax", a)) return -1;
    const Shape *s = shp(g, a);
    int ax = norm_axis(axis, s->ndim);
    if (ax < 0) {
        char sa[SB];
        return build_fail(g, "argmax: axis %d out of range for %s", axis, shape_str(s, sa, SB));
    }
    IrAttr at = {0};
    at.axis = ax;
    at.keepdims = keepdims;
    return add1(g, OP_ARGMAX, a, &at, loc);
}

/* -- movement -- */

int ir_reshape(IrGraph *g, int a, Shape s, SrcLoc loc) {
    if (!build_valid(g, "reshape", a)) return -1;
    const Shape *from = shp(g, a);
    char sa[SB], sb[SB];
    if (s.ndim < 0 || s.ndim > IR_MAXDIM)
        return build_fail(g, "reshape: rank %d out of range (at most %d dimensions)", s.ndim,
                          IR_MAXDIM);
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < s.ndim; i++) {
        if (s.d[i] == -1) {
            if (infer >= 0) return build_fail(g, "reshape: only one dimension can be -1");
            infer = i;
        } else if (s.d[i] < 0) {
            return build_fail(g, "reshape: negative dimension %lld", (long long)s.d[i]);
        } else {
            if (__builtin_mul_overflow(known, s.d[i], &known)) known = INT64_MAX;
        }
    }
    int64_t numel = shape_numel(from);
    if (infer >= 0) {
        if (known == 0 || numel % known != 0) {
            shape_str(&s, sb, SB);
            return build_fail(g, "reshape: cannot reshape %s (%lld elements) to %s",
                              shape_str(from, sa, SB), (long long)numel, sb);
        }
        s.d[infer] = numel / known;
    }
    Shape t = shape_make(s.ndim, s.d);
    if (shape_numel(&t) != numel)
        return build_fail(g, "reshape: cannot reshape %s (%lld elements) to %s (%lld elements)",
                          shape_str(from, sa, SB), (long long)numel, shape_str(&t, sb, SB),
                          (long long)shape_numel(&t));
    return reshape_to(g, a, &t, loc);
}

int ir_permute(IrGraph *g, int a, const int *perm, SrcLoc loc) {
    if (!build_valid(g, "permute", a)) return -1;
    int nd = shp(g, a)->ndim;
    IrAttr at = {0};
    bool seen[IR_MAXDIM] = {0}, ok = true, ident = true;
    for (int i = 0; i < nd; i++) {
        int p = norm_axis(perm[i], nd);
        if (p < 0 || seen[p]) ok = false;
        if (p >= 0) seen[p] = true;
        at.perm[i] = p;
        ident = ident && p == i;
    }
    if (!ok) {
        char buf[SB];
        size_t n = 0;
        for (int i = 0; i < nd && n < SB; i++)
            n += (size_t)snprintf(buf + n, SB - n, "%s%d", i ? ", " : "", perm[i]);
        if (!nd) buf[0] = 0;
        return build_fail(g, "permute: [%s] is not a permutation of %d axes", buf, nd);
    }
    if (ident) return a;
    return add1(g, OP_PERMUTE, a, &at, loc);
}

int ir_transpose(IrGraph *g, int a, int d0, int d1, SrcLoc loc) {
    if (!build_valid(g, "transpose", a)) return -1;
    const Shape *s = shp(g, a);
    int x = norm_axis(d0, s->ndim), y = norm_axis(d1, s->ndim);
    if (x < 0 || y < 0) {
        char sa[SB];
        return build_fail(g, "transpose: axis %d out of range for %s", x < 0 ? d0 : d1,
                          shape_str(s, sa, SB));
    }
    int perm[IR_MAXDIM];
    for (int i = 0; i < s->ndim; i++) perm[i] = i;
    perm[x] = y;
    perm[y] = x;
    return ir_permute(g, a, perm, loc);
}

int ir_broadcast_to(IrGraph *g, int a, Shape s, SrcLoc loc) {
    if (!build_valid(g, "broadcast_to", a)) return -1;
    char sa[SB], sb[SB];
    if (s.ndim < 0 || s.ndim > IR_MAXDIM)
        return build_fail(g, "broadcast_to: rank %d out of range (at most %d dimensions)", s.ndim,
                          IR_MAXDIM);
    for (int i = 0; i < s.ndim; i++)
        if (s.d[i] < 0)
            return build_fail(g, "broadcast_to: negative dimension %lld", (long long)s.d[i]);
    Shape t = shape_make(s.ndim, s.d);
    if (!broadcastable_to(shp(g, a), &t))
        return build_fail(g, "broadcast_to: cannot broadcast %s to %s",
                          shape_str(shp(g, a), sa, SB), shape_str(&t, sb, SB));
    return expand_to(g, a, &t, loc);
}

/* Python's slice.indices for a positive step. */
static int64_t clamp_index(int64_t i, int64_t dim) {
    if (i < 0) i += dim;
    if (i < 0) i = 0;
    if (i > dim) i = dim;
    return i;
}

int ir_slice(IrGraph *g, int a, const IrSliceDim *dims, int ndims, SrcLoc loc) {
    if (!build_valid(g, "slice", a)) return -1;
    const Shape *s = shp(g, a);
    char sa[SB];
    if (ndims < 0 || ndims > s->ndim)
        return build_fail(g, "slice: too many indices (%d) for %s", ndims, shape_str(s, sa, SB));
    IrAttr at = {0};
    bool full = true;
    for (int i = 0; i < s->ndim; i++) {
        int64_t d = s->d[i], b = 0, e = d, st = 1;
        if (i < ndims) {
            const IrSliceDim *x = &dims[i];
            if (x->has_step) st = x->step;
            if (st < 1)
                return build_fail(g, "slice: step must be positive, got %lld", (long long)st);
            if (x->has_start) b = clamp_index(x->start, d);
            if (x->has_stop) e = clamp_index(x->stop, d);
            if (e < b) e = b;
        }
        at.start[i] = b;
        at.stop[i] = e;
        at.step[i] = st;
        int64_t out = e > b ? (e - b + st - 1) / st : 0;
        full = full && out == d && b == 0;
    }
    if (full) return a;
    return add1(g, OP_SLICE, a, &at, loc);
}

int ir_concat(IrGraph *g, const int *ins, int n, int axis, SrcLoc loc) {
    if (n < 1) return build_fail(g, "concat: needs at least one operand");
    for (int i = 0; i < n; i++)
        if (!build_valid(g, "concat", ins[i])) return -1;
    const Shape *s0 = shp(g, ins[0]);
    char sa[SB], sb[SB];
    int ax = norm_axis(axis, s0->ndim);
    if (ax < 0)
        return build_fail(g, "concat: axis %d out of range for %s", axis, shape_str(s0, sa, SB));
    DType t = dt(g, ins[0]);
    for (int k = 1; k < n; k++) {
        const Shape *s = shp(g, ins[k]);
        if (s->ndim != s0->ndim)
            return build_fail(g, "concat: shapes %s and %s have different ranks",
                              shape_str(s0, sa, SB), shape_str(s, sb, SB));
        for (int i = 0; i < s->ndim; i++)
            if (i != ax && s->d[i] != s0->d[i])
                return build_fail(g, "concat: shapes %s and %s differ outside axis %d",
                                  shape_str(s0, sa, SB), shape_str(s, sb, SB), ax);
        t = promote(t, dt(g, ins[k]));
    }
    if (n == 1) return ins[0];
    int buf[16], *ids = n <= 16 ? buf : tt_xmalloc((size_t)n * sizeof *ids);
    int r = -1;
    for (int k = 0; k < n; k++) {
        ids[k] = cast_to(g, ins[k], t, loc);
        if (ids[k] < 0) goto done;
    }
    IrAttr at = {0};
    at.axis = ax;
    r = ir_add(g, OP_CONCAT, ids, n, &at, loc);
done:
    if (ids != buf) free(ids);
    return r;
}

/* -- matmul, gather -- */

int ir_matmul(IrGraph *g, int a, int b, SrcLoc loc) {
    if (!build_valid(g, "matmul", a) || !build_valid(g, "matmul", b)) return -1;
    Shape x = *shp(g, a), y = *shp(g, b);
    /* the shapes as given, as text only for an error (traced on every step) */
    char sa[SB], sb[SB];
#define SHAPES (shape_str(shp(g, a), sa, SB), shape_str(shp(g, b), sb, SB))
    if (x.ndim < 1 || y.ndim < 1)
        return SHAPES, build_fail(g, "matmul: operands must have at least 1 dimension, got %s @ %s",
                                  sa, sb);
    bool avec = x.ndim == 1, bvec = y.ndim == 1;
    if (avec) x = shape_make(2, (int64_t[]){1, x.d[0]});
    if (bvec) y = shape_make(2, (int64_t[]){y.d[0], 1});
    int64_t k1 = x.d[x.ndim - 1], k2 = y.d[y.ndim - 2];
    if (k1 != k2)
        return SHAPES, build_fail(g, "matmul shape mismatch: %s @ %s (inner %lld != %lld)", sa, sb,
                                  (long long)k1, (long long)k2);
    Shape ba = shape_make(x.ndim - 2, x.d), bb = shape_make(y.ndim - 2, y.d), batch;
    if (!broadcast_shapes(&ba, &bb, &batch))
        return SHAPES,
               build_fail(g, "matmul: cannot broadcast batch dimensions of %s @ %s", sa, sb);
    if (batch.ndim + 2 > IR_MAXDIM)
        return SHAPES, build_fail(g, "matmul: too many dimensions in %s @ %s", sa, sb);
#undef SHAPES
    Shape tx = batch, ty = batch;
    tx.ndim = ty.ndim = batch.ndim + 2;
    tx.d[batch.ndim] = x.d[x.ndim - 2];
    tx.d[batch.ndim + 1] = k1;
    ty.d[batch.ndim] = k2;
    ty.d[batch.ndim + 1] = y.d[y.ndim - 1];

    if ((a = cast_to(g, a, TY_F32, loc)) < 0 || (b = cast_to(g, b, TY_F32, loc)) < 0) return -1;
    if ((a = reshape_to(g, a, &x, loc)) < 0 || (b = reshape_to(g, b, &y, loc)) < 0) return -1;
    if ((a = expand_to(g, a, &tx, loc)) < 0 || (b = expand_to(g, b, &ty, loc)) < 0) return -1;
    int ids[2] = {a, b};
    int r = ir_add(g, OP_MATMUL, ids, 2, NULL, loc);
    if (r < 0 || (!avec && !bvec)) return r;
    /* drop the dims the 1-D operands gained */
    Shape out = batch;
    if (!avec) out.d[out.ndim++] = tx.d[batch.ndim];
    if (!bvec) out.d[out.ndim++] = ty.d[batch.ndim + 1];
    return reshape_to(g, r, &out, loc);
}

int ir_gather(IrGraph *g, int table, int idx, SrcLoc loc) {
    if (!build_valid(g, "gather", table) || !build_valid(g, "gather", idx)) return -1;
    char sa[SB], sb[SB];
    if (dt(g, idx) == TY_F32)
        return build_fail(g, "gather: indices must be i32, got %s", dtype_name(dt(g, idx)));
    const Shape *t = shp(g, table), *ix = shp(g, idx);
    if (t->ndim < 1)
        return build_fail(g, "gather: table must have at least 1 dimension, got %s",
                          shape_str(t, sa, SB));
    if (ix->ndim + t->ndim - 1 > IR_MAXDIM)
        return build_fail(g, "gather: result of table %s and indices %s has too many dimensions",
                          shape_str(t, sa, SB), shape_str(ix, sb, SB));
    if ((idx = cast_to(g, idx, TY_I32, loc)) < 0) return -1;
    int ids[2] = {table, idx};
    return ir_add(g, OP_GATHER, ids, 2, NULL, loc);
}

int ir_conv2d(IrGraph *g, int x, int w, int bias, const IrWindow *win, SrcLoc loc) {
    if (!build_valid(g, "conv2d", x) || !build_valid(g, "conv2d", w)) return -1;
    if (bias >= 0) { /* checked first: a failed call adds nothing */
        if (!build_valid(g, "conv2d", bias)) return -1;
        const Shape *bs = shp(g, bias), *ws = shp(g, w);
        char sa[SB], sb[SB];
        if (dt(g, bias) != TY_F32)
            return build_fail(g, "conv2d: bias must be f32, got %s", dtype_name(dt(g, bias)));
        if (ws->ndim == 4 && (bs->ndim != 1 || bs->d[0] != ws->d[0]))
            return build_fail(
                g, "conv2d: bias %s does not match the %lld output channels of weight %s",
                shape_str(bs, sa, SB), (long long)ws->d[0], shape_str(ws, sb, SB));
    }
    IrAttr at;
    memset(&at, 0, sizeof at);
    at.win = *win;
    int in[2] = {x, w};
    int y = ir_add(g, OP_CONV2D, in, 2, &at, loc);
    if (y < 0 || bias < 0) return y;
    int64_t O = shp(g, bias)->d[0];
    int b = ir_reshape(g, bias, (Shape){3, {O, 1, 1}}, loc);
    if (b < 0) return -1;
    return ir_binary(g, OP_ADD, y, b, loc);
}

int ir_pool2d(IrGraph *g, OpKind op, int x, const IrWindow *win, SrcLoc loc) {
    TT_ASSERT(op == OP_MAX_POOL2D || op == OP_AVG_POOL2D);
    if (!build_valid(g, ir_ops[op].name, x)) return -1;
    IrAttr at;
    memset(&at, 0, sizeof at);
    at.win = *win;
    return ir_add(g, op, &x, 1, &at, loc);
}
