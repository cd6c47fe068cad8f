/* builtins_ptq.c - post-training quantization of a model (issue 13 items 2
 * and 3): quantize(net, calib=x, method="minmax"), bytes(net),
 * quant_report(net, q, x).
 *
 * quantize(net, calib=x) traces net's forward on the calibration batch,
 * finds its Linears and Conv2ds in the traced graph (quant_match), runs the
 * graph to read each layer's input and output range, and builds a Quantized
 * model (lang/std/30_quant.tt) whose fields mirror net's, each Linear
 * replaced by a QuantLinear holding the quantized data, each Conv2d by a
 * QuantConv2d. Calling it traces net's forward
 * on the new input (any batch size) and rewrites that graph with
 * quant_pass, so the float weights never run; the result is recorded per
 * input shape (graph_template.h) and later calls of that shape replay it
 * without tracing or rewriting. The float model is kept (not
 * as a field: not saved, not counted by bytes) only for its forward's
 * structure and its non-Linear parameters, which the mirror shares.
 *
 * Parameters: weights symmetric per output channel, scale = max|w[:, j]| /
 * 127 (Conv2d: max|weight[o]| / 127), q in [-127, 127]; activations asymmetric per tensor over the
 * range widened to hold 0, scale = (hi - lo) / 255, zero point = round(-128 - lo / scale); lo/hi
 * the calibration batch's min/max, or with method="percentile" its 0.01th and 99.99th percentiles
 * (NumPy's linear interpolation). A layer fed by another through relus, max pools and reshapes
 * takes that one's output parameters as its input's, so the pair folds. The bias is added in i32: b
 * / (in_scale · w_scale[j]) rounded, minus in_zero_point · Σ_k qw[k, j] (the sum over output
 * channel j's weights; a Conv2d's padding holds the zero point, so this holds there).
 */
#include "builtins_lib.h"
#include "capture.h"
#include "eval.h"
#include "graph_template.h"
#include "quant_pass.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One Linear or Conv2d (conv) of the float model and its mirror. */
typedef struct QEntry {
    char *path;
    bool conv;
    Tensor *w, *b; /* the float model's (retained) */
    Model *ql;     /* the QuantLinear (retained unless it is the Quantized
                      model itself: quantize(Linear(...), ...)) */
    bool weak;
} QEntry;

#define QPLAN_CACHE 8

/* A recorded graph and the activation parameters it was made with: the
 * pass puts those in as constants, so a load() that changes them makes the
 * recording stale. */
typedef struct QCached {
    RtTemplate t;
    double *scal; /* per Linear: in_scale, in_zero_point, out_scale, out_zero_point */
} QCached;

typedef struct QPlan {
    Interp *I;
    Value net; /* the float model */
    QEntry *e;
    int n, cap;
    /* the rewritten graph per input shape (graph_template.h), most recent
     * first: a call replays it instead of tracing and rewriting again */
    QCached cache[QPLAN_CACHE];
    int ncache;
    double *snap; /* scalars_now's */
} QPlan;

static void plan_free(Obj *self) {
    QPlan *p = ((Native *)self)->data;
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        free(p->e[i].path);
        rt_release(p->I, vtensor(p->e[i].w));
        if (p->e[i].b) rt_release(p->I, vtensor(p->e[i].b));
        if (!p->e[i].weak) rt_release(p->I, vobj(&p->e[i].ql->obj));
    }
    for (int i = 0; i < p->ncache; i++) {
        rt_template_free(p->I, &p->cache[i].t);
        free(p->cache[i].scal);
    }
    free(p->snap);
    rt_release(p->I, p->net);
    free(p->e);
    free(p);
    ((Native *)self)->data = NULL;
}

static const NativeClass plan_class = {"quantization plan", NULL, plan_free, NULL};

static Value global(Interp *I, const char *name) {
    bool found = false;
    Value v = eval_lookup(I, I->ev.globals, name, &found);
    TT_ASSERT(found && v.kind == V_MODELDEF);
    return v;
}

static Model *new_model(Interp *I, const char *def, const Value *args, int nargs,
                        const char *type_name) {
    Value d = global(I, def);
    Value m = model_instantiate(I, (ModelDef *)d.o, args, nargs, NULL, NULL, 0);
    rt_release(I, d);
    Model *mm = (Model *)m.o;
    if (type_name) mm->type_name = rt_intern(I, type_name);
    return mm;
}

static bool is_linear(Value v) {
    return v.kind == V_MODEL && strcmp(((Model *)v.o)->type_name, "Linear") == 0;
}

static bool is_conv(Value v) {
    return v.kind == V_MODEL && strcmp(((Model *)v.o)->type_name, "Conv2d") == 0;
}

static Tensor *field_tensor(Model *m, const char *name) {
    Value *v = rt_model_field(m, name);
    return v && v->kind == V_TENSOR ? (Tensor *)v->o : NULL;
}

/* the names of a quantized layer's fields: Linear's w, b and Conv2d's
 * weight, bias, with _scale for the weight's scales */
static const char *wname(bool conv) {
    return conv ? "weight" : "w";
}
static const char *sname(bool conv) {
    return conv ? "weight_scale" : "w_scale";
}
static const char *bname(bool conv) {
    return conv ? "bias" : "b";
}

/* The weight of Linear or Conv2d f (path), checked. */
static Tensor *layer_weight(Interp *I, Model *f, const char *path) {
    bool conv = is_conv(vobj(&f->obj));
    Tensor *w = field_tensor(f, wname(conv));
    if (!w || w->dtype != TY_F32 || w->shape.ndim != (conv ? 4 : 2))
        rt_error(I, "quantize: %s %s has no f32 weight %s", conv ? "Conv2d" : "Linear",
                 path[0] ? path : "(the model)",
                 conv ? "weight [out_channels, in_channels/groups, kh, kw]" : "matrix w");
    return w;
}

/* Appends the entry of Linear or Conv2d f (path) with its mirror ql to p. */
static void add_entry(Interp *I, QPlan *p, Model *f, const char *path, Model *ql, bool weak) {
    bool conv = is_conv(vobj(&f->obj));
    Tensor *w = layer_weight(I, f, path), *b = field_tensor(f, bname(conv));
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 8;
        p->e = tt_xrealloc(p->e, (size_t)p->cap * sizeof *p->e);
    }
    p->e[p->n++] = (QEntry){strdup(path), conv, w, b, ql, weak};
    rt_retain(vtensor(w));
    if (b) rt_retain(vtensor(b));
}

/* The mirror of v (a new reference), its Linears appended to p; VNONE for
 * values without parameters. */
static Value mirror(Interp *I, Value v, StrBuf *path, QPlan *p, int depth) {
    if (depth > 32) return VNONE;
    size_t len = path->len;
    if (is_linear(v) || is_conv(v)) {
        layer_weight(I, (Model *)v.o, path->s); /* before anything to free */
        Model *ql = new_model(I, is_conv(v) ? "QuantConv2d" : "QuantLinear", NULL, 0, NULL);
        Value qv = vobj(&ql->obj);
        ql->obj.refcount++; /* the entry's */
        add_entry(I, p, (Model *)v.o, path->s, ql, false);
        return qv;
    }
    if (v.kind == V_MODEL) {
        Model *f = (Model *)v.o;
        Model *m = new_model(I, "QuantModule", NULL, 0, f->type_name);
        for (int i = 0; i < f->nfields; i++) {
            Value x = f->fields[i];
            if (path->len) sb_putc(path, '.');
            sb_puts(path, f->field_names[i]);
            if (x.kind == V_TENSOR && (f->is_param[i] || f->is_buffer[i]))
                rt_model_add_field(I, m, f->field_names[i], rt_retain(x), true);
            else if (x.kind == V_MODEL || x.kind == V_LIST || x.kind == V_TUPLE) {
                Value y = mirror(I, x, path, p, depth + 1);
                if (y.kind != V_NONE) rt_model_add_field(I, m, f->field_names[i], y, false);
            }
            path->len = len;
            path->s[len] = 0;
        }
        return vobj(&m->obj);
    }
    if (v.kind == V_LIST || v.kind == V_TUPLE) {
        List *l = (List *)v.o;
        Value out = rt_list(I, 0);
        for (int i = 0; i < l->len; i++) {
            sb_printf(path, "%s%d", path->len ? "." : "", i);
            rt_list_push(I, out, mirror(I, l->items[i], path, p, depth + 1));
            path->len = len;
            path->s[len] = 0;
        }
        return out;
    }
    return VNONE;
}

/* -- tracing -- */

typedef struct Trace {
    int from, root, gen;
    Value y;
} Trace;

static Trace trace(Interp *I, Value net, Value x, const char *fn) {
    Trace t = {I->lz.g.n, -1, I->lz.gen, VNONE};
    t.y = rt_call(I, net, &x, 1, NULL, NULL, 0);
    if (t.y.kind != V_TENSOR)
        rt_error(I, "%s: the model's forward must return a tensor, got %s", fn, rt_type_name(t.y));
    t.root = rt_node(I, as_tensor(t.y));
    if (I->lz.gen != t.gen || t.root < t.from)
        rt_error(I,
                 "%s: the model's forward must build one graph (it ran tensors while being "
                 "traced)",
                 fn);
    return t;
}

/* the QuantLinear array of p; the quantized nodes too when full */
static QuantLinear *specs(Interp *I, QPlan *p, bool full) {
    QuantLinear *L = tt_xcalloc((size_t)(p->n ? p->n : 1), sizeof *L);
    for (int i = 0; i < p->n; i++) {
        bool conv = p->e[i].conv;
        L[i].conv = conv;
        L[i].w = rt_node(I, p->e[i].w);
        L[i].b = p->e[i].b ? rt_node(I, p->e[i].b) : -1;
        L[i].qw = L[i].w_scale = L[i].bias = -1;
        if (!full) continue;
        Model *q = p->e[i].ql;
        L[i].qw = rt_node(I, field_tensor(q, wname(conv)));
        L[i].w_scale = rt_node(I, field_tensor(q, sname(conv)));
        L[i].bias = rt_node(I, field_tensor(q, bname(conv)));
        L[i].in_scale = *(float *)rt_data(I, field_tensor(q, "in_scale"));
        L[i].in_zp = *(int32_t *)rt_data(I, field_tensor(q, "in_zero_point"));
        L[i].out_scale = *(float *)rt_data(I, field_tensor(q, "out_scale"));
        L[i].out_zp = *(int32_t *)rt_data(I, field_tensor(q, "out_zero_point"));
    }
    return L;
}

/* The tensors a rewritten graph may read, with the models holding them:
 * the float model's parameters and buffers (the mirror shares those that
 * are not a Linear's) and every QuantLinear's fields. */
static void leaves_of(Value v, RtLeaf **c, int *n, int *cap, int depth, bool weak) {
    if (depth > 32) return;
    List *l = v.kind == V_LIST || v.kind == V_TUPLE ? (List *)v.o : NULL;
    for (int i = 0; l && i < l->len; i++) leaves_of(l->items[i], c, n, cap, depth + 1, false);
    if (v.kind != V_MODEL) return;
    Model *m = (Model *)v.o;
    for (int i = 0; i < m->nfields; i++) {
        if (m->fields[i].kind != V_TENSOR) {
            leaves_of(m->fields[i], c, n, cap, depth + 1, false);
            continue;
        }
        if (*n == *cap) {
            *cap = *cap ? 2 * *cap : 16;
            *c = tt_xrealloc(*c, (size_t)*cap * sizeof **c);
        }
        (*c)[(*n)++] = (RtLeaf){(Tensor *)m->fields[i].o, m, i, weak};
    }
}

static const char *const SCALARS[] = {"in_scale", "in_zero_point", "out_scale", "out_zero_point"};

/* the activation parameters of every Linear now (realized: reading them
 * later must not run the graph), in p->snap */
static const double *scalars_now(Interp *I, QPlan *p) {
    if (!p->snap) p->snap = tt_xmalloc((size_t)(4 * p->n + 1) * sizeof *p->snap);
    double *v = p->snap;
    for (int i = 0; i < p->n; i++)
        for (int k = 0; k < 4; k++) {
            Tensor *t = field_tensor(p->e[i].ql, SCALARS[k]);
            const void *d = rt_data_const(I, t);
            v[4 * i + k] = t->dtype == TY_F32 ? *(const float *)d : *(const int32_t *)d;
        }
    return v;
}

static void drop(Interp *I, QPlan *p, int i) {
    rt_template_free(I, &p->cache[i].t);
    free(p->cache[i].scal);
    memmove(&p->cache[i], &p->cache[i + 1], (size_t)(p->ncache - i - 1) * sizeof *p->cache);
    p->ncache--;
}

/* records the graph of a traced and rewritten call for x's shape, made
 * with the parameters scal */
static void remember(Interp *I, QPlan *p, int from, int root, Value x, const double *scal) {
    int nc = 0, cap = 0;
    RtLeaf *c = NULL;
    leaves_of(p->net, &c, &nc, &cap, 0, false);
    /* a weak entry's QuantLinear is the Quantized model itself, which owns
     * the plan and so the templates: not retained by them */
    for (int i = 0; i < p->n; i++)
        leaves_of(vobj(&p->e[i].ql->obj), &c, &nc, &cap, 0, p->e[i].weak);
    QCached e = {0};
    bool ok = rt_template_record(I, &e.t, from, root, as_tensor(x), c, nc);
    free(c);
    if (!ok) return;
    e.scal = tt_xmalloc((size_t)(4 * p->n + 1) * sizeof *e.scal);
    memcpy(e.scal, scal, (size_t)(4 * p->n) * sizeof *e.scal);
    if (p->ncache == QPLAN_CACHE) drop(I, p, p->ncache - 1);
    memmove(&p->cache[1], &p->cache[0], (size_t)p->ncache * sizeof *p->cache);
    p->cache[0] = e;
    p->ncache++;
}

/* the result of a recorded graph for x made with the parameters scal, or
 * -1 when none fits */
static int replay(Interp *I, QPlan *p, Value x, const double *scal) {
    Tensor *t = as_tensor(x);
    for (int i = 0; i < p->ncache; i++) {
        if (!rt_template_fits(&p->cache[i].t, t)) continue;
        if (memcmp(p->cache[i].scal, scal, (size_t)p->n * 4 * sizeof *scal) != 0) {
            drop(I, p, i); /* loaded other parameters: trace again */
            return -1;
        }
        int root = rt_template_replay(I, &p->cache[i].t, t);
        if (root < 0) { /* a tensor changed shape: trace again */
            drop(I, p, i);
            return -1;
        }
        if (i > 0) {
            QCached e = p->cache[i];
            memmove(&p->cache[1], &p->cache[0], (size_t)i * sizeof *p->cache);
            p->cache[0] = e;
        }
        return root;
    }
    return -1;
}

/* The quantized forward of p on x: a lazy tensor of the rewritten graph.
 * qout (optional) as quant_pass's; *match_out the matches when asked. */
static Value qforward(Interp *I, QPlan *p, Value x, int *qout, QuantMatch **match_out, int *nm) {
    /* the scalars' data first: reading later must not run the graph */
    const double *scal = scalars_now(I, p);
    bool record = !qout && !match_out && !I->cfg.dump_quant;
    if (record) {
        int root = replay(I, p, x, scal);
        if (root >= 0) return lib_result(I, root);
    }
    Trace t = trace(I, p->net, x, "quantize");
    QuantLinear *L = specs(I, p, true); /* allocated after what can fail */
    int root = quant_pass(&I->lz.g, t.from, t.root, L, p->n, qout);
    if (root < 0) {
        free(L);
        rt_error(I, "%s", I->lz.g.err);
    }
    if (match_out) {
        *match_out = tt_xmalloc((size_t)(t.root - t.from + 1) * sizeof **match_out);
        *nm = quant_match(&I->lz.g, t.from, t.root, L, p->n, *match_out, t.root - t.from + 1);
    }
    free(L);
    if (record) remember(I, p, t.from, root, x, scal);
    if (I->cfg.dump_quant) {
        IrGraph E;
        ir_init(&E);
        rt_extract_graph(I, &root, 1, &E);
        printf("-- quantized graph (%d nodes) --\n", E.n);
        ir_print(stdout, &E);
        fflush(stdout);
        ir_free(&E);
    }
    rt_release(I, t.y);
    return lib_result(I, root);
}

BUILTIN(bi_quantized_forward) {
    if (nargs != 1 || nkw != 0 || args[0].kind != V_TENSOR)
        rt_error(I, "quantized model: forward takes one tensor, got %s",
                 nargs ? rt_type_name(args[0]) : "no argument");
    if (I->cap.rec) rt_capture_native_ok(I); /* graph nodes from the plan's fixed state */
    return qforward(I, ((Native *)self.o)->data, args[0], NULL, NULL, NULL);
}

/* -- calibration -- */

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* NumPy's percentile (linear) of sorted s[0..n) */
static double pct(const float *s, int64_t n, double q) {
    double v = q / 100.0 * (double)(n - 1);
    int64_t i = (int64_t)floor(v);
    if (i >= n - 1) return s[n - 1];
    return s[i] + (v - (double)i) * ((double)s[i + 1] - s[i]);
}

/* widens [*lo, *hi] by the range of t */
static void range_of(Interp *I, Tensor *t, bool percentile, double *lo, double *hi) {
    const float *d = rt_data(I, t);
    int64_t n = shape_numel(&t->shape);
    if (n == 0) return;
    double a, b;
    if (percentile) {
        float *s = tt_xmalloc((size_t)n * sizeof *s);
        memcpy(s, d, (size_t)n * sizeof *s);
        qsort(s, (size_t)n, sizeof *s, cmp_float);
        a = pct(s, n, 0.01);
        b = pct(s, n, 99.99);
        free(s);
    } else {
        a = b = d[0];
        for (int64_t i = 1; i < n; i++) {
            if (d[i] < a) a = d[i];
            if (d[i] > b) b = d[i];
        }
    }
    if (!isfinite(a) || !isfinite(b))
        rt_error(I, "quantize: the calibration batch gives a non-finite activation");
    if (a < *lo) *lo = a;
    if (b > *hi) *hi = b;
}

/* asymmetric i8 parameters of [lo, hi] (widened to hold 0) */
static void act_params(double lo, double hi, float *scale, int *zp) {
    if (lo > 0) lo = 0;
    if (hi < 0) hi = 0;
    float s = (float)((hi - lo) / 255.0);
    if (!(s > 0)) s = 1.0f;
    double z = nearbyint(-128.0 - lo / s);
    *scale = s;
    *zp = (int)(z < -128 ? -128 : z > 127 ? 127 : z);
}

static Value scalar_tensor(Interp *I, DType dt, double v) {
    Tensor *t = rt_tensor_new(I, dt, (Shape){0, {0}});
    if (dt == TY_F32)
        *(float *)t->buf->data = (float)v;
    else
        *(int32_t *)t->buf->data = (int32_t)v;
    return vtensor(t);
}

/* quantizes the layer e's weights into its QuantLinear or QuantConv2d */
static void fill_layer(Interp *I, QEntry *e, float in_s, int in_z, float out_s, int out_z) {
    const float *w = rt_data(I, e->w);
    const float *b = e->b ? rt_data(I, e->b) : NULL;
    /* output channel j's K weights are w[j * cs + k * ks]: a Linear's
     * column of w [K, N], a Conv2d's weight[j] of [N, C/groups, kh, kw] */
    int64_t N = e->conv ? e->w->shape.d[0] : e->w->shape.d[1];
    int64_t K = N ? shape_numel(&e->w->shape) / N : 0;
    int64_t cs = e->conv ? K : 1, ks = e->conv ? 1 : N;
    Tensor *qw = rt_tensor_new(I, TY_I8, e->w->shape);
    Tensor *ws = rt_tensor_new(I, TY_F32, (Shape){1, {N}});
    Tensor *qb = rt_tensor_new(I, TY_I32, (Shape){1, {N}});
    int8_t *q = qw->buf->data;
    float *s = ws->buf->data;
    int32_t *bq = qb->buf->data;
    for (int64_t j = 0; j < N; j++) {
        float m = 0;
        for (int64_t k = 0; k < K; k++) m = fmaxf(m, fabsf(w[j * cs + k * ks]));
        s[j] = m > 0 && isfinite(m) ? m / 127.0f : 1.0f;
        int64_t colsum = 0;
        for (int64_t k = 0; k < K; k++) {
            double r = nearbyint((double)w[j * cs + k * ks] / s[j]);
            q[j * cs + k * ks] = (int8_t)(r < -127 ? -127 : r > 127 ? 127 : r);
            colsum += q[j * cs + k * ks];
        }
        double acc = b ? nearbyint((double)b[j] / (double)(in_s * s[j])) : 0;
        acc -= (double)in_z * (double)colsum;
        bq[j] = (int32_t)(acc < -2147483648.0  ? -2147483648.0
                          : acc > 2147483647.0 ? 2147483647.0
                                               : acc);
    }
    Model *ql = e->ql;
    rt_model_add_field(I, ql, wname(e->conv), vtensor(qw), true);
    rt_model_add_field(I, ql, sname(e->conv), vtensor(ws), true);
    rt_model_add_field(I, ql, bname(e->conv), vtensor(qb), true);
    rt_model_add_field(I, ql, "in_scale", scalar_tensor(I, TY_F32, in_s), true);
    rt_model_add_field(I, ql, "in_zero_point", scalar_tensor(I, TY_I32, in_z), true);
    rt_model_add_field(I, ql, "out_scale", scalar_tensor(I, TY_F32, out_s), true);
    rt_model_add_field(I, ql, "out_zero_point", scalar_tensor(I, TY_I32, out_z), true);
}

/* quantize(net, calib=x, method="minmax") */
Value lib_quantize_model(Interp *I, const Value *args, int nargs, const char *const *kwnames,
                         const Value *kwargs, int nkw) {
    static const char *const names[] = {"net", "calib", "method", NULL};
    Value a[3];
    rt_bind_args(I, "quantize", names, 1, args, nargs, kwnames, kwargs, nkw, a);
    Value net = a[0];
    if (a[1].kind == V_NONE)
        rt_error(I, "quantize: quantizing a model needs a calibration batch: quantize(net, "
                    "calib=x), x a batch of the model's inputs");
    if (a[1].kind != V_TENSOR)
        rt_error(I, "quantize: calib must be a tensor (a batch of the model's inputs), got %s",
                 rt_type_name(a[1]));
    Tensor *cx = as_tensor(a[1]);
    if (cx->shape.ndim < 1 || cx->shape.d[0] < 1)
        rt_error(I, "quantize: calib must be a non-empty batch, got %d dimensions of %lld rows",
                 cx->shape.ndim, cx->shape.ndim ? (long long)cx->shape.d[0] : 0LL);
    bool percentile = false;
    if (a[2].kind != V_NONE) {
        if (a[2].kind != V_STR)
            rt_error(I, "quantize: method must be \"minmax\" or \"percentile\", got %s",
                     rt_type_name(a[2]));
        const char *m = ((Str *)a[2].o)->s;
        if (strcmp(m, "percentile") == 0)
            percentile = true;
        else if (strcmp(m, "minmax") != 0)
            rt_error(I, "quantize: method must be \"minmax\" or \"percentile\", got \"%s\"", m);
    }
    QPlan *p = tt_xcalloc(1, sizeof *p);
    p->I = I;
    p->net = rt_retain(net);
    Value plan = rt_native(I, &plan_class, p); /* owns p: errors free it */
    Value run = rt_builtin(I, "forward", bi_quantized_forward, plan);
    rt_release(I, plan);
    Model *q = new_model(I, "Quantized", &run, 1, NULL);
    rt_release(I, run);
    Value qv = vobj(&q->obj);
    StrBuf path = {0};
    sb_puts(&path, "");
    Model *f = (Model *)net.o;
    bool layer = is_linear(net) || is_conv(net);
    if (layer) /* q is the QuantLinear: fields w, w_scale, ... (Conv2d: weight, ...) */
        add_entry(I, p, f, "", q, true);
    for (int i = 0; !layer && i < f->nfields; i++) { /* the top level's fields */
        Value x = f->fields[i];
        sb_puts(&path, f->field_names[i]);
        if (x.kind == V_TENSOR && (f->is_param[i] || f->is_buffer[i]))
            rt_model_add_field(I, q, f->field_names[i], rt_retain(x), true);
        else {
            Value y = mirror(I, x, &path, p, 1);
            if (y.kind != V_NONE) rt_model_add_field(I, q, f->field_names[i], y, false);
        }
        path.len = 0;
        path.s[0] = 0;
    }
    sb_free(&path);
    if (p->n == 0) {
        rt_release(I, qv);
        rt_error(I, "quantize: model %s has no Linear or Conv2d layers to quantize", f->type_name);
    }
    /* calibration: trace, match, run once */
    Trace t = trace(I, net, a[1], "quantize");
    QuantLinear *L = specs(I, p, false);
    int cap = t.root - t.from + 1;
    QuantMatch *m = tt_xmalloc((size_t)cap * sizeof *m);
    int nm = quant_match(&I->lz.g, t.from, t.root, L, p->n, m, cap);
    free(L);
    if (nm <= 0) {
        free(m);
        rt_release(I, t.y);
        rt_release(I, qv);
        rt_error(I,
                 "quantize: no Linear of %s is applied to a 2-D batch (nor a Conv2d to a batch "
                 "of images) in its forward, so the pass has nothing to rewrite",
                 f->type_name);
    }
    Tensor **xs = tt_xmalloc((size_t)nm * 2 * sizeof *xs);
    for (int k = 0; k < nm; k++) {
        xs[2 * k] = rt_tensor_lazy(I, m[k].x);
        xs[2 * k + 1] = rt_tensor_lazy(I, m[k].out);
    }
    rt_realize_all(I);
    double *lo = tt_xmalloc((size_t)p->n * 4 * sizeof *lo);
    for (int i = 0; i < p->n; i++) {
        lo[4 * i] = lo[4 * i + 2] = INFINITY;
        lo[4 * i + 1] = lo[4 * i + 3] = -INFINITY;
    }
    for (int k = 0; k < nm; k++) {
        double *r = &lo[4 * m[k].layer];
        range_of(I, xs[2 * k], percentile, &r[0], &r[1]);
        range_of(I, xs[2 * k + 1], percentile, &r[2], &r[3]);
    }
    /* parameters in the order of the forward: a layer fed through relus by
     * another takes that one's output parameters */
    float *ps = tt_xcalloc((size_t)p->n * 2, sizeof *ps);
    int *pz = tt_xcalloc((size_t)p->n * 2, sizeof *pz);
    char *done = tt_xcalloc((size_t)p->n, 1);
    for (int k = 0; k < nm; k++) {
        int l = m[k].layer;
        if (done[l]) continue;
        done[l] = 1;
        double *r = &lo[4 * l];
        if (m[k].prev >= 0 && done[m[k].prev]) {
            ps[2 * l] = ps[2 * m[k].prev + 1];
            pz[2 * l] = pz[2 * m[k].prev + 1];
        } else {
            act_params(r[0], r[1], &ps[2 * l], &pz[2 * l]);
        }
        act_params(r[2], r[3], &ps[2 * l + 1], &pz[2 * l + 1]);
    }
    for (int i = 0; i < p->n; i++) {
        if (!done[i])
            act_params(0, 0, &ps[2 * i], &pz[2 * i]), ps[2 * i + 1] = 1, pz[2 * i + 1] = 0;
        fill_layer(I, &p->e[i], ps[2 * i], pz[2 * i], ps[2 * i + 1], pz[2 * i + 1]);
    }
    for (int k = 0; k < 2 * nm; k++) rt_release(I, vtensor(xs[k]));
    free(xs);
    free(lo);
    free(ps);
    free(pz);
    free(done);
    free(m);
    rt_release(I, t.y);
    model_name_params(I, q);
    return qv;
}

/* -- reports -- */

static int64_t model_bytes(Interp *I, Value net, const char *fn) {
    Value ps = rt_state_tensors(I, net, fn);
    List *l = as_list(ps);
    int64_t total = 0;
    for (int i = 0; i < l->len; i++) {
        Tensor *t = as_tensor(as_list(l->items[i])->items[1]);
        total += shape_numel(&t->shape) * (int64_t)dtype_size(t->dtype);
    }
    rt_release(I, ps);
    return total;
}

/* bytes(net): the bytes of every parameter and buffer */
BUILTIN(bi_bytes) {
    static const char *const names[] = {"net", NULL};
    Value a[1];
    BIND("bytes", names, 1, a);
    if (a[0].kind != V_MODEL) rt_error(I, "bytes: net must be a model, got %s", rt_type_name(a[0]));
    return vint(model_bytes(I, a[0], "bytes"));
}

static QPlan *plan_of(Interp *I, Value q, const char *fn) {
    if (q.kind == V_MODEL) {
        Model *m = (Model *)q.o;
        Value *r = env_find_local(m->env, "run");
        if (r && r->kind == V_BUILTIN && ((Builtin *)r->o)->fn == bi_quantized_forward)
            return ((Native *)((Builtin *)r->o)->self.o)->data;
    }
    rt_error(I, "%s: q must be a quantized model (quantize(net, calib=x)), got %s", fn,
             q.kind == V_MODEL ? ((Model *)q.o)->type_name : rt_type_name(q));
}

/* quant_report(net, q, x): per Linear of q, the SQNR in dB of its quantized
 * output against net's float output on x; prints a table, returns a dict
 * path -> SQNR */
BUILTIN(bi_quant_report) {
    static const char *const names[] = {"net", "q", "x", NULL};
    Value a[3];
    BIND("quant_report", names, 3, a);
    if (a[0].kind != V_MODEL)
        rt_error(I, "quant_report: net must be a model, got %s", rt_type_name(a[0]));
    QPlan *p = plan_of(I, a[1], "quant_report");
    if (a[2].kind != V_TENSOR)
        rt_error(I, "quant_report: x must be a tensor, got %s", rt_type_name(a[2]));
    /* net's Linears by the paths of q's */
    QPlan fp = {I, a[0], NULL, 0, 0};
    StrBuf path = {0};
    sb_puts(&path, "");
    Value mir = mirror(I, a[0], &path, &fp, 0);
    sb_free(&path);
    rt_release(I, mir);
    fp.net = VNONE;
    Trace t = trace(I, a[0], a[2], "quant_report");
    QuantLinear *L = specs(I, &fp, false);
    int cap = t.root - t.from + 1;
    QuantMatch *fm = tt_xmalloc((size_t)cap * sizeof *fm);
    int fn = quant_match(&I->lz.g, t.from, t.root, L, fp.n, fm, cap);
    free(L);
    /* the quantized forward, with each layer's output */
    Value yq = qforward(I, p, a[2], NULL, NULL, NULL);
    rt_release(I, yq);
    int *qout = NULL;
    QuantMatch *qm = NULL;
    int qn = 0;
    {
        Trace u = trace(I, p->net, a[2], "quant_report");
        QuantLinear *QL = specs(I, p, true); /* the scalars are realized (qforward) */
        int ucap = u.root - u.from + 1;
        qout = tt_xmalloc((size_t)ucap * sizeof *qout);
        qm = tt_xmalloc((size_t)ucap * sizeof *qm);
        qn = quant_match(&I->lz.g, u.from, u.root, QL, p->n, qm, ucap);
        if (quant_pass(&I->lz.g, u.from, u.root, QL, p->n, qout) < 0) {
            free(QL);
            rt_error(I, "%s", I->lz.g.err);
        }
        free(QL);
        rt_release(I, u.y);
    }
    Value d = rt_dict(I);
    printf("%-24s %10s\n", "layer", "SQNR (dB)");
    for (int i = 0; i < p->n; i++) {
        int fk = -1, qk = -1;
        for (int k = 0; k < fn && fk < 0; k++)
            if (strcmp(fp.e[fm[k].layer].path, p->e[i].path) == 0) fk = k;
        for (int k = 0; k < qn && qk < 0; k++)
            if (qm[k].layer == i) qk = k;
        if (fk < 0 || qk < 0) continue;
        Tensor *tf = rt_tensor_lazy(I, fm[fk].out), *tq = rt_tensor_lazy(I, qout[qk]);
        if (!shape_eq(&tf->shape, &tq->shape))
            rt_error(I, "quant_report: %s has shape %s in net but %s in q", p->e[i].path, "?", "?");
        const float *x = rt_data(I, tf), *y = rt_data(I, tq);
        double sig = 0, noise = 0;
        for (int64_t j = 0; j < shape_numel(&tf->shape); j++) {
            sig += (double)x[j] * x[j];
            noise += ((double)x[j] - y[j]) * ((double)x[j] - y[j]);
        }
        double db = noise > 0 ? 10 * log10(sig / noise) : INFINITY;
        printf("%-24s %10.2f\n", p->e[i].path[0] ? p->e[i].path : "(model)", db);
        Value key = rt_cstr(I, p->e[i].path);
        rt_dict_set(I, d, key, vfloat(db));
        rt_release(I, key);
        rt_release(I, vtensor(tf));
        rt_release(I, vtensor(tq));
    }
    fflush(stdout);
    free(fm);
    free(qm);
    free(qout);
    rt_release(I, t.y);
    for (int i = 0; i < fp.n; i++) {
        free(fp.e[i].path);
        rt_release(I, vtensor(fp.e[i].w));
        if (fp.e[i].b) rt_release(I, vtensor(fp.e[i].b));
        rt_release(I, vobj(&fp.e[i].ql->obj));
    }
    free(fp.e);
    return d;
}

void lib_register_ptq(Interp *I) {
    rt_define_global(I, "bytes", rt_builtin(I, "bytes", bi_bytes, VNONE));
    rt_define_global(I, "quant_report", rt_builtin(I, "quant_report", bi_quant_report, VNONE));
}
