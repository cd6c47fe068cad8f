/* kernels_attn.c - the reference kernel of attention: the plain three steps
 * (scores, softmax with the maximum subtracted, weighted sum of values) per
 * query row, in double.
 *
 * Which keys a query sees (ops.def): key j is visible to query i iff
 * j < len and, when causal, j <= i + (len - Tq): the mask is aligned to the
 * bottom right, so the last query sees every valid key (one new query
 * attends to the whole cache). len is the 4th input clamped to [0, Tk], or
 * Tk. A query that sees no key, or whose visible scores are all -inf, gives
 * a row of zeros (PyTorch gives NaN).
 */
#include <math.h>
#include <stdlib.h>

#include "kernels.h"

/* in[0] q [..., Tq, D], in[1] k [..., Tk, D], in[2] v [..., Tk, Dv],
 * in[3] (optional) len i32[] -> out [..., Tq, Dv], all f32 but len. */
void kern_attention_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    const Shape *qs = &in[0].shape, *ks = &in[1].shape, *vs = &in[2].shape;
    int r = qs->ndim;
    int64_t tq = qs->d[r - 2], d = qs->d[r - 1], tk = ks->d[r - 2], dv = vs->d[r - 1];
    int64_t batch = 1;
    for (int i = 0; i < r - 2; i++) batch *= qs->d[i];
    int64_t len = tk;
    if (n->nin == 4) {
        int64_t l = *(const int32_t *)in[3].data;
        len = l < 0 ? 0 : l > tk ? tk : l;
    }
    double scale = n->attr.scale;
    double *p = kern_try_alloc(err, (size_t)(tk > 0 ? tk : 1) * sizeof *p, "attention scores");
    if (!p) return;
    const float *Q = in[0].data, *K = in[1].data, *V = in[2].data;
    float *O = out->data;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t i = 0; i < tq; i++) {
            const float *qi = Q + (b * tq + i) * d;
            float *oi = O + (b * tq + i) * dv;
            /* keys [0, hi) are visible */
            int64_t hi = len;
            if (n->attr.causal && i + 1 + (len - tq) < hi) hi = i + 1 + (len - tq);
            if (hi < 0) hi = 0;
            double mx = -INFINITY;
            for (int64_t j = 0; j < hi; j++) {
                const float *kj = K + (b * tk + j) * d;
                double s = 0;
                for (int64_t c = 0; c < d; c++) s += (double)qi[c] * kj[c];
                p[j] = s * scale;
                if (p[j] > mx || p[j] != p[j]) mx = p[j]; /* a NaN wins */
            }
            double sum = 0;
            for (int64_t j = 0; j < hi; j++) sum += p[j] = exp(p[j] - mx);
            for (int64_t c = 0; c < dv; c++) {
                double acc = 0;
                for (int64_t j = 0; j < hi; j++) acc += p[j] * V[(b * tk + j) * dv + c];
                oi[c] = mx == -INFINITY ? 0.0f : (float)(acc / sum);
            }
        }
    free(p);
}

/* in[0] dst [..., N, D], in[1] src [..., R, D], in[2] pos i32[] -> out
 * [..., N, D]: dst with rows pos .. pos + R - 1 of every batch replaced by
 * src. out may be dst's own buffer (the runtime's in-place update of an
 * aliased output, naive.c): then only the R rows are written. A position
 * outside [0, N - R] writes nothing. */
void kern_write_rows_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    (void)n;
    const Shape *s = &in[1].shape;
    int r = s->ndim;
    int64_t rows = out->shape.d[r - 2], nr = s->d[r - 2], d = s->d[r - 1], batch = 1;
    for (int i = 0; i < r - 2; i++) batch *= s->d[i];
    int64_t pos = *(const int32_t *)in[2].data;
    if (pos < 0 || pos > rows - nr) {
        kern_rows_error(err, pos, nr, rows);
        return;
    }
    float *o = out->data;
    const float *dst = in[0].data, *src = in[1].data;
    if (o != dst)
        for (int64_t i = 0; i < batch * rows * d; i++) o[i] = dst[i];
    for (int64_t b = 0; b < batch; b++)
        for (int64_t i = 0; i < nr * d; i++) o[(b * rows + pos) * d + i] = src[b * nr * d + i];
}
