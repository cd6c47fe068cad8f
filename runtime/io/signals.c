/* signals.c - SIGINT and SIGTERM: the handlers record, safe points act
 * (see signals.h), and the table of temporary files a dying process
 * removes. Everything a handler touches is a volatile sig_atomic_t or a
 * fixed buffer, and it calls only async-signal-safe functions. */
#include "signals.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "value.h"

volatile sig_atomic_t rt_sig_pending;
static volatile sig_atomic_t was_interrupted; /* a SIGINT was acted on */
static volatile sig_atomic_t repl_rules;
static int wake[2] = {-1, -1};

/* -- the temporary files -- */

/* A save writes one file at a time; a few slots leave room for nesting. */
enum { TMP_SLOTS = 8, TMP_PATH_MAX = 4096 };
static char tmp_path[TMP_SLOTS][TMP_PATH_MAX];
static volatile sig_atomic_t tmp_used[TMP_SLOTS];

int rt_tmpfile_track(const char *path) {
    size_t n = strlen(path);
    if (n >= TMP_PATH_MAX) return -1;
    for (int i = 0; i < TMP_SLOTS; i++) {
        if (tmp_used[i]) continue;
        memcpy(tmp_path[i], path, n + 1);
        /* the path is complete before a handler can see the slot in use */
        atomic_signal_fence(memory_order_seq_cst);
        tmp_used[i] = 1;
        return i;
    }
    return -1;
}

void rt_tmpfile_forget(int slot) {
    if (slot >= 0 && slot < TMP_SLOTS) tmp_used[slot] = 0;
}

static void remove_tmpfiles(void) {
    for (int i = 0; i < TMP_SLOTS; i++)
        if (tmp_used[i]) unlink(tmp_path[i]);
}

/* -- dying -- */

/* Async-signal-safe: removes the temporary files, then the default action
 * of sig (which is unblocked first: inside its own handler it is masked). */
static _Noreturn void die_now(int sig) {
    remove_tmpfiles();
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    _exit(128 + sig); /* not reached: both signals terminate by default */
}

_Noreturn void rt_signals_die(int sig) {
    fflush(stdout);
    fflush(stderr);
    die_now(sig);
}

/* -- the handler -- */

static void on_signal(int sig) {
    int saved = errno;
    /* the first signal was not acted on yet: the user means it */
    if (rt_sig_pending && (sig == SIGTERM || !repl_rules)) die_now(sig);
    if (rt_sig_pending != SIGTERM) rt_sig_pending = sig;
    if (wake[1] >= 0) {
        ssize_t w = write(wake[1], "!", 1); /* a full pipe already wakes */
        (void)w;
    }
    errno = saved;
}

void rt_signals_install(bool repl) {
    repl_rules = repl;
    if (wake[0] < 0 && pipe(wake) == 0) {
        for (int i = 0; i < 2; i++) {
            fcntl(wake[i], F_SETFD, FD_CLOEXEC);
            fcntl(wake[i], F_SETFL, O_NONBLOCK);
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    /* SA_RESTART: a print to a pipe must not fail with EINTR; the REPL's
     * prompt learns of the signal from the wake descriptor instead */
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int rt_signals_wake_fd(void) {
    return wake[0];
}

static void drain_wake(void) {
    char buf[64];
    if (wake[0] >= 0)
        while (read(wake[0], buf, sizeof buf) > 0) {
        }
}

/* -- acting on a signal -- */

void rt_sig_act(Interp *I, SrcLoc loc) {
    drain_wake(); /* before reading the flag: a later signal wakes again */
    int sig = rt_sig_pending;
    if (!sig) return;
    if (sig == SIGTERM) rt_signals_die(SIGTERM);
    rt_sig_pending = 0;
    was_interrupted = 1;
    rt_error_at(I, loc, "interrupted");
}

bool rt_sig_take_interrupt(void) {
    drain_wake();
    int sig = rt_sig_pending;
    if (sig == SIGTERM) rt_signals_die(SIGTERM);
    rt_sig_pending = 0;
    return sig == SIGINT;
}

bool rt_sig_interrupted(void) {
    return was_interrupted || rt_sig_pending == SIGINT;
}
