/* builtins_tensor.c - tensor constructors and shape builtins, and the
 * argument helpers every library builtin shares (builtins_lib.h).
 *
 * Constructors (tensor, zeros, ones, full, arange, randn, rand, randint, eye)
 * make realized tensors: a fresh buffer filled here. Shape operations
 * (reshape, transpose, permute, flatten, squeeze, unsqueeze, concat, stack,
 * matmul, cast, gather) add nodes to the lazy graph through the ir_*
 * builders, so a shape error is reported at the call with the model chain.
 */
#include "builtins_lib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"

/* ---- helpers (builtins_lib.h) ---- */

int lib_const(Interp *I, DType dt, double x) {
    return rt_check_node(I, ir_const(&I->lz.g, dt, shape_scalar(), x, I->ev.loc));
}

int lib_scalar_input(Interp *I, double x) {
    Tensor *t = rt_tensor_scalar(I, TY_F32, x);
    int id = rt_node(I, t);
    rt_release(I, vtensor(t)); /* the graph keeps the buffer bound */
    return id;
}

int lib_node(Interp *I, Value v, const char *fn, const char *arg) {
    switch (v.kind) {
    case V_TENSOR:
        return rt_node(I, as_tensor(v));
    case V_INT: /* numbers are runtime inputs, not constants (scalars.c) */
        return rt_scalar_node(I, TY_I32, (double)v.i, false);
    case V_BOOL:
        return rt_scalar_node(I, TY_I32, v.b ? 1 : 0, false);
    case V_FLOAT:
        return rt_scalar_node(I, TY_F32, v.f, false);
    default:
        rt_error(I, "%s: %s must be a tensor or a number, got %s", fn, arg, rt_type_name(v));
    }
}

Tensor *lib_tensor(Interp *I, Value v, const char *fn, const char *arg) {
    if (v.kind != V_TENSOR)
        rt_error(I, "%s: %s must be a tensor, got %s", fn, arg, rt_type_name(v));
    return as_tensor(v);
}

Value lib_result(Interp *I, int id) {
    return vtensor(rt_tensor_lazy(I, rt_check_node(I, id)));
}

/* A float dimension: "zeros: shape must be ..., item 0 is a float (3.0)",
 * with the fix, since n / 2 is a float in tt as in Python 3. */
static _Noreturn void float_dim(Interp *I, const char *what, double x) {
    char num[64];
    snprintf(num, sizeof num, "%.17g", x);
    if (!strpbrk(num, ".eEni")) strcat(num, ".0");
    rt_error(I,
             "%s a float (%s): a dimension must be an int: use // for integer division, or int()",
             what, num);
}

Shape lib_shape(Interp *I, Value v, const char *fn, const char *arg, bool allow_neg) {
    Shape s = {0};
    if (v.kind == V_INT) {
        s.ndim = 1;
        s.d[0] = v.i;
    } else if (is_seq(v)) {
        List *l = as_list(v);
        if (l->len > IR_MAXDIM)
            rt_error(I, "%s: %s has %d dimensions, at most %d are supported", fn, arg, l->len,
                     IR_MAXDIM);
        s.ndim = l->len;
        for (int i = 0; i < l->len; i++) {
            /* n / 2 is a float in tt, as in Python 3: say how to get an int */
            if (l->items[i].kind == V_FLOAT) {
                char what[160];
                snprintf(what, sizeof what, "%s: %s must be a list of ints, item %d is", fn, arg,
                         i);
                float_dim(I, what, l->items[i].f);
            }
            if (l->items[i].kind != V_INT)
                rt_error(I, "%s: %s must be a list of ints, item %d is %s", fn, arg, i,
                         rt_type_name(l->items[i]));
            s.d[i] = l->items[i].i;
        }
    } else if (v.kind == V_FLOAT) {
        char what[160];
        snprintf(what, sizeof what, "%s: %s must be a shape (a list of ints), got", fn, arg);
        float_dim(I, what, v.f);
    } else {
        rt_error(I, "%s: %s must be a shape (a list of ints), got %s", fn, arg, rt_type_name(v));
    }
    for (int i = 0; i < s.ndim; i++)
        if (s.d[i] < 0 && !(allow_neg && s.d[i] == -1))
            rt_error(I, "%s: negative dimension %lld in %s", fn, (long long)s.d[i], arg);
    return s;
}

DType lib_dtype(Interp *I, Value v, DType dflt, const char *fn) {
    if (v.kind == V_NONE) return dflt;
    if (v.kind != V_STR)
        rt_error(I, "%s: dtype must be a string (\"f32\", \"i32\" or \"i8\"), got %s", fn,
                 rt_type_name(v));
    const char *s = ((Str *)v.o)->s;
    for (int t = 0; t < TY__COUNT; t++)
        if (strcmp(s, dtype_name((DType)t)) == 0) return (DType)t;
    rt_error(I, "%s: unknown dtype \"%s\" (expected \"f32\", \"i32\" or \"i8\")", fn, s);
}

int64_t lib_int(Interp *I, Value v, int64_t dflt, const char *fn, const char *arg) {
    if (v.kind == V_NONE) return dflt;
    if (v.kind == V_INT) return v.i;
    if (v.kind == V_BOOL) return v.b;
    rt_error(I, "%s: %s must be an int, got %s", fn, arg, rt_type_name(v));
}

double lib_float(Interp *I, Value v, double dflt, const char *fn, const char *arg) {
    if (v.kind == V_NONE) return dflt;
    if (is_num(v)) return num_of(v);
    if (v.kind == V_TENSOR && shape_numel(&as_tensor(v)->shape) == 1) return rt_to_float(I, v, arg);
    rt_error(I, "%s: %s must be a number, got %s", fn, arg, rt_type_name(v));
}

bool lib_bool(Interp *I, Value v, bool dflt, const char *fn, const char *arg) {
    if (v.kind == V_NONE) return dflt;
    if (v.kind == V_BOOL) return v.b;
    rt_error(I, "%s: %s must be true or false, got %s", fn, arg, rt_type_name(v));
}

List *lib_seq(Interp *I, Value v, const char *fn, const char *arg) {
    if (!is_seq(v)) rt_error(I, "%s: %s must be a list, got %s", fn, arg, rt_type_name(v));
    return as_list(v);
}

Value lib_from_io(Interp *I, const IoTensor *t) {
    Tensor *r = rt_tensor_uninit(I, t->dtype, t->shape);
    size_t n = (size_t)shape_numel(&t->shape) * dtype_size(t->dtype);
    if (n) memcpy(r->buf->data, t->data, n);
    return vtensor(r);
}

int64_t *lib_permutation(Rng *r, int64_t n) {
    int64_t *p = tt_xmalloc((size_t)(n ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(rng_uniform(r) * (double)(i + 1));
        if (j > i) j = i;
        int64_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

Value *lib_record_field(Value rec, const char *name) {
    if (rec.kind != V_RECORD) return NULL;
    Record *r = (Record *)rec.o;
    for (int i = 0; i < r->len; i++)
        if (strcmp(r->names[i], name) == 0) return &r->vals[i];
    return NULL;
}

/* Normalizes axis for rank nd (negative counts from the end). */
static int norm_axis(Interp *I, int64_t axis, int nd, const char *fn) {
    int64_t a = axis < 0 ? axis + nd : axis;
    if (a < 0 || a >= nd)
        rt_error(I, "%s: axis %lld out of range for a tensor of rank %d", fn, (long long)axis, nd);
    return (int)a;
}

/* The most elements a constructor makes (8 GiB of f32): beyond, an error
 * instead of an allocation failure. */
#define MAX_NUMEL ((int64_t)1 << 31)

static Value realized(Interp *I, const char *fn, DType dt, Shape s, void **data) {
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++) {
        if (s.d[i] > 0 && n > MAX_NUMEL / s.d[i]) {
            char b[256];
            rt_error(I, "%s: a tensor of shape %s is too large (more than %lld elements)", fn,
                     shape_str(&s, b, sizeof b), (long long)MAX_NUMEL);
        }
        n *= s.d[i];
    }
    Tensor *t = rt_tensor_new(I, dt, s);
    *data = t->buf->data;
    return vtensor(t);
}

static void store(DType dt, void *data, int64_t i, double x) {
    switch (dt) {
    case TY_F32:
        ((float *)data)[i] = (float)x;
        break;
    case TY_I32:
        ((int32_t *)data)[i] = (int32_t)x;
        break;
    case TY_I8:
        ((int8_t *)data)[i] = (int8_t)x;
        break;
    default:
        TT_UNREACHABLE();
    }
}

/* ---- constructors ---- */

/* Infers the shape of nested lists from their first items. */
static void nested_shape(Interp *I, Value v, Shape *s) {
    s->ndim = 0;
    while (is_seq(v)) {
        if (s->ndim == IR_MAXDIM)
            rt_error(I, "tensor: nested lists deeper than %d dimensions", IR_MAXDIM);
        List *l = as_list(v);
        s->d[s->ndim++] = l->len;
        if (l->len == 0) break;
        v = l->items[0];
    }
}

static void fill_nested(Interp *I, Value v, const Shape *s, int depth, DType dt, void *data,
                        int64_t *pos) {
    if (depth == s->ndim) {
        if (is_seq(v))
            rt_error(I,
                     "tensor: ragged nested list: a list where a number was expected at "
                     "depth %d",
                     depth);
        if (!is_num(v))
            rt_error(I, "tensor: expected numbers in the nested list, got %s", rt_type_name(v));
        store(dt, data, (*pos)++, num_of(v));
        return;
    }
    if (!is_seq(v))
        rt_error(I, "tensor: ragged nested list: expected a list of %lld items at depth %d, got %s",
                 (long long)s->d[depth], depth, rt_type_name(v));
    List *l = as_list(v);
    if (l->len != s->d[depth])
        rt_error(I, "tensor: ragged nested list: expected %lld items at depth %d, got %d",
                 (long long)s->d[depth], depth, l->len);
    for (int i = 0; i < l->len; i++) fill_nested(I, l->items[i], s, depth + 1, dt, data, pos);
}

/* tensor(data, dtype="f32") */
BUILTIN(bi_tensor) {
    static const char *const names[] = {"data", "dtype", NULL};
    Value a[2];
    BIND("tensor", names, 1, a);
    DType dt = lib_dtype(I, a[1], TY_F32, "tensor");
    Value d = a[0];
    if (d.kind == V_TENSOR)
        return lib_result(I, ir_cast(&I->lz.g, rt_node(I, as_tensor(d)), dt, I->ev.loc));
    if (!is_num(d) && !is_seq(d))
        rt_error(I, "tensor: data must be a number or nested lists of numbers, got %s",
                 rt_type_name(d));
    Shape s;
    nested_shape(I, d, &s);
    void *data;
    Value r = realized(I, "tensor", dt, s, &data);
    int64_t pos = 0;
    fill_nested(I, d, &s, 0, dt, data, &pos);
    return r;
}

static Value filled(Interp *I, const char *fn, Value shape, DType dt, double x) {
    Shape s = lib_shape(I, shape, fn, "shape", false);
    void *data;
    Value r = realized(I, fn, dt, s, &data);
    if (x != 0)
        for (int64_t i = 0, n = shape_numel(&s); i < n; i++) store(dt, data, i, x);
    return r;
}

/* zeros(shape, dtype="f32") */
BUILTIN(bi_zeros) {
    static const char *const names[] = {"shape", "dtype", NULL};
    Value a[2];
    BIND("zeros", names, 1, a);
    return filled(I, "zeros", a[0], lib_dtype(I, a[1], TY_F32, "zeros"), 0);
}

/* ones(shape, dtype="f32") */
BUILTIN(bi_ones) {
    static const char *const names[] = {"shape", "dtype", NULL};
    Value a[2];
    BIND("ones", names, 1, a);
    return filled(I, "ones", a[0], lib_dtype(I, a[1], TY_F32, "ones"), 1);
}

/* full(shape, value, dtype="f32") */
BUILTIN(bi_full) {
    static const char *const names[] = {"shape", "value", "dtype", NULL};
    Value a[3];
    BIND("full", names, 2, a);
    double x = lib_float(I, a[1], 0, "full", "value");
    return filled(I, "full", a[0], lib_dtype(I, a[2], TY_F32, "full"), x);
}

/* arange(n) / arange(lo, hi, step=1): i32 when every argument is an int */
BUILTIN(bi_arange) {
    static const char *const names[] = {"lo", "hi", "step", "dtype", NULL};
    Value a[4];
    BIND("arange", names, 1, a);
    bool ints = true;
    for (int i = 0; i < 3; i++) {
        if (a[i].kind == V_NONE) continue;
        if (!is_num(a[i]))
            rt_error(I, "arange: %s must be a number, got %s", names[i], rt_type_name(a[i]));
        if (a[i].kind == V_FLOAT) ints = false;
    }
    double lo = num_of(a[0]), hi = 0, step = a[2].kind == V_NONE ? 1 : num_of(a[2]);
    if (a[1].kind == V_NONE) {
        hi = lo;
        lo = 0;
    } else {
        hi = num_of(a[1]);
    }
    if (step == 0) rt_error(I, "arange: step must not be 0");
    DType dt = lib_dtype(I, a[3], ints ? TY_I32 : TY_F32, "arange");
    double cnt = ceil((hi - lo) / step);
    if (cnt < 0) cnt = 0;
    if (cnt > 1e9) rt_error(I, "arange: %.0f elements is too many", cnt);
    int64_t n = (int64_t)cnt;
    void *data;
    Value r = realized(I, "arange", dt, shape_make(1, &n), &data);
    for (int64_t i = 0; i < n; i++) store(dt, data, i, lo + (double)i * step);
    return r;
}

/* The generator of a random constructor: a fresh one for seed=, else the
 * interpreter's. */
static Rng *pick_rng(Interp *I, Value seed, Rng *local, const char *fn) {
    if (seed.kind == V_NONE) return &I->ev.rng;
    rng_seed(local, (uint64_t)lib_int(I, seed, 0, fn, "seed"));
    return local;
}

/* randn(shape, seed=none), rand(shape, seed=none) */
static Value random_f32(Interp *I, const char *fn, const Value *args, int nargs,
                        const char *const *kwnames, const Value *kwargs, int nkw, bool normal) {
    static const char *const names[] = {"shape", "seed", NULL};
    Value a[2];
    BIND(fn, names, 1, a);
    Shape s = lib_shape(I, a[0], fn, "shape", false);
    Rng local, *r = pick_rng(I, a[1], &local, fn);
    void *data;
    Value t = realized(I, fn, TY_F32, s, &data);
    float *f = data;
    for (int64_t i = 0, n = shape_numel(&s); i < n; i++)
        f[i] = (float)(normal ? rng_normal(r) : rng_uniform(r));
    return t;
}

BUILTIN(bi_randn) {
    return random_f32(I, "randn", args, nargs, kwnames, kwargs, nkw, true);
}
BUILTIN(bi_rand) {
    return random_f32(I, "rand", args, nargs, kwnames, kwargs, nkw, false);
}

/* randint(lo, hi, shape, seed=none): i32 uniform in [lo, hi) */
BUILTIN(bi_randint) {
    static const char *const names[] = {"lo", "hi", "shape", "seed", NULL};
    Value a[4];
    BIND("randint", names, 3, a);
    int64_t lo = lib_int(I, a[0], 0, "randint", "lo"), hi = lib_int(I, a[1], 0, "randint", "hi");
    if (hi <= lo) rt_error(I, "randint: empty range [%lld, %lld)", (long long)lo, (long long)hi);
    Shape s = lib_shape(I, a[2], "randint", "shape", false);
    Rng local, *r = pick_rng(I, a[3], &local, "randint");
    void *data;
    Value t = realized(I, "randint", TY_I32, s, &data);
    for (int64_t i = 0, n = shape_numel(&s); i < n; i++) {
        int64_t k = lo + (int64_t)(rng_uniform(r) * (double)(hi - lo));
        ((int32_t *)data)[i] = (int32_t)(k < hi ? k : hi - 1);
    }
    return t;
}

/* eye(n, m=n, dtype="f32") */
BUILTIN(bi_eye) {
    static const char *const names[] = {"n", "m", "dtype", NULL};
    Value a[3];
    BIND("eye", names, 1, a);
    int64_t n = lib_int(I, a[0], 0, "eye", "n"), m = lib_int(I, a[1], n, "eye", "m");
    if (n < 0 || m < 0) rt_error(I, "eye: negative size");
    DType dt = lib_dtype(I, a[2], TY_F32, "eye");
    void *data;
    Value t = realized(I, "eye", dt, shape_make(2, (int64_t[]){n, m}), &data);
    for (int64_t i = 0; i < n && i < m; i++) store(dt, data, i * m + i, 1);
    return t;
}

/* ---- shape operations ---- */

/* reshape(x, shape): one dimension may be -1 */
BUILTIN(bi_reshape) {
    static const char *const names[] = {"x", "shape", NULL};
    Value a[2];
    BIND("reshape", names, 2, a);
    Tensor *x = lib_tensor(I, a[0], "reshape", "x");
    Shape s = lib_shape(I, a[1], "reshape", "shape", true);
    return lib_result(I, ir_reshape(&I->lz.g, rt_node(I, x), s, I->ev.loc));
}

/* transpose(x, d0=-2, d1=-1); tensors of rank < 2 are returned as they are */
BUILTIN(bi_transpose) {
    static const char *const names[] = {"x", "d0", "d1", NULL};
    Value a[3];
    BIND("transpose", names, 1, a);
    Tensor *x = lib_tensor(I, a[0], "transpose", "x");
    int64_t d0 = lib_int(I, a[1], -2, "transpose", "d0"),
            d1 = lib_int(I, a[2], -1, "transpose", "d1");
    if (x->shape.ndim < 2 && !rt_given(a[1]) && !rt_given(a[2])) return rt_retain(a[0]);
    return lib_result(I, ir_transpose(&I->lz.g, rt_node(I, x), (int)d0, (int)d1, I->ev.loc));
}

/* permute(x, dims) */
BUILTIN(bi_permute) {
    static const char *const names[] = {"x", "dims", NULL};
    Value a[2];
    BIND("permute", names, 2, a);
    Tensor *x = lib_tensor(I, a[0], "permute", "x");
    List *l = lib_seq(I, a[1], "permute", "dims");
    if (l->len != x->shape.ndim)
        rt_error(I, "permute: dims has %d entries, the tensor has rank %d", l->len, x->shape.ndim);
    int perm[IR_MAXDIM];
    for (int i = 0; i < l->len; i++) perm[i] = (int)lib_int(I, l->items[i], 0, "permute", "dims");
    return lib_result(I, ir_permute(&I->lz.g, rt_node(I, x), perm, I->ev.loc));
}

/* flatten(x, start=1, end=-1): merges dims start..end into one */
BUILTIN(bi_flatten) {
    static const char *const names[] = {"x", "start", "end", NULL};
    Value a[3];
    BIND("flatten", names, 1, a);
    Tensor *x = lib_tensor(I, a[0], "flatten", "x");
    const Shape *s = &x->shape;
    int64_t st = lib_int(I, a[1], 1, "flatten", "start"),
            en = lib_int(I, a[2], -1, "flatten", "end");
    if (s->ndim == 0)
        return lib_result(
            I, ir_reshape(&I->lz.g, rt_node(I, x), shape_make(1, (int64_t[]){1}), I->ev.loc));
    if (!rt_given(a[1]) && s->ndim < 2) return rt_retain(a[0]);
    int b = norm_axis(I, st, s->ndim, "flatten"), e = norm_axis(I, en, s->ndim, "flatten");
    if (e < b)
        rt_error(I, "flatten: end axis %lld comes before start axis %lld", (long long)en,
                 (long long)st);
    Shape t = {0};
    for (int i = 0; i < b; i++) t.d[t.ndim++] = s->d[i];
    int64_t m = 1;
    for (int i = b; i <= e; i++) m *= s->d[i];
    t.d[t.ndim++] = m;
    for (int i = e + 1; i < s->ndim; i++) t.d[t.ndim++] = s->d[i];
    return lib_result(I, ir_reshape(&I->lz.g, rt_node(I, x), t, I->ev.loc));
}

/* squeeze(x, axis=none): drops size-1 dims (all of them, or the one named) */
BUILTIN(bi_squeeze) {
    static const char *const names[] = {"x", "axis", NULL};
    Value a[2];
    BIND("squeeze", names, 1, a);
    Tensor *x = lib_tensor(I, a[0], "squeeze", "x");
    const Shape *s = &x->shape;
    int only = -1;
    if (a[1].kind != V_NONE) {
        only = norm_axis(I, lib_int(I, a[1], 0, "squeeze", "axis"), s->ndim, "squeeze");
        if (s->d[only] != 1)
            rt_error(I, "squeeze: axis %d has size %lld, not 1", only, (long long)s->d[only]);
    }
    Shape t = {0};
    for (int i = 0; i < s->ndim; i++)
        if (!(s->d[i] == 1 && (only < 0 || only == i))) t.d[t.ndim++] = s->d[i];
    return lib_result(I, ir_reshape(&I->lz.g, rt_node(I, x), t, I->ev.loc));
}

static int unsqueeze_node(Interp *I, int id, int64_t axis, const char *fn) {
    Shape s = I->lz.g.nodes[id].shape;
    if (s.ndim == IR_MAXDIM) rt_error(I, "%s: at most %d dimensions", fn, IR_MAXDIM);
    int64_t ax = axis < 0 ? axis + s.ndim + 1 : axis;
    if (ax < 0 || ax > s.ndim)
        rt_error(I, "%s: axis %lld out of range for a tensor of rank %d", fn, (long long)axis,
                 s.ndim);
    for (int i = s.ndim; i > ax; i--) s.d[i] = s.d[i - 1];
    s.d[ax] = 1;
    s.ndim++;
    return rt_check_node(I, ir_reshape(&I->lz.g, id, s, I->ev.loc));
}

/* unsqueeze(x, axis) */
BUILTIN(bi_unsqueeze) {
    static const char *const names[] = {"x", "axis", NULL};
    Value a[2];
    BIND("unsqueeze", names, 2, a);
    Tensor *x = lib_tensor(I, a[0], "unsqueeze", "x");
    int64_t axis = lib_int(I, a[1], 0, "unsqueeze", "axis");
    return lib_result(I, unsqueeze_node(I, rt_node(I, x), axis, "unsqueeze"));
}

/* The nodes of a list of tensors (the caller frees the array). */
static int *list_nodes(Interp *I, Value v, const char *fn, int *n) {
    List *l = lib_seq(I, v, fn, "tensors");
    if (l->len == 0) rt_error(I, "%s: needs at least one tensor", fn);
    for (int i = 0; i < l->len; i++)
        if (l->items[i].kind != V_TENSOR)
            rt_error(I, "%s: item %d is %s, expected a tensor", fn, i, rt_type_name(l->items[i]));
    int *ids = tt_xmalloc((size_t)l->len * sizeof *ids);
    for (int i = 0; i < l->len; i++) ids[i] = rt_node(I, as_tensor(l->items[i]));
    *n = l->len;
    return ids;
}

/* concat(tensors, axis=0) */
BUILTIN(bi_concat) {
    static const char *const names[] = {"tensors", "axis", NULL};
    Value a[2];
    BIND("concat", names, 1, a);
    int64_t axis = lib_int(I, a[1], 0, "concat", "axis");
    int n;
    int *ids = list_nodes(I, a[0], "concat", &n);
    int r = ir_concat(&I->lz.g, ids, n, (int)axis, I->ev.loc);
    free(ids);
    return lib_result(I, r);
}

/* stack(tensors, axis=0): a new axis; every tensor has the same shape */
BUILTIN(bi_stack) {
    static const char *const names[] = {"tensors", "axis", NULL};
    Value a[2];
    BIND("stack", names, 1, a);
    int64_t axis = lib_int(I, a[1], 0, "stack", "axis");
    List *l = lib_seq(I, a[0], "stack", "tensors");
    for (int i = 0; i < l->len; i++) {
        if (l->items[i].kind != V_TENSOR)
            rt_error(I, "stack: item %d is %s, expected a tensor", i, rt_type_name(l->items[i]));
        const Shape *s0 = &as_tensor(l->items[0])->shape, *si = &as_tensor(l->items[i])->shape;
        if (!shape_eq(s0, si)) {
            char b0[128], b1[128];
            rt_error(I, "stack: every tensor needs the same shape: item 0 is %s, item %d is %s",
                     shape_str(s0, b0, sizeof b0), i, shape_str(si, b1, sizeof b1));
        }
    }
    int n;
    int *ids = list_nodes(I, a[0], "stack", &n);
    for (int i = 0; i < n; i++) ids[i] = unsqueeze_node(I, ids[i], axis, "stack");
    int r = ir_concat(&I->lz.g, ids, n,
                      (int)(axis < 0 ? axis + I->lz.g.nodes[ids[0]].shape.ndim : axis), I->ev.loc);
    free(ids);
    return lib_result(I, r);
}

/* matmul(a, b): the @ operator */
BUILTIN(bi_matmul) {
    static const char *const names[] = {"a", "b", NULL};
    Value a[2];
    BIND("matmul", names, 2, a);
    Tensor *x = lib_tensor(I, a[0], "matmul", "a"), *y = lib_tensor(I, a[1], "matmul", "b");
    int ix = rt_node(I, x), iy = rt_node(I, y);
    return lib_result(I, ir_matmul(&I->lz.g, ix, iy, I->ev.loc));
}

/* cast(x, dtype): numbers convert too (float -> int truncates) */
BUILTIN(bi_cast) {
    static const char *const names[] = {"x", "dtype", NULL};
    Value a[2];
    BIND("cast", names, 2, a);
    DType dt = lib_dtype(I, a[1], TY_F32, "cast");
    if (is_num(a[0])) {
        double x = num_of(a[0]);
        if (dt == TY_F32) return vfloat(x);
        if (!isfinite(x)) rt_error(I, "cast: cannot convert %g to an int", x);
        return vint(dt == TY_I8 ? (int8_t)x : (int32_t)x);
    }
    Tensor *x = lib_tensor(I, a[0], "cast", "x");
    return lib_result(I, ir_cast(&I->lz.g, rt_node(I, x), dt, I->ev.loc));
}

/* numel(x) -> int */
BUILTIN(bi_numel) {
    static const char *const names[] = {"x", NULL};
    Value a[1];
    BIND("numel", names, 1, a);
    if (is_num(a[0])) return vint(1);
    return vint(shape_numel(&lib_tensor(I, a[0], "numel", "x")->shape));
}

/* size(x, axis=none) -> the size of one axis, or the shape as a list */
BUILTIN(bi_size) {
    static const char *const names[] = {"x", "axis", NULL};
    Value a[2];
    BIND("size", names, 1, a);
    Tensor *x = lib_tensor(I, a[0], "size", "x");
    if (a[1].kind == V_NONE) {
        Value l = rt_list(I, x->shape.ndim);
        for (int i = 0; i < x->shape.ndim; i++) as_list(l)->items[i] = vint(x->shape.d[i]);
        return l;
    }
    int ax = norm_axis(I, lib_int(I, a[1], 0, "size", "axis"), x->shape.ndim, "size");
    return vint(x->shape.d[ax]);
}

/* gather(table, idx) / embedding(table, idx): rows of table at idx (i32).
 * An index outside [0, rows) is an error, negative ones too (as
 * torch.gather and F.embedding): the kernels check when the graph runs, at
 * the location of this call (rt_user_loc: Embedding's forward reports at
 * the user's emb(idx)). */
static Value gather_impl(Interp *I, const char *fn, const Value *args, int nargs,
                         const char *const *kwnames, const Value *kwargs, int nkw) {
    static const char *const names[] = {"table", "idx", NULL};
    Value a[2];
    BIND(fn, names, 2, a);
    Tensor *t = lib_tensor(I, a[0], fn, "table");
    int it = rt_node(I, t);
    int ii;
    if (a[1].kind == V_TENSOR)
        ii = rt_node(I, as_tensor(a[1]));
    else if (a[1].kind == V_INT)
        ii = rt_scalar_node(I, TY_I32, (double)a[1].i, false);
    else
        rt_error(I, "%s: idx must be an i32 tensor or an int, got %s", fn, rt_type_name(a[1]));
    const IrNode *ix = &I->lz.g.nodes[ii];
    if (ix->dtype == TY_F32)
        rt_error(I, "%s: indices must be i32, got f32 (use cast(idx, \"i32\"))", fn);
    return lib_result(I, ir_gather(&I->lz.g, it, ii, rt_user_loc(I)));
}

BUILTIN(bi_gather) {
    return gather_impl(I, "gather", args, nargs, kwnames, kwargs, nkw);
}
BUILTIN(bi_embedding) {
    return gather_impl(I, "embedding", args, nargs, kwnames, kwargs, nkw);
}

void rt_register_tensor_builtins(Interp *I) {
    static const struct {
        const char *name;
        BuiltinFn fn;
    } table[] = {
        {"tensor", bi_tensor},   {"zeros", bi_zeros},         {"ones", bi_ones},
        {"full", bi_full},       {"arange", bi_arange},       {"randn", bi_randn},
        {"rand", bi_rand},       {"randint", bi_randint},     {"eye", bi_eye},
        {"reshape", bi_reshape}, {"transpose", bi_transpose}, {"permute", bi_permute},
        {"flatten", bi_flatten}, {"squeeze", bi_squeeze},     {"unsqueeze", bi_unsqueeze},
        {"concat", bi_concat},   {"stack", bi_stack},         {"matmul", bi_matmul},
        {"cast", bi_cast},       {"numel", bi_numel},         {"size", bi_size},
        {"gather", bi_gather},   {"embedding", bi_embedding},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        rt_define_global(I, table[i].name, rt_builtin(I, table[i].name, table[i].fn, VNONE));
    lib_register_math(I);
    lib_register_conv(I);
    lib_register_sort(I);
    lib_register_text(I);
    lib_register_lm(I);
    lib_register_bench(I);
    lib_register_quant(I);
    lib_register_compress(I);
    lib_register_ptq(I);
    lib_register_attn(I);
}
