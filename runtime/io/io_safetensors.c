/* io_safetensors.c - safetensors weights files.
 *
 *   N       u64 little-endian: the header's length in bytes
 *   header  N bytes of JSON, padded with spaces:
 *           {"fc1.w": {"dtype": "F32", "shape": [784, 128], "data_offsets": [0, 401408]},
 *            ..., "__metadata__": {"key": "value"}}
 *   data    the tensors' bytes; data_offsets are [begin, end) relative to here
 *
 * Load validates everything before copying anything and returns the tensors
 * in file order (sorted by their data offsets; ties keep header order).
 * Save writes the tensors in the order given, the header keys in that order,
 * the data contiguous, and the header padded with spaces to a multiple of 8
 * bytes, as the Python library does. */
#include "io_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const st_dtype_names[TY__COUNT] = {
    [TY_F32] = "F32", [TY_I32] = "I32", [TY_I8] = "I8"};

/* One header entry, validated. */
typedef struct StEntry {
    const char *name; /* owned by the JSON tree */
    DType dtype;
    Shape shape;
    int64_t begin, end;
    int order; /* position in the header */
} StEntry;

static int entry_cmp(const void *a, const void *b) {
    const StEntry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->order - y->order;
}

static bool get_nonneg_int(json_t *v, int64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

/* Validates one "name": {...} entry against a data section of datalen bytes. */
static bool check_entry(const char *what, const char *name, json_t *v, size_t datalen, StEntry *e,
                        char *err, size_t errlen) {
    char sh[160];
    e->name = name;
    if (!json_is_object(v))
        return io_fail(err, errlen, what, "tensor '%s': entry is not an object", name);

    json_t *dt = json_object_get(v, "dtype");
    if (!dt) return io_fail(err, errlen, what, "tensor '%s': missing 'dtype'", name);
    if (!json_is_string(dt))
        return io_fail(err, errlen, what, "tensor '%s': 'dtype' is not a string", name);
    const char *ds = json_string_value(dt);
    int t = 0;
    while (t < TY__COUNT && strcmp(ds, st_dtype_names[t]) != 0) t++;
    if (t == TY__COUNT)
        return io_fail(err, errlen, what,
                       "tensor '%s': dtype %.32s is not supported (F32, I32, I8)", name, ds);
    e->dtype = (DType)t;

    json_t *shape = json_object_get(v, "shape");
    if (!shape) return io_fail(err, errlen, what, "tensor '%s': missing 'shape'", name);
    if (!json_is_array(shape))
        return io_fail(err, errlen, what, "tensor '%s': 'shape' is not a list", name);
    size_t nd = json_array_size(shape);
    if (nd > IR_MAXDIM)
        return io_fail(err, errlen, what,
                       "tensor '%s': shape has %zu dimensions (at most %d are supported)", name, nd,
                       IR_MAXDIM);
    e->shape.ndim = (int)nd;
    for (size_t i = 0; i < nd; i++)
        if (!get_nonneg_int(json_array_get(shape, i), &e->shape.d[i]))
            return io_fail(err, errlen, what,
                           "tensor '%s': shape entry %zu is not a non-negative integer", name,
                           i + 1);
    int64_t bytes;
    if (!io_shape_bytes(&e->shape, e->dtype, NULL, &bytes))
        return io_fail(err, errlen, what, "tensor '%s': shape %s is too large", name,
                       io_shape_str(&e->shape, sh, sizeof sh));

    json_t *off = json_object_get(v, "data_offsets");
    if (!off) return io_fail(err, errlen, what, "tensor '%s': missing 'data_offsets'", name);
    if (!json_is_array(off) || json_array_size(off) != 2 ||
        !get_nonneg_int(json_array_get(off, 0), &e->begin) ||
        !get_nonneg_int(json_array_get(off, 1), &e->end))
        return io_fail(err, errlen, what,
                       "tensor '%s': 'data_offsets' is not a list of two non-negative integers",
                       name);
    if (e->end < e->begin)
        return io_fail(err, errlen, what,
                       "tensor '%s': data_offsets [%lld, %lld] end before they begin", name,
                       (long long)e->begin, (long long)e->end);
    if (e->end - e->begin != bytes)
        return io_fail(err, errlen, what,
                       "tensor '%s': shape %s needs %lld bytes, data_offsets give %lld", name,
                       io_shape_str(&e->shape, sh, sizeof sh), (long long)bytes,
                       (long long)(e->end - e->begin));
    if ((uint64_t)e->end > datalen)
        return io_fail(err, errlen, what,
                       "truncated: header says %lld bytes of data for '%s' but the file has %zu",
                       (long long)e->end, name, datalen);
    return true;
}

bool io_parse_safetensors(const char *what, const unsigned char *data, size_t len, IoNamed **out,
                          int *n, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    if (len < 8)
        return io_fail(err, errlen, what,
                       "truncated: %zu bytes, too short for the 8-byte header length", len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | data[i];
    if (hlen > len - 8)
        return io_fail(err, errlen, what,
                       "truncated or corrupt: header length is %llu bytes but only %zu follow",
                       (unsigned long long)hlen, len - 8);
    size_t datalen = len - 8 - (size_t)hlen;
    const unsigned char *base = data + 8 + hlen;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)data + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_duplicate_key)
            return io_fail(err, errlen, what, "header names a tensor twice (line %d, column %d)",
                           jerr.line, jerr.column);
        return io_fail(err, errlen, what, "header is not valid JSON (line %d, column %d): %s",
                       jerr.line, jerr.column, jerr.text);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return io_fail(err, errlen, what, "header is not a JSON object");
    }

    size_t cap = json_object_size(root);
    StEntry *es = tt_xmalloc((cap ? cap : 1) * sizeof *es);
    int ne = 0;
    bool ok = false;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(v)) {
                io_fail(err, errlen, what, "'__metadata__' is not an object");
                goto done;
            }
            continue;
        }
        StEntry *e = &es[ne];
        memset(e, 0, sizeof *e);
        e->order = ne;
        if (!check_entry(what, key, v, datalen, e, err, errlen)) goto done;
        ne++;
    }

    qsort(es, (size_t)ne, sizeof *es, entry_cmp);
    const StEntry *last = NULL; /* the non-empty tensor ending furthest */
    for (int i = 0; i < ne; i++) {
        if (es[i].begin == es[i].end) continue;
        if (last && es[i].begin < last->end) {
            io_fail(err, errlen, what,
                    "tensors '%s' and '%s' overlap: data_offsets [%lld, %lld] and [%lld, %lld]",
                    last->name, es[i].name, (long long)last->begin, (long long)last->end,
                    (long long)es[i].begin, (long long)es[i].end);
            goto done;
        }
        if (!last || es[i].end > last->end) last = &es[i];
    }

    IoNamed *ts = tt_xmalloc((ne ? (size_t)ne : 1) * sizeof *ts);
    for (int i = 0; i < ne; i++) {
        size_t bytes = (size_t)(es[i].end - es[i].begin);
        ts[i].name = tt_xstrdup(es[i].name);
        ts[i].t.dtype = es[i].dtype;
        ts[i].t.shape = es[i].shape;
        ts[i].t.data = tt_xmalloc(bytes);
        if (bytes) memcpy(ts[i].t.data, base + es[i].begin, bytes);
    }
    *out = ts;
    *n = ne;
    ok = true;
done:
    free(es);
    json_decref(root);
    return ok;
}

bool io_load_safetensors(const char *path, IoNamed **out, int *n, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    size_t len;
    char *buf = tt_read_data_file(path, &len, err, errlen);
    if (!buf) return false;
    bool ok = io_parse_safetensors(path, (const unsigned char *)buf, len, out, n, err, errlen);
    free(buf);
    return ok;
}

bool io_save_safetensors(const char *path, const IoNamed *ts, int n, char *err, size_t errlen) {
    TT_ASSERT(n >= 0);
    json_t *root = json_object();
    IoChunk *chunks = tt_xmalloc(((size_t)n + 2) * sizeof *chunks);
    char *text = NULL;
    bool ok = false;
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        const IoTensor *t = &ts[i].t;
        TT_ASSERT(ts[i].name && t->dtype >= 0 && t->dtype < TY__COUNT);
        TT_ASSERT(t->shape.ndim >= 0 && t->shape.ndim <= IR_MAXDIM);
        int64_t bytes;
        if (!io_shape_bytes(&t->shape, t->dtype, NULL, &bytes) ||
            __builtin_add_overflow(off, bytes, &off)) {
            io_fail(err, errlen, path, "tensor '%s' is too large", ts[i].name);
            goto done;
        }
        if (strcmp(ts[i].name, "__metadata__") == 0) {
            io_fail(err, errlen, path, "'__metadata__' cannot name a tensor");
            goto done;
        }
        if (json_object_get(root, ts[i].name)) {
            io_fail(err, errlen, path, "two tensors are named '%s'", ts[i].name);
            goto done;
        }
        json_t *shape = json_array();
        for (int d = 0; d < t->shape.ndim; d++)
            json_array_append_new(shape, json_integer(t->shape.d[d]));
        json_t *e = json_pack("{s:s, s:o, s:[I, I]}", "dtype", st_dtype_names[t->dtype], "shape",
                              shape, "data_offsets", (json_int_t)(off - bytes), (json_int_t)off);
        if (!e || json_object_set_new(root, ts[i].name, e) != 0) {
            io_fail(err, errlen, path, "tensor name '%s' is not valid UTF-8", ts[i].name);
            goto done;
        }
        TT_ASSERT(t->data || bytes == 0);
        chunks[i + 2] = (IoChunk){t->data, (size_t)bytes};
    }
    char *json = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    TT_ASSERT(json);
    size_t tlen = strlen(json), hlen = (tlen + 7) / 8 * 8;
    text = tt_xmalloc(hlen);
    memcpy(text, json, tlen);
    memset(text + tlen, ' ', hlen - tlen);
    free(json);
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    chunks[0] = (IoChunk){lenbuf, 8};
    chunks[1] = (IoChunk){text, hlen};
    ok = io_write_atomic(path, chunks, n + 2, err, errlen);
done:
    free(text);
    free(chunks);
    json_decref(root);
    return ok;
}
