/* gemm_tune.c - GEMM schedules chosen by measurement (gemm.h, "schedules").
 *
 * A product's class is its shape in size buckets plus its transposes. Each
 * class's schedule is decided on its first product in the process:
 *   1. TT_GEMM_LANES=8|16 restricts the candidates to that tile;
 *   2. TT_TUNE=0: the shipped default table (reproducible: CI, tests);
 *   3. else the tuning cache (objcache.h: same directory, same trust rules,
 *      key = host CPU + features hash + class + candidate set), else the
 *      candidates are timed on that product and the winner is stored --
 *      unless the machine is busy (below) and TT_TUNE is not 1;
 *   4. products too small to time well (and M <= GEMM_GEMV_MR, which take
 *      the unpacked path) keep the default.
 * Every candidate has KC = 256: the K blocks decide the summation order,
 * so a tuned schedule can never change a result (bit-identical to the
 * default; tests/gemm/test_gemm_sched.c checks every candidate).
 *
 * The default table was measured on the hosts the project runs on: on AMD
 * (znver4, double-pumped AVX-512; and znver5, per issue 15) the 16-lane
 * 12x32 tile is slower than 6x16 on wide products (bench_gemm, 1 thread,
 * square 1024: 66 against 82-87 GFLOP/s on Zen 4), but its narrow 12x16
 * tile wins where N <= 16 (H.W2 [64,128]@[128,10]: 66 against 50). On
 * Intel hosts with AVX-512 the 12x32 tile was the tuned one.
 *
 * A busy machine: timings taken while other processes share the cores
 * measure them (CPU time included: caches and the SMT sibling are shared).
 * Entries tuned that way under a load of 5-17 on 2 cores put 12x32 tiles
 * on classes where they ran at 40% of the default's speed, and a stored
 * winner is kept for good. So when the 1-minute load average exceeds 3/4
 * of the online cores (this process's own running thread is about 1), a
 * class takes the default table for this process and stores nothing; a
 * later process on a quieter machine tunes it. TT_TUNE=1 tunes anyway. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gemm_internal.h"
#include "objcache.h"
#include "tunehost.h"

#define NB        5 /* size buckets per dimension */
#define NCLASS    (NB * NB * NB * 4)
#define MAXCAND   8
#define MAXSHAPES 64
#define TUNE_MIN  2e5 /* multiply-adds below which a product is not timed */
#define KC_ALL    256

typedef enum { SRC_DEFAULT, SRC_OFF, SRC_FORCED, SRC_SMALL, SRC_CACHE, SRC_TUNED, SRC_BUSY } Source;

typedef struct Class {
    /* set (release) once s is final: a product of a decided class reads s
     * without the lock */
    atomic_bool decided;
    Source src;
    TtGemmSchedule s;
    double load; /* SRC_BUSY: the load average seen */
    int nalt;
    TtGemmSchedule alt[MAXCAND];
    double gflops[MAXCAND];
} Class;

typedef struct Shape {
    int64_t M, N, K;
    bool ta, tb;
    int cls;
    atomic_long count;
} Shape;

struct GemmTuner {
    pthread_mutex_t mu;
    GemmHost host;
    int forced; /* TT_GEMM_LANES, or 0 */
    bool tune;  /* TT_TUNE is not 0 */
    bool force; /* TT_TUNE=1: tune even on a busy machine */
    int ncand;
    TtGemmSchedule cand[MAXCAND];
    Class cls[NCLASS];
    /* shapes[0..nshapes) are final: an entry is filled before nshapes
     * counts it (release), so a known shape is found without the lock */
    atomic_int nshapes;
    Shape shapes[MAXSHAPES];
};

static TtGemmSchedule sched(int lanes, int mc, int nc) {
    TtGemmSchedule s = {.lanes = lanes, .mc = mc, .kc = KC_ALL, .nc = nc};
    if (lanes == 16) {
        s.mr = 12, s.nr = 32, s.ku = 1;
    } else {
        s.mr = 6, s.nr = 16, s.ku = 4;
    }
    return s;
}

static bool same(const TtGemmSchedule *a, const TtGemmSchedule *b) {
    return a->lanes == b->lanes && a->mc == b->mc && a->kc == b->kc && a->nc == b->nc;
}

GemmTuner *gemm_tuner_new(void) {
    GemmTuner *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    pthread_mutex_init(&t->mu, NULL);
    gemm_jit_host(&t->host);
    const char *env = getenv("TT_GEMM_LANES");
    if (env && (!strcmp(env, "8") || !strcmp(env, "16"))) t->forced = atoi(env);
    const char *tune = getenv("TT_TUNE");
    t->tune = !(tune && !strcmp(tune, "0"));
    t->force = tune && !strcmp(tune, "1");
    /* the tiles: both where the CPU has AVX-512 (either may win there),
     * else 6x16 (a 16-lane tile split into halves by LLVM only loses);
     * blockings: MC 144 / NC 4080 (the tuned default), a half-height A
     * block for small L2s, a quarter-width B block for small L3 shares */
    static const int blk[][2] = {{144, 4080}, {72, 4080}, {144, 1020}};
    for (int l = 8; l <= 16; l += 8) {
        if (t->forced ? l != t->forced : (l == 16 && !t->host.avx512)) continue;
        for (int b = 0; b < 3; b++) t->cand[t->ncand++] = sched(l, blk[b][0], blk[b][1]);
    }
    return t;
}

void gemm_tuner_free(GemmTuner *t) {
    if (!t) return;
    pthread_mutex_destroy(&t->mu);
    free(t);
}

int gemm_tuner_candidates(const GemmTuner *t, TtGemmSchedule *out, int max) {
    int n = t->ncand < max ? t->ncand : max;
    for (int i = 0; i < n; i++) out[i] = t->cand[i];
    return n;
}

static int bucket(int64_t x) {
    return x <= 16 ? 0 : x <= 64 ? 1 : x <= 256 ? 2 : x <= 1024 ? 3 : 4;
}

static int class_of(int64_t M, int64_t N, int64_t K, bool ta, bool tb) {
    return ((bucket(M) * NB + bucket(N)) * NB + bucket(K)) * 4 + ta * 2 + tb;
}

static const char *const bucket_name[NB] = {"<=16", "<=64", "<=256", "<=1024", ">1024"};

/* The shipped table (see the top of the file). */
static TtGemmSchedule default_for(const GemmTuner *t, int64_t N) {
    if (t->forced) return sched(t->forced, 144, 4080);
    if (!t->host.avx512) return sched(8, 144, 4080);
    bool amd = !strncmp(t->host.cpu, "znver", 5);
    if (amd) return sched(N <= 16 ? 16 : 8, 144, 4080);
    return sched(16, 144, 4080);
}

TtGemmSchedule gemm_tuner_default_square(const GemmTuner *t) {
    return default_for(t, 1024);
}

/* ---- the tuning cache: text payload, "lanes mc kc nc" then one
 * "alt lanes mc kc nc gflops" line per timed candidate ---- */

static char *cache_key(const GemmTuner *t, int c) {
    char cands[256];
    int n = 0;
    for (int i = 0; i < t->ncand && n < (int)sizeof cands - 32; i++)
        n += snprintf(cands + n, sizeof cands - (size_t)n, "%d/%d/%d/%d,", t->cand[i].lanes,
                      t->cand[i].mc, t->cand[i].kc, t->cand[i].nc);
    char rest[300];
    snprintf(rest, sizeof rest, "class=%d candidates=%s", c, cands);
    return tt_tune_key("tt-gemm-schedule v2", t->host.cpu, t->host.features, rest);
}

static bool is_candidate(const GemmTuner *t, const TtGemmSchedule *s) {
    for (int i = 0; i < t->ncand; i++)
        if (same(&t->cand[i], s)) return true;
    return false;
}

/* A cached decision; false on a miss or an entry that does not parse as
 * one of today's candidates (then the class is tuned again). */
static bool cache_load(const GemmTuner *t, int c, Class *out) {
    Class tmp = *out, *cl = &tmp; /* out changes only on success */
    char *key = cache_key(t, c);
    void *bytes = NULL;
    size_t len = 0;
    bool ok = key && objcache_load(key, &bytes, &len);
    free(key);
    if (!ok) return false;
    char *text = malloc(len + 1);
    if (!text) {
        free(bytes);
        return false;
    }
    memcpy(text, bytes, len);
    text[len] = 0;
    free(bytes);
    int l, mc, kc, nc, off = 0;
    ok = sscanf(text, "%d %d %d %d%n", &l, &mc, &kc, &nc, &off) == 4 && (l == 8 || l == 16);
    if (ok) {
        TtGemmSchedule s = sched(l, mc, nc);
        s.kc = kc;
        ok = is_candidate(t, &s);
        cl->s = s;
        cl->nalt = 0;
        const char *p = text + off;
        double gf;
        int n;
        while (ok && cl->nalt < MAXCAND &&
               sscanf(p, " alt %d %d %d %d %lf%n", &l, &mc, &kc, &nc, &gf, &n) == 5) {
            TtGemmSchedule a = sched(l == 16 ? 16 : 8, mc, nc);
            a.kc = kc;
            cl->alt[cl->nalt] = a;
            cl->gflops[cl->nalt++] = gf;
            p += n;
        }
    }
    free(text);
    if (ok) *out = tmp;
    return ok;
}

static void cache_store(const GemmTuner *t, int c, const Class *cl) {
    char text[64 + MAXCAND * 64];
    int n = snprintf(text, sizeof text, "%d %d %d %d\n", cl->s.lanes, cl->s.mc, cl->s.kc, cl->s.nc);
    for (int i = 0; i < cl->nalt; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "alt %d %d %d %d %.2f\n", cl->alt[i].lanes,
                      cl->alt[i].mc, cl->alt[i].kc, cl->alt[i].nc, cl->gflops[i]);
    char *key = cache_key(t, c);
    if (key) objcache_store(key, text, (size_t)n);
    free(key);
}

/* Times every candidate (in CPU time of the calling thread, see
 * time_sched): rounds interleaved (load from other processes hits all
 * alike), the best round of each kept. The default keeps its place unless
 * a candidate beats it by 3%: a near-tie is noise, and the default is what
 * every other host of the kind runs. */
static void tune(GemmTuner *t, Class *cl, double flop, GemmTimeFn time, void *ctx) {
    double best[MAXCAND] = {0};
    /* about 10 ms of products per candidate per round, 3 rounds; a single
     * product longer than that gets one call per round */
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < t->ncand; i++) {
            double s = time(ctx, &t->cand[i]);
            if (s <= 0) continue;
            int reps = s > 0.01 ? 1 : (int)(0.01 / s) + 1;
            double sum = 0;
            for (int r = 0; r < reps; r++) sum += time(ctx, &t->cand[i]);
            double gf = flop / (sum / reps) * 1e-9;
            if (gf > best[i]) best[i] = gf;
        }
    int win = -1;
    cl->nalt = 0;
    for (int i = 0; i < t->ncand; i++) {
        if (best[i] <= 0) continue;
        cl->alt[cl->nalt] = t->cand[i];
        cl->gflops[cl->nalt++] = best[i];
        if (win < 0 || best[i] > best[win]) win = i;
    }
    if (win < 0) return;
    for (int i = 0; i < t->ncand; i++)
        if (same(&t->cand[i], &cl->s) && best[i] > 0 && best[win] < 1.03 * best[i]) win = i;
    cl->s = t->cand[win];
}

/* A known shape's entry, or NULL; lock-free. */
static Shape *find_shape(GemmTuner *t, int64_t M, int64_t N, int64_t K, bool ta, bool tb) {
    int n = atomic_load_explicit(&t->nshapes, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        Shape *s = &t->shapes[i];
        if (s->M == M && s->N == N && s->K == K && s->ta == ta && s->tb == tb) return s;
    }
    return NULL;
}

TtGemmSchedule gemm_tuner_pick(GemmTuner *t, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
                               GemmTimeFn time, void *ctx) {
    int c = class_of(M, N, K, ta, tb);
    Class *cl = &t->cls[c];
    /* the common case, a shape seen before (a training step's products,
     * microseconds each): no lock */
    if (atomic_load_explicit(&cl->decided, memory_order_acquire)) {
        Shape *sh = find_shape(t, M, N, K, ta, tb);
        if (sh) {
            atomic_fetch_add_explicit(&sh->count, 1, memory_order_relaxed);
            return cl->s;
        }
    }
    pthread_mutex_lock(&t->mu);
    if (!atomic_load_explicit(&cl->decided, memory_order_relaxed)) {
        cl->s = default_for(t, N);
        double madds = (double)M * (double)N * (double)K;
        if (!t->tune)
            cl->src = t->forced ? SRC_FORCED : SRC_OFF;
        else if (t->ncand <= 1 || M <= GEMM_GEMV_MR || madds < TUNE_MIN)
            cl->src = t->forced && t->ncand <= 1 ? SRC_FORCED : SRC_SMALL;
        else if (cache_load(t, c, cl))
            cl->src = SRC_CACHE;
        else if (!t->force && tt_tune_busy(&cl->load))
            cl->src = SRC_BUSY;
        else {
            tune(t, cl, 2 * madds, time, ctx);
            cl->src = cl->nalt > 0 ? SRC_TUNED : SRC_DEFAULT;
            if (cl->nalt > 0) cache_store(t, c, cl);
        }
        atomic_store_explicit(&cl->decided, true, memory_order_release);
    }
    Shape *sh = find_shape(t, M, N, K, ta, tb);
    int n = atomic_load_explicit(&t->nshapes, memory_order_relaxed);
    if (sh)
        atomic_fetch_add_explicit(&sh->count, 1, memory_order_relaxed);
    else if (n < MAXSHAPES) {
        t->shapes[n] = (Shape){M, N, K, ta, tb, c, 1};
        atomic_store_explicit(&t->nshapes, n + 1, memory_order_release);
    }
    TtGemmSchedule s = cl->s;
    pthread_mutex_unlock(&t->mu);
    return s;
}

TtGemmSchedule gemm_tuner_peek(GemmTuner *t, int64_t M, int64_t N, int64_t K, bool ta, bool tb) {
    pthread_mutex_lock(&t->mu);
    const Class *cl = &t->cls[class_of(M, N, K, ta, tb)];
    TtGemmSchedule s = cl->decided ? cl->s : default_for(t, N);
    pthread_mutex_unlock(&t->mu);
    return s;
}

static void put_sched(FILE *out, const TtGemmSchedule *s, int64_t N) {
    int nr = s->lanes == 16 && N <= 16 ? 16 : s->nr;
    fprintf(out, "%dx%d/%d lanes ku%d MC%d KC%d NC%d", s->mr, nr, s->lanes, s->ku, s->mc, s->kc,
            s->nc);
}

void gemm_tuner_explain(GemmTuner *t, FILE *out) {
    static const char *const why[] = {
        [SRC_DEFAULT] = "default table (timing failed)",
        [SRC_OFF] = "default table (TT_TUNE=0)",
        [SRC_FORCED] = "forced by TT_GEMM_LANES",
        [SRC_SMALL] = "default table (too small to tune)",
        [SRC_CACHE] = "tuned earlier on this host (tuning cache)",
        [SRC_TUNED] = "tuned now",
        [SRC_BUSY] = "default table (machine busy",
    };
    pthread_mutex_lock(&t->mu);
    if (t->nshapes == 0) {
        pthread_mutex_unlock(&t->mu);
        return;
    }
    fprintf(out, "gemm schedules (host %s%s, %d candidates):\n", t->host.cpu,
            t->host.avx512 ? " avx512" : "", t->ncand);
    for (int i = 0; i < t->nshapes; i++) {
        const Shape *sh = &t->shapes[i];
        const Class *cl = &t->cls[sh->cls];
        int b = sh->cls / 4;
        fprintf(out, "  %lldx%lldx%lld%s%s (%ld run%s; class M%s N%s K%s): ", (long long)sh->M,
                (long long)sh->N, (long long)sh->K, sh->ta ? " tA" : "", sh->tb ? " tB" : "",
                (long)atomic_load(&sh->count), atomic_load(&sh->count) == 1 ? "" : "s",
                bucket_name[b / (NB * NB)], bucket_name[b / NB % NB], bucket_name[b % NB]);
        if (sh->M <= GEMM_GEMV_MR)
            fprintf(out, "small-M path (B read in place, no tile)\n");
        else if (gemm_is_narrow(sh->M, sh->N) && sh->ta)
            fprintf(out, "narrow, computed as C^T = op(B)^T A: small-M kernels, A read in "
                         "place, C stored transposed\n");
        else {
            if (gemm_is_narrow(sh->M, sh->N)) {
                /* a B in memory (a gathered one runs as the schedule says) */
                TtGemmSchedule sq = gemm_tuner_default_square(t);
                fprintf(out, "narrow, computed as C^T = op(B)^T op(A)^T on ");
                put_sched(out, &sq, 1024);
                fprintf(out, " (a gathered B: ");
            }
            put_sched(out, &cl->s, sh->N);
            if (gemm_is_narrow(sh->M, sh->N)) fputc(')', out);
            fprintf(out, ", %s", why[cl->src]);
            if (cl->src == SRC_BUSY)
                fprintf(out, ": load %.1f on %ld cores; not tuned, TT_TUNE=1 tunes anyway)",
                        cl->load, sysconf(_SC_NPROCESSORS_ONLN));
            fputc('\n', out);
        }
        for (int a = 0; a < cl->nalt && sh->M > GEMM_GEMV_MR; a++) {
            fprintf(out, "      %s ", same(&cl->alt[a], &cl->s) ? "*" : " ");
            put_sched(out, &cl->alt[a], sh->N);
            fprintf(out, ": %.1f GFLOP/s\n", cl->gflops[a]);
        }
    }
    pthread_mutex_unlock(&t->mu);
}
