/* naive.c - the naive runtime: walks a graph in node order and runs one
 * reference kernel per node.
 *
 * Only nodes reachable from the outputs run. INPUT nodes alias the caller's
 * data (never written); every other node gets its own zeroed buffer, freed
 * as soon as the last node reading it has run (outputs are kept to the end
 * and copied into the caller's buffers). The exception is an output that
 * aliases an input (ir_alias_output): its node's kernel writes straight into
 * that buffer, which the caller passed for both, and writes only the
 * elements it changes (a KV cache's new row, not the whole cache). A kernel
 * that fails on its data, or a buffer that does not fit, stops the run:
 * what was allocated is freed and the failure returned with its node. So
 * does a graph that does not verify (an internal error, but reported, not
 * aborted on: the backends' one contract, backend.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static size_t node_bytes(const IrNode *x) {
    return (size_t)shape_numel(&x->shape) * dtype_size(x->dtype);
}

/* A zeroed buffer for a node's result, or NULL with err filled. Beyond 2^46
 * bytes NULL without asking calloc (kern_try_alloc says why). */
static void *node_buffer(const IrNode *x, size_t bytes, KernelErr *err) {
    void *p = bytes > ((size_t)1 << 46) ? NULL : calloc(1, bytes ? bytes : 1);
    if (!p) {
        char sh[128];
        err->failed = true;
        snprintf(err->msg, sizeof err->msg, "out of memory: the result %s%s of %s does not fit",
                 dtype_name(x->dtype), shape_str(&x->shape, sh, sizeof sh), ir_ops[x->op].name);
    }
    return p;
}

/* The run's bookkeeping arrays, freed together. */
typedef struct Scratch {
    bool *need;
    int *last;    /* last reader; n = kept to the end */
    void **buf;   /* each node's data */
    int *inplace; /* the aliased output, or -1 */
    KTensor *kin;
} Scratch;

static void scratch_free(Scratch *s) {
    free(s->need);
    free(s->last);
    free(s->buf);
    free(s->inplace);
    free(s->kin);
}

static bool fail(KernelErr *err, const char *what) {
    err->failed = true;
    snprintf(err->msg, sizeof err->msg, "%s", what);
    return false;
}

bool rt_naive_run(const IrGraph *g, void *const *inputs, void *const *outputs, RtProfile *prof,
                  KernelErr *err) {
    return rt_naive_run_traced(g, inputs, outputs, prof, NULL, err);
}

bool rt_naive_run_traced(const IrGraph *g, void *const *inputs, void *const *outputs,
                         RtProfile *prof, TtTraceFn trace, KernelErr *err) {
    KernelErr local;
    if (!err) err = &local;
    *err = (KernelErr){.node = -1};
    char verr[160];
    if (!ir_verify(g, verr, sizeof verr)) {
        err->failed = true;
        snprintf(err->msg, sizeof err->msg, "internal error: execution graph: %s", verr);
        return false;
    }
    int n = g->n;
    int maxin = 1;
    for (int i = 0; i < n; i++)
        if (ir_node(g, i)->nin > maxin) maxin = ir_node(g, i)->nin;
    Scratch s = {calloc((size_t)n + 1, sizeof *s.need), malloc(((size_t)n + 1) * sizeof *s.last),
                 calloc((size_t)n + 1, sizeof *s.buf), malloc(((size_t)n + 1) * sizeof *s.inplace),
                 malloc((size_t)maxin * sizeof *s.kin)};
    if (!s.need || !s.last || !s.buf || !s.inplace || !s.kin) {
        scratch_free(&s);
        return fail(err, "out of memory: the naive runtime's bookkeeping does not fit");
    }
    bool *need = s.need;
    int *last = s.last;
    void **buf = s.buf;
    int *inplace = s.inplace;
    KTensor *kin = s.kin;

    /* needed nodes: reachable from the outputs (inputs have smaller ids) */
    for (int j = 0; j < g->nout; j++) {
        TT_ASSERT(g->outputs[j] >= 0 && g->outputs[j] < n);
        need[g->outputs[j]] = true;
    }
    for (int i = n - 1; i >= 0; i--) {
        last[i] = -1;
        if (!need[i]) continue;
        const IrNode *x = ir_node(g, i);
        for (int k = 0; k < x->nin; k++) {
            TT_ASSERT(x->in[k] >= 0 && x->in[k] < i);
            need[x->in[k]] = true;
        }
    }
    for (int i = 0; i < n; i++) {
        if (!need[i]) continue;
        const IrNode *x = ir_node(g, i);
        for (int k = 0; k < x->nin; k++) last[x->in[k]] = i;
    }
    for (int j = 0; j < g->nout; j++) last[g->outputs[j]] = n;
    for (int i = 0; i < n; i++) inplace[i] = -1;
    for (int j = 0; j < g->nout; j++) {
        int s = ir_output_alias(g, j);
        if (s < 0) continue;
        if (outputs[j] != inputs[s]) { /* the contract (ir.h): one buffer for both */
            err->failed = true;
            snprintf(err->msg, sizeof err->msg,
                     "output %d updates input slot %d in place but was given another buffer", j, s);
            break;
        }
        inplace[g->outputs[j]] = j;
    }

    for (int i = 0; i < n && !err->failed; i++) {
        if (!need[i]) continue;
        const IrNode *x = ir_node(g, i);
        if (x->op == OP_INPUT) {
            TT_ASSERT(x->attr.index >= 0 && x->attr.index < g->ninputs);
            buf[i] = inputs[x->attr.index];
            continue;
        }
        size_t bytes = node_bytes(x);
        if (inplace[i] >= 0) {
            buf[i] = outputs[inplace[i]];
        } else if (!(buf[i] = node_buffer(x, bytes, err))) {
            err->node = i;
            break;
        }
        size_t inbytes = 0;
        for (int k = 0; k < x->nin; k++) {
            const IrNode *a = ir_node(g, x->in[k]);
            kin[k] = (KTensor){a->dtype, a->shape, buf[x->in[k]]};
            inbytes += node_bytes(a);
        }
        KTensor out = {x->dtype, x->shape, buf[i]};
        bool timed = prof || trace;
        double t0 = timed ? now_seconds() : 0;
        rt_ref_kernels[x->op](x, kin, &out, err);
        if (err->failed) {
            err->node = i;
            break;
        }
        if (trace) trace(ir_ops[x->op].name, "op", t0 * 1e9, now_seconds() * 1e9, 1);
        if (prof) {
            prof->seconds[x->op] += now_seconds() - t0;
            prof->calls[x->op]++;
            prof->flops[x->op] += ir_ops[x->op].flops(g, x);
            /* in place: the operand 0 it updates is neither read nor
             * written but where the other operands go (as many bytes) */
            if (inplace[i] >= 0) inbytes = bytes = inbytes - node_bytes(ir_node(g, x->in[0]));
            prof->bytes[x->op] += (int64_t)(inbytes + bytes);
        }
        /* free the inputs this node was the last reader of (each once) */
        for (int k = 0; k < x->nin; k++) {
            int a = x->in[k];
            if (last[a] == i && buf[a] && ir_node(g, a)->op != OP_INPUT) {
                free(buf[a]);
                buf[a] = NULL;
            }
        }
    }

    for (int j = 0; j < g->nout && !err->failed; j++) {
        int id = g->outputs[j];
        size_t bytes = node_bytes(ir_node(g, id));
        if (bytes && buf[id] != outputs[j]) memcpy(outputs[j], buf[id], bytes);
    }
    for (int i = 0; i < n; i++)
        if (buf[i] && ir_node(g, i)->op != OP_INPUT && inplace[i] < 0) free(buf[i]);
    scratch_free(&s);
    return !err->failed;
}
