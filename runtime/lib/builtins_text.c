/* builtins_text.c - tokenizers: char_tokenizer, bpe_tokenizer, encode,
 * decode, save_tokenizer, load_tokenizer.
 *
 * A tokenizer is a native object ("tokenizer") with the member `vocab` (its
 * number of tokens) and `kind` ("char" or "bpe"). Both kinds keep, for every
 * id, the bytes it stands for, so decode is the same concatenation for both.
 *
 * char: the tokens are the distinct characters of the training text (UTF-8
 * code points; a byte that is not valid UTF-8 counts as one, as len(s)
 * does), sorted by code point. For valid UTF-8 the byte order of the
 * encodings is the code point order, so the keys are compared as bytes.
 *
 * bpe: byte-level BPE. Ids 0..255 are the bytes; merge i makes id 256 + i
 * from the pair (a, b). Training repeatedly merges the most frequent
 * adjacent pair (overlapping occurrences counted, as minbpe does), ties
 * broken by the smaller (a, b), until `vocab` tokens or until no pair occurs
 * twice. Encoding applies the merges in the order they were learned, which
 * gives the same result as merging the lowest-ranked pair present first:
 * a merge only creates pairs of higher rank than itself.
 */
#include "builtins_lib.h"
#include "containers.h"
#include "io_atomic.h"
#include "input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN 512

typedef enum TokKind { TOK_CHAR, TOK_BPE } TokKind;

typedef struct Tokenizer {
    TokKind kind;
    int n;       /* vocabulary size */
    size_t *off; /* bytes of token i: pool[off[i] .. off[i] + len[i]) */
    int *len;
    char *pool;
    int nmerges; /* bpe: merges[2*i], merges[2*i+1] make id 256 + i */
    int32_t *merges;
} Tokenizer;

static void tok_free_data(Tokenizer *t) {
    if (!t) return;
    free(t->off);
    free(t->len);
    free(t->pool);
    free(t->merges);
    free(t);
}

static void tok_free(Obj *self) {
    tok_free_data(((Native *)self)->data);
    ((Native *)self)->data = NULL;
}

static bool tok_member(Interp *I, Obj *self, const char *name, Value *out) {
    Tokenizer *t = ((Native *)self)->data;
    if (strcmp(name, "vocab") == 0)
        *out = vint(t->n);
    else if (strcmp(name, "kind") == 0)
        *out = rt_cstr(I, t->kind == TOK_CHAR ? "char" : "bpe");
    else
        return false;
    return true;
}

static void tok_print(Interp *I, Obj *self, StrBuf *out) {
    (void)I;
    Tokenizer *t = ((Native *)self)->data;
    sb_printf(out, "%s_tokenizer(vocab=%d)", t->kind == TOK_CHAR ? "char" : "bpe", t->n);
}

static const NativeClass tok_class = {"tokenizer", tok_member, tok_free, tok_print};

static Tokenizer *tok_arg(Interp *I, Value v, const char *fn) {
    if (v.kind != V_NATIVE || ((Native *)v.o)->cls != &tok_class)
        rt_error(I, "%s: expected a tokenizer (char_tokenizer, bpe_tokenizer), got %s", fn,
                 rt_type_name(v));
    return ((Native *)v.o)->data;
}

static const Str *str_arg(Interp *I, Value v, const char *fn, const char *arg) {
    if (v.kind != V_STR) rt_error(I, "%s: %s must be a string, got %s", fn, arg, rt_type_name(v));
    return (const Str *)v.o;
}

/* ---- char ---- */

/* A character's bytes (1..4) packed left-aligned: unsigned comparison of
 * keys is byte order, and distinct characters get distinct keys
 * (continuation bytes are never 0). */
static uint32_t char_key(const char *s, size_t n) {
    uint32_t k = 0;
    for (size_t i = 0; i < 4; i++) k = (k << 8) | (i < n ? (unsigned char)s[i] : 0);
    return k;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Builds a char tokenizer whose tokens are the given sorted, distinct keys. */
static Tokenizer *char_from_keys(const uint32_t *keys, int n) {
    Tokenizer *t = tt_xcalloc(1, sizeof *t);
    t->kind = TOK_CHAR;
    t->n = n;
    t->off = tt_xcalloc((size_t)(n ? n : 1), sizeof *t->off);
    t->len = tt_xcalloc((size_t)(n ? n : 1), sizeof *t->len);
    t->pool = tt_xmalloc((size_t)n * 4 + 1);
    size_t p = 0;
    for (int i = 0; i < n; i++) {
        t->off[i] = p;
        int l = 0;
        for (int b = 3; b >= 0; b--) {
            unsigned char c = (unsigned char)(keys[i] >> (8 * b));
            if (c == 0 && l > 0) break;
            t->pool[p++] = (char)c;
            l++;
        }
        t->len[i] = l;
    }
    return t;
}

static Tokenizer *char_train(const char *s, size_t n) {
    size_t cap = 64, cnt = 0;
    uint32_t *keys = tt_xmalloc(cap * sizeof *keys);
    for (size_t i = 0; i < n;) {
        size_t l = utf8_step(s + i, n - i);
        if (cnt == cap) keys = tt_xrealloc(keys, (cap *= 2) * sizeof *keys);
        keys[cnt++] = char_key(s + i, l);
        i += l;
        /* keep the working set small on long texts: dedupe now and then */
        if (cnt == cap && cap >= 4096) {
            qsort(keys, cnt, sizeof *keys, cmp_u32);
            size_t u = 0;
            for (size_t j = 0; j < cnt; j++)
                if (u == 0 || keys[u - 1] != keys[j]) keys[u++] = keys[j];
            cnt = u;
        }
    }
    qsort(keys, cnt, sizeof *keys, cmp_u32);
    size_t u = 0;
    for (size_t j = 0; j < cnt; j++)
        if (u == 0 || keys[u - 1] != keys[j]) keys[u++] = keys[j];
    Tokenizer *t = char_from_keys(keys, (int)u);
    free(keys);
    return t;
}

/* The id of the character key k, or -1. The char pool holds the keys' bytes;
 * the keys are recomputed from it (cheap, and keeps one representation). */
static int char_find(const Tokenizer *t, uint32_t k) {
    int lo = 0, hi = t->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        uint32_t m = char_key(t->pool + t->off[mid], (size_t)t->len[mid]);
        if (m == k) return mid;
        if (m < k)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* ---- bpe ---- */

/* Fills off/len/pool from the merges (ids 0..255 are the bytes). */
static void bpe_build(Tokenizer *t) {
    t->n = 256 + t->nmerges;
    t->off = tt_xcalloc((size_t)t->n, sizeof *t->off);
    t->len = tt_xcalloc((size_t)t->n, sizeof *t->len);
    size_t total = 256;
    for (int i = 0; i < 256; i++) t->len[i] = 1;
    for (int i = 0; i < t->nmerges; i++) {
        t->len[256 + i] = t->len[t->merges[2 * i]] + t->len[t->merges[2 * i + 1]];
        total += (size_t)t->len[256 + i];
    }
    t->pool = tt_xmalloc(total);
    size_t p = 0;
    for (int i = 0; i < 256; i++) {
        t->off[i] = p;
        t->pool[p++] = (char)i;
    }
    for (int i = 0; i < t->nmerges; i++) {
        int a = t->merges[2 * i], b = t->merges[2 * i + 1], id = 256 + i;
        t->off[id] = p;
        memcpy(t->pool + p, t->pool + t->off[a], (size_t)t->len[a]);
        memcpy(t->pool + p + t->len[a], t->pool + t->off[b], (size_t)t->len[b]);
        p += (size_t)t->len[id];
    }
}

/* Replaces every non-overlapping occurrence (left to right) of (a, b) in
 * seq[0..n) by id; returns the new length. */
static size_t merge_pass(int32_t *seq, size_t n, int32_t a, int32_t b, int32_t id) {
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        if (i + 1 < n && seq[i] == a && seq[i + 1] == b) {
            seq[w++] = id;
            i += 2;
        } else {
            seq[w++] = seq[i++];
        }
    }
    return w;
}

/* Pair counts: an open-addressing table keyed by (a << 32 | b). */
typedef struct PairTab {
    uint64_t *key; /* UINT64_MAX: empty */
    int64_t *cnt;
    size_t cap;
} PairTab;

static size_t pair_hash(uint64_t k, size_t cap) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k & (cap - 1);
}

static void pairs_count(PairTab *pt, const int32_t *seq, size_t n) {
    size_t need = 16;
    while (need < 2 * n) need *= 2;
    if (need > pt->cap) {
        free(pt->key);
        free(pt->cnt);
        pt->cap = need;
        pt->key = tt_xmalloc(need * sizeof *pt->key);
        pt->cnt = tt_xmalloc(need * sizeof *pt->cnt);
    }
    memset(pt->key, 0xff, pt->cap * sizeof *pt->key);
    for (size_t i = 0; i + 1 < n; i++) {
        uint64_t k = (uint64_t)(uint32_t)seq[i] << 32 | (uint32_t)seq[i + 1];
        size_t h = pair_hash(k, pt->cap);
        while (pt->key[h] != k && pt->key[h] != UINT64_MAX) h = (h + 1) & (pt->cap - 1);
        if (pt->key[h] == UINT64_MAX) {
            pt->key[h] = k;
            pt->cnt[h] = 0;
        }
        pt->cnt[h]++;
    }
}

static Tokenizer *bpe_train(const char *s, size_t n, int vocab) {
    Tokenizer *t = tt_xcalloc(1, sizeof *t);
    t->kind = TOK_BPE;
    int want = vocab - 256;
    t->merges = tt_xmalloc((size_t)(want > 0 ? want : 1) * 2 * sizeof *t->merges);
    int32_t *seq = tt_xmalloc((n ? n : 1) * sizeof *seq);
    for (size_t i = 0; i < n; i++) seq[i] = (unsigned char)s[i];
    PairTab pt = {0};
    while (t->nmerges < want && n >= 2) {
        pairs_count(&pt, seq, n);
        uint64_t best = UINT64_MAX;
        int64_t bc = 0;
        for (size_t h = 0; h < pt.cap; h++)
            if (pt.key[h] != UINT64_MAX &&
                (pt.cnt[h] > bc || (pt.cnt[h] == bc && pt.key[h] < best))) {
                best = pt.key[h];
                bc = pt.cnt[h];
            }
        if (bc < 2) break;
        int32_t a = (int32_t)(best >> 32), b = (int32_t)(best & 0xffffffffu);
        int32_t id = 256 + t->nmerges;
        t->merges[2 * t->nmerges] = a;
        t->merges[2 * t->nmerges + 1] = b;
        t->nmerges++;
        n = merge_pass(seq, n, a, b, id);
    }
    free(pt.key);
    free(pt.cnt);
    free(seq);
    bpe_build(t);
    return t;
}

/* ---- builtins ---- */

/* char_tokenizer(text) */
BUILTIN(bi_char_tokenizer) {
    static const char *const names[] = {"text", NULL};
    Value a[1];
    BIND("char_tokenizer", names, 1, a);
    const Str *s = str_arg(I, a[0], "char_tokenizer", "text");
    return rt_native(I, &tok_class, char_train(s->s, s->len));
}

/* bpe_tokenizer(text, vocab=512) */
BUILTIN(bi_bpe_tokenizer) {
    static const char *const names[] = {"text", "vocab", NULL};
    Value a[2];
    BIND("bpe_tokenizer", names, 1, a);
    const Str *s = str_arg(I, a[0], "bpe_tokenizer", "text");
    int64_t vocab = lib_int(I, a[1], 512, "bpe_tokenizer", "vocab");
    if (vocab < 256 || vocab > (1 << 24))
        rt_error(I, "bpe_tokenizer: vocab must be between 256 and %d, got %lld", 1 << 24,
                 (long long)vocab);
    return rt_native(I, &tok_class, bpe_train(s->s, s->len, (int)vocab));
}

/* encode(tok, s) -> i32[n] */
BUILTIN(bi_encode) {
    static const char *const names[] = {"tok", "s", NULL};
    Value a[2];
    BIND("encode", names, 2, a);
    Tokenizer *t = tok_arg(I, a[0], "encode");
    const Str *s = str_arg(I, a[1], "encode", "s");
    int32_t *ids = tt_xmalloc((s->len ? s->len : 1) * sizeof *ids);
    size_t n = 0;
    if (t->kind == TOK_CHAR) {
        for (size_t i = 0; i < s->len;) {
            size_t l = utf8_step(s->s + i, s->len - i);
            int id = char_find(t, char_key(s->s + i, l));
            if (id < 0) {
                char ch[8];
                memcpy(ch, s->s + i, l);
                ch[l] = 0;
                uint32_t cp = 0; /* U+ for the message; raw byte when not UTF-8 */
                unsigned char c0 = (unsigned char)ch[0];
                if (l == 1)
                    cp = c0;
                else
                    cp = c0 & (0x7f >> l);
                for (size_t j = 1; j < l; j++) cp = cp << 6 | ((unsigned char)ch[j] & 0x3f);
                free(ids);
                const char *shown = ch[0] == '\n' ? "\\n" : ch[0] == '\t' ? "\\t" : ch;
                rt_error(I,
                         "encode: character '%s' (U+%04X) at index %zu is not in the "
                         "tokenizer's vocabulary",
                         shown, (unsigned)cp, utf8_count(s->s, i));
            }
            ids[n++] = id;
            i += l;
        }
    } else {
        for (size_t i = 0; i < s->len; i++) ids[i] = (unsigned char)s->s[i];
        n = s->len;
        for (int m = 0; m < t->nmerges && n >= 2; m++)
            n = merge_pass(ids, n, t->merges[2 * m], t->merges[2 * m + 1], 256 + m);
    }
    Tensor *out = rt_tensor_uninit(I, TY_I32, shape_make(1, (int64_t[]){(int64_t)n}));
    if (n) memcpy(rt_data(I, out), ids, n * sizeof *ids);
    free(ids);
    return vtensor(out);
}

/* The ids of decode's argument: an int tensor (any shape, read in order)
 * or a list/tuple of ints. Returns a malloc'd array. */
static int64_t *ids_arg(Interp *I, Value v, size_t *n) {
    if (is_tensor(v)) {
        Tensor *t = as_tensor(v);
        if (t->dtype == TY_F32)
            rt_error(I, "decode: ids must be an int tensor or a list of ints, got an f32 tensor");
        size_t k = (size_t)shape_numel(&t->shape);
        const void *d = rt_data(I, t);
        int64_t *ids = tt_xmalloc((k ? k : 1) * sizeof *ids);
        for (size_t i = 0; i < k; i++)
            ids[i] = t->dtype == TY_I32 ? ((const int32_t *)d)[i] : ((const int8_t *)d)[i];
        *n = k;
        return ids;
    }
    if (!is_seq(v))
        rt_error(I, "decode: ids must be an int tensor or a list of ints, got %s", rt_type_name(v));
    List *l = as_list(v);
    for (int i = 0; i < l->len; i++)
        if (l->items[i].kind != V_INT)
            rt_error(I, "decode: ids[%d] must be an int, got %s", i, rt_type_name(l->items[i]));
    int64_t *ids = tt_xmalloc((size_t)(l->len ? l->len : 1) * sizeof *ids);
    for (int i = 0; i < l->len; i++) ids[i] = l->items[i].i;
    *n = (size_t)l->len;
    return ids;
}

/* decode(tok, ids) -> string */
BUILTIN(bi_decode) {
    static const char *const names[] = {"tok", "ids", NULL};
    Value a[2];
    BIND("decode", names, 2, a);
    Tokenizer *t = tok_arg(I, a[0], "decode");
    size_t n;
    int64_t *ids = ids_arg(I, a[1], &n);
    StrBuf b = {0};
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n) {
            int64_t bad = ids[i];
            free(ids);
            sb_free(&b);
            rt_error(I, "decode: id %lld at index %zu is out of range for a vocabulary of %d",
                     (long long)bad, i, t->n);
        }
        for (int j = 0; j < t->len[ids[i]]; j++) sb_putc(&b, t->pool[t->off[ids[i]] + (size_t)j]);
    }
    free(ids);
    Value r = rt_str(I, b.s ? b.s : "", b.len);
    sb_free(&b);
    return r;
}

/* ---- the file format (spec/builtins.md) ----
 *   tt-tokenizer 1 char N        tt-tokenizer 1 bpe M
 *   <hex bytes of token 0>       <a> <b>            (merge 0 -> id 256)
 *   ...  (N lines)               ...  (M lines)
 */

/* save_tokenizer(tok, path) */
BUILTIN(bi_save_tokenizer) {
    static const char *const names[] = {"tok", "path", NULL};
    Value a[2];
    BIND("save_tokenizer", names, 2, a);
    Tokenizer *t = tok_arg(I, a[0], "save_tokenizer");
    const char *path = lib_path(I, a[1], "save_tokenizer", "path");
    StrBuf b = {0};
    if (t->kind == TOK_CHAR) {
        sb_printf(&b, "tt-tokenizer 1 char %d\n", t->n);
        for (int i = 0; i < t->n; i++) {
            for (int j = 0; j < t->len[i]; j++)
                sb_printf(&b, "%02x", (unsigned char)t->pool[t->off[i] + (size_t)j]);
            sb_printf(&b, "\n");
        }
    } else {
        sb_printf(&b, "tt-tokenizer 1 bpe %d\n", t->nmerges);
        for (int i = 0; i < t->nmerges; i++)
            sb_printf(&b, "%d %d\n", (int)t->merges[2 * i], (int)t->merges[2 * i + 1]);
    }
    char err[ERRLEN];
    IoChunk c = {b.s, b.len};
    bool ok = io_write_atomic(path, &c, 1, err, sizeof err);
    sb_free(&b);
    if (!ok) rt_error(I, "%s", err);
    return VNONE;
}

/* Parsing: one line at a time; on failure *err gets "line L: problem". */
typedef struct Lines {
    const char *s, *end;
    int line;
} Lines;

static bool next_line(Lines *L, const char **start, size_t *len) {
    if (L->s >= L->end) return false;
    const char *nl = memchr(L->s, '\n', (size_t)(L->end - L->s));
    if (!nl) return false; /* every line ends with a newline */
    *start = L->s;
    *len = (size_t)(nl - L->s);
    L->s = nl + 1;
    L->line++;
    return true;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A decimal int in [0, max] spanning exactly s[0..n). */
static bool parse_int(const char *s, size_t n, long max, long *out) {
    if (n == 0 || n > 9) return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max) return false;
    *out = v;
    return true;
}

static Tokenizer *parse_tokenizer(const char *data, size_t len, char *err, size_t errlen) {
    Lines L = {data, data + len, 0};
    const char *s;
    size_t n;
    char kind[8];
    int count = -1, used = 0;
    if (!next_line(&L, &s, &n) || n > 64 || memchr(s, 0, n)) {
        snprintf(err, errlen, "not a tt tokenizer file (missing header line)");
        return NULL;
    }
    char head[72];
    memcpy(head, s, n);
    head[n] = 0;
    if (sscanf(head, "tt-tokenizer 1 %7s %d%n", kind, &count, &used) != 2 || used != (int)n ||
        count < 0 || (strcmp(kind, "char") != 0 && strcmp(kind, "bpe") != 0)) {
        snprintf(err, errlen,
                 "not a tt tokenizer file (line 1 must be 'tt-tokenizer 1 char N' or "
                 "'tt-tokenizer 1 bpe M')");
        return NULL;
    }
    if (count > (1 << 24)) {
        snprintf(err, errlen, "line 1: count %d is too large", count);
        return NULL;
    }
    if (strcmp(kind, "char") == 0) {
        uint32_t *keys = tt_xmalloc((size_t)(count ? count : 1) * sizeof *keys);
        for (int i = 0; i < count; i++) {
            if (!next_line(&L, &s, &n)) {
                snprintf(err, errlen, "truncated: %d of %d characters", i, count);
                free(keys);
                return NULL;
            }
            bool good = n >= 2 && n <= 8 && n % 2 == 0;
            char bytes[4];
            for (size_t j = 0; good && j < n / 2; j++) {
                int h = hexval(s[2 * j]), l = hexval(s[2 * j + 1]);
                good = h >= 0 && l >= 0;
                bytes[j] = (char)(h * 16 + l);
            }
            /* one character: exactly what utf8_step takes as one */
            good = good && utf8_step(bytes, n / 2) == n / 2;
            if (good) keys[i] = char_key(bytes, n / 2);
            if (good && i > 0 && keys[i] <= keys[i - 1]) {
                snprintf(err, errlen, "line %d: characters not sorted or repeated", L.line);
                free(keys);
                return NULL;
            }
            if (!good) {
                snprintf(err, errlen, "line %d: expected the hex bytes of one character", L.line);
                free(keys);
                return NULL;
            }
        }
        Tokenizer *t = NULL;
        if (L.s != L.end)
            snprintf(err, errlen, "line %d: unexpected data after %d characters", L.line + 1,
                     count);
        else
            t = char_from_keys(keys, count);
        free(keys);
        return t;
    }
    Tokenizer *t = tt_xcalloc(1, sizeof *t);
    t->kind = TOK_BPE;
    t->merges = tt_xmalloc((size_t)(count ? count : 1) * 2 * sizeof *t->merges);
    for (int i = 0; i < count; i++) {
        if (!next_line(&L, &s, &n)) {
            snprintf(err, errlen, "truncated: %d of %d merges", i, count);
            tok_free_data(t);
            return NULL;
        }
        const char *sp = memchr(s, ' ', n);
        long x, y;
        if (!sp || !parse_int(s, (size_t)(sp - s), 255 + i, &x) ||
            !parse_int(sp + 1, n - (size_t)(sp + 1 - s), 255 + i, &y)) {
            snprintf(err, errlen, "line %d: expected two ids below %d", L.line, 256 + i);
            tok_free_data(t);
            return NULL;
        }
        t->merges[2 * i] = (int32_t)x;
        t->merges[2 * i + 1] = (int32_t)y;
        t->nmerges++;
    }
    if (L.s != L.end) {
        snprintf(err, errlen, "line %d: unexpected data after %d merges", L.line + 1, count);
        tok_free_data(t);
        return NULL;
    }
    bpe_build(t);
    return t;
}

/* load_tokenizer(path) */
BUILTIN(bi_load_tokenizer) {
    static const char *const names[] = {"path", NULL};
    Value a[1];
    BIND("load_tokenizer", names, 1, a);
    const char *path = lib_path(I, a[0], "load_tokenizer", "path");
    char err[ERRLEN], perr[ERRLEN];
    size_t len;
    char *data = tt_read_data_file(path, &len, err, sizeof err);
    if (!data) rt_error(I, "%s", err);
    Tokenizer *t = parse_tokenizer(data, len, perr, sizeof perr);
    free(data);
    if (!t) rt_error(I, "%s: %s", path, perr);
    return rt_native(I, &tok_class, t);
}

void lib_register_text(Interp *I) {
    static const struct {
        const char *name;
        BuiltinFn fn;
    } table[] = {
        {"char_tokenizer", bi_char_tokenizer},
        {"bpe_tokenizer", bi_bpe_tokenizer},
        {"encode", bi_encode},
        {"decode", bi_decode},
        {"save_tokenizer", bi_save_tokenizer},
        {"load_tokenizer", bi_load_tokenizer},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        rt_define_global(I, table[i].name, rt_builtin(I, table[i].name, table[i].fn, VNONE));
}
