/* ir.h - the graph IR: the contract between the front end, the passes and
 * every backend.
 *
 * A graph is an array of nodes in topological order (a node's inputs always
 * have smaller ids). Each node is one op of ops.def on tensors with a dtype
 * and a static shape. Tensors are dense and row-major. Leaves are INPUT
 * nodes (data bound when the graph runs, slot attr.index) and CONST nodes
 * (a scalar value filling attr.shape).
 */
#ifndef TT_IR_H
#define TT_IR_H

#include <stdio.h>

#include "diag.h"
#include "util.h"

typedef enum DType { TY_F32, TY_I32, TY_I8, TY__COUNT } DType;

#define IR_MAXDIM 8

typedef struct Shape {
    int ndim;
    int64_t d[IR_MAXDIM];
} Shape;

/* Op flags (ops.def). */
enum {
    OPF_LEAF = 1 << 0,     /* no inputs: INPUT, CONST */
    OPF_ELEMWISE = 1 << 1, /* out[i] = f(in0[i], in1[i], ...), same shapes */
    OPF_REDUCE = 1 << 2,   /* reduces attr.axes / attr.axis */
    OPF_MOVEMENT = 1 << 3, /* moves elements, computes nothing */
    OPF_COMMUTES = 1 << 4, /* f(a, b) == f(b, a) */
    OPF_CMP = 1 << 5,      /* result is an f32 0/1 mask */
    OPF_NODIFF = 1 << 6,   /* no gradient flows through (grad rule gives none) */
    OPF_FLOAT = 1 << 7,    /* defined on floats only: the builder casts ints to f32 */
    /* The JIT's f32 code of an elementwise unary op, when it is one call
     * named by the op's name (codegen.c needs no case for it): */
    OPF_INTRINSIC = 1 << 8, /* the LLVM intrinsic llvm.<name> */
    OPF_LIBM = 1 << 9,      /* the libm function <name>f: an opaque call, which the
                               vectorizer cannot widen (transform.c) */
    /* The result is input 0 with some elements replaced: an output of the
     * op may alias that input (ir_alias_output), and the backends then write
     * only the replaced elements, in place (the reference kernel accepts
     * its output buffer being input 0's) */
    OPF_INPLACE = 1 << 10,
};

/* Attribute fields (the attrs column of ops.def): bit AT_X names IrAttr's
 * field x. The per-dimension arrays (perm, start, stop, step) hold one entry
 * per dim of the op's first input. compiler/attr.c describes each field
 * once; every layer visits a node's fields through it. */
enum {
    AT_AXES = 1 << 0,
    AT_AXIS = 1 << 1,
    AT_KEEPDIMS = 1 << 2,
    AT_REVERSE = 1 << 3,
    AT_PERM = 1 << 4,
    AT_SHAPE = 1 << 5,
    AT_START = 1 << 6,
    AT_STOP = 1 << 7,
    AT_STEP = 1 << 8,
    AT_KERNEL = 1 << 9,    /* win.kernel */
    AT_STRIDE = 1 << 10,   /* win.stride */
    AT_PADDING = 1 << 11,  /* win.padding */
    AT_DILATION = 1 << 12, /* win.dilation */
    AT_GROUPS = 1 << 13,   /* win.groups */
    AT_DTYPE = 1 << 14,
    AT_CAUSAL = 1 << 15,
    AT_SCALE = 1 << 16,
    AT_VALUE = 1 << 17,
    AT_INDEX = 1 << 18,
    AT__ALL = (1 << 19) - 1,
    /* the windows: a convolution's kernel size is its weight's */
    AT_WIN_CONV = AT_STRIDE | AT_PADDING | AT_DILATION | AT_GROUPS,
    AT_WIN_POOL = AT_KERNEL | AT_STRIDE | AT_PADDING,
};

/* The op's form (the form column of ops.def): which of a layer's ways of
 * handling ops applies to it. The elementwise forms are the loop IR's
 * operators and expressions; a kernel op has a kernel of its own in every
 * backend. Switches over ops and over loop-IR ops (LpOp) have no default
 * (the build has -Werror=switch-enum): a switch that handles the ops of one
 * form one by one lists the others with OP_CASES_UNLESS_FORM, so a new row
 * of that form without a case there does not compile. */
typedef enum OpForm {
    FORM_LEAF,   /* INPUT, CONST: no inputs */
    FORM_UNARY,  /* elementwise, one input: a loop-IR unary operator (LE_UN) */
    FORM_CALL,   /* a unary one whose f32 code is one call named by the op
                    (OPF_INTRINSIC or OPF_LIBM): codegen.c needs no case */
    FORM_BINARY, /* elementwise, two inputs: a loop-IR binary operator (LE_BIN) */
    FORM_ELEM,   /* elementwise, more than one operator (where, cast, quantize..) */
    FORM_REMAP,  /* an index remap of one input: fused as a different load */
    FORM_KERNEL, /* its own kernel (reductions, matmul, conv, pad, concat..) */
} OpForm;

/* Preprocessor tests of the form column (a token: leaf, unary, ...).
 * OP_FORM_IS(form, f) is 1 when the token form is f, else 0. */
#define OP_PP_2ND_(a, b, ...) b
#define OP_PP_2ND(...)        OP_PP_2ND_(__VA_ARGS__)
#define OP_PP_IF_1(x)         x
#define OP_PP_IF_0(x)
#define OP_PP_IF_(c, x)            OP_PP_IF_##c(x)
#define OP_PP_IF(c, x)             OP_PP_IF_(c, x)
#define OP_PP_NOT_0                1
#define OP_PP_NOT_1                0
#define OP_PP_NOT_(c)              OP_PP_NOT_##c
#define OP_PP_NOT(c)               OP_PP_NOT_(c)
#define OP_PP_OR_00                0
#define OP_PP_OR_01                1
#define OP_PP_OR_10                1
#define OP_PP_OR_11                1
#define OP_PP_OR_(a, b)            OP_PP_OR_##a##b
#define OP_PP_OR(a, b)             OP_PP_OR_(a, b)
#define OP_FORM_SAME_leaf_leaf     ~, 1
#define OP_FORM_SAME_unary_unary   ~, 1
#define OP_FORM_SAME_call_call     ~, 1
#define OP_FORM_SAME_binary_binary ~, 1
#define OP_FORM_SAME_elem_elem     ~, 1
#define OP_FORM_SAME_remap_remap   ~, 1
#define OP_FORM_SAME_kernel_kernel ~, 1
#define OP_FORM_IS(form, f)        OP_PP_2ND(OP_FORM_SAME_##form##_##f, 0, ~)
/* In an OP() row macro: the case label `case label:` unless the row's form
 * is f. Used as
 *     #define OP(NAME, name, arity, flags, form, ...) \
 *         OP_CASES_UNLESS_FORM(form, unary, OP_##NAME)
 *     #include "ops.def"
 *     #undef OP
 *         TT_UNREACHABLE();
 * at the end of a switch that handles each unary op. */
#define OP_CASES_UNLESS_FORM(form, f, label) OP_PP_IF(OP_PP_NOT(OP_FORM_IS(form, f)), case label:)
/* `case label:` if the row is elementwise (unary, call, binary, elem): in a
 * switch after the elementwise ops took another branch */
#define OP_FORM_ELEMWISE(form)                                                                     \
    OP_PP_OR(OP_PP_OR(OP_FORM_IS(form, unary), OP_FORM_IS(form, call)),                            \
             OP_PP_OR(OP_FORM_IS(form, binary), OP_FORM_IS(form, elem)))
#define OP_CASES_IF_ELEMWISE(form, label) OP_PP_IF(OP_FORM_ELEMWISE(form), case label:)
/* the same unless the form is f or g */
#define OP_CASES_UNLESS_FORMS(form, f, g, label)                                                   \
    OP_PP_IF(OP_PP_NOT(OP_PP_OR(OP_FORM_IS(form, f), OP_FORM_IS(form, g))), case label:)

typedef enum OpKind {
#define OP(NAME, name, arity, flags, form, shape, flops, tol, attrs) OP_##NAME,
#include "ops.def"
#undef OP
    OP__COUNT
} OpKind;

/* The window of a convolution or a pooling, over the two spatial dims
 * (index 0: height, 1: width) of an [N, C, H, W] tensor. */
typedef struct IrWindow {
    int64_t kernel[2];   /* pooling: window size (conv2d: from the weight) */
    int64_t stride[2];   /* >= 1 */
    int64_t padding[2];  /* >= 0, on both sides */
    int64_t dilation[2]; /* conv: >= 1 (pooling: 1) */
    int64_t groups;      /* conv: >= 1 (pooling: 1) */
} IrWindow;

/* Attributes; which fields an op reads is said in ops.def. */
typedef struct IrAttr {
    uint32_t axes;            /* SUM, RMAX: bit i set = reduce axis i */
    bool keepdims;            /* SUM, RMAX, ARGMAX */
    int axis;                 /* ARGMAX, CONCAT */
    int perm[IR_MAXDIM];      /* PERMUTE: out dim i = in dim perm[i] */
    Shape shape;              /* INPUT, CONST, RESHAPE, BROADCAST, PAD,
                                 SCATTER_ADD, the conv/pool backward ops:
                                 the result shape */
    int64_t start[IR_MAXDIM]; /* SLICE, PAD */
    int64_t stop[IR_MAXDIM];  /* SLICE (exclusive) */
    int64_t step[IR_MAXDIM];  /* SLICE, PAD (>= 1) */
    double value;             /* CONST */
    DType dtype;              /* INPUT, CONST, CAST: the result dtype */
    int index;                /* INPUT: binding slot, 0..ninputs-1 */
    IrWindow win;             /* CONV2D*, MAX_POOL2D*, AVG_POOL2D* */
    bool reverse;             /* ARGSORT: descending; CUMSUM: from the end */
    bool causal;              /* ATTENTION: query i sees keys <= i + (len - Tq) */
    double scale;             /* ATTENTION: the factor of q k^T (the builder's
                                 default 1/sqrt(D) is stored, never implied) */
} IrAttr;

typedef struct IrNode {
    OpKind op;
    DType dtype;
    Shape shape;
    int nin;
    int *in; /* nin node ids, all smaller than this node's id */
    IrAttr attr;
    SrcLoc loc;       /* the source construct that made the node */
    const char *name; /* optional label: a parameter's path, an input's name */
} IrNode;

typedef struct IrGraph {
    Arena arena; /* node inputs and names */
    IrNode *nodes;
    int n, cap;
    int ninputs; /* INPUT slots used */
    int *outputs;
    int nout, outcap;
    /* per output: the input slot whose buffer it updates in place (the
     * caller passes the same buffer for both), -1 none; NULL: no output
     * aliases an input (ir_alias_output) */
    int *alias;
    char err[512]; /* the message of the last failed ir_* call */
} IrGraph;

/* The op table, expanded from ops.def. */
typedef struct OpInfo {
    const char *name;
    int arity;
    unsigned flags;
    OpForm form;
    bool (*shape)(const IrGraph *g, IrNode *n, char *err, size_t errlen);
    int64_t (*flops)(const IrGraph *g, const IrNode *n);
    double tol;
    unsigned attrs; /* AT_*: the attribute fields the op reads */
} OpInfo;
extern const OpInfo ir_ops[OP__COUNT];

/* -- attributes, visited through the op's attrs mask (compiler/attr.c) --
 * rank: the rank of the node's first input (0 without inputs): how many
 * entries of the per-dimension arrays are the op's. */
int ir_attr_rank(const IrGraph *g, const IrNode *n);
/* a's fields in mask, the rest zero: the form ir_add stores */
IrAttr ir_attr_canonical(const IrAttr *a, unsigned mask, int rank);
/* Writes the fields in mask as 64-bit words (doubles by their bits), in a
 * fixed order, into w (room for IR_ATTR_MAXWORDS); returns the count. The
 * structural hash mixes them. */
#define IR_ATTR_MAXWORDS 64
int ir_attr_words(const IrAttr *a, unsigned mask, int rank, int64_t *w);
/* the fields in mask equal (doubles bit for bit) */
bool ir_attr_eq(const IrAttr *a, const IrAttr *b, unsigned mask, int rank);
/* Appends " name=value" for each field in mask (the --emit=ir text). */
void ir_attr_print(StrBuf *b, const IrAttr *a, unsigned mask, int rank);

/* -- dtypes and shapes -- */
const char *dtype_name(DType t); /* "f32", "i32", "i8" */
size_t dtype_size(DType t);
int64_t shape_numel(const Shape *s);
bool shape_eq(const Shape *a, const Shape *b);
Shape shape_make(int ndim, const int64_t *d);
Shape shape_scalar(void);
/* Writes "[64, 784]" (or "[]" for a scalar) into buf; returns buf. */
char *shape_str(const Shape *s, char *buf, size_t len);

/* -- graphs -- */
void ir_init(IrGraph *g);
void ir_free(IrGraph *g);
/* Empties g for reuse, keeping its node array's capacity (a graph rebuilt
 * again and again, like the runtime's lazy graph, then touches no new
 * memory). */
void ir_clear(IrGraph *g);
void ir_mark_output(IrGraph *g, int node);
/* Output j updates input slot `slot` in place (XLA's input/output aliasing):
 * the caller passes the same buffer as inputs[slot] and outputs[j], which
 * holds the input before the run and output j after it. Allowed only where
 * the backends can write without a copy: output j's node is an OPF_INPLACE
 * op whose operand 0 is that slot's input node, read by no other node and
 * not an output itself (ir_verify checks it; spec/ir.md). False with g->err
 * on a bad j or slot; the rest is ir_verify's. */
bool ir_alias_output(IrGraph *g, int j, int slot);
static inline int ir_output_alias(const IrGraph *g, int j) {
    return g->alias ? g->alias[j] : -1;
}
static inline IrNode *ir_node(const IrGraph *g, int id) {
    return &g->nodes[id];
}

/* Adds a node after checking it with the op's shape rule. Returns its id,
 * or -1 with the message in g->err (the caller reports it at its span). */
int ir_add(IrGraph *g, OpKind op, const int *in, int nin, const IrAttr *attr, SrcLoc loc);

/* Leaves. ir_input takes the next binding slot. */
/* Appends a copy of node id of src (not an INPUT) whose inputs are the nodes
 * in[0..nin) of g: the op, attributes, result type, location and name are
 * taken as they are, without running the shape rule again, which is why
 * each input must have the type of the source node's input it replaces
 * (checked). How the runtime cuts an execution graph out of its lazy graph
 * every step at the cost of a copy. -1 with g->err on a mismatch. */
int ir_copy_node(IrGraph *g, const IrGraph *src, int id, const int *in);
int ir_input(IrGraph *g, DType dt, Shape s, const char *name, SrcLoc loc);
int ir_const(IrGraph *g, DType dt, Shape s, double value, SrcLoc loc);

/* Builders with NumPy semantics: broadcasting (reshape + BROADCAST nodes are
 * inserted), dtype promotion (i8 < i32 < f32; OPF_FLOAT ops cast ints to
 * f32), negative axes. Each returns the result node, or -1 with g->err set
 * to a message naming the op and the shapes, e.g.
 *   "matmul shape mismatch: [64, 64] @ [128, 10] (inner 64 != 128)"
 *   "add: cannot broadcast [3, 4] and [5]" */
int ir_unary(IrGraph *g, OpKind op, int a, SrcLoc loc);
int ir_binary(IrGraph *g, OpKind op, int a, int b, SrcLoc loc);
int ir_where(IrGraph *g, int cond, int a, int b, SrcLoc loc);
/* axes: list of axes (negative allowed); naxes == 0 reduces every axis */
int ir_reduce(IrGraph *g, OpKind op, int a, const int *axes, int naxes, bool keepdims, SrcLoc loc);
int ir_argmax(IrGraph *g, int a, int axis, bool keepdims, SrcLoc loc);
/* Sorting and scans along one axis (negative allowed; compiler/build_sort.c).
 * ir_argsort: i32 indices of a stable sort (NaN largest), descending keeps
 * ties in index order. ir_take_along: x[..., idx[..., j], ...] along axis,
 * idx i32 of x's shape except at axis (NumPy's take_along_axis; built from
 * gather, so gradients flow to x). ir_cumsum: inclusive prefix sums. */
int ir_argsort(IrGraph *g, int a, int axis, bool descending, SrcLoc loc);
int ir_take_along(IrGraph *g, int x, int idx, int axis, SrcLoc loc);
int ir_cumsum(IrGraph *g, int a, int axis, bool reverse, SrcLoc loc);
/* one dim of s may be -1 (inferred) */
int ir_reshape(IrGraph *g, int a, Shape s, SrcLoc loc);
int ir_permute(IrGraph *g, int a, const int *perm, SrcLoc loc);
int ir_transpose(IrGraph *g, int a, int d0, int d1, SrcLoc loc);
int ir_broadcast_to(IrGraph *g, int a, Shape s, SrcLoc loc);
/* Python slice semantics per dim (clamping, negative indices); has_* false
 * means the bound was omitted. */
typedef struct IrSliceDim {
    bool has_start, has_stop, has_step;
    int64_t start, stop, step;
} IrSliceDim;
int ir_slice(IrGraph *g, int a, const IrSliceDim *dims, int ndims, SrcLoc loc);
int ir_concat(IrGraph *g, const int *ins, int n, int axis, SrcLoc loc);
int ir_matmul(IrGraph *g, int a, int b, SrcLoc loc); /* numpy matmul rules */
int ir_gather(IrGraph *g, int table, int idx, SrcLoc loc);
int ir_cast(IrGraph *g, int a, DType to, SrcLoc loc);
/* conv2d(x f32[N, C, H, W], w f32[O, C/groups, kh, kw]) + bias f32[O]
 * (bias -1: none), PyTorch's semantics; win->kernel is ignored (the
 * weight's). Errors name conv2d, both shapes and the bad argument. */
int ir_conv2d(IrGraph *g, int x, int w, int bias, const IrWindow *win, SrcLoc loc);
/* op: OP_MAX_POOL2D or OP_AVG_POOL2D over x f32[N, C, H, W]. */
int ir_pool2d(IrGraph *g, OpKind op, int x, const IrWindow *win, SrcLoc loc);

/* attention(q f32[..., Tq, D], k f32[..., Tk, D], v f32[..., Tk, Dv]) ->
 * f32[..., Tq, Dv] (compiler/build_attn.c; semantics in ops.def and
 * spec/ir.md). len: -1 (all Tk keys) or an i32 0-d node, the number of valid
 * keys, read at run time. scale: NAN for PyTorch's default 1/sqrt(D). Batch
 * dims broadcast (size-1 dims, equal ranks); ints are cast to f32. */
int ir_attention(IrGraph *g, int q, int k, int v, int len, bool causal, double scale, SrcLoc loc);
/* write_rows(dst f32[..., N, D], src f32[..., R, D], pos i32[]) -> dst with
 * rows pos .. pos + R - 1 replaced by src (compiler/build_attn.c; ops.def):
 * a KV cache's update, in place where its output aliases dst. A position
 * outside [0, N - R] is an error when the graph runs. */
int ir_write_rows(IrGraph *g, int dst, int src, int pos, SrcLoc loc);
/* attention's gradient rule (compiler/grad_attn.c) takes its fused form
 * (the attention_lse and attention_grad ops, no Tq x Tk tensor) when batch
 * x Tq x Tk exceeds this many pairs, else the form composed of matmuls and
 * a masked softmax. Sets it (default IR_ATTENTION_FUSED_MIN; 0: always
 * fused, for tests and benchmarks; not thread-safe) and returns the old. */
#define IR_ATTENTION_FUSED_MIN (INT64_C(1) << 24)
int64_t ir_set_attention_fused_min(int64_t pairs);

/* INT8 quantization (compiler/build_quant.c; semantics in ops.def and
 * spec/ir.md). scale (any dtype, cast to f32) and zp (cast to i32) broadcast
 * to the data's shape by NumPy's rules, or with axis != IR_NO_AXIS are a
 * scalar or a vector of the size of that axis (per channel). */
#define IR_NO_AXIS (-1000)
int ir_quantize(IrGraph *g, int x, int scale, int zp, int axis, SrcLoc loc);   /* f32 -> i8 */
int ir_dequantize(IrGraph *g, int q, int scale, int zp, int axis, SrcLoc loc); /* i8 -> f32 */
int ir_requantize(IrGraph *g, int acc, int scale, int zp, DType to, int axis,
                  SrcLoc loc);                        /* i32 -> i8 or f32 */
int ir_qmatmul(IrGraph *g, int a, int b, SrcLoc loc); /* i8 @ i8 -> i32, numpy matmul rules */
/* qconv2d(x i8[N, C, H, W], w i8[O, C/groups, kh, kw]) -> i32[N, O, Ho, Wo],
 * conv2d's window win, the padding reading pad (the input zero point) */
int ir_qconv2d(IrGraph *g, int x, int w, int pad, const IrWindow *win, SrcLoc loc);

/* Checks every invariant (topological order, arity, shapes recomputed by the
 * shape rules, slots, outputs). Runs between passes. */
bool ir_verify(const IrGraph *g, char *err, size_t errlen);

/* Prints the graph, one node per line:
 *   %2 = matmul %0, %1 : f32[64, 128]      # model.tt:7:16 */
void ir_print(FILE *out, const IrGraph *g);
void ir_print_node(FILE *out, const IrGraph *g, int id);

/* Hash of the structure (ops, shapes, dtypes, attributes, wiring, outputs),
 * not of the data bound to inputs: the key of compiled-graph caches. */
uint64_t ir_hash(const IrGraph *g);

/* Total FLOPs of the nodes reachable from the outputs. */
int64_t ir_flops(const IrGraph *g);

/* -- autodiff (compiler/autodiff.c, rules in compiler/grad.c) -- */

/* Reverse mode: adds nodes computing d(sum(loss))/d(wrt[i]). grads[i] is the
 * node id of that gradient (same shape and dtype as wrt[i]), or -1 when loss
 * does not depend on wrt[i]. Returns false with g->err set on failure. */
bool ad_backward(IrGraph *g, int loss, const int *wrt, int nwrt, int *grads);

/* A gradient rule: given node `id` and the gradient `gout` of its output,
 * sets gin[i] to the gradient of input i (or -1: none). Returns false with
 * g->err set if a builder failed. */
typedef bool (*GradRule)(IrGraph *g, int id, int gout, int *gin);
extern const GradRule ir_grad_rules[OP__COUNT];

#endif
