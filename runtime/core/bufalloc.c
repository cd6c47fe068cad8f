/* bufalloc.c - memory for tensor data (bufalloc.h). */
#include "bufalloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

/* Under AddressSanitizer a cached buffer is poisoned: a use after release
 * is still reported, though the memory was not given back. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* The cached buffers, oldest first. The interpreter allocates on one
 * thread today; the mutex keeps the process-wide cache sound if that
 * changes, at no cost next to a request of 256 KiB or more. */
static struct {
    void *p;
    size_t n;
} cache[RT_CACHE_SLOTS];
static int ncache;
static size_t cache_bytes;
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

/* The size a cached-size request is allocated with, its cache key: whole
 * huge pages for a huge-page buffer (so the tail is not left on small
 * pages), whole 4 KiB pages below. */
static size_t size_class(size_t nbytes) {
    size_t a = nbytes >= RT_HUGE_MIN ? RT_HUGE_MIN : 4096;
    return (nbytes + a - 1) & ~(a - 1);
}

static void cache_remove(int i) {
    cache_bytes -= cache[i].n;
    for (int j = i + 1; j < ncache; j++) cache[j - 1] = cache[j];
    ncache--;
}

void *rt_data_alloc(size_t nbytes) {
    if (nbytes < RT_CACHE_MIN) return aligned_alloc(64, nbytes);
    size_t n = size_class(nbytes);
    void *p = NULL;
    pthread_mutex_lock(&cache_mu);
    /* the most recently freed first: its pages are the likeliest in cache */
    for (int i = ncache - 1; i >= 0; i--)
        if (cache[i].n == n) {
            p = cache[i].p;
            cache_remove(i);
            break;
        }
    pthread_mutex_unlock(&cache_mu);
    if (p) {
        UNPOISON(p, n);
        return p;
    }
    if (n < RT_HUGE_MIN) return aligned_alloc(64, n);
    p = aligned_alloc(RT_HUGE_MIN, n);
#ifdef MADV_HUGEPAGE
    /* advice only: where THP is off or "never", this fails and changes
     * nothing */
    if (p) (void)madvise(p, n, MADV_HUGEPAGE);
#endif
    return p;
}

void rt_data_free(void *p, size_t nbytes) {
    if (!p) return;
    size_t n = size_class(nbytes);
    if (nbytes < RT_CACHE_MIN || n > RT_CACHE_BYTES) {
        free(p);
        return;
    }
    /* the oldest make room: a loop's current sizes are the ones to keep */
    void *evict[RT_CACHE_SLOTS];
    int nevict = 0;
    pthread_mutex_lock(&cache_mu);
    while (ncache > 0 && (ncache == RT_CACHE_SLOTS || cache_bytes + n > RT_CACHE_BYTES)) {
        evict[nevict] = cache[0].p;
        UNPOISON(cache[0].p, cache[0].n);
        nevict++;
        cache_remove(0);
    }
    POISON(p, n);
    cache[ncache].p = p;
    cache[ncache].n = n;
    ncache++;
    cache_bytes += n;
    pthread_mutex_unlock(&cache_mu);
    for (int i = 0; i < nevict; i++) free(evict[i]);
}

void rt_data_cache_drain(void) {
    pthread_mutex_lock(&cache_mu);
    for (int i = 0; i < ncache; i++) {
        UNPOISON(cache[i].p, cache[i].n);
        free(cache[i].p);
    }
    ncache = 0;
    cache_bytes = 0;
    pthread_mutex_unlock(&cache_mu);
}

size_t rt_data_cached(void) {
    pthread_mutex_lock(&cache_mu);
    size_t n = cache_bytes;
    pthread_mutex_unlock(&cache_mu);
    return n;
}
