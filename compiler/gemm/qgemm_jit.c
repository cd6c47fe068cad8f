/* qgemm_jit.c - generates the int8 GEMM's micro-kernels (qgemm_internal.h)
 * with the LLVM C API, optimises them with default<O3> for the host CPU and
 * links them with ORC LLJIT. A handful of small functions: a few ms, so no
 * object cache (the f32 GEMM's module is much larger).
 *
 * Micro-kernel (one function per row count: the tile's and the powers of two
 * below it), like the f32 GEMM's (gemm_jit.c):
 *   entry: 2*mr vector accumulators in allocas (SROA makes them registers),
 *          each started at init's vector (the offset correction).
 *   loop:  per 32-bit word of k: two aligned vectors of the packed B panel,
 *          mr broadcasts of A's word, 2*mr dot-product steps:
 *            vnni: llvm.x86.avx512.vpdpbusd.512(acc, a u8x4, b s8x4)
 *            avx2: acc + llvm.x86.avx2.pmadd.wd(a i16x2, b i16x2)
 *          both exact: a vpdpbusd lane adds four products of at most
 *          255 * 128 in magnitude (no saturation; the non-"s" form wraps),
 *          a vpmaddwd lane two of at most 128 * 128.
 *   exit:  plain (unaligned) stores of C, added to C when acc.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "llvm_host.h"
#include "qgemm_internal.h"

struct QgemmJit {
    LLVMOrcLLJITRef jit;
};

typedef struct Gen {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef i32, i64, ptr, vd, vi; /* vi: <lanes x i32> */
    QgemmTile t;
} Gen;

static LLVMValueRef c64(Gen *g, int64_t v) {
    return LLVMConstInt(g->i64, (unsigned long long)v, 1);
}

static LLVMValueRef gep(Gen *g, LLVMValueRef base, LLVMValueRef idx) {
    return LLVMBuildGEP2(g->b, g->i32, base, &idx, 1, "");
}

static LLVMValueRef load(Gen *g, LLVMTypeRef t, LLVMValueRef p, unsigned align) {
    LLVMValueRef v = LLVMBuildLoad2(g->b, t, p, "");
    LLVMSetAlignment(v, align);
    return v;
}

static void store(Gen *g, LLVMValueRef v, LLVMValueRef p, unsigned align) {
    LLVMSetAlignment(LLVMBuildStore(g->b, v, p), align);
}

/* A call of the intrinsic name overloaded on the types ov. */
static LLVMValueRef intrinsic(Gen *g, const char *name, LLVMTypeRef *ov, size_t nov,
                              LLVMValueRef *args, unsigned nargs) {
    return tt_llvm_intrinsic(g->mod, g->b, name, ov, nov, args, nargs);
}

static LLVMValueRef splat(Gen *g, LLVMValueRef x) {
    unsigned n = LLVMGetVectorSize(g->vi);
    LLVMValueRef v =
        LLVMBuildInsertElement(g->b, LLVMGetPoison(g->vi), x, LLVMConstInt(g->i32, 0, 0), "");
    return LLVMBuildShuffleVector(g->b, v, LLVMGetPoison(g->vi),
                                  LLVMConstNull(LLVMVectorType(g->i32, n)), "");
}

/* acc + the dot products of the words of a and b, lane by lane */
static LLVMValueRef dot(Gen *g, LLVMValueRef acc, LLVMValueRef a, LLVMValueRef b) {
    if (g->t.path == TT_QGEMM_VNNI) {
        LLVMValueRef args[3] = {acc, a, b};
        return intrinsic(g, "llvm.x86.avx512.vpdpbusd.512", NULL, 0, args, 3);
    }
    LLVMTypeRef v16 = LLVMVectorType(LLVMInt16TypeInContext(g->ctx), 16);
    LLVMValueRef args[2] = {LLVMBuildBitCast(g->b, a, v16, ""), LLVMBuildBitCast(g->b, b, v16, "")};
    return LLVMBuildAdd(g->b, acc, intrinsic(g, "llvm.x86.avx2.pmadd.wd", NULL, 0, args, 2), "");
}

static LLVMBasicBlockRef block(Gen *g, LLVMValueRef fn, const char *name) {
    return LLVMAppendBasicBlockInContext(g->ctx, fn, name);
}

static void ukr_name(char *buf, size_t n, int mr, int nr) {
    snprintf(buf, n, "tt_qgemm_ukr%d_%d", mr, nr);
}

#define NV 2 /* vectors per row of a tile, at most */

static void gen_ukr(Gen *g, int mr) {
    LLVMTypeRef ps[8] = {g->i64, g->ptr, g->i64, g->ptr, g->ptr, g->ptr, g->i64, g->i32};
    char name[32];
    ukr_name(name, sizeof name, mr, g->t.nr);
    LLVMValueRef fn = LLVMAddFunction(g->mod, name, LLVMFunctionType(g->vd, ps, 8, 0));
    const char *k = "min-legal-vector-width", *v = "512";
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(g->ctx, k, (unsigned)strlen(k), v, 3));
    unsigned na = LLVMGetEnumAttributeKindForName("noalias", 7);
    unsigned distinct[3] = {1, 3, 5}; /* a, b and c (attribute index: param + 1) */
    for (int q = 0; q < 3; q++)
        LLVMAddAttributeAtIndex(fn, distinct[q] + 1, LLVMCreateEnumAttribute(g->ctx, na, 0));
    LLVMValueRef kg = LLVMGetParam(fn, 0), a = LLVMGetParam(fn, 1), sa = LLVMGetParam(fn, 2);
    LLVMValueRef b = LLVMGetParam(fn, 3), init = LLVMGetParam(fn, 4), c = LLVMGetParam(fn, 5);
    LLVMValueRef ldc = LLVMGetParam(fn, 6), accf = LLVMGetParam(fn, 7);
    int w = g->t.lanes;

    LLVMPositionBuilderAtEnd(g->b, block(g, fn, "entry"));
    LLVMValueRef acc[QGEMM_MR_MAX][NV], iv[NV];
    int nv = g->t.nr / g->t.lanes;
    for (int x = 0; x < nv; x++) iv[x] = load(g, g->vi, gep(g, init, c64(g, x * w)), 4);
    for (int i = 0; i < mr; i++)
        for (int x = 0; x < nv; x++) {
            acc[i][x] = LLVMBuildAlloca(g->b, g->vi, "acc");
            store(g, iv[x], acc[i][x], 64);
        }
    LLVMValueRef pv = LLVMBuildAlloca(g->b, g->i64, "p");
    store(g, c64(g, 0), pv, 8);
    LLVMBasicBlockRef cond = block(g, fn, "cond"), body = block(g, fn, "loop"),
                      out = block(g, fn, "out");
    LLVMBuildBr(g->b, cond);

    LLVMPositionBuilderAtEnd(g->b, cond);
    LLVMValueRef p = load(g, g->i64, pv, 8);
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, p, kg, ""), body, out);

    LLVMPositionBuilderAtEnd(g->b, body);
    LLVMValueRef bp = gep(g, b, LLVMBuildMul(g->b, p, c64(g, g->t.nr), ""));
    LLVMValueRef bv[NV];
    for (int x = 0; x < nv; x++) bv[x] = load(g, g->vi, gep(g, bp, c64(g, x * w)), 64);
    LLVMValueRef ap = gep(g, a, LLVMBuildMul(g->b, p, sa, ""));
    for (int i = 0; i < mr; i++) {
        LLVMValueRef as = splat(g, load(g, g->i32, gep(g, ap, c64(g, i)), 4));
        for (int x = 0; x < nv; x++)
            store(g, dot(g, load(g, g->vi, acc[i][x], 64), as, bv[x]), acc[i][x], 64);
    }
    store(g, LLVMBuildAdd(g->b, p, c64(g, 1), ""), pv, 8);
    LLVMBuildBr(g->b, cond);

    /* out: C = acc, or C += acc */
    LLVMPositionBuilderAtEnd(g->b, out);
    LLVMBasicBlockRef add = block(g, fn, "add"), set = block(g, fn, "set");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntNE, accf, LLVMConstInt(g->i32, 0, 0), ""), add,
                    set);
    for (int mode = 0; mode < 2; mode++) {
        LLVMPositionBuilderAtEnd(g->b, mode ? add : set);
        for (int i = 0; i < mr; i++) {
            LLVMValueRef row = gep(g, c, LLVMBuildMul(g->b, ldc, c64(g, i), ""));
            for (int x = 0; x < nv; x++) {
                LLVMValueRef cp = gep(g, row, c64(g, x * w));
                LLVMValueRef val = load(g, g->vi, acc[i][x], 64);
                if (mode) val = LLVMBuildAdd(g->b, val, load(g, g->vi, cp, 4), "");
                store(g, val, cp, 4);
            }
        }
        LLVMBuildRetVoid(g->b);
    }
}

/* ---- small-M kernel (qgemm_internal.h, QgemvUkr) ---------------------- */

static void gemv_name(char *buf, size_t n, int mr, int nv) {
    snprintf(buf, n, "tt_qgemv%d_%d", mr, nv);
}

/* a counted loop v = 0..n whose counter lives in an alloca */
typedef struct Loop {
    LLVMValueRef var;
    LLVMBasicBlockRef cond, exit;
} Loop;

static LLVMValueRef loop_begin(Gen *g, LLVMValueRef fn, Loop *l, LLVMValueRef n, LLVMValueRef var) {
    l->var = var;
    l->cond = block(g, fn, "cond");
    LLVMBasicBlockRef body = block(g, fn, "body");
    l->exit = block(g, fn, "exit");
    store(g, c64(g, 0), var, 8);
    LLVMBuildBr(g->b, l->cond);
    LLVMPositionBuilderAtEnd(g->b, l->cond);
    LLVMValueRef v = load(g, g->i64, var, 8);
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, v, n, ""), body, l->exit);
    LLVMPositionBuilderAtEnd(g->b, body);
    return v;
}

static void loop_end(Gen *g, Loop *l) {
    LLVMValueRef v = load(g, g->i64, l->var, 8);
    store(g, LLVMBuildAdd(g->b, v, c64(g, 1), ""), l->var, 8);
    LLVMBuildBr(g->b, l->cond);
    LLVMPositionBuilderAtEnd(g->b, l->exit);
}

/* nv vectors of columns per step of j: a row of B is read in whole cache
 * lines (nv * lanes bytes) per step of p */
static void gen_gemv(Gen *g, int mr, int nv) {
    LLVMTypeRef ps[8] = {g->i64, g->ptr, g->i64, g->ptr, g->i64, g->ptr, g->i64, g->i64};
    char name[32];
    gemv_name(name, sizeof name, mr, nv);
    LLVMValueRef fn = LLVMAddFunction(g->mod, name, LLVMFunctionType(g->vd, ps, 8, 0));
    const char *k = "min-legal-vector-width", *v = "512";
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(g->ctx, k, (unsigned)strlen(k), v, 3));
    LLVMValueRef kk = LLVMGetParam(fn, 0), a = LLVMGetParam(fn, 1), lda = LLVMGetParam(fn, 2);
    LLVMValueRef b = LLVMGetParam(fn, 3), ldb = LLVMGetParam(fn, 4), c = LLVMGetParam(fn, 5);
    LLVMValueRef ldc = LLVMGetParam(fn, 6), nb = LLVMGetParam(fn, 7);
    unsigned w = (unsigned)g->t.lanes;
    LLVMTypeRef i8 = LLVMInt8TypeInContext(g->ctx), vb = LLVMVectorType(i8, w);
    LLVMPositionBuilderAtEnd(g->b, block(g, fn, "entry"));
    LLVMValueRef acc[QGEMM_GEMV_MR][QGEMV_NV];
    for (int i = 0; i < mr; i++)
        for (int x = 0; x < nv; x++) acc[i][x] = LLVMBuildAlloca(g->b, g->vi, "acc");
    LLVMValueRef jv = LLVMBuildAlloca(g->b, g->i64, "j"), pv = LLVMBuildAlloca(g->b, g->i64, "p");
    Loop lj, lp;
    LLVMValueRef j = loop_begin(g, fn, &lj, nb, jv);
    LLVMValueRef j0 = LLVMBuildMul(g->b, j, c64(g, w * nv), "");
    for (int i = 0; i < mr; i++)
        for (int x = 0; x < nv; x++) store(g, LLVMConstNull(g->vi), acc[i][x], 64);
    LLVMValueRef p = loop_begin(g, fn, &lp, kk, pv);
    LLVMValueRef bvec[QGEMV_NV];
    for (int x = 0; x < nv; x++) {
        LLVMValueRef bi = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, p, ldb, ""),
                                       LLVMBuildAdd(g->b, j0, c64(g, x * w), ""), "");
        bvec[x] =
            LLVMBuildSExt(g->b, load(g, vb, LLVMBuildGEP2(g->b, i8, b, &bi, 1, ""), 1), g->vi, "");
    }
    for (int i = 0; i < mr; i++) {
        LLVMValueRef ai = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, lda, c64(g, i), ""), p, "");
        LLVMValueRef av =
            LLVMBuildSExt(g->b, load(g, i8, LLVMBuildGEP2(g->b, i8, a, &ai, 1, ""), 1), g->i32, "");
        LLVMValueRef as = splat(g, av);
        for (int x = 0; x < nv; x++) {
            LLVMValueRef prod = LLVMBuildMul(g->b, bvec[x], as, "");
            store(g, LLVMBuildAdd(g->b, load(g, g->vi, acc[i][x], 64), prod, ""), acc[i][x], 64);
        }
    }
    loop_end(g, &lp);
    for (int i = 0; i < mr; i++)
        for (int x = 0; x < nv; x++) {
            LLVMValueRef ci = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, ldc, c64(g, i), ""),
                                           LLVMBuildAdd(g->b, j0, c64(g, x * w), ""), "");
            store(g, load(g, g->vi, acc[i][x], 64), gep(g, c, ci), 4);
        }
    loop_end(g, &lj);
    LLVMBuildRetVoid(g->b);
}

/* ---- small-M kernel, VNNI: four rows of B per step -------------------- */

/* The shuffle mask of an in-lane unpack (vpunpckl/h): per 128-bit lane of
 * n elements of `bits` bits, the low (hi = 0) or high halves of x and y
 * interleaved. */
static LLVMValueRef unpack(Gen *g, LLVMValueRef x, LLVMValueRef y, int n, int bits, int hi) {
    int per = 128 / bits;
    LLVMValueRef m[64];
    for (int L = 0; L < n / per; L++)
        for (int u = 0; u < per / 2; u++) {
            int src = L * per + u + hi * per / 2;
            m[L * per + 2 * u] = LLVMConstInt(g->i32, (unsigned)src, 0);
            m[L * per + 2 * u + 1] = LLVMConstInt(g->i32, (unsigned)(n + src), 0);
        }
    return LLVMBuildShuffleVector(g->b, x, y, LLVMConstVector(m, (unsigned)n), "");
}

typedef struct VGemv {
    int mr, w;          /* rows of A; columns per step (16 per vector) */
    LLVMTypeRef vb, vt; /* <w x i8>, <w/4 x i32> */
    const char *dp;     /* the vpdpbusd of vt */
    LLVMValueRef acc[QGEMM_GEMV_MR][4], corr[QGEMM_GEMV_MR];
} VGemv;

/* One step of four rows of B (row pointers rows[4]) and four bytes of each
 * row of A (awords[i], an i32). vpdpbusd multiplies u8 by s8, so B's bytes
 * go in offset by 128 (xor 0x80) and A's as they are: the lanes gain
 * a.b + 128 * sum(a), the second term summed into corr by a vpdpbusd of
 * 0x80 bytes and subtracted at the end. B's rows are interleaved by
 * in-lane unpacks into four vectors of 4-byte groups: vector m, i32 lane
 * 4L + q holds column 16L + 4m + q of the step. */
static void vgemv_step(Gen *g, VGemv *v, LLVMValueRef *rows, LLVMValueRef *awords) {
    LLVMValueRef r[4], x80 = LLVMConstInt(LLVMInt8TypeInContext(g->ctx), 0x80, 0);
    LLVMValueRef m80[64];
    for (int e = 0; e < v->w; e++) m80[e] = x80;
    LLVMValueRef k80 = LLVMConstVector(m80, (unsigned)v->w);
    for (int t = 0; t < 4; t++) r[t] = LLVMBuildXor(g->b, load(g, v->vb, rows[t], 1), k80, "");
    LLVMTypeRef v16 = LLVMVectorType(LLVMInt16TypeInContext(g->ctx), (unsigned)v->w / 2);
    LLVMValueRef p01[2], p23[2], bv[4];
    for (int h = 0; h < 2; h++) {
        p01[h] = LLVMBuildBitCast(g->b, unpack(g, r[0], r[1], v->w, 8, h), v16, "");
        p23[h] = LLVMBuildBitCast(g->b, unpack(g, r[2], r[3], v->w, 8, h), v16, "");
    }
    for (int m = 0; m < 4; m++)
        bv[m] = LLVMBuildBitCast(g->b, unpack(g, p01[m / 2], p23[m / 2], v->w / 2, 16, m % 2),
                                 v->vt, "");
    LLVMValueRef c80 = LLVMConstInt(g->i32, 0x80808080u, 0), s80[16];
    for (int e = 0; e < v->w / 4; e++) s80[e] = c80;
    LLVMValueRef k80w = LLVMConstVector(s80, (unsigned)v->w / 4);
    for (int i = 0; i < v->mr; i++) {
        LLVMValueRef z = LLVMConstNull(LLVMVectorType(g->i32, (unsigned)v->w / 4));
        LLVMValueRef ab = LLVMBuildInsertElement(g->b, LLVMGetPoison(v->vt), awords[i],
                                                 LLVMConstInt(g->i32, 0, 0), "");
        ab = LLVMBuildShuffleVector(g->b, ab, LLVMGetPoison(v->vt), z, "");
        for (int m = 0; m < 4; m++) {
            LLVMValueRef args[3] = {load(g, v->vt, v->acc[i][m], 16), bv[m], ab};
            store(g, intrinsic(g, v->dp, NULL, 0, args, 3), v->acc[i][m], 16);
        }
        LLVMValueRef args[3] = {load(g, v->vt, v->corr[i], 16), k80w, ab};
        store(g, intrinsic(g, v->dp, NULL, 0, args, 3), v->corr[i], 16);
    }
}

/* The VNNI form of gen_gemv (same function type and name): k in steps of
 * four, the last (k % 4) rows as one step over zero rows. */
static void gen_gemv_vnni(Gen *g, int mr, int nv) {
    LLVMTypeRef ps[8] = {g->i64, g->ptr, g->i64, g->ptr, g->i64, g->ptr, g->i64, g->i64};
    char name[32];
    gemv_name(name, sizeof name, mr, nv);
    LLVMValueRef fn = LLVMAddFunction(g->mod, name, LLVMFunctionType(g->vd, ps, 8, 0));
    const char *k = "min-legal-vector-width", *vs = "512";
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(g->ctx, k, (unsigned)strlen(k), vs, 3));
    LLVMValueRef kk = LLVMGetParam(fn, 0), a = LLVMGetParam(fn, 1), lda = LLVMGetParam(fn, 2);
    LLVMValueRef b = LLVMGetParam(fn, 3), ldb = LLVMGetParam(fn, 4), c = LLVMGetParam(fn, 5);
    LLVMValueRef ldc = LLVMGetParam(fn, 6), nb = LLVMGetParam(fn, 7);
    LLVMTypeRef i8 = LLVMInt8TypeInContext(g->ctx);
    VGemv v = {.mr = mr, .w = 16 * nv};
    v.vb = LLVMVectorType(i8, (unsigned)v.w);
    v.vt = LLVMVectorType(g->i32, (unsigned)v.w / 4);
    v.dp = nv == 4 ? "llvm.x86.avx512.vpdpbusd.512" : "llvm.x86.avx512.vpdpbusd.128";
    LLVMPositionBuilderAtEnd(g->b, block(g, fn, "entry"));
    for (int i = 0; i < mr; i++) {
        for (int m = 0; m < 4; m++) v.acc[i][m] = LLVMBuildAlloca(g->b, v.vt, "acc");
        v.corr[i] = LLVMBuildAlloca(g->b, v.vt, "corr");
    }
    LLVMValueRef zrow = LLVMBuildAlloca(g->b, v.vb, "zrow"); /* B's rows past k */
    store(g, LLVMConstNull(v.vb), zrow, 16);
    LLVMValueRef jv = LLVMBuildAlloca(g->b, g->i64, "j"), pv = LLVMBuildAlloca(g->b, g->i64, "p");
    Loop lj, lp;
    LLVMValueRef j = loop_begin(g, fn, &lj, nb, jv);
    LLVMValueRef j0 = LLVMBuildMul(g->b, j, c64(g, v.w), "");
    for (int i = 0; i < mr; i++) {
        for (int m = 0; m < 4; m++) store(g, LLVMConstNull(v.vt), v.acc[i][m], 16);
        store(g, LLVMConstNull(v.vt), v.corr[i], 16);
    }
    LLVMValueRef ng = LLVMBuildSDiv(g->b, kk, c64(g, 4), "");
    LLVMValueRef q = loop_begin(g, fn, &lp, ng, pv);
    LLVMValueRef p = LLVMBuildMul(g->b, q, c64(g, 4), "");
    LLVMValueRef rows[4], aw[QGEMM_GEMV_MR];
    for (int t = 0; t < 4; t++) {
        LLVMValueRef bi = LLVMBuildAdd(
            g->b, LLVMBuildMul(g->b, LLVMBuildAdd(g->b, p, c64(g, t), ""), ldb, ""), j0, "");
        rows[t] = LLVMBuildGEP2(g->b, i8, b, &bi, 1, "");
    }
    for (int i = 0; i < mr; i++) {
        LLVMValueRef ai = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, lda, c64(g, i), ""), p, "");
        aw[i] = load(g, g->i32, LLVMBuildGEP2(g->b, i8, a, &ai, 1, ""), 1);
    }
    vgemv_step(g, &v, rows, aw);
    loop_end(g, &lp);
    /* the tail: rows p.. of B and bytes p.. of A, zeros past k */
    LLVMBasicBlockRef tail = block(g, fn, "tail"), out = block(g, fn, "out");
    p = LLVMBuildMul(g->b, ng, c64(g, 4), "");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, p, kk, ""), tail, out);
    LLVMPositionBuilderAtEnd(g->b, tail);
    LLVMValueRef in[4];
    for (int t = 0; t < 4; t++) {
        LLVMValueRef pt = LLVMBuildAdd(g->b, p, c64(g, t), "");
        in[t] = LLVMBuildICmp(g->b, LLVMIntSLT, pt, kk, "");
        LLVMValueRef bi = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, pt, ldb, ""), j0, "");
        rows[t] = LLVMBuildSelect(g->b, in[t], LLVMBuildGEP2(g->b, i8, b, &bi, 1, ""), zrow, "");
    }
    for (int i = 0; i < mr; i++) {
        aw[i] = LLVMConstInt(g->i32, 0, 0);
        for (int t = 0; t < 4; t++) {
            LLVMValueRef ai = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, lda, c64(g, i), ""),
                                           LLVMBuildAdd(g->b, p, c64(g, t), ""), "");
            LLVMValueRef ap =
                LLVMBuildSelect(g->b, in[t], LLVMBuildGEP2(g->b, i8, a, &ai, 1, ""), zrow, "");
            LLVMValueRef byte = LLVMBuildZExt(g->b, load(g, i8, ap, 1), g->i32, "");
            byte = LLVMBuildShl(g->b, byte, LLVMConstInt(g->i32, 8 * (unsigned)t, 0), "");
            aw[i] = LLVMBuildOr(g->b, aw[i], byte, "");
        }
    }
    vgemv_step(g, &v, rows, aw);
    LLVMBuildBr(g->b, out);
    /* out: lanes back in column order (vector x, lane e: vector e / 4,
     * lane 4x + e % 4) */
    LLVMPositionBuilderAtEnd(g->b, out);
    int n = v.w / 4;
    LLVMValueRef idn[64];
    for (int e = 0; e < 64; e++) idn[e] = LLVMConstInt(g->i32, (unsigned)e, 0);
    for (int i = 0; i < mr; i++) {
        LLVMValueRef corr = load(g, v.vt, v.corr[i], 16), d[4];
        for (int m = 0; m < 4; m++)
            d[m] = LLVMBuildSub(g->b, load(g, v.vt, v.acc[i][m], 16), corr, "");
        LLVMValueRef d01 =
            LLVMBuildShuffleVector(g->b, d[0], d[1], LLVMConstVector(idn, 2 * n), "");
        LLVMValueRef d23 =
            LLVMBuildShuffleVector(g->b, d[2], d[3], LLVMConstVector(idn, 2 * n), "");
        LLVMValueRef all = LLVMBuildShuffleVector(g->b, d01, d23, LLVMConstVector(idn, 4 * n), "");
        for (int x = 0; x < nv; x++) {
            LLVMValueRef mk[16];
            for (int e = 0; e < 16; e++)
                mk[e] = LLVMConstInt(g->i32, (unsigned)((e / 4) * n + 4 * x + e % 4), 0);
            LLVMValueRef o = LLVMBuildShuffleVector(g->b, all, LLVMGetPoison(LLVMTypeOf(all)),
                                                    LLVMConstVector(mk, 16), "");
            LLVMValueRef ci = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, ldc, c64(g, i), ""),
                                           LLVMBuildAdd(g->b, j0, c64(g, 16 * x), ""), "");
            store(g, o, gep(g, c, ci), 4);
        }
    }
    loop_end(g, &lj);
    LLVMBuildRetVoid(g->b);
}

static bool has_mr(const QgemmTile *t, int mr) {
    return mr == t->mr || (mr < t->mr && (mr & (mr - 1)) == 0);
}

bool qgemm_host_has(TtQgemmPath path) {
    if (path == TT_QGEMM_SCALAR) return true;
    char *feat = LLVMGetHostCPUFeatures();
    bool ok = path == TT_QGEMM_VNNI ? strstr(feat, "+avx512vnni") && strstr(feat, "+avx512f")
                                    : strstr(feat, "+avx2") != NULL;
    LLVMDisposeMessage(feat);
    return ok;
}

static bool take_err(LLVMErrorRef e, const char *what, char *err, size_t errlen) {
    return tt_llvm_take_err(e, "qgemm jit", what, err, errlen);
}

/* Optimises mod and emits an object file; NULL with err on failure. */
static LLVMMemoryBufferRef compile(LLVMModuleRef mod, LLVMTargetMachineRef tm, char *err,
                                   size_t errlen) {
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMErrorRef e = LLVMRunPasses(mod, "default<O3>", tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (take_err(e, "passes", err, errlen)) return NULL;
    const char *dbg = getenv("TT_QGEMM_DEBUG");
    if (dbg) {
        char path[512];
        snprintf(path, sizeof path, "%s.s", dbg);
        LLVMTargetMachineEmitToFile(tm, mod, path, LLVMAssemblyFile, NULL);
    }
    LLVMMemoryBufferRef obj = NULL;
    char *msg = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &msg, &obj)) {
        snprintf(err, errlen, "qgemm jit: codegen: %s", msg ? msg : "failed");
        LLVMDisposeMessage(msg);
        return NULL;
    }
    return obj;
}

static QgemmJit *link(LLVMMemoryBufferRef obj, QgemmKernels *out, char *err, size_t errlen) {
    LLVMOrcLLJITRef jit;
    if (take_err(LLVMOrcCreateLLJIT(&jit, LLVMOrcCreateLLJITBuilder()), "LLJIT", err, errlen)) {
        LLVMDisposeMemoryBuffer(obj);
        return NULL;
    }
    LLVMOrcJITDylibRef lib = LLVMOrcLLJITGetMainJITDylib(jit);
    bool ok = !take_err(LLVMOrcLLJITAddObjectFile(jit, lib, obj), "add object", err, errlen);
    for (int narrow = 0; narrow < 2; narrow++) {
        const QgemmTile *t = narrow ? &out->narrow : &out->tile;
        for (int mr = 1; ok && mr <= t->mr; mr++) {
            if (!has_mr(t, mr)) continue;
            char name[32];
            ukr_name(name, sizeof name, mr, t->nr);
            LLVMOrcExecutorAddress addr;
            ok = !take_err(LLVMOrcLLJITLookup(jit, &addr, name), name, err, errlen);
            if (ok) (narrow ? out->ukr_narrow : out->ukr)[mr - 1] = (QgemmUkr)(uintptr_t)addr;
        }
    }
    for (int mr = 1; ok && mr <= QGEMM_GEMV_MR; mr++)
        for (int wide = 0; ok && wide < 2; wide++) {
            char name[32];
            gemv_name(name, sizeof name, mr, wide ? QGEMV_NV : 1);
            LLVMOrcExecutorAddress addr;
            ok = !take_err(LLVMOrcLLJITLookup(jit, &addr, name), name, err, errlen);
            if (ok) (wide ? out->gemv_wide : out->gemv)[mr - 1] = (QgemvUkr)(uintptr_t)addr;
        }
    QgemmJit *j = ok ? calloc(1, sizeof *j) : NULL;
    if (!j) {
        if (ok) snprintf(err, errlen, "qgemm jit: out of memory");
        LLVMOrcDisposeLLJIT(jit);
        return NULL;
    }
    j->jit = jit;
    return j;
}

QgemmJit *qgemm_jit_build(QgemmKernels *out, TtQgemmPath path, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->tile = path == TT_QGEMM_VNNI ? (QgemmTile){TT_QGEMM_VNNI, 16, 12, 32, 4}
                                      : (QgemmTile){TT_QGEMM_AVX2, 8, 6, 16, 2};
    out->narrow = out->tile; /* vnni: 12 x 16 for N <= 16, one vector per row */
    if (path == TT_QGEMM_VNNI) out->narrow.nr = 16;
    LLVMTargetMachineRef tm = tt_llvm_host_machine(LLVMCodeGenLevelAggressive, LLVMRelocPIC,
                                                   LLVMCodeModelSmall, "qgemm jit", err, errlen);
    if (!tm) return NULL;
    Gen g = {.ctx = LLVMContextCreate(), .t = out->tile};
    g.mod = LLVMModuleCreateWithNameInContext("tt_qgemm", g.ctx);
    g.b = LLVMCreateBuilderInContext(g.ctx);
    g.i32 = LLVMInt32TypeInContext(g.ctx);
    g.i64 = LLVMInt64TypeInContext(g.ctx);
    g.ptr = LLVMPointerTypeInContext(g.ctx, 0);
    g.vd = LLVMVoidTypeInContext(g.ctx);
    g.vi = LLVMVectorType(g.i32, (unsigned)out->tile.lanes);
    tt_llvm_set_target(g.mod, tm);
    for (int mr = 1; mr <= out->tile.mr; mr++)
        if (has_mr(&out->tile, mr)) gen_ukr(&g, mr);
    if (out->narrow.nr != out->tile.nr) {
        g.t = out->narrow;
        for (int mr = 1; mr <= out->narrow.mr; mr++)
            if (has_mr(&out->narrow, mr)) gen_ukr(&g, mr);
    }
    for (int mr = 1; mr <= QGEMM_GEMV_MR; mr++) {
        if (path == TT_QGEMM_VNNI) {
            gen_gemv_vnni(&g, mr, 1);
            gen_gemv_vnni(&g, mr, QGEMV_NV);
            continue;
        }
        gen_gemv(&g, mr, 1);
        gen_gemv(&g, mr, QGEMV_NV);
    }
    LLVMDisposeBuilder(g.b);
    QgemmJit *j = NULL;
    char *msg = NULL;
    if (LLVMVerifyModule(g.mod, LLVMReturnStatusAction, &msg)) {
        snprintf(err, errlen, "qgemm jit: invalid IR: %s", msg);
    } else {
        LLVMMemoryBufferRef obj = compile(g.mod, tm, err, errlen);
        if (obj) j = link(obj, out, err, errlen);
    }
    LLVMDisposeMessage(msg);
    LLVMDisposeModule(g.mod);
    LLVMContextDispose(g.ctx);
    LLVMDisposeTargetMachine(tm);
    return j;
}

void qgemm_jit_free(QgemmJit *j) {
    if (!j) return;
    LLVMOrcDisposeLLJIT(j->jit);
    free(j);
}
