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
#include "interp_fixture.h"

#ifndef TT_SOURCE_DIR
#define TT_SOURCE_DIR "."
#endif

static int entry(int k, const char *src) {
    char name[32];
    snprintf(name, sizeof name, "<stdin:%d>", k);
    return rt_run_source(I, name, src, strlen(src), false);
}

TestSuite(import, .init = fixture_open, .fini = fixture_close);

Test(import, check_follows_imports_without_running_them) {
    cr_assert_eq(rt_check_file(I, TT_SOURCE_DIR "/tests/lang/imp_basic.tt"), 0, "%s",
                 fixture_diags());
    /* checked, not run: neither the module's names nor the script's exist */
    cr_expect_null(env_find_local(I->ev.globals, "PI"));
    cr_expect_null(env_find_local(I->ev.globals, "sq"));
    cr_expect_eq(rt_check_file(I, TT_SOURCE_DIR "/tests/lang/err_import_check.tt"), 1);
    cr_expect(strstr(fixture_diags(), "tests/lang/mod/bad_check.tt:3:16: error: unknown name "
                                      "'undefined_thing'"),
              "%s", fixture_diags());
}

Test(import, check_reports_a_cycle) {
    cr_expect_eq(rt_check_file(I, TT_SOURCE_DIR "/tests/lang/err_import_cycle.tt"), 1);
    cr_expect(strstr(fixture_diags(), "import cycle: mod/cyc_a.tt -> cyc_b.tt -> cyc_a.tt"), "%s",
              fixture_diags());
}

Test(import, definitions_only_for_ttc) {
    cr_assert_eq(chdir(TT_SOURCE_DIR "/tests/lang"), 0);
    FILE *f = fopen("/tmp/tt_test_import_defs.tt", "w");
    cr_assert(f);
    fprintf(f, "import \"%s/tests/lang/mod/geometry.tt\"\nprint(\"not run\")\nlet z = 1\n",
            TT_SOURCE_DIR);
    fclose(f);
    cr_assert_eq(rt_run_definitions(I, "/tmp/tt_test_import_defs.tt"), 0, "%s", fixture_diags());
    Value *sq = env_find_local(I->ev.globals, "Square");
    cr_assert(sq, "the imported model is defined");
    cr_expect_eq(sq->kind, V_MODELDEF);
    cr_expect_eq(env_find_local(I->ev.globals, "area")->kind, V_FUNC);
    cr_expect_null(env_find_local(I->ev.globals, "PI"), "lets do not run under ttc");
    cr_expect_null(env_find_local(I->ev.globals, "z"));
    unlink("/tmp/tt_test_import_defs.tt");
}

Test(import, repl_imports_relative_to_the_cwd_once) {
    cr_assert_eq(chdir(TT_SOURCE_DIR "/tests/lang"), 0);
    cr_assert_eq(entry(1, "import \"mod/geometry.tt\" as g\n"
                          "g.ORIGIN[0] = 7\n"
                          "let a = g.area(1.0)\n"
                          "let s = str(g)\n"),
                 0, "%s", fixture_diags());
    cr_expect_float_eq(env_find_local(I->ev.globals, "a")->f, 3.14159, 1e-9);
    cr_expect_str_eq(((Str *)env_find_local(I->ev.globals, "s")->o)->s,
                     "module \"mod/geometry.tt\"");
    /* a later entry: the same module object, not a second run */
    cr_assert_eq(entry(2, "import \"./mod/geometry.tt\"\nlet o = ORIGIN[0]\n"), 0, "%s",
                 fixture_diags());
    cr_expect_eq(env_find_local(I->ev.globals, "o")->i, 7);
}

Test(import, repl_retries_a_module_that_failed) {
    cr_assert_eq(chdir(TT_SOURCE_DIR "/tests/lang"), 0);
    cr_expect_eq(entry(1, "import \"mod/bad_runtime.tt\"\n"), 1);
    cr_expect_eq(entry(2, "import \"mod/bad_runtime.tt\"\n"), 1);
    const char *d = fixture_diags();
    const char *first = strstr(d, "mod/bad_runtime.tt:3:9: error: index 5");
    cr_assert(first, "%s", d);
    cr_expect(strstr(first + 1, "mod/bad_runtime.tt:3:9: error: index 5"), "ran again: %s", d);
    cr_expect_null(strstr(d, "still being imported"));
    cr_expect_eq(entry(3, "import \"mod/nope.tt\"\n"), 1);
    cr_expect(strstr(fixture_diags(), "cannot import \"mod/nope.tt\": no such file (looked for "
                                      "mod/nope.tt)"),
              "%s", fixture_diags());
}
