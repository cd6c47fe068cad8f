/* lower_attn.c - attention, attention_lse and attention_grad lowered to
 * the loop IR (spec/jit.md "Attention"): FlashAttention's forward as one
 * kernel with an online softmax over blocks of keys, and the fused
 * backward's row loops. Part of the lowering of lower.c (lower_internal.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lower_internal.h"

/* The score q_i . k_j: ATT_LANES partial sums over the feature strips
 * [c*ATT_LANES, (c+1)*ATT_LANES), added pairwise, then the features past the
 * last whole strip. Independent chains instead of one: the SLP vectorizer
 * packs them into one vector multiply-add per strip, where a single chain
 * would wait on each add (and may not be reassociated). qi, ki: the indices
 * of a (q) and b (k), all but the feature dim set. */
#define ATT_LANES 8
#define ATT_KEYS  8
static LpExpr *attention_dot(Lower *L, int a, int b, LpExpr **qi, LpExpr **ki, int64_t d) {
    LpProg *p = L->p;
    int r = node(L, a)->shape.ndim;
    int64_t strips = d / ATT_LANES;
    LpExpr *part[ATT_LANES];
    if (strips > 0) {
        for (int u = 0; u < ATT_LANES; u++) part[u] = lp_local(p, LT_F32, lp_const_f(p, LT_F32, 0));
        LpExpr *c = lp_open_loop(p, strips);
        for (int u = 0; u < ATT_LANES; u++) {
            qi[r - 1] = ki[r - 1] = lp_iadd(p, lp_imul(p, c, ATT_LANES), lp_iconst(p, u));
            lp_set(p, part[u],
                   lp_bin(p, LO_ADD, part[u],
                          lp_bin(p, LO_MUL, lw_value_at(L, a, qi), lw_value_at(L, b, ki))));
        }
        lp_close_loop(p);
        for (int w = ATT_LANES / 2; w >= 1; w /= 2)
            for (int u = 0; u < w; u++) part[u] = lp_bin(p, LO_ADD, part[u], part[u + w]);
    }
    LpExpr *s = strips > 0 ? part[0] : lp_const_f(p, LT_F32, 0);
    for (int64_t c = strips * ATT_LANES; c < d; c++) {
        qi[r - 1] = ki[r - 1] = lp_iconst(p, c);
        s = lp_bin(p, LO_ADD, s, lp_bin(p, LO_MUL, lw_value_at(L, a, qi), lw_value_at(L, b, ki)));
    }
    return lp_local(p, LT_F32, s);
}

/* The number of valid keys: the input len (at lenat, if n has it) clamped
 * to [0, Tk], else Tk. */
static LpExpr *attention_len(Lower *L, const IrNode *n, int lenat, int64_t tk, bool local) {
    LpProg *p = L->p;
    LpExpr *hi = lp_iconst(p, tk);
    if (n->nin == lenat + 1) {
        LpExpr *none[1] = {NULL};
        LpExpr *len = lp_cast(p, LT_I64, lw_value_at(L, n->in[lenat], none));
        len = lp_select(p, lp_bin(p, LO_LT, len, lp_iconst(p, 0)), lp_iconst(p, 0), len);
        hi = lp_select(p, lp_bin(p, LO_GT, len, hi), hi, len);
        if (local) hi = lp_local(p, LT_I64, hi);
    }
    return hi;
}

/* One flat loop over the rows [batch..., t] (parallel over all of them):
 * sets bi[0..r-2) to the batch indices and returns the row's position in t. */
static LpExpr *attention_open_rows(LpProg *p, const Shape *qs, int64_t t, LpExpr **bi,
                                   LpExpr **row) {
    int r = qs->ndim;
    int64_t batch = 1;
    for (int k = 0; k < r - 2; k++) batch *= qs->d[k];
    *row = lp_open_loop(p, batch * t);
    LpExpr *i = lp_imod(p, *row, t), *rest = lp_idiv(p, *row, t);
    for (int k = r - 3; k >= 0; k--) {
        bi[k] = lp_imod(p, rest, qs->d[k]);
        rest = lp_idiv(p, rest, qs->d[k]);
    }
    return i;
}

/* The forward's keys per block: one vector of f32 lanes (AVX-512; two of
 * AVX2's), the scores of a query against ATT_VKEYS keys side by side. */
#define ATT_VKEYS 16

/* kT [batch, D, tkp] = k [batch, Tk, D] transposed, the keys past Tk 0
 * (tkp: Tk rounded up to ATT_VKEYS): the keys of a block are then
 * contiguous for each feature, so a block's scores are ATT_VKEYS
 * independent sums over the features whose loads the SLP vectorizer packs
 * into one vector each (attention_scores). Its own loop nest, before the
 * rows (Tk x D per batch: small beside the Tq x Tk x D of the rows). */
static int attention_kt(Lower *L, int id, int k, int64_t batch, int64_t tkp, LpExpr *hl) {
    LpProg *p = L->p;
    const Shape *ks = &node(L, k)->shape;
    int r = ks->ndim;
    int64_t tk = ks->d[r - 2], d = ks->d[r - 1];
    Shape ts = shape_make(3, (int64_t[]){batch, d, tkp});
    int kt = lp_add_buf(p, LB_TEMP, 0, TY_F32, &ts, id);
    p->bufs[kt].scratch = true;
    LpExpr *ki[IR_MAXDIM];
    for (int a = 0; a < r - 2; a++) ki[a] = lp_open_loop(p, ks->d[a]);
    LpExpr *b = lp_iconst(p, 0);
    for (int a = 0; a < r - 2; a++) b = lp_iadd(p, lp_imul(p, b, ks->d[a]), ki[a]);
    /* only the blocks a row can read: keys below the runtime len hl, rounded
     * up to a block (a decode step over a cache of ctx rows copies len rows,
     * not ctx); the rest of kT is never read */
    LpExpr *j = hl->kind == LE_CONST
                    ? lp_open_loop(p, tkp)
                    : lp_open_loop_trips(
                          p, tkp,
                          lp_imul(p,
                                  lp_bin(p, LO_DIV, lp_iadd(p, hl, lp_iconst(p, ATT_VKEYS - 1)),
                                         lp_iconst(p, ATT_VKEYS)),
                                  ATT_VKEYS));
    LpExpr *c = lp_open_loop(p, d);
    ki[r - 2] = lp_select(p, lp_bin(p, LO_LT, j, lp_iconst(p, tk)), j, lp_iconst(p, tk - 1));
    ki[r - 1] = c;
    LpExpr *v = lw_value_at(L, k, ki);
    if (tkp != tk)
        v = lp_select(p, lp_bin(p, LO_LT, j, lp_iconst(p, tk)), v, lp_const_f(p, LT_F32, 0));
    lp_store(p, kt, lp_iadd(p, lp_iadd(p, lp_imul(p, b, d * tkp), lp_imul(p, c, tkp)), j), v);
    lw_close_n(p, r);
    return kt;
}

/* The scaled scores of query row qi against the block's ATT_VKEYS keys
 * into the row's scratch sr (the block's first key of kT at base):
 *
 *     for u in 0..ATT_VKEYS vectorize:
 *         sr[u] = j0+u < hi ? sum_c q_i[c] kT[c, j0+u] * scale : -inf
 *
 * (hi NULL: the block is whole, no select) *
 * u innermost with the features unrolled into ATT_CHAINS interleaved
 * chains (a chain of D dependent multiply-adds would wait on each), so the
 * loop vectorizer makes each feature one broadcast of q_i[c] times a
 * vector of ATT_VKEYS consecutive floats of kT: no horizontal sum per key.
 * Features in chunks of ATT_DCHUNK (one loop each, sr carrying the sum) so
 * a large D makes no deep expression. */
#define ATT_CHAINS 4
#define ATT_DCHUNK 64
static void attention_scores(Lower *L, int q, LpExpr **qi, int kt, LpExpr *base, int64_t d,
                             int64_t tkp, int sbuf, LpExpr *srow, LpExpr *j0, LpExpr *hi,
                             double scale) {
    LpProg *p = L->p;
    int r = node(L, q)->shape.ndim;
    for (int64_t c0 = 0; c0 < d; c0 += ATT_DCHUNK) {
        int64_t c1 = c0 + ATT_DCHUNK < d ? c0 + ATT_DCHUNK : d;
        LpExpr *u = lp_open_loop(p, ATT_VKEYS);
        LpExpr *at = lp_iadd(p, base, u), *chain[ATT_CHAINS] = {0};
        for (int64_t c = c0; c < c1; c++) {
            qi[r - 1] = lp_iconst(p, c);
            LpExpr *t = lp_bin(p, LO_MUL, lw_value_at(L, q, qi),
                               lp_load(p, kt, lp_iadd(p, at, lp_iconst(p, c * tkp))));
            int h = (int)((c - c0) % ATT_CHAINS);
            chain[h] = chain[h] ? lp_bin(p, LO_ADD, chain[h], t) : t;
        }
        LpExpr *sum = chain[0];
        for (int w = 1; w < ATT_CHAINS; w *= 2)
            for (int h = 0; h + w < ATT_CHAINS; h += 2 * w)
                if (chain[h + w]) chain[h] = lp_bin(p, LO_ADD, chain[h], chain[h + w]);
        sum = chain[0];
        LpExpr *at_s = lp_iadd(p, srow, u);
        if (c0 > 0) sum = lp_bin(p, LO_ADD, lp_load(p, sbuf, at_s), sum);
        if (c1 == d) {
            sum = lp_bin(p, LO_MUL, sum, lp_const_f(p, LT_F32, (float)scale));
            if (hi) /* NULL: every key of the block is visible */
                sum = lp_select(p, lp_bin(p, LO_LT, lp_iadd(p, j0, u), hi), sum,
                                lp_const_f(p, LT_F32, -INFINITY));
        }
        lp_store(p, sbuf, at_s, sum);
        lp_close_loop(p);
    }
}

/* What one block of keys of a row reads and updates (attention_rows). */
typedef struct AttBlock {
    const IrNode *n;
    LpExpr **qi, **vi;
    int kt, sbuf;
    LpExpr *srow, *hi, *m, *l;
    int out;
    LpExpr *orow, *row;
    int64_t tq, tk, tkp, d, dv;
    bool lse;
} AttBlock;

/* Block jb of ATT_VKEYS keys of a row: its scores, its maximum, the
 * rescaling of the running sum and output, its p and p . v. masked: the
 * block may hold keys at or past hi (the last one, partial), each
 * selected away; a whole block has none. */
static void attention_block(Lower *L, const AttBlock *a, LpExpr *jb, bool masked) {
    LpProg *p = L->p;
    const IrNode *n = a->n;
    int r = node(L, n->in[0])->shape.ndim, sbuf = a->sbuf, out = a->out;
    int64_t tkp = a->tkp, d = a->d, dv = a->dv;
    LpExpr *srow = a->srow, *hi = a->hi, *m = a->m, *l = a->l, *orow = a->orow, **vi = a->vi;
    LpExpr *ninf = lp_const_f(p, LT_F32, -INFINITY), *zero = lp_const_f(p, LT_F32, 0), *c, *o;
    LpExpr *j0 = lp_imul(p, jb, ATT_VKEYS);
    attention_scores(L, n->in[0], a->qi, a->kt,
                     lp_iadd(p, lp_imul(p, lp_idiv(p, a->row, a->tq), d * tkp), j0), d, tkp, sbuf,
                     srow, j0, masked ? hi : NULL, n->attr.scale);
    /* the block's maximum: a balanced tree over the lanes (masked
     * scores are -inf; a NaN score wins, as in the reference kernel) */
    LpExpr *t[ATT_VKEYS];
    for (int u = 0; u < ATT_VKEYS; u++) t[u] = lp_load(p, sbuf, lp_iadd(p, srow, lp_iconst(p, u)));
    for (int w = 1; w < ATT_VKEYS; w *= 2)
        for (int u = 0; u + w < ATT_VKEYS; u += 2 * w) t[u] = lp_bin(p, LO_MAX, t[u], t[u + w]);
    /* corr = 1 while the maximum stays (also -inf == -inf: no NaN);
     * p = 0 while it is -inf (every visible score so far -inf) */
    LpExpr *m2 = lp_local(p, LT_F32, lp_bin(p, LO_MAX, m, t[0]));
    LpExpr *corr = lp_local(p, LT_F32,
                            lp_select(p, lp_bin(p, LO_EQ, m, m2), lp_const_f(p, LT_F32, 1),
                                      lp_un(p, LO_EXP, lp_bin(p, LO_SUB, m, m2))));
    LpExpr *live = lp_bin(p, LO_NE, m2, ninf);
    /* p in place, vectorized like the scores (a masked key's -inf
     * gives exp 0, but select: m2 may be -inf too) */
    LpExpr *u = lp_open_loop(p, ATT_VKEYS);
    LpExpr *at_s = lp_iadd(p, srow, u);
    LpExpr *sv = lp_load(p, sbuf, at_s);
    LpExpr *keep = masked ? lp_bin(p, LO_AND, lp_bin(p, LO_LT, lp_iadd(p, j0, u), hi), live) : live;
    lp_store(p, sbuf, at_s, lp_select(p, keep, lp_un(p, LO_EXP, lp_bin(p, LO_SUB, sv, m2)), zero));
    lp_close_loop(p);
    LpExpr *pj[ATT_VKEYS], *psum = NULL;
    for (int k = 0; k < ATT_VKEYS; k++) {
        pj[k] = lp_local(p, LT_F32, lp_load(p, sbuf, lp_iadd(p, srow, lp_iconst(p, k))));
        psum = psum ? lp_bin(p, LO_ADD, psum, pj[k]) : pj[k];
    }
    lp_set(p, l, lp_bin(p, LO_ADD, lp_bin(p, LO_MUL, l, corr), psum));
    lp_set(p, m, m2);
    if (!a->lse && masked) {
        /* the partial block: the output rescaled, then one vector pass per
         * visible key (j0 + k < hi <= Tk), so a key past hi is never read
         * (0 * inf would be NaN) and no select stands in the vector loop
         * (with one per key and feature LLVM left it scalar) */
        c = lp_open_loop(p, dv);
        o = lp_iadd(p, orow, c);
        lp_store(p, out, o, lp_bin(p, LO_MUL, lp_load(p, out, o), corr));
        lp_close_loop(p);
        LpExpr *k = lp_open_loop_trips(p, ATT_VKEYS, lp_bin(p, LO_SUB, hi, j0));
        LpExpr *pk = lp_local(p, LT_F32, lp_load(p, sbuf, lp_iadd(p, srow, k)));
        vi[r - 2] = lp_iadd(p, j0, k);
        c = lp_open_loop(p, dv);
        vi[r - 1] = c;
        o = lp_iadd(p, orow, c);
        lp_store(p, out, o,
                 lp_bin(p, LO_ADD, lp_load(p, out, o),
                        lp_bin(p, LO_MUL, pk, lw_value_at(L, n->in[2], vi))));
        lp_close_loop(p);
        lp_close_loop(p);
    } else if (!a->lse) {
        c = lp_open_loop(p, dv);
        vi[r - 1] = c;
        o = lp_iadd(p, orow, c);
        LpExpr *acc = lp_bin(p, LO_MUL, lp_load(p, out, o), corr);
        /* ATT_CHAINS interleaved chains over the keys, as the scores: one
         * chain of 16 multiply-adds would wait on each */
        LpExpr *chain[ATT_CHAINS] = {0};
        for (int k = 0; k < ATT_VKEYS; k++) {
            vi[r - 2] = lp_iadd(p, j0, lp_iconst(p, k));
            LpExpr *t = lp_bin(p, LO_MUL, pj[k], lw_value_at(L, n->in[2], vi));
            int h = k % ATT_CHAINS;
            chain[h] = chain[h] ? lp_bin(p, LO_ADD, chain[h], t) : t;
        }
        for (int w = 1; w < ATT_CHAINS; w *= 2)
            for (int h = 0; h + w < ATT_CHAINS; h += 2 * w)
                chain[h] = lp_bin(p, LO_ADD, chain[h], chain[h + w]);
        acc = lp_bin(p, LO_ADD, acc, chain[0]);
        lp_store(p, out, o, acc);
        lp_close_loop(p);
    }
}

/* attention: one kernel, a loop over the query rows (flat over batch and
 * Tq, so it runs in parallel) with FlashAttention's online softmax over the
 * keys: the running maximum m, the running sum l and the row of the output
 * itself as the accumulator, rescaled by exp(m - m') when the maximum grows.
 * The Tq x Tk matrix never exists. Masked keys (j >= hi, hi from the runtime
 * len and the causal rule) leave m, l and the row unchanged; a row that saw
 * no key, or only scores of -inf (l == 0), is 0, as the reference kernel.
 * With lse (attention_lse) the same loop without the values: the row's
 * m + log(l), -inf when it saw no key. */
static void attention_rows(Lower *L, int id, int out, bool lse, int lse_buf) {
    LpProg *p = L->p;
    const IrNode *n = node(L, id);
    const Shape *qs = &node(L, n->in[0])->shape, *ks = &node(L, n->in[1])->shape;
    int r = qs->ndim;
    int64_t tq = qs->d[r - 2], d = qs->d[r - 1], tk = ks->d[r - 2];
    int64_t dv = lse ? 0 : n->shape.d[r - 1];
    int64_t batch = 1, tkp = (tk + ATT_VKEYS - 1) / ATT_VKEYS * ATT_VKEYS;
    for (int k = 0; k < r - 2; k++) batch *= qs->d[k];
    int kt = tk > 0 ? attention_kt(L, id, n->in[1], batch, tkp,
                                   attention_len(L, n, lse ? 2 : 3, tk, false))
                    : -1;
    LpExpr *bi[IR_MAXDIM], *qi[IR_MAXDIM], *vi[IR_MAXDIM], *row;
    LpExpr *i = attention_open_rows(p, qs, tq, bi, &row);
    for (int k = 0; k < r - 2; k++) qi[k] = vi[k] = bi[k];
    qi[r - 2] = i;
    /* hi: keys [0, hi) are visible */
    LpExpr *hi = attention_len(L, n, lse ? 2 : 3, tk, true);
    if (n->attr.causal) {
        LpExpr *lim =
            lp_iadd(p, lp_bin(p, LO_SUB, hi, lp_iconst(p, tq)), lp_iadd(p, i, lp_iconst(p, 1)));
        hi = lp_select(p, lp_bin(p, LO_LT, lim, hi), lim, hi);
        /* a row before len - Tq sees no key: 0, not below (the index
         * arithmetic that splits hi into blocks is unsigned) */
        hi = lp_select(p, lp_bin(p, LO_LT, hi, lp_iconst(p, 0)), lp_iconst(p, 0), hi);
    }
    /* once per row: the trip count and every key's mask read it */
    if (hi->kind != LE_CONST) hi = lp_local(p, LT_I64, hi);
    LpExpr *orow = lp_imul(p, row, dv), *c, *o;
    if (!lse) {
        c = lp_open_loop(p, dv);
        lp_store(p, out, lp_iadd(p, orow, c), lp_const_f(p, LT_F32, 0));
        lp_close_loop(p);
    }
    LpExpr *m = lp_local(p, LT_F32, lp_const_f(p, LT_F32, -INFINITY));
    LpExpr *l = lp_local(p, LT_F32, lp_const_f(p, LT_F32, 0));
    /* keys in blocks of ATT_VKEYS: one rescaling (one exp) per block, and
     * one pass over the row per block; the last block's keys past Tk read
     * kT's zero padding and key Tk - 1 of v, and are masked (j < hi <= Tk).
     * The block loop runs only the ceil(hi / ATT_VKEYS) blocks holding a
     * visible key (a runtime trip count: hi depends on len and the row), so
     * decoding with a cache of ctx rows does work in len, and causal rows
     * in their own prefix; only the keys past hi in the last block are
     * masked. */
    LpExpr *ninf = lp_const_f(p, LT_F32, -INFINITY);
    if (tk > 0) { /* else no key: every row 0 (lse -inf) */
        /* the row's scratch: the block's scores, then its p */
        Shape ss = shape_make(2, (int64_t[]){batch * tq, ATT_VKEYS});
        int sbuf = lp_add_buf(p, LB_TEMP, 0, TY_F32, &ss, id);
        p->bufs[sbuf].scratch = true;
        LpExpr *srow = lp_imul(p, row, ATT_VKEYS);
        AttBlock ab = {n,   qi,   vi,  kt, sbuf, srow, hi, m,  l,
                       out, orow, row, tq, tk,   tkp,  d,  dv, lse};
        /* the blocks below hi / ATT_VKEYS are whole: no key of theirs is
         * masked (no select per key and output feature); then the last,
         * partial one, if hi is not a multiple of ATT_VKEYS */
        LpExpr *nfull = hi->kind == LE_CONST ? lp_iconst(p, hi->c.i / ATT_VKEYS)
                                             : lp_bin(p, LO_DIV, hi, lp_iconst(p, ATT_VKEYS));
        attention_block(L, &ab, lp_open_loop_trips(p, tkp / ATT_VKEYS, nfull), false);
        lp_close_loop(p);
        LpExpr *part =
            hi->kind == LE_CONST
                ? lp_iconst(p, hi->c.i % ATT_VKEYS != 0)
                : lp_select(p,
                            lp_bin(p, LO_NE, lp_bin(p, LO_MOD, hi, lp_iconst(p, ATT_VKEYS)),
                                   lp_iconst(p, 0)),
                            lp_iconst(p, 1), lp_iconst(p, 0));
        lp_open_loop_trips(p, 1, part);
        attention_block(L, &ab, nfull, true);
        lp_close_loop(p);
    }
    if (lse) {
        lp_store(p, out, row,
                 lp_select(p, lp_bin(p, LO_EQ, m, ninf), ninf,
                           lp_bin(p, LO_ADD, m, lp_un(p, LO_LOG, l))));
    } else {
        if (lse_buf >= 0)
            lp_store(p, lse_buf, row,
                     lp_select(p, lp_bin(p, LO_EQ, m, ninf), ninf,
                               lp_bin(p, LO_ADD, m, lp_un(p, LO_LOG, l))));
        c = lp_open_loop(p, dv);
        o = lp_iadd(p, orow, c);
        lp_store(p, out, o,
                 lp_select(p, lp_bin(p, LO_EQ, l, lp_const_f(p, LT_F32, 0)),
                           lp_const_f(p, LT_F32, 0), lp_bin(p, LO_DIV, lp_load(p, out, o), l)));
        lp_close_loop(p);
    }
    lp_close_loop(p); /* row */
}

/* A causal row i sees at most the keys below i + 1 + (Tk - Tq), whatever
 * len is: its key loop stops there (a runtime trip count, attention_rows),
 * so one flat loop over all rows, parallel, does work proportional to the
 * visible keys. The exps are inline polynomials (codegen.c, cg_exp_poly) the
 * vectorizers can widen. */
void lw_lower_attention(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    if (shape_numel(&n->shape) == 0) return;
    int e = L->twin_of[id];
    attention_rows(L, id, out, n->op == OP_ATTENTION_LSE, e >= 0 ? L->buf[e] : -1);
}

/* attention_grad (FlashAttention-2's backward): one kernel per gradient,
 * one flat parallel loop over the rows of the gradient it writes, streaming
 * over the other side in blocks of ATT_KEYS, P recomputed blockwise as
 * exp(s - lse) and never stored.
 *
 * dq (axis 0): per query i, over its visible keys j < hi(i) (as the
 * forward): ds_j = P_ij (g_i . v_j - delta_i) scale; dq_i += ds_j k_j.
 * dk, dv (axes 1, 2): per key j, over the queries that see it: none when
 * j >= len, else i in [lo, Tq) with lo = max(0, j - (len - Tq)) when causal
 * (j <= i + len - Tq), 0 otherwise (a runtime start and trip count);
 * dv_j += P_ij g_i, dk_j += ds_ij q_i. A query whose lse is -inf saw no key
 * (its output is 0) and gives nothing; masked entries are selected away,
 * never multiplied by 0, so an inf in an unseen row makes no NaN. */
void lw_lower_attention_grad(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    if (shape_numel(&n->shape) == 0) return;
    int Q = n->in[0], K = n->in[1], V = n->in[2], G = n->in[3], LSE = n->in[4], DL = n->in[5];
    const Shape *qs = &node(L, Q)->shape, *ks = &node(L, K)->shape;
    int r = qs->ndim, axis = n->attr.axis;
    int64_t tq = qs->d[r - 2], d = qs->d[r - 1], tk = ks->d[r - 2];
    int64_t dv = node(L, V)->shape.d[r - 1], w = n->shape.d[r - 1];
    bool by_query = axis == 0;
    int64_t t = by_query ? tq : tk, to = by_query ? tk : tq; /* rows, streamed */
    LpExpr *bi[IR_MAXDIM], *qi[IR_MAXDIM], *ki[IR_MAXDIM], *li[IR_MAXDIM], *row;
    LpExpr *x = attention_open_rows(p, qs, t, bi, &row);
    for (int k = 0; k < r - 2; k++) qi[k] = ki[k] = li[k] = bi[k];
    LpExpr *len = attention_len(L, n, 6, tk, true);
    LpExpr *lo = lp_iconst(p, 0), *cnt; /* streamed rows [lo, lo + cnt) */
    if (by_query) {
        cnt = len;
        if (n->attr.causal) {
            LpExpr *lim = lp_iadd(p, lp_bin(p, LO_SUB, len, lp_iconst(p, tq)),
                                  lp_iadd(p, x, lp_iconst(p, 1)));
            cnt = lp_select(p, lp_bin(p, LO_LT, lim, cnt), lim, cnt);
        }
    } else {
        if (n->attr.causal) {
            lo = lp_iadd(p, lp_bin(p, LO_SUB, x, len), lp_iconst(p, tq));
            lo = lp_select(p, lp_bin(p, LO_LT, lo, lp_iconst(p, 0)), lp_iconst(p, 0), lo);
        }
        cnt = lp_select(p, lp_bin(p, LO_LT, x, len), lp_bin(p, LO_SUB, lp_iconst(p, tq), lo),
                        lp_iconst(p, 0));
    }
    if (lo->kind != LE_CONST) lo = lp_local(p, LT_I64, lo);
    if (cnt->kind != LE_CONST) cnt = lp_local(p, LT_I64, cnt);
    LpExpr *orow = lp_imul(p, row, w);
    LpExpr *c = lp_open_loop(p, w);
    lp_store(p, out, lp_iadd(p, orow, c), lp_const_f(p, LT_F32, 0));
    lp_close_loop(p);
    LpExpr *zero = lp_const_f(p, LT_F32, 0), *ninf = lp_const_f(p, LT_F32, -INFINITY);
    LpExpr *scale = lp_const_f(p, LT_F32, (float)n->attr.scale);
    /* the row's own lse and delta, once (dq) */
    LpExpr *lse_x = NULL, *delta_x = NULL;
    if (by_query) {
        li[r - 2] = x;
        lse_x = lp_local(p, LT_F32, lw_value_at(L, LSE, li));
        delta_x = lp_local(p, LT_F32, lw_value_at(L, DL, li));
    }
    LpExpr *nblk = cnt->kind == LE_CONST
                       ? lp_iconst(p, (cnt->c.i + ATT_KEYS - 1) / ATT_KEYS)
                       : lp_bin(p, LO_DIV, lp_iadd(p, cnt, lp_iconst(p, ATT_KEYS - 1)),
                                lp_iconst(p, ATT_KEYS));
    LpExpr *yb = lp_open_loop_trips(p, (to + ATT_KEYS - 1) / ATT_KEYS, nblk);
    LpExpr *yc[ATT_KEYS], *coef[ATT_KEYS], *vis[ATT_KEYS];
    for (int u = 0; u < ATT_KEYS; u++) {
        LpExpr *y0 = lp_iadd(p, lp_imul(p, yb, ATT_KEYS), lp_iconst(p, u)); /* from lo */
        LpExpr *y = lp_iadd(p, lo, y0);
        yc[u] = lp_select(p, lp_bin(p, LO_LT, y, lp_iconst(p, to)), y, lp_iconst(p, to - 1));
        if (yc[u]->kind != LE_CONST) yc[u] = lp_local(p, LT_I64, yc[u]);
        vis[u] = lp_bin(p, LO_LT, y0, cnt);
        qi[r - 2] = by_query ? x : yc[u];
        ki[r - 2] = by_query ? yc[u] : x;
        LpExpr *lse = lse_x, *delta = delta_x;
        if (!by_query) {
            li[r - 2] = yc[u];
            lse = lp_local(p, LT_F32, lw_value_at(L, LSE, li));
            if (axis == 1) delta = lw_value_at(L, DL, li);
        }
        LpExpr *s = lp_bin(p, LO_MUL, attention_dot(L, Q, K, qi, ki, d), scale);
        LpExpr *ok = lp_bin(p, LO_AND, vis[u], lp_bin(p, LO_NE, lse, ninf));
        LpExpr *pr = lp_select(p, ok, lp_un(p, LO_EXP, lp_bin(p, LO_SUB, s, lse)), zero);
        if (axis == 2) {
            coef[u] = lp_local(p, LT_F32, pr);
            continue;
        }
        /* dP = g_i . v_j: the g index is q's, the v index k's */
        LpExpr *dp = attention_dot(L, G, V, qi, ki, dv);
        coef[u] = lp_local(
            p, LT_F32,
            lp_select(p, ok,
                      lp_bin(p, LO_MUL, lp_bin(p, LO_MUL, pr, lp_bin(p, LO_SUB, dp, delta)), scale),
                      zero));
    }
    /* out_x += sum_u coef_u * (k, q or g row yc_u) */
    int src = axis == 0 ? K : axis == 1 ? Q : G;
    LpExpr *si[IR_MAXDIM];
    for (int k = 0; k < r - 2; k++) si[k] = bi[k];
    c = lp_open_loop(p, w);
    si[r - 1] = c;
    LpExpr *o = lp_iadd(p, orow, c), *acc = lp_load(p, out, o);
    for (int u = 0; u < ATT_KEYS; u++) {
        si[r - 2] = yc[u];
        acc =
            lp_bin(p, LO_ADD, acc,
                   lp_select(p, vis[u], lp_bin(p, LO_MUL, coef[u], lw_value_at(L, src, si)), zero));
    }
    lp_store(p, out, o, acc);
    lp_close_loop(p);
    lp_close_loop(p); /* yb */
    lp_close_loop(p); /* row */
}
