/* bench_gather.c - what the JIT's index checks cost (spec/jit.md, "Index
 * checks").
 *
 * The same gather graph is compiled twice: as jit_run compiles it (every
 * index checked: an unsigned compare and a cold branch per index) and with
 * the LS_CHECK statements removed by a loop hook (jit_set_loop_hook), which
 * is the code tt generated before the checks. Three shapes:
 *
 *   embedding   table f32[50000, 64], idx i32[4096]: rows of 64 floats, the
 *               case of a language model's token embedding
 *   scalars     table f32[1000], idx i32[1000000]: one float per index, the
 *               worst case (one_hot's labels, t[idx] on a vector)
 *   grad        scatter_add of f32[4096, 64] into [50000, 64]: the
 *               embedding's gradient
 *
 * Each figure is the median of samples of about 20 ms; the two versions
 * take turns, one sample each per round (load from other processes hits
 * both alike).
 *
 *   bench_gather [--quick]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_cpu.h"
#include "jit.h"
#include "loop.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The loop hook of the unchecked version: drops every LS_CHECK. */
static void drop_checks_in(LpStmt **s) {
    while (*s) {
        if ((*s)->kind == LS_CHECK) {
            *s = (*s)->next;
            continue;
        }
        if ((*s)->kind == LS_LOOP) drop_checks_in(&(*s)->body);
        s = &(*s)->next;
    }
}
static void drop_checks(LpProg *p, void *arg) {
    (void)arg;
    for (int i = 0; i < p->nkernels; i++) drop_checks_in(&p->kernels[i].body);
}

typedef struct Case {
    const char *name;
    IrGraph g;
    void *in[2], *out[1];
} Case;

static void make_case(Case *c, const char *name, bool scatter, int64_t V, int64_t d, int64_t n) {
    static const SrcLoc L0 = {0};
    c->name = name;
    ir_init(&c->g);
    Shape ts = d > 0 ? shape_make(2, (int64_t[]){scatter ? n : V, d})
                     : shape_make(1, (int64_t[]){scatter ? n : V});
    int t = ir_input(&c->g, TY_F32, ts, "t", L0);
    int i = ir_input(&c->g, TY_I32, shape_make(1, &n), "i", L0);
    int r;
    if (scatter) {
        IrAttr at = {.shape = d > 0 ? shape_make(2, (int64_t[]){V, d}) : shape_make(1, &V)};
        r = ir_add(&c->g, OP_SCATTER_ADD, (int[]){t, i}, 2, &at, L0);
    } else {
        r = ir_gather(&c->g, t, i, L0);
    }
    if (r < 0) {
        fprintf(stderr, "bench_gather: %s\n", c->g.err);
        exit(1);
    }
    ir_mark_output(&c->g, r);
    int64_t tn = shape_numel(&ts), on = shape_numel(&c->g.nodes[r].shape);
    float *td = malloc((size_t)tn * sizeof *td);
    int32_t *id = malloc((size_t)n * sizeof *id);
    uint32_t s = 12345;
    for (int64_t k = 0; k < tn; k++) td[k] = (float)(k % 97) * 0.01f;
    for (int64_t k = 0; k < n; k++) id[k] = (int32_t)((s = s * 1103515245u + 12345u) % V);
    c->in[0] = td;
    c->in[1] = id;
    c->out[0] = malloc((size_t)on * sizeof(float));
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define MAXS 512

typedef struct Timed {
    Jit *jit;
    int reps, n;
    double us[MAXS];
} Timed;

static void run(Timed *t, Case *c) {
    char err[512];
    if (!jit_run(t->jit, &c->g, c->in, c->out, err, sizeof err)) {
        fprintf(stderr, "bench_gather: %s: %s\n", c->name, err);
        exit(1);
    }
}

static double median(Timed *t) {
    qsort(t->us, (size_t)t->n, sizeof t->us[0], cmp_d);
    return t->n % 2 ? t->us[t->n / 2] : 0.5 * (t->us[t->n / 2 - 1] + t->us[t->n / 2]);
}

int main(int argc, char **argv) {
    bench_print_cpu();
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    double sample_s = quick ? 0.005 : 0.02, total_s = quick ? 0.5 : 2.0;
    Case cases[3];
    make_case(&cases[0], "embedding f32[50000, 64] by i32[4096]", false, 50000, 64, 4096);
    make_case(&cases[1], "scalars f32[1000] by i32[1000000]", false, 1000, 0, 1000000);
    make_case(&cases[2], "scatter_add f32[4096, 64] into [50000, 64]", true, 50000, 64, 4096);
    printf("gather on the JIT, 1 thread: median us per run (samples of about %.0f ms)\n",
           sample_s * 1e3);
    printf("%-44s %10s %10s %8s\n", "graph", "checked", "unchecked", "cost");
    for (int ci = 0; ci < 3; ci++) {
        Case *c = &cases[ci];
        Timed t[2] = {{jit_new(2)}, {jit_new(2)}};
        if (!t[0].jit || !t[1].jit) {
            fprintf(stderr, "bench_gather: no JIT for this machine\n");
            return 1;
        }
        jit_set_loop_hook(t[1].jit, drop_checks, NULL);
        for (int k = 0; k < 2; k++) {
            jit_set_threads(t[k].jit, 1);
            for (int w = 0; w < 3; w++) run(&t[k], c); /* compile, warm up */
            t[k].reps = 1;
            for (;;) {
                double t0 = now_s();
                for (int r = 0; r < t[k].reps; r++) run(&t[k], c);
                if (now_s() - t0 >= sample_s || t[k].reps >= 1 << 20) break;
                t[k].reps *= 2;
            }
        }
        double start = now_s();
        for (int round = 0; round < MAXS && (round < 5 || now_s() - start < total_s); round++)
            for (int k = 0; k < 2; k++) {
                double t0 = now_s();
                for (int r = 0; r < t[k].reps; r++) run(&t[k], c);
                t[k].us[t[k].n++] = (now_s() - t0) * 1e6 / t[k].reps;
            }
        double a = median(&t[0]), b = median(&t[1]);
        printf("%-44s %10.1f %10.1f %7.1f%%\n", c->name, a, b, 100.0 * (a - b) / b);
        for (int k = 0; k < 2; k++) jit_free(t[k].jit);
        ir_free(&c->g);
        free(c->in[0]);
        free(c->in[1]);
        free(c->out[0]);
    }
    return 0;
}
