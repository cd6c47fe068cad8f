/* builtins_conv.c - conv2d, max_pool2d, avg_pool2d: PyTorch's functional
 * names, argument order and defaults (torch.nn.functional); and the image
 * augmentations random_crop and hflip (torchvision's RandomCrop and
 * RandomHorizontalFlip, applied per image of a batch).
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
    return rt_check_node(I, ir_reshape(&I->lz.g, id, s, I->ev.loc));
}

/* The result of an op on an image node, without the batch dim again when x
 * had none. */
static Value image_result(Interp *I, int id, bool unbatched) {
    rt_check_node(I, id);
    if (unbatched) {
        const Shape *s = &I->lz.g.nodes[id].shape;
        Shape u = {3, {s->d[1], s->d[2], s->d[3]}};
        id = ir_reshape(&I->lz.g, id, u, I->ev.loc);
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
    return image_result(I, ir_conv2d(&I->lz.g, x, w, b, &win, I->ev.loc), unbatched);
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
    return image_result(I, ir_pool2d(&I->lz.g, op, x, &win, I->ev.loc), unbatched);
}

BUILTIN(bi_max_pool2d) {
    return pool(I, OP_MAX_POOL2D, args, nargs, kwnames, kwargs, nkw);
}
BUILTIN(bi_avg_pool2d) {
    return pool(I, OP_AVG_POOL2D, args, nargs, kwnames, kwargs, nkw);
}

/* -- augmentation: realized, a fresh tensor drawn from the generator -- */

/* x as f32[N, C, H, W] for an augmentation named fn. */
static Tensor *batch_images(Interp *I, Value v, const char *fn) {
    Tensor *x = lib_tensor(I, v, fn, "x");
    char sb[96];
    if (x->dtype != TY_F32 || x->shape.ndim != 4)
        rt_error(I, "%s: x must be an f32[N, C, H, W] batch of images, got %s%s", fn,
                 dtype_name(x->dtype), shape_str(&x->shape, sb, sizeof sb));
    return x;
}

/* The generator: a fresh one seeded by `seed`, or the global one. */
static Rng *pick_rng(Interp *I, Value seed, Rng *local, const char *fn) {
    if (seed.kind == V_NONE) return &I->ev.rng;
    rng_seed(local, (uint64_t)lib_int(I, seed, 0, fn, "seed"));
    return local;
}

/* An integer uniform in [0, n). */
static int64_t draw(Rng *r, int64_t n) {
    int64_t k = (int64_t)(rng_uniform(r) * (double)n);
    return k < n ? k : n - 1;
}

/* random_crop(x, size, padding=0, seed=none): each image of the batch is
 * padded with zeros by `padding` on every side, then cut to `size` (int or
 * pair) at an offset drawn uniformly (top, then left, image by image) */
BUILTIN(bi_random_crop) {
    static const char *const names[] = {"x", "size", "padding", "seed", NULL};
    Value a[4];
    BIND("random_crop", names, 2, a);
    Tensor *x = batch_images(I, a[0], "random_crop");
    int64_t size[2], pad[2];
    pair_arg(I, a[1], 1, "random_crop", "size", size);
    pair_arg(I, a[2], 0, "random_crop", "padding", pad);
    int64_t N = x->shape.d[0], C = x->shape.d[1], H = x->shape.d[2], W = x->shape.d[3];
    char sb[96];
    for (int i = 0; i < 2; i++) {
        if (size[i] < 1 || pad[i] < 0 || pad[i] > (INT64_C(1) << 30) ||
            size[i] > (INT64_C(1) << 30))
            rt_error(I,
                     "random_crop: size (%lld, %lld) must be positive and padding (%lld, %lld) "
                     "non-negative",
                     (long long)size[0], (long long)size[1], (long long)pad[0], (long long)pad[1]);
        if (size[i] > x->shape.d[2 + i] + 2 * pad[i])
            rt_error(I,
                     "random_crop: size (%lld, %lld) is larger than the padded image %lldx%lld (x "
                     "%s, padding (%lld, %lld))",
                     (long long)size[0], (long long)size[1], (long long)(H + 2 * pad[0]),
                     (long long)(W + 2 * pad[1]), shape_str(&x->shape, sb, sizeof sb),
                     (long long)pad[0], (long long)pad[1]);
    }
    Rng local, *r = pick_rng(I, a[3], &local, "random_crop");
    const float *src = rt_data(I, x);
    Shape os = {4, {N, C, size[0], size[1]}};
    Tensor *out = rt_tensor_new(I, TY_F32, os);
    float *dst = out->buf->data;
    for (int64_t n = 0; n < N; n++) {
        int64_t top = draw(r, H + 2 * pad[0] - size[0] + 1) - pad[0];
        int64_t left = draw(r, W + 2 * pad[1] - size[1] + 1) - pad[1];
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < size[0]; i++)
                for (int64_t j = 0; j < size[1]; j++) {
                    int64_t h = top + i, w = left + j;
                    bool in = h >= 0 && h < H && w >= 0 && w < W;
                    dst[((n * C + c) * size[0] + i) * size[1] + j] =
                        in ? src[((n * C + c) * H + h) * W + w] : 0.0f;
                }
    }
    return vtensor(out);
}

/* hflip(x, p=0.5, seed=none): each image of the batch mirrored left to
 * right with probability p (one draw per image, in order) */
BUILTIN(bi_hflip) {
    static const char *const names[] = {"x", "p", "seed", NULL};
    Value a[3];
    BIND("hflip", names, 1, a);
    Tensor *x = batch_images(I, a[0], "hflip");
    double p = lib_float(I, a[1], 0.5, "hflip", "p");
    if (!(p >= 0 && p <= 1)) rt_error(I, "hflip: p must be in [0, 1], got %g", p);
    Rng local, *r = pick_rng(I, a[2], &local, "hflip");
    int64_t N = x->shape.d[0], C = x->shape.d[1], H = x->shape.d[2], W = x->shape.d[3];
    const float *src = rt_data(I, x);
    Tensor *out = rt_tensor_new(I, TY_F32, x->shape);
    float *dst = out->buf->data;
    for (int64_t n = 0; n < N; n++) {
        bool flip = rng_uniform(r) < p;
        for (int64_t row = 0; row < C * H; row++) {
            const float *s = src + (n * C * H + row) * W;
            float *d = dst + (n * C * H + row) * W;
            for (int64_t w = 0; w < W; w++) d[w] = flip ? s[W - 1 - w] : s[w];
        }
    }
    return vtensor(out);
}

void lib_register_conv(Interp *I) {
    rt_define_global(I, "random_crop", rt_builtin(I, "random_crop", bi_random_crop, VNONE));
    rt_define_global(I, "hflip", rt_builtin(I, "hflip", bi_hflip, VNONE));
    rt_define_global(I, "conv2d", rt_builtin(I, "conv2d", bi_conv2d, VNONE));
    rt_define_global(I, "max_pool2d", rt_builtin(I, "max_pool2d", bi_max_pool2d, VNONE));
    rt_define_global(I, "avg_pool2d", rt_builtin(I, "avg_pool2d", bi_avg_pool2d, VNONE));
}
