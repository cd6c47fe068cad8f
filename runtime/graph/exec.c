/* exec.c - running execution graphs on the chosen backend (backend.h).
 *
 * The interpreter holds a backend by its index in the registry and opens
 * each one on first use (the JIT's compiled-graph cache lives as long as
 * the interpreter). Everything here goes through the interface: no code in
 * runtime/ asks which backend is active, only what it can do (caps).
 */
#include "capture.h"
#include "graph.h"
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool rt_set_backend(Interp *I, const char *name) {
    int index;
    if (!tt_backend_find(name, &index)) return false;
    if (index != I->be.cur) rt_realize_all(I); /* pending work runs where it was built */
    I->be.cur = index;
    return true;
}

const char *rt_backend_name(const Interp *I) {
    return tt_backend_at(I->be.cur)->name;
}

unsigned rt_backend_caps(const Interp *I) {
    return tt_backend_at(I->be.cur)->caps;
}

static TtBackendConfig config(const Interp *I) {
    return (TtBackendConfig){
        .threads = I->cfg.threads,
        .opt_level = I->cfg.opt_level,
        .profile = I->prof.on || rt_trace_on(),
        .trace = rt_trace_on() ? rt_trace_event : NULL,
        .dump_fuse = I->cfg.dump_fuse,
        .dump_loops = I->cfg.dump_loops,
        .graph_no = I->lz.nexec,
    };
}

TtBackend *rt_backend(Interp *I, char *err, size_t errlen) {
    TtBackend **b = &I->be.slot[I->be.cur];
    if (!*b) {
        TtBackendConfig cfg = config(I);
        *b = tt_backend_open(tt_backend_at(I->be.cur), &cfg, err, errlen);
    }
    return *b;
}

TtBackendStats rt_backend_stats(const Interp *I) {
    const TtBackend *b = I->be.slot[I->be.cur];
    return b ? tt_backend_stats(b) : (TtBackendStats){0};
}

void rt_backends_free(Interp *I) {
    for (int i = 0; i < TT_BACKEND_MAX; i++) {
        tt_backend_close(I->be.slot[i]);
        I->be.slot[i] = NULL;
    }
}

void rt_backends_print_profile(Interp *I, FILE *out) {
    bool ops = false;
    for (int op = 0; op < OP__COUNT; op++) ops = ops || I->prof.table.calls[op];
    if (ops) rt_print_profile(I, out, &I->prof.table);
    /* TT_PROFILE_TOP=N shows the N slowest kernels (0: all); 15 by default */
    const char *env = getenv("TT_PROFILE_TOP");
    int top = env && *env ? atoi(env) : 15;
    for (int i = 0; i < TT_BACKEND_MAX; i++)
        if (I->be.slot[i] && tt_backend_stats(I->be.slot[i]).runs)
            tt_backend_print_profile(I->be.slot[i], out, top);
}

/* Runs the execution graph E: in[k] is the data of input slot k, out[j] the
 * buffer of E->outputs[j]. False when the run failed: msg says why and
 * *loc where (the source of the node that failed, as ir_copy_node kept it,
 * when the failure is a node's: an index out of range, a result that does
 * not fit); the caller frees what it holds and reports it. */
static bool run_exec_graph(Interp *I, IrGraph *E, int *entry, void **in, void **out, char *msg,
                           size_t msglen, SrcLoc *loc) {
    *loc = I->ev.loc;
    I->lz.nexec++;
    if (I->cfg.dump_graph) {
        fprintf(stdout, "-- execution graph %d (%d nodes) --\n", I->lz.nexec, E->n);
        ir_print(stdout, E);
        fflush(stdout);
    }
    TtBackend *b = rt_backend(I, msg, msglen);
    if (!b) return false;
    TtBackendConfig cfg = config(I);
    /* tt_backend_run times every run for the stats; this clock is the
     * trace's, read only when tracing */
    bool traced = rt_trace_on();
    struct timespec t0, t1;
    if (traced) clock_gettime(CLOCK_MONOTONIC, &t0);
    TtRunError err;
    bool ok = tt_backend_run(b, &cfg, E, entry, (void *const *)in, (void *const *)out,
                             I->prof.on ? &I->prof.table : NULL, &err);
    if (traced) clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!ok) {
        snprintf(msg, msglen, "%s", err.msg);
        if (err.node >= 0) *loc = ir_node(E, err.node)->loc;
    }
    if (traced) {
        char name[64];
        snprintf(name, sizeof name, "graph %d (%s, %d nodes)", I->lz.nexec, rt_backend_name(I),
                 E->n);
        rt_trace_event(name, "graph", 1e9 * (double)t0.tv_sec + (double)t0.tv_nsec,
                       1e9 * (double)t1.tv_sec + (double)t1.tv_nsec, 1);
    }
    return ok;
}

bool rt_exec_graph(Interp *I, IrGraph *E, void **in, void **out, char *msg, size_t msglen,
                   SrcLoc *loc) {
    return run_exec_graph(I, E, NULL, in, out, msg, msglen, loc);
}

bool rt_exec_cached(Interp *I, IrGraph *E, int *entry, void **in, void **out, char *msg,
                    size_t msglen, SrcLoc *loc) {
    return run_exec_graph(I, E, entry, in, out, msg, msglen, loc);
}
