/* kernels_conv.c - reference kernels of convolution and pooling: conv2d,
 * its two backward ops, qconv2d (int8, exact), max_pool2d (values and first-maximum indices),
 * avg_pool2d and its backward op. PyTorch's semantics (NCHW, cross
 * correlation, zero padding for conv and avg_pool2d, -inf for max_pool2d).
 *
 * The window of output position o along one spatial dim covers the input
 * positions o * stride - padding + t * dilation for the taps t = 0..k-1;
 * taps outside [0, size) read the padding. Accumulation is in float, taps
 * in (channel, kh, kw) order, except the weight gradient, which sums over
 * the whole batch and image and does so in double.
 */
#include <math.h>
#include <string.h>

#include "kernels.h"

/* The geometry shared by the conv kernels (the shape rules checked it). */
typedef struct Conv {
    int64_t N, C, H, W;    /* x */
    int64_t O, Cg, KH, KW; /* w: O x (C / groups) x KH x KW */
    int64_t Ho, Wo;        /* y */
    int64_t Og;            /* output channels per group */
    int64_t sh, sw, ph, pw, dh, dw;
} Conv;

static Conv conv_of(const IrWindow *win, const Shape *x, const Shape *w, const Shape *y) {
    TT_ASSERT(x->ndim == 4 && w->ndim == 4 && y->ndim == 4 && win->groups >= 1);
    Conv c = {x->d[0],
              x->d[1],
              x->d[2],
              x->d[3],
              w->d[0],
              w->d[1],
              w->d[2],
              w->d[3],
              y->d[2],
              y->d[3],
              w->d[0] / win->groups,
              win->stride[0],
              win->stride[1],
              win->padding[0],
              win->padding[1],
              win->dilation[0],
              win->dilation[1]};
    return c;
}

/* in[0] x: [N, C, H, W], in[1] w: [O, C/groups, KH, KW] -> out: [N, O, Ho, Wo];
 * out[n, o, i, j] = sum over c, kh, kw of x[n, g*Cg + c, i*sh - ph + kh*dh,
 * j*sw - pw + kw*dw] * w[o, c, kh, kw], g = o / Og (out-of-range taps: 0) */
void kern_conv2d_ref(const IrNode *nd, const KTensor *in, KTensor *out, KernelErr *err) {
    (void)err;
    Conv c = conv_of(&nd->attr.win, &in[0].shape, &in[1].shape, &out->shape);
    const float *x = in[0].data, *w = in[1].data;
    float *y = out->data;
    for (int64_t n = 0; n < c.N; n++)
        for (int64_t o = 0; o < c.O; o++) {
            int64_t c0 = o / c.Og * c.Cg;
            for (int64_t i = 0; i < c.Ho; i++)
                for (int64_t j = 0; j < c.Wo; j++) {
                    float acc = 0;
                    for (int64_t ci = 0; ci < c.Cg; ci++)
                        for (int64_t kh = 0; kh < c.KH; kh++) {
                            int64_t ih = i * c.sh - c.ph + kh * c.dh;
                            if (ih < 0 || ih >= c.H) continue;
                            const float *xr = x + ((n * c.C + c0 + ci) * c.H + ih) * c.W;
                            const float *wr = w + ((o * c.Cg + ci) * c.KH + kh) * c.KW;
                            for (int64_t kw = 0; kw < c.KW; kw++) {
                                int64_t iw = j * c.sw - c.pw + kw * c.dw;
                                if (iw >= 0 && iw < c.W) acc += xr[iw] * wr[kw];
                            }
                        }
                    y[((n * c.O + o) * c.Ho + i) * c.Wo + j] = acc;
                }
        }
}

/* in[0] x i8: [N, C, H, W], in[1] w i8: [O, C/groups, KH, KW] -> out i32:
 * [N, O, Ho, Wo]; conv2d's sum with int8 products summed in i32 (computed
 * unsigned: past 2^31 it wraps, as qmatmul's), a tap in the padding reading
 * attr.value (the input zero point) instead of 0 */
void kern_qconv2d_ref(const IrNode *nd, const KTensor *in, KTensor *out, KernelErr *err) {
    (void)err;
    Conv c = conv_of(&nd->attr.win, &in[0].shape, &in[1].shape, &out->shape);
    TT_ASSERT(in[0].dtype == TY_I8 && in[1].dtype == TY_I8 && out->dtype == TY_I32);
    const int8_t *x = in[0].data, *w = in[1].data;
    int32_t pad = (int32_t)nd->attr.value;
    int32_t *y = out->data;
    for (int64_t n = 0; n < c.N; n++)
        for (int64_t o = 0; o < c.O; o++) {
            int64_t c0 = o / c.Og * c.Cg;
            for (int64_t i = 0; i < c.Ho; i++)
                for (int64_t j = 0; j < c.Wo; j++) {
                    uint32_t acc = 0;
                    for (int64_t ci = 0; ci < c.Cg; ci++)
                        for (int64_t kh = 0; kh < c.KH; kh++) {
                            int64_t ih = i * c.sh - c.ph + kh * c.dh;
                            bool row = ih >= 0 && ih < c.H;
                            const int8_t *xr =
                                x + ((n * c.C + c0 + ci) * c.H + (row ? ih : 0)) * c.W;
                            const int8_t *wr = w + ((o * c.Cg + ci) * c.KH + kh) * c.KW;
                            for (int64_t kw = 0; kw < c.KW; kw++) {
                                int64_t iw = j * c.sw - c.pw + kw * c.dw;
                                int32_t v = row && iw >= 0 && iw < c.W ? xr[iw] : pad;
                                acc += (uint32_t)(v * (int32_t)wr[kw]);
                            }
                        }
                    y[((n * c.O + o) * c.Ho + i) * c.Wo + j] = (int32_t)acc;
                }
        }
}

/* in[0] gy: [N, O, Ho, Wo], in[1] w: [O, C/groups, KH, KW] -> out dx:
 * attr.shape [N, C, H, W]; dx = zeros, then every tap of conv2d adds
 * gy[n, o, i, j] * w[o, c, kh, kw] at the x element it read */
void kern_conv2d_backward_input_ref(const IrNode *nd, const KTensor *in, KTensor *out,
                                    KernelErr *err) {
    (void)err;
    Conv c = conv_of(&nd->attr.win, &out->shape, &in[1].shape, &in[0].shape);
    const float *gy = in[0].data, *w = in[1].data;
    float *dx = out->data;
    memset(dx, 0, (size_t)shape_numel(&out->shape) * sizeof *dx);
    for (int64_t n = 0; n < c.N; n++)
        for (int64_t o = 0; o < c.O; o++) {
            int64_t c0 = o / c.Og * c.Cg;
            for (int64_t i = 0; i < c.Ho; i++)
                for (int64_t j = 0; j < c.Wo; j++) {
                    float gv = gy[((n * c.O + o) * c.Ho + i) * c.Wo + j];
                    for (int64_t ci = 0; ci < c.Cg; ci++)
                        for (int64_t kh = 0; kh < c.KH; kh++) {
                            int64_t ih = i * c.sh - c.ph + kh * c.dh;
                            if (ih < 0 || ih >= c.H) continue;
                            float *xr = dx + ((n * c.C + c0 + ci) * c.H + ih) * c.W;
                            const float *wr = w + ((o * c.Cg + ci) * c.KH + kh) * c.KW;
                            for (int64_t kw = 0; kw < c.KW; kw++) {
                                int64_t iw = j * c.sw - c.pw + kw * c.dw;
                                if (iw >= 0 && iw < c.W) xr[iw] += gv * wr[kw];
                            }
                        }
                }
        }
}

/* in[0] x: [N, C, H, W], in[1] gy: [N, O, Ho, Wo] -> out dw: attr.shape
 * [O, C/groups, KH, KW]; dw[o, c, kh, kw] = sum over n, i, j of
 * gy[n, o, i, j] * x[n, g*Cg + c, ih, iw] (the tap's x element; 0 outside) */
void kern_conv2d_backward_weight_ref(const IrNode *nd, const KTensor *in, KTensor *out,
                                     KernelErr *err) {
    (void)err;
    Conv c = conv_of(&nd->attr.win, &in[0].shape, &out->shape, &in[1].shape);
    const float *x = in[0].data, *gy = in[1].data;
    float *dw = out->data;
    for (int64_t o = 0; o < c.O; o++) {
        int64_t c0 = o / c.Og * c.Cg;
        for (int64_t ci = 0; ci < c.Cg; ci++)
            for (int64_t kh = 0; kh < c.KH; kh++)
                for (int64_t kw = 0; kw < c.KW; kw++) {
                    double acc = 0;
                    for (int64_t n = 0; n < c.N; n++)
                        for (int64_t i = 0; i < c.Ho; i++) {
                            int64_t ih = i * c.sh - c.ph + kh * c.dh;
                            if (ih < 0 || ih >= c.H) continue;
                            const float *xr = x + ((n * c.C + c0 + ci) * c.H + ih) * c.W;
                            const float *gr = gy + ((n * c.O + o) * c.Ho + i) * c.Wo;
                            for (int64_t j = 0; j < c.Wo; j++) {
                                int64_t iw = j * c.sw - c.pw + kw * c.dw;
                                if (iw >= 0 && iw < c.W) acc += (double)gr[j] * xr[iw];
                            }
                        }
                    dw[((o * c.Cg + ci) * c.KH + kh) * c.KW + kw] = (float)acc;
                }
    }
}

/* The geometry of a pooling: x [N, C, H, W] -> y [N, C, Ho, Wo]. */
typedef struct Pool {
    int64_t NC, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw;
} Pool;

static Pool pool_of(const IrWindow *win, const Shape *x, const Shape *y) {
    TT_ASSERT(x->ndim == 4 && y->ndim == 4);
    Pool p = {x->d[0] * x->d[1], x->d[2],         x->d[3],        y->d[2],
              y->d[3],           win->kernel[0],  win->kernel[1], win->stride[0],
              win->stride[1],    win->padding[0], win->padding[1]};
    return p;
}

/* The first maximum of window (i, j) of plane xp (H x W): its position in
 * the plane. Padding is -inf, so it is never chosen over an element (every
 * window holds one: padding <= kernel / 2). As PyTorch: start at the first
 * element in range, take v when v > best or v is NaN (the last NaN wins). */
static int64_t window_argmax(const Pool *p, const float *xp, int64_t i, int64_t j) {
    int64_t h0 = i * p->sh - p->ph, w0 = j * p->sw - p->pw;
    int64_t hs = h0 < 0 ? 0 : h0, ws = w0 < 0 ? 0 : w0;
    int64_t he = h0 + p->kh < p->H ? h0 + p->kh : p->H, we = w0 + p->kw < p->W ? w0 + p->kw : p->W;
    int64_t bi = hs * p->W + ws;
    float best = -INFINITY;
    for (int64_t h = hs; h < he; h++)
        for (int64_t w = ws; w < we; w++) {
            float v = xp[h * p->W + w];
            if (v > best || isnan(v)) {
                best = v;
                bi = h * p->W + w;
            }
        }
    return bi;
}

/* max_pool2d of i8 x (a quantized model's, whose max commutes with the
 * monotone dequantization): the largest element in range (the padding is
 * below every element, as -inf is) */
static void max_pool_i8(const Pool *p, const int8_t *x, int8_t *y) {
    for (int64_t q = 0; q < p->NC; q++) {
        const int8_t *xp = x + q * p->H * p->W;
        for (int64_t i = 0; i < p->Ho; i++)
            for (int64_t j = 0; j < p->Wo; j++) {
                int64_t h0 = i * p->sh - p->ph, w0 = j * p->sw - p->pw;
                int best = INT8_MIN;
                for (int64_t h = h0 < 0 ? 0 : h0; h < h0 + p->kh && h < p->H; h++)
                    for (int64_t w = w0 < 0 ? 0 : w0; w < w0 + p->kw && w < p->W; w++)
                        if (xp[h * p->W + w] > best) best = xp[h * p->W + w];
                y[(q * p->Ho + i) * p->Wo + j] = (int8_t)best;
            }
    }
}

/* in[0] x: [N, C, H, W] (f32 or i8) -> out: [N, C, Ho, Wo], the maximum of
 * each window */
void kern_max_pool2d_ref(const IrNode *nd, const KTensor *in, KTensor *out, KernelErr *err) {
    (void)err;
    Pool p = pool_of(&nd->attr.win, &in[0].shape, &out->shape);
    if (in[0].dtype == TY_I8) {
        max_pool_i8(&p, in[0].data, out->data);
        return;
    }
    const float *x = in[0].data;
    float *y = out->data;
    for (int64_t q = 0; q < p.NC; q++) {
        const float *xp = x + q * p.H * p.W;
        for (int64_t i = 0; i < p.Ho; i++)
            for (int64_t j = 0; j < p.Wo; j++)
                y[(q * p.Ho + i) * p.Wo + j] = xp[window_argmax(&p, xp, i, j)];
    }
}

/* in[0] x: [N, C, H, W] -> out i32: [N, C, Ho, Wo], the flat index into x
 * (over all of x, not the plane) of each window's maximum */
void kern_max_pool2d_index_ref(const IrNode *nd, const KTensor *in, KTensor *out, KernelErr *err) {
    (void)err;
    Pool p = pool_of(&nd->attr.win, &in[0].shape, &out->shape);
    const float *x = in[0].data;
    int32_t *y = out->data;
    for (int64_t q = 0; q < p.NC; q++) {
        const float *xp = x + q * p.H * p.W;
        for (int64_t i = 0; i < p.Ho; i++)
            for (int64_t j = 0; j < p.Wo; j++)
                y[(q * p.Ho + i) * p.Wo + j] =
                    (int32_t)(q * p.H * p.W + window_argmax(&p, xp, i, j));
    }
}

/* in[0] x: [N, C, H, W] -> out: [N, C, Ho, Wo]; the sum of each window's
 * elements in range divided by kh * kw (the padded zeros count) */
void kern_avg_pool2d_ref(const IrNode *nd, const KTensor *in, KTensor *out, KernelErr *err) {
    (void)err;
    Pool p = pool_of(&nd->attr.win, &in[0].shape, &out->shape);
    const float *x = in[0].data;
    float *y = out->data;
    float div = (float)(p.kh * p.kw);
    for (int64_t q = 0; q < p.NC; q++) {
        const float *xp = x + q * p.H * p.W;
        for (int64_t i = 0; i < p.Ho; i++)
            for (int64_t j = 0; j < p.Wo; j++) {
                float acc = 0;
                for (int64_t a = 0; a < p.kh; a++) {
                    int64_t h = i * p.sh - p.ph + a;
                    if (h < 0 || h >= p.H) continue;
                    for (int64_t b = 0; b < p.kw; b++) {
                        int64_t w = j * p.sw - p.pw + b;
                        if (w >= 0 && w < p.W) acc += xp[h * p.W + w];
                    }
                }
                y[(q * p.Ho + i) * p.Wo + j] = acc / div;
            }
    }
}

/* in[0] gy: [N, C, Ho, Wo] -> out dx: attr.shape [N, C, H, W]; zeros, then
 * gy[n, c, i, j] / (kh * kw) added to every element of window (i, j) */
void kern_avg_pool2d_backward_ref(const IrNode *nd, const KTensor *in, KTensor *out,
                                  KernelErr *err) {
    (void)err;
    Pool p = pool_of(&nd->attr.win, &out->shape, &in[0].shape);
    const float *gy = in[0].data;
    float *dx = out->data;
    float div = (float)(p.kh * p.kw);
    memset(dx, 0, (size_t)shape_numel(&out->shape) * sizeof *dx);
    for (int64_t q = 0; q < p.NC; q++) {
        float *xp = dx + q * p.H * p.W;
        for (int64_t i = 0; i < p.Ho; i++)
            for (int64_t j = 0; j < p.Wo; j++) {
                float v = gy[(q * p.Ho + i) * p.Wo + j] / div;
                for (int64_t a = 0; a < p.kh; a++) {
                    int64_t h = i * p.sh - p.ph + a;
                    if (h < 0 || h >= p.H) continue;
                    for (int64_t b = 0; b < p.kw; b++) {
                        int64_t w = j * p.sw - p.pw + b;
                        if (w >= 0 && w < p.W) xp[h * p.W + w] += v;
                    }
                }
            }
    }
}
