/* naive_backend.c - the naive runtime (naive.c, the reference kernels)
 * behind the backend interface. It has no state: it compiles nothing and
 * times ops one by one into the caller's per-op table.
 */
#include "backend.h"
#include "kernels.h"

static int nb_state; /* open's non-NULL answer: the naive runtime needs nothing */

static void *nb_open(const TtBackendConfig *cfg, char *err, size_t errlen) {
    return &nb_state;
}

static bool nb_run(void *state, const TtBackendConfig *cfg, const IrGraph *g, int *entry,
                   void *const *in, void *const *out, RtProfile *prof, TtRunError *err) {
    KernelErr kerr;
    if (rt_naive_run_traced(g, in, out, prof, cfg->trace, &kerr)) return true;
    snprintf(err->msg, sizeof err->msg, "%s", kerr.msg);
    err->node = kerr.node;
    return false;
}

static void nb_close(void *state) {
}

const TtBackendOps tt_backend_naive = {
    .name = "naive",
    .caps = 0,
    .open = nb_open,
    .run = nb_run,
    .close = nb_close,
};
