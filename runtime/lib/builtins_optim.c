/* builtins_optim.c - the optimizers SGD, Adam and AdamW, as native objects
 * with methods step() and zero_grad().
 *
 * They follow PyTorch's definitions exactly (torch.optim, single-tensor
 * path), so a tt run and a PyTorch run from the same weights and batches
 * agree to float tolerance (tests/unit/test_optim.c checks it):
 *   SGD:   g += wd*p;  b = momentum*b + g (dampening 0; b starts at 0, so the
 *          first step gives b = g as PyTorch's clone does);  p -= lr*b
 *   Adam:  g += wd*p;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
 *          p -= (lr/(1-b1^t)) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 *   AdamW: p *= 1 - lr*wd, then Adam without the L2 term.
 * A parameter with a pruning mask (prune()) is multiplied by it after the
 * update, so pruned weights stay exactly zero.
 *
 * step() builds every update as nodes of the lazy graph, assigns the new
 * values to the parameters and the state tensors (rt_tensor_assign), clears
 * the gradients and resets the graph: forward, backward and update run as
 * one execution graph. Values that change from step to step (lr, the bias
 * corrections) enter as 0-d INPUT tensors, never as constants, so every step
 * has the same graph structure and a compiled step can be reused.
 */
#include "builtins_lib.h"
#include "capture.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum OptKind { OPT_SGD, OPT_ADAM, OPT_ADAMW } OptKind;

typedef struct Optim {
    Interp *I;
    OptKind kind;
    double lr, momentum, wd, beta1, beta2, eps;
    int n;
    Tensor **params; /* retained */
    Tensor **m, **v; /* state per parameter (retained), NULL until the first step */
    int64_t t;       /* steps taken */
} Optim;

static const char *kind_name(OptKind k) {
    return k == OPT_SGD ? "SGD" : k == OPT_ADAM ? "Adam" : "AdamW";
}

static Optim *optim_of(Value self) {
    return (Optim *)((Native *)self.o)->data;
}

static void clear_grads(Interp *I, Optim *o) {
    for (int i = 0; i < o->n; i++) {
        Tensor *p = o->params[i];
        if (p->grad) {
            Tensor *g = p->grad;
            p->grad = NULL;
            rt_release(I, vtensor(g));
        }
    }
}

/* A zero state tensor shaped like p. */
static Tensor *zeros_like(Interp *I, Tensor *p) {
    return rt_tensor_new(I, TY_F32, p->shape);
}

static int bin(Interp *I, OpKind op, int a, int b) {
    return rt_check_node(I, ir_binary(&I->lz.g, op, a, b, I->ev.loc));
}
static int cst(Interp *I, double x) {
    return lib_const(I, TY_F32, x);
}

/* The updated value of a pruned parameter times its mask (prune(),
 * builtins_compress.c), so pruned weights stay zero through fine-tuning. */
static int masked(Interp *I, Tensor *p, int upd) {
    return p->mask ? bin(I, OP_MUL, upd, rt_node(I, p->mask)) : upd;
}

static void step_sgd(Interp *I, Optim *o, int i, int p, int g, int lr) {
    if (o->wd != 0) g = bin(I, OP_ADD, g, bin(I, OP_MUL, p, cst(I, o->wd)));
    if (o->momentum != 0) {
        if (!o->m[i]) o->m[i] = zeros_like(I, o->params[i]);
        int b = bin(I, OP_ADD, bin(I, OP_MUL, rt_node(I, o->m[i]), cst(I, o->momentum)), g);
        rt_tensor_assign(I, o->m[i], b);
        g = b;
    }
    rt_tensor_assign(I, o->params[i],
                     masked(I, o->params[i], bin(I, OP_SUB, p, bin(I, OP_MUL, g, lr))));
}

static void step_adam(Interp *I, Optim *o, int i, int p, int g, int step_size, int bc2_sqrt,
                      int decay) {
    if (o->kind == OPT_ADAM && o->wd != 0) g = bin(I, OP_ADD, g, bin(I, OP_MUL, p, cst(I, o->wd)));
    if (!o->m[i]) o->m[i] = zeros_like(I, o->params[i]);
    if (!o->v[i]) o->v[i] = zeros_like(I, o->params[i]);
    int m = bin(I, OP_ADD, bin(I, OP_MUL, rt_node(I, o->m[i]), cst(I, o->beta1)),
                bin(I, OP_MUL, g, cst(I, 1 - o->beta1)));
    int v = bin(I, OP_ADD, bin(I, OP_MUL, rt_node(I, o->v[i]), cst(I, o->beta2)),
                bin(I, OP_MUL, bin(I, OP_MUL, g, g), cst(I, 1 - o->beta2)));
    rt_tensor_assign(I, o->m[i], m);
    rt_tensor_assign(I, o->v[i], v);
    int sq = rt_check_node(I, ir_unary(&I->lz.g, OP_SQRT, v, I->ev.loc));
    int denom = bin(I, OP_ADD, bin(I, OP_DIV, sq, bc2_sqrt), cst(I, o->eps));
    if (decay >= 0) p = bin(I, OP_MUL, p, decay);
    int upd = bin(I, OP_MUL, bin(I, OP_DIV, m, denom), step_size);
    rt_tensor_assign(I, o->params[i], masked(I, o->params[i], bin(I, OP_SUB, p, upd)));
}

/* Counts the step and computes its per-step scalars: SGD's lr; Adam's
 * step size and sqrt of the second bias correction (and AdamW's decay).
 * Returns how many. What a captured step redoes (opt_effect). */
static int next_step(Optim *o, double *v) {
    o->t++;
    if (o->kind == OPT_SGD) {
        v[0] = o->lr;
        return 1;
    }
    double bc1 = 1 - pow(o->beta1, (double)o->t), bc2 = 1 - pow(o->beta2, (double)o->t);
    v[0] = o->lr / bc1;
    v[1] = sqrt(bc2);
    v[2] = 1 - o->lr * o->wd;
    return o->kind == OPT_ADAMW ? 3 : 2;
}

/* A captured call replays a step: the count and the scalars (its updates
 * are in the recorded graph); the gradients were cleared by the recorded
 * step and no replay makes any. */
static void opt_effect(Interp *I, Obj *self, double *vals) {
    (void)I;
    next_step(((Native *)self)->data, vals);
}

/* zero_grad() replayed: gradients made outside the captured call go. */
static void clear_effect(Interp *I, Obj *self, double *vals) {
    (void)vals;
    Optim *o = ((Native *)self)->data;
    for (int i = 0; i < o->n; i++)
        if (o->params[i]->grad) {
            Tensor *g = o->params[i]->grad;
            o->params[i]->grad = NULL;
            rt_release(I, vtensor(g));
        }
}

/* opt.step() */
BUILTIN(opt_step) {
    static const char *const names[] = {NULL};
    Value none[1];
    BIND("step", names, 0, none);
    Optim *o = optim_of(self);
    double v[3];
    int nv = next_step(o, v);
    /* the per-step scalars: inputs, so the structure stays the same */
    int lr = -1, step_size = -1, bc2_sqrt = -1, decay = -1;
    bool any = false;
    for (int i = 0; i < o->n; i++) any = any || o->params[i]->grad;
    if (any) {
        if (o->kind == OPT_SGD) {
            lr = lib_scalar_input(I, v[0]);
        } else {
            step_size = lib_scalar_input(I, v[0]);
            bc2_sqrt = lib_scalar_input(I, v[1]);
            if (o->kind == OPT_ADAMW) decay = lib_scalar_input(I, v[2]);
        }
    }
    if (I->cap.rec) {
        int nodes[3] = {o->kind == OPT_SGD ? lr : step_size, bc2_sqrt, decay};
        /* a step without gradients binds no scalars; a replay still counts it */
        rt_capture_effect(I, opt_effect, self.o, nodes, any ? nv : 0);
    }
    for (int i = 0; i < o->n; i++) {
        Tensor *pt = o->params[i];
        if (!pt->grad) continue;
        int p = rt_node(I, pt), g = rt_node(I, pt->grad);
        if (o->kind == OPT_SGD)
            step_sgd(I, o, i, p, g, lr);
        else
            step_adam(I, o, i, p, g, step_size, bc2_sqrt, decay);
    }
    clear_grads(I, o);
    rt_reset_graph(I);
    return VNONE;
}

/* opt.zero_grad() */
BUILTIN(opt_zero_grad) {
    static const char *const names[] = {NULL};
    Value none[1];
    BIND("zero_grad", names, 0, none);
    if (I->cap.rec) rt_capture_effect(I, clear_effect, self.o, NULL, 0);
    clear_grads(I, optim_of(self));
    return VNONE;
}

/* opt.set_lr(lr): for learning-rate schedules */
BUILTIN(opt_set_lr) {
    static const char *const names[] = {"lr", NULL};
    Value a[1];
    BIND("set_lr", names, 1, a);
    double lr = lib_float(I, a[0], 0, "set_lr", "lr");
    if (!(lr >= 0)) rt_error(I, "set_lr: lr must be >= 0, got %g", lr);
    optim_of(self)->lr = lr;
    return VNONE;
}

static bool optim_member(Interp *I, Obj *self, const char *name, Value *out) {
    Optim *o = ((Native *)self)->data;
    static const struct {
        const char *name;
        BuiltinFn fn;
    } methods[] = {{"step", opt_step}, {"zero_grad", opt_zero_grad}, {"set_lr", opt_set_lr}};
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
        if (strcmp(name, methods[i].name) == 0) {
            *out = rt_builtin(I, methods[i].name, methods[i].fn, vobj(self));
            return true;
        }
    if (strcmp(name, "lr") == 0)
        *out = vfloat(o->lr);
    else if (strcmp(name, "weight_decay") == 0)
        *out = vfloat(o->wd);
    else if (strcmp(name, "momentum") == 0 && o->kind == OPT_SGD)
        *out = vfloat(o->momentum);
    else if (strcmp(name, "eps") == 0 && o->kind != OPT_SGD)
        *out = vfloat(o->eps);
    else if (strcmp(name, "betas") == 0 && o->kind != OPT_SGD) {
        *out = rt_tuple(I, 2);
        as_list(*out)->items[0] = vfloat(o->beta1);
        as_list(*out)->items[1] = vfloat(o->beta2);
    } else if (strcmp(name, "steps") == 0)
        *out = vint(o->t);
    else if (strcmp(name, "params") == 0) {
        *out = rt_list(I, o->n);
        for (int i = 0; i < o->n; i++) as_list(*out)->items[i] = rt_retain(vtensor(o->params[i]));
    } else
        return false;
    return true;
}

static void optim_free(Obj *self) {
    Optim *o = ((Native *)self)->data;
    if (!o) return;
    for (int i = 0; i < o->n; i++) {
        rt_release(o->I, vtensor(o->params[i]));
        if (o->m[i]) rt_release(o->I, vtensor(o->m[i]));
        if (o->v[i]) rt_release(o->I, vtensor(o->v[i]));
    }
    free(o->params);
    free(o->m);
    free(o->v);
    free(o);
    ((Native *)self)->data = NULL;
}

static void optim_print(Interp *I, Obj *self, StrBuf *out) {
    Optim *o = ((Native *)self)->data;
    sb_printf(out, "%s(lr=%g", kind_name(o->kind), o->lr);
    if (o->kind == OPT_SGD)
        sb_printf(out, ", momentum=%g", o->momentum);
    else
        sb_printf(out, ", betas=(%g, %g), eps=%g", o->beta1, o->beta2, o->eps);
    sb_printf(out, ", weight_decay=%g)", o->wd);
}

static const NativeClass optim_class = {"optimizer", optim_member, optim_free, optim_print};

/* The parameters an optimizer updates: a model's (declaration order) or a
 * list of tensors. */
static void collect_params(Interp *I, Optim *o, Value src, const char *fn) {
    Value list;
    if (src.kind == V_MODEL)
        list = rt_parameters(I, src, false);
    else if (is_seq(src))
        list = rt_retain(src);
    else
        rt_error(I, "%s: the first argument must be a model or a list of parameter tensors, got %s",
                 fn, rt_type_name(src));
    List *l = as_list(list);
    for (int i = 0; i < l->len; i++) {
        Value v = l->items[i];
        if (v.kind != V_TENSOR || as_tensor(v)->dtype != TY_F32) {
            const char *what = rt_type_name(v);
            rt_release(I, list);
            rt_error(I, "%s: parameter %d is %s%s, expected an f32 tensor", fn, i, what,
                     v.kind == V_TENSOR ? " (not f32)" : "");
        }
    }
    if (l->len == 0) {
        rt_release(I, list);
        rt_error(I, "%s: got an empty parameter list", fn);
    }
    o->n = l->len;
    o->params = tt_xcalloc((size_t)o->n, sizeof *o->params);
    o->m = tt_xcalloc((size_t)o->n, sizeof *o->m);
    o->v = tt_xcalloc((size_t)o->n, sizeof *o->v);
    for (int i = 0; i < o->n; i++) o->params[i] = (Tensor *)rt_retain(l->items[i]).o;
    rt_release(I, list);
}

static void check_range(Interp *I, const char *fn, const char *what, double x, double lo, double hi,
                        bool hi_open) {
    if (!(x >= lo) || (hi_open ? !(x < hi) : !(x <= hi)))
        rt_error(I, "%s: invalid %s %g", fn, what, x);
}

static Value make_optim(Interp *I, Optim *proto, Value src) {
    const char *fn = kind_name(proto->kind);
    check_range(I, fn, "lr", proto->lr, 0, INFINITY, false);
    check_range(I, fn, "weight_decay", proto->wd, 0, INFINITY, false);
    if (proto->kind == OPT_SGD) {
        check_range(I, fn, "momentum", proto->momentum, 0, INFINITY, false);
    } else {
        check_range(I, fn, "beta1", proto->beta1, 0, 1, true);
        check_range(I, fn, "beta2", proto->beta2, 0, 1, true);
        check_range(I, fn, "eps", proto->eps, 0, INFINITY, false);
    }
    Optim *o = tt_xmalloc(sizeof *o);
    *o = *proto;
    o->I = I;
    o->n = 0;
    o->params = o->m = o->v = NULL;
    Value r = rt_native(I, &optim_class, o); /* owns o from here: errors free it */
    collect_params(I, o, src, fn);
    return r;
}

/* SGD(params, lr=0.01, momentum=0, weight_decay=0) */
BUILTIN(bi_sgd) {
    static const char *const names[] = {"params", "lr", "momentum", "weight_decay", NULL};
    Value a[4];
    BIND("SGD", names, 1, a);
    Optim p = {.kind = OPT_SGD};
    p.lr = lib_float(I, a[1], 0.01, "SGD", "lr");
    p.momentum = lib_float(I, a[2], 0, "SGD", "momentum");
    p.wd = lib_float(I, a[3], 0, "SGD", "weight_decay");
    return make_optim(I, &p, a[0]);
}

static Value adam_like(Interp *I, OptKind kind, double wd_default, const Value *args, int nargs,
                       const char *const *kwnames, const Value *kwargs, int nkw) {
    static const char *const names[] = {"params", "lr", "betas", "eps", "weight_decay", NULL};
    const char *fn = kind_name(kind);
    Value a[5];
    BIND(fn, names, 1, a);
    Optim p = {.kind = kind, .beta1 = 0.9, .beta2 = 0.999};
    p.lr = lib_float(I, a[1], 0.001, fn, "lr");
    if (a[2].kind != V_NONE) {
        if (!is_seq(a[2]) || as_list(a[2])->len != 2)
            rt_error(I, "%s: betas must be a pair such as (0.9, 0.999), got %s", fn,
                     rt_type_name(a[2]));
        p.beta1 = lib_float(I, as_list(a[2])->items[0], 0, fn, "betas[0]");
        p.beta2 = lib_float(I, as_list(a[2])->items[1], 0, fn, "betas[1]");
    }
    p.eps = lib_float(I, a[3], 1e-8, fn, "eps");
    p.wd = lib_float(I, a[4], wd_default, fn, "weight_decay");
    return make_optim(I, &p, a[0]);
}

/* Adam(params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0) */
BUILTIN(bi_adam) {
    return adam_like(I, OPT_ADAM, 0, args, nargs, kwnames, kwargs, nkw);
}
/* AdamW(params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01) */
BUILTIN(bi_adamw) {
    return adam_like(I, OPT_ADAMW, 0.01, args, nargs, kwnames, kwargs, nkw);
}

/* assign(p, v): p takes v's value in place (p's shape and dtype; a number
 * fills it), as PyTorch's p.copy_(v) under no_grad: for optimizers and
 * masks written in tt. p keeps its identity: its name, its place in the
 * model, optimizers and saves, its .grad. Returns none. */
BUILTIN(bi_assign) {
    static const char *const names[] = {"p", "v", NULL};
    Value a[2];
    BIND("assign", names, 2, a);
    rt_tensor_set(I, lib_tensor(I, a[0], "assign", "p"), a[1], "assign");
    return VNONE;
}

void rt_register_optim_builtins(Interp *I) {
    rt_define_global(I, "assign", rt_builtin(I, "assign", bi_assign, VNONE));
    rt_define_global(I, "SGD", rt_builtin(I, "SGD", bi_sgd, VNONE));
    rt_define_global(I, "Adam", rt_builtin(I, "Adam", bi_adam, VNONE));
    rt_define_global(I, "AdamW", rt_builtin(I, "AdamW", bi_adamw, VNONE));
}
