/* lower_internal.h - what lower.c (graph IR -> loop IR) and fuse.c (which
 * nodes get a buffer, which are computed where they are read) share: the
 * lowering's state. Private to those two files.
 */
#ifndef TT_LOWER_INTERNAL_H
#define TT_LOWER_INTERNAL_H

#include "loop.h"

typedef struct Lower {
    const IrGraph *g;
    LpProg *p;
    bool fuse;
    LpConvLowering conv;
    const LpConvLowering *conv_of; /* per node, over conv (LP_CONV_AUTO: conv) */
    bool implicit;                 /* the GEMM may gather B (the JIT's, not ttc's) */
    bool *need, *is_out, *fused, *recomp;
    bool *bsum; /* a sum over its matmul's batch: one GEMM (decide_batch_sums) */
    /* twins (decide_twins): twin_of[a], the node whose buffer node a's
     * kernel also writes (-1: none): an attention's attention_lse, a
     * max_pool2d's max_pool2d_index; written_by_twin[e]: e has no kernel
     * of its own */
    int *twin_of;
    bool *written_by_twin;
    int *uses, *consumer, *buf;
    int *kf; /* nodes fused into the kernel being built */
    int nkf;
    /* convolution epilogues (decide_conv_epilogues): epi_conv[r], the conv2d
     * whose elementwise consumers up to root r are computed as it leaves
     * the GEMM (-1: none); while that conv is lowered, epi_root = r and
     * value_at(epi_node) is epi_val, the product's element */
    int *epi_conv;
    int epi_root, epi_node;
    LpExpr *epi_val;
} Lower;

static inline const IrNode *node(const Lower *L, int id) {
    return ir_node(L->g, id);
}

static inline bool is_remap(OpKind op) {
    return ir_ops[op].form == FORM_REMAP;
}

static inline bool fusable(OpKind op) {
    return (ir_ops[op].flags & OPF_ELEMWISE) || is_remap(op);
}

/* The fusion decisions (fuse.c): fused/recomp, epilogues, batch sums,
 * recomputation and twins, from need, is_out, uses and consumer. */
void lw_decide(Lower *L);

/* Does conv node id go through the GEMM (lower.c: its lowering's rule or
 * mode)? */
bool lw_conv_gemm(const Lower *L, int id);

/* lower.c's indexing, for the lowerings in other files: the value of node
 * id at a multi-index (fused nodes computed there), closing n loops, the
 * linear index of idx in shape s. */
LpExpr *lw_value_at(Lower *L, int id, LpExpr **idx);
void lw_close_n(LpProg *p, int n);
LpExpr *lw_linearize(LpProg *p, LpExpr *const *idx, const Shape *s);

/* Does conv node id go through the lanes lowering (not the GEMM, and
 * lp_conv_lanes)? Both take the conv's elementwise consumers as epilogue. */
bool lw_conv_lanes(const Lower *L, int id);
/* Does conv node id's lowering (the GEMM or the lanes) apply an epilogue? */
bool lw_conv_epilogue_ok(const Lower *L, int id);

/* conv2d's and conv2d_backward_input's direct lowering in lanes
 * (lower_conv_lanes.c); conv2d_backward_weight's (lower_conv_dw.c), which
 * lw_lower_conv_lanes hands it, and whether node id can take it. */
void lw_lower_conv_lanes(Lower *L, int id, int out);
void lw_lower_conv_dw(Lower *L, int id, int out);
bool lw_conv_dw_ok(const IrGraph *g, int id);

/* Their padded inputs (lower_conv_lanes.c): an f32 scratch buffer of
 * shape s, zeroed (the borders stay so), and a pipeline of count steps
 * whose input is copied one step ahead into one of two slots:
 *   copy(0, slot 0); for k < count - 1: copy(k + 1, slot (k+1) % 2),
 *   work(k, slot k % 2); then work(count - 1, slot (count-1) % 2). */
typedef void LwSlotStep(Lower *L, void *ctx, LpExpr *k, LpExpr *slot);
int lw_zeroed_slots(Lower *L, const Shape *s, int id);
void lw_copy_ahead(Lower *L, int64_t count, LwSlotStep *copy, LwSlotStep *work, void *ctx);

/* The value stored at yi of conv2d id's result, acc being its element
 * there: acc, or the epilogue's root (decide_conv_epilogues) on it. */
LpExpr *lw_conv_result(Lower *L, int id, LpExpr **yi, LpExpr *acc);

/* attention and attention_lse, attention_grad (lower_attn.c). */
void lw_lower_attention(Lower *L, int id, int out);
void lw_lower_attention_grad(Lower *L, int id, int out);

#endif
