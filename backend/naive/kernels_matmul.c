/* kernels_matmul.c - the reference matrix product.
 *
 * Accumulates in float, in i-k-j order: out[i, j] = ((0 + a[i,0] b[0,j]) +
 * a[i,1] b[1,j]) + ... This order defines the rounding of f32 matmul closely
 * enough for backends (ops.def gives the tolerance); its inner loop runs over
 * contiguous rows, which gcc -O3 vectorizes.
 */
#include <string.h>

#include "kernels.h"

/* in[0]: [..., m, k], in[1]: [..., k, n] -> out: [..., m, n], all f32.
 * The batch dims (...) are equal; an operand of rank 2 is shared by every
 * batch. A rank-1 operand is read as [1, k] (left) or [k, 1] (right). */
void kern_matmul_ref(const IrNode *nd, const KTensor *in, KTensor *out, KernelErr *err) {
    const Shape *sa = &in[0].shape, *sb = &in[1].shape;
    TT_ASSERT(in[0].dtype == TY_F32 && in[1].dtype == TY_F32 && out->dtype == TY_F32);
    TT_ASSERT(sa->ndim >= 1 && sb->ndim >= 1);
    int64_t m = sa->ndim >= 2 ? sa->d[sa->ndim - 2] : 1, k = sa->d[sa->ndim - 1];
    int64_t n = sb->ndim >= 2 ? sb->d[sb->ndim - 1] : 1;
    TT_ASSERT((sb->ndim >= 2 ? sb->d[sb->ndim - 2] : sb->d[0]) == k);
    int64_t total = shape_numel(&out->shape);
    float *c = out->data;
    if (total == 0) return;
    memset(c, 0, (size_t)total * sizeof *c);
    if (m * n == 0 || k == 0) return;
    int64_t batch = total / (m * n);
    int64_t ba = shape_numel(sa) / (m * k > 0 ? m * k : 1);
    int64_t bb = shape_numel(sb) / (k * n > 0 ? k * n : 1);
    TT_ASSERT((ba == batch || ba == 1) && (bb == batch || bb == 1));
    for (int64_t b = 0; b < batch; b++) {
        const float *A = (const float *)in[0].data + (ba == 1 ? 0 : b * m * k);
        const float *B = (const float *)in[1].data + (bb == 1 ? 0 : b * k * n);
        float *C = c + b * m * n;
        for (int64_t i = 0; i < m; i++) {
            float *restrict crow = C + i * n;
            for (int64_t p = 0; p < k; p++) {
                float aip = A[i * k + p];
                const float *restrict brow = B + p * n;
                for (int64_t j = 0; j < n; j++) crow[j] += aip * brow[j];
            }
        }
    }
}
