/* test_quant_pass.c - the post-training quantization pass
 * (compiler/quant_pass.c) on a traced two-layer MLP, x@w1+b1 -> relu ->
 * @w2+b2:
 *
 * quant_pass::rewrite: what the new root needs is integer work only: two
 *     qmatmuls, one quantize (of x), no dequantize (the pair between the
 *     layers folded), the relu a max on i8, no float matmul, the root a
 *     requantize to f32.
 * quant_pass::exact: the rewritten graph on random data equals a
 *     hand-written integer reference bit for bit, on the naive runtime and
 *     on the JIT.
 * quant_pass::requantize_is_the_epilogue: on the JIT each qmatmul's bias
 *     add and requantize (and the integer relu) run as its GEMM's epilogue
 *     (the scale product is made before the qmatmul, so nothing sits
 *     between the GEMM's kernel and theirs).
 * quant_pass::unmatched: a matmul by a weight the pass does not know stays
 *     f32, and quant_match finds nothing.
 * quant_pass::cnn_rewrite, cnn_exact: a CNN (conv2d + b -> relu -> max_pool2d
 *     -> reshape -> Linear): one qconv2d padding with the input zero point,
 *     relu / pool / reshape on i8, no dequantize; with a float multiply after
 *     the conv (a BatchNorm's), the conv requantizes to f32; the same bits
 *     on the naive runtime and the JIT.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dump_text.h"
#include "jit.h"
#include "kernels.h"
#include "loop.h"
#include "quant_pass.h"
#include "transform.h"

static const SrcLoc L0 = {0};
enum { B = 5, K = 7, H = 6, N = 3 };

typedef struct Mlp {
    IrGraph g;
    int x, w1, b1, w2, b2, root, from;
    QuantLinear L[2];
} Mlp;

static Shape sh(int n, int64_t a, int64_t b) {
    Shape s = {n, {a, b}};
    return s;
}

static void build(Mlp *m) {
    IrGraph *g = &m->g;
    ir_init(g);
    m->x = ir_input(g, TY_F32, sh(2, B, K), "x", L0);
    m->w1 = ir_input(g, TY_F32, sh(2, K, H), "fc1.w", L0);
    m->b1 = ir_input(g, TY_F32, sh(1, H, 0), "fc1.b", L0);
    m->w2 = ir_input(g, TY_F32, sh(2, H, N), "fc2.w", L0);
    m->b2 = ir_input(g, TY_F32, sh(1, N, 0), "fc2.b", L0);
    int q[6];
    q[0] = ir_input(g, TY_I8, sh(2, K, H), "fc1.qw", L0);
    q[1] = ir_input(g, TY_F32, sh(1, H, 0), "fc1.w_scale", L0);
    q[2] = ir_input(g, TY_I32, sh(1, H, 0), "fc1.bias", L0);
    q[3] = ir_input(g, TY_I8, sh(2, H, N), "fc2.qw", L0);
    q[4] = ir_input(g, TY_F32, sh(1, N, 0), "fc2.w_scale", L0);
    q[5] = ir_input(g, TY_I32, sh(1, N, 0), "fc2.bias", L0);
    m->from = g->n;
    int h = ir_binary(g, OP_ADD, ir_matmul(g, m->x, m->w1, L0), m->b1, L0);
    h = ir_unary(g, OP_RELU, h, L0);
    m->root = ir_binary(g, OP_ADD, ir_matmul(g, h, m->w2, L0), m->b2, L0);
    cr_assert_geq(m->root, 0, "%s", g->err);
    m->L[0] = (QuantLinear){m->w1, m->b1, q[0], q[1], q[2], 0.02f, 0.05f, 3, -100};
    m->L[1] = (QuantLinear){m->w2, m->b2, q[3], q[4], q[5], 0.05f, 1.0f, -100, 0};
}

/* counts of each op among the nodes id needs */
static void count_ops(const IrGraph *g, int id, int *count) {
    char *need = calloc((size_t)g->n, 1);
    need[id] = 1;
    for (int i = id; i >= 0; i--) {
        if (!need[i]) continue;
        count[ir_node(g, i)->op]++;
        for (int k = 0; k < ir_node(g, i)->nin; k++) need[ir_node(g, i)->in[k]] = 1;
    }
    free(need);
}

Test(quant_pass, rewrite) {
    Mlp m;
    build(&m);
    QuantMatch mt[8];
    int nm = quant_match(&m.g, m.from, m.root, m.L, 2, mt, 8);
    cr_assert_eq(nm, 2);
    cr_expect_eq(mt[0].x, m.x);
    cr_expect_eq(mt[1].prev, 0, "fc2 is fed by fc1 through a relu");
    cr_expect(mt[1].relu && mt[1].root && !mt[0].root);
    int r = quant_pass(&m.g, m.from, m.root, m.L, 2, NULL);
    cr_assert_gt(r, m.root, "%s", m.g.err);
    int c[OP__COUNT] = {0};
    count_ops(&m.g, r, c);
    cr_expect_eq(c[OP_QMATMUL], 2);
    cr_expect_eq(c[OP_QUANTIZE], 1);
    cr_expect_eq(c[OP_DEQUANTIZE], 0, "the dequantize -> quantize pair folds");
    cr_expect_eq(c[OP_MATMUL], 0);
    cr_expect_eq(c[OP_RELU], 0);
    cr_expect_eq(c[OP_MAX], 1);
    cr_expect_eq(c[OP_REQUANTIZE], 2);
    cr_expect_eq(ir_node(&m.g, r)->op, OP_REQUANTIZE);
    cr_expect_eq(ir_node(&m.g, r)->dtype, TY_F32);
    char err[512];
    cr_expect(ir_verify(&m.g, err, sizeof err), "%s", err);
    ir_free(&m.g);
}

/* The JIT's run of g (into out[0]) has the bits of the naive result want
 * (bytes long). */
static void expect_jit_same(const IrGraph *g, void *const *in, void *const *out, const void *want,
                            size_t bytes) {
    Jit *jit = jit_new(2);
    if (!jit) return;
    char err[512];
    cr_assert(jit_run(jit, g, in, out, err, sizeof err), "%s", err);
    cr_expect(memcmp(want, out[0], bytes) == 0, "jit differs from naive");
    jit_free(jit);
}

static int8_t sat8(double v) {
    return v != v ? 0 : v < -128 ? -128 : v > 127 ? 127 : (int8_t)v;
}

Test(quant_pass, exact) {
    Mlp m;
    build(&m);
    int r = quant_pass(&m.g, m.from, m.root, m.L, 2, NULL);
    cr_assert_geq(r, 0, "%s", m.g.err);
    ir_mark_output(&m.g, r);
    srand(7);
    float x[B * K], w1[K * H], b1[H], w2[H * N], b2[N], s1[H], s2[N];
    int8_t q1[K * H], q2[H * N];
    int32_t c1[H], c2[N];
    for (int i = 0; i < B * K; i++) x[i] = (float)(rand() % 2001 - 1000) / 400.0f;
    for (int i = 0; i < K * H; i++) q1[i] = (int8_t)(rand() % 255 - 127), w1[i] = 0;
    for (int i = 0; i < H * N; i++) q2[i] = (int8_t)(rand() % 255 - 127), w2[i] = 0;
    for (int i = 0; i < H; i++)
        s1[i] = 0.001f * (1 + rand() % 9), c1[i] = rand() % 2001 - 1000, b1[i] = 0;
    for (int i = 0; i < N; i++)
        s2[i] = 0.001f * (1 + rand() % 9), c2[i] = rand() % 2001 - 1000, b2[i] = 0;
    void *in[] = {x, w1, b1, w2, b2, q1, s1, c1, q2, s2, c2};
    float want[B * N], got_n[B * N], got_j[B * N];
    /* the reference: the chain written out */
    for (int b = 0; b < B; b++) {
        int8_t hq[H];
        for (int j = 0; j < H; j++) {
            int32_t acc = 0;
            for (int k = 0; k < K; k++)
                acc += (int32_t)sat8(nearbyint((double)x[b * K + k] / 0.02f) + 3) * q1[k * H + j];
            acc += c1[j];
            float sc = s1[j] * (0.02f / 0.05f);
            int8_t h = sat8(nearbyint((double)acc * sc) + -100);
            hq[j] = h > -100 ? h : -100; /* relu: max(q, zero_point) */
        }
        for (int j = 0; j < N; j++) {
            int32_t acc = 0;
            for (int k = 0; k < H; k++) acc += (int32_t)hq[k] * q2[k * N + j];
            acc += c2[j];
            want[b * N + j] = (float)((double)acc * (s2[j] * 0.05f));
        }
    }
    void *out_n[] = {got_n}, *out_j[] = {got_j};
    KernelErr kerr;
    cr_assert(rt_naive_run(&m.g, in, out_n, NULL, &kerr), "%s", kerr.msg);
    cr_expect(memcmp(want, got_n, sizeof want) == 0, "naive differs from the reference");
    expect_jit_same(&m.g, in, out_j, got_n, sizeof got_n);
    ir_free(&m.g);
}

Test(quant_pass, unmatched) {
    Mlp m;
    build(&m);
    QuantLinear other = m.L[0];
    other.w = m.x; /* no matmul has x as its weight */
    QuantMatch mt[8];
    cr_expect_eq(quant_match(&m.g, m.from, m.root, &other, 1, mt, 8), 0);
    int r = quant_pass(&m.g, m.from, m.root, &other, 1, NULL);
    cr_expect_eq(r, m.root, "nothing to rewrite: the float graph is the result");
    ir_free(&m.g);
}

Test(quant_pass, requantize_is_the_epilogue) {
    Mlp m;
    build(&m);
    int r = quant_pass(&m.g, m.from, m.root, m.L, 2, NULL);
    cr_assert_geq(r, 0, "%s", m.g.err);
    ir_mark_output(&m.g, r);
    LpProg *p = lp_lower(&m.g, true);
    lp_fuse_kernels(p);
    char *buf = tu_prog_text(p, &m.g);
    lp_free(p);
    /* both products, each followed by its epilogue over the B rows */
    int n = 0;
    for (const char *at = buf; (at = strstr(at, "qgemm(")); at++) {
        const char *next = strstr(at, "\n    for i0 in 0..5 epilogue {");
        const char *kernel = strstr(at, "\nkernel ");
        cr_expect(next && (!kernel || next < kernel), "a qgemm without its epilogue:\n%s", buf);
        n++;
    }
    cr_expect_eq(n, 2, "%s", buf);
    free(buf);
    ir_free(&m.g);
}

/* -- a CNN: conv2d + b -> relu -> max_pool2d -> reshape -> @ w2 + b2 -- */

enum { CN = 2, CC = 2, CH = 6, CW = 5, CO = 4, CF = CO * 3 * 2, CK = 3 };

typedef struct Cnn {
    IrGraph g;
    int x, root, from, conv_out;
    QuantLinear L[2];
} Cnn;

/* bn: a float multiply (a BatchNorm's) between the conv and the relu */
static void build_cnn(Cnn *m, bool bn) {
    IrGraph *g = &m->g;
    ir_init(g);
    Shape xs = {4, {CN, CC, CH, CW}}, ws = {4, {CO, CC, CK, CK}};
    m->x = ir_input(g, TY_F32, xs, "x", L0);
    int w1 = ir_input(g, TY_F32, ws, "conv.weight", L0);
    int b1 = ir_input(g, TY_F32, sh(1, CO, 0), "conv.bias", L0);
    int w2 = ir_input(g, TY_F32, sh(2, CF, N), "fc.w", L0);
    int b2 = ir_input(g, TY_F32, sh(1, N, 0), "fc.b", L0);
    int gam = ir_input(g, TY_F32, (Shape){3, {CO, 1, 1}}, "bn.weight", L0);
    int q[6];
    q[0] = ir_input(g, TY_I8, ws, "conv.qw", L0);
    q[1] = ir_input(g, TY_F32, sh(1, CO, 0), "conv.weight_scale", L0);
    q[2] = ir_input(g, TY_I32, sh(1, CO, 0), "conv.qbias", L0);
    q[3] = ir_input(g, TY_I8, sh(2, CF, N), "fc.qw", L0);
    q[4] = ir_input(g, TY_F32, sh(1, N, 0), "fc.w_scale", L0);
    q[5] = ir_input(g, TY_I32, sh(1, N, 0), "fc.bias", L0);
    m->from = g->n;
    IrWindow win = {.stride = {1, 1}, .padding = {1, 1}, .dilation = {1, 1}, .groups = 1};
    int h = m->conv_out = ir_conv2d(g, m->x, w1, b1, &win, L0);
    if (bn) h = ir_binary(g, OP_MUL, h, gam, L0);
    h = ir_unary(g, OP_RELU, h, L0);
    IrWindow pw = {.kernel = {2, 2}, .stride = {2, 2}};
    h = ir_pool2d(g, OP_MAX_POOL2D, h, &pw, L0);
    h = ir_reshape(g, h, sh(2, CN, CF), L0);
    m->root = ir_binary(g, OP_ADD, ir_matmul(g, h, w2, L0), b2, L0);
    cr_assert_geq(m->root, 0, "%s", g->err);
    m->L[0] = (QuantLinear){w1, b1, q[0], q[1], q[2], 0.02f, 0.05f, 3, -100, true};
    m->L[1] = (QuantLinear){w2, b2, q[3], q[4], q[5], 0.05f, 1.0f, -100, 0, false};
}

/* quant_pass::cnn_rewrite: the conv becomes qconv2d padding with the input
 * zero point, relu / max pool / reshape run on i8, the pair before the
 * Linear folds; with a float op after the conv, it requantizes to f32 */
Test(quant_pass, cnn_rewrite) {
    for (int bn = 0; bn < 2; bn++) {
        Cnn m;
        build_cnn(&m, bn);
        QuantMatch mt[8];
        int nm = quant_match(&m.g, m.from, m.root, m.L, 2, mt, 8);
        cr_assert_eq(nm, 2);
        cr_expect_eq(mt[0].x, m.x);
        cr_expect_eq(mt[0].out, m.conv_out, "the bias add is the conv's output");
        cr_expect_eq(mt[0].fout, (bool)bn, "a float user takes f32 straight from the conv");
        cr_expect_eq(mt[1].prev, bn ? -1 : 0);
        int r = quant_pass(&m.g, m.from, m.root, m.L, 2, NULL);
        cr_assert_gt(r, m.root, "%s", m.g.err);
        int c[OP__COUNT] = {0};
        count_ops(&m.g, r, c);
        cr_expect_eq(c[OP_QCONV2D], 1);
        cr_expect_eq(c[OP_QMATMUL], 1);
        cr_expect_eq(c[OP_CONV2D] + c[OP_MATMUL], 0);
        cr_expect_eq(c[OP_QUANTIZE], bn ? 2 : 1);
        cr_expect_eq(c[OP_DEQUANTIZE], 0);
        cr_expect_eq(c[OP_RELU], bn ? 1 : 0);
        for (int i = 0; i <= r; i++) {
            const IrNode *n = ir_node(&m.g, i);
            if (n->op == OP_QCONV2D) cr_expect_eq(n->attr.value, 3, "pads with in_zp");
            if (n->op == OP_MAX_POOL2D && i > m.root) cr_expect_eq(n->dtype, bn ? TY_F32 : TY_I8);
        }
        char err[512];
        cr_expect(ir_verify(&m.g, err, sizeof err), "%s", err);
        ir_free(&m.g);
    }
}

/* quant_pass::cnn_exact: the rewritten CNN on random data, the same bits
 * on the naive runtime and the JIT */
Test(quant_pass, cnn_exact) {
    Cnn m;
    build_cnn(&m, false);
    int r = quant_pass(&m.g, m.from, m.root, m.L, 2, NULL);
    cr_assert_geq(r, 0, "%s", m.g.err);
    ir_mark_output(&m.g, r);
    srand(11);
    enum { NX = CN * CC * CH * CW, NW = CO * CC * CK * CK };
    static float x[NX], w1[NW], b1[CO], w2[CF * N], b2[N], gam[CO], s1[CO], s2[N];
    static int8_t q1[NW], q2[CF * N];
    static int32_t c1[CO], c2[N];
    for (int i = 0; i < NX; i++) x[i] = (float)(rand() % 2001 - 1000) / 400.0f;
    for (int i = 0; i < NW; i++) q1[i] = (int8_t)(rand() % 255 - 127);
    for (int i = 0; i < CF * N; i++) q2[i] = (int8_t)(rand() % 255 - 127);
    for (int i = 0; i < CO; i++) s1[i] = 0.001f * (1 + rand() % 9), c1[i] = rand() % 2001 - 1000;
    for (int i = 0; i < N; i++) s2[i] = 0.001f * (1 + rand() % 9), c2[i] = rand() % 2001 - 1000;
    void *in[] = {x, w1, b1, w2, b2, gam, q1, s1, c1, q2, s2, c2};
    float got_n[CN * N], got_j[CN * N];
    void *out_n[] = {got_n}, *out_j[] = {got_j};
    KernelErr kerr;
    cr_assert(rt_naive_run(&m.g, in, out_n, NULL, &kerr), "%s", kerr.msg);
    float mag = 0;
    for (int i = 0; i < CN * N; i++) mag += fabsf(got_n[i]);
    cr_expect_gt(mag, 0, "a result of zeros would prove nothing");
    expect_jit_same(&m.g, in, out_j, got_n, sizeof got_n);
    ir_free(&m.g);
}
