/* ttrun - runs tt scripts, or the REPL when no file is given.
 *
 *   ttrun [options] FILE.tt [args]
 *   ttrun [options]               (REPL)
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#include "capture.h"
#include "eval.h"
#include "gemm.h"
#include "import.h"
#include "input.h"
#include "objcache.h"
#include "parcost.h"
#include "repl.h"
#include "signals.h"
#include "trace.h"
#include "ctune.h"
#include "vtune.h"

#ifndef TT_VERSION /* CMake passes the project version */
#define TT_VERSION "0.1.0"
#endif

static void usage(FILE *out) {
    fputs("usage: ttrun [options] [FILE.tt [args...]]\n"
          "\n"
          "Runs a tt script, or starts the REPL when no file is given.\n"
          "\n"
          "options:\n"
          "  --check            parse and check FILE only\n"
          "  --backend=NAME     jit (default: LLVM) or naive (reference)\n"
          "  --seed=N           seed of the global random generator (default 0)\n"
          "  --profile          at exit: the per-op table (naive), or compile time, cache\n"
          "                     hits and the slowest kernels (jit), and the GEMM\n"
          "                     schedules (as --explain-schedule)\n"
          "  --explain-schedule at exit: the schedule each matrix product got (tile,\n"
          "                     blocking), why, and the measured alternatives; and\n"
          "                     which kernels run threaded and why (cost model)\n"
          "  --trace=FILE       write Chrome trace events (graph runs, compiles, kernels\n"
          "                     or ops, threads) to FILE, for Perfetto or chrome://tracing\n"
          "  --dump=graph       print each execution graph before it runs\n"
          "  --dump=fuse        print the fused kernels of each graph the JIT compiles\n"
          "  --dump=loops       print the loop IR of each graph the JIT compiles\n"
          "  --dump=quant       print each graph the quantization pass rewrites\n"
          "  --dump=kvcache     print the decode graph generate() derives (KV caching)\n"
          "  --threads=N        threads of the JIT (default: all cores)\n"
          "  --no-capture       never replay captured calls (also TT_CAPTURE=0)\n"
          "  -O0 .. -O3         the JIT's LLVM optimization level (default -O2)\n"
          "  -q                 quiet\n"
          "  --cache-info       print the compiled-code cache's directory, entries, size\n"
          "                     and cap (TT_CACHE_MAX), then exit\n"
          "  --cache-clear      remove the compiled-code cache's entries, then exit\n"
          "  --help, --version\n",
          out);
}

/* --cache-info and --cache-clear (compiler/objcache.h): the on-disk cache
 * of compiled code, which a user may want to size or empty. */
static int cache_command(bool info, bool clear) {
    if (clear) {
        char why[4300] = "";
        long n = objcache_clear(why, sizeof why);
        if (n < 0) {
            fprintf(stderr, "ttrun: error: --cache-clear: %s\n", why);
            return 1;
        }
        printf("removed %ld cache entr%s\n", n, n == 1 ? "y" : "ies");
    }
    if (info) {
        ObjcacheInfo ci;
        objcache_info(&ci);
        if (!ci.enabled)
            printf("cache dir: off (TT_CACHE_DIR=off, or no HOME)\n");
        else if (!ci.exists)
            printf("cache dir: %s (not created yet)\n", ci.dir);
        else if (!ci.trusted)
            printf("cache dir: %s (ignored: %s)\n", ci.dir, ci.why);
        else
            printf("cache dir: %s\n", ci.dir);
        printf("entries:   %lld\n", (long long)ci.entries);
        printf("bytes:     %llu (%.1f MB)\n", (unsigned long long)ci.bytes,
               (double)ci.bytes / (1 << 20));
        printf("cap:       %llu (%.1f MB; TT_CACHE_MAX)\n", (unsigned long long)ci.cap,
               (double)ci.cap / (1 << 20));
    }
    return 0;
}

static const char *REPL_HELP =
    "Enter statements or expressions; the value of an expression is printed.\n"
    "An unclosed (, [ or { continues on the next line.\n"
    "  :help              this text\n"
    "  :quit              leave (or Ctrl-D)\n"
    "  :backend naive|jit choose the backend\n"
    "  :ir EXPR           the graph IR of a tensor expression, without running it\n"
    "  :profile EXPR      evaluate EXPR and print where the time went\n"
    "Ctrl-C clears the line, or stops a computation and keeps the session.\n";

/* :ir EXPR - binds EXPR lazily to a hidden global, then prints the graph
 * that would compute it (nothing runs). */
static void repl_ir(Interp *I, const char *expr) {
    StrBuf src = {0};
    sb_printf(&src, "let __ir__ = (%s)\n", expr);
    if (rt_run_source(I, "<:ir>", src.s, src.len, false) == 0) {
        Value v = rt_global(I, "__ir__");
        if (v.kind != V_TENSOR) {
            printf("%s is not a tensor (it is %s): it has no graph\n", expr, rt_type_name(v));
        } else {
            jmp_buf jb;
            jmp_buf *saved = rt_set_on_error(I, &jb);
            if (setjmp(jb) == 0) {
                int out = rt_node(I, (Tensor *)v.o);
                IrGraph E;
                rt_extract_graph(I, &out, 1, &E);
                ir_print(stdout, &E);
                ir_free(&E);
            }
            rt_set_on_error(I, saved);
        }
        rt_release(I, v);
        rt_run_source(I, "<:ir>", "let __ir__ = none\n", 17, false);
    }
    sb_free(&src);
}

static char *history_path(void) {
    const char *home = getenv("HOME");
    if (!home || !*home) return NULL;
    size_t n = strlen(home) + 16;
    char *p = malloc(n);
    snprintf(p, n, "%s/.tt_history", home);
    return p;
}

/* -- reading lines --
 * Both readers wait on standard input and the signal wake descriptor
 * together (signals.h): Ctrl-C at the prompt drops the line being typed and
 * the unfinished entry, whichever thread the signal was delivered to. */

typedef enum LineStatus { LINE_OK, LINE_EOF, LINE_INTERRUPT } LineStatus;

typedef enum Wait { WAIT_INPUT, WAIT_INTERRUPT, WAIT_TERM } Wait;

/* Waits until standard input is readable (or at its end), Ctrl-C is
 * pressed, or SIGTERM arrives. SIGTERM is left pending for the REPL to act
 * on once libedit has put the terminal back in its normal mode. */
static Wait wait_input(void) {
    for (;;) {
        if (rt_sig_pending == SIGTERM) return WAIT_TERM;
        struct pollfd p[2] = {{STDIN_FILENO, POLLIN, 0}, {rt_signals_wake_fd(), POLLIN, 0}};
        int n = poll(p, p[1].fd >= 0 ? 2 : 1, -1);
        if (rt_sig_pending == SIGTERM) return WAIT_TERM;
        if (rt_sig_pending || (n > 0 && p[1].revents)) {
            if (rt_sig_take_interrupt()) return WAIT_INTERRUPT;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return WAIT_INPUT; /* readable, or an error or hangup that read reports */
    }
}

static bool line_cancelled;

/* libedit's rl_getc_function: a byte of standard input; a newline that
 * ends readline when Ctrl-C was pressed (line_cancelled says to drop the
 * line); the end of input on SIGTERM. */
static int getc_interruptible(FILE *f) {
    (void)f;
    unsigned char c;
    for (;;) {
        Wait w = wait_input();
        if (w == WAIT_TERM) return EOF;
        if (w == WAIT_INTERRUPT) break;
        ssize_t n = read(STDIN_FILENO, &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return EOF;
        if (c != 3) return c; /* ^C arrives as a byte when the terminal has ISIG off */
        break;
    }
    line_cancelled = true;
    return '\n';
}

/* Standard input that is not a terminal: lines split from a buffer of our
 * own (stdio's would block the poll). */
static LineStatus read_pipe_line(StrBuf *out) {
    static char buf[4096];
    static size_t pos, len;
    static bool eof;
    for (;;) {
        while (pos < len) {
            char c = buf[pos++];
            if (c == '\n') return LINE_OK;
            sb_putc(out, c);
        }
        if (eof) return out->len ? LINE_OK : LINE_EOF; /* a last line without '\n' */
        Wait w = wait_input();
        if (w == WAIT_TERM) return LINE_EOF;
        if (w == WAIT_INTERRUPT) return LINE_INTERRUPT;
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) eof = true;
        pos = 0;
        len = n > 0 ? (size_t)n : 0;
    }
}

/* Reads one line (without the newline) into out. */
static LineStatus read_line(bool tty, const char *prompt, StrBuf *out) {
    out->len = 0;
    if (out->s) out->s[0] = 0;
    if (!tty) return read_pipe_line(out);
    line_cancelled = false;
    char *line = readline(prompt);
    if (line_cancelled) {
        free(line);
        return LINE_INTERRUPT;
    }
    if (!line) return LINE_EOF;
    sb_puts(out, line);
    free(line);
    return LINE_OK;
}

static bool set_backend(Interp *I, const char *name, const char *who) {
    char known[128];
    if (rt_set_backend(I, name)) return true;
    fprintf(stderr, "%s: error: unknown backend '%s' (expected %s)\n", who, name,
            tt_backend_names(known, sizeof known));
    return false;
}
/* Tab completion: global names (builtins, the standard library, what the
 * session defined; rt_public_names) and the REPL's commands. */
static Interp *completion_interp;

static char *complete_name(const char *text, int state) {
    static const char **names;
    static int n, cap, next;
    static const char *const commands[] = {":help", ":quit", ":backend", ":ir", ":profile", NULL};
    if (state == 0) {
        n = 0;
        next = 0;
        rt_public_names(completion_interp, &names, &n, &cap);
        for (int i = 0; commands[i]; i++) TT_VEC_PUSH(names, n, cap, commands[i]);
    }
    size_t len = strlen(text);
    while (next < n) {
        const char *s = names[next++];
        if (strncmp(s, text, len) == 0) return strdup(s);
    }
    return NULL;
}

/* Runs one :command; false for :quit. */
static bool run_command(Interp *I, const ReplCmd *c) {
    StrBuf src = {0};
    repl_command_source(c, &src);
    switch (c->kind) {
    case REPL_CMD_QUIT:
        return false;
    case REPL_CMD_HELP:
        fputs(REPL_HELP, stdout);
        break;
    case REPL_CMD_IR:
        repl_ir(I, c->arg);
        break;
    case REPL_CMD_PROFILE:
        rt_run_source(I, "<:profile>", src.s, src.len, false);
        break;
    case REPL_CMD_BACKEND:
        if (!*c->arg)
            printf("%s\n", rt_backend_name(I));
        else
            set_backend(I, c->arg, "tt");
        break;
    case REPL_CMD_UNKNOWN:
        fprintf(stderr, "tt: error: unknown command '%s' (:help lists them)\n", c->text);
        break;
    }
    sb_free(&src);
    return true;
}

/* Returns 1 when the input ended inside an unfinished entry (piped input:
 * the error is reported), else 0. */
static int repl(Interp *I) {
    bool tty = isatty(0) && isatty(1);
    char *hist = NULL;
    if (tty) {
        hist = history_path();
        /* the handlers are ours (signals.h): libedit must not install its
         * own, and reads through getc_interruptible */
        rl_catch_signals = 0;
        rl_getc_function = getc_interruptible;
        using_history();
        completion_interp = I;
        rl_completion_entry_function = complete_name;
        if (hist) read_history(hist);
        if (!rt_config(I)->quiet) printf("tt %s - :help for help, :quit to leave\n", TT_VERSION);
    }
    ReplLines r = {0};
    StrBuf line = {0};
    int rc = 0;
    for (;;) {
        rt_sig_take_interrupt(); /* a Ctrl-C after the last poll is spent */
        LineStatus st = read_line(tty, repl_prompt(&r), &line);
        if (st == LINE_INTERRUPT) {
            repl_cancel(&r);
            continue;
        }
        if (st == LINE_EOF) {
            if (tty) putchar('\n');
            /* SIGTERM: no more running; main dies of it */
            if (rt_sig_pending != SIGTERM && repl_finish(&r)) {
                /* piped input ended inside an entry: the parser says what
                 * it lacks ("unexpected end of file") */
                rc = rt_run_source(I, r.name, r.entry.s, r.entry.len, true);
                fflush(stdout);
            }
            break;
        }
        ReplStep step = repl_feed(&r, line.s ? line.s : "", line.len);
        if (step == REPL_COMMAND) {
            if (tty) add_history(line.s);
            bool go_on = run_command(I, &r.cmd);
            fflush(stdout);
            if (!go_on) break;
        } else if (step == REPL_ENTRY) {
            if (tty) {
                char *h = strdup(r.entry.s);
                size_t l = strlen(h);
                while (l && h[l - 1] == '\n') h[--l] = 0;
                add_history(h);
                free(h);
            }
            rt_run_source(I, r.name, r.entry.s, r.entry.len, true);
            diag_reset_count();
            fflush(stdout);
            fflush(stderr);
        }
    }
    sb_free(&line);
    repl_free(&r);
    if (tty && hist) {
        write_history(hist); /* failures (read-only home) are ignored */
    }
    free(hist);
    return rc;
}

int main(int argc, char **argv) {
    const char *file = NULL, *backend = "jit";
    bool check = false, profile = false, explain = false, dump_graph = false, quiet = false;
    bool no_capture = false;
    bool dump_fuse = false, dump_loops = false, dump_quant = false, dump_kvcache = false;
    bool cache_info = false, cache_clear = false;
    const char *trace = NULL;
    long long seed = 0;
    int threads = 0, opt_level = 2, i; /* threads 0: all online cores */
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            file = a;
            i++;
            break;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("ttrun %s\n", TT_VERSION);
            return 0;
        } else if (strcmp(a, "--check") == 0) {
            check = true;
        } else if (strncmp(a, "--backend=", 10) == 0) {
            backend = a + 10;
        } else if (strcmp(a, "--backend") == 0 && i + 1 < argc) {
            backend = argv[++i];
        } else if (strncmp(a, "--seed=", 7) == 0) {
            char *end;
            seed = strtoll(a + 7, &end, 10);
            if (*end || end == a + 7) {
                fprintf(stderr, "ttrun: error: --seed needs an integer, got '%s'\n", a + 7);
                return 2;
            }
        } else if (strcmp(a, "--profile") == 0) {
            profile = true;
        } else if (strcmp(a, "--explain-schedule") == 0) {
            explain = true;
        } else if (strncmp(a, "--dump=", 7) == 0) {
            if (strcmp(a + 7, "graph") == 0)
                dump_graph = true;
            else if (strcmp(a + 7, "fuse") == 0)
                dump_fuse = true;
            else if (strcmp(a + 7, "loops") == 0)
                dump_loops = true;
            else if (strcmp(a + 7, "quant") == 0)
                dump_quant = true;
            else if (strcmp(a + 7, "kvcache") == 0)
                dump_kvcache = true;
            else {
                fprintf(stderr,
                        "ttrun: error: unknown --dump pass '%s' (available: graph, fuse, loops, "
                        "quant, kvcache)\n",
                        a + 7);
                return 2;
            }
        } else if (strncmp(a, "--trace=", 8) == 0 && a[8]) {
            trace = a + 8;
        } else if (strncmp(a, "--threads=", 10) == 0) {
            threads = atoi(a + 10);
            if (threads < 1) {
                fprintf(stderr, "ttrun: error: --threads needs a positive integer\n");
                return 2;
            }
        } else if (a[0] == '-' && a[1] == 'O' && a[2] >= '0' && a[2] <= '3' && !a[3]) {
            opt_level = a[2] - '0';
        } else if (strcmp(a, "-q") == 0) {
            quiet = true;
        } else if (strcmp(a, "--no-capture") == 0) {
            no_capture = true;
        } else if (strcmp(a, "--cache-info") == 0) {
            cache_info = true;
        } else if (strcmp(a, "--cache-clear") == 0) {
            cache_clear = true;
        } else if (strcmp(a, "--") == 0) {
            if (i + 1 < argc) file = argv[i + 1];
            i += 2;
            break;
        } else {
            fprintf(stderr, "ttrun: error: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (cache_info || cache_clear) return cache_command(cache_info, cache_clear);
    if (!tt_backend_find(backend, NULL)) {
        char known[128];
        fprintf(stderr, "ttrun: error: unknown backend '%s' (expected %s)\n", backend,
                tt_backend_names(known, sizeof known));
        return 2;
    }
    if (check && !file) {
        fprintf(stderr, "ttrun: error: --check needs a FILE\n");
        return 2;
    }
    /* A malformed TT_MAX_INPUT_BYTES fails every read (lang/input.h): say
     * so once, before the prelude's reads say it for each file. */
    uint64_t limit;
    char lerr[256];
    if (!tt_input_limit(&limit, lerr, sizeof lerr)) {
        fprintf(stderr, "ttrun: error: %s\n", lerr);
        return 2;
    }
    if (trace && file && !check) rt_trace_start(trace);
    Interp *I = rt_new_interp();
    /* Ctrl-C and SIGTERM (signals.h); the library never installs them.
     * After the prelude: an interrupt there would leave it half loaded. */
    rt_signals_install(!file);
    RtConfig cfg = *rt_config(I);
    cfg.seed = (uint64_t)seed;
    cfg.dump_graph = dump_graph;
    cfg.dump_fuse = dump_fuse;
    cfg.dump_loops = dump_loops;
    cfg.dump_quant = dump_quant;
    cfg.dump_kvcache = dump_kvcache;
    cfg.quiet = quiet;
    if (no_capture) cfg.capture = false;
    cfg.threads = threads;
    cfg.opt_level = opt_level;
    rt_configure(I, &cfg);
    rt_set_profiling(I, profile);
    rt_set_backend(I, backend); /* known: checked above */
    /* script arguments: a global list `args` */
    Value args = rt_list(I, 0);
    for (int k = i; k < argc; k++) rt_list_push(I, args, rt_cstr(I, argv[k]));
    rt_define_global(I, "args", args);
    int rc;
    if (!file)
        rc = repl(I);
    else if (check)
        rc = rt_check_file(I, file);
    else
        rc = rt_run_file(I, file);
    fflush(stdout);
    if (profile && file && !check) {
        rt_backends_print_profile(I, stderr);
        rt_capture_print(I, stderr);
    }
    if ((profile || explain) && file && !check) {
        tt_gemm_explain(stderr);
        jit_vec_explain(stderr);
        jit_conv_explain(stderr);
        lp_par_explain(stderr);
    }
    char terr[512];
    if (!rt_trace_finish(terr, sizeof terr)) {
        fprintf(stderr, "ttrun: error: --trace: %s\n", terr);
        rc = 1;
    }
    rt_free_interp(I);
    diag_shutdown();
    if (rt_sig_pending == SIGTERM) rt_signals_die(SIGTERM);
    /* a script stopped by Ctrl-C ends like one the shell killed: 128 + 2 */
    if (file && rt_sig_interrupted()) return 130;
    return rc ? 1 : 0;
}
