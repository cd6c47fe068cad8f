/* scalar_math.h - one definition of the scalar semantics that numbers share
 * across the language: the `**` operator and pow() (eval_expr.c,
 * builtins_math.c), sigmoid on numbers (the same overflow-free form as the
 * f32 reference kernel in kernels_elem.c).
 *
 * Ints are 64-bit two's complement and wrap, as + and * do (spec/language.md).
 */
#ifndef TT_SCALAR_MATH_H
#define TT_SCALAR_MATH_H

#include <math.h>
#include <stdint.h>

/* b ** e for e >= 0, wrapping modulo 2^64: exponentiation by squaring, so
 * pow(3, 4000000000) takes 32 steps, not four billion, and never overflows
 * a signed type (the arithmetic is unsigned). */
static inline int64_t tt_int_pow(int64_t b, int64_t e) {
    uint64_t r = 1, x = (uint64_t)b;
    while (e > 0) {
        if (e & 1) r *= x;
        x *= x;
        e >>= 1;
    }
    return (int64_t)r;
}

/* Never exponentiates a positive number, so no overflow for large |x|
 * (sigmoid_f32 in kernels_elem.c is this in single precision). */
static inline double tt_sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

#endif
