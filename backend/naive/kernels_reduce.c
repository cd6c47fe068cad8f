/* kernels_reduce.c - reference kernels of the reductions: sum, rmax, argmax.
 *
 * sum   f32 accumulates in double in the natural (row-major) order and rounds
 *       once: the reference sum is accurate, and deterministic. Integer sums
 *       wrap in the input's type.
 * rmax  NaN wins (any NaN in the reduced elements gives NaN); an empty
 *       reduction gives -inf (f32) or the type's minimum (i32, i8).
 * argmax the index of the FIRST maximum; a NaN counts as the maximum (the
 *       first NaN wins, like NumPy). An empty axis gives index 0.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

static int64_t numel(const KTensor *t) {
    return shape_numel(&t->shape);
}

/* Walks the elements of the input in row-major order, one innermost row at
 * a time, tracking where each lands in the output: off is the output offset
 * of the row's first element, and element j of the row goes to off + j * step.
 * Reduced dims have output stride 0. */
typedef struct Walk {
    int nd;
    int64_t dims[IR_MAXDIM], ost[IR_MAXDIM], idx[IR_MAXDIM];
    int64_t rows, len, step, off;
} Walk;

static void walk_init(Walk *w, const Shape *in, uint32_t axes) {
    int64_t acc = 1, total = 1;
    w->nd = in->ndim;
    for (int i = in->ndim - 1; i >= 0; i--) {
        bool red = (axes >> i) & 1u;
        w->dims[i] = in->d[i];
        w->ost[i] = red ? 0 : acc;
        w->idx[i] = 0;
        acc *= red ? 1 : in->d[i];
        total *= in->d[i];
    }
    w->len = w->nd ? w->dims[w->nd - 1] : 1;
    w->step = w->nd ? w->ost[w->nd - 1] : 0;
    w->rows = w->len ? total / w->len : 0;
    w->off = 0;
}

static void walk_next(Walk *w) {
    for (int k = w->nd - 2; k >= 0; k--) {
        w->idx[k]++;
        w->off += w->ost[k];
        if (w->idx[k] < w->dims[k]) return;
        w->off -= w->ost[k] * w->dims[k];
        w->idx[k] = 0;
    }
}

/* Runs BODY(acc[o], x) for every input element x of type T landing at o. */
#define REDUCE(T, acc, BODY)                                                                       \
    do {                                                                                           \
        const T *a = in[0].data;                                                                   \
        Walk w;                                                                                    \
        walk_init(&w, &in[0].shape, n->attr.axes);                                                 \
        for (int64_t r = 0; r < w.rows; r++, a += w.len) {                                         \
            for (int64_t j = 0; j < w.len; j++) {                                                  \
                T x = a[j];                                                                        \
                BODY(acc[w.off + j * w.step], x);                                                  \
            }                                                                                      \
            walk_next(&w);                                                                         \
        }                                                                                          \
    } while (0)

#define ADD_D(m, x) ((m) += (double)(x))
#define ADD_U(m, x) ((m) += (uint32_t)(x))
#define MAX_F(m, x)                                                                                \
    do {                                                                                           \
        if ((x) > (m) || (x) != (x)) (m) = (x);                                                    \
    } while (0)
#define MAX_I(m, x)                                                                                \
    do {                                                                                           \
        if ((x) > (m)) (m) = (x);                                                                  \
    } while (0)

/* in[0]: [d0, ..., dr-1] -> out: the dims not in attr.axes (kept as 1 with
 * attr.keepdims); out[o] = sum of the in elements mapping to o */
void kern_sum_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    int64_t len = numel(out);
    TT_ASSERT(in[0].dtype == out->dtype);
    switch (out->dtype) {
    case TY_F32: {
        double *acc = kern_try_alloc(err, (size_t)len * sizeof *acc, "accumulators of sum");
        if (!acc) return;
        memset(acc, 0, (size_t)len * sizeof *acc);
        float *o = out->data;
        REDUCE(float, acc, ADD_D);
        for (int64_t i = 0; i < len; i++) o[i] = (float)acc[i];
        free(acc);
        break;
    }
    case TY_I32: {
        uint32_t *acc = kern_try_alloc(err, (size_t)len * sizeof *acc, "accumulators of sum");
        if (!acc) return;
        memset(acc, 0, (size_t)len * sizeof *acc);
        int32_t *o = out->data;
        REDUCE(int32_t, acc, ADD_U);
        for (int64_t i = 0; i < len; i++) o[i] = (int32_t)acc[i];
        free(acc);
        break;
    }
    case TY_I8: {
        uint32_t *acc = kern_try_alloc(err, (size_t)len * sizeof *acc, "accumulators of sum");
        if (!acc) return;
        memset(acc, 0, (size_t)len * sizeof *acc);
        int8_t *o = out->data;
        REDUCE(int8_t, acc, ADD_U);
        for (int64_t i = 0; i < len; i++) o[i] = (int8_t)(uint8_t)acc[i];
        free(acc);
        break;
    }
    default:
        TT_UNREACHABLE();
    }
}

/* in[0]: [d0, ..., dr-1] -> out: as for sum; out[o] = max of the in
 * elements mapping to o */
void kern_rmax_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    int64_t len = numel(out);
    TT_ASSERT(in[0].dtype == out->dtype);
    switch (out->dtype) {
    case TY_F32: {
        float *o = out->data;
        for (int64_t i = 0; i < len; i++) o[i] = -INFINITY;
        REDUCE(float, o, MAX_F);
        break;
    }
    case TY_I32: {
        int32_t *o = out->data;
        for (int64_t i = 0; i < len; i++) o[i] = INT32_MIN;
        REDUCE(int32_t, o, MAX_I);
        break;
    }
    case TY_I8: {
        int8_t *o = out->data;
        for (int64_t i = 0; i < len; i++) o[i] = INT8_MIN;
        REDUCE(int8_t, o, MAX_I);
        break;
    }
    default:
        TT_UNREACHABLE();
    }
}

/* First index of the maximum of x[0], x[inner], ..., x[(A-1) * inner]. */
#define ARGMAX_LOOP(T, BETTER)                                                                     \
    do {                                                                                           \
        const T *a = in[0].data;                                                                   \
        for (int64_t p = 0; p < outer; p++)                                                        \
            for (int64_t k = 0; k < inner; k++) {                                                  \
                const T *x = a + p * A * inner + k;                                                \
                int32_t best = 0;                                                                  \
                T bv = A > 0 ? x[0] : 0;                                                           \
                for (int64_t i = 1; i < A; i++) {                                                  \
                    T v = x[i * inner];                                                            \
                    if (BETTER(v, bv)) {                                                           \
                        best = (int32_t)i;                                                         \
                        bv = v;                                                                    \
                    }                                                                              \
                }                                                                                  \
                o[p * inner + k] = best;                                                           \
            }                                                                                      \
    } while (0)

/* a NaN beats everything but an earlier NaN */
#define BETTER_F(v, bv) ((bv) == (bv) && ((v) > (bv) || (v) != (v)))
#define BETTER_I(v, bv) ((v) > (bv))

/* in[0]: [.., A, ..] (A at attr.axis) -> out: i32 [.., ..] (A kept as 1
 * with attr.keepdims); out = index along the axis of the first maximum */
void kern_argmax_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    const Shape *s = &in[0].shape;
    int32_t *o = out->data;
    TT_ASSERT(out->dtype == TY_I32);
    if (s->ndim == 0) { /* argmax of a scalar */
        o[0] = 0;
        return;
    }
    int axis = n->attr.axis;
    TT_ASSERT(axis >= 0 && axis < s->ndim);
    int64_t outer = 1, inner = 1, A = s->d[axis];
    for (int i = 0; i < axis; i++) outer *= s->d[i];
    for (int i = axis + 1; i < s->ndim; i++) inner *= s->d[i];
    TT_ASSERT(outer * inner == numel(out));
    switch (in[0].dtype) {
    case TY_F32:
        ARGMAX_LOOP(float, BETTER_F);
        break;
    case TY_I32:
        ARGMAX_LOOP(int32_t, BETTER_I);
        break;
    case TY_I8:
        ARGMAX_LOOP(int8_t, BETTER_I);
        break;
    default:
        TT_UNREACHABLE();
    }
}
