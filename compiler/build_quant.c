/* build_quant.c - builders of the INT8 quantization ops (issue 13):
 * quantize, dequantize, requantize, qmatmul, qconv2d.
 *
 * The ops themselves take scale (f32) and zero point (i32) of the data's
 * shape; the builders bring them there. A scale or zero point broadcasts to
 * the data by NumPy's rules, or, with a per-channel axis (axis != IR_NO_AXIS),
 * is a vector of the size of that axis (or a scalar), laid along it: scale
 * f32[C] with axis 0 scales the rows of a [C, K] weight, with axis 1 the
 * columns of an [N, C] activation. A float zero point is cast to i32
 * (truncated); the front end checks it is whole.
 */
#include "build.h"

#include <stdio.h>

#define SB 192

/* p (scale or zero point, named what) as dtype dt of x's shape s */
static int param_to(IrGraph *g, const char *op, const char *what, int p, DType dt, const Shape *s,
                    int axis, SrcLoc loc) {
    if (!build_valid(g, op, p)) return -1;
    const Shape *ps = &ir_node(g, p)->shape;
    char sa[SB], sb[SB];
    if (axis != IR_NO_AXIS) {
        int ax = axis < 0 ? axis + s->ndim : axis;
        if (ax < 0 || ax >= s->ndim)
            return build_fail(g, "%s: axis %d out of range for %s", op, axis, shape_str(s, sa, SB));
        if (shape_numel(ps) != 1 || ps->ndim > 1) {
            if (ps->ndim != 1 || ps->d[0] != s->d[ax])
                return build_fail(
                    g, "%s: per-channel %s must be a vector of %lld (axis %d of %s), got %s", op,
                    what, (long long)s->d[ax], axis, shape_str(s, sa, SB), shape_str(ps, sb, SB));
            Shape r = {s->ndim, {0}};
            for (int i = 0; i < s->ndim; i++) r.d[i] = i == ax ? s->d[ax] : 1;
            if ((p = ir_reshape(g, p, r, loc)) < 0) return -1;
        }
    } else {
        /* NumPy broadcasting, but to x's shape exactly */
        bool ok = ps->ndim <= s->ndim;
        for (int i = 1; ok && i <= ps->ndim; i++) {
            int64_t a = ps->d[ps->ndim - i], b = s->d[s->ndim - i];
            ok = a == b || a == 1;
        }
        if (!ok)
            return build_fail(g, "%s: cannot broadcast %s %s to the input's shape %s", op, what,
                              shape_str(ps, sb, SB), shape_str(s, sa, SB));
    }
    if ((p = ir_cast(g, p, dt, loc)) < 0) return -1;
    return ir_broadcast_to(g, p, *s, loc);
}

static int quant_op(IrGraph *g, OpKind op, DType in_dt, DType out_dt, int x, int scale, int zp,
                    int axis, SrcLoc loc) {
    const char *name = ir_ops[op].name;
    if (!build_valid(g, name, x)) return -1;
    const IrNode *xn = ir_node(g, x);
    if (xn->dtype != in_dt)
        return build_fail(g, "%s: expects %s data, got %s", name, dtype_name(in_dt),
                          dtype_name(xn->dtype));
    Shape s = xn->shape;
    int ids[3] = {x, -1, -1};
    if ((ids[1] = param_to(g, name, "scale", scale, TY_F32, &s, axis, loc)) < 0) return -1;
    if ((ids[2] = param_to(g, name, "zero_point", zp, TY_I32, &s, axis, loc)) < 0) return -1;
    IrAttr at = {0};
    at.dtype = out_dt;
    return ir_add(g, op, ids, 3, &at, loc);
}

int ir_quantize(IrGraph *g, int x, int scale, int zp, int axis, SrcLoc loc) {
    return quant_op(g, OP_QUANTIZE, TY_F32, TY_I8, x, scale, zp, axis, loc);
}

int ir_dequantize(IrGraph *g, int q, int scale, int zp, int axis, SrcLoc loc) {
    return quant_op(g, OP_DEQUANTIZE, TY_I8, TY_F32, q, scale, zp, axis, loc);
}

int ir_requantize(IrGraph *g, int acc, int scale, int zp, DType to, int axis, SrcLoc loc) {
    if (to != TY_I8 && to != TY_F32)
        return build_fail(g, "requantize: the result dtype must be i8 or f32, got %s",
                          (int)to >= 0 && to < TY__COUNT ? dtype_name(to) : "?");
    return quant_op(g, OP_REQUANTIZE, TY_I32, to, acc, scale, zp, axis, loc);
}

/* numpy matmul rules (1-D operands, broadcast batch dims), no promotion */
int ir_qmatmul(IrGraph *g, int a, int b, SrcLoc loc) {
    if (!build_valid(g, "qmatmul", a) || !build_valid(g, "qmatmul", b)) return -1;
    Shape x = ir_node(g, a)->shape, y = ir_node(g, b)->shape;
    char sa[SB], sb[SB];
#define SHAPES (shape_str(&ir_node(g, a)->shape, sa, SB), shape_str(&ir_node(g, b)->shape, sb, SB))
    if (ir_node(g, a)->dtype != TY_I8 || ir_node(g, b)->dtype != TY_I8)
        return build_fail(g, "qmatmul: expects i8 operands, got %s and %s",
                          dtype_name(ir_node(g, a)->dtype), dtype_name(ir_node(g, b)->dtype));
    if (x.ndim < 1 || y.ndim < 1)
        return SHAPES,
               build_fail(g, "qmatmul: operands must have at least 1 dimension, got %s @ %s", sa,
                          sb);
    bool avec = x.ndim == 1, bvec = y.ndim == 1;
    if (avec) x = shape_make(2, (int64_t[]){1, x.d[0]});
    if (bvec) y = shape_make(2, (int64_t[]){y.d[0], 1});
    int64_t k1 = x.d[x.ndim - 1], k2 = y.d[y.ndim - 2];
    if (k1 != k2)
        return SHAPES, build_fail(g, "qmatmul shape mismatch: %s @ %s (inner %lld != %lld)", sa, sb,
                                  (long long)k1, (long long)k2);
    /* batch dims: NumPy broadcast of both prefixes */
    int nb = (x.ndim > y.ndim ? x.ndim : y.ndim) - 2;
    if (nb + 2 > IR_MAXDIM)
        return SHAPES, build_fail(g, "qmatmul: too many dimensions in %s @ %s", sa, sb);
    Shape tx = {nb + 2, {0}}, ty = {nb + 2, {0}};
    for (int i = 0; i < nb; i++) {
        int ia = i - (nb - (x.ndim - 2)), ib = i - (nb - (y.ndim - 2));
        int64_t da = ia >= 0 ? x.d[ia] : 1, db = ib >= 0 ? y.d[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return SHAPES,
                   build_fail(g, "qmatmul: cannot broadcast batch dimensions of %s @ %s", sa, sb);
        tx.d[i] = ty.d[i] = da == 1 ? db : da;
    }
#undef SHAPES
    tx.d[nb] = x.d[x.ndim - 2];
    tx.d[nb + 1] = k1;
    ty.d[nb] = k2;
    ty.d[nb + 1] = y.d[y.ndim - 1];
    if ((a = ir_reshape(g, a, x, loc)) < 0 || (b = ir_reshape(g, b, y, loc)) < 0) return -1;
    if ((a = ir_broadcast_to(g, a, tx, loc)) < 0 || (b = ir_broadcast_to(g, b, ty, loc)) < 0)
        return -1;
    int ids[2] = {a, b};
    int r = ir_add(g, OP_QMATMUL, ids, 2, NULL, loc);
    if (r < 0 || (!avec && !bvec)) return r;
    Shape out = {nb, {0}};
    for (int i = 0; i < nb; i++) out.d[i] = tx.d[i];
    if (!avec) out.d[out.ndim++] = tx.d[nb];
    if (!bvec) out.d[out.ndim++] = ty.d[nb + 1];
    return ir_reshape(g, r, out, loc);
}

int ir_qconv2d(IrGraph *g, int x, int w, int pad, const IrWindow *win, SrcLoc loc) {
    if (!build_valid(g, "qconv2d", x) || !build_valid(g, "qconv2d", w)) return -1;
    IrAttr at = {0};
    at.win = *win;
    at.value = pad;
    int in[2] = {x, w};
    return ir_add(g, OP_QCONV2D, in, 2, &at, loc);
}
