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

/* The batch count, Tq, Tk, D and the clamped len of attention-like node n
 * whose q and k are in[0] and in[1] and whose len (if any) is in[lenat]. */
typedef struct {
    int64_t batch, tq, tk, d, len;
} AttnDims;

static AttnDims attn_dims(const IrNode *n, const KTensor *in, int lenat) {
    const Shape *qs = &in[0].shape, *ks = &in[1].shape;
    int r = qs->ndim;
    AttnDims a = {1, qs->d[r - 2], ks->d[r - 2], qs->d[r - 1], ks->d[r - 2]};
    for (int i = 0; i < r - 2; i++) a.batch *= qs->d[i];
    if (n->nin == lenat + 1) {
        int64_t l = *(const int32_t *)in[lenat].data;
        a.len = l < 0 ? 0 : l > a.tk ? a.tk : l;
    }
    return a;
}

/* keys [0, hi) are visible to query i (ops.def) */
static int64_t attn_hi(const IrNode *n, const AttnDims *a, int64_t i) {
    int64_t hi = a->len;
    if (n->attr.causal && i + 1 + (a->len - a->tq) < hi) hi = i + 1 + (a->len - a->tq);
    return hi < 0 ? 0 : hi;
}

static double attn_score(const AttnDims *a, const float *qi, const float *kj, double scale) {
    double s = 0;
    for (int64_t c = 0; c < a->d; c++) s += (double)qi[c] * kj[c];
    return s * scale;
}

/* in[0] q, in[1] k, in[2] (optional) len -> out [..., Tq]: max + log(sum
 * exp(s - max)) over the visible scores, -inf when there are none. */
void kern_attention_lse_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    (void)err;
    AttnDims a = attn_dims(n, in, 2);
    const float *Q = in[0].data, *K = in[1].data;
    float *O = out->data;
    for (int64_t b = 0; b < a.batch; b++)
        for (int64_t i = 0; i < a.tq; i++) {
            const float *qi = Q + (b * a.tq + i) * a.d;
            int64_t hi = attn_hi(n, &a, i);
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < hi; j++) {
                double s = attn_score(&a, qi, K + (b * a.tk + j) * a.d, n->attr.scale);
                if (s > mx || s != s) mx = s; /* a NaN wins */
            }
            for (int64_t j = 0; mx > -INFINITY && j < hi; j++)
                sum += exp(attn_score(&a, qi, K + (b * a.tk + j) * a.d, n->attr.scale) - mx);
            O[b * a.tq + i] = mx == -INFINITY ? -INFINITY : (float)(mx + log(sum));
        }
}

/* in[0] q, in[1] k, in[2] v, in[3] gy, in[4] lse, in[5] delta, in[6]
 * (optional) len -> the gradient for input attr.axis, summed in double over
 * every visible (query, key) pair. */
void kern_attention_grad_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err) {
    AttnDims a = attn_dims(n, in, 6);
    int r = in[0].shape.ndim;
    int64_t dv = in[2].shape.d[r - 1], total = shape_numel(&out->shape);
    double *acc =
        kern_try_alloc(err, (size_t)(total > 0 ? total : 1) * sizeof *acc, "attention gradient");
    if (!acc) return;
    for (int64_t x = 0; x < total; x++) acc[x] = 0;
    const float *Q = in[0].data, *K = in[1].data, *V = in[2].data, *G = in[3].data;
    const float *L = in[4].data, *Dl = in[5].data;
    double scale = n->attr.scale;
    int axis = n->attr.axis;
    for (int64_t b = 0; b < a.batch; b++)
        for (int64_t i = 0; i < a.tq; i++) {
            int64_t row = b * a.tq + i, hi = attn_hi(n, &a, i);
            const float *qi = Q + row * a.d, *gi = G + row * dv;
            if (L[row] == -INFINITY) continue; /* the row is 0: no gradient */
            for (int64_t j = 0; j < hi; j++) {
                int64_t col = b * a.tk + j;
                const float *kj = K + col * a.d, *vj = V + col * dv;
                double p = exp(attn_score(&a, qi, kj, scale) - L[row]);
                if (axis == 2) {
                    for (int64_t c = 0; c < dv; c++) acc[col * dv + c] += p * gi[c];
                    continue;
                }
                double dp = 0;
                for (int64_t c = 0; c < dv; c++) dp += (double)gi[c] * vj[c];
                double ds = p * (dp - Dl[row]) * scale;
                if (axis == 0)
                    for (int64_t c = 0; c < a.d; c++) acc[row * a.d + c] += ds * kj[c];
                else
                    for (int64_t c = 0; c < a.d; c++) acc[col * a.d + c] += ds * qi[c];
            }
        }
    float *O = out->data;
    for (int64_t x = 0; x < total; x++) O[x] = (float)acc[x];
    free(acc);
}
