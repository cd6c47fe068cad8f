/* graph_template.c - record a piece of the lazy graph once, append copies
 * of it per call (graph_template.h). */
#include "graph_template.h"
#include "capture.h"

#include <stdlib.h>
#include <string.h>

static int node_of(Interp *I, const Tensor *t) {
    return t->node_gen == I->lz.gen && t->node >= 0 && t->node < I->lz.g.n ? t->node : -1;
}

void rt_template_free(Interp *I, RtTemplate *T) {
    for (int i = 0; T->src && i < T->g.n; i++) {
        if (T->src[i].t) rt_release(I, vtensor(T->src[i].t));
        if (T->src[i].m && !T->src[i].weak) rt_release(I, vobj(&T->src[i].m->obj));
    }
    free(T->src);
    ir_free(&T->g);
    memset(T, 0, sizeof *T);
}

bool rt_template_record(Interp *I, RtTemplate *T, int from, int root, Tensor *x, const RtLeaf *cand,
                        int ncand) {
    memset(T, 0, sizeof *T);
    const IrGraph *g = &I->lz.g;
    int xn = node_of(I, x);
    if (root < 0 || root >= g->n || xn < 0) return false;
    /* the nodes root needs, down to the leaves (ids are topological) */
    char *need = calloc((size_t)root + 1, 1);
    int *map = malloc(((size_t)root + 1) * sizeof *map);
    if (!need || !map) abort();
    need[root] = 1;
    bool ok = true;
    for (int i = root; i >= 0 && ok; i--) {
        if (!need[i] || i == xn) continue;
        const IrNode *n = ir_node(g, i);
        if (n->op == OP_INPUT || n->op == OP_CONST) continue;
        if (i < from) ok = false; /* a value computed before the forward */
        for (int k = 0; k < n->nin; k++) need[n->in[k]] = 1;
    }
    ir_init(&T->g);
    int cap = 0;
    for (int i = 0; i <= root && ok; i++) {
        if (!need[i]) continue;
        const IrNode *n = ir_node(g, i);
        Tensor *t = NULL, *own = NULL;
        RtLeaf leaf = {NULL, NULL, 0, false};
        int id;
        if (i == xn || n->op == OP_INPUT) {
            if (i != xn) {
                for (int c = 0; c < ncand && !t; c++)
                    if (node_of(I, cand[c].t) == i) t = (leaf = cand[c]).t;
                /* a number of the forward (scalars.c: an input, so the
                 * compiled code does not depend on it): its value at this
                 * call, as a trace keeps it */
                if (!t && shape_numel(&n->shape) == 1 && I->lz.node_buf[i])
                    t = own = rt_tensor_from_buf(I, n->dtype, n->shape, I->lz.node_buf[i]);
                if (!t) { /* bound to a tensor outside the model */
                    ok = false;
                    break;
                }
            }
            id = ir_input(&T->g, n->dtype, n->shape, n->name, n->loc);
        } else {
            int buf[8], *ins = n->nin <= 8 ? buf : malloc((size_t)n->nin * sizeof *ins);
            if (!ins) abort();
            for (int k = 0; k < n->nin; k++) ins[k] = map[n->in[k]];
            id = ir_copy_node(&T->g, g, i, ins);
            if (ins != buf) free(ins);
        }
        if (id < 0) {
            if (own) rt_release(I, vtensor(own));
            ok = false;
            break;
        }
        if (T->g.n > cap) {
            int old = cap;
            cap = cap ? 2 * cap : 64;
            while (cap < T->g.n) cap *= 2;
            T->src = realloc(T->src, (size_t)cap * sizeof *T->src);
            if (!T->src) abort();
            memset(T->src + old, 0, (size_t)(cap - old) * sizeof *T->src);
        }
        if (t) {
            if (!own) rt_retain(vtensor(t));
            if (leaf.m && !leaf.weak) rt_retain(vobj(&leaf.m->obj));
            T->src[id] = (RtLeaf){t, leaf.m, leaf.field, leaf.weak};
        }
        map[i] = id;
    }
    if (ok) {
        T->root = map[root];
        T->xdt = x->dtype;
        T->xshape = x->shape;
    }
    free(need);
    free(map);
    if (!ok) rt_template_free(I, T);
    return ok;
}

bool rt_template_fits(const RtTemplate *T, const Tensor *x) {
    return T->g.n > 0 && T->xdt == x->dtype && shape_eq(&T->xshape, &x->shape);
}

int rt_template_replay(Interp *I, const RtTemplate *T, Tensor *x) {
    int *map = malloc((size_t)T->g.n * sizeof *map);
    if (!map) abort();
    int ret = -1;
    for (int i = 0; i < T->g.n; i++) {
        const IrNode *n = &T->g.nodes[i];
        int id;
        if (n->op == OP_INPUT) {
            const RtLeaf *l = &T->src[i];
            Tensor *t = l->t ? l->t : x;
            if (l->m && (l->field >= l->m->nfields || l->m->fields[l->field].o != &t->obj))
                goto done;
            if (t->dtype != n->dtype || !shape_eq(&t->shape, &n->shape)) goto done;
            /* a captured call replays this only while the field holds t */
            if (I->cap.rec && l->m) rt_capture_field(I, l->m, l->field);
            id = rt_node(I, t);
        } else {
            int buf[8], *ins = n->nin <= 8 ? buf : malloc((size_t)n->nin * sizeof *ins);
            if (!ins) abort();
            for (int k = 0; k < n->nin; k++) ins[k] = map[n->in[k]];
            id = ir_copy_node(&I->lz.g, &T->g, i, ins);
            if (ins != buf) free(ins);
        }
        if (id < 0) goto done;
        map[i] = id;
    }
    ret = map[T->root];
done:
    free(map);
    return ret;
}
