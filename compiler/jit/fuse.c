/* fuse.c - the fusion decisions of the lowering (lower.c calls lw_decide
 * once per graph, before any kernel is built): which nodes are fused into
 * their consumer's loop nest, which are recomputed by each reader, which
 * conv2d takes its elementwise consumers as the GEMM's epilogue, which sum
 * is one product over a batch, and which node's kernel also writes a twin's
 * buffer. spec/jit.md, "Fusion rules" and the sections after it.
 */
#include <stdlib.h>
#include <string.h>

#include "lower_internal.h"

/* Does consumer c read input position pos more than once per element? An
 * op not known to read each input once is taken to re-read: a producer
 * fused into it is then recomputed per read or materialized, never wrong. */
static bool rereads(const Lower *L, int c, int pos, int x) {
    const IrNode *n = node(L, c);
    if (n->op == OP_BROADCAST) return shape_numel(&n->shape) > shape_numel(&node(L, x)->shape);
    if (n->op == OP_SCATTER_ADD) return pos == 1;
    if (n->op == OP_CUMSUM) return false;
    if ((n->op == OP_MAX_POOL2D || n->op == OP_MAX_POOL2D_INDEX || n->op == OP_AVG_POOL2D) &&
        n->dtype != TY_I8) { /* windows that do not overlap read each element once */
        const IrWindow *w = &n->attr.win;
        return w->stride[0] < w->kernel[0] || w->stride[1] < w->kernel[1];
    }
    return !(ir_ops[n->op].flags & (OPF_ELEMWISE | OPF_REDUCE | OPF_MOVEMENT));
}

/* A chain of fused nodes stops at this length (the next node is a root):
 * lowering and codegen recurse on a kernel's expression, and a graph built
 * by a loop (`x = x + 1` 100,000 times) would else be one kernel 100,000
 * deep, past the end of the C stack. */
#define MAX_FUSED_CHAIN 256

/* Is node id a constant or a graph input seen through remaps (broadcast(0.5)
 * to a shape, a weight broadcast over a batch and transposed)? Reading it
 * costs an index computation, so it is fused into every consumer, however
 * many: materialized, GELU's three broadcast constants were 12 MB written
 * and read again per TinyGPT layer (autodiff keeps them for the backward),
 * and each Linear weight of a 3-D product was copied once per batch element
 * for the forward product and again, transposed, for the backward's (a
 * product reads it in place: strides, lower_gemm). */
static bool const_remap(const Lower *L, int id) {
    const IrNode *n = node(L, id);
    if (!is_remap(n->op)) return false;
    OpKind base = node(L, n->in[0])->op;
    return base == OP_CONST || base == OP_INPUT || const_remap(L, n->in[0]);
}

/* Is node id a broadcast, reshape or slice? Read through, it costs an
 * index computation, so it is fused into every consumer however many, and
 * its input keeps its own buffer (a single-use input of a recomputed node
 * is not fused, below): materialized, a row statistic broadcast to
 * [rows, d] for the two kernels of a layer norm's backward was written and
 * read again in full. A permute is not: a transposed read per element can
 * cost more than one copy read contiguously by several consumers (unless
 * it is a constant's or an input's, const_remap). */
static bool view(const Lower *L, int id) {
    OpKind op = node(L, id)->op;
    return op == OP_BROADCAST || op == OP_RESHAPE || op == OP_SLICE;
}

/* Node i's one reader, as fusion sees it: its consumer when it has one, or
 * a max_pool2d when the other reader is that pool's twin index (which the
 * pool's loop writes from the same taps, decide_twins); -1: several. */
static int one_reader(const Lower *L, int i) {
    if (L->uses[i] == 1) return L->consumer[i];
    int e = L->consumer[i]; /* the later reader */
    if (L->uses[i] != 2 || !L->written_by_twin[e] || node(L, e)->in[0] != i) return -1;
    for (int a = 0; a < e; a++)
        if (L->twin_of[a] == e) return node(L, a)->in[0] == i ? a : -1;
    return -1;
}

/* Does node id, elementwise of shape s, compute on a conv2d that can take
 * its elementwise consumers as the GEMM's epilogue (read once, on the
 * GEMM)? Then a pooling keeps its input in a buffer, written by that
 * epilogue (decide_conv_epilogues), rather than reading the chain itself:
 * the conv's own [N, O, P] buffer is the one that disappears. */
static bool on_conv_epilogue(const Lower *L, int id, const Shape *s, int depth) {
    const IrNode *n = node(L, id);
    if (!shape_eq(&n->shape, s) || depth > 16) return false;
    if (n->op == OP_CONV2D)
        return n->dtype == TY_F32 && L->uses[id] == 1 && !L->is_out[id] &&
               lw_conv_epilogue_ok(L, id);
    if (!(ir_ops[n->op].flags & OPF_ELEMWISE)) return false;
    for (int k = 0; k < n->nin; k++) /* the chain's nodes are read once each */
        if (L->uses[n->in[k]] == 1 && on_conv_epilogue(L, n->in[k], s, depth + 1)) return true;
    return false;
}

static void decide_fusion(Lower *L) {
    const IrGraph *g = L->g;
    int *chain = tt_xcalloc((size_t)g->n + 1, sizeof *chain); /* fused nodes down to here */
    for (int i = g->n - 1; i >= 0; i--) {
        const IrNode *n = node(L, i);
        if (L->need[i] && !L->is_out[i] && L->uses[i] > 1 && (const_remap(L, i) || view(L, i))) {
            L->fused[i] = L->recomp[i] = true;
            continue;
        }
        int c = L->need[i] && fusable(n->op) && !L->is_out[i] ? one_reader(L, i) : -1, pos = 0;
        if (c < 0) continue;
        const IrNode *cn = node(L, c);
        while (cn->in[pos] != i) pos++;
        bool rec = rereads(L, c, pos, i) || (L->fused[c] && L->recomp[c]);
        if (!rec && (cn->op == OP_MAX_POOL2D || cn->op == OP_AVG_POOL2D) &&
            on_conv_epilogue(L, i, &n->shape, 0))
            continue;
        if (rec && !is_remap(n->op)) continue;
        if (chain[c] >= MAX_FUSED_CHAIN) continue;
        L->fused[i] = true;
        L->recomp[i] = rec;
        chain[i] = chain[c] + 1;
    }
    free(chain);
}

/* Convolution epilogues: a conv2d on the GEMM read only by elementwise
 * nodes of its shape fused into one root r (conv + bias, then BatchNorm's
 * per-channel affine in eval mode, then relu: relu(conv(x, w) + b) * s + t
 * and the like) is computed in r's kernel, r's chain applied to each
 * element of the product as it is copied from the GEMM's [O, N*P] to
 * [N, O, P] (with one group: as the GEMM finishes its rows, on its
 * threads). The conv's own [N, O, P] buffer and the pass of r's kernel over
 * it are gone. BatchNorm's scale and shift are graph values (running
 * statistics are inputs, which change between calls), computed by their
 * own small kernel before, and read per channel by the chain. */
static void decide_conv_epilogues(Lower *L) {
    const IrGraph *g = L->g;
    for (int i = 0; i < g->n; i++) {
        const IrNode *c = node(L, i);
        if (!L->need[i] || c->op != OP_CONV2D || c->dtype != TY_F32 || L->is_out[i] ||
            L->uses[i] != 1 || shape_numel(&c->shape) == 0 || !lw_conv_epilogue_ok(L, i))
            continue;
        int r = L->consumer[i];
        bool ok = true;
        for (;;) {
            const IrNode *rn = node(L, r);
            ok = (ir_ops[rn->op].flags & OPF_ELEMWISE) && shape_eq(&rn->shape, &c->shape);
            if (!ok || !L->fused[r]) break;
            ok = !L->recomp[r];
            if (!ok) break;
            r = L->consumer[r];
        }
        if (!ok || L->epi_conv[r] >= 0) continue;
        L->epi_conv[r] = i;
        L->fused[i] = true; /* no buffer: it lives in the kernel of r */
    }
}

/* Recomputation instead of a buffer. A training step keeps every value the
 * backward reads: GELU's 0.5 * x * (1 + tanh(c * (x + 0.044715 * x^3)))
 * wrote seven [tokens, 4d] buffers per layer, each read again by the
 * backward, where PyTorch's one gelu op keeps only x. An elementwise root
 * read only by kernels that read it element by element (elementwise ops,
 * reductions, remaps that are roots), cheap to compute from values that
 * are in memory anyway, is instead recomputed by each of its readers: the
 * buffer, its store and its loads are gone, for a few arithmetic ops per
 * read that run at vector width (readers in one kernel share them: LLVM
 * merges equal expressions). The costs are rough ops per element; libm
 * calls are never recomputed. */
#define RECOMPUTE_BUDGET   40
#define RECOMPUTE_MAX_USES 8

static int recompute_op_cost(const IrNode *n) {
    unsigned fl = ir_ops[n->op].flags;
    if (n->dtype != TY_F32 && n->op != OP_CAST) return 1000;
    if ((fl & OPF_LIBM) || ((fl & OPF_INTRINSIC) && n->op != OP_SQRT)) return 1000;
    if (n->op == OP_EXP || n->op == OP_TANH || n->op == OP_SIGMOID || n->op == OP_POW) return 12;
    if (n->op == OP_DIV || n->op == OP_SQRT || n->op == OP_RSQRT) return 4;
    if (n->op == OP_QUANTIZE || n->op == OP_DEQUANTIZE || n->op == OP_REQUANTIZE) return 1000;
    return 1;
}

/* ops to compute node id where it is read, up to limit (then limit + 1):
 * its own, and those of the fused and recomputed nodes below it */
static int expr_cost(const Lower *L, int id, int limit) {
    const IrNode *n = node(L, id);
    if (n->op == OP_CONST || n->op == OP_INPUT || !L->fused[id]) return 0;
    int c = is_remap(n->op) ? 0 : recompute_op_cost(n);
    for (int k = 0; k < n->nin && c <= limit; k++) c += expr_cost(L, n->in[k], limit - c);
    return c;
}

static bool reads_by_element(const Lower *L, int c) {
    const IrNode *n = node(L, c);
    unsigned fl = ir_ops[n->op].flags;
    if (L->bsum[c] || L->epi_conv[c] >= 0) return false;
    if (fl & OPF_ELEMWISE) return true;
    return is_remap(n->op) && !L->fused[c];
}

static void decide_recompute(Lower *L) {
    const IrGraph *g = L->g;
    /* the nodes some reader reads otherwise than element by element (what
     * reads_by_element says of a reader does not change in this pass: the
     * nodes it recomputes are elementwise) */
    bool *held = tt_xcalloc((size_t)g->n + 1, sizeof *held);
    for (int c = 0; c < g->n; c++)
        if (L->need[c] && !reads_by_element(L, c))
            for (int k = 0; k < node(L, c)->nin; k++) held[node(L, c)->in[k]] = true;
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = node(L, i);
        if (!L->need[i] || L->fused[i] || L->is_out[i] || !(ir_ops[n->op].flags & OPF_ELEMWISE) ||
            L->uses[i] < 2 || L->uses[i] > RECOMPUTE_MAX_USES || L->epi_conv[i] >= 0 ||
            shape_numel(&n->shape) == 0 || held[i])
            continue;
        L->fused[i] = true; /* as expr_cost sees it */
        if (expr_cost(L, i, RECOMPUTE_BUDGET) > RECOMPUTE_BUDGET) {
            L->fused[i] = false;
            continue;
        }
        L->recomp[i] = true;
    }
    free(held);
}

/* A value whose readers all end in one kernel is computed there, whatever
 * it costs: each reader's copy of its expression is the same, and LLVM
 * merges them, so it is computed once per element as before, without the
 * buffer. GELU's backward kept (1 - tanh^2) * ... in a [tokens, 4d] buffer
 * read three times by the kernel next to it: 4 MB written and read back
 * per layer. SHARED_MAX_COST bounds the expression copied into the loop
 * IR (each reader holds a copy until LLVM merges them). root[c] is the
 * kernel computing node c (-1: several), filled from the last node down:
 * a node's readers come after it. */
#define SHARED_MAX_COST 400

static void decide_shared_in_kernel(Lower *L) {
    const IrGraph *g = L->g;
    int n = g->n;
    int *start = tt_xcalloc((size_t)n + 2, sizeof *start),
        *root = tt_xcalloc((size_t)n + 1, sizeof *root);
    for (int c = 0; c < n; c++)
        if (L->need[c])
            for (int k = 0; k < node(L, c)->nin; k++) start[node(L, c)->in[k] + 1]++;
    for (int i = 0; i < n; i++) start[i + 1] += start[i];
    int *fill = tt_xcalloc((size_t)n + 1, sizeof *fill),
        *rd = tt_xcalloc((size_t)start[n] + 1, sizeof *rd);
    for (int c = 0; c < n; c++)
        if (L->need[c])
            for (int k = 0; k < node(L, c)->nin; k++) {
                int i = node(L, c)->in[k];
                rd[start[i] + fill[i]++] = c;
            }
    for (int i = n - 1; i >= 0; i--) {
        const IrNode *x = node(L, i);
        root[i] = i;
        if (!L->need[i]) continue;
        if (L->fused[i] && !L->recomp[i]) {
            root[i] = root[L->consumer[i]];
            continue;
        }
        bool cand = !L->fused[i] && !L->is_out[i] && (ir_ops[x->op].flags & OPF_ELEMWISE) &&
                    x->dtype == TY_F32 && L->uses[i] >= 2 && L->uses[i] <= RECOMPUTE_MAX_USES &&
                    L->epi_conv[i] < 0 && shape_numel(&x->shape) > 0 && L->twin_of[i] < 0;
        if (!cand && !L->recomp[i]) continue;
        int r = -2;
        for (int k = start[i]; k < start[i + 1] && r != -1; k++) {
            int c = rd[k];
            bool ok = reads_by_element(L, c) && shape_eq(&node(L, c)->shape, &x->shape);
            r = !ok || root[c] < 0 || (r >= 0 && r != root[c]) ? -1 : root[c];
        }
        if (L->recomp[i]) {
            root[i] = r >= 0 ? r : -1;
            continue;
        }
        if (r < 0 || !(ir_ops[node(L, r)->op].flags & OPF_ELEMWISE)) continue;
        L->fused[i] = true; /* as expr_cost sees it */
        if (expr_cost(L, i, SHARED_MAX_COST) > SHARED_MAX_COST) {
            L->fused[i] = false;
            continue;
        }
        L->recomp[i] = true;
        root[i] = r;
    }
    free(start), free(root), free(fill), free(rd);
}

/* Is node e a twin of node a: what a's kernel computes on the way, which a
 * later node computes again? The backward of attention reads the forward's
 * log-sum-exp of each row (grad_attn.c), an attention_lse node on the same
 * q, k, len and attributes: the forward's kernel has it at hand (its
 * running maximum and sum); a TinyGPT step computed every score of every
 * layer twice. The backward of max_pool2d reads each window's first
 * maximum, a max_pool2d_index node on the same input and window: the
 * forward's loop finds it anyway; a CNN step scanned every window twice. */
static bool twins(const Lower *L, int a, int e) {
    const IrNode *x = node(L, e), *y = node(L, a);
    if (!L->need[a] || L->twin_of[a] >= 0 || shape_numel(&y->shape) == 0) return false;
    if (x->op == OP_ATTENTION_LSE)
        return y->op == OP_ATTENTION && y->in[0] == x->in[0] && y->in[1] == x->in[1] &&
               y->nin == x->nin + 1 && (x->nin != 3 || y->in[3] == x->in[2]) &&
               y->attr.causal == x->attr.causal && y->attr.scale == x->attr.scale;
    return x->op == OP_MAX_POOL2D_INDEX && y->op == OP_MAX_POOL2D && y->dtype == TY_F32 &&
           y->in[0] == x->in[0] && shape_eq(&y->shape, &x->shape) &&
           !memcmp(&y->attr.win, &x->attr.win, sizeof x->attr.win);
}

/* Each such pair: a's kernel also writes e's buffer, and e gets no kernel
 * (a comes first, so it is written before any reader of e runs). */
static void decide_twins(Lower *L) {
    const IrGraph *g = L->g;
    for (int e = 0; e < g->n; e++) {
        OpKind op = node(L, e)->op;
        if (!L->need[e] || (op != OP_ATTENTION_LSE && op != OP_MAX_POOL2D_INDEX)) continue;
        for (int a = 0; a < e; a++)
            if (twins(L, a, e)) {
                L->twin_of[a] = e;
                L->written_by_twin[e] = true;
                break;
            }
    }
}

/* A sum over exactly the batch axes of an f32 matmul read by nothing else
 * takes the matmul into its kernel: lower_batch_sum. */
static void decide_batch_sums(Lower *L) {
    for (int i = 0; i < L->g->n; i++) {
        const IrNode *s = node(L, i);
        if (!L->need[i] || s->op != OP_SUM || s->dtype != TY_F32) continue;
        int mm = s->in[0];
        const IrNode *x = node(L, mm);
        int r = x->shape.ndim;
        if (x->op != OP_MATMUL || L->uses[mm] != 1 || L->is_out[mm] || r < 3 ||
            s->attr.axes != (1u << (r - 2)) - 1)
            continue;
        L->bsum[i] = true;
        L->fused[mm] = true;
    }
}

void lw_decide(Lower *L) {
    decide_twins(L); /* first: a pool and its twin index read a value as one */
    decide_fusion(L);
    decide_conv_epilogues(L);
    decide_batch_sums(L);
    decide_recompute(L);
    decide_shared_in_kernel(L);
}
