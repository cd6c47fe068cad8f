/* quant_pass.c - post-training INT8 quantization as a pass on the graph IR
 * (quant_pass.h; spec/ir.md "The quantization pass").
 *
 * The graph is append-only, so the pass is a copy: nodes from..root that the
 * new root needs are appended again with their inputs remapped, except the
 * matched Linears and Conv2ds, which become integer chains, and the relus,
 * max pools and reshapes of quantized values, which run on the integers (a
 * max commutes with the monotone dequantization). A node whose inputs are
 * all unchanged is not copied at all (the float prefix before the first
 * layer, leaves).
 *
 * Folding: the pass remembers, for each dequantize it emitted, the integer
 * node, scale and zero point behind it; a Linear whose input is such a node
 * with its own input parameters reads the integers directly, so the
 * dequantize -> quantize pair never appears. The calibration (runtime,
 * builtins_ptq.c) gives a layer fed by another layer through relus, max
 * pools and reshapes that layer's output parameters (QuantMatch.prev), so
 * between such layers the pair always folds.
 */
#include "quant_pass.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A constant of the shape of node `like`: the builders would broadcast a
 * scalar with a reshape and a BROADCAST node; a CONST of the full shape is
 * one node (fewer nodes to copy, hash and fuse on every call). */
static int const_like(IrGraph *g, DType dt, int like, double v, SrcLoc loc) {
    return ir_const(g, dt, ir_node(g, like)->shape, v, loc);
}

/* the node under any reshapes and broadcasts of id */
static int strip_movement(const IrGraph *g, int id) {
    while (id >= 0) {
        const IrNode *n = ir_node(g, id);
        if (n->op != OP_RESHAPE && n->op != OP_BROADCAST) break;
        id = n->in[0];
    }
    return id;
}

static int layer_of_weight(const QuantLinear *L, int nl, int id, bool conv) {
    for (int i = 0; i < nl; i++)
        if (L[i].w == id && L[i].conv == conv) return i;
    return -1;
}

/* the ops that carry a layer's integers on to the next (see quant_pass) */
static bool int_carrier(OpKind op) {
    return op == OP_RELU || op == OP_MAX_POOL2D || op == OP_RESHAPE;
}

/* Does node id's first user in (id, root] take i8 values: a carrier or the
 * input of another layer? Else its layer requantizes straight to f32. */
static bool feeds_integers(const IrGraph *g, int id, int root) {
    for (int j = id + 1; j <= root; j++) {
        const IrNode *u = ir_node(g, j);
        for (int k = 0; k < u->nin; k++)
            if (u->in[k] == id)
                return int_carrier(u->op) || ((u->op == OP_MATMUL || u->op == OP_CONV2D) && k == 0);
    }
    return false;
}

int quant_match(IrGraph *g, int from, int root, const QuantLinear *L, int nl, QuantMatch *m,
                int cap) {
    int nm = 0;
    for (int i = from; i <= root; i++) {
        const IrNode *n = ir_node(g, i);
        if (n->op != OP_MATMUL && n->op != OP_CONV2D) continue;
        bool conv = n->op == OP_CONV2D;
        int l = layer_of_weight(L, nl, n->in[1], conv);
        if (l < 0 || (!conv && (ir_node(g, n->in[0])->shape.ndim != 2 ||
                                ir_node(g, n->in[1])->shape.ndim != 2)))
            continue;
        if (nm == cap) {
            snprintf(g->err, sizeof g->err, "quantize: more than %d layer calls in one forward",
                     cap);
            return -1;
        }
        QuantMatch k = {l, n->in[0], i, -1, i, false, i == root, false};
        /* the add of the bias, when the matmul's first user is one */
        for (int j = i + 1; L[l].b >= 0 && j <= root; j++) {
            const IrNode *u = ir_node(g, j);
            if (u->op != OP_ADD) continue;
            int other = u->in[0] == i ? u->in[1] : u->in[1] == i ? u->in[0] : -1;
            if (other < 0) continue;
            if (strip_movement(g, other) == L[l].b) {
                k.out = j;
                k.root = j == root;
            }
            break;
        }
        k.fout = k.root || !feeds_integers(g, k.out, root);
        int x = k.x;
        while (int_carrier(ir_node(g, x)->op)) {
            k.relu |= ir_node(g, x)->op == OP_RELU;
            x = ir_node(g, x)->in[0];
        }
        for (int p = 0; p < nm; p++)
            if (m[p].out == x) k.prev = m[p].layer;
        m[nm++] = k;
    }
    return nm;
}

/* what an emitted dequantize stands for */
typedef struct Deq {
    int node, q;
    float scale;
    int zp;
} Deq;

typedef struct Pass {
    IrGraph *g;
    int from;
    int *map; /* old id - from -> new id */
    Deq *deq;
    int ndeq, capdeq;
} Pass;

static int mapv(const Pass *P, int id) {
    return id < P->from ? id : P->map[id - P->from];
}

static const Deq *deq_find(const Pass *P, int node) {
    for (int i = 0; i < P->ndeq; i++)
        if (P->deq[i].node == node) return &P->deq[i];
    return NULL;
}

/* dequantize(q, scale, zp), remembered for folding */
static int dequant(Pass *P, int q, float scale, int zp, SrcLoc loc) {
    IrGraph *g = P->g;
    int s = const_like(g, TY_F32, q, scale, loc), z = const_like(g, TY_I32, q, zp, loc);
    if (s < 0 || z < 0) return -1;
    int d = ir_dequantize(g, q, s, z, IR_NO_AXIS, loc);
    if (d < 0) return -1;
    if (P->ndeq == P->capdeq) {
        P->capdeq = P->capdeq ? 2 * P->capdeq : 16;
        P->deq = realloc(P->deq, (size_t)P->capdeq * sizeof *P->deq);
        if (!P->deq) abort();
    }
    P->deq[P->ndeq++] = (Deq){d, q, scale, zp};
    return d;
}

/* A Linear's or Conv2d's integer chain; its float output as f32 (the
 * dequantize of its i8 output, remembered, or its requantize to f32) */
static int emit_layer(Pass *P, const QuantLinear *l, const QuantMatch *m, SrcLoc loc) {
    IrGraph *g = P->g;
    int x = mapv(P, m->x), xq;
    const Deq *d = deq_find(P, x);
    if (d && d->scale == l->in_scale && d->zp == l->in_zp) {
        xq = d->q; /* dequantize -> quantize folds */
    } else {
        int s = const_like(g, TY_F32, x, l->in_scale, loc);
        int z = const_like(g, TY_I32, x, l->in_zp, loc);
        if (s < 0 || z < 0) return -1;
        xq = ir_quantize(g, x, s, z, IR_NO_AXIS, loc);
    }
    if (xq < 0) return -1;
    /* per channel: acc · in_scale · w_scale[j] (/ out_scale for an i8 result).
     * Made before the qmatmul: the JIT fuses adjacent kernels only, so the
     * qmatmul's kernel must be followed by the bias add and requantize for
     * them to run as its GEMM's epilogue. */
    float k = m->fout ? l->in_scale : l->in_scale / l->out_scale;
    int ks = const_like(g, TY_F32, l->w_scale, k, loc);
    int sc = ks < 0 ? -1 : ir_binary(g, OP_MUL, l->w_scale, ks, loc);
    if (sc < 0) return -1;
    int acc, bias = l->bias;
    if (l->conv) {
        /* channels are axis 1 of [N, O, Ho, Wo]: the per-channel vectors as
         * [O, 1, 1] broadcast there by NumPy's rules */
        IrNode cn = *ir_node(g, m->op);
        Shape o3 = {3, {ir_node(g, l->qw)->shape.d[0], 1, 1}};
        if ((sc = ir_reshape(g, sc, o3, loc)) < 0 || (bias = ir_reshape(g, bias, o3, loc)) < 0)
            return -1;
        acc = ir_qconv2d(g, xq, l->qw, l->in_zp, &cn.attr.win, loc);
    } else {
        acc = ir_qmatmul(g, xq, l->qw, loc);
    }
    if (acc < 0 || (acc = ir_binary(g, OP_ADD, acc, bias, loc)) < 0) return -1;
    /* sc[N] broadcasts along the last axis as NumPy does: per channel */
    if (m->fout) {
        int z = const_like(g, TY_I32, acc, 0, loc);
        return z < 0 ? -1 : ir_requantize(g, acc, sc, z, TY_F32, IR_NO_AXIS, loc);
    }
    int z = const_like(g, TY_I32, acc, l->out_zp, loc);
    int q = z < 0 ? -1 : ir_requantize(g, acc, sc, z, TY_I8, IR_NO_AXIS, loc);
    return q < 0 ? -1 : dequant(P, q, l->out_scale, l->out_zp, loc);
}

/* relu, max_pool2d or reshape n of a dequantized value, on the integers:
 * relu(x) is max(q, zp); the max of a window and a reshape take the i8
 * values as they are (dequantization is monotone). *d is copied first:
 * dequant may move P->deq. */
static int emit_int_carrier(Pass *P, const IrNode *n, const Deq *dp, SrcLoc loc) {
    IrGraph *g = P->g;
    Deq d = *dp;
    int q;
    if (n->op == OP_RELU) {
        int z = const_like(g, TY_I8, d.q, d.zp, loc);
        q = z < 0 ? -1 : ir_binary(g, OP_MAX, d.q, z, loc);
    } else {
        q = ir_add(g, n->op, &d.q, 1, &n->attr, loc);
    }
    return q < 0 ? -1 : dequant(P, q, d.scale, d.zp, loc);
}

int quant_pass(IrGraph *g, int from, int root, const QuantLinear *L, int nl, int *qout) {
    if (from < 0 || root < from || root >= g->n) {
        snprintf(g->err, sizeof g->err, "quantize: nothing to rewrite");
        return -1;
    }
    int span = root - from + 1, cap = span;
    QuantMatch *m = malloc((size_t)cap * sizeof *m);
    int *at = malloc((size_t)span * sizeof *at); /* old id -> match index, or -1 */
    char *need = calloc((size_t)span, 1);
    Pass P = {g, from, malloc((size_t)span * sizeof(int)), NULL, 0, 0};
    if (!m || !at || !need || !P.map) abort();
    int ret = -1;
    int nm = quant_match(g, from, root, L, nl, m, cap);
    if (nm < 0) goto done;
    for (int i = 0; i < span; i++) at[i] = -1;
    for (int k = 0; k < nm; k++) at[m[k].out - from] = k;
    /* what the new root needs: a matched Linear only its input */
    need[span - 1] = 1;
    for (int i = root; i >= from; i--) {
        if (!need[i - from]) continue;
        if (at[i - from] >= 0) {
            int x = m[at[i - from]].x;
            if (x >= from) need[x - from] = 1;
            continue;
        }
        const IrNode *n = ir_node(g, i);
        for (int k = 0; k < n->nin; k++)
            if (n->in[k] >= from) need[n->in[k] - from] = 1;
    }
    for (int i = from; i <= root; i++) {
        P.map[i - from] = -1;
        if (!need[i - from]) continue;
        IrNode n = *ir_node(g, i); /* a copy: appending moves the nodes */
        int id;
        if (at[i - from] >= 0) {
            const QuantMatch *k = &m[at[i - from]];
            id = emit_layer(&P, &L[k->layer], k, n.loc);
            if (qout) qout[at[i - from]] = id;
        } else if (int_carrier(n.op) && deq_find(&P, mapv(&P, n.in[0]))) {
            id = emit_int_carrier(&P, &n, deq_find(&P, mapv(&P, n.in[0])), n.loc);
        } else {
            int buf[8], *ins = n.nin <= 8 ? buf : malloc((size_t)n.nin * sizeof *ins), same = 1;
            if (!ins) abort();
            for (int k = 0; k < n.nin; k++) {
                ins[k] = mapv(&P, n.in[k]);
                same &= ins[k] == n.in[k];
            }
            id = same ? i : ir_add(g, n.op, ins, n.nin, &n.attr, n.loc);
            if (ins != buf) free(ins);
        }
        if (id < 0) goto done;
        P.map[i - from] = id;
    }
    ret = P.map[span - 1];
done:
    free(m);
    free(at);
    free(need);
    free(P.map);
    free(P.deq);
    return ret;
}
