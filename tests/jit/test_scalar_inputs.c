/* test_scalar_inputs.c - numbers that flow into tensor code are runtime
 * inputs of the graph (runtime/graph/scalars.c): a loop over indices, positions or
 * learning rates compiles a handful of graphs whatever its length, and gives
 * the same numbers on both backends.
 *
 * Programs run through rt_run_source on the JIT; the count is
 * jit_stats().compiles. The on-disk cache is off so a count never depends on
 * what an earlier run left there.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "jit.h"

typedef struct Run {
    int64_t compiles; /* graphs the JIT compiled (0 on the naive backend) */
    int nexec;        /* execution graphs run */
    double result;    /* the global `result` */
} Run;

static Run run_on(const char *b, bool consts, const char *fmt, int n) {
    setenv("TT_CACHE_DIR", "off", 1);
    char src[2048];
    snprintf(src, sizeof src, fmt, n);
    Interp *I = rt_new_interp();
    rt_set_backend(I, b);
    rt_set_scalar_consts(I, consts);
    int rc = rt_run_source(I, "<test>", src, strlen(src), false);
    cr_assert_eq(rc, 0, "program failed:\n%s", src);
    Run r = {0};
    r.nexec = I->lz.nexec;
    r.compiles = rt_backend_stats(I).compiles;
    Value *v = env_find_local(I->ev.globals, "result");
    cr_assert(v, "no global 'result'");
    r.result = rt_to_float(I, *v, "result");
    rt_free_interp(I);
    return r;
}

/* Runs the program (one %d: the loop length) for n and for 3n iterations on
 * the JIT and on the naive runtime: the JIT compiles at most `most` graphs,
 * the same number for both lengths, while running one graph or more per
 * iteration; both backends compute the same result (to float tolerance). */
static void check_loop(const char *fmt, int n, int most) {
    Run a = run_on("jit", false, fmt, n);
    Run b = run_on("jit", false, fmt, 3 * n);
    cr_expect_geq(b.nexec, 3 * n, "one graph per iteration at least (%d runs)", b.nexec);
    cr_expect_leq(a.compiles, most, "%lld graphs compiled for %d iterations", (long long)a.compiles,
                  n);
    cr_expect_eq(a.compiles, b.compiles,
                 "the count depends on the loop length: %lld for %d, %lld for %d",
                 (long long)a.compiles, n, (long long)b.compiles, 3 * n);
    Run na = run_on("naive", false, fmt, 3 * n);
    cr_expect_eq(na.compiles, 0);
    /* the JIT contracts multiply-adds into FMAs: float tolerance */
    cr_expect_leq(fabs(b.result - na.result), 1e-5 * fmax(1.0, fabs(na.result)),
                  "jit %.17g, naive %.17g", b.result, na.result);
}

/* item(a[i, j]) in a loop: today's example compiled one graph per (i, j) */
static const char *index_loop = "let a = randn([10, 7], seed=3)\n"
                                "let result = 0.0\n"
                                "for i in 0..%d { result = result + item(a[i %% 10, i %% 7]) }\n";

Test(scalar_inputs, index_loop_compiles_once) {
    check_loop(index_loop, 100, 2);
}

/* the mask of a decode step: position t against arange(ctx) */
Test(scalar_inputs, position_loop_compiles_once) {
    check_loop("let ctx = 64\n"
               "let result = 0.0\n"
               "for t in 0..%d { result = result + item(sum(arange(ctx) <= t)) }\n",
               64, 2);
}

/* rows, a row's slice, a column, an int on a middle dim, negative indices */
Test(scalar_inputs, index_forms_compile_once) {
    check_loop("let a = randn([5, 4, 3], seed=1)\n"
               "let result = 0.0\n"
               "for i in 0..%d {\n"
               "    let r = i %% 5\n"
               "    result = result + item(sum(a[r])) + item(sum(a[r, 1:3]))\n"
               "    result = result + item(sum(a[:, r %% 4])) + item(sum(a[1:3, r %% 4, 0]))\n"
               "    result = result + item(a[-1 - r, r - 4, -1])\n"
               "}\n",
               10, 5);
}

/* a learning rate and a scalar that change every step */
Test(scalar_inputs, scalar_loop_compiles_once) {
    check_loop("let w = randn([8], seed=2)\n"
               "let result = 0.0\n"
               "for k in 0..%d {\n"
               "    let lr = 1.0 / (k + 2)\n"
               "    w = w - lr * (w * 0.5 - k)\n"
               "    result = result + item(sum(maximum(w, lr)))\n"
               "}\n",
               20, 2);
}

/* the gradient through a variable index, applied in a loop */
Test(scalar_inputs, gradient_loop_compiles_a_handful) {
    check_loop("model M { param w = ones([6, 3]) }\n"
               "let m = M()\n"
               "let opt = SGD(m, lr=0.1)\n"
               "let result = 0.0\n"
               "for i in 0..%d {\n"
               "    backward(m.w[i %% 6, i %% 3] * 2.0)\n"
               "    opt.step()\n"
               "    result = result + item(sum(m.w))\n"
               "}\n",
               12, 6);
}

/* literals stay constants (folded into the code): two literal indices are
 * two graphs; ttc's tracing mode keeps every number a constant */
Test(scalar_inputs, literals_and_tracing_stay_constants) {
    Run lit = run_on("jit", false,
                     "let a = randn([4, 4], seed=3)\n"
                     "let result = item(a[0, 1]) + item(a[2, 3]) + %d\n",
                     0);
    cr_expect_eq(lit.compiles, 2);
    Run traced = run_on("jit", true, index_loop, 5);
    cr_expect_eq(traced.compiles, 5, "%lld", (long long)traced.compiles);
}
