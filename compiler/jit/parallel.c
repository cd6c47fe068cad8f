/* parallel.c - the thread pool behind parallel loops (see parallel.h).
 *
 * Workers are started on first use and then kept; they sleep on a condition
 * variable between jobs. A job is published under the mutex with a new
 * generation number; worker w runs range w + 1 of the job when the job has
 * that many ranges, and the caller waits until the ranges it handed out are
 * done. One job at a time: a caller that finds the pool busy runs its loop
 * on its own thread. A child process after fork() starts with no workers
 * (the pool forgets the parent's).
 */
#include "parallel.h"

#include <pthread.h>
#include <time.h>

#define MAXT 64

static struct {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    pthread_mutex_t busy; /* held for a whole job */
    int nworkers;
    uint64_t gen;
    TtParBody body;
    void **bufs;
    int64_t n;
    int nt, pending;
} P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
       PTHREAD_MUTEX_INITIALIZER};

/* In the child of a fork, only the forking thread exists: start afresh. */
static void after_fork_child(void) {
    pthread_mutex_init(&P.mu, NULL);
    pthread_mutex_init(&P.busy, NULL);
    pthread_cond_init(&P.go, NULL);
    pthread_cond_init(&P.done, NULL);
    P.nworkers = 0;
    P.pending = 0;
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

/* Runs one range, reported to trace_fn when tracing. */
static void run_range(TtParBody body, void **bufs, int64_t lo, int64_t hi, int tid) {
    TtParTrace tr = trace_fn;
    double t0 = tr ? now_ns() : 0;
    body(bufs, lo, hi);
    if (tr) tr("parallel range", "parallel", t0, now_ns(), tid);
}

static int64_t range_lo(int64_t n, int nt, int r) {
    return (int64_t)((__int128)n * r / nt);
}

static void *worker(void *arg) {
    int w = (int)(intptr_t)arg; /* runs range w + 1 */
    uint64_t seen = 0;
    pthread_mutex_lock(&P.mu);
    for (;;) {
        while (P.gen == seen) pthread_cond_wait(&P.go, &P.mu);
        seen = P.gen;
        if (w + 1 >= P.nt) continue;
        TtParBody body = P.body;
        void **bufs = P.bufs;
        int64_t n = P.n;
        int nt = P.nt;
        pthread_mutex_unlock(&P.mu);
        run_range(body, bufs, range_lo(n, nt, w + 1), range_lo(n, nt, w + 2), w + 2);
        pthread_mutex_lock(&P.mu);
        if (--P.pending == 0) pthread_cond_signal(&P.done);
    }
    return NULL;
}

void ttrt_parallel_for(TtParBody body, void **bufs, int64_t n, int32_t nthreads) {
    int nt = nthreads < MAXT ? nthreads : MAXT;
    if (nt > n) nt = (int)n;
    if (nt <= 1 || pthread_mutex_trylock(&P.busy) != 0) {
        if (n > 0) body(bufs, 0, n);
        return;
    }
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_fork);
    pthread_mutex_lock(&P.mu);
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
    P.body = body;
    P.bufs = bufs;
    P.n = n;
    P.nt = nt;
    P.pending = nt - 1;
    P.gen++;
    pthread_cond_broadcast(&P.go);
    pthread_mutex_unlock(&P.mu);
    run_range(body, bufs, 0, range_lo(n, nt, 1), 1);
    pthread_mutex_lock(&P.mu);
    while (P.pending > 0) pthread_cond_wait(&P.done, &P.mu);
    pthread_mutex_unlock(&P.mu);
    pthread_mutex_unlock(&P.busy);
}
