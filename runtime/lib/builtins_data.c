/* builtins_data.c - data sets and files: load_csv, load_idx, load_npy,
 * save_npy, read_text, dataset, split, batches, save and load (weights as
 * safetensors).
 *
 * A data set is a record of tensors with the same first dimension, usually
 * (x=f32[N, F], y=i32[N]). split and batches copy rows on the host, so their
 * results are realized tensors. File errors come from io_* with the file
 * named and are reported at the call.
 */
#include "builtins_lib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "io.h"

#define ERRLEN 512

/* A tensor that takes over t's data when it is aligned like every tensor
 * buffer (no copy of a large data set), else copies it. */
static Value take_io(Interp *I, IoTensor *t) {
    size_t n = (size_t)shape_numel(&t->shape) * dtype_size(t->dtype);
    if (!t->data || ((uintptr_t)t->data & 63) || n == 0) {
        Value v = lib_from_io(I, t);
        io_tensor_free(t);
        return v;
    }
    Buffer *b = tt_xmalloc(sizeof *b);
    b->data = t->data;
    b->nbytes = n;
    b->refcount = 1;
    b->own = false; /* io_alloc_data's */
    t->data = NULL;
    Tensor *r = rt_tensor_from_buf(I, t->dtype, t->shape, b);
    rt_buf_release(b); /* the tensor holds it */
    return vtensor(r);
}

const char *lib_path(Interp *I, Value v, const char *fn, const char *arg) {
    if (v.kind != V_STR) rt_error(I, "%s: %s must be a string, got %s", fn, arg, rt_type_name(v));
    const Str *s = (Str *)v.o;
    /* The C library would stop at the NUL and open another file than the
     * string names ("good.npy\0junk" is not good.npy). */
    if (memchr(s->s, 0, s->len)) rt_error(I, "%s: %s contains a NUL character", fn, arg);
    return s->s;
}

static Value make_record2(Interp *I, const char *n0, Value v0, const char *n1, Value v1) {
    const char *names[2] = {n0, n1};
    Value r = rt_record(I, 2, names);
    ((Record *)r.o)->vals[0] = v0;
    ((Record *)r.o)->vals[1] = v1;
    return r;
}

/* load_csv(path, label=-1): (x=f32[N, F], y=i32[N]); label=none: x only */
BUILTIN(bi_load_csv) {
    static const char *const names[] = {"path", "label", NULL};
    Value a[2];
    BIND("load_csv", names, 1, a);
    const char *path = lib_path(I, a[0], "load_csv", "path");
    int label = -1;
    if (rt_given(a[1]))
        label = a[1].kind == V_NONE ? INT32_MIN : (int)lib_int(I, a[1], -1, "load_csv", "label");
    IoTensor x = {0}, y = {0};
    char err[ERRLEN];
    if (!io_load_csv(path, label, &x, &y, err, sizeof err)) rt_error(I, "%s", err);
    Value vx = take_io(I, &x);
    if (label == INT32_MIN) {
        io_tensor_free(&y);
        return vx;
    }
    return make_record2(I, "x", vx, "y", take_io(I, &y));
}

/* load_idx(path) -> tensor */
BUILTIN(bi_load_idx) {
    static const char *const names[] = {"path", NULL};
    Value a[1];
    BIND("load_idx", names, 1, a);
    IoTensor t = {0};
    char err[ERRLEN];
    if (!io_load_idx(lib_path(I, a[0], "load_idx", "path"), &t, err, sizeof err))
        rt_error(I, "%s", err);
    return take_io(I, &t);
}

/* load_npy(path) -> tensor */
BUILTIN(bi_load_npy) {
    static const char *const names[] = {"path", NULL};
    Value a[1];
    BIND("load_npy", names, 1, a);
    IoTensor t = {0};
    char err[ERRLEN];
    if (!io_load_npy(lib_path(I, a[0], "load_npy", "path"), &t, err, sizeof err))
        rt_error(I, "%s", err);
    return take_io(I, &t);
}

/* save_npy(t, path) */
BUILTIN(bi_save_npy) {
    static const char *const names[] = {"t", "path", NULL};
    Value a[2];
    BIND("save_npy", names, 2, a);
    Tensor *t = lib_tensor(I, a[0], "save_npy", "t");
    const char *path = lib_path(I, a[1], "save_npy", "path");
    IoTensor io = {t->dtype, t->shape, rt_data(I, t)};
    char err[ERRLEN];
    if (!io_save_npy(path, &io, err, sizeof err)) rt_error(I, "%s", err);
    return VNONE;
}

/* read_text(path) -> string (".gz" files are decompressed) */
BUILTIN(bi_read_text) {
    static const char *const names[] = {"path", NULL};
    Value a[1];
    BIND("read_text", names, 1, a);
    char err[ERRLEN];
    size_t len;
    char *s = tt_read_data_file(lib_path(I, a[0], "read_text", "path"), &len, err, sizeof err);
    if (!s) rt_error(I, "%s", err);
    Value r = rt_str(I, s, len);
    free(s);
    return r;
}

/* dataset(x, y=none) -> (x=, y=) */
BUILTIN(bi_dataset) {
    static const char *const names[] = {"x", "y", NULL};
    Value a[2];
    BIND("dataset", names, 1, a);
    Tensor *x = lib_tensor(I, a[0], "dataset", "x");
    if (x->shape.ndim < 1) rt_error(I, "dataset: x must have at least one dimension");
    if (a[1].kind == V_NONE) {
        const char *n[1] = {"x"};
        Value r = rt_record(I, 1, n);
        ((Record *)r.o)->vals[0] = rt_retain(a[0]);
        return r;
    }
    Tensor *y = lib_tensor(I, a[1], "dataset", "y");
    if (y->shape.ndim < 1 || y->shape.d[0] != x->shape.d[0])
        rt_error(I, "dataset: x has %lld rows but y has %lld", (long long)x->shape.d[0],
                 (long long)(y->shape.ndim ? y->shape.d[0] : 0));
    return make_record2(I, "x", rt_retain(a[0]), "y", rt_retain(a[1]));
}

/* ---- rows of data sets ---- */

/* The tensors of a data set: the fields of a record, the items of a tuple or
 * list, or one tensor. All must have the same number of rows. */
typedef struct Parts {
    int n;
    Tensor *t[16];
    const char *names[16]; /* record field names, else NULL */
    ValKind kind;          /* V_RECORD, V_TUPLE/V_LIST or V_TENSOR */
    int64_t rows;
} Parts;

static Parts data_parts(Interp *I, Value d, const char *fn) {
    Parts p = {0};
    p.kind = d.kind;
    const Value *items = NULL;
    if (d.kind == V_TENSOR) {
        items = &d;
        p.n = 1;
    } else if (d.kind == V_RECORD) {
        Record *r = (Record *)d.o;
        items = r->vals;
        p.n = r->len;
        for (int i = 0; i < r->len && i < 16; i++) p.names[i] = r->names[i];
    } else if (is_seq(d)) {
        items = as_list(d)->items;
        p.n = as_list(d)->len;
    } else {
        rt_error(I, "%s: data must be a data set (x=, y=), a tuple of tensors or a tensor, got %s",
                 fn, rt_type_name(d));
    }
    if (p.n == 0 || p.n > 16) rt_error(I, "%s: a data set needs 1 to 16 tensors, got %d", fn, p.n);
    for (int i = 0; i < p.n; i++) {
        if (items[i].kind != V_TENSOR)
            rt_error(I, "%s: the data set's %s%s is %s, expected a tensor", fn,
                     p.names[i] ? "field " : "item ", p.names[i] ? p.names[i] : "",
                     rt_type_name(items[i]));
        p.t[i] = as_tensor(items[i]);
        if (p.t[i]->shape.ndim < 1) rt_error(I, "%s: data set tensors need a first dimension", fn);
        if (i == 0)
            p.rows = p.t[i]->shape.d[0];
        else if (p.t[i]->shape.d[0] != p.rows)
            rt_error(I, "%s: the data set's tensors have different numbers of rows (%lld and %lld)",
                     fn, (long long)p.rows, (long long)p.t[i]->shape.d[0]);
    }
    return p;
}

/* A realized tensor of rows idx[0..n) of t. */
static Tensor *take_rows(Interp *I, Tensor *t, const int64_t *idx, int64_t n) {
    Shape s = t->shape;
    s.d[0] = n;
    size_t row = dtype_size(t->dtype);
    for (int i = 1; i < s.ndim; i++) row *= (size_t)s.d[i];
    Tensor *r = rt_tensor_new(I, t->dtype, s);
    const char *src = rt_data(I, t);
    char *dst = r->buf->data;
    for (int64_t i = 0; i < n; i++) memcpy(dst + (size_t)i * row, src + (size_t)idx[i] * row, row);
    return r;
}

/* A data set of the same form as p holding rows idx[0..n). */
static Value subset(Interp *I, const Parts *p, const int64_t *idx, int64_t n) {
    Value r;
    if (p->kind == V_TENSOR) return vtensor(take_rows(I, p->t[0], idx, n));
    if (p->kind == V_RECORD)
        r = rt_record(I, p->n, p->names);
    else
        r = rt_tuple(I, p->n);
    Value *vals = p->kind == V_RECORD ? ((Record *)r.o)->vals : as_list(r)->items;
    for (int i = 0; i < p->n; i++) vals[i] = vtensor(take_rows(I, p->t[i], idx, n));
    return r;
}

/* split(data, frac, seed=0) -> (train, test): a seeded shuffle, then the
 * first round(frac * N) rows go to train */
BUILTIN(bi_split) {
    static const char *const names[] = {"data", "frac", "seed", NULL};
    Value a[3];
    BIND("split", names, 2, a);
    Parts p = data_parts(I, a[0], "split");
    double frac = lib_float(I, a[1], 0, "split", "frac");
    if (!(frac >= 0 && frac <= 1)) rt_error(I, "split: frac must be in [0, 1], got %g", frac);
    Rng r;
    rng_seed(&r, (uint64_t)lib_int(I, a[2], 0, "split", "seed"));
    for (int i = 0; i < p.n; i++) rt_data(I, p.t[i]);
    int64_t *perm = lib_permutation(&r, p.rows);
    int64_t ntrain = (int64_t)llround(frac * (double)p.rows);
    Value out = rt_tuple(I, 2);
    as_list(out)->items[0] = subset(I, &p, perm, ntrain);
    as_list(out)->items[1] = subset(I, &p, perm + ntrain, p.rows - ntrain);
    free(perm);
    return out;
}

Value lib_batches(Interp *I, Value data, int64_t size, bool shuffle, Value seed, bool drop_last) {
    Parts p = data_parts(I, data, "batches");
    if (size < 1) rt_error(I, "batches: size must be positive, got %lld", (long long)size);
    for (int i = 0; i < p.n; i++) rt_data(I, p.t[i]);
    int64_t *perm;
    if (shuffle) {
        Rng local, *r = &I->ev.rng;
        if (seed.kind != V_NONE) {
            rng_seed(&local, (uint64_t)lib_int(I, seed, 0, "batches", "seed"));
            r = &local;
        }
        perm = lib_permutation(r, p.rows);
    } else {
        perm = tt_xmalloc((size_t)(p.rows ? p.rows : 1) * sizeof *perm);
        for (int64_t i = 0; i < p.rows; i++) perm[i] = i;
    }
    if (p.kind == V_RECORD) p.kind = V_TUPLE; /* batches are (x, y) tuples */
    Value out = rt_list(I, 0);
    for (int64_t b = 0; b < p.rows; b += size) {
        int64_t n = p.rows - b < size ? p.rows - b : size;
        if (n < size && drop_last) break;
        rt_list_push(I, out, subset(I, &p, perm + b, n));
    }
    free(perm);
    return out;
}

/* batches(data, size, shuffle=false, seed=none, drop_last=false) -> list of
 * (x, y) tuples */
BUILTIN(bi_batches) {
    static const char *const names[] = {"data", "size", "shuffle", "seed", "drop_last", NULL};
    Value a[5];
    BIND("batches", names, 2, a);
    int64_t size = lib_int(I, a[1], 0, "batches", "size");
    bool shuffle = lib_bool(I, a[2], false, "batches", "shuffle");
    bool drop = lib_bool(I, a[4], false, "batches", "drop_last");
    return lib_batches(I, a[0], size, shuffle, a[3], drop);
}

/* ---- weights ---- */

static const char *basename_of(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static const char *model_name(Value m) {
    return m.kind == V_MODEL ? ((Model *)m.o)->type_name : "?";
}

/* save(net, path): every parameter and buffer, named by its dotted path */
BUILTIN(bi_save) {
    static const char *const names[] = {"net", "path", NULL};
    Value a[2];
    BIND("save", names, 2, a);
    if (a[0].kind != V_MODEL) rt_error(I, "save: net must be a model, got %s", rt_type_name(a[0]));
    const char *path = lib_path(I, a[1], "save", "path");
    Value ps = rt_state_tensors(I, a[0], "save");
    List *l = as_list(ps);
    IoNamed *ts = tt_xcalloc((size_t)(l->len ? l->len : 1), sizeof *ts);
    for (int i = 0; i < l->len; i++) {
        List *pair = as_list(l->items[i]);
        Tensor *t = as_tensor(pair->items[1]);
        ts[i].name = (char *)((Str *)pair->items[0].o)->s;
        ts[i].t = (IoTensor){t->dtype, t->shape, NULL};
    }
    rt_realize_all(I);
    for (int i = 0; i < l->len; i++)
        ts[i].t.data = rt_data(I, as_tensor(as_list(l->items[i])->items[1]));
    char err[ERRLEN];
    bool ok = io_save_safetensors(path, ts, l->len, err, sizeof err);
    free(ts);
    rt_release(I, ps);
    if (!ok) rt_error(I, "%s", err);
    return VNONE;
}

static const IoNamed *find_named(const IoNamed *ts, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(ts[i].name, name) == 0) return &ts[i];
    return NULL;
}

/* load(net, path): checks every name, shape and dtype against the model and
 * reports every problem; modifies nothing unless everything matches */
BUILTIN(bi_load) {
    static const char *const names[] = {"net", "path", NULL};
    Value a[2];
    BIND("load", names, 2, a);
    if (a[0].kind != V_MODEL) rt_error(I, "load: net must be a model, got %s", rt_type_name(a[0]));
    const char *path = lib_path(I, a[1], "load", "path");
    IoNamed *ts = NULL;
    int nt = 0;
    char err[ERRLEN];
    if (!io_load_safetensors(path, &ts, &nt, err, sizeof err)) rt_error(I, "%s", err);
    Value ps = rt_state_tensors(I, a[0], "load");
    List *l = as_list(ps);
    int problems = 0;
    char *used = tt_xcalloc((size_t)(nt ? nt : 1), 1);
    for (int i = 0; i < l->len; i++) {
        const char *name = ((Str *)as_list(l->items[i])->items[0].o)->s;
        Tensor *t = as_tensor(as_list(l->items[i])->items[1]);
        const IoNamed *f = find_named(ts, nt, name);
        if (!f) {
            diag_error(I->ev.loc, "load: missing tensor '%s' in %s", name, path);
            problems++;
            continue;
        }
        used[f - ts] = 1;
        if (!shape_eq(&f->t.shape, &t->shape)) {
            char s0[128], s1[128];
            diag_error(I->ev.loc,
                       "load: tensor '%s' has shape %s in the file, the model expects %s", name,
                       shape_str(&f->t.shape, s0, sizeof s0), shape_str(&t->shape, s1, sizeof s1));
            problems++;
        } else if (f->t.dtype != t->dtype) {
            diag_error(I->ev.loc,
                       "load: tensor '%s' has dtype %s in the file, the model expects %s", name,
                       dtype_name(f->t.dtype), dtype_name(t->dtype));
            problems++;
        }
    }
    for (int i = 0; i < nt; i++)
        if (!used[i]) {
            diag_error(I->ev.loc, "load: unexpected tensor '%s' in the file", ts[i].name);
            problems++;
        }
    free(used);
    if (problems) {
        io_named_free(ts, nt);
        rt_release(I, ps);
        rt_error(I, "load: %s does not match model %s: %d problem%s", basename_of(path),
                 model_name(a[0]), problems, problems == 1 ? "" : "s");
    }
    for (int i = 0; i < l->len; i++) {
        const char *name = ((Str *)as_list(l->items[i])->items[0].o)->s;
        Tensor *t = as_tensor(as_list(l->items[i])->items[1]);
        Value nv = lib_from_io(I, &find_named(ts, nt, name)->t);
        rt_tensor_assign(I, t, rt_node(I, as_tensor(nv)));
        rt_release(I, nv);
    }
    io_named_free(ts, nt);
    rt_release(I, ps);
    rt_realize_all(I);
    return VNONE;
}

void rt_register_data_builtins(Interp *I) {
    static const struct {
        const char *name;
        BuiltinFn fn;
    } table[] = {
        {"load_csv", bi_load_csv}, {"load_idx", bi_load_idx},   {"load_npy", bi_load_npy},
        {"save_npy", bi_save_npy}, {"read_text", bi_read_text}, {"dataset", bi_dataset},
        {"split", bi_split},       {"batches", bi_batches},     {"save", bi_save},
        {"load", bi_load},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        rt_define_global(I, table[i].name, rt_builtin(I, table[i].name, table[i].fn, VNONE));
    lib_register_fit(I);
}
