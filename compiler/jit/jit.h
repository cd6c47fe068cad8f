/* jit.h - the LLVM JIT backend: runs a graph like rt_naive_run, compiled.
 *
 * jit_run lowers a graph to the loop IR (lower.c: one loop nest per kernel,
 * chains of elementwise and movement ops fused), generates LLVM IR
 * (codegen.c), optimizes it with the new pass manager and compiles it with
 * one ORC LLJIT for the host CPU. Compiled graphs are cached: a graph of the
 * same structure (ir_hash, then a full structural comparison against a
 * private copy) runs the cached code without compiling. Intermediates live
 * in one workspace per compiled graph, at offsets fixed at compile time;
 * outputs are written straight into the caller's buffers.
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
 * accepts). Not thread-safe: one Jit per thread. */
bool jit_run(Jit *j, const IrGraph *g, void *const *inputs, void *const *outputs, char *err,
             size_t errlen);

typedef struct JitStats {
    int64_t compiles, hits;
    double compile_ms; /* total time spent compiling */
} JitStats;
JitStats jit_stats(const Jit *j);

/* Fusion on (the default) or off (one kernel per node), for graphs compiled
 * from now on; for tests and for comparing. */
void jit_set_fusion(Jit *j, bool on);

/* Learner-facing dumps of what jit_run would compile for g: */
void jit_emit_loops(FILE *out, const IrGraph *g); /* the loop IR, readable */
bool jit_emit_llvm(FILE *out, const IrGraph *g, int opt_level, char *err,
                   size_t errlen); /* optimized LLVM IR */
bool jit_emit_asm(FILE *out, const IrGraph *g, int opt_level, char *err, size_t errlen);

#endif
