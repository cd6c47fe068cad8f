/* kernels_sort.c - reference kernels of sorting and scans along one axis.
 *
 * argsort  a stable merge sort of the indices of each row along attr.axis:
 *          equal elements keep their order (also when descending, as
 *          torch.sort(stable=True)); a NaN is larger than everything and
 *          equal to another NaN; -0.0 equals 0.0.
 * cumsum   inclusive prefix sums, from the start (attr.reverse: from the
 *          end); f32 accumulates in double and rounds each sum once; ints
 *          wrap in their type.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* A row along the axis: element i at base[i * inner]. */
typedef struct Row {
    const void *base;
    int64_t inner;
    DType dt;
    bool desc;
} Row;

static double key(const Row *r, int32_t i) {
    switch (r->dt) {
    case TY_F32:
        return ((const float *)r->base)[i * r->inner];
    case TY_I32:
        return ((const int32_t *)r->base)[i * r->inner];
    case TY_I8:
        return ((const int8_t *)r->base)[i * r->inner];
    default:
        TT_UNREACHABLE();
    }
}

/* a < b where NaN is the largest value */
static bool less_nan(double a, double b) {
    return a < b || (a == a && b != b);
}

/* Does element j come strictly before element i? (stability: ties never) */
static bool before(const Row *r, int32_t j, int32_t i) {
    double a = key(r, j), b = key(r, i);
    return r->desc ? less_nan(b, a) : less_nan(a, b);
}

/* Bottom-up merge sort of idx[0..n) through tmp (both n long). */
static void merge_sort(const Row *r, int32_t *idx, int32_t *tmp, int64_t n) {
    int32_t *src = idx, *dst = tmp;
    for (int64_t w = 1; w < n; w *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int64_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi) dst[k++] = before(r, src[b], src[a]) ? src[b++] : src[a++];
            while (a < mid) dst[k++] = src[a++];
            while (b < hi) dst[k++] = src[b++];
        }
        int32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != idx) memcpy(idx, src, (size_t)n * sizeof *idx);
}

/* in[0]: [.., A, ..] (A at attr.axis) -> out: i32 [.., A, ..]; out along
 * the axis = the indices of the row's elements in sorted order */
void kern_argsort_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    const Shape *s = &in[0].shape;
    int32_t *o = out->data;
    TT_ASSERT(out->dtype == TY_I32);
    if (s->ndim == 0) {
        o[0] = 0;
        return;
    }
    int ax = n->attr.axis;
    int64_t outer = 1, inner = 1, A = s->d[ax];
    for (int i = 0; i < ax; i++) outer *= s->d[i];
    for (int i = ax + 1; i < s->ndim; i++) inner *= s->d[i];
    if (outer * inner * A == 0) return;
    int32_t *idx = kern_try_alloc(err, (size_t)A * 2 * sizeof *idx, "argsort workspace");
    if (!idx) return;
    size_t es = dtype_size(in[0].dtype);
    for (int64_t p = 0; p < outer; p++)
        for (int64_t k = 0; k < inner; k++) {
            Row r = {(const char *)in[0].data + (size_t)(p * A * inner + k) * es, inner,
                     in[0].dtype, n->attr.reverse};
            for (int64_t i = 0; i < A; i++) idx[i] = (int32_t)i;
            merge_sort(&r, idx, idx + A, A);
            for (int64_t i = 0; i < A; i++) o[(p * A + i) * inner + k] = idx[i];
        }
    free(idx);
}

/* Prefix sums of each row; ACC the accumulator type, WRAP its conversion. */
#define CUMSUM(T, ACC, OUT)                                                                        \
    do {                                                                                           \
        const T *a = in[0].data;                                                                   \
        T *o = out->data;                                                                          \
        for (int64_t p = 0; p < outer; p++)                                                        \
            for (int64_t k = 0; k < inner; k++) {                                                  \
                ACC acc = 0;                                                                       \
                for (int64_t j = 0; j < A; j++) {                                                  \
                    int64_t i = n->attr.reverse ? A - 1 - j : j;                                   \
                    int64_t at = (p * A + i) * inner + k;                                          \
                    acc += (ACC)a[at];                                                             \
                    o[at] = OUT;                                                                   \
                }                                                                                  \
            }                                                                                      \
    } while (0)

/* in[0]: [.., A, ..] (A at attr.axis) -> out: the same shape and dtype;
 * out[.., i, ..] = sum of in[.., j, ..] for j <= i (j >= i reversed) */
void kern_cumsum_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    const Shape *s = &in[0].shape;
    TT_ASSERT(in[0].dtype == out->dtype);
    int ax = n->attr.axis;
    TT_ASSERT(ax >= 0 && ax < s->ndim);
    int64_t outer = 1, inner = 1, A = s->d[ax];
    for (int i = 0; i < ax; i++) outer *= s->d[i];
    for (int i = ax + 1; i < s->ndim; i++) inner *= s->d[i];
    switch (out->dtype) {
    case TY_F32:
        CUMSUM(float, double, (float)acc);
        break;
    case TY_I32:
        CUMSUM(int32_t, uint32_t, (int32_t)acc);
        break;
    case TY_I8:
        CUMSUM(int8_t, uint32_t, (int8_t)(uint8_t)acc);
        break;
    default:
        TT_UNREACHABLE();
    }
}
