/* interp_fixture.h - the interpreter fixture of the evaluator-level unit
 * tests (test_eval.c, test_containers.c, test_import.c, test_stack.c): one
 * interpreter per test, its diagnostics captured in a temporary file.
 * Included once per test file; everything here is static to that file. */
#ifndef TT_INTERP_FIXTURE_H
#define TT_INTERP_FIXTURE_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "eval.h"

static Interp *I;
static FILE *diag_out;

static inline void fixture_open(void) {
    I = rt_new_interp();
    diag_out = tmpfile();
    diag_set_stream(diag_out);
    diag_reset_count();
}

static inline void fixture_close(void) {
    rt_free_interp(I);
    diag_set_stream(NULL);
    fclose(diag_out);
    diag_reset_count();
}

/* Runs source text as a script (no echo); 0 or 1 after diagnostics. */
static inline int fixture_run(const char *src) {
    return rt_run_source(I, "<test>", src, strlen(src), false);
}

/* Everything written to the diagnostics stream so far (static buffer, large
 * enough for the quoted source lines of long chains). */
static inline const char *fixture_diags(void) {
    static char buf[1 << 20];
    fflush(diag_out);
    long n = ftell(diag_out);
    rewind(diag_out);
    size_t got = fread(buf, 1, n < (long)sizeof buf - 1 ? (size_t)n : sizeof buf - 1, diag_out);
    buf[got] = 0;
    fseek(diag_out, 0, SEEK_END);
    return buf;
}

/* The value of a global (borrowed); fails the test when there is none. */
static inline Value fixture_global(const char *name) {
    Value *v = env_find_local(I->ev.globals, name);
    cr_assert(v, "no global %s", name);
    return *v;
}

#endif
