/* trace.c - Chrome trace events (see trace.h). */
#include "trace.h"

#include "io_atomic.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_EVENTS 1000000

typedef struct Event {
    char *name;
    const char *cat;
    double t0, t1; /* ns */
    int tid;
} Event;

static struct {
    pthread_mutex_t mu;
    char *path;
    Event *ev;
    int n, cap;
    long long dropped;
    int maxtid;
    double origin; /* ns: timestamps are written relative to the start */
} T = {PTHREAD_MUTEX_INITIALIZER};

double rt_trace_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e9 * (double)ts.tv_sec + (double)ts.tv_nsec;
}

void rt_trace_start(const char *path) {
    free(T.path);
    T.path = tt_xstrdup(path);
    T.origin = rt_trace_now_ns();
}

bool rt_trace_on(void) {
    return T.path != NULL;
}

void rt_trace_event(const char *name, const char *cat, double t0, double t1, int tid) {
    if (!T.path) return;
    pthread_mutex_lock(&T.mu);
    if (T.n == MAX_EVENTS) {
        T.dropped++;
    } else {
        if (T.n == T.cap) {
            T.cap = T.cap ? 2 * T.cap : 1024;
            T.ev = tt_xrealloc(T.ev, (size_t)T.cap * sizeof *T.ev);
        }
        T.ev[T.n++] = (Event){tt_xstrdup(name), cat, t0, t1, tid};
        if (tid > T.maxtid) T.maxtid = tid;
    }
    pthread_mutex_unlock(&T.mu);
}

/* name as a JSON string body: quotes, backslashes and control characters
 * escaped (kernel names are plain, graph names carry user file names). */
static void put_json_str(StrBuf *b, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            sb_putc(b, '\\');
            sb_putc(b, (char)c);
        } else if (c < 0x20) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_putc(b, (char)c);
        }
    }
}

static void free_events(void) {
    for (int i = 0; i < T.n; i++) free(T.ev[i].name);
    free(T.ev);
    free(T.path);
    T.ev = NULL;
    T.path = NULL;
    T.n = T.cap = 0;
    T.dropped = 0;
}

bool rt_trace_finish(char *err, size_t errlen) {
    if (!T.path) return true;
    pthread_mutex_lock(&T.mu);
    StrBuf b = {0};
    sb_printf(&b,
              "{\"displayTimeUnit\": \"ms\", \"otherData\": {\"dropped_events\": %lld},\n"
              "\"traceEvents\": [\n",
              T.dropped);
    sb_printf(&b, "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": 1, \"tid\": 1, "
                  "\"args\": {\"name\": \"ttrun\"}}");
    for (int t = 1; t <= (T.maxtid > 1 ? T.maxtid : 1); t++) {
        sb_printf(&b,
                  ",\n{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 1, \"tid\": %d, "
                  "\"args\": {\"name\": \"",
                  t);
        if (t == 1)
            sb_puts(&b, "main");
        else
            sb_printf(&b, "worker %d", t - 1);
        sb_puts(&b, "\"}}");
    }
    for (int i = 0; i < T.n; i++) {
        const Event *e = &T.ev[i];
        sb_puts(&b, ",\n{\"name\": \"");
        put_json_str(&b, e->name);
        sb_printf(&b,
                  "\", \"cat\": \"%s\", \"ph\": \"X\", \"ts\": %.3f, \"dur\": %.3f, "
                  "\"pid\": 1, \"tid\": %d}",
                  e->cat, (e->t0 - T.origin) * 1e-3, (e->t1 - e->t0) * 1e-3, e->tid);
    }
    sb_puts(&b, "\n]}\n");
    IoChunk c = {b.s, b.len};
    bool ok = io_write_atomic(T.path, &c, 1, err, errlen);
    free(b.s);
    free_events();
    pthread_mutex_unlock(&T.mu);
    return ok;
}
