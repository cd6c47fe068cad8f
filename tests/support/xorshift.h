/* xorshift.h - the small random generator of the GEMM tests: xorshift64
 * (Marsaglia's 13, 7, 17) on a state the test file keeps and seeds. */
#ifndef TT_TEST_XORSHIFT_H
#define TT_TEST_XORSHIFT_H

#include <stdint.h>

/* Advances *s (nonzero) and returns the new state. */
static inline uint64_t tu_xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Uniform in [-1, 1), from the top 53 bits of the next state. */
static inline float tu_frand(uint64_t *s) {
    return (float)((double)(tu_xorshift(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

#endif
