/* io_util.c - shared helpers of the tensor file formats: error messages,
 * overflow-checked sizes, freeing (atomic writes: io_atomic.c). */
#include "io_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool io_fail(char *err, size_t errlen, const char *path, const char *fmt, ...) {
    if (!err || errlen == 0) return false;
    int n = snprintf(err, errlen, "%s: ", path);
    if (n < 0) n = 0;
    if ((size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return false;
}

bool io_mul(int64_t a, int64_t b, int64_t *n) {
    if (a < 0 || b < 0) return false;
    return !__builtin_mul_overflow(a, b, n);
}

bool io_shape_bytes(const Shape *s, DType t, int64_t *numel, int64_t *bytes) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++)
        if (!io_mul(n, s->d[i], &n)) return false;
    int64_t b;
    if (!io_mul(n, (int64_t)dtype_size(t), &b)) return false;
    if (numel) *numel = n;
    if (bytes) *bytes = b;
    return true;
}

const char *io_shape_str(const Shape *s, char *buf, size_t len) {
    size_t k = 0;
    buf[0] = 0;
    k += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < s->ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? ", " : "", (long long)s->d[i]);
    if (k < len) snprintf(buf + k, len - k, "]");
    return buf;
}

void *io_alloc_data(size_t nbytes) {
    size_t n = (nbytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, n ? n : 64);
    if (!p) {
        fprintf(stderr, "tt: fatal: out of memory allocating %zu bytes\n", nbytes);
        abort();
    }
    return p;
}

void io_tensor_free(IoTensor *t) {
    if (!t) return;
    free(t->data);
    t->data = NULL;
}

void io_named_free(IoNamed *ts, int n) {
    if (!ts) return;
    for (int i = 0; i < n; i++) {
        free(ts[i].name);
        io_tensor_free(&ts[i].t);
    }
    free(ts);
}
