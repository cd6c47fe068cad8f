/* test_gemm_sched.c - every GEMM schedule the tuner may pick
 * (compiler/gemm/gemm_tune.c) against a double-precision reference, and
 * bit-identical to every other: a tuned schedule may change the speed,
 * never a result. Also what `--explain-schedule` prints with tuning off.
 * (The tuning cache and its trust rules end to end: tests/run_tune.py.)
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dump_text.h"
#include "gemm.h"
#include "xorshift.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float frand(void) {
    return tu_frand(&rng);
}

static TtGemm *new_gemm(void) {
    char err[256] = "";
    TtGemm *g = tt_gemm_new(err, sizeof err);
    cr_assert(g, "tt_gemm_new: %s", err);
    return g;
}

Test(gemm_sched, candidates_keep_the_summation_order) {
    setenv("TT_TUNE", "0", 1);
    unsetenv("TT_GEMM_LANES");
    TtGemm *g = new_gemm();
    TtGemmSchedule c[16];
    int n = tt_gemm_candidates(g, c, 16);
    cr_assert_geq(n, 2, "more than one schedule to choose from");
    bool has8 = false;
    for (int i = 0; i < n; i++) {
        cr_expect_eq(c[i].kc, 256, "KC decides the rounding: the same in every candidate");
        cr_expect(c[i].lanes == 8 || c[i].lanes == 16);
        cr_expect(c[i].mc > 0 && c[i].mc % c[i].mr == 0, "MC a multiple of the tile's rows");
        has8 |= c[i].lanes == 8;
    }
    cr_expect(has8, "the 6x16 tile runs on every x86-64 host");
    tt_gemm_free(g);
}

/* op(A) @ op(B) (+ C0) in double, M x N. */
static void reference(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, bool ta,
                      const float *B, int64_t ldb, bool tb, const float *C0, bool acc,
                      double *out) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = acc ? C0[i * N + j] : 0;
            for (int64_t p = 0; p < K; p++)
                s += (double)(ta ? A[p * lda + i] : A[i * lda + p]) *
                     (tb ? B[j * ldb + p] : B[p * ldb + j]);
            out[i * N + j] = s;
        }
}

/* Each candidate on one shape, all transposes, with and without
 * accumulate, on 1 and 2 threads; returns the bad entries. */
static int check_shape(TtGemm *g, int64_t M, int64_t N, int64_t K) {
    TtGemmSchedule cand[16];
    int nc = tt_gemm_candidates(g, cand, 16), bad = 0;
    size_t na = (size_t)(M * K), nb = (size_t)(K * N), ncm = (size_t)(M * N);
    float *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B), *C0 = malloc(ncm * sizeof *C0);
    float *C = malloc(ncm * sizeof *C), *first = malloc(ncm * sizeof *first);
    double *want = malloc(ncm * sizeof *want);
    for (size_t i = 0; i < na; i++) A[i] = frand();
    for (size_t i = 0; i < nb; i++) B[i] = frand();
    for (size_t i = 0; i < ncm; i++) C0[i] = frand();
    double tol = 1e-4 * sqrt((double)K + 1) * sqrt((double)K);
    for (int t = 0; t < 4; t++)
        for (int acc = 0; acc < 2; acc++) {
            bool ta = t & 1, tb = t & 2;
            int64_t lda = ta ? M : K, ldb = tb ? K : N;
            reference(M, N, K, A, lda, ta, B, ldb, tb, C0, acc, want);
            for (int ci = 0; ci < nc; ci++)
                for (int th = 1; th <= 2; th++) {
                    memcpy(C, C0, ncm * sizeof *C);
                    tt_gemm_run_with(g, &cand[ci], M, N, K, A, lda, ta, B, ldb, tb, C, N, acc, th,
                                     NULL);
                    for (size_t x = 0; x < ncm; x++)
                        if (!(fabs(C[x] - want[x]) <= tol)) {
                            if (bad++ < 3)
                                cr_log_error("%ldx%ldx%ld ta=%d tb=%d acc=%d t=%d lanes=%d mc=%d "
                                             "nc=%d: C[%zu]=%g want %g",
                                             (long)M, (long)N, (long)K, ta, tb, acc, th,
                                             cand[ci].lanes, cand[ci].mc, cand[ci].nc, x, C[x],
                                             want[x]);
                        }
                    if (ci == 0 && th == 1)
                        memcpy(first, C, ncm * sizeof *C);
                    else if (memcmp(first, C, ncm * sizeof *C) != 0) {
                        if (bad++ < 3)
                            cr_log_error("%ldx%ldx%ld ta=%d tb=%d acc=%d t=%d: lanes=%d mc=%d "
                                         "nc=%d differs from lanes=%d mc=%d nc=%d",
                                         (long)M, (long)N, (long)K, ta, tb, acc, th, cand[ci].lanes,
                                         cand[ci].mc, cand[ci].nc, cand[0].lanes, cand[0].mc,
                                         cand[0].nc);
                    }
                }
        }
    free(A);
    free(B);
    free(C0);
    free(C);
    free(first);
    free(want);
    return bad;
}

Test(gemm_sched, every_candidate_right_and_bit_identical) {
    setenv("TT_TUNE", "0", 1);
    TtGemm *g = new_gemm();
    int bad = 0;
    /* tile edges; rows past MC 72 and 144 (several A blocks); columns past
     * NC 1020 (several B blocks); K past KC 256 (two K blocks) */
    bad += check_shape(g, 13, 17, 9);
    bad += check_shape(g, 151, 40, 300);
    bad += check_shape(g, 20, 1100, 30);
    /* tall, one K block: B packed once for all threads, unless NC splits it */
    bad += check_shape(g, 1040, 1030, 8);
    cr_assert_eq(bad, 0);
    tt_gemm_free(g);
}

Test(gemm_sched, explain_names_each_product_and_its_schedule) {
    setenv("TT_TUNE", "0", 1);
    unsetenv("TT_GEMM_LANES");
    TtGemm *g = new_gemm();
    char *text = tu_gemm_explain_text();
    cr_expect_str_empty(text, "nothing before any product: %s", text);
    free(text);
    static float A[64 * 40], B[40 * 48], C[64 * 48];
    for (int r = 0; r < 2; r++)
        tt_gemm_run(g, 64, 48, 40, A, 40, false, B, 48, false, C, 48, false, 1, NULL);
    tt_gemm_run(g, 3, 48, 40, A, 40, false, B, 48, false, C, 48, false, 1, NULL);
    text = tu_gemm_explain_text();
    cr_expect(strstr(text, "gemm schedules (host "), "%s", text);
    cr_expect(strstr(text, "64x48x40 (2 runs; class M<=64 N<=64 K<=64): "), "%s", text);
    cr_expect(strstr(text, "KC256"), "%s", text);
    cr_expect(strstr(text, "default table (TT_TUNE=0)"), "%s", text);
    cr_expect(strstr(text, "3x48x40 (1 run; class M<=16 N<=64 K<=64): small-M path"), "%s", text);
    cr_expect(!strstr(text, "GFLOP/s"), "nothing was timed: %s", text);
    free(text);
    tt_gemm_free(g);
}

/* A shape seen before finds its schedule without the lock
 * (gemm_tuner_pick): threads running the same new shapes at once record
 * each shape once, and count every run. */
typedef struct RunMany {
    TtGemm *g;
    int64_t M, N;
} RunMany;

static void *run_many(void *p) {
    const RunMany *r = p;
    static float A[64 * 40], B[40 * 48], C[64 * 48];
    float *c = malloc(sizeof C);
    for (int i = 0; i < 300; i++)
        tt_gemm_run(r->g, r->M, r->N, 40, A, 40, false, B, r->N, false, c, r->N, false, 1, NULL);
    free(c);
    return NULL;
}

Test(gemm_sched, concurrent_runs_counted_once_per_shape) {
    setenv("TT_TUNE", "0", 1);
    unsetenv("TT_GEMM_LANES");
    TtGemm *g = new_gemm();
    RunMany r[2] = {{g, 37, 29}, {g, 41, 23}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, run_many, &r[i % 2]);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    char *text = tu_gemm_explain_text();
    const char *a = strstr(text, "37x29x40 (600 runs;"), *b = strstr(text, "41x23x40 (600 runs;");
    cr_expect(a && !strstr(a + 1, "37x29x40"), "%s", text);
    cr_expect(b && !strstr(b + 1, "41x23x40"), "%s", text);
    free(text);
    tt_gemm_free(g);
}

Test(gemm_sched, lanes_override_restricts_every_choice) {
    setenv("TT_TUNE", "0", 1);
    setenv("TT_GEMM_LANES", "8", 1);
    TtGemm *g = new_gemm();
    TtGemmSchedule c[16];
    int n = tt_gemm_candidates(g, c, 16);
    for (int i = 0; i < n; i++) cr_expect_eq(c[i].lanes, 8);
    cr_expect_eq(tt_gemm_lanes(g), 8);
    static float A[64 * 40], B[40 * 48], C[64 * 48];
    tt_gemm_run(g, 64, 48, 40, A, 40, false, B, 48, false, C, 48, false, 1, NULL);
    char *text = tu_gemm_explain_text();
    cr_expect(strstr(text, "6x16/8 lanes"), "%s", text);
    free(text);
    tt_gemm_free(g);
}
