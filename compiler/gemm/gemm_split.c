/* gemm_split.c - how a product is cut across threads (gemm_internal.h):
 * over M, N or K, chosen by shape, and whether threads pay at all, by the
 * same cost model as the JIT's parallel loops (parcost.h).
 */
#include <string.h>

#include "gemm_internal.h"

static int64_t cdiv(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

GemmSplitCost gemm_split_cost_default(void) {
    return (GemmSplitCost){GEMM_DEF_MADD_NS, GEMM_DEF_OVH_NS, "default (TT_TUNE=0)"};
}

GemmSplit gemm_split_choose(int64_t M, int64_t N, int64_t K, int64_t MR, int64_t NR, int64_t kc,
                            int64_t nc, int nthreads, bool gather, const GemmSplitCost *c) {
    GemmSplit s = {GS_SERIAL, 1, 1, false, 0, 0};
    int t = nthreads < 1 ? 1 : nthreads > GEMM_MAXT ? GEMM_MAXT : nthreads;
    int64_t un = cdiv(N, NR), um = cdiv(M, MR);
    /* Times are whole micro-tiles (MR x NR x K multiply-adds each) at the
     * host's rate, however few of a tile's rows or columns are C's: what
     * a small product's serial run and each thread's share of it cost
     * (a small-M product's one-row kernels have no row tiles; a narrow one
     * runs serially as its transpose, gemm_narrow, in the same tiles). */
    double rows = M <= GEMM_GEMV_MR ? (double)M : (double)(um * MR);
    bool narrow = gemm_is_narrow(M, N) && !gather;
    double tiles =
        narrow ? (double)(cdiv(N, MR) * MR) * (double)(cdiv(M, NR) * NR) : rows * (double)(un * NR);
    s.serial_ns = s.par_ns = tiles * (double)K * c->madd_ns;
    if (t < 2) return s;
    /* A gathered op(B) (implicit im2col) costs about as much to pack as to
     * multiply when M is a conv's output channels, and a split over M packs
     * all of it in every part: a weight gradient (N the taps, K the
     * positions) ran slower on 2 threads than on 1. Over N each part
     * gathers only its columns; with fewer panels than threads, over K,
     * each its rows. */
    bool k_first = gather && un < t;
    if ((un < t && um < t) || k_first) {
        /* too few tiles to feed t threads: whole KC blocks of K per thread,
         * when there are at least two; this depends on the shape and t
         * only, never on measured costs, because it changes the rounding */
        int64_t kparts = K / kc < t ? K / kc : t;
        if (kparts >= 2 && (k_first || kparts > (un > um ? un : um))) {
            s.by = GS_K;
            s.parts = (int)kparts;
            /* each partial C is added once more by the caller */
            double par = s.serial_ns / (double)kparts + c->overhead_ns +
                         (double)(kparts - 1) * (double)M * (double)N * c->madd_ns;
            /* not worth the pool: the same parts, in turn, on the caller */
            if (par < s.serial_ns) s.threads = (int)kparts;
            s.par_ns = par; /* the estimate, for the explanation */
            return s;
        }
        if (un < t && um < t) t = (int)(un > um ? un : um);
        if (t < 2) return s;
    }
    double imb_n = (double)cdiv(un, t) * t / (double)un;
    double imb_m = (double)cdiv(um, t) * t / (double)um;
    bool by_n = un >= t && (imb_n <= imb_m * 1.05 || um < t || gather);
    /* A tall product whose op(B) is one block: pack it once and split the
     * rows, so each thread runs the epilogue on its rows while they are in
     * cache (the SGD update of a weight gradient X^T.dY). */
    s.share_b = K <= kc && N <= nc && M >= N && um >= t;
    if (s.share_b) by_n = false;
    /* threaded: the largest share's tiles, not serial/t (a share runs the
     * wide tile: [64,128]@[128,10] on 2 threads is 6 row tiles of 16
     * columns each, 75% of its serial run's tiles, not 50%), plus the
     * fixed cost of a threaded product */
    double share =
        by_n ? (double)(cdiv(un, t) * NR) * rows : (double)(cdiv(um, t) * MR) * (double)(un * NR);
    double par = share * (double)K * c->madd_ns + c->overhead_ns;
    s.par_ns = par;                     /* the estimate, for the explanation */
    if (!(par < s.serial_ns)) return s; /* threads would not pay: serial */
    s.by = by_n ? GS_N : GS_M;
    s.threads = s.parts = t;
    return s;
}

const char *gemm_split_name(GemmSplitBy by) {
    static const char *const names[] = {"serial", "split over M", "split over N", "split over K"};
    return names[by];
}
