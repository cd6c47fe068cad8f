/* backend.c - the registry of backends and what every backend shares:
 * counting and timing runs, the profile lines, per-op flops and bytes.
 */
#include "backend.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const TtBackendOps *registry[TT_BACKEND_MAX] = {&tt_backend_naive, &tt_backend_jit};
static int nregistry = 2;

bool tt_backend_register(const TtBackendOps *ops) {
    if (!ops || !ops->name || !ops->open || !ops->run || !ops->close) return false;
    if (nregistry == TT_BACKEND_MAX || tt_backend_find(ops->name, NULL)) return false;
    registry[nregistry++] = ops;
    return true;
}

const TtBackendOps *tt_backend_find(const char *name, int *index) {
    for (int i = 0; i < nregistry; i++)
        if (strcmp(registry[i]->name, name) == 0) {
            if (index) *index = i;
            return registry[i];
        }
    return NULL;
}

int tt_backend_count(void) {
    return nregistry;
}

const TtBackendOps *tt_backend_at(int index) {
    return index >= 0 && index < nregistry ? registry[index] : NULL;
}

const char *tt_backend_names(char *buf, size_t len) {
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < nregistry && used < len; i++) {
        const char *sep = i == 0 ? "" : i == nregistry - 1 ? " or " : ", ";
        int k = snprintf(buf + used, len - used, "%s%s", sep, registry[i]->name);
        if (k < 0) break;
        used += (size_t)k;
    }
    return buf;
}

struct TtBackend {
    const TtBackendOps *ops;
    void *state;
    int64_t runs;
    double seconds;
};

TtBackend *tt_backend_open(const TtBackendOps *ops, const TtBackendConfig *cfg, char *err,
                           size_t errlen) {
    TtBackend *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory: cannot open the %s backend", ops->name);
        return NULL;
    }
    b->ops = ops;
    if (!(b->state = ops->open(cfg, err, errlen))) {
        free(b);
        return NULL;
    }
    return b;
}

void tt_backend_close(TtBackend *b) {
    if (!b) return;
    b->ops->close(b->state);
    free(b);
}

const TtBackendOps *tt_backend_ops(const TtBackend *b) {
    return b->ops;
}

bool tt_backend_run(TtBackend *b, const TtBackendConfig *cfg, const IrGraph *g, int *entry,
                    void *const *in, void *const *out, RtProfile *prof, TtRunError *err) {
    struct timespec t0, t1;
    err->msg[0] = 0;
    err->node = -1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool ok = b->ops->run(b->state, cfg, g, entry, in, out, prof, err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    b->seconds += (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    b->runs++;
    if (!ok && !err->msg[0]) /* a backend that forgot to say why still fails cleanly */
        snprintf(err->msg, sizeof err->msg, "%s: the graph failed to run", b->ops->name);
    if (!ok && (err->node < -1 || err->node >= g->n)) err->node = -1;
    return ok;
}

TtBackendStats tt_backend_stats(const TtBackend *b) {
    TtBackendStats s = {0};
    if (b->ops->stats) b->ops->stats(b->state, &s);
    s.runs = b->runs;
    s.seconds = b->seconds;
    return s;
}

int tt_backend_kernels(TtBackend *b, TtKernelProfile *out, int max) {
    return b->ops->kernels ? b->ops->kernels(b->state, out, max) : 0;
}

void tt_backend_print_profile(TtBackend *b, FILE *out, int top) {
    TtBackendStats s = tt_backend_stats(b);
    fprintf(out, "%s: %lld graph runs in %.1f ms", b->ops->name, (long long)s.runs,
            1e3 * s.seconds);
    if (b->ops->caps & TT_BACKEND_COMPILES)
        fprintf(out,
                "; %lld compiled (%.1f ms compiling, %lld of them linked from the on-disk "
                "cache; %lld kernels in %lld functions), %lld cache hits",
                (long long)s.compiles, s.compile_ms, (long long)s.disk_hits, (long long)s.kernels,
                (long long)s.kernel_fns, (long long)s.hits);
    fputc('\n', out);
    if (b->ops->print_details) b->ops->print_details(b->state, out, top);
}

void tt_profile_add_graph(RtProfile *p, const IrGraph *g) {
    for (int i = 0; i < g->n; i++) {
        const IrNode *x = ir_node(g, i);
        if (x->op == OP_INPUT) continue;
        /* an in-place update (an aliased output) moves only the elements it
         * changes: its other operands' bytes, twice */
        bool inplace = false;
        for (int j = 0; j < g->nout; j++)
            inplace = inplace || (g->outputs[j] == i && ir_output_alias(g, j) >= 0);
        int64_t bytes = inplace ? 0 : shape_numel(&x->shape) * (int64_t)dtype_size(x->dtype);
        for (int k = inplace ? 1 : 0; k < x->nin; k++) {
            const IrNode *a = ir_node(g, x->in[k]);
            bytes += (inplace ? 2 : 1) * shape_numel(&a->shape) * (int64_t)dtype_size(a->dtype);
        }
        p->flops[x->op] += ir_ops[x->op].flops(g, x);
        p->bytes[x->op] += bytes;
    }
}
