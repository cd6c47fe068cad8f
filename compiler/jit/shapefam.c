/* shapefam.c - shape families and their exact padded buckets (shapefam.h).
 *
 * Why padding at the end of T is exact for the ops accepted here: each
 * result row t < T of a position-wise op (elementwise, a reduction or a
 * softmax-like chain over another axis, a matmul with T among the rows,
 * a gather by a T-indexed tensor, a movement that keeps T an axis of its
 * own) reads only rows t of its operands; causal attention with Tq = Tk = T
 * lets query t see keys <= t only; and a sum over T of a zero-padded input
 * adds zeros. The padded rows hold whatever the ops make of zeros (even
 * inf or NaN) and are never read into a real row. Everything else (a
 * reduction or contraction over T of computed values, non-causal
 * attention, an integer division, an index computed from padded data)
 * makes the family run per value.
 */
#include "shapefam.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SF_MASKED (AT_SHAPE | AT_STOP)

static void mix(uint64_t *h, int64_t v) {
    for (int k = 0; k < 8; k++) {
        *h ^= (uint64_t)(v >> (8 * k)) & 0xff;
        *h *= 0x100000001b3ull;
    }
}

static int rank_of(const IrNode *nodes, const IrNode *n) {
    int r = n->nin > 0 ? nodes[n->in[0]].shape.ndim : 0;
    return r < IR_MAXDIM ? r : IR_MAXDIM;
}

uint64_t sf_key(const IrGraph *g) {
    uint64_t h = 0xcbf29ce484222325ull;
    mix(&h, g->n);
    mix(&h, g->ninputs);
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        mix(&h, n->op);
        mix(&h, n->dtype);
        mix(&h, n->shape.ndim);
        mix(&h, n->nin);
        for (int k = 0; k < n->nin; k++) mix(&h, n->in[k]);
        int64_t w[IR_ATTR_MAXWORDS];
        int nw = ir_attr_words(&n->attr, ir_ops[n->op].attrs & ~SF_MASKED, rank_of(g->nodes, n), w);
        for (int k = 0; k < nw; k++) mix(&h, w[k]);
        if (ir_ops[n->op].attrs & AT_SHAPE) mix(&h, n->attr.shape.ndim);
    }
    mix(&h, g->nout);
    for (int k = 0; k < g->nout; k++) mix(&h, g->outputs[k]);
    for (int k = 0; g->alias && k < g->nout; k++) mix(&h, g->alias[k]);
    return h;
}

void sf_init(ShapeFam *f, uint64_t key, const IrGraph *g) {
    memset(f, 0, sizeof *f);
    f->key = key;
    f->state = SF_ONE;
    f->n = g->n;
    int nin = 0;
    for (int i = 0; i < g->n; i++) nin += g->nodes[i].nin;
    f->nodes = tt_xmalloc(((size_t)g->n + 1) * sizeof *f->nodes);
    f->ins = tt_xmalloc(((size_t)nin + 1) * sizeof *f->ins);
    for (int i = 0, at = 0; i < g->n; i++) {
        IrNode n = g->nodes[i];
        if (n.nin) memcpy(f->ins + at, n.in, (size_t)n.nin * sizeof *n.in);
        n.in = f->ins + at;
        n.name = NULL;
        at += n.nin;
        f->nodes[i] = n;
    }
    f->cap = INT64_MAX;
}

void sf_free(ShapeFam *f) {
    free(f->nodes);
    free(f->ins);
    free(f->vary);
    free(f->idx_checks);
}

/* Each index the padded rows t in [t, b) of gather node i read from its
 * sliced input is in range (as the reference's check would have it, had
 * the rows been real), so the padded run cannot fail where g would not. */
static bool tail_in_range(const ShapeFam *f, const IrGraph *g, int i, int64_t t, int64_t b,
                          void *const *inputs) {
    const IrNode *n = ir_node(g, i), *s = ir_node(g, n->in[1]), *x = ir_node(g, s->in[0]);
    int64_t v = ir_node(g, n->in[0])->shape.d[0];
    int a = sf_axis(f, n->in[1]), r = s->shape.ndim;
    const int32_t *data = inputs[x->attr.index];
    int64_t stride[IR_MAXDIM], at[IR_MAXDIM] = {0}, hi[IR_MAXDIM];
    for (int k = r - 1, st = 1; k >= 0; k--) {
        stride[k] = st;
        st *= x->shape.d[k];
        hi[k] = k == a ? b : s->shape.d[k];
    }
    for (int k = 0; k < r; k++)
        if (hi[k] == 0) return true;
    at[a] = t;
    for (;;) {
        int64_t off = 0;
        for (int k = 0; k < r; k++) off += (s->attr.start[k] + at[k] * s->attr.step[k]) * stride[k];
        if (data[off] < 0 || data[off] >= v) return false;
        int k = r - 1;
        while (k >= 0 && ++at[k] == hi[k]) at[k] = k == a ? t : 0, k--;
        if (k < 0) return true;
    }
}

bool sf_tail_ok(const ShapeFam *f, const IrGraph *g, int64_t t, int64_t b, void *const *inputs) {
    for (int k = 0; k < f->nidx; k++)
        if (!tail_in_range(f, g, f->idx_checks[k], t, b, inputs)) return false;
    return true;
}

/* The entries of node b that can hold T, in the order of the vary bits:
 * shape.d (bit k), attr.shape.d (8 + k), attr.stop (16 + k). */
static int64_t *entry(IrNode *b, int bit) {
    if (bit < 8) return &b->shape.d[bit];
    if (bit < 16) return &b->attr.shape.d[bit - 8];
    return &b->attr.stop[bit - 16];
}

static int entry_count(const IrNode *nodes, const IrNode *b, int part) {
    unsigned at = ir_ops[b->op].attrs;
    if (part == 0) return b->shape.ndim;
    if (part == 1) return at & AT_SHAPE ? b->attr.shape.ndim : 0;
    return at & AT_STOP ? rank_of(nodes, b) : 0;
}

/* Same structure apart from the masked entries. */
static bool same_frame(const ShapeFam *f, const IrGraph *g) {
    if (g->n != f->n) return false;
    for (int i = 0; i < g->n; i++) {
        const IrNode *a = &f->nodes[i], *b = &g->nodes[i];
        if (a->op != b->op || a->dtype != b->dtype || a->nin != b->nin ||
            a->shape.ndim != b->shape.ndim)
            return false;
        if (a->nin && memcmp(a->in, b->in, (size_t)a->nin * sizeof *a->in) != 0) return false;
        unsigned mask = ir_ops[a->op].attrs & ~SF_MASKED;
        if (!ir_attr_eq(&a->attr, &b->attr, mask, rank_of(f->nodes, a))) return false;
        if ((ir_ops[a->op].attrs & AT_SHAPE) && a->attr.shape.ndim != b->attr.shape.ndim)
            return false;
    }
    return true;
}

int sf_axis(const ShapeFam *f, int i) {
    uint32_t s = f->vary[i] & 0xff;
    return s ? __builtin_ctz(s) : -1;
}

static int64_t prefix(const Shape *s, int upto) {
    int64_t p = 1;
    for (int k = 0; k < upto; k++) p *= s->d[k];
    return p;
}

static bool dead(ShapeFam *f, int i, const char *why) {
    snprintf(f->why, sizeof f->why, "%%%d %s: %s", i, ir_ops[f->nodes[i].op].name, why);
    f->state = SF_DEAD;
    return false;
}

/* Whether padding T at the end is exact for every node (file comment). */
static bool exact(ShapeFam *f) {
    const IrNode *nd = f->nodes;
    for (int i = 0; i < f->n; i++) {
        const IrNode *n = &nd[i];
        uint32_t v = f->vary[i];
        int a = sf_axis(f, i), r = n->shape.ndim;
        if (__builtin_popcount(v & 0xff) > 1) return dead(f, i, "T on two axes");
        if (n->op == OP_INPUT || n->op == OP_CONST) continue; /* a padded leaf */
        int ai = n->nin > 0 ? sf_axis(f, n->in[0]) : -1;
        bool anyin = false;
        for (int k = 0; k < n->nin; k++) anyin = anyin || sf_axis(f, n->in[k]) >= 0;
        if (!anyin && !(v & ~0xffu) && n->op != OP_SLICE && n->op != OP_BROADCAST) {
            if (a >= 0) return dead(f, i, "T appears from fixed operands");
            continue;
        }
        unsigned fl = ir_ops[n->op].flags;
        if (fl & OPF_ELEMWISE) {
            if (n->op == OP_DIV && n->dtype != TY_F32)
                return dead(f, i, "an integer division would divide padding");
            continue; /* operands of one shape: T on the same axis */
        }
        switch (n->op) {
        case OP_SUM:
        case OP_RMAX:
        case OP_ARGMAX: {
            uint32_t axes = n->op == OP_ARGMAX ? 1u << n->attr.axis : n->attr.axes;
            if (axes & (1u << ai)) {
                if (n->op != OP_SUM || nd[n->in[0]].op != OP_INPUT || a >= 0)
                    return dead(f, i, "reduces over T");
                continue; /* zeros added */
            }
            int want = ai;
            if (!n->attr.keepdims)
                for (int k = 0; k < ai; k++) want -= (axes >> k) & 1;
            if (a != want) return dead(f, i, "T moves");
            continue;
        }
        case OP_RESHAPE:
            if (ai < 0 || a < 0 || ((v >> 8) & 0xff) != (1u << a) || (v >> 16) ||
                prefix(&nd[n->in[0]].shape, ai) != prefix(&n->shape, a))
                return dead(f, i, "T merged with another axis");
            continue;
        case OP_PERMUTE:
            if (a < 0 || n->attr.perm[a] != ai) return dead(f, i, "T moves");
            continue;
        case OP_BROADCAST: {
            int off = r - nd[n->in[0]].shape.ndim;
            uint32_t sh = (v >> 8) & 0xff;
            if (a < 0 && ai < 0 && !sh) continue;
            if (a < 0 || sh != (1u << a) || (ai >= 0 && a != ai + off))
                return dead(f, i, "T moves");
            continue;
        }
        case OP_SLICE: {
            uint32_t st = v >> 16;
            if (!st && ai < 0 && a < 0) continue;
            int ax = ai >= 0 ? ai : a;
            if (ax < 0 || a != ax || st != (1u << ax) || n->attr.start[ax] != 0 ||
                n->attr.step[ax] != 1)
                return dead(f, i, "not a slice from 0 to T");
            if (ai < 0 && nd[n->in[0]].shape.d[ax] < f->cap) f->cap = nd[n->in[0]].shape.d[ax];
            continue;
        }
        case OP_CONCAT:
            if (n->attr.axis == a || a < 0) return dead(f, i, "concatenates along T");
            for (int k = 0; k < n->nin; k++)
                if (sf_axis(f, n->in[k]) != a) return dead(f, i, "T moves");
            continue;
        case OP_MATMUL: {
            int bi = sf_axis(f, n->in[1]);
            bool ok = (ai == r - 2 && bi < 0 && a == r - 2) ||
                      (bi == r - 1 && ai < 0 && a == r - 1) ||
                      (ai >= 0 && ai < r - 2 && bi == ai && a == ai);
            if (!ok) return dead(f, i, "contracts over T");
            continue;
        }
        case OP_GATHER: {
            int ii = sf_axis(f, n->in[1]);
            const IrNode *ix = &nd[n->in[1]];
            if (sf_axis(f, n->in[0]) >= 0) return dead(f, i, "gathers from a T-long table");
            if (a != ii) return dead(f, i, "T moves");
            if (ii < 0 || ix->op == OP_INPUT) continue; /* zeros: index 0 */
            /* indices sliced up to T from a fixed input: the padded rows
             * read that input's next rows, checked before each run */
            if (ix->op == OP_SLICE && nd[ix->in[0]].op == OP_INPUT && sf_axis(f, ix->in[0]) < 0) {
                TT_VEC_PUSH(f->idx_checks, f->nidx, f->idxcap, i);
                continue;
            }
            return dead(f, i, "indices computed from possibly padded data");
        }
        case OP_ATTENTION:
            if (n->nin != 3 || !n->attr.causal) return dead(f, i, "not plain causal attention");
            for (int k = 0; k < 3; k++)
                if (sf_axis(f, n->in[k]) != r - 2) return dead(f, i, "T is not both Tq and Tk");
            if (a != r - 2) return dead(f, i, "T moves");
            continue;
        /* a new kernel op is listed here or given a rule above */
        case OP_PAD:
        case OP_SCATTER_ADD:
        case OP_CONV2D:
        case OP_CONV2D_BACKWARD_INPUT:
        case OP_CONV2D_BACKWARD_WEIGHT:
        case OP_MAX_POOL2D:
        case OP_MAX_POOL2D_INDEX:
        case OP_AVG_POOL2D:
        case OP_AVG_POOL2D_BACKWARD:
        case OP_ARGSORT:
        case OP_CUMSUM:
        case OP_QMATMUL:
        case OP_QCONV2D:
        case OP_WRITE_ROWS:
        case OP_ATTENTION_LSE:
        case OP_ATTENTION_GRAD:
            return dead(f, i, "no exact padding rule for this op");
            /* elementwise ops and leaves are above */
#define OP(NAME, name, arity, flags, form, ...)                                                    \
    OP_CASES_UNLESS_FORMS(form, kernel, remap, OP_##NAME)
#include "ops.def"
#undef OP
        case OP__COUNT:
            TT_UNREACHABLE();
        }
    }
    return true;
}

void sf_derive(ShapeFam *f, const IrGraph *g) {
    if (!same_frame(f, g)) {
        f->state = SF_DEAD;
        snprintf(f->why, sizeof f->why, "members differ in more than dimensions");
        return;
    }
    f->vary = tt_xcalloc((size_t)f->n + 1, sizeof *f->vary);
    int64_t ta = -1, tb = -1;
    for (int i = 0; i < g->n; i++) {
        IrNode *a = &f->nodes[i], *b = &g->nodes[i];
        for (int part = 0; part < 3; part++)
            for (int k = 0; k < entry_count(f->nodes, a, part); k++) {
                int bit = 8 * part + k;
                int64_t x = *entry(a, bit), y = *entry(b, bit);
                if (x == y) continue;
                if (ta < 0) ta = x, tb = y;
                if (x != ta || y != tb) {
                    f->state = SF_DEAD;
                    snprintf(f->why, sizeof f->why,
                             "%%%d %s: more than one dimension varies (%lld -> %lld, %lld -> %lld)",
                             i, ir_ops[a->op].name, (long long)ta, (long long)tb, (long long)x,
                             (long long)y);
                    return;
                }
                f->vary[i] |= 1u << bit;
            }
    }
    if (ta < 0) { /* the same dimensions (compiled again for other settings) */
        free(f->vary);
        f->vary = NULL;
        return;
    }
    if (ta < 1) {
        f->state = SF_DEAD;
        snprintf(f->why, sizeof f->why, "members differ in more than dimensions");
        return;
    }
    f->t0 = ta;
    if (exact(f)) f->state = SF_READY;
    /* the outputs: T may not be on an output that updates an input in place
     * (the padded run would need the caller's buffer padded too) */
    for (int k = 0; f->state == SF_READY && k < g->nout; k++)
        if (ir_output_alias(g, k) >= 0 && sf_axis(f, g->outputs[k]) >= 0)
            dead(f, g->outputs[k], "an in-place output with T");
}

int64_t sf_match(const ShapeFam *f, const IrGraph *g) {
    if (f->state != SF_READY || !same_frame(f, g)) return -1;
    int64_t t = -1;
    for (int i = 0; i < g->n; i++) {
        IrNode *a = &f->nodes[i], *b = &g->nodes[i];
        for (int part = 0; part < 3; part++)
            for (int k = 0; k < entry_count(f->nodes, a, part); k++) {
                int bit = 8 * part + k;
                int64_t x = *entry(a, bit), y = *entry(b, bit);
                if (f->vary[i] & (1u << bit)) {
                    if (t < 0) t = y;
                    if (y != t) return -1;
                } else if (x != y) {
                    return -1;
                }
            }
    }
    return t >= 1 && t <= f->cap ? t : -1;
}

int64_t sf_bucket(const ShapeFam *f, int64_t t) {
    int64_t b = 8;
    while (b < t) b *= 2;
    return b < f->cap ? b : f->cap;
}

bool sf_build(const ShapeFam *f, const IrGraph *g, int64_t b, IrGraph *out) {
    for (int i = 0; i < g->n; i++) {
        IrNode want = g->nodes[i];
        for (int bit = 0; bit < 24; bit++)
            if (f->vary[i] & (1u << bit)) *entry(&want, bit) = b;
        int id = ir_add(out, want.op, want.in, want.nin, &want.attr, want.loc);
        if (id < 0) return false;
        IrNode *got = &out->nodes[id];
        if (got->dtype != want.dtype || !shape_eq(&got->shape, &want.shape)) {
            snprintf(out->err, sizeof out->err, "%%%d %s: the padded shape rule disagrees", i,
                     ir_ops[want.op].name);
            return false;
        }
        got->name = want.name;
    }
    out->ninputs = g->ninputs;
    for (int k = 0; k < g->nout; k++) ir_mark_output(out, g->outputs[k]);
    for (int k = 0; k < g->nout; k++)
        if (ir_output_alias(g, k) >= 0 && !ir_alias_output(out, k, ir_output_alias(g, k)))
            return false;
    return true;
}
