/* peak.h - the host's single-precision FMA peak per core at each vector
 * width, measured: register-only loops of independent FMA chains (more
 * chains than latency x ports, so the FMA units never wait), one function
 * per width compiled for it with a target attribute, so the program runs on
 * any x86-64 host and measures only the widths the CPU has.
 *
 * Every GEMM figure in bench/ is also printed as a percentage of the peak at
 * the widest width: the one figure that compares across machines. */
#ifndef TT_BENCH_PEAK_H
#define TT_BENCH_PEAK_H

#include <stdbool.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PEAK_X86 1
#endif

/* This thread's CPU time, not wall time: on a shared machine the loop is
 * descheduled for whole time slices (wall-clock runs measured a third of
 * the peak under load), while its CPU time counts only the cycles it ran. */
static inline double peak_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Chains per loop: 12 covers 4-cycle latency x 2 FMA pipes with room; the
 * 512-bit loop has 32 registers and uses 24 (Zen 4 runs them on 256-bit
 * halves, Intel and Zen 5 on full-width units). Each iteration is CH FMAs of
 * W floats: 2*W*CH flops. The sink keeps the chains alive. */
#ifdef PEAK_X86
#define PEAK_LOOP(T, W, CH, SET1, FMA, ADD, STORE)                                                 \
    T acc[CH], x = SET1(1.0000001f), y = SET1(0.9999999f);                                         \
    for (int c = 0; c < CH; c++) acc[c] = SET1((float)c);                                          \
    for (long i = 0; i < iters; i++) {                                                             \
        _Pragma("GCC unroll 32") for (int c = 0; c < CH; c++) acc[c] = FMA(acc[c], x, y);          \
    }                                                                                              \
    T s = acc[0];                                                                                  \
    for (int c = 1; c < CH; c++) s = ADD(s, acc[c]);                                               \
    float out[16];                                                                                 \
    STORE(out, s);                                                                                 \
    *sink += out[0];                                                                               \
    return 2.0 * W * CH * (double)iters;

__attribute__((target("avx2,fma"))) static double peak_fma128(long iters, volatile float *sink) {
    PEAK_LOOP(__m128, 4, 12, _mm_set1_ps, _mm_fmadd_ps, _mm_add_ps, _mm_storeu_ps)
}
__attribute__((target("avx2,fma"))) static double peak_fma256(long iters, volatile float *sink) {
    PEAK_LOOP(__m256, 8, 12, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps)
}
__attribute__((target("avx512f"))) static double peak_fma512(long iters, volatile float *sink) {
    PEAK_LOOP(__m512, 16, 24, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps)
}
#endif

/* Whether the CPU (and OS) runs FMA at bits = 128, 256 or 512. */
static inline bool peak_supported(int bits) {
#ifdef PEAK_X86
    __builtin_cpu_init();
    if (bits == 512) return __builtin_cpu_supports("avx512f");
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    (void)bits;
    return false;
#endif
}

/* GFLOP/s on this thread at bits: the best of `tries` runs of about
 * `seconds` of CPU time each (the best, since a shared machine only ever
 * slows a register-only loop down). 0 where the width is not supported. */
static inline double peak_gflops(int bits, double seconds, int tries) {
    if (!peak_supported(bits)) return 0;
#ifdef PEAK_X86
    double (*fn)(long, volatile float *) = bits == 512   ? peak_fma512
                                           : bits == 256 ? peak_fma256
                                                         : peak_fma128;
    volatile float sink = 0;
    long iters = 1 << 16;
    double t, flop;
    for (;;) { /* calibrate: double until a run lasts a tenth of the target */
        t = peak_now();
        flop = fn(iters, &sink);
        t = peak_now() - t;
        if (t > seconds * 0.1 || iters > (1L << 40)) break;
        iters *= 2;
    }
    iters = (long)(iters * seconds / (t > 0 ? t : 1e-9)) + 1;
    double best = 0;
    for (int r = 0; r < tries; r++) {
        t = peak_now();
        flop = fn(iters, &sink);
        t = peak_now() - t;
        if (flop / t * 1e-9 > best) best = flop / t * 1e-9;
    }
    return best;
#else
    (void)seconds;
    (void)tries;
    return 0;
#endif
}

/* The widest supported width (bits) and its peak; 0 when none is. */
static inline double peak_widest(int *bits, double seconds, int tries) {
    static const int widths[] = {512, 256, 128};
    for (int i = 0; i < 3; i++)
        if (peak_supported(widths[i])) {
            *bits = widths[i];
            return peak_gflops(widths[i], seconds, tries);
        }
    *bits = 0;
    return 0;
}

#endif
