/* tunetime.h - how the JIT's tuners (vtune.c: the vector schedule; ctune.c:
 * the convolution lowerings) time their candidates: one graph compiled
 * once per candidate and run in turn.
 */
#ifndef TT_TUNETIME_H
#define TT_TUNETIME_H

#include <stdbool.h>

#include "jit.h"

/* Times graph g on ncand JITs of one thread each, candidate c's set up by
 * setup(j, c, arg) before its first run (the compile): us[c] gets its
 * microseconds per run, the best of 3 rounds of about 4 ms interleaved
 * over the candidates, in the calling thread's CPU time (load from other
 * processes hits all alike). The inputs are a fixed pattern. False when a
 * candidate cannot be built or run. */
bool jit_time_candidates(const IrGraph *g, int ncand, void (*setup)(Jit *j, int c, void *arg),
                         void *arg, double *us);

/* The winner of times us[0..n): candidate 0 (the default) unless another
 * beats it by 3%, then the fastest. A near-tie is noise, and the default
 * is what every other host of the kind runs. */
int jit_time_winner(const double *us, int n);

#endif
