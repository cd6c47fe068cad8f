/* test_stack.c - issue 8: deep inputs end in an error, never in SIGSEGV.
 *
 * The stack budget (lang/stack.c) counts bytes; the checker, the evaluator
 * and ast_print stop or work iteratively; ==, printing and freeing of
 * values nested 200,000 deep or around a cycle take no stack in proportion
 * to the depth; a REPL session keeps its state after such an error. Most
 * tests lower the budget with TT_STACK_LIMIT so small inputs are enough.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "loop.h"
#include "stack.h"
#include "interp_fixture.h"

/* Every test runs in a process of its own (Criterion), so the variable
 * does not leak; rt_new_interp measures the budget anew. */
static void setup(void) {
    setenv("TT_STACK_LIMIT", "64K", 1);
    fixture_open();
}

static void teardown(void) {
    fixture_close();
    diag_shutdown();
}

TestSuite(stack, .init = setup, .fini = teardown);
TestSuite(stack_guard);

/* prefix, then `n` copies of term joined by op, on one line; the caller
 * frees it. */
static char *chain(const char *prefix, const char *term, const char *op, int n) {
    StrBuf b = {0};
    sb_puts(&b, prefix);
    for (int i = 0; i < n; i++) {
        if (i) sb_puts(&b, op);
        sb_puts(&b, term);
    }
    sb_putc(&b, '\n');
    return b.s;
}

static int run(const char *name, const char *src) {
    int rc = rt_run_source(I, name, src, strlen(src), true);
    diag_reset_count();
    return rc;
}

/* ---- the budget ---- */

/* Recurses until the budget runs out. Each frame hands its buffer to the
 * next one, which writes to it, so the compiler can turn nothing into a
 * loop and every level keeps a frame. */
static int descend(volatile char *parent, int depth, size_t *used, uintptr_t base) {
    volatile char pad[64];
    parent[0] = (char)depth;
    if (tt_stack_exhausted()) {
        *used = base - tt_stack_pos();
        return depth;
    }
    int r = descend(pad, depth + 1, used, base);
    return r + (pad[0] != (char)(depth + 1));
}

Test(stack_guard, budget_is_bytes_from_the_base) {
    setenv("TT_STACK_LIMIT", "65536", 1);
    tt_stack_init();
    cr_assert_eq(tt_stack_budget(), 65536);
    uintptr_t base = tt_stack_pos();
    size_t used = 0;
    volatile char top[1];
    int depth = descend(top, 0, &used, base);
    cr_expect_gt(depth, 10, "stopped after %d frames", depth);
    /* it stops once past the budget, within a frame or so of it */
    cr_expect_geq(used, 65536 - 1024, "used %zu", used);
    cr_expect_leq(used, 65536 + 16384, "used %zu", used);
    char s[32];
    tt_stack_describe(s, sizeof s);
    cr_expect_str_eq(s, "64 KiB");
}

Test(stack_guard, suffixes_and_bad_values) {
    setenv("TT_STACK_LIMIT", "1M", 1);
    tt_stack_init();
    cr_expect_eq(tt_stack_budget(), (size_t)1 << 20);
    /* a bad value is ignored (with a warning): the default budget, which
     * is the stack less a reserve, is larger than 64 KiB */
    setenv("TT_STACK_LIMIT", "lots", 1);
    tt_stack_init();
    cr_expect_gt(tt_stack_budget(), (size_t)1 << 16);
    /* a limit above what the stack has is capped by the stack */
    setenv("TT_STACK_LIMIT", "1G", 1);
    tt_stack_init();
    size_t capped = tt_stack_budget();
    unsetenv("TT_STACK_LIMIT");
    tt_stack_init();
    cr_expect_eq(capped, tt_stack_budget());
}

/* ---- the checker and the evaluator ---- */

Test(stack, checker_reports_a_long_chain) {
    char *src = chain("let x = ", "1", " + ", 5000);
    cr_expect_eq(run("<chain>", src), 1);
    cr_expect(strstr(fixture_diags(),
                     "<chain>:1:9: error: expression too deeply nested for the 64 KiB "
                     "stack limit (TT_STACK_LIMIT)"),
              "%s", fixture_diags());
    free(src);
}

/* The evaluator has its own guard: run a parsed chain without the checker. */
static void eval_unchecked(const char *name, const char *src) {
    int nerr = 0;
    AstNode *prog = parse_source(&I->ev.ast_arena, name, src, strlen(src), &nerr);
    cr_assert_eq(nerr, 0);
    jmp_buf jb;
    I->ev.on_error = &jb;
    bool failed = false;
    if (setjmp(jb) == 0)
        exec_program(I, prog, false);
    else
        failed = true;
    I->ev.on_error = NULL;
    I->ev.nframes = 0;
    I->ev.depth = 0;
    cr_expect(failed, "%s ran to the end", name);
}

Test(stack, evaluator_reports_long_chains) {
    const char *cases[][4] = {
        {"<add>", "let x = ", "1", " + "},
        {"<and>", "let x = ", "true", " and "},
        {"<str>", "let x = ", "\"a\"", " + "},
        {"<index>", "let a = [0]\nlet x = a", "[0]", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *src = chain(cases[i][1], cases[i][2], cases[i][3], 5000);
        eval_unchecked(cases[i][0], src);
        free(src);
    }
    const char *d = fixture_diags();
    cr_expect(strstr(d, "<add>:1:9: error: expression too deeply nested"), "%s", d);
    cr_expect(strstr(d, "<and>:1:9: error: expression too deeply nested"), "%s", d);
    cr_expect(strstr(d, "<str>:1:9: error: expression too deeply nested"), "%s", d);
    cr_expect(strstr(d, "<index>:2:9: error: expression too deeply nested"), "%s", d);
}

Test(stack, recursion_points_at_the_call) {
    cr_expect_eq(run("<rec>", "fn f(n) {\n"
                              "    if n == 0 { return 0 }\n"
                              "    return f(n - 1) + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1\n"
                              "}\n"
                              "f(800)\n"),
                 1);
    cr_expect(strstr(fixture_diags(), "<rec>:3:12: error: stack overflow: recursion too deep ("),
              "%s", fixture_diags());
    cr_expect(strstr(fixture_diags(), "note: in f, called from f here"), "%s", fixture_diags());
}

Test(stack, repl_keeps_its_state) {
    cr_assert_eq(run("<stdin:1>", "let x = 41\nlet l = [x]\n"), 0, "%s", fixture_diags());
    char *src = chain("x + ", "1", " + ", 5000);
    cr_expect_eq(run("<stdin:2>", src), 1);
    free(src);
    cr_expect_eq(run("<stdin:3>", "fn f(n) { return f(n + 1) + 1 + 1 + 1 + 1 + 1 + 1 + 1 }\n"
                                  "f(0)\n"),
                 1);
    cr_expect_eq(I->ev.nframes, 0);
    cr_expect_eq(I->ev.depth, 0);
    cr_assert_eq(run("<stdin:4>", "x = x + 1\nl.append(x)\n"), 0, "%s", fixture_diags());
    Value *x = env_find_local(I->ev.globals, "x");
    cr_assert(x);
    cr_expect_eq(x->i, 42);
    StrBuf b = {0};
    rt_format(I, *env_find_local(I->ev.globals, "l"), &b, true);
    cr_expect_str_eq(b.s, "[41, 42]");
    sb_free(&b);
}

/* ---- values ---- */

/* [[[...[leaf]...]]] n deep (new reference). */
static Value nest(Value leaf, int n) {
    Value v = leaf;
    for (int i = 0; i < n; i++) {
        Value l = rt_list(I, 0);
        rt_list_push(I, l, v);
        v = l;
    }
    return v;
}

Test(stack, equal_and_free_deep_lists) {
    Value a = nest(vint(1), 200000), b = nest(vint(1), 200000), c = nest(vint(2), 200000);
    cr_expect(rt_equal(I, a, b));
    cr_expect(!rt_equal(I, a, c));
    StrBuf s = {0};
    rt_format(I, a, &s, true);
    cr_expect_lt(s.len, 200, "printing stops %zu characters in", s.len);
    sb_free(&s);
    rt_release(I, a);
    rt_release(I, b);
    rt_release(I, c);
    Value d = nest(VNONE, 1000000);
    rt_release(I, d); /* recursive, this would take ~100 MB of stack */
}

Test(stack, cycles_compare_and_print) {
    /* a = [1, a], b = [1, b], c = [1, [1, c]]: the same infinite list */
    Value a = rt_list(I, 0), b = rt_list(I, 0), c = rt_list(I, 0), c1 = rt_list(I, 0);
    rt_list_push(I, a, vint(1));
    rt_list_push(I, a, rt_retain(a));
    rt_list_push(I, b, vint(1));
    rt_list_push(I, b, rt_retain(b));
    rt_list_push(I, c, vint(1));
    rt_list_push(I, c, rt_retain(c1));
    rt_list_push(I, c1, vint(1));
    rt_list_push(I, c1, rt_retain(c));
    cr_expect(rt_equal(I, a, a));
    cr_expect(rt_equal(I, a, b));
    cr_expect(rt_equal(I, a, c));
    ((List *)c1.o)->items[0] = vint(2);
    cr_expect(!rt_equal(I, a, c));
    StrBuf s = {0};
    rt_format(I, c, &s, true);
    cr_expect_str_eq(s.s, "[1, [2, [...]]]");
    sb_free(&s);
    rt_release(I, c1);
    rt_release(I, a);
    rt_release(I, b);
    rt_release(I, c); /* the cycles stay for rt_free_interp */
}

/* ---- ttc --emit=ast ---- */

Test(stack, ast_print_is_linear_in_the_tree) {
    int n = 20000;
    char *src = chain("let x = ", "1", " + ", n);
    Arena ar;
    arena_init(&ar);
    int nerr = 0;
    AstNode *prog = parse_source(&ar, "<ast>", src, strlen(src), &nerr);
    cr_assert_eq(nerr, 0);
    FILE *f = tmpfile();
    ast_print(f, prog);
    long size = ftell(f);
    rewind(f);
    char line[512];
    int lines = 0;
    size_t longest = 0;
    bool marked = false;
    while (fgets(line, sizeof line, f)) {
        lines++;
        if (strlen(line) > longest) longest = strlen(line);
        if (strstr(line, "@20001 INT 1 1:9")) marked = true;
    }
    fclose(f);
    arena_free(&ar);
    free(src);
    cr_expect_eq(lines, 2 * n + 1); /* PROGRAM, LET, n - 1 BINARY, n INT */
    cr_expect_leq(longest, 100, "a line of %zu characters", longest);
    cr_expect_lt(size, 100L * lines);
    cr_expect(marked, "the deepest line does not say its depth");
}

/* ---- the JIT ---- */

/* x = x + 1 in a loop makes a graph as deep as the loop is long; fused into
 * one kernel, lowering and codegen would recurse that deep (it crashed at
 * 100,000). Fused chains stop at 256 nodes: 1000 make four kernels or so. */
Test(stack_guard, fused_chains_are_cut) {
    const SrcLoc L0 = {0};
    IrGraph g;
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){1, {4}}, NULL, L0);
    for (int i = 0; i < 1000; i++) x = ir_unary(&g, OP_NEG, x, L0);
    ir_mark_output(&g, x);
    LpProg *p = lp_lower(&g, true);
    cr_expect_geq(p->nkernels, 4, "%d kernels", p->nkernels);
    cr_expect_leq(p->nkernels, 5, "%d kernels", p->nkernels);
    for (int k = 0; k < p->nkernels; k++)
        cr_expect_leq(p->kernels[k].nfused, 256, "kernel %d fuses %d nodes", k,
                      p->kernels[k].nfused);
    lp_free(p);
    ir_free(&g);
}
