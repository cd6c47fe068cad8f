/* test_gemm_lazy.c - the GEMM's kernel families are built when a product
 * first needs them (gemm_driver.c): products with M <= 4 build only the
 * small-M kernels they call, and a later large product builds its tile and runs right,
 * also when two threads ask for it at once. Each Criterion test runs in a
 * fresh process, so each starts with no family built. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "gemm.h"

#define SMALL_M ((1u << TT_GEMM_SMALL_M_FAMILIES) - 1) /* families of the small-M kernels */

static float frand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* max |C - op(A) op(B)| against a double-precision triple loop, scaled by
 * the sum of |terms| (0 is exact; a float sum stays within ~1e-6 here). */
static double product_error(TtGemm *g, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
                            int nthreads, uint64_t seed) {
    float *A = malloc((size_t)(M * K) * sizeof(float));
    float *B = malloc((size_t)(K * N) * sizeof(float));
    float *C = malloc((size_t)(M * N) * sizeof(float));
    cr_assert(A && B && C);
    for (int64_t i = 0; i < M * K; i++) A[i] = frand(&seed);
    for (int64_t i = 0; i < K * N; i++) B[i] = frand(&seed);
    tt_gemm_run(g, M, N, K, A, ta ? M : K, ta, B, tb ? K : N, tb, C, N, false, nthreads, NULL);
    double worst = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0, mag = 1e-30;
            for (int64_t p = 0; p < K; p++) {
                double a = ta ? A[p * M + i] : A[i * K + p], b = tb ? B[j * K + p] : B[p * N + j];
                s += a * b;
                mag += fabs(a * b);
            }
            double e = fabs(C[i * N + j] - s) / mag;
            if (e > worst) worst = e;
        }
    free(A);
    free(B);
    free(C);
    return worst;
}

static TtGemm *gemm(void) {
    char err[256] = "";
    TtGemm *g = tt_gemm_new(err, sizeof err);
    cr_assert(g, "tt_gemm_new: %s", err);
    return g;
}

/* A decode step's products: M = 1..4, every layout, 1 and 2 threads. */
static void small_products(TtGemm *g) {
    for (int64_t M = 1; M <= 4; M++)
        for (int t = 0; t < 4; t++)
            for (int th = 1; th <= 2; th++)
                cr_assert_lt(product_error(g, M, 2048, 96, t & 1, t & 2, th, 7 + (uint64_t)M), 1e-5,
                             "M %lld layout %d threads %d", (long long)M, t, th);
}

Test(gemm_lazy, small_m_builds_no_tile) {
    TtGemm *g = gemm();
    TtGemmStats s;
    tt_gemm_stats(g, &s);
    cr_expect_eq(s.families, 0, "tt_gemm_new builds nothing");
    /* a decode step's: one row, B as stored */
    cr_assert_lt(product_error(g, 1, 640, 128, false, false, 2, 1), 1e-5);
    tt_gemm_stats(g, &s);
    cr_expect_eq(s.mask, 1u, "gemv_n1 alone (mask %#x)", s.mask);
    cr_expect(s.compile_ms > 0);
    small_products(g);
    tt_gemm_stats(g, &s);
    cr_expect_eq(s.families, TT_GEMM_SMALL_M_FAMILIES, "each small-M kernel, not %d", s.families);
    cr_expect_eq(s.mask, SMALL_M, "and no tile (mask %#x)", s.mask);
    /* preparing a small-M shape, as the JIT does, builds nothing more */
    char err[256];
    cr_assert(tt_gemm_prepare(g, 1, 640, 128, false, true, false, err, sizeof err), "%s", err);
    tt_gemm_stats(g, &s);
    cr_expect_eq(s.families, TT_GEMM_SMALL_M_FAMILIES);
    tt_gemm_free(g);
}

typedef struct Big {
    TtGemm *g;
    int64_t M, N, K;
    bool ta, tb;
    double err;
} Big;

static void *big_product(void *arg) {
    Big *b = arg;
    b->err = product_error(b->g, b->M, b->N, b->K, b->ta, b->tb, 1, 99 + (uint64_t)b->M);
    return NULL;
}

/* After the small-M ones, large products on two threads at once: the first
 * to need the tile builds it while the other waits, and both are right. */
Test(gemm_lazy, large_product_later_from_two_threads, .timeout = 120) {
    TtGemm *g = gemm();
    small_products(g);
    Big b[2] = {{g, 67, 130, 300, false, false, 0}, {g, 45, 200, 129, true, true, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&th[i], NULL, big_product, &b[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) cr_expect_lt(b[i].err, 1e-5, "product %d: error %g", i, b[i].err);
    TtGemmStats s;
    tt_gemm_stats(g, &s);
    cr_expect(s.mask & ~SMALL_M, "a tile was built (mask %#x)", s.mask);
    for (int f = TT_GEMM_SMALL_M_FAMILIES; f < TT_GEMM_FAMILIES; f++)
        if (s.mask & (1u << f)) cr_log_info("built: %s", tt_gemm_family_name(f));
    /* and the small-M products still run right next to it */
    cr_expect_lt(product_error(g, 3, 300, 200, false, true, 2, 5), 1e-5);
    tt_gemm_free(g);
}

/* tt_gemm_prepare builds the tile a large product will use, so its first
 * run builds nothing. With tuning off: tuning a new class times its
 * candidates, building each one's tile. */
Test(gemm_lazy, prepare_builds_the_tile) {
    setenv("TT_TUNE", "0", 1);
    TtGemm *g = gemm();
    char err[256];
    cr_assert(tt_gemm_prepare(g, 256, 256, 256, false, false, false, err, sizeof err), "%s", err);
    TtGemmStats s;
    tt_gemm_stats(g, &s);
    cr_expect_eq(s.families, 1, "the tile alone (mask %#x)", s.mask);
    cr_expect_eq(s.mask & SMALL_M, 0u);
    cr_expect_lt(product_error(g, 256, 256, 256, false, false, 1, 3), 1e-5);
    TtGemmStats s2;
    tt_gemm_stats(g, &s2);
    cr_expect_eq(s2.mask, s.mask, "the run built nothing more");
    tt_gemm_free(g);
}
