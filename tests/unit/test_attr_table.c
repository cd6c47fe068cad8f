/* test_attr_table.c - the attrs column of ops.def drives every layer.
 *
 * For every op: a node is added with every attribute field set to garbage
 * except the ones its row declares (set to valid values). ir_add must keep
 * exactly the declared fields (the rest zero: the shape rule read nothing
 * else), and changing any declared field must change the hash, the printed
 * text and the structural equality. An op without a recipe here fails
 * (make_node's switch has no default, and the test checks every op). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

#define SHP(...)                                                                                   \
    shape_make((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})

/* every field nonzero: what an op does not declare must not survive ir_add */
static IrAttr garbage(void) {
    IrAttr a;
    memset(&a, 0, sizeof a);
    a.axes = 5;
    a.keepdims = true;
    a.axis = 7;
    for (int i = 0; i < IR_MAXDIM; i++) {
        a.perm[i] = 3;
        a.start[i] = 9;
        a.stop[i] = 9;
        a.step[i] = 9;
    }
    a.shape = SHP(7, 7, 7);
    a.value = 2.5;
    a.dtype = TY_I8;
    a.index = 5;
    for (int i = 0; i < 2; i++) {
        a.win.kernel[i] = 3;
        a.win.stride[i] = 3;
        a.win.padding[i] = 3;
        a.win.dilation[i] = 3;
    }
    a.win.groups = 3;
    a.reverse = true;
    a.causal = true;
    a.scale = 0.25;
    return a;
}

static int in(IrGraph *g, DType t, Shape s) {
    return ir_input(g, t, s, NULL, SRCLOC_NONE);
}

static void set_win(IrAttr *a, int64_t k, int64_t s, int64_t p) {
    for (int i = 0; i < 2; i++) {
        a->win.kernel[i] = k;
        a->win.stride[i] = s;
        a->win.padding[i] = p;
        a->win.dilation[i] = 1;
    }
    a->win.groups = 1;
}

/* Sets a's declared fields of op to valid values, adds the inputs, then
 * the node; returns its id (-1 with g->err). */
static int make_node(IrGraph *g, OpKind op, IrAttr a) {
    int x[7] = {-1, -1, -1, -1, -1, -1, -1}; /* -1 left: no recipe below (-Wswitch warns too) */
    int nin = ir_ops[op].arity;
    Shape s23 = SHP(2, 3);
    switch (op) {
    case OP_INPUT:
    case OP_CONST:
        a.dtype = TY_F32;
        a.shape = s23;
        a.index = g->ninputs;
        break;
    case OP_NEG:
    case OP_EXP:
    case OP_LOG:
    case OP_SQRT:
    case OP_RSQRT:
    case OP_TANH:
    case OP_SIGMOID:
    case OP_RELU:
    case OP_ABS:
    case OP_SIN:
    case OP_COS:
    case OP_ROUND:
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_POW:
    case OP_MAX:
    case OP_MIN:
    case OP_EQ:
    case OP_NE:
    case OP_LT:
    case OP_LE:
    case OP_GT:
    case OP_GE:
    case OP_WHERE:
        for (int k = 0; k < nin; k++) x[k] = in(g, TY_F32, s23);
        break;
    case OP_SUM:
    case OP_RMAX:
        x[0] = in(g, TY_F32, s23);
        a.axes = 2;
        a.keepdims = false;
        break;
    case OP_ARGMAX:
        x[0] = in(g, TY_F32, s23);
        a.axis = 1;
        a.keepdims = false;
        break;
    case OP_ARGSORT:
    case OP_CUMSUM:
        x[0] = in(g, TY_F32, s23);
        a.axis = 0;
        a.reverse = false;
        break;
    case OP_RESHAPE:
        x[0] = in(g, TY_F32, s23);
        a.shape = SHP(3, 2);
        break;
    case OP_PERMUTE:
        x[0] = in(g, TY_F32, s23);
        a.perm[0] = 1;
        a.perm[1] = 0;
        break;
    case OP_BROADCAST:
        x[0] = in(g, TY_F32, SHP(1, 3));
        a.shape = s23;
        break;
    case OP_SLICE:
        x[0] = in(g, TY_F32, SHP(4, 6));
        for (int i = 0; i < 2; i++) {
            a.start[i] = 0;
            a.stop[i] = 3;
            a.step[i] = 1;
        }
        break;
    case OP_PAD:
        x[0] = in(g, TY_F32, s23);
        a.shape = SHP(8, 8);
        for (int i = 0; i < 2; i++) {
            a.start[i] = 0;
            a.step[i] = 2;
        }
        break;
    case OP_CONCAT:
        nin = 2;
        x[0] = in(g, TY_F32, s23);
        x[1] = in(g, TY_F32, s23);
        a.axis = 0;
        break;
    case OP_MATMUL:
        x[0] = in(g, TY_F32, s23);
        x[1] = in(g, TY_F32, SHP(3, 4));
        break;
    case OP_QMATMUL:
        x[0] = in(g, TY_I8, s23);
        x[1] = in(g, TY_I8, SHP(3, 4));
        break;
    case OP_GATHER:
        x[0] = in(g, TY_F32, SHP(5, 3));
        x[1] = in(g, TY_I32, SHP(2));
        break;
    case OP_SCATTER_ADD:
        x[0] = in(g, TY_F32, s23);
        x[1] = in(g, TY_I32, SHP(2));
        a.shape = SHP(5, 3);
        break;
    case OP_CAST:
        x[0] = in(g, TY_F32, s23);
        a.dtype = TY_I32;
        break;
    case OP_CONV2D:
        x[0] = in(g, TY_F32, SHP(1, 2, 5, 5));
        x[1] = in(g, TY_F32, SHP(3, 2, 3, 3));
        set_win(&a, 0, 1, 1);
        break;
    case OP_QCONV2D:
        x[0] = in(g, TY_I8, SHP(1, 2, 5, 5));
        x[1] = in(g, TY_I8, SHP(3, 2, 3, 3));
        set_win(&a, 0, 1, 1);
        a.value = -3;
        break;
    case OP_CONV2D_BACKWARD_INPUT:
        x[0] = in(g, TY_F32, SHP(1, 3, 5, 5));
        x[1] = in(g, TY_F32, SHP(3, 2, 3, 3));
        set_win(&a, 0, 1, 1);
        a.shape = SHP(1, 2, 5, 5);
        break;
    case OP_CONV2D_BACKWARD_WEIGHT:
        x[0] = in(g, TY_F32, SHP(1, 2, 5, 5));
        x[1] = in(g, TY_F32, SHP(1, 3, 5, 5));
        set_win(&a, 0, 1, 1);
        a.shape = SHP(3, 2, 3, 3);
        break;
    case OP_MAX_POOL2D:
    case OP_MAX_POOL2D_INDEX:
    case OP_AVG_POOL2D:
        x[0] = in(g, TY_F32, SHP(1, 2, 4, 4));
        set_win(&a, 2, 2, 0);
        break;
    case OP_AVG_POOL2D_BACKWARD:
        x[0] = in(g, TY_F32, SHP(1, 2, 2, 2));
        set_win(&a, 2, 2, 0);
        a.shape = SHP(1, 2, 4, 4);
        break;
    case OP_QUANTIZE:
    case OP_DEQUANTIZE:
        x[0] = in(g, op == OP_QUANTIZE ? TY_F32 : TY_I8, s23);
        x[1] = in(g, TY_F32, s23);
        x[2] = in(g, TY_I32, s23);
        break;
    case OP_REQUANTIZE:
        x[0] = in(g, TY_I32, s23);
        x[1] = in(g, TY_F32, s23);
        x[2] = in(g, TY_I32, s23);
        a.dtype = TY_I8;
        break;
    case OP_ATTENTION:
        nin = 3;
        x[0] = in(g, TY_F32, SHP(2, 4));
        x[1] = in(g, TY_F32, SHP(3, 4));
        x[2] = in(g, TY_F32, SHP(3, 5));
        a.causal = false;
        a.scale = 0.5;
        break;
    case OP_WRITE_ROWS:
        x[0] = in(g, TY_F32, SHP(5, 4));
        x[1] = in(g, TY_F32, SHP(2, 4));
        x[2] = in(g, TY_I32, shape_scalar());
        break;
    case OP_ATTENTION_LSE:
        nin = 2;
        x[0] = in(g, TY_F32, SHP(2, 4));
        x[1] = in(g, TY_F32, SHP(3, 4));
        a.causal = false;
        a.scale = 0.5;
        break;
    case OP_ATTENTION_GRAD:
        nin = 6;
        x[0] = in(g, TY_F32, SHP(2, 4));
        x[1] = in(g, TY_F32, SHP(3, 4));
        x[2] = in(g, TY_F32, SHP(3, 5));
        x[3] = in(g, TY_F32, SHP(2, 5));
        x[4] = in(g, TY_F32, SHP(2));
        x[5] = in(g, TY_F32, SHP(2));
        a.causal = false;
        a.scale = 0.5;
        a.axis = 0;
        break;
    case OP__COUNT:
        cr_assert_fail("not an op");
    }
    for (int k = 0; k < nin; k++)
        if (x[k] < 0) cr_assert_fail("%s has no recipe in test_attr_table.c", ir_ops[op].name);
    if (nin < 0) cr_assert_fail("%s: variadic op without an input count here", ir_ops[op].name);
    int id = ir_add(g, op, nin > 0 ? x : NULL, nin, &a, SRCLOC_NONE);
    if (id >= 0 && op == OP_INPUT) g->ninputs++; /* its slot, as ir_input takes */
    return id;
}

/* Changes the one field of bit in a, keeping it plausible. */
static void perturb(IrAttr *a, unsigned bit) {
    switch (bit) {
    case AT_AXES:
        a->axes ^= 1u;
        break;
    case AT_AXIS:
        a->axis += 1;
        break;
    case AT_KEEPDIMS:
        a->keepdims = !a->keepdims;
        break;
    case AT_REVERSE:
        a->reverse = !a->reverse;
        break;
    case AT_PERM:
        a->perm[0] += 1;
        break;
    case AT_SHAPE:
        a->shape.d[0] += 1;
        break;
    case AT_START:
        a->start[0] += 1;
        break;
    case AT_STOP:
        a->stop[0] += 1;
        break;
    case AT_STEP:
        a->step[0] += 1;
        break;
    case AT_KERNEL:
        a->win.kernel[0] += 1;
        break;
    case AT_STRIDE:
        a->win.stride[0] += 1;
        break;
    case AT_PADDING:
        a->win.padding[0] += 1;
        break;
    case AT_DILATION:
        a->win.dilation[0] += 1;
        break;
    case AT_GROUPS:
        a->win.groups += 1;
        break;
    case AT_DTYPE:
        a->dtype = a->dtype == TY_F32 ? TY_I32 : TY_F32;
        break;
    case AT_CAUSAL:
        a->causal = !a->causal;
        break;
    case AT_SCALE:
        a->scale += 1;
        break;
    case AT_VALUE:
        a->value += 1;
        break;
    case AT_INDEX:
        a->index += 1;
        break;
    default:
        cr_assert_fail("perturb: no case for attribute bit %#x", bit);
    }
}

static char *print_node(const IrGraph *g, int id) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ir_print_node(f, g, id);
    fclose(f);
    return buf;
}

Test(attr_table, every_op_keeps_exactly_its_fields) {
    IrAttr zero;
    memset(&zero, 0, sizeof zero);
    for (int op = 0; op < OP__COUNT; op++) {
        const char *name = ir_ops[op].name;
        unsigned mask = ir_ops[op].attrs;
        cr_assert_eq(mask & ~(unsigned)AT__ALL, 0, "%s: unknown attribute bits", name);
        IrGraph g;
        ir_init(&g);
        int id = make_node(&g, (OpKind)op, garbage());
        cr_assert_geq(id, 0, "%s: %s", name, g.err);
        const IrNode *n = &g.nodes[id];
        int rank = ir_attr_rank(&g, n);
        /* what the op does not declare is zero, to the last per-dim entry */
        cr_expect(ir_attr_eq(&n->attr, &zero, AT__ALL & ~mask, IR_MAXDIM),
                  "%s: ir_add kept an attribute its ops.def row does not declare", name);
        IrAttr canon = ir_attr_canonical(&n->attr, mask, rank);
        cr_expect(ir_attr_eq(&canon, &n->attr, AT__ALL, IR_MAXDIM), "%s: not canonical", name);
        char err[512];
        cr_expect(ir_verify(&g, err, sizeof err), "%s: %s", name, err);

        uint64_t h0 = ir_hash(&g);
        char *p0 = print_node(&g, id);
        for (unsigned bit = 1; bit & AT__ALL; bit <<= 1) {
            if (!(mask & bit)) continue;
            IrAttr a = n->attr;
            perturb(&a, bit);
            cr_expect(!ir_attr_eq(&a, &n->attr, mask, IR_MAXDIM), "%s: bit %#x: equal", name, bit);
            /* a leaf's type is its attributes: build it again; other nodes
             * are changed in place (the change may not pass the shape rule) */
            IrGraph h;
            ir_init(&h);
            int hid = -1;
            if (ir_ops[op].flags & OPF_LEAF) {
                hid = ir_add(&h, (OpKind)op, NULL, 0, &a, SRCLOC_NONE);
                cr_assert_geq(hid, 0, "%s: %s", name, h.err);
                h.ninputs = g.ninputs;
            } else {
                hid = make_node(&h, (OpKind)op, garbage());
                cr_assert_geq(hid, 0);
                h.nodes[hid].attr = a;
            }
            cr_expect_neq(ir_hash(&h), h0, "%s: bit %#x does not change the hash", name, bit);
            char *p1 = print_node(&h, hid);
            cr_expect_str_neq(p1, p0, "%s: bit %#x does not change the text %s", name, bit, p0);
            free(p1);
            ir_free(&h);
        }
        free(p0);
        ir_free(&g);
    }
}

/* Each per-dim field keeps exactly rank entries: the hash of a rank-2 node
 * must not depend on entries 2.. (they are zero after ir_add). */
Test(attr_table, canonical_cuts_at_rank) {
    IrAttr a = garbage(), z;
    memset(&z, 0, sizeof z);
    IrAttr c = ir_attr_canonical(&a, AT_PERM | AT_START, 2);
    cr_expect_eq(c.perm[1], 3);
    cr_expect_eq(c.perm[2], 0);
    cr_expect_eq(c.start[1], 9);
    cr_expect_eq(c.start[2], 0);
    cr_expect(ir_attr_eq(&c, &z, AT__ALL & ~(AT_PERM | AT_START), IR_MAXDIM));
}
