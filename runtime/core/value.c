/* value.c - heap objects: allocation, reference counting, the list of all
 * objects, strings, lists, records, interning, conversions and printing.
 *
 * Every object is linked into I->ev.objects when allocated (Lua's allgc), so
 * rt_free_interp can free what an error (a longjmp past the owners of some
 * references) or a reference cycle left behind.
 */
#include "containers.h"
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -- interning: an open-addressing set of strdup'd strings -- */

typedef struct Intern {
    char **slots;
    int n, cap;
} Intern;

static uint32_t str_hash(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

const char *rt_intern(Interp *I, const char *s) {
    if (!I->ev.intern) I->ev.intern = tt_xcalloc(1, sizeof(Intern));
    Intern *t = I->ev.intern;
    if (2 * (t->n + 1) > t->cap) {
        int cap = t->cap ? 2 * t->cap : 256;
        char **slots = tt_xcalloc((size_t)cap, sizeof *slots);
        for (int i = 0; i < t->cap; i++) {
            if (!t->slots[i]) continue;
            uint32_t j = str_hash(t->slots[i]) & (uint32_t)(cap - 1);
            while (slots[j]) j = (j + 1) & (uint32_t)(cap - 1);
            slots[j] = t->slots[i];
        }
        free(t->slots);
        t->slots = slots;
        t->cap = cap;
    }
    uint32_t j = str_hash(s) & (uint32_t)(t->cap - 1);
    while (t->slots[j]) {
        if (strcmp(t->slots[j], s) == 0) return t->slots[j];
        j = (j + 1) & (uint32_t)(t->cap - 1);
    }
    t->slots[j] = tt_xstrdup(s);
    t->n++;
    return t->slots[j];
}

static void intern_free(Interp *I) {
    Intern *t = I->ev.intern;
    if (!t) return;
    for (int i = 0; i < t->cap; i++) free(t->slots[i]);
    free(t->slots);
    free(t);
    I->ev.intern = NULL;
}

/* -- objects -- */

void *rt_alloc_obj(Interp *I, ValKind kind, size_t size) {
    TT_ASSERT(kind >= V_STR && size >= sizeof(Obj));
    Obj *o = tt_xcalloc(1, size);
    o->kind = kind;
    o->refcount = 1;
    o->gc_next = I->ev.objects;
    if (I->ev.objects) I->ev.objects->gc_prev = o;
    I->ev.objects = o;
    return o;
}

Value rt_retain(Value v) {
    if (is_obj(v)) v.o->refcount++;
    return v;
}

static void obj_unlink(Interp *I, Obj *o) {
    if (o->gc_prev)
        o->gc_prev->gc_next = o->gc_next;
    else
        I->ev.objects = o->gc_next;
    if (o->gc_next) o->gc_next->gc_prev = o->gc_prev;
}

/* Drops one reference of v; an object whose count reaches 0 leaves the gc
 * list and joins *dead (linked through gc_next) to be cleared by the loop in
 * rt_release. Containers hand their items over this way instead of
 * releasing them recursively, so freeing a list nested a million deep takes
 * no stack. */
static void drop(Interp *I, Value v, Obj **dead) {
    if (!is_obj(v)) return;
    Obj *o = v.o;
    TT_ASSERT(o->refcount > 0);
    if (--o->refcount > 0) return;
    obj_unlink(I, o);
    o->gc_next = *dead;
    *dead = o;
}

/* Frees what o holds. With dead NULL (rt_free_interp), the values it holds
 * are not released: they are on the gc list and freed there. */
static void obj_clear(Interp *I, Obj *o, Obj **dead) {
    bool release = dead != NULL;
    switch (o->kind) {
    case V_LIST:
    case V_TUPLE: {
        List *l = (List *)o;
        if (release)
            for (int i = 0; i < l->len; i++) drop(I, l->items[i], dead);
        free(l->items);
        break;
    }
    case V_RECORD: {
        Record *r = (Record *)o;
        if (release)
            for (int i = 0; i < r->len; i++) drop(I, r->vals[i], dead);
        free(r->names);
        free(r->vals);
        break;
    }
    case V_TENSOR:
        rt_tensor_free(I, (Tensor *)o);
        break;
    case V_FUNC: {
        Func *f = (Func *)o;
        if (release) {
            if (f->closure) env_release(I, f->closure);
            if (f->self) drop(I, vobj(&f->self->obj), dead);
        }
        break;
    }
    case V_BUILTIN:
        if (release) drop(I, ((Builtin *)o)->self, dead);
        break;
    case V_MODELDEF:
        if (release && ((ModelDef *)o)->closure) env_release(I, ((ModelDef *)o)->closure);
        break;
    case V_MODEL: {
        Model *m = (Model *)o;
        if (release) {
            for (int i = 0; i < m->nfields; i++) drop(I, m->fields[i], dead);
            if (m->def) drop(I, vobj(&m->def->obj), dead);
        }
        if (m->env) {
            m->env->model = NULL;
            if (release) env_release(I, m->env);
        }
        free(m->field_names);
        free(m->fields);
        free(m->is_param);
        free(m->is_buffer);
        break;
    }
    case V_NATIVE: {
        Native *n = (Native *)o;
        if (n->cls && n->cls->free) n->cls->free(o);
        break;
    }
    case V_DICT:
        rt_dict_clear(I, (Dict *)o, release);
        break;
    default:
        break;
    }
}

void rt_release(Interp *I, Value v) {
    if (!is_obj(v) || I->ev.freeing) return;
    /* A release from inside obj_clear (a closure's scope dropping its
     * values) runs a loop of its own, finished before that scope is gone. */
    Obj *dead = NULL;
    drop(I, v, &dead);
    while (dead) {
        Obj *o = dead;
        dead = o->gc_next;
        obj_clear(I, o, &dead);
        free(o);
    }
}

void rt_free_all_objects(Interp *I) {
    I->ev.freeing = true;
    for (Obj *o = I->ev.objects, *next; o; o = next) {
        next = o->gc_next;
        obj_clear(I, o, NULL);
    }
    for (Obj *o = I->ev.objects, *next; o; o = next) {
        next = o->gc_next;
        free(o);
    }
    I->ev.objects = NULL;
    intern_free(I);
}

/* -- constructors -- */

Value rt_str(Interp *I, const char *s, size_t len) {
    Str *o = rt_alloc_obj(I, V_STR, sizeof(Str) + len + 1);
    memcpy(o->s, s, len);
    o->s[len] = 0;
    o->len = len;
    o->nchars = utf8_count(o->s, len);
    return vobj(&o->obj);
}

Value rt_cstr(Interp *I, const char *s) {
    return rt_str(I, s, strlen(s));
}

static Value new_seq(Interp *I, ValKind k, int len) {
    List *l = rt_alloc_obj(I, k, sizeof(List));
    l->len = len;
    l->cap = len;
    l->items = tt_xcalloc((size_t)(len ? len : 1), sizeof(Value));
    return vobj(&l->obj);
}

Value rt_list(Interp *I, int len) {
    return new_seq(I, V_LIST, len);
}
Value rt_tuple(Interp *I, int len) {
    return new_seq(I, V_TUPLE, len);
}

void rt_list_push(Interp *I, Value list, Value v) {
    TT_ASSERT(list.kind == V_LIST || list.kind == V_TUPLE);
    List *l = (List *)list.o;
    TT_VEC_PUSH(l->items, l->len, l->cap, v);
}

Value rt_record(Interp *I, int len, const char *const *names) {
    Record *r = rt_alloc_obj(I, V_RECORD, sizeof(Record));
    r->len = len;
    r->names = tt_xcalloc((size_t)(len ? len : 1), sizeof *r->names);
    r->vals = tt_xcalloc((size_t)(len ? len : 1), sizeof *r->vals);
    for (int i = 0; i < len; i++) r->names[i] = rt_intern(I, names[i]);
    return vobj(&r->obj);
}

Value rt_builtin(Interp *I, const char *name, BuiltinFn fn, Value self) {
    Builtin *b = rt_alloc_obj(I, V_BUILTIN, sizeof(Builtin));
    b->name = rt_intern(I, name);
    b->fn = fn;
    b->self = rt_retain(self);
    return vobj(&b->obj);
}

Value rt_native(Interp *I, const NativeClass *cls, void *data) {
    Native *n = rt_alloc_obj(I, V_NATIVE, sizeof(Native));
    n->cls = cls;
    n->data = data;
    return vobj(&n->obj);
}

/* -- names -- */

const char *rt_kind_name(ValKind k) {
    switch (k) {
    case V_NONE:
        return "none";
    case V_BOOL:
        return "bool";
    case V_INT:
        return "int";
    case V_FLOAT:
        return "float";
    case V_STR:
        return "str";
    case V_LIST:
        return "list";
    case V_TUPLE:
        return "tuple";
    case V_RECORD:
        return "record";
    case V_RANGE:
        return "range";
    case V_TENSOR:
        return "tensor";
    case V_FUNC:
        return "fn";
    case V_BUILTIN:
        return "builtin";
    case V_MODELDEF:
        return "model definition";
    case V_MODEL:
        return "model";
    case V_NATIVE:
        return "object";
    case V_DICT:
        return "dict";
    }
    return "?";
}

const char *rt_type_name(Value v) {
    /* a small ring of buffers so two names fit in one message */
    static char bufs[4][128];
    static int next;
    char *b = bufs[next++ & 3];
    switch (v.kind) {
    case V_MODEL:
        snprintf(b, 128, "model %s", ((Model *)v.o)->type_name);
        return b;
    case V_MODELDEF:
        snprintf(b, 128, "model definition %s", ((ModelDef *)v.o)->def->str);
        return b;
    case V_NATIVE:
        return ((Native *)v.o)->cls->name;
    case V_TENSOR: {
        Tensor *t = (Tensor *)v.o;
        char s[96];
        snprintf(b, 128, "tensor %s%s", dtype_name(t->dtype), shape_str(&t->shape, s, sizeof s));
        return b;
    }
    default:
        return rt_kind_name(v.kind);
    }
}

bool rt_truthy(Interp *I, Value v) {
    switch (v.kind) {
    case V_NONE:
        return false;
    case V_BOOL:
        return v.b;
    case V_INT:
        return v.i != 0;
    case V_FLOAT:
        return v.f != 0;
    case V_STR:
        return ((Str *)v.o)->len != 0;
    case V_LIST:
    case V_TUPLE:
        return ((List *)v.o)->len != 0;
    case V_RANGE:
        return rt_range_len((Range *)v.o) > 0;
    case V_DICT:
        return ((Dict *)v.o)->len != 0;
    case V_TENSOR: {
        Tensor *t = (Tensor *)v.o;
        int64_t n = shape_numel(&t->shape);
        if (n != 1) {
            char s[96];
            rt_error(I,
                     "the truth value of a tensor with %lld elements (%s%s) is ambiguous; "
                     "reduce it first (e.g. with sum or item)",
                     (long long)n, dtype_name(t->dtype), shape_str(&t->shape, s, sizeof s));
        }
        void *d = rt_data(I, t);
        switch (t->dtype) {
        case TY_F32:
            return ((float *)d)[0] != 0;
        case TY_I32:
            return ((int32_t *)d)[0] != 0;
        case TY_I8:
            return ((int8_t *)d)[0] != 0;
        default:
            return false;
        }
    }
    default:
        return true;
    }
}

/* == on two values, one of which holds no other values (or of different
 * kinds): numbers by value, strings by content, objects by identity. */
static bool equal_flat(Interp *I, Value a, Value b) {
    bool an = a.kind == V_INT || a.kind == V_FLOAT || a.kind == V_BOOL;
    bool bn = b.kind == V_INT || b.kind == V_FLOAT || b.kind == V_BOOL;
    if (an && bn) {
        if (a.kind == V_FLOAT || b.kind == V_FLOAT) {
            double x = a.kind == V_FLOAT ? a.f : a.kind == V_INT ? (double)a.i : a.b;
            double y = b.kind == V_FLOAT ? b.f : b.kind == V_INT ? (double)b.i : b.b;
            return x == y;
        }
        int64_t x = a.kind == V_INT ? a.i : a.b, y = b.kind == V_INT ? b.i : b.b;
        return x == y;
    }
    if (a.kind != b.kind) return false;
    switch (a.kind) {
    case V_NONE:
        return true;
    case V_STR: {
        Str *x = (Str *)a.o, *y = (Str *)b.o;
        return x->len == y->len && memcmp(x->s, y->s, x->len) == 0;
    }
    case V_RANGE: { /* as sequences, like Python's range == */
        Range *x = (Range *)a.o, *y = (Range *)b.o;
        int64_t n = rt_range_len(x);
        if (n != rt_range_len(y)) return false;
        return n == 0 || (x->lo == y->lo && (n == 1 || rt_range_step(x) == rt_range_step(y)));
    }
    case V_DICT: /* values compared through rt_equal */
        return rt_dict_equal(I, (Dict *)a.o, (Dict *)b.o);
    default:
        return a.o == b.o;
    }
}

static bool is_container(Value v) {
    return v.kind == V_LIST || v.kind == V_TUPLE || v.kind == V_RECORD;
}

/* The pairs of containers structural == has met: a set of pointer pairs
 * (open addressing), so that each pair is compared once. */
typedef struct PairSet {
    const Obj **slots; /* 2 per pair; NULL: empty */
    size_t n, cap;     /* pairs */
} PairSet;

static size_t pair_hash(const Obj *a, const Obj *b) {
    uint64_t h = (uint64_t)(uintptr_t)a * 0x9E3779B97F4A7C15u ^ (uint64_t)(uintptr_t)b;
    return (size_t)(h ^ (h >> 29));
}

/* Adds (a, b); false if it was there already. */
static bool pairs_add(PairSet *s, const Obj *a, const Obj *b) {
    if (2 * (s->n + 1) > s->cap) {
        PairSet g = {tt_xcalloc(2 * (s->cap ? 2 * s->cap : 64), sizeof *g.slots), 0,
                     s->cap ? 2 * s->cap : 64};
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[2 * i]) pairs_add(&g, s->slots[2 * i], s->slots[2 * i + 1]);
        free(s->slots);
        *s = g;
    }
    size_t j = pair_hash(a, b) & (s->cap - 1);
    for (; s->slots[2 * j]; j = (j + 1) & (s->cap - 1))
        if (s->slots[2 * j] == a && s->slots[2 * j + 1] == b) return false;
    s->slots[2 * j] = a;
    s->slots[2 * j + 1] = b;
    s->n++;
    return true;
}

/* Structural equality without recursion: an explicit stack of container
 * pairs still to compare, so a list nested 200,000 deep takes no C stack.
 * A pair met a second time is taken as equal (it is being compared, or was
 * found equal): on a list that contains itself == terminates, and answers
 * whether the two infinite unfoldings are equal (`a == a` is true, as are
 * two lists built the same way around a cycle). Python raises
 * RecursionError there instead. */
bool rt_equal(Interp *I, Value a, Value b) {
    if (!is_container(a) || a.kind != b.kind) return equal_flat(I, a, b);
    Value stack0[32];
    Value *stack = stack0; /* pairs: stack[2k], stack[2k + 1] */
    size_t n = 0, cap = 16;
    PairSet seen = {0};
    bool eq = true;
    Value x = a, y = b;
    for (;;) {
        int len;
        const Value *xs, *ys;
        if (x.kind == V_RECORD) {
            Record *p = (Record *)x.o, *q = (Record *)y.o;
            len = p->len;
            if (q->len != len) eq = false;
            for (int i = 0; eq && i < len; i++) eq = p->names[i] == q->names[i];
            xs = p->vals;
            ys = q->vals;
        } else {
            len = ((List *)x.o)->len;
            eq = ((List *)y.o)->len == len;
            xs = ((List *)x.o)->items;
            ys = ((List *)y.o)->items;
        }
        for (int i = len - 1; eq && i >= 0; i--) {
            if (is_container(xs[i]) && xs[i].kind == ys[i].kind) {
                if (n == cap) {
                    Value *g = tt_xmalloc(4 * cap * sizeof *g);
                    memcpy(g, stack, 2 * cap * sizeof *g);
                    if (stack != stack0) free(stack);
                    stack = g;
                    cap *= 2;
                }
                stack[2 * n] = xs[i];
                stack[2 * n + 1] = ys[i];
                n++;
            } else {
                eq = equal_flat(I, xs[i], ys[i]);
            }
        }
        /* the next pair not met before */
        for (;;) {
            if (!eq || n == 0) goto done;
            n--;
            x = stack[2 * n];
            y = stack[2 * n + 1];
            if (!seen.cap) pairs_add(&seen, a.o, b.o);
            if (pairs_add(&seen, x.o, y.o)) break;
        }
    }
done:
    if (stack != stack0) free(stack);
    free(seen.slots);
    return eq;
}

/* -- printing -- */

/* Python's repr of a float: the shortest digits that read back exactly,
 * positional for exponents -4..15, else scientific (1e-05, 1e+16). */
void rt_format_float(double x, StrBuf *out) {
    if (isnan(x)) {
        sb_puts(out, "nan");
        return;
    }
    if (isinf(x)) {
        sb_puts(out, x < 0 ? "-inf" : "inf");
        return;
    }
    if (x == 0) {
        sb_puts(out, signbit(x) ? "-0.0" : "0.0");
        return;
    }
    char buf[64];
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, x);
        if (strtod(buf, NULL) == x) break;
    }
    /* buf = [-]d[.ddd]e[+-]XX */
    char digits[32];
    int nd = 0;
    const char *s = buf;
    bool neg = *s == '-';
    if (neg) s++;
    for (; *s && *s != 'e'; s++)
        if (*s != '.') digits[nd++] = *s;
    digits[nd] = 0;
    int exp = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = 0;
    if (neg) sb_putc(out, '-');
    if (exp >= -5 + 1 && exp < 16) {
        if (exp < 0) {
            sb_puts(out, "0.");
            for (int i = 0; i < -exp - 1; i++) sb_putc(out, '0');
            sb_puts(out, digits);
        } else {
            for (int i = 0; i <= exp; i++) sb_putc(out, i < nd ? digits[i] : '0');
            sb_putc(out, '.');
            if (nd > exp + 1)
                sb_puts(out, digits + exp + 1);
            else
                sb_putc(out, '0');
        }
    } else {
        sb_putc(out, digits[0]);
        if (nd > 1) {
            sb_putc(out, '.');
            sb_puts(out, digits + 1);
        }
        sb_printf(out, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
}

static void format_str_repr(const Str *s, StrBuf *out) {
    sb_putc(out, '"');
    for (size_t i = 0; i < s->len; i++) {
        unsigned char c = (unsigned char)s->s[i];
        switch (c) {
        case '"':
            sb_puts(out, "\\\"");
            break;
        case '\\':
            sb_puts(out, "\\\\");
            break;
        case '\n':
            sb_puts(out, "\\n");
            break;
        case '\t':
            sb_puts(out, "\\t");
            break;
        case '\r':
            sb_puts(out, "\\r");
            break;
        default:
            if (c < 32)
                sb_printf(out, "\\x%02x", c);
            else
                sb_putc(out, (char)c);
        }
    }
    sb_putc(out, '"');
}

/* Printing nests at most this deep ("..." below), so it recurses little. */
#define FORMAT_MAX_DEPTH 64

/* The containers being printed, outermost first: one met again inside
 * itself prints as [...] (Python's reprlib style), so a list that contains
 * itself prints as [1, [...]] instead of nesting forever. */
typedef struct FormatPath {
    const Obj *objs[FORMAT_MAX_DEPTH + 2];
} FormatPath;

static void format_value(Interp *I, Value v, StrBuf *out, bool repr, int depth, FormatPath *path);

static void format_nested(Interp *I, Value v, StrBuf *out, int depth, FormatPath *path) {
    if (v.kind == V_TENSOR) {
        /* inside containers a tensor shows its type (and value when 0-d) */
        Tensor *t = (Tensor *)v.o;
        if (t->shape.ndim == 0) {
            sb_puts(out, "tensor(");
            rt_format_tensor(I, t, out);
            sb_putc(out, ')');
        } else {
            char s[96];
            sb_printf(out, "tensor(%s%s)", dtype_name(t->dtype), shape_str(&t->shape, s, sizeof s));
        }
        return;
    }
    format_value(I, v, out, true, depth + 1, path);
}

/* True (after printing the placeholder) if v is a container already being
 * printed further out; else records it at `depth` of the path. */
static bool format_cycle(Value v, StrBuf *out, int depth, FormatPath *path) {
    if (v.kind != V_LIST && v.kind != V_TUPLE && v.kind != V_RECORD && v.kind != V_MODEL &&
        v.kind != V_DICT)
        return false;
    for (int k = 0; k < depth; k++)
        if (path->objs[k] == v.o) {
            if (v.kind == V_MODEL) sb_puts(out, ((Model *)v.o)->type_name);
            sb_puts(out, v.kind == V_LIST ? "[...]" : v.kind == V_DICT ? "{...}" : "(...)");
            return true;
        }
    path->objs[depth] = v.o;
    return false;
}

static void format_value(Interp *I, Value v, StrBuf *out, bool repr, int depth, FormatPath *path) {
    if (depth > FORMAT_MAX_DEPTH) {
        sb_puts(out, "...");
        return;
    }
    if (format_cycle(v, out, depth, path)) return;
    switch (v.kind) {
    case V_NONE:
        sb_puts(out, "none");
        break;
    case V_BOOL:
        sb_puts(out, v.b ? "true" : "false");
        break;
    case V_INT:
        sb_printf(out, "%lld", (long long)v.i);
        break;
    case V_FLOAT:
        rt_format_float(v.f, out);
        break;
    case V_STR:
        if (repr)
            format_str_repr((Str *)v.o, out);
        else
            sb_puts(out, ((Str *)v.o)->s);
        break;
    case V_LIST:
    case V_TUPLE: {
        List *l = (List *)v.o;
        sb_putc(out, v.kind == V_LIST ? '[' : '(');
        for (int i = 0; i < l->len; i++) {
            if (i) sb_puts(out, ", ");
            format_nested(I, l->items[i], out, depth, path);
        }
        if (v.kind == V_TUPLE && l->len == 1) sb_putc(out, ',');
        sb_putc(out, v.kind == V_LIST ? ']' : ')');
        break;
    }
    case V_RECORD: {
        Record *r = (Record *)v.o;
        sb_putc(out, '(');
        for (int i = 0; i < r->len; i++) {
            if (i) sb_puts(out, ", ");
            sb_printf(out, "%s=", r->names[i]);
            format_nested(I, r->vals[i], out, depth, path);
        }
        sb_putc(out, ')');
        break;
    }
    case V_RANGE: {
        const Range *r = (const Range *)v.o;
        if (rt_range_step(r) == 1)
            sb_printf(out, "%lld..%lld", (long long)r->lo, (long long)r->hi);
        else
            sb_printf(out, "range(%lld, %lld, %lld)", (long long)r->lo, (long long)r->hi,
                      (long long)r->step);
        break;
    }
    case V_DICT: {
        const Dict *d = (const Dict *)v.o;
        sb_putc(out, '{');
        for (int i = 0; i < d->len; i++) {
            if (i) sb_puts(out, ", ");
            format_nested(I, d->entries[i].key, out, depth, path);
            sb_puts(out, ": ");
            format_nested(I, d->entries[i].val, out, depth, path);
        }
        sb_putc(out, '}');
        break;
    }
    case V_TENSOR:
        rt_format_tensor(I, (Tensor *)v.o, out);
        break;
    case V_FUNC: {
        Func *f = (Func *)v.o;
        sb_printf(out, "<fn %s>", func_display_name(I, f));
        break;
    }
    case V_BUILTIN:
        sb_printf(out, "<builtin %s>", ((Builtin *)v.o)->name);
        break;
    case V_MODELDEF:
        sb_printf(out, "<model %s>", ((ModelDef *)v.o)->def->str);
        break;
    case V_MODEL: {
        Model *m = (Model *)v.o;
        sb_printf(out, "%s(", m->type_name);
        int k = 0;
        for (int i = 0; i < m->nfields; i++) {
            Value f = m->fields[i];
            if (f.kind == V_TENSOR && !m->is_param[i]) continue;
            if (f.kind == V_FUNC || f.kind == V_BUILTIN) continue;
            if (k++) sb_puts(out, ", ");
            sb_printf(out, "%s=", m->field_names[i]);
            if (f.kind == V_TENSOR) {
                Tensor *t = (Tensor *)f.o;
                char s[96];
                sb_printf(out, "%s%s", dtype_name(t->dtype), shape_str(&t->shape, s, sizeof s));
            } else {
                format_value(I, f, out, true, depth + 1, path);
            }
        }
        sb_putc(out, ')');
        break;
    }
    case V_NATIVE: {
        Native *n = (Native *)v.o;
        if (n->cls->print)
            n->cls->print(I, v.o, out);
        else
            sb_printf(out, "<%s>", n->cls->name);
        break;
    }
    }
}

void rt_format(Interp *I, Value v, StrBuf *out, bool repr) {
    FormatPath path;
    format_value(I, v, out, repr, 0, &path);
}

/* -- conversions -- */

int64_t rt_to_int(Interp *I, Value v, const char *what) {
    switch (v.kind) {
    case V_INT:
        return v.i;
    case V_BOOL:
        return v.b;
    case V_FLOAT:
        if (v.f == floor(v.f) && fabs(v.f) < 9.2e18) return (int64_t)v.f;
        rt_error(I, "%s: expected an integer, got %s", what, rt_type_name(v));
    case V_TENSOR: {
        Tensor *t = (Tensor *)v.o;
        if (shape_numel(&t->shape) == 1 && t->dtype != TY_F32) {
            void *d = rt_data(I, t);
            return t->dtype == TY_I32 ? ((int32_t *)d)[0] : ((int8_t *)d)[0];
        }
        break;
    }
    default:
        break;
    }
    rt_error(I, "%s: expected an int, got %s", what, rt_type_name(v));
}

double rt_to_float(Interp *I, Value v, const char *what) {
    switch (v.kind) {
    case V_INT:
        return (double)v.i;
    case V_BOOL:
        return v.b;
    case V_FLOAT:
        return v.f;
    case V_TENSOR: {
        Tensor *t = (Tensor *)v.o;
        if (shape_numel(&t->shape) == 1) {
            void *d = rt_data(I, t);
            switch (t->dtype) {
            case TY_F32:
                return ((float *)d)[0];
            case TY_I32:
                return ((int32_t *)d)[0];
            default:
                return ((int8_t *)d)[0];
            }
        }
        break;
    }
    default:
        break;
    }
    rt_error(I, "%s: expected a number, got %s", what, rt_type_name(v));
}

const char *rt_to_str(Interp *I, Value v, const char *what) {
    if (v.kind == V_STR) return ((Str *)v.o)->s;
    rt_error(I, "%s: expected a string, got %s", what, rt_type_name(v));
}

/* Shape and dtype of a nested list of numbers; false if it is ragged. */
static bool list_shape(Value v, Shape *s, int depth, bool *any_float) {
    if (v.kind == V_INT || v.kind == V_BOOL || v.kind == V_FLOAT) {
        if (v.kind == V_FLOAT) *any_float = true;
        if (depth == 0) s->ndim = 0;
        return s->ndim == depth;
    }
    if (v.kind != V_LIST && v.kind != V_TUPLE) return false;
    if (depth >= IR_MAXDIM) return false;
    List *l = (List *)v.o;
    if (s->ndim < 0) {
        /* first visit at this depth fixes the size */
    }
    if (s->d[depth] == -1)
        s->d[depth] = l->len;
    else if (s->d[depth] != l->len)
        return false;
    if (l->len == 0) {
        if (s->ndim == -1) s->ndim = depth + 1;
        return s->ndim == depth + 1;
    }
    for (int i = 0; i < l->len; i++) {
        Value x = l->items[i];
        if (x.kind == V_LIST || x.kind == V_TUPLE) {
            if (!list_shape(x, s, depth + 1, any_float)) return false;
        } else if (x.kind == V_INT || x.kind == V_BOOL || x.kind == V_FLOAT) {
            if (x.kind == V_FLOAT) *any_float = true;
            if (s->ndim == -1) s->ndim = depth + 1;
            if (s->ndim != depth + 1) return false;
        } else {
            return false;
        }
    }
    return true;
}

static void list_fill(Value v, DType dt, void *data, int64_t *at) {
    if (v.kind == V_LIST || v.kind == V_TUPLE) {
        List *l = (List *)v.o;
        for (int i = 0; i < l->len; i++) list_fill(l->items[i], dt, data, at);
        return;
    }
    double x = v.kind == V_FLOAT ? v.f : v.kind == V_INT ? (double)v.i : v.b;
    if (dt == TY_F32)
        ((float *)data)[(*at)++] = (float)x;
    else
        ((int32_t *)data)[(*at)++] = (int32_t)x;
}

Tensor *rt_to_tensor(Interp *I, Value v, const char *what) {
    switch (v.kind) {
    case V_TENSOR:
        return (Tensor *)rt_retain(v).o;
    case V_INT:
        return rt_tensor_scalar(I, TY_I32, (double)v.i);
    case V_BOOL:
        return rt_tensor_scalar(I, TY_I32, v.b);
    case V_FLOAT:
        return rt_tensor_scalar(I, TY_F32, v.f);
    case V_LIST:
    case V_TUPLE: {
        Shape s;
        s.ndim = -1;
        for (int i = 0; i < IR_MAXDIM; i++) s.d[i] = -1;
        bool any_float = false;
        if (!list_shape(v, &s, 0, &any_float) || s.ndim < 0)
            rt_error(I, "%s: expected a tensor or a rectangular list of numbers, got %s", what,
                     rt_type_name(v));
        Shape sh = shape_make(s.ndim, s.d);
        DType dt = any_float ? TY_F32 : TY_I32;
        Tensor *t = rt_tensor_new(I, dt, sh);
        int64_t at = 0;
        list_fill(v, dt, t->buf->data, &at);
        return t;
    }
    default:
        break;
    }
    rt_error(I, "%s: expected a tensor, got %s", what, rt_type_name(v));
}

/* -- models -- */

Value *rt_model_field(Model *m, const char *name) {
    for (int i = m->nfields - 1; i >= 0; i--)
        if (m->field_names[i] == name || strcmp(m->field_names[i], name) == 0) return &m->fields[i];
    return NULL;
}
