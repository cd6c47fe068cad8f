/* test_op_rows.c - every row of ops.def has all its pieces.
 *
 * The linker already refuses a row without its reference kernel
 * (kern_<name>_ref), gradient rule (grad_<name>), shape rule or FLOP rule:
 * the tables are expanded from ops.def. What it cannot see is checked here:
 * the row's entry in spec/ir.md, flags that contradict each other, and that
 * the loop IR's operators mirror the table. The JIT lowering of every op is
 * checked by jit_ops (tests/jit/test_jit.c), the gradients by grad_coverage,
 * the attributes by attr_table. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "kernels.h"
#include "loop.h"
#include "readfile.h"

/* `name` or `name(...)` somewhere in doc */
static bool in_code_span(const char *doc, const char *name) {
    char a[96], b[96];
    snprintf(a, sizeof a, "`%s`", name);
    snprintf(b, sizeof b, "`%s(", name);
    return strstr(doc, a) || strstr(doc, b);
}

Test(op_rows, every_op_is_in_ir_md) {
    char *doc = tu_read_source("spec/ir.md");
    for (int op = 0; op < OP__COUNT; op++)
        cr_expect(in_code_span(doc, ir_ops[op].name), "ops.def row %s has no entry in spec/ir.md",
                  ir_ops[op].name);
    free(doc);
}

Test(op_rows, pieces_and_flags_agree) {
    for (int op = 0; op < OP__COUNT; op++) {
        const OpInfo *o = &ir_ops[op];
        cr_expect(o->shape && o->flops && rt_ref_kernels[op] && ir_grad_rules[op], "%s", o->name);
        cr_expect(o->tol >= 0 && o->tol < 1e-2, "%s: tolerance %g", o->name, o->tol);
        cr_expect((o->arity == 0) == ((o->flags & OPF_LEAF) != 0), "%s: arity %d", o->name,
                  o->arity);
        /* a single-call unary op: its name is the call's (codegen.c) */
        if (o->flags & (OPF_LIBM | OPF_INTRINSIC))
            cr_expect((o->flags & OPF_ELEMWISE) && (o->flags & OPF_FLOAT) && o->arity == 1 &&
                          !((o->flags & OPF_LIBM) && (o->flags & OPF_INTRINSIC)),
                      "%s: OPF_LIBM/OPF_INTRINSIC on an op that is not a float unary", o->name);
        if (o->flags & OPF_CMP) cr_expect(o->flags & OPF_ELEMWISE, "%s", o->name);
    }
}

/* The loop IR's operators are ops.def's rows (loop.h): same order, names. */
Test(op_rows, loop_ops_mirror_the_table) {
    for (int op = 0; op < OP__COUNT; op++)
        cr_expect_str_eq(lp_op_name(lp_op_of((OpKind)op)), ir_ops[op].name);
    for (int op = 0; op < OP__COUNT; op++)
        cr_expect(lp_op_is_libm(lp_op_of((OpKind)op)) == !!(ir_ops[op].flags & OPF_LIBM), "%s",
                  ir_ops[op].name);
    cr_expect(!lp_op_is_libm(lp_op_of(OP_TANH))); /* inline (codegen.c, cg_tanh) */
    cr_expect(!lp_op_is_libm(lp_op_of(OP_EXP)));
    cr_expect(!lp_op_is_libm(LO_MOD));
}

/* The form column (ir.h, OpForm) says which of a layer's ways of handling
 * an op applies: it must agree with the flags and the arity, or a switch
 * that trusts the form (the JIT's codegen and lowering) would take an op
 * down the wrong path. */
Test(op_rows, form_agrees_with_flags) {
    for (int op = 0; op < OP__COUNT; op++) {
        const OpInfo *o = &ir_ops[op];
        bool elem = o->flags & OPF_ELEMWISE;
        switch (o->form) {
        case FORM_LEAF:
            cr_expect(o->flags & OPF_LEAF, "%s: leaf form without OPF_LEAF", o->name);
            break;
        case FORM_UNARY:
            cr_expect(elem && o->arity == 1 && !(o->flags & (OPF_INTRINSIC | OPF_LIBM)),
                      "%s: unary form: an elementwise op of one input, no single call", o->name);
            break;
        case FORM_CALL:
            cr_expect(elem && o->arity == 1 && (o->flags & (OPF_INTRINSIC | OPF_LIBM)),
                      "%s: call form needs OPF_INTRINSIC or OPF_LIBM", o->name);
            break;
        case FORM_BINARY:
            cr_expect(elem && o->arity == 2, "%s: binary form: elementwise, two inputs", o->name);
            break;
        case FORM_ELEM:
            cr_expect(elem, "%s: elem form without OPF_ELEMWISE", o->name);
            break;
        case FORM_REMAP:
            cr_expect((o->flags & OPF_MOVEMENT) && o->arity == 1, "%s: remap form", o->name);
            break;
        case FORM_KERNEL:
            cr_expect(!elem && !(o->flags & OPF_LEAF), "%s: kernel form on an elementwise op",
                      o->name);
            break;
        }
        /* every elementwise op has an elementwise form, so the JIT fuses it */
        cr_expect(!elem || o->form == FORM_UNARY || o->form == FORM_CALL ||
                      o->form == FORM_BINARY || o->form == FORM_ELEM,
                  "%s: OPF_ELEMWISE in a non-elementwise form", o->name);
    }
    cr_expect_eq(ir_ops[OP_LOG].form, FORM_CALL);
    cr_expect_eq(ir_ops[OP_TANH].form, FORM_UNARY);
    cr_expect_eq(ir_ops[OP_RESHAPE].form, FORM_REMAP);
    cr_expect_eq(ir_ops[OP_PAD].form, FORM_KERNEL); /* movement, but its own kernel */
}
