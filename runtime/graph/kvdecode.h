/* kvdecode.h - the runtime side of KV caching (runtime/graph/kvdecode.c): traces a
 * model's forward, asks the pass (compiler/kvcache.h) for the decode graph,
 * and runs it one token at a time with the caches it owns. generate()
 * (runtime/lib/builtins_generate.c) is its user.
 */
#ifndef TT_KVDECODE_H
#define TT_KVDECODE_H

#include "kvcache.h"
#include "value.h"

typedef struct KvDecoder {
    KvPlan plan;
    int64_t B, ctx, vocab;
    void **in;     /* per input slot of plan.D */
    void **out;    /* per output of plan.D */
    Buffer **hold; /* the weights' buffers, retained while decoding */
    int nhold;
    /* k_l at 2l, v_l at 2l + 1: each one buffer, preallocated to ctx rows,
     * bound to both its input slot and its output (updated in place) */
    float *cache[2 * KV_MAX_LAYERS];
    int32_t *tok, pos;
    float *logits; /* [B, vocab] of the last step */
} KvDecoder;

/* Traces model's forward on i32[B, T] token ids (T = 2 and 3) and derives
 * the decode graph for caches of ctx rows. False with why set (one line)
 * when the pass refuses; the decoder is then empty. Errors of the forward
 * itself are the script's (rt_error). --dump=kvcache prints the graph. */
bool kv_decoder_init(Interp *I, Value model, int64_t B, int64_t ctx, KvDecoder *kd, char *why,
                     size_t whylen);
/* Runs one position: tok[B] at position p (0 <= p < ctx, every earlier
 * position run before); kd->logits then holds the next token's logits.
 * Failures of the graph (a position outside [0, ctx) among them) are
 * rt_error at the call. */
void kv_decoder_step(Interp *I, KvDecoder *kd, const int32_t *tok, int64_t p);
void kv_decoder_free(KvDecoder *kd);

/* Registers generate() (builtins_generate.c). */
void lib_register_generate(Interp *I);

#endif
