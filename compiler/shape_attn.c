/* shape_attn.c - the shape and FLOP rules of attention (ops.def).
 *
 * attention(q [..., Tq, D], k [..., Tk, D], v [..., Tk, Dv] [, len i32[]])
 * -> f32[..., Tq, Dv]. The batch dims (...) are equal: ir_attention
 * broadcasts them before adding the node. Messages name the op and the
 * shapes, as every rule of shape.c does.
 */
#include "ir.h"

#include <math.h>
#include <stdio.h>

#define SB 192

/* Checks the inputs of n: q, k (and v when nqkv is 3) as attention takes
 * them, then `extra` more inputs, and len when n has one input past those. */
static bool check_qkv(const IrGraph *g, const IrNode *n, int nqkv, int extra, char *err,
                      size_t errlen) {
    const char *op = ir_ops[n->op].name;
    int base = nqkv + extra;
    if (n->nin != base && n->nin != base + 1)
        return tt_errf(err, errlen, "%s: expects %d or %d inputs, got %d", op, base, base + 1,
                       n->nin);
    for (int i = 0; i < n->nin; i++)
        if (n->in[i] < 0 || n->in[i] >= g->n)
            return tt_errf(err, errlen, "%s: input %d is %%%d, not a node of the graph (%d nodes)",
                           op, i, n->in[i], g->n);
    static const char *const names[] = {"q", "k", "v"};
    const Shape *s[3];
    for (int i = 0; i < nqkv; i++) {
        const IrNode *x = &g->nodes[n->in[i]];
        char sa[SB];
        if (x->dtype != TY_F32)
            return tt_errf(err, errlen, "%s: %s must be f32, got %s", op, names[i],
                           dtype_name(x->dtype));
        if (x->shape.ndim < 2)
            return tt_errf(err, errlen,
                           "%s: %s must have at least 2 dimensions [..., T, D], got %s", op,
                           names[i], shape_str(&x->shape, sa, SB));
        s[i] = &x->shape;
    }
    if (nqkv == 2) s[2] = s[1];
    char sq[SB], sk[SB], sv[SB];
    shape_str(s[0], sq, SB);
    shape_str(s[1], sk, SB);
    shape_str(s[2], sv, SB);
    int r = s[0]->ndim;
    if (s[1]->ndim != r || s[2]->ndim != r)
        return tt_errf(err, errlen, "%s: q %s, k %s and v %s must have the same rank", op, sq, sk,
                       sv);
    for (int i = 0; i < r - 2; i++)
        if (s[1]->d[i] != s[0]->d[i] || s[2]->d[i] != s[0]->d[i])
            return tt_errf(err, errlen, "%s: batch dimensions of q %s, k %s and v %s differ", op,
                           sq, sk, sv);
    if (s[1]->d[r - 1] != s[0]->d[r - 1])
        return tt_errf(err, errlen, "%s: q %s and k %s have different feature sizes (%lld != %lld)",
                       op, sq, sk, (long long)s[0]->d[r - 1], (long long)s[1]->d[r - 1]);
    if (s[2]->d[r - 2] != s[1]->d[r - 2])
        return tt_errf(err, errlen,
                       "%s: k %s and v %s have different numbers of keys (%lld != %lld)", op, sk,
                       sv, (long long)s[1]->d[r - 2], (long long)s[2]->d[r - 2]);
    if (n->nin == base + 1) {
        const IrNode *len = &g->nodes[n->in[base]];
        char sl[SB];
        if (len->dtype != TY_I32 || len->shape.ndim != 0)
            return tt_errf(err, errlen, "%s: len must be an i32 scalar (0-d), got %s%s", op,
                           dtype_name(len->dtype), shape_str(&len->shape, sl, SB));
    }
    if (!isfinite(n->attr.scale))
        return tt_errf(err, errlen, "%s: scale must be finite, got %g", op, n->attr.scale);
    return true;
}

/* rows of q [..., Tq, D] times `cols`, unless past the limit of results */
static bool fits(const IrNode *n, const Shape *q, int64_t cols, char *err, size_t errlen) {
    int r = q->ndim;
    int64_t rows = q->d[r - 1] > 0 ? shape_numel(q) / q->d[r - 1] : 0, numel;
    if (__builtin_mul_overflow(rows, cols, &numel) || numel > (INT64_C(1) << 48)) {
        char sq[SB];
        return tt_errf(err, errlen, "%s: result too large (q %s)", ir_ops[n->op].name,
                       shape_str(q, sq, SB));
    }
    return true;
}

bool shape_attention(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_qkv(g, n, 3, 0, err, errlen)) return false;
    const Shape *q = &g->nodes[n->in[0]].shape, *v = &g->nodes[n->in[2]].shape;
    int r = q->ndim;
    Shape out = *q;
    out.d[r - 1] = v->d[r - 1];
    if (!fits(n, q, out.d[r - 1], err, errlen)) return false;
    n->shape = out;
    n->dtype = TY_F32;
    return true;
}

bool shape_attention_lse(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_qkv(g, n, 2, 0, err, errlen)) return false;
    const Shape *q = &g->nodes[n->in[0]].shape;
    Shape out = *q;
    out.ndim--;
    n->shape = out;
    n->dtype = TY_F32;
    return true;
}

/* gy is attention's output [..., Tq, Dv]; lse and delta are [..., Tq] */
bool shape_attention_grad(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (!check_qkv(g, n, 3, 3, err, errlen)) return false;
    const Shape *q = &g->nodes[n->in[0]].shape, *v = &g->nodes[n->in[2]].shape;
    int r = q->ndim;
    Shape ys = *q, rows = *q;
    ys.d[r - 1] = v->d[r - 1];
    rows.ndim--;
    static const char *const names[] = {"gy", "lse", "delta"};
    for (int i = 0; i < 3; i++) {
        const IrNode *x = &g->nodes[n->in[3 + i]];
        const Shape *want = i == 0 ? &ys : &rows;
        char sw[SB], sx[SB];
        if (x->dtype != TY_F32 || !shape_eq(&x->shape, want))
            return tt_errf(err, errlen, "attention_grad: %s must be f32%s, got %s%s", names[i],
                           shape_str(want, sw, SB), dtype_name(x->dtype),
                           shape_str(&x->shape, sx, SB));
    }
    if (n->attr.axis < 0 || n->attr.axis > 2)
        return tt_errf(err, errlen, "attention_grad: axis must be 0 (q), 1 (k) or 2 (v), got %d",
                       n->attr.axis);
    n->shape = g->nodes[n->in[n->attr.axis]].shape;
    n->dtype = TY_F32;
    return true;
}

/* Two multiply-adds per (query, key, feature) of q k^T and of P v, and a few
 * operations per score for the softmax. */
int64_t flops_attention(const IrGraph *g, const IrNode *n) {
    const Shape *q = &g->nodes[n->in[0]].shape, *k = &g->nodes[n->in[1]].shape;
    int r = q->ndim;
    int64_t rows = shape_numel(q) / (q->d[r - 1] > 0 ? q->d[r - 1] : 1);
    int64_t tk = k->d[r - 2], d = q->d[r - 1], dv = n->shape.d[r - 1];
    return rows * tk * (2 * d + 2 * dv + 4);
}

/* write_rows(dst [..., N, D], src [..., R, D], pos i32[]) -> dst's shape:
 * the KV-cache update (ops.def). R <= N here; pos is checked when it runs. */
bool shape_write_rows(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (n->nin != 3)
        return tt_errf(err, errlen, "write_rows: expects 3 inputs (dst, src, pos), got %d", n->nin);
    for (int i = 0; i < 3; i++)
        if (n->in[i] < 0 || n->in[i] >= g->n)
            return tt_errf(err, errlen,
                           "write_rows: input %d is %%%d, not a node of the graph (%d nodes)", i,
                           n->in[i], g->n);
    const IrNode *d = &g->nodes[n->in[0]], *s = &g->nodes[n->in[1]], *p = &g->nodes[n->in[2]];
    char sd[SB], ss[SB], sp[SB];
    shape_str(&d->shape, sd, SB);
    shape_str(&s->shape, ss, SB);
    if (d->dtype != TY_F32 || s->dtype != TY_F32)
        return tt_errf(err, errlen, "write_rows: dst and src must be f32, got %s and %s",
                       dtype_name(d->dtype), dtype_name(s->dtype));
    int r = d->shape.ndim;
    if (r < 2 || s->shape.ndim != r)
        return tt_errf(
            err, errlen,
            "write_rows: dst %s and src %s must have the same rank, at least 2 [..., rows, "
            "D]",
            sd, ss);
    for (int i = 0; i < r; i++)
        if (i != r - 2 && d->shape.d[i] != s->shape.d[i])
            return tt_errf(err, errlen,
                           "write_rows: dst %s and src %s differ outside the rows (axis %d)", sd,
                           ss, i);
    if (s->shape.d[r - 2] > d->shape.d[r - 2])
        return tt_errf(err, errlen, "write_rows: src %s has more rows than dst %s", ss, sd);
    if (p->dtype != TY_I32 || p->shape.ndim != 0)
        return tt_errf(err, errlen, "write_rows: pos must be an i32 scalar (0-d), got %s%s",
                       dtype_name(p->dtype), shape_str(&p->shape, sp, SB));
    n->shape = d->shape;
    n->dtype = TY_F32;
    return true;
}

/* the scores and one exp per score */
int64_t flops_attention_lse(const IrGraph *g, const IrNode *n) {
    const Shape *q = &g->nodes[n->in[0]].shape, *k = &g->nodes[n->in[1]].shape;
    int r = q->ndim;
    return shape_numel(&n->shape) * k->d[r - 2] * (2 * q->d[r - 1] + 4);
}

/* per (query, key): the score again, and for q and k also dP (2 Dv) and
 * the accumulation (2 D); for v the accumulation (2 Dv) */
int64_t flops_attention_grad(const IrGraph *g, const IrNode *n) {
    const Shape *q = &g->nodes[n->in[0]].shape, *k = &g->nodes[n->in[1]].shape,
                *v = &g->nodes[n->in[2]].shape;
    int r = q->ndim;
    int64_t rows = shape_numel(q) / (q->d[r - 1] > 0 ? q->d[r - 1] : 1);
    int64_t d = q->d[r - 1], dv = v->d[r - 1];
    int64_t per = n->attr.axis == 2 ? 2 * d + 2 * dv + 4 : 4 * d + 2 * dv + 6;
    return rows * k->d[r - 2] * per;
}
