/* codegen.h - loop IR -> LLVM IR (LLVM C API), and the host target machine.
 *
 * Only codegen.c and jit.c include this header (and llvm-c/).
 */
#ifndef TT_CODEGEN_H
#define TT_CODEGEN_H

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

#include "loop.h"

/* A target machine for the host CPU (name and features), at opt_level
 * 0..3. NULL with err on failure. */
LLVMTargetMachineRef cg_host_machine(int opt_level, char *err, size_t errlen);

/* The external function LS_GEMM statements call (jit.c defines it for the
 * JIT):  void tt_jit_gemm(void *rt, const float *A, int64_t lda, int32_t ta,
 *        const float *B, int64_t ldb, int32_t tb, float *C, int64_t ldc,
 *        int64_t M, int64_t N, int64_t K)  -- C = op(A) @ op(B). */
#define CG_GEMM_SYMBOL "tt_jit_gemm"

/* The one LS_GEMM statements with a gathered B call (the JIT's only;
 * implicit im2col, gemm.h's tt_gemm_run_gather):
 *   void tt_jit_gemm_gather(void *rt, const float *A, int64_t lda, int32_t ta,
 *        const float *x, const int64_t *geo, float *C, int64_t ldc, int64_t M,
 *        int64_t N, int64_t K, void (*epi)(void **, int64_t, int64_t),
 *        void **bufs, int32_t acc)
 * geo: rdim[2], rstr[3], cdim[2], cstr[3], then C's layout: ocols, ostride
 * (TtGemmOut; ocols 0: rows of ldc) (a constant of the module). */
#define CG_GEMM_GATHER_SYMBOL "tt_jit_gemm_gather"

/* The one qmatmul's LS_GEMM statements call (int8 -> i32, qgemm.h):
 *   void tt_jit_qgemm(void *rt, const int8_t *A, int64_t lda, const int8_t *B,
 *        int64_t ldb, int32_t *C, int64_t ldc, int64_t M, int64_t N, int64_t K,
 *        void (*epi)(void **bufs, int64_t r0, int64_t r1), void **bufs) */
#define CG_QGEMM_SYMBOL "tt_jit_qgemm"

/* The external function parallel loops call (parallel.h):
 *   void ttrt_parallel_for(void (*body)(void **bufs, int64_t lo, int64_t hi),
 *                          void **bufs, int64_t n, int32_t nthreads) */
#define CG_PARALLEL_SYMBOL "ttrt_parallel_for"

/* With profiling, the graph function calls this before each kernel and
 * once after the last (jit.c times the kernels with it):
 *   void tt_jit_tick(void *rt, int32_t kernel)  -- kernel = index, nkernels at the end */
#define CG_TICK_SYMBOL "tt_jit_tick"

/* Builds a module in ctx holding `void fname(void **bufs)`, which runs the
 * kernels of p in order: bufs[0..ninputs) are the inputs, then the outputs,
 * then the workspace, then (read by kernels with LS_GEMM) the runtime context
 * passed to CG_GEMM_SYMBOL (and CG_TICK_SYMBOL), then (read when p has
 * LS_CHECKs) p->nchecks int64 status words, zeroed by the caller: word w
 * becomes i + 2^31 + 1 when index i of node p->check_node[w] is out of
 * range (the first such i recorded; the graph runs on). Each kernel is an
 * internal function `kN_op(void **tbl)` called with a table of its own
 * pointers (ksig.h) that fname fills per call from bufs, and kernels alike
 * up to their buffers share one function (the repeated layers of a model):
 * *nfuncs (when not NULL) gets the number of kernel functions emitted.
 * profile: tick around the kernels. The module gets tm's triple and data
 * layout and is verified. NULL with err on failure. */
LLVMModuleRef cg_module(LLVMContextRef ctx, const LpProg *p, const char *fname,
                        LLVMTargetMachineRef tm, bool profile, int *nfuncs, char *err,
                        size_t errlen);

/* Whether cg_module shares a function among alike kernels (default on;
 * process-wide, for tests and measurements: off emits one per kernel). */
void cg_set_share(bool on);

/* Runs the new pass manager's default<O{opt_level}> pipeline. */
bool cg_optimize(LLVMModuleRef m, LLVMTargetMachineRef tm, int opt_level, char *err, size_t errlen);

#endif
