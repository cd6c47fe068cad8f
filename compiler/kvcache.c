/* kvcache.c - KV caching as a pass on the graph IR (kvcache.h; spec/ir.md,
 * "KV caching").
 *
 * The sequence axis of every node is found by comparing two traces of the
 * forward, at T1 and T2 tokens: the one axis whose size is T1 in the first
 * and T2 in the second. A node with such an axis is rebuilt for one row (that
 * axis of size 1) when the op computes row t from row t of its inputs only
 * (position-wise); a node without one is copied as it is, unless it depends
 * on the tokens (it would combine positions). Causal self-attention is the
 * one op allowed to read other rows: it is rewritten to write the new k and
 * v rows into the caches at p (write_rows, in place: each cache output
 * aliases its input) and to attend over the first p + 1 rows.
 */
#include "kvcache.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct Pass {
    const IrGraph *E1, *E2;
    int64_t T1, T2, ctx;
    int tok_slot;
    void *const *data1, *const *data2;
    KvPlan *P;
    int *ax;                   /* sequence axis of each node of E1; -1: none */
    bool *dep;                 /* depends on the tokens or the positions */
    int *m;                    /* node of D that computes it (one row) */
    int tok, pos, posvec, len; /* D nodes made on first use; -1 before */
    int caps, ncache;
    int *cache_out; /* k'_0, v'_0, ... */
} Pass;

static bool refuse(Pass *S, int id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool refuse(Pass *S, int id, const char *fmt, ...) {
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (id < 0) {
        snprintf(S->P->why, sizeof S->P->why, "%s", msg);
        return false;
    }
    const IrNode *x = ir_node(S->E1, id);
    if (x->loc.file)
        snprintf(S->P->why, sizeof S->P->why, "%%%d = %s (%s:%d:%d) %s", id, ir_ops[x->op].name,
                 x->loc.file, x->loc.line, x->loc.col, msg);
    else
        snprintf(S->P->why, sizeof S->P->why, "%%%d = %s %s", id, ir_ops[x->op].name, msg);
    return false;
}

/* The axis of size T1 in a and T2 in b, the only one that differs; -1 when
 * none differs, -2 when the shapes differ otherwise. */
static int seq_axis(const Shape *a, const Shape *b, int64_t T1, int64_t T2) {
    if (a->ndim != b->ndim) return -2;
    int ax = -1;
    for (int k = 0; k < a->ndim; k++) {
        if (a->d[k] == b->d[k]) continue;
        if (ax != -1 || a->d[k] != T1 || b->d[k] != T2) return -2;
        ax = k;
    }
    return ax;
}

static int add_slot(Pass *S, int node, KvSlotKind kind, int layer, int src) {
    if (node < 0) return -1;
    IrGraph *D = &S->P->D;
    S->P->slots = tt_xrealloc(S->P->slots, (size_t)D->ninputs * sizeof *S->P->slots);
    S->P->slots[D->ninputs - 1] = (KvSlot){kind, layer, src};
    return node;
}

static SrcLoc out_loc(const Pass *S) {
    return ir_node(S->E1, S->E1->outputs[0])->loc;
}

static int pos_node(Pass *S) {
    if (S->pos < 0)
        S->pos = add_slot(S, ir_input(&S->P->D, TY_I32, shape_scalar(), "pos", out_loc(S)), KV_POS,
                          0, -1);
    return S->pos;
}

/* arange(T) as i32 data in both traces: the positions, which become p */
static bool is_arange(const Pass *S, const IrNode *x) {
    if (x->dtype != TY_I32 || x->shape.ndim != 1) return false;
    int k = x->attr.index;
    const int32_t *a = S->data1 ? S->data1[k] : NULL, *b = S->data2 ? S->data2[k] : NULL;
    if (!a || !b) return false;
    for (int64_t i = 0; i < S->T1; i++)
        if (a[i] != i) return false;
    for (int64_t i = 0; i < S->T2; i++)
        if (b[i] != i) return false;
    return true;
}

static int64_t prod(const Shape *s, int upto) {
    int64_t p = 1;
    for (int k = 0; k < upto; k++) p *= s->d[k];
    return p;
}

/* attention(q, k, v, causal) over the sequence -> attention(q_p, k', v',
 * len = p + 1, causal) with k' = write_rows(k_cache, k_p, p), likewise v':
 * the caches are outputs aliasing their inputs, so each step writes row p
 * in place (derive marks them). */
static int rewrite_attention(Pass *S, int id) {
    const IrNode *x = ir_node(S->E1, id);
    IrGraph *D = &S->P->D;
    if (x->nin != 3) return refuse(S, id, "already has a len input"), -1;
    if (!x->attr.causal)
        return refuse(S, id, "is not causal: an early position would see later ones"), -1;
    int r = x->shape.ndim;
    for (int k = 0; k < 3; k++)
        if (S->ax[x->in[k]] != r - 2 || ir_node(S->E1, x->in[k])->shape.ndim != r)
            return refuse(S, id, "has a q, k or v whose rows are not the sequence"), -1;
    if (S->ax[id] != r - 2) return refuse(S, id, "has no sequence axis"), -1;
    int l = S->P->nlayers;
    if (l >= KV_MAX_LAYERS) return refuse(S, id, "is one attention too many (%d)", l), -1;
    Shape ks = ir_node(S->E1, x->in[1])->shape, vs = ir_node(S->E1, x->in[2])->shape;
    ks.d[r - 2] = S->ctx;
    vs.d[r - 2] = S->ctx;
    char name[32];
    snprintf(name, sizeof name, "k_cache%d", l);
    int kc = add_slot(S, ir_input(D, TY_F32, ks, name, x->loc), KV_KCACHE, l, -1);
    snprintf(name, sizeof name, "v_cache%d", l);
    int vc = add_slot(S, ir_input(D, TY_F32, vs, name, x->loc), KV_VCACHE, l, -1);
    int p = pos_node(S);
    if (kc < 0 || vc < 0 || p < 0) return -1;
    int kn = ir_write_rows(D, kc, S->m[x->in[1]], p, x->loc);
    int vn = kn < 0 ? -1 : ir_write_rows(D, vc, S->m[x->in[2]], p, x->loc);
    if (vn < 0) return -1;
    if (S->len < 0) {
        int one = ir_const(D, TY_I32, shape_scalar(), 1, out_loc(S));
        S->len = one < 0 ? -1 : ir_binary(D, OP_ADD, pos_node(S), one, out_loc(S));
        if (S->len < 0) return -1;
    }
    S->P->kshape[l] = ks;
    S->P->vshape[l] = vs;
    S->P->nlayers++;
    TT_VEC_PUSH(S->cache_out, S->ncache, S->caps, kn);
    int c = S->ncache;
    TT_VEC_PUSH(S->cache_out, c, S->caps, vn);
    S->ncache = c;
    int ins[4] = {S->m[x->in[0]], kn, vn, S->len};
    return ir_add(D, OP_ATTENTION, ins, 4, &x->attr, x->loc);
}

/* Whether node id (with a sequence axis) computes row t from row t of its
 * inputs; attr gets the one-row version of its attributes. */
static bool position_wise(Pass *S, int id, IrAttr *attr) {
    const IrNode *x = ir_node(S->E1, id), *y = ir_node(S->E2, id);
    int a = S->ax[id];
    unsigned fl = ir_ops[x->op].flags;
    const int *in = x->in;
    if (fl & OPF_ELEMWISE) {
        for (int k = 0; k < x->nin; k++)
            if (S->ax[in[k]] != a) return refuse(S, id, "mixes rows of its inputs");
        return true;
    }
    int ia = x->nin > 0 ? S->ax[in[0]] : -1;
    switch (x->op) {
    case OP_CONST:
        attr->shape.d[a] = 1;
        return true;
    case OP_BROADCAST:
        if (!(ia == a || (ia == -1 && ir_node(S->E1, in[0])->shape.d[a] == 1)))
            return refuse(S, id, "mixes rows");
        attr->shape.d[a] = 1;
        return true;
    case OP_RESHAPE: {
        const Shape *s = &ir_node(S->E1, in[0])->shape;
        if (ia < 0 || prod(s, ia) != prod(&x->shape, a))
            return refuse(S, id, "merges the sequence axis with another");
        attr->shape.d[a] = 1;
        return true;
    }
    case OP_PERMUTE:
        if (ia < 0 || x->attr.perm[a] != ia) return refuse(S, id, "moves rows");
        return true;
    case OP_SLICE:
        if (ia != a || x->attr.start[a] != 0 || x->attr.step[a] != 1 || x->attr.stop[a] != S->T1 ||
            y->attr.stop[a] != S->T2)
            return refuse(S, id, "takes part of the sequence");
        attr->stop[a] = 1;
        return true;
    case OP_SUM:
    case OP_RMAX:
    case OP_ARGMAX: {
        if (ia < 0) return refuse(S, id, "has no sequence axis in its input");
        bool over = x->op == OP_ARGMAX ? x->attr.axis == ia : (x->attr.axes >> ia) & 1u;
        int before = 0;
        if (!x->attr.keepdims)
            for (int k = 0; k < ia; k++)
                before +=
                    x->op == OP_ARGMAX ? (x->attr.axis == k) : (int)((x->attr.axes >> k) & 1u);
        if (over || ia - before != a) return refuse(S, id, "reduces over the sequence");
        return true;
    }
    case OP_CUMSUM:
    case OP_ARGSORT:
        if (ia != a || x->attr.axis == a) return refuse(S, id, "scans along the sequence");
        return true;
    case OP_MATMUL:
    case OP_QMATMUL: {
        int r = x->shape.ndim, b0 = S->ax[in[0]], b1 = S->ax[in[1]];
        bool ok = a < r - 2    ? b0 == a && b1 == a
                  : a == r - 2 ? b0 == a && b1 == -1
                               : b0 == -1 && b1 == a;
        if (!ok) return refuse(S, id, "multiplies along the sequence");
        return true;
    }
    case OP_GATHER:
        if (S->dep[in[0]] || S->ax[in[0]] != -1 || S->ax[in[1]] != a)
            return refuse(S, id, "reads rows of the sequence by index");
        return true;
    case OP_CONCAT:
        if (x->attr.axis == a) return refuse(S, id, "joins along the sequence");
        for (int k = 0; k < x->nin; k++)
            if (S->ax[in[k]] != a) return refuse(S, id, "mixes rows of its inputs");
        return true;
    /* a new kernel op is listed here or given a rule above */
    case OP_INPUT:
    case OP_PAD:
    case OP_SCATTER_ADD:
    case OP_CONV2D:
    case OP_CONV2D_BACKWARD_INPUT:
    case OP_CONV2D_BACKWARD_WEIGHT:
    case OP_MAX_POOL2D:
    case OP_MAX_POOL2D_INDEX:
    case OP_AVG_POOL2D:
    case OP_AVG_POOL2D_BACKWARD:
    case OP_QCONV2D:
    case OP_ATTENTION:
    case OP_WRITE_ROWS:
    case OP_ATTENTION_LSE:
    case OP_ATTENTION_GRAD:
        return refuse(S, id, "is not position-wise");
        /* the elementwise ops are above */
#define OP(NAME, name, arity, flags, form, ...) OP_CASES_IF_ELEMWISE(form, OP_##NAME)
#include "ops.def"
#undef OP
    case OP__COUNT:
        break;
    }
    TT_UNREACHABLE();
}

static bool derive(Pass *S) {
    const IrGraph *E1 = S->E1, *E2 = S->E2;
    IrGraph *D = &S->P->D;
    if (E1->n != E2->n || E1->nout != 1 || E2->nout != 1 || E1->outputs[0] != E2->outputs[0])
        return refuse(S, -1, "the forward's graph changes with the sequence length");
    for (int i = 0; i < E1->n; i++) {
        const IrNode *x = ir_node(E1, i), *y = ir_node(E2, i);
        if (x->op != y->op || x->nin != y->nin || x->dtype != y->dtype)
            return refuse(S, -1, "the forward's graph changes with the sequence length");
        for (int k = 0; k < x->nin; k++)
            if (x->in[k] != y->in[k])
                return refuse(S, -1, "the forward's graph changes with the sequence length");
        int a = S->ax[i] = seq_axis(&x->shape, &y->shape, S->T1, S->T2);
        if (a == -2)
            return refuse(S, i,
                          "mixes positions: its shape does not change by one row per position");
        bool dep = x->op == OP_INPUT ? x->attr.index == S->tok_slot || a >= 0 : false;
        for (int k = 0; k < x->nin; k++) dep = dep || S->dep[x->in[k]];
        S->dep[i] = dep;
        int ins[16];
        if (x->nin > 16) return refuse(S, i, "has too many inputs");
        for (int k = 0; k < x->nin; k++) ins[k] = S->m[x->in[k]];
        int d;
        if (a < 0) {
            if (dep) return refuse(S, i, "combines the positions of the sequence");
            if (x->op == OP_INPUT) /* a weight: bound to the traced graph's data */
                d = add_slot(S, ir_input(D, x->dtype, x->shape, x->name, x->loc), KV_DATA, 0,
                             x->attr.index);
            else
                d = ir_add(D, x->op, ins, x->nin, &x->attr, x->loc);
        } else if (x->op == OP_INPUT) {
            Shape s = x->shape;
            s.d[a] = 1;
            if (x->attr.index == S->tok_slot) {
                if (x->dtype != TY_I32 || s.ndim != 2 || a != 1)
                    return refuse(S, i, "token ids must be i32[B, T]");
                d = S->tok = add_slot(S, ir_input(D, TY_I32, s, "token", x->loc), KV_TOKEN, 0, -1);
            } else if (is_arange(S, x)) {
                if (S->posvec < 0) {
                    int p = pos_node(S);
                    S->posvec =
                        p < 0 ? -1 : ir_reshape(D, p, shape_make(1, (int64_t[]){1}), x->loc);
                }
                d = S->posvec;
            } else {
                return refuse(S, i, "is data with one row per position that is not arange(T)");
            }
        } else if (x->op == OP_ATTENTION) {
            if ((d = rewrite_attention(S, i)) < 0 && S->P->why[0]) return false;
        } else {
            IrAttr attr = x->attr;
            if (!position_wise(S, i, &attr)) return false;
            /* a reshape or broadcast that only changed the sequence axis is
             * the identity for one row: its input (fewer nodes to compile) */
            bool same = (x->op == OP_RESHAPE || x->op == OP_BROADCAST) &&
                        shape_eq(&ir_node(D, ins[0])->shape, &attr.shape);
            d = same ? ins[0] : ir_add(D, x->op, ins, x->nin, &attr, x->loc);
        }
        if (d < 0) return refuse(S, i, "cannot be rebuilt for one row: %s", D->err);
        if (x->name && !ir_node(D, d)->name && x->op != OP_INPUT)
            D->nodes[d].name = arena_strdup(&D->arena, x->name);
        S->m[i] = d;
    }
    int o = E1->outputs[0];
    if (S->ax[o] < 0) return refuse(S, o, "is the result and has no sequence axis");
    if (S->tok < 0) return refuse(S, -1, "the forward does not read its token ids");
    ir_mark_output(D, S->m[o]);
    for (int k = 0; k < S->ncache; k++) {
        /* output 1 + k updates its cache's input slot in place */
        ir_mark_output(D, S->cache_out[k]);
        int slot = ir_node(D, ir_node(D, S->cache_out[k])->in[0])->attr.index;
        if (!ir_alias_output(D, 1 + k, slot)) return refuse(S, -1, "internal: %s", D->err);
    }
    char err[256];
    if (!ir_verify(D, err, sizeof err)) return refuse(S, -1, "internal: %s", err);
    return true;
}

bool kv_derive(const IrGraph *E1, const IrGraph *E2, int64_t T1, int64_t T2, int tok_slot,
               void *const *data1, void *const *data2, int64_t ctx, KvPlan *P) {
    memset(P, 0, sizeof *P);
    ir_init(&P->D);
    int n = E1->n > 0 ? E1->n : 1;
    Pass S = {.E1 = E1,
              .E2 = E2,
              .T1 = T1,
              .T2 = T2,
              .ctx = ctx,
              .tok_slot = tok_slot,
              .data1 = data1,
              .data2 = data2,
              .P = P};
    S.ax = tt_xcalloc((size_t)n, sizeof *S.ax);
    S.dep = tt_xcalloc((size_t)n, sizeof *S.dep);
    S.m = tt_xcalloc((size_t)n, sizeof *S.m);
    S.tok = S.pos = S.posvec = S.len = -1;
    bool ok = T1 != T2 && ctx >= 1 ? derive(&S) : refuse(&S, -1, "needs two sequence lengths");
    free(S.ax);
    free(S.dep);
    free(S.m);
    free(S.cache_out);
    if (!ok) {
        char why[sizeof P->why];
        memcpy(why, P->why, sizeof why);
        kv_plan_free(P);
        memcpy(P->why, why, sizeof why);
    }
    return ok;
}

void kv_plan_free(KvPlan *P) {
    ir_free(&P->D);
    free(P->slots);
    memset(P, 0, sizeof *P);
    ir_init(&P->D);
}
