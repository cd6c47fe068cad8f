/* parcost.c - the cost model of parallel loops (see parcost.h): the host's
 * figures, measured once, and the decisions lp_schedule took with them. */
#include "parcost.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parallel.h"

#define MAXT        64
#define NOTES       64
#define DEF_UNIT_NS 0.25
#define DEF_OVH_NS  8192.0 /* with DEF_UNIT_NS: parallel above 2^16 units at 2 threads */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static LpParCost measured[MAXT + 1]; /* by thread count; unit_ns 0: not yet */
static LpParCost forced;
static int have_forced;

typedef struct Note {
    char kernel[32];
    int64_t work;
    int nthreads, chosen;
    double serial_ns, par_ns;
} Note;
static Note notes[NOTES];
static int nnotes, nmore;

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e9 * (double)ts.tv_sec + (double)ts.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, by_value);
    return v[n / 2];
}

LpParCost lp_par_cost_default(int nthreads) {
    return (LpParCost){DEF_UNIT_NS, DEF_OVH_NS, nthreads, "default (TT_TUNE=0)"};
}

/* One innermost statement of a streaming kernel, as the JIT emits them
 * (vectorized, L2-resident operands): the unit of lp_work. */
__attribute__((noinline)) static void stream(float *restrict y, const float *restrict x,
                                             int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = y[i] * 0.999f + x[i];
}

enum { N = 16384, BLOCK = 256 };

/* The stream over blocks lo..hi of BLOCK floats: bufs = {y, x}. */
static void stream_body(void **bufs, int64_t lo, int64_t hi) {
    stream((float *)bufs[0] + lo * BLOCK, (const float *)bufs[1] + lo * BLOCK, (hi - lo) * BLOCK);
}

/* overhead: a stream of N floats split on t threads against the same on
 * one, interleaved, medians: par - ser / t. An empty body measured nothing
 * once the workers spin between jobs (the caller claimed every range
 * before a worker looked); this makes each thread take its share. */
#define RUNS 31
static LpParCost measure(int nthreads) {
    float *x = calloc(N, sizeof *x), *y = calloc(N, sizeof *y);
    double ts[RUNS], tp[RUNS];
    LpParCost c = lp_par_cost_default(nthreads);
    if (!x || !y) goto out; /* no memory to measure with: the default */
    void *bufs[2] = {y, x};
    stream(y, x, N);
    for (int r = 0; r < 5; r++) ttrt_parallel_for(stream_body, bufs, N / BLOCK, nthreads);
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_ns();
        stream(y, x, N);
        double t1 = now_ns();
        ttrt_parallel_for(stream_body, bufs, N / BLOCK, nthreads);
        tp[r] = now_ns() - t1;
        ts[r] = t1 - t0;
    }
    double ser = median(ts, RUNS), par = median(tp, RUNS);
    c.unit_ns = ser / N;
    c.overhead_ns = par - ser / nthreads > 0 ? par - ser / nthreads : 0;
    if (c.unit_ns < 0.01) c.unit_ns = 0.01; /* below the clock's resolution */
    c.source = "measured";
out:
    free(x);
    free(y);
    return c;
}

static int tune_off(void) {
    const char *e = getenv("TT_TUNE");
    return e && strcmp(e, "0") == 0;
}

LpParCost lp_par_cost(int nthreads) {
    int t = nthreads < 1 ? 1 : nthreads > MAXT ? MAXT : nthreads;
    pthread_mutex_lock(&mu);
    LpParCost c;
    if (have_forced) {
        c = forced;
        c.nthreads = t;
    } else if (tune_off()) {
        c = lp_par_cost_default(t);
    } else {
        if (measured[t].unit_ns == 0) measured[t] = measure(t);
        c = measured[t];
    }
    pthread_mutex_unlock(&mu);
    return c;
}

void lp_par_cost_set(const LpParCost *c) {
    pthread_mutex_lock(&mu);
    have_forced = c != NULL;
    if (c) forced = *c;
    pthread_mutex_unlock(&mu);
}

int lp_par_threads(int64_t work, int64_t extent, int nthreads, const LpParCost *c,
                   double *serial_ns, double *par_ns) {
    int t = extent < nthreads ? (int)extent : nthreads;
    double s = (double)work * c->unit_ns;
    double p = t > 1 ? s / t + c->overhead_ns : s;
    if (serial_ns) *serial_ns = s;
    if (par_ns) *par_ns = p;
    return t > 1 && p < s ? t : 1;
}

void lp_par_note(const char *kernel, int64_t work, int nthreads, int chosen, double serial_ns,
                 double par_ns) {
    pthread_mutex_lock(&mu);
    int dup = 0;
    for (int i = 0; i < nnotes && !dup; i++)
        dup = notes[i].work == work && notes[i].nthreads == nthreads &&
              strncmp(notes[i].kernel, kernel, sizeof notes[i].kernel - 1) == 0;
    if (!dup && nnotes < NOTES) {
        Note *n = &notes[nnotes++];
        *n = (Note){.work = work,
                    .nthreads = nthreads,
                    .chosen = chosen,
                    .serial_ns = serial_ns,
                    .par_ns = par_ns};
        snprintf(n->kernel, sizeof n->kernel, "%s", kernel);
    } else if (!dup) {
        nmore++;
    }
    pthread_mutex_unlock(&mu);
}

/* chosen: the threads; 1 serial by cost; 0 serial because the loop's
 * iterations are not independent. */
static const char *verdict(int chosen, char *buf, size_t n) {
    if (chosen == 0) return "serial (iterations not independent)";
    if (chosen == 1) return "serial (cheaper)";
    snprintf(buf, n, "threaded on %d", chosen);
    return buf;
}

void lp_par_explain(FILE *out) {
    pthread_mutex_lock(&mu);
    int n = nnotes, more = nmore;
    Note copy[NOTES];
    memcpy(copy, notes, sizeof copy);
    pthread_mutex_unlock(&mu);
    if (n == 0) return;
    fprintf(out, "threads: a kernel's loop runs on t threads when work*unit/t + overhead(t) "
                 "< work*unit\n");
    int seen[MAXT + 1] = {0};
    for (int i = 0; i < n; i++) {
        int t = copy[i].nthreads < MAXT ? copy[i].nthreads : MAXT;
        if (seen[t]) continue;
        seen[t] = 1;
        LpParCost c = lp_par_cost(t);
        fprintf(out, "threads: %d threads: unit %.3f ns, overhead %.1f us (%s)\n", t, c.unit_ns,
                c.overhead_ns * 1e-3, c.source);
    }
    char buf[32];
    for (int i = 0; i < n; i++)
        fprintf(out, "threads: %-32s work %12lld  serial %10.1f us  parallel %10.1f us  -> %s\n",
                copy[i].kernel, (long long)copy[i].work, copy[i].serial_ns * 1e-3,
                copy[i].par_ns * 1e-3, verdict(copy[i].chosen, buf, sizeof buf));
    if (more) fprintf(out, "threads: (%d more decisions)\n", more);
}
