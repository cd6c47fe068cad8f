/* llvm_host.c - see llvm_host.h. */
#include "llvm_host.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <llvm-c/Target.h>

#include "util.h"

static void init_native(void) {
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
}

LLVMTargetMachineRef tt_llvm_host_machine(LLVMCodeGenOptLevel level, LLVMRelocMode reloc,
                                          LLVMCodeModel model, const char *what, char *err,
                                          size_t errlen) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_native);
    char *triple = LLVMGetDefaultTargetTriple(), *cpu = LLVMGetHostCPUName();
    char *features = LLVMGetHostCPUFeatures(), *msg = NULL;
    LLVMTargetRef target;
    LLVMTargetMachineRef tm = NULL;
    if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
        snprintf(err, errlen, "%s: no target for %s: %s", what, triple, msg ? msg : "?");
        LLVMDisposeMessage(msg);
    } else {
        tm = LLVMCreateTargetMachine(target, triple, cpu, features, level, reloc, model);
        if (!tm) snprintf(err, errlen, "%s: cannot create a target machine for %s", what, cpu);
    }
    LLVMDisposeMessage(triple);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(features);
    return tm;
}

void tt_llvm_set_target(LLVMModuleRef m, LLVMTargetMachineRef tm) {
    char *triple = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(m, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(m, td);
    LLVMDisposeTargetData(td);
}

LLVMValueRef tt_llvm_intrinsic(LLVMModuleRef mod, LLVMBuilderRef b, const char *name,
                               LLVMTypeRef *ov, size_t nov, LLVMValueRef *args, unsigned nargs) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    TT_ASSERT(id != 0);
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(mod, id, ov, nov);
    LLVMTypeRef ft = LLVMIntrinsicGetType(LLVMGetModuleContext(mod), id, ov, nov);
    return LLVMBuildCall2(b, ft, fn, args, nargs, "");
}

bool tt_llvm_take_err(LLVMErrorRef e, const char *who, const char *what, char *err, size_t errlen) {
    if (!e) return false;
    char *m = LLVMGetErrorMessage(e);
    snprintf(err, errlen, "%s: %s: %s", who, what, m);
    LLVMDisposeErrorMessage(m);
    return true;
}
