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
