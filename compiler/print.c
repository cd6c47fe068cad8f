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

static void put_ints(StrBuf *b, const char *key, const int64_t *v, int n) {
    sb_printf(b, " %s=[", key);
    for (int i = 0; i < n; i++) sb_printf(b, "%s%lld", i ? ", " : "", (long long)v[i]);
    sb_putc(b, ']');
}

static void put_shape(StrBuf *b, const char *key, const Shape *s) {
    put_ints(b, key, s->d, s->ndim);
}

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

static void put_attrs(StrBuf *b, const IrGraph *g, const IrNode *n) {
    const IrAttr *a = &n->attr;
    int rank = n->nin > 0 ? g->nodes[n->in[0]].shape.ndim : 0;
    switch (n->op) {
    case OP_SUM:
    case OP_RMAX: {
        sb_puts(b, " axes=[");
        int k = 0;
        for (int i = 0; i < 32; i++)
            if (a->axes >> i & 1u) sb_printf(b, "%s%d", k++ ? ", " : "", i);
        sb_printf(b, "] keepdims=%s", a->keepdims ? "true" : "false");
        break;
    }
    case OP_ARGMAX:
        sb_printf(b, " axis=%d keepdims=%s", a->axis, a->keepdims ? "true" : "false");
        break;
    case OP_CONCAT:
        sb_printf(b, " axis=%d", a->axis);
        break;
    case OP_ARGSORT:
        sb_printf(b, " axis=%d descending=%s", a->axis, a->reverse ? "true" : "false");
        break;
    case OP_CUMSUM:
        sb_printf(b, " axis=%d reverse=%s", a->axis, a->reverse ? "true" : "false");
        break;
    case OP_PERMUTE: {
        int64_t p[IR_MAXDIM];
        for (int i = 0; i < rank && i < IR_MAXDIM; i++) p[i] = a->perm[i];
        put_ints(b, "perm", p, rank);
        break;
    }
    case OP_RESHAPE:
    case OP_BROADCAST:
    case OP_SCATTER_ADD:
        put_shape(b, "shape", &a->shape);
        break;
    case OP_SLICE:
        put_ints(b, "start", a->start, rank);
        put_ints(b, "stop", a->stop, rank);
        put_ints(b, "step", a->step, rank);
        break;
    case OP_PAD:
        put_shape(b, "shape", &a->shape);
        put_ints(b, "start", a->start, rank);
        put_ints(b, "step", a->step, rank);
        break;
    case OP_CAST:
    case OP_REQUANTIZE:
        sb_printf(b, " dtype=%s", dtype_name(a->dtype));
        break;
    case OP_ATTENTION:
        sb_printf(b, " causal=%s scale=%.9g", a->causal ? "true" : "false", a->scale);
        break;
    case OP_CONV2D_BACKWARD_INPUT:
    case OP_CONV2D_BACKWARD_WEIGHT:
        put_shape(b, "shape", &a->shape);
        /* fall through */
    case OP_CONV2D:
        put_ints(b, "stride", a->win.stride, 2);
        put_ints(b, "padding", a->win.padding, 2);
        put_ints(b, "dilation", a->win.dilation, 2);
        sb_printf(b, " groups=%lld", (long long)a->win.groups);
        break;
    case OP_AVG_POOL2D_BACKWARD:
        put_shape(b, "shape", &a->shape);
        /* fall through */
    case OP_MAX_POOL2D:
    case OP_MAX_POOL2D_INDEX:
    case OP_AVG_POOL2D:
        put_ints(b, "kernel", a->win.kernel, 2);
        put_ints(b, "stride", a->win.stride, 2);
        put_ints(b, "padding", a->win.padding, 2);
        break;
    default:
        break;
    }
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
    for (int k = 0; k < g->nout; k++) fprintf(out, "%s %%%d", k ? "," : "", g->outputs[k]);
    fputc('\n', out);
}
