/* trace.h - ttrun --trace=FILE: Chrome trace events of a run.
 *
 * Each graph run, JIT compile, kernel (JIT) or op (naive runtime) and each
 * thread's share of a parallel loop becomes one complete event ("ph": "X")
 * on the row of the thread that ran it; the file is the JSON object format
 * of the Trace Event spec, which Perfetto (ui.perfetto.dev) and
 * chrome://tracing open. Events are kept in memory and written once, at the
 * end (atomically: io_atomic.h), so tracing costs a clock read and an append
 * per event, not a write.
 */
#ifndef TT_TRACE_H
#define TT_TRACE_H

#include <stdbool.h>
#include <stddef.h>

/* Starts recording; the file is written by rt_trace_finish. */
void rt_trace_start(const char *path);
bool rt_trace_on(void);
/* The time base of events: CLOCK_MONOTONIC in nanoseconds. */
double rt_trace_now_ns(void);
/* Records the event [t0_ns, t1_ns] named name (copied) in category cat (a
 * string literal) on thread row tid (1: the main thread; 2..: workers).
 * Thread-safe. Past a million events the rest are counted, not kept. */
void rt_trace_event(const char *name, const char *cat, double t0_ns, double t1_ns, int tid);
/* Writes the file and stops recording; false with a message in err. */
bool rt_trace_finish(char *err, size_t errlen);

#endif
