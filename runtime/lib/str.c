/* str.c - strings as sequences of code points: UTF-8 counting and
 * indexing, the string methods (s.split, sep.join, s.strip, s.lower,
 * s.upper, s.replace, s.startswith, s.endswith, s.find), ord and chr.
 *
 * Strings hold UTF-8 bytes; len, indexing, slicing and iteration count code
 * points, as Python does. A byte that does not start a valid UTF-8 sequence
 * counts as one code point, which ord() reports as U+DC80..U+DCFF (Python's
 * "surrogateescape"), so every string, even one read from a binary file,
 * has a length and can be indexed.
 */
#include "builtins_lib.h"
#include "containers.h"
#include "eval.h"

#include <stdlib.h>
#include <string.h>

/* -- UTF-8 -- */

static bool is_cont(unsigned char c) {
    return (c & 0xc0) == 0x80;
}

size_t utf8_step(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    unsigned char c = u[0];
    if (c < 0x80) return 1;
    size_t need;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef)
        need = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 4;
    else
        return 1; /* a continuation byte, an overlong lead or beyond U+10FFFF */
    if (n < need) return 1;
    for (size_t k = 1; k < need; k++)
        if (!is_cont(u[k])) return 1;
    /* no overlong forms, nothing above U+10FFFF (surrogates pass: chr makes them) */
    if (c == 0xe0 && u[1] < 0xa0) return 1;
    if (c == 0xf0 && u[1] < 0x90) return 1;
    if (c == 0xf4 && u[1] > 0x8f) return 1;
    return need;
}

size_t utf8_count(const char *s, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n;) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
        } else {
            i += utf8_step(s + i, n - i);
        }
        count++;
    }
    return count;
}

/* The code point at s[0] and its length in bytes (*len). */
static uint32_t utf8_decode(const char *s, size_t n, size_t *len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t k = utf8_step(s, n);
    *len = k;
    switch (k) {
    case 1:
        return u[0] < 0x80 ? u[0] : 0xdc00u + u[0]; /* surrogateescape */
    case 2:
        return ((uint32_t)(u[0] & 0x1f) << 6) | (u[1] & 0x3f);
    case 3:
        return ((uint32_t)(u[0] & 0x0f) << 12) | ((uint32_t)(u[1] & 0x3f) << 6) | (u[2] & 0x3f);
    default:
        return ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3f) << 12) |
               ((uint32_t)(u[2] & 0x3f) << 6) | (u[3] & 0x3f);
    }
}

size_t utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t str_offset(const Str *str, int64_t i) {
    if (str->nchars == str->len) return (size_t)i; /* ASCII (the common case) */
    size_t off = 0;
    for (int64_t k = 0; k < i && off < str->len; k++)
        off += utf8_step(str->s + off, str->len - off);
    return off;
}

Value rt_str_char(Interp *I, Value s, int64_t i) {
    const Str *str = (const Str *)s.o;
    size_t off = str_offset(str, i);
    return rt_str(I, str->s + off, utf8_step(str->s + off, str->len - off));
}

Value str_slice(Interp *I, Value s, int64_t start, int64_t step, int64_t n) {
    const Str *str = (const Str *)s.o;
    StrBuf b = {0};
    sb_puts(&b, "");
    if (str->nchars == str->len) {
        for (int64_t k = 0; k < n; k++) sb_putc(&b, str->s[start + k * step]);
    } else {
        /* the byte offset of every code point, then the chosen ones */
        size_t *offs = tt_xmalloc((str->nchars + 1) * sizeof *offs);
        size_t off = 0;
        for (size_t k = 0; k < str->nchars; k++) {
            offs[k] = off;
            off += utf8_step(str->s + off, str->len - off);
        }
        offs[str->nchars] = str->len;
        for (int64_t k = 0; k < n; k++) {
            size_t c = (size_t)(start + k * step);
            for (size_t j = offs[c]; j < offs[c + 1]; j++) sb_putc(&b, str->s[j]);
        }
        free(offs);
    }
    Value r = rt_str(I, b.s, b.len);
    sb_free(&b);
    return r;
}

/* -- the methods -- */

static const Str *self_str(Value self) {
    return (const Str *)self.o;
}

static const Str *arg_str(Interp *I, Value v, const char *fn, const char *arg) {
    if (v.kind != V_STR) rt_error(I, "%s(): %s must be a string, got %s", fn, arg, rt_type_name(v));
    return (const Str *)v.o;
}

/* Python's str.isspace() code points. */
static bool is_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

static const char *find_bytes(const char *h, size_t hn, const char *n, size_t nn) {
    if (nn == 0) return h;
    if (nn > hn) return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == n[0] && memcmp(h + i, n, nn) == 0) return h + i;
    return NULL;
}

/* s.split(sep=none, maxsplit=-1) */
BUILTIN(str_split) {
    static const char *const names[] = {"sep", "maxsplit", NULL};
    Value a[2];
    BIND("split", names, 0, a);
    const Str *s = self_str(self);
    int64_t maxsplit = lib_int(I, a[1], -1, "split", "maxsplit");
    Value r = rt_list(I, 0);
    if (!rt_given(a[0]) || a[0].kind == V_NONE) {
        /* runs of whitespace separate; no empty strings */
        size_t i = 0, n = s->len, len;
        while (i < n) {
            while (i < n && is_space(utf8_decode(s->s + i, n - i, &len))) i += len;
            if (i >= n) break;
            size_t start = i;
            if (maxsplit >= 0 && ((List *)r.o)->len >= maxsplit) {
                /* the rest, trailing whitespace included, as in Python */
                rt_list_push(I, r, rt_str(I, s->s + start, n - start));
                break;
            }
            while (i < n && !is_space(utf8_decode(s->s + i, n - i, &len))) i += len;
            rt_list_push(I, r, rt_str(I, s->s + start, i - start));
        }
        return r;
    }
    const Str *sep = arg_str(I, a[0], "split", "sep");
    if (sep->len == 0) rt_error(I, "split(): empty separator");
    const char *p = s->s, *end = s->s + s->len;
    for (;;) {
        const char *q = NULL;
        if (maxsplit < 0 || ((List *)r.o)->len < maxsplit)
            q = find_bytes(p, (size_t)(end - p), sep->s, sep->len);
        if (!q) {
            rt_list_push(I, r, rt_str(I, p, (size_t)(end - p)));
            return r;
        }
        rt_list_push(I, r, rt_str(I, p, (size_t)(q - p)));
        p = q + sep->len;
    }
}

/* sep.join(items): items a list, tuple, dict (keys), ... of strings */
BUILTIN(str_join) {
    static const char *const names[] = {"items", NULL};
    Value a[1];
    BIND("join", names, 1, a);
    const Str *sep = self_str(self);
    Value items = rt_iter_list(I, a[0], "join");
    List *l = (List *)items.o;
    for (int i = 0; i < l->len; i++)
        if (l->items[i].kind != V_STR)
            rt_error(I, "join(): sequence item %d: expected str, got %s", i,
                     rt_type_name(l->items[i]));
    StrBuf b = {0};
    sb_puts(&b, "");
    for (int i = 0; i < l->len; i++) {
        const Str *x = (const Str *)l->items[i].o;
        if (i)
            for (size_t k = 0; k < sep->len; k++) sb_putc(&b, sep->s[k]);
        for (size_t k = 0; k < x->len; k++) sb_putc(&b, x->s[k]);
    }
    rt_release(I, items);
    Value r = rt_str(I, b.s, b.len);
    sb_free(&b);
    return r;
}

/* Is c in the set `chars` (a string), or whitespace when chars is NULL? */
static bool strip_match(const Str *chars, uint32_t c) {
    if (!chars) return is_space(c);
    size_t len;
    for (size_t i = 0; i < chars->len; i += len)
        if (utf8_decode(chars->s + i, chars->len - i, &len) == c) return true;
    return false;
}

static Value strip(Interp *I, Value self, const Value *args, int nargs, const char *const *kwnames,
                   const Value *kwargs, int nkw, const char *fn, bool left, bool right) {
    static const char *const names[] = {"chars", NULL};
    Value a[1];
    BIND(fn, names, 0, a);
    const Str *s = self_str(self);
    const Str *chars = rt_given(a[0]) && a[0].kind != V_NONE ? arg_str(I, a[0], fn, "chars") : NULL;
    size_t lo = 0, hi = s->len, len;
    if (left)
        while (lo < hi && strip_match(chars, utf8_decode(s->s + lo, hi - lo, &len))) lo += len;
    if (right)
        while (hi > lo) {
            size_t k = hi - 1;
            while (k > lo && is_cont((unsigned char)s->s[k])) k--;
            /* k starts the last code point unless the bytes are not UTF-8 */
            if (utf8_step(s->s + k, hi - k) != hi - k) k = hi - 1;
            if (!strip_match(chars, utf8_decode(s->s + k, hi - k, &len))) break;
            hi = k;
        }
    return rt_str(I, s->s + lo, hi - lo);
}

BUILTIN(str_strip) {
    return strip(I, self, args, nargs, kwnames, kwargs, nkw, "strip", true, true);
}
BUILTIN(str_lstrip) {
    return strip(I, self, args, nargs, kwnames, kwargs, nkw, "lstrip", true, false);
}
BUILTIN(str_rstrip) {
    return strip(I, self, args, nargs, kwnames, kwargs, nkw, "rstrip", false, true);
}

/* Simple case mappings of ASCII, Latin-1, Latin Extended-A, Greek and
 * basic Cyrillic (what Python's lower()/upper() do there, except the few
 * that map to several characters; 'ß'.upper() is "SS"). */
static uint32_t to_lower(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c < 0xc0) return c;
    if (c <= 0xde) return c == 0xd7 ? c : c + 32;
    if (c >= 0x100 && c <= 0x137) return c == 0x130 ? c : c | 1;
    if (c >= 0x139 && c <= 0x148) return (c & 1) ? c + 1 : c;
    if (c >= 0x14a && c <= 0x177) return c | 1;
    if (c == 0x178) return 0xff;
    if (c >= 0x179 && c <= 0x17e) return (c & 1) ? c + 1 : c;
    if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2) return c + 32;
    if (c == 0x386) return 0x3ac;
    if (c >= 0x388 && c <= 0x38a) return c + 37;
    if (c == 0x38c) return 0x3cc;
    if (c == 0x38e || c == 0x38f) return c + 63;
    if (c >= 0x410 && c <= 0x42f) return c + 32;
    if (c >= 0x400 && c <= 0x40f) return c + 80;
    return c;
}

static uint32_t to_upper(uint32_t c) {
    if (c >= 'a' && c <= 'z') return c - 32;
    if (c < 0xb5) return c;
    if (c == 0xb5) return 0x39c;
    if (c >= 0xe0 && c <= 0xfe) return c == 0xf7 ? c : c - 32;
    if (c == 0xff) return 0x178;
    if (c == 0x131) return 'I';
    if (c >= 0x100 && c <= 0x137) return c & ~1u;
    if (c >= 0x139 && c <= 0x148) return (c & 1) ? c : c - 1;
    if (c >= 0x14a && c <= 0x177) return c & ~1u;
    if (c >= 0x179 && c <= 0x17e) return (c & 1) ? c : c - 1;
    if (c == 0x17f) return 'S';
    if (c == 0x3c2) return 0x3a3;
    if (c >= 0x3b1 && c <= 0x3c9) return c - 32;
    if (c == 0x3ac) return 0x386;
    if (c >= 0x3ad && c <= 0x3af) return c - 37;
    if (c == 0x3cc) return 0x38c;
    if (c == 0x3cd || c == 0x3ce) return c - 63;
    if (c >= 0x430 && c <= 0x44f) return c - 32;
    if (c >= 0x450 && c <= 0x45f) return c - 80;
    return c;
}

static Value map_case(Interp *I, Value self, bool upper) {
    const Str *s = self_str(self);
    StrBuf b = {0};
    sb_puts(&b, "");
    size_t len;
    for (size_t i = 0; i < s->len; i += len) {
        uint32_t c = utf8_decode(s->s + i, s->len - i, &len);
        uint32_t m = upper ? to_upper(c) : to_lower(c);
        if (upper && c == 0xdf) {
            sb_puts(&b, "SS");
        } else if (m == c) { /* the original bytes, also for bytes that are not UTF-8 */
            for (size_t k = 0; k < len; k++) sb_putc(&b, s->s[i + k]);
        } else {
            char enc[4];
            size_t k = utf8_encode(m, enc);
            for (size_t j = 0; j < k; j++) sb_putc(&b, enc[j]);
        }
    }
    Value r = rt_str(I, b.s, b.len);
    sb_free(&b);
    return r;
}

BUILTIN(str_lower) {
    static const char *const names[] = {NULL};
    Value a[1];
    BIND("lower", names, 0, a);
    return map_case(I, self, false);
}

BUILTIN(str_upper) {
    static const char *const names[] = {NULL};
    Value a[1];
    BIND("upper", names, 0, a);
    return map_case(I, self, true);
}

/* s.replace(old, new, count=-1); an empty old inserts new around every
 * character, as in Python */
BUILTIN(str_replace) {
    static const char *const names[] = {"old", "new", "count", NULL};
    Value a[3];
    BIND("replace", names, 2, a);
    const Str *s = self_str(self);
    const Str *old = arg_str(I, a[0], "replace", "old");
    const Str *rep = arg_str(I, a[1], "replace", "new");
    int64_t count = lib_int(I, a[2], -1, "replace", "count");
    StrBuf b = {0};
    sb_puts(&b, "");
    const char *p = s->s, *end = s->s + s->len;
    int64_t done = 0;
    while (count < 0 || done < count) {
        const char *q;
        if (old->len == 0) {
            q = p;
        } else {
            q = find_bytes(p, (size_t)(end - p), old->s, old->len);
            if (!q) break;
        }
        for (const char *c = p; c < q; c++) sb_putc(&b, *c);
        for (size_t k = 0; k < rep->len; k++) sb_putc(&b, rep->s[k]);
        done++;
        if (old->len == 0) {
            if (q >= end) {
                p = end;
                break;
            }
            size_t step = utf8_step(q, (size_t)(end - q));
            for (size_t k = 0; k < step; k++) sb_putc(&b, q[k]);
            p = q + step;
        } else {
            p = q + old->len;
        }
    }
    for (const char *c = p; c < end; c++) sb_putc(&b, *c);
    Value r = rt_str(I, b.s, b.len);
    sb_free(&b);
    return r;
}

/* startswith/endswith: the argument is a string or a tuple of strings */
static Value affix(Interp *I, Value self, Value arg, const char *fn, bool at_end) {
    const Str *s = self_str(self);
    int n = 1;
    const Value *items = &arg;
    if (arg.kind == V_TUPLE) {
        n = ((List *)arg.o)->len;
        items = ((List *)arg.o)->items;
    }
    for (int i = 0; i < n; i++) {
        const Str *p = arg_str(I, items[i], fn, "prefix");
        if (p->len > s->len) continue;
        const char *at = at_end ? s->s + s->len - p->len : s->s;
        if (memcmp(at, p->s, p->len) == 0) return vbool(true);
    }
    return vbool(false);
}

BUILTIN(str_startswith) {
    static const char *const names[] = {"prefix", NULL};
    Value a[1];
    BIND("startswith", names, 1, a);
    return affix(I, self, a[0], "startswith", false);
}

BUILTIN(str_endswith) {
    static const char *const names[] = {"suffix", NULL};
    Value a[1];
    BIND("endswith", names, 1, a);
    return affix(I, self, a[0], "endswith", true);
}

/* s.find(sub): the index (in code points) of the first occurrence, or -1 */
BUILTIN(str_find) {
    static const char *const names[] = {"sub", NULL};
    Value a[1];
    BIND("find", names, 1, a);
    const Str *s = self_str(self);
    const Str *sub = arg_str(I, a[0], "find", "sub");
    const char *q = find_bytes(s->s, s->len, sub->s, sub->len);
    if (!q) return vint(-1);
    return vint((int64_t)utf8_count(s->s, (size_t)(q - s->s)));
}

bool rt_str_member(Interp *I, Value s, const char *name, Value *out) {
    static const struct {
        const char *name;
        BuiltinFn fn;
    } methods[] = {
        {"split", str_split},       {"join", str_join},       {"strip", str_strip},
        {"lstrip", str_lstrip},     {"rstrip", str_rstrip},   {"lower", str_lower},
        {"upper", str_upper},       {"replace", str_replace}, {"startswith", str_startswith},
        {"endswith", str_endswith}, {"find", str_find},
    };
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(name, methods[i].name) == 0) {
            *out = rt_builtin(I, methods[i].name, methods[i].fn, s);
            return true;
        }
    return false;
}

/* -- ord, chr -- */

BUILTIN(bi_ord) {
    (void)self;
    static const char *const names[] = {"c", NULL};
    Value a[1];
    BIND("ord", names, 1, a);
    if (a[0].kind != V_STR) rt_error(I, "ord(): expected a string, got %s", rt_type_name(a[0]));
    const Str *s = (const Str *)a[0].o;
    if (s->nchars != 1)
        rt_error(I, "ord(): expected a character, but string of length %zu found", s->nchars);
    size_t len;
    return vint(utf8_decode(s->s, s->len, &len));
}

BUILTIN(bi_chr) {
    (void)self;
    static const char *const names[] = {"i", NULL};
    Value a[1];
    BIND("chr", names, 1, a);
    if (a[0].kind != V_INT && a[0].kind != V_BOOL)
        rt_error(I, "chr(): expected an int, got %s", rt_type_name(a[0]));
    int64_t i = rt_to_int(I, a[0], "chr()");
    if (i < 0 || i > 0x10ffff) rt_error(I, "chr() arg not in range(0x110000)");
    char enc[4];
    size_t n = utf8_encode((uint32_t)i, enc);
    return rt_str(I, enc, n);
}

void rt_register_str_builtins(Interp *I) {
    rt_define_global(I, "ord", rt_builtin(I, "ord", bi_ord, VNONE));
    rt_define_global(I, "chr", rt_builtin(I, "chr", bi_chr, VNONE));
    lib_register_dict(I);
    lib_register_fmt(I);
    lib_register_seq(I);
}
