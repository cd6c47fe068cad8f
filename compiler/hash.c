/* hash.c - the structural hash of a graph, and its FLOP count.
 *
 * ir_hash is the key of compiled-graph caches: the same model traced twice
 * hashes the same, whatever the data bound to its inputs, while any change
 * of op, wiring, dtype, shape or attribute changes it. Names and source
 * locations are not part of it. ir_add keeps unused attribute fields zero,
 * so hashing every field hashes exactly what each op uses.
 */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

#define HASH_SEED 0xcbf29ce484222325ull

/* One 64-bit word at a time (a byte-wise FNV over the ~500 bytes of a node
 * cost about 60 us per training step): multiply, then fold the high half
 * down so every input bit reaches every output bit within a few words.
 * Collisions only cost a structural comparison (the caches check it). */
static void mix_i64(uint64_t *h, int64_t v) {
    *h = (*h ^ (uint64_t)v) * 0x9E3779B97F4A7C15ull;
    *h ^= *h >> 29;
}

static void mix_shape(uint64_t *h, const Shape *s) {
    mix_i64(h, s->ndim);
    for (int i = 0; i < s->ndim && i < IR_MAXDIM; i++) mix_i64(h, s->d[i]);
}

/* The per-dimension arrays are zero past the rank of the op's first input
 * (canonical_attr in ir.c), so they are mixed only up to it: the zeros
 * would not tell two nodes apart, and a rank-2 node then mixes 8 words of
 * them instead of 32. */
static void mix_attr(uint64_t *h, const IrAttr *a, int rank) {
    mix_i64(h, a->axes);
    mix_i64(h, a->keepdims);
    mix_i64(h, a->axis);
    for (int i = 0; i < rank; i++) mix_i64(h, a->perm[i]);
    mix_shape(h, &a->shape);
    for (int i = 0; i < rank; i++) {
        mix_i64(h, a->start[i]);
        mix_i64(h, a->stop[i]);
        mix_i64(h, a->step[i]);
    }
    double v = a->value == 0 ? 0.0 : a->value; /* -0.0 and 0.0 fill the same tensor */
    int64_t bits;
    memcpy(&bits, &v, sizeof bits);
    mix_i64(h, bits);
    mix_i64(h, a->dtype);
    mix_i64(h, a->index);
    const IrWindow *w = &a->win;
    for (int i = 0; i < 2; i++) {
        mix_i64(h, w->kernel[i]);
        mix_i64(h, w->stride[i]);
        mix_i64(h, w->padding[i]);
        mix_i64(h, w->dilation[i]);
    }
    mix_i64(h, w->groups);
    mix_i64(h, a->reverse);
    mix_i64(h, a->causal);
    double sc = a->scale == 0 ? 0.0 : a->scale;
    memcpy(&bits, &sc, sizeof bits);
    mix_i64(h, bits);
}

uint64_t ir_hash(const IrGraph *g) {
    uint64_t h = HASH_SEED;
    mix_i64(&h, g->n);
    mix_i64(&h, g->ninputs);
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        mix_i64(&h, n->op);
        mix_i64(&h, n->dtype);
        mix_shape(&h, &n->shape);
        mix_i64(&h, n->nin);
        for (int k = 0; k < n->nin; k++) mix_i64(&h, n->in[k]);
        int rank = n->nin > 0 && n->in[0] >= 0 && n->in[0] < i ? g->nodes[n->in[0]].shape.ndim : 0;
        mix_attr(&h, &n->attr, rank < IR_MAXDIM ? rank : IR_MAXDIM);
    }
    mix_i64(&h, g->nout);
    for (int k = 0; k < g->nout; k++) mix_i64(&h, g->outputs[k]);
    return h;
}

int64_t ir_flops(const IrGraph *g) {
    if (g->n == 0) return 0;
    bool *live = tt_xcalloc((size_t)g->n, sizeof *live);
    if (g->nout == 0) {
        for (int i = 0; i < g->n; i++) live[i] = true;
    } else {
        for (int k = 0; k < g->nout; k++) live[g->outputs[k]] = true;
        for (int i = g->n - 1; i >= 0; i--)
            if (live[i])
                for (int k = 0; k < g->nodes[i].nin; k++) live[g->nodes[i].in[k]] = true;
    }
    int64_t total = 0;
    for (int i = 0; i < g->n; i++)
        if (live[i] &&
            __builtin_add_overflow(total, ir_ops[g->nodes[i].op].flops(g, &g->nodes[i]), &total))
            total = INT64_MAX;
    free(live);
    return total;
}
