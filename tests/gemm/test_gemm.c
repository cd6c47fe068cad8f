/* test_gemm.c - the JIT GEMM (compiler/gemm) against a naive triple loop in
 * double precision.
 *
 * Every case runs all four transpose combinations, with and without
 * accumulate, on 1, 2 and 3 threads, with leading dimensions wider than the
 * rows and pointers offset by one float (unaligned). An entry counts as
 * correct when |got - want| <= 1e-4 * sqrt(K + 1) * (sum_p |a_ip b_pj| + |c0_ij|);
 * cells outside the M x N window of C must be untouched.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "xorshift.h"

static TtGemm *G;

static void setup(void) {
    char err[256] = "";
    G = tt_gemm_new(err, sizeof err);
    cr_assert(G, "tt_gemm_new: %s", err);
}

static void teardown(void) {
    tt_gemm_free(G);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {
    return tu_frand(&rng);
}

typedef struct Case {
    int64_t M, N, K;
    int64_t pad;       /* extra elements per row of A, B, C */
    int64_t lda_force; /* when > 0, lda (for the copy path at 4 KiB strides) */
} Case;

/* Runs one product and checks it; returns the number of bad entries. */
static int check(Case c, bool ta, bool tb, bool acc, int threads, int misalign) {
    int64_t M = c.M, N = c.N, K = c.K;
    int64_t ar = ta ? K : M, ac = ta ? M : K; /* stored shape of A */
    int64_t br = tb ? N : K, bc = tb ? K : N;
    int64_t lda = (c.lda_force > 0 ? c.lda_force : ac + c.pad);
    int64_t ldb = bc + c.pad, ldc = N + c.pad;
    if (lda < 1) lda = 1;
    if (ldb < 1) ldb = 1;
    if (ldc < 1) ldc = 1;
    size_t na = (size_t)(ar * lda) + 16, nb = (size_t)(br * ldb) + 16, nc = (size_t)(M * ldc) + 16;
    float *Ab = malloc(na * sizeof(float)), *Bb = malloc(nb * sizeof(float));
    float *Cb = malloc(nc * sizeof(float)), *C0 = malloc(nc * sizeof(float));
    for (size_t i = 0; i < na; i++) Ab[i] = frand();
    for (size_t i = 0; i < nb; i++) Bb[i] = frand();
    for (size_t i = 0; i < nc; i++) Cb[i] = C0[i] = frand();
    float *A = Ab + misalign, *B = Bb + misalign, *C = Cb + misalign;
    tt_gemm_run(G, M, N, K, A, lda, ta, B, ldb, tb, C, ldc, acc, threads, NULL);
    int bad = 0;
    double tol = 1e-4 * sqrt((double)K + 1);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = acc ? C0[misalign + i * ldc + j] : 0, mag = fabs(s);
            for (int64_t p = 0; p < K; p++) {
                double a = ta ? A[p * lda + i] : A[i * lda + p];
                double b = tb ? B[j * ldb + p] : B[p * ldb + j];
                s += a * b;
                mag += fabs(a * b);
            }
            double got = C[i * ldc + j];
            if (!(fabs(got - s) <= tol * (mag + 1e-30))) {
                if (bad < 3)
                    cr_log_error("M=%ld N=%ld K=%ld ta=%d tb=%d acc=%d t=%d: C[%ld,%ld]=%g want %g",
                                 (long)M, (long)N, (long)K, ta, tb, acc, threads, (long)i, (long)j,
                                 got, s);
                bad++;
            }
        }
    /* nothing outside the window is written */
    for (size_t x = 0; x < nc; x++) {
        int64_t off = (int64_t)x - misalign;
        bool inside = off >= 0 && off < M * ldc && off % ldc < N;
        if (!inside && Cb[x] != C0[x]) {
            if (bad < 3)
                cr_log_error("M=%ld N=%ld K=%ld: wrote outside C at %ld", (long)M, (long)N, (long)K,
                             (long)off);
            bad++;
        }
    }
    free(Ab);
    free(Bb);
    free(Cb);
    free(C0);
    return bad;
}

static int check_all(Case c, const int *threads, int nthreads) {
    int bad = 0;
    for (int t = 0; t < 4; t++)
        for (int acc = 0; acc < 2; acc++)
            for (int th = 0; th < nthreads; th++)
                bad += check(c, t & 1, t & 2, acc, threads[th], (t + acc + th) & 1);
    return bad;
}

static const int T12[] = {1, 2}, T123[] = {1, 2, 3};

TestSuite(gemm_, .init = setup, .fini = teardown);

Test(gemm_, compiles) {
    char perr[256];
    /* the kernels are built when first needed: a tile's and a small-M one
     * (<8 x float> at any width) */
    cr_assert(tt_gemm_prepare(G, 64, 64, 64, false, false, false, perr, sizeof perr), "%s", perr);
    cr_assert(tt_gemm_prepare(G, 1, 64, 64, false, false, false, perr, sizeof perr), "%s", perr);
    cr_expect(tt_gemm_compile_ms(G) > 0);
    char err[64];
    TtGemm *g2 = tt_gemm_new(err, sizeof err);
    cr_expect_eq(g2, G, "the kernels are compiled once per process");
    cr_expect_eq(tt_gemm_compile_ms(g2), tt_gemm_compile_ms(G), "and timed once");
    tt_gemm_free(g2);
    FILE *f = tmpfile();
    cr_assert(tt_gemm_emit_llvm(G, f));
    long n = ftell(f);
    rewind(f);
    char *s = calloc((size_t)n + 1, 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    cr_expect(strstr(s, "llvm.fma.v8f32"), "IR uses llvm.fma.v8f32");
    cr_expect(strstr(s, "llvm.masked.load"), "IR uses llvm.masked.load");
    free(s);
}

Test(gemm_, tiny_and_empty) {
    int bad = 0;
    int64_t d[] = {0, 1, 2, 3};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            for (int k = 0; k < 4; k++)
                bad += check_all((Case){d[a], d[b], d[k], a & 1, 0}, T12, 2);
    cr_assert_eq(bad, 0);
}

Test(gemm_, k_zero_overwrites_or_keeps) {
    float C[6] = {1, 2, 3, 4, 5, 6}, A[1] = {0}, B[1] = {0};
    tt_gemm_run(G, 2, 3, 0, A, 1, false, B, 3, false, C, 3, true, 1, NULL);
    cr_expect_eq(C[5], 6.0f);
    tt_gemm_run(G, 2, 3, 0, A, 1, false, B, 3, false, C, 3, false, 1, NULL);
    for (int i = 0; i < 6; i++) cr_expect_eq(C[i], 0.0f);
}

Test(gemm_, micro_tile_edges) {
    int bad = 0;
    /* row remainders of both tiles (6 and 12 rows) and column remainders
     * around the vector and panel widths (8, 16, 32) */
    int64_t ms[] = {1, 4, 5, 6, 7, 11, 12, 13, 23, 25};
    int64_t ns[] = {1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 65};
    int64_t ks[] = {1, 3, 4, 5, 9, 17};
    for (int a = 0; a < 10; a++)
        for (int b = 0; b < 12; b++)
            bad += check_all((Case){ms[a], ns[b], ks[(a + b) % 6], (a * b) % 3, 0}, T12, 2);
    cr_assert_eq(bad, 0);
}

Test(gemm_, blocks_in_k_m_n) {
    int bad = 0;
    Case cs[] = {
        {145, 33, 257, 1, 0}, /* two MC blocks, two KC blocks */
        {300, 50, 600, 0, 0}, /* three KC blocks, balanced */
        {7, 4100, 19, 3, 0},  /* two NC blocks */
        {64, 128, 784, 0, 0}, /* the MLP's shapes */
        {64, 10, 128, 0, 0},  {784, 128, 64, 0, 0}, {64, 784, 128, 0, 0},
        {97, 61, 53, 2, 0},   {1, 300, 77, 0, 0},   {300, 1, 77, 0, 0},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) bad += check_all(cs[i], T123, 3);
    cr_assert_eq(bad, 0);
}

Test(gemm_, four_kib_strides_copy_a) {
    int bad = 0;
    /* lda a multiple of 1024 floats: A blocks are copied to a padded buffer */
    bad += check_all((Case){150, 40, 300, 0, 1024}, T12, 2);
    bad += check_all((Case){20, 20, 20, 0, 2048}, T12, 2);
    cr_assert_eq(bad, 0);
}

Test(gemm_, random_shapes) {
    int bad = 0;
    for (int r = 0; r < 40; r++) {
        uint64_t x = (uint64_t)(frand() * 1e6 + 2e6);
        Case c = {(int64_t)(x % 90) + 1, (int64_t)(x / 90 % 70) + 1, (int64_t)(x / 6300 % 80) + 1,
                  (int64_t)(x % 3), 0};
        bad += check_all(c, T12, 2);
    }
    cr_assert_eq(bad, 0);
}

/* A product of one block of rows (M <= MC) reads B's full panels in place
 * (packing only the last narrow one), or, with B transposed, packs each
 * panel just before its tiles; the same rows of a taller product, whose B
 * is packed a whole block at a time, are bit-identical, with several K
 * blocks, an edge panel, accumulate, A and B as stored or transposed. */
Test(gemm_, b_in_place_matches_packed) {
    int64_t Mt = 300, M = 100, N = 37, K = 600, ldc = N + 1;
    for (int tb = 0; tb < 2; tb++)
        for (int ta = 0; ta < 2; ta++)
            for (int acc = 0; acc < 2; acc++) {
                int64_t lda = ta ? Mt + 3 : K + 3, ldb = tb ? K + 2 : N + 2;
                int64_t nb = tb ? N * ldb : K * ldb;
                float *A = malloc(sizeof(float) * (size_t)((ta ? K : Mt) * lda));
                float *B = malloc(sizeof(float) * (size_t)nb);
                float *Ct = malloc(sizeof(float) * (size_t)(Mt * ldc));
                float *Cs = malloc(sizeof(float) * (size_t)(M * ldc));
                for (int64_t i = 0; i < (ta ? K : Mt) * lda; i++) A[i] = frand();
                for (int64_t i = 0; i < nb; i++) B[i] = frand();
                for (int64_t i = 0; i < Mt * ldc; i++) Ct[i] = (float)i * 0.25f;
                for (int64_t i = 0; i < M * ldc; i++) Cs[i] = (float)i * 0.25f;
                tt_gemm_run(G, Mt, N, K, A, lda, ta, B, ldb, tb, Ct, ldc, acc, 1, NULL);
                tt_gemm_run(G, M, N, K, A, lda, ta, B, ldb, tb, Cs, ldc, acc, 1, NULL);
                cr_expect(memcmp(Ct, Cs, sizeof(float) * (size_t)(M * ldc)) == 0,
                          "ta=%d tb=%d acc=%d: B read in place or packed by panel differs from "
                          "B packed by block",
                          ta, tb, acc);
                free(A);
                free(B);
                free(Ct);
                free(Cs);
            }
}

/* Narrow products (N <= 16, M >= 32: gemm_narrow computes C^T): against the
 * reference with N around the small-M kernels' row blocks of 4, M across
 * the transposed path's 512-row blocks, K across KC blocks, every
 * transpose, accumulate, 1-3 threads, padded and unaligned. */
Test(gemm_, narrow_products_transposed) {
    static const int64_t Ns[] = {1, 3, 4, 5, 8, 10, 13, 16};
    static const int64_t shapes[][2] = {{32, 1},    {33, 7},   {64, 128},
                                        {100, 300}, {530, 64}, {1100, 20}};
    int bad = 0;
    for (size_t n = 0; n < sizeof Ns / sizeof Ns[0]; n++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            Case c = {shapes[s][0], Ns[n], shapes[s][1], (int64_t)((n + s) % 3), 0};
            bad += check_all(c, T123, 3);
        }
    cr_assert_eq(bad, 0);
}

/* ... and bit-identical to the direct product: rows of a narrow product
 * equal the same rows computed as a product of 31 rows (below the narrow
 * threshold: the packed micro-tile, same KC blocks), for every transpose,
 * with and without accumulate. */
Test(gemm_, narrow_matches_direct_rows) {
    int64_t M = 93, K = 600;
    static const int64_t Ns[] = {3, 10, 16};
    for (size_t n = 0; n < sizeof Ns / sizeof Ns[0]; n++)
        for (int t = 0; t < 4; t++)
            for (int acc = 0; acc < 2; acc++) {
                bool ta = t & 1, tb = t & 2;
                int64_t N = Ns[n], lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 2, ldc = N + 3;
                float *A = malloc(sizeof(float) * (size_t)((ta ? K : M) * lda));
                float *B = malloc(sizeof(float) * (size_t)((tb ? N : K) * ldb));
                float *Cn = malloc(sizeof(float) * (size_t)(M * ldc));
                float *Cd = malloc(sizeof(float) * (size_t)(M * ldc));
                for (int64_t i = 0; i < (ta ? K : M) * lda; i++) A[i] = frand();
                for (int64_t i = 0; i < (tb ? N : K) * ldb; i++) B[i] = frand();
                for (int64_t i = 0; i < M * ldc; i++) Cn[i] = Cd[i] = frand();
                tt_gemm_run(G, M, N, K, A, lda, ta, B, ldb, tb, Cn, ldc, acc, 1, NULL);
                for (int64_t r0 = 0; r0 < M; r0 += 31)
                    tt_gemm_run(G, 31, N, K, ta ? A + r0 : A + r0 * lda, lda, ta, B, ldb, tb,
                                Cd + r0 * ldc, ldc, acc, 1, NULL);
                cr_expect(memcmp(Cn, Cd, sizeof(float) * (size_t)(M * ldc)) == 0,
                          "N=%ld ta=%d tb=%d acc=%d: narrow differs from direct", (long)N, ta, tb,
                          acc);
                free(A);
                free(B);
                free(Cn);
                free(Cd);
            }
}

Test(gemm_, big_square_threads) {
    int bad = 0;
    bad += check((Case){256, 256, 256, 0, 0}, false, false, false, 2, 0);
    bad += check((Case){301, 290, 280, 5, 0}, true, true, true, 2, 1);
    bad += check((Case){512, 512, 512, 0, 0}, false, true, false, 4, 0);
    cr_assert_eq(bad, 0);
}

Test(gemm_, small_m_no_packing) {
    /* M <= 4 reads B in place (gemv kernels): every row count, odd N and K
     * around the 8-lane and block widths, wide leading dimensions */
    int bad = 0;
    int64_t ns[] = {1, 7, 9, 16, 33, 63, 65, 130};
    int64_t ks[] = {1, 5, 8, 13, 257, 785};
    for (int64_t m = 1; m <= 4; m++)
        for (int b = 0; b < 8; b++)
            bad += check_all((Case){m, ns[b], ks[(m + b) % 6], 1 + (m + b) % 3, 0}, T12, 2);
    /* both transposed with K past the A-copy chunk; 4 KiB strides */
    bad += check_all((Case){3, 5, 10050, 1, 0}, T12, 1);
    bad += check_all((Case){2, 20, 30, 0, 1024}, T12, 1);
    cr_assert_eq(bad, 0);
}

Test(gemm_, small_m_matches_packed_rows) {
    /* non-transposed B: rows of an M <= 4 product are bit-identical to the
     * same rows computed by the packed path (M = 7) */
    int64_t N = 37, K = 600, lda = K + 3, ldb = N + 2, ldc = N + 1;
    float *A = malloc(sizeof(float) * 7 * lda), *B = malloc(sizeof(float) * K * ldb);
    float *C7 = malloc(sizeof(float) * 7 * ldc), *Cs = malloc(sizeof(float) * 4 * ldc);
    for (int64_t i = 0; i < 7 * lda; i++) A[i] = frand();
    for (int64_t i = 0; i < K * ldb; i++) B[i] = frand();
    for (int acc = 0; acc < 2; acc++)
        for (int64_t m = 1; m <= 4; m++) {
            for (int64_t i = 0; i < 7 * ldc; i++) C7[i] = (float)i * 0.25f;
            for (int64_t i = 0; i < 4 * ldc; i++) Cs[i] = (float)i * 0.25f;
            tt_gemm_run(G, 7, N, K, A, lda, false, B, ldb, false, C7, ldc, acc, 1, NULL);
            tt_gemm_run(G, m, N, K, A, lda, false, B, ldb, false, Cs, ldc, acc, 1, NULL);
            cr_expect(memcmp(C7, Cs, sizeof(float) * (size_t)(m * ldc)) == 0,
                      "m=%ld acc=%d differs from the packed path", (long)m, acc);
        }
    free(A);
    free(B);
    free(C7);
    free(Cs);
}

/* The epilogue sees every row of C exactly once, and only when it is final:
 * it snapshots the rows it is given, which must equal C after the call. */
typedef struct EpiSeen {
    const float *C;
    float *snap;
    int64_t N, ldc;
    atomic_int *calls; /* per row */
} EpiSeen;

static void epi_snapshot(void *ctx, int64_t r0, int64_t r1) {
    EpiSeen *e = ctx;
    for (int64_t r = r0; r < r1; r++) {
        atomic_fetch_add(&e->calls[r], 1);
        memcpy(e->snap + r * e->N, e->C + r * e->ldc, (size_t)e->N * sizeof(float));
    }
}

Test(gemm_, epilogue_sees_final_rows_once) {
    /* small M (no packing), K = 0, several row blocks (MC 144), several
     * column blocks (NC 4080), big enough to split over 2 threads by rows
     * and by columns */
    int64_t shapes[][3] = {{3, 40, 30},   {5, 17, 0},    {300, 40, 20}, {20, 4100, 3},
                           {400, 64, 64}, {8, 2000, 64}, {1, 1, 1},     {600, 10, 50}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int threads = 1; threads <= 2; threads++) {
            int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ldc = N + 3;
            float *A = malloc((size_t)(M * K + 1) * sizeof(float));
            float *B = malloc((size_t)(K * N + 1) * sizeof(float));
            float *C = malloc((size_t)(M * ldc) * sizeof(float));
            float *snap = malloc((size_t)(M * N) * sizeof(float));
            atomic_int *calls = calloc((size_t)M, sizeof *calls);
            for (int64_t i = 0; i < M * K; i++) A[i] = frand();
            for (int64_t i = 0; i < K * N; i++) B[i] = frand();
            for (int64_t i = 0; i < M * ldc; i++) C[i] = frand();
            EpiSeen e = {C, snap, N, ldc, calls};
            TtGemmEpilogue epi = {epi_snapshot, &e};
            tt_gemm_run(G, M, N, K, A, K, false, B, N, false, C, ldc, false, threads, &epi);
            int bad = 0;
            for (int64_t r = 0; r < M; r++) {
                if (atomic_load(&calls[r]) != 1) bad++;
                if (memcmp(snap + r * N, C + r * ldc, (size_t)N * sizeof(float)) != 0) bad++;
            }
            cr_expect_eq(bad, 0, "M=%ld N=%ld K=%ld threads=%d: %d rows wrong", (long)M, (long)N,
                         (long)K, threads, bad);
            free(A);
            free(B);
            free(C);
            free(snap);
            free(calls);
        }
}

/* The thread count never changes a result: rows split over threads take the
 * same code path (and summation order) as on one thread. */
Test(gemm_, threads_bit_identical) {
    int64_t shapes[][3] = {{7, 300, 200}, {10, 500, 100}, {130, 64, 300},
                           {301, 17, 90}, {200, 10, 64},  {1100, 13, 600}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int tb = 0; tb < 2; tb++) {
            int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            float *A = malloc((size_t)(M * K) * sizeof(float));
            float *B = malloc((size_t)(K * N) * sizeof(float));
            float *C1 = malloc((size_t)(M * N) * sizeof(float));
            float *C2 = malloc((size_t)(M * N) * sizeof(float));
            for (int64_t i = 0; i < M * K; i++) A[i] = frand();
            for (int64_t i = 0; i < K * N; i++) B[i] = frand();
            tt_gemm_run(G, M, N, K, A, K, false, B, tb ? K : N, tb, C1, N, false, 1, NULL);
            for (int t = 2; t <= 3; t++) {
                tt_gemm_run(G, M, N, K, A, K, false, B, tb ? K : N, tb, C2, N, false, t, NULL);
                cr_expect(memcmp(C1, C2, (size_t)(M * N) * sizeof(float)) == 0,
                          "M=%ld N=%ld K=%ld tb=%d: %d threads differ from 1", (long)M, (long)N,
                          (long)K, tb, t);
            }
            free(A);
            free(B);
            free(C1);
            free(C2);
        }
}

/* Both micro-tiles (8 lanes, 6 x 16; 16 lanes, 12 x 32) sum every element
 * in the same order, so a program computes the same bits on an AVX2 and an
 * AVX-512 host. One process builds each width in turn (TT_GEMM_LANES). */
Test(gemm_widths, tiles_bit_identical, .timeout = 120) {
    int64_t shapes[][3] = {{64, 128, 784}, {13, 45, 300}, {100, 10, 128}, {3, 70, 50}};
    float *out[2][4][4];
    for (int w = 0; w < 2; w++) {
        setenv("TT_GEMM_LANES", w ? "16" : "8", 1);
        char err[256] = "";
        TtGemm *g = tt_gemm_new(err, sizeof err);
        cr_assert(g, "tt_gemm_new: %s", err);
        cr_assert_eq(tt_gemm_lanes(g), w ? 16 : 8);
        for (int s = 0; s < 4; s++)
            for (int t = 0; t < 4; t++) {
                int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                bool ta = t & 1, tb = t & 2;
                uint64_t seed = rng;
                rng = 0x1234567ull + (uint64_t)(s * 4 + t);
                float *A = malloc((size_t)(M * K) * sizeof(float));
                float *B = malloc((size_t)(K * N) * sizeof(float));
                for (int64_t i = 0; i < M * K; i++) A[i] = frand();
                for (int64_t i = 0; i < K * N; i++) B[i] = frand();
                rng = seed;
                float *C = out[w][s][t] = malloc((size_t)(M * N) * sizeof(float));
                tt_gemm_run(g, M, N, K, A, ta ? M : K, ta, B, tb ? K : N, tb, C, N, false, 1, NULL);
                free(A);
                free(B);
            }
        tt_gemm_free(g);
    }
    for (int s = 0; s < 4; s++)
        for (int t = 0; t < 4; t++) {
            size_t n = (size_t)(shapes[s][0] * shapes[s][1]) * sizeof(float);
            cr_expect(memcmp(out[0][s][t], out[1][s][t], n) == 0,
                      "M=%ld N=%ld K=%ld ta=%d tb=%d: 8 and 16 lanes differ", (long)shapes[s][0],
                      (long)shapes[s][1], (long)shapes[s][2], t & 1, (t & 2) >> 1);
            free(out[0][s][t]);
            free(out[1][s][t]);
        }
}
