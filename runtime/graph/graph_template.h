/* graph_template.h - a recorded piece of the lazy graph, replayed per call
 * (graph_template.c).
 *
 * A Quantized model's forward traces the float model and rewrites the
 * traced graph with the quantization pass; both cost far more than running
 * the result. The rewritten graph depends only on the input's shape, so the
 * first call per shape records it (its nodes, its leaves bound to the input
 * and to tensors of the model) and later calls append a copy of it to the
 * lazy graph: the cost of a float model's graph build.
 */
#ifndef TT_GRAPH_TEMPLATE_H
#define TT_GRAPH_TEMPLATE_H

#include "value.h"

#include <stdbool.h>

/* A tensor a recorded graph may read, and where a model holds it: a replay
 * whose model field no longer holds that tensor (net.fc1.w = other) records
 * again. m NULL: held by nothing (a number of the forward). */
typedef struct RtLeaf {
    Tensor *t;
    Model *m;
    int field;
    bool weak; /* m not retained: it owns the template (no cycle) */
} RtLeaf;

typedef struct RtTemplate {
    DType xdt; /* the input the template was recorded for */
    Shape xshape;
    IrGraph g;   /* the recorded nodes; its INPUTs are the leaves */
    RtLeaf *src; /* per node of g: an INPUT's tensor and model (both retained,
                    the model unless weak);
                    t NULL for the input x */
    int root;    /* the result in g */
} RtTemplate;

/* Records the nodes of I->lz.g that `root` needs: the node of x and INPUT
 * nodes of the tensors of cand[0..ncand) become leaves; nodes made at or after
 * `from` (and CONSTs) are copied; a number the forward turned into an
 * input (scalars.c) keeps its value at this call, as a trace does. False (T left empty) when the
 * graph needs anything else: an input bound to another tensor, a lazy value computed before `from`;
 * such a forward is traced every call. */
bool rt_template_record(Interp *I, RtTemplate *T, int from, int root, Tensor *x, const RtLeaf *cand,
                        int ncand);
/* Appends a copy of T to I->lz.g with x as its input; the new root, or -1
 * when a leaf no longer fits (a model field holds another tensor, or one
 * of another shape). */
int rt_template_replay(Interp *I, const RtTemplate *T, Tensor *x);
/* Whether T was recorded for inputs like x. */
bool rt_template_fits(const RtTemplate *T, const Tensor *x);
void rt_template_free(Interp *I, RtTemplate *T);

#endif
