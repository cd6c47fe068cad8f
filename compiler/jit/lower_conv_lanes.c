/* lower_conv_lanes.c - conv2d's direct lowering: output rows in lanes.
 *
 * The loop nest of the reference (backend/naive/kernels_conv.c) sums each
 * output over its taps (c, kh, kw) in one scalar chain: nothing to widen,
 * 1-3 GFLOP/s. Here a block of CONV_ROWS output rows by CONV_LANES
 * consecutive output columns of one (image, channel) keeps one f32
 * accumulator per output, and the taps are walked once per block:
 *
 *   for n, o, row block i0, column block j0:
 *     acc[r][u] = 0
 *     for c < Cg, a < kh, b < kw:
 *       wv = w[o, c, a, b]
 *       acc[r][u] += xp[n, g*Cg + c, (i0+r)*s + a*d, (j0+u)*s + b*d] * wv
 *     y[n, o, i0+r, j0+u] = acc[r][u]
 *
 * With stride 1 the lanes of a row read consecutive floats, so the SLP
 * vectorizer turns each row into whole vectors: one load, one multiply and
 * one add per tap and vector, the weight broadcast once per tap. The rows
 * give CONV_ROWS * CONV_LANES / width independent chains, enough to hide
 * the adder's latency. The last rows and columns take smaller blocks.
 *
 * xp is x with its padding: x itself without padding (read through a fused
 * producer, if any), else zero-bordered copies of one group's Cg input
 * planes in two slots per image [2, Cg, H + 2 ph, W + 2 pw] (one with one group), whose
 * borders are zeroed once. Group g + 1 is copied into one slot while group
 * g's output channels read the other: the taps read floats stored a whole
 * group earlier, where reading them right after the copy made most loads
 * wait on stores they straddle (no store forwarding), and a padded copy
 * of all of x first (as the GEMM's lowerings make) costed twice the
 * convolution itself on a depthwise 3x3 (16x16, 64 channels, batch 32:
 * 104 us without padding, 320 with). Slots per image keep the images
 * independent, so the image loop runs threaded. As in the GEMM's
 * lowerings (whose packed B holds the same zeros), a tap in the padding
 * adds 0 * w where the reference skips it: the same value for finite
 * weights (the sum starts from +0, so it never holds -0), NaN where w is
 * inf or NaN, as PyTorch. Each output still sums its taps in the
 * reference's order, in f32.
 *
 * Used for conv2d and its stride-1 input gradient where the GEMM loses
 * (lp_conv_uses_gemm: stride-1 rows of 16+ outputs; depthwise and grouped
 * convolutions above all, and one input channel; spec/jit.md
 * "Convolution"); lower_conv_dw.c does the weight gradient.
 */
#include "lower_internal.h"

#define CONV_LANES 16
#define CONV_ROWS  4

/* A convolution in lanes: the forward, or the input gradient as the
 * forward of gy with the kernel flipped and its channel dims swapped
 * (bwd). Below, "x" is what the taps read (x, or gy) and "y" what is
 * written (y, or dx); a group reads Ci channels of x and writes Co of y. */
typedef struct LaneConv {
    int id, xn, wn, out, src; /* src: the padded slots, -1: x read in place */
    Shape xs, ps, ws, ys;     /* x, the slots [N, 1 or 2, Ci, Hp, Wp], w, y */
    int64_t Ci, Co, stride[2], dil[2], pad[2];
    bool bwd;
    LpExpr *n, *g, *o; /* the block's image, group, channel of y */
    LpExpr *slot;      /* the slot group g is read from */
} LaneConv;

/* The border of what the taps read along spatial dim k (kernel size
 * ksize): the padding, or for the input gradient gy's (k-1)*d - p
 * (negative: a padding wider than the kernel, not a convolution of gy). */
static int64_t read_pad(const IrNode *n, int64_t ksize, int k) {
    const IrWindow *w = &n->attr.win;
    return n->op == OP_CONV2D_BACKWARD_INPUT ? (ksize - 1) * w->dilation[k] - w->padding[k]
                                             : w->padding[k];
}

bool lp_conv_lanes(const IrGraph *g, int id) {
    const IrNode *n = ir_node(g, id);
    if (n->op == OP_CONV2D_BACKWARD_WEIGHT) return lw_conv_dw_ok(g, id);
    if (n->dtype != TY_F32 || n->shape.ndim != 4 || n->shape.d[3] < CONV_LANES / 2) return false;
    if (n->op == OP_CONV2D) return true;
    if (n->op != OP_CONV2D_BACKWARD_INPUT) return false;
    /* dx = the stride-1 forward of gy zero-bordered by (k-1)*d - p */
    const Shape *ws = &ir_node(g, n->in[1])->shape;
    for (int k = 0; k < 2; k++)
        if (n->attr.win.stride[k] != 1 || read_pad(n, ws->d[2 + k], k) < 0) return false;
    return true;
}

/* The rule (measured by bench/bench_conv.c; spec/jit.md "Convolution"):
 * lanes where they apply with stride 1 along the rows, rows of 16+ in
 * lanes, a kernel of 2+ taps and a group's padded planes of what the taps
 * read within CONV_LANES_BYTES. There the forward and backward of
 * depthwise and grouped 3x3s ran at 74-77 GFLOP/s, where the GEMM's ran
 * 6-43, and the forward of one input channel or 16-32 channels of 16x16
 * to 32x32 at 66-95 (the GEMM 17-80: its packing costs as much as its
 * product when a group has few rows or few taps). Shorter or strided rows
 * leave the vectors part empty or gathered (5-35 GFLOP/s), and a 1x1
 * kernel reads each input plane once per output channel for one tap (56
 * against the GEMM's 91 at 64 channels of 16x16). */
#define CONV_LANES_BYTES (128 << 10)

bool lp_conv_lanes_rule(const IrGraph *g, int id) {
    if (!lp_conv_lanes(g, id)) return false;
    const IrNode *n = ir_node(g, id);
    bool dx = n->op == OP_CONV2D_BACKWARD_INPUT, dw = n->op == OP_CONV2D_BACKWARD_WEIGHT;
    const Shape *ws = dw ? &n->shape : &ir_node(g, n->in[1])->shape;
    const Shape *rs = &ir_node(g, n->in[0])->shape;                  /* read: x, or gy */
    const Shape *ls = dw ? &ir_node(g, n->in[1])->shape : &n->shape; /* in lanes: y, dx, gy */
    if (n->attr.win.stride[1] != 1 || ws->d[2] * ws->d[3] < 2) return false;
    int64_t planes = dx ? ws->d[0] / n->attr.win.groups : ws->d[1];
    int64_t plane =
        (rs->d[2] + 2 * read_pad(n, ws->d[2], 0)) * (rs->d[3] + 2 * read_pad(n, ws->d[3], 1));
    return ls->d[3] >= 16 && planes * plane * 4 <= CONV_LANES_BYTES;
}

/* Group g's input planes of image n into the inside of the slot. */
static void copy_group(Lower *L, void *ctx, LpExpr *g, LpExpr *slot) {
    const LaneConv *c = ctx;
    LpProg *p = L->p;
    LpExpr *ci = lp_open_loop(p, c->Ci), *h = lp_open_loop(p, c->xs.d[2]);
    LpExpr *w = lp_open_loop(p, c->xs.d[3]);
    LpExpr *xi[4] = {c->n, lp_iadd(p, lp_imul(p, g, c->Ci), ci), h, w};
    LpExpr *si[5] = {c->n, slot, ci, lp_iadd(p, h, lp_iconst(p, c->pad[0])),
                     lp_iadd(p, w, lp_iconst(p, c->pad[1]))};
    lp_store(p, c->src, lw_linearize(p, si, &c->ps), lw_value_at(L, c->xn, xi));
    lw_close_n(p, 3);
}

/* One block: rows i0.. (rows of them) by columns j0.. (lanes of them). */
static void lane_block(Lower *L, const LaneConv *c, LpExpr *i0, int rows, LpExpr *j0, int lanes) {
    LpProg *p = L->p;
    LpExpr *acc[CONV_ROWS][CONV_LANES];
    for (int r = 0; r < rows; r++)
        for (int u = 0; u < lanes; u++) acc[r][u] = lp_local(p, LT_F32, lp_const_f(p, LT_F32, 0));
    /* the taps: channel ci of the group, a, b */
    int64_t kh = c->ws.d[2], kw = c->ws.d[3];
    LpExpr *ci = lp_open_loop(p, c->Ci), *a = lp_open_loop(p, kh), *b = lp_open_loop(p, kw);
    LpExpr *wi[4] = {c->o, ci, a, b};
    if (c->bwd) { /* w[g*Og + ci, o - g*Cg, kh-1-a, kw-1-b] */
        wi[0] = lp_iadd(p, lp_imul(p, c->g, c->Ci), ci);
        wi[1] = lp_iadd(p, c->o, lp_imul(p, c->g, -c->Co));
        wi[2] = lp_iadd(p, lp_imul(p, a, -1), lp_iconst(p, kh - 1));
        wi[3] = lp_iadd(p, lp_imul(p, b, -1), lp_iconst(p, kw - 1));
    }
    LpExpr *wv = lp_local(p, LT_F32, lw_value_at(L, c->wn, wi));
    /* x's index, or the slot's: [n, slot, c, row, column] */
    LpExpr *xi[5];
    bool slot = c->src >= 0;
    xi[0] = c->n;
    xi[1] = slot ? c->slot : lp_iadd(p, lp_imul(p, c->g, c->Ci), ci);
    xi[2] = ci;
    for (int r = 0; r < rows; r++) {
        LpExpr *i = lp_iadd(p, i0, lp_iconst(p, r));
        xi[3] = lp_iadd(p, lp_imul(p, i, c->stride[0]), lp_imul(p, a, c->dil[0]));
        for (int u = 0; u < lanes; u++) {
            LpExpr *j = lp_iadd(p, j0, lp_iconst(p, u));
            xi[4] = lp_iadd(p, lp_imul(p, j, c->stride[1]), lp_imul(p, b, c->dil[1]));
            LpExpr *xv = slot ? lp_load(p, c->src, lw_linearize(p, xi, &c->ps))
                              : lw_value_at(L, c->xn, (LpExpr *[4]){xi[0], xi[1], xi[3], xi[4]});
            lp_set(p, acc[r][u], lp_bin(p, LO_ADD, acc[r][u], lp_bin(p, LO_MUL, xv, wv)));
        }
    }
    lw_close_n(p, 3);
    /* every result first, then the stores: an epilogue's loads (a bias)
     * then come before any store LLVM cannot tell apart from them, so they
     * are loaded once and the stores widen */
    LpExpr *yi[CONV_ROWS][CONV_LANES][4], *val[CONV_ROWS][CONV_LANES];
    for (int r = 0; r < rows; r++)
        for (int u = 0; u < lanes; u++) {
            LpExpr **e = yi[r][u];
            e[0] = c->n;
            e[1] = c->o;
            e[2] = lp_iadd(p, i0, lp_iconst(p, r));
            e[3] = lp_iadd(p, j0, lp_iconst(p, u));
            val[r][u] = lp_local(p, LT_F32, lw_conv_result(L, c->id, e, acc[r][u]));
        }
    for (int r = 0; r < rows; r++)
        for (int u = 0; u < lanes; u++)
            lp_store(p, c->out, lw_linearize(p, yi[r][u], &c->ys), val[r][u]);
}

/* The columns of rows i0.. in blocks of CONV_LANES, then the rest. */
static void lane_row_blocks(Lower *L, const LaneConv *c, LpExpr *i0, int rows) {
    LpProg *p = L->p;
    int64_t Wo = c->ys.d[3], nb = Wo / CONV_LANES, rest = Wo % CONV_LANES;
    if (nb > 0) {
        LpExpr *jb = lp_open_loop(p, nb);
        lane_block(L, c, i0, rows, lp_imul(p, jb, CONV_LANES), CONV_LANES);
        lp_close_loop(p);
    }
    if (rest > 0) lane_block(L, c, i0, rows, lp_iconst(p, nb * CONV_LANES), (int)rest);
}

/* Group g's output channels, from the slot (if any). */
static void group_channels(Lower *L, void *ctx, LpExpr *g, LpExpr *slot) {
    LaneConv *c = ctx;
    LpProg *p = L->p;
    int64_t Ho = c->ys.d[2], nb = Ho / CONV_ROWS, rest = Ho % CONV_ROWS;
    c->g = g;
    c->slot = slot;
    c->o = lp_iadd(p, lp_imul(p, g, c->Co), lp_open_loop(p, c->Co));
    if (nb > 0) {
        LpExpr *ib = lp_open_loop(p, nb);
        lane_row_blocks(L, c, lp_imul(p, ib, CONV_ROWS), CONV_ROWS);
        lp_close_loop(p);
    }
    if (rest > 0) lane_row_blocks(L, c, lp_iconst(p, nb * CONV_ROWS), (int)rest);
    lp_close_loop(p);
}

void lw_lower_conv_lanes(Lower *L, int id, int out) {
    const IrNode *n = node(L, id);
    LpProg *p = L->p;
    if (n->op == OP_CONV2D_BACKWARD_WEIGHT) {
        lw_lower_conv_dw(L, id, out);
        return;
    }
    const IrWindow *win = &n->attr.win;
    int64_t G = win->groups;
    LaneConv c;
    c.id = id;
    c.bwd = n->op == OP_CONV2D_BACKWARD_INPUT;
    c.xn = n->in[0];
    c.wn = n->in[1];
    c.out = out;
    c.xs = node(L, c.xn)->shape;
    c.ws = node(L, c.wn)->shape;
    c.ys = n->shape;
    int64_t Cg = c.ws.d[1], Og = c.ws.d[0] / G;
    c.Ci = c.bwd ? Og : Cg;
    c.Co = c.bwd ? Cg : Og;
    for (int k = 0; k < 2; k++) {
        c.stride[k] = win->stride[k];
        c.dil[k] = win->dilation[k];
        c.pad[k] = read_pad(n, c.ws.d[2 + k], k);
    }
    /* two slots where there is a next group to copy ahead, else one */
    int64_t nslots = G > 1 ? 2 : 1;
    c.ps =
        (Shape){5, {c.xs.d[0], nslots, c.Ci, c.xs.d[2] + 2 * c.pad[0], c.xs.d[3] + 2 * c.pad[1]}};
    c.src = -1;
    if (c.pad[0] == 0 && c.pad[1] == 0) {
        c.n = lp_open_loop(p, c.ys.d[0]);
        group_channels(L, &c, lp_open_loop(p, G), NULL);
        lw_close_n(p, 2);
        return;
    }
    c.src = lw_zeroed_slots(L, &c.ps, id);
    c.n = lp_open_loop(p, c.ys.d[0]);
    lw_copy_ahead(L, G, copy_group, group_channels, &c);
    lp_close_loop(p);
}

int lw_zeroed_slots(Lower *L, const Shape *s, int id) {
    LpProg *p = L->p;
    int b = lp_add_buf(p, LB_TEMP, 0, TY_F32, s, id);
    p->bufs[b].scratch = true; /* so the copies widen (no alias checks) */
    LpExpr *v = lp_open_loop(p, shape_numel(s));
    lp_store(p, b, v, lp_const_f(p, LT_F32, 0));
    lp_close_loop(p);
    return b;
}

void lw_copy_ahead(Lower *L, int64_t count, LwSlotStep *copy, LwSlotStep *work, void *ctx) {
    LpProg *p = L->p;
    copy(L, ctx, lp_iconst(p, 0), lp_iconst(p, 0));
    if (count > 1) { /* step k + 1 copied while step k works */
        LpExpr *k = lp_open_loop(p, count - 1), *k1 = lp_iadd(p, k, lp_iconst(p, 1));
        copy(L, ctx, k1, lp_imod(p, k1, 2));
        work(L, ctx, k, lp_imod(p, k, 2));
        lp_close_loop(p);
    }
    work(L, ctx, lp_iconst(p, count - 1), lp_iconst(p, (count - 1) % 2));
}
