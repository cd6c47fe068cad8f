/* dict.c - the dict value: an insertion-ordered hash table, as CPython's
 * compact dict (an entries array in insertion order plus an open-addressing
 * index of entry numbers), and its builtins: dict(), keys, values, items,
 * and the methods d.get, d.keys, d.values, d.items.
 *
 * Keys are hashed by value, as in Python: numbers by their numeric value
 * (1, 1.0 and true are one key, the first one inserted is kept), strings
 * by their bytes, tuples by their items; none is a key too. A list, dict,
 * tensor or any other object is not: `unhashable type: 'list'`. There is no
 * deletion, so the entries array never has holes.
 */
#include "builtins_lib.h"
#include "containers.h"
#include "eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* -- hashing -- */

static uint64_t mix64(uint64_t x) { /* splitmix64's finalizer */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Numbers equal under == hash alike: every number goes through its double
 * value (an int and the float of the same value meet; ints too large to
 * be exact as doubles only collide more often). */
static uint64_t hash_number(double d) {
    if (d == floor(d) && fabs(d) < 9.2e18) return mix64((uint64_t)(int64_t)d);
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return mix64(bits ^ 0x5bd1e995ull);
}

#define MAX_KEY_DEPTH 100

static uint64_t hash_key(Interp *I, Value k, int depth) {
    switch (k.kind) {
    case V_NONE:
        return 0x9e3779b97f4a7c15ull;
    case V_BOOL:
        return hash_number(k.b);
    case V_INT:
        return hash_number((double)k.i);
    case V_FLOAT:
        return hash_number(k.f);
    case V_STR: {
        const Str *s = (const Str *)k.o;
        uint64_t h = 14695981039346656037ull; /* FNV-1a */
        for (size_t i = 0; i < s->len; i++) h = (h ^ (unsigned char)s->s[i]) * 1099511628211ull;
        return mix64(h);
    }
    case V_TUPLE: {
        if (depth > MAX_KEY_DEPTH) rt_error(I, "dict key: tuple nested too deeply");
        const List *l = (const List *)k.o;
        uint64_t h = mix64((uint64_t)l->len + 0x27d4eb2dull);
        for (int i = 0; i < l->len; i++)
            h = mix64(h * 1000003u ^ hash_key(I, l->items[i], depth + 1));
        return h;
    }
    default:
        rt_error(I,
                 "unhashable type: '%s' (dict keys are str, int, float, bool, none or tuples "
                 "of them)",
                 rt_kind_name(k.kind));
    }
}

/* -- the table -- */

Value rt_dict(Interp *I) {
    Dict *d = rt_alloc_obj(I, V_DICT, sizeof(Dict));
    return vobj(&d->obj);
}

/* The index slot holding key's entry, or the empty slot where it would go. */
static int32_t *find_slot(Interp *I, Dict *d, Value key, uint64_t h) {
    uint32_t mask = (uint32_t)d->icap - 1, j = (uint32_t)h & mask;
    for (;;) {
        int32_t *slot = &d->index[j];
        if (*slot == 0) return slot;
        const DictEntry *e = &d->entries[*slot - 1];
        if (e->hash == h && rt_equal(I, e->key, key)) return slot;
        j = (j + 1) & mask;
    }
}

/* Keeps the index at most 2/3 full. */
static void grow_index(Dict *d) {
    if (3 * (d->len + 1) <= 2 * d->icap) return;
    int icap = d->icap ? 2 * d->icap : 8;
    while (3 * (d->len + 1) > 2 * icap) icap *= 2;
    free(d->index);
    d->index = tt_xcalloc((size_t)icap, sizeof *d->index);
    d->icap = icap;
    uint32_t mask = (uint32_t)icap - 1;
    for (int i = 0; i < d->len; i++) {
        uint32_t j = (uint32_t)d->entries[i].hash & mask;
        while (d->index[j]) j = (j + 1) & mask;
        d->index[j] = i + 1;
    }
}

Value *rt_dict_find(Interp *I, Value dv, Value key) {
    TT_ASSERT(dv.kind == V_DICT);
    Dict *d = (Dict *)dv.o;
    uint64_t h = hash_key(I, key, 0);
    if (d->len == 0) return NULL;
    int32_t *slot = find_slot(I, d, key, h);
    return *slot ? &d->entries[*slot - 1].val : NULL;
}

void rt_dict_set(Interp *I, Value dv, Value key, Value v) {
    TT_ASSERT(dv.kind == V_DICT);
    Dict *d = (Dict *)dv.o;
    /* (an error leaves v to rt_free_interp, through the list of objects) */
    uint64_t h = hash_key(I, key, 0);
    if (d->len >= (1 << 28)) rt_error(I, "dict too large");
    grow_index(d);
    int32_t *slot = find_slot(I, d, key, h);
    if (*slot) { /* Python keeps the first key and replaces the value */
        DictEntry *e = &d->entries[*slot - 1];
        Value old = e->val;
        e->val = v;
        rt_release(I, old);
        return;
    }
    DictEntry e = {rt_retain(key), v, h};
    TT_VEC_PUSH(d->entries, d->len, d->cap, e);
    *slot = d->len;
}

void rt_dict_clear(Interp *I, Dict *d, bool release) {
    if (release)
        for (int i = 0; i < d->len; i++) {
            rt_release(I, d->entries[i].key);
            rt_release(I, d->entries[i].val);
        }
    free(d->entries);
    free(d->index);
    d->entries = NULL;
    d->index = NULL;
    d->len = d->cap = d->icap = 0;
}

/* Python's dict ==: the same keys with equal values, in any order. */
bool rt_dict_equal(Interp *I, Dict *a, Dict *b) {
    if (a == b) return true;
    if (a->len != b->len) return false;
    Value bv = vobj(&b->obj);
    for (int i = 0; i < a->len; i++) {
        const Value *v = rt_dict_find(I, bv, a->entries[i].key);
        if (!v || !rt_equal(I, a->entries[i].val, *v)) return false;
    }
    return true;
}

/* -- builtins -- */

/* Which part of each entry keys/values/items return. */
typedef enum Part { PART_KEYS, PART_VALUES, PART_ITEMS } Part;

static Value dict_part(Interp *I, Value dv, Part part) {
    Dict *d = (Dict *)dv.o;
    Value r = rt_list(I, d->len);
    for (int i = 0; i < d->len; i++) {
        const DictEntry *e = &d->entries[i];
        Value x;
        if (part == PART_KEYS) {
            x = rt_retain(e->key);
        } else if (part == PART_VALUES) {
            x = rt_retain(e->val);
        } else {
            x = rt_tuple(I, 2);
            ((List *)x.o)->items[0] = rt_retain(e->key);
            ((List *)x.o)->items[1] = rt_retain(e->val);
        }
        ((List *)r.o)->items[i] = x;
    }
    return r;
}

static Value as_dict(Interp *I, Value v, const char *fn) {
    if (v.kind != V_DICT) rt_error(I, "%s(): expected a dict, got %s", fn, rt_type_name(v));
    return v;
}

/* dict(), dict(a=1, b=2), dict(other_dict), dict([(k, v), ...]) */
BUILTIN(bi_dict) {
    (void)self;
    if (nargs > 1)
        rt_error(I, "dict() takes at most 1 positional argument but %d were given", nargs);
    Value d = rt_dict(I);
    if (nargs == 1) {
        Value src = args[0];
        if (src.kind == V_DICT) {
            Dict *s = (Dict *)src.o;
            for (int i = 0; i < s->len; i++)
                rt_dict_set(I, d, s->entries[i].key, rt_retain(s->entries[i].val));
        } else if (src.kind == V_LIST || src.kind == V_TUPLE) {
            List *l = (List *)src.o;
            for (int i = 0; i < l->len; i++) {
                Value p = l->items[i];
                if ((p.kind != V_LIST && p.kind != V_TUPLE) || ((List *)p.o)->len != 2)
                    rt_error(I, "dict(): item %d is not a (key, value) pair: %s", i,
                             rt_type_name(p));
                rt_dict_set(I, d, ((List *)p.o)->items[0], rt_retain(((List *)p.o)->items[1]));
            }
        } else {
            rt_error(I,
                     "dict(): cannot convert %s (expected a dict or a list of (key, value) "
                     "pairs)",
                     rt_type_name(src));
        }
    }
    for (int k = 0; k < nkw; k++) {
        Value key = rt_cstr(I, kwnames[k]);
        rt_dict_set(I, d, key, rt_retain(kwargs[k]));
        rt_release(I, key);
    }
    return d;
}

#define PART_BUILTIN(fn, name, part)                                                               \
    BUILTIN(fn) {                                                                                  \
        static const char *const names[] = {"d", NULL};                                            \
        Value a[1];                                                                                \
        if (self.kind == V_DICT) {                                                                 \
            BIND(name, names + 1, 0, a);                                                           \
            return dict_part(I, self, part);                                                       \
        }                                                                                          \
        BIND(name, names, 1, a);                                                                   \
        return dict_part(I, as_dict(I, a[0], name), part);                                         \
    }
PART_BUILTIN(bi_keys, "keys", PART_KEYS)
PART_BUILTIN(bi_values, "values", PART_VALUES)
PART_BUILTIN(bi_items, "items", PART_ITEMS)

/* d.get(key, default=none) */
BUILTIN(bi_get) {
    static const char *const names[] = {"key", "default", NULL};
    Value a[2];
    BIND("get", names, 1, a);
    Value *v = rt_dict_find(I, self, a[0]);
    if (v) return rt_retain(*v);
    return rt_given(a[1]) ? rt_retain(a[1]) : VNONE;
}

bool rt_dict_member(Interp *I, Value d, const char *name, Value *out) {
    static const struct {
        const char *name;
        BuiltinFn fn;
    } methods[] = {{"get", bi_get}, {"keys", bi_keys}, {"values", bi_values}, {"items", bi_items}};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(name, methods[i].name) == 0) {
            *out = rt_builtin(I, methods[i].name, methods[i].fn, d);
            return true;
        }
    return false;
}

void lib_register_dict(Interp *I) {
    static const struct {
        const char *name;
        BuiltinFn fn;
    } fns[] = {{"dict", bi_dict}, {"keys", bi_keys}, {"values", bi_values}, {"items", bi_items}};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        rt_define_global(I, fns[i].name, rt_builtin(I, fns[i].name, fns[i].fn, VNONE));
}
