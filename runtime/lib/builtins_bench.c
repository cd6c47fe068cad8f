/* builtins_bench.c - bench(f, args, runs=100, warmup=10): how long a call
 * takes, measured the way the bench/ programs measure.
 *
 * Each run calls f(*args) and then realizes every pending lazy tensor, so a
 * run's time is the work it asked for, not the building of a graph that
 * would run later. The warm-up runs are not timed: they pay the JIT's
 * compiles and the caches' first touches. The result is a record
 *   (median_ms, min_ms, max_ms, ci95_ms, peak_mb, runs)
 * ci95_ms is the half-width of the distribution-free 95% confidence interval
 * of the median (the order statistics at ranks n/2 -+ 0.98 sqrt(n)); the
 * median is what the project quotes, since the machines are shared and a
 * mean is pulled by the slow outliers they cause. peak_mb: the most tensor
 * data held at once during the timed runs.
 */
#include "builtins_lib.h"
#include "capture.h"
#include "eval.h"

#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + 1e-6 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* args: a list or tuple of f's arguments, or none for no arguments. */
static void run_once(Interp *I, Value f, Value args) {
    /* f's results are discarded: a captured eval-mode call may return them
     * without their graph (capture.c) */
    bool outer = I->cap.bench;
    jmp_buf jb, *saved = I->ev.on_error;
    I->ev.on_error = &jb;
    if (setjmp(jb)) { /* the error is reported; restore, pass it on */
        I->ev.on_error = saved;
        I->cap.bench = outer;
        longjmp(*I->ev.on_error, 1);
    }
    I->cap.bench = true;
    bool seq = is_seq(args);
    Value r = rt_call(I, f, seq ? as_list(args)->items : NULL, seq ? as_list(args)->len : 0, NULL,
                      NULL, 0);
    rt_realize_all(I); /* while r holds its tensors: a dropped one is never computed */
    rt_release(I, r);
    I->cap.bench = outer;
    I->ev.on_error = saved;
}

/* The median of sorted t[0..n-1] and the half-width of its 95% interval. */
static double median_of(const double *t, int n) {
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static double ci95_half_width(const double *t, int n) {
    double h = 0.98 * sqrt((double)n); /* 1.96 sqrt(n) / 2 */
    int lo = (int)floor(n / 2.0 - h), hi = (int)ceil(n / 2.0 + h);
    if (lo < 0) lo = 0;
    if (hi > n - 1) hi = n - 1;
    return 0.5 * (t[hi] - t[lo]);
}

static bool same_loc(SrcLoc a, SrcLoc b) {
    return a.file == b.file && a.line == b.line && a.col == b.col && a.end_line == b.end_line &&
           a.end_col == b.end_col;
}

BUILTIN(bi_bench) {
    static const char *const names[] = {"f", "args", "runs", "warmup", NULL};
    Value a[4];
    BIND("bench", names, 1, a);
    /* read before f runs: f's own statements change it */
    bool top = I->ev.top_stmt && same_loc(I->ev.top_stmt->loc, I->ev.loc);
    SrcLoc at = I->ev.loc;
    Value f = a[0], fargs = a[1];
    if (f.kind != V_FUNC && f.kind != V_BUILTIN && f.kind != V_MODEL)
        rt_error(I, "bench: f must be a function, builtin or model, got %s", rt_type_name(f));
    int64_t runs = lib_int(I, a[2], 100, "bench", "runs");
    int64_t warmup = lib_int(I, a[3], 10, "bench", "warmup");
    if (runs < 1 || runs > 1000000)
        rt_error(I, "bench: runs must be in 1..1000000, got %lld", (long long)runs);
    if (warmup < 0 || warmup > 1000000)
        rt_error(I, "bench: warmup must be in 0..1000000, got %lld", (long long)warmup);
    if (a[1].kind != V_NONE && !is_seq(a[1]))
        rt_error(I, "bench: args must be a list or tuple of f's arguments, got %s",
                 rt_type_name(a[1]));
    rt_realize_all(I); /* what came before is not part of the first run */
    for (int64_t i = 0; i < warmup; i++) run_once(I, f, fargs);

    /* Static, so an error in f (which longjmps out) leaves nothing unreachable. */
    static double *t;
    static int64_t cap;
    if (runs > cap) {
        cap = runs;
        t = tt_xrealloc(t, (size_t)cap * sizeof *t);
    }
    rt_mem_peak_reset();
    for (int64_t i = 0; i < runs; i++) {
        double t0 = now_ms();
        run_once(I, f, fargs);
        t[i] = now_ms() - t0;
    }
    double peak_mb = (double)rt_mem_peak() / 1e6;
    int n = (int)runs;
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    double med = median_of(t, n), ci = ci95_half_width(t, n);

    if (top) {
        I->ev.loc = at;
        fflush(stdout);
        printf("bench %s: median %.4g ms (95%% CI +-%.2g), min %.4g, max %.4g, peak %.3g MB, %d "
               "runs\n",
               f.kind == V_FUNC ? func_display_name(I, (Func *)f.o) : rt_type_name(f), med, ci,
               t[0], t[n - 1], peak_mb, n);
        fflush(stdout);
    }
    static const char *const fields[] = {"median_ms", "min_ms",  "max_ms",
                                         "ci95_ms",   "peak_mb", "runs"};
    Value rec = rt_record(I, 6, fields);
    Record *r = (Record *)rec.o;
    r->vals[0] = vfloat(med);
    r->vals[1] = vfloat(t[0]);
    r->vals[2] = vfloat(t[n - 1]);
    r->vals[3] = vfloat(ci);
    r->vals[4] = vfloat(peak_mb);
    r->vals[5] = vint(n);
    return rec;
}

/* capture_stats(): the counts of captured calls so far (spec/jit.md,
 * "Captured calls"): (records, hits, misses, given_up). */
BUILTIN(bi_capture_stats) {
    static const char *const names[] = {NULL};
    Value a[1];
    BIND("capture_stats", names, 0, a);
    RtCaptureStats s = rt_capture_stats(I);
    static const char *const fields[] = {"records", "hits", "misses", "given_up"};
    Value rec = rt_record(I, 4, fields);
    Record *r = (Record *)rec.o;
    r->vals[0] = vint(s.records);
    r->vals[1] = vint(s.hits);
    r->vals[2] = vint(s.misses);
    r->vals[3] = vint(s.given_up);
    return rec;
}

void lib_register_bench(Interp *I) {
    rt_define_global(I, "bench", rt_builtin(I, "bench", bi_bench, VNONE));
    rt_define_global(I, "capture_stats", rt_builtin(I, "capture_stats", bi_capture_stats, VNONE));
}
