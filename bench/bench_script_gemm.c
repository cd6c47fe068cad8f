/* bench_script_gemm.c - what a script gets against what the kernel gets: a
 * square product `let c = a @ b` in a loop through `ttrun` (the JIT backend,
 * --threads=T) against tt_gemm_run alone on the same shape and threads, as
 * bench_gemm measures it (buffers allocated once, 64-byte aligned).
 *
 * A script sample is one ttrun process timing R products inside the script
 * with clock() (each forced by reading one element, so the lazy graph runs
 * every iteration; compiling and the first run are before the clock starts);
 * a kernel sample times R calls. Samples alternate, so load from other
 * processes hits both alike; the medians and their ratio are printed (and
 * the best samples: on a loaded machine they tell what the code can do), and
 * also the kernel writing a freshly allocated C each call (what a graph
 * output is), to tell page-touching from the rest.
 *
 * Usage: bench_script_gemm [--quick] [--size N] [--threads T]
 *        (default: 1024, rows for 1 and 2 threads)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_cpu.h"
#include "gemm.h"
#include "peak.h"

#ifndef TTRUN_PATH
#define TTRUN_PATH "build/ttrun"
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double minimum(const double *v, int n) {
    double m = v[0];
    for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
    return m;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Seconds per product through ttrun; NAN when it failed. */
static double script_sample(const char *path, int threads) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --backend=jit --threads=%d %s", TTRUN_PATH, threads, path);
    FILE *p = popen(cmd, "r");
    if (!p) return NAN;
    double s = NAN;
    char line[256];
    while (fgets(line, sizeof line, p))
        if (!strncmp(line, "per-product ", 12)) s = atof(line + 12);
    if (pclose(p) != 0) return NAN;
    return s;
}

/* Seconds per product of the kernel alone; fresh: a new C every call. */
static double kernel_sample(TtGemm *g, int64_t n, const float *A, const float *B, float *C,
                            int threads, int reps, bool fresh) {
    double t = now();
    for (int r = 0; r < reps; r++) {
        float *c = C;
        if (fresh) c = aligned_alloc(64, (size_t)(n * n) * sizeof(float));
        tt_gemm_run(g, n, n, n, A, n, false, B, n, false, c, n, false, threads, NULL);
        if (fresh) free(c);
    }
    return (now() - t) / reps;
}

int main(int argc, char **argv) {
    bool quick = false;
    int64_t n = 1024;
    int t_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            n = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            t_only = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--quick] [--size N] [--threads T]\n", argv[0]);
            return 2;
        }
    }
    if (access(TTRUN_PATH, X_OK) != 0) {
        fprintf(stderr, "bench_script_gemm: %s not found (build the ttrun target)\n", TTRUN_PATH);
        return 1;
    }
    bench_print_cpu();
    int bits = 0;
    double peak = peak_widest(&bits, 0.05, 3);
    printf("FMA peak per core: %.1f GFLOP/s at %d bits (bench/peak)\n", peak, bits);
    char err[256];
    TtGemm *g = tt_gemm_new(err, sizeof err);
    if (!g) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double flop = 2.0 * (double)n * n * n;
    int reps = (int)fmax(3, 2e10 / flop * (quick ? 0.5 : 1)); /* ~0.3 s at 60 GFLOP/s */
    char path[] = "/tmp/tt_bench_script_XXXXXX.tt";
    int fd = mkstemps(path, 3);
    if (fd < 0) {
        perror("mkstemps");
        return 1;
    }
    FILE *f = fdopen(fd, "w");
    fprintf(f,
            "let a = randn([%lld, %lld], seed=1)\n"
            "let b = randn([%lld, %lld], seed=2)\n"
            "let s = item((a @ b)[0, 0])\n"
            "let t0 = clock()\n"
            "for i in range(%d) {\n"
            "    let c = a @ b\n"
            "    s = s + item(c[0, 0])\n"
            "}\n"
            "print(\"per-product \" + str((clock() - t0) / %d.0))\n",
            (long long)n, (long long)n, (long long)n, (long long)n, reps, reps);
    fclose(f);
    float *A = aligned_alloc(64, (size_t)(n * n) * sizeof(float));
    float *B = aligned_alloc(64, (size_t)(n * n) * sizeof(float));
    float *C = aligned_alloc(64, (size_t)(n * n) * sizeof(float));
    for (int64_t i = 0; i < n * n; i++) {
        A[i] = (float)rand() / RAND_MAX - 0.5f;
        B[i] = (float)rand() / RAND_MAX - 0.5f;
        C[i] = 0;
    }
    int samples = quick ? 3 : 7;
    printf("%lldx%lldx%lld product, %d per sample, median of %d samples (ms per product)\n",
           (long long)n, (long long)n, (long long)n, reps, samples);
    printf("%3s %9s %9s %9s %8s %8s %8s\n", "thr", "kernel", "fresh C", "script", "script/",
           "kernel", "script");
    printf("%3s %9s %9s %9s %8s %8s %8s\n", "", "", "", "", "kernel", "% peak", "% peak");
    int rc = 0;
    for (int t = t_only ? t_only : 1; t <= (t_only ? t_only : 2); t++) {
        double ks[16], kf[16], ss[16];
        kernel_sample(g, n, A, B, C, t, 1, false); /* warm: the pool, the buffers */
        for (int s = 0; s < samples; s++) {
            ks[s] = kernel_sample(g, n, A, B, C, t, reps, false);
            kf[s] = kernel_sample(g, n, A, B, C, t, reps, true);
            ss[s] = script_sample(path, t);
            if (isnan(ss[s])) {
                fprintf(stderr, "bench_script_gemm: %s failed on %s\n", TTRUN_PATH, path);
                rc = 1;
                goto out;
            }
        }
        double kb = minimum(ks, samples), sb = minimum(ss, samples);
        double k = median(ks, samples), fr = median(kf, samples), sc = median(ss, samples);
        printf("%3d %9.2f %9.2f %9.2f %7.1f%% %7.1f%% %7.1f%%\n", t, k * 1e3, fr * 1e3, sc * 1e3,
               100 * k / sc, 100 * flop / k * 1e-9 / (peak * t),
               100 * flop / sc * 1e-9 / (peak * t));
        printf("%3s %9.2f %9s %9.2f %7.1f%%   (best samples)\n", "", kb * 1e3, "", sb * 1e3,
               100 * kb / sb);
    }
    printf("(script/kernel: the kernel's time over the script's, 100%% = the script gets all of "
           "it; %% peak: of t cores' peak)\n");
out:
    unlink(path);
    free(A);
    free(B);
    free(C);
    tt_gemm_free(g);
    return rc;
}
