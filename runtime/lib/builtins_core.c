/* builtins_core.c - the core builtins (print, str, len, item, backward,
 * parameters, ...) and the registration of every builtin file.
 */
#include "eval.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUILTIN(fn)                                                                                \
    static Value fn(Interp *I, Value self, const Value *args, int nargs,                           \
                    const char *const *kwnames, const Value *kwargs, int nkw)
#define BIND(fname, names, required, a)                                                            \
    rt_bind_args(I, fname, names, required, args, nargs, kwnames, kwargs, nkw, a)

/* round(x, ndigits=none): Python's round (half to even). Without ndigits
 * the result is an int, and for a tensor x a tensor rounded elementwise
 * (torch.round); with ndigits a one-element tensor is realized first. */
BUILTIN(bi_round) {
    static const char *const names[] = {"x", "ndigits", NULL};
    Value a[2];
    BIND("round", names, 1, a);
    double x;
    if (a[0].kind == V_TENSOR && (!rt_given(a[1]) || a[1].kind == V_NONE)) {
        /* a tensor: elementwise, half to even, a tensor (torch.round) */
        int id = ir_unary(&I->lz.g, OP_ROUND, rt_node(I, (Tensor *)a[0].o), I->ev.loc);
        return vtensor(rt_tensor_lazy(I, rt_check_node(I, id)));
    }
    if (a[0].kind == V_TENSOR) {
        Tensor *t = (Tensor *)a[0].o;
        if (shape_numel(&t->shape) != 1)
            rt_error(I, "round: expected a number or a one-element tensor, got %s",
                     rt_type_name(a[0]));
        x = rt_to_float(I, a[0], "round: x");
    } else {
        x = rt_to_float(I, a[0], "round: x");
    }
    if (!rt_given(a[1]) || a[1].kind == V_NONE) {
        double r = nearbyint(x);
        if (!(r >= -9.2e18 && r <= 9.2e18)) rt_error(I, "round: %g does not fit in an int", x);
        return vint((int64_t)r);
    }
    int64_t nd = rt_to_int(I, a[1], "round: ndigits");
    if (nd < -300 || nd > 300) return vfloat(x);
    /* Through the decimal representation, as Python does, so that
     * round(0.8579999804496765, 4) is exactly 0.858. */
    char buf[64];
    snprintf(buf, sizeof buf, "%.*f", nd > 0 ? (int)nd : 0,
             nd >= 0 ? x : x / pow(10.0, (double)-nd));
    double r = strtod(buf, NULL);
    if (nd < 0) r = nearbyint(r) * pow(10.0, (double)-nd);
    return vfloat(r);
}

/* Does formatting v read a lazy tensor (in a list, tuple or record; very
 * deep nesting counts as yes)? */
static bool holds_lazy(Value v, int depth) {
    if (depth > 8) return true;
    switch (v.kind) {
    case V_TENSOR:
        return !((Tensor *)v.o)->buf;
    case V_LIST:
    case V_TUPLE: {
        const List *l = (const List *)v.o;
        for (int i = 0; i < l->len; i++)
            if (holds_lazy(l->items[i], depth + 1)) return true;
        return false;
    }
    case V_RECORD: {
        const Record *r = (const Record *)v.o;
        for (int i = 0; i < r->len; i++)
            if (holds_lazy(r->vals[i], depth + 1)) return true;
        return false;
    }
    case V_DICT: {
        const Dict *d = (const Dict *)v.o;
        for (int i = 0; i < d->len; i++)
            if (holds_lazy(d->entries[i].val, depth + 1)) return true;
        return false;
    }
    default: /* models print their parameters' shapes, not their data */
        return false;
    }
}

/* A realization can fail (an index out of range, a result that does not
 * fit) and longjmp: when a value to format reads a lazy tensor, the graph
 * runs before the string is built, so nothing is left allocated. */
static void realize_before_format(Interp *I, const Value *v, int n) {
    for (int i = 0; i < n; i++)
        if (holds_lazy(v[i], 0)) {
            rt_realize_all(I);
            return;
        }
}

/* print(a, b, ..., sep=" ", end="\n") */
BUILTIN(bi_print) {
    const char *sep = " ", *end = "\n";
    for (int k = 0; k < nkw; k++) {
        if (strcmp(kwnames[k], "sep") == 0)
            sep = rt_to_str(I, kwargs[k], "print: sep");
        else if (strcmp(kwnames[k], "end") == 0)
            end = rt_to_str(I, kwargs[k], "print: end");
        else
            rt_error(I, "print() got an unexpected keyword argument '%s'", kwnames[k]);
    }
    realize_before_format(I, args, nargs);
    StrBuf b = {0};
    sb_puts(&b, "");
    for (int i = 0; i < nargs; i++) {
        if (i) sb_puts(&b, sep);
        rt_format(I, args[i], &b, false);
    }
    sb_puts(&b, end);
    fputs(b.s, stdout);
    sb_free(&b);
    return VNONE;
}

BUILTIN(bi_str) {
    static const char *const names[] = {"x", NULL};
    Value a[1];
    BIND("str", names, 1, a);
    realize_before_format(I, a, 1);
    StrBuf b = {0};
    sb_puts(&b, "");
    rt_format(I, a[0], &b, false);
    Value r = rt_str(I, b.s, b.len);
    sb_free(&b);
    return r;
}

BUILTIN(bi_repr) {
    static const char *const names[] = {"x", NULL};
    Value a[1];
    BIND("repr", names, 1, a);
    StrBuf b = {0};
    sb_puts(&b, "");
    rt_format(I, a[0], &b, true);
    Value r = rt_str(I, b.s, b.len);
    sb_free(&b);
    return r;
}

static Value parse_number(Interp *I, const char *s, bool want_int, const char *fname) {
    while (*s == ' ' || *s == '\t' || *s == '\n') s++;
    char *end;
    errno = 0;
    if (want_int) {
        long long v = strtoll(s, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\n') end++;
        if (end != s && !*end && errno == 0) return vint(v);
    } else {
        double v = strtod(s, &end);
        while (*end == ' ' || *end == '\t' || *end == '\n') end++;
        if (end != s && !*end) return vfloat(v);
    }
    rt_error(I, "%s(): invalid literal \"%s\"", fname, s);
}

BUILTIN(bi_int) {
    static const char *const names[] = {"x", NULL};
    Value a[1];
    BIND("int", names, 1, a);
    Value v = a[0];
    switch (v.kind) {
    case V_INT:
        return v;
    case V_BOOL:
        return vint(v.b);
    case V_FLOAT:
        if (!isfinite(v.f) || fabs(v.f) >= 9.2e18)
            rt_error(I, "int(): cannot convert %g to an int", v.f);
        return vint((int64_t)v.f);
    case V_STR:
        return parse_number(I, ((Str *)v.o)->s, true, "int");
    case V_TENSOR: {
        double x = rt_to_float(I, v, "int()");
        if (!isfinite(x)) rt_error(I, "int(): cannot convert %g to an int", x);
        return vint((int64_t)x);
    }
    default:
        rt_error(I, "int(): cannot convert %s", rt_type_name(v));
    }
}

BUILTIN(bi_float) {
    static const char *const names[] = {"x", NULL};
    Value a[1];
    BIND("float", names, 1, a);
    if (a[0].kind == V_STR) return parse_number(I, ((Str *)a[0].o)->s, false, "float");
    return vfloat(rt_to_float(I, a[0], "float()"));
}

BUILTIN(bi_bool) {
    static const char *const names[] = {"x", NULL};
    Value a[1];
    BIND("bool", names, 1, a);
    return vbool(rt_truthy(I, a[0]));
}

BUILTIN(bi_len) {
    static const char *const names[] = {"x", NULL};
    Value a[1];
    BIND("len", names, 1, a);
    Value v = a[0];
    switch (v.kind) {
    case V_STR: /* code points, as Python */
        return vint((int64_t)((Str *)v.o)->nchars);
    case V_LIST:
    case V_TUPLE:
        return vint(((List *)v.o)->len);
    case V_RECORD:
        return vint(((Record *)v.o)->len);
    case V_RANGE:
        return vint(rt_range_len((Range *)v.o));
    case V_DICT:
        return vint(((Dict *)v.o)->len);
    case V_TENSOR: {
        Tensor *t = (Tensor *)v.o;
        if (t->shape.ndim == 0) rt_error(I, "len() of a 0-d tensor");
        return vint(t->shape.d[0]);
    }
    case V_NATIVE: {
        Value out;
        Native *n = (Native *)v.o;
        if (n->cls->member && n->cls->member(I, v.o, "len", &out)) {
            if (out.kind == V_INT) return out;
            Value r = rt_call(I, out, NULL, 0, NULL, NULL, 0);
            rt_release(I, out);
            return r;
        }
        break;
    }
    default:
        break;
    }
    rt_error(I, "len(): %s has no length", rt_type_name(v));
}

BUILTIN(bi_type) {
    static const char *const names[] = {"x", NULL};
    Value a[1];
    BIND("type", names, 1, a);
    Value v = a[0];
    if (v.kind == V_MODEL) return rt_cstr(I, ((Model *)v.o)->type_name);
    if (v.kind == V_NATIVE) return rt_cstr(I, ((Native *)v.o)->cls->name);
    return rt_cstr(I, rt_kind_name(v.kind));
}

BUILTIN(bi_item) {
    static const char *const names[] = {"x", NULL};
    Value a[1];
    BIND("item", names, 1, a);
    Value v = a[0];
    if (v.kind == V_INT || v.kind == V_FLOAT || v.kind == V_BOOL) return v;
    if (v.kind != V_TENSOR) rt_error(I, "item(): expected a tensor, got %s", rt_type_name(v));
    Tensor *t = (Tensor *)v.o;
    if (shape_numel(&t->shape) != 1)
        rt_error(I, "item(): expected a tensor with one element, got %s", rt_type_name(v));
    void *d = rt_data(I, t);
    switch (t->dtype) {
    case TY_F32:
        return vfloat(((float *)d)[0]);
    case TY_I32:
        return vint(((int32_t *)d)[0]);
    default:
        return vint(((int8_t *)d)[0]);
    }
}

BUILTIN(bi_backward) {
    static const char *const names[] = {"loss", NULL};
    Value a[1];
    BIND("backward", names, 1, a);
    if (a[0].kind != V_TENSOR)
        rt_error(I, "backward(): expected a tensor, got %s", rt_type_name(a[0]));
    rt_backward(I, (Tensor *)a[0].o);
    return VNONE;
}

BUILTIN(bi_backend) {
    static const char *const names[] = {"name", NULL};
    Value a[1];
    BIND("backend", names, 0, a);
    if (!rt_given(a[0]) || a[0].kind == V_NONE) return rt_cstr(I, rt_backend_name(I));
    const char *s = rt_to_str(I, a[0], "backend()");
    char known[128];
    if (!rt_set_backend(I, s))
        rt_error(I, "backend(): unknown backend \"%s\" (expected %s)", s,
                 tt_backend_names(known, sizeof known));
    return VNONE;
}

BUILTIN(bi_parameters) {
    static const char *const names[] = {"net", NULL};
    Value a[1];
    BIND("parameters", names, 1, a);
    return rt_parameters(I, a[0], false);
}

BUILTIN(bi_named_parameters) {
    static const char *const names[] = {"net", NULL};
    Value a[1];
    BIND("named_parameters", names, 1, a);
    return rt_parameters(I, a[0], true);
}

BUILTIN(bi_train) {
    static const char *const names[] = {"net", NULL};
    Value a[1];
    BIND("train", names, 0, a);
    I->ev.training = true;
    return rt_given(a[0]) ? rt_retain(a[0]) : VNONE;
}

BUILTIN(bi_eval) {
    static const char *const names[] = {"net", NULL};
    Value a[1];
    BIND("eval", names, 0, a);
    I->ev.training = false;
    return rt_given(a[0]) ? rt_retain(a[0]) : VNONE;
}

/* range(hi), range(lo, hi), range(lo, hi, step): Python's range */
BUILTIN(bi_range) {
    static const char *const names[] = {"lo", "hi", "step", NULL};
    Value a[3];
    BIND("range", names, 1, a);
    int64_t lo = 0, hi, step = 1;
    if (rt_given(a[1]) && a[1].kind != V_NONE) {
        lo = rt_to_int(I, a[0], "range()");
        hi = rt_to_int(I, a[1], "range()");
    } else {
        hi = rt_to_int(I, a[0], "range()");
    }
    if (rt_given(a[2]) && a[2].kind != V_NONE) {
        step = rt_to_int(I, a[2], "range()");
        if (step == 0) rt_error(I, "range() arg 3 must not be zero");
    }
    return rt_range(I, lo, hi, step);
}

BUILTIN(bi_assert) {
    static const char *const names[] = {"cond", "msg", NULL};
    Value a[2];
    BIND("assert", names, 1, a);
    if (rt_truthy(I, a[0])) return VNONE;
    if (rt_given(a[1]) && a[1].kind != V_NONE) {
        StrBuf b = {0};
        sb_puts(&b, "");
        rt_format(I, a[1], &b, false);
        char msg[512];
        snprintf(msg, sizeof msg, "%s", b.s);
        sb_free(&b);
        rt_error(I, "assertion failed: %s", msg);
    }
    rt_error(I, "assertion failed");
}

/* _error(msg): for the standard library's argument checks (private: the
 * leading '_' keeps it out of completion and of spec/builtins.md). The
 * error is reported where the user's code called into the library. */
BUILTIN(bi_error) {
    static const char *const names[] = {"msg", NULL};
    Value a[1];
    BIND("_error", names, 1, a);
    rt_error_at(I, rt_user_loc(I), "%s", rt_to_str(I, a[0], "_error: msg"));
}

BUILTIN(bi_list) {
    static const char *const names[] = {"x", NULL};
    Value a[1];
    BIND("list", names, 0, a);
    if (!rt_given(a[0])) return rt_list(I, 0);
    /* a list's items, a string's characters, a range's ints, a dict's keys */
    return rt_iter_list(I, a[0], "list");
}

BUILTIN(bi_reset_graph) {
    static const char *const names[] = {NULL};
    Value a[1];
    BIND("reset_graph", names, 0, a);
    rt_reset_graph(I);
    return VNONE;
}

BUILTIN(bi_is_training) {
    static const char *const names[] = {NULL};
    Value a[1];
    BIND("is_training", names, 0, a);
    return vbool(I->ev.training);
}

/* clock() -> float: monotonic seconds (an arbitrary origin: take
 * differences). Pending lazy work is finished first, so the time between
 * two clock() calls includes the tensor work asked for in between. */
BUILTIN(bi_clock) {
    static const char *const names[] = {NULL};
    Value a[1];
    BIND("clock", names, 0, a);
    rt_realize_all(I);
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return vfloat((double)t.tv_sec + 1e-9 * (double)t.tv_nsec);
}

void rt_register_builtins(Interp *I) {
    static const struct {
        const char *name;
        BuiltinFn fn;
    } core[] = {
        {"print", bi_print},
        {"round", bi_round},
        {"clock", bi_clock},
        {"str", bi_str},
        {"repr", bi_repr},
        {"int", bi_int},
        {"float", bi_float},
        {"bool", bi_bool},
        {"len", bi_len},
        {"type", bi_type},
        {"item", bi_item},
        {"backward", bi_backward},
        {"backend", bi_backend},
        {"parameters", bi_parameters},
        {"named_parameters", bi_named_parameters},
        {"train", bi_train},
        {"eval", bi_eval},
        {"is_training", bi_is_training},
        {"range", bi_range},
        {"assert", bi_assert},
        {"_error", bi_error},
        {"list", bi_list},
        {"reset_graph", bi_reset_graph},
    };
    for (size_t i = 0; i < sizeof core / sizeof core[0]; i++)
        rt_define_global(I, core[i].name, rt_builtin(I, core[i].name, core[i].fn, VNONE));
    rt_register_tensor_builtins(I);
    rt_register_optim_builtins(I);
    rt_register_data_builtins(I);
    rt_register_str_builtins(I);
}
