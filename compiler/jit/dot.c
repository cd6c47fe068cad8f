/* dot.c - ttc --emit=dot: a graph for Graphviz (dot -Tsvg).
 *
 * Each node reachable from the outputs is drawn with its op and shape;
 * inputs (arguments and weights) are ellipses, outputs double octagons.
 * The kernels the JIT compiles for the graph (lower.c's fusion, then
 * lp_fuse_kernels' merges) are clusters around the nodes each computes, so
 * what runs as one loop nest is one box.
 */
#include <stdio.h>
#include <stdlib.h>

#include "aot.h"
#include "loop.h"
#include "transform.h"

/* node -> the kernel (cluster) that computes it, or -1 */
static void mark_kernel(int *owner, const LpKernel *k, int id) {
    if (k->node >= 0) owner[k->node] = id;
    for (int i = 0; i < k->nfused; i++) owner[k->fused[i]] = id;
    for (int m = 0; m < k->nmerged; m++) mark_kernel(owner, &k->merged[m], id);
}

static void node_line(FILE *out, const IrGraph *g, int i, const bool *is_out) {
    const IrNode *n = ir_node(g, i);
    char sh[128];
    shape_str(&n->shape, sh, sizeof sh);
    const char *shape = n->op == OP_INPUT ? "ellipse" : is_out[i] ? "doubleoctagon" : "box";
    if (n->op == OP_INPUT)
        fprintf(out, "    n%d [shape=%s, label=\"%s\\n%s%s\"];\n", i, shape,
                n->name ? n->name : "input", dtype_name(n->dtype), sh);
    else
        fprintf(out, "    n%d [shape=%s, label=\"%%%d %s\\n%s%s\"];\n", i, shape, i,
                ir_ops[n->op].name, dtype_name(n->dtype), sh);
}

void aot_emit_dot(FILE *out, const IrGraph *g) {
    char err[512];
    if (!ir_verify(g, err, sizeof err)) {
        fprintf(out, "// invalid graph: %s\n", err);
        return;
    }
    LpProg *p = lp_lower(g, true);
    lp_fuse_kernels(p);
    int *owner = tt_xmalloc(((size_t)g->n + 1) * sizeof *owner);
    bool *is_out = tt_xcalloc((size_t)g->n + 1, sizeof *is_out),
         *need = tt_xcalloc((size_t)g->n + 1, 1);
    for (int i = 0; i < g->n; i++) owner[i] = -1;
    for (int j = 0; j < g->nout; j++) is_out[g->outputs[j]] = need[g->outputs[j]] = true;
    for (int i = g->n - 1; i >= 0; i--)
        if (need[i])
            for (int k = 0; k < ir_node(g, i)->nin; k++) need[ir_node(g, i)->in[k]] = true;
    for (int k = 0; k < p->nkernels; k++) mark_kernel(owner, &p->kernels[k], k);
    fprintf(out, "digraph tt {\n  rankdir=TB;\n  node [fontname=\"monospace\", fontsize=10];\n");
    for (int k = 0; k < p->nkernels; k++) {
        fprintf(out, "  subgraph cluster_k%d {\n    label=\"%s\";\n    style=rounded;\n", k,
                p->kernels[k].name);
        for (int i = 0; i < g->n; i++)
            if (need[i] && owner[i] == k) node_line(out, g, i, is_out);
        fprintf(out, "  }\n");
    }
    for (int i = 0; i < g->n; i++)
        if (need[i] && owner[i] < 0) node_line(out, g, i, is_out);
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = ir_node(g, i);
        for (int k = 0; need[i] && k < n->nin; k++) fprintf(out, "  n%d -> n%d;\n", n->in[k], i);
    }
    fprintf(out, "}\n");
    free(owner);
    free(is_out);
    free(need);
    lp_free(p);
}
