/* lazy.c - the lazy graph: tensor expressions append nodes to I->lz.g; a
 * realization copies what the live lazy tensors need into an execution graph
 * E and runs E with the current backend.
 *
 *   I->lz.g (append-only until reset)          E (one realization)
 *   %0 input w  <- node_buf[0] (realized)    %0 input  (bound to w's data)
 *   %1 input x  <- node_buf[1]               %1 input  (bound to x's data)
 *   %2 matmul %1, %0                         %2 matmul %1, %0
 *   %3 relu %2       <- lazy tensor h        %3 relu %2    (output -> h)
 *
 * After the run node_buf[3] holds h's data, so a later realization that uses
 * %3 binds it as an input instead of recomputing it.
 */
#include "capture.h"
#include "graph.h"
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AUTO_RESET_NODES 8192 /* nodes kept before a fully realized graph is dropped */
/* Data of the graph's nodes that no tensor holds any more (the inputs and
 * results of realized work that live tensors still reach), kept before a
 * fully realized graph is dropped. */
#define AUTO_RESET_BYTES ((size_t)512 << 20)
/* A realization sweeps the node data nothing reaches once node_buf holds
 * twice what it held after the last sweep, plus this much: the sweep walks
 * every object and node, so it runs once per doubling, not per
 * realization. */
#define SWEEP_MIN_BYTES ((size_t)1 << 20)

static void ensure_node_buf(Interp *I) {
    if (I->lz.node_buf_cap >= I->lz.g.n) return;
    int cap = I->lz.node_buf_cap ? I->lz.node_buf_cap : 256;
    while (cap < I->lz.g.n) cap *= 2;
    I->lz.node_buf = tt_xrealloc(I->lz.node_buf, (size_t)cap * sizeof *I->lz.node_buf);
    memset(I->lz.node_buf + I->lz.node_buf_cap, 0,
           (size_t)(cap - I->lz.node_buf_cap) * sizeof *I->lz.node_buf);
    I->lz.rz_seen = tt_xrealloc(I->lz.rz_seen, (size_t)cap * sizeof *I->lz.rz_seen);
    memset(I->lz.rz_seen + I->lz.node_buf_cap, 0,
           (size_t)(cap - I->lz.node_buf_cap) * sizeof *I->lz.rz_seen);
    I->lz.rz_map = tt_xrealloc(I->lz.rz_map, (size_t)cap * sizeof *I->lz.rz_map);
    I->lz.node_buf_cap = cap;
}

int rt_node(Interp *I, Tensor *t) {
    if (t->node_gen == I->lz.gen && t->node >= 0 && t->node < I->lz.g.n) {
        if (I->cap.rec && t->buf) rt_capture_node(I, t, t->node);
        return t->node;
    }
    TT_ASSERT(t->buf); /* a lazy tensor always has a node in the current graph */
    int id = ir_input(&I->lz.g, t->dtype, t->shape, t->name, I->ev.loc);
    TT_ASSERT(id >= 0);
    ensure_node_buf(I);
    t->buf->refcount++;
    I->lz.node_buf[id] = t->buf;
    I->lz.node_buf_bytes += t->buf->nbytes;
    t->node = id;
    t->node_gen = I->lz.gen;
    if (I->cap.rec) rt_capture_node(I, t, id);
    return id;
}

int rt_check_node(Interp *I, int id) {
    if (id < 0) rt_error(I, "%s", I->lz.g.err);
    return id;
}

/* Drops the graph without realizing (every tensor is realized already). */
static void reset_graph_now(Interp *I) {
    for (int i = 0; i < I->lz.node_buf_cap; i++) {
        if (I->lz.node_buf[i]) rt_buf_release(I->lz.node_buf[i]);
        I->lz.node_buf[i] = NULL;
    }
    I->lz.node_buf_bytes = 0;
    I->lz.node_buf_sweep = SWEEP_MIN_BYTES;
    ir_clear(&I->lz.g);
    I->lz.gen++;
    if (I->cap.rec) rt_capture_reset(I);
}

/* Releases the data of every node that no live tensor reaches: a tensor's
 * node and everything below it may still be read (a later expression on the
 * tensor, backward through it), anything else can never be. Node ids held
 * outside tensors do not survive a realization anyway (the graph may be
 * reset at its end). Returns the bytes left that only node_buf holds. */
static size_t sweep_node_bufs(Interp *I) {
    int n = I->lz.g.n;
    char *live = tt_xcalloc((size_t)(n ? n : 1), 1);
    for (Obj *o = I->ev.objects; o; o = o->gc_next) {
        if (o->kind != V_TENSOR) continue;
        const Tensor *t = (const Tensor *)o;
        if (t->node_gen == I->lz.gen && t->node >= 0 && t->node < n) live[t->node] = 1;
    }
    size_t only_graph = 0;
    for (int id = n - 1; id >= 0; id--) { /* ids are topological: users after inputs */
        Buffer *b = I->lz.node_buf[id];
        if (!live[id]) {
            if (b) {
                I->lz.node_buf_bytes -= b->nbytes;
                rt_buf_release(b);
                I->lz.node_buf[id] = NULL;
            }
            continue;
        }
        if (b && b->refcount == 1) only_graph += b->nbytes;
        const IrNode *nd = ir_node(&I->lz.g, id);
        for (int k = 0; k < nd->nin; k++) live[nd->in[k]] = 1;
    }
    free(live);
    return only_graph;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Drops the scratch of a realization that fails (before rt_error leaves
 * it): the execution graph, its inputs and the outputs' new buffers;
 * nothing was realized, so the lazy tensors stay lazy. */
static void drop_realization(IrGraph *E, void **in, int *leaf, int *ids, Buffer **outbufs,
                             int *outnodes, int nout) {
    for (int j = 0; j < nout; j++) rt_buf_release(outbufs[j]);
    free(outbufs);
    free(outnodes);
    free(in);
    free(leaf);
    free(ids);
    ir_free(E);
}

void rt_realize_all(Interp *I) {
    if (!I->lz.lazy) return;
    ensure_node_buf(I);
    IrGraph *g = &I->lz.g;
    int n = g->n;
    /* a fresh pair of stamps: seen == s (visited), s + 1 (also an output) */
    if (I->lz.rz_stamp >= UINT32_MAX - 2) {
        memset(I->lz.rz_seen, 0, (size_t)I->lz.node_buf_cap * sizeof *I->lz.rz_seen);
        I->lz.rz_stamp = 0;
    }
    uint32_t s = I->lz.rz_stamp += 2;
    uint32_t *seen = I->lz.rz_seen;
    int *map = I->lz.rz_map;
    /* walk down from the lazy tensors: a node with data is a leaf of E,
     * else its inputs are needed (only what is reached, not all of g) */
    int *todo = NULL, ntodo = 0, captodo = 0, *ids = NULL, nids = 0, capids = 0;
    for (Tensor *t = I->lz.lazy; t; t = t->lazy_next) {
        TT_ASSERT(t->node_gen == I->lz.gen && t->node >= 0 && t->node < n);
        if (seen[t->node] == s) continue;
        seen[t->node] = s;
        TT_VEC_PUSH(todo, ntodo, captodo, t->node);
    }
    while (ntodo > 0) {
        int id = todo[--ntodo];
        TT_VEC_PUSH(ids, nids, capids, id);
        if (I->lz.node_buf[id]) continue;
        const IrNode *nd = ir_node(g, id);
        if (nd->op == OP_INPUT) {
            free(todo);
            free(ids);
            rt_error_at(I, nd->loc,
                        "cannot compute a value that depends on the symbolic input '%s'",
                        nd->name ? nd->name : "?");
        }
        for (int k = 0; k < nd->nin; k++)
            if (seen[nd->in[k]] != s) {
                seen[nd->in[k]] = s;
                TT_VEC_PUSH(todo, ntodo, captodo, nd->in[k]);
            }
    }
    free(todo);
    qsort(ids, (size_t)nids, sizeof *ids, cmp_int); /* inputs before their users */
    IrGraph E;
    ir_init(&E);
    void **in = NULL;
    int *leaf = NULL; /* the node of each input, for a recorded call (capture.c) */
    int nin = 0, capin = 0, capleaf = 0;
    for (int i = 0; i < nids; i++) {
        int id = ids[i];
        const IrNode *nd = ir_node(g, id);
        int e;
        if (I->lz.node_buf[id]) {
            e = ir_input(&E, nd->dtype, nd->shape, nd->name, nd->loc);
            if (I->cap.rec) {
                int k = nin;
                TT_VEC_PUSH(leaf, k, capleaf, id);
            }
            TT_VEC_PUSH(in, nin, capin, I->lz.node_buf[id]->data);
        } else {
            int buf[16], *ins = nd->nin <= 16 ? buf : tt_xmalloc((size_t)nd->nin * sizeof *ins);
            for (int k = 0; k < nd->nin; k++) ins[k] = map[nd->in[k]];
            e = ir_copy_node(&E, g, id, ins); /* its shape rule ran when g got it */
            if (ins != buf) free(ins);
        }
        if (e < 0) {
            fprintf(stderr, "internal error: copying node %d: %s\n", id, E.err);
            TT_ASSERT(!"execution graph copy failed");
        }
        map[id] = e;
    }
    /* outputs: one per distinct node still without data */
    int nout = 0;
    Buffer **outbufs = NULL;
    int *outnodes = NULL;
    int capout = 0, capnodes = 0;
    for (Tensor *t = I->lz.lazy; t; t = t->lazy_next) {
        int id = t->node;
        if (I->lz.node_buf[id] || seen[id] == s + 1) continue;
        seen[id] = s + 1;
        const IrNode *nd = ir_node(g, id);
        /* uninitialized: the graph writes every element of its outputs */
        Buffer *b = rt_buf_try_uninit((size_t)shape_numel(&nd->shape) * dtype_size(nd->dtype));
        if (!b) {
            char sh[128];
            drop_realization(&E, in, leaf, ids, outbufs, outnodes, nout);
            rt_error_at(I, nd->loc, "out of memory: the result %s%s of %s does not fit",
                        dtype_name(nd->dtype), shape_str(&nd->shape, sh, sizeof sh),
                        ir_ops[nd->op].name);
        }
        ir_mark_output(&E, map[id]);
        int k = nout;
        TT_VEC_PUSH(outbufs, k, capout, b);
        TT_VEC_PUSH(outnodes, nout, capnodes, id);
    }
    if (nout > 0) {
        /* E is valid by construction (ir_copy_node checks every wire); the
         * naive runtime verifies what it runs, the JIT what it compiles. */
        void **out = tt_xmalloc((size_t)nout * sizeof *out);
        for (int j = 0; j < nout; j++) out[j] = outbufs[j]->data;
        char msg[512];
        SrcLoc at;
        bool ok = rt_exec_graph(I, &E, in, out, msg, sizeof msg, &at);
        free(out);
        if (!ok) { /* nothing was realized: the lazy tensors stay lazy */
            drop_realization(&E, in, leaf, ids, outbufs, outnodes, nout);
            rt_error_at(I, at, "%s", msg);
        }
        for (int j = 0; j < nout; j++) {
            I->lz.node_buf[outnodes[j]] = outbufs[j];
            I->lz.node_buf_bytes += outbufs[j]->nbytes;
        }
    }
    if (I->cap.rec) { /* before the lazy tensors take their data: the inputs' tensors
                         still hold what E read */
        Tensor **takers = NULL;
        int ntakers = 0, captakers = 0;
        for (Tensor *t = I->lz.lazy; t; t = t->lazy_next)
            TT_VEC_PUSH(takers, ntakers, captakers, t);
        if (nout > 0 || ntakers > 0)
            rt_capture_exec(I, &E, leaf, nin, ids, nids, outbufs, nout, takers, ntakers);
        free(takers);
    }
    free(leaf);
    /* every lazy tensor takes the data of its node */
    while (I->lz.lazy) {
        Tensor *t = I->lz.lazy;
        rt_lazy_unlink(I, t);
        Buffer *b = I->lz.node_buf[t->node];
        TT_ASSERT(b);
        b->refcount++;
        t->buf = b;
    }
    free(outbufs);
    free(outnodes);
    free(in);
    free(ids);
    ir_free(&E);
    /* not while a call is recorded: its record names nodes by id (capture.c) */
    size_t only_graph = 0;
    if (!I->cap.rec && I->lz.node_buf_bytes > I->lz.node_buf_sweep) {
        only_graph = sweep_node_bufs(I);
        I->lz.node_buf_sweep = 2 * I->lz.node_buf_bytes + SWEEP_MIN_BYTES;
    }
    if (I->lz.g.n > AUTO_RESET_NODES || only_graph > AUTO_RESET_BYTES) reset_graph_now(I);
}

void *rt_data_const(Interp *I, Tensor *t) {
    if (!t->buf) rt_realize_all(I);
    if (!t->buf) return rt_data(I, t);
    if (I->cap.rec) rt_capture_value_read(I, t);
    return t->buf->data;
}

void *rt_data(Interp *I, Tensor *t) {
    rt_capture_forbid(I,
                      "reads a tensor's value on the host (item, print, a branch, a host builtin)");
    if (!t->buf) rt_realize_all(I);
    if (!t->buf) /* a symbolic input (ttc tracing) has no data */
        rt_error(I, "cannot compute the value of the symbolic input '%s' while tracing",
                 t->name ? t->name : "?");
    return t->buf->data;
}

void rt_extract_graph(Interp *I, const int *outs, int nout, IrGraph *E) {
    IrGraph *g = &I->lz.g;
    int n = g->n;
    char *needed = tt_xcalloc((size_t)(n ? n : 1), 1);
    int *map = tt_xmalloc((size_t)(n ? n : 1) * sizeof *map);
    for (int j = 0; j < nout; j++) needed[outs[j]] = 1;
    for (int id = n - 1; id >= 0; id--) {
        if (!needed[id]) continue;
        const IrNode *nd = ir_node(g, id);
        for (int k = 0; k < nd->nin; k++) needed[nd->in[k]] = 1;
    }
    ir_init(E);
    for (int id = 0; id < n; id++) {
        map[id] = -1;
        if (!needed[id]) continue;
        const IrNode *nd = ir_node(g, id);
        int e;
        if (nd->op == OP_INPUT) {
            e = ir_input(E, nd->dtype, nd->shape, nd->name, nd->loc);
        } else {
            int buf[16], *ins = nd->nin <= 16 ? buf : tt_xmalloc((size_t)nd->nin * sizeof *ins);
            for (int k = 0; k < nd->nin; k++) ins[k] = map[nd->in[k]];
            e = ir_add(E, nd->op, ins, nd->nin, &nd->attr, nd->loc);
            if (ins != buf) free(ins);
            if (e >= 0 && nd->name) E->nodes[e].name = arena_strdup(&E->arena, nd->name);
        }
        TT_ASSERT(e >= 0);
        map[id] = e;
    }
    for (int j = 0; j < nout; j++) ir_mark_output(E, map[outs[j]]);
    free(needed);
    free(map);
}

void rt_tensor_assign(Interp *I, Tensor *t, int id) {
    TT_ASSERT(id >= 0 && id < I->lz.g.n);
    const IrNode *n = ir_node(&I->lz.g, id);
    TT_ASSERT(n->dtype == t->dtype && shape_eq(&n->shape, &t->shape));
    rt_buf_release(t->buf);
    t->buf = NULL;
    t->node = id;
    t->node_gen = I->lz.gen;
    rt_lazy_link(I, t);
}

void rt_tensor_set(Interp *I, Tensor *t, Value v, const char *what) {
    int x;
    char a[96], b[96];
    if (v.kind == V_TENSOR) {
        Tensor *s = (Tensor *)v.o;
        if (s == t) return;
        if (s->dtype != t->dtype || !shape_eq(&s->shape, &t->shape))
            rt_error(I, "%s: %s%s%s%s is %s%s, the new value %s%s (shape and dtype must match)",
                     what, t->requires_grad ? "parameter" : "tensor", t->name ? " '" : "",
                     t->name ? t->name : "", t->name ? "'" : "", dtype_name(t->dtype),
                     shape_str(&t->shape, a, sizeof a), dtype_name(s->dtype),
                     shape_str(&s->shape, b, sizeof b));
        /* a node of t's own (an identity reshape, which the builders would
         * elide): sharing s's node would make t and s one tensor for
         * backward, so a gradient for s would also land in t's .grad */
        IrAttr at = {0};
        at.shape = t->shape;
        int src = rt_node(I, s);
        x = rt_check_node(I, ir_add(&I->lz.g, OP_RESHAPE, &src, 1, &at, I->ev.loc));
    } else if (v.kind == V_INT || v.kind == V_FLOAT || v.kind == V_BOOL) {
        double f = v.kind == V_FLOAT ? v.f : v.kind == V_INT ? (double)v.i : (double)v.b;
        x = rt_check_node(I, ir_const(&I->lz.g, t->dtype, t->shape, f, I->ev.loc));
    } else {
        rt_error(I, "%s: the new value must be a tensor or a number, got %s", what,
                 rt_type_name(v));
    }
    rt_tensor_assign(I, t, x);
}

void rt_reset_graph(Interp *I) {
    rt_realize_all(I);
    reset_graph_now(I);
}

void rt_lazy_free(Interp *I) {
    for (int i = 0; i < I->lz.node_buf_cap; i++)
        if (I->lz.node_buf[i]) rt_buf_release(I->lz.node_buf[i]);
    free(I->lz.node_buf);
    free(I->lz.rz_seen);
    free(I->lz.rz_map);
    I->lz.node_buf = NULL;
    I->lz.node_buf_cap = 0;
    I->lz.node_buf_bytes = 0;
    ir_free(&I->lz.g);
    I->lz.lazy = NULL;
}

/* -- backward -- */

/* The reason backward found no parameter; a captured call's result has
 * no graph behind it, which the message says once calls were replayed. */
static _Noreturn void no_param(Interp *I) {
    if (rt_capture_stats(I).hits > 0)
        rt_error(I, "backward: loss does not depend on any parameter (or only through the "
                    "result of a captured call, which keeps no graph: spec/jit.md, \"Captured "
                    "calls\"; TT_CAPTURE=0 turns capture off)");
    rt_error(I, "backward: loss does not depend on any parameter");
}

void rt_backward(Interp *I, Tensor *loss) {
    rt_capture_backward(I);
    if (loss->node_gen != I->lz.gen || loss->node < 0 || loss->node >= I->lz.g.n) no_param(I);
    int *wrt = NULL, *grads = NULL;
    Tensor **ps = NULL;
    int n = 0, cap = 0, capw = 0;
    for (int i = 0; i < I->lz.nparams; i++) {
        Tensor *p = I->lz.params[i];
        if (p->node_gen != I->lz.gen || p->node < 0 || p->node >= I->lz.g.n) continue;
        int k = n;
        TT_VEC_PUSH(wrt, k, capw, p->node);
        TT_VEC_PUSH(ps, n, cap, p);
    }
    if (n == 0) no_param(I);
    grads = tt_xmalloc((size_t)n * sizeof *grads);
    if (!ad_backward(&I->lz.g, loss->node, wrt, n, grads)) {
        char msg[sizeof I->lz.g.err];
        memcpy(msg, I->lz.g.err, sizeof msg);
        free(wrt);
        free(grads);
        free(ps);
        rt_error(I, "backward: %s", msg);
    }
    int filled = 0;
    for (int i = 0; i < n; i++) {
        if (grads[i] < 0) continue;
        filled++;
        Tensor *p = ps[i];
        if (p->grad) {
            int old = rt_node(I, p->grad);
            int sum = ir_binary(&I->lz.g, OP_ADD, old, grads[i], I->ev.loc);
            TT_ASSERT(sum >= 0);
            rt_tensor_assign(I, p->grad, sum);
        } else {
            p->grad = rt_tensor_lazy(I, grads[i]);
        }
    }
    free(wrt);
    free(grads);
    free(ps);
    if (!filled) no_param(I);
}

/* -- profile -- */

void rt_print_profile(Interp *I, FILE *out, const RtProfile *p) {
    double total = 0;
    for (int op = 0; op < OP__COUNT; op++) total += p->seconds[op];
    fprintf(out, "%-12s %8s %10s %7s %9s %10s\n", "op", "calls", "total ms", "%", "GFLOP/s",
            "MB moved");
    int order[OP__COUNT];
    int n = 0;
    for (int op = 0; op < OP__COUNT; op++)
        if (p->calls[op]) order[n++] = op;
    for (int i = 1; i < n; i++) /* by time, descending (insertion sort) */
        for (int j = i; j > 0 && p->seconds[order[j]] > p->seconds[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (int i = 0; i < n; i++) {
        int op = order[i];
        double s = p->seconds[op];
        fprintf(out, "%-12s %8lld %10.3f %6.1f%% %9.2f %10.2f\n", ir_ops[op].name,
                (long long)p->calls[op], s * 1e3, total > 0 ? 100 * s / total : 0,
                s > 0 ? (double)p->flops[op] / s * 1e-9 : 0, (double)p->bytes[op] / 1e6);
    }
    fprintf(out, "%-12s %8s %10.3f %6.1f%%\n", "total", "", total * 1e3, total > 0 ? 100.0 : 0);
}
