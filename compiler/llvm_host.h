/* llvm_host.h - the LLVM set-up the JIT (compiler/jit) and the GEMM
 * (compiler/gemm) share: a target machine for the host CPU, a module made
 * for it, intrinsic calls and error messages. Only code that already
 * includes llvm-c/ includes this. */
#ifndef TT_LLVM_HOST_H
#define TT_LLVM_HOST_H

#include <stdbool.h>
#include <stddef.h>

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
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

/* A call, built at b, of the intrinsic name (which must exist) overloaded
 * on the types ov, declared in mod on first use. */
LLVMValueRef tt_llvm_intrinsic(LLVMModuleRef mod, LLVMBuilderRef b, const char *name,
                               LLVMTypeRef *ov, size_t nov, LLVMValueRef *args, unsigned nargs);

/* false for no error (e NULL); else consumes e, writes "who: what:
 * message" into err and returns true. */
bool tt_llvm_take_err(LLVMErrorRef e, const char *who, const char *what, char *err, size_t errlen);

#endif
