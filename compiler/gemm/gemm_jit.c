/* gemm_jit.c - generates the GEMM micro-kernels and packing routines with the
 * LLVM C API, optimises them with default<O3> for the host CPU, emits an
 * object file and links it with ORC LLJIT. The object file is kept in the
 * on-disk cache (objcache.h), keyed by LLVM's version, the host CPU and a
 * hash of the generated IR: a later process generates the IR (a few ms) to
 * build the key and links the cached object, skipping O3 and codegen.
 *
 * Micro-kernel (one function per row count with a variant, see has_mr, and
 * per layout of A), for the tile of the build (gemm_internal.h: 6 x 16 of
 * <8 x float> or 12 x 32 of <16 x float>):
 *   entry:   2*mr vector accumulators in allocas (SROA makes them
 *            registers), zeroed; a counter p in an alloca too.
 *   kuloop:  k unrolled by t.ku; each step loads two aligned vectors of the
 *            packed B panel, broadcasts mr scalars of A and issues 2*mr
 *            llvm.fma calls.
 *   loop1:   the k % ku remainder.
 *   epilogue: full tile -> plain (unaligned) vector loads/stores of C; edge
 *            tile -> llvm.masked.load/store with lane < nrem.
 * Packing: B row-major -> panels of nr columns (masked loads at the right
 * edge); B transposed -> 8x8 shuffle transposes (masked loads at the edges).
 * The small-M kernels (gemv_n, gemv_t) use <8 x float> on every host.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "gemm_internal.h"
#include "llvm_host.h"
#include "objcache.h"

struct GemmJit {
    LLVMOrcLLJITRef jit;
    bool cached; /* the object came from the on-disk cache */
};

typedef struct Gen {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef f32, v8, vk, i64, i32, i1, ptr, vd;
    GemmTile t; /* vk: the micro-kernel's vector, <t.lanes x float> */
} Gen;

/* ---- small builders ---------------------------------------------------- */

static LLVMValueRef c64(Gen *g, int64_t v) {
    return LLVMConstInt(g->i64, (unsigned long long)v, 1);
}
static LLVMValueRef c32(Gen *g, int32_t v) {
    return LLVMConstInt(g->i32, (unsigned long long)v, 1);
}

static LLVMValueRef gep(Gen *g, LLVMValueRef base, LLVMValueRef idx) {
    return LLVMBuildGEP2(g->b, g->f32, base, &idx, 1, "");
}

static LLVMValueRef load(Gen *g, LLVMTypeRef t, LLVMValueRef p, unsigned align) {
    LLVMValueRef v = LLVMBuildLoad2(g->b, t, p, "");
    LLVMSetAlignment(v, align);
    return v;
}

static void store(Gen *g, LLVMValueRef v, LLVMValueRef p, unsigned align) {
    LLVMValueRef s = LLVMBuildStore(g->b, v, p);
    LLVMSetAlignment(s, align);
}

static unsigned lanes_of(LLVMTypeRef vt) {
    return LLVMGetVectorSize(vt);
}

/* A call of the intrinsic name overloaded on the types ov. */
static LLVMValueRef intrinsic(Gen *g, const char *name, LLVMTypeRef *ov, size_t nov,
                              LLVMValueRef *args, unsigned nargs) {
    return tt_llvm_intrinsic(g->mod, g->b, name, ov, nov, args, nargs);
}

/* x in every lane of a vector of type vt (x: f32 or i64) */
static LLVMValueRef splat(Gen *g, LLVMTypeRef vt, LLVMValueRef x) {
    LLVMValueRef v = LLVMBuildInsertElement(g->b, LLVMGetPoison(vt), x, c32(g, 0), "");
    return LLVMBuildShuffleVector(g->b, v, LLVMGetPoison(vt),
                                  LLVMConstNull(LLVMVectorType(g->i32, lanes_of(vt))), "");
}

/* lane mask (lo + lane < n) for a vector of the given lanes */
static LLVMValueRef lane_mask(Gen *g, unsigned lanes, int64_t lo, LLVMValueRef n) {
    LLVMValueRef e[16];
    for (unsigned i = 0; i < lanes; i++) e[i] = c64(g, lo + (int64_t)i);
    LLVMValueRef nv = splat(g, LLVMVectorType(g->i64, lanes), n);
    return LLVMBuildICmp(g->b, LLVMIntSLT, LLVMConstVector(e, lanes), nv, "");
}

static LLVMValueRef masked_load(Gen *g, LLVMTypeRef vt, LLVMValueRef p, LLVMValueRef mask) {
    LLVMValueRef args[4] = {p, c32(g, 4), mask, LLVMConstNull(vt)};
    LLVMTypeRef ov[2] = {vt, g->ptr};
    return intrinsic(g, "llvm.masked.load", ov, 2, args, 4);
}

static void masked_store(Gen *g, LLVMValueRef v, LLVMValueRef p, LLVMValueRef mask) {
    LLVMValueRef args[4] = {v, p, c32(g, 4), mask};
    LLVMTypeRef ov[2] = {LLVMTypeOf(v), g->ptr};
    intrinsic(g, "llvm.masked.store", ov, 2, args, 4);
}

static LLVMValueRef vfma(Gen *g, LLVMValueRef a, LLVMValueRef b, LLVMValueRef acc) {
    LLVMValueRef args[3] = {a, b, acc};
    LLVMTypeRef vt = LLVMTypeOf(a);
    return intrinsic(g, "llvm.fma", &vt, 1, args, 3);
}

static LLVMValueRef shuffle(Gen *g, LLVMValueRef a, LLVMValueRef b, const int *idx) {
    LLVMValueRef e[8];
    for (int i = 0; i < 8; i++) e[i] = c32(g, idx[i]);
    return LLVMBuildShuffleVector(g->b, a, b, LLVMConstVector(e, 8), "");
}

static LLVMBasicBlockRef block(Gen *g, LLVMValueRef fn, const char *name) {
    return LLVMAppendBasicBlockInContext(g->ctx, fn, name);
}

static void noalias(Gen *g, LLVMValueRef fn, unsigned param) {
    unsigned kind = LLVMGetEnumAttributeKindForName("noalias", 7);
    LLVMAddAttributeAtIndex(fn, param + 1, LLVMCreateEnumAttribute(g->ctx, kind, 0));
}

static void ukr_name(char *buf, size_t n, bool col, int mr, int nr) {
    snprintf(buf, n, "tt_gemm_ukr_%s%d_%d", col ? "col" : "row", mr, nr);
}
static void pack_name(char *buf, size_t n, bool trans, int nr) {
    snprintf(buf, n, "tt_gemm_pack_%c%d", trans ? 't' : 'n', nr);
}

/* A function of the module. Its vectors may be 512 bits wide: on CPUs where
 * LLVM prefers 256-bit vectors (Skylake-X and later), it otherwise splits
 * every <16 x float> into two ymm halves. */
static LLVMValueRef add_fn(Gen *g, const char *name, LLVMTypeRef *ps, unsigned n) {
    LLVMValueRef fn = LLVMAddFunction(g->mod, name, LLVMFunctionType(g->vd, ps, n, 0));
    const char *k = "min-legal-vector-width", *v = "512";
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(g->ctx, k, (unsigned)strlen(k), v, 3));
    return fn;
}

/* A counted loop `for (v = lo; v < hi; v += step)` whose counter lives in an
 * entry-block alloca; body() is emitted by the caller between loop_begin and
 * loop_end. */
typedef struct Loop {
    LLVMValueRef var;
    LLVMBasicBlockRef cond, body, exit;
    int64_t step;
} Loop;

static Loop loop_begin(Gen *g, LLVMValueRef fn, LLVMValueRef var, LLVMValueRef lo, LLVMValueRef hi,
                       int64_t step, const char *name, LLVMValueRef *iv) {
    Loop l = {var, block(g, fn, name), block(g, fn, name), block(g, fn, name), step};
    store(g, lo, var, 8);
    LLVMBuildBr(g->b, l.cond);
    LLVMPositionBuilderAtEnd(g->b, l.cond);
    LLVMValueRef v = load(g, g->i64, var, 8);
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, v, hi, ""), l.body, l.exit);
    LLVMPositionBuilderAtEnd(g->b, l.body);
    *iv = load(g, g->i64, var, 8);
    return l;
}

static void loop_end(Gen *g, Loop *l) {
    LLVMValueRef v = load(g, g->i64, l->var, 8);
    store(g, LLVMBuildAdd(g->b, v, c64(g, l->step), ""), l->var, 8);
    LLVMBuildBr(g->b, l->cond);
    LLVMPositionBuilderAtEnd(g->b, l->exit);
}

/* ---- micro-kernel ------------------------------------------------------ */

/* Vectors per row of a micro-tile, at most. */
#define NV 2

typedef struct Ukr {
    int mr;
    bool col;
    LLVMValueRef a, sa, bp, sb, acc[GEMM_MR_MAX][NV], arow[GEMM_MR_MAX];
} Ukr;

/* One k step at index pp: nv aligned B loads, mr broadcasts, nv*mr FMAs. */
static void ukr_step(Gen *g, Ukr *u, LLVMValueRef pp) {
    int w = g->t.lanes, nv = g->t.nr / w;
    LLVMValueRef bptr = gep(g, u->bp, LLVMBuildMul(g->b, pp, u->sb, ""));
    LLVMValueRef bv[NV];
    for (int h = 0; h < nv; h++) bv[h] = load(g, g->vk, gep(g, bptr, c64(g, w * h)), 4);
    LLVMValueRef pcol = u->col ? LLVMBuildMul(g->b, pp, u->sa, "") : NULL;
    for (int i = 0; i < u->mr; i++) {
        LLVMValueRef ap =
            u->col ? gep(g, u->a, LLVMBuildAdd(g->b, pcol, c64(g, i), "")) : gep(g, u->arow[i], pp);
        LLVMValueRef s = splat(g, g->vk, load(g, g->f32, ap, 4));
        for (int h = 0; h < nv; h++) {
            LLVMValueRef old = load(g, g->vk, u->acc[i][h], 4 * w);
            store(g, vfma(g, s, bv[h], old), u->acc[i][h], 4 * w);
        }
    }
}

static void gen_ukr(Gen *g, int mr, bool col) {
    int w = g->t.lanes, nr = g->t.nr, nv = nr / w;
    char name[40];
    ukr_name(name, sizeof name, col, mr, nr);
    LLVMTypeRef ps[9] = {g->i64, g->ptr, g->i64, g->ptr, g->i64, g->ptr, g->i64, g->i64, g->i32};
    LLVMValueRef fn = add_fn(g, name, ps, 9);
    noalias(g, fn, 1);
    noalias(g, fn, 3);
    noalias(g, fn, 5);
    LLVMValueRef k = LLVMGetParam(fn, 0), c = LLVMGetParam(fn, 5), ldc = LLVMGetParam(fn, 6);
    LLVMValueRef nrem = LLVMGetParam(fn, 7), accf = LLVMGetParam(fn, 8);
    Ukr u = {.mr = mr, .col = col, .a = LLVMGetParam(fn, 1), .sa = LLVMGetParam(fn, 2)};
    u.bp = LLVMGetParam(fn, 3);
    u.sb = LLVMGetParam(fn, 4);

    LLVMPositionBuilderAtEnd(g->b, block(g, fn, "entry"));
    for (int i = 0; i < mr; i++)
        for (int h = 0; h < nv; h++) {
            u.acc[i][h] = LLVMBuildAlloca(g->b, g->vk, "acc");
            LLVMSetAlignment(u.acc[i][h], 4 * w);
        }
    LLVMValueRef pvar = LLVMBuildAlloca(g->b, g->i64, "p");
    for (int i = 0; i < mr; i++)
        for (int h = 0; h < nv; h++) store(g, LLVMConstNull(g->vk), u.acc[i][h], 4 * w);
    /* prefetch the C tile (first and last element of each row) for writing */
    for (int i = 0; i < mr; i++) {
        LLVMValueRef crow = gep(g, c, LLVMBuildMul(g->b, ldc, c64(g, i), ""));
        for (int e = 0; e < 2; e++) {
            LLVMValueRef args[4] = {e ? gep(g, crow, c64(g, nr - 1)) : crow, c32(g, 1), c32(g, 3),
                                    c32(g, 1)};
            intrinsic(g, "llvm.prefetch", &g->ptr, 1, args, 4);
        }
    }
    if (!col)
        for (int i = 0; i < mr; i++)
            u.arow[i] = gep(g, u.a, LLVMBuildMul(g->b, u.sa, c64(g, i), ""));

    /* k unrolled by t.ku (a power of two) */
    int ku = g->t.ku;
    LLVMValueRef kmain = LLVMBuildAnd(g->b, k, c64(g, -ku), "kmain"), p;
    Loop lu = loop_begin(g, fn, pvar, c64(g, 0), kmain, ku, "kuloop", &p);
    for (int s = 0; s < ku; s++) ukr_step(g, &u, s ? LLVMBuildAdd(g->b, p, c64(g, s), "") : p);
    loop_end(g, &lu);
    /* remainder: continue from the counter's value */
    LLVMValueRef pr = load(g, g->i64, pvar, 8);
    Loop l1 = loop_begin(g, fn, pvar, pr, k, 1, "k1loop", &p);
    ukr_step(g, &u, p);
    loop_end(g, &l1);

    /* epilogue */
    LLVMBasicBlockRef full = block(g, fn, "full"), edge = block(g, fn, "edge");
    LLVMValueRef isacc = LLVMBuildICmp(g->b, LLVMIntNE, accf, c32(g, 0), "");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSGE, nrem, c64(g, nr), ""), full, edge);
    for (int e = 0; e < 2; e++) {
        LLVMPositionBuilderAtEnd(g->b, e ? edge : full);
        LLVMValueRef mask[NV] = {NULL};
        if (e)
            for (int h = 0; h < nv; h++) mask[h] = lane_mask(g, (unsigned)w, w * h, nrem);
        LLVMBasicBlockRef addb = block(g, fn, "add"), setb = block(g, fn, "set");
        LLVMBuildCondBr(g->b, isacc, addb, setb);
        for (int add = 0; add < 2; add++) {
            LLVMPositionBuilderAtEnd(g->b, add ? addb : setb);
            for (int i = 0; i < mr; i++) {
                LLVMValueRef crow = gep(g, c, LLVMBuildMul(g->b, ldc, c64(g, i), ""));
                for (int h = 0; h < nv; h++) {
                    LLVMValueRef cp = gep(g, crow, c64(g, w * h));
                    LLVMValueRef v = load(g, g->vk, u.acc[i][h], 4 * w);
                    if (add) {
                        LLVMValueRef old =
                            e ? masked_load(g, g->vk, cp, mask[h]) : load(g, g->vk, cp, 4);
                        v = LLVMBuildFAdd(g->b, old, v, "");
                    }
                    if (e)
                        masked_store(g, v, cp, mask[h]);
                    else
                        store(g, v, cp, 4);
                }
            }
            LLVMBuildRetVoid(g->b);
        }
    }
}

/* ---- packing of B ------------------------------------------------------ */

static LLVMValueRef pack_fn(Gen *g, const char *name) {
    LLVMTypeRef ps[6] = {g->i64, g->i64, g->ptr, g->i64, g->ptr, g->i64};
    LLVMValueRef fn = add_fn(g, name, ps, 6);
    noalias(g, fn, 2);
    noalias(g, fn, 4);
    return fn;
}

/* op(B)(p,j) = b[p*ldb + j]: each row of a panel is nr/lanes vectors */
static void gen_pack_n(Gen *g) {
    int w = g->t.lanes, nr = g->t.nr, nv = nr / w;
    char name[40];
    pack_name(name, sizeof name, false, nr);
    LLVMValueRef fn = pack_fn(g, name);
    LLVMValueRef kc = LLVMGetParam(fn, 0), nc = LLVMGetParam(fn, 1), b = LLVMGetParam(fn, 2);
    LLVMValueRef ldb = LLVMGetParam(fn, 3), dst = LLVMGetParam(fn, 4), ps = LLVMGetParam(fn, 5);
    LLVMPositionBuilderAtEnd(g->b, block(g, fn, "entry"));
    LLVMValueRef jvar = LLVMBuildAlloca(g->b, g->i64, "j");
    LLVMValueRef pvar = LLVMBuildAlloca(g->b, g->i64, "p");
    LLVMValueRef jp, p;
    Loop lj = loop_begin(g, fn, jvar, c64(g, 0), nc, nr, "jloop", &jp);
    LLVMValueRef d = gep(g, dst,
                         LLVMBuildMul(g->b, LLVMBuildSDiv(g->b, jp, c64(g, nr), ""),
                                      LLVMBuildMul(g->b, ps, c64(g, nr), ""), ""));
    LLVMValueRef src = gep(g, b, jp), nrem = LLVMBuildSub(g->b, nc, jp, "");
    LLVMBasicBlockRef full = block(g, fn, "full"), edge = block(g, fn, "edge");
    LLVMBasicBlockRef next = block(g, fn, "next");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSGE, nrem, c64(g, nr), ""), full, edge);
    for (int e = 0; e < 2; e++) {
        LLVMPositionBuilderAtEnd(g->b, e ? edge : full);
        LLVMValueRef m[NV] = {NULL};
        if (e)
            for (int h = 0; h < nv; h++) m[h] = lane_mask(g, (unsigned)w, w * h, nrem);
        Loop lp = loop_begin(g, fn, pvar, c64(g, 0), kc, 1, "ploop", &p);
        LLVMValueRef s = gep(g, src, LLVMBuildMul(g->b, p, ldb, ""));
        LLVMValueRef dd = gep(g, d, LLVMBuildMul(g->b, p, c64(g, nr), ""));
        for (int h = 0; h < nv; h++) {
            LLVMValueRef sp = gep(g, s, c64(g, w * h));
            LLVMValueRef v = e ? masked_load(g, g->vk, sp, m[h]) : load(g, g->vk, sp, 4);
            store(g, v, gep(g, dd, c64(g, w * h)), 4 * w);
        }
        loop_end(g, &lp);
        LLVMBuildBr(g->b, next);
    }
    LLVMPositionBuilderAtEnd(g->b, next);
    loop_end(g, &lj);
    LLVMBuildRetVoid(g->b);
}

/* 8x8 transpose: out[q][r] = in[r][q] (unpck, shufps, vperm2f128 patterns). */
static void transpose8(Gen *g, LLVMValueRef *r, LLVMValueRef *out) {
    static const int lo[8] = {0, 8, 1, 9, 4, 12, 5, 13}, hi[8] = {2, 10, 3, 11, 6, 14, 7, 15};
    static const int s44[8] = {0, 1, 8, 9, 4, 5, 12, 13}, sEE[8] = {2, 3, 10, 11, 6, 7, 14, 15};
    static const int p20[8] = {0, 1, 2, 3, 8, 9, 10, 11}, p31[8] = {4, 5, 6, 7, 12, 13, 14, 15};
    LLVMValueRef t[8], s[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = shuffle(g, r[2 * i], r[2 * i + 1], lo);
        t[2 * i + 1] = shuffle(g, r[2 * i], r[2 * i + 1], hi);
    }
    for (int i = 0; i < 2; i++) {
        LLVMValueRef *tt = t + 4 * i, *ss = s + 4 * i;
        ss[0] = shuffle(g, tt[0], tt[2], s44);
        ss[1] = shuffle(g, tt[0], tt[2], sEE);
        ss[2] = shuffle(g, tt[1], tt[3], s44);
        ss[3] = shuffle(g, tt[1], tt[3], sEE);
    }
    for (int q = 0; q < 4; q++) {
        out[q] = shuffle(g, s[q], s[q + 4], p20);
        out[q + 4] = shuffle(g, s[q], s[q + 4], p31);
    }
}

/* op(B)(p,j) = b[j*ldb + p]: nr x 8 blocks, nr/8 8x8 transposes each. */
static void gen_pack_t(Gen *g) {
    int nr = g->t.nr;
    char name[40];
    pack_name(name, sizeof name, true, nr);
    LLVMValueRef fn = pack_fn(g, name);
    LLVMValueRef kc = LLVMGetParam(fn, 0), nc = LLVMGetParam(fn, 1), b = LLVMGetParam(fn, 2);
    LLVMValueRef ldb = LLVMGetParam(fn, 3), dst = LLVMGetParam(fn, 4), ps = LLVMGetParam(fn, 5);
    LLVMPositionBuilderAtEnd(g->b, block(g, fn, "entry"));
    LLVMValueRef jvar = LLVMBuildAlloca(g->b, g->i64, "j");
    LLVMValueRef pvar = LLVMBuildAlloca(g->b, g->i64, "p");
    LLVMValueRef jp, p0;
    Loop lj = loop_begin(g, fn, jvar, c64(g, 0), nc, nr, "jloop", &jp);
    LLVMValueRef d = gep(g, dst,
                         LLVMBuildMul(g->b, LLVMBuildSDiv(g->b, jp, c64(g, nr), ""),
                                      LLVMBuildMul(g->b, ps, c64(g, nr), ""), ""));
    LLVMValueRef src = gep(g, b, LLVMBuildMul(g->b, jp, ldb, ""));
    LLVMValueRef nrem = LLVMBuildSub(g->b, nc, jp, "");
    LLVMValueRef fullj = LLVMBuildICmp(g->b, LLVMIntSGE, nrem, c64(g, nr), "");
    Loop lp = loop_begin(g, fn, pvar, c64(g, 0), kc, 8, "ploop", &p0);
    LLVMValueRef krem = LLVMBuildSub(g->b, kc, p0, "");
    LLVMValueRef fullk = LLVMBuildICmp(g->b, LLVMIntSGE, krem, c64(g, 8), "");
    LLVMBasicBlockRef full = block(g, fn, "full"), edge = block(g, fn, "edge");
    LLVMBasicBlockRef next = block(g, fn, "next");
    LLVMBuildCondBr(g->b, LLVMBuildAnd(g->b, fullj, fullk, ""), full, edge);
    LLVMTypeRef v8i1 = LLVMVectorType(g->i1, 8);
    for (int e = 0; e < 2; e++) {
        LLVMPositionBuilderAtEnd(g->b, e ? edge : full);
        LLVMValueRef kmask = e ? lane_mask(g, 8, 0, krem) : NULL;
        LLVMValueRef s = gep(g, src, p0);
        LLVMValueRef dd = gep(g, d, LLVMBuildMul(g->b, p0, c64(g, nr), ""));
        for (int h = 0; h < nr / 8; h++) {
            LLVMValueRef r[8], out[8];
            for (int i = 0; i < 8; i++) {
                int row = 8 * h + i;
                LLVMValueRef sp = gep(g, s, LLVMBuildMul(g->b, ldb, c64(g, row), ""));
                if (!e) {
                    r[i] = load(g, g->v8, sp, 4);
                } else {
                    LLVMValueRef ok = LLVMBuildICmp(g->b, LLVMIntSLT, c64(g, row), nrem, "");
                    LLVMValueRef m = LLVMBuildSelect(g->b, ok, kmask, LLVMConstNull(v8i1), "");
                    r[i] = masked_load(g, g->v8, sp, m);
                }
            }
            transpose8(g, r, out);
            for (int q = 0; q < 8; q++) store(g, out[q], gep(g, dd, c64(g, nr * q + 8 * h)), 32);
        }
        LLVMBuildBr(g->b, next);
    }
    LLVMPositionBuilderAtEnd(g->b, next);
    loop_end(g, &lp);
    loop_end(g, &lj);
    LLVMBuildRetVoid(g->b);
}

/* ---- small-M kernels (no packing) -------------------------------------- */

/* zeroed <8 x float> accumulators in entry-block allocas */
static void zero_accs(Gen *g, LLVMValueRef *acc, int n) {
    for (int i = 0; i < n; i++) store(g, LLVMConstNull(g->v8), acc[i], 32);
}

/* Vectors of gemv_n per row count: mr * nv accumulators. */
static int gemv_n_nv(int mr) {
    return mr == 1 ? 8 : mr == 2 ? 4 : 2;
}

typedef struct Gemv {
    int mr;
    LLVMValueRef fn, k, a, sai, sak, b, ldb, c, ldc, accf, pvar, n, ct;
    LLVMValueRef acc[GEMM_GEMV_MR][8];
} Gemv;

/* gemv_n's sums stored transposed: C(i, j) at c[j*ldc + i], so each
 * column j of the block is a row of mr floats at c + j*ldc (a narrow
 * product computed as its transpose, gemm_driver.c gemm_narrow, writes its
 * C directly). The mr sums of a column are gathered from lane l of the
 * rows' accumulators; a masked block stores only its columns < n. Then
 * branches to done. */
static LLVMValueRef shuffle_n(Gen *g, LLVMValueRef a, LLVMValueRef b, const int *idx, int n) {
    LLVMValueRef e[8];
    for (int i = 0; i < n; i++) e[i] = c32(g, idx[i]);
    return LLVMBuildShuffleVector(g->b, a, b, LLVMConstVector(e, (unsigned)n), "");
}

/* The mr sums of each column l < 8 of one vector of every row, as
 * <mr x float>: a 4 x 8 (or 2 x 8) transpose by unpacks and shuffles within
 * 128-bit halves where mr is 4 (2), else lane by lane. */
static void columns_of(Gen *g, int mr, LLVMValueRef *x, LLVMValueRef *out) {
    static const int lo[8] = {0, 8, 1, 9, 4, 12, 5, 13}, hi[8] = {2, 10, 3, 11, 6, 14, 7, 15};
    static const int q0[8] = {0, 1, 8, 9, 4, 5, 12, 13}, q1[8] = {2, 3, 10, 11, 6, 7, 14, 15};
    static const int h4[2][4] = {{0, 1, 2, 3}, {4, 5, 6, 7}};
    static const int h2[4][2] = {{0, 1}, {2, 3}, {4, 5}, {6, 7}};
    if (mr == 4) {
        LLVMValueRef ab[2] = {shuffle(g, x[0], x[1], lo), shuffle(g, x[0], x[1], hi)};
        LLVMValueRef cd[2] = {shuffle(g, x[2], x[3], lo), shuffle(g, x[2], x[3], hi)};
        for (int l = 0; l < 4; l++) { /* r = [col l | col l+4] */
            LLVMValueRef r = shuffle(g, ab[l / 2], cd[l / 2], l % 2 ? q1 : q0);
            out[l] = shuffle_n(g, r, r, h4[0], 4);
            out[l + 4] = shuffle_n(g, r, r, h4[1], 4);
        }
        return;
    }
    if (mr == 2) {
        LLVMValueRef ab[2] = {shuffle(g, x[0], x[1], lo), shuffle(g, x[0], x[1], hi)};
        static const int col[2][4] = {{0, 1, 4, 5}, {2, 3, 6, 7}}; /* of ab[0], ab[1] */
        for (int k = 0; k < 2; k++)
            for (int q = 0; q < 4; q++) out[col[k][q]] = shuffle_n(g, ab[k], ab[k], h2[q], 2);
        return;
    }
    LLVMTypeRef rt = LLVMVectorType(g->f32, (unsigned)mr);
    for (int l = 0; l < 8; l++) {
        LLVMValueRef r = LLVMGetUndef(rt);
        for (int i = 0; i < mr; i++)
            r = LLVMBuildInsertElement(g->b, r, LLVMBuildExtractElement(g->b, x[i], c32(g, l), ""),
                                       c32(g, i), "");
        out[l] = r;
    }
}

static void gemv_n_store_t(Gen *g, Gemv *v, int nv, LLVMValueRef j, bool masked,
                           LLVMBasicBlockRef done) {
    LLVMTypeRef rt = LLVMVectorType(g->f32, (unsigned)v->mr);
    LLVMValueRef nleft = LLVMBuildSub(g->b, v->n, j, "");
    LLVMValueRef colv[8][8]; /* [h][l]: column 8h + l of the block */
    for (int h = 0; h < nv; h++) {
        LLVMValueRef x[GEMM_GEMV_MR];
        for (int i = 0; i < v->mr; i++) x[i] = load(g, g->v8, v->acc[i][h], 32);
        columns_of(g, v->mr, x, colv[h]);
    }
    LLVMValueRef c0 = gep(g, v->c, LLVMBuildMul(g->b, j, v->ldc, ""));
    LLVMBasicBlockRef addb = block(g, v->fn, "gntadd"), setb = block(g, v->fn, "gntset");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntNE, v->accf, c32(g, 0), ""), addb, setb);
    for (int add = 0; add < 2; add++) {
        LLVMPositionBuilderAtEnd(g->b, add ? addb : setb);
        LLVMValueRef cp = c0;
        for (int h = 0; h < nv; h++)
            for (int l = 0; l < 8; l++) {
                int col = 8 * h + l;
                LLVMBasicBlockRef st = NULL, next = NULL;
                if (masked && h == nv - 1) { /* store only columns < n */
                    st = block(g, v->fn, "gntst");
                    next = block(g, v->fn, "gntnext");
                    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, c64(g, col), nleft, ""),
                                    st, next);
                    LLVMPositionBuilderAtEnd(g->b, st);
                }
                LLVMValueRef x = colv[h][l];
                if (add) x = LLVMBuildFAdd(g->b, load(g, rt, cp, 4), x, "");
                store(g, x, cp, 4);
                if (st) {
                    LLVMBuildBr(g->b, next);
                    LLVMPositionBuilderAtEnd(g->b, next);
                }
                cp = gep(g, cp, v->ldc);
            }
        LLVMBuildBr(g->b, done);
    }
}

/* gemv_n: columns j .. j + 8*nv (the last vector masked by mask when given). */
static void gemv_n_block(Gen *g, Gemv *v, int nv, LLVMValueRef j, LLVMValueRef mask) {
    for (int i = 0; i < v->mr; i++) zero_accs(g, v->acc[i], nv);
    LLVMValueRef p;
    Loop lp = loop_begin(g, v->fn, v->pvar, c64(g, 0), v->k, 1, "gnp", &p);
    LLVMValueRef brow = gep(g, v->b, LLVMBuildAdd(g->b, LLVMBuildMul(g->b, p, v->ldb, ""), j, ""));
    LLVMValueRef bv[8];
    for (int h = 0; h < nv; h++) {
        LLVMValueRef bp = gep(g, brow, c64(g, 8 * h));
        bv[h] = mask && h == nv - 1 ? masked_load(g, g->v8, bp, mask) : load(g, g->v8, bp, 4);
    }
    LLVMValueRef pk = LLVMBuildMul(g->b, p, v->sak, "");
    for (int i = 0; i < v->mr; i++) {
        LLVMValueRef ai = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, v->sai, c64(g, i), ""), pk, "");
        LLVMValueRef s = splat(g, g->v8, load(g, g->f32, gep(g, v->a, ai), 4));
        for (int h = 0; h < nv; h++)
            store(g, vfma(g, s, bv[h], load(g, g->v8, v->acc[i][h], 32)), v->acc[i][h], 32);
    }
    loop_end(g, &lp);
    LLVMBasicBlockRef done = block(g, v->fn, "gndone"), direct = block(g, v->fn, "gndirect");
    LLVMBasicBlockRef trans = block(g, v->fn, "gntrans");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntNE, v->ct, c32(g, 0), ""), trans, direct);
    LLVMPositionBuilderAtEnd(g->b, trans);
    gemv_n_store_t(g, v, nv, j, mask != NULL, done);
    LLVMPositionBuilderAtEnd(g->b, direct);
    /* C = (acc ? C : 0) + sums */
    LLVMBasicBlockRef addb = block(g, v->fn, "gnadd"), setb = block(g, v->fn, "gnset");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntNE, v->accf, c32(g, 0), ""), addb, setb);
    for (int add = 0; add < 2; add++) {
        LLVMPositionBuilderAtEnd(g->b, add ? addb : setb);
        for (int i = 0; i < v->mr; i++) {
            LLVMValueRef crow =
                gep(g, v->c, LLVMBuildAdd(g->b, LLVMBuildMul(g->b, v->ldc, c64(g, i), ""), j, ""));
            for (int h = 0; h < nv; h++) {
                LLVMValueRef cp = gep(g, crow, c64(g, 8 * h));
                bool m = mask && h == nv - 1;
                LLVMValueRef x = load(g, g->v8, v->acc[i][h], 32);
                if (add) {
                    LLVMValueRef old = m ? masked_load(g, g->v8, cp, mask) : load(g, g->v8, cp, 4);
                    x = LLVMBuildFAdd(g->b, old, x, "");
                }
                if (m)
                    masked_store(g, x, cp, mask);
                else
                    store(g, x, cp, 4);
            }
        }
        LLVMBuildBr(g->b, done);
    }
    LLVMPositionBuilderAtEnd(g->b, done);
}

static void gemv_allocas(Gen *g, Gemv *v, int nacc) {
    for (int i = 0; i < v->mr; i++)
        for (int h = 0; h < nacc; h++) {
            v->acc[i][h] = LLVMBuildAlloca(g->b, g->v8, "acc");
            LLVMSetAlignment(v->acc[i][h], 32);
        }
    v->pvar = LLVMBuildAlloca(g->b, g->i64, "p");
}

static void gen_gemv_n(Gen *g, int mr) {
    char name[32];
    snprintf(name, sizeof name, "tt_gemm_gemv_n%d", mr);
    LLVMTypeRef ps[11] = {g->i64, g->ptr, g->i64, g->i64, g->ptr, g->i64,
                          g->ptr, g->i64, g->i64, g->i32, g->i32};
    LLVMValueRef fn = add_fn(g, name, ps, 11);
    noalias(g, fn, 1);
    noalias(g, fn, 4);
    noalias(g, fn, 6);
    Gemv v = {.mr = mr, .fn = fn};
    v.k = LLVMGetParam(fn, 0);
    v.a = LLVMGetParam(fn, 1);
    v.sai = LLVMGetParam(fn, 2);
    v.sak = LLVMGetParam(fn, 3);
    v.b = LLVMGetParam(fn, 4);
    v.ldb = LLVMGetParam(fn, 5);
    v.c = LLVMGetParam(fn, 6);
    v.ldc = LLVMGetParam(fn, 7);
    LLVMValueRef n = LLVMGetParam(fn, 8);
    v.accf = LLVMGetParam(fn, 9);
    v.n = n;
    v.ct = LLVMGetParam(fn, 10);
    int nv = gemv_n_nv(mr), w = 8 * nv;
    LLVMPositionBuilderAtEnd(g->b, block(g, fn, "entry"));
    gemv_allocas(g, &v, nv);
    LLVMValueRef jvar = LLVMBuildAlloca(g->b, g->i64, "j"), j;
    /* wide blocks, then the rest (fewer than w columns) as one block of
     * its c vectors, the last one masked: each k step of a block is one
     * fma latency, so the rest in one pass rather than c passes (N = 10,
     * a batch-1 MLP's last layer: 0.25 -> 0.15 us) */
    LLVMValueRef nw = LLVMBuildAnd(g->b, n, c64(g, -w), "");
    Loop lw = loop_begin(g, fn, jvar, c64(g, 0), nw, w, "gnw", &j);
    gemv_n_block(g, &v, nv, j, NULL);
    loop_end(g, &lw);
    LLVMBasicBlockRef ret = block(g, fn, "gnret");
    LLVMValueRef nrest = LLVMBuildSub(g->b, n, nw, "");
    for (int c = 1; c <= nv; c++) { /* the rest is c vectors: 8(c-1) < nrest <= 8c */
        LLVMBasicBlockRef tail = block(g, fn, "gntail"), next = block(g, fn, "gnnext");
        LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLE, nrest, c64(g, 8 * c), ""), tail,
                        next);
        LLVMPositionBuilderAtEnd(g->b, tail);
        LLVMBasicBlockRef any = block(g, fn, "gnany");
        LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSGT, nrest, c64(g, 8 * (c - 1)), ""), any,
                        ret);
        LLVMPositionBuilderAtEnd(g->b, any);
        gemv_n_block(g, &v, c, nw, lane_mask(g, 8, 8 * (c - 1), nrest));
        LLVMBuildBr(g->b, ret);
        LLVMPositionBuilderAtEnd(g->b, next);
    }
    LLVMBuildBr(g->b, ret); /* nrest < w: not reached */
    LLVMPositionBuilderAtEnd(g->b, ret);
    LLVMBuildRetVoid(g->b);
}

/* sum of the 8 lanes: (lo4 + hi4), then pairs */
static LLVMValueRef hsum8(Gen *g, LLVMValueRef x) {
    LLVMValueRef e[4];
    for (int i = 0; i < 4; i++) e[i] = c32(g, i);
    LLVMValueRef lo = LLVMBuildShuffleVector(g->b, x, x, LLVMConstVector(e, 4), "");
    for (int i = 0; i < 4; i++) e[i] = c32(g, 4 + i);
    LLVMValueRef hi = LLVMBuildShuffleVector(g->b, x, x, LLVMConstVector(e, 4), "");
    LLVMValueRef s4 = LLVMBuildFAdd(g->b, lo, hi, "");
    e[0] = c32(g, 0), e[1] = c32(g, 1);
    lo = LLVMBuildShuffleVector(g->b, s4, s4, LLVMConstVector(e, 2), "");
    e[0] = c32(g, 2), e[1] = c32(g, 3);
    hi = LLVMBuildShuffleVector(g->b, s4, s4, LLVMConstVector(e, 2), "");
    LLVMValueRef s2 = LLVMBuildFAdd(g->b, lo, hi, "");
    return LLVMBuildFAdd(g->b, LLVMBuildExtractElement(g->b, s2, c32(g, 0), ""),
                         LLVMBuildExtractElement(g->b, s2, c32(g, 1), ""), "");
}

/* Columns of gemv_t per row count: mr * jb accumulators. */
static int gemv_t_jb(int mr) {
    return mr == 1 ? 8 : mr == 2 ? 4 : 2;
}

/* one k step of gemv_t at p (masked by mask when given) */
static void gemv_t_step(Gen *g, Gemv *v, int jb, LLVMValueRef j, LLVMValueRef p,
                        LLVMValueRef mask) {
    LLVMValueRef av[GEMM_GEMV_MR], bv[8];
    for (int i = 0; i < v->mr; i++) {
        LLVMValueRef ap =
            gep(g, v->a, LLVMBuildAdd(g->b, LLVMBuildMul(g->b, v->sai, c64(g, i), ""), p, ""));
        av[i] = mask ? masked_load(g, g->v8, ap, mask) : load(g, g->v8, ap, 4);
    }
    for (int q = 0; q < jb; q++) {
        LLVMValueRef row = LLVMBuildMul(g->b, LLVMBuildAdd(g->b, j, c64(g, q), ""), v->ldb, "");
        LLVMValueRef bp = gep(g, v->b, LLVMBuildAdd(g->b, row, p, ""));
        bv[q] = mask ? masked_load(g, g->v8, bp, mask) : load(g, g->v8, bp, 4);
    }
    for (int i = 0; i < v->mr; i++)
        for (int q = 0; q < jb; q++)
            store(g, vfma(g, av[i], bv[q], load(g, g->v8, v->acc[i][q], 32)), v->acc[i][q], 32);
}

/* gemv_t: columns j .. j + jb */
static void gemv_t_block(Gen *g, Gemv *v, int jb, LLVMValueRef j) {
    for (int i = 0; i < v->mr; i++) zero_accs(g, v->acc[i], jb);
    LLVMValueRef k8 = LLVMBuildAnd(g->b, v->k, c64(g, -8), ""), p;
    Loop lp = loop_begin(g, v->fn, v->pvar, c64(g, 0), k8, 8, "gtp", &p);
    gemv_t_step(g, v, jb, j, p, NULL);
    loop_end(g, &lp);
    LLVMBasicBlockRef tail = block(g, v->fn, "gtktail"), red = block(g, v->fn, "gtred");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, k8, v->k, ""), tail, red);
    LLVMPositionBuilderAtEnd(g->b, tail);
    gemv_t_step(g, v, jb, j, k8, lane_mask(g, 8, 0, LLVMBuildSub(g->b, v->k, k8, "")));
    LLVMBuildBr(g->b, red);
    LLVMPositionBuilderAtEnd(g->b, red);
    LLVMValueRef isacc = LLVMBuildICmp(g->b, LLVMIntNE, v->accf, c32(g, 0), "");
    for (int i = 0; i < v->mr; i++)
        for (int q = 0; q < jb; q++) {
            LLVMValueRef ci = LLVMBuildAdd(g->b, LLVMBuildMul(g->b, v->ldc, c64(g, i), ""),
                                           LLVMBuildAdd(g->b, j, c64(g, q), ""), "");
            LLVMValueRef cp = gep(g, v->c, ci);
            LLVMValueRef s = hsum8(g, load(g, g->v8, v->acc[i][q], 32));
            /* the old value is read only when accumulating */
            LLVMBasicBlockRef addb = block(g, v->fn, "gtadd"), st = block(g, v->fn, "gtst");
            LLVMBasicBlockRef from = LLVMGetInsertBlock(g->b);
            LLVMBuildCondBr(g->b, isacc, addb, st);
            LLVMPositionBuilderAtEnd(g->b, addb);
            LLVMValueRef sum = LLVMBuildFAdd(g->b, load(g, g->f32, cp, 4), s, "");
            LLVMBuildBr(g->b, st);
            LLVMPositionBuilderAtEnd(g->b, st);
            LLVMValueRef phi = LLVMBuildPhi(g->b, g->f32, "");
            LLVMValueRef vals[2] = {s, sum};
            LLVMBasicBlockRef bbs[2] = {from, addb};
            LLVMAddIncoming(phi, vals, bbs, 2);
            store(g, phi, cp, 4);
        }
}

static void gen_gemv_t(Gen *g, int mr) {
    char name[32];
    snprintf(name, sizeof name, "tt_gemm_gemv_t%d", mr);
    LLVMTypeRef ps[9] = {g->i64, g->ptr, g->i64, g->ptr, g->i64, g->ptr, g->i64, g->i64, g->i32};
    LLVMValueRef fn = add_fn(g, name, ps, 9);
    noalias(g, fn, 1);
    noalias(g, fn, 3);
    noalias(g, fn, 5);
    Gemv v = {.mr = mr, .fn = fn};
    v.k = LLVMGetParam(fn, 0);
    v.a = LLVMGetParam(fn, 1);
    v.sai = LLVMGetParam(fn, 2);
    v.b = LLVMGetParam(fn, 3);
    v.ldb = LLVMGetParam(fn, 4);
    v.c = LLVMGetParam(fn, 5);
    v.ldc = LLVMGetParam(fn, 6);
    LLVMValueRef n = LLVMGetParam(fn, 7);
    v.accf = LLVMGetParam(fn, 8);
    int jb = gemv_t_jb(mr);
    LLVMPositionBuilderAtEnd(g->b, block(g, fn, "entry"));
    gemv_allocas(g, &v, jb);
    LLVMValueRef jvar = LLVMBuildAlloca(g->b, g->i64, "j"), j;
    LLVMValueRef nb = LLVMBuildAnd(g->b, n, c64(g, -jb), "");
    Loop lb = loop_begin(g, fn, jvar, c64(g, 0), nb, jb, "gtj", &j);
    gemv_t_block(g, &v, jb, j);
    loop_end(g, &lb);
    Loop l1 = loop_begin(g, fn, jvar, nb, n, 1, "gtj1", &j);
    gemv_t_block(g, &v, 1, j);
    loop_end(g, &l1);
    LLVMBuildRetVoid(g->b);
}

/* ---- module, passes, JIT ----------------------------------------------- */

/* Row counts with a micro-kernel of their own: the full height and the
 * powers of two below it, and 5 for the 6-row tile (a block's last 10 rows
 * as 5 + 5: a 4-row tile's 8 accumulators are too few to hide the FMA
 * latency). */
static bool has_mr(GemmTile t, int mr) {
    return mr == t.mr || (mr < t.mr && (mr & (mr - 1)) == 0) || (t.mr == 6 && mr == 5);
}

/* Whether the narrow tile is a tile of its own (16 lanes) or the wide one
 * again (8 lanes), whose kernels it then shares. */
static bool narrow_own(const GemmKernels *k) {
    return k->narrow.tile.nr != k->wide.tile.nr;
}

/* The kernels of one tile: g->t and g->vk are set for it. */
static void gen_tile(Gen *g, GemmTile t) {
    g->t = t;
    g->vk = LLVMVectorType(g->f32, (unsigned)t.lanes);
    for (int col = 0; col < 2; col++)
        for (int mr = 1; mr <= t.mr; mr++)
            if (has_mr(t, mr)) gen_ukr(g, mr, col);
    gen_pack_n(g);
    gen_pack_t(g);
}

static void gen_module(Gen *g, const GemmKernels *k, unsigned fams) {
    g->f32 = LLVMFloatTypeInContext(g->ctx);
    g->v8 = LLVMVectorType(g->f32, 8);
    g->i64 = LLVMInt64TypeInContext(g->ctx);
    g->i32 = LLVMInt32TypeInContext(g->ctx);
    g->i1 = LLVMInt1TypeInContext(g->ctx);
    g->ptr = LLVMPointerTypeInContext(g->ctx, 0);
    g->vd = LLVMVoidTypeInContext(g->ctx);

    if (fams & GEMM_FAM_WIDE) gen_tile(g, k->wide.tile);
    if ((fams & GEMM_FAM_NARROW) && narrow_own(k)) gen_tile(g, k->narrow.tile);
    for (int mr = 1; mr <= GEMM_GEMV_MR; mr++) {
        if (fams & GEMM_FAM_GEMV_N(mr)) gen_gemv_n(g, mr);
        if (fams & GEMM_FAM_GEMV_T(mr)) gen_gemv_t(g, mr);
    }
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static bool take_err(LLVMErrorRef e, const char *what, char *err, size_t errlen) {
    return tt_llvm_take_err(e, "gemm jit", what, err, errlen);
}

/* Code generation settings of the object file. PIC with the small code model
 * is what ORC's JITLink (LLJIT's default linker for ELF x86-64) asks for,
 * and RuntimeDyld links it too, wherever the JIT maps the code. They are
 * part of the cache key, as is the pass pipeline. */
#define GEMM_PASSES  "default<O3>"
#define GEMM_OPT     LLVMCodeGenLevelAggressive
#define GEMM_RELOC   LLVMRelocPIC
#define GEMM_CODEMOD LLVMCodeModelSmall
#define GEMM_CODEGEN "O3 pic small"

static LLVMTargetMachineRef host_tm(char *err, size_t errlen) {
    return tt_llvm_host_machine(GEMM_OPT, GEMM_RELOC, GEMM_CODEMOD, "gemm jit", err, errlen);
}

/* Everything the object code depends on: LLVM's version, the target
 * machine, the pipeline and the generated IR, whose text covers every
 * change to the generator (hashed: it is a few hundred KiB). malloc'd. */
static char *cache_key(LLVMTargetMachineRef tm, const char *ir) {
    unsigned maj, min, pat;
    LLVMGetVersion(&maj, &min, &pat);
    char *triple = LLVMGetTargetMachineTriple(tm), *cpu = LLVMGetTargetMachineCPU(tm);
    char *feat = LLVMGetTargetMachineFeatureString(tm);
    size_t n = strlen(ir);
    const char *fmt = "tt-gemm llvm=%u.%u.%u triple=%s cpu=%s features=%s passes=%s codegen=%s "
                      "ir=%016llx:%zu";
    unsigned long long h = objcache_hash(ir, n);
    int len =
        snprintf(NULL, 0, fmt, maj, min, pat, triple, cpu, feat, GEMM_PASSES, GEMM_CODEGEN, h, n);
    char *key = len < 0 ? NULL : malloc((size_t)len + 1);
    if (key)
        snprintf(key, (size_t)len + 1, fmt, maj, min, pat, triple, cpu, feat, GEMM_PASSES,
                 GEMM_CODEGEN, h, n);
    LLVMDisposeMessage(triple);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(feat);
    return key;
}

/* Optimises mod and emits it as an ELF object; NULL with err on failure. */
static LLVMMemoryBufferRef compile(LLVMModuleRef mod, LLVMTargetMachineRef tm, char *err,
                                   size_t errlen) {
    double t0 = now_ms();
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMErrorRef e = LLVMRunPasses(mod, GEMM_PASSES, tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (take_err(e, "passes", err, errlen)) return NULL;
    const char *dbg = getenv("TT_GEMM_DEBUG");
    if (dbg) {
        fprintf(stderr, "gemm jit: O3 %.1f ms\n", now_ms() - t0);
        char path[512];
        snprintf(path, sizeof path, "%s.opt.ll", dbg);
        LLVMPrintModuleToFile(mod, path, NULL);
        snprintf(path, sizeof path, "%s.s", dbg);
        LLVMTargetMachineEmitToFile(tm, mod, path, LLVMAssemblyFile, NULL);
        fprintf(stderr, "gemm jit: O3+asm %.1f ms\n", now_ms() - t0);
    }
    LLVMMemoryBufferRef obj = NULL;
    char *msg = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &msg, &obj)) {
        snprintf(err, errlen, "gemm jit: codegen: %s", msg ? msg : "failed");
        LLVMDisposeMessage(msg);
        return NULL;
    }
    if (dbg) fprintf(stderr, "gemm jit: O3+codegen %.1f ms\n", now_ms() - t0);
    return obj;
}

static bool lookup(LLVMOrcLLJITRef jit, const char *name, LLVMOrcExecutorAddress *addr, char *err,
                   size_t errlen) {
    return !take_err(LLVMOrcLLJITLookup(jit, addr, name), name, err, errlen);
}

static bool lookup_tile(LLVMOrcLLJITRef jit, GemmTileKernels *tk, char *err, size_t errlen) {
    char name[40];
    LLVMOrcExecutorAddress addr;
    for (int col = 0; col < 2; col++)
        for (int mr = 1; mr <= tk->tile.mr; mr++) {
            if (!has_mr(tk->tile, mr)) continue;
            ukr_name(name, sizeof name, col, mr, tk->tile.nr);
            if (!lookup(jit, name, &addr, err, errlen)) return false;
            (col ? tk->ukr_col : tk->ukr_row)[mr - 1] = (GemmUkr)(uintptr_t)addr;
        }
    for (int t = 0; t < 2; t++) {
        pack_name(name, sizeof name, t, tk->tile.nr);
        if (!lookup(jit, name, &addr, err, errlen)) return false;
        *(t ? &tk->pack_t : &tk->pack_n) = (GemmPack)(uintptr_t)addr;
    }
    return true;
}

static bool lookup_all(LLVMOrcLLJITRef jit, GemmKernels *out, unsigned fams, char *err,
                       size_t errlen) {
    char name[32];
    LLVMOrcExecutorAddress addr;
    if ((fams & GEMM_FAM_WIDE) && !lookup_tile(jit, &out->wide, err, errlen)) return false;
    if (!narrow_own(out)) {
        if (fams & GEMM_FAM_WIDE) out->narrow = out->wide;
    } else if ((fams & GEMM_FAM_NARROW) && !lookup_tile(jit, &out->narrow, err, errlen))
        return false;
    for (int t = 0; t < 2; t++)
        for (int mr = 1; mr <= GEMM_GEMV_MR; mr++) {
            if (!(fams & (t ? GEMM_FAM_GEMV_T(mr) : GEMM_FAM_GEMV_N(mr)))) continue;
            snprintf(name, sizeof name, "tt_gemm_gemv_%c%d", t ? 't' : 'n', mr);
            if (!lookup(jit, name, &addr, err, errlen)) return false;
            if (t)
                out->gemv_t[mr - 1] = (GemvT)(uintptr_t)addr;
            else
                out->gemv_n[mr - 1] = (GemvN)(uintptr_t)addr;
        }
    return true;
}

/* ORC reports a failed link (an unresolved symbol) to the session as well
 * as failing the lookup, and by default prints it ("JIT session error:
 * ..."); a cached object that does not link is a miss, so the message only
 * goes into ctx, the lookup's error text. */
static void session_error(void *ctx, LLVMErrorRef e) {
    char *msg = LLVMGetErrorMessage(e);
    if (ctx) snprintf(ctx, 256, "gemm jit: link: %s", msg);
    LLVMDisposeErrorMessage(msg);
}

/* Links an object file (consumed) into a new LLJIT and looks the kernels up.
 * Fresh and cached code take this same path. */
static GemmJit *load_object(LLVMMemoryBufferRef obj, GemmKernels *out, unsigned fams, char *err,
                            size_t errlen) {
    LLVMOrcLLJITRef jit;
    if (take_err(LLVMOrcCreateLLJIT(&jit, LLVMOrcCreateLLJITBuilder()), "LLJIT", err, errlen)) {
        LLVMDisposeMemoryBuffer(obj);
        return NULL;
    }
    char link_err[256] = "";
    LLVMOrcExecutionSessionRef es = LLVMOrcLLJITGetExecutionSession(jit);
    LLVMOrcExecutionSessionSetErrorReporter(es, session_error, link_err);
    /* optimised code may call memset/memcpy: resolve them in the process */
    LLVMOrcDefinitionGeneratorRef gen;
    if (take_err(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
                     &gen, LLVMOrcLLJITGetGlobalPrefix(jit), NULL, NULL),
                 "process symbols", err, errlen)) {
        LLVMDisposeMemoryBuffer(obj);
        LLVMOrcDisposeLLJIT(jit);
        return NULL;
    }
    LLVMOrcJITDylibRef lib = LLVMOrcLLJITGetMainJITDylib(jit);
    LLVMOrcJITDylibAddGenerator(lib, gen);
    if (take_err(LLVMOrcLLJITAddObjectFile(jit, lib, obj), "add object", err, errlen) ||
        !lookup_all(jit, out, fams, err, errlen)) {
        if (link_err[0]) snprintf(err, errlen, "%s", link_err);
        LLVMOrcDisposeLLJIT(jit);
        return NULL;
    }
    LLVMOrcExecutionSessionSetErrorReporter(es, session_error, NULL); /* link_err dies here */
    GemmJit *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, errlen, "gemm jit: out of memory");
        LLVMOrcDisposeLLJIT(jit);
        return NULL;
    }
    j->jit = jit;
    return j;
}

/* The cached object for key, linked; NULL on a miss or when it fails to link
 * (then the caller compiles afresh and overwrites the entry). */
static GemmJit *load_cached(const char *key, GemmKernels *out, unsigned fams) {
    void *bytes;
    size_t len;
    if (!key || !objcache_load(key, &bytes, &len)) return NULL;
    LLVMMemoryBufferRef obj = LLVMCreateMemoryBufferWithMemoryRangeCopy(bytes, len, "tt_gemm.o");
    free(bytes);
    char err[256];
    GemmJit *j = load_object(obj, out, fams, err, sizeof err);
    const char *dbg = getenv("TT_CACHE_DEBUG");
    if (!j && dbg && *dbg && strcmp(dbg, "0")) fprintf(stderr, "objcache: cached gemm: %s\n", err);
    if (j) j->cached = true;
    return j;
}

void gemm_jit_tiles(GemmKernels *k, int lanes) {
    if (lanes == 16) {
        k->wide.tile = (GemmTile){16, 12, 32, 1};
        k->narrow.tile = (GemmTile){16, 12, 16, 4};
    } else {
        k->wide.tile = k->narrow.tile = (GemmTile){8, 6, 16, 4};
    }
}

/* The tiles for lanes (0: the host's choice, see gemm_internal.h). */
static void pick_tiles(LLVMTargetMachineRef tm, int lanes, GemmKernels *k) {
    const char *env = getenv("TT_GEMM_LANES");
    if (lanes == 0 && env && (!strcmp(env, "8") || !strcmp(env, "16"))) lanes = atoi(env);
    if (lanes == 0) {
        char *feat = LLVMGetTargetMachineFeatureString(tm);
        lanes = strstr(feat, "+avx512f") ? 16 : 8;
        LLVMDisposeMessage(feat);
    }
    gemm_jit_tiles(k, lanes);
}

GemmJit *gemm_jit_build(GemmKernels *out, int lanes, unsigned fams, char **ir, char *err,
                        size_t errlen) {
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    *ir = NULL;
    double t0 = now_ms();

    LLVMTargetMachineRef tm = host_tm(err, errlen);
    if (!tm) return NULL;
    memset(out, 0, sizeof *out);
    pick_tiles(tm, lanes, out);
    Gen g = {.ctx = LLVMContextCreate()};
    g.mod = LLVMModuleCreateWithNameInContext("tt_gemm", g.ctx);
    g.b = LLVMCreateBuilderInContext(g.ctx);
    tt_llvm_set_target(g.mod, tm);
    gen_module(&g, out, fams);
    LLVMDisposeBuilder(g.b);

    GemmJit *j = NULL;
    char *key = NULL, *msg = NULL;
    if (LLVMVerifyModule(g.mod, LLVMReturnStatusAction, &msg)) {
        snprintf(err, errlen, "gemm jit: invalid IR: %s", msg);
        LLVMDisposeMessage(msg);
        goto done;
    }
    LLVMDisposeMessage(msg);
    char *text = LLVMPrintModuleToString(g.mod);
    *ir = strdup(text);
    LLVMDisposeMessage(text);
    /* The IR is generated even on a hit: its hash is the part of the key
     * that changes with the generator. */
    key = *ir ? cache_key(tm, *ir) : NULL;
    const char *dbg = getenv("TT_GEMM_DEBUG");
    if (dbg) fprintf(stderr, "gemm jit: IR + key %.1f ms\n", now_ms() - t0);

    j = load_cached(key, out, fams);
    if (!j) {
        LLVMMemoryBufferRef obj = compile(g.mod, tm, err, errlen);
        if (!obj) goto done;
        /* Cache only an object that linked and defined every kernel; the JIT
         * takes the buffer, so keep a copy of the bytes to store. */
        size_t len = LLVMGetBufferSize(obj);
        void *bytes = key ? malloc(len ? len : 1) : NULL;
        if (bytes) memcpy(bytes, LLVMGetBufferStart(obj), len);
        j = load_object(obj, out, fams, err, errlen);
        if (j && bytes) objcache_store(key, bytes, len);
        free(bytes);
    }
    if (dbg && j)
        fprintf(stderr, "gemm jit: %s, total %.1f ms\n", j->cached ? "cached object" : "compiled",
                now_ms() - t0);

done:
    free(key);
    LLVMDisposeModule(g.mod);
    LLVMContextDispose(g.ctx);
    LLVMDisposeTargetMachine(tm);
    if (!j) {
        free(*ir);
        *ir = NULL;
    }
    return j;
}

bool gemm_jit_from_cache(const GemmJit *j) {
    return j && j->cached;
}

void gemm_jit_free(GemmJit *j) {
    if (!j) return;
    LLVMOrcDisposeLLJIT(j->jit);
    free(j);
}

void gemm_jit_host(GemmHost *h) {
    char *cpu = LLVMGetHostCPUName(), *feat = LLVMGetHostCPUFeatures();
    snprintf(h->cpu, sizeof h->cpu, "%s", cpu ? cpu : "?");
    h->features = feat ? objcache_hash(feat, strlen(feat)) : 0;
    h->avx512 = feat && strstr(feat, "+avx512f");
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(feat);
}
