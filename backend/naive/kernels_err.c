/* kernels_err.c - how reference kernels fail on their data: an index out of
 * range, a workspace that does not fit. The naive runtime turns a filled
 * KernelErr into an error at the node's source location. */
#include <stdio.h>
#include <stdlib.h>

#include "kernels.h"

void kern_index_error(KernelErr *err, int64_t v, int64_t n) {
    err->failed = true;
    snprintf(err->msg, sizeof err->msg, "index %lld out of range for axis of size %lld",
             (long long)v, (long long)n);
}

/* Sizes beyond 2^46 bytes (64 TiB) fail without asking malloc, as
 * rt_buf_try_uninit does: no machine has them, and a sanitizer's allocator
 * would abort on such a request instead of returning NULL. */
void *kern_try_alloc(KernelErr *err, size_t bytes, const char *what) {
    void *p = bytes > ((size_t)1 << 46) ? NULL : malloc(bytes ? bytes : 1);
    if (!p) {
        err->failed = true;
        snprintf(err->msg, sizeof err->msg, "out of memory: %.1f GB for the %s",
                 (double)bytes / 1e9, what);
    }
    return p;
}

void kern_rows_error(KernelErr *err, int64_t pos, int64_t rows, int64_t n) {
    err->failed = true;
    snprintf(err->msg, sizeof err->msg,
             "position %lld out of range: writing %lld row%s into %lld needs 0 <= position <= "
             "%lld",
             (long long)pos, (long long)rows, rows == 1 ? "" : "s", (long long)n,
             (long long)(n - rows));
}
