/* bench_script_gemm.c - what a script gets against what the kernel gets: a
 * square product `let c = a @ b` in a loop through `ttrun` (the JIT backend,
 * --threads=T) against tt_gemm_run alone on the same shape and threads, as
 * bench_gemm measures it (buffers allocated once, 64-byte aligned).
 *
 * A script sample is one ttrun process timing R products inside the script
 * with clock() (each forced by reading one element, so the lazy graph runs
 * every iteration; compiling, the first run and WARM more products are
 * before the clock starts: a loop's first few outputs are fresh memory,
 * since the lazy graph releases dead outputs in batches and the buffer
 * cache (runtime/core/bufalloc.h) has nothing to hand out yet); a kernel
 * sample times R calls after one warm call. Samples alternate, so load from other
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
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench_cpu.h"
#include "gemm.h"
#include "peak.h"

/* untimed products before a script's clock starts: until the lazy graph's
 * first release of dead outputs (a 2048 loop had four outputs in flight
 * before it), each output is fresh memory the OS zeroes on first touch */
#define WARM 8

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

static double child_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static double process_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seconds per product through ttrun; NAN when it failed. *cpu: the CPU
 * seconds (user + system) the whole ttrun process took. */
static double script_sample(const char *path, int threads, double *cpu) {
    double c0 = child_cpu();
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --backend=jit --threads=%d %s", TTRUN_PATH, threads, path);
    FILE *p = popen(cmd, "r");
    if (!p) return NAN;
    double s = NAN;
    char line[256];
    while (fgets(line, sizeof line, p))
        if (!strncmp(line, "per-product ", 12)) s = atof(line + 12);
    if (pclose(p) != 0) return NAN;
    *cpu = child_cpu() - c0;
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
    /* ~0.3 s at 60 GFLOP/s, and at least 5: the script's CPU time is a
     * difference of two processes' (the set-up's noise is divided by reps) */
    int reps = (int)fmax(5, 2e10 / flop * (quick ? 0.5 : 1));
    /* path: reps products; path0: the same set-up and none (its CPU time is
     * subtracted from path's: what remains is the products') */
    char path[] = "/tmp/tt_bench_script_XXXXXX.tt", path0[] = "/tmp/tt_bench_script_XXXXXX.tt";
    for (int w = 0; w < 2; w++) {
        char *pp = w ? path0 : path;
        int fd = mkstemps(pp, 3);
        if (fd < 0) {
            perror("mkstemps");
            return 1;
        }
        FILE *f = fdopen(fd, "w");
        int r = w ? 0 : reps;
        fprintf(f,
                "let a = randn([%lld, %lld], seed=1)\n"
                "let b = randn([%lld, %lld], seed=2)\n"
                "let s = item((a @ b)[0, 0])\n"
                "for i in range(%d) {\n"
                "    let c = a @ b\n"
                "    s = s + item(c[0, 0])\n"
                "}\n"
                "let t0 = clock()\n"
                "for i in range(%d) {\n"
                "    let c = a @ b\n"
                "    s = s + item(c[0, 0])\n"
                "}\n"
                "print(\"per-product \" + str((clock() - t0) / %d.0))\n",
                (long long)n, (long long)n, (long long)n, (long long)n, WARM, r, r > 0 ? r : 1);
        fclose(f);
    }
    float *A = aligned_alloc(64, (size_t)(n * n) * sizeof(float));
    float *B = aligned_alloc(64, (size_t)(n * n) * sizeof(float));
    float *C = aligned_alloc(64, (size_t)(n * n) * sizeof(float));
    for (int64_t i = 0; i < n * n; i++) {
        A[i] = (float)rand() / RAND_MAX - 0.5f;
        B[i] = (float)rand() / RAND_MAX - 0.5f;
        C[i] = 0;
    }
    int samples = quick ? 3 : 7;
    printf("%lldx%lldx%lld product, %d per sample (the script's after %d untimed), median of %d "
           "samples (ms per product)\n",
           (long long)n, (long long)n, (long long)n, reps, WARM, samples);
    printf("%3s %9s %9s %9s %8s %8s %8s\n", "thr", "kernel", "fresh C", "script", "script/",
           "kernel", "script");
    printf("%3s %9s %9s %9s %8s %8s %8s\n", "", "", "", "", "kernel", "% peak", "% peak");
    int rc = 0;
    for (int t = t_only ? t_only : 1; t <= (t_only ? t_only : 2); t++) {
        double ks[16], kf[16], ss[16], kc[16], sc1[16];
        kernel_sample(g, n, A, B, C, t, 1, false); /* warm: the pool, the buffers */
        for (int s = 0; s < samples; s++) {
            double c0 = process_cpu();
            ks[s] = kernel_sample(g, n, A, B, C, t, reps, false);
            kc[s] = (process_cpu() - c0) / reps;
            kf[s] = kernel_sample(g, n, A, B, C, t, reps, true);
            double cpu, cpu0;
            ss[s] = script_sample(path, t, &cpu);
            double s0 = script_sample(path0, t, &cpu0);
            sc1[s] = (cpu - cpu0) / reps;
            if (isnan(ss[s]) || isnan(s0)) {
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
        /* CPU time: what other processes do does not count (on one thread
         * the fairest comparison on a shared machine; on more, spinning
         * workers count too) */
        double kcm = median(kc, samples), scm = median(sc1, samples);
        printf("%3s %9.2f %9s %9.2f %7.1f%%   (CPU ms per product, medians)\n", "", kcm * 1e3, "",
               scm * 1e3, 100 * kcm / scm);
    }
    printf("(script/kernel: the kernel's time over the script's, 100%% = the script gets all of "
           "it; %% peak: of t cores' peak)\n");
out:
    unlink(path);
    unlink(path0);
    free(A);
    free(B);
    free(C);
    tt_gemm_free(g);
    return rc;
}
