/* qgemm_driver.c - the int8 GEMM's blocking, packing and threads (plain C)
 * around the JIT's micro-kernels (qgemm_jit.c), and the scalar path.
 *
 * BLIS order, like the f32 GEMM: for each NC block of columns, for each KC
 * block of k: pack B (panels of nr columns, one 32-bit word per `group` k
 * steps, and per column the block's offset correction), then for each MC
 * block of rows: pack A (panels of mr rows), then the micro-kernel over the
 * tiles. The first KC block sets C, later ones add to it: every sum is
 * modulo 2^32, so the result is the reference's whatever the blocking.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgemm_internal.h"

#define KC 512  /* k steps per block (a multiple of 4) */
#define MC 96   /* rows per block of A (a multiple of 12 and 6) */
#define NC 1024 /* columns per block of B (a multiple of 32 and 16) */

struct TtQgemm {
    QgemmKernels k;
    QgemmJit *jit;
    bool shared;
    int refs;
    /* packing buffers of the calling thread, when free (trylock) */
    pthread_mutex_t buf_lock;
    int32_t *buf;
    size_t buf_words;
};

/* ---- packing ------------------------------------------------------------ */

/* A[m0.., pc..] (mc x kc) -> panels of mr rows: word (g, i) of panel q at
 * dst[q*mr*kg + g*mr + i]; rows past mc are zero. vnni: bytes a + 128 (0x80
 * past kc, a = 0); avx2: i16 pairs (0 past kc). */
static void pack_a(const QgemmTile *t, int64_t mc, int64_t kc, const int8_t *a, int64_t lda,
                   int32_t *dst) {
    int mr = t->mr, gp = t->group;
    int64_t kg = (kc + gp - 1) / gp;
    for (int64_t q = 0; q * mr < mc; q++) {
        int32_t *pq = dst + q * mr * kg;
        for (int i = 0; i < mr; i++) {
            int64_t r = q * mr + i, g0 = 0;
            const int8_t *row = a + r * lda;
            if (r < mc) /* whole words; the generic loop below does the tail */
                for (int64_t full = kc / gp; g0 < full; g0++) {
                    const int8_t *x = row + g0 * gp;
                    uint32_t w;
                    if (gp == 4) {
                        memcpy(&w, x, 4);
                        w ^= 0x80808080u;
                    } else {
                        w = (uint32_t)(uint16_t)(int16_t)x[0] | (uint32_t)(uint16_t)(int16_t)x[1]
                                                                    << 16;
                    }
                    pq[g0 * mr + i] = (int32_t)w;
                }
            for (int64_t g = g0; g < kg; g++) {
                uint32_t w = 0;
                for (int s = 0; s < gp; s++) {
                    int64_t p = g * gp + s;
                    int8_t v = r < mc && p < kc ? row[p] : 0;
                    w |= gp == 4 ? (uint32_t)(uint8_t)(v ^ 0x80) << (8 * s)
                                 : (uint32_t)(uint16_t)(int16_t)v << (16 * s);
                }
                pq[g * mr + i] = (int32_t)w;
            }
        }
    }
}

/* B[pc.., jc..] (kc x nc) -> panels of nr columns: word (g, j) of panel q at
 * dst[q*nr*kg + g*nr + j], zero past nc and kc; corr[q*nr + j]: vnni
 * -128 * the column's sum (wrapping), the offset of A's u8 bytes; avx2 0. */
static void pack_b(const QgemmTile *t, int64_t kc, int64_t nc, const int8_t *b, int64_t ldb,
                   int32_t *dst, int32_t *corr) {
    int nr = t->nr, gp = t->group;
    int64_t kg = (kc + gp - 1) / gp;
    for (int64_t q = 0; q * nr < nc; q++) {
        int32_t *pq = dst + q * nr * kg;
        int64_t w = nc - q * nr < nr ? nc - q * nr : nr;
        uint32_t sum[32] = {0};
        memset(pq, 0, (size_t)(nr * kg) * sizeof *pq);
        int64_t full = kc / gp; /* whole words: gp rows at once */
        for (int64_t g = 0; g < full; g++) {
            const int8_t *r0 = b + g * gp * ldb + q * nr, *r1 = r0 + ldb;
            uint32_t *d = (uint32_t *)(pq + g * nr);
            if (gp == 4) {
                const int8_t *r2 = r1 + ldb, *r3 = r2 + ldb;
                for (int64_t j = 0; j < w; j++) {
                    d[j] = (uint32_t)(uint8_t)r0[j] | (uint32_t)(uint8_t)r1[j] << 8 |
                           (uint32_t)(uint8_t)r2[j] << 16 | (uint32_t)(uint8_t)r3[j] << 24;
                    sum[j] += (uint32_t)(r0[j] + r1[j] + r2[j] + r3[j]);
                }
            } else {
                for (int64_t j = 0; j < w; j++)
                    d[j] = (uint32_t)(uint16_t)(int16_t)r0[j] | (uint32_t)(uint16_t)(int16_t)r1[j]
                                                                    << 16;
            }
        }
        for (int64_t p = full * gp; p < kc; p++) {
            const int8_t *row = b + p * ldb + q * nr;
            int64_t g = p / gp;
            int s = (int)(p % gp);
            if (gp == 4) {
                uint8_t *d = (uint8_t *)(pq + g * nr) + s;
                for (int64_t j = 0; j < w; j++) {
                    d[4 * j] = (uint8_t)row[j];
                    sum[j] += (uint32_t)(int32_t)row[j];
                }
            } else {
                int16_t *d = (int16_t *)(pq + g * nr) + s;
                for (int64_t j = 0; j < w; j++) d[2 * j] = row[j];
            }
        }
        for (int j = 0; j < nr; j++) corr[q * nr + j] = gp == 4 ? (int32_t)(0u - 128u * sum[j]) : 0;
    }
}

/* ---- one rectangle of C on one thread ---------------------------------- */

typedef struct Rect {
    TtQgemm *q;
    const QgemmTile *t; /* the tile and its kernels: wide or narrow */
    const QgemmUkr *ukr;
    int64_t m0, m1, n0, n1, K;
    const int8_t *A, *B;
    int64_t lda, ldb, ldc;
    int32_t *C;
    int32_t *buf;              /* NULL: the rectangle allocates its own */
    const TtGemmEpilogue *epi; /* run on the rectangle's rows when done */
} Rect;

static size_t buf_need(const QgemmTile *t, int64_t M, int64_t N, int64_t K) {
    int64_t kg = ((K < KC ? K : KC) + t->group - 1) / t->group;
    int64_t mc = M < MC ? M : MC, nc = N < NC ? N : NC;
    mc = (mc + t->mr - 1) / t->mr * t->mr;
    nc = (nc + t->nr - 1) / t->nr * t->nr;
    return (size_t)(nc * kg + nc + mc * kg) + 16; /* + 16: B aligned to 64 bytes */
}

static void run_rect(Rect *r) {
    const QgemmTile *t = r->t;
    int64_t M = r->m1 - r->m0, N = r->n1 - r->n0;
    int32_t *own = NULL, *buf = r->buf;
    if (!buf) {
        size_t need = buf_need(t, M, N, r->K);
        buf = own = aligned_alloc(64, (need * 4 + 63) / 64 * 64);
        if (!own) { /* tt_qgemm_run has no error result (as tt_gemm_run) */
            fputs("tt: out of memory for the int8 matrix-multiply buffers\n", stderr);
            abort();
        }
    }
    int64_t kgmax = ((r->K < KC ? r->K : KC) + t->group - 1) / t->group;
    int64_t ncmax = ((N < NC ? N : NC) + t->nr - 1) / t->nr * t->nr;
    int32_t *bp = (int32_t *)(((uintptr_t)buf + 63) & ~(uintptr_t)63);
    int32_t *corr = bp + ncmax * kgmax, *ap = corr + ncmax;
    int32_t tmp[QGEMM_MR_MAX * 32];
    for (int64_t jc = r->n0; jc < r->n1; jc += NC) {
        int64_t nc = r->n1 - jc < NC ? r->n1 - jc : NC;
        for (int64_t pc = 0; pc < r->K; pc += KC) {
            int64_t kc = r->K - pc < KC ? r->K - pc : KC, kg = (kc + t->group - 1) / t->group;
            pack_b(t, kc, nc, r->B + pc * r->ldb + jc, r->ldb, bp, corr);
            for (int64_t ic = r->m0; ic < r->m1; ic += MC) {
                int64_t mc = r->m1 - ic < MC ? r->m1 - ic : MC;
                pack_a(t, mc, kc, r->A + ic * r->lda + pc, r->lda, ap);
                for (int64_t jr = 0; jr < nc; jr += t->nr) {
                    int64_t nrem = nc - jr < t->nr ? nc - jr : t->nr;
                    const int32_t *bq = bp + jr * kg, *cq = corr + jr;
                    for (int64_t ir = 0; ir < mc;) {
                        int mr = t->mr;
                        while (mr > mc - ir || !r->ukr[mr - 1]) mr--;
                        const int32_t *aq = ap + (ir / t->mr) * t->mr * kg + ir % t->mr;
                        int32_t *c = r->C + (ic + ir) * r->ldc + jc + jr;
                        if (nrem == t->nr) {
                            r->ukr[mr - 1](kg, aq, t->mr, bq, cq, c, r->ldc, pc > 0);
                        } else { /* right edge: the tile in tmp, then its columns */
                            r->ukr[mr - 1](kg, aq, t->mr, bq, cq, tmp, t->nr, 0);
                            for (int i = 0; i < mr; i++)
                                for (int64_t j = 0; j < nrem; j++)
                                    c[i * r->ldc + j] =
                                        pc > 0 ? (int32_t)((uint32_t)c[i * r->ldc + j] +
                                                           (uint32_t)tmp[i * t->nr + j])
                                               : tmp[i * t->nr + j];
                        }
                        ir += mr;
                    }
                }
            }
        }
    }
    free(own);
    if (r->epi) r->epi->fn(r->epi->ctx, r->m0, r->m1);
}

static void *rect_thread(void *arg) {
    run_rect(arg);
    return NULL;
}

/* ---- the scalar path ---------------------------------------------------- */

static void run_scalar(int64_t M, int64_t N, int64_t K, const int8_t *A, int64_t lda,
                       const int8_t *B, int64_t ldb, int32_t *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++) {
        uint32_t *c = (uint32_t *)(C + i * ldc);
        for (int64_t j = 0; j < N; j++) c[j] = 0;
        for (int64_t p = 0; p < K; p++) {
            int32_t a = A[i * lda + p];
            const int8_t *b = B + p * ldb;
            for (int64_t j = 0; j < N; j++) c[j] += (uint32_t)(a * (int32_t)b[j]);
        }
    }
}

/* Small M: the JIT's gemv kernels over whole vectors of columns; the
 * remaining columns (fewer than a vector) through one vector too. A vector
 * of bytes from row p at those columns reads past the row's end into the
 * next row (or B's padding): harmless, those lanes only feed output
 * columns that are dropped, since each column of C reads only its column of
 * B. So B is read in place for the rows where that vector stays inside B
 * (its last row ends at column N): all but the last ceil(w / ldb) or so.
 * Only those last rows are copied, zero-padded (at most QGEMV_PAD_MAX
 * bytes, else the scalar loop), and their sums added: a batch-1 head of 10
 * classes copied all K rows per call before. */
#define QGEMV_PAD_MAX   (1 << 16)
#define QGEMV_PAD_STACK (1 << 13)
static void run_gemv(const QgemmKernels *k, int64_t M, int64_t N, int64_t K, const int8_t *A,
                     int64_t lda, const int8_t *B, int64_t ldb, int32_t *C, int64_t ldc) {
    int64_t w = k->tile.lanes, nw = N / (w * QGEMV_NV), done = nw * w * QGEMV_NV;
    if (nw > 0) k->gemv_wide[M - 1](K, A, lda, B, ldb, C, ldc, nw);
    int64_t nb = (N - done) / w;
    if (nb > 0) k->gemv[M - 1](K, A, lda, B + done, ldb, C + done, ldc, nb);
    done += nb * w;
    if (done == N) return;
    int64_t rest = N - done;
    /* rows p < inplace: p * ldb + done + w <= (K - 1) * ldb + N */
    int64_t room = (K - 1) * ldb + N - done - w;
    int64_t inplace = room < 0 ? 0 : room / ldb + 1 < K ? room / ldb + 1 : K;
    int64_t tail = K - inplace;
    int8_t small[QGEMV_PAD_STACK];
    int8_t *pb = tail * w <= QGEMV_PAD_STACK ? small
                 : tail * w <= QGEMV_PAD_MAX ? malloc((size_t)(tail * w))
                                             : NULL;
    if (!pb) {
        run_scalar(M, rest, K, A, lda, B + done, ldb, C + done, ldc);
        return;
    }
    int32_t pc[QGEMM_GEMV_MR * 16], pt[QGEMM_GEMV_MR * 16];
    if (inplace > 0) k->gemv[M - 1](inplace, A, lda, B + done, ldb, pc, w, 1);
    if (tail > 0) {
        for (int64_t p = 0; p < tail; p++) {
            memcpy(pb + p * w, B + (inplace + p) * ldb + done, (size_t)rest);
            memset(pb + p * w + rest, 0, (size_t)(w - rest));
        }
        k->gemv[M - 1](tail, A + inplace, lda, pb, w, pt, w, 1);
    }
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < rest; j++) {
            uint32_t s = inplace > 0 ? (uint32_t)pc[i * w + j] : 0;
            if (tail > 0) s += (uint32_t)pt[i * w + j];
            C[i * ldc + done + j] = (int32_t)s;
        }
    if (pb != small) free(pb);
}

/* ---- the API ------------------------------------------------------------ */

static const char *const PATH_NAME[] = {"host", "scalar", "avx2", "vnni"};

const char *tt_qgemm_path(const TtQgemm *q) {
    return PATH_NAME[q->k.tile.path];
}

/* The best path the host runs, or TT_QGEMM's where the host runs that. */
static TtQgemmPath host_path(void) {
    const char *env = getenv("TT_QGEMM");
    for (int p = TT_QGEMM_SCALAR; env && p <= TT_QGEMM_VNNI; p++)
        if (!strcmp(env, PATH_NAME[p]) && qgemm_host_has((TtQgemmPath)p)) return (TtQgemmPath)p;
    return qgemm_host_has(TT_QGEMM_VNNI)   ? TT_QGEMM_VNNI
           : qgemm_host_has(TT_QGEMM_AVX2) ? TT_QGEMM_AVX2
                                           : TT_QGEMM_SCALAR;
}

TtQgemm *tt_qgemm_new_path(TtQgemmPath path, char *err, size_t errlen) {
    if (path == TT_QGEMM_HOST) path = host_path();
    if (!qgemm_host_has(path)) {
        snprintf(err, errlen, "qgemm: this CPU has no %s", PATH_NAME[path]);
        return NULL;
    }
    TtQgemm *q = calloc(1, sizeof *q);
    if (!q) {
        snprintf(err, errlen, "qgemm: out of memory");
        return NULL;
    }
    q->refs = 1;
    pthread_mutex_init(&q->buf_lock, NULL);
    if (path == TT_QGEMM_SCALAR) {
        q->k.tile.path = TT_QGEMM_SCALAR;
        return q;
    }
    q->jit = qgemm_jit_build(&q->k, path, err, errlen);
    if (!q->jit) {
        pthread_mutex_destroy(&q->buf_lock);
        free(q);
        return NULL;
    }
    return q;
}

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static TtQgemm *shared_q;

TtQgemm *tt_qgemm_new(char *err, size_t errlen) {
    pthread_mutex_lock(&shared_lock);
    if (shared_q) {
        shared_q->refs++;
    } else {
        shared_q = tt_qgemm_new_path(TT_QGEMM_HOST, err, errlen);
        if (shared_q) shared_q->shared = true;
    }
    TtQgemm *q = shared_q;
    pthread_mutex_unlock(&shared_lock);
    return q;
}

void tt_qgemm_free(TtQgemm *q) {
    if (!q) return;
    if (q->shared) {
        pthread_mutex_lock(&shared_lock);
        bool last = --q->refs == 0;
        if (last) shared_q = NULL;
        pthread_mutex_unlock(&shared_lock);
        if (!last) return;
    }
    qgemm_jit_free(q->jit);
    pthread_mutex_destroy(&q->buf_lock);
    free(q->buf);
    free(q);
}

/* Products below this many multiply-adds run on one thread: a thread is
 * started per call (tens of microseconds), worth it past ~0.1 ms of work. */
#define QGEMM_PARALLEL_MACS (1 << 23)
#define QGEMM_THREADS_MAX   16

static void products(TtQgemm *q, int64_t M, int64_t N, int64_t K, const int8_t *A, int64_t lda,
                     const int8_t *B, int64_t ldb, int32_t *C, int64_t ldc, int nthreads,
                     const TtGemmEpilogue *epi);

void tt_qgemm_run(TtQgemm *q, int64_t M, int64_t N, int64_t K, const int8_t *A, int64_t lda,
                  const int8_t *B, int64_t ldb, int32_t *C, int64_t ldc, int nthreads,
                  const TtGemmEpilogue *epi) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0)
        for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof *C);
    else if (q->k.tile.path == TT_QGEMM_SCALAR)
        run_scalar(M, N, K, A, lda, B, ldb, C, ldc);
    else if (M <= QGEMM_GEMV_MR)
        run_gemv(&q->k, M, N, K, A, lda, B, ldb, C, ldc);
    else {
        products(q, M, N, K, A, lda, B, ldb, C, ldc, nthreads, epi);
        return;
    }
    if (epi) epi->fn(epi->ctx, 0, M);
}

/* The JIT paths: a rectangle of C per thread (whole panels of columns, or
 * of rows when there are too few columns); a row split runs the epilogue
 * on each thread's rows, a column split once all are done. */
static void products(TtQgemm *q, int64_t M, int64_t N, int64_t K, const int8_t *A, int64_t lda,
                     const int8_t *B, int64_t ldb, int32_t *C, int64_t ldc, int nthreads,
                     const TtGemmEpilogue *epi) {
    bool narrow = N <= q->k.narrow.nr && q->k.narrow.nr < q->k.tile.nr;
    const QgemmTile *t = narrow ? &q->k.narrow : &q->k.tile;
    Rect whole = {
        q,    t,   narrow ? q->k.ukr_narrow : q->k.ukr, 0, M, 0, N, K, A, B, lda, ldb, ldc, C,
        NULL, NULL};
    int nt = nthreads < 1 ? 1 : nthreads > QGEMM_THREADS_MAX ? QGEMM_THREADS_MAX : nthreads;
    if ((double)M * (double)N * (double)K < QGEMM_PARALLEL_MACS) nt = 1;
    /* split the columns in whole panels where there are enough, else rows */
    bool by_cols = N >= (int64_t)nt * t->nr * 2;
    int64_t units = by_cols ? (N + t->nr - 1) / t->nr : (M + t->mr - 1) / t->mr;
    if (units < nt) nt = (int)units;
    if (!by_cols || nt == 1) whole.epi = epi;
    Rect part[QGEMM_THREADS_MAX];
    pthread_t th[QGEMM_THREADS_MAX];
    bool started[QGEMM_THREADS_MAX] = {false};
    for (int i = 0; i < nt; i++) {
        part[i] = whole;
        int64_t u0 = units * i / nt, u1 = units * (i + 1) / nt;
        int64_t step = by_cols ? t->nr : t->mr, lim = by_cols ? N : M;
        int64_t lo = u0 * step, hi = u1 * step < lim ? u1 * step : lim;
        if (by_cols)
            part[i].n0 = lo, part[i].n1 = hi;
        else
            part[i].m0 = lo, part[i].m1 = hi;
        if (i > 0) started[i] = pthread_create(&th[i], NULL, rect_thread, &part[i]) == 0;
    }
    /* part 0 (and any part whose thread did not start) here, with the
     * instance's buffers when no other caller holds them */
    bool own = pthread_mutex_trylock(&q->buf_lock) == 0;
    if (own) {
        size_t need = buf_need(t, part[0].m1 - part[0].m0, part[0].n1 - part[0].n0, K);
        if (need > q->buf_words) {
            free(q->buf);
            q->buf = aligned_alloc(64, (need * 4 + 63) / 64 * 64);
            q->buf_words = q->buf ? need : 0;
        }
        part[0].buf = q->buf;
    }
    run_rect(&part[0]);
    if (own) pthread_mutex_unlock(&q->buf_lock);
    for (int i = 1; i < nt; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        else
            run_rect(&part[i]);
    }
    if (epi && !whole.epi) epi->fn(epi->ctx, 0, M);
}
