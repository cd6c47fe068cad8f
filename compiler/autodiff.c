/* autodiff.c - reverse-mode automatic differentiation over the graph IR.
 *
 * ad_backward appends to the graph the nodes that compute d(sum(loss))/d(w)
 * for each requested node w:
 *
 *   1. seed: the gradient of loss is ones of its shape (so a non-scalar loss
 *      is differentiated as the sum of its elements);
 *   2. active nodes: those on a path from some w to loss (reachable forward
 *      from a w and backward from loss) that can carry a gradient: the path
 *      goes through f32 nodes only, and not through OPF_NODIFF ops. Integer
 *      nodes carry no gradient, so a cast to an integer stops it;
 *   3. walk the active nodes from loss down in reverse topological order
 *      (decreasing id): call the op's rule (grad.c) with the node's total
 *      gradient, asking only for the inputs that are active, and add what it
 *      returns to each input's total with ADD nodes.
 *
 * A node's total is complete when the walk reaches it, because every user of
 * a node has a larger id. Gradient nodes carry the source location of the
 * forward node they differentiate.
 */
#include <stdio.h>
#include <stdlib.h>

#include "ir.h"

/* The inputs of node id as pieces along axis ax: a concat's own (along
 * ax), or id itself. */
static int pieces(const IrGraph *g, int id, int ax, int *out, int cap) {
    const IrNode *n = ir_node(g, id);
    if (n->op != OP_CONCAT || n->attr.axis != ax || n->nin > cap) {
        out[0] = id;
        return 1;
    }
    for (int k = 0; k < n->nin; k++) out[k] = n->in[k];
    return n->nin;
}

/* The axis along which pads pa and pb (of one shape) hold pieces side by
 * side, one ending where the other starts, both with step 1 and at the
 * same place on every other axis; -1 if they do not. */
static int side_by_side(const IrGraph *g, const IrNode *pa, const IrNode *pb) {
    const Shape *sa = &ir_node(g, pa->in[0])->shape, *sb = &ir_node(g, pb->in[0])->shape;
    int ax = -1;
    for (int k = 0; k < pa->shape.ndim; k++) {
        if (pa->attr.step[k] != 1 || pb->attr.step[k] != 1) return -1;
        if (pa->attr.start[k] == pb->attr.start[k] && sa->d[k] == sb->d[k]) continue;
        if (ax >= 0) return -1;
        ax = k;
    }
    if (ax < 0) return -1;
    bool touch = pa->attr.start[ax] + sa->d[ax] == pb->attr.start[ax] ||
                 pb->attr.start[ax] + sb->d[ax] == pa->attr.start[ax];
    return touch ? ax : -1;
}

/* The sum of two gradients. Two zero-padded pieces of one tensor, side by
 * side along one axis (the gradients of slices of one value: q, k and v of
 * one [B, T, 3d] projection), are one concat, padded if it does not cover
 * the tensor: the two pads and their add wrote and read [B, T, 3d] three
 * times. The zeros a pad adds are exact (x + 0 is x, but for the sign of a
 * zero). */
static int add_grads(IrGraph *g, int a, int b, SrcLoc loc) {
    IrNode pa = *ir_node(g, a), pb = *ir_node(g, b);
    int ax =
        pa.op == OP_PAD && pb.op == OP_PAD && pa.dtype == pb.dtype ? side_by_side(g, &pa, &pb) : -1;
    if (ax < 0) return ir_binary(g, OP_ADD, a, b, loc);
    /* the piece that starts first */
    const IrNode *first = pa.attr.start[ax] < pb.attr.start[ax] ? &pa : &pb;
    const IrNode *second = first == &pa ? &pb : &pa;
    int ins[16], n = pieces(g, first->in[0], ax, ins, 8);
    n += pieces(g, second->in[0], ax, ins + n, 8);
    int c = ir_concat(g, ins, n, ax, loc);
    if (c < 0) return c;
    if (shape_eq(&ir_node(g, c)->shape, &first->shape)) return c; /* the whole tensor */
    IrAttr at = first->attr;
    return ir_add(g, OP_PAD, &c, 1, &at, loc);
}

bool ad_backward(IrGraph *g, int loss, const int *wrt, int nwrt, int *grads) {
    int n0 = g->n;
    TT_ASSERT(loss >= 0 && loss < n0);
    for (int i = 0; i < nwrt; i++) {
        TT_ASSERT(wrt[i] >= 0 && wrt[i] < n0);
        grads[i] = -1;
    }
    if (ir_node(g, loss)->dtype != TY_F32 || nwrt == 0) return true;

    /* fwd: depends on some wrt; bwd: loss depends on it */
    bool *fwd = tt_xcalloc((size_t)n0, sizeof *fwd);
    bool *bwd = tt_xcalloc((size_t)n0, sizeof *bwd);
    bool *active = tt_xcalloc((size_t)n0, sizeof *active);
    int *grad = tt_xmalloc((size_t)n0 * sizeof *grad);
    for (int i = 0; i < nwrt; i++) fwd[wrt[i]] = ir_node(g, wrt[i])->dtype == TY_F32;
    for (int id = 0; id <= loss; id++) {
        const IrNode *n = ir_node(g, id);
        if (n->dtype != TY_F32 || (ir_ops[n->op].flags & OPF_NODIFF)) continue;
        for (int k = 0; k < n->nin && !fwd[id]; k++) fwd[id] = fwd[n->in[k]];
    }
    bwd[loss] = true;
    for (int id = loss; id >= 0; id--) {
        grad[id] = -1;
        if (!bwd[id]) continue;
        const IrNode *n = ir_node(g, id);
        for (int k = 0; k < n->nin; k++) bwd[n->in[k]] = true;
    }
    for (int id = 0; id <= loss; id++) active[id] = fwd[id] && bwd[id];

    bool ok = true;
    int *gin = NULL, gincap = 0;
    if (active[loss]) {
        const IrNode *l = ir_node(g, loss);
        grad[loss] = ir_const(g, TY_F32, l->shape, 1.0, l->loc);
        ok = grad[loss] >= 0;
    }
    for (int id = loss; id >= 0 && ok; id--) {
        if (!active[id] || grad[id] < 0) continue;
        IrNode n = *ir_node(g, id); /* a copy: rules grow g->nodes */
        bool any = false;
        if (n.nin > gincap) {
            gincap = n.nin;
            gin = tt_xrealloc(gin, (size_t)gincap * sizeof *gin);
        }
        for (int k = 0; k < n.nin; k++) {
            gin[k] = active[n.in[k]] ? 0 : -1;
            any |= active[n.in[k]];
        }
        if (!any) continue; /* a wrt node that depends on no other wrt */
        if (!ir_grad_rules[n.op](g, id, grad[id], gin)) {
            ok = false;
            break;
        }
        for (int k = 0; k < n.nin; k++) {
            int in = n.in[k], gi = gin[k];
            if (gi < 0 || !active[in]) continue;
            const IrNode *x = ir_node(g, in), *gx = ir_node(g, gi);
            if (!shape_eq(&x->shape, &gx->shape) || gx->dtype != x->dtype) {
                char want[64], got[64];
                snprintf(g->err, sizeof g->err,
                         "internal error: gradient rule of %s gave %s%s for input %d of %s%s",
                         ir_ops[n.op].name, dtype_name(gx->dtype),
                         shape_str(&gx->shape, got, sizeof got), k, dtype_name(x->dtype),
                         shape_str(&x->shape, want, sizeof want));
                ok = false;
                break;
            }
            if (grad[in] < 0) {
                grad[in] = gi;
            } else {
                grad[in] = add_grads(g, grad[in], gi, ir_node(g, in)->loc);
                if (grad[in] < 0) {
                    ok = false;
                    break;
                }
            }
        }
    }
    if (ok)
        for (int i = 0; i < nwrt; i++) grads[i] = active[wrt[i]] ? grad[wrt[i]] : -1;
    free(gin);
    free(grad);
    free(active);
    free(bwd);
    free(fwd);
    return ok;
}
