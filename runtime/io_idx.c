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

bool io_load_idx(const char *path, IoTensor *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    size_t len;
    unsigned char *buf = (unsigned char *)tt_read_file(path, &len, err, errlen);
    if (!buf) return false;
    bool ok = false;
    if (len < 4) {
        io_fail(err, errlen, path, "not an IDX file (only %zu bytes)", len);
        goto done;
    }
    if (buf[0] != 0 || buf[1] != 0) {
        io_fail(err, errlen, path, "not an IDX file (magic 0x%08x)", (unsigned)be32(buf));
        goto done;
    }
    int type = buf[2], ndim = buf[3];
    int esize = idx_elem_size(type);
    if (!esize) {
        io_fail(err, errlen, path, "unknown IDX data type 0x%02x (magic 0x%08x)", type,
                (unsigned)be32(buf));
        goto done;
    }
    if (ndim < 1 || ndim > IR_MAXDIM) {
        io_fail(err, errlen, path, "IDX file has %d dimensions (1 to %d are supported)", ndim,
                IR_MAXDIM);
        goto done;
    }
    size_t hdr = 4 + 4 * (size_t)ndim;
    if (len < hdr) {
        io_fail(err, errlen, path, "truncated: header needs %zu bytes, the file has %zu", hdr, len);
        goto done;
    }
    Shape s = {.ndim = ndim};
    for (int i = 0; i < ndim; i++) s.d[i] = be32(buf + 4 + 4 * i);
    int64_t numel = 1, need;
    char sh[160];
    for (int i = 0; i < ndim; i++)
        if (!io_mul(numel, s.d[i], &numel)) numel = -1;
    if (numel < 0 || !io_mul(numel, esize, &need)) {
        io_fail(err, errlen, path, "dimensions %s are too large", io_shape_str(&s, sh, sizeof sh));
        goto done;
    }
    if ((uint64_t)need != len - hdr) {
        io_fail(err, errlen, path, "%s: dimensions %s need %lld bytes of data, the file has %zu",
                (uint64_t)need > len - hdr ? "truncated" : "size mismatch",
                io_shape_str(&s, sh, sizeof sh), (long long)need, len - hdr);
        goto done;
    }

    const unsigned char *p = buf + hdr;
    size_t n = (size_t)numel;
    out->shape = s;
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
    ok = true;
done:
    free(buf);
    return ok;
}
