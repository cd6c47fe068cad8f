/* bench_conv.c - convolution on the tt JIT against the reference runtime,
 * the GEMM alone and PyTorch CPU (spec/design.md section 4).
 *
 * For each shape (LeNet's two convolutions, ResNet-like 3x3 and 1x1 layers
 * with strides 1 and 2, 16-128 channels, 32x32 to 8x8 images, a depthwise
 * 3x3, batch 32) two graphs are timed:
 *   fwd    y = conv2d(x, w)
 *   fb     y, dx = conv2d_backward_input(gy, w), dw = conv2d_backward_weight(x, gy)
 * on the naive runtime (one thread), the JIT with each lowering forced
 * (jit_set_conv_lowering: direct loop nests, in lanes for a forward with
 * rows of 8+ outputs; explicit im2col + GEMM; implicit im2col where the
 * GEMM gathers B while packing it), the JIT as a script gets it (`rule`:
 * each op's lowering by the rule, or by the host's tuning where it has
 * measured one), and PyTorch (bench/conv_torch.py, run by /usr/bin/python3
 * in the same run). `gemm` is tt_gemm_run alone at the forward's
 * M = O/groups, N = batch * Ho * Wo, K = C/groups * kh * kw on a
 * materialized B: what the im2col lowering calls, without the gather and
 * the layout copy; `conv/gemm` is the rule's forward GFLOP/s over it, and
 * torch/tt PyTorch's time over the rule's. The `rule` column after the
 * shape says which lowering the rule picks for the forward.
 *
 * Then one SGD training step at batch 64 of the Fashion-MNIST CNN of
 * examples/fashion_cnn.tt through the whole stack (an interpreter, rt_call;
 * as bench_mlp), against the same network in PyTorch.
 *
 * Each figure is the median over samples (a sample: enough back-to-back
 * calls to last about 20 ms, samples for about 0.5 s, at least 5); the
 * naive runtime gets one call per figure. Rows for 1 and 2 threads.
 *
 *   bench_conv [--threads=MAX] [--quick] [--no-naive] [--no-torch] [--only=SUBSTR] [--cpu]
 *              [--step-only]
 *
 * --step-only: the CNN step alone (TT_JIT_CONV then forces its lowering).
 * --cpu: every figure (PyTorch's too) in process CPU time instead of wall
 * time: on a loaded machine the other processes then count less; on 2
 * threads it is the CPU both threads spend, not the latency.
 * --only: the shapes whose name contains SUBSTR, and no CNN step.
 */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_cpu.h"
#include "eval.h"
#include "gemm.h"
#include "jit.h"
#include "kernels.h"
#include "loop.h"
#include "value.h"

#ifndef TT_SOURCE_DIR
#define TT_SOURCE_DIR "."
#endif

typedef struct ConvShape {
    const char *name;
    int64_t n, c, h, w, o, k, stride, pad, groups;
} ConvShape;

static const ConvShape shapes[] = {
    {"lenet conv1 5x5 1->16 28", 32, 1, 28, 28, 16, 5, 1, 2, 1},
    {"lenet conv2 5x5 16->32 14", 32, 16, 14, 14, 32, 5, 1, 0, 1},
    {"fashion conv1 3x3 1->16 28", 32, 1, 28, 28, 16, 3, 1, 1, 1},
    {"fashion conv2 3x3 16->32 14", 32, 16, 14, 14, 32, 3, 1, 1, 1},
    {"3x3 16->16 32x32", 32, 16, 32, 32, 16, 3, 1, 1, 1},
    {"3x3 32->32 16x16", 32, 32, 16, 16, 32, 3, 1, 1, 1},
    {"3x3 64->64 8x8", 32, 64, 8, 8, 64, 3, 1, 1, 1},
    {"3x3 128->128 8x8", 32, 128, 8, 8, 128, 3, 1, 1, 1},
    {"3x3 s2 16->32 32x32", 32, 16, 32, 32, 32, 3, 2, 1, 1},
    {"3x3 s2 64->128 16x16", 32, 64, 16, 16, 128, 3, 2, 1, 1},
    {"1x1 64->64 16x16", 32, 64, 16, 16, 64, 1, 1, 0, 1},
    {"1x1 s2 64->128 16x16", 32, 64, 16, 16, 128, 1, 2, 0, 1},
    {"1x1 128->32 8x8", 32, 128, 8, 8, 32, 1, 1, 0, 1},
    {"depthwise 3x3 64 16x16", 32, 64, 16, 16, 64, 3, 1, 1, 64},
    {"grouped 3x3 64 g16 16x16", 32, 64, 16, 16, 64, 3, 1, 1, 16},
    {"grouped 3x3 64 g8 16x16", 32, 64, 16, 16, 64, 3, 1, 1, 8},
};
#define NSHAPES ((int)(sizeof shapes / sizeof shapes[0]))

static const char MODEL[] = "model FashionCNN {\n"
                            "    conv1 = Conv2d(1, 16, 3, padding=1)\n"
                            "    bn1 = BatchNorm2d(16)\n"
                            "    pool1 = MaxPool2d(2)\n"
                            "    conv2 = Conv2d(16, 32, 3, padding=1)\n"
                            "    bn2 = BatchNorm2d(32)\n"
                            "    pool2 = MaxPool2d(2)\n"
                            "    flat = Flatten()\n"
                            "    fc1 = Linear(32 * 7 * 7, 128)\n"
                            "    fc2 = Linear(128, 10)\n"
                            "    forward(x: f32[B, 1, 28, 28]) -> f32[B, 10] {\n"
                            "        let h = pool1(relu(bn1(conv1(x))))\n"
                            "        h = pool2(relu(bn2(conv2(h))))\n"
                            "        return fc2(relu(fc1(flat(h))))\n"
                            "    }\n"
                            "}\n"
                            "let net = FashionCNN()\n"
                            "let opt = SGD(net, lr=0.01)\n"
                            "let x = rand([64, 1, 28, 28])\n"
                            "let y = randint(0, 10, [64])\n"
                            "fn step() {\n"
                            "    opt.zero_grad()\n"
                            "    let loss = cross_entropy(net(x), y)\n"
                            "    backward(loss)\n"
                            "    opt.step()\n"
                            "}\n";

/* --cpu: the process's CPU time instead of wall time (a loaded machine's
 * other processes then count less; with 2 threads it is both threads' time,
 * spinning included, not the latency) */
static bool cpu_clock;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef void (*RunFn)(void *ctx);

/* Median us per call: warm up, size a sample to sample_s, take samples for
 * total_s (at least 5). total_s 0: one call. */
static double timeit(RunFn fn, void *ctx, double sample_s, double total_s) {
    fn(ctx);
    if (total_s <= 0) {
        double t0 = now_s();
        fn(ctx);
        return (now_s() - t0) * 1e6;
    }
    int reps = 1;
    for (;;) {
        double t0 = now_s();
        for (int i = 0; i < reps; i++) fn(ctx);
        if (now_s() - t0 >= sample_s || reps >= 1 << 20) break;
        reps *= 2;
    }
    double us[512];
    int n = 0;
    double start = now_s();
    while (n < 512 && (n < 5 || now_s() - start < total_s)) {
        double t0 = now_s();
        for (int i = 0; i < reps; i++) fn(ctx);
        us[n++] = (now_s() - t0) / reps * 1e6;
    }
    qsort(us, (size_t)n, sizeof us[0], cmp_d);
    return n % 2 ? us[n / 2] : 0.5 * (us[n / 2 - 1] + us[n / 2]);
}

/* ---- one convolution: graphs, buffers, runners ---------------------------- */

typedef struct Conv {
    const ConvShape *s;
    IrGraph fwd, fb;
    float *x, *w, *gy, *y, *dx, *dw;
    int64_t ho, wo;
    Jit *jit; /* the runner's */
} Conv;

static float *frand(int64_t n, unsigned *seed) {
    float *p = aligned_alloc(64, (size_t)((n * 4 + 63) / 64 * 64));
    if (!p) abort();
    for (int64_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = (float)((*seed >> 8) * (1.0 / 16777216.0)) - 0.5f;
    }
    return p;
}

static void conv_init(Conv *c, const ConvShape *s) {
    memset(c, 0, sizeof *c);
    c->s = s;
    SrcLoc L0 = {0};
    IrWindow win = {{s->k, s->k}, {s->stride, s->stride}, {s->pad, s->pad}, {1, 1}, s->groups};
    Shape xs = {4, {s->n, s->c, s->h, s->w}}, ws = {4, {s->o, s->c / s->groups, s->k, s->k}};
    c->ho = (s->h + 2 * s->pad - s->k) / s->stride + 1;
    c->wo = (s->w + 2 * s->pad - s->k) / s->stride + 1;
    Shape ys = {4, {s->n, s->o, c->ho, c->wo}};
    ir_init(&c->fwd);
    int x = ir_input(&c->fwd, TY_F32, xs, "x", L0), w = ir_input(&c->fwd, TY_F32, ws, "w", L0);
    ir_mark_output(&c->fwd, ir_conv2d(&c->fwd, x, w, -1, &win, L0));
    ir_init(&c->fb);
    x = ir_input(&c->fb, TY_F32, xs, "x", L0);
    w = ir_input(&c->fb, TY_F32, ws, "w", L0);
    int gy = ir_input(&c->fb, TY_F32, ys, "gy", L0);
    ir_mark_output(&c->fb, ir_conv2d(&c->fb, x, w, -1, &win, L0));
    IrAttr at = {0};
    at.win = win;
    at.shape = xs;
    int in[2] = {gy, w};
    ir_mark_output(&c->fb, ir_add(&c->fb, OP_CONV2D_BACKWARD_INPUT, in, 2, &at, L0));
    at.shape = ws;
    in[0] = x;
    in[1] = gy;
    ir_mark_output(&c->fb, ir_add(&c->fb, OP_CONV2D_BACKWARD_WEIGHT, in, 2, &at, L0));
    unsigned seed = 1;
    c->x = frand(shape_numel(&xs), &seed);
    c->w = frand(shape_numel(&ws), &seed);
    c->gy = frand(shape_numel(&ys), &seed);
    c->y = frand(shape_numel(&ys), &seed);
    c->dx = frand(shape_numel(&xs), &seed);
    c->dw = frand(shape_numel(&ws), &seed);
}

static void conv_free(Conv *c) {
    ir_free(&c->fwd);
    ir_free(&c->fb);
    free(c->x);
    free(c->w);
    free(c->gy);
    free(c->y);
    free(c->dx);
    free(c->dw);
}

static void run_graph(Conv *c, const IrGraph *g, bool fb) {
    void *in[3] = {c->x, c->w, c->gy};
    void *out[3] = {c->y, c->dx, c->dw};
    if (!c->jit) {
        KernelErr kerr = {0};
        if (!rt_naive_run(g, in, out, NULL, &kerr)) {
            fprintf(stderr, "bench_conv: naive: %s\n", kerr.msg);
            exit(1);
        }
        return;
    }
    char err[512];
    if (!jit_run(c->jit, g, in, out, err, sizeof err)) {
        fprintf(stderr, "bench_conv: %s: %s\n", fb ? "fwd+bwd" : "fwd", err);
        exit(1);
    }
}

static void run_fwd(void *ctx) {
    Conv *c = ctx;
    run_graph(c, &c->fwd, false);
}

static void run_fb(void *ctx) {
    Conv *c = ctx;
    run_graph(c, &c->fb, true);
}

typedef struct GemmCase {
    TtGemm *g;
    int64_t m, n, k;
    float *a, *b, *c;
    int threads;
} GemmCase;

static void run_gemm(void *ctx) {
    GemmCase *q = ctx;
    tt_gemm_run(q->g, q->m, q->n, q->k, q->a, q->k, false, q->b, q->n, false, q->c, q->n, false,
                q->threads, NULL);
}

/* ---- the CNN training step through the interpreter ------------------------ */

typedef struct Step {
    Interp *I;
    Value fn;
} Step;

static void run_step(void *ctx) {
    Step *s = ctx;
    jmp_buf jb;
    rt_set_on_error(s->I, &jb);
    if (setjmp(jb) != 0) exit(1);
    rt_release(s->I, rt_call(s->I, s->fn, NULL, 0, NULL, NULL, 0));
    rt_set_on_error(s->I, NULL);
}

static Step step_new(int threads) {
    Step s;
    s.I = rt_new_interp();
    rt_set_backend(s.I, "jit");
    RtConfig cfg = *rt_config(s.I);
    cfg.threads = threads;
    cfg.quiet = true;
    rt_configure(s.I, &cfg);
    if (rt_run_source(s.I, "cnn.tt", MODEL, strlen(MODEL), false) != 0) {
        fprintf(stderr, "bench_conv: the model program failed\n");
        exit(1);
    }
    jmp_buf jb;
    rt_set_on_error(s.I, &jb);
    if (setjmp(jb) != 0) exit(1);
    s.fn = rt_global(s.I, "step");
    rt_set_on_error(s.I, NULL);
    return s;
}

/* ---- PyTorch ------------------------------------------------------------- */

typedef struct Torch {
    bool ok;
    char version[64];
    double fwd[NSHAPES], fb[NSHAPES], step;
} Torch;

static Torch run_torch(int threads, bool quick, bool shapes_too) {
    Torch t = {0};
    for (int i = 0; i < NSHAPES; i++) t.fwd[i] = t.fb[i] = NAN;
    t.step = NAN;
    char list[2048] = "", cmd[4096];
    for (int i = 0; i < NSHAPES && shapes_too; i++) {
        const ConvShape *s = &shapes[i];
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld",
                 i ? ";" : "", (long long)s->n, (long long)s->c, (long long)s->h, (long long)s->w,
                 (long long)s->o, (long long)s->k, (long long)s->stride, (long long)s->pad,
                 (long long)s->groups);
    }
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/bench/conv_torch.py --threads %d%s%s --shapes '%s' 2>&1",
             TT_SOURCE_DIR, threads, quick ? " --quick" : "", cpu_clock ? " --cpu" : "", list);
    FILE *p = popen(cmd, "r");
    if (!p) return t;
    char line[512];
    while (fgets(line, sizeof line, p)) {
        int i;
        double a, b;
        if (sscanf(line, "torch version %63s", t.version) == 1) continue;
        if (sscanf(line, "torch conv %d %lf %lf", &i, &a, &b) == 3 && i >= 0 && i < NSHAPES) {
            t.fwd[i] = a;
            t.fb[i] = b;
        } else if (sscanf(line, "torch cnnstep %lf", &a) == 1) {
            t.step = a;
        } else {
            fprintf(stderr, "conv_torch.py: %s", line);
        }
    }
    t.ok = pclose(p) == 0 && !isnan(t.step);
    return t;
}

static double gflops(double flop, double us) {
    return flop / (us * 1e3);
}

int main(int argc, char **argv) {
    int maxthreads = 2;
    bool quick = false, naive = true, torch = true, step_only = false;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--threads=", 10) == 0)
            maxthreads = atoi(argv[i] + 10);
        else if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--no-naive") == 0)
            naive = false;
        else if (strcmp(argv[i], "--no-torch") == 0)
            torch = false;
        else if (strncmp(argv[i], "--only=", 7) == 0)
            only = argv[i] + 7;
        else if (strcmp(argv[i], "--cpu") == 0)
            cpu_clock = true;
        else if (strcmp(argv[i], "--step-only") == 0)
            step_only = true;
        else {
            fprintf(stderr, "usage: bench_conv [--threads=MAX] [--quick] [--no-naive] "
                            "[--no-torch] [--only=SUBSTR] [--cpu] [--step-only]\n");
            return 2;
        }
    }
    if (maxthreads < 1) maxthreads = 1;
    double sample_s = quick ? 0.005 : 0.02, total_s = quick ? 0.15 : 0.5;
    char gerr[256];
    TtGemm *gemm = tt_gemm_new(gerr, sizeof gerr);
    if (!gemm) {
        fprintf(stderr, "bench_conv: %s\n", gerr);
        return 1;
    }
    bench_print_cpu();
    printf("GEMM tile: %d lanes; median GFLOP/s (fwd: 2*N*O*Ho*Wo*K, fwd+bwd: 3x that) in %s "
           "time; ratios above 1: tt faster\n",
           tt_gemm_lanes(gemm), cpu_clock ? "process CPU" : "wall");
    Conv cv[NSHAPES];
    for (int i = 0; i < NSHAPES; i++) conv_init(&cv[i], &shapes[i]);
    double nf[NSHAPES], nb[NSHAPES];
    bool on[NSHAPES];
    for (int i = 0; i < NSHAPES; i++) on[i] = !step_only && (!only || strstr(shapes[i].name, only));
    for (int i = 0; i < NSHAPES; i++) {
        nf[i] = nb[i] = NAN;
        if (!naive || !on[i]) continue;
        cv[i].jit = NULL;
        nf[i] = timeit(run_fwd, &cv[i], sample_s, 0);
        nb[i] = timeit(run_fb, &cv[i], sample_s, 0);
    }
    for (int t = 1; t <= maxthreads; t++) {
        Jit *jd = jit_new(2), *jg = jit_new(2), *ji = jit_new(2), *ja = jit_new(2);
        jit_set_threads(jd, t);
        jit_set_threads(jg, t);
        jit_set_threads(ji, t);
        jit_set_threads(ja, t);
        jit_set_conv_lowering(jd, 1);
        jit_set_conv_lowering(jg, 2);
        jit_set_conv_lowering(ji, 3);
        Torch pt = {0};
        if (torch) {
            pt = run_torch(t, quick, !step_only);
            if (!pt.ok) fprintf(stderr, "bench_conv: PyTorch figures unavailable\n");
        } else {
            for (int i = 0; i < NSHAPES; i++) pt.fwd[i] = pt.fb[i] = NAN;
            pt.step = NAN;
        }
        printf("\n%d thread%s%s\n", t, t > 1 ? "s" : "", pt.ok ? "" : " (no PyTorch)");
        printf("%-26s %-8s %-4s %7s %7s %7s %8s %7s %7s %7s %8s %9s %9s\n", "shape (batch 32)",
               "rule", "", "naive", "direct", "im2col", "implicit", "rule", "torch", "gemm",
               "conv/gemm", "im2col/imp", "torch/tt");
        for (int i = 0; i < NSHAPES; i++) {
            if (!on[i]) continue;
            Conv *c = &cv[i];
            const ConvShape *s = c->s;
            int64_t og = s->o / s->groups, kg = s->c / s->groups * s->k * s->k;
            double flop = 2.0 * (double)(s->n * s->o * c->ho * c->wo) * (double)kg;
            int conv_id = c->fwd.outputs[0];
            const char *rule = lp_conv_uses_gemm(&c->fwd, conv_id, true) ? "implicit" : "direct";
            c->jit = jd;
            double df = timeit(run_fwd, c, sample_s, total_s),
                   db = timeit(run_fb, c, sample_s, total_s);
            c->jit = jg;
            double gf = timeit(run_fwd, c, sample_s, total_s),
                   gb = timeit(run_fb, c, sample_s, total_s);
            c->jit = ji;
            double xf = timeit(run_fwd, c, sample_s, total_s),
                   xb = timeit(run_fb, c, sample_s, total_s);
            c->jit = ja; /* the rule (and the host's tuning), per op: what a script gets */
            double af = timeit(run_fwd, c, sample_s, total_s),
                   ab = timeit(run_fb, c, sample_s, total_s);
            GemmCase q = {gemm, og, s->n * c->ho * c->wo, kg, NULL, NULL, NULL, t};
            unsigned seed = 2;
            q.a = frand(q.m * q.k, &seed);
            q.b = frand(q.k * q.n, &seed);
            q.c = frand(q.m * q.n, &seed);
            double mm = timeit(run_gemm, &q, sample_s, total_s) * (double)s->groups;
            free(q.a);
            free(q.b);
            free(q.c);
            printf(
                "%-26s %-8s %-4s %7.1f %7.1f %7.1f %8.1f %7.1f %7.1f %7.1f %7.0f%% %9.2f %9.2f\n",
                s->name, rule, "fwd", gflops(flop, nf[i]), gflops(flop, df), gflops(flop, gf),
                gflops(flop, xf), gflops(flop, af), gflops(flop, pt.fwd[i]), gflops(flop, mm),
                100 * mm / af, gf / xf, pt.fwd[i] / af);
            printf("%-26s %-8s %-4s %7.1f %7.1f %7.1f %8.1f %7.1f %7.1f %7s %8s %9.2f %9.2f\n", "",
                   "", "f+b", gflops(3 * flop, nb[i]), gflops(3 * flop, db), gflops(3 * flop, gb),
                   gflops(3 * flop, xb), gflops(3 * flop, ab), gflops(3 * flop, pt.fb[i]), "", "",
                   gb / xb, pt.fb[i] / ab);
            fflush(stdout);
        }
        jit_free(jd);
        jit_free(jg);
        jit_free(ji);
        jit_free(ja);
        if (only) continue;
        Step st = step_new(t);
        double us = timeit(run_step, &st, sample_s, quick ? 0.3 : 1.5);
        printf("Fashion-MNIST CNN SGD step, batch 64: tt %.1f ms, PyTorch %.1f ms, torch/tt %.2f\n",
               us / 1e3, pt.step / 1e3, pt.step / us);
        rt_release(st.I, st.fn);
        rt_free_interp(st.I);
        if (pt.ok && t == maxthreads) printf("PyTorch %s\n", pt.version);
    }
    for (int i = 0; i < NSHAPES; i++) conv_free(&cv[i]);
    tt_gemm_free(gemm);
    return 0;
}
