/* codegen.c - loop IR -> LLVM IR through the LLVM C API.
 *
 * Each kernel becomes an internal function; loops are bottom-tested counted
 * loops over an i64 induction variable (every loop of the IR runs at least
 * twice), the shape LLVM's vectorizer expects. Locals are entry-block
 * allocas that SROA turns into registers. Float adds, subs and muls carry
 * the `contract` fast-math flag, so multiply-adds become FMAs; nothing else
 * is relaxed, so results stay within the op table's tolerances.
 *
 * Exact semantics, matching backend/naive/kernels_*.c:
 *   int add/sub/mul/neg   plain (wrapping) instructions, never nsw
 *   int div               b == 0 -> 0; b == -1 -> 0 - a (INT_MIN / -1 wraps);
 *                         the divisor is replaced by 1 in those cases, so
 *                         sdiv never sees 0 or -1
 *   f32 max/min           NaN if either is NaN, else a > b ? a : b
 *   float -> int          llvm.fptosi.sat (truncates, saturates, NaN -> 0);
 *                         to i8 as a clamp in float, NaN -> 0, then fptosi
 *   exp log sin cos pow   llvm.* intrinsics (lowered to libm calls)
 *   tanh                  inline, a rational function (cg_tanh: vectorizable)
 *   sigmoid               e = exp(-|x|); x >= 0 ? 1/(1+e) : e/(1+e)
 *   round                 llvm.roundeven (half to even, as nearbyintf)
 * Index arithmetic (i64, never negative) uses nsw adds and muls, udiv/urem.
 *
 * An index check (LS_CHECK) is one unsigned compare (i < 0 wraps to a large
 * value) and a branch, marked unlikely, to a block that stores
 * i + 2^31 + 1 (never 0, as indices are i32) into the node's status word
 * with an atomic compare-and-swap from 0: the first failure recorded wins,
 * also when iterations run on several threads.
 */
#include "codegen.h"
#include "ksig.h"
#include "llvm_host.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/DebugInfo.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Cg {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    const LpProg *p;
    LLVMTypeRef ty[LT__COUNT], tptr, tvoid;
    LLVMValueRef fn;
    LLVMValueRef *bufptr;   /* per buffer, loaded at kernel entry */
    LLVMValueRef *wordptr;  /* per status word the kernel checks, loaded likewise */
    const struct KSig *sig; /* the kernel's pointer table (ksig.c) */
    /* per buffer: its alias scope list (scratch buffers, LpBuf.scratch) and
     * the scopes it never aliases (every scratch buffer's but its own);
     * NULL when the program has no scratch buffer */
    LLVMValueRef *scope, *noalias;
    LLVMValueRef *vars;   /* loop variables (phis) by var id */
    LLVMValueRef *locals; /* allocas by local id */
    LLVMValueRef *memo;   /* expression values of the statement being emitted */
    unsigned *stamp, gen;
    LLVMValueRef rt;      /* the runtime context (bufs[ninputs + noutputs + 1]) */
    LLVMValueRef gemm_fn; /* declaration of CG_GEMM_SYMBOL */
    LLVMTypeRef gemm_ty;
    LLVMValueRef ggemm_fn; /* declaration of CG_GEMM_GATHER_SYMBOL */
    LLVMTypeRef ggemm_ty;
    LLVMValueRef qgemm_fn; /* declaration of CG_QGEMM_SYMBOL */
    LLVMTypeRef qgemm_ty;
    const LpKernel *kernel; /* the kernel being emitted */
    LLVMValueRef par_fn;    /* declaration of CG_PARALLEL_SYMBOL */
    LLVMTypeRef par_ty;
} Cg;

static bool is_float(LpType t) {
    return t == LT_F32 || t == LT_F64;
}

static int bits(LpType t) {
    switch (t) {
    case LT_BOOL:
        return 1;
    case LT_I8:
        return 8;
    case LT_I32:
        return 32;
    case LT_F32:
    case LT_F64:
    case LT_I64:
    case LT__COUNT:
        break;
    }
    return 64;
}

static LLVMValueRef contract(LLVMValueRef v) {
    if (LLVMIsAInstruction(v) && LLVMCanValueUseFastMathFlags(v))
        LLVMSetFastMathFlags(v, LLVMFastMathAllowContract);
    return v;
}

static LLVMValueRef call_intrinsic(Cg *c, const char *name, LLVMTypeRef *tys, int ntys,
                                   LLVMValueRef *args, int nargs) {
    return tt_llvm_intrinsic(c->mod, c->b, name, tys, (size_t)ntys, args, (unsigned)nargs);
}

static LLVMValueRef call_f32(Cg *c, const char *intrinsic, LLVMValueRef x) {
    LLVMTypeRef t = c->ty[LT_F32];
    return call_intrinsic(c, intrinsic, &t, 1, &x, 1);
}

static LLVMValueRef call_libm(Cg *c, const char *name, LLVMValueRef x) {
    LLVMTypeRef t = c->ty[LT_F32];
    LLVMTypeRef ft = LLVMFunctionType(t, &t, 1, 0);
    LLVMValueRef f = LLVMGetNamedFunction(c->mod, name);
    if (!f) f = LLVMAddFunction(c->mod, name, ft);
    return LLVMBuildCall2(c->b, ft, f, &x, 1, "");
}

static LLVMValueRef fconst(Cg *c, LpType t, double v) {
    return LLVMConstReal(c->ty[t], v);
}
static LLVMValueRef iconst(Cg *c, LpType t, int64_t v) {
    return LLVMConstInt(c->ty[t], (unsigned long long)v, 1);
}

static LLVMValueRef emit(Cg *c, const LpExpr *e);
static void tag_access(Cg *c, LLVMValueRef inst, int buf);

/* exp(x) in f32 without a call, so the vectorizers can widen it (every
 * f32 exp, sigmoid's included: libm's expf kept loops scalar): Cephes' expf. x = n ln2 + r with n =
 * round(x / ln2) (the 1.5 * 2^23 trick rounds to nearest even), ln2 in two parts so r is exact, |r|
 * <= ln2 / 2; exp(r) by a degree-7 polynomial (within 2 ulp); then times 2^n as 2^(n >> 1) * 2^(n -
 * (n >> 1)), both factors normal for n in [-150, 128], so overflow gives inf and the subnormal
 * range rounds as a product does. x is clamped to [-104, 89] first (past those the result is 0 or
 * inf anyway); NaN stays NaN. */
static LLVMValueRef cg_exp_poly(Cg *c, LLVMValueRef x) {
    LLVMBuilderRef b = c->b;
    LLVMTypeRef f = c->ty[LT_F32], i32 = c->ty[LT_I32];
    LLVMValueRef lo = fconst(c, LT_F32, -104.0), hi = fconst(c, LT_F32, 89.0);
    LLVMValueRef xc = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, x, lo, ""), lo, x, "");
    xc = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, xc, hi, ""), hi, xc, "");
    LLVMValueRef magic = fconst(c, LT_F32, 12582912.0); /* 1.5 * 2^23 */
    LLVMValueRef t = LLVMBuildFMul(b, xc, fconst(c, LT_F32, 1.44269504088896341), "");
    LLVMValueRef n = LLVMBuildFSub(b, LLVMBuildFAdd(b, t, magic, ""), magic, "");
    LLVMValueRef r =
        LLVMBuildFSub(b, xc, LLVMBuildFMul(b, n, fconst(c, LT_F32, 0.693359375), ""), "");
    r = LLVMBuildFSub(b, r, LLVMBuildFMul(b, n, fconst(c, LT_F32, -2.12194440e-4), ""), "");
    static const double k[] = {1.9875691500E-4, 1.3981999507E-3, 8.3334519073E-3,
                               4.1665795894E-2, 1.6666665459E-1, 5.0000001201E-1};
    LLVMValueRef pl = fconst(c, LT_F32, k[0]);
    for (int i = 1; i < 6; i++)
        pl = LLVMBuildFAdd(b, LLVMBuildFMul(b, pl, r, ""), fconst(c, LT_F32, k[i]), "");
    pl = LLVMBuildFMul(b, pl, LLVMBuildFMul(b, r, r, ""), "");
    pl = LLVMBuildFAdd(b, LLVMBuildFAdd(b, pl, r, ""), fconst(c, LT_F32, 1), "");
    LLVMValueRef ni = LLVMBuildFPToSI(b, n, i32, "");
    LLVMValueRef n1 = LLVMBuildAShr(b, ni, LLVMConstInt(i32, 1, 0), "");
    LLVMValueRef n2 = LLVMBuildSub(b, ni, n1, "");
    LLVMValueRef bias = LLVMConstInt(i32, 127, 0), sh = LLVMConstInt(i32, 23, 0);
    LLVMValueRef s1 =
        LLVMBuildBitCast(b, LLVMBuildShl(b, LLVMBuildAdd(b, n1, bias, ""), sh, ""), f, "");
    LLVMValueRef s2 =
        LLVMBuildBitCast(b, LLVMBuildShl(b, LLVMBuildAdd(b, n2, bias, ""), sh, ""), f, "");
    LLVMValueRef y = LLVMBuildFMul(b, LLVMBuildFMul(b, pl, s1, ""), s2, "exp");
    return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealUNO, x, x, ""), x, y, "");
}

/* tanh(x) in f32 without a call, so the vectorizers can widen it (GELU's
 * tanh was a libm call per element, the slowest kernel of a TinyGPT
 * step): a rational function x P(x^2) / Q(x^2) of degrees 13 and 6
 * (Eigen's generic_fast_tanh_float) on x clamped to [-7.9053, 7.9053],
 * where it reaches +-1 in f32; below 0.0004 in magnitude tanh(x) is x to
 * f32 precision and x is returned. One division and 11 multiply-adds: the
 * form before (Cephes' tanhf, a polynomial below 0.625 and 1 - 2 / (exp(2x)
 * + 1) above, both computed and one selected) took an exp and a division
 * more. Within 3e-7 relative of tanh in double over f32 (measured on 2.2M
 * points from 1e-30 to 10, tests/jit/test_trips.c); NaN stays NaN. */
static LLVMValueRef cg_tanh(Cg *c, LLVMValueRef x) {
    LLVMBuilderRef b = c->b;
    static const double alpha[] = {
        -2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
        1.48572235717979e-05,  6.37261928875436e-04, 4.89352455891786e-03};
    static const double beta[] = {1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
                                  4.89352518554385e-03};
    LLVMValueRef lim = fconst(c, LT_F32, 7.90531110763549805);
    LLVMValueRef args[2] = {x, lim};
    LLVMTypeRef f = c->ty[LT_F32];
    LLVMValueRef xc = call_intrinsic(c, "llvm.minnum", &f, 1, args, 2);
    args[0] = xc;
    args[1] = LLVMBuildFNeg(b, lim, "");
    xc = call_intrinsic(c, "llvm.maxnum", &f, 1, args, 2);
    LLVMValueRef z = LLVMBuildFMul(b, xc, xc, "");
    LLVMValueRef p = fconst(c, LT_F32, alpha[0]);
    for (int i = 1; i < 7; i++)
        p = LLVMBuildFAdd(b, LLVMBuildFMul(b, p, z, ""), fconst(c, LT_F32, alpha[i]), "");
    LLVMValueRef q = fconst(c, LT_F32, beta[0]);
    for (int i = 1; i < 4; i++)
        q = LLVMBuildFAdd(b, LLVMBuildFMul(b, q, z, ""), fconst(c, LT_F32, beta[i]), "");
    LLVMValueRef r = LLVMBuildFDiv(b, LLVMBuildFMul(b, xc, p, ""), q, "");
    LLVMValueRef ax = call_f32(c, "llvm.fabs", x);
    /* tiny x (and NaN: the comparison is false for it, so x) is x */
    LLVMValueRef big = LLVMBuildFCmp(b, LLVMRealOGE, ax, fconst(c, LT_F32, 0.0004), "");
    return LLVMBuildSelect(b, big, r, x, "tanh");
}

static LLVMValueRef emit_un(Cg *c, const LpExpr *e) {
    LLVMBuilderRef b = c->b;
    LLVMValueRef x = emit(c, e->a);
    LpType t = e->ty;
    if (!is_float(t)) {
        LLVMValueRef zero = iconst(c, t, 0);
        switch (e->op) {
        case LO_NEG:
            return LLVMBuildSub(b, zero, x, "");
        case LO_ROUND:
            return x;
        case LO_RELU:
            return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSGT, x, zero, ""), x, zero, "");
        case LO_ABS:
            return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, x, zero, ""),
                                   LLVMBuildSub(b, zero, x, ""), x, "");
        case LO_RSQRT: /* OPF_FLOAT: the builder casts ints to f32 */
        case LO_EXP:
        case LO_TANH:
        case LO_SIGMOID:
#define OP(NAME, name, arity, flags, form, ...) OP_CASES_UNLESS_FORM(form, unary, LO_##NAME)
#include "ops.def"
#undef OP
        case LO_MOD:
        case LO_AND:
        case LO_OR:
        case LO__COUNT:
            break;
        }
        TT_UNREACHABLE();
    }
    if (t == LT_F64 && e->op == LO_ROUND) { /* the quantization ops round in double */
        LLVMTypeRef ty = c->ty[t];
        return call_intrinsic(c, "llvm.roundeven", &ty, 1, &x, 1);
    }
    TT_ASSERT(t == LT_F32);
    /* one call named by the op (ops.def's OPF_INTRINSIC, OPF_LIBM) */
    unsigned flags = (int)e->op < OP__COUNT ? ir_ops[e->op].flags : 0;
    if (flags & (OPF_INTRINSIC | OPF_LIBM)) {
        char fn[64];
        snprintf(fn, sizeof fn, flags & OPF_LIBM ? "%sf" : "llvm.%s", ir_ops[e->op].name);
        return flags & OPF_LIBM ? call_libm(c, fn, x) : call_f32(c, fn, x);
    }
    LLVMValueRef zero = fconst(c, t, 0), one = fconst(c, t, 1);
    switch (e->op) {
    case LO_NEG:
        return LLVMBuildFNeg(b, x, "");
    case LO_RSQRT:
        return LLVMBuildFDiv(b, one, call_f32(c, "llvm.sqrt", x), "");
    case LO_ROUND:
        return call_f32(c, "llvm.roundeven", x);
    case LO_ABS:
        return call_f32(c, "llvm.fabs", x);
    case LO_RELU:
        return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, x, zero, ""), zero, x, "");
    case LO_EXP:
        return cg_exp_poly(c, x);
    case LO_TANH:
        return cg_tanh(c, x);
    case LO_SIGMOID: {
        LLVMValueRef ex = cg_exp_poly(c, LLVMBuildFNeg(b, call_f32(c, "llvm.fabs", x), ""));
        LLVMValueRef d = contract(LLVMBuildFAdd(b, one, ex, ""));
        LLVMValueRef pos = LLVMBuildFDiv(b, one, d, ""), neg = LLVMBuildFDiv(b, ex, d, "");
        return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGE, x, zero, ""), pos, neg, "");
    }
#define OP(NAME, name, arity, flags, form, ...) OP_CASES_UNLESS_FORM(form, unary, LO_##NAME)
#include "ops.def"
#undef OP
    case LO_MOD:
    case LO_AND:
    case LO_OR:
    case LO__COUNT:
        break;
    }
    TT_UNREACHABLE();
}

/* An exact value (a recomputed node's) may contract inside itself but not
 * into its user: an FMA needs the contract flag on the multiply too. */
static LLVMValueRef exact_or_contract(const LpExpr *e, LLVMValueRef v) {
    return e->exact ? v : contract(v);
}

static LLVMValueRef emit_bin(Cg *c, const LpExpr *e) {
    LLVMBuilderRef b = c->b;
    LLVMValueRef x = emit(c, e->a), y = emit(c, e->b);
    LpType t = e->a->ty;
    if (t == LT_BOOL) {
        if (e->op == LO_AND) return LLVMBuildAnd(b, x, y, "");
        if (e->op == LO_OR) return LLVMBuildOr(b, x, y, "");
    }
    if (is_float(t)) {
        static const LLVMRealPredicate fp[] = {LLVMRealOEQ, LLVMRealUNE, LLVMRealOLT,
                                               LLVMRealOLE, LLVMRealOGT, LLVMRealOGE};
        switch (e->op) {
        case LO_ADD:
            return exact_or_contract(e, LLVMBuildFAdd(b, x, y, ""));
        case LO_SUB:
            return exact_or_contract(e, LLVMBuildFSub(b, x, y, ""));
        case LO_MUL:
            return exact_or_contract(e, LLVMBuildFMul(b, x, y, ""));
        case LO_DIV:
            return LLVMBuildFDiv(b, x, y, "");
        case LO_POW: {
            LLVMValueRef args[2] = {x, y};
            LLVMTypeRef ty = c->ty[t];
            return call_intrinsic(c, "llvm.pow", &ty, 1, args, 2);
        }
        case LO_MAX:
        case LO_MIN: { /* NaN if either is NaN, else the larger (smaller) */
            LLVMValueRef r = LLVMBuildSelect(
                b, LLVMBuildFCmp(b, e->op == LO_MAX ? LLVMRealOGT : LLVMRealOLT, x, y, ""), x, y,
                "");
            r = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealUNO, y, y, ""), y, r, "");
            return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealUNO, x, x, ""), x, r, "");
        }
        case LO_EQ:
        case LO_NE:
        case LO_LT:
        case LO_LE:
        case LO_GT:
        case LO_GE:
            return LLVMBuildFCmp(b, fp[e->op - LO_EQ], x, y, "");
        case LO_MOD: /* i64 and bool only */
        case LO_AND:
        case LO_OR:
        case LO__COUNT:
#define OP(NAME, name, arity, flags, form, ...) OP_CASES_UNLESS_FORM(form, binary, LO_##NAME)
#include "ops.def"
#undef OP
            break;
        }
        TT_UNREACHABLE();
    }
    static const LLVMIntPredicate ip[] = {LLVMIntEQ,  LLVMIntNE,  LLVMIntSLT,
                                          LLVMIntSLE, LLVMIntSGT, LLVMIntSGE};
    bool idx = t == LT_I64; /* index arithmetic: non-negative, no overflow */
    switch (e->op) {
    case LO_ADD:
        return idx ? LLVMBuildNSWAdd(b, x, y, "") : LLVMBuildAdd(b, x, y, "");
    case LO_SUB:
        return LLVMBuildSub(b, x, y, "");
    case LO_MUL:
        return idx ? LLVMBuildNSWMul(b, x, y, "") : LLVMBuildMul(b, x, y, "");
    case LO_MOD:
        TT_ASSERT(idx);
        return LLVMBuildURem(b, x, y, "");
    case LO_DIV: {
        if (idx) return LLVMBuildUDiv(b, x, y, "");
        LLVMValueRef zero = iconst(c, t, 0), m1 = iconst(c, t, -1);
        LLVMValueRef is0 = LLVMBuildICmp(b, LLVMIntEQ, y, zero, "");
        LLVMValueRef ism1 = LLVMBuildICmp(b, LLVMIntEQ, y, m1, "");
        LLVMValueRef safe =
            LLVMBuildSelect(b, LLVMBuildOr(b, is0, ism1, ""), iconst(c, t, 1), y, "");
        LLVMValueRef q = LLVMBuildSDiv(b, x, safe, "");
        q = LLVMBuildSelect(b, ism1, LLVMBuildSub(b, zero, x, ""), q, "");
        return LLVMBuildSelect(b, is0, zero, q, "");
    }
    case LO_MAX:
        return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSGT, x, y, ""), x, y, "");
    case LO_MIN:
        return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, x, y, ""), x, y, "");
    case LO_EQ:
    case LO_NE:
    case LO_LT:
    case LO_LE:
    case LO_GT:
    case LO_GE:
        return LLVMBuildICmp(b, ip[e->op - LO_EQ], x, y, "");
    case LO_POW: /* OPF_FLOAT */
    case LO_AND: /* bool, above */
    case LO_OR:
    case LO__COUNT:
#define OP(NAME, name, arity, flags, form, ...) OP_CASES_UNLESS_FORM(form, binary, LO_##NAME)
#include "ops.def"
#undef OP
        break;
    }
    TT_UNREACHABLE();
}

static LLVMValueRef emit_cast(Cg *c, const LpExpr *e) {
    LLVMBuilderRef b = c->b;
    LLVMValueRef x = emit(c, e->a);
    LpType from = e->a->ty, to = e->ty;
    LLVMTypeRef tt = c->ty[to];
    if (from == to) return x;
    if (is_float(from) && is_float(to))
        return to == LT_F64 ? LLVMBuildFPExt(b, x, tt, "") : LLVMBuildFPTrunc(b, x, tt, "");
    if (is_float(from) && to == LT_I8) {
        /* The same values as llvm.fptosi.sat, which the x86 backend
         * scalarizes for vectors of i8 (a max, min, convert and insert per
         * element: most of a quantize or requantize loop). Clamping to
         * [-128, 127] in float first commutes with the truncation (it is
         * monotone and keeps integers); NaN goes to 0 by a select (fptosi
         * of NaN is poison); the in-range conversion is then plain. */
        int64_t hi = INT8_MAX;
        LLVMTypeRef ft = c->ty[from];
        LLVMValueRef lo_v = fconst(c, from, (double)(-hi - 1)), hi_v = fconst(c, from, (double)hi);
        LLVMValueRef m =
            LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, x, lo_v, ""), lo_v, x, "");
        m = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOGT, m, hi_v, ""), hi_v, m, "");
        m = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealUNO, x, x, ""), LLVMConstNull(ft), m, "");
        return LLVMBuildTrunc(b, LLVMBuildFPToSI(b, m, c->ty[LT_I32], ""), tt, "");
    }
    if (is_float(from)) { /* truncate toward zero, saturate, NaN -> 0 */
        LLVMTypeRef tys[2] = {tt, c->ty[from]};
        return call_intrinsic(c, "llvm.fptosi.sat", tys, 2, &x, 1);
    }
    if (is_float(to))
        return from == LT_BOOL ? LLVMBuildUIToFP(b, x, tt, "") : LLVMBuildSIToFP(b, x, tt, "");
    if (from == LT_BOOL) return LLVMBuildZExt(b, x, tt, "");
    if (bits(to) > bits(from)) return LLVMBuildSExt(b, x, tt, "");
    return LLVMBuildTrunc(b, x, tt, "");
}

static LLVMValueRef emit(Cg *c, const LpExpr *e) {
    if (c->stamp[e->id] == c->gen) return c->memo[e->id];
    LLVMValueRef v = NULL;
    switch (e->kind) {
    case LE_CONST:
        v = is_float(e->ty) ? fconst(c, e->ty, e->c.f) : iconst(c, e->ty, e->c.i);
        break;
    case LE_VAR:
        v = c->vars[e->var];
        break;
    case LE_LOCAL:
        v = LLVMBuildLoad2(c->b, c->ty[e->ty], c->locals[e->var], "");
        break;
    case LE_LOAD: {
        LLVMValueRef i = emit(c, e->a);
        LLVMTypeRef et = c->ty[e->ty];
        LLVMValueRef ptr = LLVMBuildInBoundsGEP2(c->b, et, c->bufptr[e->buf], &i, 1, "");
        v = LLVMBuildLoad2(c->b, et, ptr, "");
        tag_access(c, v, e->buf);
        break;
    }
    case LE_UN:
        v = emit_un(c, e);
        break;
    case LE_BIN:
        v = emit_bin(c, e);
        break;
    case LE_SELECT: {
        LLVMValueRef cond = emit(c, e->a);
        v = LLVMBuildSelect(c->b, cond, emit(c, e->b), emit(c, e->cc), "");
        break;
    }
    case LE_CAST:
        v = emit_cast(c, e);
        break;
    }
    c->stamp[e->id] = c->gen;
    c->memo[e->id] = v;
    return v;
}

/* f32 pointer to element off of buffer buf */
static LLVMValueRef elem_ptr(Cg *c, int buf, const LpExpr *off) {
    LLVMValueRef i = emit(c, off);
    return LLVMBuildInBoundsGEP2(c->b, c->ty[LT_F32], c->bufptr[buf], &i, 1, "");
}

static LLVMValueRef outline_loop(Cg *c, const LpStmt *s, const char *what);

/* void CG_GEMM_SYMBOL(rt, A, lda, ta, B, ldb, tb, C, ldc, M, N, K, epi, bufs,
 * acc): epi, when not null, the outlined epilogue loop, called with bufs on
 * the rows of C as the GEMM finishes them; acc: C += A B. */
static void emit_qgemm(Cg *c, const LpGemm *g, LLVMValueRef efn);
static void emit_gather_gemm(Cg *c, const LpGemm *g, LLVMValueRef efn);

static void emit_gemm(Cg *c, const LpGemm *g, const LpStmt *epi) {
    LLVMTypeRef i64 = c->ty[LT_I64], i32 = c->ty[LT_I32], ptr = c->tptr;
    LLVMValueRef efn = epi ? outline_loop(c, epi, "epi") : LLVMConstNull(ptr);
    c->gen++; /* nothing emitted in the epilogue's function is reused here */
    if (g->q) {
        emit_qgemm(c, g, efn);
        return;
    }
    if (g->gather) {
        emit_gather_gemm(c, g, efn);
        return;
    }
    if (!c->gemm_fn) {
        LLVMTypeRef params[15] = {ptr, ptr, i64, i32, ptr, i64, i32, ptr,
                                  i64, i64, i64, i64, ptr, ptr, i32};
        c->gemm_ty = LLVMFunctionType(c->tvoid, params, 15, 0);
        c->gemm_fn = LLVMAddFunction(c->mod, CG_GEMM_SYMBOL, c->gemm_ty);
        unsigned kind = LLVMGetEnumAttributeKindForName("nounwind", 8);
        LLVMAddAttributeAtIndex(c->gemm_fn, LLVMAttributeFunctionIndex,
                                LLVMCreateEnumAttribute(c->ctx, kind, 0));
    }
    LLVMValueRef args[15] = {
        c->rt,
        elem_ptr(c, g->a, g->aoff),
        LLVMConstInt(i64, (unsigned long long)g->lda, 0),
        LLVMConstInt(i32, g->ta, 0),
        elem_ptr(c, g->b, g->boff),
        LLVMConstInt(i64, (unsigned long long)g->ldb, 0),
        LLVMConstInt(i32, g->tb, 0),
        elem_ptr(c, g->c, g->coff),
        LLVMConstInt(i64, (unsigned long long)g->ldc, 0),
        LLVMConstInt(i64, (unsigned long long)g->m, 0),
        LLVMConstInt(i64, (unsigned long long)g->n, 0),
        LLVMConstInt(i64, (unsigned long long)g->k, 0),
        efn,
        LLVMGetParam(c->fn, 0),
        LLVMConstInt(i32, g->acc, 0),
    };
    LLVMBuildCall2(c->b, c->gemm_ty, c->gemm_fn, args, 15, "");
}

/* CG_GEMM_GATHER_SYMBOL: the gather's geometry is a private constant
 * array of the module. */
static void emit_gather_gemm(Cg *c, const LpGemm *g, LLVMValueRef efn) {
    LLVMTypeRef i64 = c->ty[LT_I64], i32 = c->ty[LT_I32], ptr = c->tptr;
    if (!c->ggemm_fn) {
        LLVMTypeRef params[14] = {ptr, ptr, i64, i32, ptr, ptr, ptr,
                                  i64, i64, i64, i64, ptr, ptr, i32};
        c->ggemm_ty = LLVMFunctionType(c->tvoid, params, 14, 0);
        c->ggemm_fn = LLVMAddFunction(c->mod, CG_GEMM_GATHER_SYMBOL, c->ggemm_ty);
        unsigned kind = LLVMGetEnumAttributeKindForName("nounwind", 8);
        LLVMAddAttributeAtIndex(c->ggemm_fn, LLVMAttributeFunctionIndex,
                                LLVMCreateEnumAttribute(c->ctx, kind, 0));
    }
    const int64_t geo[12] = {g->rdim[0], g->rdim[1], g->rstr[0], g->rstr[1],
                             g->rstr[2], g->cdim[0], g->cdim[1], g->cstr[0],
                             g->cstr[1], g->cstr[2], g->ocols,   g->ostride};
    LLVMValueRef vals[12];
    for (int i = 0; i < 12; i++) vals[i] = LLVMConstInt(i64, (unsigned long long)geo[i], 1);
    LLVMTypeRef aty = LLVMArrayType2(i64, 12);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, aty, "gather_geo");
    LLVMSetInitializer(gv, LLVMConstArray2(i64, vals, 12));
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
    LLVMValueRef args[14] = {
        c->rt,
        elem_ptr(c, g->a, g->aoff),
        LLVMConstInt(i64, (unsigned long long)g->lda, 0),
        LLVMConstInt(i32, g->ta, 0),
        elem_ptr(c, g->b, g->boff),
        gv,
        elem_ptr(c, g->c, g->coff),
        LLVMConstInt(i64, (unsigned long long)g->ldc, 0),
        LLVMConstInt(i64, (unsigned long long)g->m, 0),
        LLVMConstInt(i64, (unsigned long long)g->n, 0),
        LLVMConstInt(i64, (unsigned long long)g->k, 0),
        efn,
        LLVMGetParam(c->fn, 0),
        LLVMConstInt(i32, g->acc, 0),
    };
    LLVMBuildCall2(c->b, c->ggemm_ty, c->ggemm_fn, args, 14, "");
}

/* element off of buffer buf, of type t */
static LLVMValueRef typed_ptr(Cg *c, LpType t, int buf, const LpExpr *off) {
    LLVMValueRef i = emit(c, off);
    return LLVMBuildInBoundsGEP2(c->b, c->ty[t], c->bufptr[buf], &i, 1, "");
}

/* CG_QGEMM_SYMBOL(rt, A, lda, B, ldb, C, ldc, M, N, K, epi, bufs) */
static void emit_qgemm(Cg *c, const LpGemm *g, LLVMValueRef efn) {
    LLVMTypeRef i64 = c->ty[LT_I64], ptr = c->tptr;
    if (!c->qgemm_fn) {
        LLVMTypeRef params[12] = {ptr, ptr, i64, ptr, i64, ptr, i64, i64, i64, i64, ptr, ptr};
        c->qgemm_ty = LLVMFunctionType(c->tvoid, params, 12, 0);
        c->qgemm_fn = LLVMAddFunction(c->mod, CG_QGEMM_SYMBOL, c->qgemm_ty);
        unsigned kind = LLVMGetEnumAttributeKindForName("nounwind", 8);
        LLVMAddAttributeAtIndex(c->qgemm_fn, LLVMAttributeFunctionIndex,
                                LLVMCreateEnumAttribute(c->ctx, kind, 0));
    }
    LLVMValueRef args[12] = {
        c->rt,
        typed_ptr(c, LT_I8, g->a, g->aoff),
        LLVMConstInt(i64, (unsigned long long)g->lda, 0),
        typed_ptr(c, LT_I8, g->b, g->boff),
        LLVMConstInt(i64, (unsigned long long)g->ldb, 0),
        typed_ptr(c, LT_I32, g->c, g->coff),
        LLVMConstInt(i64, (unsigned long long)g->ldc, 0),
        LLVMConstInt(i64, (unsigned long long)g->m, 0),
        LLVMConstInt(i64, (unsigned long long)g->n, 0),
        LLVMConstInt(i64, (unsigned long long)g->k, 0),
        efn,
        LLVMGetParam(c->fn, 0),
    };
    LLVMBuildCall2(c->b, c->qgemm_ty, c->qgemm_fn, args, 12, "");
}

static void emit_block(Cg *c, const LpStmt *s);

/* Self-referencing metadata node !{!self, ops...}: how alias scopes and
 * their domain are made unique through the C API (no distinct nodes). */
static LLVMMetadataRef self_node(Cg *c, LLVMMetadataRef *ops, int n) {
    LLVMMetadataRef all[3], tmp = LLVMTemporaryMDNode(c->ctx, NULL, 0);
    all[0] = tmp;
    for (int i = 0; i < n; i++) all[i + 1] = ops[i];
    LLVMMetadataRef id = LLVMMDNodeInContext2(c->ctx, all, (size_t)n + 1);
    LLVMMetadataReplaceAllUsesWith(tmp, id);
    return id;
}

/* One scope per scratch buffer (LpBuf.scratch), in one domain: an access
 * to buffer b is in b's scope (if scratch) and aliases no other scratch
 * buffer. Distinct buffers never overlap (the JIT's contract); a scratch
 * buffer is live in its kernel only, so the memory planner gives it bytes
 * no other buffer of the kernel has. */
static void make_scopes(Cg *c) {
    const LpProg *p = c->p;
    int nscratch = 0;
    for (int i = 0; i < p->nbufs; i++) nscratch += p->bufs[i].scratch;
    if (nscratch == 0) return;
    c->scope = tt_xcalloc((size_t)p->nbufs, sizeof *c->scope);
    c->noalias = tt_xcalloc((size_t)p->nbufs, sizeof *c->noalias);
    LLVMMetadataRef name = LLVMMDStringInContext2(c->ctx, "tt.scratch", 10);
    LLVMMetadataRef dom = self_node(c, &name, 1);
    LLVMMetadataRef *sc = tt_xcalloc((size_t)p->nbufs, sizeof *sc);
    LLVMMetadataRef *list = tt_xcalloc((size_t)nscratch + 1, sizeof *list);
    for (int i = 0; i < p->nbufs; i++)
        if (p->bufs[i].scratch) {
            LLVMMetadataRef ops[2] = {
                dom, LLVMMDStringInContext2(c->ctx, p->bufs[i].name, strlen(p->bufs[i].name))};
            sc[i] = self_node(c, ops, 2);
            c->scope[i] = LLVMMetadataAsValue(c->ctx, LLVMMDNodeInContext2(c->ctx, &sc[i], 1));
        }
    for (int i = 0; i < p->nbufs; i++) {
        int n = 0;
        for (int j = 0; j < p->nbufs; j++)
            if (j != i && sc[j]) list[n++] = sc[j];
        if (n > 0)
            c->noalias[i] =
                LLVMMetadataAsValue(c->ctx, LLVMMDNodeInContext2(c->ctx, list, (size_t)n));
    }
    free(sc);
    free(list);
}

static void tag_access(Cg *c, LLVMValueRef inst, int buf) {
    if (!c->scope) return;
    if (c->scope[buf])
        LLVMSetMetadata(inst, LLVMGetMDKindIDInContext(c->ctx, "alias.scope", 11), c->scope[buf]);
    if (c->noalias[buf])
        LLVMSetMetadata(inst, LLVMGetMDKindIDInContext(c->ctx, "noalias", 7), c->noalias[buf]);
}

/* Marks the loop whose latch branch is br with llvm.loop.vectorize.enable:
 * a distinct, self-referencing loop ID !{!id, !{"llvm.loop.vectorize.enable",
 * i1 true}} (the temporary node is replaced by the node itself). */
static LLVMMetadataRef loop_hint(Cg *c, const char *name, LLVMValueRef v) {
    LLVMMetadataRef hint[2] = {LLVMMDStringInContext2(c->ctx, name, strlen(name)),
                               LLVMValueAsMetadata(v)};
    return LLVMMDNodeInContext2(c->ctx, hint, 2);
}

/* With the program's vector schedule (vtune.h) the width and interleave
 * are given too: llvm.loop.vectorize.width, llvm.loop.interleave.count. */
static void mark_vectorize(Cg *c, LLVMValueRef br) {
    LLVMTypeRef i32 = LLVMInt32TypeInContext(c->ctx);
    LLVMMetadataRef tmp = LLVMTemporaryMDNode(c->ctx, NULL, 0);
    LLVMMetadataRef ops[4] = {
        tmp, loop_hint(c, "llvm.loop.vectorize.enable", LLVMConstInt(c->ty[LT_BOOL], 1, 0))};
    unsigned n = 2;
    if (c->p->vec_width > 0)
        ops[n++] = loop_hint(c, "llvm.loop.vectorize.width",
                             LLVMConstInt(i32, (unsigned)c->p->vec_width, 0));
    if (c->p->vec_interleave > 0)
        ops[n++] = loop_hint(c, "llvm.loop.interleave.count",
                             LLVMConstInt(i32, (unsigned)c->p->vec_interleave, 0));
    LLVMMetadataRef id = LLVMMDNodeInContext2(c->ctx, ops, n);
    LLVMMetadataReplaceAllUsesWith(tmp, id);
    LLVMSetMetadata(br, LLVMGetMDKindIDInContext(c->ctx, "llvm.loop", 9),
                    LLVMMetadataAsValue(c->ctx, id));
}

/* `for v in lo..hi { body }`, bottom-tested (lo < hi). */
static void emit_loop(Cg *c, const LpStmt *s, LLVMValueRef lo, LLVMValueRef hi) {
    LLVMBuilderRef b = c->b;
    LLVMTypeRef i64 = c->ty[LT_I64];
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(b);
    char name[24];
    snprintf(name, sizeof name, "for.i%d", s->var);
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, name);
    LLVMBuildBr(b, body);
    LLVMPositionBuilderAtEnd(b, body);
    snprintf(name, sizeof name, "i%d", s->var);
    LLVMValueRef phi = LLVMBuildPhi(b, i64, name);
    c->vars[s->var] = phi;
    emit_block(c, s->body);
    LLVMValueRef next = LLVMBuildNSWAdd(b, phi, LLVMConstInt(i64, 1, 0), "");
    LLVMSetNUW(next, 1);
    LLVMValueRef more = LLVMBuildICmp(b, LLVMIntULT, next, hi, "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(b);
    snprintf(name, sizeof name, "end.i%d", s->var);
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, name);
    LLVMValueRef br = LLVMBuildCondBr(b, more, body, exit);
    if (s->vectorize) mark_vectorize(c, br);
    LLVMValueRef inc[2] = {lo, next};
    LLVMBasicBlockRef from[2] = {pre, latch};
    LLVMAddIncoming(phi, inc, from, 2);
    LLVMPositionBuilderAtEnd(b, exit);
}

/* A loop with a runtime trip count: n = min(max(trips, 0), extent) once on
 * entry, skipped when n == 0 (emit_loop runs its body at least once). */
static void emit_loop_trips(Cg *c, const LpStmt *s) {
    LLVMBuilderRef b = c->b;
    LLVMTypeRef i64 = c->ty[LT_I64];
    LLVMValueRef zero = LLVMConstInt(i64, 0, 0);
    LLVMValueRef ext = LLVMConstInt(i64, (unsigned long long)s->extent, 0);
    LLVMValueRef n = emit(c, s->trips);
    n = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, n, zero, ""), zero, n, "");
    n = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSGT, n, ext, ""), ext, n, "trips");
    LLVMBasicBlockRef run = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "trips.run");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "trips.done");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSGT, n, zero, ""), run, done);
    LLVMPositionBuilderAtEnd(b, run);
    emit_loop(c, s, zero, n);
    LLVMBuildBr(b, done);
    LLVMPositionBuilderAtEnd(b, done);
}

static void add_attr(Cg *c, LLVMValueRef fn, const char *name);
static void alloc_locals(Cg *c, const LpKernel *k);
static void load_bufptrs(Cg *c, LLVMValueRef bufs);

/* The iterations of a top-level loop of the kernel as a function of their
 * own, `void kN_op.WHAT.iV(void **tbl, i64 lo, i64 hi)` (own locals and
 * buffer pointers, from the kernel's table), for the thread pool (a
 * parallel loop) or the GEMM (an epilogue). */
static LLVMValueRef outline_loop(Cg *c, const LpStmt *s, const char *what) {
    const LpKernel *k = c->kernel;
    LLVMTypeRef i64 = c->ty[LT_I64];
    LLVMTypeRef bparams[3] = {c->tptr, i64, i64};
    char name[64];
    snprintf(name, sizeof name, "%s.%s.i%d", k->name, what, s->var);
    LLVMTypeRef bty = LLVMFunctionType(c->tvoid, bparams, 3, 0);
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, bty);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    add_attr(c, fn, "nounwind");
    /* the kernel's state, restored after the body */
    LLVMValueRef kfn = c->fn;
    LLVMBasicBlockRef at = LLVMGetInsertBlock(c->b);
    size_t nb = (size_t)c->p->nbufs, nl = (size_t)k->nlocals, nw = (size_t)c->p->nchecks;
    LLVMValueRef *bp = tt_xmalloc((nb + 1) * sizeof *bp), *lc = tt_xmalloc((nl + 1) * sizeof *lc);
    LLVMValueRef *wp = tt_xmalloc((nw + 1) * sizeof *wp);
    memcpy(bp, c->bufptr, nb * sizeof *bp);
    memcpy(lc, c->locals, nl * sizeof *lc);
    if (nw) memcpy(wp, c->wordptr, nw * sizeof *wp);
    c->fn = fn;
    LLVMValueRef bufs = LLVMGetParam(fn, 0);
    LLVMSetValueName2(bufs, "bufs", 4);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
    alloc_locals(c, k);
    load_bufptrs(c, bufs);
    /* lo < hi is the caller's promise (the bottom-tested loop needs it) */
    emit_loop(c, s, LLVMGetParam(fn, 1), LLVMGetParam(fn, 2));
    LLVMBuildRetVoid(c->b);
    c->fn = kfn;
    memcpy(c->bufptr, bp, nb * sizeof *bp);
    memcpy(c->locals, lc, nl * sizeof *lc);
    if (nw) memcpy(c->wordptr, wp, nw * sizeof *wp);
    free(bp);
    free(lc);
    free(wp);
    LLVMPositionBuilderAtEnd(c->b, at);
    return fn;
}

/* A parallel loop: outlined, handed to CG_PARALLEL_SYMBOL to run over
 * 0..extent on s->parallel threads. */
static void emit_parallel(Cg *c, const LpStmt *s) {
    LLVMTypeRef i64 = c->ty[LT_I64], i32 = c->ty[LT_I32];
    LLVMValueRef fn = outline_loop(c, s, "par");
    if (!c->par_fn) {
        LLVMTypeRef params[4] = {c->tptr, c->tptr, i64, i32};
        c->par_ty = LLVMFunctionType(c->tvoid, params, 4, 0);
        c->par_fn = LLVMAddFunction(c->mod, CG_PARALLEL_SYMBOL, c->par_ty);
        add_attr(c, c->par_fn, "nounwind");
    }
    LLVMValueRef args[4] = {fn, LLVMGetParam(c->fn, 0),
                            LLVMConstInt(i64, (unsigned long long)s->extent, 0),
                            LLVMConstInt(i32, (unsigned long long)s->parallel, 0)};
    LLVMBuildCall2(c->b, c->par_ty, c->par_fn, args, 4, "");
}

/* check 0 <= i < n, else status[w] = i + 2^31 + 1 unless already set */
static void emit_check(Cg *c, const LpStmt *s) {
    LLVMBuilderRef b = c->b;
    LLVMTypeRef i64 = c->ty[LT_I64], i1 = c->ty[LT_BOOL];
    LLVMValueRef i = emit(c, s->value);
    LLVMValueRef ok = LLVMBuildICmp(b, LLVMIntULT, i, iconst(c, LT_I64, s->extent), "inrange");
    LLVMValueRef expect[2] = {ok, LLVMConstInt(i1, 1, 0)};
    ok = call_intrinsic(c, "llvm.expect", &i1, 1, expect, 2);
    LLVMBasicBlockRef bad = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "check.fail");
    LLVMBasicBlockRef cont = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "check.ok");
    LLVMBuildCondBr(b, ok, cont, bad);
    LLVMPositionBuilderAtEnd(b, bad);
    LLVMValueRef ptr = c->wordptr[s->check];
    LLVMValueRef word = LLVMBuildAdd(b, i, LLVMConstInt(i64, (1ull << 31) + 1, 0), "");
    LLVMBuildAtomicCmpXchg(b, ptr, LLVMConstInt(i64, 0, 0), word, LLVMAtomicOrderingMonotonic,
                           LLVMAtomicOrderingMonotonic, 0);
    LLVMBuildBr(b, cont);
    LLVMPositionBuilderAtEnd(b, cont);
}

static void emit_block(Cg *c, const LpStmt *s) {
    LLVMBuilderRef b = c->b;
    for (; s; s = s->next) {
        c->gen++; /* values are reused within one statement only */
        switch (s->kind) {
        case LS_LOOP:
            if (s->epilogue) /* run by the GEMM before it (emit_gemm) */
                break;
            if (s->parallel >= 2)
                emit_parallel(c, s);
            else if (s->trips)
                emit_loop_trips(c, s);
            else
                emit_loop(c, s, LLVMConstInt(c->ty[LT_I64], 0, 0),
                          LLVMConstInt(c->ty[LT_I64], (unsigned long long)s->extent, 0));
            break;
        case LS_LOCAL:
        case LS_SET:
            LLVMBuildStore(b, emit(c, s->value), c->locals[s->var]);
            break;
        case LS_GEMM:
            emit_gemm(c, s->gemm,
                      s->next && s->next->kind == LS_LOOP && s->next->epilogue ? s->next : NULL);
            break;
        case LS_STORE: {
            LLVMValueRef i = emit(c, s->index), v = emit(c, s->value);
            LLVMTypeRef et = c->ty[lp_type_of(c->p->bufs[s->buf].dtype)];
            LLVMValueRef ptr = LLVMBuildInBoundsGEP2(b, et, c->bufptr[s->buf], &i, 1, "");
            tag_access(c, LLVMBuildStore(b, v, ptr), s->buf);
            break;
        }
        case LS_CHECK:
            emit_check(c, s);
            break;
        }
    }
}

static void add_attr(Cg *c, LLVMValueRef fn, const char *name) {
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(c->ctx, kind, 0));
}

static void alloc_locals(Cg *c, const LpKernel *k) {
    for (int i = 0; i < k->nlocals; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", i);
        c->locals[i] = LLVMBuildAlloca(c->b, c->ty[k->local_ty[i]], name);
    }
}

/* The pointers of the kernel's table (ksig.h): its buffers, the runtime
 * context, its status words. */
static void load_bufptrs(Cg *c, LLVMValueRef tbl) {
    const KSig *sig = c->sig;
    LLVMBuilderRef b = c->b;
    LLVMTypeRef i64 = c->ty[LT_I64];
    for (int e = 0; e < sig->n; e++) {
        if (sig->kind[e] == KS_RT) continue; /* emit_kernel's */
        LLVMValueRef at = LLVMConstInt(i64, (unsigned long long)e, 0);
        LLVMValueRef pp = LLVMBuildInBoundsGEP2(b, c->tptr, tbl, &at, 1, "");
        char name[16];
        snprintf(name, sizeof name, "%s%d", sig->kind[e] == KS_BUF ? "b" : "w", e);
        LLVMValueRef v = LLVMBuildLoad2(b, c->tptr, pp, name);
        if (sig->kind[e] == KS_BUF)
            c->bufptr[sig->what[e]] = v;
        else
            c->wordptr[sig->what[e]] = v;
    }
}

/* `void kN_op(void **tbl)`: the kernel, its pointers from its table. */
static LLVMValueRef emit_kernel(Cg *c, const LpKernel *k, const KSig *sig, LLVMTypeRef fty) {
    LLVMBuilderRef b = c->b;
    LLVMValueRef fn = LLVMAddFunction(c->mod, k->name, fty);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    add_attr(c, fn, "nounwind");
    c->fn = fn;
    LLVMValueRef tbl = LLVMGetParam(fn, 0);
    LLVMSetValueName2(tbl, "tbl", 3);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
    c->kernel = k;
    c->sig = sig;
    alloc_locals(c, k);
    load_bufptrs(c, tbl);
    c->rt = NULL;
    if (sig->rt_entry >= 0) {
        LLVMValueRef at = LLVMConstInt(c->ty[LT_I64], (unsigned long long)sig->rt_entry, 0);
        LLVMValueRef pp = LLVMBuildInBoundsGEP2(b, c->tptr, tbl, &at, 1, "");
        c->rt = LLVMBuildLoad2(b, c->tptr, pp, "rt");
    }
    emit_block(c, k->body);
    LLVMBuildRetVoid(b);
    return fn;
}

static void set_err(char *err, size_t errlen, const char *what, char *msg) {
    snprintf(err, errlen, "%s: %s", what, msg ? msg : "(no message)");
    if (msg) LLVMDisposeMessage(msg);
}

/* LLVM's diagnostics: errors go to stderr; remarks and warnings (a loop
 * marked vectorize that the vectorizer leaves, say) are not for the user. */
static void diagnostic(LLVMDiagnosticInfoRef di, void *arg) {
    (void)arg;
    if (LLVMGetDiagInfoSeverity(di) != LLVMDSError) return;
    char *msg = LLVMGetDiagInfoDescription(di);
    fprintf(stderr, "jit: LLVM: %s\n", msg);
    LLVMDisposeMessage(msg);
}

/* *v = bufs[k] (loaded once, where first needed: the graph function is
 * one block) */
static void bufs_word(Cg *c, LLVMValueRef bufs, int k, const char *name, LLVMValueRef *v) {
    if (*v) return;
    LLVMValueRef at = LLVMConstInt(c->ty[LT_I64], (unsigned long long)k, 0);
    *v =
        LLVMBuildLoad2(c->b, c->tptr, LLVMBuildInBoundsGEP2(c->b, c->tptr, bufs, &at, 1, ""), name);
}

/* Whether alike kernels share a function (cg_set_share). */
static bool cg_share = true;

void cg_set_share(bool on) {
    cg_share = on;
}

LLVMModuleRef cg_module(LLVMContextRef ctx, const LpProg *p, const char *fname,
                        LLVMTargetMachineRef tm, bool profile, int *nfuncs, char *err,
                        size_t errlen) {
    Cg c = {0};
    c.ctx = ctx;
    c.p = p;
    c.mod = LLVMModuleCreateWithNameInContext(fname, ctx);
    LLVMContextSetDiagnosticHandler(ctx, diagnostic, NULL);
    c.b = LLVMCreateBuilderInContext(ctx);
    c.ty[LT_F32] = LLVMFloatTypeInContext(ctx);
    c.ty[LT_F64] = LLVMDoubleTypeInContext(ctx);
    c.ty[LT_I32] = LLVMInt32TypeInContext(ctx);
    c.ty[LT_I8] = LLVMInt8TypeInContext(ctx);
    c.ty[LT_I64] = LLVMInt64TypeInContext(ctx);
    c.ty[LT_BOOL] = LLVMInt1TypeInContext(ctx);
    c.tptr = LLVMPointerTypeInContext(ctx, 0);
    c.tvoid = LLVMVoidTypeInContext(ctx);
    if (tm) tt_llvm_set_target(c.mod, tm);
    int maxvars = 1, maxlocals = 1;
    for (int i = 0; i < p->nkernels; i++) {
        if (p->kernels[i].nvars > maxvars) maxvars = p->kernels[i].nvars;
        if (p->kernels[i].nlocals > maxlocals) maxlocals = p->kernels[i].nlocals;
    }
    c.bufptr = tt_xcalloc((size_t)p->nbufs + 1, sizeof *c.bufptr);
    make_scopes(&c);
    c.vars = tt_xcalloc((size_t)maxvars, sizeof *c.vars);
    c.locals = tt_xcalloc((size_t)maxlocals, sizeof *c.locals);
    c.memo = tt_xcalloc((size_t)p->nexpr + 1, sizeof *c.memo);
    c.stamp = tt_xcalloc((size_t)p->nexpr + 1, sizeof *c.stamp);

    c.wordptr = tt_xcalloc((size_t)p->nchecks + 1, sizeof *c.wordptr);

    /* one function per distinct kernel (ksig.h); shared ones are not
     * inlined into the graph function, which would copy them back */
    KSig *sig = tt_xcalloc((size_t)p->nkernels + 1, sizeof *sig);
    ks_build_all(sig, p);
    LLVMTypeRef fty = LLVMFunctionType(c.tvoid, &c.tptr, 1, 0);
    LLVMValueRef *kfn = tt_xcalloc((size_t)p->nkernels + 1, sizeof *kfn);
    int *calls = tt_xcalloc((size_t)p->nkernels + 1, sizeof *calls);
    int nfn = 0, maxtbl = 1;
    for (int i = 0; i < p->nkernels; i++) {
        int j = 0;
        while (j < i && !(cg_share && kfn[j] && ks_same(&sig[j], &sig[i]))) j++;
        if (j == i) {
            kfn[i] = emit_kernel(&c, &p->kernels[i], &sig[i], fty);
            nfn++;
        } else {
            kfn[i] = kfn[j];
            if (++calls[j] == 1) add_attr(&c, kfn[j], "noinline");
        }
        if (sig[i].n > maxtbl) maxtbl = sig[i].n;
    }
    if (nfuncs) *nfuncs = nfn;
    free(calls);

    /* the graph function: per kernel call, its table from bufs */
    LLVMBuilderRef b = c.b;
    LLVMTypeRef i64 = c.ty[LT_I64];
    LLVMValueRef main = LLVMAddFunction(c.mod, fname, fty);
    add_attr(&c, main, "nounwind");
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, main, "entry"));
    LLVMValueRef bufs = LLVMGetParam(main, 0);
    LLVMSetValueName2(bufs, "bufs", 4);
    LLVMValueRef tbl =
        LLVMBuildArrayAlloca(b, c.tptr, LLVMConstInt(i64, (unsigned long long)maxtbl, 0), "tbl");
    int at_ws = p->ninputs + p->noutputs;
    LLVMValueRef ws = NULL, rt = NULL, status = NULL;
    LLVMValueRef tick = NULL;
    LLVMTypeRef tick_ty = NULL;
    if (profile) {
        LLVMTypeRef params[2] = {c.tptr, c.ty[LT_I32]};
        tick_ty = LLVMFunctionType(c.tvoid, params, 2, 0);
        tick = LLVMAddFunction(c.mod, CG_TICK_SYMBOL, tick_ty);
        bufs_word(&c, bufs, at_ws + 1, "rt", &rt);
    }
    for (int i = 0; i <= p->nkernels; i++) {
        if (tick) {
            LLVMValueRef args[2] = {rt, LLVMConstInt(c.ty[LT_I32], (unsigned long long)i, 0)};
            LLVMBuildCall2(b, tick_ty, tick, args, 2, "");
        }
        if (i == p->nkernels) break;
        const KSig *k = &sig[i];
        for (int e = 0; e < k->n; e++) {
            LLVMValueRef v;
            if (k->kind[e] == KS_RT) {
                bufs_word(&c, bufs, at_ws + 1, "rt", &rt);
                v = rt;
            } else if (k->kind[e] == KS_WORD) {
                bufs_word(&c, bufs, at_ws + 2, "status", &status);
                LLVMValueRef w = LLVMConstInt(i64, (unsigned long long)k->what[e], 0);
                v = LLVMBuildInBoundsGEP2(b, i64, status, &w, 1, "");
            } else {
                const LpBuf *bf = &p->bufs[k->what[e]];
                if (bf->kind == LB_TEMP) { /* temporaries at workspace + offset */
                    bufs_word(&c, bufs, at_ws, "workspace", &ws);
                    LLVMValueRef off = LLVMConstInt(i64, (unsigned long long)bf->offset, 0);
                    v = LLVMBuildInBoundsGEP2(b, c.ty[LT_I8], ws, &off, 1, bf->name);
                } else {
                    int slot = bf->kind == LB_INPUT ? bf->slot : p->ninputs + bf->slot;
                    LLVMValueRef a = LLVMConstInt(i64, (unsigned long long)slot, 0);
                    v = LLVMBuildLoad2(b, c.tptr, LLVMBuildInBoundsGEP2(b, c.tptr, bufs, &a, 1, ""),
                                       bf->name);
                }
            }
            LLVMValueRef a = LLVMConstInt(i64, (unsigned long long)e, 0);
            LLVMBuildStore(b, v, LLVMBuildInBoundsGEP2(b, c.tptr, tbl, &a, 1, ""));
        }
        LLVMBuildCall2(b, fty, kfn[i], &tbl, 1, "");
    }
    LLVMBuildRetVoid(b);

    for (int i = 0; i < p->nkernels; i++) ks_free(&sig[i]);
    free(sig);
    free(c.wordptr);
    free(kfn);
    free(c.bufptr);
    free(c.scope);
    free(c.noalias);
    free(c.vars);
    free(c.locals);
    free(c.memo);
    free(c.stamp);
    LLVMDisposeBuilder(c.b);
    char *msg = NULL;
    if (LLVMVerifyModule(c.mod, LLVMReturnStatusAction, &msg)) {
        set_err(err, errlen, "jit: invalid LLVM IR (a codegen bug)", msg);
        LLVMDisposeModule(c.mod);
        return NULL;
    }
    if (msg) LLVMDisposeMessage(msg);
    return c.mod;
}

LLVMTargetMachineRef cg_host_machine(int opt_level, char *err, size_t errlen) {
    LLVMCodeGenOptLevel lv = opt_level <= 0   ? LLVMCodeGenLevelNone
                             : opt_level == 1 ? LLVMCodeGenLevelLess
                             : opt_level == 2 ? LLVMCodeGenLevelDefault
                                              : LLVMCodeGenLevelAggressive;
    /* PIC, small code model: objects ORC's JITLink links anywhere, and that
     * the on-disk cache can keep (jit.c) */
    return tt_llvm_host_machine(lv, LLVMRelocPIC, LLVMCodeModelSmall, "jit", err, errlen);
}

bool cg_optimize(LLVMModuleRef m, LLVMTargetMachineRef tm, int opt_level, char *err,
                 size_t errlen) {
    char passes[32];
    snprintf(passes, sizeof passes, "default<O%d>",
             opt_level < 0   ? 0
             : opt_level > 3 ? 3
                             : opt_level);
    LLVMPassBuilderOptionsRef o = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(o, opt_level >= 2);
    LLVMPassBuilderOptionsSetSLPVectorization(o, opt_level >= 2);
    LLVMPassBuilderOptionsSetLoopUnrolling(o, opt_level >= 2);
    LLVMErrorRef e = LLVMRunPasses(m, passes, tm, o);
    LLVMDisposePassBuilderOptions(o);
    if (e) {
        char *msg = LLVMGetErrorMessage(e);
        snprintf(err, errlen, "jit: optimization failed: %s", msg);
        LLVMDisposeErrorMessage(msg);
        return false;
    }
    return true;
}
