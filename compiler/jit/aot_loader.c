/* aot_loader.c - reads a model's weights from a safetensors file at run
 * time, for objects built by ttc --weights-external (aot_loader.h).
 *
 *   N       u64 little-endian: the header's length in bytes
 *   header  N bytes of JSON: {"fc1.w": {"dtype": "F32", "shape": [64, 128],
 *           "data_offsets": [0, 32768]}, ..., "__metadata__": {...}}
 *   data    the tensors' bytes; data_offsets are [begin, end) from here
 *
 * This code ends up inside users' programs and reads files they may not
 * control, so the JSON is parsed fully (any key order, whitespace, escaped
 * strings, values of any kind under keys it does not need), every read is
 * bounds-checked against the header or the file, and nothing is kept
 * unless every tensor the model needs is present and right. It uses libc
 * only: the object it is linked into may need nothing else. No tt headers
 * (and no jansson) for the same reason.
 */
#include "aot_loader.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the safetensors spec's own header limit; a larger one is corrupt */
#define HEADER_MAX  (100u << 20)
#define MAX_DEPTH   64
#define MAX_DIMS    8
#define ALIGN_BYTES 64

/* -- errors: every mismatch, appended -- */

typedef struct Err {
    char *buf;
    size_t cap, len;
    int n;            /* problems reported */
    const char *path; /* named once, before the first */
} Err;

/* "PATH: first problem; second problem; ..." */
__attribute__((format(printf, 2, 3))) static void problem(Err *e, const char *fmt, ...) {
    e->n++;
    if (!e->buf || e->cap == 0 || e->len + 1 >= e->cap) return;
    int k = e->n > 1 ? snprintf(e->buf + e->len, e->cap - e->len, "; ")
                     : snprintf(e->buf + e->len, e->cap - e->len, "%s: ", e->path);
    if (k > 0) e->len += (size_t)k < e->cap - e->len ? (size_t)k : e->cap - e->len - 1;
    va_list ap;
    va_start(ap, fmt);
    k = vsnprintf(e->buf + e->len, e->cap - e->len, fmt, ap);
    va_end(ap);
    if (k > 0) e->len += (size_t)k < e->cap - e->len ? (size_t)k : e->cap - e->len - 1;
}

/* -- a JSON reader over [s, s + n) -- */

typedef struct Json {
    const char *s;
    size_t n, i;
    char *scratch; /* n + 1 bytes: decoded strings are never longer */
    int bad;       /* a syntax error was seen at offset i */
} Json;

static void skip_ws(Json *j) {
    while (j->i < j->n &&
           (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r'))
        j->i++;
}

static int fail(Json *j) {
    j->bad = 1;
    return 0;
}

static int accept(Json *j, char c) {
    skip_ws(j);
    if (j->i < j->n && j->s[j->i] == c) {
        j->i++;
        return 1;
    }
    return 0;
}

static int hex4(Json *j, unsigned *out) {
    if (j->n - j->i < 4) return fail(j);
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = j->s[j->i++];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return fail(j);
    }
    *out = v;
    return 1;
}

/* A string at the cursor, decoded into j->scratch (NUL-terminated; *len
 * bytes, which may include NULs from \u0000). */
static int string(Json *j, size_t *len) {
    skip_ws(j);
    if (j->i >= j->n || j->s[j->i] != '"') return fail(j);
    j->i++;
    size_t o = 0;
    while (j->i < j->n) {
        unsigned char c = (unsigned char)j->s[j->i++];
        if (c == '"') {
            j->scratch[o] = 0;
            *len = o;
            return 1;
        }
        if (c < 0x20) return fail(j);
        if (c != '\\') {
            j->scratch[o++] = (char)c;
            continue;
        }
        if (j->i >= j->n) return fail(j);
        c = (unsigned char)j->s[j->i++];
        unsigned u;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            j->scratch[o++] = (char)c;
            break;
        case 'b':
            j->scratch[o++] = '\b';
            break;
        case 'f':
            j->scratch[o++] = '\f';
            break;
        case 'n':
            j->scratch[o++] = '\n';
            break;
        case 'r':
            j->scratch[o++] = '\r';
            break;
        case 't':
            j->scratch[o++] = '\t';
            break;
        case 'u':
            if (!hex4(j, &u)) return 0;
            if (u >= 0xD800 && u < 0xDC00) { /* a surrogate pair */
                unsigned lo;
                if (j->n - j->i < 2 || j->s[j->i] != '\\' || j->s[j->i + 1] != 'u') return fail(j);
                j->i += 2;
                if (!hex4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF) return fail(j);
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                return fail(j);
            }
            /* UTF-8: at most 4 bytes for the 6 of the escape (or 12) */
            if (u < 0x80) {
                j->scratch[o++] = (char)u;
            } else if (u < 0x800) {
                j->scratch[o++] = (char)(0xC0 | u >> 6);
                j->scratch[o++] = (char)(0x80 | (u & 0x3F));
            } else if (u < 0x10000) {
                j->scratch[o++] = (char)(0xE0 | u >> 12);
                j->scratch[o++] = (char)(0x80 | (u >> 6 & 0x3F));
                j->scratch[o++] = (char)(0x80 | (u & 0x3F));
            } else {
                j->scratch[o++] = (char)(0xF0 | u >> 18);
                j->scratch[o++] = (char)(0x80 | (u >> 12 & 0x3F));
                j->scratch[o++] = (char)(0x80 | (u >> 6 & 0x3F));
                j->scratch[o++] = (char)(0x80 | (u & 0x3F));
            }
            break;
        default:
            return fail(j);
        }
    }
    return fail(j); /* unterminated */
}

/* A non-negative integer below 2^62 (sizes and offsets). */
static int uint_value(Json *j, int64_t *out) {
    skip_ws(j);
    int64_t v = 0;
    size_t start = j->i;
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') {
        if (v > ((int64_t)1 << 62) / 10) return fail(j);
        v = v * 10 + (j->s[j->i++] - '0');
    }
    if (j->i == start) return fail(j);
    /* 1.0 or 1e3 is not an integer here */
    if (j->i < j->n && (j->s[j->i] == '.' || j->s[j->i] == 'e' || j->s[j->i] == 'E'))
        return fail(j);
    *out = v;
    return 1;
}

/* Any value (of a key the loader does not need), nested at most MAX_DEPTH. */
static int skip_value(Json *j, int depth) {
    skip_ws(j);
    if (j->i >= j->n || depth > MAX_DEPTH) return fail(j);
    char c = j->s[j->i];
    size_t len;
    if (c == '"') return string(j, &len);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->i++;
        if (accept(j, close)) return 1;
        do {
            if (c == '{' && (!string(j, &len) || !accept(j, ':'))) return fail(j);
            if (!skip_value(j, depth + 1)) return 0;
        } while (accept(j, ','));
        return accept(j, close) ? 1 : fail(j);
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t w = strlen(words[k]);
        if (j->n - j->i >= w && memcmp(j->s + j->i, words[k], w) == 0) {
            j->i += w;
            return 1;
        }
    }
    size_t start = j->i;
    while (j->i < j->n && (strchr("+-.eE", j->s[j->i]) || (j->s[j->i] >= '0' && j->s[j->i] <= '9')))
        j->i++;
    return j->i > start ? 1 : fail(j);
}

/* -- the header's entries -- */

typedef struct Entry {
    int seen;
    char dtype[16]; /* as written (a longer one is kept cut: it matches nothing) */
    int ndim;       /* -1: more than MAX_DIMS */
    int64_t shape[MAX_DIMS];
    int64_t begin, end;
} Entry;

/* {"dtype": ..., "shape": [...], "data_offsets": [b, e], ...} */
static int entry(Json *j, Entry *e, const char **missing) {
    int have_dt = 0, have_sh = 0, have_off = 0;
    size_t len;
    if (!accept(j, '{')) return fail(j);
    if (accept(j, '}')) goto end;
    do {
        if (!string(j, &len) || !accept(j, ':')) return fail(j);
        if (strcmp(j->scratch, "dtype") == 0 && len == 5) {
            if (!string(j, &len)) return 0;
            snprintf(e->dtype, sizeof e->dtype, "%s", j->scratch);
            have_dt = 1;
        } else if (strcmp(j->scratch, "shape") == 0 && len == 5) {
            e->ndim = 0;
            if (!accept(j, '[')) return fail(j);
            if (!accept(j, ']')) {
                do {
                    int64_t d;
                    if (!uint_value(j, &d)) return 0;
                    if (e->ndim >= 0 && e->ndim < MAX_DIMS)
                        e->shape[e->ndim++] = d;
                    else
                        e->ndim = -1;
                } while (accept(j, ','));
                if (!accept(j, ']')) return fail(j);
            }
            have_sh = 1;
        } else if (strcmp(j->scratch, "data_offsets") == 0 && len == 12) {
            if (!accept(j, '[') || !uint_value(j, &e->begin) || !accept(j, ',') ||
                !uint_value(j, &e->end) || !accept(j, ']'))
                return fail(j);
            have_off = 1;
        } else if (!skip_value(j, 1)) {
            return 0;
        }
    } while (accept(j, ','));
    if (!accept(j, '}')) return fail(j);
end:
    *missing = !have_dt ? "dtype" : !have_sh ? "shape" : !have_off ? "data_offsets" : NULL;
    return 1;
}

static const char *const dtype_names[] = {"F32", "I32", "I8"};

/* Bytes per element of a safetensors dtype, 0 when unknown. */
static int64_t dtype_size(const char *d) {
    static const struct {
        const char *name;
        int size;
    } t[] = {{"F64", 8}, {"F32", 4}, {"F16", 2},  {"BF16", 2},    {"I64", 8},
             {"I32", 4}, {"I16", 2}, {"I8", 1},   {"U64", 8},     {"U32", 4},
             {"U16", 2}, {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
        if (strcmp(d, t[k].name) == 0) return t[k].size;
    return 0;
}

static void shape_str(const int64_t *d, int n, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    o += (size_t)snprintf(buf, cap, "[");
    for (int k = 0; k < n && o < cap; k++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", k ? ", " : "", (long long)d[k]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* Parses the header: each expected tensor's entry into es[] (by name, in
 * any order); a key the model does not need is parsed and skipped.
 * Returns 0 after reporting a format error. */
static int parse_header(Json *j, const AotwTensor *want, int n, Entry *es, Err *e) {
    size_t len;
    if (!accept(j, '{')) goto syntax;
    if (accept(j, '}')) goto end;
    do {
        if (!string(j, &len) || !accept(j, ':')) goto syntax;
        int hit = -1;
        for (int k = 0; k < n && hit < 0; k++)
            if (strlen(want[k].name) == len && memcmp(want[k].name, j->scratch, len) == 0) hit = k;
        if (hit < 0) {
            if (!skip_value(j, 1)) goto syntax;
            continue;
        }
        if (es[hit].seen) {
            problem(e, "the header names tensor '%s' twice", want[hit].name);
            return 0;
        }
        const char *missing = NULL;
        es[hit].seen = 1;
        if (!entry(j, &es[hit], &missing)) goto syntax;
        if (missing) {
            problem(e, "tensor '%s' has no '%s'", want[hit].name, missing);
            return 0;
        }
    } while (accept(j, ','));
    if (!accept(j, '}')) goto syntax;
end:
    skip_ws(j);
    if (j->i != j->n) goto syntax;
    return 1;
syntax:
    problem(e, "the header is not valid JSON (at byte %zu of %zu)", j->i, j->n);
    return 0;
}

/* Every expected tensor against its entry: all problems reported. */
static void check_entries(const AotwTensor *want, int n, const Entry *es, uint64_t datalen,
                          Err *e) {
    char a[256], b[256];
    for (int k = 0; k < n; k++) {
        const AotwTensor *w = &want[k];
        const Entry *x = &es[k];
        if (!x->seen) {
            problem(e, "missing tensor '%s'", w->name);
            continue;
        }
        const char *wd = w->dtype >= 0 && w->dtype < 3 ? dtype_names[w->dtype] : "?";
        if (strcmp(x->dtype, wd) != 0)
            problem(e, "tensor '%s' has dtype %s, the model expects %s", w->name, x->dtype, wd);
        int same = x->ndim == w->ndim;
        for (int d = 0; same && d < w->ndim; d++) same = x->shape[d] == w->shape[d];
        if (!same) {
            shape_str(w->shape, w->ndim, b, sizeof b);
            if (x->ndim < 0)
                snprintf(a, sizeof a, "more than %d dimensions", MAX_DIMS);
            else
                shape_str(x->shape, x->ndim, a, sizeof a);
            problem(e, "tensor '%s' has shape %s, the model expects %s", w->name, a, b);
        }
        /* the offsets against the entry's own dtype and shape */
        int64_t size = dtype_size(x->dtype), need = size;
        for (int d = 0; d < x->ndim && need >= 0; d++)
            if (x->shape[d] != 0 && need > INT64_MAX / x->shape[d])
                need = -1;
            else
                need *= x->shape[d];
        if (x->end < x->begin)
            problem(e, "tensor '%s': data_offsets [%lld, %lld] end before they begin", w->name,
                    (long long)x->begin, (long long)x->end);
        else if ((uint64_t)x->end > datalen)
            problem(e,
                    "tensor '%s': data_offsets [%lld, %lld] run past the data (%llu bytes): "
                    "truncated or corrupt",
                    w->name, (long long)x->begin, (long long)x->end, (unsigned long long)datalen);
        else if (size && x->ndim >= 0 && need != x->end - x->begin)
            problem(e, "tensor '%s': dtype %s and shape need %lld bytes, data_offsets give %lld",
                    w->name, x->dtype, (long long)need, (long long)(x->end - x->begin));
    }
}

/* -- the file -- */

int tt_aotw_load(const AotwTensor *want, int n, void **slots, void **block, const char *path,
                 char *err, size_t errlen) {
    if (!path) path = "(null)";
    Err e = {err, errlen, 0, 0, path};
    if (err && errlen) err[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        problem(&e, "cannot open it: %s", strerror(errno));
        return 1;
    }
    char *hdr = NULL, *scratch = NULL;
    Entry *es = NULL;
    unsigned char *data = NULL;
    int64_t *off = NULL;
    int rc = 1;
    unsigned char lenbuf[8];
    long long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        problem(&e, "cannot read it: %s", strerror(errno));
        goto out;
    }
    if (size < 8 || fread(lenbuf, 1, 8, f) != 8) {
        problem(&e, "truncated: %lld bytes, too short for the 8-byte header length", size);
        goto out;
    }
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--) hlen = hlen << 8 | lenbuf[k];
    if (hlen > (uint64_t)size - 8 || hlen > HEADER_MAX) {
        problem(&e, "truncated or corrupt: the header length is %llu bytes but %lld follow%s",
                (unsigned long long)hlen, size - 8,
                hlen > HEADER_MAX ? " (and safetensors allows at most 100 MB)" : "");
        goto out;
    }
    uint64_t datalen = (uint64_t)size - 8 - hlen;
    hdr = malloc(hlen + 1);
    scratch = malloc(hlen + 1);
    es = calloc((size_t)n + 1, sizeof *es);
    off = calloc((size_t)n + 1, sizeof *off);
    if (!hdr || !scratch || !es || !off) {
        problem(&e, "out of memory reading the header");
        goto out;
    }
    if (fread(hdr, 1, hlen, f) != hlen) {
        problem(&e, "truncated header");
        goto out;
    }
    Json j = {hdr, hlen, 0, scratch, 0};
    if (!parse_header(&j, want, n, es, &e)) goto out;
    check_entries(want, n, es, datalen, &e);
    if (e.n) goto out;
    /* one block, each tensor at a 64-byte boundary */
    size_t total = ALIGN_BYTES;
    for (int k = 0; k < n; k++) {
        off[k] = (int64_t)total;
        total += ((size_t)want[k].bytes + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES;
    }
    void *mem = NULL;
    if (posix_memalign(&mem, ALIGN_BYTES, total) != 0) {
        problem(&e, "out of memory for %zu bytes of weights", total);
        goto out;
    }
    data = mem;
    for (int k = 0; k < n; k++) {
        size_t bytes = (size_t)want[k].bytes;
        if (bytes && (fseek(f, (long)(8 + hlen + (uint64_t)es[k].begin), SEEK_SET) != 0 ||
                      fread(data + off[k], 1, bytes, f) != bytes)) {
            problem(&e, "cannot read tensor '%s' (the file is shorter than its header says)",
                    want[k].name);
            goto out;
        }
    }
    /* all read: now replace the old weights */
    free(*block);
    *block = data;
    for (int k = 0; k < n; k++) slots[k] = data + off[k];
    data = NULL;
    rc = 0;
out:
    fclose(f);
    free(data);
    free(hdr);
    free(scratch);
    free(es);
    free(off);
    return rc;
}

void tt_aotw_free(void **slots, int n, void **block) {
    free(*block);
    *block = NULL;
    for (int k = 0; k < n; k++) slots[k] = NULL;
}
