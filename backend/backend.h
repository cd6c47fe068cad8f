/* backend.h - what runs an execution graph: one interface, every backend a peer.
 *
 * A backend is a TtBackendOps table registered under a name ("naive": the
 * reference kernels, backend/naive/; "jit": the LLVM JIT, backend/jit/).
 * The runtime picks one by name (ttrun --backend=, backend("name")), opens
 * it on first use and runs graphs through tt_backend_run; it never asks
 * which backend it holds, only what the backend can do (caps). Adding a
 * backend is writing one ops table and registering it (tt_backend_register,
 * or the built-in list in backend.c).
 *
 * One error contract for all: a run that fails on its data (an index out of
 * range, a result that does not fit in memory), a backend that cannot start
 * and a graph it cannot run all return false with a whole message (and the
 * node it is about, when it is a node's), never abort; the outputs are then
 * undefined and nothing the backend allocated for the run is left behind.
 *
 * One profile for all: every run is counted and timed here (runs, seconds);
 * a backend adds what its ops computed to the caller's per-op table
 * (RtProfile: calls and seconds when it times ops one by one, flops and
 * bytes always when asked), its compile counters to TtBackendStats, and its
 * per-kernel timers to TtKernelProfile rows; tt_backend_print_profile
 * prints any backend's the same way.
 *
 * Dependencies: backend/ needs compiler/ (the IR, the JIT) only; runtime/
 * sits on top of it.
 */
#ifndef TT_BACKEND_H
#define TT_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ir.h"

/* Per-op totals of the graphs run while profiling (ttrun --profile,
 * profile { }). A backend that runs op by op (naive) fills all four; one
 * that fuses ops into kernels (jit) fills flops and bytes (per node: the
 * operands read and the result written) and leaves calls and seconds to its
 * kernel rows. */
typedef struct RtProfile {
    double seconds[OP__COUNT];
    int64_t calls[OP__COUNT];
    int64_t flops[OP__COUNT];
    int64_t bytes[OP__COUNT];
} RtProfile;

/* Adds the flops and bytes of every node of g but its inputs to p: for a
 * backend that does not see ops one by one. */
void tt_profile_add_graph(RtProfile *p, const IrGraph *g);

/* An event [t0_ns, t1_ns] on CLOCK_MONOTONIC for ttrun --trace, on thread
 * row tid (1: the caller's). */
typedef void (*TtTraceFn)(const char *name, const char *cat, double t0_ns, double t1_ns, int tid);

/* What the runtime asks of a backend; given at open and with every run
 * (a backend applies what changed: a thread count, profiling). */
typedef struct TtBackendConfig {
    int threads;     /* worker threads; 0: all online cores */
    int opt_level;   /* 0..3, for a backend that compiles (read at open) */
    bool profile;    /* per-op / per-kernel timers */
    TtTraceFn trace; /* NULL: no trace events */
    /* dumps to stdout of what a compiling backend compiles (ttrun
     * --dump=fuse: its kernel lines; --dump=loops: its loop IR), headed
     * with graph_no */
    bool dump_fuse, dump_loops;
    int graph_no;
} TtBackendConfig;

/* Why a run failed: msg is whole, to print as it is ("index 5 out of range
 * for axis of size 2", "out of memory: ...", "jit: ..." for a failure of
 * the backend itself); node is the node of the graph it is about (for its
 * source location), -1 when it is no node's. */
typedef struct TtRunError {
    char msg[512];
    int node;
} TtRunError;

/* Compile counters (0 for a backend that does not compile); runs and
 * seconds are counted by tt_backend_run for every backend. */
typedef struct TtBackendStats {
    int64_t runs;
    double seconds;    /* in tt_backend_run, compiles included */
    int64_t compiles;  /* graphs compiled */
    int64_t hits;      /* runs that found their graph compiled */
    int64_t disk_hits; /* compiles whose code came from an on-disk cache */
    double compile_ms;
    int64_t kernels, kernel_fns; /* kernels compiled, and the functions they share */
    int64_t bucket_runs;         /* runs on a shape family's padded graph (spec/jit.md) */
} TtBackendStats;

/* One kernel's timers (graph by graph in compile order, each graph's
 * kernels in order): for profile tables and for callers that take
 * differences (profile blocks). name lives as long as the backend. */
typedef struct TtKernelProfile {
    int graph, kernel;
    const char *name;
    int64_t runs;  /* of the kernel's graph */
    double ns;     /* total */
    int64_t flops; /* of one run */
} TtKernelProfile;

enum {
    /* graphs are compiled once and cached: the stats' compile counters
     * mean something, and a caller that runs one graph again and again
     * (captured calls, runtime/graph/capture.c) gains from the entry of run */
    TT_BACKEND_COMPILES = 1u << 0,
    TT_BACKEND_CAN_REPLAY = 1u << 1,
};

typedef struct TtBackendOps {
    const char *name; /* "naive", "jit": what --backend= and backend() take */
    unsigned caps;    /* TT_BACKEND_* */
    /* The backend's state, or NULL with err filled (the backend cannot
     * start on this machine). */
    void *(*open)(const TtBackendConfig *cfg, char *err, size_t errlen);
    /* Runs g: in[k] is the data of input slot k, out[j] the caller's buffer
     * for g->outputs[j] (one buffer for an output that aliases an input,
     * ir_output_alias). entry, when not NULL, is the caller's memo of the
     * compiled form of g for graphs it runs again unchanged (-1 at first);
     * a backend without TT_BACKEND_CAN_REPLAY ignores it. prof: NULL, or
     * the per-op table to add to. False with err filled on any failure. */
    bool (*run)(void *state, const TtBackendConfig *cfg, const IrGraph *g, int *entry,
                void *const *in, void *const *out, RtProfile *prof, TtRunError *err);
    /* Fills the compile counters (runs and seconds excepted); NULL: none. */
    void (*stats)(void *state, TtBackendStats *s);
    /* Fills out[0..max) with the kernel timers and returns how many there
     * are; NULL: the backend times ops, not kernels (its RtProfile rows). */
    int (*kernels)(void *state, TtKernelProfile *out, int max);
    /* Prints what --profile shows beyond the shared lines (the top
     * kernels, top <= 0: all; a memory plan); NULL: nothing. */
    void (*print_details)(void *state, FILE *out, int top);
    void (*close)(void *state);
} TtBackendOps;

/* -- the registry -- */

#define TT_BACKEND_MAX 8
/* Adds a backend (false: the name is taken or the registry is full). The
 * built-in ones are there from the start. */
bool tt_backend_register(const TtBackendOps *ops);
/* The backend registered under name, or NULL; its index with *index. */
const TtBackendOps *tt_backend_find(const char *name, int *index);
int tt_backend_count(void);
const TtBackendOps *tt_backend_at(int index);
/* "naive, jit or NAME" for messages that list what can be chosen. */
const char *tt_backend_names(char *buf, size_t len);

/* -- an open backend -- */

typedef struct TtBackend TtBackend;
TtBackend *tt_backend_open(const TtBackendOps *ops, const TtBackendConfig *cfg, char *err,
                           size_t errlen);
void tt_backend_close(TtBackend *b);
const TtBackendOps *tt_backend_ops(const TtBackend *b);
bool tt_backend_run(TtBackend *b, const TtBackendConfig *cfg, const IrGraph *g, int *entry,
                    void *const *in, void *const *out, RtProfile *prof, TtRunError *err);
TtBackendStats tt_backend_stats(const TtBackend *b);
/* The kernel timers (0 and nothing filled for a backend without them). */
int tt_backend_kernels(TtBackend *b, TtKernelProfile *out, int max);
/* ttrun --profile's lines for b: "NAME: R graph runs in T ms" (and, for a
 * compiling backend, its compiles, compile time and cache hits), then its
 * details (print_details: top kernels, top <= 0: all). */
void tt_backend_print_profile(TtBackend *b, FILE *out, int top);

/* The built-in backends (backend/naive/naive_backend.c,
 * backend/jit/jit_backend.c). */
extern const TtBackendOps tt_backend_naive;
extern const TtBackendOps tt_backend_jit;

#endif
