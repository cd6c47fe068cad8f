/* aot.c - one standalone module for ttc: the graphs' code (codegen.c), the
 * GEMM and parallel-for they call, the weights, and the exported entry
 * points p_forward and p_workspace_bytes (see aot.h).
 */
#include "aot.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Linker.h>
#include <stdlib.h>
#include <string.h>

#include "codegen.h"
#include "parcost.h"
#include "transform.h"

typedef struct Aot {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef i1, i8, i32, i64, f32, ptr, vd;
} Aot;

static LLVMValueRef c64(Aot *a, int64_t v) {
    return LLVMConstInt(a->i64, (unsigned long long)v, 1);
}

static LLVMValueRef c32(Aot *a, int32_t v) {
    return LLVMConstInt(a->i32, (unsigned long long)(int64_t)v, 1);
}

static void fn_attr(Aot *a, LLVMValueRef fn, const char *name) {
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(a->ctx, kind, 0));
}

/* A function of the module by name: the declaration the graphs' code made,
 * or a new one. */
static LLVMValueRef get_fn(Aot *a, const char *name, LLVMTypeRef ty) {
    LLVMValueRef f = LLVMGetNamedFunction(a->mod, name);
    return f ? f : LLVMAddFunction(a->mod, name, ty);
}

static LLVMBasicBlockRef block(Aot *a, LLVMValueRef fn, const char *name) {
    return LLVMAppendBasicBlockInContext(a->ctx, fn, name);
}

/* A counted loop `for (v = lo; v < hi; v++)` in fn; the body goes where the
 * builder is after loop_begin, loop_end closes it. */
typedef struct Loop {
    LLVMValueRef var;
    LLVMBasicBlockRef head, body, exit;
} Loop;

static LLVMValueRef loop_begin(Aot *a, LLVMValueRef fn, Loop *l, LLVMValueRef lo, LLVMValueRef hi,
                               const char *name) {
    l->var = LLVMBuildAlloca(a->b, a->i64, name);
    LLVMBuildStore(a->b, lo, l->var);
    l->head = block(a, fn, name);
    l->body = block(a, fn, name);
    l->exit = block(a, fn, name);
    LLVMBuildBr(a->b, l->head);
    LLVMPositionBuilderAtEnd(a->b, l->head);
    LLVMValueRef v = LLVMBuildLoad2(a->b, a->i64, l->var, "");
    LLVMBuildCondBr(a->b, LLVMBuildICmp(a->b, LLVMIntSLT, v, hi, ""), l->body, l->exit);
    LLVMPositionBuilderAtEnd(a->b, l->body);
    return v;
}

static void loop_end(Aot *a, Loop *l) {
    LLVMValueRef v = LLVMBuildLoad2(a->b, a->i64, l->var, "");
    LLVMBuildStore(a->b, LLVMBuildNSWAdd(a->b, v, c64(a, 1), ""), l->var);
    LLVMBuildBr(a->b, l->head);
    LLVMPositionBuilderAtEnd(a->b, l->exit);
}

static LLVMValueRef fptr(Aot *a, LLVMValueRef base, LLVMValueRef idx) {
    return LLVMBuildInBoundsGEP2(a->b, a->f32, base, &idx, 1, "");
}

/* The end of the GEMM functions: epi(bufs, 0, M) when epi is not NULL (the
 * fused epilogue on all rows, now final), then return. */
static void ret_after_epilogue(Aot *a, LLVMValueRef fn, LLVMValueRef epi, LLVMValueRef bufs,
                               LLVMValueRef M) {
    LLVMBuilderRef b = a->b;
    LLVMBasicBlockRef call = block(a, fn, "epi"), done = block(a, fn, "done");
    LLVMBuildCondBr(b, LLVMBuildIsNotNull(b, epi, ""), call, done);
    LLVMPositionBuilderAtEnd(b, call);
    LLVMTypeRef ety = LLVMFunctionType(a->vd, (LLVMTypeRef[]){a->ptr, a->i64, a->i64}, 3, 0);
    LLVMBuildCall2(b, ety, epi, (LLVMValueRef[]){bufs, c64(a, 0), M}, 3, "");
    LLVMBuildBr(b, done);
    LLVMPositionBuilderAtEnd(b, done);
    LLVMBuildRetVoid(b);
}

/* CG_GEMM_SYMBOL for the object (codegen.h's signature):
 *   C[i, j] = sum_p op(A)[i, p] * op(B)[p, j], then epi(bufs, 0, M).
 * Loop order i, p, j: the inner loop runs along a row of C and of op(B),
 * so with B not transposed (a layer's x @ w) it is unit-stride and LLVM
 * vectorizes it once the call is inlined with its constant strides. Each
 * element is an fma chain over p in order, from zero, as the JIT's GEMM
 * sums it for K <= 256. */
static void gen_gemm(Aot *a) {
    LLVMTypeRef p[14] = {a->ptr, a->ptr, a->i64, a->i32, a->ptr, a->i64, a->i32,
                         a->ptr, a->i64, a->i64, a->i64, a->i64, a->ptr, a->ptr};
    LLVMTypeRef ty = LLVMFunctionType(a->vd, p, 14, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(a->mod, CG_GEMM_SYMBOL);
    if (!fn) return; /* no matmul */
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    fn_attr(a, fn, "nounwind");
    LLVMBuilderRef b = a->b;
    LLVMPositionBuilderAtEnd(b, block(a, fn, "entry"));
    LLVMValueRef A = LLVMGetParam(fn, 1), lda = LLVMGetParam(fn, 2), ta = LLVMGetParam(fn, 3);
    LLVMValueRef B = LLVMGetParam(fn, 4), ldb = LLVMGetParam(fn, 5), tb = LLVMGetParam(fn, 6);
    LLVMValueRef C = LLVMGetParam(fn, 7), ldc = LLVMGetParam(fn, 8);
    LLVMValueRef M = LLVMGetParam(fn, 9), N = LLVMGetParam(fn, 10), K = LLVMGetParam(fn, 11);
    LLVMValueRef epi = LLVMGetParam(fn, 12), bufs = LLVMGetParam(fn, 13);
    LLVMValueRef tA = LLVMBuildICmp(b, LLVMIntNE, ta, c32(a, 0), "");
    LLVMValueRef tB = LLVMBuildICmp(b, LLVMIntNE, tb, c32(a, 0), "");
    /* op(A)(i, p) = A[i*sai + p*sap], op(B)(p, j) = B[p*sbp + j*sbj] */
    LLVMValueRef sai = LLVMBuildSelect(b, tA, c64(a, 1), lda, "sai");
    LLVMValueRef sap = LLVMBuildSelect(b, tA, lda, c64(a, 1), "sap");
    LLVMValueRef sbp = LLVMBuildSelect(b, tB, c64(a, 1), ldb, "sbp");
    LLVMValueRef sbj = LLVMBuildSelect(b, tB, ldb, c64(a, 1), "sbj");
    LLVMTypeRef fmty = LLVMFunctionType(a->f32, (LLVMTypeRef[]){a->f32, a->f32, a->f32}, 3, 0);
    LLVMValueRef fma = get_fn(a, "llvm.fmuladd.f32", fmty);
    LLVMValueRef zero = LLVMConstReal(a->f32, 0);

    Loop li, lj0, lp, lj;
    LLVMValueRef i = loop_begin(a, fn, &li, c64(a, 0), M, "i");
    LLVMValueRef crow = fptr(a, C, LLVMBuildNSWMul(b, i, ldc, ""));
    LLVMValueRef j0 = loop_begin(a, fn, &lj0, c64(a, 0), N, "j0");
    LLVMBuildStore(b, zero, fptr(a, crow, j0));
    loop_end(a, &lj0);
    LLVMValueRef pv = loop_begin(a, fn, &lp, c64(a, 0), K, "p");
    LLVMValueRef ai =
        LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, i, sai, ""), LLVMBuildNSWMul(b, pv, sap, ""), "");
    LLVMValueRef av = LLVMBuildLoad2(b, a->f32, fptr(a, A, ai), "a");
    LLVMValueRef brow = fptr(a, B, LLVMBuildNSWMul(b, pv, sbp, ""));
    LLVMValueRef j = loop_begin(a, fn, &lj, c64(a, 0), N, "j");
    LLVMValueRef bv = LLVMBuildLoad2(b, a->f32, fptr(a, brow, LLVMBuildNSWMul(b, j, sbj, "")), "");
    LLVMValueRef cp = fptr(a, crow, j);
    LLVMValueRef cv = LLVMBuildLoad2(b, a->f32, cp, "");
    LLVMValueRef args[3] = {av, bv, cv};
    LLVMBuildStore(b, LLVMBuildCall2(b, fmty, fma, args, 3, ""), cp);
    loop_end(a, &lj);
    loop_end(a, &lp);
    loop_end(a, &li);
    ret_after_epilogue(a, fn, epi, bufs, M);
    (void)ty;
}

/* CG_QGEMM_SYMBOL for the object (codegen.h's signature): C[i, j] = the
 * sum of A[i, p] * B[p, j] in i32, wrapping (add and mul without nsw), in the
 * order i, p, j like gen_gemm; then epi(bufs, 0, M). Exact as the JIT's. */
static void gen_qgemm(Aot *a) {
    LLVMValueRef fn = LLVMGetNamedFunction(a->mod, CG_QGEMM_SYMBOL);
    if (!fn) return; /* no qmatmul */
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    fn_attr(a, fn, "nounwind");
    LLVMBuilderRef b = a->b;
    LLVMPositionBuilderAtEnd(b, block(a, fn, "entry"));
    LLVMValueRef A = LLVMGetParam(fn, 1), lda = LLVMGetParam(fn, 2);
    LLVMValueRef B = LLVMGetParam(fn, 3), ldb = LLVMGetParam(fn, 4);
    LLVMValueRef C = LLVMGetParam(fn, 5), ldc = LLVMGetParam(fn, 6);
    LLVMValueRef M = LLVMGetParam(fn, 7), N = LLVMGetParam(fn, 8), K = LLVMGetParam(fn, 9);
    LLVMValueRef epi = LLVMGetParam(fn, 10), bufs = LLVMGetParam(fn, 11);
    Loop li, lj0, lp, lj;
    LLVMValueRef i = loop_begin(a, fn, &li, c64(a, 0), M, "i");
    LLVMValueRef ci = LLVMBuildNSWMul(b, i, ldc, "");
    LLVMValueRef crow = LLVMBuildInBoundsGEP2(b, a->i32, C, &ci, 1, "");
    LLVMValueRef j0 = loop_begin(a, fn, &lj0, c64(a, 0), N, "j0");
    LLVMBuildStore(b, c32(a, 0), LLVMBuildInBoundsGEP2(b, a->i32, crow, &j0, 1, ""));
    loop_end(a, &lj0);
    LLVMValueRef pv = loop_begin(a, fn, &lp, c64(a, 0), K, "p");
    LLVMValueRef ai = LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, i, lda, ""), pv, "");
    LLVMValueRef av = LLVMBuildSExt(
        b, LLVMBuildLoad2(b, a->i8, LLVMBuildInBoundsGEP2(b, a->i8, A, &ai, 1, ""), ""), a->i32,
        "a");
    LLVMValueRef bi = LLVMBuildNSWMul(b, pv, ldb, "");
    LLVMValueRef brow = LLVMBuildInBoundsGEP2(b, a->i8, B, &bi, 1, "");
    LLVMValueRef j = loop_begin(a, fn, &lj, c64(a, 0), N, "j");
    LLVMValueRef bv = LLVMBuildSExt(
        b, LLVMBuildLoad2(b, a->i8, LLVMBuildInBoundsGEP2(b, a->i8, brow, &j, 1, ""), ""), a->i32,
        "");
    LLVMValueRef cp = LLVMBuildInBoundsGEP2(b, a->i32, crow, &j, 1, "");
    LLVMValueRef cv = LLVMBuildLoad2(b, a->i32, cp, "");
    LLVMBuildStore(b, LLVMBuildAdd(b, cv, LLVMBuildMul(b, av, bv, ""), ""), cp);
    loop_end(a, &lj);
    loop_end(a, &lp);
    loop_end(a, &li);
    ret_after_epilogue(a, fn, epi, bufs, M);
}

#define AOT_MAXT 64

/* CG_PARALLEL_SYMBOL for the object: body(bufs, lo, hi) over 0..n cut
 * into t = min(nthreads, n, 64) near-equal ranges; ranges 1..t-1 on new
 * threads (pthread_create; one that cannot start runs on the caller), the
 * first on the caller, then every thread is joined. */
static void gen_parallel(Aot *a) {
    LLVMValueRef fn = LLVMGetNamedFunction(a->mod, CG_PARALLEL_SYMBOL);
    if (!fn) return;
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    fn_attr(a, fn, "nounwind");
    LLVMBuilderRef b = a->b;
    /* struct Job { body, bufs, lo, hi } and its thread function */
    LLVMTypeRef job =
        LLVMStructTypeInContext(a->ctx, (LLVMTypeRef[]){a->ptr, a->ptr, a->i64, a->i64}, 4, 0);
    LLVMTypeRef bty = LLVMFunctionType(a->vd, (LLVMTypeRef[]){a->ptr, a->i64, a->i64}, 3, 0);
    LLVMTypeRef thty = LLVMFunctionType(a->ptr, &a->ptr, 1, 0);
    LLVMValueRef th = LLVMAddFunction(a->mod, "tt_aot_thread", thty);
    LLVMSetLinkage(th, LLVMInternalLinkage);
    LLVMPositionBuilderAtEnd(b, block(a, th, "entry"));
    LLVMValueRef jp = LLVMGetParam(th, 0), f[4];
    LLVMTypeRef ft[4] = {a->ptr, a->ptr, a->i64, a->i64};
    for (unsigned k = 0; k < 4; k++)
        f[k] = LLVMBuildLoad2(b, ft[k], LLVMBuildStructGEP2(b, job, jp, k, ""), "");
    LLVMBuildCall2(b, bty, f[0], (LLVMValueRef[]){f[1], f[2], f[3]}, 3, "");
    LLVMBuildRet(b, LLVMConstNull(a->ptr));

    LLVMTypeRef pcty =
        LLVMFunctionType(a->i32, (LLVMTypeRef[]){a->ptr, a->ptr, a->ptr, a->ptr}, 4, 0);
    LLVMValueRef pcreate = get_fn(a, "pthread_create", pcty);
    LLVMTypeRef pjty = LLVMFunctionType(a->i32, (LLVMTypeRef[]){a->i64, a->ptr}, 2, 0);
    LLVMValueRef pjoin = get_fn(a, "pthread_join", pjty);

    LLVMPositionBuilderAtEnd(b, block(a, fn, "entry"));
    LLVMValueRef body = LLVMGetParam(fn, 0), bufs = LLVMGetParam(fn, 1);
    LLVMValueRef n = LLVMGetParam(fn, 2);
    LLVMValueRef t = LLVMBuildSExt(b, LLVMGetParam(fn, 3), a->i64, "");
    t = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, n, t, ""), n, t, "");
    t = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSGT, t, c64(a, AOT_MAXT), ""), c64(a, AOT_MAXT),
                        t, "t");
    LLVMValueRef jobs = LLVMBuildArrayAlloca(b, job, c64(a, AOT_MAXT), "jobs");
    LLVMValueRef tids = LLVMBuildArrayAlloca(b, a->i64, c64(a, AOT_MAXT), "tids");
    LLVMValueRef ok = LLVMBuildArrayAlloca(b, a->i8, c64(a, AOT_MAXT), "started");
    LLVMBasicBlockRef serial = block(a, fn, "serial"), par = block(a, fn, "par");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLE, t, c64(a, 1), ""), serial, par);
    LLVMPositionBuilderAtEnd(b, serial);
    LLVMBuildCall2(b, bty, body, (LLVMValueRef[]){bufs, c64(a, 0), n}, 3, "");
    LLVMBuildRetVoid(b);

    LLVMPositionBuilderAtEnd(b, par);
    Loop ls, lj;
    LLVMValueRef k = loop_begin(a, fn, &ls, c64(a, 1), t, "k");
    LLVMValueRef lo = LLVMBuildSDiv(b, LLVMBuildNSWMul(b, n, k, ""), t, "");
    LLVMValueRef hi =
        LLVMBuildSDiv(b, LLVMBuildNSWMul(b, n, LLVMBuildNSWAdd(b, k, c64(a, 1), ""), ""), t, "");
    LLVMValueRef jk = LLVMBuildInBoundsGEP2(b, job, jobs, &k, 1, "");
    LLVMValueRef vals[4] = {body, bufs, lo, hi};
    for (unsigned q = 0; q < 4; q++)
        LLVMBuildStore(b, vals[q], LLVMBuildStructGEP2(b, job, jk, q, ""));
    LLVMValueRef tk = LLVMBuildInBoundsGEP2(b, a->i64, tids, &k, 1, "");
    LLVMValueRef rc = LLVMBuildCall2(b, pcty, pcreate,
                                     (LLVMValueRef[]){tk, LLVMConstNull(a->ptr), th, jk}, 4, "");
    LLVMValueRef started = LLVMBuildICmp(b, LLVMIntEQ, rc, c32(a, 0), "");
    LLVMBuildStore(b, LLVMBuildZExt(b, started, a->i8, ""),
                   LLVMBuildInBoundsGEP2(b, a->i8, ok, &k, 1, ""));
    LLVMBasicBlockRef inl = block(a, fn, "inline"), next = block(a, fn, "next");
    LLVMBuildCondBr(b, started, next, inl);
    LLVMPositionBuilderAtEnd(b, inl);
    LLVMBuildCall2(b, bty, body, (LLVMValueRef[]){bufs, lo, hi}, 3, "");
    LLVMBuildBr(b, next);
    LLVMPositionBuilderAtEnd(b, next);
    loop_end(a, &ls);
    LLVMBuildCall2(b, bty, body, (LLVMValueRef[]){bufs, c64(a, 0), LLVMBuildSDiv(b, n, t, "")}, 3,
                   "");
    LLVMValueRef q = loop_begin(a, fn, &lj, c64(a, 1), t, "q");
    LLVMValueRef s = LLVMBuildLoad2(b, a->i8, LLVMBuildInBoundsGEP2(b, a->i8, ok, &q, 1, ""), "");
    LLVMBasicBlockRef join = block(a, fn, "join"), cont = block(a, fn, "cont");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntNE, s, LLVMConstInt(a->i8, 0, 0), ""), join, cont);
    LLVMPositionBuilderAtEnd(b, join);
    LLVMValueRef tid =
        LLVMBuildLoad2(b, a->i64, LLVMBuildInBoundsGEP2(b, a->i64, tids, &q, 1, ""), "");
    LLVMBuildCall2(b, pjty, pjoin, (LLVMValueRef[]){tid, LLVMConstNull(a->ptr)}, 2, "");
    LLVMBuildBr(b, cont);
    LLVMPositionBuilderAtEnd(b, cont);
    loop_end(a, &lj);
    LLVMBuildRetVoid(b);
}

/* The weights as constant data, 64-byte aligned (external ones: NULL). */
static LLVMValueRef *gen_weights(Aot *a, const AotSpec *s) {
    LLVMValueRef *w = tt_xcalloc((size_t)s->nweights + 1, sizeof *w);
    for (int i = 0; i < s->nweights; i++) {
        if (s->weights_external && s->weights[i].name) continue;
        size_t n = s->weights[i].bytes;
        LLVMValueRef init =
            LLVMConstStringInContext(a->ctx, n ? s->weights[i].data : "", (unsigned)n, 1);
        char name[32];
        snprintf(name, sizeof name, "tt_aot_w%d", i);
        w[i] = LLVMAddGlobal(a->mod, LLVMTypeOf(init), name);
        LLVMSetInitializer(w[i], init);
        LLVMSetGlobalConstant(w[i], 1);
        LLVMSetLinkage(w[i], LLVMInternalLinkage);
        LLVMSetAlignment(w[i], 64);
    }
    return w;
}

static void exported_name(char *buf, size_t n, const AotSpec *s, const char *what) {
    snprintf(buf, n, "%s_%s", s->prefix, what);
}

/* size_t p_workspace_bytes([int64_t B]): the largest workspace among the
 * graphs a batch of B rows runs (none for B <= 0). */
static LLVMValueRef gen_workspace_fn(Aot *a, const AotSpec *s, const int64_t *ws) {
    char name[300];
    exported_name(name, sizeof name, s, "workspace_bytes");
    LLVMTypeRef ty = LLVMFunctionType(a->i64, &a->i64, s->batched ? 1 : 0, 0);
    LLVMValueRef fn = LLVMAddFunction(a->mod, name, ty);
    fn_attr(a, fn, "nounwind");
    LLVMPositionBuilderAtEnd(a->b, block(a, fn, "entry"));
    LLVMValueRef r = c64(a, 0);
    for (int i = 0; i < s->ngraphs; i++) {
        LLVMValueRef use = s->batched ? LLVMBuildICmp(a->b, LLVMIntSGE, LLVMGetParam(fn, 0),
                                                      c64(a, s->graphs[i].rows), "")
                                      : LLVMConstInt(a->i1, 1, 0);
        LLVMValueRef big = LLVMBuildICmp(a->b, LLVMIntSGT, c64(a, ws[i]), r, "");
        r = LLVMBuildSelect(a->b, LLVMBuildAnd(a->b, use, big, ""), c64(a, ws[i]), r, "");
    }
    LLVMBuildRet(a->b, r);
    return fn;
}

/* int p_forward(args..., outs..., [int64_t B,] void *workspace) */
static void gen_forward(Aot *a, const AotSpec *s, LLVMValueRef *graph_fn,
                        const LpProg *const *progs, LLVMValueRef *wglob, LLVMValueRef wsfn,
                        const AotExternal *x) {
    char name[300];
    exported_name(name, sizeof name, s, "forward");
    int np = s->nargs + s->nouts + (s->batched ? 1 : 0) + 1, nw = x ? x->n : 0;
    LLVMTypeRef *pt = tt_xmalloc((size_t)(np + nw) * sizeof *pt);
    for (int i = 0; i < np + nw; i++) pt[i] = a->ptr;
    if (s->batched) pt[np - 2] = a->i64;
    LLVMTypeRef ty = LLVMFunctionType(a->i32, pt, (unsigned)np, 0);
    LLVMValueRef fn;
    if (!x) {
        fn = LLVMAddFunction(a->mod, name, ty);
    } else {
        /* external weights: the body takes each as a parameter that is
         * noalias, 64-byte aligned and read-only, so LLVM can keep the
         * kernels' loads and stores apart as it does for constant data
         * (the pointers loaded from the slots alone made batch 1 ~1.7x
         * slower); p_forward below checks the weights are loaded and
         * passes the slots */
        fn = LLVMAddFunction(a->mod, "tt_aot_forward",
                             LLVMFunctionType(a->i32, pt, (unsigned)(np + nw), 0));
        LLVMSetLinkage(fn, LLVMInternalLinkage);
        for (int k = 0; k < nw; k++) {
            static const char *const attrs[] = {"noalias", "nonnull", "readonly"};
            for (int q = 0; q < 3; q++) {
                unsigned kind = LLVMGetEnumAttributeKindForName(attrs[q], strlen(attrs[q]));
                LLVMAddAttributeAtIndex(fn, (unsigned)(np + k + 1),
                                        LLVMCreateEnumAttribute(a->ctx, kind, 0));
            }
            unsigned al = LLVMGetEnumAttributeKindForName("align", 5);
            LLVMAddAttributeAtIndex(fn, (unsigned)(np + k + 1),
                                    LLVMCreateEnumAttribute(a->ctx, al, 64));
        }
    }
    free(pt);
    fn_attr(a, fn, "nounwind");
    LLVMBuilderRef b = a->b;
    LLVMPositionBuilderAtEnd(b, block(a, fn, "entry"));
    LLVMValueRef ws = LLVMGetParam(fn, (unsigned)np - 1);
    LLVMValueRef B = s->batched ? LLVMGetParam(fn, (unsigned)np - 2) : c64(a, 1);
    int maxnb = 1, maxchk = 1;
    for (int i = 0; i < s->ngraphs; i++) {
        int nb = progs[i]->ninputs + progs[i]->noutputs + 3;
        if (nb > maxnb) maxnb = nb;
        if (progs[i]->nchecks > maxchk) maxchk = progs[i]->nchecks;
    }
    LLVMValueRef bufs = LLVMBuildArrayAlloca(b, a->ptr, c64(a, maxnb), "bufs");
    LLVMValueRef status = LLVMBuildArrayAlloca(b, a->i64, c64(a, maxchk), "status");
    LLVMValueRef done = LLVMBuildAlloca(b, a->i64, "done");
    LLVMBuildStore(b, c64(a, 0), done);
    for (int w = 0; w < maxchk; w++)
        LLVMBuildStore(
            b, c64(a, 0),
            LLVMBuildInBoundsGEP2(b, a->i64, status, (LLVMValueRef[]){c64(a, w)}, 1, ""));
    LLVMBasicBlockRef bad = block(a, fn, "baddim"), okdim = block(a, fn, "okdim");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, B, c64(a, 0), ""), bad, okdim);
    LLVMPositionBuilderAtEnd(b, bad);
    LLVMBuildRet(b, c32(a, AOT_EDIM));
    LLVMPositionBuilderAtEnd(b, okdim);
    LLVMValueRef need =
        LLVMBuildCall2(b, LLVMGlobalGetValueType(wsfn), wsfn, &B, s->batched ? 1 : 0, "need");
    LLVMValueRef nows = LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntSGT, need, c64(a, 0), ""),
                                     LLVMBuildIsNull(b, ws, ""), "");
    LLVMBasicBlockRef badws = block(a, fn, "badws"), run = block(a, fn, "run");
    LLVMBuildCondBr(b, nows, badws, run);
    LLVMPositionBuilderAtEnd(b, badws);
    LLVMBuildRet(b, c32(a, AOT_EWORKSPC));
    LLVMPositionBuilderAtEnd(b, run);
    LLVMTypeRef gty = LLVMFunctionType(a->vd, &a->ptr, 1, 0);
    for (int gi = 0; gi < s->ngraphs; gi++) {
        const AotGraph *G = &s->graphs[gi];
        const LpProg *p = progs[gi];
        int64_t rows = s->batched ? G->rows : 1;
        /* while (B - done >= rows) { bufs = ...; g(bufs); done += rows } */
        LLVMBasicBlockRef head = block(a, fn, "chunk"), body = block(a, fn, "body"),
                          exit = block(a, fn, "next");
        LLVMBuildBr(b, head);
        LLVMPositionBuilderAtEnd(b, head);
        LLVMValueRef d = LLVMBuildLoad2(b, a->i64, done, "");
        LLVMValueRef left = LLVMBuildSub(b, B, d, "");
        /* without a batch dim, B is 1 and the one graph runs once */
        LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSGE, left, c64(a, rows), ""), body, exit);
        LLVMPositionBuilderAtEnd(b, body);
        int slot = 0;
        for (int k = 0; k < p->ninputs; k++, slot++) {
            int src = G->slot_src[k];
            LLVMValueRef v;
            if (src >= 0) {
                LLVMValueRef off = LLVMBuildNSWMul(b, d, c64(a, s->arg_row_bytes[src]), "");
                v = LLVMBuildInBoundsGEP2(b, a->i8, LLVMGetParam(fn, (unsigned)src), &off, 1, "");
            } else if (x && x->ordinal[-1 - src] >= 0) {
                v = LLVMGetParam(fn, (unsigned)(np + x->ordinal[-1 - src]));
            } else {
                v = wglob[-1 - src];
            }
            LLVMBuildStore(
                b, v,
                LLVMBuildInBoundsGEP2(b, a->ptr, bufs, (LLVMValueRef[]){c64(a, slot)}, 1, ""));
        }
        for (int k = 0; k < p->noutputs; k++, slot++) {
            LLVMValueRef off = LLVMBuildNSWMul(b, d, c64(a, s->out_row_bytes[k]), "");
            LLVMValueRef v = LLVMBuildInBoundsGEP2(
                b, a->i8, LLVMGetParam(fn, (unsigned)(s->nargs + k)), &off, 1, "");
            LLVMBuildStore(
                b, v,
                LLVMBuildInBoundsGEP2(b, a->ptr, bufs, (LLVMValueRef[]){c64(a, slot)}, 1, ""));
        }
        LLVMValueRef tail[3] = {ws, LLVMConstNull(a->ptr), status};
        for (int k = 0; k < 3; k++, slot++)
            LLVMBuildStore(
                b, tail[k],
                LLVMBuildInBoundsGEP2(b, a->ptr, bufs, (LLVMValueRef[]){c64(a, slot)}, 1, ""));
        LLVMBuildCall2(b, gty, graph_fn[gi], &bufs, 1, "");
        LLVMBuildStore(b, LLVMBuildNSWAdd(b, d, c64(a, rows), ""), done);
        LLVMBuildBr(b, head);
        LLVMPositionBuilderAtEnd(b, exit);
    }
    /* an index out of range anywhere: status words are nonzero */
    LLVMValueRef any = LLVMConstInt(a->i1, 0, 0);
    for (int w = 0; w < maxchk; w++) {
        LLVMValueRef v = LLVMBuildLoad2(
            b, a->i64, LLVMBuildInBoundsGEP2(b, a->i64, status, (LLVMValueRef[]){c64(a, w)}, 1, ""),
            "");
        any = LLVMBuildOr(b, any, LLVMBuildICmp(b, LLVMIntNE, v, c64(a, 0), ""), "");
    }
    LLVMBuildRet(b, LLVMBuildSelect(b, any, c32(a, AOT_EINDEX), c32(a, AOT_OK), ""));
    if (!x) return;
    /* int p_forward(...): AOT_EWEIGHTS when nothing is loaded, else the
     * body with the slots */
    LLVMValueRef pf = LLVMAddFunction(a->mod, name, ty);
    fn_attr(a, pf, "nounwind");
    LLVMPositionBuilderAtEnd(b, block(a, pf, "entry"));
    LLVMBasicBlockRef now = block(a, pf, "noweights"), have = block(a, pf, "weights");
    LLVMValueRef blk = LLVMBuildLoad2(b, a->ptr, x->block, "");
    LLVMBuildCondBr(b, LLVMBuildIsNull(b, blk, ""), now, have);
    LLVMPositionBuilderAtEnd(b, now);
    LLVMBuildRet(b, c32(a, AOT_EWEIGHTS));
    LLVMPositionBuilderAtEnd(b, have);
    LLVMValueRef *cargs = tt_xmalloc((size_t)(np + nw) * sizeof *cargs);
    for (int i = 0; i < np; i++) cargs[i] = LLVMGetParam(pf, (unsigned)i);
    for (int k = 0; k < nw; k++)
        cargs[np + k] = LLVMBuildLoad2(
            b, a->ptr,
            LLVMBuildInBoundsGEP2(b, a->ptr, x->slots, (LLVMValueRef[]){c64(a, k)}, 1, ""), "");
    LLVMBuildRet(b,
                 LLVMBuildCall2(b, LLVMGlobalGetValueType(fn), fn, cargs, (unsigned)(np + nw), ""));
    free(cargs);
}

static LpProg *schedule(const IrGraph *g, int threads) {
    LpProg *p = lp_lower(g, true);
    lp_fuse_kernels(p);
    int t = threads < 1 ? 1 : threads;
    /* the object runs elsewhere: the default costs, never this host's load */
    LpParCost c = lp_par_cost_default(t);
    lp_schedule_with(p, t, &c);
    return p;
}

int64_t aot_workspace_bytes(const IrGraph *g, int threads) {
    LpProg *p = schedule(g, threads);
    int64_t ws = p->workspace;
    lp_free(p);
    return ws;
}

/* Everything but the entry points becomes internal, so the object
 * exports p_forward and p_workspace_bytes only (with external weights,
 * p_load_weights and p_free_weights too), and links beside any other
 * ttc-built model. */
static void internalize(Aot *a, const LLVMValueRef *keep, int nkeep) {
    for (LLVMValueRef f = LLVMGetFirstFunction(a->mod); f; f = LLVMGetNextFunction(f)) {
        bool kept = false;
        for (int k = 0; k < nkeep; k++) kept |= f == keep[k];
        if (!kept && !LLVMIsDeclaration(f)) LLVMSetLinkage(f, LLVMInternalLinkage);
    }
    for (LLVMValueRef g = LLVMGetFirstGlobal(a->mod); g; g = LLVMGetNextGlobal(g))
        if (!LLVMIsDeclaration(g)) LLVMSetLinkage(g, LLVMInternalLinkage);
}

bool aot_build(const AotSpec *s, AotOutput what, char **out, size_t *len, char *err,
               size_t errlen) {
    *out = NULL;
    *len = 0;
    for (int i = 0; i < s->ngraphs; i++) {
        if (!ir_verify(s->graphs[i].g, err, errlen)) return false;
        /* the generated functions take outputs and inputs apart (spec/aot.md) */
        for (int k = 0; k < s->graphs[i].g->nout; k++)
            if (ir_output_alias(s->graphs[i].g, k) >= 0) {
                snprintf(err, errlen,
                         "aot: graph %d: output %d updates an input in place, which compiled "
                         "libraries do not support",
                         i, k);
                return false;
            }
    }
    LLVMTargetMachineRef tm = cg_host_machine(s->opt_level, err, errlen);
    if (!tm) return false;
    Aot a = {.ctx = LLVMContextCreate()};
    a.i1 = LLVMInt1TypeInContext(a.ctx);
    a.i8 = LLVMInt8TypeInContext(a.ctx);
    a.i32 = LLVMInt32TypeInContext(a.ctx);
    a.i64 = LLVMInt64TypeInContext(a.ctx);
    a.f32 = LLVMFloatTypeInContext(a.ctx);
    a.ptr = LLVMPointerTypeInContext(a.ctx, 0);
    a.vd = LLVMVoidTypeInContext(a.ctx);
    bool ok = false;
    LpProg **progs = tt_xcalloc((size_t)s->ngraphs, sizeof *progs);
    int64_t *ws = tt_xcalloc((size_t)s->ngraphs, sizeof *ws);
    LLVMValueRef *gfn = tt_xcalloc((size_t)s->ngraphs, sizeof *gfn);
    LLVMValueRef *wglob = NULL;
    AotExternal ext = {0};
    char gname[64];
    for (int i = 0; i < s->ngraphs; i++) {
        progs[i] = schedule(s->graphs[i].g, s->threads);
        ws[i] = progs[i]->workspace;
        snprintf(gname, sizeof gname, "tt_aot_graph%d", i);
        LLVMModuleRef m = cg_module(a.ctx, progs[i], gname, tm, false, NULL, err, errlen);
        if (!m) goto done;
        if (!a.mod) {
            a.mod = m;
        } else if (LLVMLinkModules2(a.mod, m)) { /* takes m */
            snprintf(err, errlen, "ttc: linking the graphs' modules failed");
            goto done;
        }
    }
    for (int i = 0; i < s->ngraphs; i++) {
        snprintf(gname, sizeof gname, "tt_aot_graph%d", i);
        gfn[i] = LLVMGetNamedFunction(a.mod, gname);
    }
    a.b = LLVMCreateBuilderInContext(a.ctx);
    gen_gemm(&a);
    gen_qgemm(&a);
    gen_parallel(&a);
    if (s->weights_external && !aot_gen_external(a.mod, s, &ext, err, errlen)) goto done;
    wglob = gen_weights(&a, s);
    LLVMValueRef wsfn = gen_workspace_fn(&a, s, ws);
    gen_forward(&a, s, gfn, (const LpProg *const *)progs, wglob, wsfn,
                s->weights_external ? &ext : NULL);
    char fname[300];
    exported_name(fname, sizeof fname, s, "forward");
    LLVMValueRef keep[4] = {wsfn, LLVMGetNamedFunction(a.mod, fname), ext.load_fn, ext.free_fn};
    internalize(&a, keep, s->weights_external ? 4 : 2);
    char *msg = NULL;
    if (LLVMVerifyModule(a.mod, LLVMReturnStatusAction, &msg)) {
        snprintf(err, errlen, "ttc: invalid LLVM IR (a bug): %s", msg ? msg : "?");
        LLVMDisposeMessage(msg);
        goto done;
    }
    LLVMDisposeMessage(msg);
    if (!cg_optimize(a.mod, tm, s->opt_level, err, errlen)) goto done;
    if (what == AOT_LLVM) {
        char *text = LLVMPrintModuleToString(a.mod);
        *len = strlen(text);
        *out = tt_xmalloc(*len + 1);
        memcpy(*out, text, *len + 1);
        LLVMDisposeMessage(text);
        ok = true;
        goto done;
    }
    LLVMMemoryBufferRef mb = NULL;
    msg = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(
            tm, a.mod, what == AOT_ASM ? LLVMAssemblyFile : LLVMObjectFile, &msg, &mb)) {
        snprintf(err, errlen, "ttc: code generation failed: %s", msg ? msg : "?");
        LLVMDisposeMessage(msg);
        goto done;
    }
    *len = LLVMGetBufferSize(mb);
    *out = tt_xmalloc(*len + 1);
    memcpy(*out, LLVMGetBufferStart(mb), *len);
    (*out)[*len] = 0;
    LLVMDisposeMemoryBuffer(mb);
    ok = true;
done:
    for (int i = 0; i < s->ngraphs; i++)
        if (progs[i]) lp_free(progs[i]);
    free(progs);
    free(ws);
    free(gfn);
    free(wglob);
    aot_external_free(&ext);
    if (a.b) LLVMDisposeBuilder(a.b);
    if (a.mod) LLVMDisposeModule(a.mod);
    LLVMContextDispose(a.ctx);
    LLVMDisposeTargetMachine(tm);
    return ok;
}

void aot_llvm_version(unsigned *major, unsigned *minor, unsigned *patch) {
    LLVMGetVersion(major, minor, patch);
}
