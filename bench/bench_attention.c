/* bench_attention.c - the fused attention kernel against the same attention
 * built from primitive ops, and against the reference kernel.
 *
 * q, k, v f32[B*H, T, D] with B*H = 4*4, causal (a GPT's self-attention),
 * T = 64 .. 512, D = 32 and 64. Three ways:
 *
 *   fused     the attention op on the JIT: one kernel, online softmax, the
 *             T x T scores never stored (compiler/jit/lower.c)
 *   unfused   softmax(q k^T * scale + mask) v from matmul, where, rmax, exp,
 *             sum, div and matmul, on the JIT (what a model wrote before
 *             the op existed)
 *   naive     the attention op on the reference kernel (rt_naive_run)
 *
 * and forward + backward (the gradients for q, k and v of sum(y * r)), the
 * fused op's forward with each form of its gradient rule
 * (compiler/grad_attn.c):
 *
 *   fused     attention_lse and one attention_grad kernel per gradient, P
 *             recomputed blockwise (forced: grad_attention takes it only
 *             past IR_ATTENTION_FUSED_MIN pairs)
 *   composed  P as matmul and a masked softmax, four matmuls (what
 *             grad_attention takes at these sizes)
 *   unfused   autodiff of the unfused graph
 *   naive     the fused form on the reference kernels (T <= 128)
 *
 * Medians of samples of about 20 ms of
 * process CPU time (1 thread: the figures hold on a loaded machine, where
 * wall-clock time measures the other processes); the ratios are against
 * the fused op measured in the same run.
 *
 *   bench_attention [--quick]
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_cpu.h"
#include "jit.h"
#include "kernels.h"

static const SrcLoc L0 = {0};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int check(IrGraph *g, int id) {
    if (id < 0) {
        fprintf(stderr, "bench_attention: %s\n", g->err);
        exit(1);
    }
    return id;
}

/* softmax(q k^T * scale + causal mask) v from primitive ops */
static int unfused(IrGraph *g, int q, int k, int v, int64_t t, int64_t d) {
    int s = ir_matmul(g, q, ir_transpose(g, k, -1, -2, L0), L0);
    s = ir_binary(g, OP_MUL, s, ir_const(g, TY_F32, shape_scalar(), 1.0 / sqrt((double)d), L0), L0);
    Shape col = {2, {t, 1}}, row = {2, {1, t}};
    int i = ir_cumsum(g, ir_const(g, TY_F32, col, 1, L0), 0, false, L0);
    int j = ir_cumsum(g, ir_const(g, TY_F32, row, 1, L0), 1, false, L0);
    int vis = ir_broadcast_to(g, ir_binary(g, OP_LE, j, i, L0), ir_node(g, check(g, s))->shape, L0);
    s = ir_where(g, vis, s, ir_const(g, TY_F32, shape_scalar(), -INFINITY, L0), L0);
    int last = -1;
    int e = ir_unary(g, OP_EXP,
                     ir_binary(g, OP_SUB, s, ir_reduce(g, OP_RMAX, s, &last, 1, true, L0), L0), L0);
    int p = ir_binary(g, OP_DIV, e, ir_reduce(g, OP_SUM, e, &last, 1, true, L0), L0);
    return check(g, ir_matmul(g, p, v, L0));
}

/* The graph: y = attention (fused or not); with backward, y and the
 * gradients of sum(y * r) for q, k and v (a training step needs both). */
static void build(IrGraph *g, bool fused, bool backward, bool fused_bwd, int64_t bh, int64_t t,
                  int64_t d) {
    ir_init(g);
    Shape s = {3, {bh, t, d}};
    int q = ir_input(g, TY_F32, s, "q", L0), k = ir_input(g, TY_F32, s, "k", L0);
    int v = ir_input(g, TY_F32, s, "v", L0);
    int y =
        fused ? check(g, ir_attention(g, q, k, v, -1, true, NAN, L0)) : unfused(g, q, k, v, t, d);
    if (!backward) {
        ir_mark_output(g, y);
        return;
    }
    int r = ir_input(g, TY_F32, s, "r", L0);
    int loss = check(g, ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, y, r, L0), NULL, 0, false, L0));
    int wrt[3] = {q, k, v}, grads[3];
    int64_t old = ir_set_attention_fused_min(fused_bwd ? 0 : INT64_MAX);
    if (!ad_backward(g, loss, wrt, 3, grads)) check(g, -1);
    ir_set_attention_fused_min(old);
    ir_mark_output(g, y);
    for (int i = 0; i < 3; i++) ir_mark_output(g, grads[i]);
}

typedef struct Run {
    IrGraph g;
    Jit *jit; /* NULL: the naive runtime */
    void *in[4], *out[4];
} Run;

static void setup(Run *r, bool fused, bool backward, bool fused_bwd, Jit *jit, int64_t bh,
                  int64_t t, int64_t d) {
    build(&r->g, fused, backward, fused_bwd, bh, t, d);
    r->jit = jit;
    int64_t n = bh * t * d;
    uint32_t seed = 12345;
    for (int i = 0; i < r->g.ninputs; i++) {
        float *x = malloc((size_t)n * sizeof *x);
        for (int64_t e = 0; e < n; e++)
            x[e] = (float)((seed = seed * 1103515245u + 12345u) >> 8) / (float)(1 << 24) - 0.5f;
        r->in[i] = x;
    }
    for (int j = 0; j < r->g.nout; j++) r->out[j] = malloc((size_t)n * sizeof(float));
}

static void teardown(Run *r) {
    for (int i = 0; i < r->g.ninputs; i++) free(r->in[i]);
    for (int j = 0; j < r->g.nout; j++) free(r->out[j]);
    ir_free(&r->g);
}

static void once(Run *r) {
    char err[512];
    KernelErr kerr;
    bool ok = r->jit ? jit_run(r->jit, &r->g, r->in, r->out, err, sizeof err)
                     : rt_naive_run(&r->g, r->in, r->out, NULL, &kerr);
    if (!ok) {
        fprintf(stderr, "bench_attention: %s\n", r->jit ? err : kerr.msg);
        exit(1);
    }
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median microseconds per run of the runs of rs[0..n), taking turns. */
static void time_runs(Run *rs, int n, double sample_s, double total_s, double *med) {
    enum { MAXS = 64 };
    double us[4][MAXS];
    int reps[4], cnt = 0;
    for (int k = 0; k < n; k++) {
        once(&rs[k]); /* compile, warm up */
        reps[k] = 1;
        for (;;) {
            double t0 = now_s();
            for (int i = 0; i < reps[k]; i++) once(&rs[k]);
            if (now_s() - t0 >= sample_s || reps[k] >= 1 << 16) break;
            reps[k] *= 2;
        }
    }
    double start = now_s();
    for (; cnt < MAXS && (cnt < 3 || now_s() - start < total_s); cnt++)
        for (int k = 0; k < n; k++) {
            double t0 = now_s();
            for (int i = 0; i < reps[k]; i++) once(&rs[k]);
            us[k][cnt] = (now_s() - t0) * 1e6 / reps[k];
        }
    for (int k = 0; k < n; k++) {
        qsort(us[k], (size_t)cnt, sizeof us[k][0], cmp_d);
        med[k] = cnt % 2 ? us[k][cnt / 2] : 0.5 * (us[k][cnt / 2 - 1] + us[k][cnt / 2]);
    }
}

int main(int argc, char **argv) {
    bench_print_cpu();
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    double sample_s = quick ? 0.005 : 0.02, total_s = quick ? 0.2 : 1.0;
    Jit *jit = jit_new(2);
    if (!jit) {
        fprintf(stderr, "bench_attention: no JIT for this machine\n");
        return 1;
    }
    jit_set_threads(jit, 1);
    const int64_t bh = 16, ts[] = {64, 128, 256, 512}, ds[] = {32, 64};
    printf("causal attention, q k v f32[4*4, T, D], 1 thread: median us per run\n");
    printf("%-22s %10s %10s %10s %9s %9s\n", "forward", "fused", "unfused", "naive", "unf/fus",
           "nai/fus");
    for (int di = 0; di < 2; di++)
        for (int ti = 0; ti < 4; ti++) {
            int64_t t = ts[ti], d = ds[di];
            if (quick && t > 128) continue;
            Run rs[3];
            setup(&rs[0], true, false, false, jit, bh, t, d);
            setup(&rs[1], false, false, false, jit, bh, t, d);
            bool naive = t <= 256; /* the reference kernel past it: seconds */
            if (naive) setup(&rs[2], true, false, false, NULL, bh, t, d);
            double med[3] = {0, 0, NAN};
            time_runs(rs, naive ? 3 : 2, sample_s, total_s, med);
            char name[32];
            snprintf(name, sizeof name, "T=%lld D=%lld", (long long)t, (long long)d);
            printf("%-22s %10.1f %10.1f %10.1f %8.2fx %8.2fx\n", name, med[0], med[1], med[2],
                   med[1] / med[0], med[2] / med[0]);
            for (int k = 0; k < (naive ? 3 : 2); k++) teardown(&rs[k]);
        }
    printf("%-22s %10s %10s %10s %10s %9s %9s %9s\n", "forward + backward", "fused", "composed",
           "unfused", "naive", "com/fus", "unf/fus", "nai/fus");
    for (int di = 0; di < 2; di++)
        for (int ti = 0; ti < 4; ti++) {
            int64_t t = ts[ti], d = ds[di];
            if (quick && t > 128) continue;
            Run rs[4];
            setup(&rs[0], true, true, true, jit, bh, t, d);
            setup(&rs[1], true, true, false, jit, bh, t, d);
            setup(&rs[2], false, true, false, jit, bh, t, d);
            bool naive = t <= 128; /* the reference backward in double past it: seconds */
            if (naive) setup(&rs[3], true, true, true, NULL, bh, t, d);
            double med[4] = {0, 0, 0, NAN};
            time_runs(rs, naive ? 4 : 3, sample_s, total_s, med);
            char name[32];
            snprintf(name, sizeof name, "T=%lld D=%lld", (long long)t, (long long)d);
            printf("%-22s %10.1f %10.1f %10.1f %10.1f %8.2fx %8.2fx %8.2fx\n", name, med[0], med[1],
                   med[2], med[3], med[1] / med[0], med[2] / med[0], med[3] / med[0]);
            for (int k = 0; k < (naive ? 4 : 3); k++) teardown(&rs[k]);
        }
    jit_free(jit);
    return 0;
}
