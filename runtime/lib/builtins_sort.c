/* builtins_sort.c - sorting, scans and sampling: sort, argsort, topk,
 * cumsum, quantile (graph ops: lazy, differentiable where PyTorch is), and
 * multinomial, permutation (random: drawn here, on the host, from the
 * project's generator, so both backends give the same numbers for a seed).
 *
 * Indices are i32 (tt's index type; PyTorch's are int64). Sorting is
 * stable and a NaN sorts as the largest value, as torch.sort(stable=True);
 * topk is the first k of the stable descending sort, so among equal values
 * the lower index comes first.
 */
#include "builtins_lib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The node of tensor argument x and the axis a[ai] (default dflt). */
static int axis_arg(Interp *I, Value v, int64_t dflt, const char *fn) {
    int64_t ax = lib_int(I, v, dflt, fn, "axis");
    if (ax < -IR_MAXDIM || ax >= IR_MAXDIM)
        rt_error(I, "%s: axis %lld out of range", fn, (long long)ax);
    return (int)ax;
}

/* (values, indices) of a sort along ax; k < 0: all of the axis */
static Value sorted_pair(Interp *I, int x, int ax, bool desc, int64_t k, const char *fn) {
    IrGraph *g = &I->lz.g;
    const Shape *xs = &ir_node(g, x)->shape;
    if (ax < -xs->ndim || ax >= xs->ndim || xs->ndim == 0) {
        char b[96];
        rt_error(I, "%s: axis %d out of range for %s", fn, ax, shape_str(xs, b, sizeof b));
    }
    int idx = rt_check_node(I, ir_argsort(g, x, ax, desc, I->ev.loc));
    if (k >= 0) {
        const Shape *s = &ir_node(g, idx)->shape;
        int a = ax < 0 ? ax + s->ndim : ax;
        IrSliceDim d[IR_MAXDIM] = {0};
        for (int i = 0; i < s->ndim; i++) d[i] = (IrSliceDim){false, false, false, 0, 0, 1};
        d[a] = (IrSliceDim){true, true, false, 0, k, 1};
        idx = rt_check_node(I, ir_slice(g, idx, d, s->ndim, I->ev.loc));
    }
    int vals = rt_check_node(I, ir_take_along(g, x, idx, ax, I->ev.loc));
    Value out = rt_tuple(I, 2);
    as_list(out)->items[0] = lib_result(I, vals);
    as_list(out)->items[1] = lib_result(I, idx);
    return out;
}

/* sort(x, axis=-1, descending=false) -> (values, indices) */
BUILTIN(bi_sort) {
    static const char *const names[] = {"x", "axis", "descending", NULL};
    Value a[3];
    BIND("sort", names, 1, a);
    int x = lib_node(I, a[0], "sort", "x");
    return sorted_pair(I, x, axis_arg(I, a[1], -1, "sort"),
                       lib_bool(I, a[2], false, "sort", "descending"), -1, "sort");
}

/* argsort(x, axis=-1, descending=false) -> i32 indices */
BUILTIN(bi_argsort) {
    static const char *const names[] = {"x", "axis", "descending", NULL};
    Value a[3];
    BIND("argsort", names, 1, a);
    int x = lib_node(I, a[0], "argsort", "x");
    int ax = axis_arg(I, a[1], -1, "argsort");
    return lib_result(I, ir_argsort(&I->lz.g, x, ax,
                                    lib_bool(I, a[2], false, "argsort", "descending"), I->ev.loc));
}

/* topk(x, k, axis=-1, largest=true) -> (values, indices), sorted */
BUILTIN(bi_topk) {
    static const char *const names[] = {"x", "k", "axis", "largest", NULL};
    Value a[4];
    BIND("topk", names, 2, a);
    int x = lib_node(I, a[0], "topk", "x");
    int64_t k = lib_int(I, a[1], 0, "topk", "k");
    int ax = axis_arg(I, a[2], -1, "topk");
    const Shape *s = &ir_node(&I->lz.g, x)->shape;
    int n = ax < 0 ? ax + s->ndim : ax;
    if (n >= 0 && n < s->ndim && (k < 0 || k > s->d[n]))
        rt_error(I, "topk: k = %lld is out of range for an axis of size %lld", (long long)k,
                 (long long)s->d[n]);
    return sorted_pair(I, x, ax, lib_bool(I, a[3], true, "topk", "largest"), k, "topk");
}

/* cumsum(x, axis=none): axis none sums the flattened tensor, as NumPy */
BUILTIN(bi_cumsum) {
    static const char *const names[] = {"x", "axis", NULL};
    Value a[2];
    BIND("cumsum", names, 1, a);
    int x = lib_node(I, a[0], "cumsum", "x");
    int ax = 0;
    if (!rt_given(a[1]) || a[1].kind == V_NONE) {
        Shape flat = shape_make(1, (int64_t[]){shape_numel(&ir_node(&I->lz.g, x)->shape)});
        x = rt_check_node(I, ir_reshape(&I->lz.g, x, flat, I->ev.loc));
    } else {
        ax = axis_arg(I, a[1], 0, "cumsum");
    }
    return lib_result(I, ir_cumsum(&I->lz.g, x, ax, false, I->ev.loc));
}

/* -- quantile -- */

/* The quantile levels: a number (shape []), a list or tuple of numbers, or
 * a tensor (realized). malloc'd, *n levels, shape into *qs. */
static double *quantile_levels(Interp *I, Value q, int64_t *n, Shape *qs) {
    double *v = NULL;
    if (is_num(q)) {
        v = tt_xmalloc(sizeof *v);
        v[0] = num_of(q);
        *n = 1;
        *qs = shape_scalar();
    } else if (is_seq(q)) {
        List *l = as_list(q);
        v = tt_xmalloc((size_t)(l->len + 1) * sizeof *v);
        for (int i = 0; i < l->len; i++) {
            if (!is_num(l->items[i])) {
                free(v);
                rt_error(I, "quantile: q must hold numbers, got %s", rt_type_name(l->items[i]));
            }
            v[i] = num_of(l->items[i]);
        }
        *n = l->len;
        *qs = shape_make(1, (int64_t[]){l->len});
    } else if (is_tensor(q)) {
        Tensor *t = as_tensor(q);
        int64_t len = shape_numel(&t->shape);
        const void *d = rt_data(I, t);
        v = tt_xmalloc((size_t)(len + 1) * sizeof *v);
        for (int64_t i = 0; i < len; i++)
            v[i] = t->dtype == TY_F32   ? ((const float *)d)[i]
                   : t->dtype == TY_I32 ? ((const int32_t *)d)[i]
                                        : ((const int8_t *)d)[i];
        *n = len;
        *qs = t->shape;
    } else {
        rt_error(I, "quantile: q must be a number, a list of numbers or a tensor, got %s",
                 rt_type_name(q));
    }
    for (int64_t i = 0; i < *n; i++)
        if (!(v[i] >= 0 && v[i] <= 1)) {
            double bad = v[i];
            free(v);
            rt_error(I, "quantile: q must be in [0, 1], got %g", bad);
        }
    return v;
}

/* Element i of sorted s along ax, the axis dropped. */
static int at_index(Interp *I, int s, int ax, int64_t i) {
    IrGraph *g = &I->lz.g;
    Shape sh = ir_node(g, s)->shape;
    IrSliceDim d[IR_MAXDIM];
    for (int k = 0; k < sh.ndim; k++) d[k] = (IrSliceDim){false, false, false, 0, 0, 1};
    d[ax] = (IrSliceDim){true, true, false, i, i + 1, 1};
    int r = rt_check_node(I, ir_slice(g, s, d, sh.ndim, I->ev.loc));
    Shape out = {0};
    for (int k = 0; k < sh.ndim; k++)
        if (k != ax) out.d[out.ndim++] = sh.d[k];
    return rt_check_node(I, ir_reshape(g, r, out, I->ev.loc));
}

/* quantile(x, q, axis=none): NumPy's default ("linear") method: at the
 * virtual index q * (n - 1) between the sorted neighbours below and above,
 * interpolated as NumPy's _lerp does; a NaN along the axis gives NaN. The
 * result has q's shape followed by x's shape without the axis (axis none:
 * x flattened). f32; differentiable in x. */
BUILTIN(bi_quantile) {
    static const char *const names[] = {"x", "q", "axis", NULL};
    Value a[3];
    BIND("quantile", names, 2, a);
    IrGraph *g = &I->lz.g;
    int x = rt_check_node(I, ir_cast(g, lib_node(I, a[0], "quantile", "x"), TY_F32, I->ev.loc));
    int ax = 0;
    if (!rt_given(a[2]) || a[2].kind == V_NONE) {
        Shape flat = shape_make(1, (int64_t[]){shape_numel(&ir_node(g, x)->shape)});
        x = rt_check_node(I, ir_reshape(g, x, flat, I->ev.loc));
    } else {
        int nd = ir_node(g, x)->shape.ndim;
        ax = axis_arg(I, a[2], 0, "quantile");
        if (ax < 0) ax += nd;
        if (ax < 0 || ax >= nd)
            rt_error(I, "quantile: axis %lld out of range for a tensor of %d dimensions",
                     (long long)lib_int(I, a[2], 0, "quantile", "axis"), nd);
    }
    int64_t A = ir_node(g, x)->shape.d[ax];
    if (A == 0) rt_error(I, "quantile: cannot take a quantile of an empty axis");
    int64_t nq;
    Shape qs;
    double *q = quantile_levels(I, a[1], &nq, &qs);
    int s = rt_check_node(I, ir_take_along(g, x,
                                           rt_check_node(I, ir_argsort(g, x, ax, false, I->ev.loc)),
                                           ax, I->ev.loc));
    int last = at_index(I, s, ax, A - 1);
    int isnan = rt_check_node(I, ir_binary(g, OP_NE, last, last, I->ev.loc));
    int *parts = tt_xmalloc((size_t)(nq + 1) * sizeof *parts);
    Shape rs = ir_node(g, last)->shape, one = rs;
    one.ndim = rs.ndim + 1;
    one.d[0] = 1;
    memcpy(one.d + 1, rs.d, (size_t)rs.ndim * sizeof *rs.d);
    for (int64_t i = 0; i < nq; i++) {
        double vi = q[i] * (double)(A - 1), below = floor(vi), t = vi - below;
        int64_t lo = (int64_t)below, hi = lo + 1 < A ? lo + 1 : A - 1;
        int va = at_index(I, s, ax, lo), vb = at_index(I, s, ax, hi);
        int diff = rt_check_node(I, ir_binary(g, OP_SUB, vb, va, I->ev.loc));
        int r;
        if (t >= 0.5) /* b - diff * (1 - t) */
            r = ir_binary(g, OP_SUB, vb,
                          ir_binary(g, OP_MUL, diff, lib_const(I, TY_F32, 1 - t), I->ev.loc),
                          I->ev.loc);
        else
            r = ir_binary(g, OP_ADD, va,
                          ir_binary(g, OP_MUL, diff, lib_const(I, TY_F32, t), I->ev.loc),
                          I->ev.loc);
        r = rt_check_node(I, ir_where(g, isnan, last, rt_check_node(I, r), I->ev.loc));
        parts[i] = rt_check_node(I, ir_reshape(g, r, one, I->ev.loc));
    }
    free(q);
    int all = nq == 1 ? parts[0] : ir_concat(g, parts, (int)nq, 0, I->ev.loc);
    free(parts);
    rt_check_node(I, all);
    Shape out = qs;
    for (int k = 0; k < rs.ndim; k++) out.d[out.ndim++] = rs.d[k];
    return lib_result(I, ir_reshape(g, all, out, I->ev.loc));
}

/* -- sampling -- */

/* The generator of a random builtin: a fresh one for seed=, else the
 * interpreter's (as randn). */
static Rng *pick_rng(Interp *I, Value seed, Rng *local, const char *fn) {
    if (!rt_given(seed) || seed.kind == V_NONE) return &I->ev.rng;
    rng_seed(local, (uint64_t)lib_int(I, seed, 0, fn, "seed"));
    return local;
}

/* One draw from weights w[0..n) (total > 0): the first index whose
 * running sum exceeds u * total; never a zero weight. */
static int64_t draw(Rng *r, const double *w, int64_t n, double total) {
    double u = rng_uniform(r) * total, acc = 0;
    int64_t last = -1;
    for (int64_t i = 0; i < n; i++) {
        if (w[i] <= 0) continue;
        acc += w[i];
        last = i;
        if (u < acc) return i;
    }
    return last; /* rounding: the last positive weight */
}

/* multinomial(probs, n, replacement=false, seed=none) -> i32: n category
 * indices per row of probs ([C] -> [n], [R, C] -> [R, n]), drawn with
 * probability proportional to the weights (which need not sum to 1), as
 * torch.multinomial; without replacement each category at most once. */
BUILTIN(bi_multinomial) {
    static const char *const names[] = {"probs", "n", "replacement", "seed", NULL};
    Value a[4];
    BIND("multinomial", names, 2, a);
    Tensor *p = lib_tensor(I, a[0], "multinomial", "probs");
    int64_t n = lib_int(I, a[1], 0, "multinomial", "n");
    bool repl = lib_bool(I, a[2], false, "multinomial", "replacement");
    if (p->shape.ndim < 1 || p->shape.ndim > 2) {
        char b[96];
        rt_error(I, "multinomial: probs must be 1-D or 2-D, got shape %s",
                 shape_str(&p->shape, b, sizeof b));
    }
    int64_t R = p->shape.ndim == 2 ? p->shape.d[0] : 1, C = p->shape.d[p->shape.ndim - 1];
    if (n < 1) rt_error(I, "multinomial: n must be positive, got %lld", (long long)n);
    if (!repl && n > C)
        rt_error(I,
                 "multinomial: cannot draw %lld samples from %lld categories without replacement",
                 (long long)n, (long long)C);
    Rng local, *r = pick_rng(I, a[3], &local, "multinomial");
    const void *d = rt_data(I, p);
    Shape os =
        p->shape.ndim == 2 ? shape_make(2, (int64_t[]){R, n}) : shape_make(1, (int64_t[]){n});
    Tensor *out = rt_tensor_new(I, TY_I32, os);
    int32_t *o = out->buf->data;
    double *w = tt_xmalloc((size_t)(C + 1) * sizeof *w);
    for (int64_t row = 0; row < R; row++) {
        double total = 0;
        int64_t nonzero = 0;
        for (int64_t c = 0; c < C; c++) {
            int64_t i = row * C + c;
            double v = p->dtype == TY_F32   ? ((const float *)d)[i]
                       : p->dtype == TY_I32 ? ((const int32_t *)d)[i]
                                            : ((const int8_t *)d)[i];
            if (!(v >= 0) || isinf(v)) {
                free(w);
                rt_release(I, vtensor(out));
                rt_error(I, "multinomial: probabilities must be finite and non-negative, got %g",
                         v);
            }
            w[c] = v;
            total += v;
            nonzero += v > 0;
        }
        if (!(total > 0) || (!repl && nonzero < n)) {
            free(w);
            rt_release(I, vtensor(out));
            if (!(total > 0)) rt_error(I, "multinomial: row %lld sums to zero", (long long)row);
            rt_error(I,
                     "multinomial: row %lld has %lld categories of nonzero probability, fewer "
                     "than the %lld samples asked for without replacement",
                     (long long)row, (long long)nonzero, (long long)n);
        }
        for (int64_t j = 0; j < n; j++) {
            int64_t c = draw(r, w, C, total);
            o[row * n + j] = (int32_t)c;
            if (!repl) { /* drawn once: out of the urn */
                total -= w[c];
                w[c] = 0;
                if (j + 1 < n && !(total > 0)) { /* rounding left nothing: renormalize */
                    total = 0;
                    for (int64_t k = 0; k < C; k++) total += w[k];
                }
            }
        }
    }
    free(w);
    return vtensor(out);
}

/* permutation(n, seed=none) -> i32[n]: 0..n-1 shuffled (Fisher-Yates), as
 * numpy.random.permutation; permutation(x) gives x's rows shuffled. */
BUILTIN(bi_permutation) {
    static const char *const names[] = {"n", "seed", NULL};
    Value a[2];
    BIND("permutation", names, 1, a);
    Rng local, *r = pick_rng(I, a[1], &local, "permutation");
    int64_t n;
    if (is_tensor(a[0])) {
        Tensor *t = as_tensor(a[0]);
        if (t->shape.ndim == 0) rt_error(I, "permutation: x must have at least one dimension");
        n = t->shape.d[0];
    } else {
        n = lib_int(I, a[0], 0, "permutation", "n");
        if (n < 0) rt_error(I, "permutation: n must be non-negative, got %lld", (long long)n);
        if (n > INT32_MAX) rt_error(I, "permutation: n = %lld is too large", (long long)n);
    }
    int64_t *perm = lib_permutation(r, n);
    Tensor *out = rt_tensor_new(I, TY_I32, shape_make(1, (int64_t[]){n}));
    int32_t *o = out->buf->data;
    for (int64_t i = 0; i < n; i++) o[i] = (int32_t)perm[i];
    free(perm);
    if (!is_tensor(a[0])) return vtensor(out);
    int idx = rt_node(I, out);
    rt_release(I, vtensor(out));
    return lib_result(I, ir_gather(&I->lz.g, rt_node(I, as_tensor(a[0])), idx, I->ev.loc));
}

void lib_register_sort(Interp *I) {
    static const struct {
        const char *name;
        BuiltinFn fn;
    } table[] = {
        {"sort", bi_sort},
        {"argsort", bi_argsort},
        {"topk", bi_topk},
        {"cumsum", bi_cumsum},
        {"quantile", bi_quantile},
        {"multinomial", bi_multinomial},
        {"permutation", bi_permutation},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        rt_define_global(I, table[i].name, rt_builtin(I, table[i].name, table[i].fn, VNONE));
}
