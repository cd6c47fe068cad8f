/* test_attention.c - the attention op's builder, attributes, printing and
 * hashing (its values: test_kernels.c, test_jit.c, test_grad.c and
 * tests/lang/lib_attention.tt). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

static const SrcLoc L0 = {0};

static int in(IrGraph *g, int64_t b, int64_t t, int64_t d) {
    return ir_input(g, TY_F32, shape_make(3, (int64_t[]){b, t, d}), NULL, L0);
}

/* one attention graph; len: add an i32 0-d len input */
static int build(IrGraph *g, bool causal, double scale, bool len) {
    ir_init(g);
    int q = in(g, 2, 3, 4), k = in(g, 2, 5, 4), v = in(g, 2, 5, 6);
    int l = len ? ir_input(g, TY_I32, shape_scalar(), "len", L0) : -1;
    int y = ir_attention(g, q, k, v, l, causal, scale, L0);
    cr_assert(y >= 0, "%s", g->err);
    ir_mark_output(g, y);
    return y;
}

Test(attention, default_scale_is_stored) {
    IrGraph g;
    int y = build(&g, false, NAN, false);
    cr_assert_float_eq(ir_node(&g, y)->attr.scale, 0.5, 1e-15);
    Shape want = shape_make(3, (int64_t[]){2, 3, 6});
    cr_assert(shape_eq(&ir_node(&g, y)->shape, &want));
    char err[256];
    cr_assert(ir_verify(&g, err, sizeof err), "%s", err);
    ir_free(&g);
}

Test(attention, attributes_are_hashed) {
    IrGraph a, b, c, d;
    build(&a, false, NAN, false);
    build(&b, true, NAN, false);
    build(&c, false, 0.25, false);
    build(&d, false, NAN, true);
    cr_assert_neq(ir_hash(&a), ir_hash(&b));
    cr_assert_neq(ir_hash(&a), ir_hash(&c));
    cr_assert_neq(ir_hash(&a), ir_hash(&d));
    IrGraph a2;
    build(&a2, false, NAN, false);
    cr_assert_eq(ir_hash(&a), ir_hash(&a2));
    ir_free(&a), ir_free(&b), ir_free(&c), ir_free(&d), ir_free(&a2);
}

Test(attention, printed_with_attributes) {
    IrGraph g;
    int y = build(&g, true, 0.25, true);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ir_print_node(f, &g, y);
    fclose(f);
    cr_assert(strstr(buf, "= attention %0, %1, %2, %3 causal=true scale=0.25 : f32[2, 3, 6]"), "%s",
              buf);
    free(buf);
    ir_free(&g);
}

Test(attention, batch_dims_broadcast) {
    IrGraph g;
    ir_init(&g);
    int q = in(&g, 2, 3, 4), k = in(&g, 1, 5, 4), v = in(&g, 1, 5, 6);
    int y = ir_attention(&g, q, k, v, -1, false, NAN, L0);
    cr_assert(y >= 0, "%s", g.err);
    Shape want = shape_make(3, (int64_t[]){2, 3, 6});
    cr_assert(shape_eq(&ir_node(&g, y)->shape, &want));
    ir_free(&g);
}

Test(attention, bad_operands_are_errors) {
    IrGraph g;
    ir_init(&g);
    int q = in(&g, 2, 3, 4), k = in(&g, 2, 5, 4), v = in(&g, 2, 5, 6);
    int lf = ir_input(&g, TY_F32, shape_scalar(), NULL, L0);
    int lv = ir_input(&g, TY_I32, shape_make(1, (int64_t[]){1}), NULL, L0);
    cr_assert_eq(ir_attention(&g, q, k, v, lf, false, NAN, L0), -1);
    cr_assert(strstr(g.err, "len must be an i32 scalar"), "%s", g.err);
    cr_assert_eq(ir_attention(&g, q, k, v, lv, false, NAN, L0), -1);
    cr_assert_eq(ir_attention(&g, q, v, v, -1, false, NAN, L0), -1);
    cr_assert(strstr(g.err, "different feature sizes (4 != 6)"), "%s", g.err);
    cr_assert_eq(ir_attention(&g, q, k, k, -1, false, INFINITY, L0), -1);
    cr_assert(strstr(g.err, "scale must be finite"), "%s", g.err);
    cr_assert_eq(ir_attention(&g, q, k, v, 999, false, NAN, L0), -1);
    ir_free(&g);
}

/* the backward ops' shape rules name the op and the operand */
Test(attention, backward_ops_bad_operands_are_errors) {
    IrGraph g;
    ir_init(&g);
    int q = in(&g, 2, 3, 4), k = in(&g, 2, 5, 4), v = in(&g, 2, 5, 6), gy = in(&g, 2, 3, 6);
    Shape rs = shape_make(2, (int64_t[]){2, 3});
    int lse = ir_input(&g, TY_F32, rs, NULL, L0), delta = ir_input(&g, TY_F32, rs, NULL, L0);
    int len = ir_input(&g, TY_I32, shape_scalar(), NULL, L0);
    IrAttr at = {0};
    at.scale = 0.5;
    int ok = ir_add(&g, OP_ATTENTION_LSE, (int[]){q, k, len}, 3, &at, L0);
    cr_assert(ok >= 0, "%s", g.err);
    cr_expect_eq(ir_node(&g, ok)->shape.ndim, 2);
    cr_expect_eq(ir_node(&g, ok)->shape.d[1], 3);
    cr_assert_eq(ir_add(&g, OP_ATTENTION_LSE, (int[]){q, k, v, len}, 4, &at, L0), -1);
    cr_expect(strstr(g.err, "attention_lse: expects 2 or 3 inputs, got 4"), "%s", g.err);
    cr_assert_eq(ir_add(&g, OP_ATTENTION_LSE, (int[]){q, v}, 2, &at, L0), -1);
    cr_expect(strstr(g.err, "attention_lse: q [2, 3, 4] and k [2, 5, 6] have different feature"),
              "%s", g.err);
    int ins[7] = {q, k, v, gy, lse, delta, len};
    for (int axis = 0; axis < 3; axis++) {
        at.axis = axis;
        int d = ir_add(&g, OP_ATTENTION_GRAD, ins, 7, &at, L0);
        cr_assert(d >= 0, "%s", g.err);
        cr_expect(shape_eq(&ir_node(&g, d)->shape, &ir_node(&g, ins[axis])->shape));
    }
    at.axis = 3;
    cr_assert_eq(ir_add(&g, OP_ATTENTION_GRAD, ins, 7, &at, L0), -1);
    cr_expect(strstr(g.err, "axis must be 0 (q), 1 (k) or 2 (v), got 3"), "%s", g.err);
    at.axis = 0;
    int bad[6] = {q, k, v, gy, delta, lse};
    bad[4] = gy; /* lse of the wrong shape */
    cr_assert_eq(ir_add(&g, OP_ATTENTION_GRAD, bad, 6, &at, L0), -1);
    cr_expect(strstr(g.err, "attention_grad: lse must be f32[2, 3], got f32[2, 3, 6]"), "%s",
              g.err);
    bad[4] = lse;
    bad[3] = q; /* gy of q's shape, not y's */
    cr_assert_eq(ir_add(&g, OP_ATTENTION_GRAD, bad, 6, &at, L0), -1);
    cr_expect(strstr(g.err, "attention_grad: gy must be f32[2, 3, 6], got f32[2, 3, 4]"), "%s",
              g.err);
    cr_assert_eq(ir_add(&g, OP_ATTENTION_GRAD, ins, 5, &at, L0), -1);
    cr_expect(strstr(g.err, "attention_grad: expects 6 or 7 inputs, got 5"), "%s", g.err);
    ir_free(&g);
}
