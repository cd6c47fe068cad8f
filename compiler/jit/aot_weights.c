/* aot_weights.c - ttc --weights-external: the object reads its weights
 * from a safetensors file at run time (aot.h, spec/aot.md).
 *
 * The parser is aot_loader.c, compiled by clang into LLVM bitcode at build
 * time and embedded in ttc (CMake, cmake/embed_bytes.cmake): here it is
 * parsed and linked into the model's module, where aot_build makes its
 * functions internal. Writing a bounds-checked JSON reader as LLVM builder
 * calls would be hundreds of lines that no test could reach directly; as
 * C it is built into tt_compiler too and unit-tested under the sanitizers.
 *
 * What is generated per model, for prefix p:
 *   - a constant table of the tensors it reads (AotwTensor: name, dtype,
 *     shape, bytes), keyed by name, in the order of the spec's weights;
 *   - slots, [n x ptr], and block, ptr: where p_forward finds each tensor,
 *     and the one allocation holding them all (NULL: nothing loaded);
 *   - int p_load_weights(const char *path, char *err, size_t errlen):
 *     tt_aotw_load over the table; AOT_OK or AOT_EWEIGHTS;
 *   - void p_free_weights(void).
 */
#include <llvm-c/BitReader.h>
#include <llvm-c/Core.h>
#include <llvm-c/Linker.h>
#include <stdlib.h>
#include <string.h>

#include "aot.h"
#include "aot_loader.h"

extern const unsigned char tt_aot_loader_bc[];
extern const size_t tt_aot_loader_bc_len;

static LLVMModuleRef parse_loader(LLVMContextRef ctx, char *err, size_t errlen) {
    LLVMMemoryBufferRef mb = LLVMCreateMemoryBufferWithMemoryRange(
        (const char *)tt_aot_loader_bc, tt_aot_loader_bc_len, "aot_loader.bc", 0);
    LLVMModuleRef m = NULL;
    if (LLVMParseBitcodeInContext2(ctx, mb, &m)) {
        snprintf(err, errlen, "ttc: the embedded weights loader's bitcode does not parse (a bug)");
        m = NULL;
    }
    LLVMDisposeMemoryBuffer(mb);
    return m;
}

static LLVMValueRef private_const(LLVMModuleRef mod, LLVMValueRef init, const char *name) {
    LLVMValueRef g = LLVMAddGlobal(mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(g, init);
    LLVMSetGlobalConstant(g, 1);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    return g;
}

static int aotw_dtype(DType dt) {
    return dt == TY_I32 ? AOTW_I32 : dt == TY_I8 ? AOTW_I8 : AOTW_F32;
}

bool aot_gen_external(LLVMModuleRef mod, const AotSpec *s, AotExternal *x, char *err,
                      size_t errlen) {
    memset(x, 0, sizeof *x);
    LLVMContextRef ctx = LLVMGetModuleContext(mod);
    LLVMModuleRef lm = parse_loader(ctx, err, errlen);
    if (!lm) return false;
    /* the loader was compiled for the host by clang; say so in the model's
     * own words so the linker does not warn about a mismatch */
    LLVMSetTarget(lm, LLVMGetTarget(mod));
    LLVMSetDataLayout(lm, LLVMGetDataLayoutStr(mod));
    if (LLVMLinkModules2(mod, lm)) { /* takes lm */
        snprintf(err, errlen, "ttc: linking the weights loader into the object failed");
        return false;
    }
    LLVMValueRef load = LLVMGetNamedFunction(mod, "tt_aotw_load");
    LLVMValueRef freef = LLVMGetNamedFunction(mod, "tt_aotw_free");
    if (!load || !freef) {
        snprintf(err, errlen, "ttc: the weights loader lacks tt_aotw_load/tt_aotw_free (a bug)");
        return false;
    }
    LLVMTypeRef i32 = LLVMInt32TypeInContext(ctx), i64 = LLVMInt64TypeInContext(ctx);
    LLVMTypeRef ptr = LLVMPointerTypeInContext(ctx, 0), vd = LLVMVoidTypeInContext(ctx);
    /* AotwTensor as aot_loader.h lays it out */
    LLVMTypeRef ety = LLVMStructTypeInContext(ctx, (LLVMTypeRef[]){ptr, i32, i32, ptr, i64}, 5, 0);

    x->ordinal = tt_xmalloc(((size_t)s->nweights + 1) * sizeof *x->ordinal);
    LLVMValueRef *rows = tt_xmalloc(((size_t)s->nweights + 1) * sizeof *rows);
    char gname[64];
    for (int i = 0; i < s->nweights; i++) {
        const AotWeight *w = &s->weights[i];
        x->ordinal[i] = -1;
        if (!w->name) continue;
        int k = x->n++;
        x->ordinal[i] = k;
        snprintf(gname, sizeof gname, "tt_aotw_name%d", k);
        LLVMValueRef name = private_const(
            mod, LLVMConstStringInContext(ctx, w->name, (unsigned)strlen(w->name), 0), gname);
        LLVMValueRef dims[IR_MAXDIM + 1];
        for (int d = 0; d < w->shape.ndim; d++)
            dims[d] = LLVMConstInt(i64, (unsigned long long)w->shape.d[d], 0);
        snprintf(gname, sizeof gname, "tt_aotw_shape%d", k);
        LLVMValueRef shape =
            private_const(mod, LLVMConstArray2(i64, dims, (uint64_t)w->shape.ndim), gname);
        LLVMValueRef f[5] = {name, LLVMConstInt(i32, (unsigned long long)aotw_dtype(w->dtype), 0),
                             LLVMConstInt(i32, (unsigned long long)w->shape.ndim, 0), shape,
                             LLVMConstInt(i64, (unsigned long long)w->bytes, 0)};
        rows[k] = LLVMConstNamedStruct(ety, f, 5);
    }
    LLVMValueRef table =
        private_const(mod, LLVMConstArray2(ety, rows, (uint64_t)x->n), "tt_aotw_table");
    free(rows);
    LLVMTypeRef sty = LLVMArrayType2(ptr, (uint64_t)(x->n ? x->n : 1));
    x->slots = LLVMAddGlobal(mod, sty, "tt_aotw_slots");
    LLVMSetInitializer(x->slots, LLVMConstNull(sty));
    LLVMSetLinkage(x->slots, LLVMInternalLinkage);
    x->block = LLVMAddGlobal(mod, ptr, "tt_aotw_block");
    LLVMSetInitializer(x->block, LLVMConstNull(ptr));
    LLVMSetLinkage(x->block, LLVMInternalLinkage);

    LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
    LLVMValueRef nconst = LLVMConstInt(i32, (unsigned long long)x->n, 0);
    /* int p_load_weights(const char *path, char *err, size_t errlen) */
    char fname[300];
    snprintf(fname, sizeof fname, "%s_load_weights", s->prefix);
    LLVMTypeRef lty = LLVMFunctionType(i32, (LLVMTypeRef[]){ptr, ptr, i64}, 3, 0);
    x->load_fn = LLVMAddFunction(mod, fname, lty);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, x->load_fn, "entry"));
    LLVMValueRef args[7] = {table,
                            nconst,
                            x->slots,
                            x->block,
                            LLVMGetParam(x->load_fn, 0),
                            LLVMGetParam(x->load_fn, 1),
                            LLVMGetParam(x->load_fn, 2)};
    LLVMValueRef rc = LLVMBuildCall2(b, LLVMGlobalGetValueType(load), load, args, 7, "");
    LLVMValueRef failed = LLVMBuildICmp(b, LLVMIntNE, rc, LLVMConstInt(i32, 0, 0), "");
    LLVMBuildRet(b, LLVMBuildSelect(b, failed, LLVMConstInt(i32, AOT_EWEIGHTS, 0),
                                    LLVMConstInt(i32, AOT_OK, 0), ""));
    /* void p_free_weights(void) */
    snprintf(fname, sizeof fname, "%s_free_weights", s->prefix);
    x->free_fn = LLVMAddFunction(mod, fname, LLVMFunctionType(vd, NULL, 0, 0));
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, x->free_fn, "entry"));
    LLVMBuildCall2(b, LLVMGlobalGetValueType(freef), freef,
                   (LLVMValueRef[]){x->slots, nconst, x->block}, 3, "");
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
    return true;
}

void aot_external_free(AotExternal *x) {
    free(x->ordinal);
    x->ordinal = NULL;
}
