/* lower.c - graph IR -> loop IR.
 *
 * Every node reachable from the outputs is either
 *   - a leaf: INPUT reads the caller's buffer, CONST is a constant in the
 *     expressions that use it;
 *   - fused: its value is computed inside its single consumer's loop nest,
 *     at the index the consumer asks for (it never reaches memory);
 *   - a root: one kernel computes it into its buffer (the caller's output
 *     buffer when it is an output, else a temporary of the workspace).
 *
 * Fusion (fuse.c decides it before any kernel is built): a node is fused
 * into its consumer when it is elementwise or a pure index remap (reshape,
 * permute, broadcast, slice), is not an output, and is read once; a
 * consumer that reads each input element once (elementwise ops,
 * reductions, concat, pad, the source of scatter_add) takes any such
 * producer, one that reads elements several times (an expanding broadcast,
 * matmul, gather's table and indices) only index remaps. Views (remaps of
 * inputs and constants; broadcasts, reshapes and slices of anything) and
 * cheap elementwise values read by several elementwise kernels are
 * recomputed by each reader instead of stored. Reductions and matmuls are
 * never fused into anything, but a sum over a matmul's batch is one
 * product. A matmul calls the GEMM on its operands' buffers: the remaps
 * fused into it (a transpose, a broadcast batch) become strides and
 * transposition flags (lower_matmul).
 *
 * Indexing: value_at(node, idx) is the value of a node at a multi-index;
 * movement ops only rewrite the index (broadcast: 0 on stretched dims;
 * permute: reorder; slice: start + i*step; reshape: through the linear
 * index). When every load below a reshape addresses its buffer by the same
 * linear index (elementwise chains over dense buffers), the linear index is
 * passed down as is (flat_at) instead of being split into dims.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lower_internal.h"

static void strides(const Shape *s, int64_t *st) {
    int64_t acc = 1;
    for (int i = s->ndim - 1; i >= 0; i--) {
        st[i] = acc;
        acc *= s->d[i];
    }
}

static LpExpr *linearize(LpProg *p, LpExpr *const *idx, const Shape *s) {
    int64_t st[IR_MAXDIM];
    strides(s, st);
    LpExpr *e = lp_iconst(p, 0);
    for (int k = 0; k < s->ndim; k++) e = lp_iadd(p, e, lp_imul(p, idx[k], st[k]));
    return e;
}

static LpExpr *zero_of(LpProg *p, LpType t) {
    return t == LT_F32 || t == LT_F64 ? lp_const_f(p, t, 0) : lp_const_i(p, t, 0);
}

/* The CONST value converted like kern_const_ref does. */
static LpExpr *const_expr(Lower *L, const IrNode *n) {
    double v = n->attr.value;
    switch (n->dtype) {
    case TY_F32:
        return lp_const_f(L->p, LT_F32, (float)v);
    case TY_I32: {
        int64_t x = v != v               ? 0
                    : v >= 2147483648.0  ? INT32_MAX
                    : v <= -2147483649.0 ? INT32_MIN
                                         : (int32_t)v;
        return lp_const_i(L->p, LT_I32, x);
    }
    case TY_I8: {
        int64_t x = v != v ? 0 : v >= 128.0 ? INT8_MAX : v <= -129.0 ? INT8_MIN : (int8_t)(int)v;
        return lp_const_i(L->p, LT_I8, x);
    }
    case TY__COUNT:
        break;
    }
    TT_UNREACHABLE();
}

/* The quantization ops on values a[0] (data), a[1] (scale f32), a[2] (zero
 * point i32), as their reference kernels (kernels_quant.c): the rounding in
 * double, the conversion to i8 saturating with NaN -> 0 (LE_CAST). */
static LpExpr *quant_apply(LpProg *p, const IrNode *n, LpExpr **a) {
    if (n->op == OP_DEQUANTIZE)
        return lp_bin(p, LO_MUL,
                      lp_bin(p, LO_SUB, lp_cast(p, LT_F32, a[0]), lp_cast(p, LT_F32, a[2])), a[1]);
    LpExpr *s = lp_cast(p, LT_F64, a[1]);
    LpExpr *x = lp_cast(p, LT_F64, a[0]);
    LpExpr *v = lp_bin(p, n->op == OP_QUANTIZE ? LO_DIV : LO_MUL, x, s);
    if (n->dtype == TY_F32) return lp_cast(p, LT_F32, v); /* requantize to f32 */
    v = lp_bin(p, LO_ADD, lp_un(p, LO_ROUND, v), lp_cast(p, LT_F64, a[2]));
    return lp_cast(p, LT_I8, v);
}

/* An elementwise node applied to the values of its inputs. */
static LpExpr *elem_apply(Lower *L, const IrNode *n, LpExpr **a) {
    LpProg *p = L->p;
    if (n->op == OP_CAST) return lp_cast(p, lp_type_of(n->dtype), a[0]);
    if (n->op == OP_WHERE) {
        LpExpr *t = lp_bin(p, LO_NE, a[0], zero_of(p, a[0]->ty));
        return lp_select(p, t, a[1], a[2]);
    }
    if (n->op == OP_QUANTIZE || n->op == OP_DEQUANTIZE || n->op == OP_REQUANTIZE)
        return quant_apply(p, n, a);
    LpOp op = lp_op_of(n->op);
    if (ir_ops[n->op].flags & OPF_CMP) return lp_cast(p, LT_F32, lp_bin(p, op, a[0], a[1]));
    if (ir_ops[n->op].arity == 1) return lp_un(p, op, a[0]);
    return lp_bin(p, op, a[0], a[1]);
}

static void note_fused(Lower *L, int id) {
    for (int i = 0; i < L->nkf; i++)
        if (L->kf[i] == id) return;
    L->kf[L->nkf++] = id;
}

static LpExpr *value_at(Lower *L, int id, LpExpr **idx);

/* e, the value of node id computed where it is read: a recomputed
 * elementwise node keeps the bits its buffer would have had */
static LpExpr *as_stored(const Lower *L, int id, LpExpr *e) {
    if (L->recomp[id] && (ir_ops[node(L, id)->op].flags & OPF_ELEMWISE) && e->kind == LE_BIN)
        e->exact = true;
    return e;
}

/* Can the value of node id be read at a linear index of its shape? */
static bool flat_ok(const Lower *L, int id) {
    const IrNode *n = node(L, id);
    if (L->buf[id] >= 0 || n->op == OP_CONST) return true;
    if (ir_ops[n->op].flags & OPF_ELEMWISE) {
        for (int k = 0; k < n->nin; k++)
            if (!flat_ok(L, n->in[k])) return false;
        return true;
    }
    return n->op == OP_RESHAPE && flat_ok(L, n->in[0]);
}

static LpExpr *flat_at(Lower *L, int id, LpExpr *flat) {
    const IrNode *n = node(L, id);
    if (L->buf[id] >= 0) return lp_load(L->p, L->buf[id], flat);
    if (n->op == OP_CONST) return const_expr(L, n);
    note_fused(L, id);
    if (n->op == OP_RESHAPE) return flat_at(L, n->in[0], flat);
    LpExpr *a[3];
    for (int k = 0; k < n->nin; k++) a[k] = flat_at(L, n->in[k], flat);
    return as_stored(L, id, elem_apply(L, n, a));
}

/* The value of node id (fused or a root) computed from its inputs. */
static LpExpr *node_expr(Lower *L, int id, LpExpr **idx) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    LpExpr *j[IR_MAXDIM];
    if (ir_ops[n->op].flags & OPF_ELEMWISE) {
        LpExpr *a[3];
        for (int k = 0; k < n->nin; k++) a[k] = value_at(L, n->in[k], idx);
        return as_stored(L, id, elem_apply(L, n, a));
    }
    const IrNode *in = node(L, n->in[0]);
    const Shape *is = &in->shape;
    switch (n->op) {
    case OP_BROADCAST:
        for (int k = 0; k < is->ndim; k++) j[k] = is->d[k] == 1 ? lp_iconst(p, 0) : idx[k];
        break;
    case OP_PERMUTE:
        for (int k = 0; k < is->ndim; k++) j[n->attr.perm[k]] = idx[k];
        break;
    case OP_SLICE:
        for (int k = 0; k < is->ndim; k++)
            j[k] = lp_iadd(p, lp_imul(p, idx[k], n->attr.step[k]), lp_iconst(p, n->attr.start[k]));
        break;
    case OP_RESHAPE: {
        LpExpr *flat = linearize(p, idx, &n->shape);
        if (flat_ok(L, n->in[0])) return flat_at(L, n->in[0], flat);
        int64_t st[IR_MAXDIM];
        strides(is, st);
        for (int k = 0; k < is->ndim; k++) {
            if (shape_numel(is) == 0) { /* never runs: no element */
                j[k] = lp_iconst(p, 0);
                continue;
            }
            LpExpr *q = lp_idiv(p, flat, st[k]);
            j[k] = k == 0 ? q : lp_imod(p, q, is->d[k]);
        }
        break;
    }
#define OP(NAME, name, arity, flags, form, ...) OP_CASES_UNLESS_FORM(form, remap, OP_##NAME)
#include "ops.def"
#undef OP
    case OP__COUNT:
        TT_UNREACHABLE();
    }
    return value_at(L, n->in[0], j);
}

static LpExpr *value_at(Lower *L, int id, LpExpr **idx) {
    const IrNode *n = node(L, id);
    if (id == L->epi_node) { /* idx is the element's: the path to it is elementwise */
        note_fused(L, id);
        return L->epi_val;
    }
    if (L->buf[id] >= 0) return lp_load(L->p, L->buf[id], linearize(L->p, idx, &n->shape));
    if (n->op == OP_CONST) return const_expr(L, n);
    TT_ASSERT(L->fused[id]);
    note_fused(L, id);
    return node_expr(L, id, idx);
}

/* -- kernels -- */

/* Opens one loop per dim of s; vars into idx. */
static void open_dims(LpProg *p, const Shape *s, LpExpr **idx) {
    for (int k = 0; k < s->ndim; k++) idx[k] = lp_open_loop(p, s->d[k]);
}
static void close_n(LpProg *p, int n) {
    for (int k = 0; k < n; k++) lp_close_loop(p);
}

/* For the lowerings in other files (lower_attn.c). */
LpExpr *lw_value_at(Lower *L, int id, LpExpr **idx) {
    return value_at(L, id, idx);
}

void lw_close_n(LpProg *p, int n) {
    close_n(p, n);
}

LpExpr *lw_linearize(LpProg *p, LpExpr *const *idx, const Shape *s) {
    return linearize(p, idx, s);
}

static void fill(LpProg *p, int buf, LpExpr *value) {
    LpExpr *v = lp_open_loop(p, shape_numel(&p->bufs[buf].shape));
    lp_store(p, buf, v, value);
    lp_close_loop(p);
}

static void lower_elem(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    bool flat = true;
    if (n->op == OP_CONST) {
        fill(p, out, const_expr(L, n));
        return;
    }
    if (n->op == OP_RESHAPE)
        flat = flat_ok(L, n->in[0]);
    else if (ir_ops[n->op].flags & OPF_ELEMWISE)
        for (int k = 0; k < n->nin; k++) flat = flat && flat_ok(L, n->in[k]);
    else
        flat = false;
    if (flat) { /* one loop over the elements */
        LpExpr *v = lp_open_loop(p, shape_numel(&n->shape));
        LpExpr *val;
        if (n->op == OP_RESHAPE) {
            val = flat_at(L, n->in[0], v);
        } else {
            LpExpr *a[3];
            for (int k = 0; k < n->nin; k++) a[k] = flat_at(L, n->in[k], v);
            val = elem_apply(L, n, a);
        }
        lp_store(p, out, v, val);
        lp_close_loop(p);
        return;
    }
    LpExpr *idx[IR_MAXDIM];
    open_dims(p, &n->shape, idx);
    lp_store(p, out, linearize(p, idx, &n->shape), node_expr(L, id, idx));
    close_n(p, n->shape.ndim);
}

/* Output index of a reduction: coefficient of each input dim (0 if reduced). */
static void reduce_out_coef(const IrNode *n, const Shape *is, uint32_t axes, int64_t *coef) {
    int64_t ost[IR_MAXDIM];
    strides(&n->shape, ost);
    int pos = 0;
    for (int k = 0; k < is->ndim; k++) {
        bool red = axes >> k & 1u;
        coef[k] = red ? 0 : ost[pos];
        if (!red || n->attr.keepdims) pos++;
    }
}

/* -- f32 sums in lanes --
 *
 * A sum of f32 whose reduced axes end with the innermost dims (the
 * reduced suffix: W, or H and W, of BatchNorm's [N, C, H, W] over N, H, W)
 * reads that suffix as one contiguous block of len elements per step of
 * the other reduced dims, and adds it into SUM_LANES independent f64
 * accumulators: element j of the block goes to lane j % SUM_LANES, the
 * last len % SUM_LANES to lanes 0, 1, ...; the lanes are then added
 * pairwise (lane 2u + lane 2u+1, halving until one is left) and rounded to
 * f32 once. One long chain of dependent adds ran at a latency-bound ~1
 * add per 4 cycles; independent lanes run at the adders' throughput (and
 * the SLP vectorizer widens them). In f64 as the reference, so the result
 * differs from it by far less than the op's tolerance; the order is fixed
 * by the shape alone, so the bits do not depend on threads or runs. */
#define SUM_LANES 16

/* Can node id (of the reduction's input's shape) be read with its dims
 * from k0 on addressed by one linear offset into that block? Dense
 * buffers, constants and elementwise chains of them can, and broadcasts
 * that stretch none or all of those dims. */
static bool sfx_ok(const Lower *L, int id, int k0) {
    const IrNode *n = node(L, id);
    if (L->buf[id] >= 0 || n->op == OP_CONST) return true;
    if (ir_ops[n->op].flags & OPF_ELEMWISE) {
        for (int k = 0; k < n->nin; k++)
            if (!sfx_ok(L, n->in[k], k0)) return false;
        return true;
    }
    /* a reshape read at a linear index (a [C] weight reshaped to [1, 1, C]
     * for LayerNorm's broadcast) */
    if (n->op == OP_RESHAPE) return L->fused[id] && flat_ok(L, id);
    if (n->op != OP_BROADCAST) return false;
    const Shape *is = &node(L, n->in[0])->shape;
    bool all1 = true, same = true;
    for (int k = k0; k < is->ndim; k++) {
        all1 = all1 && is->d[k] == 1;
        same = same && is->d[k] == n->shape.d[k];
    }
    return all1 || (same && sfx_ok(L, n->in[0], k0));
}

/* The value of node id at dims idx[0..k0) and offset j of the block. */
static LpExpr *sfx_at(Lower *L, int id, LpExpr **idx, int k0, LpExpr *j) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    if (L->buf[id] >= 0 || n->op == OP_RESHAPE) { /* read at the linear index */
        int64_t st[IR_MAXDIM];
        strides(&n->shape, st);
        LpExpr *e = j;
        for (int k = 0; k < k0; k++) e = lp_iadd(p, e, lp_imul(p, idx[k], st[k]));
        return flat_at(L, id, e);
    }
    if (n->op == OP_CONST) return const_expr(L, n);
    TT_ASSERT(L->fused[id]);
    note_fused(L, id);
    if (ir_ops[n->op].flags & OPF_ELEMWISE) {
        LpExpr *a[3];
        for (int k = 0; k < n->nin; k++) a[k] = sfx_at(L, n->in[k], idx, k0, j);
        return as_stored(L, id, elem_apply(L, n, a));
    }
    const Shape *is = &node(L, n->in[0])->shape; /* a broadcast (sfx_ok) */
    LpExpr *jj[IR_MAXDIM];
    bool all1 = true;
    for (int k = 0; k < is->ndim; k++) {
        jj[k] = is->d[k] == 1 ? lp_iconst(p, 0) : idx[k];
        if (k >= k0) all1 = all1 && is->d[k] == 1;
    }
    if (all1) return value_at(L, n->in[0], jj);
    return sfx_at(L, n->in[0], jj, k0, j);
}

/* m op x for the lanes: a sum in f64; an f32 max where a NaN wins (as
 * lower_reduce's chain: if (x > m || x != x) m = x). */
static LpExpr *lane_op(LpProg *p, OpKind op, LpExpr *m, LpExpr *x) {
    if (op == OP_SUM) return lp_bin(p, LO_ADD, m, x);
    return lp_select(p, lp_bin(p, LO_OR, lp_bin(p, LO_GT, x, m), lp_bin(p, LO_NE, x, x)), x, m);
}

/* The lanes' sum (see above) of the input of sum node n over the reduced
 * dims; idx holds the kept dims' loop variables. An f32 rmax takes the
 * same lanes in f32 (max is exact in any order: the one difference from
 * the single chain is that of +0 and -0, which compare equal, the first
 * seen may differ). */
static LpExpr *sum_lanes(Lower *L, const IrNode *n, LpExpr **idx, uint32_t axes, int k0) {
    LpProg *p = L->p;
    const Shape *is = &node(L, n->in[0])->shape;
    int64_t len = 1;
    for (int k = k0; k < is->ndim; k++) len *= is->d[k];
    bool sum = n->op == OP_SUM;
    LpType at = sum ? LT_F64 : LT_F32;
    LpExpr *lane[SUM_LANES];
    for (int u = 0; u < SUM_LANES; u++)
        lane[u] = lp_local(p, at, sum ? zero_of(p, at) : lp_const_f(p, LT_F32, -INFINITY));
    int nred = 0;
    for (int k = 0; k < k0; k++)
        if (axes >> k & 1u) {
            idx[k] = lp_open_loop(p, is->d[k]);
            nred++;
        }
    int64_t nb = len / SUM_LANES, r = len % SUM_LANES;
    if (nb > 0) {
        LpExpr *jo = lp_open_loop(p, nb);
        for (int u = 0; u < SUM_LANES; u++) {
            LpExpr *j = lp_iadd(p, lp_imul(p, jo, SUM_LANES), lp_iconst(p, u));
            LpExpr *x = sfx_at(L, n->in[0], idx, k0, j);
            lp_set(p, lane[u], lane_op(p, n->op, lane[u], sum ? lp_cast(p, at, x) : x));
        }
        lp_close_loop(p);
    }
    for (int u = 0; u < r; u++) {
        LpExpr *x = sfx_at(L, n->in[0], idx, k0, lp_iconst(p, nb * SUM_LANES + u));
        lp_set(p, lane[u], lane_op(p, n->op, lane[u], sum ? lp_cast(p, at, x) : x));
    }
    close_n(p, nred);
    for (int w = SUM_LANES; w > 1; w /= 2)
        for (int u = 0; u < w / 2; u++) lane[u] = lane_op(p, n->op, lane[2 * u], lane[2 * u + 1]);
    return lane[0];
}

/* -- f32 sums down columns --
 *
 * A sum (or f32 rmax) whose kept dims are the innermost ones and whose
 * reduced dims all come before them (a bias's gradient: [B, T, C] summed
 * over B and T) walked each output's column with a stride of w = the kept
 * dims' size: a cache line per element, 0.1 GFLOP/s on TinyGPT's
 * [2048, 512]. Instead the kept block is cut into SUM_LANES consecutive
 * outputs, each with its own accumulator (f64 for a sum, as the chain),
 * and the reduced dims are walked once per block, reading SUM_LANES
 * contiguous elements (a cache line) per step, which the SLP vectorizer
 * widens; the last w % SUM_LANES outputs take fewer lanes. Each output
 * still adds its elements in the chain's order, so the bits are the
 * chain's. Is node n (input shape is) such a reduction with its kept
 * suffix from dim k1 on? */
static bool column_ok(const Lower *L, const IrNode *n, uint32_t axes, int *k1) {
    const Shape *is = &node(L, n->in[0])->shape;
    int k = is->ndim;
    int64_t w = 1;
    while (k > 0 && !(axes >> (k - 1) & 1u)) w *= is->d[--k];
    for (int j = 0; j < k; j++)
        if (!(axes >> j & 1u)) return false;
    *k1 = k;
    return k > 0 && k < is->ndim && w >= SUM_LANES && sfx_ok(L, n->in[0], k);
}

static void column_lanes(Lower *L, const IrNode *n, int out, uint32_t axes, int k1) {
    LpProg *p = L->p;
    const Shape *is = &node(L, n->in[0])->shape;
    int64_t w = 1;
    for (int k = k1; k < is->ndim; k++) w *= is->d[k];
    bool sum = n->op == OP_SUM;
    LpType at = sum ? LT_F64 : LT_F32;
    int64_t nb = w / SUM_LANES, r = w % SUM_LANES;
    for (int part = 0; part < 2; part++) {
        int lanes = part == 0 ? SUM_LANES : (int)r;
        if (lanes == 0 || (part == 0 && nb == 0)) continue;
        LpExpr *j0 =
            part == 0 ? lp_imul(p, lp_open_loop(p, nb), SUM_LANES) : lp_iconst(p, nb * SUM_LANES);
        LpExpr *lane[SUM_LANES], *idx[IR_MAXDIM];
        for (int u = 0; u < lanes; u++)
            lane[u] = lp_local(p, at, sum ? zero_of(p, at) : lp_const_f(p, LT_F32, -INFINITY));
        for (int k = 0; k < k1; k++) idx[k] = lp_open_loop(p, is->d[k]);
        for (int u = 0; u < lanes; u++) {
            LpExpr *x = sfx_at(L, n->in[0], idx, k1, lp_iadd(p, j0, lp_iconst(p, u)));
            lp_set(p, lane[u], lane_op(p, n->op, lane[u], sum ? lp_cast(p, at, x) : x));
        }
        close_n(p, k1);
        for (int u = 0; u < lanes; u++)
            lp_store(p, out, lp_iadd(p, j0, lp_iconst(p, u)), lp_cast(p, LT_F32, lane[u]));
        if (part == 0) lp_close_loop(p);
    }
}

static void lower_reduce(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    const Shape *is = &node(L, n->in[0])->shape;
    uint32_t axes = n->op == OP_ARGMAX ? 1u << n->attr.axis : n->attr.axes;
    LpType t = lp_type_of(node(L, n->in[0])->dtype);
    int64_t coef[IR_MAXDIM];
    LpExpr *idx[IR_MAXDIM];
    if (n->op == OP_ARGMAX && is->ndim == 0) {
        lp_store(p, out, lp_iconst(p, 0), lp_const_i(p, LT_I32, 0));
        return;
    }
    int k1;
    if ((n->op == OP_SUM || n->op == OP_RMAX) && t == LT_F32 && column_ok(L, n, axes, &k1)) {
        column_lanes(L, n, out, axes, k1);
        return;
    }
    reduce_out_coef(n, is, axes, coef);
    int nouter = 0;
    for (int k = 0; k < is->ndim; k++)
        if (!(axes >> k & 1u)) {
            idx[k] = lp_open_loop(p, is->d[k]);
            nouter++;
        }
    LpExpr *oi = lp_iconst(p, 0);
    for (int k = 0; k < is->ndim; k++)
        if (!(axes >> k & 1u)) oi = lp_iadd(p, oi, lp_imul(p, idx[k], coef[k]));

    if (n->op == OP_ARGMAX) {
        int ax = n->attr.axis;
        idx[ax] = lp_iconst(p, 0);
        LpExpr *best = lp_local(p, LT_I32, lp_const_i(p, LT_I32, 0));
        LpExpr *bv = lp_local(p, t, value_at(L, n->in[0], idx));
        LpExpr *v = lp_open_loop(p, is->d[ax]);
        idx[ax] = v;
        LpExpr *x = lp_local(p, t, value_at(L, n->in[0], idx));
        LpExpr *better;
        if (t == LT_F32) /* a NaN beats everything but an earlier NaN */
            better = lp_bin(p, LO_AND, lp_bin(p, LO_EQ, bv, bv),
                            lp_bin(p, LO_OR, lp_bin(p, LO_GT, x, bv), lp_bin(p, LO_NE, x, x)));
        else
            better = lp_bin(p, LO_GT, x, bv);
        lp_set(p, best, lp_select(p, better, lp_cast(p, LT_I32, v), best));
        lp_set(p, bv, lp_select(p, better, x, bv));
        lp_close_loop(p);
        lp_store(p, out, oi, best);
        close_n(p, nouter);
        return;
    }

    if ((n->op == OP_SUM || n->op == OP_RMAX) && t == LT_F32) {
        int k0 = is->ndim;
        int64_t len = 1;
        while (k0 > 0 && (axes >> (k0 - 1) & 1u)) len *= is->d[--k0];
        if (k0 < is->ndim && len >= SUM_LANES && sfx_ok(L, n->in[0], k0)) {
            lp_store(p, out, oi, lp_cast(p, LT_F32, sum_lanes(L, n, idx, axes, k0)));
            close_n(p, nouter);
            return;
        }
    }
    LpType at = n->op == OP_SUM && t == LT_F32 ? LT_F64 : t; /* f32 sums in double */
    LpExpr *init;
    if (n->op == OP_SUM)
        init = zero_of(p, at);
    else if (t == LT_F32)
        init = lp_const_f(p, LT_F32, -INFINITY);
    else
        init = lp_const_i(p, t, t == LT_I32 ? INT32_MIN : INT8_MIN);
    LpExpr *acc = lp_local(p, at, init);
    int ninner = 0;
    for (int k = 0; k < is->ndim; k++)
        if (axes >> k & 1u) {
            idx[k] = lp_open_loop(p, is->d[k]);
            ninner++;
        }
    LpExpr *x = value_at(L, n->in[0], idx);
    LpExpr *nv;
    if (n->op == OP_SUM) {
        nv = lp_bin(p, LO_ADD, acc, lp_cast(p, at, x));
    } else if (t == LT_F32) { /* if (x > m || x != x) m = x: NaN wins */
        nv = lp_select(p, lp_bin(p, LO_OR, lp_bin(p, LO_GT, x, acc), lp_bin(p, LO_NE, x, x)), x,
                       acc);
    } else {
        nv = lp_select(p, lp_bin(p, LO_GT, x, acc), x, acc);
    }
    lp_set(p, acc, nv);
    close_n(p, ninner);
    lp_store(p, out, oi, lp_cast(p, lp_type_of(n->dtype), acc));
    close_n(p, nouter);
}

/* -- matmul: a call of the GEMM (compiler/gemm) per batch element -- */

/* Strides of a reshape of a strided view (is, ist) to os, when every dim of
 * os can be addressed with one stride (NumPy's no-copy reshape): the input
 * dims (size-1 dims dropped) and the output dims are cut into groups of
 * equal size; a group of input dims must be contiguous among themselves. */
static bool reshape_strides(const Shape *is, const int64_t *ist, const Shape *os, int64_t *st) {
    int64_t od[IR_MAXDIM], ostr[IR_MAXDIM];
    int on = 0, nn = os->ndim;
    for (int k = 0; k < is->ndim; k++)
        if (is->d[k] != 1) {
            od[on] = is->d[k];
            ostr[on++] = ist[k];
        }
    for (int k = 0; k < nn; k++) st[k] = 0; /* size-1 dims: any stride */
    int oi = 0, oj = 1, ni = 0, nj = 1;
    while (ni < nn && oi < on) {
        int64_t np = os->d[ni], op = od[oi];
        while (np != op) {
            if (np < op) {
                if (nj >= nn) return false;
                np *= os->d[nj++];
            } else {
                if (oj >= on) return false;
                op *= od[oj++];
            }
        }
        for (int k = oi; k < oj - 1; k++)
            if (ostr[k] != od[k + 1] * ostr[k + 1]) return false;
        st[nj - 1] = ostr[oj - 1];
        for (int k = nj - 1; k > ni; k--) st[k - 1] = st[k] * os->d[k];
        ni = nj++;
        oi = oj++;
    }
    return true;
}

/* The values of node id (non-empty) as a strided view of a buffer: element
 * idx at buf[off + sum st[k] * idx[k]]. Roots and inputs are dense; the
 * index remaps fused into the matmul (a transpose, a broadcast of the batch,
 * a slice, most reshapes) only change the strides and the offset, so the
 * GEMM reads the producer's buffer in place. False: not expressible. */
static bool strided_view(Lower *L, int id, int *buf, int64_t *off, int64_t *st) {
    const IrNode *n = node(L, id);
    if (L->buf[id] >= 0) {
        *buf = L->buf[id];
        *off = 0;
        strides(&n->shape, st);
        return true;
    }
    if (n->op == OP_CONST || !L->fused[id] || !is_remap(n->op)) return false;
    int64_t ist[IR_MAXDIM];
    if (!strided_view(L, n->in[0], buf, off, ist)) return false;
    const Shape *is = &node(L, n->in[0])->shape;
    switch (n->op) {
    case OP_BROADCAST:
        for (int k = 0; k < is->ndim; k++) st[k] = is->d[k] == 1 ? 0 : ist[k];
        break;
    case OP_PERMUTE:
        for (int k = 0; k < is->ndim; k++) st[k] = ist[n->attr.perm[k]];
        break;
    case OP_SLICE:
        for (int k = 0; k < is->ndim; k++) {
            *off += n->attr.start[k] * ist[k];
            st[k] = n->attr.step[k] * ist[k];
        }
        break;
    case OP_RESHAPE:
        if (!reshape_strides(is, ist, &n->shape, st)) return false;
        break;
#define OP(NAME, name, arity, flags, form, ...) OP_CASES_UNLESS_FORM(form, remap, OP_##NAME)
#include "ops.def"
#undef OP
    case OP__COUNT:
        TT_UNREACHABLE();
    }
    note_fused(L, id);
    return true;
}

/* The GEMM's layout of an r x c matrix with strides (sr, sc): rows
 * contiguous (leading dimension sr) or columns contiguous (transposed,
 * leading dimension sc). */
static bool gemm_layout(int64_t r, int64_t c, int64_t sr, int64_t sc, int64_t *ld, bool *t) {
    if ((c == 1 || sc == 1) && (r == 1 || sr >= c)) {
        *ld = r == 1 ? c : sr;
        *t = false;
        return true;
    }
    if ((r == 1 || sr == 1) && (c == 1 || sc >= r)) {
        *ld = c == 1 ? r : sc;
        *t = true;
        return true;
    }
    return false;
}

/* Can the batch dims of a view (strides st) follow its dim at pos
 * (extent ext, stride st[pos]) as one uniform run, batch-major? Then
 * (batch..., that dim) is one dim of ext * batch elements. */
static bool batch_runs_on(const Shape *s, const int64_t *st, int pos, int64_t ext) {
    int64_t want = ext * st[pos];
    for (int b = s->ndim - 3; b >= 0; b--) {
        if (s->d[b] == 1) continue;
        if (st[b] != want) return false;
        want *= s->d[b];
    }
    return true;
}

/* Can the batch of a matmul be folded into the rows of one product? When
 * B is the same matrix for every batch element (a weight broadcast over the
 * batch: batch strides 0) and A's rows, batch after batch, are one uniform
 * stride apart, the batch is m * batch rows of a single GEMM call (PyTorch
 * folds x @ W for a 3-D x the same way): one call on 2048 rows runs at the
 * GEMM's full speed where 16 calls on 128 rows each did not. *lda: the
 * stride between A's rows. The output is dense, so its rows always are. */
static bool fold_batch_rows(const Shape *os, int64_t st[2][IR_MAXDIM], const bool *tr, int64_t k,
                            int64_t *lda) {
    int r = os->ndim;
    int64_t m = os->d[r - 2];
    if (r < 3 || tr[0]) return false;
    int64_t rows = 1;
    for (int b = 0; b < r - 2; b++) {
        if (os->d[b] > 1 && st[1][b] != 0) return false;
        rows *= os->d[b];
    }
    if (rows < 2) return false;
    /* the stride between A's rows: its own, or with one row per batch
     * element the innermost stretched batch dim's */
    int64_t ld = -1;
    if (m > 1)
        ld = st[0][r - 2];
    else
        for (int b = r - 3; b >= 0 && ld < 0; b--)
            if (os->d[b] > 1) ld = st[0][b];
    if (ld < k) return false;
    int64_t ast[IR_MAXDIM];
    memcpy(ast, st[0], sizeof ast);
    ast[r - 2] = ld; /* A's rows ld apart, the batch continuing them */
    if (!batch_runs_on(os, ast, r - 2, m)) return false;
    *lda = ld;
    return true;
}

/* [..., m, k] @ [..., k, n]: for each batch element, one call of the GEMM
 * on the operands' buffers (a transposed operand is passed as is, with its
 * trans flag). An operand the GEMM cannot address is first copied densely
 * into a temporary of its own. q: qmatmul's, i8 operands and the int8 GEMM,
 * which takes no transposed operand (copied too). */
static void lower_gemm(Lower *L, int id, int out, bool q) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    int r = n->shape.ndim;
    const Shape *as = &node(L, n->in[0])->shape;
    int64_t m = n->shape.d[r - 2], nn = n->shape.d[r - 1], k = as->d[r - 1];
    if (shape_numel(&n->shape) == 0) return;
    if (k == 0) {
        fill(p, out, q ? lp_const_i(p, LT_I32, 0) : lp_const_f(p, LT_F32, 0));
        return;
    }
    int64_t rows[2] = {m, k}, cols[2] = {k, nn};
    int ob[2];
    int64_t off[2], st[2][IR_MAXDIM], ld[2];
    bool tr[2];
    for (int x = 0; x < 2; x++) {
        int in = n->in[x];
        if (strided_view(L, in, &ob[x], &off[x], st[x]) &&
            gemm_layout(rows[x], cols[x], st[x][r - 2], st[x][r - 1], &ld[x], &tr[x]) &&
            !(q && tr[x]))
            continue;
        const Shape *s = &node(L, in)->shape;
        ob[x] = lp_add_buf(p, LB_TEMP, 0, q ? TY_I8 : TY_F32, s, in);
        LpExpr *idx[IR_MAXDIM];
        open_dims(p, s, idx);
        lp_store(p, ob[x], linearize(p, idx, s), value_at(L, in, idx));
        close_n(p, s->ndim);
        off[x] = 0;
        strides(s, st[x]);
        ld[x] = cols[x];
        tr[x] = false;
    }
    int64_t lda_rows;
    if (!q && fold_batch_rows(&n->shape, st, tr, k, &lda_rows)) {
        LpGemm g = {ob[0],
                    ob[1],
                    out,
                    lp_iconst(p, off[0]),
                    lp_iconst(p, off[1]),
                    lp_iconst(p, 0),
                    shape_numel(&n->shape) / nn,
                    nn,
                    k,
                    lda_rows,
                    ld[1],
                    nn,
                    false,
                    tr[1]};
        lp_gemm(p, &g);
        return;
    }
    int64_t ost[IR_MAXDIM];
    strides(&n->shape, ost);
    LpExpr *ao = lp_iconst(p, off[0]), *bo = lp_iconst(p, off[1]), *co = lp_iconst(p, 0);
    for (int b = 0; b < r - 2; b++) {
        LpExpr *v = lp_open_loop(p, n->shape.d[b]);
        ao = lp_iadd(p, ao, lp_imul(p, v, st[0][b]));
        bo = lp_iadd(p, bo, lp_imul(p, v, st[1][b]));
        co = lp_iadd(p, co, lp_imul(p, v, ost[b]));
    }
    LpGemm g = {ob[0], ob[1], out, ao, bo, co, m, nn, k, ld[0], ld[1], nn, tr[0], tr[1]};
    g.q = q;
    lp_gemm(p, &g);
    close_n(p, r - 2);
}

static void lower_matmul(Lower *L, int id, int out) {
    lower_gemm(L, id, out, false);
}

/* sum over the batch of a batched matmul, sum_b A_b @ B_b (the gradient of
 * a weight broadcast over a batch: x^T @ g per batch element, then summed):
 * the batch is more of the contraction, A' = [m, batch * k] @ B' =
 * [batch * k, n], one GEMM instead of a product per batch element and a
 * pass over them all to add them up. When the operands' views do not line
 * up, the product is materialized and summed as any reduction. */
static void lower_batch_sum(Lower *L, int id, int out) {
    const IrNode *s = node(L, id);
    int mm = s->in[0];
    const IrNode *n = node(L, mm);
    LpProg *p = L->p;
    int r = n->shape.ndim;
    const Shape *as = &node(L, n->in[0])->shape;
    int64_t m = n->shape.d[r - 2], nn = n->shape.d[r - 1], k = as->d[r - 1];
    int64_t batch = shape_numel(&n->shape) / (m * nn > 0 ? m * nn : 1);
    if (shape_numel(&s->shape) == 0) return;
    int ob[2];
    int64_t off[2], st[2][IR_MAXDIM], ld[2];
    bool tr[2];
    bool ok = shape_numel(&n->shape) > 0 && k > 0;
    for (int x = 0; x < 2 && ok; x++) ok = strided_view(L, n->in[x], &ob[x], &off[x], st[x]);
    ok = ok && batch_runs_on(&n->shape, st[0], r - 1, k) &&
         batch_runs_on(&n->shape, st[1], r - 2, k) &&
         gemm_layout(m, batch * k, st[0][r - 2], st[0][r - 1], &ld[0], &tr[0]) &&
         gemm_layout(batch * k, nn, st[1][r - 2], st[1][r - 1], &ld[1], &tr[1]);
    note_fused(L, mm);
    if (!ok) {
        L->buf[mm] = lp_add_buf(p, LB_TEMP, 0, n->dtype, &n->shape, mm);
        lower_gemm(L, mm, L->buf[mm], false);
        lower_reduce(L, id, out);
        return;
    }
    LpGemm g = {ob[0],
                ob[1],
                out,
                lp_iconst(p, off[0]),
                lp_iconst(p, off[1]),
                lp_iconst(p, 0),
                m,
                nn,
                batch * k,
                ld[0],
                ld[1],
                nn,
                tr[0],
                tr[1]};
    lp_gemm(p, &g);
}

/* qmatmul: i8 [..., m, k] @ i8 [..., k, n] -> i32, a call of the int8
 * GEMM (compiler/gemm/qgemm.h: VNNI / AVX2 micro-kernels, exact) per batch
 * element, like matmul's */
static void lower_qmatmul(Lower *L, int id, int out) {
    lower_gemm(L, id, out, true);
}

/* idx: i64 local of the index at the current position, checked against
 * [0, V) for node id (jit_run reports a failure); inr: in range, which keeps
 * the loads and stores of a failed graph in bounds */
static void row_index(Lower *L, int id, int idnode, LpExpr **ji, int64_t V, LpExpr **iv,
                      LpExpr **inr) {
    LpProg *p = L->p;
    *iv = lp_local(p, LT_I64, lp_cast(p, LT_I64, value_at(L, idnode, ji)));
    lp_check(p, *iv, V, id);
    *inr = lp_local(p, LT_BOOL,
                    lp_bin(p, LO_AND, lp_bin(p, LO_GE, *iv, lp_iconst(p, 0)),
                           lp_bin(p, LO_LT, *iv, lp_iconst(p, V))));
}

/* Only the checks of node id's indices (an empty result, V = 0: any index
 * is out of range). */
static void check_indices(Lower *L, int id, int idnode, int64_t V) {
    LpProg *p = L->p;
    const Shape *xs = &node(L, idnode)->shape;
    LpExpr *ji[IR_MAXDIM];
    open_dims(p, xs, ji);
    lp_check(p, lp_cast(p, LT_I64, value_at(L, idnode, ji)), V, id);
    close_n(p, xs->ndim);
}

/* table [V, ...r], idx [...i] -> [...i, ...r]; an index out of range is
 * reported (its row: zeros) */
static void lower_gather(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    const Shape *ts = &node(L, n->in[0])->shape, *xs = &node(L, n->in[1])->shape;
    LpType t = lp_type_of(n->dtype);
    int64_t V = ts->d[0];
    if (V == 0) {
        check_indices(L, id, n->in[1], 0);
        fill(p, out, zero_of(p, t));
        return;
    }
    LpExpr *oi[IR_MAXDIM], *ti[IR_MAXDIM], *iv, *inr;
    open_dims(p, xs, oi);
    row_index(L, id, n->in[1], oi, V, &iv, &inr);
    ti[0] = lp_select(p, inr, iv, lp_iconst(p, 0));
    for (int k = 1; k < ts->ndim; k++) ti[k] = oi[xs->ndim + k - 1] = lp_open_loop(p, ts->d[k]);
    LpExpr *val = lp_select(p, inr, value_at(L, n->in[0], ti), zero_of(p, t));
    lp_store(p, out, linearize(p, oi, &n->shape), val);
    close_n(p, xs->ndim + ts->ndim - 1);
}

/* src [...i, ...r], idx [...i] -> zeros [V, ...r] with src rows added; an
 * index out of range is reported (its row: skipped) */
static void lower_scatter(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    const Shape *xs = &node(L, n->in[1])->shape, *os = &n->shape;
    LpType t = lp_type_of(n->dtype);
    int64_t V = os->d[0];
    fill(p, out, zero_of(p, t));
    if (V == 0 || shape_numel(os) == 0) {
        check_indices(L, id, n->in[1], V);
        return;
    }
    LpExpr *si[IR_MAXDIM], *oi[IR_MAXDIM], *iv, *inr;
    open_dims(p, xs, si);
    row_index(L, id, n->in[1], si, V, &iv, &inr);
    oi[0] = lp_select(p, inr, iv, lp_iconst(p, 0));
    for (int k = 1; k < os->ndim; k++) oi[k] = si[xs->ndim + k - 1] = lp_open_loop(p, os->d[k]);
    LpExpr *o = linearize(p, oi, os);
    LpExpr *add = lp_select(p, inr, value_at(L, n->in[0], si), zero_of(p, t));
    lp_store(p, out, o, lp_bin(p, LO_ADD, lp_load(p, out, o), add));
    close_n(p, xs->ndim + os->ndim - 1);
}

static void lower_concat(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    int ax = n->attr.axis;
    int64_t at = 0;
    for (int c = 0; c < n->nin; c++) {
        const Shape *s = &node(L, n->in[c])->shape;
        LpExpr *idx[IR_MAXDIM], *oi[IR_MAXDIM];
        open_dims(p, s, idx);
        for (int k = 0; k < s->ndim; k++) oi[k] = idx[k];
        oi[ax] = lp_iadd(p, idx[ax], lp_iconst(p, at));
        lp_store(p, out, linearize(p, oi, &n->shape), value_at(L, n->in[c], idx));
        close_n(p, s->ndim);
        at += s->d[ax];
    }
}

static void lower_pad(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    const Shape *s = &node(L, n->in[0])->shape;
    fill(p, out, zero_of(p, lp_type_of(n->dtype)));
    LpExpr *idx[IR_MAXDIM], *oi[IR_MAXDIM];
    open_dims(p, s, idx);
    for (int k = 0; k < s->ndim; k++)
        oi[k] = lp_iadd(p, lp_imul(p, idx[k], n->attr.step[k]), lp_iconst(p, n->attr.start[k]));
    lp_store(p, out, linearize(p, oi, &n->shape), value_at(L, n->in[0], idx));
    close_n(p, s->ndim);
}

/* -- convolution and pooling: direct loop nests --
 *
 * One loop per output element and one per window tap, as the reference
 * kernels (backend/naive/kernels_conv.c) do, in the same order. A tap outside the
 * input reads the padding: its index is clamped to 0 (so every load stays
 * in bounds) and its value replaced by a select. The two ops that spread a
 * gradient over windows (conv2d_backward_input, avg_pool2d_backward) add
 * into their output at the tap's index, as the reference does. */

/* The input position of tap t of output position o along spatial dim k. */
static LpExpr *tap_pos(LpProg *p, const IrWindow *win, int k, LpExpr *o, LpExpr *t, int64_t dil) {
    return lp_iadd(p, lp_imul(p, o, win->stride[k]),
                   lp_iadd(p, lp_imul(p, t, dil), lp_iconst(p, -win->padding[k])));
}

/* For the taps of both spatial dims at idx[2], idx[3] (sizes H, W): the
 * condition that both are inside the input (NULL: always, no padding), and
 * idx clamped to 0 where it is not. */
static LpExpr *tap_clamp(LpProg *p, const IrWindow *win, LpExpr **idx, int64_t H, int64_t W) {
    LpExpr *ok = NULL;
    int64_t size[2] = {H, W};
    for (int k = 0; k < 2; k++) {
        if (win->padding[k] == 0) continue;
        LpExpr *in = lp_bin(p, LO_AND, lp_bin(p, LO_GE, idx[2 + k], lp_iconst(p, 0)),
                            lp_bin(p, LO_LT, idx[2 + k], lp_iconst(p, size[k])));
        ok = ok ? lp_bin(p, LO_AND, ok, in) : in;
    }
    if (ok)
        for (int k = 0; k < 2; k++)
            if (win->padding[k] > 0) idx[2 + k] = lp_select(p, ok, idx[2 + k], lp_iconst(p, 0));
    return ok;
}

/* ok ? a : b, or a when ok is NULL (always). A tap outside the input
 * leaves an accumulator as it was, as the reference's skipped tap does
 * (adding a zero would turn -0 into 0, and 0 * inf into NaN). */
static LpExpr *when(LpProg *p, LpExpr *ok, LpExpr *a, LpExpr *b) {
    return ok ? lp_select(p, ok, a, b) : a;
}

/* The value of x at idx, or `pad` where ok is false. */
static LpExpr *tap_value(Lower *L, int x, LpExpr **idx, LpExpr *ok, double pad) {
    LpExpr *v = value_at(L, x, idx);
    return ok ? lp_select(L->p, ok, v, lp_const_f(L->p, LT_F32, pad)) : v;
}

/* conv2d: y[n, o, i, j] = sum over (c, kh, kw) of x * w, and
 * conv2d_backward_weight: dw[o, c, kh, kw] = sum over (n, i, j) of gy * x
 * (in double, as the reference) */
static void lower_conv_reduce(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    bool fwd = n->op == OP_CONV2D;
    int xn = n->in[0], wn = fwd ? n->in[1] : -1, gn = fwd ? -1 : n->in[1];
    const Shape *xs = &node(L, xn)->shape;
    const Shape *ws = fwd ? &node(L, wn)->shape : &n->shape;
    const Shape *ys = fwd ? &n->shape : &node(L, gn)->shape;
    const IrWindow *win = &n->attr.win;
    int64_t Cg = ws->d[1], Og = ws->d[0] / win->groups;
    LpExpr *yi[4], *wi[4], *xi[4];
    LpType at = fwd ? LT_F32 : LT_F64;
    LpExpr *acc;
    if (fwd) {
        open_dims(p, ys, yi);
        acc = lp_local(p, at, zero_of(p, at));
        wi[0] = yi[1];
        for (int k = 1; k < 4; k++) wi[k] = lp_open_loop(p, ws->d[k]);
    } else {
        open_dims(p, ws, wi);
        acc = lp_local(p, at, zero_of(p, at));
        yi[0] = lp_open_loop(p, ys->d[0]);
        yi[1] = wi[0];
        yi[2] = lp_open_loop(p, ys->d[2]);
        yi[3] = lp_open_loop(p, ys->d[3]);
    }
    xi[0] = yi[0];
    xi[1] = lp_iadd(p, lp_imul(p, lp_idiv(p, wi[0], Og), Cg), wi[1]);
    for (int k = 0; k < 2; k++)
        xi[2 + k] = tap_pos(p, win, k, yi[2 + k], wi[2 + k], win->dilation[k]);
    LpExpr *ok = tap_clamp(p, win, xi, xs->d[2], xs->d[3]);
    LpExpr *xv = value_at(L, xn, xi);
    LpExpr *term;
    if (fwd)
        term = lp_bin(p, LO_MUL, xv, value_at(L, wn, wi));
    else
        term = lp_bin(p, LO_MUL, lp_cast(p, LT_F64, value_at(L, gn, yi)), lp_cast(p, LT_F64, xv));
    lp_set(p, acc, when(p, ok, lp_bin(p, LO_ADD, acc, term), acc));
    close_n(p, 3);
    lp_store(p, out, linearize(p, fwd ? yi : wi, &n->shape), lp_cast(p, LT_F32, acc));
    close_n(p, 4);
}

/* conv2d_backward_input: dx = zeros, then for each gy element and tap,
 * dx[tap] += gy * w (the reference's order) */
static void lower_conv_backward_input(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    const Shape *gs = &node(L, n->in[0])->shape, *ws = &node(L, n->in[1])->shape;
    const Shape *xs = &n->shape;
    const IrWindow *win = &n->attr.win;
    int64_t Cg = ws->d[1], Og = ws->d[0] / win->groups;
    fill(p, out, lp_const_f(p, LT_F32, 0));
    if (Og == 0) return; /* no output channel: nothing flows back */
    LpExpr *gi[4], *wi[4], *xi[4];
    open_dims(p, gs, gi);
    LpExpr *gv = lp_local(p, LT_F32, value_at(L, n->in[0], gi));
    wi[0] = gi[1];
    for (int k = 1; k < 4; k++) wi[k] = lp_open_loop(p, ws->d[k]);
    xi[0] = gi[0];
    xi[1] = lp_iadd(p, lp_imul(p, lp_idiv(p, wi[0], Og), Cg), wi[1]);
    for (int k = 0; k < 2; k++)
        xi[2 + k] = tap_pos(p, win, k, gi[2 + k], wi[2 + k], win->dilation[k]);
    LpExpr *ok = tap_clamp(p, win, xi, xs->d[2], xs->d[3]);
    LpExpr *o = linearize(p, xi, xs), *old = lp_load(p, out, o);
    LpExpr *nv = lp_bin(p, LO_ADD, old, lp_bin(p, LO_MUL, gv, value_at(L, n->in[1], wi)));
    lp_store(p, out, o, when(p, ok, nv, old));
    close_n(p, 7);
}

/* -- convolution on the GEMM: explicit im2col --
 *
 * With P = Ho * Wo output positions per image and NP = N * P over the batch,
 * group g's windows are gathered into the column matrix
 *   col[g][(c, kh, kw)][(n, i, j)] = x[n, g*Cg + c, tap]   (0 in the padding)
 * of Kg = Cg * kh * kw rows and NP columns, and with y' = y as [O, NP]
 * (channels first: y'[o][(n, p)] = y[n, o, p]):
 *   conv2d:                 y'_g = w_g [Og, Kg] @ col_g,       then y = y'
 *   conv2d_backward_weight: dw_g = gy'_g [Og, NP] @ col_g^T
 *   conv2d_backward_input:  dcol_g = w_g^T @ gy'_g, then each dcol element
 *                           added into dx at its tap (col2im)
 * so all three run on the GEMM's micro-kernels, one call per group over the
 * whole batch (a product large enough for the GEMM's threads). The column
 * matrix lives in the workspace (Kg * G * NP floats); the gathers and the
 * permutes between [N, O, P] and [O, NP] are loop nests the scheduler
 * vectorizes and parallelizes like any other. The implicit version, which
 * gathers the windows while packing B instead of materializing col, is the
 * next step (spec/jit.md, "Convolution"). */

typedef struct ConvDims {
    int64_t N, C, H, W, O, Ho, Wo, G, Cg, Og, kh, kw, P, NP, Kg;
    /* the batch is cut into chunks of nb images (NPc = nb * P columns) so
     * that the column matrix stays under CONV_COL_FLOATS; n0: the chunk's
     * first image (NULL: 0, one chunk) */
    int64_t nb, NPc;
    LpExpr *n0;
} ConvDims;

/* Column matrix budget (floats): 16 MiB, the whole batch of a training
 * step of examples/fashion_cnn.tt, where evaluating 10000 images at once
 * would otherwise take a gigabyte. Tests lower it (lp_set_conv_col_budget)
 * to cut small batches into chunks. */
#define CONV_COL_FLOATS ((int64_t)4 << 20)
static int64_t conv_col_budget = CONV_COL_FLOATS;

void lp_set_conv_col_budget(int64_t floats) {
    conv_col_budget = floats > 0 ? floats : CONV_COL_FLOATS;
}

static ConvDims conv_dims(const IrGraph *g, const IrNode *n) {
    const Shape *xs, *ws, *ys;
    if (n->op == OP_CONV2D || n->op == OP_QCONV2D) {
        xs = &ir_node(g, n->in[0])->shape;
        ws = &ir_node(g, n->in[1])->shape;
        ys = &n->shape;
    } else if (n->op == OP_CONV2D_BACKWARD_INPUT) {
        ys = &ir_node(g, n->in[0])->shape;
        ws = &ir_node(g, n->in[1])->shape;
        xs = &n->shape;
    } else {
        xs = &ir_node(g, n->in[0])->shape;
        ys = &ir_node(g, n->in[1])->shape;
        ws = &n->shape;
    }
    ConvDims d;
    d.N = xs->d[0];
    d.C = xs->d[1];
    d.H = xs->d[2];
    d.W = xs->d[3];
    d.O = ws->d[0];
    d.Cg = ws->d[1];
    d.kh = ws->d[2];
    d.kw = ws->d[3];
    d.Ho = ys->d[2];
    d.Wo = ys->d[3];
    d.G = n->attr.win.groups;
    d.Og = d.O / d.G;
    d.P = d.Ho * d.Wo;
    d.NP = d.N * d.P;
    d.Kg = d.Cg * d.kh * d.kw;
    d.nb = d.N;
    d.NPc = d.NP;
    d.n0 = NULL;
    return d;
}

/* The rule measured by bench/bench_conv.c (spec/jit.md, "Convolution"):
 * the lanes where they win (lp_conv_lanes_rule, lower_conv_lanes.c);
 * else the GEMM once each group's product has a few rows and a reduction
 * worth packing. With 1-3 output channels per group the JIT's GEMM
 * computes the forward straight from the image when its output rows have
 * at least 8 positions (gather_small_m in compiler/gemm/gemm_driver.c).
 * ttc's loop GEMM (lp_lower: explicit im2col only) was not measured
 * there: direct, which needs at most the lanes' slots as workspace. */
bool lp_conv_uses_gemm(const IrGraph *g, int id, bool gather) {
    ConvDims d = conv_dims(g, ir_node(g, id));
    if (d.N == 0 || d.P == 0 || d.O == 0 || d.Kg == 0 || d.C == 0) return false;
    if (lp_conv_lanes_rule(g, id)) return false;
    return d.Kg >= 4 && (d.Og >= 4 || (gather && d.Wo >= 8));
}

bool lw_conv_epilogue_ok(const Lower *L, int id) {
    return lw_conv_gemm(L, id) || lw_conv_lanes(L, id);
}

bool lw_conv_lanes(const Lower *L, int id) {
    return !lw_conv_gemm(L, id) && lp_conv_lanes(L->g, id);
}

/* Node id's lowering: its own (ctune.h) or the graph's. */
static LpConvLowering conv_mode(const Lower *L, int id) {
    return L->conv_of && L->conv_of[id] != LP_CONV_AUTO ? L->conv_of[id] : L->conv;
}

bool lw_conv_gemm(const Lower *L, int id) {
    LpConvLowering mode = conv_mode(L, id);
    if (mode == LP_CONV_DIRECT) return false;
    if (mode == LP_CONV_IM2COL || mode == LP_CONV_IMPLICIT) {
        ConvDims d = conv_dims(L->g, node(L, id));
        return d.N > 0 && d.P > 0 && d.O > 0 && d.Kg > 0 && d.C > 0;
    }
    return lp_conv_uses_gemm(L->g, id, L->implicit);
}

/* The rule measured by bench/bench_conv.c (spec/jit.md): implicit im2col
 * for the forward and the weight gradient (no column matrix: the GEMM
 * gathers the windows while it packs B); the input gradient keeps its
 * explicit col2im. */
static bool conv_implicit(const Lower *L, int id) {
    const IrNode *n = node(L, id);
    LpConvLowering mode = conv_mode(L, id);
    if (!L->implicit || mode == LP_CONV_IM2COL) return false;
    if (n->op == OP_QCONV2D) return false; /* the int8 GEMM does not gather */
    if (n->op != OP_CONV2D_BACKWARD_INPUT) return true;
    /* the input gradient as a convolution of gy (below): stride 1, and
     * padding within the kernel's extent; by the rule at least 32 input
     * channels per group, the rows of its product (bench_conv: with 1 or
     * 16 the packing of B is spread over too few rows, and the explicit
     * product, Kg rows, wins by up to 2.5x) */
    const IrWindow *w = &n->attr.win;
    ConvDims d = conv_dims(L->g, n);
    return w->stride[0] == 1 && w->stride[1] == 1 && w->padding[0] <= (d.kh - 1) * w->dilation[0] &&
           w->padding[1] <= (d.kw - 1) * w->dilation[1] && (mode == LP_CONV_IMPLICIT || d.Cg >= 32);
}

/* A buffer holding node id densely (row-major in its shape) from offset
 * *off: its own buffer, the buffer under the index remaps fused into it
 * when they keep it dense, else a dense copy into a temporary. */
static int dense_operand(Lower *L, int id, int64_t *off) {
    const Shape *s = &node(L, id)->shape;
    int64_t st[IR_MAXDIM], ds[IR_MAXDIM];
    int b;
    strides(s, ds);
    if (strided_view(L, id, &b, off, st)) {
        bool dense = true;
        for (int k = 0; k < s->ndim; k++) dense = dense && (s->d[k] == 1 || st[k] == ds[k]);
        if (dense) return b;
    }
    LpProg *p = L->p;
    b = lp_add_buf(p, LB_TEMP, 0, node(L, id)->dtype, s, id);
    LpExpr *idx[IR_MAXDIM];
    open_dims(p, s, idx);
    lp_store(p, b, linearize(p, idx, s), value_at(L, id, idx));
    close_n(p, s->ndim);
    *off = 0;
    return b;
}

/* The shape of x with its padding: [N, C, H + 2 ph, W + 2 pw]. */
static Shape padded_shape(const ConvDims *d, const IrWindow *win) {
    return (Shape){4, {d->N, d->C, d->H + 2 * win->padding[0], d->W + 2 * win->padding[1]}};
}

/* Opens the loops of the column matrix, (c over all G * Cg channels, kh,
 * kw, n, i, j), and returns col's linear index; xi: the tap in the padded
 * input (padded_shape), affine in the loop variables: with stride 1 the
 * innermost loop reads and writes contiguously, so the gather and the
 * col2im vectorize without masks. n_outer: the image loop first (n, c, kh,
 * kw, i, j), for the col2im: each image then adds only into its own block
 * of the padded input, so the loop runs threaded (lp_row_local), and a
 * channel's plane stays in L1 over its kh * kw taps. */
static LpExpr *col_loops(Lower *L, const ConvDims *d, const IrWindow *win, LpExpr **xi,
                         bool n_outer) {
    LpProg *p = L->p;
    LpExpr *n = n_outer ? lp_open_loop(p, d->nb) : NULL;
    LpExpr *c = lp_open_loop(p, d->C), *a = lp_open_loop(p, d->kh), *b = lp_open_loop(p, d->kw);
    if (!n_outer) n = lp_open_loop(p, d->nb);
    LpExpr *i = lp_open_loop(p, d->Ho), *j = lp_open_loop(p, d->Wo);
    IrWindow w0 = *win;
    w0.padding[0] = w0.padding[1] = 0; /* positions in the padded input */
    xi[0] = d->n0 ? lp_iadd(p, d->n0, n) : n;
    xi[1] = c;
    xi[2] = tap_pos(p, &w0, 0, i, a, win->dilation[0]);
    xi[3] = tap_pos(p, &w0, 1, j, b, win->dilation[1]);
    /* row (c, a, b) of group c / Cg is row c * kh * kw + a * kw + b overall */
    LpExpr *row = lp_iadd(p, lp_imul(p, c, d->kh * d->kw), lp_iadd(p, lp_imul(p, a, d->kw), b));
    LpExpr *colp = lp_iadd(p, lp_imul(p, n, d->P), lp_iadd(p, lp_imul(p, i, d->Wo), j));
    return lp_iadd(p, lp_imul(p, row, d->NPc), colp);
}

static bool has_padding(const IrWindow *win) {
    return win->padding[0] > 0 || win->padding[1] > 0;
}

/* The loops over x's elements; *po: the element's linear index in the
 * padded input. */
static void padded_loops(Lower *L, const ConvDims *d, const IrWindow *win, LpExpr **xi,
                         LpExpr **po) {
    LpProg *p = L->p;
    Shape xs = {4, {d->N, d->C, d->H, d->W}}, ps = padded_shape(d, win);
    open_dims(p, &xs, xi);
    LpExpr *pi[4] = {xi[0], xi[1], lp_iadd(p, xi[2], lp_iconst(p, win->padding[0])),
                     lp_iadd(p, xi[3], lp_iconst(p, win->padding[1]))};
    *po = linearize(p, pi, &ps);
}

/* With padding, x is first copied into a zero-bordered temporary (a pass
 * over x, against kh * kw passes in the gather, which then needs no bounds
 * tests); -1: none. qconv2d's border is its padding value (the input zero
 * point), in i8. */
static int pad_input(Lower *L, int id, int xn, const ConvDims *d) {
    LpProg *p = L->p;
    const IrNode *n = node(L, id);
    const IrWindow *win = &n->attr.win;
    if (!has_padding(win)) return -1;
    Shape ps = padded_shape(d, win);
    bool q = n->op == OP_QCONV2D;
    int src = lp_add_buf(p, LB_TEMP, 0, q ? TY_I8 : TY_F32, &ps, id);
    /* the conv's kernel's own: LLVM may then widen the copy below (rows of
     * W floats, fully unrolled) without proving that x is elsewhere; as a
     * scalar move per element it cost 5-7% of fashion conv1's forward */
    p->bufs[src].scratch = true;
    fill(p, src, q ? lp_const_i(p, LT_I8, (int64_t)n->attr.value) : lp_const_f(p, LT_F32, 0));
    LpExpr *xi[4], *po;
    padded_loops(L, d, win, xi, &po);
    lp_store(p, src, po, value_at(L, xn, xi));
    close_n(p, 4);
    return src;
}

/* col = im2col(x) of the chunk into the temporary col [G * Kg, NPc]; src:
 * pad_input's */
static void gather_col(Lower *L, int id, int xn, int src, int col, const ConvDims *d) {
    LpProg *p = L->p;
    const IrWindow *win = &node(L, id)->attr.win;
    LpExpr *xi[4];
    LpExpr *ci = col_loops(L, d, win, xi, false);
    Shape ps = padded_shape(d, win);
    /* no padding: x read where it is (through a fused remap, if any) */
    LpExpr *v = src >= 0 ? lp_load(p, src, linearize(p, xi, &ps)) : value_at(L, xn, xi);
    lp_store(p, col, ci, v);
    close_n(p, 6);
}

/* Opens the loops (o, n, i, j) over the chunk's [nb, O, P] block of y, and
 * returns the linear index in its channels-first layout [O, NPc]; yi: the
 * index in y. epi: the loop over o, right after the GEMM of [O, NPc], is
 * its epilogue: row o is copied out while it is in cache, on the GEMM's
 * threads. */
static LpExpr *cf_loops(LpProg *p, const ConvDims *d, LpExpr **yi, bool epi) {
    yi[1] = lp_open_loop(p, d->O);
    if (epi) lp_mark_epilogue(p);
    LpExpr *n = lp_open_loop(p, d->nb);
    yi[2] = lp_open_loop(p, d->Ho);
    yi[3] = lp_open_loop(p, d->Wo);
    yi[0] = d->n0 ? lp_iadd(p, d->n0, n) : n;
    return lp_iadd(p, lp_imul(p, yi[1], d->NPc),
                   lp_iadd(p, lp_imul(p, n, d->P), lp_iadd(p, lp_imul(p, yi[2], d->Wo), yi[3])));
}

/* The chunk of the [N, O, P] value of node yn into t [O, NPc] */
static void channels_first(Lower *L, int yn, int t, const ConvDims *d) {
    LpExpr *yi[4];
    LpExpr *ti = cf_loops(L->p, d, yi, false);
    lp_store(L->p, t, ti, value_at(L, yn, yi));
    close_n(L->p, 4);
}

/* The value stored at yi of the conv2d id's result, acc being the
 * product's element there: acc, or with a convolution epilogue
 * (decide_conv_epilogues) the root's value, its elementwise chain (bias,
 * BatchNorm's per-channel affine, ReLU) applied to acc. */
LpExpr *lw_conv_result(Lower *L, int id, LpExpr **yi, LpExpr *acc) {
    if (L->epi_root < 0) return acc;
    L->epi_node = id;
    L->epi_val = acc;
    LpExpr *v = node_expr(L, L->epi_root, yi);
    L->epi_node = -1;
    return v;
}

/* One GEMM per group: C_g = op(A_g) @ op(B_g), the offsets of group g
 * being g times the strides given. */
static void group_gemms(LpProg *p, const ConvDims *d, LpGemm g, int64_t as, int64_t bs, int64_t cs,
                        int64_t aoff, int64_t boff) {
    LpExpr *gi = lp_open_loop(p, d->G);
    g.aoff = lp_iadd(p, lp_iconst(p, aoff), lp_imul(p, gi, as));
    g.boff = lp_iadd(p, lp_iconst(p, boff), lp_imul(p, gi, bs));
    g.coff = lp_imul(p, gi, cs);
    lp_gemm(p, &g);
    lp_close_loop(p);
}

/* The largest divisor of N whose chunk of columns fits the budget (1 at
 * least), so that every chunk has the same size. */
static int64_t chunk_images(const ConvDims *d) {
    int64_t per = d->G * d->Kg * d->P, best = 1;
    for (int64_t nb = 1; nb <= d->N; nb++)
        if (d->N % nb == 0 && nb * per <= conv_col_budget) best = nb;
    return best;
}

/* The GEMM's gather of (padded) x for group 0: the taps (c, kh, kw) and
 * the positions (n, i, j) as TtGemmGather digits; taps_rows: the taps are
 * op(B)'s rows (forward), else its columns (weight gradient). */
static void set_gather(LpGemm *g, const ConvDims *d, const IrWindow *win, bool taps_rows) {
    int64_t Hp = d->H + 2 * win->padding[0], Wp = d->W + 2 * win->padding[1];
    int64_t tdim[2] = {d->kh, d->kw}, pdim[2] = {d->Ho, d->Wo};
    int64_t tstr[3] = {Hp * Wp, win->dilation[0] * Wp, win->dilation[1]};
    int64_t pstr[3] = {d->C * Hp * Wp, win->stride[0] * Wp, win->stride[1]};
    g->gather = true;
    memcpy(g->rdim, taps_rows ? tdim : pdim, sizeof g->rdim);
    memcpy(g->rstr, taps_rows ? tstr : pstr, sizeof g->rstr);
    memcpy(g->cdim, taps_rows ? pdim : tdim, sizeof g->cdim);
    memcpy(g->cstr, taps_rows ? pstr : tstr, sizeof g->cstr);
}

static void lower_conv_input_implicit(Lower *L, int id, int out);

/* Implicit im2col: no column matrix, the GEMM reads the windows of x (or of
 * its zero-bordered copy) while it packs B, over the whole batch:
 *   conv2d:                 y'_g = w_g @ gather(x),   then y = y'
 *   conv2d_backward_weight: dw_g = gy'_g @ gather(x)^T */
static void lower_conv_implicit(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    if (n->op == OP_CONV2D_BACKWARD_INPUT) {
        lower_conv_input_implicit(L, id, out);
        return;
    }
    LpProg *p = L->p;
    ConvDims d = conv_dims(L->g, n);
    const IrWindow *win = &n->attr.win;
    int64_t xoff = 0, woff = 0, Hp = d.H + 2 * win->padding[0], Wp = d.W + 2 * win->padding[1];
    int src = pad_input(L, id, n->in[0], &d);
    int x = src >= 0 ? src : dense_operand(L, n->in[0], &xoff);
    Shape ts = {2, {d.O, d.NP}};
    if (n->op == OP_CONV2D) {
        /* y'_g [Og, NP] stored straight as y [N, O, P] (TtGemmOut: column
         * (n, p) of row o at n*O*P + o*P + p): no [O, NP] temporary and no
         * copy; with one image the rows are y's own */
        int w = dense_operand(L, n->in[1], &woff);
        LpGemm g = {w, x, out, NULL, NULL, NULL, d.Og, d.NP, d.Kg, d.Kg, 0, d.P, false, false};
        if (d.N > 1) {
            g.ocols = d.P;
            g.ostride = d.O * d.P;
        }
        set_gather(&g, &d, win, true);
        group_gemms(p, &d, g, d.Og * d.Kg, d.Cg * Hp * Wp, d.Og * d.P, woff, xoff);
        if (L->epi_root < 0) return;
        /* the chain (bias, BatchNorm, ReLU) in place on y, row o (one
         * group: as the GEMM finishes its rows, on its threads) */
        LpExpr *yi[4];
        yi[1] = lp_open_loop(p, d.O);
        if (d.G == 1) lp_mark_epilogue(p);
        for (int k = 0; k < 4; k++)
            if (k != 1) yi[k] = lp_open_loop(p, n->shape.d[k]);
        LpExpr *yo = linearize(p, yi, &n->shape);
        lp_store(p, out, yo, lw_conv_result(L, id, yi, lp_load(p, out, yo)));
        close_n(p, 4);
    } else if (n->op == OP_CONV2D_BACKWARD_WEIGHT) {
        int gy = lp_add_buf(p, LB_TEMP, 0, TY_F32, &ts, id);
        channels_first(L, n->in[1], gy, &d);
        LpGemm g = {gy, x, out, NULL, NULL, NULL, d.Og, d.Kg, d.NP, d.NP, 0, d.Kg, false, false};
        set_gather(&g, &d, win, false);
        group_gemms(p, &d, g, d.Og * d.NP, d.Cg * Hp * Wp, d.Og * d.Kg, 0, xoff);
    }
}

/* The input gradient with stride 1 is a convolution of gy, zero-bordered
 * by q = (k - 1) * dilation - padding on each side, with the kernel
 * flipped and its two channel dims swapped:
 *   dx[n, c, h, w] = sum over (o, a, b) of
 *       gy_q[n, o, h + a*d0, w + b*d1] * w[o, c, kh-1-a, kw-1-b]
 * so it runs as the forward does: dx'_g [Cg, N*H*W] = wt_g [Cg, Og*kh*kw]
 * @ gather(gy_q), then dx = dx' back to [N, C, H, W]. No dcol matrix and no
 * col2im's read-modify-write over it. */
static void lower_conv_input_implicit(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    ConvDims d = conv_dims(L->g, n);
    const IrWindow *win = &n->attr.win;
    int64_t q0 = (d.kh - 1) * win->dilation[0] - win->padding[0];
    int64_t q1 = (d.kw - 1) * win->dilation[1] - win->padding[1];
    int64_t Hq = d.Ho + 2 * q0, Wq = d.Wo + 2 * q1, HW = d.H * d.W, NX = d.N * HW;
    int64_t Kt = d.Og * d.kh * d.kw;
    /* gy_q: gy inside a zero border (gy itself when q = 0) */
    int64_t gyoff = 0;
    int gq;
    if (q0 > 0 || q1 > 0) {
        Shape qs = {4, {d.N, d.O, Hq, Wq}}, gs = {4, {d.N, d.O, d.Ho, d.Wo}};
        gq = lp_add_buf(p, LB_TEMP, 0, TY_F32, &qs, id);
        fill(p, gq, lp_const_f(p, LT_F32, 0));
        LpExpr *gi[4];
        open_dims(p, &gs, gi);
        LpExpr *qi[4] = {gi[0], gi[1], lp_iadd(p, gi[2], lp_iconst(p, q0)),
                         lp_iadd(p, gi[3], lp_iconst(p, q1))};
        lp_store(p, gq, linearize(p, qi, &qs), value_at(L, n->in[0], gi));
        close_n(p, 4);
    } else {
        gq = dense_operand(L, n->in[0], &gyoff);
    }
    /* wt[g][c][(o, a, b)] = w[g*Og + o, c, kh-1-a, kw-1-b] */
    Shape wts = {2, {d.C, Kt}};
    int wt = lp_add_buf(p, LB_TEMP, 0, TY_F32, &wts, id);
    {
        LpExpr *gi = lp_open_loop(p, d.G), *c = lp_open_loop(p, d.Cg), *o = lp_open_loop(p, d.Og);
        LpExpr *a = lp_open_loop(p, d.kh), *b = lp_open_loop(p, d.kw);
        LpExpr *wi[4] = {lp_iadd(p, lp_imul(p, gi, d.Og), o), c,
                         lp_iadd(p, lp_iconst(p, d.kh - 1), lp_imul(p, a, -1)),
                         lp_iadd(p, lp_iconst(p, d.kw - 1), lp_imul(p, b, -1))};
        LpExpr *row = lp_iadd(p, lp_imul(p, gi, d.Cg), c);
        LpExpr *colk = lp_iadd(p, lp_imul(p, o, d.kh * d.kw), lp_iadd(p, lp_imul(p, a, d.kw), b));
        lp_store(p, wt, lp_iadd(p, lp_imul(p, row, Kt), colk), value_at(L, n->in[1], wi));
        close_n(p, 5);
    }
    Shape ts = {2, {d.C, NX}};
    int t = d.N == 1 ? out : lp_add_buf(p, LB_TEMP, 0, TY_F32, &ts, id);
    LpGemm g = {wt, gq, t, NULL, NULL, NULL, d.Cg, NX, Kt, Kt, 0, NX, false, false};
    g.gather = true;
    g.rdim[0] = d.kh;
    g.rdim[1] = d.kw;
    g.rstr[0] = Hq * Wq;
    g.rstr[1] = win->dilation[0] * Wq;
    g.rstr[2] = win->dilation[1];
    g.cdim[0] = d.H;
    g.cdim[1] = d.W;
    g.cstr[0] = d.O * Hq * Wq;
    g.cstr[1] = Wq;
    g.cstr[2] = 1;
    group_gemms(p, &d, g, d.Cg * Kt, d.Og * Hq * Wq, d.Cg * NX, 0, gyoff);
    if (t == out) return;
    /* dx[n, c, h, w] = t[c, (n, h, w)] */
    LpExpr *xi[4];
    Shape xs = {4, {d.N, d.C, d.H, d.W}};
    xi[1] = lp_open_loop(p, d.C);
    xi[0] = lp_open_loop(p, d.N);
    xi[2] = lp_open_loop(p, d.H);
    xi[3] = lp_open_loop(p, d.W);
    LpExpr *ti =
        lp_iadd(p, lp_imul(p, xi[1], NX),
                lp_iadd(p, lp_imul(p, xi[0], HW), lp_iadd(p, lp_imul(p, xi[2], d.W), xi[3])));
    lp_store(p, out, linearize(p, xi, &xs), lp_load(p, t, ti));
    close_n(p, 4);
}

static void lower_conv_gemm(Lower *L, int id, int out) {
    if (conv_implicit(L, id)) {
        lower_conv_implicit(L, id, out);
        return;
    }
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    ConvDims d = conv_dims(L->g, n);
    const IrWindow *win = &n->attr.win;
    d.nb = chunk_images(&d);
    d.NPc = d.nb * d.P;
    int64_t chunks = d.N / d.nb, woff = 0;
    Shape cs = {2, {d.G * d.Kg, d.NPc}}, ts = {2, {d.O, d.NPc}}, ps = padded_shape(&d, win);
    if (n->op == OP_CONV2D || n->op == OP_QCONV2D) {
        /* qconv2d: the same with i8 columns and the int8 GEMM into i32 */
        bool iq = n->op == OP_QCONV2D;
        int src = pad_input(L, id, n->in[0], &d);
        int w = dense_operand(L, n->in[1], &woff);
        int col = lp_add_buf(p, LB_TEMP, 0, iq ? TY_I8 : TY_F32, &cs, id);
        bool direct = d.N == 1 && L->epi_root < 0; /* [O, P] is y */
        int t = direct ? out : lp_add_buf(p, LB_TEMP, 0, iq ? TY_I32 : TY_F32, &ts, id);
        LpExpr *q = lp_open_loop(p, chunks);
        d.n0 = chunks > 1 ? lp_imul(p, q, d.nb) : NULL;
        gather_col(L, id, n->in[0], src, col, &d);
        LpGemm g = {w,     col,  t,    NULL,  NULL,  NULL,  d.Og,
                    d.NPc, d.Kg, d.Kg, d.NPc, d.NPc, false, false};
        g.q = iq;
        group_gemms(p, &d, g, d.Og * d.Kg, d.Kg * d.NPc, d.Og * d.NPc, woff, 0);
        if (!direct) { /* y = t, back to [N, O, P] */
            LpExpr *yi[4];
            LpExpr *ti = cf_loops(p, &d, yi, false);
            lp_store(p, out, linearize(p, yi, &n->shape),
                     lw_conv_result(L, id, yi, lp_load(p, t, ti)));
            close_n(p, 4);
        }
        lp_close_loop(p);
    } else if (n->op == OP_CONV2D_BACKWARD_WEIGHT) {
        int src = pad_input(L, id, n->in[0], &d);
        int col = lp_add_buf(p, LB_TEMP, 0, TY_F32, &cs, id);
        int gy = lp_add_buf(p, LB_TEMP, 0, TY_F32, &ts, id);
        if (chunks > 1) fill(p, out, lp_const_f(p, LT_F32, 0));
        LpExpr *q = lp_open_loop(p, chunks);
        d.n0 = chunks > 1 ? lp_imul(p, q, d.nb) : NULL;
        gather_col(L, id, n->in[0], src, col, &d);
        channels_first(L, n->in[1], gy, &d);
        /* dw += the chunk's share (the first chunk alone: dw =) */
        LpGemm g = {gy,    col,   out,   NULL, NULL,  NULL, d.Og,      d.Kg,
                    d.NPc, d.NPc, d.NPc, d.Kg, false, true, chunks > 1};
        group_gemms(p, &d, g, d.Og * d.NPc, d.Kg * d.NPc, d.Og * d.Kg, 0, 0);
        lp_close_loop(p);
    } else { /* OP_CONV2D_BACKWARD_INPUT */
        int w = dense_operand(L, n->in[1], &woff);
        int gy = lp_add_buf(p, LB_TEMP, 0, TY_F32, &ts, id);
        int dcol = lp_add_buf(p, LB_TEMP, 0, TY_F32, &cs, id);
        /* col2im into dx, or into a zero-bordered temporary whose inside
         * is then dx */
        int acc = has_padding(win) ? lp_add_buf(p, LB_TEMP, 0, TY_F32, &ps, id) : out;
        fill(p, acc, lp_const_f(p, LT_F32, 0));
        LpExpr *q = lp_open_loop(p, chunks);
        d.n0 = chunks > 1 ? lp_imul(p, q, d.nb) : NULL;
        channels_first(L, n->in[0], gy, &d);
        LpGemm g = {w,     gy,   dcol, NULL,  NULL,  NULL, d.Kg,
                    d.NPc, d.Og, d.Kg, d.NPc, d.NPc, true, false};
        group_gemms(p, &d, g, d.Og * d.Kg, d.Og * d.NPc, d.Kg * d.NPc, woff, 0);
        LpExpr *xi[4];
        LpExpr *ci = col_loops(L, &d, win, xi, true);
        LpExpr *xo = linearize(p, xi, &ps);
        lp_store(p, acc, xo, lp_bin(p, LO_ADD, lp_load(p, acc, xo), lp_load(p, dcol, ci)));
        close_n(p, 6);
        lp_close_loop(p);
        if (acc == out) return;
        LpExpr *po;
        padded_loops(L, &d, win, xi, &po);
        lp_store(p, out, linearize(p, xi, &n->shape), lp_load(p, acc, po));
        close_n(p, 4);
    }
}

/* Opens the loops over the taps of window (i, j) of a pooling of x (shape
 * xs): their positions into xi[2], xi[3], clamped as tap_clamp, which
 * gives the condition that the tap is inside x (NULL: always). */
static LpExpr *pool_taps(LpProg *p, const IrWindow *win, const Shape *xs, LpExpr **oi,
                         LpExpr **xi) {
    xi[0] = oi[0];
    xi[1] = oi[1];
    for (int k = 0; k < 2; k++)
        xi[2 + k] = tap_pos(p, win, k, oi[2 + k], lp_open_loop(p, win->kernel[k]), 1);
    return tap_clamp(p, win, xi, xs->d[2], xs->d[3]);
}

/* kh * kw, the divisor of an average pooling */
static LpExpr *pool_size(LpProg *p, const IrWindow *win) {
    return lp_const_f(p, LT_F32, (double)(win->kernel[0] * win->kernel[1]));
}

/* max_pool2d of i8: best starts at -128, below or at every element */
static void lower_max_pool_i8(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    const Shape *xs = &node(L, n->in[0])->shape;
    const IrWindow *win = &n->attr.win;
    LpExpr *oi[4], *xi[4];
    open_dims(p, &n->shape, oi);
    LpExpr *best = lp_local(p, LT_I8, lp_const_i(p, LT_I8, INT8_MIN));
    LpExpr *ok = pool_taps(p, win, xs, oi, xi);
    LpExpr *v = value_at(L, n->in[0], xi);
    if (ok) v = lp_select(p, ok, v, lp_const_i(p, LT_I8, INT8_MIN));
    v = lp_local(p, LT_I8, v);
    lp_set(p, best, lp_select(p, lp_bin(p, LO_GT, v, best), v, best));
    close_n(p, 2);
    lp_store(p, out, linearize(p, oi, &n->shape), best);
    close_n(p, 4);
}

/* max_pool2d (the value) and max_pool2d_index (its flat index into x):
 * best starts at -inf and the index at the window's first element in
 * range; a tap wins when it is greater or NaN, as the reference's */
static void lower_max_pool(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    const Shape *xs = &node(L, n->in[0])->shape;
    const IrWindow *win = &n->attr.win;
    if (n->dtype == TY_I8) {
        lower_max_pool_i8(L, id, out);
        return;
    }
    LpExpr *oi[4], *xi[4], *first[4];
    open_dims(p, &n->shape, oi);
    first[0] = oi[0];
    first[1] = oi[1];
    for (int k = 0; k < 2; k++) {
        LpExpr *h0 = tap_pos(p, win, k, oi[2 + k], lp_iconst(p, 0), 1);
        first[2 + k] = lp_select(p, lp_bin(p, LO_GE, h0, lp_iconst(p, 0)), h0, lp_iconst(p, 0));
    }
    LpExpr *best = lp_local(p, LT_F32, lp_const_f(p, LT_F32, -INFINITY));
    LpExpr *bi = lp_local(p, LT_I64, linearize(p, first, xs));
    LpExpr *ok = pool_taps(p, win, xs, oi, xi);
    LpExpr *v = lp_local(p, LT_F32, tap_value(L, n->in[0], xi, ok, -INFINITY));
    LpExpr *take = lp_bin(p, LO_OR, lp_bin(p, LO_GT, v, best), lp_bin(p, LO_NE, v, v));
    lp_set(p, bi, lp_select(p, take, linearize(p, xi, xs), bi));
    lp_set(p, best, lp_select(p, take, v, best));
    close_n(p, 2);
    LpExpr *res = n->op == OP_MAX_POOL2D ? best : lp_cast(p, LT_I32, bi);
    lp_store(p, out, linearize(p, oi, &n->shape), res);
    if (L->twin_of[id] >= 0) /* the backward's index, from the same loop */
        lp_store(p, L->buf[L->twin_of[id]], linearize(p, oi, &n->shape), lp_cast(p, LT_I32, bi));
    close_n(p, 4);
}

/* avg_pool2d: the sum of the taps in range over kh * kw */
static void lower_avg_pool(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    const Shape *xs = &node(L, n->in[0])->shape;
    const IrWindow *win = &n->attr.win;
    LpExpr *oi[4], *xi[4];
    open_dims(p, &n->shape, oi);
    LpExpr *acc = lp_local(p, LT_F32, lp_const_f(p, LT_F32, 0));
    LpExpr *ok = pool_taps(p, win, xs, oi, xi);
    lp_set(p, acc, when(p, ok, lp_bin(p, LO_ADD, acc, value_at(L, n->in[0], xi)), acc));
    close_n(p, 2);
    LpExpr *div = pool_size(p, win);
    lp_store(p, out, linearize(p, oi, &n->shape), lp_bin(p, LO_DIV, acc, div));
    close_n(p, 4);
}

/* avg_pool2d_backward: dx = zeros, then gy / (kh * kw) added over each
 * window */
static void lower_avg_pool_backward(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    const Shape *gs = &node(L, n->in[0])->shape, *xs = &n->shape;
    const IrWindow *win = &n->attr.win;
    fill(p, out, lp_const_f(p, LT_F32, 0));
    LpExpr *gi[4], *xi[4];
    open_dims(p, gs, gi);
    LpExpr *div = pool_size(p, win);
    LpExpr *v = lp_local(p, LT_F32, lp_bin(p, LO_DIV, value_at(L, n->in[0], gi), div));
    LpExpr *ok = pool_taps(p, win, xs, gi, xi);
    LpExpr *o = linearize(p, xi, xs), *old = lp_load(p, out, o);
    LpExpr *nv = lp_bin(p, LO_ADD, old, v);
    lp_store(p, out, o, when(p, ok, nv, old));
    close_n(p, 6);
}

/* -- sorting and scans along one axis --
 *
 * Both loop over the rows: every index of the input but the axis. */

/* Opens a loop per dim of s but ax (vars into idx); returns the row's
 * number among the s numel / s->d[ax] rows. */
static LpExpr *open_rows(LpProg *p, const Shape *s, int ax, LpExpr **idx) {
    LpExpr *row = lp_iconst(p, 0);
    for (int k = 0; k < s->ndim; k++) {
        if (k == ax) continue;
        idx[k] = lp_open_loop(p, s->d[k]);
        row = lp_iadd(p, lp_imul(p, row, s->d[k]), idx[k]);
    }
    return row;
}

/* cumsum: per row, acc += x along the axis (from the end when reversed),
 * each partial sum stored; f32 in double, as the reference */
static void lower_cumsum(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    const Shape *s = &n->shape;
    int ax = n->attr.axis;
    int64_t A = s->d[ax];
    if (shape_numel(s) == 0) return;
    LpType t = lp_type_of(n->dtype), at = t == LT_F32 ? LT_F64 : t;
    LpExpr *idx[IR_MAXDIM];
    open_rows(p, s, ax, idx);
    LpExpr *acc = lp_local(p, at, zero_of(p, at));
    LpExpr *j = lp_open_loop(p, A);
    idx[ax] = n->attr.reverse ? lp_iadd(p, lp_imul(p, j, -1), lp_iconst(p, A - 1)) : j;
    lp_set(p, acc, lp_bin(p, LO_ADD, acc, lp_cast(p, at, value_at(L, n->in[0], idx))));
    lp_store(p, out, linearize(p, idx, s), lp_cast(p, t, acc));
    lp_close_loop(p);
    close_n(p, s->ndim - 1);
}

static LpExpr *not_b(LpProg *p, LpExpr *x) {
    return lp_select(p, x, lp_const_i(p, LT_BOOL, 0), lp_const_i(p, LT_BOOL, 1));
}

/* a < b with NaN the largest value (ints: a < b) */
static LpExpr *less_nan(LpProg *p, LpExpr *a, LpExpr *b) {
    LpExpr *lt = lp_bin(p, LO_LT, a, b);
    if (a->ty != LT_F32) return lt;
    return lp_bin(p, LO_OR, lt, lp_bin(p, LO_AND, lp_bin(p, LO_EQ, a, a), lp_bin(p, LO_NE, b, b)));
}

/* argsort: a bottom-up merge sort of each row's indices, as the reference,
 * in two i32 temporaries [rows, P] used in turn (P: the axis rounded up to
 * a power of two; the indices >= A are padding that sorts last). Merging
 * two runs of w takes exactly 2w steps, so the loops have fixed extents:
 * each step takes the left run's head unless the right's comes strictly
 * before it (stability), and advances that run. Reads stay in bounds: a
 * run's position is clamped to its last element, the key's index to A - 1. */
static void lower_argsort(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    const Shape *s = &n->shape;
    if (s->ndim == 0) {
        lp_store(p, out, lp_iconst(p, 0), lp_const_i(p, LT_I32, 0));
        return;
    }
    if (shape_numel(s) == 0) return;
    int ax = n->attr.axis;
    int64_t A = s->d[ax], P = 1, R = shape_numel(s) / A;
    while (P < A) P *= 2;
    Shape ts = shape_make(2, (int64_t[]){R, P});
    int buf[2] = {lp_add_buf(p, LB_TEMP, 0, TY_I32, &ts, id),
                  lp_add_buf(p, LB_TEMP, 0, TY_I32, &ts, id)};
    LpExpr *idx[IR_MAXDIM], *row;
    row = open_rows(p, s, ax, idx);
    LpExpr *k = lp_open_loop(p, P);
    lp_store(p, buf[0], lp_iadd(p, lp_imul(p, row, P), k), lp_cast(p, LT_I32, k));
    lp_close_loop(p);
    close_n(p, s->ndim - 1);
    int src = 0;
    for (int64_t w = 1; w < P; w *= 2, src ^= 1) {
        row = open_rows(p, s, ax, idx);
        LpExpr *blk = lp_open_loop(p, P / (2 * w));
        LpExpr *base = lp_iadd(p, lp_imul(p, row, P), lp_imul(p, blk, 2 * w));
        LpExpr *pl = lp_local(p, LT_I64, lp_iconst(p, 0)),
               *pr = lp_local(p, LT_I64, lp_iconst(p, 0));
        LpExpr *step = lp_open_loop(p, 2 * w);
        LpExpr *last = lp_iconst(p, w - 1), *wc = lp_iconst(p, w);
        LpExpr *lin = lp_bin(p, LO_LT, pl, wc), *rin = lp_bin(p, LO_LT, pr, wc);
        LpExpr *il =
            lp_local(p, LT_I64,
                     lp_cast(p, LT_I64,
                             lp_load(p, buf[src], lp_iadd(p, base, lp_select(p, lin, pl, last)))));
        LpExpr *ir = lp_local(
            p, LT_I64,
            lp_cast(p, LT_I64,
                    lp_load(p, buf[src],
                            lp_iadd(p, lp_iadd(p, base, wc), lp_select(p, rin, pr, last)))));
        LpExpr *Ac = lp_iconst(p, A), *Am = lp_iconst(p, A - 1);
        LpExpr *padl = lp_bin(p, LO_GE, il, Ac), *padr = lp_bin(p, LO_GE, ir, Ac);
        idx[ax] = lp_select(p, padl, Am, il);
        LpExpr *kl = lp_local(p, lp_type_of(node(L, n->in[0])->dtype), value_at(L, n->in[0], idx));
        idx[ax] = lp_select(p, padr, Am, ir);
        LpExpr *kr = lp_local(p, lp_type_of(node(L, n->in[0])->dtype), value_at(L, n->in[0], idx));
        LpExpr *first = n->attr.reverse ? less_nan(p, kl, kr) : less_nan(p, kr, kl);
        /* the right head goes first: it is real and the left is padding or
         * sorts after it */
        LpExpr *rb = lp_bin(p, LO_AND, not_b(p, padr), lp_bin(p, LO_OR, padl, first));
        LpExpr *take = lp_local(
            p, LT_BOOL, lp_bin(p, LO_AND, lin, lp_bin(p, LO_OR, not_b(p, rin), not_b(p, rb))));
        lp_store(p, buf[src ^ 1], lp_iadd(p, base, step),
                 lp_cast(p, LT_I32, lp_select(p, take, il, ir)));
        LpExpr *one = lp_iconst(p, 1), *zero = lp_iconst(p, 0);
        lp_set(p, pl, lp_bin(p, LO_ADD, pl, lp_select(p, take, one, zero)));
        lp_set(p, pr, lp_bin(p, LO_ADD, pr, lp_select(p, take, zero, one)));
        lp_close_loop(p);
        lp_close_loop(p);
        close_n(p, s->ndim - 1);
    }
    row = open_rows(p, s, ax, idx);
    k = lp_open_loop(p, A);
    idx[ax] = k;
    lp_store(p, out, linearize(p, idx, s), lp_load(p, buf[src], lp_iadd(p, lp_imul(p, row, P), k)));
    lp_close_loop(p);
    close_n(p, s->ndim - 1);
}

/* write_rows(dst [..., N, D], src [..., R, D], pos) -> out. The position is
 * checked (pos outside [0, N - R] is reported, as the reference kernel
 * does) and clamped to 0 with no rows written, so a bad one never writes
 * outside the buffer. In place (out is an output aliasing dst's slot, the
 * same buffer: ir_alias_output) only the R rows of each batch are stored;
 * else every element, src's rows where the window is and dst's elsewhere.
 * The kernel begins with statements outside any loop, so kernel fusion
 * never merges it with its neighbours: attention reads the rows after. */
static void lower_write_rows(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    const Shape *os = &n->shape, *ss = &node(L, n->in[1])->shape;
    int r = os->ndim;
    int64_t N = os->d[r - 2], R = ss->d[r - 2];
    LpExpr *none[1] = {NULL};
    LpExpr *pv = lp_local(p, LT_I64, lp_cast(p, LT_I64, value_at(L, n->in[2], none)));
    lp_check(p, pv, N - R + 1, id);
    LpExpr *ok = lp_local(p, LT_BOOL,
                          lp_bin(p, LO_AND, lp_bin(p, LO_GE, pv, lp_iconst(p, 0)),
                                 lp_bin(p, LO_LE, pv, lp_iconst(p, N - R))));
    LpExpr *at = lp_local(p, LT_I64, lp_select(p, ok, pv, lp_iconst(p, 0)));
    const LpBuf *ob = &p->bufs[out];
    LpExpr *oi[IR_MAXDIM], *si[IR_MAXDIM];
    if (ob->kind == LB_OUTPUT && ir_output_alias(L->g, ob->slot) >= 0) {
        if (shape_numel(ss) == 0) return;
        for (int k = 0; k < r; k++) {
            if (k == r - 2) /* runtime trips: no row when the position is bad */
                si[k] =
                    lp_open_loop_trips(p, R, lp_select(p, ok, lp_iconst(p, R), lp_iconst(p, 0)));
            else
                si[k] = lp_open_loop(p, ss->d[k]);
            oi[k] = k == r - 2 ? lp_iadd(p, at, si[k]) : si[k];
        }
        lp_store(p, out, linearize(p, oi, os), value_at(L, n->in[1], si));
        close_n(p, r);
        return;
    }
    if (shape_numel(os) == 0) return;
    open_dims(p, os, oi);
    LpExpr *row = lp_iadd(p, oi[r - 2], lp_imul(p, at, -1)); /* the row of src, if any */
    LpExpr *in = lp_bin(p, LO_AND, ok,
                        lp_bin(p, LO_AND, lp_bin(p, LO_GE, row, lp_iconst(p, 0)),
                               lp_bin(p, LO_LT, row, lp_iconst(p, R))));
    for (int k = 0; k < r; k++) si[k] = oi[k];
    si[r - 2] = lp_select(p, in, row, lp_iconst(p, 0));
    LpExpr *v = lp_select(p, in, value_at(L, n->in[1], si), value_at(L, n->in[0], oi));
    lp_store(p, out, linearize(p, oi, os), v);
    close_n(p, r);
}

static void lower_root(Lower *L, int id) {
    const IrNode *n = node(L, id);
    int out = L->buf[id];
    int conv = L->epi_conv[id];
    char name[32];
    snprintf(name, sizeof name, "%s%s", conv >= 0 ? "conv2d_" : "", ir_ops[n->op].name);
    LpKernel *k = lp_begin_kernel(L->p, name, id, out);
    L->nkf = 0;
    if (conv >= 0) { /* the conv, this root's chain as its epilogue */
        L->epi_root = id;
        if (lw_conv_gemm(L, conv))
            lower_conv_gemm(L, conv, out);
        else
            lw_lower_conv_lanes(L, conv, out);
        L->epi_root = -1;
        goto done;
    }
    if (L->bsum[id]) {
        lower_batch_sum(L, id, out);
        goto done;
    }
    switch (n->op) {
    case OP_SUM:
    case OP_RMAX:
    case OP_ARGMAX:
        lower_reduce(L, id, out);
        break;
    case OP_MATMUL:
        lower_matmul(L, id, out);
        break;
    case OP_QMATMUL:
        lower_qmatmul(L, id, out);
        break;
    case OP_GATHER:
        lower_gather(L, id, out);
        break;
    case OP_SCATTER_ADD:
        lower_scatter(L, id, out);
        break;
    case OP_CONCAT:
        lower_concat(L, id, out);
        break;
    case OP_PAD:
        lower_pad(L, id, out);
        break;
    case OP_ARGSORT:
        lower_argsort(L, id, out);
        break;
    case OP_CUMSUM:
        lower_cumsum(L, id, out);
        break;
    case OP_ATTENTION:
    case OP_ATTENTION_LSE:
        lw_lower_attention(L, id, out);
        break;
    case OP_WRITE_ROWS:
        lower_write_rows(L, id, out);
        break;
    case OP_ATTENTION_GRAD:
        lw_lower_attention_grad(L, id, out);
        break;
    case OP_CONV2D:
    case OP_CONV2D_BACKWARD_WEIGHT:
        if (shape_numel(&n->shape) == 0) break;
        if (lw_conv_gemm(L, id))
            lower_conv_gemm(L, id, out);
        else if (lw_conv_lanes(L, id))
            lw_lower_conv_lanes(L, id, out);
        else
            lower_conv_reduce(L, id, out);
        break;
    case OP_QCONV2D:
        /* always on the int8 GEMM: an integer direct loop nest would be a
         * second lowering to keep exact, for shapes (depthwise) the pass
         * does not produce often */
        if (shape_numel(&n->shape) == 0) break;
        if (conv_dims(L->g, n).Kg == 0) /* no input channel: empty sums */
            fill(L->p, out, lp_const_i(L->p, LT_I32, 0));
        else
            lower_conv_gemm(L, id, out);
        break;
    case OP_CONV2D_BACKWARD_INPUT:
        if (shape_numel(&n->shape) == 0) break;
        if (lw_conv_gemm(L, id))
            lower_conv_gemm(L, id, out);
        else if (lw_conv_lanes(L, id))
            lw_lower_conv_lanes(L, id, out);
        else
            lower_conv_backward_input(L, id, out);
        break;
    case OP_MAX_POOL2D:
    case OP_MAX_POOL2D_INDEX:
        lower_max_pool(L, id, out);
        break;
    case OP_AVG_POOL2D:
        lower_avg_pool(L, id, out);
        break;
    case OP_AVG_POOL2D_BACKWARD:
        lower_avg_pool_backward(L, id, out);
        break;
        /* the others are fused expressions, or a CONST filled */
#define OP(NAME, name, arity, flags, form, ...) OP_CASES_UNLESS_FORM(form, kernel, OP_##NAME)
#include "ops.def"
#undef OP
    case OP__COUNT:
        TT_ASSERT(fusable(n->op) || n->op == OP_CONST);
        lower_elem(L, id, out);
        break;
    }
done:
    lp_end_kernel(L->p);
    /* the fused nodes, in node order */
    for (int i = 1; i < L->nkf; i++)
        for (int j = i; j > 0 && L->kf[j - 1] > L->kf[j]; j--) {
            int t = L->kf[j];
            L->kf[j] = L->kf[j - 1];
            L->kf[j - 1] = t;
        }
    k->nfused = L->nkf;
    k->fused = arena_alloc(&L->p->arena, (size_t)(L->nkf + 1) * sizeof *k->fused);
    memcpy(k->fused, L->kf, (size_t)L->nkf * sizeof *k->fused);
}

static LpProg *lower_graph(const IrGraph *g, bool fuse, LpConvLowering conv,
                           const LpConvLowering *conv_of, bool implicit);

LpProg *lp_lower(const IrGraph *g, bool fuse) {
    return lower_graph(g, fuse, LP_CONV_AUTO, NULL, false);
}

LpProg *lp_lower_modes(const IrGraph *g, bool fuse, LpConvLowering conv,
                       const LpConvLowering *conv_of) {
    return lower_graph(g, fuse, conv, conv_of, true);
}

LpProg *lp_lower_conv(const IrGraph *g, bool fuse, LpConvLowering conv) {
    return lower_graph(g, fuse, conv, NULL, true);
}

static LpProg *lower_graph(const IrGraph *g, bool fuse, LpConvLowering conv,
                           const LpConvLowering *conv_of, bool implicit) {
    int n = g->n;
    Lower L = {0};
    L.g = g;
    L.p = lp_new();
    L.fuse = fuse;
    L.conv = conv;
    L.conv_of = conv_of;
    L.implicit = implicit;
    L.need = tt_xcalloc((size_t)n + 1, sizeof *L.need);
    L.is_out = tt_xcalloc((size_t)n + 1, sizeof *L.is_out);
    L.fused = tt_xcalloc((size_t)n + 1, sizeof *L.fused);
    L.recomp = tt_xcalloc((size_t)n + 1, sizeof *L.recomp);
    L.bsum = tt_xcalloc((size_t)n + 1, sizeof *L.bsum);
    L.written_by_twin = tt_xcalloc((size_t)n + 1, sizeof *L.written_by_twin);
    L.twin_of = tt_xmalloc(((size_t)n + 1) * sizeof *L.twin_of);
    for (int i = 0; i < n; i++) L.twin_of[i] = -1;
    L.uses = tt_xcalloc((size_t)n + 1, sizeof *L.uses);
    L.consumer = tt_xcalloc((size_t)n + 1, sizeof *L.consumer);
    L.buf = tt_xmalloc(((size_t)n + 1) * sizeof *L.buf);
    L.kf = tt_xmalloc(((size_t)n + 1) * sizeof *L.kf);
    L.epi_conv = tt_xmalloc(((size_t)n + 1) * sizeof *L.epi_conv);
    for (int i = 0; i < n; i++) L.epi_conv[i] = -1;
    L.epi_root = L.epi_node = -1;
    LpProg *p = L.p;
    p->ninputs = g->ninputs;
    p->noutputs = g->nout;

    for (int j = 0; j < g->nout; j++) L.need[g->outputs[j]] = L.is_out[g->outputs[j]] = true;
    for (int i = n - 1; i >= 0; i--)
        if (L.need[i])
            for (int k = 0; k < node(&L, i)->nin; k++) L.need[node(&L, i)->in[k]] = true;
    for (int i = 0; i < n; i++) {
        L.buf[i] = -1;
        if (!L.need[i]) continue;
        const IrNode *x = node(&L, i);
        for (int k = 0; k < x->nin; k++) {
            L.uses[x->in[k]]++;
            L.consumer[x->in[k]] = i;
        }
    }
    if (fuse) lw_decide(&L);

    /* buffers: inputs, then each root's home (its first output slot, or a
     * temporary) */
    for (int i = 0; i < n; i++) {
        const IrNode *x = node(&L, i);
        if (!L.need[i]) continue;
        if (x->op == OP_INPUT) {
            L.buf[i] = lp_add_buf(p, LB_INPUT, x->attr.index, x->dtype, &x->shape, i);
            continue;
        }
        if (L.fused[i] || (x->op == OP_CONST && !L.is_out[i])) continue;
        int slot = -1;
        for (int j = 0; j < g->nout && slot < 0; j++)
            if (g->outputs[j] == i) slot = j;
        L.buf[i] = slot >= 0 ? lp_add_buf(p, LB_OUTPUT, slot, x->dtype, &x->shape, i)
                             : lp_add_buf(p, LB_TEMP, 0, x->dtype, &x->shape, i);
    }
    for (int i = 0; i < n; i++) {
        const IrNode *x = node(&L, i);
        if (L.need[i] && x->op != OP_INPUT && L.buf[i] >= 0 && !L.written_by_twin[i])
            lower_root(&L, i);
    }
    /* outputs not written by their node's kernel: copies */
    for (int j = 0; j < g->nout; j++) {
        int id = g->outputs[j], home = L.buf[id];
        const LpBuf *hb = &p->bufs[home];
        if (hb->kind == LB_OUTPUT && hb->slot == j) continue;
        const IrNode *x = node(&L, id);
        int ob = lp_add_buf(p, LB_OUTPUT, j, x->dtype, &x->shape, id);
        lp_begin_kernel(p, "copy", -1, ob);
        LpExpr *v = lp_open_loop(p, shape_numel(&x->shape));
        lp_store(p, ob, v, lp_load(p, home, v));
        lp_close_loop(p);
        lp_end_kernel(p);
    }
    free(L.need);
    free(L.is_out);
    free(L.fused);
    free(L.recomp);
    free(L.bsum);
    free(L.twin_of);
    free(L.written_by_twin);
    free(L.uses);
    free(L.consumer);
    free(L.buf);
    free(L.kf);
    free(L.epi_conv);
    return p;
}
