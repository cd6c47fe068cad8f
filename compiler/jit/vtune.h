/* vtune.h - the vector schedule of the JIT's vectorized loops (the fused
 * elementwise and reduction kernels): their vector width (f32 lanes) and
 * interleave (vectors in flight), chosen by measurement on the host like
 * the GEMM's tile (compiler/gemm/gemm_tune.c), once per host, and kept in
 * the tuning cache. spec/jit.md, "Vector schedule".
 */
#ifndef TT_VTUNE_H
#define TT_VTUNE_H

#include <stdio.h>

typedef struct JitVec {
    int width;      /* f32 lanes of every vectorized loop; 0: LLVM's choice */
    int interleave; /* vectors in flight; 0: LLVM's choice */
} JitVec;

/* The schedule of this process's JIT graphs, decided on the first call:
 * TT_TUNE=0 or no tuning cache (TT_CACHE_DIR=off): LLVM's choice; else the
 * tuning cache's entry for this host; else, unless the machine is busy
 * (then LLVM's choice, nothing stored; TT_TUNE=1 tunes anyway), the
 * candidates are timed now and the winner is stored. Thread-safe. */
JitVec jit_vec_host(void);

/* What jit_vec_host decided and why, with the timed alternatives (nothing
 * before the first call). */
void jit_vec_explain(FILE *out);

#endif
