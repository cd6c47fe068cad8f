/* ctune.c - convolution lowerings chosen by measurement (ctune.h).
 *
 * The rule of lp_conv_uses_gemm and conv_implicit (lower.c) was measured
 * on one host with bench/bench_conv.c. Which lowering wins moves with the
 * cache sizes, the vector width and how the GEMM's tile fits the shape, so
 * the host is asked, as for the GEMM's tile: the first time a process
 * compiles a conv2d, conv2d_backward_input or conv2d_backward_weight of a
 * geometry (the op, its operands' shapes, stride, padding, dilation,
 * groups), that op alone is compiled with each lowering (the rule's choice,
 * direct, explicit im2col, implicit im2col) and timed on one thread; the
 * rule's choice stays unless another beats it by 3%, and the winner is
 * stored in the tuning cache under the host CPU, a hash of its features and
 * the geometry. Timing as the GEMM tuner's: the calling thread's CPU time,
 * 3 interleaved rounds of about 4 ms each, the best round of each.
 *
 * Results may differ in the last bits between lowerings (the GEMM's K
 * blocks sum in another order than the direct loop nest): each is checked
 * against the reference by the conv tests; the choice is fixed per host
 * once stored, so a script's results do not change from run to run.
 *
 * Not tuned (the rule): TT_TUNE=0, no tuning cache, a busy machine (the
 * GEMM tuner's rule; TT_TUNE=1 tunes anyway); a jit_set_conv_lowering mode
 * (or TT_JIT_CONV) overrides everything.
 */
#include "ctune.h"

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

#define MAXGEO 64
#define NCAND  4

typedef enum { CS_RULE_OFF, CS_NOCACHE, CS_BUSY, CS_CACHE, CS_TUNED, CS_FAILED } ConvSource;

typedef struct Geo {
    char key[256]; /* the geometry, readable */
    ConvSource src;
    LpConvLowering mode;
    double us[NCAND]; /* timed: best round, us per run (0: not timed) */
    double load;
} Geo;

static const LpConvLowering cand[NCAND] = {LP_CONV_AUTO, LP_CONV_DIRECT, LP_CONV_IM2COL,
                                           LP_CONV_IMPLICIT};
static const char *const cand_name[NCAND] = {"the rule", "direct", "im2col", "implicit"};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* set while this thread times candidates: their compiles (the rule's
 * candidate is LP_CONV_AUTO) take the rule, never a nested tuning */
static _Thread_local bool timing;
static Geo geos[MAXGEO];
static int ngeo;
static char host_cpu[64];
static uint64_t host_features;

static void host(void) {
    bool avx512;
    if (!host_cpu[0]) tt_tune_host(host_cpu, sizeof host_cpu, &host_features, &avx512);
}

static bool is_conv(const IrNode *n) {
    return (n->op == OP_CONV2D || n->op == OP_CONV2D_BACKWARD_INPUT ||
            n->op == OP_CONV2D_BACKWARD_WEIGHT) &&
           n->dtype == TY_F32 && shape_numel(&n->shape) > 0;
}

static int put_shape(char *b, size_t cap, const Shape *s) {
    int n = snprintf(b, cap, "[");
    for (int k = 0; k < s->ndim; k++)
        n += snprintf(b + n, cap - (size_t)n, "%s%lld", k ? "," : "", (long long)s->d[k]);
    return n + snprintf(b + n, cap - (size_t)n, "]");
}

/* "conv2d x[64,1,28,28] w[16,1,5,5] s1,1 p2,2 d1,1 g1" */
static void geometry(const IrGraph *g, const IrNode *n, char *b, size_t cap) {
    int k = snprintf(b, cap, "%s", ir_ops[n->op].name);
    for (int i = 0; i < n->nin && i < 2; i++) {
        k += snprintf(b + k, cap - (size_t)k, " ");
        k += put_shape(b + k, cap - (size_t)k, &ir_node(g, n->in[i])->shape);
    }
    k += snprintf(b + k, cap - (size_t)k, " -> ");
    k += put_shape(b + k, cap - (size_t)k, &n->shape);
    const IrWindow *w = &n->attr.win;
    snprintf(b + k, cap - (size_t)k, " s%lld,%lld p%lld,%lld d%lld,%lld g%lld",
             (long long)w->stride[0], (long long)w->stride[1], (long long)w->padding[0],
             (long long)w->padding[1], (long long)w->dilation[0], (long long)w->dilation[1],
             (long long)w->groups);
}

static bool cache_load(const char *key, Geo *o) {
    char text[256];
    if (!objcache_load_text(key, text, sizeof text)) return false;
    int mode;
    double us[NCAND];
    if (sscanf(text, "%d %lf %lf %lf %lf", &mode, &us[0], &us[1], &us[2], &us[3]) != 5 ||
        mode < LP_CONV_AUTO || mode > LP_CONV_IMPLICIT)
        return false;
    o->mode = (LpConvLowering)mode;
    memcpy(o->us, us, sizeof us);
    return true;
}

static void cache_store(const char *key, const Geo *o) {
    char text[256];
    int n = snprintf(text, sizeof text, "%d %.3f %.3f %.3f %.3f\n", (int)o->mode, o->us[0],
                     o->us[1], o->us[2], o->us[3]);
    objcache_store(key, text, (size_t)n);
}

static const SrcLoc L0 = {0};

static void set_lowering(Jit *j, int c, void *arg) {
    (void)arg;
    jit_set_conv_lowering(j, (int)cand[c]);
}

/* Times node id of g alone with each candidate lowering (tunetime.h);
 * false when one cannot be built or run. */
static bool tune(const IrGraph *g, int id, Geo *o) {
    const IrNode *n = ir_node(g, id);
    IrGraph m;
    ir_init(&m);
    int ins[3];
    for (int i = 0; i < n->nin; i++)
        ins[i] = ir_input(&m, ir_node(g, n->in[i])->dtype, ir_node(g, n->in[i])->shape, NULL, L0);
    int y = ir_add(&m, n->op, ins, n->nin, &n->attr, L0);
    if (y >= 0) ir_mark_output(&m, y);
    bool ok = y >= 0 && jit_time_candidates(&m, NCAND, set_lowering, NULL, o->us);
    ir_free(&m);
    if (!ok) return false;
    o->mode = cand[jit_time_winner(o->us, NCAND)]; /* the rule unless beaten by 3% */
    return true;
}

/* The decision for node id (mu held). */
static LpConvLowering decide(const IrGraph *g, int id, const char *tune_env) {
    char key[256];
    geometry(g, ir_node(g, id), key, sizeof key);
    for (int i = 0; i < ngeo; i++)
        if (!strcmp(geos[i].key, key)) return geos[i].mode;
    Geo o = {0};
    bool ok;
    snprintf(o.key, sizeof o.key, "%s", key);
    o.mode = LP_CONV_AUTO;
    host();
    /* v2: "direct" became the lanes lowering (lower_conv_lanes.c) and the
     * rule changed with it, so v1's measurements no longer describe the
     * candidates */
    char *ck = tt_tune_key("tt-conv-lowering v2", host_cpu, host_features, key);
    char path[4096];
    if (!ck || !objcache_path(ck, path, sizeof path))
        o.src = CS_NOCACHE;
    else if (cache_load(ck, &o))
        o.src = CS_CACHE;
    else if (!(tune_env && !strcmp(tune_env, "1")) && tt_tune_busy(&o.load))
        o.src = CS_BUSY;
    else if ((timing = true, ok = tune(g, id, &o), timing = false, ok)) {
        o.src = CS_TUNED;
        cache_store(ck, &o);
    } else {
        o.src = CS_FAILED;
        o.mode = LP_CONV_AUTO;
        memset(o.us, 0, sizeof o.us);
    }
    free(ck);
    if (ngeo < MAXGEO) geos[ngeo++] = o;
    return o.mode;
}

LpConvLowering *jit_conv_modes(const IrGraph *g) {
    const char *t = getenv("TT_TUNE");
    if (timing || (t && !strcmp(t, "0"))) return NULL;
    LpConvLowering *modes = NULL;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < g->n; i++) {
        if (!is_conv(ir_node(g, i))) continue;
        if (!modes) modes = calloc((size_t)g->n, sizeof *modes); /* LP_CONV_AUTO is 0 */
        if (!modes) break;
        modes[i] = decide(g, i, t);
    }
    pthread_mutex_unlock(&mu);
    return modes;
}

void jit_conv_explain(FILE *out) {
    static const char *const why[] = {
        [CS_RULE_OFF] = "TT_TUNE=0", [CS_NOCACHE] = "no tuning cache: not tuned",
        [CS_BUSY] = "machine busy",  [CS_CACHE] = "tuned earlier on this host (tuning cache)",
        [CS_TUNED] = "tuned now",    [CS_FAILED] = "timing failed",
    };
    pthread_mutex_lock(&mu);
    if (ngeo > 0) fprintf(out, "conv lowerings (host %s, %d geometries):\n", host_cpu, ngeo);
    for (int i = 0; i < ngeo; i++) {
        const Geo *o = &geos[i];
        int m = 0;
        for (int c = 0; c < NCAND; c++)
            if (cand[c] == o->mode) m = c;
        fprintf(out, "  %s: %s, %s", o->key, cand_name[m], why[o->src]);
        if (o->src == CS_BUSY)
            fprintf(out, ": load %.1f on %ld cores; not tuned, TT_TUNE=1 tunes anyway", o->load,
                    sysconf(_SC_NPROCESSORS_ONLN));
        fputc('\n', out);
        for (int c = 0; c < NCAND && o->us[0] > 0; c++)
            fprintf(out, "      %s %s: %.1f us\n", c == m ? "*" : " ", cand_name[c], o->us[c]);
    }
    pthread_mutex_unlock(&mu);
}
