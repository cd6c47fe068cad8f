/* test_spec.c - the reference documents match the program: every global
 * name a user sees (the builtins in C, the standard library's definitions,
 * ttrun's `args`; what the REPL completes, rt_public_names) is documented
 * in spec/builtins.md.
 *
 * "Documented" means the name opens a code span (`name(x, axis=-1)`,
 * `Linear(fan_in, fan_out)`, `args`) or is called inside one (`f(x)`,
 * `clip(...)`): a table row or a heading of its own, not a mention in
 * passing. A new builtin fails this test until it has its line.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import.h"
#include "readfile.h"

/* Globals ttrun defines for scripts, beyond a fresh interpreter's. */
static const char *const ttrun_globals[] = {"args"};

static bool is_ident(char c) {
    return isalnum((unsigned char)c) || c == '_';
}

/* Does a code span of doc (text between backticks) document name? */
static bool documented(const char *doc, const char *name) {
    size_t n = strlen(name);
    const char *p = doc;
    while ((p = strchr(p, '`'))) {
        const char *start = ++p;
        const char *end = strchr(start, '`');
        if (!end) break;
        for (const char *q = start; q + n <= end; q++) {
            if (strncmp(q, name, n) != 0) continue;
            if (q > start && is_ident(q[-1])) continue;
            const char *after = q + n;
            if (after < end && is_ident(*after)) continue;
            if (q == start || (after < end && *after == '(')) return true;
        }
        p = end + 1;
    }
    return false;
}

Test(spec, every_builtin_is_in_builtins_md) {
    Interp *I = rt_new_interp();
    const char **names = NULL;
    int n = 0, cap = 0;
    rt_public_names(I, &names, &n, &cap);
    for (size_t i = 0; i < sizeof ttrun_globals / sizeof *ttrun_globals; i++)
        TT_VEC_PUSH(names, n, cap, ttrun_globals[i]);
    cr_assert_gt(n, 50, "only %d globals: is the standard library loaded?", n);
    char *doc = tu_read_source("spec/builtins.md");
    StrBuf missing = {0};
    int nmissing = 0;
    for (int i = 0; i < n; i++) {
        if (documented(doc, names[i])) continue;
        sb_printf(&missing, " %s", names[i]);
        nmissing++;
    }
    cr_expect_eq(nmissing, 0, "not documented in spec/builtins.md:%s", missing.s ? missing.s : "");
    sb_free(&missing);
    free(doc);
    free(names);
    rt_free_interp(I);
}

/* The rule itself: a mention in passing does not count. */
Test(spec, documented_means_a_span_of_its_own) {
    const char *doc = "| `foo(x, y=1)` | x |\n"
                      "see `bar` and `qux baz` and `call(zap(1))`, `wrap_it` ok\n";
    cr_expect(documented(doc, "foo"));
    cr_expect(documented(doc, "bar"));
    cr_expect(documented(doc, "qux"));
    cr_expect(!documented(doc, "baz"));
    cr_expect(documented(doc, "zap"));
    cr_expect(!documented(doc, "wrap"));
    cr_expect(!documented(doc, "it"));
    cr_expect(!documented(doc, "y"));
}
