/* jit_backend.c - the LLVM JIT (compiler/jit) behind the backend interface.
 *
 * The JIT itself lives in compiler/ (ttc compiles ahead of time with the
 * same code); this file only adapts it: settings applied before each run,
 * the per-op flops and bytes a fused kernel cannot split, the dumps of what
 * it compiled, its counters and kernel timers.
 */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "jit.h"

static void *jb_open(const TtBackendConfig *cfg, char *err, size_t errlen) {
    Jit *j = jit_new(cfg->opt_level);
    if (!j)
        snprintf(err, errlen,
                 "the jit backend cannot start: LLVM has no JIT for this machine "
                 "(use --backend=naive)");
    return j;
}

/* --dump=loops prints the loop IR of a graph the JIT just compiled;
 * --dump=fuse only its kernel lines, which name the ops fused into each. */
static void dump_compiled(const TtBackendConfig *cfg, const IrGraph *g) {
    printf("-- jit compiled graph %d (%d nodes) --\n", cfg->graph_no, g->n);
    if (cfg->dump_loops) {
        jit_emit_loops_threads(stdout, g, cfg->threads);
    } else {
        char *text = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&text, &len);
        if (!mem) return;
        jit_emit_loops(mem, g);
        fclose(mem);
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
            if (strncmp(line, "kernel ", 7) != 0) continue;
            size_t n = strlen(line);
            if (n >= 2 && strcmp(line + n - 2, " {") == 0) line[n - 2] = 0;
            printf("  %s\n", line + 7);
        }
        free(text);
    }
    fflush(stdout);
}

static bool jb_run(void *state, const TtBackendConfig *cfg, const IrGraph *g, int *entry,
                   void *const *in, void *const *out, RtProfile *prof, TtRunError *err) {
    Jit *j = state;
    jit_set_threads(j, cfg->threads);
    /* per-kernel timers for --profile and --trace */
    jit_set_profile(j, cfg->profile || cfg->trace);
    jit_set_trace(j, cfg->trace);
    int64_t compiles = jit_stats(j).compiles;
    bool ok = entry ? jit_run_cached(j, entry, g, in, out, err->msg, sizeof err->msg)
                    : jit_run(j, g, in, out, err->msg, sizeof err->msg);
    if (!ok) {
        err->node = jit_error_node(j);
        return false;
    }
    if (prof) tt_profile_add_graph(prof, g); /* times: per kernel (jb_kernels) */
    if ((cfg->dump_fuse || cfg->dump_loops) && jit_stats(j).compiles > compiles)
        dump_compiled(cfg, g);
    return true;
}

static void jb_stats(void *state, TtBackendStats *s) {
    JitStats st = jit_stats(state);
    s->compiles = st.compiles;
    s->hits = st.hits;
    s->disk_hits = st.disk_hits;
    s->compile_ms = st.compile_ms;
    s->kernels = st.kernels;
    s->kernel_fns = st.kernel_fns;
    s->bucket_runs = st.bucket_runs;
}

static int jb_kernels(void *state, TtKernelProfile *out, int max) {
    /* one row type for both: copied, so the JIT's header needs no backend.h */
    int n = jit_profile_kernels(state, NULL, 0);
    if (!out || max <= 0) return n;
    JitKernelProfile *k = malloc(((size_t)n + 1) * sizeof *k);
    if (!k) return 0;
    n = jit_profile_kernels(state, k, n);
    for (int i = 0; i < n && i < max; i++)
        out[i] =
            (TtKernelProfile){k[i].graph, k[i].kernel, k[i].name, k[i].runs, k[i].ns, k[i].flops};
    free(k);
    return n;
}

static void jb_print_details(void *state, FILE *out, int top) {
    jit_print_profile(state, out, top);
}

static void jb_close(void *state) {
    jit_free(state);
}

const TtBackendOps tt_backend_jit = {
    .name = "jit",
    .caps = TT_BACKEND_COMPILES | TT_BACKEND_CAN_REPLAY,
    .open = jb_open,
    .run = jb_run,
    .stats = jb_stats,
    .kernels = jb_kernels,
    .print_details = jb_print_details,
    .close = jb_close,
};
