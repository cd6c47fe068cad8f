/* io_util.h - helpers shared by the file-format readers and writers
 * (io_csv.c, io_idx.c, io_npy.c, io_safetensors.c). Private to runtime/io_*.c. */
#ifndef TT_IO_UTIL_H
#define TT_IO_UTIL_H

#include "input.h"
#include "io.h"

/* The formats are little-endian (IDX excepted) and the readers copy bytes
 * straight into tensors. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "runtime/io_*.c assume a little-endian host"
#endif

/* Writes err as "<path>: <message>" (printf-style message). Returns false so
 * that readers can `return io_fail(...)`. */
bool io_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* n = a * b with overflow check; false on overflow or a negative operand. */
bool io_mul(int64_t a, int64_t b, int64_t *n);

/* Element count and byte size of a shape, false when either overflows int64
 * (or a dimension is negative). */
bool io_shape_bytes(const Shape *s, DType t, int64_t *numel, int64_t *bytes);

/* "[784, 128]" (or "[]") into buf; returns buf. */
const char *io_shape_str(const Shape *s, char *buf, size_t len);

/* IoChunk, io_write_atomic: the writers' temporary file and rename. */
#include "io_atomic.h"

#endif
