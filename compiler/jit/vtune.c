/* vtune.c - the vector schedule of the JIT's vectorized loops, chosen by
 * measurement (vtune.h).
 *
 * LLVM's loop vectorizer picks a width and an interleave for each loop from
 * its cost model of the target CPU. That model is a table, and the hosts of
 * this project disagree with tables: a Zen 4 runs 512-bit vectors as two
 * 256-bit halves, a Zen 5 at full width, and an Intel server lowers its
 * clock for them. So, as for the GEMM's tile, the host is asked: a small
 * graph of the kernels a training step is made of (a fused elementwise
 * chain, an exp-heavy chain, a row reduction and a column reduction over
 * L2-resident [64, 512] operands) is compiled with each candidate schedule
 * and timed, and every vectorized loop of every later graph gets the
 * winner's llvm.loop.vectorize.width and llvm.loop.interleave.count.
 *
 * Candidates: LLVM's choice (no hint), 8 lanes x 1, 2, 4, and on hosts with
 * AVX-512F 16 lanes x 1, 2. Timing as the GEMM tuner's: the calling
 * thread's CPU time, 3 rounds interleaved over the candidates, the best
 * round of each; LLVM's choice stays unless beaten by 3%. Results never
 * depend on the schedule: a vectorized loop is one whose iterations are
 * independent (reductions keep their own lanes in the loop IR, reduce.c's
 * order), so the width only changes how many run at once.
 *
 * Not tuned (LLVM's choice, nothing stored): TT_TUNE=0; no tuning cache
 * (TT_CACHE_DIR=off: a process would pay the timing, about half a second,
 * every time); a busy machine, as for the GEMM (the 1-minute load average
 * above 3/4 of the cores; TT_TUNE=1 tunes anyway).
 */
#include "vtune.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jit.h"
#include "objcache.h"
#include "tunehost.h"
#include "tunetime.h"

#define MAXCAND 6

typedef enum { VS_NONE, VS_OFF, VS_NOCACHE, VS_BUSY, VS_CACHE, VS_TUNED, VS_FAILED } VecSource;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static bool decided;
static VecSource src;
static JitVec chosen;
static double load_seen;
static char host_cpu[64];
static bool host_avx512;
static int ncand;
static JitVec cand[MAXCAND];
static double best_us[MAXCAND]; /* a timed alternative: its best round, us per run */
static int nalt;

static void host(uint64_t *fhash) {
    tt_tune_host(host_cpu, sizeof host_cpu, fhash, &host_avx512);
}

static void candidates(void) {
    static const JitVec all[] = {{0, 0}, {8, 1}, {8, 2}, {8, 4}, {16, 1}, {16, 2}};
    ncand = 0;
    for (int i = 0; i < (int)(sizeof all / sizeof all[0]); i++)
        if (all[i].width < 16 || host_avx512) cand[ncand++] = all[i];
}

static char *cache_key(uint64_t fhash) {
    char cands[128];
    int n = 0;
    for (int i = 0; i < ncand; i++)
        n += snprintf(cands + n, sizeof cands - (size_t)n, "%d/%d,", cand[i].width,
                      cand[i].interleave);
    char rest[160];
    snprintf(rest, sizeof rest, "candidates=%s", cands);
    return tt_tune_key("tt-vec-schedule v1", host_cpu, fhash, rest);
}

static bool is_candidate(JitVec v) {
    for (int i = 0; i < ncand; i++)
        if (cand[i].width == v.width && cand[i].interleave == v.interleave) return true;
    return false;
}

static bool cache_load(const char *key) {
    char text[512];
    if (!objcache_load_text(key, text, sizeof text)) return false;
    JitVec v;
    int off = 0;
    if (sscanf(text, "%d %d%n", &v.width, &v.interleave, &off) != 2 || !is_candidate(v))
        return false;
    chosen = v;
    nalt = 0;
    const char *p = text + off;
    JitVec a;
    double us;
    int k;
    while (nalt < ncand && sscanf(p, " alt %d %d %lf%n", &a.width, &a.interleave, &us, &k) == 3) {
        if (!is_candidate(a)) return false;
        cand[nalt] = a;
        best_us[nalt++] = us;
        p += k;
    }
    return true;
}

static void cache_store(const char *key) {
    char text[512];
    int n = snprintf(text, sizeof text, "%d %d\n", chosen.width, chosen.interleave);
    for (int i = 0; i < nalt; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "alt %d %d %.3f\n", cand[i].width,
                      cand[i].interleave, best_us[i]);
    objcache_store(key, text, (size_t)n);
}

static bool busy(void) {
    return tt_tune_busy(&load_seen);
}

/* -- the timed graph -- */

#define ROWS 64
#define COLS 512

static const SrcLoc L0 = {0};

static void build(IrGraph *g) {
    ir_init(g);
    Shape s = shape_make(2, (int64_t[]){ROWS, COLS});
    int x = ir_input(g, TY_F32, s, "x", L0), a = ir_input(g, TY_F32, s, "a", L0);
    int b = ir_input(g, TY_F32, s, "b", L0), c = ir_input(g, TY_F32, s, "c", L0);
    int fma = ir_binary(g, OP_ADD, ir_binary(g, OP_MUL, x, a, L0), b, L0);
    ir_mark_output(g, ir_binary(g, OP_MUL, ir_unary(g, OP_RELU, fma, L0), c, L0));
    ir_mark_output(g, ir_binary(g, OP_MUL, ir_unary(g, OP_EXP, x, L0), a, L0));
    int xb = ir_binary(g, OP_MUL, x, b, L0);
    ir_mark_output(g,
                   ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, x, c, L0), (int[]){1}, 1, false, L0));
    ir_mark_output(g, ir_reduce(g, OP_SUM, xb, (int[]){0}, 1, false, L0));
}

static void set_vec(Jit *j, int c, void *arg) {
    (void)arg;
    jit_set_vec(j, cand[c].width, cand[c].interleave);
}

/* Times every candidate on the graph (tunetime.h); false when one cannot
 * be compiled or run. */
static bool tune(void) {
    IrGraph g;
    build(&g);
    bool ok = !g.err[0] && jit_time_candidates(&g, ncand, set_vec, NULL, best_us);
    ir_free(&g);
    if (!ok) return false;
    nalt = ncand;
    chosen = cand[jit_time_winner(best_us, ncand)]; /* LLVM's choice unless beaten by 3% */
    return true;
}

JitVec jit_vec_host(void) {
    pthread_mutex_lock(&mu);
    if (!decided) {
        decided = true;
        uint64_t fhash;
        host(&fhash);
        candidates();
        char path[4096];
        const char *t = getenv("TT_TUNE");
        char *key = cache_key(fhash);
        if (t && !strcmp(t, "0"))
            src = VS_OFF;
        else if (!key || !objcache_path(key, path, sizeof path))
            src = VS_NOCACHE;
        else if (cache_load(key))
            src = VS_CACHE;
        else if (!(t && !strcmp(t, "1")) && busy())
            src = VS_BUSY;
        else if (tune()) {
            src = VS_TUNED;
            cache_store(key);
        } else {
            src = VS_FAILED;
            chosen = (JitVec){0, 0};
            nalt = 0;
        }
        free(key);
    }
    JitVec v = chosen;
    pthread_mutex_unlock(&mu);
    return v;
}

static void put(FILE *out, JitVec v) {
    if (v.width == 0)
        fprintf(out, "LLVM's choice");
    else
        fprintf(out, "%d lanes x %d", v.width, v.interleave);
}

void jit_vec_explain(FILE *out) {
    static const char *const why[] = {
        [VS_NONE] = "",
        [VS_OFF] = "TT_TUNE=0",
        [VS_NOCACHE] = "no tuning cache: not tuned",
        [VS_BUSY] = "machine busy",
        [VS_CACHE] = "tuned earlier on this host (tuning cache)",
        [VS_TUNED] = "tuned now",
        [VS_FAILED] = "timing failed",
    };
    pthread_mutex_lock(&mu);
    if (decided) {
        fprintf(out, "vector loops (host %s%s, %d candidates): ", host_cpu,
                host_avx512 ? " avx512" : "", ncand);
        put(out, chosen);
        fprintf(out, ", %s", why[src]);
        if (src == VS_BUSY)
            fprintf(out, ": load %.1f on %ld cores; not tuned, TT_TUNE=1 tunes anyway", load_seen,
                    sysconf(_SC_NPROCESSORS_ONLN));
        fputc('\n', out);
        for (int i = 0; i < nalt; i++) {
            bool star = cand[i].width == chosen.width && cand[i].interleave == chosen.interleave;
            fprintf(out, "      %s ", star ? "*" : " ");
            put(out, cand[i]);
            fprintf(out, ": %.1f us\n", best_us[i]);
        }
    }
    pthread_mutex_unlock(&mu);
}
