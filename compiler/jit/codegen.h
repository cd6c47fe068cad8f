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

/* Builds a module in ctx holding `void fname(void **bufs)`, which runs the
 * kernels of p in order: bufs[0..ninputs) are the inputs, then the outputs,
 * then the workspace. Each kernel is an internal function `kN_op(bufs)`.
 * The module gets tm's triple and data layout and is verified. NULL with
 * err on failure. */
LLVMModuleRef cg_module(LLVMContextRef ctx, const LpProg *p, const char *fname,
                        LLVMTargetMachineRef tm, char *err, size_t errlen);

/* Runs the new pass manager's default<O{opt_level}> pipeline. */
bool cg_optimize(LLVMModuleRef m, LLVMTargetMachineRef tm, int opt_level, char *err, size_t errlen);

#endif
