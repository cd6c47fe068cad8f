/* ir.c - the op table, dtype and shape helpers, graph construction.
 *
 * ir_add is the one door into a graph: it runs the op's shape rule (which
 * validates the inputs and attributes and sets the result's shape and dtype)
 * and only then appends the node. Attribute fields the op does not use are
 * zeroed, so two nodes that mean the same thing compare and hash equal.
 */
#include "ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shape and flop rules live in shape.c; declare every one ops.def names
 * (repeated declarations of the same rule are harmless). */
#define OP(NAME, name, arity, flags, form, shape, flops, tol, attrs)                               \
    bool shape_##shape(const IrGraph *g, IrNode *n, char *err, size_t errlen);                     \
    int64_t flops_##flops(const IrGraph *g, const IrNode *n);
#include "ops.def"
#undef OP

/* the form column's tokens as OpForm values */
#define OP_FORM_leaf   FORM_LEAF
#define OP_FORM_unary  FORM_UNARY
#define OP_FORM_call   FORM_CALL
#define OP_FORM_binary FORM_BINARY
#define OP_FORM_elem   FORM_ELEM
#define OP_FORM_remap  FORM_REMAP
#define OP_FORM_kernel FORM_KERNEL

const OpInfo ir_ops[OP__COUNT] = {
#define OP(NAME, name, arity, flags, form, shape, flops, tol, attrs)                               \
    [OP_##NAME] = {#name, arity, flags, OP_FORM_##form, shape_##shape, flops_##flops, tol, attrs},
#include "ops.def"
#undef OP
};

/* -- dtypes and shapes -- */

const char *dtype_name(DType t) {
    switch (t) {
    case TY_F32:
        return "f32";
    case TY_I32:
        return "i32";
    case TY_I8:
        return "i8";
    case TY__COUNT:
        break;
    }
    return "?"; /* not a dtype (a corrupt file's) */
}

size_t dtype_size(DType t) {
    switch (t) {
    case TY_F32:
        return 4;
    case TY_I32:
        return 4;
    case TY_I8:
        return 1;
    case TY__COUNT:
        break;
    }
    return 0;
}

/* Saturates at INT64_MAX instead of overflowing (shapes come from users). */
int64_t shape_numel(const Shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++)
        if (s->d[i] == 0) return 0;
    for (int i = 0; i < s->ndim; i++)
        if (__builtin_mul_overflow(n, s->d[i], &n)) return INT64_MAX;
    return n;
}

bool shape_eq(const Shape *a, const Shape *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->d[i] != b->d[i]) return false;
    return true;
}

Shape shape_make(int ndim, const int64_t *d) {
    TT_ASSERT(ndim >= 0 && ndim <= IR_MAXDIM);
    Shape s = {0};
    s.ndim = ndim;
    for (int i = 0; i < ndim; i++) s.d[i] = d[i];
    return s;
}

Shape shape_scalar(void) {
    return (Shape){0};
}

char *shape_str(const Shape *s, char *buf, size_t len) {
    if (!len) return buf;
    size_t at = 0;
    buf[0] = 0;
    int nd = s->ndim < 0 ? 0 : s->ndim > IR_MAXDIM ? IR_MAXDIM : s->ndim;
    at += (size_t)snprintf(buf + at, at < len ? len - at : 0, "[");
    for (int i = 0; i < nd; i++)
        at += (size_t)snprintf(buf + at, at < len ? len - at : 0, "%s%lld", i ? ", " : "",
                               (long long)s->d[i]);
    snprintf(buf + at, at < len ? len - at : 0, "]");
    return buf;
}

/* -- graphs -- */

void ir_init(IrGraph *g) {
    memset(g, 0, sizeof *g);
    arena_init(&g->arena);
}

void ir_free(IrGraph *g) {
    arena_free(&g->arena);
    free(g->nodes);
    free(g->outputs);
    free(g->alias);
    memset(g, 0, sizeof *g);
}

void ir_clear(IrGraph *g) {
    IrNode *nodes = g->nodes;
    int *outputs = g->outputs, cap = g->cap, outcap = g->outcap;
    free(g->alias);
    arena_free(&g->arena);
    memset(g, 0, sizeof *g);
    arena_init(&g->arena);
    g->nodes = nodes;
    g->cap = cap;
    g->outputs = outputs;
    g->outcap = outcap;
}

void ir_mark_output(IrGraph *g, int node) {
    TT_ASSERT(node >= 0 && node < g->n);
    int cap = g->outcap;
    TT_VEC_PUSH(g->outputs, g->nout, g->outcap, node);
    if (g->alias) { /* kept as long as outputs, -1 for the new one */
        if (g->outcap != cap)
            g->alias = tt_xrealloc(g->alias, (size_t)g->outcap * sizeof *g->alias);
        g->alias[g->nout - 1] = -1;
    }
}

bool ir_alias_output(IrGraph *g, int j, int slot) {
    if (j < 0 || j >= g->nout || slot < 0 || slot >= g->ninputs) {
        snprintf(g->err, sizeof g->err, "alias: output %d or input slot %d does not exist", j,
                 slot);
        return false;
    }
    if (!g->alias) {
        g->alias = tt_xmalloc((size_t)g->outcap * sizeof *g->alias);
        for (int k = 0; k < g->nout; k++) g->alias[k] = -1;
    }
    g->alias[j] = slot;
    return true;
}

/* Keeps only the attribute fields `op` reads, with entries past the rank
 * that matters zeroed: the canonical form that ir_hash and passes compare. */
int ir_add(IrGraph *g, OpKind op, const int *in, int nin, const IrAttr *attr, SrcLoc loc) {
    if ((int)op < 0 || op >= OP__COUNT) {
        snprintf(g->err, sizeof g->err, "unknown op %d", (int)op);
        return -1;
    }
    if (nin < 0 || (nin > 0 && !in)) {
        snprintf(g->err, sizeof g->err, "%s: bad input count %d", ir_ops[op].name, nin);
        return -1;
    }
    IrNode n = {0};
    n.op = op;
    n.nin = nin;
    n.in = (int *)in; /* the caller's array until the node is accepted */
    if (attr) n.attr = *attr;
    n.loc = loc;
    char err[sizeof g->err];
    if (!ir_ops[op].shape(g, &n, err, sizeof err)) {
        memcpy(g->err, err, sizeof err);
        return -1;
    }
    /* only the fields the op reads (ops.def), the rest zero: the hash, the
     * caches and the printer see exactly what the op means */
    n.attr = ir_attr_canonical(&n.attr, ir_ops[op].attrs, ir_attr_rank(g, &n));
    if (nin > 0) {
        n.in = arena_alloc(&g->arena, (size_t)nin * sizeof *n.in);
        memcpy(n.in, in, (size_t)nin * sizeof *n.in);
    } else {
        n.in = NULL;
    }
    TT_VEC_PUSH(g->nodes, g->n, g->cap, n);
    return g->n - 1;
}

int ir_copy_node(IrGraph *g, const IrGraph *src, int id, const int *in) {
    TT_ASSERT(id >= 0 && id < src->n);
    const IrNode *s = &src->nodes[id];
    if (s->op == OP_INPUT) { /* its slot belongs to src */
        snprintf(g->err, sizeof g->err, "input: not copied (make a new one with ir_input)");
        return -1;
    }
    for (int k = 0; k < s->nin; k++)
        if (in[k] < 0 || in[k] >= g->n || g->nodes[in[k]].dtype != src->nodes[s->in[k]].dtype ||
            !shape_eq(&g->nodes[in[k]].shape, &src->nodes[s->in[k]].shape)) {
            snprintf(g->err, sizeof g->err, "%s: input %d is not of its source's type",
                     ir_ops[s->op].name, k);
            return -1;
        }
    TT_VEC_PUSH(g->nodes, g->n, g->cap, *s);
    IrNode *n = &g->nodes[g->n - 1];
    n->in = NULL;
    if (s->nin > 0) {
        n->in = arena_alloc(&g->arena, (size_t)s->nin * sizeof *n->in);
        memcpy(n->in, in, (size_t)s->nin * sizeof *n->in);
    }
    n->name = s->name ? arena_strdup(&g->arena, s->name) : NULL;
    return g->n - 1;
}

int ir_input(IrGraph *g, DType dt, Shape s, const char *name, SrcLoc loc) {
    IrAttr a = {0};
    a.dtype = dt;
    a.shape = s;
    a.index = g->ninputs;
    int id = ir_add(g, OP_INPUT, NULL, 0, &a, loc);
    if (id < 0) return -1;
    g->ninputs++;
    if (name) g->nodes[id].name = arena_strdup(&g->arena, name);
    return id;
}

int ir_const(IrGraph *g, DType dt, Shape s, double value, SrcLoc loc) {
    IrAttr a = {0};
    a.dtype = dt;
    a.shape = s;
    a.value = value;
    return ir_add(g, OP_CONST, NULL, 0, &a, loc);
}
