/* compare.c - how the tests compare a float result (compare.h). */
#include "compare.h"

#include <math.h>

bool tu_f32_close(float got, float want, double tol) {
    if (isnan(want) || isnan(got)) return isnan(want) && isnan(got);
    if (got == want) return true;
    if (isinf(want) || isinf(got) || tol == 0) return false;
    return fabs((double)got - (double)want) <= tol * fmax(1.0, fabs((double)want));
}
