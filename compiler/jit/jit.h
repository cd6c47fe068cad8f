/* jit.h - the LLVM JIT backend: runs a graph like rt_naive_run, compiled.
 *
 * jit_run lowers a graph to the loop IR (lower.c: one loop nest per kernel,
 * chains of elementwise and movement ops fused), schedules it (transform.c:
 * innermost loops marked for LLVM's vectorizer; with several threads, the
 * top-level loops of large kernels run on a thread pool, parallel.c),
 * generates LLVM IR (codegen.c), optimizes it with the new pass manager
 * and compiles it with one ORC LLJIT for the host CPU. Compiled graphs are
 * cached: a graph of the same structure (ir_hash, then a full structural
 * comparison against a private copy) runs the cached code without
 * compiling (a change of the thread count compiles again). Intermediates live
 * in one workspace per compiled graph, at offsets fixed at compile time;
 * outputs are written straight into the caller's buffers. Matmuls call the
 * shape-generic GEMM (compiler/gemm, compiled once per process when the
 * first graph with a matmul is compiled) on their operands' buffers.
 */
#ifndef TT_JIT_H
#define TT_JIT_H

#include <stdio.h>

#include "ir.h"

typedef struct Jit Jit;

/* One ORC LLJIT for the host CPU, with a process-symbol generator (so
 * memset, memcpy, expf, ... resolve). opt_level 0..3. NULL if LLVM cannot
 * set up a JIT for the host. */
Jit *jit_new(int opt_level);
void jit_free(Jit *j);

/* Compiles g (or reuses the code compiled for a graph of the same
 * structure) and runs it. Same contract as rt_naive_run: inputs[k] = data of
 * input slot k, outputs[j] = caller-allocated buffer for g->outputs[j].
 * Returns false with err on a failure (never aborts on a graph ir_verify
 * accepts). Not thread-safe: one Jit per thread.
 * err is a whole message for the caller to print as it is: the JIT's own
 * failures start with "jit: "; the data's do not, and read like the naive
 * runtime's: an index out of range (gather, scatter_add: the generated code
 * checks each one) gives "index 5 out of range for axis of size 2", with the
 * outputs undefined; a result that does not fit in memory "out of memory:
 * ...". jit_error_node says which node such a failure is about. */
bool jit_run(Jit *j, const IrGraph *g, void *const *inputs, void *const *outputs, char *err,
             size_t errlen);
/* jit_run for a caller that runs the same graph again and again (captured
 * calls, runtime/graph/capture.c): *entry is the compiled entry a previous call
 * found for g (-1 the first time: looked up by hash, compiled on a miss,
 * and remembered). A remembered entry compiled for other settings (threads,
 * profiling, convolution lowering) is looked up again. g must be the graph
 * the entry was found for, unchanged. A graph that ran on its shape
 * family's padded bucket (jit_set_buckets) leaves *entry as it was. */
bool jit_run_cached(Jit *j, int *entry, const IrGraph *g, void *const *inputs, void *const *outputs,
                    char *err, size_t errlen);

/* The node of g that the last failed jit_run's error is about (the first
 * in node order with a bad index, or a result that did not fit), for a
 * message at its source location; -1 when the failure is not a node's
 * (LLVM, a cache, a workspace). */
int jit_error_node(const Jit *j);

typedef struct JitStats {
    int64_t compiles, hits;
    int64_t disk_hits; /* compiles whose object code came from the on-disk cache */
    double compile_ms; /* total time spent compiling */
    /* of the graphs compiled: their kernels, and the LLVM functions that
     * run them (alike kernels, the layers of a model, share one) */
    int64_t kernels, kernel_fns;
    /* runs of a graph on the padded bucket graph of its shape family (a
     * dimension that varies from call to call: spec/jit.md) */
    int64_t bucket_runs;
} JitStats;
JitStats jit_stats(const Jit *j);

/* Whether graphs compiled from now on share one LLVM function among
 * kernels alike up to their buffers (default on; process-wide, for tests
 * and measurements). */
void jit_set_kernel_sharing(bool on);

/* Threads of the GEMM behind matmuls and of parallel loops (0, the default:
 * all online cores). */
void jit_set_threads(Jit *j, int n);

/* How graphs compiled from now on lower convolutions: 0 the rule of
 * spec/jit.md ("Convolution"), 1 the direct loop nests, 2 explicit im2col +
 * GEMM, 3 implicit im2col (the GEMM gathers B; the input gradient stays
 * explicit) (for tests and bench/bench_conv.c). The default is 0, or what
 * the environment variable TT_JIT_CONV (direct|im2col|implicit) says. */
void jit_set_conv_lowering(Jit *j, int mode);

/* Every vectorized loop of the graphs j compiles from now on gets this
 * width (f32 lanes) and interleave (0: LLVM's choice) instead of the host's
 * tuned schedule (vtune.h): the tuner's own timings, tests. */
void jit_set_vec(Jit *j, int width, int interleave);

/* A function jit_run applies to the loop IR of each graph it compiles from
 * now on, after lowering and before the default schedule (lp_schedule with
 * the thread count): for tests of the loop transformations (transform.h).
 * NULL: none. */
typedef struct LpProg LpProg;
typedef void (*JitLoopHook)(LpProg *p, void *arg);
void jit_set_loop_hook(Jit *j, JitLoopHook hook, void *arg);

/* Graphs that differ only in one dimension T (a sequence length) run on a
 * few padded bucket graphs where padding is exact (spec/jit.md, "Varying
 * dimensions"): on (the default; TT_JIT_BUCKETS=off turns it off) or off
 * (one compiled graph per value), for graphs run from now on. */
void jit_set_buckets(Jit *j, bool on);

/* Fusion on (the default) or off (one kernel per node), for graphs compiled
 * from now on; for tests and for comparing. */
void jit_set_fusion(Jit *j, bool on);
/* Kernel fusion (lp_fuse_kernels: merged row loops, matmul epilogues) on
 * (the default) or off, for graphs compiled from now on; for tests. */
void jit_set_kernel_fusion(Jit *j, bool on);

/* Per-kernel timers (a clock read around every kernel) in graphs compiled
 * from now on, off by default; a profiled and an unprofiled graph are
 * different cache entries. jit_print_profile prints the top kernels (top
 * <= 0: all) of every profiled graph by total time. */
void jit_set_profile(Jit *j, bool on);
/* Tracing (ttrun --trace): with a function set, every kernel of a profiled
 * graph (jit_set_profile) and every compile is reported to it as an event
 * [t0_ns, t1_ns] on CLOCK_MONOTONIC, on thread row tid (1: the caller's);
 * so is each thread's share of a parallel loop (tid 2..: the workers). The
 * runtime records them (runtime/io/trace.h); NULL: none. */
typedef void (*JitTraceFn)(const char *name, const char *cat, double t0_ns, double t1_ns, int tid);
void jit_set_trace(Jit *j, JitTraceFn fn);
void jit_print_profile(const Jit *j, FILE *out, int top);
/* The same numbers, kernel by kernel (graph by graph in compile order, each
 * graph's kernels in order), for callers that take differences (profile
 * blocks): fills out[0..max) and returns how many there are. name lives as
 * long as the cached graph. */
typedef struct JitKernelProfile {
    int graph, kernel;
    const char *name;
    int64_t runs;  /* of the kernel's graph */
    double ns;     /* total */
    int64_t flops; /* of one run */
} JitKernelProfile;
int jit_profile_kernels(const Jit *j, JitKernelProfile *out, int max);

/* Learner-facing dumps of what jit_run would compile for g: */
void jit_emit_loops(FILE *out, const IrGraph *g); /* the loop IR, readable */
/* the same, scheduled for nthreads threads as jit_run would (jit_emit_loops:
 * 1 thread; 0: all online cores), so parallel loops show */
void jit_emit_loops_threads(FILE *out, const IrGraph *g, int nthreads);
bool jit_emit_llvm(FILE *out, const IrGraph *g, int opt_level, char *err,
                   size_t errlen); /* optimized LLVM IR */
bool jit_emit_asm(FILE *out, const IrGraph *g, int opt_level, char *err, size_t errlen);

#endif
