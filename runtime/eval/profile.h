/* profile.h - the profiler's state (profile.c): ttrun --profile and
 * `profile { }` blocks turn it on; rt_print_profile prints its table.
 * A leaf header.
 */
#ifndef TT_PROFILE_H
#define TT_PROFILE_H

#include <stdbool.h>

#include "backend.h"

typedef struct Interp Interp;

typedef struct RtProfiler {
    bool on;         /* per-op timing of every execution graph */
    RtProfile table; /* what the graphs run so far took, per op */
} RtProfiler;

/* Turns per-op profiling on or off (ttrun --profile: the table at exit). */
void rt_set_profiling(Interp *I, bool on);

#endif
