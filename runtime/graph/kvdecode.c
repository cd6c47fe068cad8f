/* kvdecode.c - the runtime side of KV caching (kvdecode.h).
 *
 * The forward is traced twice on symbolic token ids (as ttc traces a model:
 * the ids have no data, the weights are inputs bound to their buffers), at
 * T = 2 and T = 3, so the pass can tell the sequence axis of every node by
 * what changed. The decode graph it derives is run like any execution
 * graph (rt_exec_graph): the JIT compiles it once and finds it in its cache
 * for every later position, since the position is data, not structure.
 *
 * Each cache is one buffer of ctx rows, allocated here once and bound to
 * both its input slot and its output: the graph's outputs alias their
 * inputs (ir_alias_output), so a step writes row p of each cache in place
 * (write_rows) and copies nothing. Rows past p are never read: attention
 * sees len = p + 1 keys.
 */
#include "kvdecode.h"

#include "graph.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The traced forward: E with its input data by slot (weights, arange(T);
 * the ids' slot has none). */
typedef struct Trace {
    IrGraph E;
    void **data;
    Buffer **bufs; /* the Buffer behind data[k], or NULL */
    int tok_slot;
    int64_t vocab;
} Trace;

static void trace_free(Trace *t) {
    for (int k = 0; t->bufs && k < t->E.ninputs; k++)
        if (t->bufs[k]) rt_buf_release(t->bufs[k]);
    ir_free(&t->E);
    free(t->data);
    free(t->bufs);
}

/* Traces model(idx) on symbolic idx i32[B, T] into t. False (why set) when
 * the forward does not give a tensor. */
static bool trace(Interp *I, Value model, int64_t B, int64_t T, Trace *t, char *why,
                  size_t whylen) {
    memset(t, 0, sizeof *t);
    ir_init(&t->E);
    int id = ir_input(&I->lz.g, TY_I32, shape_make(2, (int64_t[]){B, T}), "idx", I->ev.loc);
    rt_check_node(I, id);
    Tensor *x = rt_tensor_lazy(I, id);
    rt_lazy_unlink(I, x); /* symbolic: never realized */
    x->name = rt_intern(I, "idx");
    Value arg = vtensor(x);
    bool consts = I->ev.scalar_consts;
    I->ev.scalar_consts = true; /* numbers become constants of the graph, not inputs */
    Value out = rt_call(I, model, &arg, 1, NULL, NULL, 0);
    I->ev.scalar_consts = consts;
    rt_release(I, arg);
    if (out.kind != V_TENSOR) {
        snprintf(why, whylen, "the forward returned %s, not a tensor", rt_type_name(out));
        rt_release(I, out);
        return false;
    }
    Tensor *y = (Tensor *)out.o;
    int on = rt_node(I, y);
    rt_lazy_unlink(I, y); /* it depends on the symbolic ids */
    rt_extract_graph(I, &on, 1, &t->E);
    /* the slots of E are the needed INPUT nodes of I->lz.g in id order
     * (rt_extract_graph copies in id order) */
    const IrGraph *g = &I->lz.g;
    char *needed = tt_xcalloc((size_t)g->n, 1);
    needed[on] = 1;
    for (int k = g->n - 1; k >= 0; k--)
        if (needed[k])
            for (int j = 0; j < ir_node(g, k)->nin; j++) needed[ir_node(g, k)->in[j]] = 1;
    int n = t->E.ninputs;
    t->data = tt_xcalloc((size_t)(n ? n : 1), sizeof *t->data);
    t->bufs = tt_xcalloc((size_t)(n ? n : 1), sizeof *t->bufs);
    t->tok_slot = -1;
    for (int k = 0, s = 0; k < g->n; k++) {
        if (!needed[k] || ir_node(g, k)->op != OP_INPUT) continue;
        if (k == id) t->tok_slot = s;
        Buffer *b = k < I->lz.node_buf_cap ? I->lz.node_buf[k] : NULL;
        t->bufs[s] = b; /* retained: the graph's reset would drop arange(T)'s data */
        if (b) b->refcount++;
        t->data[s] = b ? b->data : NULL;
        s++;
    }
    free(needed);
    const Shape *ys = &y->shape;
    t->vocab = ys->ndim == 3 ? ys->d[2] : -1;
    rt_release(I, out);
    if (t->tok_slot < 0) {
        snprintf(why, whylen, "the forward's result does not depend on its token ids");
        return false;
    }
    return true;
}

bool kv_decoder_init(Interp *I, Value model, int64_t B, int64_t ctx, KvDecoder *kd, char *why,
                     size_t whylen) {
    memset(kd, 0, sizeof *kd);
    ir_init(&kd->plan.D);
    why[0] = 0;
    if (ctx < 3) {
        snprintf(why, whylen, "ctx %lld is too short to trace at 2 and 3 tokens", (long long)ctx);
        return false;
    }
    rt_reset_graph(I); /* the weights realized; the traces alone in the graph */
    /* on the heap, freed when the forward fails (its error longjmps) */
    Trace *tr = tt_xcalloc(2, sizeof *tr);
    Trace *const t1p = &tr[0], *const t2p = &tr[1];
    ir_init(&t1p->E);
    ir_init(&t2p->E);
    bool consts = I->ev.scalar_consts;
    jmp_buf jb, *saved = I->ev.on_error;
    I->ev.on_error = &jb;
    if (setjmp(jb)) {
        I->ev.on_error = saved;
        I->ev.scalar_consts = consts;
        trace_free(t1p);
        trace_free(t2p);
        free(tr);
        longjmp(*saved, 1);
    }
    /* each trace in a fresh graph: both number their inputs the same way */
    bool ok = trace(I, model, B, 2, t1p, why, whylen);
    rt_reset_graph(I);
    ok = ok && trace(I, model, B, 3, t2p, why, whylen);
    I->ev.on_error = saved;
    Trace t1 = *t1p, t2 = *t2p;
    free(tr);
    if (ok && t1.tok_slot != t2.tok_slot) {
        snprintf(why, whylen, "the forward's inputs change with the sequence length");
        ok = false;
    }
    if (ok && !kv_derive(&t1.E, &t2.E, 2, 3, t1.tok_slot, t1.data, t2.data, ctx, &kd->plan)) {
        snprintf(why, whylen, "%s", kd->plan.why);
        ok = false;
    }
    if (ok) {
        IrGraph *D = &kd->plan.D;
        const IrNode *lo = ir_node(D, D->outputs[0]);
        kd->B = B;
        kd->ctx = ctx;
        kd->vocab = shape_numel(&lo->shape) / (B ? B : 1);
        kd->in = tt_xcalloc((size_t)D->ninputs, sizeof *kd->in);
        kd->out = tt_xcalloc((size_t)D->nout, sizeof *kd->out);
        kd->hold = tt_xcalloc((size_t)D->ninputs, sizeof *kd->hold);
        kd->tok = tt_xcalloc((size_t)(B ? B : 1), sizeof *kd->tok);
        kd->logits = tt_xmalloc((size_t)(shape_numel(&lo->shape) ? shape_numel(&lo->shape) : 1) *
                                sizeof *kd->logits);
        for (int l = 0; l < kd->plan.nlayers; l++) {
            /* zeroed: rows past p are never read, but stay defined */
            kd->cache[2 * l] = tt_xcalloc((size_t)shape_numel(&kd->plan.kshape[l]), sizeof(float));
            kd->cache[2 * l + 1] =
                tt_xcalloc((size_t)shape_numel(&kd->plan.vshape[l]), sizeof(float));
        }
        for (int s = 0; s < D->ninputs; s++) {
            const KvSlot *sl = &kd->plan.slots[s];
            switch (sl->kind) {
            case KV_TOKEN:
                kd->in[s] = kd->tok;
                break;
            case KV_POS:
                kd->in[s] = &kd->pos;
                break;
            case KV_KCACHE:
                kd->in[s] = kd->out[1 + 2 * sl->layer] = kd->cache[2 * sl->layer];
                break;
            case KV_VCACHE:
                kd->in[s] = kd->out[2 + 2 * sl->layer] = kd->cache[2 * sl->layer + 1];
                break;
            case KV_DATA:
                kd->in[s] = t1.data[sl->src];
                if ((kd->hold[kd->nhold] = t1.bufs[sl->src])) kd->hold[kd->nhold++]->refcount++;
                break;
            }
        }
        for (int s = 0; s < D->ninputs; s++)
            if (kd->plan.slots[s].kind == KV_DATA && !kd->in[s]) {
                snprintf(why, whylen, "input %d of the traced forward has no data", s);
                ok = false;
            }
        if (ok && I->cfg.dump_kvcache) {
            printf("-- kvcache decode graph (%d nodes, %d attention caches of %lld rows) --\n",
                   D->n, kd->plan.nlayers, (long long)ctx);
            ir_print(stdout, D);
            fflush(stdout);
        }
    }
    trace_free(&t1);
    trace_free(&t2);
    rt_reset_graph(I); /* drops the traces (the held weights stay) */
    if (!ok) {
        kv_decoder_free(kd);
        if (I->cfg.dump_kvcache) {
            printf("-- kvcache: no decode graph: %s --\n", why);
            fflush(stdout);
        }
    }
    return ok;
}

void kv_decoder_step(Interp *I, KvDecoder *kd, const int32_t *tok, int64_t p) {
    IrGraph *D = &kd->plan.D;
    memcpy(kd->tok, tok, (size_t)kd->B * sizeof *tok);
    /* saturated, never wrapped into range: the graph's write_rows refuses
     * a position outside the caches */
    kd->pos = p < INT32_MIN ? INT32_MIN : p > INT32_MAX ? INT32_MAX : (int32_t)p;
    kd->out[0] = kd->logits; /* the caches' outputs are their inputs (init) */
    char msg[512];
    SrcLoc at;
    if (!rt_exec_graph(I, D, kd->in, kd->out, msg, sizeof msg, &at)) rt_error_at(I, at, "%s", msg);
}

void kv_decoder_free(KvDecoder *kd) {
    for (int k = 0; k < kd->nhold; k++) rt_buf_release(kd->hold[k]);
    for (int l = 0; l < 2 * KV_MAX_LAYERS; l++) free(kd->cache[l]);
    free(kd->in);
    free(kd->out);
    free(kd->hold);
    free(kd->tok);
    free(kd->logits);
    kv_plan_free(&kd->plan);
    memset(kd, 0, sizeof *kd);
    ir_init(&kd->plan.D);
}
