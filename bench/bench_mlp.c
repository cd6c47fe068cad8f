/* bench_mlp.c - the MLP 784-128-10 through the whole tt stack, against
 * PyTorch CPU and hand-written C + OpenBLAS (spec/design.md section 4).
 *
 * tt runs a small program (MODEL below) in an interpreter made by
 * rt_new_interp, on the naive runtime and on the JIT; the bench calls its fns
 * with rt_call, so every figure includes what a script's bench() pays: on
 * the JIT, a captured call replays its recorded graphs (the results are
 * dropped, as bench() drops them; spec/jit.md "Captured calls"), else
 * evaluating the fn, building the lazy graph, the cache lookup and running
 * the graph.
 *
 *   step()      one SGD training step at batch 64: zero_grad, forward, cross
 *               entropy, backward, update (opt.step() realizes it as one
 *               graph), as bench/mlp_torch.py does
 *   infer1()    net(x) at batch 1, realized
 *   infer256()  net(x) at batch 256, realized
 *
 * The first call of each fn on the JIT compiles its graph (the first graph
 * with a matmul also builds the GEMM kernels); it is timed apart and left
 * out of the figures. Each figure is the median of samples: a sample times
 * enough back-to-back calls to last about 20 ms (5 with --quick); the
 * implementations take turns, one sample each per round, so that load from
 * other processes hits all of them alike. PyTorch runs as a subprocess
 * (bench/mlp_torch.py with /usr/bin/python3) after the others.
 *
 *   bench_mlp [--threads=1|2] [--quick] [--no-torch] [--only="jit step"]
 *
 * --only times one figure for 3 s (naive|jit|blas, step|infer1|infer256), for
 * a profiler.
 */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_cpu.h"
#include "capture.h"
#include "eval.h"
#include "gemm.h"
#include "jit.h"
#include "value.h"

#include <cblas.h> /* after value.h: OpenBLAS's header pulls in complex.h and its macro I */
#undef I

void openblas_set_num_threads(int);

#ifndef TT_SOURCE_DIR
#define TT_SOURCE_DIR "."
#endif

enum { IN = 784, HID = 128, OUT = 10, BATCH = 64, BIG = 256 };

static const char MODEL[] = "model Mlp {\n"
                            "    fc1 = Linear(784, 128)\n"
                            "    fc2 = Linear(128, 10)\n"
                            "    forward(x: f32[B, 784]) -> f32[B, 10] {\n"
                            "        return fc2(relu(fc1(x)))\n"
                            "    }\n"
                            "}\n"
                            "let net = Mlp()\n"
                            "let opt = SGD(net, lr=0.01)\n"
                            "let x = randn([64, 784])\n"
                            "let y = randint(0, 10, [64])\n"
                            "let x1 = randn([1, 784])\n"
                            "let x256 = randn([256, 784])\n"
                            "fn step() {\n"
                            "    opt.zero_grad()\n"
                            "    let loss = cross_entropy(net(x), y)\n"
                            "    backward(loss)\n"
                            "    opt.step()\n"
                            "}\n"
                            "fn infer1() { return net(x1) }\n"
                            "fn infer256() { return net(x256) }\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- tt through the runtime ---------------------------------------------- */

typedef struct TtCase {
    Interp *I;
    Value fn;
    bool realize;  /* realize the returned tensor (inference) */
    double exec_s; /* time in tt_backend_run (hash, cache lookup, the compiled code) */
    int64_t calls, graphs;
} TtCase;

static Interp *tt_interp(const char *be, int threads) {
    Interp *I = rt_new_interp();
    rt_set_backend(I, be);
    RtConfig cfg = *rt_config(I);
    cfg.threads = threads;
    cfg.quiet = true;
    rt_configure(I, &cfg);
    if (rt_run_source(I, "mlp.tt", MODEL, strlen(MODEL), false) != 0) {
        fprintf(stderr, "bench_mlp: the model program failed\n");
        exit(1);
    }
    return I;
}

/* Calls the fn; false after a tt error (reported on stderr). */
static bool tt_call(void *ctx) {
    TtCase *c = ctx;
    Interp *I = c->I;
    jmp_buf jb;
    jmp_buf *saved = rt_set_on_error(I, &jb);
    volatile bool ok = true; /* set after the longjmp */
    TtBackendStats s0 = rt_backend_stats(I);
    /* the results are dropped, as bench() drops its fn's: a captured call
     * may return them without a graph (spec/jit.md, "Captured calls") */
    bool outer = I->cap.bench;
    I->cap.bench = true;
    if (setjmp(jb) == 0) {
        Value v = rt_call(I, c->fn, NULL, 0, NULL, NULL, 0);
        if (c->realize) rt_realize_all(I);
        rt_release(I, v);
    } else {
        ok = false;
    }
    I->cap.bench = outer;
    rt_set_on_error(I, saved);
    TtBackendStats s1 = rt_backend_stats(I);
    c->exec_s += s1.seconds - s0.seconds;
    c->graphs += s1.runs - s0.runs;
    c->calls++;
    return ok;
}

static TtCase tt_case(Interp *I, const char *fn, bool realize) {
    TtCase c = {I, VNONE, realize, 0, 0, 0};
    jmp_buf jb;
    rt_set_on_error(I, &jb);
    if (setjmp(jb) != 0) exit(1);
    c.fn = rt_global(I, fn);
    rt_set_on_error(I, NULL);
    return c;
}

/* ---- hand-written C + OpenBLAS ------------------------------------------- */

typedef struct CMlp {
    float *w1, *b1, *w2, *b2;             /* [IN, HID], [HID], [HID, OUT], [OUT] */
    float *x, *x1, *xb, *h, *z, *dz, *dh; /* inputs and activations */
    float *dw1, *db1, *dw2, *db2;
    float *hb, *zb; /* inference activations (batch up to BIG) */
    int *y;
    float lr, loss;
} CMlp;

static float *falloc(size_t n) {
    float *p = aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63);
    if (!p) abort();
    return p;
}

static float urand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) * (1.0 / 16777216.0)) * 2 - 1;
}

static void c_init(CMlp *m) {
    unsigned s = 1;
    m->w1 = falloc(IN * HID);
    m->b1 = falloc(HID);
    m->w2 = falloc(HID * OUT);
    m->b2 = falloc(OUT);
    m->x = falloc(BATCH * IN);
    m->x1 = falloc(IN);
    m->xb = falloc(BIG * IN);
    m->h = falloc(BATCH * HID);
    m->z = falloc(BATCH * OUT);
    m->dz = falloc(BATCH * OUT);
    m->dh = falloc(BATCH * HID);
    m->dw1 = falloc(IN * HID);
    m->db1 = falloc(HID);
    m->dw2 = falloc(HID * OUT);
    m->db2 = falloc(OUT);
    m->hb = falloc(BIG * HID);
    m->zb = falloc(BIG * OUT);
    m->y = malloc(BATCH * sizeof *m->y);
    float a1 = 1 / sqrtf(IN), a2 = 1 / sqrtf(HID);
    for (int i = 0; i < IN * HID; i++) m->w1[i] = a1 * urand(&s);
    for (int i = 0; i < HID; i++) m->b1[i] = a1 * urand(&s);
    for (int i = 0; i < HID * OUT; i++) m->w2[i] = a2 * urand(&s);
    for (int i = 0; i < OUT; i++) m->b2[i] = a2 * urand(&s);
    for (int i = 0; i < BATCH * IN; i++) m->x[i] = urand(&s);
    for (int i = 0; i < IN; i++) m->x1[i] = urand(&s);
    for (int i = 0; i < BIG * IN; i++) m->xb[i] = urand(&s);
    for (int i = 0; i < BATCH; i++) m->y[i] = (int)((urand(&s) + 1) * 5) % OUT;
    m->lr = 0.01f;
}

/* h = relu(x w1 + b1), z = h w2 + b2, for n rows */
static void c_forward(const CMlp *m, int n, const float *x, float *h, float *z) {
    for (int i = 0; i < n; i++) memcpy(h + i * HID, m->b1, HID * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, HID, IN, 1, x, IN, m->w1, HID, 1, h,
                HID);
    for (int i = 0; i < n * HID; i++) h[i] = h[i] > 0 ? h[i] : 0;
    for (int i = 0; i < n; i++) memcpy(z + i * OUT, m->b2, OUT * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, OUT, HID, 1, h, HID, m->w2, OUT, 1, z,
                OUT);
}

static bool c_step(void *ctx) {
    CMlp *m = ctx;
    c_forward(m, BATCH, m->x, m->h, m->z);
    /* softmax cross entropy (mean over the batch) and dz = (p - onehot) / B */
    double loss = 0;
    for (int i = 0; i < BATCH; i++) {
        const float *z = m->z + i * OUT;
        float *dz = m->dz + i * OUT, mx = z[0], sum = 0;
        for (int j = 1; j < OUT; j++) mx = z[j] > mx ? z[j] : mx;
        for (int j = 0; j < OUT; j++) sum += dz[j] = expf(z[j] - mx);
        loss += logf(sum) - (z[m->y[i]] - mx);
        for (int j = 0; j < OUT; j++) dz[j] = dz[j] / sum * (1.0f / BATCH);
        dz[m->y[i]] -= 1.0f / BATCH;
    }
    m->loss = (float)(loss / BATCH);
    /* dw2 = h^T dz, db2 = sum dz, dh = (dz w2^T) * (h > 0) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, HID, OUT, BATCH, 1, m->h, HID, m->dz, OUT,
                0, m->dw2, OUT);
    for (int j = 0; j < OUT; j++) m->db2[j] = 0;
    for (int i = 0; i < BATCH; i++)
        for (int j = 0; j < OUT; j++) m->db2[j] += m->dz[i * OUT + j];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, BATCH, HID, OUT, 1, m->dz, OUT, m->w2, OUT,
                0, m->dh, HID);
    for (int i = 0; i < BATCH * HID; i++) m->dh[i] = m->h[i] > 0 ? m->dh[i] : 0;
    /* dw1 = x^T dh, db1 = sum dh */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, IN, HID, BATCH, 1, m->x, IN, m->dh, HID, 0,
                m->dw1, HID);
    for (int j = 0; j < HID; j++) m->db1[j] = 0;
    for (int i = 0; i < BATCH; i++)
        for (int j = 0; j < HID; j++) m->db1[j] += m->dh[i * HID + j];
    /* SGD */
    for (int i = 0; i < IN * HID; i++) m->w1[i] -= m->lr * m->dw1[i];
    for (int i = 0; i < HID; i++) m->b1[i] -= m->lr * m->db1[i];
    for (int i = 0; i < HID * OUT; i++) m->w2[i] -= m->lr * m->dw2[i];
    for (int i = 0; i < OUT; i++) m->b2[i] -= m->lr * m->db2[i];
    return true;
}

static bool c_infer1(void *ctx) {
    CMlp *m = ctx;
    c_forward(m, 1, m->x1, m->hb, m->zb);
    return true;
}

static bool c_infer256(void *ctx) {
    CMlp *m = ctx;
    c_forward(m, BIG, m->xb, m->hb, m->zb);
    return true;
}

/* ---- timing --------------------------------------------------------------- */

#define MAXS 4096

typedef struct Timed {
    const char *name;
    bool (*fn)(void *);
    void *ctx;
    int reps;
    int n;
    double us[MAXS]; /* per call, one entry per sample */
} Timed;

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(Timed *t) {
    if (t->n == 0) return NAN;
    qsort(t->us, (size_t)t->n, sizeof t->us[0], cmp_d);
    return t->n % 2 ? t->us[t->n / 2] : 0.5 * (t->us[t->n / 2 - 1] + t->us[t->n / 2]);
}

static void run_or_die(Timed *t) {
    if (!t->fn(t->ctx)) {
        fprintf(stderr, "bench_mlp: %s failed\n", t->name);
        exit(1);
    }
}

/* Warms up (3 calls), sizes reps so that a sample lasts sample_s. */
static void calibrate(Timed *t, double sample_s) {
    for (int i = 0; i < 3; i++) run_or_die(t);
    t->reps = 1;
    for (;;) {
        double t0 = now_s();
        for (int i = 0; i < t->reps; i++) run_or_die(t);
        if (now_s() - t0 >= sample_s || t->reps >= 1 << 20) break;
        t->reps *= 2;
    }
}

/* Rounds of one sample each until total_s has passed (at least 5 rounds). */
static void measure(Timed *ts, int nt, double sample_s, double total_s) {
    for (int i = 0; i < nt; i++) {
        calibrate(&ts[i], sample_s);
        ts[i].n = 0;
    }
    double start = now_s();
    for (int round = 0; round < MAXS && (round < 5 || now_s() - start < total_s); round++)
        for (int i = 0; i < nt; i++) {
            Timed *t = &ts[i];
            double t0 = now_s();
            for (int r = 0; r < t->reps; r++) run_or_die(t);
            t->us[t->n++] = (now_s() - t0) / t->reps * 1e6;
        }
}

/* ---- PyTorch -------------------------------------------------------------- */

typedef struct Torch {
    bool ok;
    char version[64];
    double step, infer1, infer256; /* median us */
} Torch;

static Torch run_torch(int threads, bool quick) {
    Torch t = {0};
    t.step = t.infer1 = t.infer256 = NAN;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/bench/mlp_torch.py --threads %d%s 2>&1",
             TT_SOURCE_DIR, threads, quick ? " --quick" : "");
    FILE *p = popen(cmd, "r");
    if (!p) return t;
    char line[512];
    while (fgets(line, sizeof line, p)) {
        char name[32];
        double med, best;
        if (sscanf(line, "torch version %63s", t.version) == 1) continue;
        if (sscanf(line, "torch %31s %lf %lf", name, &med, &best) == 3) {
            if (strcmp(name, "step") == 0) t.step = med;
            if (strcmp(name, "infer1") == 0) t.infer1 = med;
            if (strcmp(name, "infer256") == 0) t.infer256 = med;
        } else {
            fprintf(stderr, "mlp_torch.py: %s", line);
        }
    }
    t.ok = pclose(p) == 0 && !isnan(t.step);
    return t;
}

/* ---- main ----------------------------------------------------------------- */

static void row(const char *what, double naive, double jit, double blas, double torch) {
    printf("%-22s %10.1f %10.1f %10.1f %10.1f   %7.1fx %7.2fx %7.2fx\n", what, naive, jit, blas,
           torch, naive / jit, blas / jit, torch / jit);
}

int main(int argc, char **argv) {
    bench_print_cpu();
    int threads = 1;
    bool quick = false, torch = true;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--threads=", 10) == 0)
            threads = atoi(argv[i] + 10);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--no-torch") == 0)
            torch = false;
        else if (strncmp(argv[i], "--only=", 7) == 0)
            only = argv[i] + 7;
        else {
            fprintf(stderr,
                    "usage: bench_mlp [--threads=1|2] [--quick] [--no-torch] [--only=NAME]\n");
            return 2;
        }
    }
    if (threads < 1) threads = 1;
    double sample_s = quick ? 0.005 : 0.02, total_s = quick ? 0.5 : 3.0;
    openblas_set_num_threads(threads);

    Interp *In = tt_interp("naive", threads), *Ij = tt_interp("jit", threads);
    TtCase ns = tt_case(In, "step", false), n1 = tt_case(In, "infer1", true),
           n256 = tt_case(In, "infer256", true);
    TtCase js = tt_case(Ij, "step", false), j1 = tt_case(Ij, "infer1", true),
           j256 = tt_case(Ij, "infer256", true);

    /* first calls on the JIT: compile (the step's includes the GEMM build) */
    double first[3];
    TtCase *jc[3] = {&js, &j1, &j256};
    double cms[3];
    for (int i = 0; i < 3; i++) {
        double c0 = rt_backend_stats(Ij).compile_ms, t0 = now_s();
        if (!tt_call(jc[i])) return 1;
        first[i] = (now_s() - t0) * 1e3;
        cms[i] = rt_backend_stats(Ij).compile_ms - c0;
    }

    char gerr[256];
    TtGemm *gemm = tt_gemm_new(gerr, sizeof gerr); /* the process-wide one */
    double gemm_ms = gemm ? tt_gemm_compile_ms(gemm) : NAN;
    if (gemm) tt_gemm_free(gemm);
    for (int i = 0; i < 3; i++) jc[i]->exec_s = (double)(jc[i]->calls = jc[i]->graphs = 0);

    CMlp cm;
    c_init(&cm);
    Timed t[9] = {
        {"naive step", tt_call, &ns},       {"jit step", tt_call, &js},
        {"blas step", c_step, &cm},         {"naive infer1", tt_call, &n1},
        {"jit infer1", tt_call, &j1},       {"blas infer1", c_infer1, &cm},
        {"naive infer256", tt_call, &n256}, {"jit infer256", tt_call, &j256},
        {"blas infer256", c_infer256, &cm},
    };
    if (only) { /* one figure for 3 s, e.g. under perf: --only="jit step" */
        for (int i = 0; i < 9; i++)
            if (strcmp(t[i].name, only) == 0) {
                measure(&t[i], 1, sample_s, 3.0);
                printf("%s: %.1f us\n", only, median(&t[i]));
                if (t[i].fn == tt_call) {
                    TtCase *c = t[i].ctx;
                    printf("  graphs run per call %.2f, in tt_backend_run %.1f us per call\n",
                           (double)c->graphs / (double)c->calls,
                           c->exec_s / (double)c->calls * 1e6);
                    rt_capture_print(c->I, stdout);
                }
                return 0;
            }
        fprintf(stderr, "bench_mlp: --only: no figure '%s'\n", only);
        return 2;
    }
    for (int g = 0; g < 3; g++) measure(&t[3 * g], 3, sample_s, total_s);
    int64_t compiles = rt_backend_stats(Ij).compiles;

    Torch pt = {0};
    pt.step = pt.infer1 = pt.infer256 = NAN;
    if (torch) {
        pt = run_torch(threads, quick);
        if (!pt.ok) fprintf(stderr, "bench_mlp: PyTorch figures unavailable\n");
    }

    printf("MLP 784-128-10, %d thread%s%s; median us per call (samples of about %.0f ms, "
           "%.1f s per group)\n",
           threads, threads > 1 ? "s" : "", quick ? ", --quick" : "", sample_s * 1e3, total_s);
    printf("%-22s %10s %10s %10s %10s   %8s %8s %8s\n", "", "tt naive", "tt jit", "C+BLAS",
           "PyTorch", "naive/jit", "blas/jit", "torch/jit");
    row("train step, batch 64", median(&t[0]), median(&t[1]), median(&t[2]), pt.step);
    row("inference, batch 1", median(&t[3]), median(&t[4]), median(&t[5]), pt.infer1);
    row("inference, batch 256", median(&t[6]), median(&t[7]), median(&t[8]), pt.infer256);
    printf("(ratios above 1: the tt JIT is faster; samples per figure: %d, %d, %d)\n", t[1].n,
           t[4].n, t[7].n);
    printf("JIT first call (compile + run): step %.1f ms (compiling %.1f ms; the GEMM kernels "
           "built by then, at a compile or a first use, %.1f ms), infer1 %.1f ms (compiling %.1f), "
           "infer256 %.1f ms (%.1f); %lld "
           "graphs compiled in all\n",
           first[0], cms[0], gemm_ms, first[1], cms[1], first[2], cms[2], (long long)compiles);
    printf("JIT time inside tt_backend_run (cache lookup + compiled code), mean per call: step "
           "%.1f us, infer1 %.1f us, infer256 %.1f us (the rest: evaluating the fn, building "
           "the graph)\n",
           js.exec_s / (double)js.calls * 1e6, j1.exec_s / (double)j1.calls * 1e6,
           j256.exec_s / (double)j256.calls * 1e6);
    if (pt.ok) printf("PyTorch %s, /usr/bin/python3 bench/mlp_torch.py\n", pt.version);
    printf("C+BLAS loss after the runs: %.4f (sanity)\n", cm.loss);

    rt_release(In, ns.fn);
    rt_release(In, n1.fn);
    rt_release(In, n256.fn);
    rt_release(Ij, js.fn);
    rt_release(Ij, j1.fn);
    rt_release(Ij, j256.fn);
    rt_free_interp(In);
    rt_free_interp(Ij);
    return 0;
}
