/* shape_attn.c - the shape and FLOP rules of attention (ops.def).
 *
 * attention(q [..., Tq, D], k [..., Tk, D], v [..., Tk, Dv] [, len i32[]])
 * -> f32[..., Tq, Dv]. The batch dims (...) are equal: ir_attention
 * broadcasts them before adding the node. Messages name the op and the
 * shapes, as every rule of shape.c does.
 */
#include "ir.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#define SB 192

__attribute__((format(printf, 3, 4))) static bool fail(char *err, size_t errlen, const char *fmt,
                                                       ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return false;
}

bool shape_attention(const IrGraph *g, IrNode *n, char *err, size_t errlen) {
    if (n->nin != 3 && n->nin != 4)
        return fail(err, errlen, "attention: expects 3 or 4 inputs (q, k, v [, len]), got %d",
                    n->nin);
    for (int i = 0; i < n->nin; i++)
        if (n->in[i] < 0 || n->in[i] >= g->n)
            return fail(err, errlen,
                        "attention: input %d is %%%d, not a node of the graph (%d nodes)", i,
                        n->in[i], g->n);
    static const char *const names[] = {"q", "k", "v"};
    const Shape *s[3];
    for (int i = 0; i < 3; i++) {
        const IrNode *x = &g->nodes[n->in[i]];
        char sa[SB];
        if (x->dtype != TY_F32)
            return fail(err, errlen, "attention: %s must be f32, got %s", names[i],
                        dtype_name(x->dtype));
        if (x->shape.ndim < 2)
            return fail(err, errlen,
                        "attention: %s must have at least 2 dimensions [..., T, D], got %s",
                        names[i], shape_str(&x->shape, sa, SB));
        s[i] = &x->shape;
    }
    char sq[SB], sk[SB], sv[SB];
    shape_str(s[0], sq, SB);
    shape_str(s[1], sk, SB);
    shape_str(s[2], sv, SB);
    int r = s[0]->ndim;
    if (s[1]->ndim != r || s[2]->ndim != r)
        return fail(err, errlen, "attention: q %s, k %s and v %s must have the same rank", sq, sk,
                    sv);
    for (int i = 0; i < r - 2; i++)
        if (s[1]->d[i] != s[0]->d[i] || s[2]->d[i] != s[0]->d[i])
            return fail(err, errlen, "attention: batch dimensions of q %s, k %s and v %s differ",
                        sq, sk, sv);
    if (s[1]->d[r - 1] != s[0]->d[r - 1])
        return fail(err, errlen,
                    "attention: q %s and k %s have different feature sizes (%lld != %lld)", sq, sk,
                    (long long)s[0]->d[r - 1], (long long)s[1]->d[r - 1]);
    if (s[2]->d[r - 2] != s[1]->d[r - 2])
        return fail(err, errlen,
                    "attention: k %s and v %s have different numbers of keys (%lld != %lld)", sk,
                    sv, (long long)s[1]->d[r - 2], (long long)s[2]->d[r - 2]);
    if (n->nin == 4) {
        const IrNode *len = &g->nodes[n->in[3]];
        char sl[SB];
        if (len->dtype != TY_I32 || len->shape.ndim != 0)
            return fail(err, errlen, "attention: len must be an i32 scalar (0-d), got %s%s",
                        dtype_name(len->dtype), shape_str(&len->shape, sl, SB));
    }
    if (!isfinite(n->attr.scale))
        return fail(err, errlen, "attention: scale must be finite, got %g", n->attr.scale);
    Shape out = *s[0];
    out.d[r - 1] = s[2]->d[r - 1];
    int64_t rows = s[0]->d[r - 1] > 0 ? shape_numel(s[0]) / s[0]->d[r - 1] : 0, numel;
    if (__builtin_mul_overflow(rows, out.d[r - 1], &numel) || numel > (INT64_C(1) << 48))
        return fail(err, errlen, "attention: result too large (q %s, v %s)", sq, sv);
    n->shape = out;
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
        return fail(err, errlen, "write_rows: expects 3 inputs (dst, src, pos), got %d", n->nin);
    for (int i = 0; i < 3; i++)
        if (n->in[i] < 0 || n->in[i] >= g->n)
            return fail(err, errlen,
                        "write_rows: input %d is %%%d, not a node of the graph (%d nodes)", i,
                        n->in[i], g->n);
    const IrNode *d = &g->nodes[n->in[0]], *s = &g->nodes[n->in[1]], *p = &g->nodes[n->in[2]];
    char sd[SB], ss[SB], sp[SB];
    shape_str(&d->shape, sd, SB);
    shape_str(&s->shape, ss, SB);
    if (d->dtype != TY_F32 || s->dtype != TY_F32)
        return fail(err, errlen, "write_rows: dst and src must be f32, got %s and %s",
                    dtype_name(d->dtype), dtype_name(s->dtype));
    int r = d->shape.ndim;
    if (r < 2 || s->shape.ndim != r)
        return fail(err, errlen,
                    "write_rows: dst %s and src %s must have the same rank, at least 2 [..., rows, "
                    "D]",
                    sd, ss);
    for (int i = 0; i < r; i++)
        if (i != r - 2 && d->shape.d[i] != s->shape.d[i])
            return fail(err, errlen,
                        "write_rows: dst %s and src %s differ outside the rows (axis %d)", sd, ss,
                        i);
    if (s->shape.d[r - 2] > d->shape.d[r - 2])
        return fail(err, errlen, "write_rows: src %s has more rows than dst %s", ss, sd);
    if (p->dtype != TY_I32 || p->shape.ndim != 0)
        return fail(err, errlen, "write_rows: pos must be an i32 scalar (0-d), got %s%s",
                    dtype_name(p->dtype), shape_str(&p->shape, sp, SB));
    n->shape = d->shape;
    n->dtype = TY_F32;
    return true;
}
