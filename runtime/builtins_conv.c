/* builtins_conv.c - conv2d, max_pool2d, avg_pool2d: PyTorch's functional
 * names, argument order and defaults (torch.nn.functional).
 *
 * stride, padding, dilation and kernel_size are an int or a pair (height,
 * width). x is f32[N, C, H, W], or f32[C, H, W] for one image (as PyTorch,
 * the result then has no batch dim either). Shape errors come from the
 * shape rules (compiler/shape.c), at the call, before any kernel runs.
 */
#include "builtins_lib.h"

#include <string.h>

/* An int-or-pair argument into v[2]; dflt (both entries) when absent or none. */
static void pair_arg(Interp *I, Value a, int64_t dflt, const char *fn, const char *arg,
                     int64_t *v) {
    v[0] = v[1] = dflt;
    if (a.kind == V_NONE) return;
    if (a.kind == V_INT || a.kind == V_BOOL) {
        v[0] = v[1] = a.kind == V_INT ? a.i : a.b;
        return;
    }
    if (is_seq(a) && as_list(a)->len == 2 && as_list(a)->items[0].kind == V_INT &&
        as_list(a)->items[1].kind == V_INT) {
        v[0] = as_list(a)->items[0].i;
        v[1] = as_list(a)->items[1].i;
        return;
    }
    rt_error(I, "%s: %s must be an int or a pair of ints, got %s", fn, arg, rt_type_name(a));
}

/* x's node as [N, C, H, W]: a 3-D x gets a batch of 1 (*unbatched set). */
static int image_node(Interp *I, Value v, const char *fn, bool *unbatched) {
    Tensor *t = lib_tensor(I, v, fn, "x");
    int id = rt_node(I, t);
    *unbatched = t->shape.ndim == 3;
    if (!*unbatched) return id;
    Shape s = {4, {1, t->shape.d[0], t->shape.d[1], t->shape.d[2]}};
    return rt_check_node(I, ir_reshape(&I->g, id, s, I->loc));
}

/* The result of an op on an image node, without the batch dim again when x
 * had none. */
static Value image_result(Interp *I, int id, bool unbatched) {
    rt_check_node(I, id);
    if (unbatched) {
        const Shape *s = &I->g.nodes[id].shape;
        Shape u = {3, {s->d[1], s->d[2], s->d[3]}};
        id = ir_reshape(&I->g, id, u, I->loc);
    }
    return lib_result(I, id);
}

/* conv2d(x, weight, bias=none, stride=1, padding=0, dilation=1, groups=1) */
BUILTIN(bi_conv2d) {
    static const char *const names[] = {"x",       "weight",   "bias",   "stride",
                                        "padding", "dilation", "groups", NULL};
    Value a[7];
    BIND("conv2d", names, 2, a);
    bool unbatched;
    int x = image_node(I, a[0], "conv2d", &unbatched);
    int w = rt_node(I, lib_tensor(I, a[1], "conv2d", "weight"));
    int b = a[2].kind == V_NONE ? -1 : rt_node(I, lib_tensor(I, a[2], "conv2d", "bias"));
    IrWindow win;
    memset(&win, 0, sizeof win);
    pair_arg(I, a[3], 1, "conv2d", "stride", win.stride);
    pair_arg(I, a[4], 0, "conv2d", "padding", win.padding);
    pair_arg(I, a[5], 1, "conv2d", "dilation", win.dilation);
    win.groups = lib_int(I, a[6], 1, "conv2d", "groups");
    return image_result(I, ir_conv2d(&I->g, x, w, b, &win, I->loc), unbatched);
}

/* max_pool2d / avg_pool2d(x, kernel_size, stride=none, padding=0); stride
 * none is kernel_size */
static Value pool(Interp *I, OpKind op, const Value *args, int nargs, const char *const *kwnames,
                  const Value *kwargs, int nkw) {
    static const char *const names[] = {"x", "kernel_size", "stride", "padding", NULL};
    const char *fn = ir_ops[op].name;
    Value a[4];
    BIND(fn, names, 2, a);
    bool unbatched;
    int x = image_node(I, a[0], fn, &unbatched);
    IrWindow win;
    memset(&win, 0, sizeof win);
    pair_arg(I, a[1], 1, fn, "kernel_size", win.kernel);
    if (a[2].kind == V_NONE)
        memcpy(win.stride, win.kernel, sizeof win.stride);
    else
        pair_arg(I, a[2], 1, fn, "stride", win.stride);
    pair_arg(I, a[3], 0, fn, "padding", win.padding);
    win.dilation[0] = win.dilation[1] = win.groups = 1;
    return image_result(I, ir_pool2d(&I->g, op, x, &win, I->loc), unbatched);
}

BUILTIN(bi_max_pool2d) {
    return pool(I, OP_MAX_POOL2D, args, nargs, kwnames, kwargs, nkw);
}
BUILTIN(bi_avg_pool2d) {
    return pool(I, OP_AVG_POOL2D, args, nargs, kwnames, kwargs, nkw);
}

void lib_register_conv(Interp *I) {
    rt_define_global(I, "conv2d", rt_builtin(I, "conv2d", bi_conv2d, VNONE));
    rt_define_global(I, "max_pool2d", rt_builtin(I, "max_pool2d", bi_max_pool2d, VNONE));
    rt_define_global(I, "avg_pool2d", rt_builtin(I, "avg_pool2d", bi_avg_pool2d, VNONE));
}
