/* build_sort.c - builders of sorting and scans along one axis: argsort,
 * take_along (NumPy's take_along_axis), cumsum.
 *
 * Sorted values are not an op of their own: sort(x) is
 * take_along(x, argsort(x)), and take_along is a gather from x flattened
 * to one column, at the flat index row * A + idx. Its gradient is then
 * gather's (scatter_add: each output's gradient goes back to the element it
 * came from), which is what sort, topk and quantile need. The row numbers
 * come from a cumsum of ones, so the graph needs no data of its own.
 */
#include "build.h"

#include <stdio.h>

#define SB 192

/* axis normalized against a's rank, or -1 with g->err naming op */
static int axis_of(IrGraph *g, const char *op, int a, int axis) {
    if (!build_valid(g, op, a)) return -1;
    const Shape *s = &ir_node(g, a)->shape;
    int ax = axis < 0 ? axis + s->ndim : axis;
    if (ax < 0 || ax >= s->ndim) {
        char sa[SB];
        if (s->ndim == 0)
            return build_fail(g, "%s: expects a tensor of at least one dimension", op);
        return build_fail(g, "%s: axis %d out of range for %s", op, axis, shape_str(s, sa, SB));
    }
    return ax;
}

int ir_argsort(IrGraph *g, int a, int axis, bool descending, SrcLoc loc) {
    int ax = axis_of(g, "argsort", a, axis);
    if (ax < 0) return -1;
    IrAttr at = {0};
    at.axis = ax;
    at.reverse = descending;
    return ir_add(g, OP_ARGSORT, &a, 1, &at, loc);
}

int ir_cumsum(IrGraph *g, int a, int axis, bool reverse, SrcLoc loc) {
    int ax = axis_of(g, "cumsum", a, axis);
    if (ax < 0) return -1;
    IrAttr at = {0};
    at.axis = ax;
    at.reverse = reverse;
    return ir_add(g, OP_CUMSUM, &a, 1, &at, loc);
}

/* The permutation moving axis ax of an nd-dim tensor last (and its inverse
 * applied by the same call with back = true). */
static int move_axis(IrGraph *g, int x, int ax, bool back, SrcLoc loc) {
    int nd = ir_node(g, x)->shape.ndim, perm[IR_MAXDIM], k = 0;
    if (ax == nd - 1) return x;
    if (!back) {
        for (int i = 0; i < nd; i++)
            if (i != ax) perm[k++] = i;
        perm[nd - 1] = ax;
    } else {
        for (int i = 0; i < nd; i++) perm[i] = i < ax ? i : i == ax ? nd - 1 : i - 1;
    }
    return ir_permute(g, x, perm, loc);
}

int ir_take_along(IrGraph *g, int x, int idx, int axis, SrcLoc loc) {
    int ax = axis_of(g, "take_along", x, axis);
    if (ax < 0) return -1;
    if (!build_valid(g, "take_along", idx)) return -1;
    Shape xs = ir_node(g, x)->shape, is = ir_node(g, idx)->shape;
    char sa[SB], sb[SB];
    bool ok = is.ndim == xs.ndim && ir_node(g, idx)->dtype == TY_I32;
    for (int i = 0; ok && i < xs.ndim; i++) ok = i == ax || is.d[i] == xs.d[i];
    if (!ok)
        return build_fail(g, "take_along: indices %s %s do not match %s along axis %d",
                          dtype_name(ir_node(g, idx)->dtype), shape_str(&is, sa, SB),
                          shape_str(&xs, sb, SB), ax);
    int nd = xs.ndim;
    int64_t A = xs.d[ax], K = is.d[ax], R = 1;
    for (int i = 0; i < nd; i++)
        if (i != ax) R *= xs.d[i];
    int xt = move_axis(g, x, ax, false, loc), it = move_axis(g, idx, ax, false, loc);
    if (xt < 0 || it < 0) return -1;
    Shape moved = ir_node(g, it)->shape; /* [..., K] */
    int table = ir_reshape(g, xt, shape_make(1, (int64_t[]){R * A}), loc);
    int i2 = ir_reshape(g, it, shape_make(2, (int64_t[]){R, K}), loc);
    if (table < 0 || i2 < 0) return -1;
    /* row r's elements start at r * A: rows = cumsum(ones [R, 1]) - 1 */
    int ones = ir_const(g, TY_I32, shape_make(2, (int64_t[]){R, 1}), 1, loc);
    int rows = ir_cumsum(g, ones, 0, false, loc);
    if (rows < 0) return -1;
    int base = ir_binary(
        g, OP_MUL, ir_binary(g, OP_SUB, rows, ir_const(g, TY_I32, shape_scalar(), 1, loc), loc),
        ir_const(g, TY_I32, shape_scalar(), (double)A, loc), loc);
    if (base < 0) return -1;
    int flat = ir_binary(g, OP_ADD, i2, base, loc);
    int got = flat < 0 ? -1 : ir_gather(g, table, flat, loc);
    if (got < 0) return -1;
    int back = ir_reshape(g, got, moved, loc);
    return back < 0 ? -1 : move_axis(g, back, ax, true, loc);
}
