/* bufalloc.h - memory for tensor data.
 *
 * A script that computes `c = a @ b` in a loop gets a fresh output buffer
 * every iteration (the lazy graph keeps realized buffers until it is reset,
 * so they are not reused either). glibc serves a large aligned_alloc with a
 * fresh mmap, and every 4 KiB page of it was faulted in one at a time by the
 * kernel that wrote it: measured ~1025 faults and ~9 ms of system time per
 * 1024x1024 f32 product on the project's VM, a quarter of the product
 * itself, which the GEMM benchmark (one C, reused) never saw. Large buffers
 * are therefore 2 MiB aligned and advised as transparent huge pages: two
 * faults for that product's output. */
#ifndef TT_BUFALLOC_H
#define TT_BUFALLOC_H

#include <stddef.h>

/* From this many bytes a buffer is placed on huge pages. */
#define RT_HUGE_MIN ((size_t)2 << 20)

/* nbytes (> 0, a multiple of 64) of 64-byte-aligned memory for tensor data,
 * or NULL; free with free(). */
void *rt_data_alloc(size_t nbytes);

#endif
