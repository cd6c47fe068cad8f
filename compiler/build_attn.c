/* build_attn.c - ir_attention: PyTorch's scaled_dot_product_attention on
 * top of the attention op (ops.def).
 *
 * The builder does what the op leaves out: ints become f32, size-1 batch
 * dims broadcast (ranks must agree, as the op's batch dims must be equal),
 * and the default scale 1/sqrt(D) is computed here and stored on the node,
 * so every backend and pass reads one number.
 */
#include "build.h"

#include <math.h>

#define SB 192

int ir_attention(IrGraph *g, int q, int k, int v, int len, bool causal, double scale, SrcLoc loc) {
    int ids[4] = {q, k, v, len};
    static const char *const names[] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        if (!build_valid(g, "attention", ids[i])) return -1;
        if (ir_node(g, ids[i])->dtype != TY_F32 && (ids[i] = ir_cast(g, ids[i], TY_F32, loc)) < 0)
            return -1;
        if (ir_node(g, ids[i])->shape.ndim < 2) {
            char sa[SB];
            return build_fail(g,
                              "attention: %s must have at least 2 dimensions [..., T, D], got %s",
                              names[i], shape_str(&ir_node(g, ids[i])->shape, sa, SB));
        }
    }
    if (len >= 0 && !build_valid(g, "attention", len)) return -1;
    /* broadcast the batch dims of equal-rank operands */
    int r = ir_node(g, ids[0])->shape.ndim;
    if (ir_node(g, ids[1])->shape.ndim == r && ir_node(g, ids[2])->shape.ndim == r) {
        Shape b = ir_node(g, ids[0])->shape;
        bool ok = true;
        for (int d = 0; d < r - 2; d++)
            for (int i = 1; i < 3; i++) {
                int64_t x = ir_node(g, ids[i])->shape.d[d];
                if (b.d[d] == 1)
                    b.d[d] = x;
                else if (x != 1 && x != b.d[d])
                    ok = false;
            }
        for (int i = 0; ok && i < 3; i++) {
            Shape t = ir_node(g, ids[i])->shape;
            for (int d = 0; d < r - 2; d++) t.d[d] = b.d[d];
            if (!shape_eq(&t, &ir_node(g, ids[i])->shape) &&
                (ids[i] = ir_broadcast_to(g, ids[i], t, loc)) < 0)
                return -1;
        }
    }
    IrAttr at = {0};
    at.causal = causal;
    int64_t d = ir_node(g, ids[0])->shape.d[r - 1];
    at.scale = isnan(scale) ? 1.0 / sqrt((double)(d > 0 ? d : 1)) : scale;
    return ir_add(g, OP_ATTENTION, ids, len >= 0 ? 4 : 3, &at, loc);
}

/* The cast of an int src or pos is the builder's (the op takes f32 rows and
 * an i32 position); the rest is the shape rule's. */
int ir_write_rows(IrGraph *g, int dst, int src, int pos, SrcLoc loc) {
    if (!build_valid(g, "write_rows", dst) || !build_valid(g, "write_rows", src) ||
        !build_valid(g, "write_rows", pos))
        return -1;
    if (ir_node(g, src)->dtype != TY_F32 && (src = ir_cast(g, src, TY_F32, loc)) < 0) return -1;
    if (ir_node(g, pos)->dtype != TY_I32 && (pos = ir_cast(g, pos, TY_I32, loc)) < 0) return -1;
    int ids[3] = {dst, src, pos};
    return ir_add(g, OP_WRITE_ROWS, ids, 3, &(IrAttr){0}, loc);
}
