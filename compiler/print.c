/* print.c - the text form of a graph (--emit=ir), one node per line:
 *
 *   graph: 2 inputs, 1 output
 *     %0 = input "x" : f32[64, 784]
 *     %1 = input "fc1.w" : f32[784, 128]
 *     %2 = matmul %0, %1 : f32[64, 128]                # model.tt:7:16
 *     %3 = sum %2 axes=[0, 1] keepdims=false : f32[]
 *   outputs: %3
 *
 * Attributes appear only on the ops that have them. spec/ir.md describes
 * the format.
 */
#include "ir.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* the column where "# file:line:col" starts, counting ir_print's indent */
#define COMMENT_COL 52

/* A constant as a learner would write it: 1.0, -0.5, 3 (ints), inf, nan. */
static void put_value(StrBuf *b, double v, DType t) {
    if (isnan(v)) {
        sb_puts(b, "nan");
    } else if (isinf(v)) {
        sb_puts(b, v < 0 ? "-inf" : "inf");
    } else if (t != TY_F32 && v == (double)(long long)v) {
        sb_printf(b, "%lld", (long long)v);
    } else if (v == floor(v) && fabs(v) < 1e15) {
        sb_printf(b, "%.1f", v);
    } else {
        sb_printf(b, "%.9g", v);
    }
}

/* A leaf's attributes are in its head (name or slot, value) and its type. */
static void put_attrs(StrBuf *b, const IrGraph *g, const IrNode *n) {
    if (!(ir_ops[n->op].flags & OPF_LEAF))
        ir_attr_print(b, &n->attr, ir_ops[n->op].attrs, ir_attr_rank(g, n));
}

static void format_node(StrBuf *b, const IrGraph *g, int id) {
    const IrNode *n = &g->nodes[id];
    char sh[192];
    sb_printf(b, "%%%d = %s", id, ir_ops[n->op].name);
    if (n->op == OP_INPUT) {
        if (n->name)
            sb_printf(b, " \"%s\"", n->name);
        else
            sb_printf(b, " #%d", n->attr.index);
    } else if (n->op == OP_CONST) {
        sb_putc(b, ' ');
        put_value(b, n->attr.value, n->attr.dtype);
    }
    for (int k = 0; k < n->nin; k++) sb_printf(b, "%s %%%d", k ? "," : "", n->in[k]);
    put_attrs(b, g, n);
    sb_printf(b, " : %s%s", dtype_name(n->dtype), shape_str(&n->shape, sh, sizeof sh));
    bool named = n->name && n->op != OP_INPUT;
    if (n->loc.line > 0 || named) {
        sb_puts(b, "  ");
        for (size_t col = b->len + 2; col < COMMENT_COL; col++) sb_putc(b, ' ');
        sb_putc(b, '#');
        if (n->loc.line > 0)
            sb_printf(b, " %s:%d:%d", n->loc.file ? n->loc.file : "?", n->loc.line, n->loc.col);
        if (named) sb_printf(b, " %s", n->name);
    }
}

void ir_print_node(FILE *out, const IrGraph *g, int id) {
    StrBuf b = {0};
    format_node(&b, g, id);
    fprintf(out, "%s\n", b.s ? b.s : "");
    sb_free(&b);
}

void ir_print(FILE *out, const IrGraph *g) {
    fprintf(out, "graph: %d input%s, %d output%s\n", g->ninputs, g->ninputs == 1 ? "" : "s",
            g->nout, g->nout == 1 ? "" : "s");
    for (int i = 0; i < g->n; i++) {
        fputs("  ", out);
        ir_print_node(out, g, i);
    }
    fputs("outputs:", out);
    for (int k = 0; k < g->nout; k++) {
        fprintf(out, "%s %%%d", k ? "," : "", g->outputs[k]);
        if (ir_output_alias(g, k) >= 0) fprintf(out, " (in place of #%d)", ir_output_alias(g, k));
    }
    fputc('\n', out);
}
