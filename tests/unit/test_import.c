/* test_import.c - imports through the C entry points the tools use:
 * ttrun --check (rt_check_file) follows imports without running them, ttc
 * (rt_run_definitions) runs only their definitions, and REPL entries
 * import relative to the current directory, once per interpreter.
 * The language tests tests/lang/imp_*.tt and err_import_*.tt cover the
 * rest (tests/lang/mod/ holds the modules).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "import.h"

#ifndef TT_SOURCE_DIR
#define TT_SOURCE_DIR "."
#endif

static Interp *I;
static FILE *diag_out;

static void setup(void) {
    I = rt_new_interp();
    diag_out = tmpfile();
    diag_set_stream(diag_out);
    diag_reset_count();
}

static void teardown(void) {
    rt_free_interp(I);
    diag_set_stream(NULL);
    fclose(diag_out);
    diag_reset_count();
}

static const char *diags(void) {
    static char buf[8192];
    fflush(diag_out);
    long n = ftell(diag_out);
    rewind(diag_out);
    size_t got = fread(buf, 1, n < (long)sizeof buf - 1 ? (size_t)n : sizeof buf - 1, diag_out);
    buf[got] = 0;
    fseek(diag_out, 0, SEEK_END);
    return buf;
}

static int entry(int k, const char *src) {
    char name[32];
    snprintf(name, sizeof name, "<stdin:%d>", k);
    return rt_run_source(I, name, src, strlen(src), false);
}

TestSuite(import, .init = setup, .fini = teardown);

Test(import, check_follows_imports_without_running_them) {
    cr_assert_eq(rt_check_file(I, TT_SOURCE_DIR "/tests/lang/imp_basic.tt"), 0, "%s", diags());
    /* checked, not run: neither the module's names nor the script's exist */
    cr_expect_null(env_find_local(I->globals, "PI"));
    cr_expect_null(env_find_local(I->globals, "sq"));
    cr_expect_eq(rt_check_file(I, TT_SOURCE_DIR "/tests/lang/err_import_check.tt"), 1);
    cr_expect(strstr(diags(), "tests/lang/mod/bad_check.tt:3:16: error: unknown name "
                              "'undefined_thing'"),
              "%s", diags());
}

Test(import, check_reports_a_cycle) {
    cr_expect_eq(rt_check_file(I, TT_SOURCE_DIR "/tests/lang/err_import_cycle.tt"), 1);
    cr_expect(strstr(diags(), "import cycle: mod/cyc_a.tt -> cyc_b.tt -> cyc_a.tt"), "%s", diags());
}

Test(import, definitions_only_for_ttc) {
    cr_assert_eq(chdir(TT_SOURCE_DIR "/tests/lang"), 0);
    FILE *f = fopen("/tmp/tt_test_import_defs.tt", "w");
    cr_assert(f);
    fprintf(f, "import \"%s/tests/lang/mod/geometry.tt\"\nprint(\"not run\")\nlet z = 1\n",
            TT_SOURCE_DIR);
    fclose(f);
    cr_assert_eq(rt_run_definitions(I, "/tmp/tt_test_import_defs.tt"), 0, "%s", diags());
    Value *sq = env_find_local(I->globals, "Square");
    cr_assert(sq, "the imported model is defined");
    cr_expect_eq(sq->kind, V_MODELDEF);
    cr_expect_eq(env_find_local(I->globals, "area")->kind, V_FUNC);
    cr_expect_null(env_find_local(I->globals, "PI"), "lets do not run under ttc");
    cr_expect_null(env_find_local(I->globals, "z"));
    unlink("/tmp/tt_test_import_defs.tt");
}

Test(import, repl_imports_relative_to_the_cwd_once) {
    cr_assert_eq(chdir(TT_SOURCE_DIR "/tests/lang"), 0);
    cr_assert_eq(entry(1, "import \"mod/geometry.tt\" as g\n"
                          "g.ORIGIN[0] = 7\n"
                          "let a = g.area(1.0)\n"
                          "let s = str(g)\n"),
                 0, "%s", diags());
    cr_expect_float_eq(env_find_local(I->globals, "a")->f, 3.14159, 1e-9);
    cr_expect_str_eq(((Str *)env_find_local(I->globals, "s")->o)->s, "module \"mod/geometry.tt\"");
    /* a later entry: the same module object, not a second run */
    cr_assert_eq(entry(2, "import \"./mod/geometry.tt\"\nlet o = ORIGIN[0]\n"), 0, "%s", diags());
    cr_expect_eq(env_find_local(I->globals, "o")->i, 7);
}

Test(import, repl_retries_a_module_that_failed) {
    cr_assert_eq(chdir(TT_SOURCE_DIR "/tests/lang"), 0);
    cr_expect_eq(entry(1, "import \"mod/bad_runtime.tt\"\n"), 1);
    cr_expect_eq(entry(2, "import \"mod/bad_runtime.tt\"\n"), 1);
    const char *d = diags();
    const char *first = strstr(d, "mod/bad_runtime.tt:3:9: error: index 5");
    cr_assert(first, "%s", d);
    cr_expect(strstr(first + 1, "mod/bad_runtime.tt:3:9: error: index 5"), "ran again: %s", d);
    cr_expect_null(strstr(d, "still being imported"));
    cr_expect_eq(entry(3, "import \"mod/nope.tt\"\n"), 1);
    cr_expect(strstr(diags(), "cannot import \"mod/nope.tt\": no such file (looked for "
                              "mod/nope.tt)"),
              "%s", diags());
}
