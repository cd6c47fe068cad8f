/* shapefam.h - shape families: graphs that differ only in one dimension (a
 * sequence length T), run on a few padded "bucket" graphs instead of one
 * compiled graph per value (spec/jit.md, "Varying dimensions").
 *
 * Two graphs are in one family when their op/dtype/edge structure and every
 * attribute other than shapes, slice starts/stops is equal (sf_key). The
 * first two distinct members fix which shape entries vary: those that
 * differ, each equal to the member's T. The family is bucketable only when
 * padding T at the end to a larger B changes no result row t < T (every op
 * is position-wise along T, or causal attention, or a sum over a
 * zero-padded input: sf_derive checks each); otherwise each value compiles
 * on its own, as before.
 */
#ifndef TT_SHAPEFAM_H
#define TT_SHAPEFAM_H

#include "ir.h"

enum { SF_ONE, SF_READY, SF_DEAD };

typedef struct ShapeFam {
    uint64_t key;  /* sf_key */
    int state;     /* SF_ONE: one member seen; SF_READY: bucketable; SF_DEAD */
    int n;         /* nodes */
    IrNode *nodes; /* the first member's nodes (in[] point into ins) */
    int *ins;
    int64_t t0; /* the first member's T (SF_READY) */
    /* per node, which entries are T: bits 0-7 shape.d, 8-15 attr.shape.d,
     * 16-23 attr.stop (SF_READY) */
    uint32_t *vary;
    int64_t cap;   /* the largest B: a slice of a fixed input up to T */
    char why[160]; /* SF_DEAD: why the family runs per value */
    int64_t runs;  /* bucketed runs */
    /* gathers whose indices are sliced up to T from a fixed input: the
     * padded rows read real data, checked before each run (sf_tail_ok) */
    int *idx_checks;
    int nidx, idxcap;
} ShapeFam;

/* The structural hash with the dimensions masked out. */
uint64_t sf_key(const IrGraph *g);
/* Starts a family with g as its first member. */
void sf_init(ShapeFam *f, uint64_t key, const IrGraph *g);
void sf_free(ShapeFam *f);
/* g is the second distinct member: fixes the varying entries and decides
 * whether padding is exact (state SF_READY) or not (SF_DEAD, why). */
void sf_derive(ShapeFam *f, const IrGraph *g);
/* g's T when g is a member of the SF_READY family f, else -1. */
int64_t sf_match(const ShapeFam *f, const IrGraph *g);
/* The bucket for T: the next power of two (at least 8), at most f->cap. */
int64_t sf_bucket(const ShapeFam *f, int64_t t);
/* Builds into out (ir_init'ed by the caller) the member of f for T = b,
 * node for node as g (a member with T = t); false with out->err. */
bool sf_build(const ShapeFam *f, const IrGraph *g, int64_t b, IrGraph *out);
/* The indices the padded rows [t, b) of g would gather are all in range
 * (inputs: g's input data); if not, g runs on its own. */
bool sf_tail_ok(const ShapeFam *f, const IrGraph *g, int64_t t, int64_t b, void *const *inputs);
/* The indices the padded rows [t, b) of g would gather are all in range
 * (inputs: g's input data); if not, g runs on its own. */
bool sf_tail_ok(const ShapeFam *f, const IrGraph *g, int64_t t, int64_t b, void *const *inputs);
/* Node i's varying axis (-1 none). */
int sf_axis(const ShapeFam *f, int i);

#endif
