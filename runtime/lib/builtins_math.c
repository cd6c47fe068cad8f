/* builtins_math.c - elementwise math, reductions and the few composite ops
 * that need C (one_hot, dropout, accuracy).
 *
 * Numbers in give numbers out (exp(1.0) is a float); a tensor anywhere
 * gives a lazy tensor built with ir_unary/ir_binary/ir_reduce. Softmax,
 * GELU, the losses and the layers are written in tt (lang/std/).
 */
#include "builtins_lib.h"
#include "scalar_math.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* An int or bool number as an int (no round trip through double). */
static int64_t int_of(Value v) {
    return v.kind == V_INT ? v.i : (int64_t)v.b;
}

/* ---- elementwise unary ---- */

static double d_rsqrt(double x) {
    return 1.0 / sqrt(x);
}
static double d_sigmoid(double x) {
    return tt_sigmoid(x);
}
static double d_relu(double x) {
    return x < 0 ? 0 : x; /* the kernel's: NaN and -0.0 pass through */
}

/* The unary math builtins: each elementwise unary op of ops.def with an
 * entry here is a builtin of the op's name (lib_register_math), this entry
 * its meaning on a number. An op that is not OPF_FLOAT keeps ints (relu(3)
 * and abs(-3) stay ints). */
static double (*const unary_num[OP__COUNT])(double) = {
    [OP_EXP] = exp,     [OP_LOG] = log,  [OP_SQRT] = sqrt, [OP_RSQRT] = d_rsqrt,
    [OP_TANH] = tanh,   [OP_SIN] = sin,  [OP_COS] = cos,   [OP_SIGMOID] = d_sigmoid,
    [OP_RELU] = d_relu, [OP_ABS] = fabs,
};

static bool is_unary_builtin(int op) {
    return (ir_ops[op].flags & OPF_ELEMWISE) && ir_ops[op].arity == 1 && unary_num[op];
}

/* self: the op, an int */
BUILTIN(bi_unary) {
    static const char *const names[] = {"x", NULL};
    OpKind op = (OpKind)self.i;
    const char *name = ir_ops[op].name;
    Value a[1];
    BIND(name, names, 1, a);
    Value x = a[0];
    if (x.kind == V_INT && !(ir_ops[op].flags & OPF_FLOAT))
        return vint((int64_t)unary_num[op]((double)x.i));
    if (is_num(x)) return vfloat(unary_num[op](num_of(x)));
    if (x.kind != V_TENSOR)
        rt_error(I, "%s: x must be a tensor or a number, got %s", name, rt_type_name(x));
    return lib_result(I, ir_unary(&I->lz.g, op, rt_node(I, as_tensor(x)), I->ev.loc));
}

/* ---- elementwise binary ---- */

static Value binary(Interp *I, const char *fn, OpKind op, const Value *args, int nargs,
                    const char *const *kwnames, const Value *kwargs, int nkw) {
    static const char *const names[] = {"a", "b", NULL};
    Value a[2];
    BIND(fn, names, 2, a);
    if (is_num(a[0]) && is_num(a[1])) {
        double x = num_of(a[0]), y = num_of(a[1]);
        bool ints = a[0].kind != V_FLOAT && a[1].kind != V_FLOAT;
        /* ints compare as ints: above 2^53 a double would round them */
        int64_t i = ints ? int_of(a[0]) : 0, j = ints ? int_of(a[1]) : 0;
        switch (op) {
        case OP_POW: /* the same as `**` */
            if (ints && j >= 0) return vint(tt_int_pow(i, j));
            return vfloat(pow(x, y));
        case OP_MAX:
            return ints ? vint(i > j ? i : j) : vfloat(x > y ? x : y);
        case OP_MIN:
            return ints ? vint(i < j ? i : j) : vfloat(x < y ? x : y);
        default:
            TT_UNREACHABLE();
        }
    }
    int ia = lib_node(I, a[0], fn, "a"), ib = lib_node(I, a[1], fn, "b");
    return lib_result(I, ir_binary(&I->lz.g, op, ia, ib, I->ev.loc));
}

BUILTIN(bi_pow) {
    return binary(I, "pow", OP_POW, args, nargs, kwnames, kwargs, nkw);
}
BUILTIN(bi_maximum) {
    return binary(I, "maximum", OP_MAX, args, nargs, kwnames, kwargs, nkw);
}
BUILTIN(bi_minimum) {
    return binary(I, "minimum", OP_MIN, args, nargs, kwnames, kwargs, nkw);
}

/* clip(x, lo=none, hi=none) */
BUILTIN(bi_clip) {
    static const char *const names[] = {"x", "lo", "hi", NULL};
    Value a[3];
    BIND("clip", names, 1, a);
    if (is_num(a[0]) && (a[1].kind == V_NONE || is_num(a[1])) &&
        (a[2].kind == V_NONE || is_num(a[2]))) {
        bool ints = a[0].kind != V_FLOAT && a[1].kind != V_FLOAT && a[2].kind != V_FLOAT;
        if (ints) { /* exact above 2^53, where a double would round */
            int64_t x = int_of(a[0]);
            if (a[1].kind != V_NONE && x < int_of(a[1])) x = int_of(a[1]);
            if (a[2].kind != V_NONE && x > int_of(a[2])) x = int_of(a[2]);
            return vint(x);
        }
        double x = num_of(a[0]);
        if (a[1].kind != V_NONE && x < num_of(a[1])) x = num_of(a[1]);
        if (a[2].kind != V_NONE && x > num_of(a[2])) x = num_of(a[2]);
        return vfloat(x);
    }
    int id = lib_node(I, a[0], "clip", "x");
    if (a[1].kind != V_NONE)
        id = rt_check_node(
            I, ir_binary(&I->lz.g, OP_MAX, id, lib_node(I, a[1], "clip", "lo"), I->ev.loc));
    if (a[2].kind != V_NONE)
        id = rt_check_node(
            I, ir_binary(&I->lz.g, OP_MIN, id, lib_node(I, a[2], "clip", "hi"), I->ev.loc));
    return lib_result(I, id);
}

/* where(cond, a, b): a where cond != 0, else b */
BUILTIN(bi_where) {
    static const char *const names[] = {"cond", "a", "b", NULL};
    Value a[3];
    BIND("where", names, 3, a);
    if (a[0].kind != V_TENSOR) /* a plain condition selects one value */
        return rt_retain(rt_truthy(I, a[0]) ? a[1] : a[2]);
    int c = lib_node(I, a[0], "where", "cond");
    int x = lib_node(I, a[1], "where", "a"), y = lib_node(I, a[2], "where", "b");
    return lib_result(I, ir_where(&I->lz.g, c, x, y, I->ev.loc));
}

/* ---- reductions ---- */

typedef struct Axes {
    int n; /* 0: every axis */
    int ax[IR_MAXDIM];
} Axes;

static Axes parse_axes(Interp *I, Value v, const char *fn) {
    Axes r = {0};
    if (v.kind == V_NONE) return r;
    if (v.kind == V_INT) {
        r.n = 1;
        r.ax[0] = (int)v.i;
        return r;
    }
    if (is_seq(v)) {
        List *l = as_list(v);
        if (l->len > IR_MAXDIM) rt_error(I, "%s: too many axes", fn);
        for (int i = 0; i < l->len; i++) r.ax[r.n++] = (int)lib_int(I, l->items[i], 0, fn, "axis");
        if (r.n == 0) rt_error(I, "%s: axis must not be an empty list", fn);
        return r;
    }
    rt_error(I, "%s: axis must be an int or a list of ints, got %s", fn, rt_type_name(v));
}

/* The number of elements the reduction combines into each result. */
static int64_t reduced_count(Interp *I, int id, const Axes *ax, const char *fn) {
    const Shape *s = &I->lz.g.nodes[id].shape;
    if (ax->n == 0) return shape_numel(s);
    int64_t c = 1;
    for (int i = 0; i < ax->n; i++) {
        int a = ax->ax[i] < 0 ? ax->ax[i] + s->ndim : ax->ax[i];
        if (a < 0 || a >= s->ndim) return 1; /* ir_reduce reports it */
        c *= s->d[a];
    }
    return c;
}

/* sum/max/min of a list: numbers give a number, tensors fold elementwise */
static Value fold_list(Interp *I, const char *fn, OpKind op, List *l) {
    if (l->len == 0) {
        if (op == OP_ADD) return vint(0);
        rt_error(I, "%s: empty list", fn);
    }
    bool nums = true, ints = true;
    for (int i = 0; i < l->len; i++) {
        if (!is_num(l->items[i])) nums = false;
        if (l->items[i].kind == V_FLOAT) ints = false;
    }
    if (nums && ints && op != OP_ADD) { /* exact above 2^53 */
        int64_t acc = int_of(l->items[0]);
        for (int i = 1; i < l->len; i++) {
            int64_t x = int_of(l->items[i]);
            acc = op == OP_MAX ? (x > acc ? x : acc) : (x < acc ? x : acc);
        }
        return vint(acc);
    }
    if (nums) {
        double acc = num_of(l->items[0]);
        for (int i = 1; i < l->len; i++) {
            double x = num_of(l->items[i]);
            acc = op == OP_ADD ? acc + x : op == OP_MAX ? (x > acc ? x : acc) : (x < acc ? x : acc);
        }
        return ints ? vint((int64_t)acc) : vfloat(acc);
    }
    int id = lib_node(I, l->items[0], fn, "item");
    for (int i = 1; i < l->len; i++)
        id = rt_check_node(
            I, ir_binary(&I->lz.g, op, id, lib_node(I, l->items[i], fn, "item"), I->ev.loc));
    return lib_result(I, id);
}

typedef enum RedKind { RED_SUM, RED_MEAN, RED_MAX, RED_MIN } RedKind;

/* A map that reverses the order of x's values, its own inverse, so that
 * min(x) = r(max(r(x))) and argmin(x) = argmax(r(x)) (the first minimum).
 * Floats: -x. Ints: -1 - x (~x), because -x wraps INT_MIN onto itself and
 * would make INT_MIN the largest value; -1 - x never leaves the range. */
static int reverse_order(Interp *I, int id) {
    IrGraph *g = &I->lz.g;
    DType dt = g->nodes[id].dtype;
    if (dt == TY_F32) return rt_check_node(I, ir_unary(g, OP_NEG, id, I->ev.loc));
    return rt_check_node(I, ir_binary(g, OP_SUB, lib_const(I, dt, -1.0), id, I->ev.loc));
}

static int reduce_node(Interp *I, RedKind k, int id, const Axes *ax, bool keep, const char *fn) {
    IrGraph *g = &I->lz.g;
    switch (k) {
    case RED_SUM:
        return rt_check_node(I, ir_reduce(g, OP_SUM, id, ax->ax, ax->n, keep, I->ev.loc));
    case RED_MAX:
        return rt_check_node(I, ir_reduce(g, OP_RMAX, id, ax->ax, ax->n, keep, I->ev.loc));
    case RED_MIN: {
        int n = reverse_order(I, id);
        n = rt_check_node(I, ir_reduce(g, OP_RMAX, n, ax->ax, ax->n, keep, I->ev.loc));
        return reverse_order(I, n);
    }
    case RED_MEAN: {
        id = rt_check_node(I, ir_cast(g, id, TY_F32, I->ev.loc));
        int64_t cnt = reduced_count(I, id, ax, fn);
        int s = rt_check_node(I, ir_reduce(g, OP_SUM, id, ax->ax, ax->n, keep, I->ev.loc));
        if (cnt == 1) return s;
        return rt_check_node(I,
                             ir_binary(g, OP_DIV, s, lib_const(I, TY_F32, (double)cnt), I->ev.loc));
    }
    }
    TT_UNREACHABLE();
}

static Value reduction(Interp *I, const char *fn, RedKind k, const Value *args, int nargs,
                       const char *const *kwnames, const Value *kwargs, int nkw) {
    static const char *const names[] = {"x", "axis", "keepdims", NULL};
    Value a[3];
    BIND(fn, names, 1, a);
    bool keep = lib_bool(I, a[2], false, fn, "keepdims");
    if (is_num(a[0])) {
        if (k == RED_MEAN) return vfloat(num_of(a[0]));
        return rt_retain(a[0]);
    }
    if (is_seq(a[0]) && a[1].kind == V_NONE) {
        if (k == RED_MEAN) {
            List *l = as_list(a[0]);
            if (l->len == 0) rt_error(I, "mean: empty list");
            Value s = fold_list(I, fn, OP_ADD, l);
            if (is_num(s)) return vfloat(num_of(s) / l->len);
            int id = lib_node(I, s, fn, "x");
            rt_release(I, s);
            id = rt_check_node(I, ir_cast(&I->lz.g, id, TY_F32, I->ev.loc));
            return lib_result(
                I, ir_binary(&I->lz.g, OP_DIV, id, lib_const(I, TY_F32, l->len), I->ev.loc));
        }
        return fold_list(I, fn,
                         k == RED_SUM   ? OP_ADD
                         : k == RED_MAX ? OP_MAX
                                        : OP_MIN,
                         as_list(a[0]));
    }
    Tensor *x = lib_tensor(I, a[0], fn, "x");
    Axes ax = parse_axes(I, a[1], fn);
    return lib_result(I, reduce_node(I, k, rt_node(I, x), &ax, keep, fn));
}

BUILTIN(bi_sum) {
    return reduction(I, "sum", RED_SUM, args, nargs, kwnames, kwargs, nkw);
}
BUILTIN(bi_mean) {
    return reduction(I, "mean", RED_MEAN, args, nargs, kwnames, kwargs, nkw);
}
/* max(a, b, ...) of numbers is Python's: the largest argument, as given.
 * max(x, other) with other a tensor or a float is torch.max(x, other): the
 * elementwise maximum (maximum()); max(x, 1) with an int or a list of ints
 * is the reduction over that axis, as torch.max(x, dim). */
static bool all_numbers(const Value *args, int nargs) {
    for (int i = 0; i < nargs; i++)
        if (!is_num(args[i]) || args[i].kind == V_BOOL) return false;
    return nargs >= 2;
}

static Value pick_number(const Value *args, int nargs, bool largest) {
    int best = 0;
    for (int i = 1; i < nargs; i++)
        if (largest ? num_of(args[i]) > num_of(args[best]) : num_of(args[i]) < num_of(args[best]))
            best = i;
    return args[best];
}

static bool elementwise_pair(const Value *args, int nargs, int nkw) {
    return nargs == 2 && nkw == 0 &&
           (is_tensor(args[1]) || args[1].kind == V_FLOAT || !is_tensor(args[0]));
}

BUILTIN(bi_max) {
    if (nkw == 0 && all_numbers(args, nargs)) return pick_number(args, nargs, true);
    if (elementwise_pair(args, nargs, nkw))
        return binary(I, "max", OP_MAX, args, nargs, kwnames, kwargs, nkw);
    return reduction(I, "max", RED_MAX, args, nargs, kwnames, kwargs, nkw);
}
BUILTIN(bi_min) {
    if (nkw == 0 && all_numbers(args, nargs)) return pick_number(args, nargs, false);
    if (elementwise_pair(args, nargs, nkw))
        return binary(I, "min", OP_MIN, args, nargs, kwnames, kwargs, nkw);
    return reduction(I, "min", RED_MIN, args, nargs, kwnames, kwargs, nkw);
}

/* var(x, axis=none, keepdims=false, ddof=0): NumPy's variance */
BUILTIN(bi_var) {
    static const char *const names[] = {"x", "axis", "keepdims", "ddof", NULL};
    Value a[4];
    BIND("var", names, 1, a);
    Tensor *x = lib_tensor(I, a[0], "var", "x");
    Axes ax = parse_axes(I, a[1], "var");
    bool keep = lib_bool(I, a[2], false, "var", "keepdims");
    int64_t ddof = lib_int(I, a[3], 0, "var", "ddof");
    IrGraph *g = &I->lz.g;
    int id = rt_check_node(I, ir_cast(g, rt_node(I, x), TY_F32, I->ev.loc));
    int mu = reduce_node(I, RED_MEAN, id, &ax, true, "var");
    int d = rt_check_node(I, ir_binary(g, OP_SUB, id, mu, I->ev.loc));
    int sq = rt_check_node(I, ir_binary(g, OP_MUL, d, d, I->ev.loc));
    int s = rt_check_node(I, ir_reduce(g, OP_SUM, sq, ax.ax, ax.n, keep, I->ev.loc));
    int64_t n = reduced_count(I, id, &ax, "var") - ddof;
    if (n <= 0) rt_error(I, "var: ddof=%lld leaves no degrees of freedom", (long long)ddof);
    return lib_result(I, ir_binary(g, OP_DIV, s, lib_const(I, TY_F32, (double)n), I->ev.loc));
}

/* argmax(x, axis=none, keepdims=false) -> i32; axis none: index into the
 * flattened tensor. argmin is argmax of reverse_order(x) (the first minimum). */
static Value arg_reduce(Interp *I, const char *fn, bool neg, const Value *args, int nargs,
                        const char *const *kwnames, const Value *kwargs, int nkw) {
    static const char *const names[] = {"x", "axis", "keepdims", NULL};
    Value a[3];
    BIND(fn, names, 1, a);
    Tensor *x = lib_tensor(I, a[0], fn, "x");
    bool keep = lib_bool(I, a[2], false, fn, "keepdims");
    int id = rt_node(I, x);
    if (neg) id = reverse_order(I, id);
    int64_t axis;
    if (a[1].kind == V_NONE) {
        if (keep) rt_error(I, "%s: keepdims needs an axis", fn);
        id = rt_check_node(I, ir_reshape(&I->lz.g, id, shape_make(1, (int64_t[]){-1}), I->ev.loc));
        axis = 0;
    } else {
        axis = lib_int(I, a[1], 0, fn, "axis");
    }
    if (I->lz.g.nodes[id].shape.ndim == 0)
        rt_error(I, "%s: x must have at least one dimension", fn);
    int r = ir_argmax(&I->lz.g, id, (int)axis, keep, I->ev.loc);
    if (r < 0) {
        /* name the builtin the user called, not the op */
        char msg[sizeof I->lz.g.err];
        snprintf(msg, sizeof msg, "%s", I->lz.g.err);
        if (strncmp(msg, "argmax", 6) == 0) rt_error(I, "%s%s", fn, msg + 6);
        rt_error(I, "%s", msg);
    }
    return lib_result(I, r);
}

BUILTIN(bi_argmax) {
    return arg_reduce(I, "argmax", false, args, nargs, kwnames, kwargs, nkw);
}
BUILTIN(bi_argmin) {
    return arg_reduce(I, "argmin", true, args, nargs, kwnames, kwargs, nkw);
}

/* ---- composite ops that need C ---- */

/* one_hot(labels, n) -> f32[..., n]: labels == arange(n). A label outside
 * [0, n) is an error, negative ones too (as F.one_hot): the labels are
 * gathered from arange(n), which gives them back unchanged and has every
 * backend check them, at the user's call (one_hot, or cross_entropy). */
BUILTIN(bi_one_hot) {
    static const char *const names[] = {"labels", "n", NULL};
    Value a[2];
    BIND("one_hot", names, 2, a);
    int64_t n = lib_int(I, a[1], 0, "one_hot", "n");
    if (n <= 0 || n > INT32_MAX)
        rt_error(I, "one_hot: n must be in 1..%d, got %lld", INT32_MAX, (long long)n);
    int lab;
    if (a[0].kind == V_INT)
        lab = rt_scalar_node(I, TY_I32, (double)a[0].i, false);
    else {
        Tensor *t = lib_tensor(I, a[0], "one_hot", "labels");
        if (t->dtype == TY_F32)
            rt_error(I, "one_hot: labels must be i32, got f32 (use cast(labels, \"i32\"))");
        lab = rt_node(I, t);
    }
    Shape s = I->lz.g.nodes[lab].shape;
    if (s.ndim == IR_MAXDIM) rt_error(I, "one_hot: labels have too many dimensions");
    s.d[s.ndim++] = 1;
    Tensor *classes = rt_tensor_new(I, TY_I32, shape_make(1, &n));
    for (int64_t i = 0; i < n; i++) ((int32_t *)classes->buf->data)[i] = (int32_t)i;
    int ic = rt_node(I, classes);
    rt_release(I, vtensor(classes));
    lab = rt_check_node(I, ir_gather(&I->lz.g, ic, lab, rt_user_loc(I)));
    lab = rt_check_node(I, ir_reshape(&I->lz.g, lab, s, I->ev.loc));
    int eq = rt_check_node(I, ir_binary(&I->lz.g, OP_EQ, lab, ic, I->ev.loc));
    return lib_result(I, ir_cast(&I->lz.g, eq, TY_F32, I->ev.loc));
}

/* dropout(x, p=0.5): in training mode, zeroes each element with probability
 * p and scales the rest by 1/(1-p) (PyTorch's inverted dropout); identity in
 * eval mode or when p == 0. The mask comes from the global generator. */
BUILTIN(bi_dropout) {
    static const char *const names[] = {"x", "p", NULL};
    Value a[2];
    BIND("dropout", names, 1, a);
    double p = lib_float(I, a[1], 0.5, "dropout", "p");
    if (!(p >= 0 && p <= 1)) rt_error(I, "dropout: p must be in [0, 1], got %g", p);
    Tensor *x = lib_tensor(I, a[0], "dropout", "x");
    if (!I->ev.training || p == 0) return rt_retain(a[0]);
    Tensor *mask = rt_tensor_new(I, TY_F32, x->shape);
    float *m = mask->buf->data, keep = p < 1 ? (float)(1.0 / (1.0 - p)) : 0.0f;
    for (int64_t i = 0, n = shape_numel(&x->shape); i < n; i++)
        m[i] = rng_uniform(&I->ev.rng) < p ? 0.0f : keep;
    int ix = rt_node(I, x), im = rt_node(I, mask);
    rt_release(I, vtensor(mask));
    return lib_result(I, ir_binary(&I->lz.g, OP_MUL, ix, im, I->ev.loc));
}

double lib_accuracy(Interp *I, Value pred, Value labels) {
    Tensor *p = lib_tensor(I, pred, "accuracy", "pred");
    Tensor *y = lib_tensor(I, labels, "accuracy", "labels");
    int ip = rt_node(I, p), iy = rt_node(I, y);
    char b0[128], b1[128];
    if (p->shape.ndim == y->shape.ndim + 1) {
        ip = rt_check_node(I, ir_argmax(&I->lz.g, ip, -1, false, I->ev.loc));
    } else if (p->shape.ndim != y->shape.ndim) {
        rt_error(I,
                 "accuracy: predictions %s do not match labels %s (expected logits [..., C] "
                 "with labels [...], or predictions of the labels' shape)",
                 shape_str(&p->shape, b0, sizeof b0), shape_str(&y->shape, b1, sizeof b1));
    }
    if (!shape_eq(&I->lz.g.nodes[ip].shape, &y->shape))
        rt_error(I, "accuracy: predictions %s do not match labels %s",
                 shape_str(&I->lz.g.nodes[ip].shape, b0, sizeof b0),
                 shape_str(&y->shape, b1, sizeof b1));
    if (shape_numel(&y->shape) == 0) rt_error(I, "accuracy: no labels");
    int eq = rt_check_node(I, ir_binary(&I->lz.g, OP_EQ, ip, iy, I->ev.loc));
    Axes all = {0};
    Value m = lib_result(I, reduce_node(I, RED_MEAN, eq, &all, false, "accuracy"));
    double r = rt_to_float(I, m, "accuracy");
    rt_release(I, m);
    return r;
}

/* accuracy(pred, labels) -> float: logits [..., C] are argmax'ed first */
BUILTIN(bi_accuracy) {
    static const char *const names[] = {"pred", "labels", NULL};
    Value a[2];
    BIND("accuracy", names, 2, a);
    return vfloat(lib_accuracy(I, a[0], a[1]));
}

void lib_register_math(Interp *I) {
    static const struct {
        const char *name;
        BuiltinFn fn;
    } table[] = {
        {"pow", bi_pow},         {"maximum", bi_maximum}, {"minimum", bi_minimum},
        {"clip", bi_clip},       {"where", bi_where},     {"sum", bi_sum},
        {"mean", bi_mean},       {"max", bi_max},         {"min", bi_min},
        {"var", bi_var},         {"argmax", bi_argmax},   {"argmin", bi_argmin},
        {"one_hot", bi_one_hot}, {"dropout", bi_dropout}, {"accuracy", bi_accuracy},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        rt_define_global(I, table[i].name, rt_builtin(I, table[i].name, table[i].fn, VNONE));
    for (int op = 0; op < OP__COUNT; op++)
        if (is_unary_builtin(op))
            rt_define_global(I, ir_ops[op].name,
                             rt_builtin(I, ir_ops[op].name, bi_unary, vint(op)));
}
