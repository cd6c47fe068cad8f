/* grad_attn.c - the gradient rule of attention, in two forms.
 *
 * With S = q k^T * scale, P = softmax(S + mask) (a row that sees no key is
 * 0), y = P v and g the gradient of y:
 *   dv = P^T g,  dP = g v^T,  dS = P * (dP - delta),  delta = rowsum(g * y),
 *   dq = scale * dS k,  dk = scale * dS^T q;  len gets none.
 * The forward never stores P; both forms recompute it from lse.
 *
 * fused (FlashAttention-2): P = exp(S - lse) from one number per query row,
 * the log-sum-exp of its visible scores (attention_lse); each gradient is
 * one attention_grad node (ops.def), a kernel that streams over the other
 * side's rows, so no Tq x Tk tensor exists on any backend.
 *
 * composed: P = where(mask, exp(S - lse), 0) with S a matmul and lse from
 * attention_lse (as the fused form's), then four matmuls; the mask from
 * ranks made by cumsum of ones and the runtime len, so the graph serves
 * every len as the forward does. (A masked softmax recomputed over the
 * Tq x Tk scores, the form before, cost more than lse's row loop and the
 * one elementwise kernel: spec/jit.md, Attention.)
 *
 * Why two: on the JIT the composed form's GEMMs run each (query, key) pair
 * several times faster than the fused kernels' per-key loops (bench/README,
 * bench_attention), while it holds a few batch x Tq x Tk f32 tensors at
 * once. grad_attention takes the composed form up to
 * IR_ATTENTION_FUSED_MIN (query, key) pairs over the batch (64 MiB per such
 * tensor) and the fused one past it, where memory, not time, runs out.
 */
#include <stdio.h>

#include "ir.h"

#define WANT(i) (gin[(i)] != -1)

/* 0, 1, ..., n-1 as f32, in a shape of rank `rank` whose dim `at` is n and
 * every other dim 1 (-1 if a builder failed). */
static int ranks(IrGraph *g, int64_t n, int rank, int at, SrcLoc loc) {
    Shape s = {rank, {0}};
    for (int i = 0; i < rank; i++) s.d[i] = i == at ? n : 1;
    int ones = ir_const(g, TY_F32, s, 1, loc);
    int c = ir_cumsum(g, ones, at, false, loc);
    return ir_binary(g, OP_SUB, c, ir_const(g, TY_F32, shape_scalar(), 1, loc), loc);
}

/* P = softmax(q k^T * scale + mask) of attention node n, [..., Tq, Tk]. */
static int probabilities(IrGraph *g, const IrNode *n) {
    SrcLoc loc = n->loc;
    int q = n->in[0], k = n->in[1];
    const Shape *qs = &ir_node(g, q)->shape, *ks = &ir_node(g, k)->shape;
    int r = qs->ndim;
    int64_t tq = qs->d[r - 2], tk = ks->d[r - 2];
    int kt = ir_transpose(g, k, -1, -2, loc);
    int s = ir_binary(g, OP_MUL, ir_matmul(g, q, kt, loc),
                      ir_const(g, TY_F32, shape_scalar(), n->attr.scale, loc), loc);
    /* len as f32 clamped to [0, Tk], as the kernels clamp it */
    int len = ir_const(g, TY_F32, shape_scalar(), (double)tk, loc);
    if (n->nin == 4) {
        len = ir_cast(g, n->in[3], TY_F32, loc);
        len = ir_binary(g, OP_MAX, len, ir_const(g, TY_F32, shape_scalar(), 0, loc), loc);
        len = ir_binary(g, OP_MIN, len, ir_const(g, TY_F32, shape_scalar(), (double)tk, loc), loc);
    }
    int j = ranks(g, tk, 2, 1, loc); /* [1, Tk] */
    int vis = ir_binary(g, OP_LT, j, len, loc);
    if (n->attr.causal) {                /* j <= i + (len - Tq) */
        int i = ranks(g, tq, 2, 0, loc); /* [Tq, 1] */
        int lim = ir_binary(
            g, OP_ADD, i,
            ir_binary(g, OP_SUB, len, ir_const(g, TY_F32, shape_scalar(), (double)tq, loc), loc),
            loc);
        vis = ir_binary(g, OP_MUL, vis, ir_binary(g, OP_LE, j, lim, loc), loc);
    }
    if (s < 0 || vis < 0) return -1;
    /* the row's log-sum-exp from the forward's own row loop (vectorized,
     * no Tq x Tk tensor) leaves P one elementwise kernel: no masked row
     * maximum and sum over the Tq x Tk scores. A row that sees no key has
     * lse = -inf; the where, not a product with the mask, keeps it 0. */
    IrAttr at = {0};
    at.causal = n->attr.causal;
    at.scale = n->attr.scale;
    int ins[3] = {q, k, n->nin == 4 ? n->in[3] : -1};
    int lse = ir_add(g, OP_ATTENTION_LSE, ins, n->nin == 4 ? 3 : 2, &at, loc);
    if (lse < 0) return -1;
    Shape full = ir_node(g, s)->shape, rows = full;
    rows.d[rows.ndim - 1] = 1;
    lse = ir_reshape(g, lse, rows, loc);
    vis = ir_broadcast_to(g, vis, full, loc);
    int e = ir_unary(g, OP_EXP, ir_binary(g, OP_SUB, s, lse, loc), loc);
    return ir_where(g, vis, e, ir_const(g, TY_F32, shape_scalar(), 0, loc), loc);
}

static bool composed(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    SrcLoc loc = n.loc;
    int p = probabilities(g, &n);
    if (p < 0) return false;
    if (WANT(2) && (gin[2] = ir_matmul(g, ir_transpose(g, p, -1, -2, loc), gout, loc)) < 0)
        return false;
    if (!WANT(0) && !WANT(1)) return true;
    int dp = ir_matmul(g, gout, ir_transpose(g, n.in[2], -1, -2, loc), loc);
    int last = -1;
    /* rowsum(dP * P) = rowsum(g * y): Dv products per row instead of Tk */
    int rs = ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, gout, id, loc), &last, 1, true, loc);
    int ds = ir_binary(g, OP_MUL, p, ir_binary(g, OP_SUB, dp, rs, loc), loc);
    ds = ir_binary(g, OP_MUL, ds, ir_const(g, TY_F32, shape_scalar(), n.attr.scale, loc), loc);
    if (ds < 0) return false;
    if (WANT(0) && (gin[0] = ir_matmul(g, ds, n.in[1], loc)) < 0) return false;
    if (WANT(1) && (gin[1] = ir_matmul(g, ir_transpose(g, ds, -1, -2, loc), n.in[0], loc)) < 0)
        return false;
    return true;
}

/* delta = rowsum(g * y) is Dv products per row, cheaper here than
 * rowsum(dP * P) inside the kernels. */
static bool fused(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    bool has_len = n.nin == 4;
    SrcLoc loc = n.loc;
    IrAttr at = {0};
    at.causal = n.attr.causal;
    at.scale = n.attr.scale;
    int ins[3] = {n.in[0], n.in[1], has_len ? n.in[3] : -1};
    int lse = ir_add(g, OP_ATTENTION_LSE, ins, has_len ? 3 : 2, &at, loc);
    int last = -1;
    int delta = ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, gout, id, loc), &last, 1, false, loc);
    if (lse < 0 || delta < 0) return false;
    int full[7] = {n.in[0], n.in[1], n.in[2], gout, lse, delta, has_len ? n.in[3] : -1};
    for (int i = 0; i < 3; i++) {
        if (!WANT(i)) continue;
        at.axis = i;
        if ((gin[i] = ir_add(g, OP_ATTENTION_GRAD, full, has_len ? 7 : 6, &at, loc)) < 0)
            return false;
    }
    return true;
}

static int64_t fused_min = IR_ATTENTION_FUSED_MIN;

int64_t ir_set_attention_fused_min(int64_t pairs) {
    int64_t old = fused_min;
    fused_min = pairs;
    return old;
}

bool grad_attention(IrGraph *g, int id, int gout, int *gin) {
    const IrNode *n = ir_node(g, id);
    if (n->nin == 4) gin[3] = -1;
    if (!WANT(0) && !WANT(1) && !WANT(2)) return true;
    /* batch x Tq x Tk: q's dims but the last, times Tk (saturating) */
    const Shape *qs = &ir_node(g, n->in[0])->shape, *ks = &ir_node(g, n->in[1])->shape;
    int64_t pairs = ks->d[ks->ndim - 2];
    bool big = false;
    for (int i = 0; i < qs->ndim - 1; i++) big |= __builtin_mul_overflow(pairs, qs->d[i], &pairs);
    big |= pairs > fused_min;
    return big ? fused(g, id, gout, gin) : composed(g, id, gout, gin);
}

/* The backward's own ops have no gradient: differentiating a gradient of
 * attention (a second derivative) through them is an error, never a silent
 * zero. */
static bool no_second(IrGraph *g, int id) {
    snprintf(g->err, sizeof g->err,
             "%s: second derivatives of attention are not implemented (the gradient of a "
             "gradient of attention)",
             ir_ops[ir_node(g, id)->op].name);
    return false;
}

bool grad_attention_lse(IrGraph *g, int id, int gout, int *gin) {
    (void)gout, (void)gin;
    return no_second(g, id);
}

bool grad_attention_grad(IrGraph *g, int id, int gout, int *gin) {
    (void)gout, (void)gin;
    return no_second(g, id);
}
