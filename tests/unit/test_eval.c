/* test_eval.c - the evaluator: values and printing, scopes, models, the
 * lazy graph and its realization, backward, the static checker, the rng.
 *
 * Programs run through rt_run_source; results are read back from the
 * globals. Diagnostics go to a temporary file so the tests can look at them.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interp_fixture.h" /* before check.h: value.h renames the AST operators */
#include "check.h"

static const char *fmt(Value v, bool repr) {
    static char buf[4096];
    StrBuf b = {0};
    sb_puts(&b, "");
    rt_format(I, v, &b, repr);
    snprintf(buf, sizeof buf, "%s", b.s);
    sb_free(&b);
    return buf;
}

static const float *fdata(const char *name) {
    Value v = fixture_global(name);
    cr_assert_eq(v.kind, V_TENSOR);
    Tensor *t = (Tensor *)v.o;
    cr_assert_eq(t->dtype, TY_F32);
    return rt_data(I, t);
}

TestSuite(eval_values, .init = fixture_open, .fini = fixture_close);
TestSuite(eval_models, .init = fixture_open, .fini = fixture_close);
TestSuite(eval_lazy, .init = fixture_open, .fini = fixture_close);
TestSuite(eval_check, .init = fixture_open, .fini = fixture_close);
TestSuite(eval_rng);

/* ---- values ---- */

Test(eval_values, float_repr_is_python_like) {
    const struct {
        double x;
        const char *want;
    } cases[] = {{1.0, "1.0"},     {0.1, "0.1"},       {0.30000000000000004, "0.30000000000000004"},
                 {1e-05, "1e-05"}, {1e16, "1e+16"},    {123456789.0, "123456789.0"},
                 {-2.5, "-2.5"},   {0.0001, "0.0001"}, {1.5e300, "1.5e+300"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        StrBuf b = {0};
        rt_format_float(cases[i].x, &b);
        cr_expect_str_eq(b.s, cases[i].want);
        sb_free(&b);
    }
}

Test(eval_values, arithmetic_and_containers) {
    cr_assert_eq(fixture_run("let a = 7 / 2\n"
                             "let b = -7 % 3\n"
                             "let c = 2 ** 10\n"
                             "let d = [1, \"s\", (2,), (x=1, y=2.5)]\n"
                             "let e = \"ab\" + \"cd\"\n"
                             "let f = [1, 2] + [3]\n"),
                 0, "%s", fixture_diags());
    cr_expect_float_eq(fixture_global("a").f, 3.5, 1e-12);
    cr_expect_eq(fixture_global("b").i, 2);
    cr_expect_eq(fixture_global("c").i, 1024);
    cr_expect_str_eq(fmt(fixture_global("d"), true), "[1, \"s\", (2,), (x=1, y=2.5)]");
    cr_expect_str_eq(fmt(fixture_global("e"), false), "abcd");
    cr_expect_str_eq(fmt(fixture_global("f"), false), "[1, 2, 3]");
}

Test(eval_values, structural_equality) {
    cr_assert_eq(fixture_run("let a = [1, [2, 3]] == [1, [2, 3]]\n"
                             "let b = (1, 2) == [1, 2]\n"
                             "let c = 1 == 1.0\n"),
                 0);
    cr_expect(fixture_global("a").b);
    cr_expect(!fixture_global("b").b);
    cr_expect(fixture_global("c").b);
}

Test(eval_values, scopes_and_closures) {
    cr_assert_eq(fixture_run("fn counter() {\n"
                             "    let n = 0\n"
                             "    fn next() {\n"
                             "        n += 1\n"
                             "        return n\n"
                             "    }\n"
                             "    return next\n"
                             "}\n"
                             "let c = counter()\n"
                             "c()\n"
                             "let r = c()\n"
                             "let x = 1\n"
                             "if true { let x = 5 }\n"),
                 0, "%s", fixture_diags());
    cr_expect_eq(fixture_global("r").i, 2);
    cr_expect_eq(fixture_global("x").i, 1);
}

Test(eval_values, runtime_error_is_reported_and_recovers) {
    cr_expect_eq(fixture_run("let xs = [1]\nlet y = xs[3]\n"), 1);
    cr_expect(
        strstr(fixture_diags(), "<test>:2:9: error: index 3 is out of range for list of length 1"),
        "%s", fixture_diags());
    /* the interpreter keeps working after an error */
    cr_expect_eq(fixture_run("let z = 2\n"), 0);
    cr_expect_eq(fixture_global("z").i, 2);
}

Test(eval_values, tensor_printing) {
    cr_assert_eq(fixture_run("let a = tensor([[1.0, 2.0], [3.0, 4.0]])\n"
                             "let b = tensor([0.5, -2.25, 100.0])\n"
                             "let c = tensor(3.5)\n"
                             "let d = tensor([0.00001, 1.0])\n"
                             "let e = arange(0, 2000)\n"),
                 0, "%s", fixture_diags());
    cr_expect_str_eq(fmt(fixture_global("a"), false), "[[1. 2.]\n [3. 4.]]");
    cr_expect_str_eq(fmt(fixture_global("b"), false), "[  0.5   -2.25 100.  ]");
    cr_expect_str_eq(fmt(fixture_global("c"), false), "3.5");
    cr_expect_str_eq(fmt(fixture_global("d"), false), "[1.e-05 1.e+00]");
    cr_expect_str_eq(fmt(fixture_global("e"), false), "[   0    1    2 ... 1997 1998 1999]");
}

/* ---- models ---- */

static const char *two_layer = "model Lin(i: int, o: int) {\n"
                               "    param w = ones([i, o])\n"
                               "    param b = zeros([o])\n"
                               "    forward(x: f32[B, i]) -> f32[B, o] { return x @ w + b }\n"
                               "}\n"
                               "model Net {\n"
                               "    fc1 = Lin(3, 4)\n"
                               "    blocks = [Lin(4, 4); 2]\n"
                               "    forward(x) {\n"
                               "        let h = fc1(x)\n"
                               "        for blk in blocks { h = blk(h) }\n"
                               "        return h\n"
                               "    }\n"
                               "}\n"
                               "let net = Net()\n";

Test(eval_models, dotted_parameter_names) {
    cr_assert_eq(fixture_run(two_layer), 0, "%s", fixture_diags());
    Value names = rt_parameters(I, fixture_global("net"), true);
    List *l = (List *)names.o;
    const char *want[] = {"fc1.w", "fc1.b", "blocks.0.w", "blocks.0.b", "blocks.1.w", "blocks.1.b"};
    cr_assert_eq(l->len, 6);
    for (int i = 0; i < 6; i++) {
        List *t = (List *)l->items[i].o;
        cr_expect_str_eq(((Str *)t->items[0].o)->s, want[i]);
        cr_expect_str_eq(((Tensor *)t->items[1].o)->name, want[i]);
    }
    rt_release(I, names);
    cr_expect_eq(I->lz.nparams, 6);
}

Test(eval_models, forward_values) {
    cr_assert_eq(fixture_run(two_layer), 0, "%s", fixture_diags());
    cr_assert_eq(fixture_run("let y = net(ones([2, 3]))\n"), 0, "%s", fixture_diags());
    const float *y = fdata("y");
    /* 3 -> 12 -> 48 in every column */
    for (int i = 0; i < 8; i++) cr_expect_float_eq(y[i], 48.0f, 1e-5);
}

Test(eval_models, annotation_mismatch_message) {
    cr_assert_eq(fixture_run(two_layer), 0);
    cr_expect_eq(fixture_run("let y = net.fc1(ones([2, 5]))\n"), 1);
    cr_expect(strstr(fixture_diags(), "Lin.forward: argument 'x' expects f32[B, i], got f32[2, 5] "
                                      "(dimension 1: 5 != 3)"),
              "%s", fixture_diags());
}

Test(eval_models, shape_error_has_call_chain) {
    cr_assert_eq(fixture_run("model A {\n"
                             "    param w = ones([5, 2])\n"
                             "    forward(x) { return x @ w }\n"
                             "}\n"
                             "model B {\n"
                             "    a = A()\n"
                             "    forward(x) { return a(x) }\n"
                             "}\n"),
                 0);
    cr_expect_eq(fixture_run("let b = B()\nb(ones([1, 3]))\n"), 1);
    const char *d = fixture_diags();
    cr_expect(strstr(d, "<test>:3:27: error: matmul shape mismatch: [1, 3] @ [5, 2]"), "%s", d);
    cr_expect(strstr(d, "<test>:7:25: note: in A.forward, called from B.forward here"), "%s", d);
    cr_expect(strstr(d, "<test>:2:1: note: in B.forward, called from here"), "%s", d);
}

Test(eval_models, params_unregister_when_freed) {
    cr_assert_eq(fixture_run(two_layer), 0);
    cr_expect_eq(I->lz.nparams, 6);
    cr_assert_eq(fixture_run("net = 0\n"), 0, "%s", fixture_diags());
    cr_expect_eq(I->lz.nparams, 0);
}

/* ---- lazy graph ---- */

Test(eval_lazy, realization_runs_once_per_value) {
    cr_assert_eq(fixture_run("let a = ones([2, 2])\n"
                             "let b = a * 3 + 1\n"
                             "let c = sum(b)\n"),
                 0);
    Tensor *b = (Tensor *)fixture_global("b").o, *c = (Tensor *)fixture_global("c").o;
    cr_expect_null(b->buf);
    cr_expect_null(c->buf);
    int before = I->lz.nexec;
    cr_expect_float_eq(((float *)rt_data(I, c))[0], 16.0f, 1e-6);
    cr_expect_eq(I->lz.nexec, before + 1);
    cr_expect_not_null(b->buf); /* every live lazy tensor realized together */
    cr_expect_float_eq(((float *)b->buf->data)[3], 4.0f, 1e-6);
    cr_expect_null(I->lz.lazy);
}

Test(eval_lazy, reset_keeps_data_and_bumps_generation) {
    cr_assert_eq(fixture_run("let a = ones([3]) + 1\n"), 0);
    Tensor *a = (Tensor *)fixture_global("a").o;
    uint64_t gen = I->lz.gen;
    rt_reset_graph(I);
    cr_expect_eq(I->lz.gen, gen + 1);
    cr_expect_eq(I->lz.g.n, 0);
    cr_expect_float_eq(((float *)a->buf->data)[2], 2.0f, 1e-6);
    /* a is used again: it becomes an input of the new graph */
    cr_assert_eq(fixture_run("let b = a * a\n"), 0);
    cr_expect_float_eq(fdata("b")[0], 4.0f, 1e-6);
}

Test(eval_lazy, backward_fills_grads) {
    cr_assert_eq(fixture_run("model M {\n"
                             "    param w = tensor([1.0, -2.0, 3.0])\n"
                             "    forward() { return sum(w * w) }\n"
                             "}\n"
                             "let m = M()\n"
                             "backward(m())\n"
                             "let g = m.w.grad\n"),
                 0, "%s", fixture_diags());
    const float *g = fdata("g");
    cr_expect_float_eq(g[0], 2.0f, 1e-5);
    cr_expect_float_eq(g[1], -4.0f, 1e-5);
    cr_expect_float_eq(g[2], 6.0f, 1e-5);
    cr_assert_eq(fixture_run("backward(m())\n"), 0, "%s", fixture_diags());
    cr_expect_float_eq(fdata("g")[2], 12.0f, 1e-5); /* accumulated into the same tensor */
}

Test(eval_lazy, backward_without_params_is_an_error) {
    cr_expect_eq(fixture_run("backward(sum(ones([2]) * 2))\n"), 1);
    cr_expect(strstr(fixture_diags(), "backward: loss does not depend on any parameter"), "%s",
              fixture_diags());
}

Test(eval_lazy, indexing_builds_slices) {
    cr_assert_eq(fixture_run("let t = reshape(arange(0, 12), [3, 4])\n"
                             "let r = t[1]\n"
                             "let s = t[:, 1:3]\n"
                             "let e = t[..., -1]\n"),
                 0, "%s", fixture_diags());
    cr_expect_str_eq(fmt(fixture_global("r"), false), "[4 5 6 7]");
    cr_expect_str_eq(fmt(fixture_global("s"), false), "[[ 1  2]\n [ 5  6]\n [ 9 10]]");
    cr_expect_str_eq(fmt(fixture_global("e"), false), "[ 3  7 11]");
}

/* ---- static checks ---- */

static int check_src(const char *src) {
    Arena ar;
    arena_init(&ar);
    int nerr = 0;
    AstNode *prog = parse_source(&ar, "<check>", src, strlen(src), &nerr);
    cr_assert_eq(nerr, 0, "%s", fixture_diags());
    const char *globals[] = {"print", "len"};
    int r = check_program(prog, globals, 2, false);
    arena_free(&ar);
    return r;
}

Test(eval_check, unknown_names_all_reported_with_suggestion) {
    cr_expect_eq(check_src("let fou = 1\nprint(foo)\nprint(bar)\n"), 2);
    const char *d = fixture_diags();
    cr_expect(strstr(d, "<check>:2:7: error: unknown name 'foo'"), "%s", d);
    cr_expect(strstr(d, "did you mean 'fou'?"), "%s", d);
    cr_expect(strstr(d, "<check>:3:7: error: unknown name 'bar'"), "%s", d);
}

Test(eval_check, scopes_params_and_dims) {
    cr_expect_eq(check_src("fn f(a, b=1) { let c = a + b\n return g(c) }\n"
                           "fn g(x) { return x }\n"
                           "model M(d: int) {\n"
                           "    param w = d\n"
                           "    forward(x: f32[B, d]) { return helper(x) + B + w }\n"
                           "    helper(x) { return x }\n"
                           "}\n"
                           "for (i, j) in [(1, 2)] { print(i + j) }\n"),
                 0, "%s", fixture_diags());
}

Test(eval_check, argument_counts) {
    cr_expect_eq(check_src("fn f(a, b) { return a }\nf(1, 2, 3)\nf(1)\nf(1, c=2)\nf(1, b=2)\n"), 3);
    const char *d = fixture_diags();
    cr_expect(strstr(d, "f() takes 2 arguments but 3 were given"), "%s", d);
    cr_expect(strstr(d, "f() missing argument 'b'"), "%s", d);
    cr_expect(strstr(d, "f() got an unexpected keyword argument 'c'"), "%s", d);
}

Test(eval_check, undeclared_assignment) {
    cr_expect_eq(check_src("let x = 1\ny = 2\nx = 3\n"), 1);
    cr_expect(strstr(fixture_diags(), "assignment to undeclared variable 'y'"), "%s",
              fixture_diags());
}

/* ---- rng ---- */

Test(eval_rng, reproducible_and_roughly_normal) {
    Rng a, b;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) cr_assert_eq(rng_next(&a), rng_next(&b));
    rng_seed(&a, 1);
    double sum = 0, sq = 0;
    int n = 20000;
    for (int i = 0; i < n; i++) {
        double x = rng_normal(&a);
        sum += x;
        sq += x * x;
    }
    cr_expect(fabs(sum / n) < 0.05, "mean %g", sum / n);
    cr_expect(fabs(sq / n - 1.0) < 0.05, "variance %g", sq / n);
    for (int i = 0; i < 1000; i++) {
        double u = rng_uniform(&a);
        cr_assert(u >= 0 && u < 1);
    }
}
