/* grad.c - the gradient rule (vector-Jacobian product) of every op.
 *
 * One rule per row of ops.def, found by name: grad_<name>. The table
 * ir_grad_rules is expanded from ops.def, so a row without a rule does not
 * link. A rule is called by ad_backward (autodiff.c) for node `id` with the
 * gradient `gout` of its output (same shape as the node, f32) and writes to
 * gin[i] the gradient of input i (exactly input i's shape), or -1 for none.
 *
 * On entry gin[i] == -1 says input i's gradient is not needed (it does not
 * depend on a variable we differentiate for): the rule then builds nothing for
 * it and leaves -1. Any other value asks for the gradient. Inputs that never
 * carry a gradient (a where condition, gather indices, comparisons, int casts)
 * are always set to -1.
 *
 * Notation in the comments: y is the node's output, x (unary) or a, b its
 * inputs, g the gradient of y. Every node built here carries the forward
 * node's source location.
 */
#include <string.h>

#include "ir.h"

#define OP(NAME, name, arity, flags, form, shape, flops, tol, attrs)                               \
    bool grad_##name(IrGraph *g, int id, int gout, int *gin);
#include "ops.def"
#undef OP

const GradRule ir_grad_rules[OP__COUNT] = {
#define OP(NAME, name, arity, flags, form, shape, flops, tol, attrs) [OP_##NAME] = grad_##name,
#include "ops.def"
#undef OP
};

/* Is input i's gradient wanted? */
#define WANT(i) (gin[(i)] != -1)
/* Evaluates a builder call; a negative id means it failed (g->err is set). */
#define TRY(e)                                                                                     \
    do {                                                                                           \
        if ((e) < 0) return false;                                                                 \
    } while (0)

/* -- helpers: small builders that keep the rules to one line per formula -- */

static const Shape *shape_of(const IrGraph *g, int id) {
    return &ir_node(g, id)->shape;
}

/* A constant f32 tensor of node `like`'s shape, every element v. */
static int full_like(IrGraph *g, int like, double v, SrcLoc loc) {
    Shape s = *shape_of(g, like);
    return ir_const(g, TY_F32, s, v, loc);
}

static int bin(IrGraph *g, OpKind op, int a, int b, SrcLoc loc) {
    if (a < 0 || b < 0) return -1;
    return ir_binary(g, op, a, b, loc);
}

static int un(IrGraph *g, OpKind op, int a, SrcLoc loc) {
    if (a < 0) return -1;
    return ir_unary(g, op, a, loc);
}

/* x reshaped to s, or x itself when it already has that shape. */
static int reshape_to(IrGraph *g, int x, Shape s, SrcLoc loc) {
    if (x < 0) return -1;
    if (shape_eq(shape_of(g, x), &s)) return x;
    return ir_reshape(g, x, s, loc);
}

/* x broadcast to s, or x itself when it already has that shape. */
static int broadcast_to(IrGraph *g, int x, Shape s, SrcLoc loc) {
    if (x < 0) return -1;
    if (shape_eq(shape_of(g, x), &s)) return x;
    return ir_broadcast_to(g, x, s, loc);
}

/* The output shape of a reduction of `in` over the axes bit mask with
 * keepdims: the reduced dims become 1. */
static Shape keepdims_shape(Shape in, uint32_t axes) {
    Shape k = in;
    for (int i = 0; i < in.ndim; i++)
        if (axes >> i & 1u) k.d[i] = 1;
    return k;
}

/* The gradient of a reduction's output spread back over its input's shape:
 * g reshaped to the keepdims shape, then broadcast to `in`. */
static int spread(IrGraph *g, int gout, Shape in, uint32_t axes, SrcLoc loc) {
    Shape k = keepdims_shape(in, axes);
    return broadcast_to(g, reshape_to(g, gout, k, loc), in, loc);
}

/* where(mask, g, 0) (or where(mask, 0, g) when `else_side`). */
static int select_g(IrGraph *g, int mask, int gout, bool else_side, SrcLoc loc) {
    if (mask < 0) return -1;
    int zero = full_like(g, gout, 0.0, loc);
    if (zero < 0) return -1;
    return else_side ? ir_where(g, mask, zero, gout, loc) : ir_where(g, mask, gout, zero, loc);
}

static bool no_grad(IrGraph *g, int id, int *gin) {
    int nin = ir_node(g, id)->nin;
    for (int i = 0; i < nin; i++) gin[i] = -1;
    return true;
}

/* -- leaves -- */

bool grad_input(IrGraph *g, int id, int gout, int *gin) {
    return no_grad(g, id, gin);
}
bool grad_const(IrGraph *g, int id, int gout, int *gin) {
    return no_grad(g, id, gin);
}

/* -- elementwise unary -- */

/* neg: -g */
bool grad_neg(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (WANT(0)) TRY(gin[0] = un(g, OP_NEG, gout, n.loc));
    return true;
}

/* exp: g * y */
bool grad_exp(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (WANT(0)) TRY(gin[0] = bin(g, OP_MUL, gout, id, n.loc));
    return true;
}

/* log: g / x */
bool grad_log(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (WANT(0)) TRY(gin[0] = bin(g, OP_DIV, gout, n.in[0], n.loc));
    return true;
}

/* sqrt: g / (2 y) */
bool grad_sqrt(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (!WANT(0)) return true;
    int two_y = bin(g, OP_MUL, full_like(g, id, 2.0, n.loc), id, n.loc);
    TRY(gin[0] = bin(g, OP_DIV, gout, two_y, n.loc));
    return true;
}

/* rsqrt: y = x^-1/2, dy/dx = -1/2 x^-3/2 = -1/2 y^3 */
bool grad_rsqrt(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (!WANT(0)) return true;
    int y3 = bin(g, OP_MUL, bin(g, OP_MUL, id, id, n.loc), id, n.loc);
    int k = bin(g, OP_MUL, full_like(g, id, -0.5, n.loc), y3, n.loc);
    TRY(gin[0] = bin(g, OP_MUL, gout, k, n.loc));
    return true;
}

/* tanh: g * (1 - y^2) */
bool grad_tanh(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (!WANT(0)) return true;
    int d = bin(g, OP_SUB, full_like(g, id, 1.0, n.loc), bin(g, OP_MUL, id, id, n.loc), n.loc);
    TRY(gin[0] = bin(g, OP_MUL, gout, d, n.loc));
    return true;
}

/* sigmoid: g * y * (1 - y) */
bool grad_sigmoid(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (!WANT(0)) return true;
    int d = bin(g, OP_MUL, id, bin(g, OP_SUB, full_like(g, id, 1.0, n.loc), id, n.loc), n.loc);
    TRY(gin[0] = bin(g, OP_MUL, gout, d, n.loc));
    return true;
}

/* relu: where(x <= 0, 0, g), PyTorch's threshold_backward: the
 * subgradient at 0 is 0, g passes at NaN, and an infinite g where x < 0
 * gives 0 (a product with a 0/1 mask would give NaN) */
bool grad_relu(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (!WANT(0)) return true;
    int off = bin(g, OP_LE, n.in[0], full_like(g, n.in[0], 0.0, n.loc), n.loc);
    TRY(gin[0] = select_g(g, off, gout, true, n.loc));
    return true;
}

/* abs: g * sign(x), sign(x) = (x > 0) - (x < 0); the subgradient at 0 is 0 */
bool grad_abs(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (!WANT(0)) return true;
    int x = n.in[0];
    int zero = full_like(g, x, 0.0, n.loc);
    int sign = bin(g, OP_SUB, bin(g, OP_GT, x, zero, n.loc), bin(g, OP_LT, x, zero, n.loc), n.loc);
    TRY(gin[0] = bin(g, OP_MUL, gout, sign, n.loc));
    return true;
}

/* sin: g * cos(x) */
bool grad_sin(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (WANT(0)) TRY(gin[0] = bin(g, OP_MUL, gout, un(g, OP_COS, n.in[0], n.loc), n.loc));
    return true;
}

/* cos: -g * sin(x) */
bool grad_cos(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (!WANT(0)) return true;
    TRY(gin[0] = un(g, OP_NEG, bin(g, OP_MUL, gout, un(g, OP_SIN, n.in[0], n.loc), n.loc), n.loc));
    return true;
}

/* -- elementwise binary: inputs and output have one shape (the builder
 * broadcast them with BROADCAST nodes, whose rule sums back) -- */

/* add: (g, g) */
bool grad_add(IrGraph *g, int id, int gout, int *gin) {
    if (WANT(0)) gin[0] = gout;
    if (WANT(1)) gin[1] = gout;
    return true;
}

/* sub: (g, -g) */
bool grad_sub(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (WANT(0)) gin[0] = gout;
    if (WANT(1)) TRY(gin[1] = un(g, OP_NEG, gout, n.loc));
    return true;
}

/* mul: (g b, g a) */
bool grad_mul(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (WANT(0)) TRY(gin[0] = bin(g, OP_MUL, gout, n.in[1], n.loc));
    if (WANT(1)) TRY(gin[1] = bin(g, OP_MUL, gout, n.in[0], n.loc));
    return true;
}

/* div: (g / b, -g a / b^2), the second written -(g y) / b */
bool grad_div(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    int b = n.in[1];
    if (WANT(0)) TRY(gin[0] = bin(g, OP_DIV, gout, b, n.loc));
    if (WANT(1))
        TRY(gin[1] =
                un(g, OP_NEG, bin(g, OP_DIV, bin(g, OP_MUL, gout, id, n.loc), b, n.loc), n.loc));
    return true;
}

/* pow: (g b a^(b-1), g y log(a)). log(a) is undefined for a <= 0, where the
 * exponent gradient is taken as 0: where(a > 0, g y log(a), 0). */
bool grad_pow(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    int a = n.in[0], b = n.in[1];
    if (WANT(0)) {
        int bm1 = bin(g, OP_SUB, b, full_like(g, b, 1.0, n.loc), n.loc);
        int d = bin(g, OP_MUL, b, bin(g, OP_POW, a, bm1, n.loc), n.loc);
        TRY(gin[0] = bin(g, OP_MUL, gout, d, n.loc));
    }
    if (WANT(1)) {
        int zero = full_like(g, a, 0.0, n.loc);
        int pos = bin(g, OP_GT, a, zero, n.loc);
        int d = bin(g, OP_MUL, bin(g, OP_MUL, gout, id, n.loc), un(g, OP_LOG, a, n.loc), n.loc);
        if (pos < 0 || d < 0 || zero < 0) return false;
        TRY(gin[1] = ir_where(g, pos, d, zero, n.loc));
    }
    return true;
}

/* max: g goes to a where a >= b, else to b (ties go to the first input) */
bool grad_max(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    int mask = bin(g, OP_GE, n.in[0], n.in[1], n.loc);
    TRY(mask);
    if (WANT(0)) TRY(gin[0] = select_g(g, mask, gout, false, n.loc));
    if (WANT(1)) TRY(gin[1] = select_g(g, mask, gout, true, n.loc));
    return true;
}

/* min: g goes to a where a <= b, else to b (ties go to the first input) */
bool grad_min(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    int mask = bin(g, OP_LE, n.in[0], n.in[1], n.loc);
    TRY(mask);
    if (WANT(0)) TRY(gin[0] = select_g(g, mask, gout, false, n.loc));
    if (WANT(1)) TRY(gin[1] = select_g(g, mask, gout, true, n.loc));
    return true;
}

/* -- comparisons: piecewise constant, no gradient -- */

bool grad_eq(IrGraph *g, int id, int gout, int *gin) {
    return no_grad(g, id, gin);
}
bool grad_ne(IrGraph *g, int id, int gout, int *gin) {
    return no_grad(g, id, gin);
}
bool grad_lt(IrGraph *g, int id, int gout, int *gin) {
    return no_grad(g, id, gin);
}
bool grad_le(IrGraph *g, int id, int gout, int *gin) {
    return no_grad(g, id, gin);
}
bool grad_gt(IrGraph *g, int id, int gout, int *gin) {
    return no_grad(g, id, gin);
}
bool grad_ge(IrGraph *g, int id, int gout, int *gin) {
    return no_grad(g, id, gin);
}

/* where(c, a, b): (none, where(c, g, 0), where(c, 0, g)) */
bool grad_where(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    gin[0] = -1;
    if (WANT(1)) TRY(gin[1] = select_g(g, n.in[0], gout, false, n.loc));
    if (WANT(2)) TRY(gin[2] = select_g(g, n.in[0], gout, true, n.loc));
    return true;
}

/* -- reductions -- */

/* sum: g reshaped to the keepdims shape, broadcast to x's shape */
bool grad_sum(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (!WANT(0)) return true;
    TRY(gin[0] = spread(g, gout, *shape_of(g, n.in[0]), n.attr.axes, n.loc));
    return true;
}

/* rmax: g spread over x's shape, masked by x == max. Ties: every element
 * equal to the maximum gets the whole gradient (not a share of it), which
 * is a valid subgradient only without ties; random data has none. */
bool grad_rmax(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (!WANT(0)) return true;
    int x = n.in[0];
    Shape s = *shape_of(g, x);
    int ymax = spread(g, id, s, n.attr.axes, n.loc);
    int mask = bin(g, OP_EQ, x, ymax, n.loc);
    TRY(gin[0] = bin(g, OP_MUL, spread(g, gout, s, n.attr.axes, n.loc), mask, n.loc));
    return true;
}

bool grad_argmax(IrGraph *g, int id, int gout, int *gin) {
    return no_grad(g, id, gin);
}

/* -- movement -- */

/* reshape: g reshaped back */
bool grad_reshape(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (WANT(0)) TRY(gin[0] = reshape_to(g, gout, *shape_of(g, n.in[0]), n.loc));
    return true;
}

/* permute: g permuted by the inverse permutation */
bool grad_permute(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (!WANT(0)) return true;
    int inv[IR_MAXDIM];
    for (int i = 0; i < n.shape.ndim; i++) inv[n.attr.perm[i]] = i;
    TRY(gin[0] = ir_permute(g, gout, inv, n.loc));
    return true;
}

/* broadcast: g summed over the expanded axes (keepdims), reshaped to x's
 * shape (which also drops leading axes if x had a smaller rank) */
bool grad_broadcast(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (!WANT(0)) return true;
    Shape in = *shape_of(g, n.in[0]);
    int lead = n.shape.ndim - in.ndim, axes[IR_MAXDIM], naxes = 0;
    for (int i = 0; i < n.shape.ndim; i++)
        if (i < lead || (in.d[i - lead] == 1 && n.shape.d[i] != 1)) axes[naxes++] = i;
    int s = gout;
    if (naxes > 0) TRY(s = ir_reduce(g, OP_SUM, gout, axes, naxes, true, n.loc));
    TRY(gin[0] = reshape_to(g, s, in, n.loc));
    return true;
}

/* slice: g padded with zeros into x's shape at the same start/step */
bool grad_slice(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (!WANT(0)) return true;
    IrAttr at = n.attr;
    at.shape = *shape_of(g, n.in[0]);
    TRY(gin[0] = ir_add(g, OP_PAD, &gout, 1, &at, n.loc));
    return true;
}

/* pad: the slice of g where x was written */
bool grad_pad(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (!WANT(0)) return true;
    Shape in = *shape_of(g, n.in[0]);
    IrAttr at;
    memset(&at, 0, sizeof at);
    for (int i = 0; i < in.ndim; i++) {
        at.start[i] = n.attr.start[i];
        at.step[i] = n.attr.step[i];
        at.stop[i] = n.attr.start[i] + (in.d[i] - 1) * n.attr.step[i] + 1;
    }
    TRY(gin[0] = ir_add(g, OP_SLICE, &gout, 1, &at, n.loc));
    return true;
}

/* concat: the slice of g along attr.axis that each input filled */
bool grad_concat(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    int axis = n.attr.axis < 0 ? n.attr.axis + n.shape.ndim : n.attr.axis;
    int64_t off = 0;
    for (int k = 0; k < n.nin; k++) {
        Shape in = *shape_of(g, n.in[k]);
        if (WANT(k)) {
            IrAttr at;
            memset(&at, 0, sizeof at);
            for (int i = 0; i < n.shape.ndim; i++) {
                at.start[i] = i == axis ? off : 0;
                at.stop[i] = i == axis ? off + in.d[i] : n.shape.d[i];
                at.step[i] = 1;
            }
            TRY(gin[k] = ir_add(g, OP_SLICE, &gout, 1, &at, n.loc));
        }
        off += in.d[axis];
    }
    return true;
}

/* -- matmul, gather, scatter_add, cast -- */

/* matmul: (g @ b^T, a^T @ g) on the last two axes; the batch axes of the
 * node are equal (the builder broadcast them), so nothing is summed here */
bool grad_matmul(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    int a = n.in[0], b = n.in[1];
    if (WANT(0)) {
        int bt = ir_transpose(g, b, -1, -2, n.loc);
        TRY(bt);
        TRY(gin[0] = ir_matmul(g, gout, bt, n.loc));
    }
    if (WANT(1)) {
        int at = ir_transpose(g, a, -1, -2, n.loc);
        TRY(at);
        TRY(gin[1] = ir_matmul(g, at, gout, n.loc));
    }
    return true;
}

/* gather(table, idx): (scatter_add(g, idx) into the table's shape, none);
 * rows gathered several times get the sum of their gradients */
bool grad_gather(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (WANT(0)) {
        IrAttr at;
        memset(&at, 0, sizeof at);
        at.shape = *shape_of(g, n.in[0]);
        int ins[2] = {gout, n.in[1]};
        TRY(gin[0] = ir_add(g, OP_SCATTER_ADD, ins, 2, &at, n.loc));
    }
    gin[1] = -1;
    return true;
}

/* scatter_add(src, idx): (gather(g, idx), none) */
bool grad_scatter_add(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (WANT(0)) TRY(gin[0] = ir_gather(g, gout, n.in[1], n.loc));
    gin[1] = -1;
    return true;
}

/* cast: g cast back to x's dtype when x is a float; none from an integer
 * (a cast to an integer is piecewise constant, and integers carry none) */
bool grad_cast(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    DType from = ir_node(g, n.in[0])->dtype;
    if (from != TY_F32 || n.dtype != TY_F32) {
        gin[0] = -1;
        return true;
    }
    if (WANT(0)) TRY(gin[0] = ir_cast(g, gout, from, n.loc));
    return true;
}

/* -- convolution and pooling --
 *
 * conv2d and its two backward ops are the three faces of one trilinear
 * form T(x, w, gy) = sum x[n, c, ih, iw] w[o, c', kh, kw] gy[n, o, oh, ow]
 * over the taps the window connects, so the gradient of each is one of the
 * others with the same window: second derivatives come for free. */

/* a conv op with the window of node n and result shape `shape` (backward) */
static int conv_op(IrGraph *g, OpKind op, const IrNode *n, int a, int b, Shape shape) {
    IrAttr at;
    memset(&at, 0, sizeof at);
    at.win = n->attr.win;
    at.shape = shape;
    int in[2] = {a, b};
    return ir_add(g, op, in, 2, &at, n->loc);
}

/* conv2d(x, w): (conv2d_backward_input(g, w), conv2d_backward_weight(x, g)) */
bool grad_conv2d(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    int x = n.in[0], w = n.in[1];
    if (WANT(0)) TRY(gin[0] = conv_op(g, OP_CONV2D_BACKWARD_INPUT, &n, gout, w, *shape_of(g, x)));
    if (WANT(1)) TRY(gin[1] = conv_op(g, OP_CONV2D_BACKWARD_WEIGHT, &n, x, gout, *shape_of(g, w)));
    return true;
}

/* conv2d_backward_input(gy, w): (conv2d(g, w), conv2d_backward_weight(g, gy)) */
bool grad_conv2d_backward_input(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    int gy = n.in[0], w = n.in[1];
    if (WANT(0)) TRY(gin[0] = conv_op(g, OP_CONV2D, &n, gout, w, (Shape){0}));
    if (WANT(1)) TRY(gin[1] = conv_op(g, OP_CONV2D_BACKWARD_WEIGHT, &n, gout, gy, *shape_of(g, w)));
    return true;
}

/* conv2d_backward_weight(x, gy): (conv2d_backward_input(gy, g), conv2d(x, g)) */
bool grad_conv2d_backward_weight(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    int x = n.in[0], gy = n.in[1];
    if (WANT(0)) TRY(gin[0] = conv_op(g, OP_CONV2D_BACKWARD_INPUT, &n, gy, gout, *shape_of(g, x)));
    if (WANT(1)) TRY(gin[1] = conv_op(g, OP_CONV2D, &n, x, gout, (Shape){0}));
    return true;
}

/* max_pool2d: each window's g added at its first maximum, the flat index
 * max_pool2d_index gives: scatter_add of the flattened g into x's elements
 * (whose own gradient, gather, makes second derivatives work too) */
bool grad_max_pool2d(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (!WANT(0)) return true;
    Shape xs = *shape_of(g, n.in[0]);
    IrAttr at;
    memset(&at, 0, sizeof at);
    at.win = n.attr.win;
    int ix = ir_add(g, OP_MAX_POOL2D_INDEX, &n.in[0], 1, &at, n.loc);
    TRY(ix);
    int64_t ny = shape_numel(&n.shape);
    Shape flat = {1, {ny}};
    int ins[2] = {reshape_to(g, gout, flat, n.loc), reshape_to(g, ix, flat, n.loc)};
    TRY(ins[0]);
    TRY(ins[1]);
    memset(&at, 0, sizeof at);
    at.shape = (Shape){1, {shape_numel(&xs)}};
    int s = ir_add(g, OP_SCATTER_ADD, ins, 2, &at, n.loc);
    TRY(gin[0] = reshape_to(g, s, xs, n.loc));
    return true;
}

bool grad_max_pool2d_index(IrGraph *g, int id, int gout, int *gin) {
    return no_grad(g, id, gin);
}

/* avg_pool2d: avg_pool2d_backward(g) (each window's g / (kh kw) spread
 * over it) */
bool grad_avg_pool2d(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (!WANT(0)) return true;
    IrAttr at;
    memset(&at, 0, sizeof at);
    at.win = n.attr.win;
    at.shape = *shape_of(g, n.in[0]);
    TRY(gin[0] = ir_add(g, OP_AVG_POOL2D_BACKWARD, &gout, 1, &at, n.loc));
    return true;
}

/* avg_pool2d_backward(gy): avg_pool2d(g) (the map is linear; this is its
 * transpose) */
bool grad_avg_pool2d_backward(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (!WANT(0)) return true;
    TRY(gin[0] = ir_pool2d(g, OP_AVG_POOL2D, gout, &n.attr.win, n.loc));
    return true;
}

/* -- sorting, scans, rounding -- */

/* argsort: indices carry no gradient (sorted values are a gather through
 * them: build_sort.c) */
bool grad_argsort(IrGraph *g, int id, int gout, int *gin) {
    return no_grad(g, id, gin);
}

/* cumsum: each input adds to every later output, so its gradient is the
 * sum of the later output gradients: the cumsum of g the other way */
bool grad_cumsum(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (WANT(0)) TRY(gin[0] = ir_cumsum(g, gout, n.attr.axis, !n.attr.reverse, n.loc));
    return true;
}

/* round: a step function, zero almost everywhere (torch.round's gradient) */
bool grad_round(IrGraph *g, int id, int gout, int *gin) {
    IrNode n = *ir_node(g, id);
    if (WANT(0)) TRY(gin[0] = ir_const(g, n.dtype, n.shape, 0, n.loc));
    return true;
}

/* -- INT8 quantization: no gradient (OPF_NODIFF; the rounding is a step
 * function, and a straight-through estimator is a choice of the
 * quantization-aware training to come, not of these ops) -- */
bool grad_quantize(IrGraph *g, int id, int gout, int *gin) {
    return no_grad(g, id, gin);
}
bool grad_dequantize(IrGraph *g, int id, int gout, int *gin) {
    return no_grad(g, id, gin);
}
bool grad_qmatmul(IrGraph *g, int id, int gout, int *gin) {
    return no_grad(g, id, gin);
}
bool grad_requantize(IrGraph *g, int id, int gout, int *gin) {
    return no_grad(g, id, gin);
}

/* -- write_rows: no gradient (OPF_NODIFF): a decode step's cache update; the
 * position is data and decoding does not differentiate -- */
bool grad_write_rows(IrGraph *g, int id, int gout, int *gin) {
    return no_grad(g, id, gin);
}

bool grad_qconv2d(IrGraph *g, int id, int gout, int *gin) {
    return no_grad(g, id, gin);
}
