/* hash.c - the structural hash of a graph, and its FLOP count.
 *
 * ir_hash is the key of compiled-graph caches: the same model traced twice
 * hashes the same, whatever the data bound to its inputs, while any change
 * of op, wiring, dtype, shape or attribute changes it. Names and source
 * locations are not part of it. A node's attributes are mixed through its
 * op's attrs mask (ops.def, compiler/attr.c): exactly what the op reads.
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

/* Only the fields the op reads (ops.def), and the per-dimension arrays
 * only up to the rank of the op's first input (attr.c): a rank-2 sum mixes
 * 2 words of attributes, not the ~60 of the whole struct. */
static void mix_attr(uint64_t *h, const IrNode *n, int rank) {
    int64_t w[IR_ATTR_MAXWORDS];
    int nw = ir_attr_words(&n->attr, ir_ops[n->op].attrs, rank, w);
    for (int k = 0; k < nw; k++) mix_i64(h, w[k]);
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
        mix_attr(&h, n, rank < IR_MAXDIM ? rank : IR_MAXDIM);
    }
    mix_i64(&h, g->nout);
    for (int k = 0; k < g->nout; k++) mix_i64(&h, g->outputs[k]);
    for (int k = 0; g->alias && k < g->nout; k++) mix_i64(&h, g->alias[k]);
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
