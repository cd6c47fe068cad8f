/* tunehost.h - what the tuners (the GEMM's tile, compiler/gemm/gemm_tune.c;
 * the vector schedule, compiler/jit/vtune.c; the convolution lowerings,
 * compiler/jit/ctune.c) share: whether the machine is quiet enough to time
 * anything, the host they key their cache entries by, and the clock they
 * time with.
 */
#ifndef TT_TUNEHOST_H
#define TT_TUNEHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Is the 1-minute load average above 3/4 of the online cores? *load gets
 * it. Timings taken while other processes share the cores measure them
 * (CPU time included: the caches and the SMT sibling are shared), so a
 * busy machine is not tuned. TT_TUNE_LOADAVG stands in for the reading
 * (tests/run_tune.py). */
bool tt_tune_busy(double *load);

/* LLVM's name of the host CPU ("znver4") into cpu, a hash of its feature
 * string, and whether it has AVX-512F. */
void tt_tune_host(char *cpu, size_t cap, uint64_t *features, bool *avx512);

/* A tuning cache key (malloc'd; NULL when out of memory):
 * "KIND cpu=CPU features=FEATURES(16 hex digits) REST". */
char *tt_tune_key(const char *kind, const char *cpu, uint64_t features, const char *rest);

/* The calling thread's CPU time in seconds. */
double tt_thread_seconds(void);

#endif
