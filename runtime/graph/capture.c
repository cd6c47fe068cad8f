/* capture.c - captured calls (capture.h; spec/jit.md, "Captured calls").
 *
 * A call of a user fn or a model's forward is keyed by what is called
 * (its definition and model or closure) and where (the call site). The
 * first call at a key runs normally; the second runs with a recorder on,
 * which notes
 *   - the guards: the arguments' kinds, dtypes and shapes (numbers,
 *     strings and objects by value and identity), every name the body read
 *     from a scope it did not make (its slot and value), every model field
 *     it read, the training mode and the thread count;
 *   - the steps: each execution graph the body realized (kept, with the
 *     JIT's compiled entry), where each of its inputs comes from (an
 *     argument, a tensor that existed before the call, an output of an
 *     earlier step, a buffer the body made from numbers), which tensors
 *     made before the call took its outputs (parameters, optimizer state),
 *     the optimizer effects (opt.step: its step count and the 0-d inputs it
 *     computes) and the resets of the lazy graph;
 *   - the return value: none, numbers, strings, tensors and tuples/lists of
 *     them, each tensor an output of a step, a tensor from before, or a
 *     buffer the body made.
 * A lazy result left at the end is realized there, unless the call read a
 * parameter and a backward may need the result's graph later: in training
 * mode, or in eval mode when a fn (not the script itself) made the call. Anything else the
 * body does that a replay would not redo (a host read of a tensor: item,
 * print, a branch on a value; a draw from the global generator; an
 * assignment outside its own scopes; I/O; a native method that is not
 * capture-aware; a tensor it made that outlives the call) makes the record
 * fail. A later call whose guards hold runs the steps on the recorded
 * graphs directly: no body, no lazy graph, no hash of a graph.
 *
 * Only the JIT backend captures; the naive one is the reference.
 */
#include "capture.h"
#include "eval.h"

#include <stdlib.h>
#include <string.h>

uint64_t rt_serial = 1;

enum { MAX_RECS = 4, MAX_FAILS = 3, MAX_EFFECT_VALS = 8, MAX_KEYS = 1024, MAX_MISSES = 8 };

/* -- records -- */

typedef enum { G_ENV, G_FIELD, G_ENVSIZE, G_FIELDSIZE, G_NOGRAD, G_DATA } GuardKind;
typedef struct Guard {
    GuardKind kind;
    Env *env; /* G_ENV, G_ENVSIZE (retained) */
    Model *m; /* G_FIELD, G_FIELDSIZE (retained) */
    int slot; /* the slot, or the size */
    Value v;  /* G_ENV, G_FIELD: the value read (retained); G_NOGRAD, G_DATA: the tensor */
    unsigned char data[16]; /* G_DATA: the bytes read (slot of them) */
} Guard;

typedef struct ArgSpec {
    Value v; /* retained for objects that are not tensors; tensors: kind only */
    DType dt;
    Shape shape;
    const char *kw; /* keyword name, or NULL */
} ArgSpec;

typedef enum { IN_ARG, IN_TENSOR, IN_BUF, IN_SLOT, IN_EFFECT } InKind;
typedef struct CapIn {
    InKind kind;
    int idx;   /* IN_ARG: argument; IN_SLOT: slot; IN_EFFECT: effect value */
    Tensor *t; /* IN_TENSOR (retained) */
    Buffer *b; /* IN_BUF (retained) */
} CapIn;

typedef struct CapStore {
    int slot;
    Tensor *t; /* made before the call; takes the slot's buffer (retained) */
} CapStore;

typedef struct CapExec {
    IrGraph E;
    int entry; /* the JIT's compiled entry (-1: not yet known) */
    CapIn *in;
    int nin;
    int slot0; /* output j fills slot slot0 + j */
    CapStore *stores;
    int nstores;
} CapExec;

typedef struct CapEffect {
    RtCaptureEffect fn;
    Obj *self; /* retained */
    int nvals;
    int val0; /* its values are effect values val0 .. val0 + nvals */
} CapEffect;

typedef enum { STEP_EXEC, STEP_EFFECT, STEP_RESET } StepKind;
typedef struct CapStep {
    StepKind kind;
    int idx;
} CapStep;

/* The return value, flattened in preorder: a tuple/list item counts its
 * children (n), a tensor says where its data comes from. */
typedef struct RetItem {
    ValKind kind;
    Value v; /* numbers, strings (retained) */
    int n;   /* tuple/list length */
    InKind src;
    int slot;  /* IN_SLOT */
    Tensor *t; /* IN_TENSOR (retained) */
    Buffer *b; /* IN_BUF (retained) */
    DType dt;
    Shape shape;
} RetItem;

typedef struct CapRecord {
    int nargs, nkw;
    ArgSpec *args; /* nargs + nkw */
    bool training;
    int threads;
    Guard *guards;
    int nguards, capguards;
    CapStep *steps;
    int nsteps, capsteps;
    CapExec *execs;
    int nexecs, capexecs;
    CapEffect *effects;
    int neffects, capeffects;
    Buffer **evals; /* one 0-d f32 buffer per effect value (owned) */
    int nevals, capevals;
    int nslots;
    RetItem *ret;
    int nret, capret;
    /* a script's own eval-mode call whose results, made from parameters,
     * a replay returns without their graph: replayed only while no
     * backward() has run, or under bench() */
    bool inference;
    /* recorded under bench() in training mode, from a fn, or after a
     * backward(): its results had no graph only because they were
     * discarded, so it replays only under bench() */
    bool bench_only;
} CapRecord;

typedef struct CapKey {
    const AstNode *def;
    const void *self; /* the model, or the fn's closure */
    SrcLoc site;
    int64_t calls;
    CapRecord *recs[MAX_RECS];
    int nrecs, victim;
    int fails;
    int misses; /* in a row: a new argument each call (a record per value) */
    bool dead;
    char why[96];
} CapKey;

/* -- the recorder of one call -- */

typedef struct RegEntry {
    int node;
    Tensor *t;   /* retained */
    Buffer *buf; /* t's data when bound (t may take a new value later in the call) */
} RegEntry;

typedef struct EffectNode {
    int node, val;
} EffectNode;

struct CapRecorder {
    CapRecord *R;
    uint64_t serial0;
    int from;     /* I->lz.g's nodes below it predate the call (this generation) */
    uint64_t gen; /* the generation `from` is about */
    const char *bad;
    const Value *args;
    int nargs;
    const Value *kwargs;
    int nkw;
    RegEntry *reg; /* rt_node's bindings during the call (this generation) */
    int nreg, capreg;
    Tensor **made; /* tensors the call made that took outputs or were bound (retained) */
    int nmade, capmade;
    Buffer **slotbuf; /* per slot (retained) */
    int nslotbuf, capslotbuf;
    EffectNode *enodes;
    int nenodes, capenodes;
    Rng rng0;
    bool training0;
    int depth0;         /* I->ev.depth of the caller: 0 for the script's own calls */
    bool saw_param;     /* the call bound a parameter (a gradient could flow) */
    int native_pending; /* native method calls running, not yet acknowledged */
    bool discarded;     /* the caller drops the result (bench()) */
};

typedef struct RtCapture {
    CapKey *keys;
    int nkeys, capkeys;
    int last; /* the key found last */
    RtCaptureStats st;
    /* backward() has run: a gradient may be asked of what the script
     * computes, so its own eval-mode calls are not taken as inference */
    bool backward_seen;
} RtCapture;

static bool same_value(Value a, Value b) {
    if (a.kind != b.kind) return false;
    switch (a.kind) {
    case V_NONE:
        return true;
    case V_BOOL:
        return a.b == b.b;
    case V_INT:
        return a.i == b.i;
    case V_FLOAT:
        return memcmp(&a.f, &b.f, sizeof a.f) == 0;
    case V_STR: {
        const Str *x = (const Str *)a.o, *y = (const Str *)b.o;
        return x == y || (x->len == y->len && memcmp(x->s, y->s, x->len) == 0);
    }
    default:
        return a.o == b.o;
    }
}

static void record_free(Interp *I, CapRecord *R) {
    if (!R) return;
    for (int i = 0; i < R->nargs + R->nkw; i++)
        if (R->args[i].v.kind != V_TENSOR) rt_release(I, R->args[i].v);
    free(R->args);
    for (int i = 0; i < R->nguards; i++) {
        Guard *g = &R->guards[i];
        if (g->env) env_release(I, g->env);
        if (g->m) rt_release(I, vobj(&g->m->obj));
        rt_release(I, g->v);
    }
    free(R->guards);
    for (int i = 0; i < R->nexecs; i++) {
        CapExec *x = &R->execs[i];
        ir_free(&x->E);
        for (int k = 0; k < x->nin; k++) {
            if (x->in[k].t) rt_release(I, vtensor(x->in[k].t));
            rt_buf_release(x->in[k].b);
        }
        free(x->in);
        for (int k = 0; k < x->nstores; k++) rt_release(I, vtensor(x->stores[k].t));
        free(x->stores);
    }
    free(R->execs);
    for (int i = 0; i < R->neffects; i++) rt_release(I, vobj(R->effects[i].self));
    free(R->effects);
    for (int i = 0; i < R->nevals; i++) rt_buf_release(R->evals[i]);
    free(R->evals);
    free(R->steps);
    for (int i = 0; i < R->nret; i++) {
        rt_release(I, R->ret[i].v);
        if (R->ret[i].t) rt_release(I, vtensor(R->ret[i].t));
        rt_buf_release(R->ret[i].b);
    }
    free(R->ret);
    free(R);
}

static void forbid(struct CapRecorder *r, const char *why) {
    if (!r->bad) r->bad = why;
}

void rt_capture_forbid(Interp *I, const char *why) {
    if (I->cap.rec) forbid(I->cap.rec, why);
}

/* -- guards -- */

static bool made_here(const struct CapRecorder *r, const Env *e) {
    return e->serial >= r->serial0;
}

static void add_guard(Interp *I, CapRecord *R, Guard g) {
    for (int i = 0; i < R->nguards; i++) {
        const Guard *h = &R->guards[i];
        if (h->kind == g.kind && h->env == g.env && h->m == g.m && h->slot == g.slot &&
            ((g.kind != G_NOGRAD && g.kind != G_DATA) || h->v.o == g.v.o))
            return;
    }
    if (g.env) env_retain(g.env);
    if (g.m) rt_retain(vobj(&g.m->obj));
    rt_retain(g.v);
    TT_VEC_PUSH(R->guards, R->nguards, R->capguards, g);
}

/* A value read from outside the call is guarded by identity (objects) or
 * value (numbers, strings); mutable containers read from outside could
 * change under the same identity, so they make the call uncapturable. */
static bool guardable(struct CapRecorder *r, Value v) {
    if (v.kind == V_LIST || v.kind == V_DICT) {
        forbid(r, "reads a list or dict from outside the call");
        return false;
    }
    return true;
}

void rt_capture_lookup(Interp *I, Env *from, Env *e, Model *model, int slot) {
    struct CapRecorder *r = I->cap.rec;
    if (made_here(r, e)) return;
    Value v = model ? model->fields[slot] : e->vals[slot];
    if (!guardable(r, v)) return;
    /* a name defined later in a scope between could shadow this one */
    for (Env *s = from; s && s != e; s = s->parent) {
        if (made_here(r, s)) continue;
        add_guard(I, r->R, (Guard){G_ENVSIZE, s, NULL, s->n, VNONE});
        if (s->model)
            add_guard(I, r->R, (Guard){G_FIELDSIZE, NULL, s->model, s->model->nfields, VNONE});
    }
    if (model)
        add_guard(I, r->R, (Guard){G_FIELD, NULL, model, slot, v});
    else
        add_guard(I, r->R, (Guard){G_ENV, e, NULL, slot, v});
}

uint64_t rt_capture_first_serial(const Interp *I) {
    return I->cap.rec->serial0;
}

void rt_capture_tensor_read(Interp *I, const Tensor *t) {
    struct CapRecorder *r = I->cap.rec;
    if (t && t->serial < r->serial0) forbid(r, "reads a gradient from before the call");
}

void rt_capture_value_read(Interp *I, Tensor *t) {
    struct CapRecorder *r = I->cap.rec;
    size_t n = (size_t)shape_numel(&t->shape) * dtype_size(t->dtype);
    if (t->serial >= r->serial0) return; /* made from what the guards fix */
    if (n > sizeof(((Guard *)0)->data)) {
        forbid(r, "specializes on the value of a large tensor");
        return;
    }
    Guard g = {G_DATA, NULL, NULL, (int)n, vtensor(t), {0}};
    memcpy(g.data, t->buf->data, n);
    add_guard(I, r->R, g);
}

void rt_capture_native_ok(Interp *I) {
    struct CapRecorder *r = I->cap.rec;
    if (r->native_pending > 0) r->native_pending--;
}

void rt_capture_field(Interp *I, Model *m, int slot) {
    struct CapRecorder *r = I->cap.rec;
    Value v = m->fields[slot];
    if (!guardable(r, v)) return;
    add_guard(I, r->R, (Guard){G_FIELD, NULL, m, slot, v});
}

static bool guards_hold(Interp *I, const CapRecord *R) {
    if (R->training != I->ev.training || R->threads != I->cfg.threads) return false;
    for (int i = 0; i < R->nguards; i++) {
        const Guard *g = &R->guards[i];
        switch (g->kind) {
        case G_ENV:
            if (g->slot >= g->env->n || !same_value(g->env->vals[g->slot], g->v)) return false;
            break;
        case G_FIELD:
            if (g->slot >= g->m->nfields || !same_value(g->m->fields[g->slot], g->v)) return false;
            break;
        case G_ENVSIZE:
            if (g->env->n != g->slot) return false;
            break;
        case G_FIELDSIZE:
            if (g->m->nfields != g->slot) return false;
            break;
        case G_NOGRAD:
            if (((Tensor *)g->v.o)->grad) return false;
            break;
        case G_DATA: {
            const Tensor *t = (const Tensor *)g->v.o;
            if (!t->buf || memcmp(t->buf->data, g->data, (size_t)g->slot) != 0) return false;
            break;
        }
        }
    }
    return true;
}

static bool arg_fits(const ArgSpec *s, Value v) {
    if (s->v.kind != v.kind) return false;
    if (v.kind == V_TENSOR) {
        const Tensor *t = (const Tensor *)v.o;
        return t->buf && t->dtype == s->dt && shape_eq(&t->shape, &s->shape);
    }
    return same_value(s->v, v);
}

static bool args_fit(const CapRecord *R, const Value *args, int nargs, const char *const *kwnames,
                     const Value *kwargs, int nkw) {
    if (R->nargs != nargs || R->nkw != nkw) return false;
    for (int i = 0; i < nargs; i++)
        if (!arg_fits(&R->args[i], args[i])) return false;
    for (int k = 0; k < nkw; k++) {
        const ArgSpec *s = &R->args[nargs + k];
        if (strcmp(s->kw, kwnames[k]) != 0 || !arg_fits(s, kwargs[k])) return false;
    }
    return true;
}

/* Arguments a record can be keyed on: tensors (by dtype and shape),
 * numbers, strings, none, and objects by identity; a list, dict or record
 * argument could hold anything. */
static bool args_capturable(const Value *args, int nargs, const Value *kwargs, int nkw) {
    for (int i = 0; i < nargs + nkw; i++) {
        Value v = i < nargs ? args[i] : kwargs[i - nargs];
        if (v.kind == V_LIST || v.kind == V_TUPLE || v.kind == V_DICT || v.kind == V_RECORD)
            return false;
        if (v.kind == V_TENSOR && !((Tensor *)v.o)->buf) return false;
    }
    return true;
}

/* -- recording hooks -- */

static void track_made(struct CapRecorder *r, Tensor *t) {
    for (int i = r->nmade - 1; i >= 0 && i >= r->nmade - 8; i--)
        if (r->made[i] == t) return;
    rt_retain(vtensor(t));
    TT_VEC_PUSH(r->made, r->nmade, r->capmade, t);
}

void rt_capture_node(Interp *I, Tensor *t, int id) {
    struct CapRecorder *r = I->cap.rec;
    r->saw_param = r->saw_param || t->requires_grad;
    rt_retain(vtensor(t));
    TT_VEC_PUSH(r->reg, r->nreg, r->capreg, ((RegEntry){id, t, t->buf}));
}

/* Builtins whose effect a replay would not redo: output, input, clocks,
 * timing, data sets (shuffles, host copies), training and compression
 * drivers. Other builtins build graph nodes or compute on numbers; the
 * ones that read tensor data on the host go through rt_data (forbidden). */
static const char *const impure[] = {
    "print",    "clock",     "bench", "load_csv",       "load_idx",       "load_npy",
    "save_npy", "read_text", "save",  "load",           "dataset",        "split",
    "batches",  "windows",   "fit",   "generate",       "quantize",       "prune",
    "distill",  "train",     "eval",  "save_tokenizer", "load_tokenizer", "reset_graph",
    "backend",  "_error",    NULL};

int rt_capture_builtin_enter(Interp *I, const Builtin *b) {
    struct CapRecorder *r = I->cap.rec;
    if (b->self.kind == V_NATIVE) return r->native_pending++;
    if (b->self.kind != V_NONE) return -1; /* methods of strings, lists, dicts: their data */
    for (int i = 0; impure[i]; i++)
        if (strcmp(b->name, impure[i]) == 0) {
            forbid(r, "calls a builtin with effects a replay would not redo");
            break;
        }
    return -1;
}

void rt_capture_builtin_leave(Interp *I, int token) {
    struct CapRecorder *r = I->cap.rec;
    if (token < 0) return;
    if (r->native_pending > token) /* the method did not say a replay can redo it */
        forbid(r, "calls a method of a native object that capture cannot replay");
    r->native_pending = token;
}

void rt_capture_effect(Interp *I, RtCaptureEffect fn, Obj *self, const int *nodes, int n) {
    struct CapRecorder *r = I->cap.rec;
    CapRecord *R = r->R;
    TT_ASSERT(n <= MAX_EFFECT_VALS);
    if (r->native_pending > 0) r->native_pending--;
    CapEffect e = {fn, self, n, R->nevals};
    rt_retain(vobj(self));
    for (int k = 0; k < n; k++) {
        TT_VEC_PUSH(r->enodes, r->nenodes, r->capenodes, ((EffectNode){nodes[k], R->nevals}));
        Buffer *b = rt_buf_new(sizeof(float));
        TT_VEC_PUSH(R->evals, R->nevals, R->capevals, b);
    }
    int idx = R->neffects;
    TT_VEC_PUSH(R->effects, R->neffects, R->capeffects, e);
    TT_VEC_PUSH(R->steps, R->nsteps, R->capsteps, ((CapStep){STEP_EFFECT, idx}));
}

void rt_capture_reset(Interp *I) {
    struct CapRecorder *r = I->cap.rec;
    CapRecord *R = r->R;
    TT_VEC_PUSH(R->steps, R->nsteps, R->capsteps, ((CapStep){STEP_RESET, 0}));
    for (int i = 0; i < r->nreg; i++) rt_release(I, vtensor(r->reg[i].t));
    r->nreg = 0;
    r->nenodes = 0;
    r->from = 0; /* every node of the new generation is the call's */
    r->gen = I->lz.gen;
}

static int arg_index(const struct CapRecorder *r, const Tensor *t) {
    for (int i = 0; i < r->nargs; i++)
        if (r->args[i].kind == V_TENSOR && r->args[i].o == &t->obj) return i;
    for (int k = 0; k < r->nkw; k++)
        if (r->kwargs[k].kind == V_TENSOR && r->kwargs[k].o == &t->obj) return r->nargs + k;
    return -1;
}

static int slot_of(const struct CapRecorder *r, const Buffer *b) {
    for (int s = r->nslotbuf - 1; s >= 0; s--)
        if (r->slotbuf[s] == b) return s;
    return -1;
}

static CapIn classify_input(Interp *I, struct CapRecorder *r, int nid) {
    Buffer *b = I->lz.node_buf[nid];
    int s = slot_of(r, b);
    if (s >= 0) return (CapIn){IN_SLOT, s, NULL, NULL};
    for (int i = 0; i < r->nenodes; i++)
        if (r->enodes[i].node == nid) return (CapIn){IN_EFFECT, r->enodes[i].val, NULL, NULL};
    Tensor *t = NULL;
    for (int i = r->nreg - 1; i >= 0 && !t; i--)
        if (r->reg[i].node == nid && r->reg[i].buf == b) t = r->reg[i].t;
    if (t) {
        int a = arg_index(r, t);
        if (a >= 0) return (CapIn){IN_ARG, a, NULL, NULL};
        if (t->serial < r->serial0) {
            if (t->requires_grad) add_guard(I, r->R, (Guard){G_NOGRAD, NULL, NULL, 0, vtensor(t)});
            rt_retain(vtensor(t));
            return (CapIn){IN_TENSOR, 0, t, NULL};
        }
        track_made(r, t);
    }
    if (!t && (I->lz.gen != r->gen || nid < r->from)) {
        forbid(r, "reads a value computed before the call");
        return (CapIn){IN_BUF, 0, NULL, NULL};
    }
    /* made by the call from numbers and shapes alone: the same every time */
    b->refcount++;
    return (CapIn){IN_BUF, 0, NULL, b};
}

void rt_capture_exec(Interp *I, IrGraph *E, const int *leaf, int nin, const int *ids, int nids,
                     Buffer *const *outbufs, int nout, Tensor *const *takers, int ntakers) {
    struct CapRecorder *r = I->cap.rec;
    CapRecord *R = r->R;
    if (r->bad) return;
    if (nout == 0) { /* nothing computed: the takers share data that exists */
        for (int k = 0; k < ntakers; k++)
            if (takers[k]->serial < r->serial0 || slot_of(r, I->lz.node_buf[takers[k]->node]) < 0)
                forbid(r, "assigns existing data to a tensor from before the call");
            else
                track_made(r, takers[k]);
        return;
    }
    for (int i = 0; i < nids; i++)
        if ((I->lz.gen != r->gen || ids[i] < r->from) && !I->lz.node_buf[ids[i]]) {
            forbid(r, "uses lazy work from before the call");
            return;
        }
    CapExec x = {0};
    x.entry = -1;
    x.in = tt_xcalloc((size_t)(nin ? nin : 1), sizeof *x.in);
    x.nin = nin;
    for (int k = 0; k < nin; k++) x.in[k] = classify_input(I, r, leaf[k]);
    x.slot0 = R->nslots;
    for (int j = 0; j < nout; j++) {
        outbufs[j]->refcount++;
        TT_VEC_PUSH(r->slotbuf, r->nslotbuf, r->capslotbuf, outbufs[j]);
    }
    R->nslots += nout;
    int cap = 0;
    for (int k = 0; k < ntakers; k++) {
        Tensor *t = takers[k];
        int s = slot_of(r, I->lz.node_buf[t->node]);
        if (s < 0 && t->serial < r->serial0) {
            forbid(r, "assigns existing data to a tensor from before the call");
        } else if (arg_index(r, t) >= 0) {
            forbid(r, "assigns to an argument in place");
        } else if (t->serial < r->serial0) {
            rt_retain(vtensor(t));
            int n = x.nstores;
            TT_VEC_PUSH(x.stores, n, cap, ((CapStore){s, t}));
            x.nstores = n;
        } else {
            track_made(r, t);
        }
    }
    x.E = *E;
    ir_init(E);
    int idx = R->nexecs;
    TT_VEC_PUSH(R->execs, R->nexecs, R->capexecs, x);
    TT_VEC_PUSH(R->steps, R->nsteps, R->capsteps, ((CapStep){STEP_EXEC, idx}));
}

/* -- the return value -- */

static void ret_push(CapRecord *R, RetItem it) {
    TT_VEC_PUSH(R->ret, R->nret, R->capret, it);
}

static void note_return(Interp *I, struct CapRecorder *r, Value v) {
    CapRecord *R = r->R;
    RetItem it = {.kind = v.kind, .v = VNONE};
    switch (v.kind) {
    case V_NONE:
    case V_BOOL:
    case V_INT:
    case V_FLOAT:
        it.v = v;
        ret_push(R, it);
        return;
    case V_STR:
        it.v = rt_retain(v);
        ret_push(R, it);
        return;
    case V_TUPLE:
    case V_LIST: {
        List *l = (List *)v.o;
        it.n = l->len;
        ret_push(R, it);
        for (int i = 0; i < l->len; i++) note_return(I, r, l->items[i]);
        return;
    }
    case V_TENSOR: {
        Tensor *t = (Tensor *)v.o;
        TT_ASSERT(t->buf);
        it.dt = t->dtype;
        it.shape = t->shape;
        int s = slot_of(r, t->buf), a = arg_index(r, t);
        if (a >= 0) {
            it.src = IN_ARG;
            it.slot = a;
        } else if (s >= 0) {
            it.src = IN_SLOT;
            it.slot = s;
        } else if (t->serial < r->serial0) {
            it.src = IN_TENSOR;
            it.t = (Tensor *)rt_retain(v).o;
        } else {
            it.src = IN_BUF;
            it.b = t->buf;
            t->buf->refcount++;
        }
        ret_push(R, it);
        return;
    }
    default:
        forbid(r, "returns a value that is not none, a number, a string, a tensor or a tuple");
        ret_push(R, it);
        return;
    }
}

static int count_in(Value v, const Tensor *t) {
    if (v.kind == V_TENSOR) return v.o == &t->obj;
    if (v.kind != V_TUPLE && v.kind != V_LIST) return 0;
    int n = 0;
    const List *l = (const List *)v.o;
    for (int i = 0; i < l->len; i++) n += count_in(l->items[i], t);
    return n;
}

static bool any_grad(Interp *I) {
    for (int i = 0; i < I->lz.nparams; i++)
        if (I->lz.params[i]->grad) return true;
    return false;
}

/* Checks what the call left behind; fills R's return items. */
static void finish(Interp *I, struct CapRecorder *r, Value ret) {
    if (I->lz.lazy && !r->bad) {
        /* under bench() (or a harness that discards results the same way)
         * nothing can backpropagate through the results: taken as
         * inference whatever the mode or the caller; such a record that
         * would not be inference outside bench() replays only under it */
        bool discarded = r->discarded;
        bool backward_seen = I->cap.tab && ((const RtCapture *)I->cap.tab)->backward_seen;
        /* in training mode a lazy result made from parameters may be
         * backpropagated later, through the graph a replay does not build */
        if (I->ev.training && r->saw_param && !discarded)
            forbid(r, "returns lazy tensors in training mode (a backward may need their graph)");
        /* in eval mode too when a fn called it: only a script's own call
         * is taken to be inference (a fn may still backpropagate), and
         * only while the script has run no backward() (one may follow:
         * eval-mode fine-tuning, saliency) */
        else if (r->saw_param && r->depth0 > 0 && !discarded)
            forbid(r, "returns lazy tensors made from parameters to a calling fn");
        else if (r->saw_param && !discarded && backward_seen)
            forbid(r, "returns lazy tensors made from parameters in a script that runs "
                      "backward() (it may need their graph)");
        else {
            r->R->inference = r->saw_param;
            r->R->bench_only =
                r->saw_param && discarded && (I->ev.training || r->depth0 > 0 || backward_seen);
            rt_realize_all(I); /* recorded as the last step */
        }
    }
    if (r->bad) return;
    if (memcmp(&I->ev.rng, &r->rng0, sizeof I->ev.rng) != 0)
        forbid(r, "draws from the global random generator");
    if (I->ev.training != r->training0) forbid(r, "switches training mode");
    if (any_grad(I)) forbid(r, "leaves gradients in parameters");
    if (r->bad) return;
    if (r->R->nexecs == 0) { /* nothing a replay would save: numbers are cheap */
        forbid(r, "runs no tensor graph");
        return;
    }
    note_return(I, r, ret);
    for (int i = 0; i < r->nreg; i++) rt_release(I, vtensor(r->reg[i].t));
    r->nreg = 0;
    /* a tensor the call made that something outside holds now (optimizer
     * state on a first step): a replay would not make it */
    for (int i = 0; i < r->nmade && !r->bad; i++) {
        Tensor *t = r->made[i];
        if (t->obj.refcount - 1 - count_in(ret, t) > 0)
            forbid(r, "keeps a tensor it made (state made on a first call)");
    }
}

static void recorder_free(Interp *I, struct CapRecorder *r) {
    for (int i = 0; i < r->nreg; i++) rt_release(I, vtensor(r->reg[i].t));
    free(r->reg);
    for (int i = 0; i < r->nmade; i++) rt_release(I, vtensor(r->made[i]));
    free(r->made);
    for (int i = 0; i < r->nslotbuf; i++) rt_buf_release(r->slotbuf[i]);
    free(r->slotbuf);
    free(r->enodes);
}

/* -- replay -- */

static Value build_return(Interp *I, const CapRecord *R, Buffer **slots, const Value *args,
                          const Value *kwargs, int *at) {
    const RetItem *it = &R->ret[(*at)++];
    switch (it->kind) {
    case V_TUPLE:
    case V_LIST: {
        Value l = it->kind == V_TUPLE ? rt_tuple(I, it->n) : rt_list(I, it->n);
        for (int i = 0; i < it->n; i++)
            ((List *)l.o)->items[i] = build_return(I, R, slots, args, kwargs, at);
        return l;
    }
    case V_TENSOR:
        if (it->src == IN_ARG)
            return rt_retain(it->slot < R->nargs ? args[it->slot] : kwargs[it->slot - R->nargs]);
        if (it->src == IN_TENSOR) return rt_retain(vtensor(it->t));
        return vtensor(
            rt_tensor_from_buf(I, it->dt, it->shape, it->src == IN_SLOT ? slots[it->slot] : it->b));
    default:
        return rt_retain(it->v);
    }
}

static void *in_data(const CapIn *c, const Value *args, const Value *kwargs, int nargs,
                     Buffer **slots, const CapRecord *R) {
    switch (c->kind) {
    case IN_ARG: {
        Value v = c->idx < nargs ? args[c->idx] : kwargs[c->idx - nargs];
        return ((Tensor *)v.o)->buf->data;
    }
    case IN_TENSOR:
        return c->t->buf->data;
    case IN_BUF:
        return c->b->data;
    case IN_SLOT:
        return slots[c->idx]->data;
    case IN_EFFECT:
        return R->evals[c->idx]->data;
    }
    return NULL;
}

static Value replay(Interp *I, CapRecord *R, const Value *args, int nargs, const Value *kwargs) {
    Buffer *sbuf[32],
        **slots = R->nslots <= 32 ? sbuf : tt_xcalloc((size_t)R->nslots, sizeof *slots);
    int filled = 0;
    for (int si = 0; si < R->nsteps; si++) {
        const CapStep *st = &R->steps[si];
        if (st->kind == STEP_RESET) {
            rt_reset_graph(I);
            continue;
        }
        if (st->kind == STEP_EFFECT) {
            const CapEffect *e = &R->effects[st->idx];
            double vals[MAX_EFFECT_VALS];
            e->fn(I, e->self, vals);
            for (int k = 0; k < e->nvals; k++)
                *(float *)R->evals[e->val0 + k]->data = (float)vals[k];
            continue;
        }
        CapExec *x = &R->execs[st->idx];
        void *ibuf[64], **in = x->nin <= 64 ? ibuf : tt_xmalloc((size_t)x->nin * sizeof *in);
        for (int k = 0; k < x->nin; k++) in[k] = in_data(&x->in[k], args, kwargs, nargs, slots, R);
        int nout = x->E.nout;
        void *obuf[64], **out = nout <= 64 ? obuf : tt_xmalloc((size_t)nout * sizeof *out);
        const char *oom = NULL;
        SrcLoc oloc = I->ev.loc;
        for (int j = 0; j < nout; j++) {
            const IrNode *nd = ir_node(&x->E, x->E.outputs[j]);
            Buffer *b = rt_buf_try_uninit((size_t)shape_numel(&nd->shape) * dtype_size(nd->dtype));
            if (!b && !oom) {
                oom = ir_ops[nd->op].name;
                oloc = nd->loc;
            }
            slots[x->slot0 + j] = b;
            out[j] = b ? b->data : NULL;
        }
        filled = x->slot0 + nout;
        char msg[512];
        SrcLoc at = I->ev.loc;
        bool ok = !oom && rt_exec_cached(I, &x->E, &x->entry, in, out, msg, sizeof msg, &at);
        if (in != ibuf) free(in);
        if (out != obuf) free(out);
        if (!ok) {
            for (int s = 0; s < filled; s++) rt_buf_release(slots[s]);
            if (slots != sbuf) free(slots);
            if (oom) rt_error_at(I, oloc, "out of memory: a result of %s does not fit", oom);
            rt_error_at(I, at, "%s", msg);
        }
        for (int k = 0; k < x->nstores; k++) {
            Tensor *t = x->stores[k].t;
            Buffer *b = slots[x->stores[k].slot];
            b->refcount++;
            rt_buf_release(t->buf);
            t->buf = b;
            t->node = -1; /* its node in the lazy graph holds the old value */
        }
    }
    int at = 0;
    Value ret = build_return(I, R, slots, args, kwargs, &at);
    for (int s = 0; s < filled; s++) rt_buf_release(slots[s]);
    if (slots != sbuf) free(slots);
    return ret;
}

/* -- keys -- */

static RtCapture *state(Interp *I) {
    if (!I->cap.tab) I->cap.tab = tt_xcalloc(1, sizeof(RtCapture));
    return I->cap.tab;
}

static bool same_site(SrcLoc a, SrcLoc b) {
    return a.file == b.file && a.line == b.line && a.col == b.col;
}

static CapKey *find_key(Interp *I, const AstNode *def, const void *self, SrcLoc site) {
    RtCapture *C = state(I);
    if (C->last < C->nkeys) {
        CapKey *k = &C->keys[C->last];
        if (k->def == def && k->self == self && same_site(k->site, site)) return k;
    }
    for (int i = 0; i < C->nkeys; i++) {
        CapKey *k = &C->keys[i];
        if (k->def == def && k->self == self && same_site(k->site, site)) {
            C->last = i;
            return k;
        }
    }
    if (C->nkeys >= MAX_KEYS) return NULL; /* closures made in a loop: one key each */
    CapKey fresh = {.def = def, .self = self, .site = site};
    TT_VEC_PUSH(C->keys, C->nkeys, C->capkeys, fresh);
    C->last = C->nkeys - 1;
    return &C->keys[C->last];
}

static void give_up(Interp *I, CapKey *k, const char *why) {
    RtCapture *C = state(I);
    snprintf(k->why, sizeof k->why, "%s", why);
    if (++k->fails >= MAX_FAILS && !k->dead) {
        k->dead = true;
        C->st.given_up++;
        for (int i = 0; i < k->nrecs; i++) record_free(I, k->recs[i]);
        k->nrecs = 0;
    }
}

static Value record_call(Interp *I, bool discarded, CapKey *k, Func *f, const Value *args,
                         int nargs, const char *const *kwnames, const Value *kwargs, int nkw) {
    CapRecord *R = tt_xcalloc(1, sizeof *R);
    R->nargs = nargs;
    R->nkw = nkw;
    R->args = tt_xcalloc((size_t)(nargs + nkw + 1), sizeof *R->args);
    for (int i = 0; i < nargs + nkw; i++) {
        Value v = i < nargs ? args[i] : kwargs[i - nargs];
        ArgSpec *s = &R->args[i];
        s->kw = i < nargs ? NULL : kwnames[i - nargs];
        if (v.kind == V_TENSOR) {
            s->v = (Value){.kind = V_TENSOR, .o = NULL};
            s->dt = ((Tensor *)v.o)->dtype;
            s->shape = ((Tensor *)v.o)->shape;
        } else {
            s->v = rt_retain(v);
        }
    }
    R->training = I->ev.training;
    R->threads = I->cfg.threads;
    struct CapRecorder r = {0};
    r.R = R;
    r.serial0 = rt_serial;
    r.from = I->lz.g.n;
    r.gen = I->lz.gen;
    r.args = args;
    r.nargs = nargs;
    r.kwargs = kwargs;
    r.nkw = nkw;
    r.rng0 = I->ev.rng;
    r.training0 = I->ev.training;
    r.depth0 = I->ev.depth;
    r.discarded = discarded;
    I->cap.rec = &r;
    jmp_buf jb;
    jmp_buf *saved = I->ev.on_error;
    I->ev.on_error = &jb;
    if (setjmp(jb)) { /* the error is reported; drop the record, pass it on */
        I->ev.on_error = saved;
        I->cap.rec = NULL;
        recorder_free(I, &r);
        record_free(I, R);
        longjmp(*I->ev.on_error, 1);
    }
    Value ret = call_func(I, f, args, nargs, kwnames, kwargs, nkw);
    finish(I, &r, ret);
    I->ev.on_error = saved;
    I->cap.rec = NULL;
    const char *bad = r.bad;
    recorder_free(I, &r);
    RtCapture *C = state(I);
    if (bad) {
        record_free(I, R);
        give_up(I, k, bad);
        return ret;
    }
    C->st.records++;
    if (k->nrecs < MAX_RECS) {
        k->recs[k->nrecs++] = R;
    } else { /* the oldest goes */
        record_free(I, k->recs[k->victim]);
        k->recs[k->victim] = R;
        k->victim = (k->victim + 1) % MAX_RECS;
    }
    return ret;
}

static Value capture_call(Interp *I, bool discarded, Func *f, const Value *args, int nargs,
                          const char *const *kwnames, const Value *kwargs, int nkw) {
    if (!I->cfg.capture || I->cap.rec || I->lz.lazy ||
        !(rt_backend_caps(I) & TT_BACKEND_CAN_REPLAY) || I->ev.scalar_consts ||
        !args_capturable(args, nargs, kwargs, nkw))
        return call_func(I, f, args, nargs, kwnames, kwargs, nkw);
    const void *self = f->self ? (const void *)f->self : (const void *)f->closure;
    CapKey *k = find_key(I, f->def, self, I->ev.loc);
    if (!k || k->dead) return call_func(I, f, args, nargs, kwnames, kwargs, nkw);
    k->calls++;
    RtCapture *C = state(I);
    for (int i = 0; i < k->nrecs; i++) {
        CapRecord *R = k->recs[i];
        if (R->inference && C->backward_seen && !discarded) continue;
        if (R->bench_only && !discarded) continue;
        if (args_fit(R, args, nargs, kwnames, kwargs, nkw) && guards_hold(I, R)) {
            C->st.hits++;
            k->misses = 0;
            return replay(I, R, args, nargs, kwargs);
        }
    }
    if (k->nrecs > 0) {
        C->st.misses++;
        if (++k->misses > MAX_MISSES) { /* recording each call costs more than it saves */
            k->fails = MAX_FAILS - 1;
            give_up(I, k, "its guards fail call after call");
            return call_func(I, f, args, nargs, kwnames, kwargs, nkw);
        }
    }
    /* the first call runs as it is (a first optimizer step makes state);
     * pending gradients would be read by the body's backward */
    if (k->calls < 2 || any_grad(I)) return call_func(I, f, args, nargs, kwnames, kwargs, nkw);
    return record_call(I, discarded, k, f, args, nargs, kwnames, kwargs, nkw);
}

/* bench()'s flag is about the result of the call it makes, not of the
 * calls that call's body makes (a body may backpropagate through those):
 * it is cleared for the body. */
Value rt_capture_call(Interp *I, Func *f, const Value *args, int nargs, const char *const *kwnames,
                      const Value *kwargs, int nkw) {
    bool discarded = I->cap.bench;
    I->cap.bench = false;
    Value r = capture_call(I, discarded, f, args, nargs, kwnames, kwargs, nkw);
    I->cap.bench = discarded;
    return r;
}

void rt_capture_backward(Interp *I) {
    if (I->cfg.capture) state(I)->backward_seen = true;
}

/* -- counts -- */

RtCaptureStats rt_capture_stats(const Interp *I) {
    RtCaptureStats z = {0};
    return I->cap.tab ? ((const RtCapture *)I->cap.tab)->st : z;
}

void rt_capture_print(Interp *I, FILE *out) {
    if (!I->cap.tab) return;
    RtCapture *C = I->cap.tab;
    fprintf(out,
            "capture: %lld recorded, %lld replayed, %lld guard misses, %lld callees not captured\n",
            (long long)C->st.records, (long long)C->st.hits, (long long)C->st.misses,
            (long long)C->st.given_up);
    for (int i = 0; i < C->nkeys; i++) {
        const CapKey *k = &C->keys[i];
        if (!k->fails) continue;
        fprintf(out, "  %s:%d:%d: %s %s: %s\n", k->site.file ? k->site.file : "?", k->site.line,
                k->site.col, k->def && k->def->str ? k->def->str : "fn",
                k->dead ? "not captured" : "not recorded yet", k->why);
    }
}

void rt_capture_free(Interp *I) {
    RtCapture *C = I->cap.tab;
    if (!C) return;
    for (int i = 0; i < C->nkeys; i++)
        for (int j = 0; j < C->keys[i].nrecs; j++) record_free(I, C->keys[i].recs[j]);
    free(C->keys);
    free(C);
    I->cap.tab = NULL;
}
