/* signals.h - what SIGINT and SIGTERM do to a running tt, and the temporary
 * files they must not leave behind.
 *
 * The handlers only record the signal (rt_sig_pending) and wake whoever
 * waits on rt_signals_wake_fd(); the evaluator acts on it at its next poll
 * (a statement, a block, a loop iteration, a call), where stdio and the
 * interpreter are in a consistent state:
 *   - SIGINT raises the error `interrupted` at the statement about to run.
 *     The REPL returns to its prompt with the session intact; ttrun running
 *     a script exits with status 130 after flushing what it printed.
 *   - SIGTERM flushes stdout and stderr, removes the temporary files being
 *     written and dies of SIGTERM (the default action, re-raised).
 * Compiled graphs, naive graph runs and a JIT compile finish what they are
 * doing first; a save checks between slices of its file. A second signal
 * that comes before the first was acted on ends the process at once (the
 * temporary files are still removed): SIGTERM always, SIGINT in a script.
 * A REPL session is never ended by Ctrl-C.
 *
 * Only ttrun installs the handlers (rt_signals_install). The library reads
 * the flag and registers its temporary files, so tests and fuzzers that
 * never install anything see no difference.
 */
#ifndef TT_SIGNALS_H
#define TT_SIGNALS_H

#include <signal.h>
#include <stdbool.h>

#include "diag.h"

typedef struct Interp Interp;

/* The signal waiting to be acted on (SIGINT or SIGTERM), or 0. */
extern volatile sig_atomic_t rt_sig_pending;

/* Installs the SIGINT and SIGTERM handlers; repl selects the REPL's rules
 * (a repeated Ctrl-C never ends the session). ttrun calls it once. */
void rt_signals_install(bool repl);

/* A descriptor that becomes readable when a signal arrives (-1 before
 * rt_signals_install): the REPL polls it beside standard input, since a
 * signal may be delivered to any thread and a blocked read is not always
 * the one interrupted. rt_sig_take_interrupt drains it. */
int rt_signals_wake_fd(void);

/* The evaluator's poll: acts on a pending signal at loc (see above). */
void rt_sig_act(Interp *I, SrcLoc loc);
static inline void rt_sig_poll(Interp *I, SrcLoc loc) {
    if (rt_sig_pending) rt_sig_act(I, loc);
}

/* For code waiting outside the evaluator (the REPL's prompt): true when a
 * SIGINT was pending (now cleared); a pending SIGTERM dies here. */
bool rt_sig_take_interrupt(void);

/* True once a SIGINT was acted on or is pending: a script then exits 130. */
bool rt_sig_interrupted(void);

/* Flushes stdout and stderr, removes the registered temporary files and
 * dies of sig with its default action. For safe points only (not a
 * handler). */
_Noreturn void rt_signals_die(int sig);

/* -- temporary files being written (io_atomic.c) -- */

/* Remembers path so that a signal that ends the process removes it. Returns
 * a slot for rt_tmpfile_forget, or -1 when the table is full or path too
 * long (the write goes on, unprotected). Not thread-safe: the main thread
 * writes files. */
int rt_tmpfile_track(const char *path);
void rt_tmpfile_forget(int slot);

#endif
