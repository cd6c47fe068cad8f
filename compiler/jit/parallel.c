/* parallel.c - the process's thread pool (see parallel.h).
 *
 * Workers are started on first use and then kept. A job is published as
 * one atomic claim word (job serial, chunk count, thread count, next
 * chunk); the caller and the workers allowed by the thread count claim
 * chunks from it until none is left, and the caller waits until every
 * chunk is done. Between jobs a worker spins for SPIN_NS, then sleeps on a
 * condition variable: the kernels of a training step follow each other
 * within microseconds, and waking a sleeping thread cost about 50 us on
 * the project's VM (the loops' measured overhead before they shared the
 * GEMM's spinning workers) against about 10 us for a spinning one. One
 * job at a time: a caller that finds the pool busy runs its job alone. A
 * child process after fork() starts with no workers (the pool forgets the
 * parent's).
 */
#include "parallel.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#define MAXT              64
#define SPIN_NS           200000 /* how long an idle worker spins before sleeping */
#define CHUNKS_PER_THREAD 4      /* a loop's ranges per thread (claimed in turn) */

/* claim word: serial << 34 | threads << 26 | chunks << 13 | next chunk */
#define CL_BITS    13
#define CL_MASK    ((1ull << CL_BITS) - 1)
#define CL_T_SHIFT (2 * CL_BITS)
#define CL_S_SHIFT (2 * CL_BITS + 8)
_Static_assert(TTRT_POOL_MAXCHUNK < (1 << CL_BITS) && MAXT < 256, "claim word fields");

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_mutex_t busy; /* held for a whole job */
    atomic_ulong gen;     /* bumped to wake the workers */
    atomic_ullong claim;
    atomic_int done, sleepers;
    int nworkers;
    unsigned long long serial;
    TtPoolChunk fn; /* the job: stable while any of its chunks is claimed and not done */
    void *ctx;
} P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_MUTEX_INITIALIZER};

/* In the child of a fork, only the forking thread exists: start afresh. */
static void after_fork_child(void) {
    pthread_mutex_init(&P.mu, NULL);
    pthread_mutex_init(&P.busy, NULL);
    pthread_cond_init(&P.cv, NULL);
    P.nworkers = 0;
    atomic_store(&P.sleepers, 0);
}

static void register_fork(void) {
    pthread_atfork(NULL, NULL, after_fork_child);
}

static TtParTrace trace_fn;

void ttrt_parallel_set_trace(TtParTrace fn) {
    trace_fn = fn;
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e9 * (double)ts.tv_sec + (double)ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Claims and runs chunks of the current job until none is left; a worker
 * (tid >= 2) takes part only when the job's thread count includes it. */
static void run_chunks(int tid) {
    for (;;) {
        unsigned long long c = atomic_load(&P.claim);
        if ((c & CL_MASK) >= ((c >> CL_BITS) & CL_MASK)) return;
        if (tid > (int)((c >> CL_T_SHIFT) & 0xFF)) return;
        if (!atomic_compare_exchange_weak(&P.claim, &c, c + 1)) continue;
        P.fn(P.ctx, (int)(c & CL_MASK), tid);
        atomic_fetch_add(&P.done, 1);
    }
}

static void *worker(void *arg) {
    int tid = (int)(intptr_t)arg + 2;
    for (;;) {
        unsigned long seen = atomic_load(&P.gen);
        run_chunks(tid);
        double t0 = now_ns();
        unsigned spins = 0;
        while (atomic_load(&P.gen) == seen) {
            cpu_relax();
            if (++spins % 256 == 0 && now_ns() - t0 > SPIN_NS) {
                pthread_mutex_lock(&P.mu);
                atomic_fetch_add(&P.sleepers, 1);
                while (atomic_load(&P.gen) == seen) pthread_cond_wait(&P.cv, &P.mu);
                atomic_fetch_sub(&P.sleepers, 1);
                pthread_mutex_unlock(&P.mu);
            }
        }
    }
    return NULL;
}

bool ttrt_pool_run(TtPoolChunk fn, void *ctx, int nchunks, int nthreads) {
    int nt = nthreads < MAXT ? nthreads : MAXT;
    if (nchunks > TTRT_POOL_MAXCHUNK) nchunks = TTRT_POOL_MAXCHUNK;
    if (nchunks <= 0) return true;
    if (pthread_mutex_trylock(&P.busy) != 0) return false;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_fork);
    while (P.nworkers < nt - 1) { /* start the missing workers (kept for later jobs) */
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&th, &at, worker, (void *)(intptr_t)P.nworkers);
        pthread_attr_destroy(&at);
        if (rc != 0) break;
        P.nworkers++;
    }
    if (nt > P.nworkers + 1) nt = P.nworkers + 1;
    if (nt < 1) nt = 1;
    P.fn = fn;
    P.ctx = ctx;
    P.serial++;
    atomic_store(&P.done, 0);
    atomic_store(&P.claim, P.serial << CL_S_SHIFT | (unsigned long long)nt << CL_T_SHIFT |
                               (unsigned long long)nchunks << CL_BITS);
    if (nt > 1) {
        atomic_fetch_add(&P.gen, 1);
        if (atomic_load(&P.sleepers) > 0) {
            pthread_mutex_lock(&P.mu);
            pthread_cond_broadcast(&P.cv);
            pthread_mutex_unlock(&P.mu);
        }
    }
    run_chunks(1);
    unsigned spins = 0;
    while (atomic_load(&P.done) < nchunks)
        if (++spins < 4000)
            cpu_relax();
        else
            sched_yield();
    pthread_mutex_unlock(&P.busy);
    return true;
}

typedef struct Loop {
    TtParBody body;
    void **bufs;
    int64_t n;
    int nch;
} Loop;

static int64_t range_lo(int64_t n, int nch, int r) {
    return (int64_t)((__int128)n * r / nch);
}

static void loop_chunk(void *ctx, int c, int tid) {
    const Loop *l = ctx;
    int64_t lo = range_lo(l->n, l->nch, c), hi = range_lo(l->n, l->nch, c + 1);
    TtParTrace tr = trace_fn;
    double t0 = tr ? now_ns() : 0;
    l->body(l->bufs, lo, hi);
    if (tr) tr("parallel range", "parallel", t0, now_ns(), tid);
}

void ttrt_parallel_for(TtParBody body, void **bufs, int64_t n, int32_t nthreads) {
    int nt = nthreads < MAXT ? nthreads : MAXT;
    if (nt > n) nt = (int)n;
    if (nt > 1) {
        int64_t nch = (int64_t)CHUNKS_PER_THREAD * nt;
        Loop l = {body, bufs, n, (int)(nch < n ? nch : n)};
        if (ttrt_pool_run(loop_chunk, &l, l.nch, nt)) return;
    }
    if (n > 0) body(bufs, 0, n);
}
