/* tunetime.c - timing the JIT's tuning candidates (tunetime.h). */
#include "tunetime.h"

#include <stdlib.h>

#include "tunehost.h"

#define MAXJITS 16

/* One buffer per input (a pattern in [-0.5, 0.5) for f32) or output of g. */
static void **buffers(const IrGraph *g, bool inputs) {
    int n = inputs ? g->ninputs : g->nout;
    void **b = calloc((size_t)n + 1, sizeof *b);
    for (int i = 0; b && i < g->n; i++) {
        const IrNode *x = &g->nodes[i];
        int slot = -1;
        if (inputs && x->op == OP_INPUT) slot = x->attr.index;
        for (int j = 0; !inputs && j < g->nout; j++)
            if (g->outputs[j] == i) slot = j;
        if (slot < 0 || b[slot]) continue;
        int64_t c = shape_numel(&x->shape);
        float *f = calloc((size_t)(c > 0 ? c : 1), sizeof(float)); /* every dtype fits 4 bytes */
        for (int64_t k = 0; f && inputs && x->dtype == TY_F32 && k < c; k++)
            f[k] = (float)((k * 7 + slot) % 17) / 17.0f - 0.5f;
        b[slot] = f;
    }
    return b;
}

static void free_buffers(void **b, int n) {
    for (int i = 0; b && i < n; i++) free(b[i]);
    free(b);
}

bool jit_time_candidates(const IrGraph *g, int ncand, void (*setup)(Jit *j, int c, void *arg),
                         void *arg, double *us) {
    void **in = buffers(g, true), **out = buffers(g, false);
    bool ok = in && out && ncand <= MAXJITS;
    for (int i = 0; ok && i < g->ninputs; i++) ok = in[i] != NULL;
    for (int j = 0; ok && j < g->nout; j++) ok = out[j] != NULL;
    Jit *jits[MAXJITS] = {0};
    char err[256];
    for (int c = 0; ok && c < ncand; c++) {
        ok = (jits[c] = jit_new(2)) != NULL;
        if (!ok) break;
        jit_set_threads(jits[c], 1);
        setup(jits[c], c, arg);
        ok = jit_run(jits[c], g, in, out, err, sizeof err);
        us[c] = 1e30;
    }
    for (int round = 0; ok && round < 3; round++)
        for (int c = 0; ok && c < ncand; c++) {
            int reps = 0;
            double t0 = tt_thread_seconds(), t = 0;
            while (ok && t < 0.004) {
                ok = jit_run(jits[c], g, in, out, err, sizeof err);
                reps++;
                t = tt_thread_seconds() - t0;
            }
            if (ok && 1e6 * t / reps < us[c]) us[c] = 1e6 * t / reps;
        }
    for (int c = 0; c < ncand && c < MAXJITS; c++) jit_free(jits[c]);
    free_buffers(in, g->ninputs);
    free_buffers(out, g->nout);
    return ok;
}

int jit_time_winner(const double *us, int n) {
    int win = 0;
    for (int c = 1; c < n; c++)
        if (us[c] * 1.03 < us[0] && us[c] < us[win]) win = c;
    return win;
}
