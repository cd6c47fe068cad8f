/* test_gemm_gather.c - tt_gemm_run_gather (implicit im2col: op(B) gathered
 * from an image while it is packed) against tt_gemm_run on the same matrix
 * materialized, on random convolution geometries.
 *
 * Forward: op(B) = col [C*kh*kw, N*Ho*Wo]; weight gradient: op(B) = col^T.
 * The gathered product runs on the same kernels and K blocks as the packed
 * one, so the results must be bit-identical, on 1, 2 and 3 threads, with
 * and without accumulate. The one exception is a product of at most
 * GEMM_GEMV_MR rows with B transposed, which tt_gemm_run computes as dot
 * products (another rounding): checked against a double-precision sum.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dump_text.h"
#include "gemm.h"
#include "gemm_internal.h"
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

TestSuite(gemm_gather, .init = setup, .fini = teardown);

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t next(void) {
    return tu_xorshift(&rng);
}
static int64_t irand(int64_t lo, int64_t hi) {
    return lo + (int64_t)(next() % (uint64_t)(hi - lo + 1));
}
static float frand(void) {
    return (float)((double)(next() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* A convolution over an image x [N, C, Hp, Wp] that already holds its
 * padding (the gather never reads outside x). */
typedef struct Geo {
    int64_t N, C, Hp, Wp, kh, kw, s0, s1, d0, d1, Ho, Wo;
} Geo;

static Geo random_geo(int64_t maxc, int64_t maxn) {
    Geo g;
    g.N = irand(1, maxn);
    g.C = irand(1, maxc);
    g.kh = irand(1, 3);
    g.kw = irand(1, 3);
    g.s0 = irand(1, 2);
    g.s1 = irand(1, 2);
    g.d0 = irand(1, 2);
    g.d1 = irand(1, 2);
    g.Hp = (g.kh - 1) * g.d0 + 1 + irand(0, 12);
    g.Wp = (g.kw - 1) * g.d1 + 1 + irand(0, 12);
    g.Ho = (g.Hp - (g.kh - 1) * g.d0 - 1) / g.s0 + 1;
    g.Wo = (g.Wp - (g.kw - 1) * g.d1 - 1) / g.s1 + 1;
    return g;
}

/* col[(c, a, b)][(n, i, j)] = x[n, c, i*s0 + a*d0, j*s1 + b*d1] */
static void im2col(const Geo *g, const float *x, float *col) {
    int64_t NP = g->N * g->Ho * g->Wo;
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t a = 0; a < g->kh; a++)
            for (int64_t b = 0; b < g->kw; b++) {
                float *r = col + ((c * g->kh + a) * g->kw + b) * NP;
                for (int64_t n = 0; n < g->N; n++)
                    for (int64_t i = 0; i < g->Ho; i++)
                        for (int64_t j = 0; j < g->Wo; j++)
                            *r++ = x[((n * g->C + c) * g->Hp + i * g->s0 + a * g->d0) * g->Wp +
                                     j * g->s1 + b * g->d1];
            }
}

static TtGemmGather gather(const Geo *g, const float *x, bool taps_rows) {
    int64_t tdim[2] = {g->kh, g->kw}, pdim[2] = {g->Ho, g->Wo};
    int64_t tstr[3] = {g->Hp * g->Wp, g->d0 * g->Wp, g->d1};
    int64_t pstr[3] = {g->C * g->Hp * g->Wp, g->s0 * g->Wp, g->s1};
    TtGemmGather t = {x, {0, 0}, {0, 0, 0}, {0, 0}, {0, 0, 0}};
    memcpy(t.rdim, taps_rows ? tdim : pdim, sizeof t.rdim);
    memcpy(t.rstr, taps_rows ? tstr : pstr, sizeof t.rstr);
    memcpy(t.cdim, taps_rows ? pdim : tdim, sizeof t.cdim);
    memcpy(t.cstr, taps_rows ? pstr : tstr, sizeof t.cstr);
    return t;
}

/* x for check_geo: malloc'd, or with guard set its last float just below
 * an inaccessible page, so that a read past x's end (the packing's whole
 * vectors past a run's end) faults in any build, not only under ASan. */
static bool guard_x;

static float *x_alloc(int64_t nx) {
    if (!guard_x) return malloc((size_t)nx * sizeof(float));
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), bytes = (size_t)nx * sizeof(float);
    size_t span = (bytes + pg - 1) / pg * pg + pg;
    char *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(m != MAP_FAILED);
    cr_assert(mprotect(m + span - pg, pg, PROT_NONE) == 0);
    return (float *)(m + span - pg - bytes);
}

static void x_free(float *x, int64_t nx) {
    if (!guard_x) {
        free(x);
        return;
    }
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), bytes = (size_t)nx * sizeof(float);
    size_t span = (bytes + pg - 1) / pg * pg + pg;
    munmap((char *)x + bytes + pg - span, span);
}

/* Do the gathered and the materialized product of this shape take the
 * same thread split (gemm_split.c)? A gathered B with fewer column panels
 * than threads is split over K first, where the materialized one may go
 * over M: with the 16-lane tile (32 columns a panel) the weight gradient
 * of 45 taps on 3 threads is. The sums are then rounded differently, and
 * only agree within the product's tolerance. Assumes the default tile
 * and blocks (TT_TUNE=0, the suite's setting). */
static bool same_split(int64_t M, int64_t n, int64_t k, int t) {
    bool wide = tt_gemm_lanes(G) == 16;
    int64_t mr = wide ? 12 : 6, nr = wide && n > 16 ? 32 : 16;
    GemmSplitCost c = gemm_split_cost_default();
    GemmSplit a = gemm_split_choose(M, n, k, mr, nr, 256, 4080, t, false, &c);
    GemmSplit b = gemm_split_choose(M, n, k, mr, nr, 256, 4080, t, true, &c);
    return t == 1 || (a.by == b.by && a.parts == b.parts);
}

/* One geometry, M rows of A: the forward (C = A [M, K] @ col) and the weight
 * gradient (C = A [M, NP] @ col^T), gathered against materialized; returns
 * the number of mismatches. */
static int check_geo(const Geo *g, int64_t M) {
    int64_t K = g->C * g->kh * g->kw, NP = g->N * g->Ho * g->Wo;
    int64_t nx = g->N * g->C * g->Hp * g->Wp;
    float *x = x_alloc(nx), *col = malloc((size_t)(K * NP) * sizeof(float));
    float *A = malloc((size_t)(M * (K > NP ? K : NP)) * sizeof(float));
    int64_t nc = M * (K > NP ? K : NP);
    float *C1 = malloc((size_t)nc * sizeof(float)), *C2 = malloc((size_t)nc * sizeof(float));
    for (int64_t i = 0; i < nx; i++) x[i] = frand();
    for (int64_t i = 0; i < M * (K > NP ? K : NP); i++) A[i] = frand();
    im2col(g, x, col);
    int bad = 0;
    for (int dir = 0; dir < 2; dir++) {
        /* forward: N = NP, K = K; weight gradient: N = K, K = NP */
        int64_t n = dir == 0 ? NP : K, k = dir == 0 ? K : NP;
        TtGemmGather b = gather(g, x, dir == 0);
        for (int t = 1; t <= 3; t++)
            for (int acc = 0; acc < 2; acc++) {
                for (int64_t i = 0; i < M * n; i++) C1[i] = C2[i] = (float)(i % 7) - 3;
                if (dir == 0)
                    tt_gemm_run(G, M, n, k, A, k, false, col, NP, false, C1, n, acc, t, NULL);
                else
                    tt_gemm_run(G, M, n, k, A, k, false, col, NP, true, C1, n, acc, t, NULL);
                tt_gemm_run_gather(G, M, n, k, A, k, false, &b, C2, n, acc, t, NULL);
                /* tt_gemm_run's small-M dot products, or another split */
                bool dots = (dir == 1 && M <= 4) || !same_split(M, n, k, t);
                for (int64_t i = 0; i < M; i++)
                    for (int64_t j = 0; j < n; j++) {
                        float got = C2[i * n + j];
                        if (!dots) {
                            if (memcmp(&got, &C1[i * n + j], sizeof got) != 0) bad++;
                            continue;
                        }
                        double want = acc ? (double)((i * n + j) % 7) - 3 : 0, mag = fabs(want);
                        for (int64_t p = 0; p < k; p++) {
                            double v = (double)A[i * k + p] * col[j * NP + p];
                            want += v;
                            mag += fabs(v);
                        }
                        if (fabs(got - want) > 1e-5 * sqrt((double)k + 1) * (mag + 1)) bad++;
                    }
                if (bad) {
                    cr_log_error("N%lld C%lld %lldx%lld k%lldx%lld s%lld,%lld d%lld,%lld M%lld "
                                 "dir %d threads %d acc %d: %d mismatches",
                                 (long long)g->N, (long long)g->C, (long long)g->Hp,
                                 (long long)g->Wp, (long long)g->kh, (long long)g->kw,
                                 (long long)g->s0, (long long)g->s1, (long long)g->d0,
                                 (long long)g->d1, (long long)M, dir, t, acc, bad);
                    goto done;
                }
            }
    }
done:
    x_free(x, nx);
    free(col);
    free(A);
    free(C1);
    free(C2);
    return bad;
}

/* tt_gemm_explain's text names what (a product's shape and split). */
static void expect_explained(const char *what) {
    char *text = tu_gemm_explain_text();
    cr_expect(strstr(text, what), "%s", text);
    free(text);
}

/* Small random geometries: tile edges in M and N, every digit carry of the
 * row and column offsets, strides and dilations, a single position or tap. */
Test(gemm_gather, random_small_bit_identical) {
    int bad = 0;
    for (int v = 0; v < 60 && !bad; v++) {
        Geo g = random_geo(5, 3);
        bad += check_geo(&g, irand(1, 40));
    }
    cr_expect(bad == 0, "%d mismatches (see the log)", bad);
}

/* A forward's panels copied from whole vectors (pack_gather: 8 columns
 * at a time, blended where an output row ends, the lanes past the last
 * column cleared): output rows of 4-33 positions (a chunk of 8 holding 1,
 * 2 or 3 rows, the last falling back to the run copies), strides 1 and 2,
 * 1-3 images (panels crossing from one to the next), no padding, so the
 * last tap of the last position is x's last float, and x ends at an
 * inaccessible page: the loads past a run's end stop at x's end.
 * M >= 5 (fewer rows run from x unpacked, gather_small_m). Bit-identical
 * to the materialized product, 1-3 threads, 3x3 and 5x5 kernels; the
 * weight gradient too (its columns, rows of 3 or 5 taps, mostly fall back
 * to the run copies: 8 columns hold a third row). */
Test(gemm_gather, forward_rows_from_whole_vectors_bit_identical, .timeout = 60) {
    static const int64_t wo[] = {4, 5, 7, 8, 9, 15, 16, 17, 28, 33};
    int bad = 0;
    guard_x = true;
    for (int i = 0; i < (int)(sizeof wo / sizeof wo[0]) && !bad; i++)
        for (int64_t s = 1; s <= 2 && !bad; s++) {
            Geo g = {.N = 1 + i % 3,
                     .C = 1 + i % 2,
                     .kh = i % 3 == 2 ? 5 : 3,
                     .kw = i % 3 == 2 ? 5 : 3,
                     .s0 = s,
                     .s1 = s,
                     .d0 = 1,
                     .d1 = 1};
            g.Ho = 2 + i % 4;
            g.Wo = wo[i];
            g.Hp = (g.Ho - 1) * s + g.kh;
            g.Wp = (g.Wo - 1) * s + g.kw;
            bad += check_geo(&g, i % 2 ? 16 : 5 + i);
        }
    guard_x = false;
    cr_expect(bad == 0, "%d mismatches (see the log)", bad);
}

/* Large enough for several K blocks (K = 288 > 256), several column blocks
 * (N*Ho*Wo > 4080) and the threads' splits over N and over M (the weight
 * gradient's B packed once for all threads). */
Test(gemm_gather, blocks_and_threads_bit_identical, .timeout = 60) {
    Geo g = {
        .N = 3, .C = 32, .Hp = 42, .Wp = 41, .kh = 3, .kw = 3, .s0 = 1, .s1 = 1, .d0 = 1, .d1 = 1};
    g.Ho = g.Hp - 2;
    g.Wo = g.Wp - 2;
    cr_expect(check_geo(&g, 16) == 0);
    cr_expect(check_geo(&g, 150) == 0);
    Geo s2 = g;
    s2.s0 = s2.s1 = 2;
    s2.C = 5;
    s2.Ho = (g.Hp - 3) / 2 + 1;
    s2.Wo = (g.Wp - 3) / 2 + 1;
    cr_expect(check_geo(&s2, 33) == 0);
}

/* A weight gradient's shape (few rows and columns, a long K = N*Ho*Wo) with
 * threads made cheap, so the product is split over K: each part gathers
 * its own rows of op(B) (BSrc.p0), and the parts are summed in order, as
 * for the materialized matrix: bit-identical again, and explained as a
 * split over K. */
Test(gemm_gather, split_over_k_bit_identical, .timeout = 60) {
    GemmSplitCost cheap = {GEMM_DEF_MADD_NS, 0, "set"};
    gemm_split_cost_set(&cheap);
    Geo g = {
        .N = 4, .C = 3, .Hp = 34, .Wp = 34, .kh = 3, .kw = 3, .s0 = 1, .s1 = 1, .d0 = 1, .d1 = 1};
    g.Ho = g.Hp - 2;
    g.Wo = g.Wp - 2;
    cr_expect(check_geo(&g, 8) == 0);
    gemm_split_cost_set(NULL);
    expect_explained("8x27x4096 tB on 3: split over K");
}

/* A gathered op(B) with fewer panels than threads and a deep K (conv1's
 * weight gradient: 9 taps, K = N*Ho*Wo) goes over K even where the
 * materialized matrix goes over M (gemm_split.c: over M every part would
 * gather all of op(B)). Its result is then that of the two halves of K
 * summed in order: each half on one thread, part 0 into C, part 1 into a
 * scratch added after, bit for bit; and within the tolerance of a
 * double-precision sum. */
Test(gemm_gather, gathered_over_k_where_rows_would_repack, .timeout = 60) {
    GemmSplitCost cheap = {GEMM_DEF_MADD_NS, 0, "set"};
    gemm_split_cost_set(&cheap);
    Geo g = {
        .N = 4, .C = 1, .Hp = 18, .Wp = 18, .kh = 3, .kw = 3, .s0 = 1, .s1 = 1, .d0 = 1, .d1 = 1};
    g.Ho = g.Hp - 2;
    g.Wo = g.Wp - 2;
    const int64_t M = 16, N = 9, K = g.N * g.Ho * g.Wo, half = 512; /* K = 1024 */
    int64_t nx = g.N * g.C * g.Hp * g.Wp;
    float *x = malloc((size_t)nx * sizeof(float)), *col = malloc((size_t)(N * K) * sizeof(float));
    float *A = malloc((size_t)(M * K) * sizeof(float)),
          *C = malloc((size_t)(M * N) * sizeof(float));
    float *W = malloc((size_t)(M * N) * sizeof(float)),
          *S = malloc((size_t)(M * N) * sizeof(float));
    for (int64_t i = 0; i < nx; i++) x[i] = frand();
    for (int64_t i = 0; i < M * K; i++) A[i] = frand();
    im2col(&g, x, col); /* col [N taps, K positions]: op(B) = col^T */
    TtGemmGather b = gather(&g, x, false);
    tt_gemm_run_gather(G, M, N, K, A, K, false, &b, C, N, false, 2, NULL);
    tt_gemm_run(G, M, N, half, A, K, false, col, K, true, W, N, false, 1, NULL);
    tt_gemm_run(G, M, N, K - half, A + half, K, false, col + half, K, true, S, N, false, 1, NULL);
    int bad = 0, far = 0;
    for (int64_t i = 0; i < M * N; i++) {
        W[i] += S[i];
        if (memcmp(&W[i], &C[i], sizeof *C) != 0) bad++;
        double want = 0, mag = 0;
        for (int64_t p = 0; p < K; p++) {
            double v = (double)A[(i / N) * K + p] * col[(i % N) * K + p];
            want += v;
            mag += fabs(v);
        }
        if (fabs(C[i] - want) > 1e-5 * sqrt((double)K + 1) * (mag + 1)) far++;
    }
    cr_expect(bad == 0, "%d of %lld differ from the two halves summed", bad, (long long)(M * N));
    cr_expect(far == 0, "%d outside the tolerance", far);
    gemm_split_cost_set(NULL);
    expect_explained("16x9x1024 tB on 2: split over K (2 parts)");
    free(x);
    free(col);
    free(A);
    free(C);
    free(W);
    free(S);
}

/* The forward with C stored as a convolution's [N, O, P] (TtGemmOut: run n
 * of cols = P columns at n * stride, rows ldc apart) against tt_gemm_run on
 * the materialized matrix copied into that layout: bit-identical, on 1-3
 * threads, with and without accumulate, including the tiles that cross from
 * one image to the next (P not a multiple of the tile) and the elements
 * between the runs left untouched. Returns the number of mismatches. */
static int check_mapped(const Geo *g, int64_t M, int64_t ldc_pad, int64_t stride_pad,
                        bool ref_gathered) {
    int64_t K = g->C * g->kh * g->kw, P = g->Ho * g->Wo, NP = g->N * P;
    int64_t ldc = P + ldc_pad, stride = M * ldc + stride_pad, nout = g->N * stride;
    int64_t nx = g->N * g->C * g->Hp * g->Wp;
    float *x = malloc((size_t)nx * sizeof(float)), *col = malloc((size_t)(K * NP) * sizeof(float));
    float *A = malloc((size_t)(M * K) * sizeof(float)),
          *C1 = malloc((size_t)(M * NP) * sizeof(float));
    float *W = malloc((size_t)nout * sizeof(float)), *C2 = malloc((size_t)nout * sizeof(float));
    for (int64_t i = 0; i < nx; i++) x[i] = frand();
    for (int64_t i = 0; i < M * K; i++) A[i] = frand();
    im2col(g, x, col);
    TtGemmGather b = gather(g, x, true);
    TtGemmOut om = {P, stride};
    int bad = 0;
    for (int t = 1; t <= 3 && !bad; t++)
        for (int acc = 0; acc < 2 && !bad; acc++) {
            for (int64_t i = 0; i < M * NP; i++) C1[i] = (float)(i % 7) - 3;
            for (int64_t i = 0; i < nout; i++) W[i] = C2[i] = -1000.0f - (float)(i % 5);
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < NP; j++)
                    C2[(j / P) * stride + i * ldc + j % P] = C1[i * NP + j];
            if (ref_gathered)
                tt_gemm_run_gather(G, M, NP, K, A, K, false, &b, C1, NP, acc, t, NULL);
            else
                tt_gemm_run(G, M, NP, K, A, K, false, col, NP, false, C1, NP, acc, t, NULL);
            tt_gemm_run_gather_out(G, M, NP, K, A, K, false, &b, C2, ldc, &om, acc, t, NULL);
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < NP; j++)
                    W[(j / P) * stride + i * ldc + j % P] = C1[i * NP + j];
            for (int64_t i = 0; i < nout; i++) bad += memcmp(&W[i], &C2[i], sizeof *W) != 0;
            if (bad)
                cr_log_error("N%lld C%lld %lldx%lld k%lldx%lld s%lld,%lld M%lld ldc %lld stride "
                             "%lld threads %d acc %d: %d mismatches",
                             (long long)g->N, (long long)g->C, (long long)g->Hp, (long long)g->Wp,
                             (long long)g->kh, (long long)g->kw, (long long)g->s0, (long long)g->s1,
                             (long long)M, (long long)ldc, (long long)stride, t, acc, bad);
        }
    free(x);
    free(col);
    free(A);
    free(C1);
    free(W);
    free(C2);
    return bad;
}

Test(gemm_gather, mapped_output_random_small_bit_identical) {
    int bad = 0;
    for (int v = 0; v < 60 && !bad; v++) {
        Geo g = random_geo(5, 4);
        bad += check_mapped(&g, irand(1, 40), irand(0, 3), irand(0, 5), false);
    }
    cr_expect(bad == 0, "%d mismatches (see the log)", bad);
}

/* Several column blocks (N*P > 4080) split over N and over M on threads,
 * a P of 196 (fashion conv2: the 16- and 32-wide tiles cross images), and
 * a split over K (a deep K, few tiles, threads made cheap): part 0 stores
 * in the mapped layout and the others' sums are added there. */
Test(gemm_gather, mapped_output_blocks_threads_and_k_split, .timeout = 60) {
    Geo g = {
        .N = 24, .C = 3, .Hp = 16, .Wp = 16, .kh = 3, .kw = 3, .s0 = 1, .s1 = 1, .d0 = 1, .d1 = 1};
    g.Ho = g.Hp - 2;
    g.Wo = g.Wp - 2;
    cr_expect(check_mapped(&g, 32, 0, 0, false) == 0);
    cr_expect(check_mapped(&g, 150, 0, 7, false) == 0);
    GemmSplitCost cheap = {GEMM_DEF_MADD_NS, 0, "set"};
    gemm_split_cost_set(&cheap);
    Geo k = {
        .N = 2, .C = 64, .Hp = 5, .Wp = 5, .kh = 3, .kw = 3, .s0 = 1, .s1 = 1, .d0 = 1, .d1 = 1};
    k.Ho = k.Wo = 3;
    /* the reference: the gathered product into a plain C, split over K
     * alike (tt_gemm_run splits a 4-row product otherwise), then copied */
    cr_expect(check_mapped(&k, 4, 1, 3, true) == 0);
    gemm_split_cost_set(NULL);
    expect_explained("4x18x576 tB on 3: split over K");
}

/* Products of 1-4 rows with a forward's columns (output rows of at least
 * 8 positions, stride 1) are computed from x without packing (gemm_driver.c,
 * gather_small_m): a grouped or depthwise convolution's. The same bits as
 * the packed path: one K block and several (K = 32*9 > 256), runs of 8-20
 * positions (masked ends), 1-3 threads (split over N, and over K), plain
 * and mapped C. */
Test(gemm_gather, few_rows_from_x_bit_identical, .timeout = 60) {
    int bad = 0;
    for (int v = 0; v < 24 && !bad; v++) {
        Geo g = {.N = irand(1, 3),
                 .C = v % 3 == 0 ? 32 : irand(1, 4),
                 .kh = 3,
                 .kw = 3,
                 .s0 = irand(1, 2),
                 .s1 = 1,
                 .d0 = irand(1, 2),
                 .d1 = irand(1, 2)};
        g.Hp = (g.kh - 1) * g.d0 + 1 + irand(0, 8);
        g.Wp = (g.kw - 1) * g.d1 + irand(8, 20);
        g.Ho = (g.Hp - (g.kh - 1) * g.d0 - 1) / g.s0 + 1;
        g.Wo = g.Wp - (g.kw - 1) * g.d1;
        int64_t M = 1 + v % 4;
        bad += check_geo(&g, M);
        if (!bad) bad += check_mapped(&g, M, irand(0, 2), irand(0, 3), false);
    }
    cr_expect(bad == 0, "%d mismatches (see the log)", bad);
    GemmSplitCost cheap = {GEMM_DEF_MADD_NS, 0, "set"};
    gemm_split_cost_set(&cheap);
    Geo k = {
        .N = 1, .C = 64, .Hp = 3, .Wp = 12, .kh = 3, .kw = 3, .s0 = 1, .s1 = 1, .d0 = 1, .d1 = 1};
    k.Ho = 1;
    k.Wo = 10;
    cr_expect(check_mapped(&k, 3, 0, 0, true) == 0); /* split over K: part 1 from p0 = 256 */
    gemm_split_cost_set(NULL);
}
