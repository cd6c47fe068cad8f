/* test_qgemm.c - the int8 GEMM (compiler/gemm/qgemm.h) against the reference
 * kernel's definition (a wrapping i32 sum of int8 products), tol 0, on every
 * path the host runs: vnni, avx2 and scalar (a path the CPU lacks is
 * skipped; TT_QGEMM picks the shared instance's, see qgemm.h). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qgemm.h"
#include "xorshift.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t next(void) {
    return (uint32_t)(tu_xorshift(&rng) >> 32);
}

/* extremes half the time: -128 and 127 stress the offset trick and the
 * i16 pairs */
static int8_t rand_i8(int mode) {
    uint32_t r = next();
    if (mode == 1) return (r & 1) ? -128 : 127;
    if (mode == 2) return -128;
    if ((r & 3) == 0) return (r & 4) ? -128 : 127;
    return (int8_t)(r >> 8);
}

static void reference(int64_t M, int64_t N, int64_t K, const int8_t *A, int64_t lda,
                      const int8_t *B, int64_t ldb, int32_t *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            uint32_t acc = 0;
            for (int64_t p = 0; p < K; p++)
                acc += (uint32_t)((int32_t)A[i * lda + p] * (int32_t)B[p * ldb + j]);
            C[i * ldc + j] = (int32_t)acc;
        }
}

/* Runs one product on q and compares every entry and the padding around
 * it (untouched). Returns the number of wrong cells. */
static int check(TtQgemm *q, int64_t M, int64_t N, int64_t K, int64_t pad, int mode, int threads) {
    int64_t lda = K + pad, ldb = N + pad, ldc = N + pad;
    size_t na = (size_t)(M * lda) + 1, nb = (size_t)(K * ldb) + 1, nc = (size_t)(M * ldc) + 1;
    int8_t *A = malloc(na), *B = malloc(nb);
    int32_t *C = malloc(nc * 4), *R = malloc(nc * 4);
    for (size_t i = 0; i < na; i++) A[i] = rand_i8(mode);
    for (size_t i = 0; i < nb; i++) B[i] = rand_i8(mode);
    for (size_t i = 0; i < nc; i++) C[i] = R[i] = (int32_t)next();
    /* +1: unaligned A and B */
    reference(M, N, K, A + 1, lda, B + 1, ldb, R, ldc);
    tt_qgemm_run(q, M, N, K, A + 1, lda, B + 1, ldb, C, ldc, threads, NULL);
    int bad = 0;
    for (size_t i = 0; i < nc; i++)
        if (C[i] != R[i] && bad++ < 3)
            cr_log_error("%s %lldx%lldx%lld: cell %zu: %d, want %d", tt_qgemm_path(q), (long long)M,
                         (long long)N, (long long)K, i, C[i], R[i]);
    free(A), free(B), free(C), free(R);
    return bad;
}

static TtQgemm *path(TtQgemmPath p) {
    char err[256] = "";
    TtQgemm *q = tt_qgemm_new_path(p, err, sizeof err);
    if (!q) cr_log_info("skipped: %s", err);
    return q;
}

static const TtQgemmPath PATHS[] = {TT_QGEMM_VNNI, TT_QGEMM_AVX2, TT_QGEMM_SCALAR};

/* 3x3 by hand: rows of A times columns of B */
Test(qgemm_, hand_computed) {
    const int8_t A[6] = {1, -2, 3, -128, 127, 0};         /* 2 x 3 */
    const int8_t B[6] = {4, -128, 5, 127, -6, 1};         /* 3 x 2 */
    const int32_t want[4] = {1 * 4 + -2 * 5 + 3 * -6,     /* -24 */
                             1 * -128 + -2 * 127 + 3 * 1, /* -379 */
                             -128 * 4 + 127 * 5,          /* 123 */
                             -128 * -128 + 127 * 127};    /* 32513 */
    for (size_t i = 0; i < sizeof PATHS / sizeof *PATHS; i++) {
        TtQgemm *q = path(PATHS[i]);
        if (!q) continue;
        int32_t C[4] = {0};
        tt_qgemm_run(q, 2, 2, 3, A, 3, B, 2, C, 2, 1, NULL);
        for (int e = 0; e < 4; e++)
            cr_expect_eq(C[e], want[e], "%s: C[%d] = %d, want %d", tt_qgemm_path(q), e, C[e],
                         want[e]);
        tt_qgemm_free(q);
    }
}

/* odd shapes, k not a multiple of 4, several KC/MC/NC blocks, small M (the
 * gemv kernels: wide blocks, single vectors, scalar columns), 1..3 threads */
Test(qgemm_, random_shapes) {
    const int64_t shapes[][3] = {
        {1, 1, 1},   {1, 1, 5},       {2, 3, 1},     {13, 33, 7},   {12, 32, 4},  {11, 31, 513},
        {25, 17, 3}, {97, 65, 130},   {1, 128, 784}, {64, 10, 128}, {7, 1, 1029}, {100, 1030, 9},
        {6, 16, 2},  {130, 70, 1100}, {3, 100, 37},  {4, 45, 9},    {2, 200, 600}};
    for (size_t i = 0; i < sizeof PATHS / sizeof *PATHS; i++) {
        TtQgemm *q = path(PATHS[i]);
        if (!q) continue;
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (int t = 1; t <= 3; t += 2)
                cr_expect_eq(
                    check(q, shapes[s][0], shapes[s][1], shapes[s][2], (int64_t)s % 3, 0, t), 0);
        tt_qgemm_free(q);
    }
}

/* n bytes that end where an inaccessible page starts: a read past the end
 * faults in any build (the JIT's kernels are not instrumented by the
 * sanitizers). Freed with guarded_free(p, n). */
static int8_t *guarded_alloc(size_t n) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), span = (n + pg - 1) / pg * pg + pg;
    uint8_t *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(m != MAP_FAILED);
    cr_assert(mprotect(m + span - pg, pg, PROT_NONE) == 0);
    return (int8_t *)(m + span - pg - n);
}

static void guarded_free(int8_t *p, size_t n) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), span = (n + pg - 1) / pg * pg + pg;
    munmap((uint8_t *)p + n + pg - span, span);
}

/* Small M (the gemv kernels) with columns that are not a whole vector:
 * B's rows are read in place, a vector past the row's end, except the last
 * rows. B ends where an inaccessible page starts, so a read past its end
 * faults; every entry exact, C's padding (ldc) untouched. Extremes (-128,
 * 127) and K not a multiple of 4 included. */
Test(qgemm_, small_m_ragged_columns_in_place) {
    const int64_t ns[] = {1, 2, 3, 7, 10, 15, 17, 31, 70, 100};
    const int64_t ks[] = {1, 2, 3, 5, 63, 64, 129};
    for (size_t i = 0; i < sizeof PATHS / sizeof *PATHS; i++) {
        TtQgemm *q = path(PATHS[i]);
        if (!q) continue;
        int bad = 0;
        for (int64_t M = 1; M <= 4; M++)
            for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
                for (size_t b = 0; b < sizeof ks / sizeof *ks; b++)
                    for (int64_t pad = 0; pad <= 3; pad += 3) {
                        int64_t N = ns[a], K = ks[b], ldb = N + pad, ldc = N + 1;
                        int mode = (int)((a + b) % 3);
                        size_t nb = (size_t)((K - 1) * ldb + N);
                        int8_t *A = malloc((size_t)(M * K)), *B = guarded_alloc(nb);
                        int32_t *C = malloc((size_t)(M * ldc) * 4),
                                *R = malloc((size_t)(M * ldc) * 4);
                        for (int64_t e = 0; e < M * K; e++) A[e] = rand_i8(mode);
                        for (size_t e = 0; e < nb; e++) B[e] = rand_i8(mode);
                        for (int64_t e = 0; e < M * ldc; e++) C[e] = R[e] = (int32_t)next();
                        reference(M, N, K, A, K, B, ldb, R, ldc);
                        tt_qgemm_run(q, M, N, K, A, K, B, ldb, C, ldc, 1, NULL);
                        for (int64_t e = 0; e < M * ldc; e++)
                            if (C[e] != R[e] && bad++ < 3)
                                cr_log_error("%s %lldx%lldx%lld ldb %lld: cell %lld: %d, want %d",
                                             tt_qgemm_path(q), (long long)M, (long long)N,
                                             (long long)K, (long long)ldb, (long long)e, C[e],
                                             R[e]);
                        guarded_free(B, nb);
                        free(A), free(C), free(R);
                    }
        cr_expect_eq(bad, 0);
        tt_qgemm_free(q);
    }
}

/* all -128 / +-127: every sum at the extremes; k = 131073 takes
 * k * 128 * 128 past 2^31, where the i32 sum wraps like the reference's */
Test(qgemm_, extremes_and_wrap) {
    for (size_t i = 0; i < sizeof PATHS / sizeof *PATHS; i++) {
        TtQgemm *q = path(PATHS[i]);
        if (!q) continue;
        cr_expect_eq(check(q, 5, 35, 1027, 1, 1, 1), 0);
        cr_expect_eq(check(q, 13, 33, 517, 0, 2, 2), 0);
        cr_expect_eq(check(q, 2, 3, 131073, 0, 2, 1), 0);
        tt_qgemm_free(q);
    }
}

/* big enough (2^23 multiply-adds) for the thread split by columns and by
 * rows */
Test(qgemm_, threads) {
    TtQgemm *q = path(TT_QGEMM_HOST);
    cr_assert(q);
    cr_expect_eq(check(q, 300, 300, 100, 0, 0, 2), 0);
    cr_expect_eq(check(q, 400, 40, 600, 0, 0, 3), 0);
    tt_qgemm_free(q);
}

/* the shared instance is one per process and counts its references */
Test(qgemm_, shared_instance) {
    char err[256];
    TtQgemm *a = tt_qgemm_new(err, sizeof err), *b = tt_qgemm_new(err, sizeof err);
    cr_assert(a && a == b, "%s", err);
    tt_qgemm_free(a);
    cr_expect_eq(check(b, 9, 9, 9, 0, 0, 1), 0);
    tt_qgemm_free(b);
}

/* the epilogue sees every row exactly once, after the row is final */
typedef struct Seen {
    int32_t *C, *R;
    int64_t N;
    _Atomic int rows[500];
    _Atomic int wrong;
} Seen;

static void epi_fn(void *ctx, int64_t r0, int64_t r1) {
    Seen *s = ctx;
    for (int64_t i = r0; i < r1; i++) {
        s->rows[i]++;
        if (memcmp(s->C + i * s->N, s->R + i * s->N, (size_t)s->N * 4)) s->wrong++;
    }
}

Test(qgemm_, epilogue) {
    TtQgemm *q = path(TT_QGEMM_HOST);
    cr_assert(q);
    const int64_t shapes[][3] = {{400, 200, 120}, {500, 40, 500}, {5, 7, 3}, {9, 9, 0}};
    for (size_t s = 0; s < 4; s++)
        for (int t = 1; t <= 2; t++) {
            int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            int8_t *A = malloc((size_t)(M * K) + 1), *B = malloc((size_t)(K * N) + 1);
            Seen *sn = calloc(1, sizeof *sn);
            sn->C = malloc((size_t)(M * N) * 4);
            sn->R = malloc((size_t)(M * N) * 4);
            sn->N = N;
            for (int64_t i = 0; i < M * K; i++) A[i] = rand_i8(0);
            for (int64_t i = 0; i < K * N; i++) B[i] = rand_i8(0);
            reference(M, N, K, A, K, B, N, sn->R, N);
            TtGemmEpilogue e = {epi_fn, sn};
            tt_qgemm_run(q, M, N, K, A, K, B, N, sn->C, N, t, &e);
            for (int64_t i = 0; i < M; i++) cr_expect_eq(sn->rows[i], 1, "row %lld", (long long)i);
            cr_expect_eq(sn->wrong, 0);
            free(A), free(B), free(sn->C), free(sn->R), free(sn);
        }
    tt_qgemm_free(q);
}
