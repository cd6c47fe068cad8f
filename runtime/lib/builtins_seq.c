/* builtins_seq.c - sequences as Python has them: ranges with a step, the
 * `in` operator, iterating any container into a list, sorted(), and
 * tolist() from tensors to nested lists of numbers.
 */
#include "builtins_lib.h"
#include "containers.h"
#include "eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* -- ranges -- */

Value rt_range(Interp *I, int64_t lo, int64_t hi, int64_t step) {
    TT_ASSERT(step != 0);
    Range *r = rt_alloc_obj(I, V_RANGE, sizeof(Range));
    r->lo = lo;
    r->hi = hi;
    r->step = step;
    return vobj(&r->obj);
}

int64_t rt_range_len(const Range *r) {
    int64_t step = rt_range_step(r);
    uint64_t diff, st;
    if (step > 0) {
        if (r->hi <= r->lo) return 0;
        diff = (uint64_t)r->hi - (uint64_t)r->lo;
        st = (uint64_t)step;
    } else {
        if (r->hi >= r->lo) return 0;
        diff = (uint64_t)r->lo - (uint64_t)r->hi;
        st = 0 - (uint64_t)step;
    }
    uint64_t n = (diff - 1) / st + 1;
    return n > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)n;
}

/* -- membership -- */

static bool range_contains(const Range *r, Value x) {
    int64_t v;
    if (x.kind == V_INT || x.kind == V_BOOL) {
        v = x.kind == V_INT ? x.i : x.b;
    } else if (x.kind == V_FLOAT && x.f > -9.2e18 && x.f < 9.2e18 && x.f == floor(x.f)) {
        v = (int64_t)x.f; /* 2.0 in range(3), as in Python */
    } else {
        return false;
    }
    int64_t step = rt_range_step(r);
    if (step > 0 ? (v < r->lo || v >= r->hi) : (v > r->lo || v <= r->hi)) return false;
    uint64_t off = step > 0 ? (uint64_t)v - (uint64_t)r->lo : (uint64_t)r->lo - (uint64_t)v;
    uint64_t st = step > 0 ? (uint64_t)step : 0 - (uint64_t)step;
    return off % st == 0;
}

bool rt_contains(Interp *I, Value c, Value x) {
    switch (c.kind) {
    case V_LIST:
    case V_TUPLE: {
        const List *l = (const List *)c.o;
        for (int i = 0; i < l->len; i++)
            if (rt_equal(I, l->items[i], x)) return true;
        return false;
    }
    case V_STR: {
        if (x.kind != V_STR)
            rt_error(I, "'in <string>' requires a string as left operand, not %s", rt_type_name(x));
        const Str *h = (const Str *)c.o, *n = (const Str *)x.o;
        if (n->len == 0) return true;
        for (size_t i = 0; i + n->len <= h->len; i++)
            if (memcmp(h->s + i, n->s, n->len) == 0) return true;
        return false;
    }
    case V_DICT:
        return rt_dict_find(I, c, x) != NULL;
    case V_RANGE:
        return range_contains((const Range *)c.o, x);
    default:
        rt_error(I, "'in' needs a list, tuple, string, dict or range on its right, got %s",
                 rt_type_name(c));
    }
}

/* -- iteration -- */

Value rt_iter_list(Interp *I, Value c, const char *fn) {
    switch (c.kind) {
    case V_LIST:
    case V_TUPLE: {
        const List *l = (const List *)c.o;
        Value r = rt_list(I, l->len);
        for (int i = 0; i < l->len; i++) ((List *)r.o)->items[i] = rt_retain(l->items[i]);
        return r;
    }
    case V_STR: {
        const Str *s = (const Str *)c.o;
        if (s->nchars > (1u << 30)) rt_error(I, "%s(): string too long", fn);
        Value r = rt_list(I, (int)s->nchars);
        size_t off = 0;
        for (size_t i = 0; i < s->nchars; i++) {
            size_t n = utf8_step(s->s + off, s->len - off);
            ((List *)r.o)->items[i] = rt_str(I, s->s + off, n);
            off += n;
        }
        return r;
    }
    case V_RANGE: {
        const Range *g = (const Range *)c.o;
        int64_t n = rt_range_len(g);
        if (n > 100000000) rt_error(I, "%s(): range too long", fn);
        Value r = rt_list(I, (int)n);
        for (int64_t i = 0; i < n; i++)
            ((List *)r.o)->items[i] =
                vint((int64_t)((uint64_t)g->lo + (uint64_t)i * (uint64_t)rt_range_step(g)));
        return r;
    }
    case V_DICT: {
        const Dict *d = (const Dict *)c.o;
        Value r = rt_list(I, d->len);
        for (int i = 0; i < d->len; i++) ((List *)r.o)->items[i] = rt_retain(d->entries[i].key);
        return r;
    }
    default:
        rt_error(I, "%s(): cannot iterate over %s", fn, rt_type_name(c));
    }
}

/* -- sorted -- */

static bool is_number(Value v) {
    return v.kind == V_INT || v.kind == V_FLOAT || v.kind == V_BOOL;
}

/* Python's a < b for what sorted compares: numbers, strings, and tuples or
 * lists lexicographically (the first unequal items decide). */
static bool less(Interp *I, Value a, Value b, int depth) {
    if (is_number(a) && is_number(b)) {
        if (a.kind != V_FLOAT && b.kind != V_FLOAT) {
            int64_t x = a.kind == V_INT ? a.i : a.b, y = b.kind == V_INT ? b.i : b.b;
            return x < y;
        }
        return num_of(a) < num_of(b);
    }
    if (a.kind == V_STR && b.kind == V_STR) {
        const Str *x = (const Str *)a.o, *y = (const Str *)b.o;
        size_t n = x->len < y->len ? x->len : y->len;
        int c = memcmp(x->s, y->s, n); /* UTF-8 byte order is code point order */
        return c < 0 || (c == 0 && x->len < y->len);
    }
    if (a.kind == b.kind && (a.kind == V_TUPLE || a.kind == V_LIST)) {
        if (depth > 100) rt_error(I, "sorted(): items nested too deeply to compare");
        const List *x = (const List *)a.o, *y = (const List *)b.o;
        int n = x->len < y->len ? x->len : y->len;
        for (int i = 0; i < n; i++)
            if (!rt_equal(I, x->items[i], y->items[i]))
                return less(I, x->items[i], y->items[i], depth + 1);
        return x->len < y->len;
    }
    rt_error(I, "sorted(): '<' is not supported between %s and %s", rt_type_name(a),
             rt_type_name(b));
}

/* sorted(items, key=none, reverse=false): a new list, stably sorted
 * (bottom-up merge sort on the keys; the scratch arrays are list objects,
 * so an error in a comparison or in key leaves nothing allocated). */
BUILTIN(bi_sorted) {
    (void)self;
    static const char *const names[] = {"items", "key", "reverse", NULL};
    Value a[3];
    BIND("sorted", names, 1, a);
    bool reverse = lib_bool(I, a[2], false, "sorted", "reverse");
    Value items = rt_iter_list(I, a[0], "sorted");
    int n = ((List *)items.o)->len;
    Value keys = items;
    if (rt_given(a[1]) && a[1].kind != V_NONE) {
        keys = rt_list(I, n);
        for (int i = 0; i < n; i++) {
            Value x = ((List *)items.o)->items[i];
            ((List *)keys.o)->items[i] = rt_call(I, a[1], &x, 1, NULL, NULL, 0);
        }
    }
    Value perm = rt_list(I, n), tmp = rt_list(I, n);
    Value *p = ((List *)perm.o)->items, *t = ((List *)tmp.o)->items;
    const Value *k = ((List *)keys.o)->items;
    for (int i = 0; i < n; i++) p[i] = vint(i);
    for (int w = 1; w < n; w *= 2) {
        for (int lo = 0; lo < n; lo += 2 * w) {
            int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int i = lo, j = mid, o = lo;
            while (i < mid && j < hi) {
                Value x = k[p[i].i], y = k[p[j].i];
                /* the right one goes first only when strictly before: stable */
                bool right = reverse ? less(I, x, y, 0) : less(I, y, x, 0);
                t[o++] = right ? p[j++] : p[i++];
            }
            while (i < mid) t[o++] = p[i++];
            while (j < hi) t[o++] = p[j++];
        }
        Value *s = p;
        p = t;
        t = s;
    }
    Value r = rt_list(I, n);
    for (int i = 0; i < n; i++)
        ((List *)r.o)->items[i] = rt_retain(((List *)items.o)->items[p[i].i]);
    rt_release(I, perm);
    rt_release(I, tmp);
    if (keys.o != items.o) rt_release(I, keys);
    rt_release(I, items);
    return r;
}

/* -- tolist -- */

static Value tolist_dim(Interp *I, const Tensor *t, const void *data, int dim, int64_t *at) {
    if (dim == t->shape.ndim) {
        int64_t i = (*at)++;
        switch (t->dtype) {
        case TY_F32:
            return vfloat(((const float *)data)[i]);
        case TY_I32:
            return vint(((const int32_t *)data)[i]);
        default:
            return vint(((const int8_t *)data)[i]);
        }
    }
    int64_t n = t->shape.d[dim];
    if (n > (1 << 30)) rt_error(I, "tolist(): tensor too large");
    Value l = rt_list(I, (int)n);
    for (int64_t i = 0; i < n; i++) ((List *)l.o)->items[i] = tolist_dim(I, t, data, dim + 1, at);
    return l;
}

/* tolist(t): nested lists of numbers (ints for i32/i8, floats for f32); a
 * 0-d tensor gives a number, as PyTorch's Tensor.tolist */
BUILTIN(bi_tolist) {
    (void)self;
    static const char *const names[] = {"t", NULL};
    Value a[1];
    BIND("tolist", names, 1, a);
    Tensor *t = lib_tensor(I, a[0], "tolist", "t");
    if (shape_numel(&t->shape) > 100000000) rt_error(I, "tolist(): tensor too large");
    const void *data = rt_data(I, t);
    int64_t at = 0;
    return tolist_dim(I, t, data, 0, &at);
}

void lib_register_seq(Interp *I) {
    rt_define_global(I, "sorted", rt_builtin(I, "sorted", bi_sorted, VNONE));
    rt_define_global(I, "tolist", rt_builtin(I, "tolist", bi_tolist, VNONE));
}
