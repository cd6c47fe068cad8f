/* builtins_compress.c - model compression: pruning and distillation.
 *
 *   prune(net, amount, structured=false) -> net (changed in place)
 *   sparsity(net) -> {"fc1.w": 0.7, ..., "overall": 0.7}
 *   distill(teacher, student, data, temperature=4.0, alpha=0.9, epochs=1,
 *           opt=Adam(student), batch=32, shuffle=true) -> (loss=)
 *
 * The weight matrices are the parameters of rank >= 2 (Linear.w,
 * Conv2d.weight, Embedding.weight): biases and norm scales (rank 1) are
 * never pruned, as PyTorch's pruning tutorial prunes only `weight`.
 *
 * Magnitude pruning keeps a 0/1 mask on each weight matrix (Tensor.mask);
 * every optimizer step multiplies the updated value by it
 * (builtins_optim.c), so fine-tuning keeps pruned weights at zero, as
 * torch.nn.utils.prune's weight = weight_orig * mask does.
 *
 * Structured pruning removes whole hidden units of Linear -> Linear chains
 * (the layers in declaration order where one's fan_out is the next one's
 * fan_in, with elementwise activations between them): the producer loses
 * columns of w and entries of b, the consumer rows of w, and both layers'
 * fan_in/fan_out change, so the model really is smaller and print(net)
 * shows the new shapes. The parameters are new tensors: make the optimizer
 * after pruning.
 *
 * distill_loss itself is tt (lang/std/30_distill.tt).
 */
#include "builtins_lib.h"
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the weight matrices of a model ---- */

typedef struct WeightSet {
    int n;
    Tensor **w;         /* borrowed from the list below */
    const char **names; /* paths (interned) */
    Value list;         /* rt_parameters(named) */
} WeightSet;

static void weights_of(Interp *I, Value net, const char *fn, WeightSet *ws) {
    if (net.kind != V_MODEL) rt_error(I, "%s: expected a model, got %s", fn, rt_type_name(net));
    ws->list = rt_parameters(I, net, true);
    List *l = as_list(ws->list);
    ws->n = 0;
    ws->w = tt_xcalloc((size_t)l->len + 1, sizeof *ws->w);
    ws->names = tt_xcalloc((size_t)l->len + 1, sizeof *ws->names);
    for (int i = 0; i < l->len; i++) {
        List *pair = as_list(l->items[i]);
        Tensor *t = as_tensor(pair->items[1]);
        if (t->shape.ndim < 2 || t->dtype != TY_F32) continue;
        ws->w[ws->n] = t;
        ws->names[ws->n] = t->name ? t->name : "?";
        ws->n++;
    }
}

static void weights_free(Interp *I, WeightSet *ws) {
    free(ws->w);
    free(ws->names);
    rt_release(I, ws->list);
}

static _Noreturn void no_weights(Interp *I, WeightSet *ws, const char *fn) {
    weights_free(I, ws);
    rt_error(I, "%s: the model has no weight matrices (parameters of rank >= 2)", fn);
}

/* n · amount rounded half to even: the count PyTorch's pruning removes
 * (torch.nn.utils.prune._compute_nparams_toprune uses Python's round). */
static int64_t count_of(double amount, int64_t n) {
    double x = amount * (double)n, r = floor(x), d = x - r;
    if (d > 0.5 || (d == 0.5 && fmod(r, 2) != 0)) r += 1;
    return (int64_t)r;
}

/* ---- magnitude pruning ---- */

typedef struct Mag {
    float a;     /* |w| */
    int64_t idx; /* position over all matrices, for a stable order */
} Mag;

static int mag_cmp(const void *x, const void *y) {
    const Mag *a = x, *b = y;
    if (a->a != b->a) return a->a < b->a ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static void prune_magnitude(Interp *I, WeightSet *ws, double amount) {
    int64_t total = 0;
    for (int i = 0; i < ws->n; i++) total += shape_numel(&ws->w[i]->shape);
    if (total == 0) return; /* matrices with a zero dimension: nothing to prune */
    Mag *m = tt_xmalloc((size_t)total * sizeof *m);
    float *keep = tt_xmalloc((size_t)total * sizeof *keep);
    int64_t at = 0;
    for (int i = 0; i < ws->n; i++) {
        const float *d = rt_data(I, ws->w[i]);
        int64_t n = shape_numel(&ws->w[i]->shape);
        for (int64_t j = 0; j < n; j++, at++) {
            m[at] = (Mag){fabsf(d[j]), at};
            keep[at] = 1;
        }
    }
    int64_t k = count_of(amount, total);
    qsort(m, (size_t)total, sizeof *m, mag_cmp);
    for (int64_t j = 0; j < k; j++) keep[m[j].idx] = 0;
    free(m);
    at = 0;
    for (int i = 0; i < ws->n; i++) {
        Tensor *p = ws->w[i];
        int64_t n = shape_numel(&p->shape);
        Tensor *mask = rt_tensor_new(I, TY_F32, p->shape);
        Tensor *nv = rt_tensor_new(I, TY_F32, p->shape);
        float *md = mask->buf->data, *nd = nv->buf->data;
        const float *old = p->mask ? rt_data(I, p->mask) : NULL;
        const float *d = rt_data(I, p);
        for (int64_t j = 0; j < n; j++) {
            md[j] =
                keep[at + j] * (old ? old[j] : 1.0f); /* a second prune keeps the first's zeros */
            nd[j] = md[j] != 0 ? d[j] : 0.0f;
        }
        at += n;
        rt_tensor_set(I, p, vtensor(nv), "prune");
        rt_release(I, vtensor(nv));
        if (p->mask) rt_release(I, vtensor(p->mask));
        p->mask = mask;
    }
    free(keep);
}

/* ---- structured pruning of Linear chains ---- */

typedef struct Linears {
    int n, cap;
    Model **m;
} Linears;

/* The Linear layers of a model tree in declaration order (list items by
 * index), each once. */
static void find_linears(Value v, Linears *out, int depth) {
    if (depth > 32) return;
    if (v.kind == V_MODEL) {
        Model *m = (Model *)v.o;
        if (strcmp(m->type_name, "Linear") == 0) {
            for (int i = 0; i < out->n; i++)
                if (out->m[i] == m) return;
            TT_VEC_PUSH(out->m, out->n, out->cap, m);
            return;
        }
        for (int i = 0; i < m->nfields; i++)
            if (m->fields[i].kind != V_TENSOR) find_linears(m->fields[i], out, depth + 1);
    } else if (v.kind == V_LIST || v.kind == V_TUPLE) {
        List *l = (List *)v.o;
        for (int i = 0; i < l->len; i++) find_linears(l->items[i], out, depth + 1);
    }
}

static int field_index(Model *m, const char *name) {
    for (int i = 0; i < m->nfields; i++)
        if (strcmp(m->field_names[i], name) == 0) return i;
    return -1;
}

static Tensor *linear_param(Model *m, const char *name) {
    int i = field_index(m, name);
    if (i < 0 || m->fields[i].kind != V_TENSOR) return NULL;
    Tensor *t = as_tensor(m->fields[i]);
    return t->dtype == TY_F32 ? t : NULL;
}

/* A copy of src [rows, cols] keeping the rows (or columns) listed in sel:
 * a new parameter named like src, its mask sliced the same way. */
static Tensor *select_units(Interp *I, Tensor *src, const int64_t *sel, int64_t nsel, bool cols) {
    int64_t rows = src->shape.ndim == 2 ? src->shape.d[0] : 1;
    int64_t ncol = src->shape.d[src->shape.ndim - 1];
    Shape s = src->shape;
    if (cols)
        s.d[s.ndim - 1] = nsel;
    else
        s.d[0] = nsel;
    Tensor *masks[2] = {src, src->mask}, *out[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        if (!masks[k]) continue;
        const float *d = rt_data(I, masks[k]);
        Tensor *t = rt_tensor_new(I, TY_F32, s);
        float *o = t->buf->data;
        if (cols) {
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < nsel; j++) o[r * nsel + j] = d[r * ncol + sel[j]];
        } else {
            for (int64_t j = 0; j < nsel; j++)
                memcpy(o + j * ncol, d + sel[j] * ncol, (size_t)ncol * sizeof *o);
        }
        out[k] = t;
    }
    rt_register_param(I, out[0]);
    out[0]->name = src->name;
    out[0]->mask = out[1];
    return out[0];
}

static void replace_field(Interp *I, Model *m, const char *name, Tensor *t) {
    int i = field_index(m, name);
    Value old = m->fields[i];
    m->fields[i] = vtensor(t);
    rt_release(I, old);
}

/* The Linear's constructor argument `name` (fan_in, fan_out): its forward's
 * annotations read it, so it must follow the new shape. */
static void set_dim(Model *m, const char *name, int64_t v) {
    Value *slot = env_find_local(m->env, name);
    if (slot && slot->kind == V_INT) slot->i = v;
}

typedef struct Unit {
    double norm;
    int64_t idx;
} Unit;

static int unit_cmp(const void *x, const void *y) { /* largest norm first */
    const Unit *a = x, *b = y;
    if (a->norm != b->norm) return a->norm > b->norm ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}
static int idx_cmp(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

/* Removes round(amount · fan_out) output units of a (fewest: one kept),
 * those whose weight columns have the smallest L2 norms, and the matching
 * input rows of b. */
static void prune_units(Interp *I, Model *a, Model *b, double amount) {
    Tensor *w = linear_param(a, "w"), *bias = linear_param(a, "b"), *w2 = linear_param(b, "w");
    int64_t rows = w->shape.d[0], n = w->shape.d[1];
    int64_t keep = n - count_of(amount, n);
    if (keep < 1) keep = 1;
    const float *d = rt_data(I, w);
    Unit *u = tt_xmalloc((size_t)n * sizeof *u);
    for (int64_t j = 0; j < n; j++) {
        double s = 0;
        for (int64_t r = 0; r < rows; r++) s += (double)d[r * n + j] * d[r * n + j];
        u[j] = (Unit){sqrt(s), j};
    }
    qsort(u, (size_t)n, sizeof *u, unit_cmp);
    int64_t *sel = tt_xmalloc((size_t)keep * sizeof *sel);
    for (int64_t j = 0; j < keep; j++) sel[j] = u[j].idx;
    free(u);
    qsort(sel, (size_t)keep, sizeof *sel, idx_cmp); /* the survivors keep their order */
    replace_field(I, a, "w", select_units(I, w, sel, keep, true));
    if (bias) replace_field(I, a, "b", select_units(I, bias, sel, keep, true));
    replace_field(I, b, "w", select_units(I, w2, sel, keep, false));
    free(sel);
    set_dim(a, "fan_out", keep);
    set_dim(b, "fan_in", keep);
}

static void prune_structured(Interp *I, Value net, double amount) {
    Linears ls = {0};
    find_linears(net, &ls, 0);
    int pairs = 0;
    for (int i = 0; i + 1 < ls.n; i++) {
        Tensor *w = linear_param(ls.m[i], "w"), *w2 = linear_param(ls.m[i + 1], "w");
        if (!w || !w2 || w->shape.ndim != 2 || w2->shape.ndim != 2) continue;
        if (w->shape.d[1] != w2->shape.d[0]) continue;
        prune_units(I, ls.m[i], ls.m[i + 1], amount);
        pairs++;
    }
    free(ls.m);
    if (!pairs)
        rt_error(I, "prune: structured pruning needs a hidden layer: two Linear layers where the "
                    "first one's outputs feed the second (none found)");
}

/* prune(net, amount, structured=false) */
BUILTIN(bi_prune) {
    static const char *const names[] = {"net", "amount", "structured", NULL};
    Value a[3];
    BIND("prune", names, 2, a);
    if (a[0].kind != V_MODEL) rt_error(I, "prune: expected a model, got %s", rt_type_name(a[0]));
    if (!is_num(a[1]) || a[1].kind == V_BOOL)
        rt_error(I, "prune: amount must be a number in [0, 1), got %s", rt_type_name(a[1]));
    double amount = num_of(a[1]);
    if (!(amount >= 0 && amount < 1))
        rt_error(I, "prune: amount must be in [0, 1), got %g", amount);
    bool structured = lib_bool(I, a[2], false, "prune", "structured");
    WeightSet ws;
    weights_of(I, a[0], "prune", &ws);
    if (ws.n == 0) no_weights(I, &ws, "prune");
    if (structured) {
        weights_free(I, &ws);
        prune_structured(I, a[0], amount);
    } else {
        prune_magnitude(I, &ws, amount);
        weights_free(I, &ws);
    }
    rt_reset_graph(I); /* the pruned values realized, as after an optimizer step */
    return rt_retain(a[0]);
}

/* sparsity(net): the fraction of zeros of each weight matrix (by path) and
 * over all of them ("overall"), as a dict. */
BUILTIN(bi_sparsity) {
    static const char *const names[] = {"net", NULL};
    Value a[1];
    BIND("sparsity", names, 1, a);
    WeightSet ws;
    weights_of(I, a[0], "sparsity", &ws);
    if (ws.n == 0) no_weights(I, &ws, "sparsity");
    Value d = rt_dict(I);
    int64_t zeros = 0, total = 0;
    for (int i = 0; i < ws.n; i++) {
        const float *x = rt_data(I, ws.w[i]);
        int64_t n = shape_numel(&ws.w[i]->shape), z = 0;
        for (int64_t j = 0; j < n; j++) z += x[j] == 0;
        rt_dict_set(I, d, rt_cstr(I, ws.names[i]), vfloat(n ? (double)z / (double)n : 0));
        zeros += z;
        total += n;
    }
    weights_free(I, &ws);
    rt_dict_set(I, d, rt_cstr(I, "overall"), vfloat(total ? (double)zeros / (double)total : 0));
    return d;
}

/* ---- distillation ---- */

/* A realized copy of t with no graph behind it: no gradient flows into
 * whatever computed t (the teacher). */
static Value detached(Interp *I, Value v) {
    if (v.kind != V_TENSOR)
        rt_error(I, "distill: the teacher must return a tensor of logits, got %s", rt_type_name(v));
    Tensor *t = as_tensor(v);
    const void *d = rt_data(I, t);
    Tensor *c = rt_tensor_new(I, t->dtype, t->shape);
    memcpy(c->buf->data, d, (size_t)shape_numel(&t->shape) * dtype_size(t->dtype));
    return vtensor(c);
}

/* distill(teacher, student, data, temperature=4.0, alpha=0.9, epochs=1,
 *         opt=Adam(student), batch=32, shuffle=true) -> (loss=)
 * Each batch: the teacher's logits in eval mode, detached; the student's in
 * training mode; distill_loss; backward; opt.step(). One line per epoch on
 * stdout, as fit: "distill epoch 1/3  loss 0.1234". */
BUILTIN(bi_distill) {
    static const char *const names[] = {"teacher", "student", "data",  "temperature", "alpha",
                                        "epochs",  "opt",     "batch", "shuffle",     NULL};
    Value a[9];
    BIND("distill", names, 3, a);
    Value teacher = a[0], student = a[1], data = a[2];
    if (teacher.kind != V_MODEL)
        rt_error(I, "distill: teacher must be a model, got %s", rt_type_name(teacher));
    if (student.kind != V_MODEL)
        rt_error(I, "distill: student must be a model, got %s", rt_type_name(student));
    lib_dataset_field(I, data, "x", "distill", "data");
    lib_dataset_field(I, data, "y", "distill", "data");
    double temp = lib_float(I, a[3], 4.0, "distill", "temperature");
    double alpha = lib_float(I, a[4], 0.9, "distill", "alpha");
    int64_t epochs = lib_int(I, a[5], 1, "distill", "epochs");
    int64_t batch = lib_int(I, a[7], 32, "distill", "batch");
    bool shuffle = lib_bool(I, a[8], true, "distill", "shuffle");
    if (!(temp > 0)) rt_error(I, "distill: temperature must be positive, got %g", temp);
    if (!(alpha >= 0 && alpha <= 1)) rt_error(I, "distill: alpha must be in [0, 1], got %g", alpha);
    if (epochs < 0) rt_error(I, "distill: epochs must not be negative");
    if (batch < 1) rt_error(I, "distill: batch must be positive");
    Value opt = lib_optimizer(I, a[6], student);
    Value step = rt_member(I, opt, "step");
    Value lossfn = rt_global(I, "distill_loss");
    bool was_training = I->ev.training;
    double last = 0;
    for (int64_t e = 1; e <= epochs; e++) {
        Value bl = lib_batches(I, data, batch, shuffle, VNONE, false);
        List *l = as_list(bl);
        double sum = 0;
        for (int i = 0; i < l->len; i++) {
            List *xy = as_list(l->items[i]);
            I->ev.training = false;
            Value tout = rt_call(I, teacher, &xy->items[0], 1, NULL, NULL, 0);
            Value tl = detached(I, tout);
            rt_release(I, tout);
            rt_reset_graph(I);
            I->ev.training = true;
            Value sout = rt_call(I, student, &xy->items[0], 1, NULL, NULL, 0);
            Value args[5] = {sout, tl, xy->items[1], vfloat(temp), vfloat(alpha)};
            Value loss = rt_call(I, lossfn, args, 5, NULL, NULL, 0);
            rt_release(I, sout);
            rt_release(I, tl);
            sum += lib_train_step(I, loss, step, "distill", "distill_loss");
        }
        last = l->len ? sum / l->len : 0;
        rt_release(I, bl);
        printf("distill epoch %lld/%lld  loss %.4f\n", (long long)e, (long long)epochs, last);
        fflush(stdout);
    }
    I->ev.training = was_training;
    rt_release(I, lossfn);
    rt_release(I, step);
    rt_release(I, opt);
    const char *rn[1] = {"loss"};
    Value res = rt_record(I, 1, rn);
    ((Record *)res.o)->vals[0] = vfloat(last);
    return res;
}

void lib_register_compress(Interp *I) {
    rt_define_global(I, "prune", rt_builtin(I, "prune", bi_prune, VNONE));
    rt_define_global(I, "sparsity", rt_builtin(I, "sparsity", bi_sparsity, VNONE));
    rt_define_global(I, "distill", rt_builtin(I, "distill", bi_distill, VNONE));
}
