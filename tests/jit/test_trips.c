/* test_trips.c - loops with a runtime trip count (LpStmt.trips,
 * lp_open_loop_trips) and the inline polynomial exp (codegen.c, cg_exp_poly),
 * which every f32 exp of the JIT uses.
 *
 * A loop hook (jit_set_loop_hook) gives the one loop of an elementwise
 * kernel a trip count read from an input at run time: exactly the first
 * min(max(trips, 0), extent) elements are written, the rest keep their fill
 * pattern; the transformations leave such a loop alone; the printed loop IR
 * shows min(trips, extent). The attention lowering's key loop carries one.
 * fast_exp: the inline exp over a sweep of [-110, 95] plus inf, -inf and NaN, against
 * expf within 2 ulp (0 and inf exactly where expf gives them).
 *
 * trips_loop, trips_attention, fast_exp: the suites.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dump_text.h"
#include "jit.h"
#include "loop.h"
#include "transform.h"

static const SrcLoc L0 = {0};

/* out[n] = x[n] * 2 + c (c f32[1]): one loop over n; the hook bounds it by
 * the value of c cast to i64. */
static void g_scaled(IrGraph *g, int64_t n) {
    ir_init(g);
    int x = ir_input(g, TY_F32, (Shape){1, {n}}, NULL, L0);
    int c = ir_input(g, TY_F32, (Shape){1, {1}}, NULL, L0);
    int two = ir_binary(g, OP_ADD, x, x, L0);
    ir_mark_output(g, ir_binary(g, OP_ADD, two, ir_broadcast_to(g, c, (Shape){1, {n}}, L0), L0));
}

typedef struct Hook {
    bool tried_transforms; /* also try tile / unroll / parallel: all refused */
    int refused;           /* how many were refused */
    char text[4096];       /* the printed loop IR after the hook */
} Hook;

static void trips_hook(LpProg *p, void *arg) {
    Hook *h = arg;
    LpKernel *k = &p->kernels[0];
    LpStmt *loop = k->body;
    cr_assert(loop && loop->kind == LS_LOOP && !loop->next);
    int cbuf = -1; /* the buffer of input 1 (c) */
    for (int b = 0; b < p->nbufs; b++)
        if (p->bufs[b].kind == LB_INPUT && p->bufs[b].slot == 1) cbuf = b;
    cr_assert(cbuf >= 0);
    loop->trips = lp_cast(p, LT_I64, lp_load(p, cbuf, lp_iconst(p, 0)));
    if (h->tried_transforms) {
        h->refused += !lp_unroll(p, k, loop, 4);
        h->refused += !lp_mark_parallel(p, k, loop, 2);
    }
    char *buf = tu_prog_text(p, NULL);
    snprintf(h->text, sizeof h->text, "%s", buf);
    free(buf);
}

/* Runs g_scaled(n) with c = trips; checks out[i] = 2 x[i] + c for i below
 * min(max(trips, 0), n) and the fill pattern past it. */
static void expect_trips(int64_t n, float trips, Hook *h) {
    IrGraph g;
    g_scaled(&g, n);
    float *x = malloc((size_t)n * sizeof *x), c[1] = {trips};
    float *out = malloc((size_t)n * sizeof *out);
    for (int64_t i = 0; i < n; i++) x[i] = (float)i * 0.5f - 3.0f;
    memset(out, 0x7f, (size_t)n * sizeof *out);
    Jit *j = jit_new(2);
    cr_assert(j);
    jit_set_threads(j, 2);
    jit_set_loop_hook(j, trips_hook, h);
    void *in[2] = {x, c}, *outs[1] = {out};
    char err[256];
    cr_assert(jit_run(j, &g, in, outs, err, sizeof err), "%s", err);
    int64_t lim = trips < 0 ? 0 : (int64_t)trips > n ? n : (int64_t)trips;
    uint32_t fill;
    memset(&fill, 0x7f, sizeof fill);
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &out[i], sizeof bits);
        if (i < lim)
            cr_expect_eq(out[i], 2 * x[i] + trips, "trips %g: out[%lld] = %g", trips, (long long)i,
                         out[i]);
        else
            cr_expect_eq(bits, fill, "trips %g: out[%lld] written past the trip count", trips,
                         (long long)i);
    }
    jit_free(j);
    free(x);
    free(out);
    ir_free(&g);
}

Test(trips_loop, runs_exactly_the_runtime_count) {
    Hook h = {0};
    expect_trips(37, 5, &h);
    expect_trips(37, 0, &h);
    expect_trips(37, -3, &h);
    expect_trips(37, 37, &h);
    expect_trips(37, 1000, &h); /* clamped to the extent */
    expect_trips(1000, 999, &h);
    cr_expect(strstr(h.text, "in 0..min(") != NULL, "printed: %s", h.text);
}

Test(trips_loop, transformations_leave_it_alone) {
    Hook h = {.tried_transforms = true};
    expect_trips(64, 10, &h);
    cr_expect_eq(h.refused, 2, "unroll and parallel must refuse a loop with a runtime trip count");
}

/* The attention lowering: the key-block loop has a runtime trip count,
 * with len and for causal rows. */
static void attention_text(bool causal, bool with_len, char *text, size_t cap) {
    IrGraph g;
    ir_init(&g);
    int q = ir_input(&g, TY_F32, (Shape){3, {2, 8, 16}}, NULL, L0);
    int k = ir_input(&g, TY_F32, (Shape){3, {2, 32, 16}}, NULL, L0);
    int v = ir_input(&g, TY_F32, (Shape){3, {2, 32, 16}}, NULL, L0);
    int len = with_len ? ir_input(&g, TY_I32, shape_scalar(), "len", L0) : -1;
    ir_mark_output(&g, ir_attention(&g, q, k, v, len, causal, 0.25, L0));
    LpProg *p = lp_lower(&g, true);
    cr_assert(p->nkernels == 1);
    char *buf = tu_prog_text(p, &g);
    snprintf(text, cap, "%s", buf);
    free(buf);
    lp_free(p);
    ir_free(&g);
}

Test(trips_attention, key_loop_stops_at_the_visible_keys) {
    static char text[1 << 16];
    attention_text(true, false, text, sizeof text);
    cr_expect(strstr(text, "in 0..min(") != NULL, "causal: %s", text);
    attention_text(false, true, text, sizeof text);
    cr_expect(strstr(text, "in 0..min(") != NULL, "len: %s", text);
}

static int64_t ulps(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    if (ia < 0) ia = INT32_MIN - ia;
    if (ib < 0) ib = INT32_MIN - ib;
    return llabs((int64_t)ia - (int64_t)ib);
}

Test(fast_exp, within_two_ulp_of_expf) {
    enum { N = 20503 };
    IrGraph g;
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){1, {N}}, NULL, L0);
    ir_mark_output(&g, ir_unary(&g, OP_EXP, x, L0));
    float *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
    for (int i = 0; i < N - 3; i++) in[i] = -110.0f + 205.0f * (float)i / (float)(N - 4);
    in[N - 3] = INFINITY;
    in[N - 2] = -INFINITY;
    in[N - 1] = NAN;
    Jit *j = jit_new(2);
    cr_assert(j);
    void *ins[1] = {in}, *outs[1] = {out};
    char err[256];
    cr_assert(jit_run(j, &g, ins, outs, err, sizeof err), "%s", err);
    int64_t worst = 0;
    for (int i = 0; i < N - 1; i++) {
        float want = expf(in[i]);
        if (want == 0 || isinf(want) || fpclassify(want) == FP_SUBNORMAL) {
            cr_expect(fabsf(out[i] - want) <= 1e-38f || out[i] == want, "exp(%g) = %g, not %g",
                      in[i], out[i], want);
            continue;
        }
        int64_t u = ulps(out[i], want);
        if (u > worst) worst = u;
        cr_expect(u <= 2, "exp(%.9g) = %.9g, expf %.9g (%lld ulp)", in[i], out[i], want,
                  (long long)u);
    }
    cr_expect(isnan(out[N - 1]), "exp(nan) = %g", out[N - 1]);
    cr_log_info("fast exp: worst %lld ulp", (long long)worst);
    jit_free(j);
    free(in);
    free(out);
    ir_free(&g);
}

/* The inline tanh (codegen.c, cg_tanh): a rational function on the clamped
 * input, x itself below 0.0004. Against tanh in double on a log sweep of
 * magnitudes from 1e-30 to 20, both signs: within 4e-7 relative (its
 * measured worst is about 3e-7; tanh's tolerance as an op is 1e-5), odd,
 * +-1 far out, +-0, +-inf and NaN exact. */
Test(fast_tanh, within_4e7_of_tanh) {
    enum { HALF = 60000, N = 2 * HALF + 5 };
    IrGraph g;
    ir_init(&g);
    int x = ir_input(&g, TY_F32, (Shape){1, {N}}, NULL, L0);
    ir_mark_output(&g, ir_unary(&g, OP_TANH, x, L0));
    float *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
    for (int i = 0; i < HALF; i++) {
        in[2 * i] = (float)pow(10.0, -30.0 + 31.3 * i / (HALF - 1)); /* 1e-30 .. 20 */
        in[2 * i + 1] = -in[2 * i];
    }
    float special[5] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN};
    memcpy(in + 2 * HALF, special, sizeof special);
    Jit *j = jit_new(2);
    cr_assert(j);
    void *ins[1] = {in}, *outs[1] = {out};
    char err[256];
    cr_assert(jit_run(j, &g, ins, outs, err, sizeof err), "%s", err);
    double worst = 0;
    for (int i = 0; i < 2 * HALF; i++) {
        double want = tanh((double)in[i]), rel = fabs((double)out[i] - want) / fabs(want);
        if (rel > worst) worst = rel;
        cr_expect(rel <= 4e-7, "tanh(%.9g) = %.9g, want %.9g (rel %.3g)", in[i], out[i], want, rel);
        if (i % 2) cr_expect_eq(out[i], -out[i - 1], "tanh(%.9g) is not odd", in[i]);
    }
    cr_expect(out[2 * HALF] == 0 && !signbit(out[2 * HALF]), "tanh(0) = %g", out[2 * HALF]);
    cr_expect(out[2 * HALF + 1] == 0 && signbit(out[2 * HALF + 1]), "tanh(-0) = %g",
              out[2 * HALF + 1]);
    cr_expect_eq(out[2 * HALF + 2], 1.0f, "tanh(inf) = %g", out[2 * HALF + 2]);
    cr_expect_eq(out[2 * HALF + 3], -1.0f, "tanh(-inf) = %g", out[2 * HALF + 3]);
    cr_expect(isnan(out[2 * HALF + 4]), "tanh(nan) = %g", out[2 * HALF + 4]);
    cr_log_info("fast tanh: worst relative error %.3g", worst);
    jit_free(j);
    free(in);
    free(out);
    ir_free(&g);
}
