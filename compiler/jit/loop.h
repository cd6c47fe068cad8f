/* loop.h - the loop IR: the JIT's second IR, one loop nest per kernel.
 *
 * A LpProg is what jit_run compiles for one graph: a list of buffers (the
 * graph's inputs, its outputs, and temporaries at fixed offsets of one
 * workspace) and a list of kernels run in order. A kernel is a tree of
 * statements:
 *
 *   for i in 0..n { ... }      LS_LOOP: a counted loop, var from 0 to n-1
 *   f64 acc0 = e               LS_LOCAL: declares a scalar local (accumulator)
 *   acc0 = e                   LS_SET
 *   t3[e] = e                  LS_STORE: a store at a linear element index
 *   parallel for i in 0..n {   marks of loops (transform.h): iterations split
 *   for i in 0..n vectorize {  over threads; llvm.loop.vectorize.enable
 *   t3[e] = gemm(...)          LS_GEMM: C = op(A) @ op(B) by the shape-generic
 *                              GEMM (compiler/gemm), called by the generated
 *                              code; A, B, C at element offsets of buffers
 *   for i in 0..m epilogue {   a loop right after an LS_GEMM, over the rows
 *                              of its C: the GEMM runs it on each block of
 *                              rows as soon as they are final (fused
 *                              consumers of a matmul: bias, activation)
 *   check 0 <= e < n  # %3     LS_CHECK: an index read by node %3 (gather,
 *                              scatter_add) is in range; when not, the
 *                              value goes to the node's status word and the
 *                              kernel goes on (its loads stay clamped in
 *                              bounds); jit_run reports it after the graph
 *
 * Expressions are trees over scalars: constants, loop variables, loads
 * buf[index], locals, and the arithmetic of the graph ops (the codegen knows
 * each op's exact semantics: NaN rules of max/min, integer division by zero,
 * saturating casts). Index expressions are i64 expressions built with
 * lp_iadd / lp_imul / lp_idiv / lp_imod, which keep them in a canonical
 * affine form (12*i0 + 3*i1 + i2) and simplify the div/mod that reshapes
 * introduce whenever the ranges of the loop variables allow it.
 *
 * Everything of a program lives in its arena.
 */
#ifndef TT_LOOP_H
#define TT_LOOP_H

#include <stdio.h>

#include "ir.h"

/* Scalar types of loop IR values. */
typedef enum LpType { LT_F32, LT_F64, LT_I32, LT_I8, LT_I64, LT_BOOL, LT__COUNT } LpType;

typedef enum LpExprKind {
    LE_CONST,  /* ty, c (ints exact in c.i, floats in c.f) */
    LE_VAR,    /* loop variable var (i64), 0 <= var < extent */
    LE_LOAD,   /* buf[a] (a: i64 element index), type of the buffer */
    LE_LOCAL,  /* the current value of local var */
    LE_UN,     /* op(a) */
    LE_BIN,    /* op(a, b) */
    LE_SELECT, /* a ? b : c (a: bool) */
    LE_CAST,   /* a converted to ty (f32 -> int saturates, int -> int wraps) */
} LpExprKind;

/* Unary and binary operators. The first OP__COUNT are ops.def's rows, in
 * its order, so an elementwise graph op's operator is LO_<NAME> ==
 * (LpOp)OP_<NAME> (lp_op_of) and its name is the op's: the enum, the names
 * and the map cannot drift. Only the rows of form unary, call and binary
 * are operators (lp_un, lp_bin check); the others hold their place. The
 * codegen expands each to exact IR (see codegen.c). */
typedef enum LpOp {
#define OP(NAME, name, arity, flags, form, shape, flops, tol, attrs) LO_##NAME,
#include "ops.def"
#undef OP
    /* the loop IR's own */
    LO_MOD, /* i64 indices only (non-negative) */
    LO_AND,
    LO_OR, /* bool */
    LO__COUNT
} LpOp;
_Static_assert((int)LO_MOD == (int)OP__COUNT && (int)LO_GE - (int)LO_EQ == 5 &&
                   (int)LO_EQ == (int)OP_EQ,
               "LpOp mirrors ops.def; the comparisons are contiguous, EQ..GE");

static inline LpOp lp_op_of(OpKind op) {
    return (LpOp)op;
}
/* its code is an opaque libm call (OPF_LIBM) */
bool lp_op_is_libm(LpOp op);

typedef struct LpExpr LpExpr;
struct LpExpr {
    LpExprKind kind;
    LpType ty;
    int id; /* dense per program: codegen memoizes by it */
    LpOp op;
    union {
        double f;
        int64_t i;
    } c;
    int var;        /* LE_VAR, LE_LOCAL */
    int64_t extent; /* LE_VAR */
    int buf;        /* LE_LOAD */
    LpExpr *a, *b, *cc;
    /* LE_BIN: rounded as if stored, never contracted into the expression
     * that uses it (an FMA): the value of a node recomputed where it is
     * read (lower.c, decide_recompute) has the bits its buffer had */
    bool exact;
};

typedef enum LpStmtKind { LS_LOOP, LS_LOCAL, LS_SET, LS_STORE, LS_GEMM, LS_CHECK } LpStmtKind;

/* LS_GEMM: C[m,n] = op(A)[m,k] @ op(B)[k,n], row-major with leading
 * dimensions (op(X) = X^T when tX: X stored transposed), as tt_gemm_run.
 * a, b, c are buffers, aoff.. element offsets into them (i64 expressions of
 * the enclosing loop variables: the batch). m, n, k >= 1. */
typedef struct LpGemm {
    int a, b, c;
    LpExpr *aoff, *boff, *coff;
    int64_t m, n, k, lda, ldb, ldc;
    bool ta, tb;
    bool acc; /* C += the product (else C =) */
    /* qmatmul's: A and B i8, C i32, exact (tt_qgemm_run, compiler/gemm/
     * qgemm.h); never transposed, never acc */
    bool q;
    /* gather: op(B) is not stored in b but gathered from it while it is
     * packed (implicit im2col; TtGemmGather in compiler/gemm/gemm.h, whose
     * fields these are): op(B)(p, j) = b[boff + roff(p) + coff(j)]; ldb and
     * tb unused. The JIT only (ttc's loop GEMM has no packing). */
    bool gather;
    int64_t rdim[2], rstr[3], cdim[2], cstr[3];
    /* a gathered product's C as a convolution's [N, O, P] (TtGemmOut):
     * C(i, j) at c[coff + i*ldc + (j / ocols) * ostride + j % ocols];
     * ocols 0: rows of ldc */
    int64_t ocols, ostride;
} LpGemm;

typedef struct LpStmt LpStmt;
struct LpStmt {
    LpStmtKind kind;
    LpStmt *next;   /* the next statement of the enclosing block */
    int var;        /* LS_LOOP: loop var; LS_LOCAL, LS_SET: local */
    int64_t extent; /* LS_LOOP (>= 2: loops of 1 are folded, of 0 dropped;
                       with trips: >= 1, the most iterations);
                       LS_CHECK: the bound n */
    LpStmt *body;   /* LS_LOOP */
    LpType ty;      /* LS_LOCAL */
    int buf;        /* LS_STORE */
    LpExpr *index;  /* LS_STORE */
    LpExpr *value;  /* LS_LOCAL (initial value), LS_SET, LS_STORE; LS_CHECK:
                       the index (i64) */
    int check;      /* LS_CHECK: its status word, p->check_node[check] */
    LpGemm *gemm;   /* LS_GEMM */
    /* LS_LOOP marks set by the schedule (transform.h): codegen attaches
     * llvm.loop.vectorize.enable to a vectorize loop, and runs the
     * iterations of a parallel loop (a kernel's top-level loop) on
     * `parallel` threads (0: serial). */
    bool vectorize;
    int parallel;
    /* LS_LOOP right after an LS_GEMM (top level, no batch loop): its
     * iterations are the rows of the GEMM's C, run by the GEMM as they are
     * finished, in any order and on any of its threads (lp_fuse_kernels) */
    bool epilogue;
    /* LS_LOOP: NULL, or a loop whose trip count is known only at run time:
     * an i64 expression of the enclosing loop variables and loads,
     * evaluated once on entry; the loop runs min(max(trips, 0), extent)
     * iterations (possibly none). extent stays the constant maximum every
     * analysis uses (the variable's range 0 <= v < extent still holds).
     * Tiling, interchange, unrolling, fusion and parallel marks leave such
     * a loop alone (lp_open_loop_trips). */
    LpExpr *trips;
};

typedef enum LpBufKind { LB_INPUT, LB_OUTPUT, LB_TEMP } LpBufKind;

typedef struct LpBuf {
    LpBufKind kind;
    int slot;       /* LB_INPUT: input slot; LB_OUTPUT: output index */
    int64_t offset; /* LB_TEMP: byte offset in the workspace */
    DType dtype;
    Shape shape;
    int node; /* the graph node it holds (-1: none) */
    char name[24];
    /* LB_TEMP: a kernel's own scratch (attention's transposed keys and
     * score row), live in that kernel only, so it overlaps no buffer the
     * kernel touches: codegen tells LLVM so (alias scopes), which lets the
     * loop vectorizer widen loops storing to it without runtime checks */
    bool scratch;
} LpBuf;

typedef struct LpKernel LpKernel;
struct LpKernel {
    char name[32];
    int node;   /* the graph node computed (-1 for a copy) */
    int *fused; /* the nodes fused into it (inlined), in node order */
    int nfused;
    int out; /* the buffer written */
    LpStmt *body;
    int nvars, nlocals;
    LpType *local_ty; /* nlocals */
    /* kernels merged into this one by lp_fuse_kernels, in order (their
     * node, fused, nfused and out describe what they computed) */
    LpKernel *merged;
    int nmerged;
};

typedef struct LpProg {
    Arena arena;
    LpBuf *bufs;
    int nbufs, bufcap;
    LpKernel *kernels;
    int nkernels, kcap;
    int ninputs, noutputs;
    int64_t workspace;    /* bytes of temporaries (after lp_plan_memory: as planned) */
    int64_t ws_unplanned; /* lp_plan_memory: the bytes before (every temporary its own) */
    int64_t ws_lower;     /* lp_plan_memory: the most bytes live in any one kernel */
    int nexpr;            /* expression ids handed out */
    int ngemm;            /* LS_GEMM statements (the JIT then needs the GEMM) */
    /* the vector width (f32 lanes) and interleave every loop marked
     * vectorize is compiled with; 0: LLVM's own choice (vtune.h) */
    int vec_width, vec_interleave;
    /* LS_CHECK status words, one per checking node: the generated code
     * finds them at bufs[ninputs + noutputs + 2] (codegen.h) */
    int *check_node; /* by word: the graph node whose indices it checks */
    int nchecks;
    /* kernel under construction (the builder) */
    LpKernel *cur;
    LpStmt **tail[64]; /* where the next statement of each open block goes */
    int depth;
    bool dead[64];    /* block of a loop with extent 0: statements dropped */
    LpStmt *open[64]; /* the LS_LOOP of each open block (NULL: folded or dead) */
    LpStmt *sink;     /* statements of dead blocks land here */
} LpProg;

/* -- programs -- */
LpProg *lp_new(void);
void lp_free(LpProg *p);
int lp_add_buf(LpProg *p, LpBufKind kind, int slot, DType dt, const Shape *s, int node);
/* The memory planner (plan.c): places the temporaries in the workspace by
 * liveness over the kernels (run last by lp_schedule). */
void lp_plan_memory(LpProg *p);
/* The bytes of the buffers kernel k reads or writes, each counted once
 * (what one run of it moves at least; --profile's bytes). */
int64_t lp_kernel_bytes(const LpProg *p, int k);
/* Starts a kernel writing buffer out; statements go to its top block. */
LpKernel *lp_begin_kernel(LpProg *p, const char *name, int node, int out);
void lp_end_kernel(LpProg *p);

/* -- statements of the current kernel -- */
/* Opens `for v in 0..extent`; returns the variable's expression (the
 * constant 0 when extent is 1). Statements until lp_close_loop go inside. */
LpExpr *lp_open_loop(LpProg *p, int64_t extent);
/* The same with a runtime trip count: `for v in 0..min(trips, extent)`
 * (trips an i64 expression, clamped to [0, extent] when the loop starts);
 * never folded, so the body may run zero times. */
LpExpr *lp_open_loop_trips(LpProg *p, int64_t extent, LpExpr *trips);
void lp_close_loop(LpProg *p);
LpExpr *lp_local(LpProg *p, LpType ty, LpExpr *init); /* returns an LE_LOCAL */
void lp_set(LpProg *p, LpExpr *local, LpExpr *value);
void lp_store(LpProg *p, int buf, LpExpr *index, LpExpr *value);
void lp_gemm(LpProg *p, const LpGemm *g); /* copied */
/* Marks the innermost open loop, opened right after an LS_GEMM at the
 * kernel's top level with one iteration per row of its C, as the GEMM's
 * epilogue (LpStmt.epilogue); a folded loop (extent 1) stays plain code. */
void lp_mark_epilogue(LpProg *p);
/* `check 0 <= index < n` for the indices of graph node `node` (index i64,
 * n >= 0): the node gets its status word on its first check. */
void lp_check(LpProg *p, LpExpr *index, int64_t n, int node);

/* -- expressions -- */
LpExpr *lp_const_f(LpProg *p, LpType ty, double v);
LpExpr *lp_const_i(LpProg *p, LpType ty, int64_t v);
LpExpr *lp_load(LpProg *p, int buf, LpExpr *index);
LpExpr *lp_un(LpProg *p, LpOp op, LpExpr *a);
LpExpr *lp_bin(LpProg *p, LpOp op, LpExpr *a, LpExpr *b);
LpExpr *lp_select(LpProg *p, LpExpr *c, LpExpr *a, LpExpr *b);
LpExpr *lp_cast(LpProg *p, LpType ty, LpExpr *a);
/* Structural equality of two expressions (same tree, same constants). */
bool lp_expr_eq(const LpExpr *a, const LpExpr *b);
/* i64 index arithmetic with simplification (k, d constants, d >= 1) */
LpExpr *lp_iconst(LpProg *p, int64_t v);
LpExpr *lp_iadd(LpProg *p, LpExpr *a, LpExpr *b);
LpExpr *lp_imul(LpProg *p, LpExpr *a, int64_t k);
LpExpr *lp_idiv(LpProg *p, LpExpr *a, int64_t d);
LpExpr *lp_imod(LpProg *p, LpExpr *a, int64_t d);

LpType lp_type_of(DType t);
const char *lp_type_name(LpType t);
const char *lp_op_name(LpOp op);

/* -- lowering (lower.c) -- */
/* Lowers the part of g reachable from its outputs. fuse: inline chains of
 * elementwise and movement ops into their single consumer; false gives one
 * kernel per node. g must pass ir_verify. */
LpProg *lp_lower(const IrGraph *g, bool fuse);

/* How conv2d and its two backward ops are lowered: AUTO picks per node by
 * the rule of lp_conv_uses_gemm (spec/jit.md, "Convolution"); DIRECT is one
 * loop nest per op in the reference kernel's order (a conv2d with rows of
 * 8+ outputs: blocks of rows in vector lanes, lp_conv_lanes); IM2COL gathers the
 * windows into a column matrix (explicit im2col) and calls the GEMM;
 * IMPLICIT has the GEMM gather them while it packs B (forward and weight
 * gradient; the input gradient stays explicit). lp_lower_conv is the JIT's
 * (IMPLICIT allowed; lp_lower, for ttc, never gathers). */
typedef enum LpConvLowering {
    LP_CONV_AUTO,
    LP_CONV_DIRECT,
    LP_CONV_IM2COL,
    LP_CONV_IMPLICIT
} LpConvLowering;
LpProg *lp_lower_conv(const IrGraph *g, bool fuse, LpConvLowering conv);
/* The same with a lowering per node (conv_of[id]; LP_CONV_AUTO: conv's), the
 * ones ctune.h measured on the host; conv_of may be NULL. */
LpProg *lp_lower_modes(const IrGraph *g, bool fuse, LpConvLowering conv,
                       const LpConvLowering *conv_of);
/* AUTO's choice for conv node id of g (any of the three conv ops); gather:
 * the JIT's implicit lowering is available (lp_lower_conv, not lp_lower),
 * which takes depthwise convolutions with rows of 8+ positions too. */
bool lp_conv_uses_gemm(const IrGraph *g, int id, bool gather);
/* Whether conv node id, lowered directly, takes the lanes lowering
 * (lower_conv_lanes.c, lower_conv_dw.c): an f32 conv2d whose output rows
 * have 8+ positions, an input gradient of stride 1 whose rows do, a weight
 * gradient of up to 9 taps, stride 1 along rows of 8+ positions. */
bool lp_conv_lanes(const IrGraph *g, int id);
/* Whether the rule picks the lanes for conv node id (lower_conv_lanes.c),
 * over any GEMM lowering. */
bool lp_conv_lanes_rule(const IrGraph *g, int id);
/* The im2col lowering cuts the batch into chunks of images whose column
 * matrix has at most this many floats (default 4 Mi; 0 restores it). For
 * tests: process-wide, read when a graph is lowered. */
void lp_set_conv_col_budget(int64_t floats);

/* Prints the program as readable pseudo-C (--emit=loops). */
void lp_print(FILE *out, const LpProg *p, const IrGraph *g);

#endif
