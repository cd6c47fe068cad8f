/* bufalloc.h - memory for tensor data.
 *
 * A script that computes `c = a @ b` in a loop gets a fresh output buffer
 * every iteration (the lazy graph releases dead outputs in batches, at its
 * sweeps, and a new one is allocated before the old is released). glibc
 * serves a large aligned_alloc with a fresh mmap, and every 4 KiB page of
 * it was faulted in one at a time by the kernel that wrote it: measured
 * ~1025 faults and ~9 ms of system time per 1024x1024 f32 product on the
 * project's VM, a quarter of the product itself, which the GEMM benchmark
 * (one C, reused) never saw. Large buffers are therefore 2 MiB aligned and
 * advised as transparent huge pages: two faults for that product's output.
 *
 * Those two faults still cost the kernel zeroing 4 MiB per product (~2-4%
 * of a 1024 product, the most on 2 threads): glibc never reuses such a
 * buffer, because a 2 MiB-aligned request always asks for exactly the
 * size its dynamic mmap threshold was raised to by the last free, and a
 * request that large is mmapped. Smaller ones fare little better: a 512
 * product's 1 MiB output took ~75 page faults per product (glibc trims
 * the heap's top when a loop frees a few outputs at once), 5-10% of the
 * product. So freed buffers from RT_CACHE_MIN up are kept in a small
 * cache (RT_CACHE_SLOTS, RT_CACHE_BYTES at most) and handed to the next
 * request of the same size class: a loop's outputs land on pages that
 * are already mapped. What the cache holds is not live tensor data
 * (rt_mem_live, a profile block's peak_mb do not count it). */
#ifndef TT_BUFALLOC_H
#define TT_BUFALLOC_H

#include <stddef.h>

/* From this many bytes a buffer is placed on huge pages. */
#define RT_HUGE_MIN ((size_t)2 << 20)

/* From this many bytes a released buffer may be cached. */
#define RT_CACHE_MIN ((size_t)256 << 10)

/* The free-buffer cache: at most this many buffers and bytes. */
#define RT_CACHE_SLOTS 8
#define RT_CACHE_BYTES ((size_t)64 << 20)

/* nbytes (> 0, a multiple of 64) of 64-byte-aligned memory for tensor data,
 * or NULL; release with rt_data_free. */
void *rt_data_alloc(size_t nbytes);

/* Releases p (NULL: nothing), allocated by rt_data_alloc(nbytes): into the
 * cache when it fits there, else to the C library. */
void rt_data_free(void *p, size_t nbytes);

/* Frees every cached buffer (the memory goes back to the C library). */
void rt_data_cache_drain(void);

/* Bytes held in the cache now (tests). */
size_t rt_data_cached(void);

#endif
