/* capture_state.h - the state of captured calls (capture.c, spec/jit.md
 * "Captured calls"); whether they are on is configuration (config.h).
 * A leaf header.
 */
#ifndef TT_CAPTURE_STATE_H
#define TT_CAPTURE_STATE_H

#include <stdbool.h>

typedef struct RtCaptureState {
    struct RtCapture *tab;   /* keys and records, made on first use */
    struct CapRecorder *rec; /* the call being recorded, or NULL */
    bool bench; /* the next call's result is discarded (bench() calling f; capture.c) */
} RtCaptureState;

#endif
