/* io_idx.c - IDX files, the MNIST format (optionally gzipped).
 *
 *   magic   0x00 0x00 TYPE NDIM
 *   dims    NDIM big-endian u32
 *   data    big-endian values of TYPE, row-major
 *
 * TYPE: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64.
 * u8 and the floats load as f32 (u8 values stay 0..255), i8/i16/i32 as i32. */
#include "io_util.h"

#include <stdlib.h>
#include <string.h>

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int idx_elem_size(int type) {
    switch (type) {
    case 0x08:
    case 0x09:
        return 1;
    case 0x0B:
        return 2;
    case 0x0C:
    case 0x0D:
        return 4;
    case 0x0E:
        return 8;
    default:
        return 0;
    }
}

typedef struct IdxHeader {
    int type;
    size_t hdr; /* bytes of the header */
    Shape s;
    int64_t numel, need; /* elements, bytes of data */
} IdxHeader;

/* For the header parsers: the input may hold more, and n bytes are needed. */
static int need_more(size_t *want, size_t n) {
    *want = n;
    return -1;
}

/* The header at the start of b[0, len). 1: complete and valid; 0: invalid
 * (message in err); -1: b is too short to tell and the input may have more
 * (eof false): *want bytes are needed. */

static int idx_header(const char *what, const unsigned char *b, size_t len, bool eof, IdxHeader *h,
                      size_t *want, char *err, size_t errlen) {
    if (len < 4) {
        if (!eof) return need_more(want, 4);
        io_fail(err, errlen, what, "not an IDX file (only %zu bytes)", len);
        return 0;
    }
    if (b[0] != 0 || b[1] != 0) {
        io_fail(err, errlen, what, "not an IDX file (magic 0x%08x)", (unsigned)be32(b));
        return 0;
    }
    int type = b[2], ndim = b[3];
    int esize = idx_elem_size(type);
    if (!esize) {
        io_fail(err, errlen, what, "unknown IDX data type 0x%02x (magic 0x%08x)", type,
                (unsigned)be32(b));
        return 0;
    }
    if (ndim < 1 || ndim > IR_MAXDIM) {
        io_fail(err, errlen, what, "IDX file has %d dimensions (1 to %d are supported)", ndim,
                IR_MAXDIM);
        return 0;
    }
    size_t hdr = 4 + 4 * (size_t)ndim;
    if (len < hdr) {
        if (!eof) return need_more(want, hdr);
        io_fail(err, errlen, what, "truncated: header needs %zu bytes, the file has %zu", hdr, len);
        return 0;
    }
    h->type = type;
    h->hdr = hdr;
    h->s = (Shape){.ndim = ndim};
    for (int i = 0; i < ndim; i++) h->s.d[i] = be32(b + 4 + 4 * i);
    int64_t numel = 1, total;
    char sh[160];
    for (int i = 0; i < ndim; i++)
        if (!io_mul(numel, h->s.d[i], &numel)) numel = -1;
    if (numel < 0 || !io_mul(numel, esize, &h->need) ||
        __builtin_add_overflow(h->need, (int64_t)hdr, &total)) {
        io_fail(err, errlen, what, "dimensions %s are too large",
                io_shape_str(&h->s, sh, sizeof sh));
        return 0;
    }
    h->numel = numel;
    return 1;
}

/* Converts the data after a valid header; b[0, len) is the whole input, or
 * its first bytes when `more` (a compressed input longer than the header
 * says, not read to its end). */
static bool idx_data(const char *what, const IdxHeader *h, const unsigned char *b, size_t len,
                     bool more, IoTensor *out, char *err, size_t errlen) {
    char sh[160];
    if (more || (uint64_t)h->need != len - h->hdr) {
        if (more)
            return io_fail(err, errlen, what,
                           "size mismatch: dimensions %s need %lld bytes of data, the file has "
                           "more",
                           io_shape_str(&h->s, sh, sizeof sh), (long long)h->need);
        return io_fail(err, errlen, what,
                       "%s: dimensions %s need %lld bytes of data, the file has %zu",
                       (uint64_t)h->need > len - h->hdr ? "truncated" : "size mismatch",
                       io_shape_str(&h->s, sh, sizeof sh), (long long)h->need, len - h->hdr);
    }
    int type = h->type;
    const unsigned char *p = b + h->hdr;
    size_t n = (size_t)h->numel;
    out->shape = h->s;
    if (type == 0x08 || type == 0x0D || type == 0x0E) {
        float *f = io_alloc_data(n * sizeof *f);
        for (size_t i = 0; i < n; i++) {
            if (type == 0x08) {
                f[i] = p[i];
            } else if (type == 0x0D) {
                uint32_t u = be32(p + 4 * i);
                memcpy(&f[i], &u, 4);
            } else {
                uint64_t u = (uint64_t)be32(p + 8 * i) << 32 | be32(p + 8 * i + 4);
                double d;
                memcpy(&d, &u, 8);
                f[i] = (float)d;
            }
        }
        out->dtype = TY_F32;
        out->data = f;
    } else {
        int32_t *v = io_alloc_data(n * sizeof *v);
        for (size_t i = 0; i < n; i++) {
            if (type == 0x09)
                v[i] = (int8_t)p[i];
            else if (type == 0x0B)
                v[i] = (int16_t)(uint16_t)(p[2 * i] << 8 | p[2 * i + 1]);
            else
                v[i] = (int32_t)be32(p + 4 * i);
        }
        out->dtype = TY_I32;
        out->data = v;
    }
    return true;
}

/* The magic says how long the header is and the header how long the data
 * is: the input is read no further than that (and one byte, to notice a
 * longer one), so a small .gz that inflates to gigabytes stops early, and a
 * header claiming more than the input limit is refused before any data is
 * read. */
static bool read_idx(TtInput *in, IoTensor *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    const char *what = tt_input_name(in);
    StrBuf b = {0};
    IdxHeader h;
    size_t want = 4;
    int r;
    bool ok = false;
    do {
        if (!tt_input_fill(in, &b, want, err, errlen)) goto done;
        r = idx_header(what, (unsigned char *)b.s, b.len, b.len < want, &h, &want, err, errlen);
    } while (r < 0);
    if (r == 0) goto done;
    uint64_t total = h.hdr + (uint64_t)h.need;
    if (total > tt_input_max(in)) {
        char sh[160], lim[32];
        io_fail(err, errlen, what,
                "dimensions %s make a file of %llu bytes, more than the input limit of %s "
                "(TT_MAX_INPUT_BYTES)",
                io_shape_str(&h.s, sh, sizeof sh), (unsigned long long)total,
                tt_format_bytes(tt_input_max(in), lim, sizeof lim));
        goto done;
    }
    bool known = tt_input_size_known(in);
    if (!tt_input_fill(in, &b, known ? UINT64_MAX : total + 1, err, errlen)) goto done;
    ok = idx_data(what, &h, (unsigned char *)b.s, b.len, !known && b.len > total, out, err, errlen);
done:
    sb_free(&b);
    return ok;
}

bool io_load_idx(const char *path, IoTensor *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    TtInput *in = tt_input_open(path, true, err, errlen);
    if (!in) return false;
    bool ok = read_idx(in, out, err, errlen);
    tt_input_close(in);
    return ok;
}

bool io_parse_idx(const char *what, const void *data, size_t len, IoTensor *out, char *err,
                  size_t errlen) {
    memset(out, 0, sizeof *out);
    TtInput *in = tt_input_memory(what, data, len, err, errlen);
    if (!in) return false;
    bool ok = read_idx(in, out, err, errlen);
    tt_input_close(in);
    return ok;
}
