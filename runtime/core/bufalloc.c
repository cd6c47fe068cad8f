/* bufalloc.c - memory for tensor data (bufalloc.h). */
#include "bufalloc.h"

#include <stdlib.h>
#include <sys/mman.h>

void *rt_data_alloc(size_t nbytes) {
    if (nbytes < RT_HUGE_MIN) return aligned_alloc(64, nbytes);
    /* whole huge pages, so the tail is not left on small ones */
    size_t n = (nbytes + RT_HUGE_MIN - 1) & ~(RT_HUGE_MIN - 1);
    void *p = aligned_alloc(RT_HUGE_MIN, n);
#ifdef MADV_HUGEPAGE
    /* advice only: where THP is off or "never", this fails and changes
     * nothing */
    if (p) (void)madvise(p, n, MADV_HUGEPAGE);
#endif
    return p;
}
