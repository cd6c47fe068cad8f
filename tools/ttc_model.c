/* ttc_model.c - building the model ttc compiles and tracing its forward.
 *
 * Only the file's model and fn definitions run (never its training code).
 * The model gets its constructor's defaults, or -D NAME=N for a constructor
 * argument; each forward parameter becomes a symbolic input shaped by its
 * annotation, and calling forward on them records the graph.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ttc.h"

bool ttc_lookup_define(const TtcOptions *o, const char *name, long long *v) {
    for (int i = 0; i < o->ndefs; i++)
        if (strcmp(o->defs[i].name, name) == 0) {
            *v = o->defs[i].value;
            return true;
        }
    return false;
}

bool ttc_build_model(const TtcOptions *o, Interp *I, TtcModel *M) {
    memset(M, 0, sizeof *M);
    M->I = I;
    Value *slot = env_find_local(I->ev.globals, o->model);
    if (!slot || slot->kind != V_MODELDEF) {
        fprintf(stderr, "ttc: error: %s defines no model '%s'\n", o->file, o->model);
        return false;
    }
    ModelDef *d = (ModelDef *)slot->o;
    const AstList *params = &d->def->list;
    /* constructor arguments: -D values, else the defaults */
    const char *kwn[64];
    Value kwv[64];
    int nkw = 0;
    StrBuf missing = {0};
    for (int i = 0; i < params->len && i < 64; i++) {
        const AstNode *p = params->items[i];
        long long v;
        if (ttc_lookup_define(o, p->str, &v)) {
            kwn[nkw] = p->str;
            kwv[nkw++] = vint(v);
        } else if (!p->a) {
            sb_printf(&missing, "%s%s", missing.len ? ", " : "", p->str);
        }
    }
    if (missing.len) {
        fprintf(stderr,
                "ttc: error: model %s needs constructor arguments without defaults: %s "
                "(give them with -D NAME=N)\n",
                o->model, missing.s);
        sb_free(&missing);
        return false;
    }
    I->ev.loc = d->def->loc;
    M->net = rt_call(I, *slot, NULL, 0, kwn, kwv, nkw);
    M->m = (Model *)M->net.o;
    M->fwd = model_method(M->m, "forward");
    if (!M->fwd) {
        fprintf(stderr, "ttc: error: model %s has no forward method\n", o->model);
        return false;
    }
    if (o->weights) {
        /* load(net, path) of the standard library: every name, shape and
         * dtype checked, every mismatch listed, nothing changed unless all
         * match */
        Value *ld = env_find_local(I->ev.globals, "load");
        if (!ld) {
            fprintf(stderr, "ttc: error: the builtin load() is missing\n");
            return false;
        }
        I->ev.loc = SRCLOC_NONE;
        Value args[2] = {M->net, rt_cstr(I, o->weights)};
        Value r = rt_call(I, *ld, args, 2, NULL, NULL, 0);
        rt_release(I, args[1]);
        rt_release(I, r);
    }
    return true;
}

int64_t ttc_dim_value(const TtcOptions *o, TtcModel *M, const AstNode *d, bool *symbolic) {
    Interp *I = M->I;
    Model *m = M->m;
    if (symbolic) *symbolic = false;
    if (d->kind == AST_INT) return d->ival;
    if (d->kind == AST_NAME) {
        long long v;
        if (ttc_lookup_define(o, d->str, &v)) return v;
        bool found;
        Value x = eval_lookup(I, m->env, d->str, &found);
        if (found && x.kind == V_INT && m->env) {
            /* only names of the instance (not globals) */
            Value *f = rt_model_field(m, d->str);
            Value *c = env_find_local(m->env, d->str);
            if (f || c) return x.i;
        }
        rt_release(I, x);
        if (symbolic) *symbolic = true;
        return 1;
    }
    Value v = eval_expr(I, m->env, d);
    int64_t r = rt_to_int(I, v, "dimension");
    rt_release(I, v);
    return r;
}

/* Input slots of the graph rt_extract_graph makes: the INPUT nodes of I->lz.g
 * that the outputs reach, in node order. */
static int *input_slots(Interp *I, const int *outs, int nout, int nslots) {
    IrGraph *g = &I->lz.g;
    int n = g->n;
    char *needed = tt_xcalloc((size_t)(n ? n : 1), 1);
    for (int j = 0; j < nout; j++) needed[outs[j]] = 1;
    for (int id = n - 1; id >= 0; id--) {
        if (!needed[id]) continue;
        const IrNode *nd = ir_node(g, id);
        for (int k = 0; k < nd->nin; k++) needed[nd->in[k]] = 1;
    }
    int *slots = tt_xmalloc(((size_t)nslots + 1) * sizeof *slots), k = 0;
    for (int id = 0; id < n; id++)
        if (needed[id] && ir_node(g, id)->op == OP_INPUT) {
            TT_ASSERT(k < nslots);
            slots[k++] = id;
        }
    TT_ASSERT(k == nslots);
    free(needed);
    return slots;
}

bool ttc_trace(const TtcOptions *o, TtcModel *M, const char *sym, int64_t rows, IrGraph *E,
               int *arg_node, int **slot_node) {
    Interp *I = M->I;
    const AstNode *fwd = M->fwd;
    rt_reset_graph(I); /* only the trace from here on */
    int nin = fwd->list.len;
    Value *args = tt_xcalloc((size_t)(nin ? nin : 1), sizeof *args);
    for (int i = 0; i < nin; i++) {
        const AstNode *p = fwd->list.items[i];
        const AstNode *ty = p->type;
        if (!ty || !ty->ival) {
            fprintf(stderr,
                    "ttc: error: %s.forward: parameter '%s' needs a tensor type such as "
                    "f32[B, 64] to be traced\n",
                    o->model, p->str);
            free(args);
            return false;
        }
        DType dt = TY_F32;
        if (ty->str && strcmp(ty->str, "i32") == 0)
            dt = TY_I32;
        else if (ty->str && strcmp(ty->str, "i8") == 0)
            dt = TY_I8;
        Shape s = {0};
        for (int k = 0; k < ty->list.len; k++) {
            const AstNode *dd = ty->list.items[k];
            if (dd->kind == AST_ELLIPSIS) continue;
            if (s.ndim == IR_MAXDIM) break;
            bool symbolic;
            int64_t v = ttc_dim_value(o, M, dd, &symbolic);
            if (symbolic && sym && strcmp(dd->str, sym) == 0) v = rows;
            s.d[s.ndim++] = v;
        }
        int id = ir_input(&I->lz.g, dt, s, p->str, p->loc);
        if (id < 0) {
            fprintf(stderr, "ttc: error: %s\n", I->lz.g.err);
            free(args);
            return false;
        }
        if (arg_node) arg_node[i] = id;
        Tensor *t = rt_tensor_lazy(I, id);
        rt_lazy_unlink(I, t); /* symbolic: never realized */
        t->name = rt_intern(I, p->str);
        args[i] = vtensor(t);
    }
    I->ev.loc = fwd->loc;
    Value out = rt_call(I, M->net, args, nin, NULL, NULL, 0);
    int outs[64], nout = 0;
    if (out.kind == V_TENSOR) {
        outs[nout++] = rt_node(I, (Tensor *)out.o);
    } else if (out.kind == V_TUPLE || out.kind == V_LIST) {
        List *l = (List *)out.o;
        for (int k = 0; k < l->len && nout < 64; k++)
            if (l->items[k].kind == V_TENSOR) outs[nout++] = rt_node(I, (Tensor *)l->items[k].o);
    }
    free(args);
    if (nout == 0) {
        fprintf(stderr, "ttc: error: %s.forward returned %s, not a tensor\n", o->model,
                rt_type_name(out));
        return false;
    }
    rt_extract_graph(I, outs, nout, E);
    if (slot_node) *slot_node = input_slots(I, outs, nout, E->ninputs);
    /* the results depend on the symbolic inputs: never realized (the next
     * trace's rt_reset_graph would try) */
    if (out.kind == V_TENSOR) {
        rt_lazy_unlink(I, (Tensor *)out.o);
    } else {
        List *l = (List *)out.o;
        for (int k = 0; k < l->len; k++)
            if (l->items[k].kind == V_TENSOR) rt_lazy_unlink(I, (Tensor *)l->items[k].o);
    }
    rt_release(I, out);
    return true;
}
