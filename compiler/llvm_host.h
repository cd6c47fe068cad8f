/* llvm_host.h - the LLVM set-up the JIT (compiler/jit) and the GEMM
 * (compiler/gemm) share: a target machine for the host CPU, and a module
 * made for it. Only code that already includes llvm-c/ includes this. */
#ifndef TT_LLVM_HOST_H
#define TT_LLVM_HOST_H

#include <stddef.h>

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

/* A target machine for the host: default triple, host CPU name and
 * features (AVX2, FMA, ...). Initializes the native target on first use.
 * NULL with "what: ..." in err on failure. */
LLVMTargetMachineRef tt_llvm_host_machine(LLVMCodeGenOptLevel level, LLVMRelocMode reloc,
                                          LLVMCodeModel model, const char *what, char *err,
                                          size_t errlen);

/* Gives m tm's triple and data layout (what the optimizer and codegen
 * assume). */
void tt_llvm_set_target(LLVMModuleRef m, LLVMTargetMachineRef tm);

#endif
