/* gemm_driver.c - blocking loops, A copies and the thread split around
 * the JIT-generated kernels (gemm_jit.c); the threads are the process's
 * pool (compiler/jit/parallel.h), shared with the JIT's parallel loops.
 *
 * Loop order (BLIS): jc over N by NC, pc over K by KC (pack op(B) block into
 * panels as wide as the micro-tile), ic over M by MC, jr over the panels, ir
 * over the micro-tile's rows (6 x 16 or 12 x 32, gemm_internal.h).
 * Block sizes are balanced (k_block).
 * A is read in place (broadcasts straight from memory) unless its leading
 * dimension is a multiple of 4 KiB, where the rows of a block would fight
 * for the same cache sets; then the MC x KC block is first copied into a
 * buffer with a padded stride.
 *
 * Threads (gemm_split.c chooses): the product is split over N (in panels)
 * or M (in micro-tile rows), whichever balances better, and each thread
 * packs its own B; a tall product whose op(B) is a single block is split
 * over M, and the caller packs B once for all the threads. A product with
 * too few tiles for the threads and a deep K is split over K into partial
 * products summed by the caller in a fixed order. Whether threads pay is
 * the cost model's: the host's multiply-add and pool wake + join, measured
 * here on the first threaded product (measure_cost).
 *
 * A gathered op(B) (implicit im2col, gemm.h's TtGemmGather) is packed by
 * pack_gather, or, with 1-4 rows and a forward's columns, not packed at all
 * (gather_small_m); its C may be a convolution's [N, O, P] (TtGemmOut,
 * CDst). Either way the bits are the packed product's.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__SSE2__)
#include <xmmintrin.h>
#endif
/* pack_gather's 8-float moves, compiled for AVX2 and chosen at run time */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GATHER_AVX2 1
#else
#define GATHER_AVX2 0
#endif

#include "gemm.h"
#include "gemm_internal.h"
#include "parallel.h"

/* KC is every schedule's depth (gemm_tune.c: it fixes the summation
 * order); MC and NC are the largest blocks a schedule may ask for (they
 * size the per-thread buffers). */
#define KC                256
#define MC                144
#define NC                4080
#define MAXT              GEMM_MAXT
#define CHUNKS_PER_THREAD 4
#define CHUNK_MIN         512
/* a narrow product's (gemm_narrow) blocks of rows of C */
#define NARROW_MC 512

/* ---- per-thread buffers ------------------------------------------------ */

typedef struct Bufs {
    float *bp;    /* packed B: (NC rounded up to a tile) x KC */
    float *ap;    /* copied A block: (MC + 8) x (KC + 8) */
    int64_t *off; /* a gathered B's row and column offsets: KC + NC + GEMM_NR_MAX */
    float *ct;    /* a narrow product's transposed C: GEMM_NARROW_N x NARROW_MC */
} Bufs;

static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;

static void buf_free(void *p) {
    Bufs *b = p;
    free(b->bp);
    free(b->ap);
    free(b->off);
    free(b->ct);
    free(b);
}

static void buf_key_init(void) {
    pthread_key_create(&buf_key, buf_free);
}

/* This thread's buffers, allocated on first use; NULL when out of memory
 * (nothing is kept then, a later call tries again). */
static Bufs *try_thread_bufs(void) {
    Bufs *b = pthread_getspecific(buf_key);
    if (b) return b;
    b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->bp = aligned_alloc(64, (size_t)(NC + GEMM_NR_MAX) * KC * sizeof(float));
    b->ap = aligned_alloc(64, (size_t)(MC + 8) * (KC + 8) * sizeof(float));
    b->off = malloc((size_t)(KC + NC + GEMM_NR_MAX) * sizeof(int64_t));
    b->ct = aligned_alloc(64, (size_t)GEMM_NARROW_N * NARROW_MC * sizeof(float));
    if (!b->bp || !b->ap || !b->off || !b->ct || pthread_setspecific(buf_key, b) != 0) {
        buf_free(b);
        return NULL;
    }
    return b;
}

/* The creating thread's buffers are allocated by tt_gemm_new, which reports
 * failure; tt_gemm_run has no error result, so a worker or another caller
 * thread that cannot get its ~4 MB stops here rather than writing through
 * NULL. */
static Bufs *thread_bufs(void) {
    Bufs *b = try_thread_bufs();
    if (!b) {
        fputs("tt: out of memory for the matrix-multiply buffers\n", stderr);
        abort();
    }
    return b;
}

/* The kernels and blocking one product runs with (a TtGemmSchedule with
 * its tile's kernels resolved). */
typedef struct Sched {
    struct TtGemm *g;
    const GemmKernels *k;
    int64_t mc, nc;
    const GemmKernels *kt; /* the kernels of a narrow product's transpose */
} Sched;

static void need(struct TtGemm *g, int f);

/* ---- the pool ---------------------------------------------------------- */

/* A multi-threaded product is cut into chunks (column or row ranges), more
 * than there are threads, handed to ttrt_pool_run: the caller and the
 * workers claim them in turn, so a worker that is descheduled on a busy
 * machine delays nobody: the others take its share. */
#define MAXCHUNK 256

typedef struct Part {
    int64_t M, N, K, row0; /* row0: the part's first row of C (for the epilogue) */
    bool epi_only;         /* only the epilogue on rows row0..row0+M (after a split over N) */
    bool acc;              /* C += (a split over K: only the first part may) */
    int64_t p0, j0;        /* a gathered B: the part's first row (K) and column */
    const float *A, *B;
    float *C;
    int64_t ldc;
    const TtGemmOut *map; /* C's layout (NULL: rows of ldc) */
    int64_t cj0;          /* with map: the part's first column of C */
} Part;

typedef struct Job {
    int nparts;
    Part part[MAXCHUNK];
    Sched sc;
    int64_t M, lda, ldb; /* M: rows of the whole product */
    bool ta, tb;
    const TtGemmGather *gat;   /* op(B) gathered, or NULL */
    int64_t xend;              /* gat: BSrc.xend */
    const TtGemmEpilogue *epi; /* per part (split over M), or NULL */
    const float *bpre;         /* op(B) packed once for every part, or NULL */
} Job;

/* The GEMM's side of the process's pool (compiler/jit/parallel.h): the
 * job its chunks read, held by busy from the split to the last chunk. */
typedef struct Pool {
    pthread_mutex_t busy; /* one multi-threaded product at a time */
    Job job;              /* stable while any of its chunks is claimed and not done */
    struct TtGemm *g;
    /* by path (tiled, small-M) and thread count, measured on first use */
    GemmSplitCost cost[2][MAXT + 1];
} Pool;

/* The kernel families, each compiled (or linked from the object cache) on
 * its own the first time a product needs it: a decode step's products are
 * all small-M, and the tiles' micro-kernels and packers then cost nothing.
 * F_W8 is the 8-lane tile (wide and narrow alike). */
enum { F_GEMV_N = 0, F_GEMV_T = GEMM_GEMV_MR, F_W8 = 2 * GEMM_GEMV_MR, F_W16, F_N16, NFAM };
static const char *const fam_name[NFAM] = {"gemv_n1", "gemv_n2",  "gemv_n3", "gemv_n4",
                                           "gemv_t1", "gemv_t2",  "gemv_t3", "gemv_t4",
                                           "6x16/8",  "12x32/16", "12x16/16"};
_Static_assert(NFAM == TT_GEMM_FAMILIES && F_W8 == TT_GEMM_SMALL_M_FAMILIES, "gemm.h");

/* Kernel sets by tile: [0] 8 lanes, [1] 16 lanes. Their tiles are set at
 * creation, their kernel pointers when their family is built (published
 * by built[f], release/acquire: a built family is read without a lock). */
struct TtGemm {
    GemmKernels k[2];
    GemmJit *jit[NFAM];
    char *ir[NFAM];
    atomic_bool built[NFAM];
    double fam_ms[NFAM];
    pthread_mutex_t kmu; /* building a family */
    GemmTuner *tuner;
    int tlanes; /* the lanes of a narrow product's transpose (gemm_narrow) */
    int refs;
    Pool pool;
};

static int64_t cdiv(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}
static int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}

/* M <= GEMM_GEMV_MR: B is read in place instead of packed (packing would
 * copy all of B for a product that touches each element of it M times).
 * Non-transposed B: the same KC blocks as the packed path, so the results
 * are bit-identical to it. Transposed B: dot products over K; A is copied to
 * contiguous rows first when it is transposed too. */
static void gemm_small_m(const GemmKernels *k, Bufs *buf, int64_t kc, int64_t M, int64_t N,
                         int64_t K, const float *A, int64_t lda, bool ta, const float *B,
                         int64_t ldb, bool tb, float *C, int64_t ldc, bool acc) {
    if (!tb) {
        for (int64_t pc = 0; pc < K; pc += kc) {
            int64_t kcur = min64(kc, K - pc);
            const float *a = ta ? A + pc * lda : A + pc;
            k->gemv_n[M - 1](kcur, a, ta ? 1 : lda, ta ? lda : 1, B + pc * ldb, ldb, C, ldc, N,
                             (pc > 0 || acc) ? 1 : 0, 0);
        }
        return;
    }
    if (!ta) {
        k->gemv_t[M - 1](K, A, lda, B, ldb, C, ldc, N, acc ? 1 : 0);
        return;
    }
    /* both transposed: copy A(i, pc:pc+kch) rows into the A buffer */
    int64_t kch = (int64_t)(MC + 8) * (KC + 8) / GEMM_GEMV_MR;
    for (int64_t pc = 0; pc < K; pc += kch) {
        int64_t kcur = min64(kch, K - pc);
        for (int64_t p = 0; p < kcur; p++)
            for (int64_t i = 0; i < M; i++) buf->ap[i * kcur + p] = A[(pc + p) * lda + i];
        k->gemv_t[M - 1](kcur, buf->ap, kcur, B + pc, ldb, C, ldc, N, (pc > 0 || acc) ? 1 : 0);
    }
}

/* The epilogue on rows [r0, r1) of the product, numbered from row0. */
static void epilogue(const TtGemmEpilogue *epi, int64_t row0, int64_t r0, int64_t r1) {
    if (epi) epi->fn(epi->ctx, row0 + r0, row0 + r1);
}

/* The tile a product of N columns uses (a split over M keeps it). */
static const GemmTileKernels *tile_for(const GemmKernels *k, int64_t N) {
    return N <= k->narrow.tile.nr ? &k->narrow : &k->wide;
}

static int tile_fam(const GemmKernels *k, const GemmTileKernels *tk) {
    return tk->tile.lanes == 8 ? F_W8 : tk == &k->narrow ? F_N16 : F_W16;
}

/* tile_for, its family built. */
static const GemmTileKernels *tile_needed(const Sched *sc, int64_t N) {
    const GemmTileKernels *tk = tile_for(sc->k, N);
    need(sc->g, tile_fam(sc->k, tk));
    return tk;
}

/* K blocking: K = 784 gives 4 blocks of 196, not 256+256+256+16. */
static int64_t k_block(int64_t K) {
    int64_t kb = cdiv(K, KC), kc = (cdiv(K, kb) + 3) & ~(int64_t)3;
    return kc > KC ? KC : kc;
}

/* op(B) as the packed path reads it: a matrix in memory, or gathered
 * (implicit im2col, TtGemmGather) with its rows from p0 and its columns from
 * j0 on (a thread's share of them). */
typedef struct BSrc {
    const float *B;
    int64_t ldb;
    bool tb;
    const TtGemmGather *gat; /* not NULL: B, ldb and tb unused */
    int64_t p0, j0;          /* a gathered B: its first row and column (a part's share) */
    int64_t xend;            /* a gathered B: x[0, xend) is readable (gather_end) */
} BSrc;

/* C as one thread's product writes it: C(i, j) at c[i*ldc + j], or with a
 * map (TtGemmOut) column j0 + j at c[i*ldc + (j0+j)/cols * stride +
 * (j0+j)%cols] (a thread's share of columns starts at j0). */
typedef struct CDst {
    float *c;
    int64_t ldc;
    const TtGemmOut *map;
    int64_t j0;
} CDst;

/* The address of C(i, j) (j counted from d->j0). */
static float *c_at(const CDst *d, int64_t i, int64_t j) {
    if (!d->map) return d->c + i * d->ldc + j;
    j += d->j0;
    return d->c + i * d->ldc + j / d->map->cols * d->map->stride + j % d->map->cols;
}

/* out[t] = the offset of index start + t, t < n, for an index read as the
 * mixed-radix digits (u, v, w) of dim[0] x dim[1]: u*str[0] + v*str[1] +
 * w*str[2]. One division for the start, then the digits are carried. */
static void gather_offsets(const int64_t dim[2], const int64_t str[3], int64_t start, int64_t n,
                           int64_t *out) {
    int64_t w = start % dim[1], uv = start / dim[1], v = uv % dim[0], u = uv / dim[0];
    int64_t o = u * str[0] + v * str[1] + w * str[2];
    for (int64_t t = 0; t < n; t++) {
        out[t] = o;
        if (++w < dim[1]) {
            o += str[2];
            continue;
        }
        w = 0;
        if (++v == dim[0]) {
            v = 0;
            u++;
        }
        o = u * str[0] + v * str[1];
    }
}

/* A panel's columns as runs of consecutive offsets (stride 1 in x): the
 * columns of a convolution's forward with stride 1 are an output row's
 * positions, contiguous in x up to the row's end. */
typedef struct Run {
    int64_t j, len, off; /* first column in the panel, columns, offset of the first */
} Run;

static int panel_runs(const int64_t *co, int64_t n, int64_t step, Run *runs) {
    int nrun = 0;
    for (int64_t j = 0; j < n;) {
        int64_t e = j + 1;
        while (e < n && co[e] == co[e - 1] + step) e++;
        runs[nrun++] = (Run){j, e - j, co[j]};
        j = e;
    }
    return nrun;
}

/* A panel whose columns are scattered (a weight gradient's: the taps) but
 * whose rows come in runs of consecutive offsets (the positions of an output
 * row, stride 1): each column is then contiguous over a run of rows, and the
 * panel is a transpose. d[p*nr + j] = x[roff[p] + co[j]] for p < kc, j < w,
 * zero for w <= j < nr. With SSE, 4 rows x 4 columns at a time (4 loads, a
 * 4x4 transpose, 4 stores instead of 16 scalar loads and stores); the rest
 * one element at a time. The same values land in the same places either
 * way: only the speed differs. */
static void pack_transposed(const float *x, const int64_t *roff, int64_t kc, const int64_t *co,
                            int64_t w, int64_t nr, float *d) {
    int64_t p = 0;
#if defined(__SSE2__)
    int64_t w4 = w & ~(int64_t)3;
    while (p + 4 <= kc) {
        int64_t len = 1; /* rows p.. whose offsets are consecutive */
        while (p + len < kc && roff[p + len] == roff[p] + len) len++;
        int64_t e = p + (len & ~(int64_t)3);
        for (; p < e; p += 4) {
            float *dp = d + p * nr;
            const float *xr = x + roff[p];
            for (int64_t j = 0; j < w4; j += 4) {
                __m128 r0 = _mm_loadu_ps(xr + co[j]), r1 = _mm_loadu_ps(xr + co[j + 1]);
                __m128 r2 = _mm_loadu_ps(xr + co[j + 2]), r3 = _mm_loadu_ps(xr + co[j + 3]);
                _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
                _mm_storeu_ps(dp + j, r0);
                _mm_storeu_ps(dp + nr + j, r1);
                _mm_storeu_ps(dp + 2 * nr + j, r2);
                _mm_storeu_ps(dp + 3 * nr + j, r3);
            }
            for (int64_t t = 0; t < 4; t++) {
                const float *xt = x + roff[p + t];
                float *dt = dp + t * nr;
                for (int64_t j = w4; j < w; j++) dt[j] = xt[co[j]];
                for (int64_t j = w; j < nr; j++) dt[j] = 0.0f;
            }
        }
        for (int64_t r = len & 3; r > 0 && p < kc; r--, p++) { /* the run's last rows */
            const float *xr = x + roff[p];
            float *dp = d + p * nr;
            for (int64_t j = 0; j < w; j++) dp[j] = xr[co[j]];
            for (int64_t j = w; j < nr; j++) dp[j] = 0.0f;
        }
    }
#endif
    for (; p < kc; p++) {
        const float *xr = x + roff[p];
        float *dp = d + p * nr;
        for (int64_t j = 0; j < w; j++) dp[j] = xr[co[j]];
        for (int64_t j = w; j < nr; j++) dp[j] = 0.0f;
    }
}

/* A copier of the rows of one panel whose columns are runs (below). */
typedef void CopyRuns(const float *x, const int64_t *roff, int64_t kc, const Run *runs, int nrun,
                      int64_t w, int64_t nr, float *d);

/* The rows of one panel whose columns are runs of consecutive offsets
 * (stride 1: an output row's positions): d[p*nr + run.j + t] =
 * x[roff[p] + run.off + t], zero past w. Explicit vector moves (GCC's
 * vectorized loop checked the two pointers for overlap on every run of
 * every row); a run's tail is its last 4 again. */
static void copy_runs(const float *x, const int64_t *roff, int64_t kc, const Run *runs, int nrun,
                      int64_t w, int64_t nr, float *d) {
    for (int64_t p = 0; p < kc; p++, d += nr) {
        const float *xr = x + roff[p];
        for (int r = 0; r < nrun; r++) {
            float *dr = d + runs[r].j;
            const float *sr = xr + runs[r].off;
            int64_t t = 0, len = runs[r].len;
#if defined(__SSE2__)
            for (; t + 4 <= len; t += 4) _mm_storeu_ps(dr + t, _mm_loadu_ps(sr + t));
            if (t < len && len >= 4) {
                _mm_storeu_ps(dr + len - 4, _mm_loadu_ps(sr + len - 4));
                t = len;
            }
#endif
            for (; t < len; t++) dr[t] = sr[t];
        }
        for (int64_t j = w; j < nr; j++) d[j] = 0.0f;
    }
}

/* The same rows for runs of stride 2 (a forward with stride 2: every other
 * position of an output row): two vector loads, the even lanes kept.
 * t + 4 < len: the second load's last lane, one past the group's last
 * tap, is then still in the run. */
static void copy_runs2(const float *x, const int64_t *roff, int64_t kc, const Run *runs, int nrun,
                       int64_t w, int64_t nr, float *d) {
    for (int64_t p = 0; p < kc; p++, d += nr) {
        const float *xr = x + roff[p];
        for (int r = 0; r < nrun; r++) {
            float *dr = d + runs[r].j;
            const float *sr = xr + runs[r].off;
            int64_t t = 0, len = runs[r].len;
#if defined(__SSE2__)
            for (; t + 4 < len; t += 4) {
                __m128 a = _mm_loadu_ps(sr + 2 * t), b = _mm_loadu_ps(sr + 2 * t + 4);
                _mm_storeu_ps(dr + t, _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
            }
#endif
            for (; t < len; t++) dr[t] = sr[2 * t];
        }
        for (int64_t j = w; j < nr; j++) d[j] = 0.0f;
    }
}

#if GATHER_AVX2
/* copy_runs and copy_runs2 with 8-float moves, where the CPU has AVX2
 * (the file is built for SSE2): with a few input channels the packing of
 * a gathered B costs as much as the product (fashion conv1: K = 9), and
 * the JIT's own packer of a B in memory moves whole vectors. The same
 * values land in the same places. */
__attribute__((target("avx2"))) static void copy_runs_avx2(const float *x, const int64_t *roff,
                                                           int64_t kc, const Run *runs, int nrun,
                                                           int64_t w, int64_t nr, float *d) {
    for (int64_t p = 0; p < kc; p++, d += nr) {
        const float *xr = x + roff[p];
        for (int r = 0; r < nrun; r++) {
            float *dr = d + runs[r].j;
            const float *sr = xr + runs[r].off;
            int64_t t = 0, len = runs[r].len;
            if (len >= 8) {
                for (; t + 8 <= len; t += 8) _mm256_storeu_ps(dr + t, _mm256_loadu_ps(sr + t));
                if (t < len) _mm256_storeu_ps(dr + len - 8, _mm256_loadu_ps(sr + len - 8));
            } else if (len >= 4) {
                _mm_storeu_ps(dr, _mm_loadu_ps(sr));
                _mm_storeu_ps(dr + len - 4, _mm_loadu_ps(sr + len - 4));
            } else {
                for (; t < len; t++) dr[t] = sr[t];
            }
        }
        for (int64_t j = w; j < nr; j++) d[j] = 0.0f;
    }
}

__attribute__((target("avx2"))) static void copy_runs2_avx2(const float *x, const int64_t *roff,
                                                            int64_t kc, const Run *runs, int nrun,
                                                            int64_t w, int64_t nr, float *d) {
    for (int64_t p = 0; p < kc; p++, d += nr) {
        const float *xr = x + roff[p];
        for (int r = 0; r < nrun; r++) {
            float *dr = d + runs[r].j;
            const float *sr = xr + runs[r].off;
            int64_t t = 0, len = runs[r].len;
            for (; t + 8 < len; t += 8) { /* [a0 a2 b0 b2 | a4 a6 b4 b6], then its 64-bit
                                             halves reordered 0, 2, 1, 3 */
                __m256 a = _mm256_loadu_ps(sr + 2 * t), b = _mm256_loadu_ps(sr + 2 * t + 8);
                __m256d e = _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
                _mm256_storeu_ps(dr + t, _mm256_castpd_ps(_mm256_permute4x64_pd(e, 0xD8)));
            }
            for (; t + 4 < len; t += 4) {
                __m128 a = _mm_loadu_ps(sr + 2 * t), b = _mm_loadu_ps(sr + 2 * t + 4);
                _mm_storeu_ps(dr + t, _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
            }
            for (; t < len; t++) dr[t] = sr[2 * t];
        }
        for (int64_t j = w; j < nr; j++) d[j] = 0.0f;
    }
}
#endif

#if GATHER_AVX2
/* Where a forward's column is, as its digits (image u, output row v,
 * position w in the row): carried along instead of divided. */
typedef struct Digits {
    int64_t u, v, w;
} Digits;

/* the lanes t < n of 8 (n in 0..8), as a mask: window n of 0 ... 0 -1 ... -1 */
static const int32_t lanes_below[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* One panel of a forward whose columns are output rows' positions (stride
 * 1 or 2), its columns from digits *at on, copied 8 columns at a time,
 * each chunk of 8 from whole vectors: one load from where its lane 0
 * would read in its first output row, one from where it would read in the
 * next (stride 2: two loads each and the even lanes kept), blended where
 * the row ends, the lanes past w cleared, one store. Every chunk and row
 * does the same: copied run by run (copy_runs_avx2) with the runs' lengths
 * tested, fashion conv1's panels (1-3 pieces of rows of 28 positions per
 * 16 columns) cost a mispredicted branch per row, and the runs' setup per
 * panel as much again; masked loads (AVX-512) were slower still on Zen 4.
 * The loads read up to 8 * step floats from a chunk's base, past its runs:
 * never before x (the next row's base is the previous row's base plus a
 * row's stride, minus at most the lanes the previous row fills: the
 * offsets are >= 0) and not past xend (gather_end; rmax: the block's
 * largest row offset). false, with nothing written and *at unchanged,
 * where a chunk holds more than 2 rows (rows of fewer than 8 positions) or
 * a load would pass xend: copy_runs then. Else *at moves nr columns on.
 * The same values land in the same places as copy_runs'. */
__attribute__((target("avx2"))) static bool pack_panel_rows(const TtGemmGather *g,
                                                            const int64_t *roff, int64_t kc,
                                                            int64_t rmax, Digits *at, int64_t w,
                                                            int64_t nr, float *d, int64_t xend) {
    enum { NCH = GEMM_NR_MAX / 8 };
    const int64_t step = g->cstr[2], wo = g->cdim[1], ho = g->cdim[0];
    int nch = (int)(nr / 8);
    int64_t b0[NCH], b1[NCH], hi = 0;
    __m256 use1[NCH], keep[NCH];
    Digits c = *at;
    for (int k = 0; k < nch; k++) {
        int64_t valid = w - 8 * k < 0 ? 0 : w - 8 * k > 8 ? 8 : w - 8 * k;
        int64_t base = c.u * g->cstr[0] + c.v * g->cstr[1] + c.w * step, left = wo - c.w;
        int64_t split = left < 8 ? left : 8;
        b0[k] = b1[k] = base;
        if (left <= 8) { /* the row ends in this chunk: the rest from the next */
            c.w = 0;
            if (++c.v == ho) c.v = 0, c.u++;
            if (left < 8) {
                if (wo < 8 - left) return false; /* a third row */
                b1[k] = c.u * g->cstr[0] + c.v * g->cstr[1] - step * left;
                c.w = 8 - left;
            }
        } else {
            c.w += 8;
        }
        if (valid == 0) b0[k] = b1[k] = 0; /* all cleared: read x[0..] */
        if (b0[k] < 0 || b1[k] < 0) return false;
        hi = b0[k] > hi ? b0[k] : hi;
        hi = b1[k] > hi ? b1[k] : hi;
        use1[k] = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                                         _mm256_set1_epi32((int)split - 1)));
        keep[k] = _mm256_loadu_ps((const float *)lanes_below + 8 - valid);
    }
    if (rmax + hi + 8 * step > xend) return false;
    *at = c;
    if (step == 1) {
        for (int64_t p = 0; p < kc; p++, d += nr) {
            const float *xr = g->x + roff[p];
            for (int k = 0; k < nch; k++) {
                __m256 v = _mm256_blendv_ps(_mm256_loadu_ps(xr + b0[k]),
                                            _mm256_loadu_ps(xr + b1[k]), use1[k]);
                _mm256_storeu_ps(d + 8 * k, _mm256_and_ps(v, keep[k]));
            }
        }
        return true;
    }
    for (int64_t p = 0; p < kc; p++, d += nr) {
        const float *xr = g->x + roff[p];
        for (int k = 0; k < nch; k++) {
            __m256 v[2];
            for (int t = 0; t < 2; t++) { /* [a0 a2 b0 b2 | a4 a6 b4 b6], halves 0, 2, 1, 3 */
                const float *s = xr + (t ? b1[k] : b0[k]);
                __m256 a = _mm256_loadu_ps(s), b = _mm256_loadu_ps(s + 8);
                __m256d e = _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
                v[t] = _mm256_castpd_ps(_mm256_permute4x64_pd(e, 0xD8));
            }
            _mm256_storeu_ps(d + 8 * k,
                             _mm256_and_ps(_mm256_blendv_ps(v[0], v[1], use1[k]), keep[k]));
        }
    }
    return true;
}
#endif

/* Packs the kc x nc block of a gathered op(B) at (p0, j0) the way pack_n
 * lays out a block: panel q at dst + q*pstride*nr, row p at +p*nr, zero
 * past nc. The offsets of the block's rows and columns are computed once,
 * so each element is one load at x + roff[p] + coff[j]; a panel whose
 * columns are a few runs of consecutive offsets (or of offsets 2 apart) is
 * copied run by run, any other as a transpose (pack_transposed). */
static void pack_gather(const TtGemmGather *g, int64_t kc, int64_t nc, int64_t p0, int64_t j0,
                        int64_t nr, float *dst, int64_t pstride, int64_t *off, int64_t xend) {
    int64_t *roff = off, *co = off + kc;
    gather_offsets(g->rdim, g->rstr, p0, kc, roff);
    /* the run copiers of stride 1 and 2, with 8-float moves where the CPU
     * has AVX2 */
    CopyRuns *copy1 = copy_runs, *copy2 = copy_runs2;
#if GATHER_AVX2
    bool blend = __builtin_cpu_supports("avx2");
    if (blend) copy1 = copy_runs_avx2, copy2 = copy_runs2_avx2;
#endif
    /* a forward's columns (stride 1 or 2 along an output row): each panel's
     * runs come from the column digits, a run per output row it touches,
     * without the offsets of every column (with K = 9, one input channel,
     * those cost as much as the copies) */
    int64_t step = g->cstr[2];
    bool digits = (step == 1 || step == 2) && g->cdim[1] >= 4;
    int64_t cw = j0 % g->cdim[1], cuv = j0 / g->cdim[1];
    int64_t cv = cuv % g->cdim[0], cu = cuv / g->cdim[0];
    Run runs[GEMM_NR_MAX];
#if GATHER_AVX2
    int64_t rmax = roff[0];
    for (int64_t p = 1; p < kc; p++) rmax = roff[p] > rmax ? roff[p] : rmax;
    bool rows8 = blend && digits && nr % 8 == 0 && roff[0] >= 0;
    for (int64_t p = 1; p < kc && rows8; p++) rows8 = roff[p] >= 0;
#endif
    for (int64_t q = 0; q * nr < nc; q++) {
        int64_t w = nc - q * nr < nr ? nc - q * nr : nr;
        float *d = dst + q * pstride * nr;
#if GATHER_AVX2
        Digits at = {cu, cv, cw};
        if (rows8 && pack_panel_rows(g, roff, kc, rmax, &at, w, nr, d, xend)) {
            cu = at.u, cv = at.v, cw = at.w;
            continue;
        }
#endif
        if (digits) {
            int nrun = 0;
            for (int64_t j = 0; j < w;) {
                int64_t len = min64(g->cdim[1] - cw, w - j);
                runs[nrun++] = (Run){j, len, cu * g->cstr[0] + cv * g->cstr[1] + cw * step};
                j += len;
                if ((cw += len) == g->cdim[1]) {
                    cw = 0;
                    if (++cv == g->cdim[0]) cv = 0, cu++;
                }
            }
            if (nrun * 4 <= w) {
                (step == 1 ? copy1 : copy2)(g->x, roff, kc, runs, nrun, w, nr, d);
                continue;
            }
        }
        /* any other panel: its columns' offsets, then runs of stride 1 or
         * 2 where they are few, else a transpose */
        gather_offsets(g->cdim, g->cstr, j0 + q * nr, w, co);
        int nrun = panel_runs(co, w, 1, runs);
        if (nrun * 4 > w && (nrun = panel_runs(co, w, 2, runs)) * 4 <= w) {
            copy2(g->x, roff, kc, runs, nrun, w, nr, d);
        } else if (nrun * 4 <= w) {
            copy1(g->x, roff, kc, runs, nrun, w, nr, d);
        } else {
            pack_transposed(g->x, roff, kc, co, w, nr, d);
        }
    }
}

/* Packs the kc x nc block of op(B) at (pc, jc) into dst. */
static void pack_block(const GemmTileKernels *tk, const BSrc *bs, int64_t kc, int64_t nc,
                       int64_t pc, int64_t jc, float *dst, int64_t pstride, int64_t *off) {
    if (bs->gat)
        pack_gather(bs->gat, kc, nc, bs->p0 + pc, bs->j0 + jc, tk->tile.nr, dst, pstride, off,
                    bs->xend);
    else if (bs->tb)
        tk->pack_t(kc, nc, bs->B + jc * bs->ldb + pc, bs->ldb, dst, pstride);
    else
        tk->pack_n(kc, nc, bs->B + pc * bs->ldb + jc, bs->ldb, dst, pstride);
}

/* Packs all of op(B) (K <= KC, N <= NC: one block) into dst the way
 * gemm_serial would. */
static void pack_whole(const Sched *sc, int64_t N, int64_t K, const BSrc *bs, float *dst) {
    pack_block(tile_needed(sc, N), bs, K, N, 0, 0, dst, (K + 7) & ~(int64_t)7, thread_bufs()->off);
}

#if GATHER_AVX2
/* One run of len columns of a gathered product with MM <= GEMM_GEMV_MR
 * rows, straight from x (row p of the run at xs + roff[p]): 16 columns
 * at a time, then 8 with masked loads and stores at the run's end. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
small_m_run(int MM, int64_t kcur, const float *A, int64_t sai, int64_t sak, const float *xs,
            const int64_t *roff, int64_t len, float *const *cr, bool add) {
    int64_t t = 0;
    for (; t + 16 <= len; t += 16) {
        __m256 a0[GEMM_GEMV_MR], a1[GEMM_GEMV_MR];
        for (int i = 0; i < MM; i++) a0[i] = a1[i] = _mm256_setzero_ps();
        for (int64_t p = 0; p < kcur; p++) {
            const float *b = xs + roff[p] + t;
            __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
            for (int i = 0; i < MM; i++) {
                __m256 s = _mm256_broadcast_ss(A + i * sai + p * sak);
                a0[i] = _mm256_fmadd_ps(s, b0, a0[i]);
                a1[i] = _mm256_fmadd_ps(s, b1, a1[i]);
            }
        }
        for (int i = 0; i < MM; i++) {
            float *c = cr[i] + t;
            if (add) {
                a0[i] = _mm256_add_ps(_mm256_loadu_ps(c), a0[i]);
                a1[i] = _mm256_add_ps(_mm256_loadu_ps(c + 8), a1[i]);
            }
            _mm256_storeu_ps(c, a0[i]);
            _mm256_storeu_ps(c + 8, a1[i]);
        }
    }
    for (; t < len; t += 8) {
        int64_t r = len - t;
        __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(r < 8 ? r : 8)), lane);
        __m256 a0[GEMM_GEMV_MR];
        for (int i = 0; i < MM; i++) a0[i] = _mm256_setzero_ps();
        for (int64_t p = 0; p < kcur; p++) {
            __m256 b0 = _mm256_maskload_ps(xs + roff[p] + t, m);
            for (int i = 0; i < MM; i++)
                a0[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(A + i * sai + p * sak), b0, a0[i]);
        }
        for (int i = 0; i < MM; i++) {
            float *c = cr[i] + t;
            if (add) a0[i] = _mm256_add_ps(_mm256_maskload_ps(c, m), a0[i]);
            _mm256_maskstore_ps(c, m, a0[i]);
        }
    }
}

/* R runs of the same length at once, 16 columns of each at a time (t <
 * len rounded down to 16; the rest is small_m_run's): with one or two
 * rows, a single run's two chains of fma over p wait on each other's
 * latency, R runs give 2R chains. Returns the columns done. */
#define SMALL_M_RUNS 4
__attribute__((target("avx2,fma"), always_inline)) static inline int64_t
small_m_runs(int MM, int R, int64_t kcur, const float *A, int64_t sai, int64_t sak,
             const float *const *xs, const int64_t *roff, int64_t len,
             float *const (*cr)[GEMM_GEMV_MR], bool add) {
    int64_t t = 0;
    for (; t + 16 <= len; t += 16) {
        __m256 a0[SMALL_M_RUNS][GEMM_GEMV_MR], a1[SMALL_M_RUNS][GEMM_GEMV_MR];
        for (int r = 0; r < R; r++)
            for (int i = 0; i < MM; i++) a0[r][i] = a1[r][i] = _mm256_setzero_ps();
        for (int64_t p = 0; p < kcur; p++) {
            __m256 s[GEMM_GEMV_MR];
            for (int i = 0; i < MM; i++) s[i] = _mm256_broadcast_ss(A + i * sai + p * sak);
            for (int r = 0; r < R; r++) {
                const float *b = xs[r] + roff[p] + t;
                __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
                for (int i = 0; i < MM; i++) {
                    a0[r][i] = _mm256_fmadd_ps(s[i], b0, a0[r][i]);
                    a1[r][i] = _mm256_fmadd_ps(s[i], b1, a1[r][i]);
                }
            }
        }
        for (int r = 0; r < R; r++)
            for (int i = 0; i < MM; i++) {
                float *c = cr[r][i] + t;
                if (add) {
                    a0[r][i] = _mm256_add_ps(_mm256_loadu_ps(c), a0[r][i]);
                    a1[r][i] = _mm256_add_ps(_mm256_loadu_ps(c + 8), a1[r][i]);
                }
                _mm256_storeu_ps(c, a0[r][i]);
                _mm256_storeu_ps(c + 8, a1[r][i]);
            }
    }
    return t;
}

/* The batch of nb runs of length len: together as far as they go, then
 * each run's rest alone. */
__attribute__((target("avx2,fma"))) static void
small_m_flush(int64_t M, int nb, int64_t kcur, const float *A, int64_t sai, int64_t sak,
              const float *const *xs, const int64_t *roff, int64_t len, float *(*cr)[GEMM_GEMV_MR],
              bool add) {
    int64_t t = 0;
    if (nb == SMALL_M_RUNS && M == 1)
        t = small_m_runs(1, SMALL_M_RUNS, kcur, A, sai, sak, xs, roff, len, cr, add);
    else if (nb >= 2 && M == 2)
        t = small_m_runs(2, 2, kcur, A, sai, sak, xs, roff, len, cr, add);
    for (int r = 0; r < nb; r++) {
        int from = nb >= 2 && M == 2 && r < 2 ? 1 : 0; /* the runs done above */
        int64_t t0 = (M == 1 && nb == SMALL_M_RUNS) || from ? t : 0;
        float *c[GEMM_GEMV_MR];
        for (int64_t i = 0; i < M; i++) c[i] = cr[r][i] + t0;
        switch (M) {
        case 1:
            small_m_run(1, kcur, A, sai, sak, xs[r] + t0, roff, len - t0, c, add);
            break;
        case 2:
            small_m_run(2, kcur, A, sai, sak, xs[r] + t0, roff, len - t0, c, add);
            break;
        case 3:
            small_m_run(3, kcur, A, sai, sak, xs[r] + t0, roff, len - t0, c, add);
            break;
        default:
            small_m_run(4, kcur, A, sai, sak, xs[r] + t0, roff, len - t0, c, add);
            break;
        }
    }
}

/* A gathered product of at most GEMM_GEMV_MR rows whose columns are a
 * forward's (runs of stride 1 along an output row), computed straight from
 * x without packing B: with 4 output channels per group (a grouped
 * convolution) packing a block costs as much as its product. Each element
 * is the micro-kernel's sum (gemm_jit.c): an fma chain over p from zero
 * per K block of k_block(K), then stored or added to C, so the bits are
 * the packed path's (tests/gemm/test_gemm_gather.c). */
__attribute__((target("avx2,fma"))) static void
gather_small_m(const TtGemmGather *g, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
               bool ta, int64_t p0, int64_t j0, const CDst *cd, bool acc, int64_t *roff) {
    int64_t kc = k_block(K), sai = ta ? 1 : lda, sak = ta ? lda : 1;
    for (int64_t pc = 0; pc < K; pc += kc) {
        int64_t kcur = min64(kc, K - pc);
        gather_offsets(g->rdim, g->rstr, p0 + pc, kcur, roff);
        const float *a = A + pc * sak;
        bool add = pc > 0 || acc;
        int64_t cw = j0 % g->cdim[1], cuv = j0 / g->cdim[1];
        int64_t cv = cuv % g->cdim[0], cu = cuv / g->cdim[0];
        /* runs in batches of equal length (SMALL_M_RUNS with one row, 2
         * with two) */
        int per = M == 1 ? SMALL_M_RUNS : M == 2 ? 2 : 1, nb = 0;
        const float *bx[SMALL_M_RUNS];
        float *bc[SMALL_M_RUNS][GEMM_GEMV_MR];
        int64_t blen = 0;
        /* C's column j as (image, position) carried along: a division per
         * run would cost as much as a run's product with one row */
        int64_t cols = cd->map ? cd->map->cols : N + 1, jn = cd->map ? cd->j0 / cols : 0;
        int64_t jp = cd->map ? cd->j0 % cols : 0;
        for (int64_t j = 0; j < N;) {
            int64_t len = min64(g->cdim[1] - cw, N - j);
            if (nb > 0 && len != blen) {
                small_m_flush(M, nb, kcur, a, sai, sak, bx, roff, blen, bc, add);
                nb = 0;
            }
            bx[nb] = g->x + cu * g->cstr[0] + cv * g->cstr[1] + cw;
            /* a run is in one image (an output row of it) */
            float *c0 = cd->map ? cd->c + jn * cd->map->stride + jp : cd->c + j;
            for (int64_t i = 0; i < M; i++) bc[nb][i] = c0 + i * cd->ldc;
            if ((jp += len) >= cols) jp -= cols, jn++;
            blen = len;
            if (++nb == per) {
                small_m_flush(M, nb, kcur, a, sai, sak, bx, roff, blen, bc, add);
                nb = 0;
            }
            j += len;
            if ((cw += len) == g->cdim[1]) {
                cw = 0;
                if (++cv == g->cdim[0]) cv = 0, cu++;
            }
        }
        if (nb > 0) small_m_flush(M, nb, kcur, a, sai, sak, bx, roff, blen, bc, add);
    }
}
#endif

/* Whether a gathered product runs on gather_small_m: at most
 * GEMM_GEMV_MR rows, columns in runs of at least 8 consecutive offsets
 * (a forward with stride 1; a weight gradient's columns are taps), and a
 * CPU with AVX2 and FMA. */
static bool gather_small(const TtGemmGather *g, int64_t M) {
#if GATHER_AVX2
    return M <= GEMM_GEMV_MR && g->cstr[2] == 1 && g->cdim[1] >= 8 &&
           __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    (void)g;
    (void)M;
    return false;
#endif
}

/* The micro-tiles of rows ic..ic+mcur at columns j..j+min(nrem, NR) of a
 * mapped C whose columns cross from one image's run to the next: each
 * computed into a scratch tile (C's values loaded first when it
 * accumulates), then stored element by element. The micro-kernel does the
 * same arithmetic on the scratch as on C, so the bits are those of a plain
 * C. */
static void tiles_via_scratch(const CDst *cd, const GemmUkr *ukr, int64_t kcur, bool ta,
                              const float *a, int64_t sa, const float *bpan, int64_t ic,
                              int64_t mcur, int64_t j, int64_t nrem, int64_t MR, int64_t NR,
                              int32_t accf) {
    float scr[GEMM_MR_MAX * GEMM_NR_MAX];
    int64_t w = min64(nrem, NR);
    for (int64_t ir = 0; ir < mcur;) {
        int64_t mr = min64(MR, mcur - ir);
        while (!ukr[mr - 1]) mr--;
        if (accf)
            for (int64_t r = 0; r < mr; r++)
                for (int64_t t = 0; t < w; t++) scr[r * NR + t] = *c_at(cd, ic + ir + r, j + t);
        ukr[mr - 1](kcur, ta ? a + ir : a + ir * sa, sa, bpan, NR, scr, NR, w, accf);
        for (int64_t r = 0; r < mr; r++)
            for (int64_t t = 0; t < w; t++) *c_at(cd, ic + ir + r, j + t) = scr[r * NR + t];
        ir += mr;
    }
}

/* dst[j*ldd + i] = src[i*lds + j] for i < m, j < n. With SSE, in 4 x 4
 * blocks through registers; a last block that would pass the edge is moved
 * back to end at it, writing some elements twice with the same values. */
static void transpose(const float *src, int64_t lds, int64_t m, int64_t n, float *dst,
                      int64_t ldd) {
#if defined(__SSE2__)
    if (m >= 4 && n >= 4) {
        for (int64_t i0 = 0; i0 < m; i0 += 4) {
            int64_t i = i0 + 4 <= m ? i0 : m - 4;
            const float *s = src + i * lds;
            for (int64_t j0 = 0; j0 < n; j0 += 4) {
                int64_t j = j0 + 4 <= n ? j0 : n - 4;
                __m128 r0 = _mm_loadu_ps(s + j), r1 = _mm_loadu_ps(s + lds + j);
                __m128 r2 = _mm_loadu_ps(s + 2 * lds + j), r3 = _mm_loadu_ps(s + 3 * lds + j);
                _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
                float *d = dst + j * ldd + i;
                _mm_storeu_ps(d, r0);
                _mm_storeu_ps(d + ldd, r1);
                _mm_storeu_ps(d + 2 * ldd, r2);
                _mm_storeu_ps(d + 3 * ldd, r3);
            }
        }
        return;
    }
#endif
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) dst[j * ldd + i] = src[i * lds + j];
}

static void gemm_serial(const Sched *sc, int64_t M, int64_t N, int64_t K, const float *A,
                        int64_t lda, bool ta, const BSrc *bs, const CDst *cd, bool acc,
                        const TtGemmEpilogue *epi, int64_t row0, int64_t Mall, const float *bpre);

/* A narrow product (N <= GEMM_NARROW_N columns, M >= GEMM_NARROW_MIN_M
 * rows): its N columns would fill a fraction of each vector of a row of a
 * micro-tile (N = 10: 10 lanes of 16, at most 62% of the FMA peak), so it
 * is computed as its transpose, C^T = op(B)^T op(A)^T, where the N columns
 * of C are the rows of the kernel and C's rows fill whole vectors. op(B)^T
 * is read in place as the kernel's A. Every element of C is still one fma
 * chain over the same KC blocks from zero, then added to C (a*b = b*a
 * exactly), so the result is bit-identical to the direct product.
 *   ta: op(A)^T is A as stored, read in place by the small-M kernels
 *       (gemv_n, N in blocks of up to 4 rows) which store their sums
 *       transposed straight into C: nothing is packed or copied.
 *   else: op(A)^T is packed like any B, and the product runs on the
 *       micro-tile of the default square schedule (sc->kt) into buf->ct, a
 *       transposed block of NARROW_MC rows of C copied into C after (and
 *       from C before, when accumulating, for the same additions).
 * The epilogue runs on each block of NARROW_MC rows. */
static void gemm_narrow(const Sched *sc, Bufs *buf, int64_t M, int64_t N, int64_t K, const float *A,
                        int64_t lda, bool ta, const BSrc *bs, float *C, int64_t ldc, bool acc,
                        const TtGemmEpilogue *epi, int64_t row0) {
    int64_t kc = k_block(K);
    /* op(B)^T(j, p) = a[j*saj + p*sap] */
    int64_t saj = bs->tb ? bs->ldb : 1, sap = bs->tb ? 1 : bs->ldb;
    for (int64_t i0 = 0; i0 < M; i0 += NARROW_MC) {
        int64_t mcur = min64(NARROW_MC, M - i0);
        float *c = C + i0 * ldc;
        if (ta) {
            for (int64_t pc = 0; pc < K; pc += kc) {
                int64_t kcur = min64(kc, K - pc);
                for (int64_t j0 = 0; j0 < N; j0 += GEMM_GEMV_MR) {
                    int64_t r = min64(GEMM_GEMV_MR, N - j0);
                    need(sc->g, F_GEMV_N + (int)r - 1);
                    sc->k->gemv_n[r - 1](kcur, bs->B + j0 * saj + pc * sap, saj, sap,
                                         A + pc * lda + i0, lda, c + j0, ldc, mcur,
                                         (pc > 0 || acc) ? 1 : 0, 1);
                }
            }
        } else {
            Sched st = *sc;
            st.k = sc->kt;
            float *ct = buf->ct;
            if (acc) transpose(c, ldc, mcur, N, ct, mcur);
            BSrc bt = {A + i0 * lda, lda, true, NULL, 0, 0};
            /* Mall 0: never the small-M path, which rounds differently
             * with a transposed B */
            CDst cdt = {ct, mcur, NULL, 0};
            gemm_serial(&st, N, mcur, K, bs->B, bs->ldb, !bs->tb, &bt, &cdt, acc, NULL, 0, 0, NULL);
            transpose(ct, mcur, N, mcur, c, ldc);
        }
        epilogue(epi, row0, i0, i0 + mcur);
    }
}

/* One thread's product; its rows are rows row0.. of the caller's C, which
 * has Mall rows. The small-M path rounds differently from the packed one
 * (B transposed), so it is taken only for a whole product: a thread's share
 * of rows computes exactly what one thread computes, whatever the split.
 * bpre: NULL, or op(B) already packed by pack_whole (then K <= KC and
 * N <= NC, so there is one block of each and nothing is packed here). */
static void gemm_serial(const Sched *sc, int64_t M, int64_t N, int64_t K, const float *A,
                        int64_t lda, bool ta, const BSrc *bs, const CDst *cd, bool acc,
                        const TtGemmEpilogue *epi, int64_t row0, int64_t Mall, const float *bpre) {
    if (M <= 0 || N <= 0) return;
    float *C = cd->c;
    int64_t ldc = cd->ldc;
    if (K <= 0) {
        if (!acc)
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) *c_at(cd, i, j) = 0.0f;
        epilogue(epi, row0, 0, M);
        return;
    }
    Bufs *buf = thread_bufs();
    const GemmKernels *k = sc->k;
    int64_t kc = k_block(K);
#if GATHER_AVX2
    /* a gathered B is packed, except for a few rows of a forward */
    if (bs->gat && !bpre && gather_small(bs->gat, M)) {
        gather_small_m(bs->gat, M, N, K, A, lda, ta, bs->p0, bs->j0, cd, acc, buf->off);
        epilogue(epi, row0, 0, M);
        return;
    }
#endif
    if (M <= GEMM_GEMV_MR && M == Mall && !bs->gat && !cd->map) {
        need(sc->g, (bs->tb ? F_GEMV_T : F_GEMV_N) + (int)M - 1);
        gemm_small_m(k, buf, kc, M, N, K, A, lda, ta, bs->B, bs->ldb, bs->tb, C, ldc, acc);
        epilogue(epi, row0, 0, M);
        return;
    }
    if (gemm_is_narrow(M, N) && !bs->gat && !bpre && !cd->map) {
        gemm_narrow(sc, buf, M, N, K, A, lda, ta, bs, C, ldc, acc, epi, row0);
        return;
    }
    const GemmTileKernels *tk = tile_needed(sc, N);
    const int64_t MR = tk->tile.mr, NR = tk->tile.nr;
    int64_t mb = cdiv(M, sc->mc), mc = cdiv(cdiv(M, mb), MR) * MR;
    int64_t nb = cdiv(N, sc->nc), nc = cdiv(cdiv(N, nb), NR) * NR;
    bool copy_a = lda % 1024 == 0 && M > 1;
    const GemmUkr *ukr = ta ? tk->ukr_col : tk->ukr_row;
    /* op(B) as stored, one block of rows of A: the micro-kernel reads B's
     * full-width panels in place, and only a last narrower panel is packed.
     * Packing all of B costs as much as 6% of a [64,784]@[784,128] product
     * (one block of 64 rows reuses each panel 11 times). Not for rows 4 KiB
     * or more apart: then every k step of a panel is on a new page
     * (measured: 35% slower at ldb 1024 and 2048, 5-30% faster below). */
    bool inplace = !bs->gat && !bs->tb && !bpre && M <= mc && bs->ldb < 1024;
    /* op(B) transposed, one block of rows of A: each panel is packed just
     * before its tiles, into the same few KiB, instead of the whole block
     * first. The packed panel stays in L1 and the pack's writes never reach
     * L2: packing all 64 columns of H^T in a narrow H.W2 [64,128]@[128,10]
     * (computed as its transpose) wrote 32 KiB and cost a quarter of it. */
    bool panelwise = !bs->gat && bs->tb && !bpre && M <= mc;

    for (int64_t jc = 0; jc < N; jc += nc) {
        int64_t ncur = min64(nc, N - jc);
        for (int64_t pc = 0; pc < K; pc += kc) {
            int64_t kcur = min64(kc, K - pc), kcp = (kcur + 7) & ~(int64_t)7;
            const float *bp = bpre ? bpre : buf->bp;
            int64_t nfull = inplace ? ncur / NR * NR : 0; /* panels read in place */
            if (inplace && nfull < ncur)
                tk->pack_n(kcur, ncur - nfull, bs->B + pc * bs->ldb + jc + nfull, bs->ldb, buf->bp,
                           kcp);
            else if (!inplace && !bpre && !panelwise)
                pack_block(tk, bs, kcur, ncur, pc, jc, buf->bp, kcp, buf->off);
            int32_t accf = (pc > 0 || acc) ? 1 : 0;
            for (int64_t ic = 0; ic < M; ic += mc) {
                int64_t mcur = min64(mc, M - ic);
                /* A block: row layout A(i,p) = a[i*sa + p], column layout a[p*sa + i] */
                const float *a = ta ? A + pc * lda + ic : A + ic * lda + pc;
                int64_t sa = lda;
                if (copy_a) {
                    float *d = buf->ap;
                    if (ta) {
                        sa = mcur + 4;
                        for (int64_t p = 0; p < kcur; p++)
                            memcpy(d + p * sa, a + p * lda, (size_t)mcur * sizeof(float));
                    } else {
                        sa = kcur + 4;
                        for (int64_t i = 0; i < mcur; i++)
                            memcpy(d + i * sa, a + i * lda, (size_t)kcur * sizeof(float));
                    }
                    a = d;
                }
                /* a mapped C's column as (run, position), carried from
                 * panel to panel: two divisions per panel cost 15% of a
                 * product with K = 9 (fashion conv1) */
                int64_t cols = cd->map ? cd->map->cols : 1;
                int64_t jn = cd->map ? (cd->j0 + jc) / cols : 0, jp = (cd->j0 + jc) % cols;
                for (int64_t jr = 0; jr < ncur; jr += NR) {
                    const float *bpan = jr < nfull             ? bs->B + pc * bs->ldb + jc + jr
                                        : inplace || panelwise ? buf->bp
                                                               : bp + (jr / NR) * kcp * NR;
                    if (panelwise)
                        tk->pack_t(kcur, min64(NR, ncur - jr), bs->B + (jc + jr) * bs->ldb + pc,
                                   bs->ldb, buf->bp, kcp);
                    int64_t sb = jr < nfull ? bs->ldb : NR;
                    int64_t nrem = ncur - jr;
                    float *c = C + ic * ldc + jc + jr;
                    if (cd->map) {
                        bool in_run = jp + min64(nrem, NR) <= cols; /* else it crosses images */
                        c = C + ic * ldc + jn * cd->map->stride + jp;
                        for (jp += NR; jp >= cols; jp -= cols) jn++;
                        if (!in_run) {
                            tiles_via_scratch(cd, ukr, kcur, ta, a, sa, bpan, ic, mcur, jc + jr,
                                              nrem, MR, NR, accf);
                            continue;
                        }
                    }
                    for (int64_t ir = 0; ir < mcur;) {
                        int64_t mr = min64(MR, mcur - ir);
                        if (mcur - ir > MR && mcur - ir < 2 * MR && ukr[cdiv(mcur - ir, 2) - 1])
                            mr = cdiv(mcur - ir, 2);
                        while (!ukr[mr - 1]) mr--;
                        ukr[mr - 1](kcur, ta ? a + ir : a + ir * sa, sa, bpan, sb, c + ir * ldc,
                                    ldc, nrem, accf);
                        ir += mr;
                    }
                }
                /* the last column block's last K block: these rows are final */
                if (jc + ncur >= N && pc + kcur >= K) epilogue(epi, row0, ic, ic + mcur);
            }
        }
    }
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Part c of the pool's job (a chunk of ttrt_pool_run). */
static void run_part(void *ctx, int c, int tid) {
    (void)tid;
    const Job *j = &((Pool *)ctx)->job;
    const Part *p = &j->part[c];
    if (p->epi_only)
        epilogue(j->epi, p->row0, 0, p->M);
    else {
        BSrc bs = {p->B, j->ldb, j->tb, j->gat, p->p0, p->j0, j->xend};
        CDst cd = {p->C, p->ldc, p->map, p->cj0};
        gemm_serial(&j->sc, p->M, p->N, p->K, p->A, j->lda, j->ta, &bs, &cd, p->acc, j->epi,
                    p->row0, j->M, j->bpre);
    }
}

/* Runs pl->job on up to t threads (the caller is one); when the process's
 * pool is busy (a product called from a parallel loop's body, or from
 * another thread), its parts in turn on the caller: the same result. Caller
 * holds busy. */
static void pool_run(Pool *pl, int t) {
    if (ttrt_pool_run(run_part, pl, pl->job.nparts, t)) return;
    for (int c = 0; c < pl->job.nparts; c++) run_part(pl, c, 1);
}

/* ---- API ---------------------------------------------------------------- */

static pthread_mutex_t inst_mu = PTHREAD_MUTEX_INITIALIZER;
static TtGemm *inst;

/* Copies a tile's kernel pointers (not its shape, which readers may be
 * reading: it was set at creation and is the same). */
static void copy_tile(GemmTileKernels *dst, const GemmTileKernels *src) {
    memcpy(dst->ukr_row, src->ukr_row, sizeof dst->ukr_row);
    memcpy(dst->ukr_col, src->ukr_col, sizeof dst->ukr_col);
    dst->pack_n = src->pack_n;
    dst->pack_t = src->pack_t;
}

/* Builds family f unless it is built; false with err when it cannot be. */
static bool build_fam(TtGemm *g, int f, char *err, size_t errlen) {
    if (atomic_load_explicit(&g->built[f], memory_order_acquire)) return true;
    pthread_mutex_lock(&g->kmu);
    if (!atomic_load_explicit(&g->built[f], memory_order_relaxed)) {
        unsigned fams = f < F_GEMV_T ? GEMM_FAM_GEMV_N(f - F_GEMV_N + 1)
                        : f < F_W8   ? GEMM_FAM_GEMV_T(f - F_GEMV_T + 1)
                        : f == F_W8  ? GEMM_FAM_WIDE | GEMM_FAM_NARROW
                        : f == F_W16 ? GEMM_FAM_WIDE
                                     : GEMM_FAM_NARROW;
        GemmKernels tmp;
        double t0 = now_ns();
        g->jit[f] = gemm_jit_build(&tmp, f <= F_W8 ? 8 : 16, fams, &g->ir[f], err, errlen);
        if (g->jit[f]) {
            g->fam_ms[f] = (now_ns() - t0) * 1e-6;
            if (f < F_GEMV_T)
                for (int i = 0; i < 2; i++) g->k[i].gemv_n[f - F_GEMV_N] = tmp.gemv_n[f - F_GEMV_N];
            else if (f < F_W8)
                for (int i = 0; i < 2; i++) g->k[i].gemv_t[f - F_GEMV_T] = tmp.gemv_t[f - F_GEMV_T];
            else if (f == F_W8) {
                copy_tile(&g->k[0].wide, &tmp.wide);
                copy_tile(&g->k[0].narrow, &tmp.wide);
            } else if (f == F_W16)
                copy_tile(&g->k[1].wide, &tmp.wide);
            else
                copy_tile(&g->k[1].narrow, &tmp.narrow);
            atomic_store_explicit(&g->built[f], true, memory_order_release);
        }
    }
    pthread_mutex_unlock(&g->kmu);
    return atomic_load_explicit(&g->built[f], memory_order_acquire);
}

/* Family f, built now if it is not yet (products run on the pool's
 * threads: the first to need it builds it, the others wait on kmu). A
 * build that fails here, after tt_gemm_new succeeded, is an LLVM failure
 * (out of memory): there is no result to return, so it ends the process
 * with the message. */
static void need(TtGemm *g, int f) {
    if (atomic_load_explicit(&g->built[f], memory_order_acquire)) return;
    char err[256];
    if (!build_fam(g, f, err, sizeof err)) {
        fprintf(stderr, "tt: %s\n", err);
        abort();
    }
}

/* A schedule's kernel set (its families are built when a product needs
 * them). */
static Sched resolve(TtGemm *g, const TtGemmSchedule *s) {
    int64_t mc = s->mc > 0 && s->mc <= MC ? s->mc : MC, nc = s->nc > 0 && s->nc <= NC ? s->nc : NC;
    return (Sched){g, &g->k[s->lanes == 16], mc, nc, &g->k[g->tlanes == 16]};
}

/* The family a product of this shape needs under schedule s. */
static int fam_for(TtGemm *g, const TtGemmSchedule *s, int64_t M, int64_t N, bool tb, bool gather) {
    if (M <= GEMM_GEMV_MR && !gather) return (tb ? F_GEMV_T : F_GEMV_N) + (int)M - 1;
    const GemmKernels *k = &g->k[s->lanes == 16];
    return tile_fam(k, tile_for(k, N));
}

bool tt_gemm_prepare(TtGemm *g, int64_t M, int64_t N, int64_t K, bool transA, bool transB,
                     bool gather, char *err, size_t errlen) {
    if (M <= 0 || N <= 0 || K <= 0) return true;
    if (gemm_is_narrow(M, N) && !gather) { /* gemm_narrow's kernels */
        if (!transA)
            return build_fam(g, tile_fam(&g->k[g->tlanes == 16], &g->k[g->tlanes == 16].wide), err,
                             errlen);
        int64_t r = N % GEMM_GEMV_MR;
        return (N < GEMM_GEMV_MR || build_fam(g, F_GEMV_N + GEMM_GEMV_MR - 1, err, errlen)) &&
               (r == 0 || build_fam(g, F_GEMV_N + (int)r - 1, err, errlen));
    }
    TtGemmSchedule s = gemm_tuner_peek(g->tuner, M, N, K, transA, transB || gather);
    return build_fam(g, fam_for(g, &s, M, N, transB, gather), err, errlen);
}

void tt_gemm_stats(const TtGemm *g, TtGemmStats *out) {
    memset(out, 0, sizeof *out);
    for (int f = 0; f < NFAM; f++)
        if (atomic_load_explicit(&((TtGemm *)g)->built[f], memory_order_acquire)) {
            out->families++;
            out->mask |= 1u << f;
            out->compile_ms += g->fam_ms[f];
            out->from_cache += gemm_jit_from_cache(g->jit[f]);
        }
}

const char *tt_gemm_family_name(int f) {
    return f >= 0 && f < NFAM ? fam_name[f] : "?";
}

TtGemm *tt_gemm_new(char *err, size_t errlen) {
    pthread_once(&buf_once, buf_key_init);
    pthread_mutex_lock(&inst_mu);
    if (inst) {
        inst->refs++;
        pthread_mutex_unlock(&inst_mu);
        return inst;
    }
    TtGemm *g = calloc(1, sizeof *g);
    GemmTuner *tu = g ? gemm_tuner_new() : NULL;
    if (!g || !tu || !try_thread_bufs()) {
        gemm_tuner_free(tu);
        free(g);
        snprintf(err, errlen, "gemm: out of memory");
        pthread_mutex_unlock(&inst_mu);
        return NULL;
    }
    g->tuner = tu;
    g->tlanes = gemm_tuner_default_square(tu).lanes;
    pthread_mutex_init(&g->kmu, NULL);
    /* no kernels yet: each family is built when a product (or
     * tt_gemm_prepare) first needs it */
    gemm_jit_tiles(&g->k[0], 8);
    gemm_jit_tiles(&g->k[1], 16);
    g->refs = 1;
    pthread_mutex_init(&g->pool.busy, NULL);
    g->pool.g = g;
    inst = g;
    pthread_mutex_unlock(&inst_mu);
    return g;
}

void tt_gemm_free(TtGemm *g) {
    if (!g) return;
    pthread_mutex_lock(&inst_mu);
    if (--g->refs > 0) {
        pthread_mutex_unlock(&inst_mu);
        return;
    }
    inst = NULL;
    pthread_mutex_unlock(&inst_mu);
    pthread_mutex_destroy(&g->pool.busy);
    for (int f = 0; f < NFAM; f++) {
        gemm_jit_free(g->jit[f]);
        free(g->ir[f]);
    }
    pthread_mutex_destroy(&g->kmu);
    gemm_tuner_free(g->tuner);
    free(g);
}

int tt_gemm_lanes(const TtGemm *g) {
    return gemm_tuner_default_square(g->tuner).lanes;
}

double tt_gemm_compile_ms(const TtGemm *g) {
    TtGemmStats s;
    tt_gemm_stats(g, &s);
    return s.compile_ms;
}

bool tt_gemm_emit_llvm(TtGemm *g, FILE *out) {
    if (!g) return false;
    bool any = false;
    for (int f = 0; f < NFAM; f++)
        if (atomic_load(&g->built[f]) && g->ir[f]) {
            if (fputs(g->ir[f], out) < 0) return false;
            any = true;
        }
    return any;
}

int tt_gemm_candidates(TtGemm *g, TtGemmSchedule *out, int max) {
    return gemm_tuner_candidates(g->tuner, out, max);
}

static void explain_splits(FILE *out);

void tt_gemm_explain(FILE *out) {
    pthread_mutex_lock(&inst_mu);
    if (inst) gemm_tuner_explain(inst->tuner, out);
    pthread_mutex_unlock(&inst_mu);
    explain_splits(out);
}

/* Splits [0, n) into t chunks that are multiples of q (the last may be short). */
static int split(int64_t n, int64_t q, int t, int64_t *start, int64_t *len) {
    int64_t units = cdiv(n, q), per = cdiv(units, t);
    int parts = 0;
    for (int64_t u = 0; u < units && parts < t; u += per, parts++) {
        start[parts] = u * q;
        len[parts] = min64(per * q, n - u * q);
    }
    return parts;
}

/* The product being tuned: its operands, and a scratch C of M x N. */
typedef struct TuneCtx {
    TtGemm *g;
    int64_t M, N, K, lda;
    const float *A;
    bool ta;
    const BSrc *bs;
    float *C;
} TuneCtx;

static double time_sched(void *ctx, const TtGemmSchedule *s) {
    TuneCtx *c = ctx;
    /* the scratch C is allocated only when a class is being tuned */
    if (!c->C) c->C = aligned_alloc(64, (size_t)(c->M * c->N) * sizeof(float) + 64);
    if (!c->C) return -1;
    Sched sc = resolve(c->g, s);
    /* this thread's CPU time: on a shared machine wall time mostly measures
     * the other processes (one run here under load picked a different
     * blocking per shape, at random), CPU time the candidate */
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    CDst cd = {c->C, c->N, NULL, 0};
    gemm_serial(&sc, c->M, c->N, c->K, c->A, c->lda, c->ta, c->bs, &cd, false, NULL, 0, c->M, NULL);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    return (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
}

static void run_sched(TtGemm *g, const Sched *sc, int64_t M, int64_t N, int64_t K, const float *A,
                      int64_t lda, bool transA, const BSrc *bs, float *C, int64_t ldc,
                      const TtGemmOut *map, bool accumulate, int nthreads,
                      const TtGemmEpilogue *epi);

/* The class's schedule (tuned on this product when the class is new), then
 * the product. A gathered B is tuned as its own class (tb set: it is
 * packed, never read in place). */
static void run_tuned(TtGemm *g, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                      bool transA, const BSrc *bs, float *C, int64_t ldc, const TtGemmOut *map,
                      bool accumulate, int nthreads, const TtGemmEpilogue *epi) {
    if (M <= 0 || N <= 0) return;
    TuneCtx tc = {g, M, N, K, lda, A, transA, bs, NULL};
    TtGemmSchedule s =
        gemm_tuner_pick(g->tuner, M, N, K, transA, bs->gat || bs->tb, time_sched, &tc);
    free(tc.C);
    Sched sc = resolve(g, &s);
    run_sched(g, &sc, M, N, K, A, lda, transA, bs, C, ldc, map, accumulate, nthreads, epi);
}

void tt_gemm_run(TtGemm *g, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                 bool transA, const float *B, int64_t ldb, bool transB, float *C, int64_t ldc,
                 bool accumulate, int nthreads, const TtGemmEpilogue *epi) {
    BSrc bs = {B, ldb, transB, NULL, 0, 0};
    run_tuned(g, M, N, K, A, lda, transA, &bs, C, ldc, NULL, accumulate, nthreads, epi);
}

/* One past the offset of op(B)'s last element (row K-1, column N-1): x
 * holds it, so x[0, gather_end) is readable; pack_gather's whole-vector
 * copies read past a run's end only below it. */
static int64_t gather_end(const TtGemmGather *b, int64_t K, int64_t N) {
    if (K <= 0 || N <= 0) return 0;
    int64_t r, c;
    gather_offsets(b->rdim, b->rstr, K - 1, 1, &r);
    gather_offsets(b->cdim, b->cstr, N - 1, 1, &c);
    return r + c + 1;
}

void tt_gemm_run_gather(TtGemm *g, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                        bool transA, const TtGemmGather *B, float *C, int64_t ldc, bool accumulate,
                        int nthreads, const TtGemmEpilogue *epi) {
    BSrc bs = {NULL, 0, false, B, 0, 0, gather_end(B, K, N)};
    run_tuned(g, M, N, K, A, lda, transA, &bs, C, ldc, NULL, accumulate, nthreads, epi);
}

void tt_gemm_run_gather_out(TtGemm *g, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                            bool transA, const TtGemmGather *B, float *C, int64_t ldc,
                            const TtGemmOut *out, bool accumulate, int nthreads,
                            const TtGemmEpilogue *epi) {
    BSrc bs = {NULL, 0, false, B, 0, 0, gather_end(B, K, N)};
    /* one run holding every column is the plain layout */
    if (out && out->cols >= N) out = NULL;
    run_tuned(g, M, N, K, A, lda, transA, &bs, C, ldc, out, accumulate, nthreads, epi);
}

void tt_gemm_run_with(TtGemm *g, const TtGemmSchedule *s, int64_t M, int64_t N, int64_t K,
                      const float *A, int64_t lda, bool transA, const float *B, int64_t ldb,
                      bool transB, float *C, int64_t ldc, bool accumulate, int nthreads,
                      const TtGemmEpilogue *epi) {
    if (M <= 0 || N <= 0) return;
    Sched sc = resolve(g, s);
    BSrc bs = {B, ldb, transB, NULL, 0, 0};
    run_sched(g, &sc, M, N, K, A, lda, transA, &bs, C, ldc, NULL, accumulate, nthreads, epi);
}

/* The pool's job for a product of M rows with these operands; no epilogue,
 * no packed B yet. Caller holds busy. */
static Job *job_begin(TtGemm *g, const Sched *sc, int64_t M, int64_t lda, bool transA,
                      const BSrc *bs) {
    Job *j = &g->pool.job; /* field by field: parts[] is large, and filled by the caller */
    j->sc = *sc;
    j->M = M;
    j->lda = lda;
    j->ldb = bs->ldb;
    j->ta = transA;
    j->tb = bs->tb;
    j->gat = bs->gat;
    j->xend = bs->xend;
    j->epi = NULL;
    j->bpre = NULL;
    return j;
}

/* Runs a split over M or N on sp->threads threads. Caller holds busy. */
static void run_mn(TtGemm *g, const Sched *sc, const GemmSplit *sp, int64_t M, int64_t N, int64_t K,
                   const float *A, int64_t lda, bool transA, const BSrc *bs, float *C, int64_t ldc,
                   const TtGemmOut *map, bool accumulate, const TtGemmEpilogue *epi) {
    const int64_t MR = sc->k->wide.tile.mr, NR = sc->k->wide.tile.nr;
    bool by_n = sp->by == GS_N;
    int t = sp->threads;
    Job *j = job_begin(g, sc, M, lda, transA, bs);
    j->epi = by_n ? NULL : epi; /* split over N: rows are final only at the end */
    if (sp->share_b) {
        float *bp = thread_bufs()->bp;
        pack_whole(sc, N, K, bs, bp);
        j->bpre = bp;
    }
    int64_t st[MAXCHUNK], len[MAXCHUNK];
    /* chunks of at least CHUNK_MIN rows or columns: each chunk of a split
     * over N streams all of A again (and copies it at 4 KiB strides), each
     * of a split over M packs all of B again */
    int64_t ext = by_n ? N : M, cap = ext / CHUNK_MIN < t ? t : ext / CHUNK_MIN;
    int nch = CHUNKS_PER_THREAD * t;
    if (nch > cap) nch = (int)cap;
    if (nch > MAXCHUNK) nch = MAXCHUNK;
    j->nparts = by_n ? split(N, NR, nch, st, len) : split(M, MR, nch, st, len);
    for (int i = 0; i < j->nparts; i++) {
        Part *p = &j->part[i];
        *p = (Part){.K = K, .acc = accumulate, .ldc = ldc, .row0 = by_n ? 0 : st[i], .map = map};
        if (by_n) {
            p->M = M;
            p->N = len[i];
            p->A = A;
            p->B = bs->gat ? NULL : bs->tb ? bs->B + st[i] * bs->ldb : bs->B + st[i];
            p->j0 = bs->gat ? st[i] : 0;
            p->C = map ? C : C + st[i]; /* mapped: the part's columns from cj0 */
            p->cj0 = map ? st[i] : 0;
        } else {
            p->M = len[i];
            p->N = N;
            p->A = transA ? A + st[i] : A + st[i] * lda;
            p->B = bs->B;
            p->C = C + st[i] * ldc;
        }
    }
    pool_run(&g->pool, t);
    if (by_n && epi) { /* the rows are final now: their epilogue, split over rows */
        j->epi = epi;
        j->nparts = split(M, 1, nch, st, len);
        for (int i = 0; i < j->nparts; i++)
            j->part[i] = (Part){.M = len[i], .row0 = st[i], .epi_only = true};
        pool_run(&g->pool, t);
    }
}

/* A split over K: part 0 computes into C (accumulating when asked), part i
 * > 0 into its own scratch M x N, and the caller then adds the scratches to
 * C in part order, so the result does not depend on which thread finished
 * first, nor on whether the parts ran on the pool or in turn here. false
 * when the scratch cannot be allocated (nothing written then). */
static bool run_k(TtGemm *g, const Sched *sc, const GemmSplit *sp, int64_t M, int64_t N, int64_t K,
                  const float *A, int64_t lda, bool transA, const BSrc *bs, float *C, int64_t ldc,
                  const TtGemmOut *map, bool accumulate, const TtGemmEpilogue *epi) {
    int64_t st[MAXCHUNK], len[MAXCHUNK];
    int n = split(K, KC, sp->parts, st, len);
    size_t bytes = ((size_t)(n - 1) * (size_t)(M * N) * sizeof(float) + 63) & ~(size_t)63;
    float *scr = aligned_alloc(64, bytes ? bytes : 64);
    if (!scr) return false;
    Part parts[MAXCHUNK];
    for (int i = 0; i < n; i++)
        parts[i] = (Part){.M = M,
                          .N = N,
                          .K = len[i],
                          .acc = i == 0 && accumulate,
                          .A = transA ? A + st[i] * lda : A + st[i],
                          .B = bs->gat  ? NULL
                               : bs->tb ? bs->B + st[i]
                                        : bs->B + st[i] * bs->ldb,
                          .p0 = bs->gat ? st[i] : 0,
                          .C = i == 0 ? C : scr + (size_t)(i - 1) * (size_t)(M * N),
                          .ldc = i == 0 ? ldc : N,
                          .map = i == 0 ? map : NULL};
    if (sp->threads > 1 && pthread_mutex_trylock(&g->pool.busy) == 0) {
        Job *j = job_begin(g, sc, M, lda, transA, bs);
        j->nparts = n;
        memcpy(j->part, parts, (size_t)n * sizeof *parts);
        pool_run(&g->pool, sp->threads);
        pthread_mutex_unlock(&g->pool.busy);
    } else {
        for (int i = 0; i < n; i++) {
            BSrc pb = {parts[i].B, bs->ldb, bs->tb, bs->gat, parts[i].p0, 0, bs->xend};
            CDst cd = {parts[i].C, parts[i].ldc, parts[i].map, 0};
            gemm_serial(sc, M, N, parts[i].K, parts[i].A, lda, transA, &pb, &cd, parts[i].acc, NULL,
                        0, M, NULL);
        }
    }
    CDst cd = {C, ldc, map, 0};
    for (int64_t r = 0; r < M; r++)
        for (int i = 1; i < n; i++) {
            const float *s = scr + (size_t)(i - 1) * (size_t)(M * N) + r * N;
            if (!map) {
                float *c = C + r * ldc;
                for (int64_t q = 0; q < N; q++) c[q] += s[q];
                continue;
            }
            for (int64_t q = 0; q < N;) { /* run by run */
                int64_t len = min64(map->cols - q % map->cols, N - q);
                float *c = c_at(&cd, r, q);
                for (int64_t t = 0; t < len; t++) c[t] += s[q + t];
                q += len;
            }
        }
    free(scr);
    epilogue(epi, 0, 0, M);
    return true;
}

static int by_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static pthread_mutex_t cost_mu = PTHREAD_MUTEX_INITIALIZER;
static GemmSplitCost cost_forced;
static bool cost_is_forced;

void gemm_split_cost_set(const GemmSplitCost *c) {
    pthread_mutex_lock(&cost_mu);
    cost_is_forced = c != NULL;
    if (c) cost_forced = *c;
    pthread_mutex_unlock(&cost_mu);
}

/* The host's costs on t threads. madd_ns: a product of about 3M
 * multiply-adds on the caller, median of 9 (the rate of a product big
 * enough to split). overhead_ns: the fixed cost of a threaded product, the
 * time a small product split on t threads (as gemm_split_choose splits it)
 * takes beyond its largest part's share of its tiles of its own serial
 * time: the wake + join, and each part's own set-up, packing and operands
 * pulled into another core's cache, which the 3M product hid (there the
 * wake + join alone measured 0.3 to 8 us from run to run, and the MLP's
 * [64,128]@[128,10] ran slower on 2 threads). Serial and threaded runs
 * alternate, so the workers spin between jobs as in a training step's run
 * of products; lower quartiles of 31. Caller holds busy. */
#define COST_RUNS       9
#define COST_SMALL_RUNS 31
static GemmSplitCost measure_cost(TtGemm *g, const Sched *sc, int t, bool small) {
    GemmSplitCost c = gemm_split_cost_default();
    const GemmTileKernels *tk = &sc->k->wide;
    int64_t MR = tk->tile.mr, NR = tk->tile.nr;
    int64_t M = t > 16 ? 6 * (int64_t)t : 96, N = 128, K = 256;
    /* small-M products: timed on one-row products (gemv_n1, a decode
     * step's kernel), split over N, so that a process with only small-M
     * products builds no tile nor other small-M kernel to time them */
    if (small) M = 1, N = 24 * 128;
    /* the small product: a few row tiles of two panels per thread, or 8
     * panels of one row per thread (small-M, over N) */
    int64_t sM = small ? 1 : 32 * (int64_t)t, sN = small ? 8 * (int64_t)t * NR : 2 * NR,
            sK = small ? 256 : 128;
    size_t big = (size_t)(M * K + K * N + M * N), sml = (size_t)(sM * sK + sK * sN + sM * sN);
    float *a = aligned_alloc(64, (big > sml ? big : sml) * sizeof(float));
    if (!a) return c;
    for (size_t i = 0; i < (big > sml ? big : sml); i++) a[i] = (float)(i % 7) - 3;
    float *b = a + M * K, *cc = b + K * N;
    double ts[COST_SMALL_RUNS], tp[COST_SMALL_RUNS];
    BSrc bs = {b, N, false, NULL, 0, 0};
    CDst cd = {cc, N, NULL, 0};
    gemm_serial(sc, M, N, K, a, K, false, &bs, &cd, false, NULL, 0, M, NULL);
    for (int r = 0; r < COST_RUNS; r++) {
        double t0 = now_ns();
        gemm_serial(sc, M, N, K, a, K, false, &bs, &cd, false, NULL, 0, M, NULL);
        ts[r] = now_ns() - t0;
    }
    qsort(ts, COST_RUNS, sizeof *ts, by_double);
    c.madd_ns = ts[COST_RUNS / 2] / ((double)M * (double)N * (double)K);
    /* the small product's split as the model makes it; its share's time is
     * its share of the tiles times the small product's own serial time
     * (its rate, not the big one's: a one-row product's B in cache runs
     * faster than the big one's 3 MB), and what is left is the overhead */
    GemmSplitCost rate = {c.madd_ns, 0, "rate"};
    GemmSplit sp = gemm_split_choose(sM, sN, sK, MR, NR, KC, sc->nc, t, false, &rate);
    if (sp.by == GS_M || sp.by == GS_N) {
        float *sb = a + sM * sK, *scc = sb + sK * sN;
        BSrc sbs = {sb, sN, false, NULL, 0, 0};
        CDst scd = {scc, sN, NULL, 0};
        run_mn(g, sc, &sp, sM, sN, sK, a, sK, false, &sbs, scc, sN, NULL, false, NULL);
        for (int r = 0; r < COST_SMALL_RUNS; r++) {
            double t0 = now_ns();
            gemm_serial(sc, sM, sN, sK, a, sK, false, &sbs, &scd, false, NULL, 0, sM, NULL);
            double t1 = now_ns();
            run_mn(g, sc, &sp, sM, sN, sK, a, sK, false, &sbs, scc, sN, NULL, false, NULL);
            tp[r] = now_ns() - t1;
            ts[r] = t1 - t0;
        }
        qsort(ts, COST_SMALL_RUNS, sizeof *ts, by_double);
        qsort(tp, COST_SMALL_RUNS, sizeof *tp, by_double);
        /* lower quartiles: a worker descheduled with a part claimed
         * (another process's load) holds the join for a time slice, and
         * in one run of 31 that moved the median to 210 us */
        double f = tp[COST_SMALL_RUNS / 4] - ts[COST_SMALL_RUNS / 4] * sp.par_ns / sp.serial_ns;
        c.overhead_ns = f > 0 ? f : 0;
        /* a one-row product is memory-bound: the 3 MB B runs at half the
         * rate of one in cache, and a product near the threshold has its
         * B in cache (a decode step's layers); one that does not is far
         * above it */
        if (small) c.madd_ns = ts[COST_SMALL_RUNS / 4] / sp.serial_ns * c.madd_ns;
    }
    free(a);
    c.source = "measured";
    return c;
}

static bool tune_off(void) {
    const char *e = getenv("TT_TUNE");
    return e && strcmp(e, "0") == 0;
}

/* The costs the split is chosen with; measures them (once per thread
 * count) only when it can take the pool now, else the default meanwhile. */
static GemmSplitCost split_cost(TtGemm *g, const Sched *sc, int t, bool small) {
    pthread_mutex_lock(&cost_mu);
    bool forced = cost_is_forced;
    GemmSplitCost c = cost_forced;
    pthread_mutex_unlock(&cost_mu);
    if (forced) return c;
    if (tune_off() || t < 2) return gemm_split_cost_default();
    Pool *pl = &g->pool;
    if (t > MAXT) t = MAXT;
    pthread_mutex_lock(&cost_mu);
    c = pl->cost[small][t];
    pthread_mutex_unlock(&cost_mu);
    if (c.source) return c;
    if (pthread_mutex_trylock(&pl->busy) != 0) return gemm_split_cost_default();
    c = measure_cost(g, sc, t, small);
    pthread_mutex_unlock(&pl->busy);
    pthread_mutex_lock(&cost_mu);
    pl->cost[small][t] = c;
    pthread_mutex_unlock(&cost_mu);
    return c;
}

/* The decisions taken, for tt_gemm_explain: one line per distinct shape
 * and thread count. */
#define SPLIT_NOTES 32
typedef struct SplitNote {
    int64_t M, N, K;
    bool ta, tb;
    int nthreads;
    GemmSplit sp;
    GemmSplitCost c;
} SplitNote;
static SplitNote split_notes[SPLIT_NOTES];
static int nsplit_notes;

static void note_split(const SplitNote *n) {
    pthread_mutex_lock(&cost_mu);
    bool dup = false;
    for (int i = 0; i < nsplit_notes && !dup; i++) {
        const SplitNote *o = &split_notes[i];
        dup = o->M == n->M && o->N == n->N && o->K == n->K && o->ta == n->ta && o->tb == n->tb &&
              o->nthreads == n->nthreads;
    }
    if (!dup && nsplit_notes < SPLIT_NOTES) split_notes[nsplit_notes++] = *n;
    pthread_mutex_unlock(&cost_mu);
}

static void explain_splits(FILE *out) {
    pthread_mutex_lock(&cost_mu);
    for (int i = 0; i < nsplit_notes; i++) {
        const SplitNote *n = &split_notes[i];
        fprintf(out, "  threads %lldx%lldx%lld%s%s on %d: %s", (long long)n->M, (long long)n->N,
                (long long)n->K, n->ta ? " tA" : "", n->tb ? " tB" : "", n->nthreads,
                gemm_split_name(n->sp.by));
        if (n->sp.by == GS_K)
            fprintf(out, " (%d parts%s)", n->sp.parts, n->sp.threads > 1 ? "" : ", in turn");
        else if (n->sp.by != GS_SERIAL)
            fprintf(out, " (%d threads)", n->sp.threads);
        fprintf(out,
                "; model: serial %.1f us, threaded %.1f us; madd %.4f ns, fixed %.1f us (%s)\n",
                n->sp.serial_ns * 1e-3, n->sp.par_ns * 1e-3, n->c.madd_ns, n->c.overhead_ns * 1e-3,
                n->c.source);
    }
    pthread_mutex_unlock(&cost_mu);
}

static void run_sched(TtGemm *g, const Sched *sc, int64_t M, int64_t N, int64_t K, const float *A,
                      int64_t lda, bool transA, const BSrc *bs, float *C, int64_t ldc,
                      const TtGemmOut *map, bool accumulate, int nthreads,
                      const TtGemmEpilogue *epi) {
    bool transB = bs->gat || bs->tb;
    int t = nthreads < 1 ? 1 : nthreads > MAXT ? MAXT : nthreads;
    if (t > 1) {
        GemmSplitCost c = split_cost(g, sc, t, M <= GEMM_GEMV_MR && !bs->gat);
        const GemmTileKernels *tk = &sc->k->wide;
        GemmSplit sp = gemm_split_choose(M, N, K, tk->tile.mr, tk->tile.nr, KC, sc->nc, t,
                                         bs->gat != NULL, &c);
        note_split(&(SplitNote){M, N, K, transA, transB, t, sp, c});
        if (sp.by == GS_K &&
            run_k(g, sc, &sp, M, N, K, A, lda, transA, bs, C, ldc, map, accumulate, epi))
            return;
        if ((sp.by == GS_M || sp.by == GS_N) && pthread_mutex_trylock(&g->pool.busy) == 0) {
            run_mn(g, sc, &sp, M, N, K, A, lda, transA, bs, C, ldc, map, accumulate, epi);
            pthread_mutex_unlock(&g->pool.busy);
            return;
        }
    }
    CDst cd = {C, ldc, map, 0};
    gemm_serial(sc, M, N, K, A, lda, transA, bs, &cd, accumulate, epi, 0, M, NULL);
}
