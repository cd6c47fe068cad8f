/* kernels_quant.c - the reference kernels of INT8 quantization (issue 13):
 * their exact integer semantics, which every backend reproduces bit for bit.
 *
 * Rounding is half to even (nearbyint in the default rounding mode, as
 * torch.round and llvm.roundeven), in double: x / scale and acc * scale are
 * computed on the f32 / i32 values widened to double, so a tie is a tie of
 * the values given, not of a quotient first rounded to f32. The conversion
 * to i8 saturates (and takes NaN to 0), as cast does.
 */
#include <math.h>
#include <stdint.h>

#include "kernels.h"

/* in[0] x f32[...], in[1] scale f32[...], in[2] zp i32[...] -> i8[...]:
 * sat_i8(round_half_even(x / scale) + zp) */
void kern_quantize_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    const float *x = in[0].data, *s = in[1].data;
    const int32_t *z = in[2].data;
    int8_t *o = out->data;
    int64_t len = shape_numel(&out->shape);
    for (int64_t i = 0; i < len; i++) o[i] = sat_i8(nearbyint((double)x[i] / s[i]) + z[i]);
}

/* in[0] q i8[...], in[1] scale f32[...], in[2] zp i32[...] -> f32[...]:
 * ((float)q - (float)zp) * scale, in f32 */
void kern_dequantize_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    const int8_t *q = in[0].data;
    const float *s = in[1].data;
    const int32_t *z = in[2].data;
    float *o = out->data;
    int64_t len = shape_numel(&out->shape);
    for (int64_t i = 0; i < len; i++) o[i] = ((float)q[i] - (float)z[i]) * s[i];
}

/* in[0] acc i32[...], in[1] scale f32[...], in[2] zp i32[...] -> [...] of
 * attr.dtype: i8: sat_i8(round_half_even(acc * scale) + zp); f32:
 * acc * scale rounded once to f32 (zp unused) */
void kern_requantize_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    const int32_t *a = in[0].data, *z = in[2].data;
    const float *s = in[1].data;
    int64_t len = shape_numel(&out->shape);
    if (out->dtype == TY_F32) {
        float *o = out->data;
        for (int64_t i = 0; i < len; i++) o[i] = (float)((double)a[i] * s[i]);
        return;
    }
    TT_ASSERT(out->dtype == TY_I8);
    int8_t *o = out->data;
    for (int64_t i = 0; i < len; i++) o[i] = sat_i8(nearbyint((double)a[i] * s[i]) + z[i]);
}

/* in[0]: i8[..., m, k], in[1]: i8[..., k, n] -> out: i32[..., m, n]; batch
 * dims equal (the builder broadcasts them). Products of int8 summed in i32,
 * in p order; past 2^31 the sum wraps (computed unsigned: no UB). */
void kern_qmatmul_ref(const IrNode *nd, const KTensor *in, KTensor *out, KernelErr *err) {
    const Shape *sa = &in[0].shape, *sb = &in[1].shape;
    TT_ASSERT(in[0].dtype == TY_I8 && in[1].dtype == TY_I8 && out->dtype == TY_I32);
    TT_ASSERT(sa->ndim >= 2 && sb->ndim >= 2);
    int64_t m = sa->d[sa->ndim - 2], k = sa->d[sa->ndim - 1], n = sb->d[sb->ndim - 1];
    int64_t total = shape_numel(&out->shape);
    if (total == 0) return;
    int64_t batch = total / (m * n);
    int32_t *c = out->data;
    for (int64_t b = 0; b < batch; b++) {
        const int8_t *A = (const int8_t *)in[0].data + b * m * k;
        const int8_t *B = (const int8_t *)in[1].data + b * k * n;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                uint32_t acc = 0;
                for (int64_t p = 0; p < k; p++)
                    acc += (uint32_t)((int32_t)A[i * k + p] * (int32_t)B[p * n + j]);
                c[(b * m + i) * n + j] = (int32_t)acc;
            }
    }
}
