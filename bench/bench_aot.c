/* bench_aot.c - the AOT latency goal (issue 14): examples/digits.tt's
 * DigitsNet compiled ahead of time by ttc (CMake builds bench_digits.o with
 * prefix `bdigits`, -O2, one thread), called from C at batch 1 (goal:
 * <= 2 us a call) and batch 256.
 *
 * A sample times enough back-to-back calls to last about 2 ms (so the
 * clock's cost and resolution vanish); the figures are the median, the
 * half-width of the distribution-free 95% interval of the median (as
 * bench() computes it) and the fastest sample, per call. bench/run runs
 * this beside the JIT's call from a script (bench/suite/mlp_infer.tt) and
 * PyTorch's (bench/suite/twins_torch.py), in the same run.
 *
 *   bench_aot [--samples N]     default 200
 *
 * Prints the CPU model, `result aot_b1 MEDIAN_MS CI95_MS MIN_MS SAMPLES`
 * (and aot_b256), and a line against the goal. Then the same model built
 * with --weights-external (prefix `bxdigits`, its weights written to a
 * temporary safetensors file and loaded): `result aot_ext_b1 ...` (and
 * aot_ext_b256), and its ratio to the embedded object, measured in the
 * same run, interleaved.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unistd.h>

#include "bdigits.h"
#include "bxdigits.h"
#include "bench_cpu.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median, 95% half-width and minimum of t[0..n-1] (sorted here). */
static void stats(double *t, int n, double *med, double *ci, double *mn) {
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    *med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    double h = 0.98 * sqrt((double)n);
    int lo = (int)floor(n / 2.0 - h), hi = (int)ceil(n / 2.0 + h);
    if (lo < 0) lo = 0;
    if (hi > n - 1) hi = n - 1;
    *ci = 0.5 * (t[hi] - t[lo]);
    *mn = t[0];
}

typedef int (*ForwardFn)(const float *x, float *y, int64_t B, void *workspace);
typedef size_t (*WorkspaceFn)(int64_t B);

/* Seconds per call of fwd at batch b: samples of `calls` back-to-back
 * calls; returns the median and fills ci/mn. */
static double time_batch(ForwardFn fwd, WorkspaceFn wsfn, int64_t b, int samples, double *ci,
                         double *mn) {
    float *x = malloc((size_t)b * 64 * sizeof *x), *y = malloc((size_t)b * 10 * sizeof *y);
    size_t wsb = wsfn(b);
    void *ws = wsb ? aligned_alloc(64, (wsb + 63) / 64 * 64) : NULL;
    unsigned s = 2;
    for (int64_t i = 0; i < b * 64; i++) {
        s = s * 1103515245u + 12345u;
        x[i] = (float)((s >> 8) & 0xffff) / 65536.0f;
    }
    /* warm-up, and the number of calls that lasts about 2 ms */
    long calls = 1;
    for (;;) {
        double t0 = now_s();
        for (long c = 0; c < calls; c++)
            if (fwd(x, y, b, ws) != BDIGITS_OK) {
                fprintf(stderr, "bench_aot: the forward failed\n");
                exit(1);
            }
        if (now_s() - t0 > 2e-3) break;
        calls *= 2;
    }
    double *t = malloc((size_t)samples * sizeof *t);
    for (int k = 0; k < samples; k++) {
        double t0 = now_s();
        for (long c = 0; c < calls; c++) fwd(x, y, b, ws);
        t[k] = (now_s() - t0) / (double)calls;
    }
    double med;
    stats(t, samples, &med, ci, mn);
    free(t);
    free(x);
    free(y);
    free(ws);
    return med;
}

/* The digits weights (random values of the model's shapes) as a
 * safetensors file for bxdigits_load_weights; false on failure. */
static bool write_weights(char *path) {
    static const struct {
        const char *name;
        int rows, cols;
    } t[] = {{"fc1.w", 64, 128}, {"fc1.b", 128, 0}, {"fc2.w", 128, 10}, {"fc2.b", 10, 0}};
    char hdr[1024];
    size_t h = 0, off = 0;
    h += (size_t)snprintf(hdr + h, sizeof hdr - h, "{");
    for (int i = 0; i < 4; i++) {
        size_t n = (size_t)t[i].rows * (size_t)(t[i].cols ? t[i].cols : 1);
        if (t[i].cols)
            h += (size_t)snprintf(hdr + h, sizeof hdr - h,
                                  "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d,%d],"
                                  "\"data_offsets\":[%zu,%zu]}",
                                  i ? "," : "", t[i].name, t[i].rows, t[i].cols, off, off + 4 * n);
        else
            h += (size_t)snprintf(hdr + h, sizeof hdr - h,
                                  "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d],"
                                  "\"data_offsets\":[%zu,%zu]}",
                                  i ? "," : "", t[i].name, t[i].rows, off, off + 4 * n);
        off += 4 * n;
    }
    h += (size_t)snprintf(hdr + h, sizeof hdr - h, "}");
    int fd = mkstemp(path);
    if (fd < 0) return false;
    FILE *f = fdopen(fd, "wb");
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)h >> (8 * i));
    bool ok = fwrite(len, 1, 8, f) == 8 && fwrite(hdr, 1, h, f) == h;
    unsigned s = 7;
    for (size_t i = 0; ok && i < off / 4; i++) {
        s = s * 1103515245u + 12345u;
        float v = ((float)((s >> 8) & 0xffff) / 65536.0f - 0.5f) * 0.25f;
        ok = fwrite(&v, 4, 1, f) == 1;
    }
    return fclose(f) == 0 && ok;
}

int main(int argc, char **argv) {
    int samples = 200;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--samples") == 0 && i + 1 < argc)
            samples = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--samples N]\n", argv[0]);
            return 2;
        }
    if (samples < 1) samples = 1;
    bench_print_cpu();
    double b1 = 0;
    static const int64_t batches[] = {1, 256};
    for (int i = 0; i < 2; i++) {
        double ci, mn,
            med =
                time_batch(bdigits_forward, bdigits_workspace_bytes, batches[i], samples, &ci, &mn);
        printf("result aot_b%lld %.9g %.9g %.9g %d\n", (long long)batches[i], med * 1e3, ci * 1e3,
               mn * 1e3, samples);
        if (i == 0) b1 = med;
    }
    printf("batch 1: %.3f us a call (goal <= 2 us: %s)\n", b1 * 1e6, b1 <= 2e-6 ? "met" : "missed");

    /* --weights-external: the same model, its weights loaded at run time;
     * both objects timed again, alternately, so the ratio sees the same
     * machine state */
    char path[] = "/tmp/bench_aot_XXXXXX";
    char err[512];
    if (!write_weights(path)) {
        fprintf(stderr, "bench_aot: cannot write %s\n", path);
        return 1;
    }
    int rc = bxdigits_load_weights(path, err, sizeof err);
    unlink(path);
    if (rc != BXDIGITS_OK) {
        fprintf(stderr, "bench_aot: bxdigits_load_weights: %s\n", err);
        return 1;
    }
    for (int i = 0; i < 2; i++) {
        double med_e = 0, med_x = 0, ci, mn, cix = 0, mnx = 0;
        for (int r = 0; r < 3; r++) { /* alternate: embedded, external */
            double e =
                time_batch(bdigits_forward, bdigits_workspace_bytes, batches[i], samples, &ci, &mn);
            double x = time_batch(bxdigits_forward, bxdigits_workspace_bytes, batches[i], samples,
                                  &cix, &mnx);
            med_e = r == 0 || e < med_e ? e : med_e;
            med_x = r == 0 || x < med_x ? x : med_x;
        }
        printf("result aot_ext_b%lld %.9g %.9g %.9g %d\n", (long long)batches[i], med_x * 1e3,
               cix * 1e3, mnx * 1e3, samples);
        printf("batch %lld: external weights %.3f us, embedded %.3f us a call: ratio %.3f "
               "(best median of 3 alternating rounds each)\n",
               (long long)batches[i], med_x * 1e6, med_e * 1e6, med_x / med_e);
    }
    bxdigits_free_weights();
    return 0;
}
