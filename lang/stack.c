/* stack.c - the stack budget of the recursive walks (stack.h). */
#define _GNU_SOURCE /* pthread_getattr_np */
#include "stack.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

/* What stays free below the deepest check: a builtin's own work, the JIT
 * compiling a graph (LLVM recurses), printing the error. */
#define RESERVE ((size_t)1 << 20)

/* Per thread: a walk only ever compares frames of its own stack. */
static _Thread_local uintptr_t base; /* 0: not measured yet */
static _Thread_local size_t budget;  /* bytes below base the walks may use */

__attribute__((noinline)) uintptr_t tt_stack_pos(void) {
    return (uintptr_t)__builtin_frame_address(0);
}

/* The lowest address of this thread's stack, or 0 when unknown. For the
 * main thread glibc derives it from RLIMIT_STACK and the mapping. */
static uintptr_t stack_end(void) {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return 0;
    void *addr = NULL;
    size_t size = 0;
    int rc = pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    return rc == 0 ? (uintptr_t)addr : 0;
}

/* TT_STACK_LIMIT: bytes with an optional K, M or G; 0 when unset or bad. */
static size_t env_limit(void) {
    const char *s = getenv("TT_STACK_LIMIT");
    if (!s || !*s) return 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    size_t scale = 1;
    if (*end == 'k' || *end == 'K') scale = (size_t)1 << 10;
    if (*end == 'm' || *end == 'M') scale = (size_t)1 << 20;
    if (*end == 'g' || *end == 'G') scale = (size_t)1 << 30;
    if (scale > 1) end++;
    if (end == s || *end || v == 0 || v > SIZE_MAX / scale) {
        fprintf(stderr,
                "tt: warning: TT_STACK_LIMIT: expected a size in bytes (as 65536 or 64K), "
                "got '%s'; ignored\n",
                s);
        return 0;
    }
    return (size_t)v * scale;
}

static void measure(uintptr_t at) {
    base = at;
    uintptr_t end = stack_end();
    size_t avail;
    if (end && end < at) {
        avail = at - end;
    } else {
        /* unknown: assume the base is near the top of an RLIMIT_STACK stack */
        struct rlimit rl;
        avail = (size_t)8 << 20;
        if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            rl.rlim_cur < avail)
            avail = (size_t)rl.rlim_cur;
    }
    /* a small stack (threads, ulimit -s 1024) keeps a quarter of itself free */
    size_t reserve = avail / 4 < RESERVE ? avail / 4 : RESERVE;
    budget = avail - reserve;
    size_t lim = env_limit();
    if (lim && lim < budget) budget = lim;
}

void tt_stack_init(void) {
    measure(tt_stack_pos());
}

bool tt_stack_exhausted(void) {
    uintptr_t here = tt_stack_pos();
    if (!base) measure(here);
    /* a frame above the base (a shallower caller) has used nothing */
    return here < base && base - here > budget;
}

size_t tt_stack_budget(void) {
    if (!base) measure(tt_stack_pos());
    return budget;
}

void tt_stack_describe(char *buf, size_t n) {
    size_t b = tt_stack_budget();
    if (b >= ((size_t)1 << 20))
        snprintf(buf, n, "%.1f MiB", (double)b / (1 << 20));
    else
        snprintf(buf, n, "%zu KiB", b >> 10);
}
