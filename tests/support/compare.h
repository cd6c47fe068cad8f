/* compare.h - how the tests compare a float result with the reference's. */
#ifndef TT_TEST_COMPARE_H
#define TT_TEST_COMPARE_H

#include <stdbool.h>

/* got vs want: NaN matches NaN, infinities match exactly, else relative
 * tol with an absolute floor of tol (|got - want| <= tol * max(1, |want|)).
 * tol 0: equal (+0 matches -0), or both NaN. */
bool tu_f32_close(float got, float want, double tol);

#endif
