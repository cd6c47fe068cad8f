/* interp.c - the interpreter's lifetime, the prelude, running files and
 * REPL entries, and error reporting with the chain of model calls.
 */
#include "capture.h"
#include "eval.h"

#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "import.h"
#include "stack.h"

#ifndef TT_STDLIB_DIR
#define TT_STDLIB_DIR "lang/std"
#endif

/* The standard library of this binary: TT_STDLIB when set; else, for an
 * installed binary, PREFIX/share/tt/std next to its own PREFIX/bin (found
 * through /proc/self/exe, so a moved prefix still works); else the source
 * tree's lang/std the build embedded (a binary run from its build tree). */
static const char *default_stdlib_dir(void) {
    const char *env = getenv("TT_STDLIB");
    if (env && *env) return env;
    static char found[PATH_MAX + 32];
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            struct stat st;
            snprintf(found, sizeof found, "%s/../share/tt/std", exe);
            if (stat(found, &st) == 0 && S_ISDIR(st.st_mode)) return found;
        }
    }
    return TT_STDLIB_DIR;
}

Interp *rt_new_interp(void) {
    Interp *I = tt_xcalloc(1, sizeof(Interp));
    arena_init(&I->ev.ast_arena);
    ir_init(&I->lz.g);
    I->lz.gen = 1;
    rt_set_backend(I, "naive"); /* nothing pending yet */
    I->cfg.opt_level = 2;
    I->ev.training = true;
    I->cfg.threads = 0;
    /* captured calls (capture.c): TT_CAPTURE=0 turns them off, for A/B runs and debugging */
    const char *cap = getenv("TT_CAPTURE");
    I->cfg.capture = !(cap && strcmp(cap, "0") == 0);
    rng_seed(&I->ev.rng, 0);
    I->cfg.stdlib_dir = default_stdlib_dir();
    tt_stack_init(); /* the walks' stack budget counts from here (stack.h) */
    I->ev.globals = env_new(I, NULL);
    rt_register_builtins(I);
    rt_load_prelude(I);
    I->ev.nbuiltins = I->ev.globals->n; /* what a `let` should not shadow (check.h) */
    return I;
}

const RtConfig *rt_config(const Interp *I) {
    return &I->cfg;
}

void rt_configure(Interp *I, const RtConfig *c) {
    I->cfg = *c;
    rng_seed(&I->ev.rng, c->seed);
}

jmp_buf *rt_set_on_error(Interp *I, jmp_buf *jb) {
    jmp_buf *was = I->ev.on_error;
    I->ev.on_error = jb;
    return was;
}

void rt_set_training(Interp *I, bool on) {
    I->ev.training = on;
}

void rt_set_scalar_consts(Interp *I, bool on) {
    I->ev.scalar_consts = on;
}

void rt_free_interp(Interp *I) {
    if (!I) return;
    rt_capture_free(I); /* releases what the records hold while objects still can be */
    rt_owned_free(I);
    rt_free_all_objects(I); /* tensors drop their buffers, natives their data */
    env_free_all(I);
    rt_modules_free(I);
    rt_lazy_free(I);
    rt_backends_free(I);
    free(I->lz.params);
    free(I->ev.frames);
    arena_free(&I->ev.ast_arena);
    free(I);
}

/* -- errors -- */

void rt_push_frame(Interp *I, const char *what, SrcLoc site) {
    CallFrame f = {what, site, tt_stack_pos()};
    TT_VEC_PUSH(I->ev.frames, I->ev.nframes, I->ev.capframes, f);
}

void rt_pop_frame(Interp *I) {
    TT_ASSERT(I->ev.nframes > 0);
    I->ev.nframes--;
}

static bool in_prelude(SrcLoc loc) {
    return loc.file && strncmp(loc.file, "std/", 4) == 0;
}

SrcLoc rt_user_loc(Interp *I) {
    SrcLoc loc = I->ev.loc;
    for (int k = I->ev.nframes - 1; k >= 0 && in_prelude(loc); k--) loc = I->ev.frames[k].call_site;
    return loc;
}

static _Noreturn void raise_at(Interp *I, SrcLoc loc, const char *fmt, va_list ap) {
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    diag_error(loc, "%s", msg);
    for (int k = I->ev.nframes - 1; k >= 0; k--) {
        const CallFrame *f = &I->ev.frames[k];
        /* deep recursion: the 6 innermost and 4 outermost calls */
        if (I->ev.nframes > 12 && k == I->ev.nframes - 7) {
            diag_note(SRCLOC_NONE, "... %d more calls ...", I->ev.nframes - 10);
            k = 4;
            f = &I->ev.frames[k];
        }
        /* a library check reported at the user's call (_error) needs no
         * note pointing at the same place */
        if (k == I->ev.nframes - 1 && f->call_site.file == loc.file &&
            f->call_site.line == loc.line && f->call_site.col == loc.col)
            continue;
        /* import.c's frames: "in module "lib.tt", imported from here" */
        const char *how = strncmp(f->what, "module \"", 8) == 0 ? "imported" : "called";
        if (k > 0)
            diag_note(f->call_site, "in %s, %s from %s here", f->what, how,
                      I->ev.frames[k - 1].what);
        else
            diag_note(f->call_site, "in %s, %s from here", f->what, how);
    }
    if (!I->ev.on_error) {
        fprintf(stderr, "tt: fatal: error outside of a protected call\n");
        abort();
    }
    longjmp(*I->ev.on_error, 1);
}

_Noreturn void rt_error(Interp *I, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    raise_at(I, I->ev.loc, fmt, ap);
}

_Noreturn void rt_error_at(Interp *I, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    raise_at(I, loc, fmt, ap);
}

/* -- running -- */

/* Parses, checks and runs text; returns 0 or 1. */
static int run_text(Interp *I, const char *name, const char *text, size_t len, bool echo,
                    bool check_only, bool defs_only) {
    int nerr = 0;
    int before = diag_error_count();
    AstNode *prog = parse_source(&I->ev.ast_arena, name, text, len, &nerr);
    if (nerr > 0 || !prog) return 1;
    /* imported files are parsed and checked first (import.h); their
     * names are then known to this file's check */
    if (!rt_imports_load(I, prog, name)) {
        rt_imports_after_error(I);
        return 1;
    }
    int cerr = rt_check_ast(I, prog, echo);
    if (cerr > 0 || diag_error_count() > before) return 1;
    if (check_only) return 0;

    jmp_buf jb;
    jmp_buf *saved = I->ev.on_error;
    int saved_frames = I->ev.nframes, saved_depth = I->ev.depth, mark = rt_owned_mark(I);
    I->ev.on_error = &jb;
    int rc = 0;
    if (setjmp(jb) == 0) {
        rt_imports_defs_only(I, defs_only);
        if (defs_only)
            exec_definitions(I, prog);
        else
            exec_program(I, prog, echo);
    } else {
        rc = 1;
        /* what the failing statement's frames held: temporaries, argument
         * arrays, scopes, and state its blocks set */
        rt_owned_unwind(I, mark);
        I->ev.nframes = saved_frames;
        I->ev.depth = saved_depth;
        rt_imports_after_error(I);
    }
    I->ev.on_error = saved;
    fflush(stdout);
    return rc;
}

int rt_run_source(Interp *I, const char *name, const char *text, size_t len, bool echo) {
    return run_text(I, name, text, len, echo, false, false);
}

static char *read_source(const char *path, size_t *len) {
    char err[512];
    char *text = tt_read_file(path, len, err, sizeof err);
    if (!text)
        diag_file_error(path, "%s",
                        strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':'
                            ? err + strlen(path) + 2
                            : err);
    return text;
}

int rt_run_file(Interp *I, const char *path) {
    size_t len;
    char *text = read_source(path, &len);
    if (!text) return 1;
    int rc = run_text(I, path, text, len, false, false, false);
    free(text);
    return rc;
}

int rt_check_file(Interp *I, const char *path) {
    size_t len;
    char *text = read_source(path, &len);
    if (!text) return 1;
    int rc = run_text(I, path, text, len, false, true, false);
    free(text);
    return rc;
}

/* Used by ttc: runs only the model and fn definitions of a file. */
int rt_run_definitions(Interp *I, const char *path) {
    size_t len;
    char *text = read_source(path, &len);
    if (!text) return 1;
    int rc = run_text(I, path, text, len, false, false, true);
    free(text);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void rt_load_prelude(Interp *I) {
    DIR *d = opendir(I->cfg.stdlib_dir);
    if (!d) {
        fprintf(stderr, "tt: warning: standard library not found in %s (set TT_STDLIB)\n",
                I->cfg.stdlib_dir);
        return;
    }
    char **files = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 3 && strcmp(e->d_name + l - 3, ".tt") == 0)
            TT_VEC_PUSH(files, n, cap, tt_xstrdup(e->d_name));
    }
    closedir(d);
    qsort(files, (size_t)n, sizeof *files, cmp_str);
    for (int i = 0; i < n; i++) {
        StrBuf p = {0};
        sb_printf(&p, "%s/%s", I->cfg.stdlib_dir, files[i]);
        size_t len;
        char *text = read_source(p.s, &len);
        if (text) {
            int nerr = 0;
            /* Diagnostics and IR dumps name prelude files "std/NAME.tt",
             * independent of where the source tree is. */
            StrBuf shown = {0};
            sb_printf(&shown, "std/%s", files[i]);
            AstNode *prog = parse_source(&I->ev.ast_arena, shown.s, text, len, &nerr);
            sb_free(&shown);
            if (prog && nerr == 0) {
                jmp_buf jb;
                jmp_buf *saved = I->ev.on_error;
                int mark = rt_owned_mark(I);
                I->ev.on_error = &jb;
                if (setjmp(jb) == 0) {
                    exec_program(I, prog, false);
                } else {
                    rt_owned_unwind(I, mark);
                    I->ev.nframes = 0;
                }
                I->ev.on_error = saved;
            }
            free(text);
        }
        sb_free(&p);
        free(files[i]);
    }
    free(files);
}
