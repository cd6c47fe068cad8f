/* bench_qgemm.c - the int8 GEMM (compiler/gemm/qgemm.h) against our f32 GEMM
 * (compiler/gemm/gemm.h) on the same shapes and thread counts: square
 * 256-2048 and the 784-128-10 MLP's forward products at batch 1, 64 and 256.
 *
 * GOPS counts a multiply-add as 2 operations for both. Each figure is the
 * median of samples; a sample times enough back-to-back calls to last about
 * 20 ms, samples alternate between int8 and f32 (load from other processes
 * hits both alike) until about 0.3 s (at least 5) each. The ratio is int8
 * over f32, medians.
 *
 * Usage: bench_qgemm [--quick] [--threads N] [--path vnni|avx2|scalar]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_cpu.h"
#include "gemm.h"
#include "qgemm.h"

typedef struct Shape {
    const char *name;
    int64_t M, N, K;
} Shape;

static const Shape shapes[] = {
    {"square 256", 256, 256, 256},
    {"square 512", 512, 512, 512},
    {"square 1024", 1024, 1024, 1024},
    {"square 2048", 2048, 2048, 2048},
    {"mlp fc1 b1   [1,784]@[784,128]", 1, 128, 784},
    {"mlp fc2 b1   [1,128]@[128,10]", 1, 10, 128},
    {"mlp fc1 b64  [64,784]@[784,128]", 64, 128, 784},
    {"mlp fc2 b64  [64,128]@[128,10]", 64, 10, 128},
    {"mlp fc1 b256 [256,784]@[784,128]", 256, 128, 784},
    {"mlp fc2 b256 [256,128]@[128,10]", 256, 10, 128},
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct Ctx {
    const Shape *s;
    TtGemm *g;
    TtQgemm *q;
    const float *Af, *Bf;
    float *Cf;
    const int8_t *Aq, *Bq;
    int32_t *Cq;
    int threads;
} Ctx;

static void call(const Ctx *c, bool q) {
    const Shape *s = c->s;
    if (q)
        tt_qgemm_run(c->q, s->M, s->N, s->K, c->Aq, s->K, c->Bq, s->N, c->Cq, s->N, c->threads,
                     NULL);
    else
        tt_gemm_run(c->g, s->M, s->N, s->K, c->Af, s->K, false, c->Bf, s->N, false, c->Cf, s->N,
                    false, c->threads, NULL);
}

/* GOPS of one sample of reps calls */
static double sample(const Ctx *c, bool q, int reps) {
    double t0 = now();
    for (int r = 0; r < reps; r++) call(c, q);
    double t = now() - t0;
    return 2.0 * (double)c->s->M * (double)c->s->N * (double)c->s->K * reps / t * 1e-9;
}

#define MAXS 200

static void bench(const Ctx *c, bool quick) {
    int reps[2];
    for (int q = 0; q < 2; q++) { /* calibrate: about 20 ms per sample */
        call(c, q);
        double t0 = now();
        int n = 0;
        while (now() - t0 < 0.005) call(c, q), n++;
        double per = (now() - t0) / n;
        reps[q] = (int)(0.02 / per) + 1;
    }
    double g[2][MAXS];
    int ns = 0;
    double t0 = now(), budget = quick ? 0.1 : 0.6;
    while (ns < MAXS && (ns < 5 || now() - t0 < budget)) {
        for (int q = 0; q < 2; q++) g[q][ns] = sample(c, q, reps[q]);
        ns++;
    }
    double med[2], best[2];
    for (int q = 0; q < 2; q++) {
        qsort(g[q], (size_t)ns, sizeof(double), cmp_double);
        med[q] = g[q][ns / 2];
        best[q] = g[q][ns - 1];
    }
    printf("%-34s %2d  %8.1f %8.1f  %8.1f %8.1f  %6.2fx\n", c->s->name, c->threads, med[1], best[1],
           med[0], best[0], med[1] / med[0]);
    fflush(stdout);
}

int main(int argc, char **argv) {
    bool quick = false;
    int maxt = 2;
    TtQgemmPath path = TT_QGEMM_HOST;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            maxt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--path") && i + 1 < argc) {
            const char *p = argv[++i];
            path = !strcmp(p, "vnni")   ? TT_QGEMM_VNNI
                   : !strcmp(p, "avx2") ? TT_QGEMM_AVX2
                                        : TT_QGEMM_SCALAR;
        } else {
            fprintf(stderr, "usage: %s [--quick] [--threads N] [--path vnni|avx2|scalar]\n",
                    argv[0]);
            return 2;
        }
    }
    bench_print_cpu();
    char err[256];
    TtGemm *g = tt_gemm_new(err, sizeof err);
    TtQgemm *q = g ? tt_qgemm_new_path(path, err, sizeof err) : NULL;
    if (!q) {
        fprintf(stderr, "bench_qgemm: %s\n", err);
        return 1;
    }
    printf("int8 path: %s; f32 tile lanes: %d\n", tt_qgemm_path(q), tt_gemm_lanes(g));
    printf("%-34s %2s  %8s %8s  %8s %8s  %7s\n", "shape", "th", "i8 GOPS", "(best)", "f32 GOPS",
           "(best)", "i8/f32");
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const Shape *sh = &shapes[s];
        size_t na = (size_t)(sh->M * sh->K), nb = (size_t)(sh->K * sh->N),
               nc = (size_t)(sh->M * sh->N);
        float *Af = malloc(na * 4), *Bf = malloc(nb * 4), *Cf = malloc(nc * 4);
        int8_t *Aq = malloc(na), *Bq = malloc(nb);
        int32_t *Cq = malloc(nc * 4);
        uint32_t r = 12345;
        for (size_t i = 0; i < na; i++)
            r = r * 1664525u + 1013904223u, Aq[i] = (int8_t)(r >> 24), Af[i] = Aq[i];
        for (size_t i = 0; i < nb; i++)
            r = r * 1664525u + 1013904223u, Bq[i] = (int8_t)(r >> 24), Bf[i] = Bq[i];
        for (int t = 1; t <= maxt; t++) {
            Ctx c = {sh, g, q, Af, Bf, Cf, Aq, Bq, Cq, t};
            bench(&c, quick);
        }
        free(Af), free(Bf), free(Cf), free(Aq), free(Bq), free(Cq);
    }
    tt_qgemm_free(q);
    tt_gemm_free(g);
    return 0;
}
