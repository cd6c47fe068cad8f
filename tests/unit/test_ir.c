/* test_ir.c - the graph IR: op table, builders, shape rules, verifier,
 * printer, hash and FLOP count. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dump_text.h"
#include "ir.h"

#define SHP(...)                                                                                   \
    shape_make((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})
#define NOLOC SRCLOC_NONE

static IrGraph g;
static void setup(void) {
    ir_init(&g);
}
static void teardown(void) {
    ir_free(&g);
}

static int in(DType t, Shape s) {
    return ir_input(&g, t, s, NULL, NOLOC);
}

static void expect_shape(int id, const Shape s) {
    cr_assert_geq(id, 0, "node failed: %s", g.err);
    char a[192], b[192];
    cr_assert(shape_eq(&g.nodes[id].shape, &s), "shape %s, expected %s",
              shape_str(&g.nodes[id].shape, a, sizeof a), shape_str(&s, b, sizeof b));
}

static void expect_err(int id, const char *substr) {
    cr_assert_eq(id, -1, "expected an error containing \"%s\"", substr);
    cr_assert(strstr(g.err, substr), "error \"%s\" lacks \"%s\"", g.err, substr);
    size_t n = strlen(g.err);
    cr_assert(n > 0 && g.err[n - 1] != '\n', "error ends with a newline");
}

static void expect_valid(void) {
    char err[512];
    cr_assert(ir_verify(&g, err, sizeof err), "verify: %s", err);
}

TestSuite(ir_table, .init = setup, .fini = teardown);
TestSuite(ir_build, .init = setup, .fini = teardown);
TestSuite(ir_error, .init = setup, .fini = teardown);
TestSuite(ir_verify, .init = setup, .fini = teardown);
TestSuite(ir_hash, .init = setup, .fini = teardown);
TestSuite(ir_print, .init = setup, .fini = teardown);

/* -- table and helpers -- */

Test(ir_table, rows) {
    cr_assert_str_eq(ir_ops[OP_MATMUL].name, "matmul");
    cr_assert_eq(ir_ops[OP_MATMUL].arity, 2);
    cr_assert_eq(ir_ops[OP_CONCAT].arity, -1);
    cr_assert_str_eq(ir_ops[OP_SCATTER_ADD].name, "scatter_add");
    cr_assert(ir_ops[OP_INPUT].flags & OPF_LEAF);
    cr_assert(ir_ops[OP_EXP].flags & OPF_FLOAT);
    for (int op = 0; op < OP__COUNT; op++) {
        cr_assert_not_null(ir_ops[op].name);
        cr_assert_not_null(ir_ops[op].shape, "%s has no shape rule", ir_ops[op].name);
        cr_assert_not_null(ir_ops[op].flops, "%s has no flop rule", ir_ops[op].name);
    }
}

Test(ir_table, dtypes_and_shapes) {
    cr_assert_str_eq(dtype_name(TY_F32), "f32");
    cr_assert_str_eq(dtype_name(TY_I32), "i32");
    cr_assert_str_eq(dtype_name(TY_I8), "i8");
    cr_assert_eq(dtype_size(TY_F32), 4);
    cr_assert_eq(dtype_size(TY_I8), 1);
    Shape s = SHP(64, 784), z = shape_scalar();
    char buf[64];
    cr_assert_str_eq(shape_str(&s, buf, sizeof buf), "[64, 784]");
    cr_assert_str_eq(shape_str(&z, buf, sizeof buf), "[]");
    cr_assert_eq(shape_numel(&s), 64 * 784);
    cr_assert_eq(shape_numel(&z), 1);
    cr_assert(shape_eq(&s, &(Shape){.ndim = 2, .d = {64, 784}}));
    cr_assert(!shape_eq(&s, &z));
    char tiny[4];
    shape_str(&s, tiny, sizeof tiny); /* truncates, never overflows */
    cr_assert_str_eq(tiny, "[64");
}

Test(ir_table, leaves) {
    int x = ir_input(&g, TY_F32, SHP(2, 3), "x", NOLOC);
    int w = ir_input(&g, TY_I8, SHP(4), "w", NOLOC);
    int c = ir_const(&g, TY_F32, shape_scalar(), 2.5, NOLOC);
    cr_assert_eq(g.ninputs, 2);
    cr_assert_eq(g.nodes[x].attr.index, 0);
    cr_assert_eq(g.nodes[w].attr.index, 1);
    cr_assert_str_eq(g.nodes[w].name, "w");
    cr_assert_eq(g.nodes[w].dtype, TY_I8);
    expect_shape(c, shape_scalar());
    cr_assert_eq(g.nodes[c].attr.value, 2.5);
    expect_valid();
}

Test(ir_table, bad_leaf_adds_nothing) {
    Shape bad = SHP(2, -3);
    expect_err(ir_input(&g, TY_F32, bad, "x", NOLOC), "negative dimension");
    cr_assert_eq(g.n, 0);
    cr_assert_eq(g.ninputs, 0);
    expect_err(ir_const(&g, (DType)7, SHP(2), 0, NOLOC), "unknown dtype");
}

Test(ir_table, huge_shapes_are_errors) {
    int64_t big = INT64_C(1) << 40;
    expect_err(ir_input(&g, TY_F32, SHP(big, big, big), "x", NOLOC), "too many elements");
    Shape z = SHP(big, big, big, 0);
    cr_assert_eq(shape_numel(&z), 0);
    int a = in(TY_F32, SHP(big)), b = in(TY_F32, SHP(big, 1));
    expect_err(ir_binary(&g, OP_ADD, a, b, NOLOC), "too many elements");
    expect_err(ir_reshape(&g, a, SHP(big, big, -1), NOLOC), "cannot reshape");
}

/* -- builders -- */

Test(ir_build, unary) {
    int x = in(TY_I32, SHP(3));
    int n = ir_unary(&g, OP_NEG, x, NOLOC);
    expect_shape(n, SHP(3));
    cr_assert_eq(g.nodes[n].dtype, TY_I32, "neg keeps ints");
    int e = ir_unary(&g, OP_EXP, x, NOLOC);
    cr_assert_eq(g.nodes[e].dtype, TY_F32);
    cr_assert_eq(g.nodes[g.nodes[e].in[0]].op, OP_CAST, "exp casts ints to f32");
    int s = ir_unary(&g, OP_SQRT, ir_const(&g, TY_F32, shape_scalar(), 4, NOLOC), NOLOC);
    expect_shape(s, shape_scalar());
    expect_err(ir_unary(&g, OP_ADD, x, NOLOC), "not an elementwise unary op");
    expect_valid();
}

Test(ir_build, broadcast_column_row) {
    int a = in(TY_F32, SHP(3, 1)), b = in(TY_F32, SHP(4));
    int c = ir_binary(&g, OP_ADD, a, b, NOLOC);
    expect_shape(c, SHP(3, 4));
    const IrNode *n = &g.nodes[c];
    cr_assert_eq(n->op, OP_ADD);
    cr_assert_eq(g.nodes[n->in[0]].op, OP_BROADCAST);
    const IrNode *rb = &g.nodes[n->in[1]];
    cr_assert_eq(rb->op, OP_BROADCAST);
    cr_assert_eq(g.nodes[rb->in[0]].op, OP_RESHAPE, "[4] is first reshaped to [1, 4]");
    expect_shape(rb->in[0], SHP(1, 4));
    expect_valid();
}

Test(ir_build, broadcast_scalar) {
    int a = in(TY_F32, SHP(2, 3)), b = in(TY_F32, shape_scalar());
    int c = ir_binary(&g, OP_MUL, a, b, NOLOC);
    expect_shape(c, SHP(2, 3));
    cr_assert_eq(g.nodes[c].in[0], a, "no node for the operand already [2, 3]");
    int d = ir_binary(&g, OP_SUB, b, b, NOLOC);
    expect_shape(d, shape_scalar());
    expect_valid();
}

Test(ir_build, same_shapes_add_one_node) {
    int a = in(TY_F32, SHP(5)), b = in(TY_F32, SHP(5));
    int before = g.n;
    int c = ir_binary(&g, OP_DIV, a, b, NOLOC);
    cr_assert_eq(g.n, before + 1);
    cr_assert_eq(c, before);
}

Test(ir_build, promotion) {
    int i8 = in(TY_I8, SHP(2)), i32 = in(TY_I32, SHP(2)), f = in(TY_F32, SHP(2));
    int a = ir_binary(&g, OP_ADD, i8, i32, NOLOC);
    cr_assert_eq(g.nodes[a].dtype, TY_I32);
    int b = ir_binary(&g, OP_MUL, i32, f, NOLOC);
    cr_assert_eq(g.nodes[b].dtype, TY_F32);
    int c = ir_binary(&g, OP_POW, i8, i32, NOLOC);
    cr_assert_eq(g.nodes[c].dtype, TY_F32, "pow is float-only");
    int d = ir_binary(&g, OP_MAX, i8, i8, NOLOC);
    cr_assert_eq(g.nodes[d].dtype, TY_I8);
    expect_valid();
}

Test(ir_build, compare) {
    int a = in(TY_I32, SHP(3)), b = in(TY_F32, SHP(2, 1));
    int c = ir_binary(&g, OP_LT, a, b, NOLOC);
    expect_shape(c, SHP(2, 3));
    cr_assert_eq(g.nodes[c].dtype, TY_F32);
    int d = ir_binary(&g, OP_EQ, a, a, NOLOC);
    cr_assert_eq(g.nodes[d].dtype, TY_F32, "a mask is f32 even for ints");
    expect_valid();
}

Test(ir_build, where) {
    int c = in(TY_F32, SHP(4, 1)), a = in(TY_I32, SHP(3)), b = in(TY_F32, shape_scalar());
    int w = ir_where(&g, c, a, b, NOLOC);
    expect_shape(w, SHP(4, 3));
    cr_assert_eq(g.nodes[w].dtype, TY_F32);
    int m = in(TY_I8, SHP(3));
    int w2 = ir_where(&g, m, a, a, NOLOC);
    cr_assert_eq(g.nodes[w2].in[0], m, "the condition keeps its dtype");
    cr_assert_eq(g.nodes[w2].dtype, TY_I32);
    expect_valid();
}

Test(ir_build, reduce) {
    int x = in(TY_F32, SHP(2, 3, 4));
    int s = ir_reduce(&g, OP_SUM, x, (int[]){0, -1}, 2, false, NOLOC);
    expect_shape(s, SHP(3));
    cr_assert_eq(g.nodes[s].attr.axes, 5u);
    int k = ir_reduce(&g, OP_RMAX, x, (int[]){1}, 1, true, NOLOC);
    expect_shape(k, SHP(2, 1, 4));
    int all = ir_reduce(&g, OP_SUM, x, NULL, 0, false, NOLOC);
    expect_shape(all, shape_scalar());
    cr_assert_eq(g.nodes[all].attr.axes, 7u);
    int allk = ir_reduce(&g, OP_SUM, x, NULL, 0, true, NOLOC);
    expect_shape(allk, SHP(1, 1, 1));
    cr_assert_eq(ir_reduce(&g, OP_SUM, all, NULL, 0, false, NOLOC), all, "scalar: no-op");
    expect_err(ir_reduce(&g, OP_EXP, x, NULL, 0, false, NOLOC), "not a reduction");
    expect_valid();
}

Test(ir_build, argmax) {
    int x = in(TY_F32, SHP(5, 10));
    int a = ir_argmax(&g, x, -1, false, NOLOC);
    expect_shape(a, SHP(5));
    cr_assert_eq(g.nodes[a].dtype, TY_I32);
    cr_assert_eq(g.nodes[a].attr.axis, 1, "axis normalized");
    int b = ir_argmax(&g, x, 0, true, NOLOC);
    expect_shape(b, SHP(1, 10));
    expect_err(ir_argmax(&g, x, 2, false, NOLOC), "argmax: axis 2 out of range for [5, 10]");
    expect_valid();
}

Test(ir_build, reshape) {
    int x = in(TY_F32, SHP(2, 3, 4));
    int r = ir_reshape(&g, x, SHP(-1, 4), NOLOC);
    expect_shape(r, SHP(6, 4));
    int r2 = ir_reshape(&g, x, SHP(2, -1), NOLOC);
    expect_shape(r2, SHP(2, 12));
    cr_assert_eq(ir_reshape(&g, x, SHP(2, 3, 4), NOLOC), x, "same shape: no node");
    cr_assert_eq(ir_reshape(&g, x, SHP(2, -1, 4), NOLOC), x);
    int s = ir_reshape(&g, ir_const(&g, TY_F32, SHP(1, 1), 0, NOLOC), shape_scalar(), NOLOC);
    expect_shape(s, shape_scalar());
    expect_err(ir_reshape(&g, x, SHP(-1, -1), NOLOC), "only one dimension can be -1");
    expect_err(ir_reshape(&g, x, SHP(5, -1), NOLOC), "cannot reshape [2, 3, 4] (24 elements)");
    expect_valid();
}

Test(ir_build, permute_transpose) {
    int x = in(TY_F32, SHP(2, 3, 4));
    int p = ir_permute(&g, x, (int[]){2, 0, 1}, NOLOC);
    expect_shape(p, SHP(4, 2, 3));
    cr_assert_eq(ir_permute(&g, x, (int[]){0, 1, 2}, NOLOC), x, "identity: no node");
    int t = ir_transpose(&g, x, -1, -2, NOLOC);
    expect_shape(t, SHP(2, 4, 3));
    cr_assert_eq(g.nodes[t].attr.perm[1], 2);
    cr_assert_eq(ir_transpose(&g, x, 1, 1, NOLOC), x);
    expect_err(ir_transpose(&g, x, 0, 3, NOLOC), "transpose: axis 3 out of range for [2, 3, 4]");
    expect_valid();
}

Test(ir_build, broadcast_to) {
    int x = in(TY_F32, SHP(3, 1));
    int b = ir_broadcast_to(&g, x, SHP(2, 3, 5), NOLOC);
    expect_shape(b, SHP(2, 3, 5));
    cr_assert_eq(ir_broadcast_to(&g, x, SHP(3, 1), NOLOC), x);
    int r = ir_broadcast_to(&g, x, SHP(1, 3, 1), NOLOC);
    cr_assert_eq(g.nodes[r].op, OP_RESHAPE, "only leading 1s: a reshape suffices");
    expect_err(ir_broadcast_to(&g, x, SHP(4, 5), NOLOC),
               "broadcast_to: cannot broadcast [3, 1] to [4, 5]");
    expect_valid();
}

Test(ir_build, slice_normalization) {
    int x = in(TY_F32, SHP(10, 6));
    IrSliceDim d[2] = {
        {.has_start = true, .start = -3}, /* x[-3:] */
        {.has_start = true,
         .start = 1,
         .has_stop = true,
         .stop = -1, /* x[:, 1:-1:2] */
         .has_step = true,
         .step = 2},
    };
    int s = ir_slice(&g, x, d, 2, NOLOC);
    expect_shape(s, SHP(3, 2));
    const IrAttr *a = &g.nodes[s].attr;
    cr_assert_eq(a->start[0], 7);
    cr_assert_eq(a->stop[0], 10);
    cr_assert_eq(a->step[0], 1);
    cr_assert_eq(a->start[1], 1);
    cr_assert_eq(a->stop[1], 5);
    cr_assert_eq(a->step[1], 2);
    expect_valid();
}

Test(ir_build, slice_clamping_and_empty) {
    int x = in(TY_F32, SHP(5));
    IrSliceDim big = {.has_start = true, .start = -100, .has_stop = true, .stop = 100};
    cr_assert_eq(ir_slice(&g, x, &big, 1, NOLOC), x, "x[-100:100] is all of x: no node");
    IrSliceDim empty = {.has_start = true, .start = 4, .has_stop = true, .stop = 2};
    int e = ir_slice(&g, x, &empty, 1, NOLOC);
    expect_shape(e, SHP(0));
    IrSliceDim odd = {.has_step = true, .step = 2};
    expect_shape(ir_slice(&g, x, &odd, 1, NOLOC), SHP(3));
    int m = in(TY_F32, SHP(4, 3));
    IrSliceDim first = {.has_stop = true, .stop = 2};
    expect_shape(ir_slice(&g, m, &first, 1, NOLOC), SHP(2, 3)); /* trailing dims full */
    expect_valid();
}

Test(ir_build, concat) {
    int a = in(TY_F32, SHP(2, 3)), b = in(TY_F32, SHP(4, 3)), c = in(TY_I32, SHP(1, 3));
    int r = ir_concat(&g, (int[]){a, b, c}, 3, 0, NOLOC);
    expect_shape(r, SHP(7, 3));
    cr_assert_eq(g.nodes[r].dtype, TY_F32);
    int r2 = ir_concat(&g, (int[]){a, a}, 2, -1, NOLOC);
    expect_shape(r2, SHP(2, 6));
    cr_assert_eq(g.nodes[r2].attr.axis, 1);
    cr_assert_eq(ir_concat(&g, (int[]){a}, 1, 0, NOLOC), a);
    expect_valid();
}

Test(ir_build, matmul_2d) {
    int a = in(TY_F32, SHP(64, 784)), b = in(TY_F32, SHP(784, 128));
    int m = ir_matmul(&g, a, b, NOLOC);
    expect_shape(m, SHP(64, 128));
    cr_assert_eq(g.nodes[m].op, OP_MATMUL);
    cr_assert_eq(g.nodes[m].in[0], a);
    cr_assert_eq(g.nodes[m].in[1], b);
    expect_valid();
}

Test(ir_build, matmul_vectors) {
    int v = in(TY_F32, SHP(3)), m = in(TY_F32, SHP(3, 5)), w = in(TY_F32, SHP(5, 3));
    expect_shape(ir_matmul(&g, v, m, NOLOC), SHP(5));
    expect_shape(ir_matmul(&g, w, v, NOLOC), SHP(5));
    int dot = ir_matmul(&g, v, v, NOLOC);
    expect_shape(dot, shape_scalar());
    cr_assert_eq(g.nodes[dot].op, OP_RESHAPE);
    expect_shape(g.nodes[dot].in[0], SHP(1, 1));
    int bt = in(TY_F32, SHP(4, 3, 5));
    expect_shape(ir_matmul(&g, v, bt, NOLOC), SHP(4, 5));
    expect_valid();
}

Test(ir_build, matmul_batch_broadcast) {
    int a = in(TY_F32, SHP(2, 1, 3, 4)), b = in(TY_F32, SHP(5, 4, 6));
    int m = ir_matmul(&g, a, b, NOLOC);
    expect_shape(m, SHP(2, 5, 3, 6));
    expect_shape(g.nodes[m].in[0], SHP(2, 5, 3, 4));
    expect_shape(g.nodes[m].in[1], SHP(2, 5, 4, 6));
    int c = in(TY_F32, SHP(7, 3, 4)), d = in(TY_F32, SHP(4, 2));
    expect_shape(ir_matmul(&g, c, d, NOLOC), SHP(7, 3, 2));
    expect_err(ir_matmul(&g, in(TY_F32, SHP(2, 3, 4)), in(TY_F32, SHP(3, 4, 5)), NOLOC),
               "cannot broadcast batch dimensions of [2, 3, 4] @ [3, 4, 5]");
    expect_valid();
}

Test(ir_build, matmul_casts_ints) {
    int a = in(TY_I8, SHP(2, 3)), b = in(TY_I32, SHP(3, 2));
    int m = ir_matmul(&g, a, b, NOLOC);
    cr_assert_eq(g.nodes[m].dtype, TY_F32);
    cr_assert_eq(g.nodes[g.nodes[m].in[0]].op, OP_CAST);
    expect_valid();
}

Test(ir_build, gather_and_cast) {
    int t = in(TY_F32, SHP(100, 16)), ix = in(TY_I32, SHP(4, 8));
    int e = ir_gather(&g, t, ix, NOLOC);
    expect_shape(e, SHP(4, 8, 16));
    cr_assert_eq(g.nodes[e].dtype, TY_F32);
    int v = in(TY_I8, SHP(50)), i0 = in(TY_I8, shape_scalar());
    int s = ir_gather(&g, v, i0, NOLOC);
    expect_shape(s, shape_scalar());
    cr_assert_eq(g.nodes[g.nodes[s].in[1]].dtype, TY_I32, "i8 indices widened");
    cr_assert_eq(ir_cast(&g, t, TY_F32, NOLOC), t, "same dtype: no node");
    int c = ir_cast(&g, t, TY_I8, NOLOC);
    cr_assert_eq(g.nodes[c].dtype, TY_I8);
    cr_assert_eq(g.nodes[c].attr.dtype, TY_I8);
    expect_valid();
}

Test(ir_build, raw_pad_scatter) {
    int x = in(TY_F32, SHP(2, 3));
    IrAttr a = {0};
    a.shape = SHP(5, 7);
    a.start[0] = 1, a.step[0] = 2; /* rows 1, 3 */
    a.start[1] = 0, a.step[1] = 3; /* cols 0, 3, 6 */
    expect_shape(ir_add(&g, OP_PAD, &x, 1, &a, NOLOC), SHP(5, 7));
    a.shape = SHP(5, 6);
    expect_err(ir_add(&g, OP_PAD, &x, 1, &a, NOLOC), "does not fit");
    int src = in(TY_F32, SHP(4, 8, 16)), ix = in(TY_I32, SHP(4, 8));
    IrAttr s = {0};
    s.shape = SHP(100, 16);
    int sc = ir_add(&g, OP_SCATTER_ADD, (int[]){src, ix}, 2, &s, NOLOC);
    expect_shape(sc, SHP(100, 16));
    s.shape = SHP(100, 15);
    expect_err(ir_add(&g, OP_SCATTER_ADD, (int[]){src, ix}, 2, &s, NOLOC),
               "scatter_add: source [4, 8, 16] does not match");
    expect_valid();
}

Test(ir_build, attrs_canonical) {
    int x = in(TY_F32, SHP(2, 3));
    IrAttr junk;
    memset(&junk, 0x5a, sizeof junk);
    junk.perm[0] = 1, junk.perm[1] = 0;
    int p = ir_add(&g, OP_PERMUTE, &x, 1, &junk, NOLOC);
    expect_shape(p, SHP(3, 2));
    cr_assert_eq(g.nodes[p].attr.axes, 0u, "unused fields zeroed");
    cr_assert_eq(g.nodes[p].attr.perm[2], 0);
    cr_assert_eq(g.nodes[p].attr.value, 0.0);
}

/* -- error messages -- */

Test(ir_error, matmul_mismatch) {
    int a = in(TY_F32, SHP(64, 64)), b = in(TY_F32, SHP(128, 10));
    int before = g.n;
    expect_err(ir_matmul(&g, a, b, NOLOC),
               "matmul shape mismatch: [64, 64] @ [128, 10] (inner 64 != 128)");
    cr_assert_eq(g.n, before, "a failed builder adds nothing");
    expect_err(ir_add(&g, OP_MATMUL, (int[]){a, b}, 2, NULL, NOLOC),
               "matmul shape mismatch: [64, 64] @ [128, 10] (inner 64 != 128)");
    expect_err(ir_matmul(&g, in(TY_F32, shape_scalar()), b, NOLOC), "at least 1 dimension");
}

Test(ir_error, cannot_broadcast) {
    int a = in(TY_F32, SHP(3, 4)), b = in(TY_F32, SHP(5));
    int before = g.n;
    expect_err(ir_binary(&g, OP_ADD, a, b, NOLOC), "add: cannot broadcast [3, 4] and [5]");
    cr_assert_eq(g.n, before);
    expect_err(ir_where(&g, a, a, b, NOLOC), "where: cannot broadcast [3, 4] and [5]");
}

Test(ir_error, reshape_count) {
    int x = in(TY_F32, SHP(2, 3));
    expect_err(ir_reshape(&g, x, SHP(4, 2), NOLOC),
               "reshape: cannot reshape [2, 3] (6 elements) to [4, 2] (8 elements)");
    IrAttr a = {0};
    a.shape = SHP(4, 2);
    expect_err(ir_add(&g, OP_RESHAPE, &x, 1, &a, NOLOC),
               "reshape: cannot reshape [2, 3] (6 elements) to [4, 2] (8 elements)");
}

Test(ir_error, concat_mismatch) {
    int a = in(TY_F32, SHP(2, 3)), b = in(TY_F32, SHP(2, 4));
    expect_err(ir_concat(&g, (int[]){a, b}, 2, 0, NOLOC),
               "concat: shapes [2, 3] and [2, 4] differ outside axis 0");
    IrAttr at = {0};
    expect_err(ir_add(&g, OP_CONCAT, (int[]){a, b}, 2, &at, NOLOC),
               "concat: shapes [2, 3] and [2, 4] differ outside axis 0");
    expect_err(ir_concat(&g, (int[]){a, in(TY_F32, SHP(3))}, 2, 0, NOLOC), "different ranks");
    expect_err(ir_concat(&g, NULL, 0, 0, NOLOC), "at least one");
}

Test(ir_error, permute_not_permutation) {
    int x = in(TY_F32, SHP(2, 3, 4));
    expect_err(ir_permute(&g, x, (int[]){2, 0, 0}, NOLOC),
               "permute: [2, 0, 0] is not a permutation of 3 axes");
    IrAttr a = {0};
    a.perm[0] = 2;
    expect_err(ir_add(&g, OP_PERMUTE, &x, 1, &a, NOLOC),
               "permute: [2, 0, 0] is not a permutation of 3 axes");
}

Test(ir_error, reduce_axis_range) {
    int x = in(TY_F32, SHP(2, 3));
    expect_err(ir_reduce(&g, OP_SUM, x, (int[]){3}, 1, false, NOLOC),
               "sum: axis 3 out of range for [2, 3]");
    expect_err(ir_reduce(&g, OP_RMAX, x, (int[]){-3}, 1, false, NOLOC),
               "rmax: axis -3 out of range for [2, 3]");
    expect_err(ir_reduce(&g, OP_SUM, x, (int[]){1, -1}, 2, false, NOLOC), "repeated");
    IrAttr a = {0};
    a.axes = 1u << 3;
    expect_err(ir_add(&g, OP_SUM, &x, 1, &a, NOLOC), "sum: axis 3 out of range for [2, 3]");
}

Test(ir_error, gather_index_dtype) {
    int t = in(TY_F32, SHP(10, 4)), f = in(TY_F32, SHP(3));
    expect_err(ir_gather(&g, t, f, NOLOC), "gather: indices must be i32, got f32");
    expect_err(ir_add(&g, OP_GATHER, (int[]){t, f}, 2, NULL, NOLOC),
               "gather: indices must be i32, got f32");
    expect_err(ir_gather(&g, in(TY_F32, shape_scalar()), in(TY_I32, SHP(2)), NOLOC),
               "table must have at least 1 dimension");
}

Test(ir_error, slice_step) {
    int x = in(TY_F32, SHP(4));
    IrSliceDim neg = {.has_step = true, .step = -1};
    expect_err(ir_slice(&g, x, &neg, 1, NOLOC), "slice: step must be positive");
    IrSliceDim zero = {.has_step = true, .step = 0};
    expect_err(ir_slice(&g, x, &zero, 1, NOLOC), "slice: step must be positive");
    IrSliceDim two[2] = {{0}, {0}};
    expect_err(ir_slice(&g, x, two, 2, NOLOC), "slice: too many indices (2) for [4]");
}

Test(ir_error, raw_add_checks) {
    int x = in(TY_F32, SHP(3)), y = in(TY_F32, SHP(4)), i = in(TY_I32, SHP(3));
    int before = g.n;
    expect_err(ir_add(&g, OP_ADD, &x, 1, NULL, NOLOC), "add: expects 2 inputs, got 1");
    expect_err(ir_add(&g, OP_NEG, (int[]){42}, 1, NULL, NOLOC), "not a node of the graph");
    expect_err(ir_add(&g, OP_NEG, (int[]){-1}, 1, NULL, NOLOC), "not a node of the graph");
    expect_err(ir_add(&g, OP_ADD, (int[]){x, y}, 2, NULL, NOLOC),
               "add: input shapes [3] and [4] differ");
    expect_err(ir_add(&g, OP_MUL, (int[]){x, i}, 2, NULL, NOLOC),
               "mul: input dtypes f32 and i32 differ");
    expect_err(ir_add(&g, OP_EXP, &i, 1, NULL, NOLOC), "exp: expects f32, got i32");
    expect_err(ir_add(&g, (OpKind)999, NULL, 0, NULL, NOLOC), "unknown op");
    expect_err(ir_binary(&g, OP_ADD, x, 77, NOLOC), "add: operand %77 is not a node");
    IrAttr b = {0};
    b.shape = SHP(3, 2);
    expect_err(ir_add(&g, OP_BROADCAST, &x, 1, &b, NOLOC),
               "broadcast: cannot broadcast [3] to [3, 2]");
    cr_assert_eq(g.n, before, "failed adds leave the graph as it was");
}

/* -- verifier -- */

static void build_mlp(IrGraph *gr, int hidden, double scale) {
    int x = ir_input(gr, TY_F32, SHP(64, 784), "x", NOLOC);
    int w = ir_input(gr, TY_F32, SHP(784, hidden), "fc1.w", NOLOC);
    int b = ir_input(gr, TY_F32, SHP(hidden), "fc1.b", NOLOC);
    int h = ir_binary(gr, OP_ADD, ir_matmul(gr, x, w, NOLOC), b, NOLOC);
    h = ir_unary(gr, OP_RELU, h, NOLOC);
    h = ir_binary(gr, OP_MUL, h, ir_const(gr, TY_F32, shape_scalar(), scale, NOLOC), NOLOC);
    int loss = ir_reduce(gr, OP_SUM, h, NULL, 0, false, NOLOC);
    ir_mark_output(gr, loss);
}

Test(ir_verify, accepts_built_graphs) {
    build_mlp(&g, 128, 0.5);
    expect_valid();
}

Test(ir_verify, rejects_corrupted_shape) {
    build_mlp(&g, 128, 0.5);
    int m = -1;
    for (int i = 0; i < g.n; i++)
        if (g.nodes[i].op == OP_MATMUL) m = i;
    g.nodes[m].shape.d[1] = 99;
    char err[512];
    cr_assert_not(ir_verify(&g, err, sizeof err));
    cr_assert(strstr(err, "matmul"), "%s", err);
    cr_assert(strstr(err, "[64, 99]"), "%s", err);
}

Test(ir_verify, rejects_bad_wiring) {
    build_mlp(&g, 16, 1.0);
    char err[512];
    int last = g.n - 1;
    g.nodes[last].in[0] = last; /* a self loop */
    cr_assert_not(ir_verify(&g, err, sizeof err));
    cr_assert(strstr(err, "topological"), "%s", err);
}

Test(ir_verify, rejects_slots_and_outputs) {
    int a = in(TY_F32, SHP(2)), b = in(TY_F32, SHP(2));
    ir_mark_output(&g, ir_binary(&g, OP_ADD, a, b, NOLOC));
    expect_valid();
    char err[512];
    g.nodes[b].attr.index = 0;
    cr_assert_not(ir_verify(&g, err, sizeof err));
    cr_assert(strstr(err, "reuses slot 0"), "%s", err);
    g.nodes[b].attr.index = 1;
    g.outputs[0] = 17;
    cr_assert_not(ir_verify(&g, err, sizeof err));
    cr_assert(strstr(err, "output 0"), "%s", err);
}

/* -- hash and flops -- */

Test(ir_hash, equal_when_built_alike) {
    IrGraph h;
    ir_init(&h);
    build_mlp(&g, 128, 0.5);
    build_mlp(&h, 128, 0.5);
    cr_assert_eq(ir_hash(&g), ir_hash(&h));
    h.nodes[0].name = "renamed";
    cr_assert_eq(ir_hash(&g), ir_hash(&h), "names are not structure");
    ir_free(&h);
}

Test(ir_hash, differs_on_any_change) {
    IrGraph h, k, m;
    ir_init(&h);
    ir_init(&k);
    ir_init(&m);
    build_mlp(&g, 128, 0.5);
    build_mlp(&h, 64, 0.5);   /* a shape */
    build_mlp(&k, 128, 0.25); /* a constant */
    build_mlp(&m, 128, 0.5);
    uint64_t base = ir_hash(&g);
    cr_assert_neq(base, ir_hash(&h));
    cr_assert_neq(base, ir_hash(&k));
    for (int i = 0; i < m.n; i++)
        if (m.nodes[i].op == OP_RELU) m.nodes[i].op = OP_ABS; /* an op */
    cr_assert_neq(base, ir_hash(&m));
    ir_free(&h);
    ir_free(&k);
    ir_free(&m);
}

Test(ir_hash, flops) {
    int a = in(TY_F32, SHP(8, 16)), b = in(TY_F32, SHP(16, 4));
    int mm = ir_matmul(&g, a, b, NOLOC);
    cr_assert_eq(ir_flops(&g), 2 * 8 * 16 * 4, "no outputs: every node counts");
    int dead = ir_unary(&g, OP_EXP, a, NOLOC);
    cr_assert_eq(dead, g.n - 1, "a new node");
    cr_assert_gt(ir_flops(&g), 2 * 8 * 16 * 4, "no outputs: the exp counts too");
    int s = ir_reduce(&g, OP_SUM, mm, NULL, 0, false, NOLOC);
    ir_mark_output(&g, s);
    cr_assert_eq(ir_flops(&g), 2 * 8 * 16 * 4 + 8 * 4, "the dead exp is not counted");
}

/* -- printing -- */

Test(ir_print, golden_lines) {
    const char *file = "model.tt";
    int x = ir_input(&g, TY_F32, SHP(64, 784), "x", NOLOC);
    int w = ir_input(&g, TY_F32, SHP(784, 128), "fc1.w", NOLOC);
    int m = ir_matmul(&g, x, w, (SrcLoc){file, 7, 16, 7, 20});
    int s = ir_reduce(&g, OP_SUM, m, (int[]){0, 1}, 2, false, NOLOC);
    ir_const(&g, TY_F32, SHP(64, 128), 1.0, NOLOC);
    ir_mark_output(&g, s);
    char *out = tu_graph_text(&g);
    cr_assert(strstr(out, "graph: 2 inputs, 1 output\n"), "%s", out);
    cr_assert(strstr(out, "  %0 = input \"x\" : f32[64, 784]\n"), "%s", out);
    cr_assert(strstr(out, "  %1 = input \"fc1.w\" : f32[784, 128]\n"), "%s", out);
    cr_assert(strstr(out, "  %2 = matmul %0, %1 : f32[64, 128]   "), "%s", out);
    cr_assert(strstr(out, "# model.tt:7:16\n"), "%s", out);
    cr_assert(strstr(out, "  %3 = sum %2 axes=[0, 1] keepdims=false : f32[]\n"), "%s", out);
    cr_assert(strstr(out, "  %4 = const 1.0 : f32[64, 128]\n"), "%s", out);
    cr_assert(strstr(out, "outputs: %3\n"), "%s", out);
    free(out);
}

Test(ir_print, attributes) {
    int x = in(TY_F32, SHP(2, 3));
    ir_permute(&g, x, (int[]){1, 0}, NOLOC);
    ir_reshape(&g, x, SHP(3, 2), NOLOC);
    IrSliceDim d = {.has_start = true, .start = 1};
    ir_slice(&g, x, &d, 1, NOLOC);
    ir_argmax(&g, x, 1, true, NOLOC);
    ir_cast(&g, x, TY_I32, NOLOC);
    ir_concat(&g, (int[]){x, x}, 2, 1, NOLOC);
    ir_const(&g, TY_I32, shape_scalar(), 3, NOLOC);
    ir_const(&g, TY_F32, shape_scalar(), -0.125, NOLOC);
    char *out = tu_graph_text(&g);
    cr_assert(strstr(out, "= permute %0 perm=[1, 0] : f32[3, 2]"), "%s", out);
    cr_assert(strstr(out, "= reshape %0 shape=[3, 2] : f32[3, 2]"), "%s", out);
    cr_assert(strstr(out, "= slice %0 start=[1, 0] stop=[2, 3] step=[1, 1] : f32[1, 3]"), "%s",
              out);
    cr_assert(strstr(out, "= argmax %0 axis=1 keepdims=true : i32[2, 1]"), "%s", out);
    cr_assert(strstr(out, "= cast %0 dtype=i32 : i32[2, 3]"), "%s", out);
    cr_assert(strstr(out, "= concat %0, %0 axis=1 : f32[2, 6]"), "%s", out);
    cr_assert(strstr(out, "= const 3 : i32[]"), "%s", out);
    cr_assert(strstr(out, "= const -0.125 : f32[]"), "%s", out);
    cr_assert(strstr(out, "graph: 1 input, 0 outputs"), "%s", out);
    free(out);
}

Test(ir_print, single_node) {
    int x = ir_input(&g, TY_I8, SHP(4), NULL, NOLOC);
    ir_unary(&g, OP_ABS, x, NOLOC);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ir_print_node(f, &g, 0);
    ir_print_node(f, &g, 1);
    fclose(f);
    cr_assert_str_eq(buf, "%0 = input #0 : i8[4]\n%1 = abs %0 : i8[4]\n");
    free(buf);
}

/* -- copying nodes between graphs (how the runtime cuts execution graphs) -- */

Test(ir_copy, same_graph_as_built, .init = setup, .fini = teardown) {
    build_mlp(&g, 16, 0.5);
    IrGraph h;
    ir_init(&h);
    int map[256];
    cr_assert_leq(g.n, 256);
    for (int i = 0; i < g.n; i++) {
        const IrNode *n = &g.nodes[i];
        if (n->op == OP_INPUT) {
            map[i] = ir_input(&h, n->dtype, n->shape, n->name, n->loc);
        } else {
            int ins[8];
            for (int k = 0; k < n->nin; k++) ins[k] = map[n->in[k]];
            map[i] = ir_copy_node(&h, &g, i, ins);
        }
        cr_assert_geq(map[i], 0, "%s", h.err);
    }
    for (int k = 0; k < g.nout; k++) ir_mark_output(&h, map[g.outputs[k]]);
    char err[256];
    cr_assert(ir_verify(&h, err, sizeof err), "%s", err);
    cr_expect_eq(ir_hash(&h), ir_hash(&g), "the copy has the same structure");
    ir_free(&h);
}

Test(ir_copy, refuses_inputs_of_another_type, .init = setup, .fini = teardown) {
    int a = in(TY_F32, SHP(2, 3)), b = in(TY_F32, SHP(2, 3));
    int s = ir_binary(&g, OP_ADD, a, b, NOLOC);
    IrGraph h;
    ir_init(&h);
    int x = ir_input(&h, TY_F32, SHP(2, 3), NULL, NOLOC);
    int y = ir_input(&h, TY_F32, SHP(3, 2), NULL, NOLOC);
    int z = ir_input(&h, TY_I32, SHP(2, 3), NULL, NOLOC);
    cr_expect_eq(ir_copy_node(&h, &g, s, (int[]){x, y}), -1, "a shape differs");
    cr_expect(strstr(h.err, "input 1"), "%s", h.err);
    cr_expect_eq(ir_copy_node(&h, &g, s, (int[]){z, x}), -1, "a dtype differs");
    cr_expect_eq(ir_copy_node(&h, &g, s, (int[]){x, 7}), -1, "no such node");
    cr_expect_eq(ir_copy_node(&h, &g, a, NULL), -1, "inputs are made, not copied");
    int c = ir_copy_node(&h, &g, s, (int[]){x, x});
    cr_assert_geq(c, 0, "%s", h.err);
    cr_expect_eq(h.nodes[c].op, OP_ADD);
    cr_expect_eq(h.nodes[c].in[0], x);
    ir_free(&h);
}
