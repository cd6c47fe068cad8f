/* io_npy.c - NumPy .npy files (format versions 1.0, 2.0 and 3.0).
 *
 *   "\x93NUMPY" major minor   magic and version
 *   header length             u16 LE (1.0) or u32 LE (2.0, 3.0)
 *   header                    a Python dict literal, padded with spaces and "\n":
 *                             {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 *   data                      C-order array
 *
 * Loads <f4 (f32), <i4 (i32), |i1 (i8), <f8 (as f32), <i8 (as i32, each value
 * range-checked). Saves version 1.0 exactly as numpy.save writes it. */
#include "io_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char NPY_MAGIC[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* -- the header dict: a tiny parser for the Python literals numpy writes -- */

typedef struct HdrParser {
    const char *p, *e;
} HdrParser;

static void skip_ws(HdrParser *h) {
    while (h->p < h->e && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r')) h->p++;
}

static bool accept(HdrParser *h, char c) {
    skip_ws(h);
    if (h->p < h->e && *h->p == c) {
        h->p++;
        return true;
    }
    return false;
}

/* A quoted string ('...' or "...", no escapes) into buf. */
static bool parse_str(HdrParser *h, char *buf, size_t len) {
    skip_ws(h);
    if (h->p >= h->e || (*h->p != '\'' && *h->p != '"')) return false;
    char q = *h->p++;
    const char *s = h->p;
    while (h->p < h->e && *h->p != q && *h->p != '\\') h->p++;
    if (h->p >= h->e || *h->p != q) return false;
    size_t n = (size_t)(h->p - s);
    h->p++;
    if (n + 1 > len) return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    return true;
}

static bool parse_word(HdrParser *h, const char *w) {
    skip_ws(h);
    size_t n = strlen(w);
    if ((size_t)(h->e - h->p) < n || memcmp(h->p, w, n) != 0) return false;
    h->p += n;
    return true;
}

/* A non-negative integer (Python 2 files may add an 'L'). */
static bool parse_dim(HdrParser *h, int64_t *v) {
    skip_ws(h);
    if (h->p >= h->e || *h->p < '0' || *h->p > '9') return false;
    int64_t n = 0;
    while (h->p < h->e && *h->p >= '0' && *h->p <= '9') {
        if (!io_mul(n, 10, &n) || __builtin_add_overflow(n, *h->p - '0', &n)) return false;
        h->p++;
    }
    if (h->p < h->e && *h->p == 'L') h->p++;
    *v = n;
    return true;
}

typedef struct NpyHeader {
    char descr[16];
    bool fortran;
    Shape shape;
} NpyHeader;

/* Parses the dict; on failure writes what is wrong into msg. */
static bool parse_header(const char *s, size_t len, NpyHeader *out, char *msg, size_t msglen) {
    HdrParser h = {s, s + len};
    bool have_descr = false, have_fortran = false, have_shape = false;
    if (!accept(&h, '{')) {
        snprintf(msg, msglen, "header is not a Python dict");
        return false;
    }
    while (!accept(&h, '}')) {
        char key[32];
        if (!parse_str(&h, key, sizeof key) || !accept(&h, ':')) {
            snprintf(msg, msglen, "malformed header dict at byte %d", (int)(h.p - s));
            return false;
        }
        if (strcmp(key, "descr") == 0) {
            if (!parse_str(&h, out->descr, sizeof out->descr)) {
                snprintf(msg, msglen, "'descr' is not a supported dtype string");
                return false;
            }
            have_descr = true;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (parse_word(&h, "True"))
                out->fortran = true;
            else if (parse_word(&h, "False"))
                out->fortran = false;
            else {
                snprintf(msg, msglen, "'fortran_order' is not True or False");
                return false;
            }
            have_fortran = true;
        } else if (strcmp(key, "shape") == 0) {
            if (!accept(&h, '(')) {
                snprintf(msg, msglen, "'shape' is not a tuple");
                return false;
            }
            out->shape.ndim = 0;
            while (!accept(&h, ')')) {
                int64_t d;
                if (!parse_dim(&h, &d)) {
                    snprintf(msg, msglen, "'shape' entry %d is not a non-negative integer",
                             out->shape.ndim + 1);
                    return false;
                }
                if (out->shape.ndim == IR_MAXDIM) {
                    snprintf(msg, msglen, "'shape' has more than %d dimensions", IR_MAXDIM);
                    return false;
                }
                out->shape.d[out->shape.ndim++] = d;
                if (!accept(&h, ',')) {
                    if (!accept(&h, ')')) {
                        snprintf(msg, msglen, "'shape' is not a tuple of integers");
                        return false;
                    }
                    break;
                }
            }
            have_shape = true;
        } else {
            snprintf(msg, msglen, "unexpected key '%s' in the header", key);
            return false;
        }
        if (!accept(&h, ',')) {
            if (!accept(&h, '}')) {
                snprintf(msg, msglen, "malformed header dict at byte %d", (int)(h.p - s));
                return false;
            }
            break;
        }
    }
    skip_ws(&h);
    if (h.p != h.e) {
        snprintf(msg, msglen, "unexpected text after the header dict");
        return false;
    }
    if (!have_descr || !have_fortran || !have_shape) {
        snprintf(msg, msglen, "header lacks '%s'",
                 !have_descr     ? "descr"
                 : !have_fortran ? "fortran_order"
                                 : "shape");
        return false;
    }
    return true;
}

/* The dtypes read: '=' is native order, little-endian on every target tt runs on. */
typedef struct NpyType {
    const char *descr;
    int size;    /* bytes per element in the file */
    DType dtype; /* what it loads as */
} NpyType;

static const NpyType npy_types[] = {
    {"<f4", 4, TY_F32}, {"=f4", 4, TY_F32}, {"<i4", 4, TY_I32}, {"=i4", 4, TY_I32},
    {"|i1", 1, TY_I8},  {"<i1", 1, TY_I8},  {"=i1", 1, TY_I8},  {"<f8", 8, TY_F32},
    {"=f8", 8, TY_F32}, {"<i8", 8, TY_I32}, {"=i8", 8, TY_I32},
};

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p) {
    return le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* A validated preamble and header. */
typedef struct NpyHead {
    NpyHeader h;
    const NpyType *ty;
    size_t off;          /* where the data starts */
    int64_t numel, need; /* elements, bytes of data in the file */
} NpyHead;

/* For the header parsers: the input may hold more, and n bytes are needed. */
static int need_more(size_t *want, size_t n) {
    *want = n;
    return -1;
}

/* The preamble and header at the start of b[0, len). 1: complete and valid;
 * 0: invalid (message in err); -1: b is too short to tell and the input may
 * have more (eof false): *want bytes are needed. */
static int npy_head(const char *what, const unsigned char *b, size_t len, bool eof, NpyHead *nh,
                    size_t *want, char *err, size_t errlen) {
    char msg[128], sh[160];
    if (len < 10 && !eof) return need_more(want, 10);
    if (len < 10 || memcmp(b, NPY_MAGIC, 6) != 0) {
        io_fail(err, errlen, what, "not a NumPy file (bad magic)");
        return 0;
    }
    int major = b[6], minor = b[7];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) {
            if (!eof) return need_more(want, 12);
            io_fail(err, errlen, what, "truncated: the file ends in its header");
            return 0;
        }
        hlen = le32(b + 8);
        hstart = 12;
    } else {
        io_fail(err, errlen, what, "NumPy format version %d.%d is not supported (1.0, 2.0, 3.0)",
                major, minor);
        return 0;
    }
    if (hlen > len - hstart) {
        if (!eof) return need_more(want, hstart + hlen);
        io_fail(err, errlen, what,
                "truncated: header length is %zu bytes, the file has %zu after it", hlen,
                len - hstart);
        return 0;
    }
    NpyHeader *h = &nh->h;
    memset(h, 0, sizeof *h);
    if (!parse_header((const char *)b + hstart, hlen, h, msg, sizeof msg)) {
        io_fail(err, errlen, what, "%s", msg);
        return 0;
    }
    if (h->fortran) {
        io_fail(err, errlen, what, "Fortran order is not supported");
        return 0;
    }
    nh->ty = NULL;
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (strcmp(h->descr, npy_types[i].descr) == 0) nh->ty = &npy_types[i];
    if (!nh->ty) {
        io_fail(err, errlen, what, "dtype '%s' is not supported (<f4, <i4, |i1, <f8, <i8)",
                h->descr);
        return 0;
    }
    int64_t total;
    if (!io_shape_bytes(&h->shape, TY_I8, &nh->numel, NULL) ||
        !io_mul(nh->numel, nh->ty->size, &nh->need) ||
        __builtin_add_overflow(nh->need, (int64_t)(hstart + hlen), &total)) {
        io_fail(err, errlen, what, "shape %s is too large", io_shape_str(&h->shape, sh, sizeof sh));
        return 0;
    }
    nh->off = hstart + hlen;
    return 1;
}

/* Converts the data after a valid header; b[0, len) is the whole input, or
 * its first bytes when `more` (a compressed input longer than the header
 * says, not read to its end). */
static bool npy_data(const char *what, const NpyHead *nh, const unsigned char *b, size_t len,
                     bool more, IoTensor *out, char *err, size_t errlen) {
    char sh[160];
    const char *d = nh->h.descr;
    size_t have = len - nh->off;
    if (more)
        return io_fail(err, errlen, what,
                       "size mismatch: shape %s of '%s' needs %lld bytes of data, the file has "
                       "more",
                       io_shape_str(&nh->h.shape, sh, sizeof sh), d, (long long)nh->need);
    if ((uint64_t)nh->need != have)
        return io_fail(err, errlen, what,
                       "%s: shape %s of '%s' needs %lld bytes of data, the file has %zu",
                       (uint64_t)nh->need > have ? "truncated" : "size mismatch",
                       io_shape_str(&nh->h.shape, sh, sizeof sh), d, (long long)nh->need, have);
    int fsize = nh->ty->size;
    DType dt = nh->ty->dtype;
    const unsigned char *p = b + nh->off;
    size_t n = (size_t)nh->numel;
    void *data = tt_xmalloc(n * dtype_size(dt));
    if (fsize == 8 && dt == TY_F32) {
        float *f = data;
        for (size_t i = 0; i < n; i++) {
            uint64_t u = le64(p + 8 * i);
            double v;
            memcpy(&v, &u, 8);
            f[i] = (float)v;
        }
    } else if (fsize == 8) {
        int32_t *v = data;
        for (size_t i = 0; i < n; i++) {
            int64_t x = (int64_t)le64(p + 8 * i);
            if (x < INT32_MIN || x > INT32_MAX) {
                free(data);
                return io_fail(err, errlen, what,
                               "element %zu (%lld) of the <i8 array does not fit in i32", i,
                               (long long)x);
            }
            v[i] = (int32_t)x;
        }
    } else if (fsize == 4) {
        uint32_t *v = data;
        for (size_t i = 0; i < n; i++) v[i] = le32(p + 4 * i);
    } else {
        memcpy(data, p, n);
    }
    out->dtype = dt;
    out->shape = nh->h.shape;
    out->data = data;
    return true;
}

/* The preamble gives the header's length, the header the data's: the input
 * is read no further than that (and one byte, to notice a longer one), and
 * a shape claiming more than the input limit is refused before any data is
 * read. */
static bool read_npy(TtInput *in, IoTensor *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    const char *what = tt_input_name(in);
    StrBuf b = {0};
    NpyHead nh;
    size_t want = 10;
    int r;
    bool ok = false;
    do {
        if (!tt_input_fill(in, &b, want, err, errlen)) goto done;
        r = npy_head(what, (unsigned char *)b.s, b.len, b.len < want, &nh, &want, err, errlen);
    } while (r < 0);
    if (r == 0) goto done;
    uint64_t total = nh.off + (uint64_t)nh.need;
    if (total > tt_input_max(in)) {
        char sh[160], lim[32];
        io_fail(err, errlen, what,
                "shape %s of '%s' makes a file of %llu bytes, more than the input limit of %s "
                "(TT_MAX_INPUT_BYTES)",
                io_shape_str(&nh.h.shape, sh, sizeof sh), nh.h.descr, (unsigned long long)total,
                tt_format_bytes(tt_input_max(in), lim, sizeof lim));
        goto done;
    }
    bool known = tt_input_size_known(in);
    if (!tt_input_fill(in, &b, known ? UINT64_MAX : total + 1, err, errlen)) goto done;
    ok =
        npy_data(what, &nh, (unsigned char *)b.s, b.len, !known && b.len > total, out, err, errlen);
done:
    sb_free(&b);
    return ok;
}

bool io_load_npy(const char *path, IoTensor *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    TtInput *in = tt_input_open(path, true, err, errlen);
    if (!in) return false;
    bool ok = read_npy(in, out, err, errlen);
    tt_input_close(in);
    return ok;
}

bool io_parse_npy(const char *what, const void *data, size_t len, IoTensor *out, char *err,
                  size_t errlen) {
    memset(out, 0, sizeof *out);
    TtInput *in = tt_input_memory(what, data, len, err, errlen);
    if (!in) return false;
    bool ok = read_npy(in, out, err, errlen);
    tt_input_close(in);
    return ok;
}

bool io_save_npy(const char *path, const IoTensor *t, char *err, size_t errlen) {
    const char *descr = t->dtype == TY_F32 ? "<f4" : t->dtype == TY_I32 ? "<i4" : "|i1";
    TT_ASSERT(t->dtype < TY__COUNT && t->shape.ndim >= 0 && t->shape.ndim <= IR_MAXDIM);
    int64_t numel, bytes;
    if (!io_shape_bytes(&t->shape, t->dtype, &numel, &bytes))
        return io_fail(err, errlen, path, "tensor is too large");
    /* Exactly numpy's _write_array_header + _wrap_header for version 1.0. */
    StrBuf h = {0};
    sb_printf(&h, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < t->shape.ndim; i++)
        sb_printf(&h, "%s%lld", i ? ", " : "", (long long)t->shape.d[i]);
    sb_puts(&h, t->shape.ndim == 1 ? ",), }" : "), }");
    if (t->shape.ndim > 0) {
        /* Spare room so the first axis can grow in place (GROWTH_AXIS_MAX_DIGITS 21). */
        char dim0[24];
        int k = snprintf(dim0, sizeof dim0, "%lld", (long long)t->shape.d[0]);
        for (int i = k; i < 21; i++) sb_putc(&h, ' ');
    }
    size_t hlen = h.len + 1;
    size_t pad = 64 - (10 + hlen) % 64;
    for (size_t i = 0; i < pad; i++) sb_putc(&h, ' ');
    sb_putc(&h, '\n');
    if (h.len > 65535) {
        sb_free(&h);
        return io_fail(err, errlen, path, "header too long for NumPy format 1.0");
    }
    unsigned char pre[10];
    memcpy(pre, NPY_MAGIC, 6);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = (unsigned char)(h.len & 0xff);
    pre[9] = (unsigned char)(h.len >> 8);
    IoChunk chunks[3] = {{pre, 10}, {h.s, h.len}, {t->data, (size_t)bytes}};
    bool ok = io_write_atomic(path, chunks, 3, err, errlen);
    sb_free(&h);
    return ok;
}
