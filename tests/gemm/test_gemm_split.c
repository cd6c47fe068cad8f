/* test_gemm_split.c - the GEMM's thread split (gemm_split.c): which split a
 * shape gets under synthetic costs (deterministic, no clocks), the split
 * over K against a double-precision reference, and its results the same
 * on every run and whether its parts ran on the pool or in turn.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "dump_text.h"
#include "gemm.h"
#include "gemm_internal.h"
#include "parallel.h"
#include "xorshift.h"

static const GemmSplitCost C_DEF = {GEMM_DEF_MADD_NS, GEMM_DEF_OVH_NS, "set"};

Test(gemm_split, decisions) {
    GemmSplit s;
    /* tiny: one thread whatever is allowed */
    s = gemm_split_choose(8, 8, 8, 6, 16, 256, 4080, 2, false, &C_DEF);
    cr_expect_eq(s.by, GS_SERIAL);
    cr_expect_eq(s.threads, 1);
    /* below the break-even point (about 2.6e5 multiply-adds at 2 threads):
     * serial; 64 rows are 11 row tiles, 6 of them on one thread, which
     * with the wake-up cost more than all 11 on one; 72 rows split evenly */
    s = gemm_split_choose(64, 64, 60, 6, 16, 256, 4080, 2, false, &C_DEF);
    cr_expect_eq(s.by, GS_SERIAL);
    s = gemm_split_choose(64, 64, 64, 6, 16, 256, 4080, 2, false, &C_DEF);
    cr_expect_eq(s.by, GS_SERIAL);
    s = gemm_split_choose(72, 64, 64, 6, 16, 256, 4080, 2, false, &C_DEF);
    cr_expect(s.by == GS_M || s.by == GS_N, "%d", s.by);
    /* large square: both threads, over N (panels balance as well as rows) */
    s = gemm_split_choose(1024, 1024, 1024, 6, 16, 256, 4080, 2, false, &C_DEF);
    cr_expect_eq(s.by, GS_N);
    cr_expect_eq(s.threads, 2);
    cr_expect(s.par_ns < s.serial_ns);
    /* a dear wake-up keeps even that serial */
    GemmSplitCost dear = {GEMM_DEF_MADD_NS, 1e12, "set"};
    s = gemm_split_choose(1024, 1024, 1024, 6, 16, 256, 4080, 2, false, &dear);
    cr_expect_eq(s.by, GS_SERIAL);
    /* tall with op(B) one block (a weight gradient): rows, B packed once */
    s = gemm_split_choose(784, 128, 64, 6, 16, 256, 4080, 2, false, &C_DEF);
    cr_expect_eq(s.by, GS_M);
    cr_expect(s.share_b);
    /* N of one tile, M of 11 tiles: rows on 2 threads, when a wake-up is
     * cheap enough for its 8e4 multiply-adds */
    s = gemm_split_choose(64, 10, 128, 6, 16, 256, 4080, 2, false, &C_DEF);
    cr_expect_eq(s.by, GS_SERIAL);
    GemmSplitCost cheap = {GEMM_DEF_MADD_NS, 100, "set"};
    s = gemm_split_choose(64, 10, 128, 6, 16, 256, 4080, 2, false, &cheap);
    cr_expect_eq(s.by, GS_M);
    /* too few tiles for 16 threads and a deep K: over K, 16 parts */
    s = gemm_split_choose(64, 10, 8192, 6, 16, 256, 4080, 16, false, &C_DEF);
    cr_expect_eq(s.by, GS_K);
    cr_expect_eq(s.parts, 16);
    cr_expect_eq(s.threads, 16);
    /* parts limited by whole KC blocks */
    s = gemm_split_choose(8, 8, 1000, 6, 16, 256, 4080, 8, false, &C_DEF);
    cr_expect_eq(s.by, GS_K);
    cr_expect_eq(s.parts, 3);
    /* the K split is by shape alone: with a dear wake-up the same parts run
     * in turn on the caller (same rounding) */
    s = gemm_split_choose(64, 10, 8192, 6, 16, 256, 4080, 16, false, &dear);
    cr_expect_eq(s.by, GS_K);
    cr_expect_eq(s.parts, 16);
    cr_expect_eq(s.threads, 1);
    /* K of one block: no K split, the tiles there are */
    s = gemm_split_choose(8, 8, 256, 6, 16, 256, 4080, 4, false, &C_DEF);
    cr_expect(s.by != GS_K);
    /* a gathered op(B) (implicit im2col) is packed in every part of a split
     * over M: a conv2 weight gradient [32, 144] over 12544 positions goes
     * over N (9 panels, though 6 row tiles balance better) */
    s = gemm_split_choose(32, 144, 12544, 6, 16, 256, 4080, 2, false, &C_DEF);
    cr_expect_eq(s.by, GS_M);
    s = gemm_split_choose(32, 144, 12544, 6, 16, 256, 4080, 2, true, &C_DEF);
    cr_expect_eq(s.by, GS_N);
    cr_expect_eq(s.threads, 2);
    /* ... and with fewer panels than threads (conv1's 9 taps) over K */
    s = gemm_split_choose(16, 9, 50176, 6, 16, 256, 4080, 2, false, &C_DEF);
    cr_expect_eq(s.by, GS_M);
    s = gemm_split_choose(16, 9, 50176, 6, 16, 256, 4080, 2, true, &C_DEF);
    cr_expect_eq(s.by, GS_K);
    cr_expect_eq(s.parts, 2);
    cr_expect_eq(s.threads, 2);
    /* ... unless K has fewer than two KC blocks: rows again */
    s = gemm_split_choose(600, 9, 300, 6, 16, 256, 4080, 2, true, &C_DEF);
    cr_expect_eq(s.by, GS_M);
    cr_expect_eq(s.threads, 2);
    /* one thread: serial, always */
    s = gemm_split_choose(2048, 2048, 2048, 6, 16, 256, 4080, 1, false, &C_DEF);
    cr_expect_eq(s.by, GS_SERIAL);
}

/* The model counts whole micro-tiles: a product's serial run (a narrow one
 * as its transpose) and each thread's share, at the host's rate. */
Test(gemm_split, tiles) {
    const double m = 0.02;
    GemmSplitCost rate = {m, 0, "set"};
    /* H.W2 [64,128]@[128,10], narrow: serially 2 x 4 tiles of the
     * transpose; on 2 threads 6 row tiles of one 16-wide panel each */
    GemmSplit s = gemm_split_choose(64, 10, 128, 6, 16, 256, 4080, 2, false, &rate);
    cr_expect_float_eq(s.serial_ns, 12.0 * 64 * 128 * m, 1e-9);
    cr_expect_float_eq(s.par_ns, 36.0 * 16 * 128 * m, 1e-9);
    /* with a fixed cost of 0.6 us it stays serial (1.30 + 0.6 us threaded
     * against 1.74 serial at 0.0177 ns); as serial/t + overhead (0.73 +
     * 0.6 against 1.45) it ran on 2 threads, slower than on one */
    GemmSplitCost c = {0.0177, 600, "set"};
    s = gemm_split_choose(64, 10, 128, 6, 16, 256, 4080, 2, false, &c);
    cr_expect_eq(s.by, GS_SERIAL);
    /* gathered: no transpose, the wide tile serially too */
    s = gemm_split_choose(64, 10, 128, 6, 16, 256, 4080, 2, true, &rate);
    cr_expect_float_eq(s.serial_ns, 66.0 * 16 * 128 * m, 1e-9);
    /* small-M: no row tiles; over N, 8 of 16 panels each */
    s = gemm_split_choose(1, 256, 256, 6, 16, 256, 4080, 2, false, &rate);
    cr_expect_eq(s.by, GS_N);
    cr_expect_float_eq(s.serial_ns, 256.0 * 256 * m, 1e-9);
    cr_expect_float_eq(s.par_ns, 128.0 * 256 * m, 1e-9);
}

/* Costs as measured on a 2-core Zen 4 (madd 0.0177 ns, a threaded small
 * product's fixed cost 1.2 us): the MLP's products of 8e4 multiply-adds
 * stay serial, its 784-wide ones and the squares split. Under the model
 * before whole tiles (serial/t + overhead) and the 3M product's wake +
 * join (0.3 us seen with the workers spinning), H.W2 ran on 2 threads and
 * slower than on one. */
Test(gemm_split, small_products_serial) {
    GemmSplitCost c = {0.0177, 1200, "set"};
    int64_t tiny[][3] = {{64, 10, 128}, {128, 10, 64}, {64, 128, 10}};
    for (int i = 0; i < 3; i++) {
        GemmSplit s =
            gemm_split_choose(tiny[i][0], tiny[i][1], tiny[i][2], 6, 16, 256, 4080, 2, false, &c);
        cr_expect_eq(s.by, GS_SERIAL, "%lldx%lldx%lld", (long long)tiny[i][0],
                     (long long)tiny[i][1], (long long)tiny[i][2]);
        cr_expect(s.par_ns >= s.serial_ns);
    }
    int64_t big[][3] = {{64, 128, 784}, {784, 128, 64}, {64, 784, 128}, {1024, 1024, 1024}};
    for (int i = 0; i < 4; i++) {
        GemmSplit s =
            gemm_split_choose(big[i][0], big[i][1], big[i][2], 6, 16, 256, 4080, 2, false, &c);
        cr_expect(s.by == GS_M || s.by == GS_N, "%lldx%lldx%lld: %d", (long long)big[i][0],
                  (long long)big[i][1], (long long)big[i][2], s.by);
        cr_expect_eq(s.threads, 2);
    }
}

static TtGemm *G;

static void setup(void) {
    char err[256] = "";
    G = tt_gemm_new(err, sizeof err);
    cr_assert(G, "tt_gemm_new: %s", err);
}

static void teardown(void) {
    gemm_split_cost_set(NULL);
    tt_gemm_free(G);
}

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float frand(void) {
    return tu_frand(&rng);
}

typedef struct EpiCount {
    atomic_int *calls;
} EpiCount;

static void epi_count(void *ctx, int64_t r0, int64_t r1) {
    EpiCount *e = ctx;
    for (int64_t r = r0; r < r1; r++) atomic_fetch_add(&e->calls[r], 1);
}

/* One product of the shape on `threads` threads into C (ldc = N + 1),
 * checked against a double-precision loop with the tolerance of
 * test_gemm.c; the epilogue must see every row once. Returns bad entries. */
static int check(int64_t M, int64_t N, int64_t K, bool ta, bool tb, bool acc, int threads,
                 float *C) {
    int64_t lda = ta ? M : K, ldb = tb ? K : N, ldc = N + 1;
    float *A = malloc((size_t)(M * K) * sizeof(float)),
          *B = malloc((size_t)(K * N) * sizeof(float));
    float *C0 = malloc((size_t)(M * ldc) * sizeof(float));
    atomic_int *calls = calloc((size_t)M, sizeof *calls);
    for (int64_t i = 0; i < M * K; i++) A[i] = frand();
    for (int64_t i = 0; i < K * N; i++) B[i] = frand();
    for (int64_t i = 0; i < M * ldc; i++) C[i] = C0[i] = frand();
    EpiCount e = {calls};
    TtGemmEpilogue epi = {epi_count, &e};
    tt_gemm_run(G, M, N, K, A, lda, ta, B, ldb, tb, C, ldc, acc, threads, &epi);
    int bad = 0;
    double tol = 1e-4 * sqrt((double)K + 1);
    for (int64_t i = 0; i < M; i++) {
        if (atomic_load(&calls[i]) != 1) bad++;
        for (int64_t j = 0; j < N; j++) {
            double s = acc ? C0[i * ldc + j] : 0, mag = fabs(s);
            for (int64_t p = 0; p < K; p++) {
                double a = ta ? A[p * lda + i] : A[i * lda + p];
                double b = tb ? B[j * ldb + p] : B[p * ldb + j];
                s += a * b;
                mag += fabs(a * b);
            }
            if (!(fabs(C[i * ldc + j] - s) <= tol * (mag + 1e-30))) bad++;
        }
        if (C[i * ldc + N] != C0[i * ldc + N]) bad++; /* outside the window */
    }
    free(A);
    free(B);
    free(C0);
    free(calls);
    return bad;
}

TestSuite(gemm_ksplit, .init = setup, .fini = teardown);

/* Shapes the K split takes at 2 and 4 threads (fewer tiles than threads,
 * K of several KC blocks), all transposes, with and without accumulate,
 * including the small-M path (M <= 4) and a ragged last block. */
Test(gemm_ksplit, matches_reference) {
    int64_t shapes[][3] = {{1, 5, 3000}, {3, 16, 1300}, {6, 12, 2048}, {4, 30, 777}};
    int bad = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++)
            for (int acc = 0; acc < 2; acc++)
                for (int th = 2; th <= 4; th += 2) {
                    int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                    float *C = malloc((size_t)(M * (N + 1)) * sizeof(float));
                    int b = check(M, N, K, t & 1, t & 2, acc, th, C);
                    if (b)
                        cr_log_error("M=%ld N=%ld K=%ld ta=%d tb=%d acc=%d threads=%d: %d bad",
                                     (long)M, (long)N, (long)K, t & 1, (t & 2) != 0, acc, th, b);
                    bad += b;
                    free(C);
                }
    cr_expect_eq(bad, 0);
}

/* Runs the same K-split product `runs` times; every run must give the
 * bits of the first. */
static void same_bits(int64_t M, int64_t N, int64_t K, int threads, int runs, float *first) {
    int64_t ldc = N + 1;
    float *C = malloc((size_t)(M * ldc) * sizeof(float));
    for (int r = 0; r < runs; r++) {
        rng = 0x2545F4914F6CDD1Dull; /* the same operands each run */
        check(M, N, K, false, false, false, threads, C);
        if (r == 0 && first[0] != first[0]) /* NaN marks "not yet set" */
            memcpy(first, C, (size_t)(M * ldc) * sizeof(float));
        else
            cr_expect(memcmp(first, C, (size_t)(M * ldc) * sizeof(float)) == 0,
                      "M=%ld N=%ld K=%ld threads=%d: run %d differs", (long)M, (long)N, (long)K,
                      threads, r);
    }
    free(C);
}

/* Deterministic reduction: 2 threads give the same bits on every run, and
 * the parts run in turn on the caller (a dear wake-up) give those bits
 * too, so thread timing can never change a result. */
Test(gemm_ksplit, identical_across_runs) {
    int64_t M = 4, N = 12, K = 4096;
    float *first = malloc((size_t)(M * (N + 1)) * sizeof(float));
    first[0] = NAN;
    GemmSplitCost cheap = {GEMM_DEF_MADD_NS, 0, "set"};
    gemm_split_cost_set(&cheap);
    same_bits(M, N, K, 2, 20, first);
    GemmSplitCost dear = {GEMM_DEF_MADD_NS, 1e12, "set"};
    gemm_split_cost_set(&dear);
    same_bits(M, N, K, 2, 3, first);
    free(first);
}

/* Splits over M and N give the same bits on every run at 2 threads (and
 * as on one: test_gemm.c threads_bit_identical). */
Test(gemm_ksplit, mn_identical_across_runs) {
    GemmSplitCost cheap = {GEMM_DEF_MADD_NS, 0, "set"};
    gemm_split_cost_set(&cheap);
    int64_t shapes[][3] = {{300, 40, 500}, {12, 700, 300}};
    for (int s = 0; s < 2; s++) {
        int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *first = malloc((size_t)(M * (N + 1)) * sizeof(float));
        first[0] = NAN;
        same_bits(M, N, K, 2, 10, first);
        free(first);
    }
}

/* The GEMM's threads are the process's pool (compiler/jit/parallel.h),
 * shared with the JIT's parallel loops: a threaded product called from a
 * loop running on the pool finds it busy and runs its parts in turn on
 * its caller, with the same bits as alone on 2 threads (splits over M and
 * N and K alike). */
typedef struct Nested {
    int64_t M, N, K;
    const float *A, *B;
    float *C; /* one M x N product per iteration */
} Nested;

static void nested_body(void **bufs, int64_t lo, int64_t hi) {
    Nested *t = bufs[0];
    for (int64_t i = lo; i < hi; i++)
        tt_gemm_run(G, t->M, t->N, t->K, t->A, t->K, false, t->B, t->N, false,
                    t->C + i * t->M * t->N, t->N, false, 2, NULL);
}

Test(gemm_ksplit, inside_parallel_loop) {
    GemmSplitCost cheap = {GEMM_DEF_MADD_NS, 0, "set"};
    gemm_split_cost_set(&cheap);
    int64_t shapes[][3] = {{300, 40, 500}, {12, 700, 300}, {4, 12, 4096}};
    for (int s = 0; s < 3; s++) {
        int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], its = 6;
        float *A = malloc((size_t)(M * K) * sizeof(float)),
              *B = malloc((size_t)(K * N) * sizeof(float)),
              *want = malloc((size_t)(M * N) * sizeof(float)),
              *C = calloc((size_t)(its * M * N), sizeof(float));
        for (int64_t i = 0; i < M * K; i++) A[i] = frand();
        for (int64_t i = 0; i < K * N; i++) B[i] = frand();
        tt_gemm_run(G, M, N, K, A, K, false, B, N, false, want, N, false, 2, NULL);
        Nested t = {M, N, K, A, B, C};
        void *bufs[1] = {&t};
        ttrt_parallel_for(nested_body, bufs, its, 2);
        int bad = 0;
        for (int64_t i = 0; i < its * M * N; i++)
            bad += memcmp(&C[i], &want[i % (M * N)], sizeof *C) != 0;
        cr_expect(bad == 0, "%lldx%lldx%lld: %d of %lld differ", (long long)M, (long long)N,
                  (long long)K, bad, (long long)(its * M * N));
        free(A);
        free(B);
        free(want);
        free(C);
    }
}

/* --explain-schedule says how each product was split and why. */
Test(gemm_ksplit, explained) {
    setenv("TT_TUNE", "0", 1);
    float *C = malloc(4 * 13 * sizeof(float));
    check(4, 12, 4096, false, false, false, 2, C);
    free(C);
    char *text = tu_gemm_explain_text();
    cr_expect(strstr(text, "threads 4x12x4096 on 2: split over K (2 parts"), "%s", text);
    free(text);
}

/* Under the costs measured on this host (TT_TUNE unset), the MLP's H.W2
 * [64,128]@[128,10] allowed 2 threads runs serially: the measured fixed
 * cost of a threaded small product outweighs the tiles a second thread
 * takes off it. */
static void setup_measured(void) {
    unsetenv("TT_TUNE"); /* the host's schedules and costs */
    setup();
}

Test(gemm_measured, tiny_serial, .init = setup_measured, .fini = teardown) {
    float *C = malloc(64 * 11 * sizeof(float));
    cr_expect_eq(check(64, 10, 128, false, false, false, 2, C), 0);
    free(C);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    tt_gemm_explain(f);
    fclose(f);
    cr_expect(strstr(text, "threads 64x10x128 on 2: serial;"), "%s", text);
    cr_expect(strstr(text, "(measured)"), "%s", text);
    free(text);
}
