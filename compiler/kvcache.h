/* kvcache.h - KV caching as a pass on the graph IR (compiler/kvcache.c).
 *
 * From two traces of a model's forward on token ids [B, T] (at T1 and T2
 * tokens, the same graph but for the sequence length), derives the
 * incremental decode graph: one new token [B, 1] and its position p (a
 * runtime i32 scalar) in; the logits of that token and the updated k/v
 * caches of every attention out. The caches are [..., ctx, D], preallocated
 * to ctx rows; row p of each is written by the graph in place (each cache
 * output aliases its input slot: the caller passes one buffer for both) and
 * attention reads the first p + 1 rows (its `len` input), so every position
 * runs the same graph.
 * Where the forward is not made of position-wise computations feeding causal
 * attention, the pass refuses and says why (the caller recomputes instead).
 * The conditions are spec/ir.md's "KV caching".
 */
#ifndef TT_KVCACHE_H
#define TT_KVCACHE_H

#include "ir.h"

/* What the caller binds to each input slot of the decode graph. */
typedef enum KvSlotKind {
    KV_TOKEN,  /* i32[B, 1]: the new token */
    KV_POS,    /* i32[]: its position p, 0 <= p < ctx (else the step fails) */
    KV_KCACHE, /* f32 cache_shape[layer]: keys of rows 0..p-1 (the rest any value);
                  updated in place: also the buffer of output 1 + 2 * layer */
    KV_VCACHE, /* f32 vcache_shape[layer]: values, likewise (output 2 + 2 * layer) */
    KV_DATA,   /* the data of input slot `src` of the traced graph (a weight) */
} KvSlotKind;

typedef struct KvSlot {
    KvSlotKind kind;
    int layer; /* KV_KCACHE, KV_VCACHE: which attention (in graph order) */
    int src;   /* KV_DATA: input slot of the traced graph */
} KvSlot;

#define KV_MAX_LAYERS 64

typedef struct KvPlan {
    IrGraph D;     /* the decode graph; outputs: logits [B, 1, ...], then
                      k'_0, v'_0, k'_1, v'_1, ...: the caches with row p written,
                      each aliasing its cache's input slot (ir_alias_output) */
    KvSlot *slots; /* D.ninputs entries */
    int nlayers;   /* attention nodes rewritten */
    Shape kshape[KV_MAX_LAYERS], vshape[KV_MAX_LAYERS]; /* cache shapes */
    char why[256];                                      /* kv_derive's refusal, one line */
} KvPlan;

/* E1, E2: the traced forward at T1 != T2 tokens (the same structure, one
 * output: logits with the sequence axis); tok_slot: the input slot of the
 * token ids [B, T] (the same in both); data1/data2: each graph's input data
 * by slot (NULL where unknown), read only to recognize arange(T) positions;
 * ctx: the cache rows. Returns false with plan->why set when the forward is
 * not cacheable; plan is then empty (kv_plan_free is still safe). */
bool kv_derive(const IrGraph *E1, const IrGraph *E2, int64_t T1, int64_t T2, int tok_slot,
               void *const *data1, void *const *data2, int64_t ctx, KvPlan *plan);
void kv_plan_free(KvPlan *plan);

#endif
