/* test_conv_epi.c - convolution epilogues (decide_conv_epilogues in
 * compiler/jit/lower.c) against the reference.
 *
 * conv2d + bias, BatchNorm in eval mode (running statistics as graph
 * inputs: a graph compiled once must read the new statistics of every
 * call), relu, then a pooling, on random windows and channel counts, in
 * the JIT's three GEMM lowerings; the same with batch statistics (training
 * mode: the conv is read twice and keeps its buffer, the bias still rides
 * in the epilogue); and pooling after relu on NaN, infinities and -0.0,
 * compared bit for bit (sign of zero included).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "jit.h"
#include "kernels.h"
#include "loop.h"
#include "randgraph.h"

static const SrcLoc L0 = {0};

/* tu_f32_close, but with tol 0 an equal value must have the same sign
 * (-0 is not +0) */
static bool close_f(float got, float want, double tol) {
    if (tol == 0 && got == want) return signbit(got) == signbit(want);
    return tu_f32_close(got, want, tol);
}

/* Runs g on the reference and on jit; false (logged) on any difference
 * in any output. */
static bool same(Jit *jit, const IrGraph *g, float **in, double tol, const char *what) {
    float *want[4] = {0}, *got[4] = {0};
    int64_t n[4];
    cr_assert(g->nout <= 4);
    for (int j = 0; j < g->nout; j++) {
        n[j] = shape_numel(&g->nodes[g->outputs[j]].shape);
        want[j] = calloc((size_t)n[j] + 1, sizeof(float));
        got[j] = malloc(((size_t)n[j] + 1) * sizeof(float));
        memset(got[j], 0x7f, ((size_t)n[j] + 1) * sizeof(float)); /* unwritten elements show */
    }
    KernelErr kerr;
    char err[512];
    bool ok = rt_naive_run(g, (void *const *)in, (void *const *)want, NULL, &kerr);
    cr_assert(ok, "%s: naive failed: %s", what, kerr.msg);
    ok = jit_run(jit, g, (void *const *)in, (void *const *)got, err, sizeof err);
    if (!ok) cr_log_error("%s: jit failed: %s", what, err);
    for (int j = 0; j < g->nout; j++) {
        for (int64_t k = 0; ok && k < n[j]; k++)
            if (!close_f(got[j][k], want[j][k], tol)) {
                cr_log_error("%s: output %d element %lld: jit %.9g, naive %.9g", what, j,
                             (long long)k, got[j][k], want[j][k]);
                ok = false;
            }
        free(want[j]);
        free(got[j]);
    }
    return ok;
}

/* Fills every input of g; x (slot 0) gets NaN and -0.0 one in 16 when
 * specials; var (varslot) stays positive. */
static void fill_inputs(const IrGraph *g, float **in, RgRng *r, bool specials, int varslot) {
    for (int i = 0; i < g->n; i++) {
        const IrNode *x = &g->nodes[i];
        if (x->op != OP_INPUT) continue;
        int s = x->attr.index;
        for (int64_t k = 0; k < shape_numel(&x->shape); k++) {
            float v = (float)rg_unif(r, -2, 2);
            int sp = specials && s == 0 ? rg_int(r, 0, 15) : 99;
            in[s][k] = sp == 0 ? NAN : sp == 1 ? -0.0f : s == varslot ? v * v + 0.01f : v;
        }
    }
}

static float **alloc_inputs(const IrGraph *g) {
    float **in = calloc((size_t)g->ninputs + 1, sizeof *in);
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == OP_INPUT)
            in[g->nodes[i].attr.index] =
                malloc(((size_t)shape_numel(&g->nodes[i].shape) + 1) * sizeof(float));
    return in;
}

static void free_inputs(const IrGraph *g, float **in) {
    for (int i = 0; i < g->ninputs; i++) free(in[i]);
    free(in);
}

/* y * s + t per channel: s, t [O] reshaped to [O, 1, 1] (broadcast) */
static int affine(IrGraph *g, int y, int s, int t, int64_t O) {
    Shape c = {3, {O, 1, 1}};
    int ys = ir_binary(g, OP_MUL, y, ir_reshape(g, s, c, L0), L0);
    return ir_binary(g, OP_ADD, ys, ir_reshape(g, t, c, L0), L0);
}

typedef struct Case {
    int64_t N, C, H, W, O, G, k, stride, pad;
    int pool; /* 0 none, 1 max_pool2d, 2 avg_pool2d (2 x 2) */
    bool train;
} Case;

/* relu(batch_norm(conv2d(x, w, b))) [then pooled]: eval mode (inputs 3..6:
 * mean, var, gamma, beta, like BatchNorm2d's forward in lang/std), or
 * training mode (the batch's mean and biased variance; inputs 3, 4: gamma,
 * beta; a second output: the batch mean, which the running mean moves
 * towards, and in which the bias does not cancel). Slot of var: *varslot
 * (-1: none). */
static void build_case(IrGraph *g, const Case *c, int *varslot) {
    IrWindow win = {.groups = c->G};
    for (int i = 0; i < 2; i++) {
        win.stride[i] = c->stride;
        win.padding[i] = c->pad;
        win.dilation[i] = 1;
    }
    int x = ir_input(g, TY_F32, (Shape){4, {c->N, c->C, c->H, c->W}}, "x", L0);
    int w = ir_input(g, TY_F32, (Shape){4, {c->O, c->C / c->G, c->k, c->k}}, "w", L0);
    int b = ir_input(g, TY_F32, (Shape){1, {c->O}}, "b", L0);
    int y = ir_conv2d(g, x, w, b, &win, L0);
    Shape vs = {1, {c->O}};
    int mu = -1;
    int eps = ir_const(g, TY_F32, shape_scalar(), 1e-5, L0);
    if (!c->train) {
        int mean = ir_input(g, TY_F32, vs, "mean", L0), var = ir_input(g, TY_F32, vs, "var", L0);
        int gamma = ir_input(g, TY_F32, vs, "gamma", L0),
            beta = ir_input(g, TY_F32, vs, "beta", L0);
        *varslot = g->nodes[var].attr.index;
        int scale = ir_binary(
            g, OP_MUL, ir_unary(g, OP_RSQRT, ir_binary(g, OP_ADD, var, eps, L0), L0), gamma, L0);
        int shift = ir_binary(g, OP_SUB, beta, ir_binary(g, OP_MUL, mean, scale, L0), L0);
        y = affine(g, y, scale, shift, c->O);
    } else {
        int gamma = ir_input(g, TY_F32, vs, "gamma", L0),
            beta = ir_input(g, TY_F32, vs, "beta", L0);
        *varslot = -1;
        int axes[3] = {0, 2, 3};
        Shape os = g->nodes[y].shape;
        double n = (double)(os.d[0] * os.d[2] * os.d[3]);
        int inv = ir_const(g, TY_F32, shape_scalar(), 1.0 / n, L0);
        int sum = ir_reduce(g, OP_SUM, y, axes, 3, false, L0);
        mu = ir_binary(g, OP_MUL, sum, inv, L0);
        int xc = ir_binary(g, OP_SUB, y, ir_reshape(g, mu, (Shape){3, {c->O, 1, 1}}, L0), L0);
        int sq = ir_binary(g, OP_MUL, xc, xc, L0);
        int v = ir_binary(g, OP_MUL, ir_reduce(g, OP_SUM, sq, axes, 3, false, L0), inv, L0);
        int scale = ir_binary(
            g, OP_MUL, ir_unary(g, OP_RSQRT, ir_binary(g, OP_ADD, v, eps, L0), L0), gamma, L0);
        y = affine(g, xc, scale, beta, c->O);
    }
    y = ir_unary(g, OP_RELU, y, L0);
    if (c->pool) {
        IrWindow pw = {.groups = 1, .kernel = {2, 2}, .stride = {2, 2}, .dilation = {1, 1}};
        y = ir_pool2d(g, c->pool == 1 ? OP_MAX_POOL2D : OP_AVG_POOL2D, y, &pw, L0);
    }
    cr_assert(y >= 0, "build: %s", g->err);
    ir_mark_output(g, y);
    if (mu >= 0) ir_mark_output(g, mu);
}

/* A kernel of the implicit lowering computes the conv with the chain after
 * it up to root op `root` (its name: k<i>_conv2d_<root>); *epi: that
 * kernel's copy loop is the GEMM's epilogue. */
static bool has_conv_epilogue(const IrGraph *g, const char *root, bool *epi) {
    char name[32];
    snprintf(name, sizeof name, "_conv2d_%s", root);
    LpProg *p = lp_lower_conv(g, true, LP_CONV_IMPLICIT);
    bool found = false;
    *epi = false;
    for (int k = 0; k < p->nkernels; k++) {
        if (!strstr(p->kernels[k].name, name)) continue;
        found = true;
        for (const LpStmt *s = p->kernels[k].body; s; s = s->next)
            *epi = *epi || (s->kind == LS_LOOP && s->epilogue);
    }
    lp_free(p);
    return found;
}

static Case random_case(RgRng *r, bool train) {
    Case c;
    c.G = rg_int(r, 0, 3) == 0 ? 2 : 1;
    c.C = c.G * rg_int(r, 1, 12);
    c.O = c.G * rg_int(r, 4, 20);
    c.N = rg_int(r, 1, 3);
    c.k = rg_int(r, 2, 3);
    c.stride = rg_int(r, 1, 2);
    c.pad = rg_int(r, 0, 1);
    c.H = rg_int(r, 4, 9);
    c.W = rg_int(r, 4, 9);
    c.pool = rg_int(r, 0, 2);
    c.train = train;
    return c;
}

/* Eval mode: the same compiled graph over three calls, the statistics
 * (and every other input) new each time. */
static void run_cases(bool train, uint64_t seed) {
    static const int modes[] = {0, 2, 3}; /* the rule, explicit im2col, implicit */
    static const char *names[] = {"auto", "im2col", "implicit"};
    RgRng r = {seed};
    int failures = 0, epilogues = 0, cases = 0;
    for (int v = 0; v < 10; v++) {
        Case c = random_case(&r, train);
        IrGraph g;
        ir_init(&g);
        int varslot;
        build_case(&g, &c, &varslot);
        cases++;
        bool epi;
        /* training: conv + bias is read by the mean and the centring, so
         * the chain stops at the bias */
        bool fused = has_conv_epilogue(&g, train ? "add" : "relu", &epi);
        cr_expect(fused, "case %d: no conv2d epilogue kernel", v);
        cr_expect(epi == (c.G == 1), "case %d (groups %lld): epilogue %d", v, (long long)c.G, epi);
        epilogues += epi;
        float **in = alloc_inputs(&g);
        for (int m = 0; m < 3; m++) {
            Jit *jit = jit_new(2);
            cr_assert(jit);
            jit_set_conv_lowering(jit, modes[m]);
            for (int call = 0; call < 3; call++) {
                char what[128];
                snprintf(what, sizeof what, "%s case %d (%s) call %d", train ? "train" : "eval", v,
                         names[m], call);
                fill_inputs(&g, in, &r, call > 0, varslot);
                failures += !same(jit, &g, in, 1e-4, what);
            }
            cr_expect(jit_stats(jit).compiles == 1, "%s: %lld compiles", names[m],
                      (long long)jit_stats(jit).compiles);
            jit_free(jit);
        }
        free_inputs(&g, in);
        ir_free(&g);
    }
    cr_expect(epilogues > 0, "no case had an epilogue");
    cr_expect(failures == 0, "%d failures of %d cases (see the log)", failures, cases);
}

Test(conv_epi, bias_bn_eval_relu_pool, .timeout = 120) {
    run_cases(false, 1234577);
}

Test(conv_epi, bias_bn_train_relu_pool, .timeout = 120) {
    run_cases(true, 7654321);
}

/* Pooling, after relu or of x itself, on NaN, +-inf and -0.0, bit for bit
 * against the reference (sign of zero included) on random windows:
 * max_pool2d propagates NaN (as PyTorch's); relu is the reference's
 * x < 0 ? 0 : x (backend/naive/kernels_elem.c), so NaN and -0.0 pass through, as
 * in PyTorch. */
Test(conv_epi, pool_after_relu_specials, .timeout = 60) {
    static const float sv[] = {NAN, -0.0f, 0.0f, INFINITY, -INFINITY};
    RgRng r = {99991};
    Jit *jit = jit_new(2);
    cr_assert(jit);
    int failures = 0;
    for (int v = 0; v < 16; v++) {
        IrGraph g;
        ir_init(&g);
        int64_t N = rg_int(&r, 1, 2), C = rg_int(&r, 1, 5), H = rg_int(&r, 3, 9),
                W = rg_int(&r, 3, 9);
        IrWindow pw = {.groups = 1, .dilation = {1, 1}};
        for (int i = 0; i < 2; i++) {
            pw.kernel[i] = rg_int(&r, 1, 3);
            pw.stride[i] = rg_int(&r, 1, 2);
            pw.padding[i] = rg_int(&r, 0, pw.kernel[i] / 2);
        }
        int x = ir_input(&g, TY_F32, (Shape){4, {N, C, H, W}}, "x", L0);
        bool relu = v % 4 < 2, avg = v % 2;
        int y = ir_pool2d(&g, avg ? OP_AVG_POOL2D : OP_MAX_POOL2D,
                          relu ? ir_unary(&g, OP_RELU, x, L0) : x, &pw, L0);
        cr_assert(y >= 0, "build: %s", g.err);
        ir_mark_output(&g, y);
        float **in = alloc_inputs(&g);
        for (int64_t k = 0; k < N * C * H * W; k++) {
            int sp = rg_int(&r, 0, 7);
            in[0][k] = sp < 5 ? sv[sp] : (float)rg_unif(&r, -2, 2);
        }
        char what[64];
        snprintf(what, sizeof what, "%s%s, case %d", relu ? "relu then " : "", avg ? "avg" : "max",
                 v);
        /* avg: a sum in the reference's order, so exact too */
        failures += !same(jit, &g, in, 0, what);
        free_inputs(&g, in);
        ir_free(&g);
    }
    cr_expect(failures == 0, "%d failures (see the log)", failures);
    jit_free(jit);
}

/* The zero-bordered copy of a padded convolution's x (pad_input) is its
 * kernel's scratch (LpBuf.scratch), in both GEMM lowerings and for both
 * of its readers (the forward and the weight gradient): codegen then tells
 * LLVM that the copy's stores do not alias x, which lets it widen the
 * fully unrolled row copies (a scalar move per element without). */
Test(conv_epi, padded_copy_is_the_kernels_scratch) {
    IrGraph g;
    ir_init(&g);
    IrWindow win = {{3, 3}, {1, 1}, {1, 1}, {1, 1}, 1};
    Shape xs = {4, {2, 1, 9, 10}}, ws = {4, {8, 1, 3, 3}}, ys = {4, {2, 8, 9, 10}};
    int x = ir_input(&g, TY_F32, xs, "x", L0), w = ir_input(&g, TY_F32, ws, "w", L0);
    int gy = ir_input(&g, TY_F32, ys, "gy", L0);
    ir_mark_output(&g, ir_conv2d(&g, x, w, -1, &win, L0));
    IrAttr at = {0};
    at.win = win;
    at.shape = ws;
    int in[2] = {x, gy};
    ir_mark_output(&g, ir_add(&g, OP_CONV2D_BACKWARD_WEIGHT, in, 2, &at, L0));
    LpConvLowering mode[2] = {LP_CONV_IMPLICIT, LP_CONV_IM2COL};
    for (int m = 0; m < 2; m++) {
        LpProg *p = lp_lower_conv(&g, true, mode[m]);
        int padded = 0, scratch = 0;
        for (int b = 0; b < p->nbufs; b++) {
            const Shape *s = &p->bufs[b].shape;
            if (p->bufs[b].kind != LB_TEMP || s->ndim != 4 || s->d[2] != 11 || s->d[3] != 12)
                continue;
            padded++;
            scratch += p->bufs[b].scratch;
        }
        cr_expect(padded == 2, "mode %d: %d padded copies", m, padded);
        cr_expect(scratch == padded, "mode %d: %d of %d padded copies are scratch", m, scratch,
                  padded);
        lp_free(p);
    }
    ir_free(&g);
}
