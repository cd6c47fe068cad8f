/* bench_prune.c - structured pruning's payoff: the Fashion-MNIST MLP
 * 784-256-10 against the same model after prune(net, 0.5, structured=true)
 * (784-128-10: half the FLOPs), inference through the whole tt stack at
 * batch 1, 256 and 10000, on the JIT (and the naive runtime with --naive).
 *
 * The program (MODEL below) runs in an interpreter made by rt_new_interp;
 * each figure calls a tt fn with rt_call and realizes the result, so it
 * includes what a script pays (evaluating the fn, building the lazy graph,
 * the cache lookup, the compiled code). The first call of each fn compiles
 * its graph and is left out. Each figure is the median of samples of about
 * 20 ms of back-to-back calls; dense and pruned take turns, one sample each
 * per round, so load from other processes hits both alike. The figure that
 * matters is the ratio dense / pruned (ideal: 2.0, the FLOPs ratio).
 *
 *   bench_prune [--quick] [--naive]
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_cpu.h"
#include "eval.h"
#include "value.h"

static const char MODEL[] = "model Mlp {\n"
                            "    fc1 = Linear(784, 256)\n"
                            "    fc2 = Linear(256, 10)\n"
                            "    forward(x: f32[B, 784]) -> f32[B, 10] {\n"
                            "        return fc2(relu(fc1(x)))\n"
                            "    }\n"
                            "}\n"
                            "let dense = Mlp()\n"
                            "let pruned = Mlp()\n"
                            "let pd = parameters(dense)\n"
                            "let pp = parameters(pruned)\n"
                            "for i in range(len(pd)) { assign(pp[i], pd[i]) }\n"
                            "prune(pruned, 0.5, structured=true)\n"
                            "eval(dense)\n"
                            "let x1 = randn([1, 784])\n"
                            "let x256 = randn([256, 784])\n"
                            "let x10k = randn([10000, 784])\n"
                            "fn dense1() { return dense(x1) }\n"
                            "fn pruned1() { return pruned(x1) }\n"
                            "fn dense256() { return dense(x256) }\n"
                            "fn pruned256() { return pruned(x256) }\n"
                            "fn dense10k() { return dense(x10k) }\n"
                            "fn pruned10k() { return pruned(x10k) }\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void call(Interp *I, Value fn) {
    jmp_buf jb;
    rt_set_on_error(I, &jb);
    if (setjmp(jb) != 0) exit(1); /* the error is on stderr */
    Value v = rt_call(I, fn, NULL, 0, NULL, NULL, 0);
    rt_realize_all(I);
    rt_release(I, v);
    rt_set_on_error(I, NULL);
}

static Value fn_of(Interp *I, const char *name) {
    jmp_buf jb;
    rt_set_on_error(I, &jb);
    if (setjmp(jb) != 0) exit(1);
    Value f = rt_global(I, name);
    rt_set_on_error(I, NULL);
    return f;
}

/* Seconds per call over about target_s of back-to-back calls. */
static double sample(Interp *I, Value fn, double target_s) {
    int n = 1;
    for (;;) {
        double t0 = now_s();
        for (int i = 0; i < n; i++) call(I, fn);
        double dt = now_s() - t0;
        if (dt >= target_s || n >= (1 << 20)) return dt / n;
        n *= dt > 0 ? (int)(target_s / dt * 1.2) + 1 : 2;
    }
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    bool quick = false, naive = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--naive") == 0)
            naive = true;
        else {
            fprintf(stderr, "usage: bench_prune [--quick] [--naive]\n");
            return 2;
        }
    }
    Interp *I = rt_new_interp();
    rt_set_backend(I, naive ? "naive" : "jit");
    RtConfig cfg = *rt_config(I);
    cfg.threads = 1;
    cfg.quiet = true;
    rt_configure(I, &cfg);
    if (rt_run_source(I, "prune.tt", MODEL, strlen(MODEL), false) != 0) {
        fprintf(stderr, "bench_prune: the model program failed\n");
        return 1;
    }
    bench_print_cpu();
    printf("MLP 784-256-10 dense vs 784-128-10 after prune(net, 0.5, structured=true); %s, 1 "
           "thread\n",
           naive ? "naive runtime" : "JIT");
    printf("%-10s %14s %14s %10s\n", "batch", "dense us", "pruned us", "speed-up");
    static const char *const sizes[][3] = {{"1", "dense1", "pruned1"},
                                           {"256", "dense256", "pruned256"},
                                           {"10000", "dense10k", "pruned10k"}};
    enum { ROUNDS = 9 };
    int rounds = quick ? 3 : ROUNDS;
    double target = quick ? 0.005 : 0.02;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        Value fd = fn_of(I, sizes[s][1]), fp = fn_of(I, sizes[s][2]);
        call(I, fd); /* compiles */
        call(I, fp);
        double td[ROUNDS], tp[ROUNDS];
        for (int r = 0; r < rounds; r++) {
            td[r] = sample(I, fd, target);
            tp[r] = sample(I, fp, target);
        }
        qsort(td, (size_t)rounds, sizeof *td, cmp_d);
        qsort(tp, (size_t)rounds, sizeof *tp, cmp_d);
        double d = td[rounds / 2], p = tp[rounds / 2];
        printf("%-10s %14.1f %14.1f %9.2fx\n", sizes[s][0], d * 1e6, p * 1e6, d / p);
        rt_release(I, fd);
        rt_release(I, fp);
    }
    rt_free_interp(I);
    return 0;
}
