/* eval_expr.c - evaluating expressions: names, operators on numbers,
 * strings, lists and tensors, indexing and slicing, members, calls.
 *
 * Operators on tensors do not compute anything: they append nodes to the
 * lazy graph (lazy.c) through the ir_* builders, whose shape errors are
 * reported at the operator with the chain of model calls.
 */
#include "containers.h"
#include "capture.h"
#include "eval.h"
#include "scalar_math.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stack.h"

SrcLoc binary_op_loc(const AstNode *n) {
    if (n->op_line <= 0) return n->loc;
    SrcLoc l = n->loc;
    l.line = l.end_line = n->op_line;
    l.col = l.end_col = n->op_col;
    const char *s = ast_op_str(n->op);
    if (s && strlen(s) > 1) l.end_col = n->op_col + (int)strlen(s) - 1;
    return l;
}

/* -- names -- */

Value eval_lookup(Interp *I, Env *env, const char *name, bool *found) {
    for (Env *e = env; e; e = e->parent) {
        if (e->model) {
            Value *f = rt_model_field(e->model, name);
            if (f) {
                *found = true;
                if (I->cap.rec) rt_capture_lookup(I, env, e, e->model, (int)(f - e->model->fields));
                return rt_retain(*f);
            }
            const AstNode *m = model_method(e->model, name);
            if (m) {
                *found = true;
                return model_bind_method(I, e->model, m);
            }
        }
        Value *v = env_find_local(e, name);
        if (v) {
            *found = true;
            if (I->cap.rec) rt_capture_lookup(I, env, e, NULL, (int)(v - e->vals));
            return rt_retain(*v);
        }
    }
    *found = false;
    return VNONE;
}

Value rt_global(Interp *I, const char *name) {
    Value *v = env_find_local(I->ev.globals, name);
    if (!v) rt_error(I, "unknown name '%s'", name);
    return rt_retain(*v);
}

void rt_define_global(Interp *I, const char *name, Value v) {
    env_define(I, I->ev.globals, name, v);
}

/* -- arithmetic on numbers -- */

static bool is_number(Value v) {
    return v.kind == V_INT || v.kind == V_FLOAT || v.kind == V_BOOL;
}
static double num(Value v) {
    return v.kind == V_FLOAT ? v.f : v.kind == V_INT ? (double)v.i : (double)v.b;
}
static int64_t inum(Value v) {
    return v.kind == V_INT ? v.i : (int64_t)v.b;
}

/* Python's float divmod (floatobject.c): the floor quotient and a
 * remainder with the divisor's sign, consistent with each other. */
static double float_divmod(double x, double y, double *mod) {
    double m = fmod(x, y);
    double div = (x - m) / y;
    if (m != 0) {
        if ((y < 0) != (m < 0)) {
            m += y;
            div -= 1.0;
        }
    } else {
        m = copysign(0.0, y);
    }
    double q;
    if (div != 0) {
        q = floor(div);
        if (div - q > 0.5) q += 1.0;
    } else {
        q = copysign(0.0, x / y);
    }
    *mod = m;
    return q;
}

/* int // int, flooring toward -inf (INT64_MIN // -1 wraps, as * does) */
static int64_t int_floordiv(int64_t x, int64_t y) {
    if (y == -1) return (int64_t)(0 - (uint64_t)x);
    int64_t q = x / y;
    if (x % y != 0 && ((x < 0) != (y < 0))) q--;
    return q;
}

static Value number_binary(Interp *I, AstOp op, Value a, Value b) {
    bool fl = a.kind == V_FLOAT || b.kind == V_FLOAT;
    switch (op) {
    case AOP_ADD:
        return fl ? vfloat(num(a) + num(b))
                  : vint((int64_t)((uint64_t)inum(a) + (uint64_t)inum(b)));
    case AOP_SUB:
        return fl ? vfloat(num(a) - num(b))
                  : vint((int64_t)((uint64_t)inum(a) - (uint64_t)inum(b)));
    case AOP_MUL:
        return fl ? vfloat(num(a) * num(b))
                  : vint((int64_t)((uint64_t)inum(a) * (uint64_t)inum(b)));
    case AOP_DIV:
        if (num(b) == 0) rt_error(I, "division by zero");
        return vfloat(num(a) / num(b));
    case AOP_FLOORDIV:
        if (num(b) == 0) rt_error(I, "division by zero");
        if (fl) {
            double m;
            return vfloat(float_divmod(num(a), num(b), &m));
        }
        return vint(int_floordiv(inum(a), inum(b)));
    case AOP_MOD:
        if (fl) {
            double y = num(b), m;
            if (y == 0) rt_error(I, "modulo by zero");
            float_divmod(num(a), y, &m);
            return vfloat(m);
        } else {
            int64_t x = inum(a), y = inum(b);
            if (y == 0) rt_error(I, "modulo by zero");
            if (y == -1) return vint(0);
            int64_t r = x % y;
            if (r != 0 && (r < 0) != (y < 0)) r += y;
            return vint(r);
        }
    case AOP_POW:
        if (!fl && inum(b) >= 0) return vint(tt_int_pow(inum(a), inum(b)));
        return vfloat(pow(num(a), num(b)));
    case AOP_EQ:
        return vbool(num(a) == num(b));
    case AOP_NE:
        return vbool(num(a) != num(b));
    case AOP_LT:
        return vbool(fl ? num(a) < num(b) : inum(a) < inum(b));
    case AOP_LE:
        return vbool(fl ? num(a) <= num(b) : inum(a) <= inum(b));
    case AOP_GT:
        return vbool(fl ? num(a) > num(b) : inum(a) > inum(b));
    case AOP_GE:
        return vbool(fl ? num(a) >= num(b) : inum(a) >= inum(b));
    case AOP_MATMUL:
        rt_error(I, "'@' needs tensors, got %s and %s", rt_type_name(a), rt_type_name(b));
    default:
        TT_UNREACHABLE();
    }
}

/* -- tensors -- */

/* A number operand of a tensor op is a weak scalar: the tensor's dtype when
 * the number is an int or the tensor is float, else f32. A literal is a
 * constant; any other number a runtime input of the graph (scalars.c). */
static int operand_node(Interp *I, Value v, DType other, bool literal) {
    if (v.kind == V_TENSOR) return rt_node(I, (Tensor *)v.o);
    DType dt = (v.kind != V_FLOAT || other == TY_F32) ? other : TY_F32;
    return rt_scalar_node(I, dt, num(v), literal);
}

/* lit: I->ev.lit_operands of the operator being applied */
static Value tensor_binary_lit(Interp *I, OpKind op, Value a, Value b, unsigned lit) {
    DType da = a.kind == V_TENSOR ? ((Tensor *)a.o)->dtype : TY__COUNT;
    DType db = b.kind == V_TENSOR ? ((Tensor *)b.o)->dtype : TY__COUNT;
    if (da == TY__COUNT) da = db;
    if (db == TY__COUNT) db = da;
    int x = operand_node(I, a, db, lit & 1), y = operand_node(I, b, da, lit & 2);
    int r;
    if (op == OP_MATMUL) {
        r = ir_matmul(&I->lz.g, x, y, I->ev.loc);
    } else {
        if (op == OP_DIV && ir_node(&I->lz.g, x)->dtype != TY_F32 &&
            ir_node(&I->lz.g, y)->dtype != TY_F32) {
            /* true division, as in Python and PyTorch */
            x = rt_check_node(I, ir_cast(&I->lz.g, x, TY_F32, I->ev.loc));
            y = rt_check_node(I, ir_cast(&I->lz.g, y, TY_F32, I->ev.loc));
        }
        r = ir_binary(&I->lz.g, op, x, y, I->ev.loc);
    }
    return vtensor(rt_tensor_lazy(I, rt_check_node(I, r)));
}

Value tensor_binary(Interp *I, OpKind op, Value a, Value b) {
    return tensor_binary_lit(I, op, a, b, 0);
}

/* -- sequences -- */

static Value seq_concat(Interp *I, Value a, Value b) {
    List *x = (List *)a.o, *y = (List *)b.o;
    Value r = a.kind == V_LIST ? rt_list(I, x->len + y->len) : rt_tuple(I, x->len + y->len);
    List *l = (List *)r.o;
    for (int i = 0; i < x->len; i++) l->items[i] = rt_retain(x->items[i]);
    for (int i = 0; i < y->len; i++) l->items[x->len + i] = rt_retain(y->items[i]);
    return r;
}

static Value seq_repeat(Interp *I, Value s, int64_t n) {
    if (n < 0) n = 0;
    if (s.kind == V_STR) {
        Str *x = (Str *)s.o;
        if (x->len && (uint64_t)n > (1u << 30) / x->len) rt_error(I, "string repetition too large");
        StrBuf b = {0};
        sb_puts(&b, "");
        for (int64_t i = 0; i < n; i++) sb_puts(&b, x->s);
        Value r = rt_str(I, b.s, b.len);
        sb_free(&b);
        return r;
    }
    List *x = (List *)s.o;
    if (x->len && (uint64_t)n > (1u << 26) / (uint64_t)x->len)
        rt_error(I, "list repetition too large");
    int len = (int)(x->len * n);
    Value r = s.kind == V_LIST ? rt_list(I, len) : rt_tuple(I, len);
    for (int i = 0; i < len; i++) ((List *)r.o)->items[i] = rt_retain(x->items[i % x->len]);
    return r;
}

static int str_cmp(Value a, Value b) {
    Str *x = (Str *)a.o, *y = (Str *)b.o;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

static const char *op_name(AstOp op) {
    return ast_op_str(op);
}

static OpKind ir_op_of(AstOp op) {
    switch (op) {
    case AOP_ADD:
        return OP_ADD;
    case AOP_SUB:
        return OP_SUB;
    case AOP_MUL:
        return OP_MUL;
    case AOP_DIV:
        return OP_DIV;
    case AOP_POW:
        return OP_POW;
    case AOP_MATMUL:
        return OP_MATMUL;
    case AOP_EQ:
        return OP_EQ;
    case AOP_NE:
        return OP_NE;
    case AOP_LT:
        return OP_LT;
    case AOP_LE:
        return OP_LE;
    case AOP_GT:
        return OP_GT;
    case AOP_GE:
        return OP_GE;
    default:
        return OP__COUNT;
    }
}

/* floor(x) of an f32 node from primitives: an f32 of 2^23 or more in
 * magnitude (or inf, NaN) is already integral; below, truncate through i32
 * and step down where that rounded up. */
static int floor_node(Interp *I, int x) {
    IrGraph *g = &I->lz.g;
    SrcLoc at = I->ev.loc;
    int t = rt_check_node(I, ir_cast(g, rt_check_node(I, ir_cast(g, x, TY_I32, at)), TY_F32, at));
    int up = rt_check_node(I, ir_binary(g, OP_GT, t, x, at)); /* 0/1 mask */
    int fl = rt_check_node(I, ir_binary(g, OP_SUB, t, up, at));
    int ax = rt_check_node(I, ir_unary(g, OP_ABS, x, at));
    int big = rt_check_node(I, ir_const(g, TY_F32, shape_scalar(), 8388608.0, at));
    int small = rt_check_node(I, ir_binary(g, OP_LT, ax, big, at));
    return rt_check_node(I, ir_where(g, small, fl, x, at));
}

/* A checked elementwise node op(a, b) at I->ev.loc. */
static int bin_node(Interp *I, OpKind op, int a, int b) {
    return rt_check_node(I, ir_binary(&I->lz.g, op, a, b, I->ev.loc));
}

/* `a // b` and `a % b` on tensors, composed from primitives. f32: floor(a / b)
 * and a - b * floor(a / b) (PyTorch's floor_divide and remainder). Integers:
 * the truncating quotient stepped down when the remainder's sign differs
 * from the divisor's (Python's rule); x // 0 and x % 0 are 0 (NumPy's
 * results: tensor code does not trap). */
static Value tensor_floor_op(Interp *I, AstOp op, Value a, Value b, unsigned lit) {
    IrGraph *g = &I->lz.g;
    SrcLoc at = I->ev.loc;
    DType da = a.kind == V_TENSOR ? ((Tensor *)a.o)->dtype : TY__COUNT;
    DType db = b.kind == V_TENSOR ? ((Tensor *)b.o)->dtype : TY__COUNT;
    if (da == TY__COUNT) da = db;
    if (db == TY__COUNT) db = da;
    int x = operand_node(I, a, db, lit & 1), y = operand_node(I, b, da, lit & 2);
    DType dx = ir_node(g, x)->dtype, dy = ir_node(g, y)->dtype;
    DType dt = TY_I8;
    if (dx == TY_F32 || dy == TY_F32)
        dt = TY_F32;
    else if (dx == TY_I32 || dy == TY_I32)
        dt = TY_I32;
    x = rt_check_node(I, ir_cast(g, x, dt, at));
    y = rt_check_node(I, ir_cast(g, y, dt, at));
    if (dt == TY_F32) {
        int q = floor_node(I, bin_node(I, OP_DIV, x, y));
        int r = op == AOP_FLOORDIV ? q : bin_node(I, OP_SUB, x, bin_node(I, OP_MUL, q, y));
        return vtensor(rt_tensor_lazy(I, r));
    }
    int zero = rt_check_node(I, ir_const(g, dt, shape_scalar(), 0, at));
    int q = bin_node(I, OP_DIV, x, y); /* truncates; x / 0 = 0 */
    int rem = bin_node(I, OP_SUB, x, bin_node(I, OP_MUL, q, y));
    /* step down where rem != 0, sign(rem) != sign(y) and y != 0 (f32 masks) */
    int differ = bin_node(I, OP_NE, bin_node(I, OP_LT, rem, zero), bin_node(I, OP_LT, y, zero));
    int ydef = bin_node(I, OP_NE, y, zero);
    int adj = bin_node(I, OP_MUL, bin_node(I, OP_MUL, bin_node(I, OP_NE, rem, zero), differ), ydef);
    adj = rt_check_node(I, ir_cast(g, adj, dt, at)); /* 0/1 in the operands' dtype */
    int r;
    if (op == AOP_FLOORDIV) {
        r = bin_node(I, OP_SUB, q, adj);
    } else { /* a - (q - adj) * b = rem + adj * b, and 0 where b is 0 */
        int m = bin_node(I, OP_ADD, rem, bin_node(I, OP_MUL, adj, y));
        r = bin_node(I, OP_MUL, m, rt_check_node(I, ir_cast(g, ydef, dt, at)));
    }
    return vtensor(rt_tensor_lazy(I, r));
}

/* The key of a missing-key error: 'x' for strings (as Python's KeyError),
 * else the value's repr. */
static void key_desc(Interp *I, Value key, StrBuf *out) {
    if (key.kind == V_STR) {
        sb_putc(out, '\'');
        sb_puts(out, ((Str *)key.o)->s);
        sb_putc(out, '\'');
    } else {
        rt_format(I, key, out, true);
    }
}

static Value dict_get(Interp *I, Value d, Value key) {
    Value *v = rt_dict_find(I, d, key);
    if (v) return rt_retain(*v);
    char msg[256];
    StrBuf b = {0};
    sb_puts(&b, "");
    key_desc(I, key, &b);
    snprintf(msg, sizeof msg, "%.200s%s", b.s, b.len > 200 ? "..." : "");
    sb_free(&b);
    rt_error(I, "key %s not found", msg);
}

Value eval_binary_values(Interp *I, AstOp op, Value a, Value b) {
    unsigned lit = I->ev.lit_operands; /* set by the caller for this operator only */
    I->ev.lit_operands = 0;
    if (op == AOP_IN) return vbool(rt_contains(I, b, a));
    if (op == AOP_NOT_IN) return vbool(!rt_contains(I, b, a));
    bool ta = a.kind == V_TENSOR, tb = b.kind == V_TENSOR;
    if (ta || tb) {
        if ((ta || is_number(a)) && (tb || is_number(b))) {
            if (op == AOP_MOD || op == AOP_FLOORDIV) return tensor_floor_op(I, op, a, b, lit);
            OpKind k = ir_op_of(op);
            if (k == OP__COUNT) TT_UNREACHABLE();
            return tensor_binary_lit(I, k, a, b, lit);
        }
        if (op == AOP_EQ) return vbool(false);
        if (op == AOP_NE) return vbool(true);
        rt_error(I, "unsupported operand types for '%s': %s and %s", op_name(op), rt_type_name(a),
                 rt_type_name(b));
    }
    if (is_number(a) && is_number(b)) return number_binary(I, op, a, b);
    if (op == AOP_EQ) return vbool(rt_equal(I, a, b));
    if (op == AOP_NE) return vbool(!rt_equal(I, a, b));
    if (a.kind == V_STR && b.kind == V_STR) {
        switch (op) {
        case AOP_ADD: {
            Str *x = (Str *)a.o, *y = (Str *)b.o;
            char *buf = tt_xmalloc(x->len + y->len + 1);
            memcpy(buf, x->s, x->len);
            memcpy(buf + x->len, y->s, y->len);
            Value r = rt_str(I, buf, x->len + y->len);
            free(buf);
            return r;
        }
        case AOP_LT:
            return vbool(str_cmp(a, b) < 0);
        case AOP_LE:
            return vbool(str_cmp(a, b) <= 0);
        case AOP_GT:
            return vbool(str_cmp(a, b) > 0);
        case AOP_GE:
            return vbool(str_cmp(a, b) >= 0);
        default:
            break;
        }
    }
    if (op == AOP_ADD && a.kind == b.kind && (a.kind == V_LIST || a.kind == V_TUPLE))
        return seq_concat(I, a, b);
    if (op == AOP_MUL && (a.kind == V_STR || a.kind == V_LIST || a.kind == V_TUPLE) &&
        (b.kind == V_INT || b.kind == V_BOOL))
        return seq_repeat(I, a, inum(b));
    if (op == AOP_MUL && (b.kind == V_STR || b.kind == V_LIST || b.kind == V_TUPLE) &&
        (a.kind == V_INT || a.kind == V_BOOL))
        return seq_repeat(I, b, inum(a));
    rt_error(I, "unsupported operand types for '%s': %s and %s", op_name(op), rt_type_name(a),
             rt_type_name(b));
}

static Value eval_unary(Interp *I, AstOp op, Value v) {
    if (op == AOP_NOT) return vbool(!rt_truthy(I, v));
    switch (v.kind) {
    case V_INT:
        return vint((int64_t)(0 - (uint64_t)v.i));
    case V_BOOL:
        return vint(-(int64_t)v.b);
    case V_FLOAT:
        return vfloat(-v.f);
    case V_TENSOR: {
        int x = rt_node(I, (Tensor *)v.o);
        return vtensor(
            rt_tensor_lazy(I, rt_check_node(I, ir_unary(&I->lz.g, OP_NEG, x, I->ev.loc))));
    }
    default:
        rt_error(I, "bad operand type for unary '-': %s", rt_type_name(v));
    }
}

/* -- indexing -- */

/* A number written in the source: 2, 0.5, -1e-5. Literals stay constants
 * of the graph; other numbers become its runtime inputs (scalars.c). */
static bool is_literal(const AstNode *n) {
    if (n->kind == AST_UNARY && n->op == AOP_NEG) n = n->a;
    return n->kind == AST_INT || n->kind == AST_FLOAT || n->kind == AST_BOOL;
}

typedef enum SubKind { SUB_INT, SUB_SLICE, SUB_ELLIPSIS, SUB_TENSOR } SubKind;

typedef struct Sub {
    SubKind kind;
    int64_t i;
    IrSliceDim s;
    Tensor *t; /* borrowed from vals */
    SrcLoc loc;
    bool lit; /* SUB_INT: a literal in the source */
} Sub;

static int64_t slice_part(Interp *I, Env *env, const AstNode *n, bool *has) {
    if (!n) {
        *has = false;
        return 0;
    }
    Value v = eval_expr(I, env, n);
    *has = v.kind != V_NONE;
    int64_t r = 0;
    int mark = rt_owned_mark(I);
    rt_own(I, v);
    if (*has) {
        I->ev.loc = n->loc;
        r = rt_to_int(I, v, "slice bound");
    }
    rt_owned_pop(I, mark);
    rt_release(I, v);
    return r;
}

/* Python's slice.indices: the positions a slice selects in a sequence of
 * length len. */
static int64_t slice_positions(Interp *I, const IrSliceDim *s, int64_t len, int64_t *start,
                               int64_t *step) {
    int64_t st = s->has_step ? s->step : 1;
    if (st == 0) rt_error(I, "slice step cannot be zero");
    int64_t lo, hi;
    if (st > 0) {
        lo = s->has_start ? s->start : 0;
        hi = s->has_stop ? s->stop : len;
        if (lo < 0) lo += len;
        if (lo < 0) lo = 0;
        if (lo > len) lo = len;
        if (hi < 0) hi += len;
        if (hi < 0) hi = 0;
        if (hi > len) hi = len;
        *start = lo;
        *step = st;
        return hi > lo ? (hi - lo + st - 1) / st : 0;
    }
    lo = s->has_start ? s->start : len - 1;
    hi = s->has_stop ? s->stop : -len - 1;
    if (lo < 0) lo += len;
    if (lo < -1) lo = -1;
    if (lo >= len) lo = len - 1;
    if (hi < 0) hi += len;
    if (hi < -1) hi = -1;
    if (hi >= len) hi = len - 1;
    *start = lo;
    *step = st;
    return lo > hi ? (lo - hi + (-st) - 1) / (-st) : 0;
}

static int64_t norm_index(Interp *I, int64_t i, int64_t len, const char *what) {
    int64_t j = i < 0 ? i + len : i;
    if (j < 0 || j >= len)
        rt_error(I, "index %lld is out of range for %s of length %lld", (long long)i, what,
                 (long long)len);
    return j;
}

static Value index_seq(Interp *I, Value base, const Sub *sub) {
    const char *what = base.kind == V_STR ? "string" : base.kind == V_LIST ? "list" : "tuple";
    /* strings count code points */
    int64_t len = base.kind == V_STR ? (int64_t)((Str *)base.o)->nchars : ((List *)base.o)->len;
    if (sub->kind == SUB_INT) {
        int64_t j = norm_index(I, sub->i, len, what);
        if (base.kind == V_STR) return rt_str_char(I, base, j);
        return rt_retain(((List *)base.o)->items[j]);
    }
    if (sub->kind != SUB_SLICE) rt_error(I, "%s indices must be ints or slices", what);
    int64_t start, step, n = slice_positions(I, &sub->s, len, &start, &step);
    if (base.kind == V_STR) return str_slice(I, base, start, step, n);
    Value r = base.kind == V_LIST ? rt_list(I, (int)n) : rt_tuple(I, (int)n);
    for (int64_t k = 0; k < n; k++)
        ((List *)r.o)->items[k] = rt_retain(((List *)base.o)->items[start + k * step]);
    return r;
}

/* PyTorch's advanced indexing: an index i in [-n, 0) stands for i + n.
 * Built as where(-n <= i < 0, i + n, i), so an index still outside [0, n)
 * reaches the gather's check with the value the user wrote. (Beyond
 * INT32_MAX rows i + n would not fit the i32 index: no wrapping there.) */
static int wrap_negative(Interp *I, int idx, int64_t n) {
    IrGraph *g = &I->lz.g;
    SrcLoc at = I->ev.loc;
    int zero = rt_check_node(I, ir_const(g, TY_I32, shape_scalar(), 0, at));
    int len = rt_check_node(I, ir_const(g, TY_I32, shape_scalar(), (double)n, at));
    int neg_len = rt_check_node(I, ir_const(g, TY_I32, shape_scalar(), -(double)n, at));
    int lt = rt_check_node(I, ir_binary(g, OP_LT, idx, zero, at));
    int ge = rt_check_node(I, ir_binary(g, OP_GE, idx, neg_len, at));
    int wrap = rt_check_node(I, ir_binary(g, OP_MUL, lt, ge, at)); /* both: 0/1 masks */
    int plus = rt_check_node(I, ir_binary(g, OP_ADD, idx, len, at));
    return rt_check_node(I, ir_where(g, wrap, plus, idx, at));
}

/* Applies subs to the dims of node x from dim `first` on. */
static int index_tensor_node(Interp *I, int x, Sub *subs, int nsubs, int first) {
    const Shape sh = ir_node(&I->lz.g, x)->shape;
    int nd = sh.ndim;
    /* a tensor index gathers rows of the first remaining dim */
    if (nsubs > 0 && subs[0].kind == SUB_TENSOR) {
        if (first != 0) rt_error(I, "a tensor index is only supported as the first index");
        int idx = rt_node(I, subs[0].t);
        int idx_nd = subs[0].t->shape.ndim;
        if (nd >= 1 && sh.d[0] <= INT32_MAX) idx = wrap_negative(I, idx, sh.d[0]);
        int r = rt_check_node(I, ir_gather(&I->lz.g, x, idx, rt_user_loc(I)));
        if (nsubs == 1) return r;
        /* the rest applies to the table's remaining dims */
        Sub *rest = subs + 1;
        int nrest = nsubs - 1;
        Shape rs = ir_node(&I->lz.g, r)->shape;
        IrSliceDim dims[IR_MAXDIM] = {0};
        bool drop[IR_MAXDIM] = {0};
        int count = 0;
        for (int k = 0; k < nrest; k++) {
            if (rest[k].kind == SUB_ELLIPSIS || rest[k].kind == SUB_TENSOR)
                rt_error(I, "'...' or a second tensor index after a tensor index is not supported");
        }
        if (idx_nd + nrest > rs.ndim)
            rt_error(I, "too many indices (%d) for a tensor with %d dimensions", nsubs, nd);
        for (int k = 0; k < idx_nd; k++) dims[count++] = (IrSliceDim){0};
        for (int k = 0; k < nrest; k++) {
            int d = idx_nd + k;
            if (rest[k].kind == SUB_INT) {
                int64_t size = rs.d[d];
                int64_t j = rest[k].i < 0 ? rest[k].i + size : rest[k].i;
                if (j < 0 || j >= size)
                    rt_error(I, "index %lld is out of range for dimension %d of size %lld",
                             (long long)rest[k].i, d - idx_nd + 1, (long long)size);
                dims[count++] = (IrSliceDim){true, true, false, j, j + 1, 0};
                drop[d] = true;
            } else {
                dims[count++] = rest[k].s;
            }
        }
        r = rt_check_node(I, ir_slice(&I->lz.g, r, dims, count, I->ev.loc));
        Shape s2 = ir_node(&I->lz.g, r)->shape, out = {0};
        for (int d = 0; d < s2.ndim; d++)
            if (!drop[d]) out.d[out.ndim++] = s2.d[d];
        return rt_check_node(I, ir_reshape(&I->lz.g, r, out, I->ev.loc));
    }
    /* expand `...` */
    int nell = 0, nreal = 0;
    for (int k = 0; k < nsubs; k++) {
        if (subs[k].kind == SUB_ELLIPSIS)
            nell++;
        else if (subs[k].kind == SUB_TENSOR)
            rt_error(I, "a tensor index is only supported as the first index");
        else
            nreal++;
    }
    if (nell > 1) rt_error(I, "an index can only have a single ellipsis ('...')");
    if (nreal > nd) {
        char s[96];
        rt_error(I, "too many indices (%d) for a tensor of shape %s", nreal,
                 shape_str(&sh, s, sizeof s));
    }
    IrSliceDim dims[IR_MAXDIM];
    bool drop[IR_MAXDIM] = {0};
    bool dynamic = false; /* an int index that is not a literal */
    int d = 0;
    for (int k = 0; k < nsubs; k++) {
        if (subs[k].kind == SUB_ELLIPSIS) {
            for (int e = 0; e < nd - nreal; e++) dims[d++] = (IrSliceDim){0};
            continue;
        }
        if (subs[k].kind == SUB_INT) {
            int64_t size = sh.d[d];
            int64_t j = subs[k].i < 0 ? subs[k].i + size : subs[k].i;
            if (j < 0 || j >= size) {
                I->ev.loc = subs[k].loc;
                rt_error(I, "index %lld is out of range for dimension %d of size %lld",
                         (long long)subs[k].i, d, (long long)size);
            }
            dims[d] = (IrSliceDim){true, true, false, j, j + 1, 0};
            drop[d] = true;
            dynamic = dynamic || !subs[k].lit;
        } else {
            dims[d] = subs[k].s;
            if (dims[d].has_step && dims[d].step < 1)
                rt_error(I, "tensor slices need a positive step, got %lld",
                         (long long)dims[d].step);
        }
        d++;
    }
    bool any = false;
    for (int k = 0; k < nd; k++) any = any || drop[k];
    if (dynamic) { /* int indices are runtime inputs: one graph for every i, j */
        int r = rt_index_ints(I, x, dims, drop, d);
        if (r >= 0) return r;
    }
    int r = rt_check_node(I, ir_slice(&I->lz.g, x, dims, d, I->ev.loc));
    if (!any) return r;
    Shape s2 = ir_node(&I->lz.g, r)->shape, out = {0};
    for (int k = 0; k < s2.ndim; k++)
        if (!drop[k]) out.d[out.ndim++] = s2.d[k];
    return rt_check_node(I, ir_reshape(&I->lz.g, r, out, I->ev.loc));
}

static Value index_value(Interp *I, Value base, Sub *subs, int nsubs, SrcLoc loc) {
    switch (base.kind) {
    case V_STR:
    case V_LIST:
    case V_TUPLE:
        if (nsubs != 1)
            rt_error(I, "%s indices take one subscript, got %d", rt_type_name(base), nsubs);
        return index_seq(I, base, &subs[0]);
    case V_RANGE: {
        Range *r = (Range *)base.o;
        int64_t step = rt_range_step(r), len = rt_range_len(r);
        if (nsubs == 1 && subs[0].kind == SUB_SLICE) { /* a range, as in Python */
            int64_t start, st, n = slice_positions(I, &subs[0].s, len, &start, &st);
            int64_t lo = (int64_t)((uint64_t)r->lo + (uint64_t)start * (uint64_t)step);
            int64_t nstep = (int64_t)((uint64_t)step * (uint64_t)st);
            return rt_range(I, lo, (int64_t)((uint64_t)lo + (uint64_t)n * (uint64_t)nstep), nstep);
        }
        if (nsubs != 1 || subs[0].kind != SUB_INT)
            rt_error(I, "ranges take one int index or a slice");
        int64_t j = norm_index(I, subs[0].i, len, "range");
        return vint((int64_t)((uint64_t)r->lo + (uint64_t)j * (uint64_t)step));
    }
    case V_TENSOR: {
        Tensor *t = (Tensor *)base.o;
        if (t->shape.ndim == 0) rt_error(I, "cannot index a 0-d tensor");
        int x = rt_node(I, t);
        I->ev.loc = loc;
        return vtensor(rt_tensor_lazy(I, index_tensor_node(I, x, subs, nsubs, 0)));
    }
    default:
        rt_error(I, "%s cannot be indexed", rt_type_name(base));
    }
}

/* Evaluates the subscripts of an AST_INDEX into subs (tensor subscripts are
 * retained in vals[]). */
static int eval_subs(Interp *I, Env *env, const AstNode *n, Sub *subs, Value *vals) {
    int ns = n->list.len;
    if (ns > IR_MAXDIM + 1) {
        I->ev.loc = n->loc;
        rt_error(I, "too many indices (%d)", ns);
    }
    for (int k = 0; k < ns; k++) {
        const AstNode *s = n->list.items[k];
        vals[k] = VNONE;
        subs[k] = (Sub){0};
        subs[k].loc = s->loc;
        if (s->kind == AST_ELLIPSIS) {
            subs[k].kind = SUB_ELLIPSIS;
        } else if (s->kind == AST_SLICE) {
            subs[k].kind = SUB_SLICE;
            subs[k].s.start = slice_part(I, env, s->a, &subs[k].s.has_start);
            subs[k].s.stop = slice_part(I, env, s->b, &subs[k].s.has_stop);
            subs[k].s.step = slice_part(I, env, s->c, &subs[k].s.has_step);
        } else {
            Value v = eval_expr(I, env, s);
            rt_own(I, v); /* popped by the caller's mark (an int is no object) */
            if (v.kind == V_TENSOR) {
                subs[k].kind = SUB_TENSOR;
                subs[k].t = (Tensor *)v.o;
                vals[k] = v;
            } else {
                I->ev.loc = s->loc;
                if (v.kind != V_INT && v.kind != V_BOOL)
                    rt_error(I, "indices must be ints, slices, '...' or i32 tensors, got %s",
                             rt_type_name(v));
                subs[k].kind = SUB_INT;
                subs[k].lit = is_literal(s);
                subs[k].i = rt_to_int(I, v, "index");
                rt_release(I, v);
            }
        }
    }
    return ns;
}

static SrcLoc op_tok_loc(const AstNode *n) {
    if (n->op_line <= 0) return n->loc;
    SrcLoc l = n->loc;
    l.line = l.end_line = n->op_line;
    l.col = l.end_col = n->op_col;
    return l;
}

/* The key of d[k] (d[a, b] is the tuple key (a, b), as in Python). */
static Value eval_dict_key(Interp *I, Env *env, const AstNode *n) {
    for (int k = 0; k < n->list.len; k++) {
        const AstNode *s = n->list.items[k];
        if (s->kind == AST_SLICE || s->kind == AST_ELLIPSIS) {
            I->ev.loc = s->loc;
            rt_error(I, "a dict key cannot be a slice or '...'");
        }
    }
    if (n->list.len == 1) return eval_expr(I, env, n->list.items[0]);
    Value t = rt_tuple(I, 0);
    int mark = rt_owned_mark(I);
    rt_own(I, t);
    for (int k = 0; k < n->list.len; k++) rt_list_push(I, t, eval_expr(I, env, n->list.items[k]));
    rt_owned_pop(I, mark);
    return t;
}

static Value eval_index_node(Interp *I, Env *env, const AstNode *n) {
    Value base = eval_expr(I, env, n->a);
    int mark = rt_owned_mark(I);
    rt_own(I, base);
    if (base.kind == V_DICT) {
        Value key = eval_dict_key(I, env, n);
        rt_own(I, key);
        I->ev.loc = n->loc;
        Value r = dict_get(I, base, key);
        rt_owned_pop(I, mark);
        rt_release(I, key);
        rt_release(I, base);
        return r;
    }
    Sub subs[IR_MAXDIM + 1];
    Value vals[IR_MAXDIM + 1];
    int ns = eval_subs(I, env, n, subs, vals);
    I->ev.loc = n->loc;
    Value r = index_value(I, base, subs, ns, n->loc);
    rt_owned_pop(I, mark);
    for (int k = 0; k < ns; k++) rt_release(I, vals[k]);
    rt_release(I, base);
    return r;
}

/* list[i] = v */
void eval_index_assign(Interp *I, Env *env, const AstNode *target, Value v) {
    Value base = eval_expr(I, env, target->a);
    int mark = rt_owned_mark(I);
    rt_own(I, base);
    if (base.kind == V_DICT) {
        Value key = eval_dict_key(I, env, target);
        rt_own(I, key);
        I->ev.loc = target->loc;
        rt_dict_set(I, base, key, rt_retain(v));
        rt_owned_pop(I, mark);
        rt_release(I, key);
        rt_release(I, base);
        return;
    }
    Sub subs[IR_MAXDIM + 1];
    Value vals[IR_MAXDIM + 1];
    int ns = eval_subs(I, env, target, subs, vals);
    I->ev.loc = target->loc;
    if (base.kind == V_LIST) {
        if (ns != 1 || subs[0].kind != SUB_INT) rt_error(I, "list assignment needs one int index");
        List *l = (List *)base.o;
        int64_t j = norm_index(I, subs[0].i, l->len, "list");
        Value old = l->items[j];
        l->items[j] = rt_retain(v);
        rt_release(I, old);
    } else if (base.kind == V_TUPLE || base.kind == V_STR) {
        rt_error(I, "%s values are immutable", rt_type_name(base));
    } else if (base.kind == V_TENSOR) {
        rt_error(I, "tensors are immutable: build a new one (e.g. with where or concat)");
    } else {
        rt_error(I, "%s does not support item assignment", rt_type_name(base));
    }
    rt_owned_pop(I, mark);
    for (int k = 0; k < ns; k++) rt_release(I, vals[k]);
    rt_release(I, base);
}

/* -- members -- */

static Value list_append(Interp *I, Value self, const Value *args, int nargs,
                         const char *const *kwnames, const Value *kwargs, int nkw) {
    static const char *const names[] = {"x", NULL};
    Value a[1];
    rt_bind_args(I, "append", names, 1, args, nargs, kwnames, kwargs, nkw, a);
    rt_list_push(I, self, rt_retain(a[0]));
    return VNONE;
}

static Value list_pop(Interp *I, Value self, const Value *args, int nargs,
                      const char *const *kwnames, const Value *kwargs, int nkw) {
    static const char *const names[] = {NULL};
    Value a[1];
    rt_bind_args(I, "pop", names, 0, args, nargs, kwnames, kwargs, nkw, a);
    List *l = (List *)self.o;
    if (l->len == 0) rt_error(I, "pop from an empty list");
    return l->items[--l->len];
}

Value rt_member(Interp *I, Value obj, const char *name) {
    switch (obj.kind) {
    case V_TENSOR: {
        Tensor *t = (Tensor *)obj.o;
        if (strcmp(name, "shape") == 0) {
            Value l = rt_list(I, t->shape.ndim);
            for (int i = 0; i < t->shape.ndim; i++) ((List *)l.o)->items[i] = vint(t->shape.d[i]);
            return l;
        }
        if (strcmp(name, "dtype") == 0) return rt_cstr(I, dtype_name(t->dtype));
        if (strcmp(name, "ndim") == 0) return vint(t->shape.ndim);
        if (strcmp(name, "grad") == 0) {
            if (I->cap.rec) rt_capture_tensor_read(I, t->grad);
            return t->grad ? rt_retain(vtensor(t->grad)) : VNONE;
        }
        if (strcmp(name, "name") == 0) return t->name ? rt_cstr(I, t->name) : VNONE;
        if (strcmp(name, "T") == 0) {
            int x = rt_node(I, t);
            if (t->shape.ndim < 2) return rt_retain(obj);
            return vtensor(
                rt_tensor_lazy(I, rt_check_node(I, ir_transpose(&I->lz.g, x, -2, -1, I->ev.loc))));
        }
        break;
    }
    case V_RECORD: {
        Record *r = (Record *)obj.o;
        for (int i = 0; i < r->len; i++)
            if (strcmp(r->names[i], name) == 0) return rt_retain(r->vals[i]);
        break;
    }
    case V_MODEL: {
        Model *m = (Model *)obj.o;
        Value *f = rt_model_field(m, name);
        if (f) {
            if (I->cap.rec) rt_capture_field(I, m, (int)(f - m->fields));
            return rt_retain(*f);
        }
        const AstNode *def = model_method(m, name);
        if (def) return model_bind_method(I, m, def);
        rt_error(I, "model %s has no field or method '%s'", m->type_name, name);
    }
    case V_LIST:
        if (strcmp(name, "append") == 0) return rt_builtin(I, "append", list_append, obj);
        if (strcmp(name, "pop") == 0) return rt_builtin(I, "pop", list_pop, obj);
        break;
    case V_RANGE:
        if (strcmp(name, "lo") == 0) return vint(((Range *)obj.o)->lo);
        if (strcmp(name, "hi") == 0) return vint(((Range *)obj.o)->hi);
        if (strcmp(name, "step") == 0) return vint(rt_range_step((Range *)obj.o));
        break;
    case V_STR: {
        Value out;
        if (rt_str_member(I, obj, name, &out)) return out;
        break;
    }
    case V_DICT: {
        Value out;
        if (rt_dict_member(I, obj, name, &out)) return out;
        rt_error(I, "dict has no member '%s' (read a key with d[k] or d.get(k))", name);
    }
    case V_NATIVE: {
        Native *n = (Native *)obj.o;
        Value out;
        if (n->cls->member && n->cls->member(I, obj.o, name, &out)) {
            /* a method is checked when called; anything else is its state */
            if (I->cap.rec && out.kind != V_BUILTIN)
                rt_capture_forbid(I, "reads the state of a native object");
            return out;
        }
        rt_error(I, "%s has no member '%s'", n->cls->name, name);
    }
    default:
        break;
    }
    rt_error(I, "%s has no member '%s'", rt_type_name(obj), name);
}

/* -- calls -- */

Value rt_call(Interp *I, Value fn, const Value *args, int nargs, const char *const *kwnames,
              const Value *kwargs, int nkw) {
    switch (fn.kind) {
    case V_BUILTIN: {
        Builtin *b = (Builtin *)fn.o;
        if (!I->cap.rec) return b->fn(I, b->self, args, nargs, kwnames, kwargs, nkw);
        int token = rt_capture_builtin_enter(I, b);
        Value r = b->fn(I, b->self, args, nargs, kwnames, kwargs, nkw);
        rt_capture_builtin_leave(I, token);
        return r;
    }
    case V_FUNC:
        return rt_capture_call(I, (Func *)fn.o, args, nargs, kwnames, kwargs, nkw);
    case V_MODELDEF:
        return model_instantiate(I, (ModelDef *)fn.o, args, nargs, kwnames, kwargs, nkw);
    case V_MODEL: {
        Model *m = (Model *)fn.o;
        const AstNode *def = model_method(m, "forward");
        if (!def) rt_error(I, "model %s has no forward method to call", m->type_name);
        Value f = model_bind_method(I, m, def);
        int mark = rt_owned_mark(I);
        rt_own(I, f);
        Value r = rt_capture_call(I, (Func *)f.o, args, nargs, kwnames, kwargs, nkw);
        rt_owned_pop(I, mark);
        rt_release(I, f);
        return r;
    }
    default:
        rt_error(I, "%s is not callable", rt_type_name(fn));
    }
}

static Value eval_call(Interp *I, Env *env, const AstNode *n) {
    Value fn = eval_expr(I, env, n->a);
    int mark = rt_owned_mark(I);
    rt_own(I, fn);
    int na = n->list.len;
    Value sbuf[8], kbuf[8];
    const char *nbuf[8];
    Value *args = na <= 8 ? sbuf : tt_xmalloc((size_t)na * sizeof *args);
    Value *kw = na <= 8 ? kbuf : tt_xmalloc((size_t)na * sizeof *kw);
    const char **kwn = na <= 8 ? nbuf : tt_xmalloc((size_t)na * sizeof *kwn);
    if (args != sbuf) {
        rt_own_mem(I, args);
        rt_own_mem(I, kw);
        rt_own_mem(I, kwn);
    }
    int np = 0, nk = 0;
    for (int i = 0; i < na; i++) {
        const AstNode *arg = n->list.items[i];
        const AstNode *e = arg->kind == AST_ARG ? arg->a : arg;
        const char *kname = arg->kind == AST_ARG ? arg->str : NULL;
        if (!kname && nk > 0) {
            I->ev.loc = arg->loc;
            rt_error(I, "positional argument follows keyword argument");
        }
        Value v = eval_expr(I, env, e);
        rt_own(I, v);
        if (kname) {
            for (int k = 0; k < nk; k++)
                if (strcmp(kwn[k], kname) == 0) {
                    I->ev.loc = arg->loc;
                    rt_error(I, "keyword argument '%s' repeated", kname);
                }
            kwn[nk] = kname;
            kw[nk++] = v;
        } else {
            args[np++] = v;
        }
    }
    I->ev.loc = n->loc;
    Value r = rt_call(I, fn, args, np, kwn, kw, nk);
    rt_owned_pop(I, mark);
    for (int i = 0; i < np; i++) rt_release(I, args[i]);
    for (int i = 0; i < nk; i++) rt_release(I, kw[i]);
    if (args != sbuf) {
        free(args);
        free(kw);
        free(kwn);
    }
    rt_release(I, fn);
    return r;
}

void rt_bind_args(Interp *I, const char *fname, const char *const *names, int required,
                  const Value *args, int nargs, const char *const *kwnames, const Value *kwargs,
                  int nkw, Value *out) {
    int n = 0;
    while (names[n]) n++;
    for (int i = 0; i < n; i++) out[i] = (Value){.kind = V_NONE, .i = -1};
    if (nargs > n)
        rt_error(I, "%s() takes %s%d argument%s but %d were given", fname,
                 required < n ? "at most " : "", n, n == 1 ? "" : "s", nargs);
    for (int i = 0; i < nargs; i++) out[i] = args[i];
    for (int k = 0; k < nkw; k++) {
        int j = 0;
        while (j < n && strcmp(names[j], kwnames[k]) != 0) j++;
        if (j == n) rt_error(I, "%s() got an unexpected keyword argument '%s'", fname, kwnames[k]);
        if (rt_given(out[j]))
            rt_error(I, "%s() got multiple values for argument '%s'", fname, kwnames[k]);
        out[j] = kwargs[k];
        if (out[j].kind == V_NONE) out[j].i = 0;
    }
    for (int i = 0; i < nargs; i++)
        if (out[i].kind == V_NONE) out[i].i = 0;
    for (int i = 0; i < required; i++)
        if (!rt_given(out[i])) rt_error(I, "%s() missing argument '%s'", fname, names[i]);
}

/* -- the evaluator -- */

/* The stack budget ran out (stack.h) at node n. When most of the stack is
 * held by the calls on the chain rather than by the innermost call's own
 * expression, the recursion is the culprit: the error points at the
 * innermost call site, the same place whatever the frame sizes are. */
static _Noreturn void stack_overflow(Interp *I, const AstNode *n) {
    char lim[32];
    tt_stack_describe(lim, sizeof lim);
    if (I->ev.nframes > 0) {
        const CallFrame *f = &I->ev.frames[I->ev.nframes - 1];
        uintptr_t here = tt_stack_pos();
        size_t own = f->stack > here ? f->stack - here : 0;
        if (own < tt_stack_budget() / 2)
            rt_error_at(I, f->call_site,
                        "stack overflow: recursion too deep (%d calls) for the %s stack limit "
                        "(TT_STACK_LIMIT)",
                        I->ev.nframes, lim);
    }
    rt_error_at(I, n->loc, "expression too deeply nested for the %s stack limit (TT_STACK_LIMIT)",
                lim);
}

Value eval_expr(Interp *I, Env *env, const AstNode *n) {
    if (tt_stack_exhausted()) stack_overflow(I, n);
    switch (n->kind) {
    case AST_INT:
        return vint(n->ival);
    case AST_FLOAT:
        return vfloat(n->fval);
    case AST_STR:
        return rt_str(I, n->str, (size_t)n->ival);
    case AST_BOOL:
        return vbool(n->ival != 0);
    case AST_NONE:
        return VNONE;
    case AST_NAME: {
        bool found;
        Value v = eval_lookup(I, env, n->str, &found);
        if (!found) {
            I->ev.loc = n->loc;
            rt_error(I, "unknown name '%s'", n->str);
        }
        return v;
    }
    case AST_UNARY: {
        Value v = eval_expr(I, env, n->a);
        int mark = rt_owned_mark(I);
        rt_own(I, v);
        I->ev.loc = op_tok_loc(n);
        Value r = eval_unary(I, n->op, v);
        rt_owned_pop(I, mark);
        rt_release(I, v);
        return r;
    }
    case AST_BINARY: {
        Value a = eval_expr(I, env, n->a);
        int mark = rt_owned_mark(I);
        rt_own(I, a);
        if (n->op == AOP_AND || n->op == AOP_OR) {
            I->ev.loc = n->a->loc;
            bool t = rt_truthy(I, a);
            rt_owned_pop(I, mark);
            if ((n->op == AOP_AND) != t) return a;
            rt_release(I, a);
            return eval_expr(I, env, n->b);
        }
        Value b = eval_expr(I, env, n->b);
        rt_own(I, b);
        I->ev.loc = binary_op_loc(n);
        I->ev.lit_operands = (unsigned)is_literal(n->a) | (unsigned)is_literal(n->b) << 1;
        Value r = eval_binary_values(I, n->op, a, b);
        rt_owned_pop(I, mark);
        rt_release(I, a);
        rt_release(I, b);
        return r;
    }
    case AST_RANGE: {
        Value a = eval_expr(I, env, n->a);
        int mark = rt_owned_mark(I);
        rt_own(I, a);
        Value b = eval_expr(I, env, n->b);
        rt_own(I, b);
        I->ev.loc = n->loc;
        int64_t lo = rt_to_int(I, a, "range start"), hi = rt_to_int(I, b, "range end");
        rt_owned_pop(I, mark);
        rt_release(I, a);
        rt_release(I, b);
        return rt_range(I, lo, hi, 1);
    }
    case AST_CALL:
        return eval_call(I, env, n);
    case AST_INDEX:
        return eval_index_node(I, env, n);
    case AST_MEMBER: {
        Value base = eval_expr(I, env, n->a);
        int mark = rt_owned_mark(I);
        rt_own(I, base);
        I->ev.loc = n->loc;
        Value r = rt_member(I, base, n->str);
        rt_owned_pop(I, mark);
        rt_release(I, base);
        return r;
    }
    case AST_LIST:
    case AST_TUPLE: {
        int len = n->list.len;
        Value l = n->kind == AST_LIST ? rt_list(I, 0) : rt_tuple(I, 0);
        int mark = rt_owned_mark(I);
        rt_own(I, l); /* a half-built list holds what its items evaluated to */
        for (int i = 0; i < len; i++) rt_list_push(I, l, eval_expr(I, env, n->list.items[i]));
        rt_owned_pop(I, mark);
        return l;
    }
    case AST_RECORD: {
        int len = n->list.len;
        const char **names = tt_xmalloc((size_t)(len ? len : 1) * sizeof *names);
        for (int i = 0; i < len; i++) names[i] = n->list.items[i]->str;
        Value r = rt_record(I, len, names);
        free(names);
        int mark = rt_owned_mark(I);
        rt_own(I, r);
        for (int i = 0; i < len; i++) {
            for (int j = 0; j < i; j++)
                if (((Record *)r.o)->names[j] == ((Record *)r.o)->names[i]) {
                    I->ev.loc = n->list.items[i]->loc;
                    rt_error(I, "duplicate field '%s' in record", n->list.items[i]->str);
                }
            ((Record *)r.o)->vals[i] = eval_expr(I, env, n->list.items[i]->a);
        }
        rt_owned_pop(I, mark);
        return r;
    }
    case AST_REPEAT: {
        Value cnt = eval_expr(I, env, n->b);
        int mark = rt_owned_mark(I);
        rt_own(I, cnt);
        I->ev.loc = n->b->loc;
        int64_t k = rt_to_int(I, cnt, "repeat count");
        if (k < 0 || k > 100000000) rt_error(I, "repeat count %lld is out of range", (long long)k);
        rt_owned_pop(I, mark);
        rt_release(I, cnt);
        Value l = rt_list(I, 0);
        rt_own(I, l);
        for (int64_t i = 0; i < k; i++) rt_list_push(I, l, eval_expr(I, env, n->a));
        rt_owned_pop(I, mark);
        return l;
    }
    case AST_IFEXPR: { /* only the branch taken is evaluated */
        Value c = eval_expr(I, env, n->b);
        int mark = rt_owned_mark(I);
        rt_own(I, c);
        I->ev.loc = n->b->loc;
        bool t = rt_truthy(I, c);
        rt_owned_pop(I, mark);
        rt_release(I, c);
        return eval_expr(I, env, t ? n->a : n->c);
    }
    case AST_ARG:
        return eval_expr(I, env, n->a);
    case AST_PROFILE: { /* profile { ... } as a value: its record, no table */
        Value ret = VNONE;
        Flow f;
        Value r = rt_profile_block(I, env, n, &ret, &f, false);
        if (f != FLOW_NORMAL) {
            rt_release(I, ret);
            rt_release(I, r);
            I->ev.loc = n->loc;
            rt_error(I, "break, continue and return cannot leave a profile expression");
        }
        return r;
    }
    case AST_SLICE:
    case AST_ELLIPSIS:
        I->ev.loc = n->loc;
        rt_error(I, "slices and '...' are only allowed inside []");
    default:
        I->ev.loc = n->loc;
        rt_error(I, "%s is not an expression", ast_kind_name(n->kind));
    }
}
