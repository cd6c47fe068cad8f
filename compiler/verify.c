/* verify.c - ir_verify: every invariant of a graph, checked between passes.
 *
 * A pass that rewrites nodes by hand can break what ir_add guaranteed; the
 * verifier recomputes each node's shape and dtype with its shape rule and
 * compares, so such a bug is caught at the pass that made it.
 */
#include "ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Output j aliases input slot s (ir.h, ir_alias_output): only where the
 * backends can update in place without a copy and without a hazard. The
 * aliased buffer is written by output j's node; nothing else may read the
 * input (it would see the new rows or not, by kernel order), and no other
 * output may share the buffer. */
static bool verify_alias(const IrGraph *g, int j, char *err, size_t errlen) {
    int s = g->alias[j], o = g->outputs[j], in = -1, readers = 0;
    if (s >= g->ninputs)
        return tt_errf(err, errlen, "verify: output %d aliases input slot %d but the graph has %d",
                       j, s, g->ninputs);
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == OP_INPUT && g->nodes[i].attr.index == s) in = i;
    const IrNode *x = &g->nodes[o];
    if (!(ir_ops[x->op].flags & OPF_INPLACE) || in < 0 || x->in[0] != in)
        return tt_errf(err, errlen,
                       "verify: output %d (%%%d, %s) aliases input slot %d but is not an in-place "
                       "update of it (an OPF_INPLACE op whose operand 0 is that input)",
                       j, o, ir_ops[x->op].name, s);
    for (int i = 0; i < g->n; i++)
        for (int k = 0; k < g->nodes[i].nin; k++) readers += g->nodes[i].in[k] == in;
    if (readers != 1)
        return tt_errf(err, errlen,
                       "verify: input slot %d is updated in place by output %d but read %d times "
                       "(only its update may read it)",
                       s, j, readers);
    for (int k = 0; k < g->nout; k++) {
        if (g->outputs[k] == in)
            return tt_errf(err, errlen,
                           "verify: input slot %d is updated in place and also output %d", s, k);
        if (k != j && g->outputs[k] == o)
            return tt_errf(err, errlen,
                           "verify: output %d updates input slot %d in place and is also output %d",
                           j, s, k);
        if (k != j && g->alias[k] == s)
            return tt_errf(err, errlen, "verify: outputs %d and %d both alias input slot %d", j, k,
                           s);
    }
    return true;
}

bool ir_verify(const IrGraph *g, char *err, size_t errlen) {
    char why[512], sa[192], sb[192];
    if (g->n < 0 || g->n > g->cap || g->nout < 0 || g->ninputs < 0)
        return tt_errf(err, errlen, "verify: bad graph counts (n %d, cap %d, outputs %d)", g->n,
                       g->cap, g->nout);
    bool *slot = tt_xcalloc((size_t)g->ninputs + 1, sizeof *slot);
    bool ok = true;
    for (int i = 0; i < g->n && ok; i++) {
        const IrNode *n = &g->nodes[i];
        if ((int)n->op < 0 || n->op >= OP__COUNT) {
            ok = tt_errf(err, errlen, "verify: %%%d has unknown op %d", i, (int)n->op);
            break;
        }
        const char *name = ir_ops[n->op].name;
        int arity = ir_ops[n->op].arity;
        if ((arity >= 0 && n->nin != arity) || (arity < 0 && n->nin < 1) ||
            (n->nin > 0 && !n->in)) {
            ok = tt_errf(err, errlen, "verify: %%%d (%s) has %d inputs, the op takes %d", i, name,
                         n->nin, arity);
            break;
        }
        for (int k = 0; k < n->nin; k++)
            if (n->in[k] < 0 || n->in[k] >= i) {
                ok = tt_errf(err, errlen,
                             "verify: %%%d (%s) input %d is %%%d: not an earlier node (not in "
                             "topological order)",
                             i, name, k, n->in[k]);
                break;
            }
        if (!ok) break;
        IrNode copy = *n;
        if (!ir_ops[n->op].shape(g, &copy, why, sizeof why)) {
            ok = tt_errf(err, errlen, "verify: %%%d: %s", i, why);
            break;
        }
        if (copy.dtype != n->dtype || !shape_eq(&copy.shape, &n->shape)) {
            ok = tt_errf(err, errlen,
                         "verify: %%%d (%s) is recorded as %s%s but its inputs give %s%s", i, name,
                         dtype_name(n->dtype), shape_str(&n->shape, sa, sizeof sa),
                         dtype_name(copy.dtype), shape_str(&copy.shape, sb, sizeof sb));
            break;
        }
        IrAttr canon = ir_attr_canonical(&n->attr, ir_ops[n->op].attrs, ir_attr_rank(g, n));
        if (!ir_attr_eq(&canon, &n->attr, AT__ALL, IR_MAXDIM)) {
            ok = tt_errf(err, errlen,
                         "verify: %%%d (%s) sets an attribute the op does not read (ops.def)", i,
                         name);
            break;
        }
        if (n->op == OP_INPUT) {
            int s = n->attr.index;
            if (s < 0 || s >= g->ninputs) {
                ok = tt_errf(err, errlen, "verify: %%%d (input) uses slot %d but the graph has %d",
                             i, s, g->ninputs);
                break;
            }
            if (slot[s]) {
                ok = tt_errf(err, errlen, "verify: %%%d (input) reuses slot %d", i, s);
                break;
            }
            slot[s] = true;
        }
    }
    free(slot);
    if (!ok) return false;
    for (int k = 0; k < g->nout; k++)
        if (g->outputs[k] < 0 || g->outputs[k] >= g->n)
            return tt_errf(err, errlen, "verify: output %d is %%%d, not a node of the graph", k,
                           g->outputs[k]);
    for (int k = 0; g->alias && k < g->nout; k++)
        if (g->alias[k] >= 0 && !verify_alias(g, k, err, errlen)) return false;
    return true;
}
