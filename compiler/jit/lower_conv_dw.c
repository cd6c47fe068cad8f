/* lower_conv_dw.c - conv2d_backward_weight in lanes.
 *
 * dw[o, c, a, b] = sum over (n, i, j) of gy[n, o, i, j] * xp[n, g*Cg + c,
 * i*s + a*d, j*s + b*d]: each weight is a sum over the whole batch. The
 * reference walks it as one scalar chain per weight (in double); here the
 * kh * kw weights of one (o, c) are summed together in DW_LANES f32 lanes
 * each, along an output row:
 *
 *   for o, c:
 *     acc[t][u] = 0                                    # t < kh*kw, u < 8
 *     for n, i, column block j0:
 *       gv[u] = gy[n, o, i, j0+u]
 *       acc[t][u] += gv[u] * xp[n, g*Cg+c, i*s + a*d, j0+u + b*d]   # t = (a, b)
 *     dw[o, c, a, b] = the lanes of acc[t] added pairwise
 *
 * With stride 1 along the rows a block reads consecutive floats of gy and,
 * for each tap, of x: the SLP vectorizer makes each tap one load and one
 * fma per vector, gy's vector loaded once for all taps. A row's last
 * Wo % DW_LANES columns add into the first lanes. As in lower_conv_lanes.c,
 * x with padding is copied into a zero-bordered slot, here two per output
 * channel ([O, 2, H + 2 ph, W + 2 pw], one for one image), image n + 1's plane copied while
 * image n's is read; slots per channel keep the channel loop threaded. The
 * sums are in f32 in another order than the reference's double chain, as
 * the GEMM's are; a padded tap adds 0 * gy.
 *
 * Taken by the direct lowering for kernels of up to DW_TAPS taps (their
 * kh * kw * DW_LANES accumulators stay in registers) and stride 1 along
 * the rows; the rule sends it depthwise and grouped convolutions
 * (lp_conv_uses_gemm, spec/jit.md "Convolution").
 */
#include "lower_internal.h"

#define DW_LANES 8
#define DW_TAPS  9

bool lw_conv_dw_ok(const IrGraph *g, int id) {
    const IrNode *n = ir_node(g, id);
    const Shape *gs = &ir_node(g, n->in[1])->shape;
    return n->op == OP_CONV2D_BACKWARD_WEIGHT && n->dtype == TY_F32 && n->shape.ndim == 4 &&
           n->attr.win.stride[1] == 1 && n->shape.d[2] * n->shape.d[3] <= DW_TAPS &&
           gs->d[3] >= DW_LANES && gs->d[0] > 0 && gs->d[2] > 0;
}

typedef struct DwConv {
    int xn, gn, src; /* src: the slots, -1: x read in place */
    Shape xs, gs, ws, ps;
    int64_t Cg, Og, kh, kw, stride[2], dil[2], pad[2];
    LpExpr *o, *c, *ch; /* output channel, its group's input channel c and x's channel */
    LpExpr *acc[DW_TAPS][DW_LANES];
} DwConv;

/* Image n's plane of input channel g*Cg + c into the slot's inside. */
static void copy_plane(Lower *L, void *ctx, LpExpr *n, LpExpr *slot) {
    const DwConv *d = ctx;
    LpProg *p = L->p;
    LpExpr *h = lp_open_loop(p, d->xs.d[2]), *w = lp_open_loop(p, d->xs.d[3]);
    LpExpr *xi[4] = {n, d->ch, h, w};
    LpExpr *si[4] = {d->o, slot, lp_iadd(p, h, lp_iconst(p, d->pad[0])),
                     lp_iadd(p, w, lp_iconst(p, d->pad[1]))};
    lp_store(p, d->src, lw_linearize(p, si, &d->ps), lw_value_at(L, d->xn, xi));
    lw_close_n(p, 2);
}

/* The products of gy's columns j0.. (lanes of them) of row i of image n. */
static void dw_block(Lower *L, const DwConv *d, LpExpr *n, LpExpr *slot, LpExpr *i, LpExpr *j0,
                     int lanes) {
    LpProg *p = L->p;
    LpExpr *gv[DW_LANES];
    for (int u = 0; u < lanes; u++) {
        LpExpr *gi[4] = {n, d->o, i, lp_iadd(p, j0, lp_iconst(p, u))};
        gv[u] = lp_local(p, LT_F32, lw_value_at(L, d->gn, gi));
    }
    for (int a = 0; a < d->kh; a++)
        for (int b = 0; b < d->kw; b++) {
            LpExpr *row = lp_iadd(p, lp_imul(p, i, d->stride[0]), lp_iconst(p, a * d->dil[0]));
            for (int u = 0; u < lanes; u++) {
                LpExpr *col = lp_iadd(p, j0, lp_iconst(p, u + b * d->dil[1]));
                LpExpr *xv;
                if (d->src >= 0) {
                    LpExpr *si[4] = {d->o, slot, row, col};
                    xv = lp_load(p, d->src, lw_linearize(p, si, &d->ps));
                } else {
                    xv = lw_value_at(L, d->xn, (LpExpr *[4]){n, d->ch, row, col});
                }
                LpExpr *t = d->acc[a * d->kw + b][u];
                lp_set(p, t, lp_bin(p, LO_ADD, t, lp_bin(p, LO_MUL, gv[u], xv)));
            }
        }
}

/* Image n's share of every sum, its x plane read from slot. */
static void dw_image(Lower *L, void *ctx, LpExpr *n, LpExpr *slot) {
    const DwConv *d = ctx;
    LpProg *p = L->p;
    int64_t Wo = d->gs.d[3], nb = Wo / DW_LANES, rest = Wo % DW_LANES;
    LpExpr *i = lp_open_loop(p, d->gs.d[2]);
    if (nb > 0) {
        LpExpr *jb = lp_open_loop(p, nb);
        dw_block(L, d, n, slot, i, lp_imul(p, jb, DW_LANES), DW_LANES);
        lp_close_loop(p);
    }
    if (rest > 0) dw_block(L, d, n, slot, i, lp_iconst(p, nb * DW_LANES), (int)rest);
    lp_close_loop(p);
}

void lw_lower_conv_dw(Lower *L, int id, int out) {
    const IrNode *nd = node(L, id);
    LpProg *p = L->p;
    const IrWindow *win = &nd->attr.win;
    DwConv d;
    d.xn = nd->in[0];
    d.gn = nd->in[1];
    d.xs = node(L, d.xn)->shape;
    d.gs = node(L, d.gn)->shape;
    d.ws = nd->shape;
    d.Cg = d.ws.d[1];
    d.Og = d.ws.d[0] / win->groups;
    d.kh = d.ws.d[2];
    d.kw = d.ws.d[3];
    for (int k = 0; k < 2; k++) {
        d.stride[k] = win->stride[k];
        d.dil[k] = win->dilation[k];
        d.pad[k] = win->padding[k];
    }
    int64_t N = d.xs.d[0];
    /* two slots where there is a next image to copy ahead, else one */
    d.ps =
        (Shape){4, {d.ws.d[0], N > 1 ? 2 : 1, d.xs.d[2] + 2 * d.pad[0], d.xs.d[3] + 2 * d.pad[1]}};
    d.src = d.pad[0] > 0 || d.pad[1] > 0 ? lw_zeroed_slots(L, &d.ps, id) : -1;
    d.o = lp_open_loop(p, d.ws.d[0]);
    d.c = lp_open_loop(p, d.Cg);
    d.ch = lp_iadd(p, lp_imul(p, lp_idiv(p, d.o, d.Og), d.Cg), d.c);
    int taps = (int)(d.kh * d.kw);
    for (int t = 0; t < taps; t++)
        for (int u = 0; u < DW_LANES; u++)
            d.acc[t][u] = lp_local(p, LT_F32, lp_const_f(p, LT_F32, 0));
    if (d.src < 0) {
        dw_image(L, &d, lp_open_loop(p, N), NULL);
        lp_close_loop(p);
    } else { /* image n + 1 copied while image n is read */
        lw_copy_ahead(L, N, copy_plane, dw_image, &d);
    }
    /* the lanes stored side by side (the SLP vectorizer's seed: their
     * chains then stay in vectors), then added pairwise */
    Shape ls = {4, {d.ws.d[0], d.Cg, taps, DW_LANES}};
    int lb = lp_add_buf(p, LB_TEMP, 0, TY_F32, &ls, id);
    p->bufs[lb].scratch = true;
    for (int t = 0; t < taps; t++)
        for (int u = 0; u < DW_LANES; u++) {
            LpExpr *li[4] = {d.o, d.c, lp_iconst(p, t), lp_iconst(p, u)};
            lp_store(p, lb, lw_linearize(p, li, &ls), d.acc[t][u]);
        }
    for (int t = 0; t < taps; t++) {
        LpExpr *s[DW_LANES];
        for (int u = 0; u < DW_LANES; u++) {
            LpExpr *li[4] = {d.o, d.c, lp_iconst(p, t), lp_iconst(p, u)};
            s[u] = lp_load(p, lb, lw_linearize(p, li, &ls));
        }
        for (int w = DW_LANES; w > 1; w /= 2)
            for (int u = 0; u < w / 2; u++) s[u] = lp_bin(p, LO_ADD, s[2 * u], s[2 * u + 1]);
        LpExpr *wi[4] = {d.o, d.c, lp_iconst(p, t / d.kw), lp_iconst(p, t % d.kw)};
        lp_store(p, out, lw_linearize(p, wi, &d.ws), s[0]);
    }
    lw_close_n(p, 2);
}
