/* test_vardim.c - a dimension that varies from call to call (a sequence
 * length T) runs on a few padded bucket graphs, not one compiled graph per
 * value (compiler/jit/shapefam.c; spec/jit.md, "Varying dimensions").
 *
 * Programs run through rt_run_source on the JIT with buckets on and off
 * (TT_JIT_BUCKETS) and on the naive runtime: with buckets the number of
 * compiled graphs grows with log2 of the longest length, not with the number
 * of lengths; the results equal the reference's and the per-value
 * compilation's. The on-disk cache is off so a count never depends on what
 * an earlier run left there.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "jit.h"

typedef struct Run {
    int64_t compiles, bucket_runs;
    double result; /* the global `result` */
} Run;

static Run run_on(const char *b, bool buckets, const char *fmt, int n) {
    setenv("TT_CACHE_DIR", "off", 1);
    setenv("TT_JIT_BUCKETS", buckets ? "on" : "off", 1);
    char src[2048];
    snprintf(src, sizeof src, fmt, n);
    Interp *I = rt_new_interp();
    rt_set_backend(I, b);
    int rc = rt_run_source(I, "<test>", src, strlen(src), false);
    cr_assert_eq(rc, 0, "program failed:\n%s", src);
    Run r = {0};
    TtBackendStats st = rt_backend_stats(I);
    r.compiles = st.compiles;
    r.bucket_runs = st.bucket_runs;
    Value *v = env_find_local(I->ev.globals, "result");
    cr_assert(v, "no global 'result'");
    r.result = rt_to_float(I, *v, "result");
    rt_free_interp(I);
    unsetenv("TT_JIT_BUCKETS");
    return r;
}

static void expect_close(double got, double want, double rel, const char *what) {
    cr_expect_leq(fabs(got - want), rel * fmax(1.0, fabs(want)), "%s: %.17g, want %.17g", what, got,
                  want);
}

/* The program (one %d: the number of lengths) with n lengths: with buckets
 * at most `most` graphs compile, and per value at least n; the results
 * agree with per-value compilation and with the naive runtime. */
static void check_lengths(const char *fmt, int n, int most, bool per_value) {
    Run on = run_on("jit", true, fmt, n);
    Run naive = run_on("naive", true, fmt, n);
    cr_expect_leq(on.compiles, most, "%lld graphs compiled for %d lengths", (long long)on.compiles,
                  n);
    cr_expect_geq(on.bucket_runs, n / 2, "%lld padded runs", (long long)on.bucket_runs);
    expect_close(on.result, naive.result, 1e-4, "buckets vs naive");
    if (!per_value) return;
    Run off = run_on("jit", false, fmt, n);
    cr_expect_geq(off.compiles, n, "per value: %lld graphs for %d lengths", (long long)off.compiles,
                  n);
    cr_expect_eq(off.bucket_runs, 0);
    expect_close(on.result, off.result, 1e-5, "buckets vs per value");
}

/* An MLP over the first t rows of a matrix (a slice up to T of a fixed
 * input), then the sum of the result in a graph of its own (a sum over T
 * of a zero-padded input). */
static const char *mlp_rows = "let net = MLP(8, 32)\n"
                              "let x = randn([64, 8], seed=1)\n"
                              "let result = 0.0\n"
                              "for t in 3..3 + %d {\n"
                              "    let y = net(x[0:t])\n"
                              "    reset_graph()\n"
                              "    result = result + item(sum(y)) / t\n"
                              "}\n";

Test(vardim, mlp_rows_compile_a_handful) {
    check_lengths(mlp_rows, 12, 12, true);
    check_lengths(mlp_rows, 40, 16, false);
}

/* The standard TinyGPT forward, causal attention included, on the first t
 * tokens of [2, 64] windows (the embedding's indices sliced up to T from a
 * fixed input: the padded rows gather the next real tokens) */
static const char *gpt_lengths = "let net = TinyGPT(20, 16, 2, 2, 64)\n"
                                 "let ids = randint(0, 20, [2, 64], seed=7)\n"
                                 "let result = 0.0\n"
                                 "for t in 2..2 + %d {\n"
                                 "    let y = net(ids[:, 0:t])\n"
                                 "    reset_graph()\n"
                                 "    result = result + item(sum(y)) / t\n"
                                 "}\n";

Test(vardim, tinygpt_forward_compiles_a_handful) {
    check_lengths(gpt_lengths, 14, 16, true);
}

/* Tokens past t that are out of the vocabulary: the padded rows would
 * gather them, so each length runs on its own graph, without an error. */
Test(vardim, out_of_range_padding_rows_run_per_value) {
    const char *fmt = "let ids = concat([randint(0, 20, [1, 6], seed=1), "
                      "full([1, 26], 99, dtype=\"i32\")], 1)\n"
                      "let net = TinyGPT(20, 16, 2, 1, 32)\n"
                      "let result = 0.0\n"
                      "for t in 2..2 + %d {\n"
                      "    let y = net(ids[:, 0:t])\n"
                      "    reset_graph()\n"
                      "    result = result + item(sum(y))\n"
                      "}\n";
    Run on = run_on("jit", true, fmt, 5);
    Run naive = run_on("naive", true, fmt, 5);
    cr_expect_geq(on.compiles, 5, "%lld graphs", (long long)on.compiles);
    expect_close(on.result, naive.result, 1e-4, "per value vs naive");
}

/* generate without a KV cache recomputes the whole prefix for T = 4, 5,
 * ..., 53: the same tokens as the reference (per-value compilation of 50
 * graphs is compared on the forward above, where it is cheaper) */
static const char *gen_nocache = "let net = TinyGPT(20, 16, 2, 1, 64)\n"
                                 "let out = generate(net, randint(0, 20, [1, 4], seed=1), %d, "
                                 "cache=false, temperature=0.8, seed=5)\n"
                                 "let w = arange(numel(out)) + 1\n"
                                 "let result = item(sum(out * w))\n";

Test(vardim, generate_without_cache_compiles_a_bounded_number) {
    check_lengths(gen_nocache, 50, 16, false);
}

/* A sum over T of computed values is not exact under padding: the family
 * compiles per value, with the same results. */
Test(vardim, reduction_over_t_falls_back_per_value) {
    const char *fmt = "let net = MLP(8, 16)\n"
                      "let x = randn([64, 8], seed=2)\n"
                      "let result = 0.0\n"
                      "for t in 3..3 + %d { result = result + item(sum(net(x[0:t]))) }\n";
    Run on = run_on("jit", true, fmt, 10);
    Run naive = run_on("naive", true, fmt, 10);
    cr_expect_eq(on.bucket_runs, 0, "%lld padded runs", (long long)on.bucket_runs);
    cr_expect_geq(on.compiles, 10);
    expect_close(on.result, naive.result, 1e-4, "per value vs naive");
}

/* A product over T (xᵀx of the first t rows) and non-causal attention read
 * every row of T: padding would change them, so each runs per value (two
 * loops: two families), with the reference's results. */
Test(vardim, contraction_and_full_attention_over_t_run_per_value) {
    const char *fmt = "let x = randn([40, 8], seed=3)\n"
                      "let result = 0.0\n"
                      "for t in 3..3 + %d {\n"
                      "    let r = x[0:t]\n"
                      "    let y = transpose(r, 0, 1) @ r\n"
                      "    reset_graph()\n"
                      "    result = result + item(sum(y))\n"
                      "}\n"
                      "for t in 3..11 {\n"
                      "    let q = reshape(x[0:t], [1, t, 8])\n"
                      "    let a = attention(q, q, q)\n"
                      "    reset_graph()\n"
                      "    result = result + item(sum(a))\n"
                      "}\n";
    Run on = run_on("jit", true, fmt, 8);
    Run naive = run_on("naive", true, fmt, 8);
    /* the sums of a's rows run padded (a sum over T of an input): the
     * products and the attention compile once per length */
    cr_expect_leq(on.bucket_runs, 6, "%lld padded runs", (long long)on.bucket_runs);
    cr_expect_geq(on.compiles, 16, "%lld graphs", (long long)on.compiles);
    expect_close(on.result, naive.result, 1e-4, "per value vs naive");
}
