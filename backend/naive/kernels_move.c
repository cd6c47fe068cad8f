/* kernels_move.c - reference kernels of the movement ops (reshape, permute,
 * broadcast, slice, pad, concat) and of gather / scatter_add.
 *
 * Movement moves elements and computes nothing, so these kernels work on
 * element sizes (4 bytes for f32 and i32, 1 for i8), not on dtypes. Every
 * one is a strided copy of a box of elements: copy_box below.
 */
#include <stdint.h>
#include <string.h>

#include "kernels.h"

/* Row-major strides, in elements. */
static void strides(const Shape *s, int64_t *st) {
    int64_t acc = 1;
    for (int i = s->ndim - 1; i >= 0; i--) {
        st[i] = acc;
        acc *= s->d[i];
    }
}

/* dst[j * ds] = src[j * ss] for j < len */
static void copy_row(char *dst, int64_t ds, const char *src, int64_t ss, int64_t len, size_t es) {
    if (ds == 1 && ss == 1) {
        memcpy(dst, src, (size_t)len * es);
        return;
    }
    switch (es) {
    case 4: {
        uint32_t *d = (uint32_t *)dst;
        const uint32_t *s = (const uint32_t *)src;
        for (int64_t j = 0; j < len; j++) d[j * ds] = s[j * ss];
        break;
    }
    case 1:
        for (int64_t j = 0; j < len; j++) dst[j * ds] = src[j * ss];
        break;
    default:
        for (int64_t j = 0; j < len; j++) memcpy(dst + j * ds * es, src + j * ss * es, es);
    }
}

/* Copies a box of dims[0..nd-1] elements: for every index (i0, ..., i_nd-1),
 *   dst[sum i_k * ds[k]] = src[sum i_k * ss[k]]    (strides in elements).
 * nd == 0 copies one element. */
static void copy_box(void *dst, const int64_t *ds, const void *src, const int64_t *ss,
                     const int64_t *dims, int nd, size_t es) {
    int64_t total = 1;
    for (int k = 0; k < nd; k++) total *= dims[k];
    if (total == 0) return;
    if (nd == 0) {
        memcpy(dst, src, es);
        return;
    }
    int64_t len = dims[nd - 1], rows = total / len;
    int64_t idx[IR_MAXDIM] = {0}, doff = 0, soff = 0;
    for (int64_t r = 0; r < rows; r++) {
        copy_row((char *)dst + doff * (int64_t)es, ds[nd - 1],
                 (const char *)src + soff * (int64_t)es, ss[nd - 1], len, es);
        for (int k = nd - 2; k >= 0; k--) { /* odometer over the outer dims */
            idx[k]++;
            doff += ds[k];
            soff += ss[k];
            if (idx[k] < dims[k]) break;
            doff -= ds[k] * dims[k];
            soff -= ss[k] * dims[k];
            idx[k] = 0;
        }
    }
}

static int64_t numel(const KTensor *t) {
    return shape_numel(&t->shape);
}

/* in[0]: [...] -> out: attr.shape, same numel: the elements in order */
void kern_reshape_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    int64_t len = numel(out);
    TT_ASSERT(len == numel(&in[0]) && in[0].dtype == out->dtype);
    if (len > 0) memcpy(out->data, in[0].data, (size_t)len * dtype_size(out->dtype));
}

/* in[0]: [d0, ..., dr-1] -> out: [d_perm[0], ..., d_perm[r-1]];
 * out[i0, ..., ir-1] = in[j] with j[perm[k]] = i_k */
void kern_permute_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    int nd = out->shape.ndim;
    int64_t ist[IR_MAXDIM], ost[IR_MAXDIM], ss[IR_MAXDIM];
    TT_ASSERT(in[0].shape.ndim == nd);
    strides(&in[0].shape, ist);
    strides(&out->shape, ost);
    for (int i = 0; i < nd; i++) ss[i] = ist[n->attr.perm[i]];
    copy_box(out->data, ost, in[0].data, ss, out->shape.d, nd, dtype_size(out->dtype));
}

/* in[0]: [..., 1 or d_i, ...] -> out: attr.shape [..., d_i, ...] (same rank);
 * a dim of size 1 repeats its element along d_i */
void kern_broadcast_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    int nd = out->shape.ndim;
    int64_t ist[IR_MAXDIM], ost[IR_MAXDIM];
    TT_ASSERT(in[0].shape.ndim == nd);
    strides(&in[0].shape, ist);
    strides(&out->shape, ost);
    for (int i = 0; i < nd; i++) {
        TT_ASSERT(in[0].shape.d[i] == 1 || in[0].shape.d[i] == out->shape.d[i]);
        if (in[0].shape.d[i] == 1) ist[i] = 0;
    }
    copy_box(out->data, ost, in[0].data, ist, out->shape.d, nd, dtype_size(out->dtype));
}

/* in[0]: [d_i] -> out: [ceil((stop_i - start_i) / step_i)] per dim;
 * out[.., j, ..] = in[.., start_i + j * step_i, ..] */
void kern_slice_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    int nd = out->shape.ndim;
    if (numel(out) == 0) return;
    int64_t ist[IR_MAXDIM], ost[IR_MAXDIM], off = 0;
    TT_ASSERT(in[0].shape.ndim == nd);
    strides(&in[0].shape, ist);
    strides(&out->shape, ost);
    for (int i = 0; i < nd; i++) {
        TT_ASSERT(n->attr.step[i] >= 1 && n->attr.start[i] >= 0);
        off += n->attr.start[i] * ist[i];
        ist[i] *= n->attr.step[i];
    }
    size_t es = dtype_size(out->dtype);
    copy_box(out->data, ost, (const char *)in[0].data + off * (int64_t)es, ist, out->shape.d, nd,
             es);
}

/* in[0]: [d_i] -> out: attr.shape, zeros except
 * out[.., start_i + j * step_i, ..] = in[.., j, ..]  (the inverse of slice) */
void kern_pad_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    int nd = out->shape.ndim;
    size_t es = dtype_size(out->dtype);
    int64_t len = numel(out);
    if (len > 0) memset(out->data, 0, (size_t)len * es);
    if (numel(&in[0]) == 0) return;
    int64_t ist[IR_MAXDIM], ost[IR_MAXDIM], off = 0;
    TT_ASSERT(in[0].shape.ndim == nd);
    strides(&in[0].shape, ist);
    strides(&out->shape, ost);
    for (int i = 0; i < nd; i++) {
        TT_ASSERT(n->attr.step[i] >= 1 && n->attr.start[i] >= 0);
        TT_ASSERT(n->attr.start[i] + (in[0].shape.d[i] - 1) * n->attr.step[i] < out->shape.d[i]);
        off += n->attr.start[i] * ost[i];
        ost[i] *= n->attr.step[i];
    }
    copy_box((char *)out->data + off * (int64_t)es, ost, in[0].data, ist, in[0].shape.d, nd, es);
}

/* in[0..nin-1]: [.., a_k, ..] -> out: [.., sum a_k, ..] along attr.axis,
 * the inputs one after another */
void kern_concat_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    int nd = out->shape.ndim, axis = n->attr.axis;
    size_t es = dtype_size(out->dtype);
    int64_t ost[IR_MAXDIM], at = 0;
    TT_ASSERT(axis >= 0 && axis < nd);
    strides(&out->shape, ost);
    for (int k = 0; k < n->nin; k++) {
        int64_t ist[IR_MAXDIM];
        TT_ASSERT(in[k].shape.ndim == nd && in[k].dtype == out->dtype);
        strides(&in[k].shape, ist);
        if (numel(&in[k]) > 0)
            copy_box((char *)out->data + at * ost[axis] * (int64_t)es, ost, in[k].data, ist,
                     in[k].shape.d, nd, es);
        at += in[k].shape.d[axis];
    }
    TT_ASSERT(at == out->shape.d[axis]);
}

/* Elements per row of a [V, ...r] tensor: the product of r. */
static int64_t row_numel(const Shape *s) {
    int64_t r = 1;
    for (int i = 1; i < s->ndim; i++) r *= s->d[i];
    return r;
}

/* in[0] table: [V, ...r], in[1] idx: i32 [...i] -> out: [...i, ...r];
 * out[j, ...] = table[idx[j], ...]. An index outside [0, V) (negative ones
 * too) is an error: the first one in order is reported. */
void kern_gather_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    TT_ASSERT(in[1].dtype == TY_I32 && in[0].dtype == out->dtype && in[0].shape.ndim >= 1);
    size_t es = dtype_size(out->dtype);
    int64_t V = in[0].shape.d[0], row = row_numel(&in[0].shape), nidx = numel(&in[1]);
    size_t rb = (size_t)row * es;
    const int32_t *idx = in[1].data;
    const char *t = in[0].data;
    char *o = out->data;
    for (int64_t j = 0; j < nidx; j++) {
        int64_t v = idx[j];
        if ((uint64_t)v >= (uint64_t)V) { /* v < 0 or v >= V */
            kern_index_error(err, v, V);
            return;
        }
        if (rb) memcpy(o + (size_t)j * rb, t + (size_t)v * rb, rb);
    }
}

/* in[0] src: [...i, ...r], in[1] idx: i32 [...i] -> out: attr.shape [V, ...r];
 * out = zeros, then out[idx[j], ...] += src[j, ...] in order of j. An index
 * outside [0, V) is an error, as in gather. f32 sums in float; integers
 * wrap. */
void kern_scatter_add_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    TT_ASSERT(in[1].dtype == TY_I32 && in[0].dtype == out->dtype && out->shape.ndim >= 1);
    int64_t V = out->shape.d[0], row = row_numel(&out->shape), nidx = numel(&in[1]);
    int64_t len = numel(out);
    const int32_t *idx = in[1].data;
    if (len > 0) memset(out->data, 0, (size_t)len * dtype_size(out->dtype));
    TT_ASSERT(numel(&in[0]) == nidx * row);
    for (int64_t j = 0; j < nidx; j++) {
        int64_t v = idx[j];
        if ((uint64_t)v >= (uint64_t)V) {
            kern_index_error(err, v, V);
            return;
        }
        switch (out->dtype) {
        case TY_F32: {
            float *o = (float *)out->data + v * row;
            const float *s = (const float *)in[0].data + j * row;
            for (int64_t c = 0; c < row; c++) o[c] += s[c];
            break;
        }
        case TY_I32: {
            int32_t *o = (int32_t *)out->data + v * row;
            const int32_t *s = (const int32_t *)in[0].data + j * row;
            for (int64_t c = 0; c < row; c++) o[c] = (int32_t)((uint32_t)o[c] + (uint32_t)s[c]);
            break;
        }
        case TY_I8: {
            int8_t *o = (int8_t *)out->data + v * row;
            const int8_t *s = (const int8_t *)in[0].data + j * row;
            for (int64_t c = 0; c < row; c++)
                o[c] = (int8_t)(uint8_t)((uint32_t)o[c] + (uint32_t)s[c]);
            break;
        }
        default:
            TT_UNREACHABLE();
        }
    }
}
