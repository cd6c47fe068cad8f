/* bench_gemm.c - the JIT GEMM (compiler/gemm) against a naive i-k-j loop and
 * OpenBLAS cblas_sgemm, on square sizes and the MLP's (784-128-10, batch 64)
 * forward and backward shapes, on 1 and 2 threads.
 *
 * Each figure is the median GFLOP/s of repeated samples; a sample times
 * enough back-to-back calls to last about 20 ms, and samples are taken until
 * about 0.3 s (at least 5) per implementation. tt and OpenBLAS samples are
 * interleaved so that noise from a shared machine hits both alike. The best
 * sample is printed too: on a loaded machine it tells what the code can do,
 * the median what it did.
 *
 * Usage: bench_gemm [--quick] [--no-naive] [--threads N] [--cpu-time]
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_cpu.h"
#include "gemm.h"
#include "peak.h"

void openblas_set_num_threads(int);

typedef struct Shape {
    const char *name;
    int64_t M, N, K;
    bool ta, tb;
} Shape;

static const Shape shapes[] = {
    {"square 256", 256, 256, 256, false, false},
    {"square 512", 512, 512, 512, false, false},
    {"square 1024", 1024, 1024, 1024, false, false},
    {"square 2048", 2048, 2048, 2048, false, false},
    {"mlp X.W1     [64,784]@[784,128]", 64, 128, 784, false, false},
    {"mlp H.W2     [64,128]@[128,10]", 64, 10, 128, false, false},
    {"mlp Xt.G1    [784,64]@[64,128] tA", 784, 128, 64, true, false},
    {"mlp G1.W1t   [64,128]@[128,784]tB", 64, 784, 128, false, true},
    {"mlp Ht.G2    [128,64]@[64,10] tA", 128, 10, 64, true, false},
    {"mlp G2.W2t   [64,10]@[10,128] tB", 64, 128, 10, false, true},
};

/* --cpu-time: 1-thread samples in the calling thread's CPU time, so that a
 * machine shared with other processes shows the code's speed rather than
 * its share of the cores (threaded samples stay in wall time). */
static bool cpu_clock;

static double now(void) {
    struct timespec ts;
    clock_gettime(cpu_clock ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Reference: i-k-j loop, what gcc -O3 vectorises when B is not transposed. */
static void naive(const Shape *s, const float *A, int64_t lda, const float *B, int64_t ldb,
                  float *C, int64_t ldc) {
    for (int64_t i = 0; i < s->M; i++) {
        float *c = C + i * ldc;
        for (int64_t j = 0; j < s->N; j++) c[j] = 0;
        for (int64_t p = 0; p < s->K; p++) {
            float a = s->ta ? A[p * lda + i] : A[i * lda + p];
            if (s->tb) {
                for (int64_t j = 0; j < s->N; j++) c[j] += a * B[j * ldb + p];
            } else {
                const float *b = B + p * ldb;
                for (int64_t j = 0; j < s->N; j++) c[j] += a * b[j];
            }
        }
    }
}

enum { IMPL_NAIVE, IMPL_TT, IMPL_BLAS, NIMPL };

typedef struct Ctx {
    const Shape *s;
    TtGemm *g;
    const float *A, *B;
    float *C;
    int64_t lda, ldb, ldc;
    int threads;
} Ctx;

static void call(const Ctx *c, int impl) {
    const Shape *s = c->s;
    switch (impl) {
    case IMPL_NAIVE:
        naive(s, c->A, c->lda, c->B, c->ldb, c->C, c->ldc);
        break;
    case IMPL_TT:
        tt_gemm_run(c->g, s->M, s->N, s->K, c->A, c->lda, s->ta, c->B, c->ldb, s->tb, c->C, c->ldc,
                    false, c->threads, NULL);
        break;
    default:
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                    s->tb ? CblasTrans : CblasNoTrans, (int)s->M, (int)s->N, (int)s->K, 1.0f, c->A,
                    (int)c->lda, c->B, (int)c->ldb, 0.0f, c->C, (int)c->ldc);
    }
}

/* Calls per sample so that one sample lasts about target seconds. */
static int calibrate(const Ctx *c, int impl, double target) {
    call(c, impl); /* warm up: page faults, pool start */
    int n = 1;
    for (;;) {
        double t = now();
        for (int i = 0; i < n; i++) call(c, impl);
        t = now() - t;
        if (t >= target * 0.5 || n >= (1 << 24)) return (int)(n * target / (t > 0 ? t : 1e-9)) + 1;
        n *= 2;
    }
}

#define MAXS 200

/* Median GFLOP/s per implementation in impls, samples interleaved. */
static void measure(const Ctx *c, const int *impls, int nimpl, double budget, double *gf,
                    double *best) {
    const Shape *s = c->s;
    double flop = 2.0 * s->M * s->N * s->K, target = budget / 15;
    int reps[NIMPL];
    double samples[NIMPL][MAXS], spent = 0;
    for (int i = 0; i < nimpl; i++) reps[i] = calibrate(c, impls[i], target);
    int ns = 0;
    while (ns < MAXS && (ns < 5 || spent < budget)) {
        for (int i = 0; i < nimpl; i++) {
            double t = now();
            for (int r = 0; r < reps[i]; r++) call(c, impls[i]);
            t = now() - t;
            spent += t / nimpl;
            samples[i][ns] = flop * reps[i] / t * 1e-9;
        }
        ns++;
    }
    for (int i = 0; i < nimpl; i++) {
        qsort(samples[i], (size_t)ns, sizeof(double), cmp_double);
        best[i] = samples[i][ns - 1];
        gf[i] = ns % 2 ? samples[i][ns / 2] : 0.5 * (samples[i][ns / 2 - 1] + samples[i][ns / 2]);
    }
}

static float *rand_mat(size_t n) {
    float *p = aligned_alloc(64, ((n * sizeof(float)) + 63) / 64 * 64);
    for (size_t i = 0; i < n; i++) p[i] = (float)rand() / RAND_MAX - 0.5f;
    return p;
}

int main(int argc, char **argv) {
    bench_print_cpu();
    bool quick = false, do_naive = true, use_cpu = false;
    int maxthreads = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--no-naive"))
            do_naive = false;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            maxthreads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cpu-time"))
            use_cpu = true;
        else {
            fprintf(stderr, "usage: %s [--quick] [--no-naive] [--threads N] [--cpu-time]\n",
                    argv[0]);
            return 2;
        }
    }
    char err[256];
    double t0 = now();
    TtGemm *g = tt_gemm_new(err, sizeof err);
    if (!g) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* the kernels are built when first needed: the large square's now */
    if (!tt_gemm_prepare(g, 1024, 1024, 1024, false, false, false, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int lanes = tt_gemm_lanes(g);
    const char *tune = getenv("TT_TUNE");
    printf("tt_gemm: default tile %s (%d lanes), ready in %.1f ms (wall %.1f ms incl. LLVM init); "
           "schedules %s (the list at the end)\n",
           lanes == 16 ? "12x32 and 12x16" : "6x16", lanes, tt_gemm_compile_ms(g),
           (now() - t0) * 1e3,
           tune && !strcmp(tune, "0") ? "from the default table (TT_TUNE=0)"
                                      : "tuned per shape class on first use, or from the tuning "
                                        "cache");
    printf("OpenBLAS: %s kernels\n", openblas_get_corename());
    /* the FMA peak of one core at the widest width (bench/peak): tt's
     * figures as a share of it, per thread, compare across machines */
    int peak_bits = 0;
    double peak = peak_widest(&peak_bits, 0.05, 3);
    printf("FMA peak per core: %.1f GFLOP/s at %d bits; %%pk = tt's median over threads x peak\n",
           peak, peak_bits);
    double budget = quick ? 0.1 : 0.3;
    printf("GFLOP/s: median and best sample; naive = i-k-j loop (gcc -O3), 1 thread only%s\n\n",
           use_cpu ? "; 1-thread rows in the thread's CPU time (--cpu-time)" : "");
    printf("%-36s %3s %-37s | %-23s\n", "", "", "median of samples", "best sample");
    printf("%-36s %3s %7s %7s %7s %7s %5s | %7s %7s %7s %9s\n", "shape", "thr", "naive", "tt",
           "blas", "tt/blas", "%pk", "tt", "blas", "tt/blas", "max|diff|");
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const Shape *s = &shapes[si];
        int64_t lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N, ldc = s->N;
        float *A = rand_mat((size_t)(s->M * s->K)), *B = rand_mat((size_t)(s->K * s->N));
        float *C = rand_mat((size_t)(s->M * s->N)), *C2 = rand_mat((size_t)(s->M * s->N));
        Ctx c = {s, g, A, B, C, lda, ldb, ldc, 1};
        /* agreement with OpenBLAS */
        call(&c, IMPL_TT);
        Ctx c2 = c;
        c2.C = C2;
        call(&c2, IMPL_BLAS);
        double md = 0;
        for (int64_t i = 0; i < s->M * s->N; i++) md = fmax(md, fabs((double)C[i] - C2[i]));
        for (int t = 1; t <= maxthreads; t++) {
            c.threads = t;
            openblas_set_num_threads(t);
            double gf[3] = {NAN, NAN, NAN}, best[3] = {NAN, NAN, NAN};
            int impls[2] = {IMPL_TT, IMPL_BLAS};
            cpu_clock = use_cpu && t == 1;
            measure(&c, impls, 2, budget, gf + 1, best + 1);
            bool big = (double)s->M * s->N * s->K > 2e9;
            if (t == 1 && do_naive) {
                int in = IMPL_NAIVE;
                measure(&c, &in, 1, big ? budget / 3 : budget, gf, best);
            }
            printf("%-36s %3d %7.1f %7.1f %7.1f %6.0f%% %4.0f%% | %7.1f %7.1f %6.0f%% %9.2g\n",
                   s->name, t, gf[0], gf[1], gf[2], 100 * gf[1] / gf[2],
                   peak > 0 ? 100 * gf[1] / (peak * t) : NAN, best[1], best[2],
                   100 * best[1] / best[2], md);
            fflush(stdout);
        }
        free(A);
        free(B);
        free(C);
        free(C2);
    }
    printf("\n");
    fflush(stdout);
    tt_gemm_explain(stdout);
    tt_gemm_free(g);
    return 0;
}
