/* aot.h - ahead-of-time compilation: traced graphs -> one standalone object.
 *
 * ttc traces a model's forward (tools/ttc_aot.c) and hands the graphs here.
 * The object defines two C functions, for the prefix p:
 *
 *   size_t p_workspace_bytes([int64_t B]);
 *   int p_forward(args..., outs..., [int64_t B,] void *workspace);
 *
 * and needs nothing but libc, libm and (with threads > 1) pthreads: each
 * graph is lowered and generated exactly as the JIT does it (lower.c,
 * transform.c, codegen.c); what the JIT's code calls from the tt runtime is
 * defined inside the object instead, as internal functions:
 *   - the GEMM behind matmuls (CG_GEMM_SYMBOL): a loop GEMM generated into
 *     the module (rows, k, then columns, llvm.fmuladd), which LLVM inlines
 *     at each call site with its constant sizes and vectorizes;
 *   - parallel loops (CG_PARALLEL_SYMBOL): a parallel-for that starts
 *     threads with pthread_create and joins them, for --threads N > 1.
 * Weights are constant data of the object; with weights_external, those
 * of the model's state are read by name from a safetensors file at run
 * time by p_load_weights (aot_weights.c, aot_loader.c).
 *
 * A symbolic batch dimension B: the graph IR has static shapes, so the
 * object holds the forward compiled for a few fixed row counts (say 64, 8
 * and 1) and p_forward covers any B with them, largest first: rows
 * [0, 64k) by the 64-row graph, then 8-row chunks, then single rows. This
 * is exact only when every row of each output depends on the same row of
 * the batched inputs alone; ttc checks that before calling here.
 */
#ifndef TT_AOT_H
#define TT_AOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ir.h"

/* One traced graph: the forward at one row count. */
typedef struct AotGraph {
    const IrGraph *g;
    int64_t rows; /* rows of the batch one call computes (1 without a batch dim) */
    /* per input slot of g: >= 0, the forward argument it reads; < 0, the
     * weight -1 - src */
    const int *slot_src;
} AotGraph;

typedef struct AotWeight {
    const void *data;
    size_t bytes;
    /* weights_external: the model-state name ("fc1.w") the object reads it
     * by at run time (data is then ttc's copy only); NULL: constant data */
    const char *name;
    DType dtype;
    Shape shape;
} AotWeight;

typedef struct AotSpec {
    const char *prefix; /* p of p_forward, a C identifier */
    int nargs, nouts;
    /* bytes per batch row of each argument and output (batched), or 0 for
     * one that is not cut into rows (every chunk gets the same pointer) */
    const int64_t *arg_row_bytes, *out_row_bytes;
    bool batched;           /* p_forward takes int64_t B after the outputs */
    const AotGraph *graphs; /* batched: rows descending, the last of 1 row */
    int ngraphs;            /* >= 1; exactly 1 when not batched */
    const AotWeight *weights;
    int nweights;
    int opt_level; /* 0..3 */
    int threads;   /* >= 1: parallel loops of large kernels (transform.h) */
    /* --weights-external: the object also exports p_load_weights and
     * p_free_weights, and reads the weights that have a name from the
     * file they load (aot_weights.c); p_forward returns AOT_EWEIGHTS
     * until then */
    bool weights_external;
} AotSpec;

typedef enum AotOutput { AOT_OBJECT, AOT_LLVM, AOT_ASM } AotOutput;

/* Compiles s for the host CPU (position-independent code) into *out, *len
 * (malloc'd): an ELF object file, or the optimized LLVM IR or assembly as
 * text. False with err on failure. */
bool aot_build(const AotSpec *s, AotOutput what, char **out, size_t *len, char *err, size_t errlen);

/* The workspace bytes of graph g as the JIT lays it out (lp_lower). */
int64_t aot_workspace_bytes(const IrGraph *g, int threads);

/* The graph for Graphviz (ttc --emit=dot): a box per op with its shape,
 * inputs as ellipses, and each kernel the JIT would compile (its fused
 * ops, lp_lower + lp_fuse_kernels) as a cluster. */
void aot_emit_dot(FILE *out, const IrGraph *g);

/* The LLVM version ttc was built with (ttc --version). */
void aot_llvm_version(unsigned *major, unsigned *minor, unsigned *patch);

/* The return codes of p_forward (the header defines them as P_OK, ...). */
#define AOT_OK       0
#define AOT_EDIM     1 /* a dimension argument is negative */
#define AOT_EWORKSPC 2 /* workspace is NULL but p_workspace_bytes is not 0 */
#define AOT_EINDEX   3 /* an index input is out of range (gather, embedding) */
#define AOT_EWEIGHTS 4 /* external weights not loaded, or p_load_weights failed */

/* -- aot_weights.c: --weights-external, used by aot_build -- */

struct LLVMOpaqueModule;
struct LLVMOpaqueValue;

typedef struct AotExternal {
    struct LLVMOpaqueValue *slots;             /* global [n x ptr]: each named weight's data */
    struct LLVMOpaqueValue *block;             /* global ptr: the loaded block, NULL until loaded */
    struct LLVMOpaqueValue *load_fn, *free_fn; /* p_load_weights, p_free_weights */
    int *ordinal; /* per weight of the spec: its slot, or -1 (embedded) */
    int n;
} AotExternal;

/* Links the safetensors loader (aot_loader.c, as embedded bitcode) into
 * mod and defines the slots, the table of expected tensors (name, dtype,
 * shape of each named weight) and the two exported functions. False with
 * err on failure. */
bool aot_gen_external(struct LLVMOpaqueModule *mod, const AotSpec *s, AotExternal *x, char *err,
                      size_t errlen);
void aot_external_free(AotExternal *x);

#endif
