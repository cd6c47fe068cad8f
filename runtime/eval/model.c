/* model.c - calling fns and methods (argument binding, type annotations),
 * building model instances, naming their parameters.
 *
 * A model instance keeps its declarations in Model.fields and its
 * constructor arguments in its instance scope (Model.env, whose `model`
 * pointer makes field lookups see the current field values). A method runs
 * in a fresh scope whose parent is the instance scope, so fields are read by
 * bare name.
 */
#include "eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stack.h"

#define MAX_DEPTH 900

/* -- printing annotations -- */

void ast_expr_str(const AstNode *e, StrBuf *out) {
    if (tt_stack_exhausted()) { /* a dim written as a very long chain */
        sb_puts(out, "...");
        return;
    }
    switch (e->kind) {
    case AST_INT:
        sb_printf(out, "%lld", (long long)e->ival);
        break;
    case AST_FLOAT:
        sb_printf(out, "%g", e->fval);
        break;
    case AST_NAME:
        sb_puts(out, e->str);
        break;
    case AST_ELLIPSIS:
        sb_puts(out, "...");
        break;
    case AST_BINARY:
        ast_expr_str(e->a, out);
        sb_printf(out, " %s ", ast_op_str(e->op));
        ast_expr_str(e->b, out);
        break;
    case AST_UNARY:
        sb_puts(out, ast_op_str(e->op));
        ast_expr_str(e->a, out);
        break;
    case AST_MEMBER:
        ast_expr_str(e->a, out);
        sb_printf(out, ".%s", e->str);
        break;
    case AST_CALL:
        ast_expr_str(e->a, out);
        sb_puts(out, "(...)");
        break;
    default:
        sb_puts(out, "?");
        break;
    }
}

void ast_type_str(const AstNode *t, StrBuf *out) {
    sb_puts(out, t->str ? t->str : "?");
    if (!t->ival) return;
    sb_putc(out, '[');
    for (int i = 0; i < t->list.len; i++) {
        if (i) sb_puts(out, ", ");
        ast_expr_str(t->list.items[i], out);
    }
    sb_putc(out, ']');
}

static void value_type_str(Value v, StrBuf *out) {
    if (v.kind == V_TENSOR) {
        Tensor *t = (Tensor *)v.o;
        char s[128];
        sb_printf(out, "%s%s", dtype_name(t->dtype), shape_str(&t->shape, s, sizeof s));
    } else {
        sb_puts(out, rt_type_name(v));
    }
}

const char *func_display_name(Interp *I, Func *f) {
    if (!f->self) return f->def->str ? f->def->str : "<fn>";
    if (!f->display) { /* every call of a method pushes a frame with this name */
        char buf[256]; /* "Type.method", without printf: a bound method is new per call */
        size_t a = strlen(f->self->type_name), b = strlen(f->def->str);
        if (a > 127) a = 127;
        if (b > 127) b = 127;
        memcpy(buf, f->self->type_name, a);
        buf[a] = '.';
        memcpy(buf + a + 1, f->def->str, b);
        buf[a + 1 + b] = 0;
        f->display = rt_intern(I, buf);
    }
    return f->display;
}

/* -- type annotations -- */

/* Looks up a dim name: the call scope, then the scopes up to (not
 * including) the globals: a method sees its instance's fields and
 * constructor arguments (fan_in), not a global B. */
static bool dim_lookup(Interp *I, Env *callenv, const char *name, int64_t *out) {
    for (Env *e = callenv; e && e != I->ev.globals; e = e->parent) {
        Value *v = e->model ? rt_model_field(e->model, name) : NULL;
        if (!v) v = env_find_local(e, name);
        if (v) {
            if (v->kind == V_INT)
                *out = v->i;
            else if (v->kind == V_BOOL)
                *out = v->b;
            else if (v->kind == V_FLOAT && v->f == (double)(int64_t)v->f)
                *out = (int64_t)v->f;
            else
                rt_error(I, "dimension '%s' is a %s, not an int%s", name, rt_type_name(*v),
                         v->kind == V_FLOAT ? ": use // for integer division, or int()" : "");
            return true;
        }
    }
    return false;
}

/* Checks v against annotation ty, binding new dim names in callenv. On a
 * mismatch writes the reason ("dimension 1: 63 != 64") and returns false. */
static bool type_check(Interp *I, Env *callenv, const AstNode *ty, Value v, char *why,
                       size_t wlen) {
    const char *base = ty->str ? ty->str : "";
    why[0] = 0;
    DType want;
    if (strcmp(base, "f32") == 0)
        want = TY_F32;
    else if (strcmp(base, "i32") == 0)
        want = TY_I32;
    else if (strcmp(base, "i8") == 0)
        want = TY_I8;
    else if (strcmp(base, "tensor") == 0)
        want = TY__COUNT;
    else {
        if (strcmp(base, "int") == 0) {
            /* typically a size computed with / (a float in tt, as in Python 3) */
            if (v.kind == V_FLOAT) snprintf(why, wlen, "use // for integer division, or int()");
            return v.kind == V_INT;
        }
        if (strcmp(base, "float") == 0) return v.kind == V_INT || v.kind == V_FLOAT;
        if (strcmp(base, "bool") == 0) return v.kind == V_BOOL;
        if (strcmp(base, "str") == 0) return v.kind == V_STR;
        if (strcmp(base, "list") == 0) return v.kind == V_LIST;
        if (strcmp(base, "tuple") == 0) return v.kind == V_TUPLE;
        if (strcmp(base, "dict") == 0) return v.kind == V_DICT;
        if (v.kind == V_MODEL) return strcmp(((Model *)v.o)->type_name, base) == 0;
        return true; /* other names (model types given other values, ...) */
    }
    if (v.kind != V_TENSOR) return false;
    Tensor *t = (Tensor *)v.o;
    if (want != TY__COUNT && t->dtype != want) return false;
    if (!ty->ival) return true;
    int nd = ty->list.len, ell = -1;
    for (int i = 0; i < nd; i++)
        if (ty->list.items[i]->kind == AST_ELLIPSIS) ell = i;
    int fixed = ell >= 0 ? nd - 1 : nd;
    int rank = t->shape.ndim;
    if (ell < 0 ? rank != fixed : rank < fixed) {
        snprintf(why, wlen, "expected %s%d dimensions, got %d", ell >= 0 ? "at least " : "", fixed,
                 rank);
        return false;
    }
    for (int i = 0; i < nd; i++) {
        const AstNode *d = ty->list.items[i];
        if (d->kind == AST_ELLIPSIS) continue;
        int dim = ell >= 0 && i > ell ? rank - (nd - i) : i;
        int64_t actual = t->shape.d[dim], expect;
        if (d->kind == AST_NAME) {
            if (!dim_lookup(I, callenv, d->str, &expect)) {
                env_define(I, callenv, d->str, vint(actual));
                continue;
            }
        } else if (d->kind == AST_INT) {
            expect = d->ival;
        } else {
            Value e = eval_expr(I, callenv, d);
            expect = rt_to_int(I, e, "dimension");
            rt_release(I, e);
        }
        if (expect != actual) {
            snprintf(why, wlen, "dimension %d: %lld != %lld", dim, (long long)actual,
                     (long long)expect);
            return false;
        }
    }
    return true;
}

static _Noreturn void annotation_failed(Interp *I, const AstNode *ty, Value v, const char *fname,
                                        const char *what, const char *why, SrcLoc at) {
    StrBuf want = {0}, got = {0};
    ast_type_str(ty, &want);
    value_type_str(v, &got);
    char msg[700];
    snprintf(msg, sizeof msg, "%s: %s expects %s, got %s%s%s%s", fname, what, want.s, got.s,
             why[0] ? " (" : "", why, why[0] ? ")" : "");
    sb_free(&want);
    sb_free(&got);
    rt_error_at(I, at, "%s", msg);
}

void check_annotation(Interp *I, Env *callenv, const AstNode *ty, Value v, const char *fname,
                      const char *what, SrcLoc at) {
    char why[160];
    if (!type_check(I, callenv, ty, v, why, sizeof why))
        annotation_failed(I, ty, v, fname, what, why, at);
}

/* -- binding arguments to an AST parameter list -- */

static void bind_params(Interp *I, const char *fname, const AstList *params, Env *into,
                        Env *defaults_env, const Value *args, int nargs, const char *const *kwnames,
                        const Value *kwargs, int nkw) {
    int np = params->len;
    if (nargs > np)
        rt_error(I, "%s() takes %d argument%s but %d %s given", fname, np, np == 1 ? "" : "s",
                 nargs, nargs == 1 ? "was" : "were");
    Value vb[16];
    bool gb[16];
    Value *vals = np <= 16 ? vb : tt_xmalloc((size_t)np * sizeof *vals);
    bool *given = np <= 16 ? gb : tt_xmalloc((size_t)np * sizeof *given);
    for (int i = 0; i < np; i++) given[i] = false;
    for (int i = 0; i < nargs; i++) {
        vals[i] = args[i];
        given[i] = true;
    }
    for (int k = 0; k < nkw; k++) {
        int j = 0;
        while (j < np && strcmp(params->items[j]->str, kwnames[k]) != 0) j++;
        if (j == np) rt_error(I, "%s() got an unexpected keyword argument '%s'", fname, kwnames[k]);
        if (given[j]) rt_error(I, "%s() got multiple values for argument '%s'", fname, kwnames[k]);
        vals[j] = kwargs[k];
        given[j] = true;
    }
    for (int i = 0; i < np; i++)
        if (!given[i] && !params->items[i]->a)
            rt_error(I, "%s() missing argument '%s'", fname, params->items[i]->str);
    SrcLoc site = I->ev.loc;
    for (int i = 0; i < np; i++) {
        const AstNode *p = params->items[i];
        Value v;
        if (given[i]) {
            v = rt_retain(vals[i]);
        } else {
            v = eval_expr(I, defaults_env, p->a);
            I->ev.loc = site;
        }
        env_define(I, into, p->str, v);
    }
    /* annotations, in order, once every argument is bound */
    for (int i = 0; i < np; i++) {
        const AstNode *p = params->items[i];
        if (!p->type) continue;
        char why[160];
        Value v = *env_find_local(into, p->str);
        if (!type_check(I, into, p->type, v, why, sizeof why)) {
            char what[160]; /* only now: this runs on every call */
            snprintf(what, sizeof what, "argument '%s'", p->str);
            annotation_failed(I, p->type, v, fname, what, why, site);
        }
        /* a float parameter given an int holds a float */
        if (p->type->str && strcmp(p->type->str, "float") == 0) {
            Value *slot = env_find_local(into, p->str);
            if (slot->kind == V_INT) *slot = vfloat((double)slot->i);
        }
    }
    if (vals != vb) free(vals);
    if (given != gb) free(given);
}

/* -- calls -- */

static void enter(Interp *I) {
    if (++I->ev.depth > MAX_DEPTH) {
        I->ev.depth = 0; /* the handler restores it */
        rt_error(I, "maximum call depth (%d) exceeded", MAX_DEPTH);
    }
}

Value call_func(Interp *I, Func *f, const Value *args, int nargs, const char *const *kwnames,
                const Value *kwargs, int nkw) {
    const AstNode *def = f->def;
    const char *name = func_display_name(I, f);
    SrcLoc site = I->ev.loc;
    enter(I);
    Env *env = env_new(I, f->closure);
    int mark = rt_owned_mark(I);
    rt_own_env(I, env);
    bind_params(I, name, &def->list, env, f->closure, args, nargs, kwnames, kwargs, nkw);
    rt_push_frame(I, name, site);
    Value ret = VNONE;
    Flow fl = exec_block_in(I, env, def->b, &ret);
    if (fl != FLOW_RETURN) ret = VNONE;
    rt_own(I, ret);
    if (def->type) check_annotation(I, env, def->type, ret, name, "return value", def->type->loc);
    rt_owned_pop(I, mark);
    rt_pop_frame(I);
    env_release(I, env);
    I->ev.depth--;
    I->ev.loc = site;
    return ret;
}

/* -- models -- */

const AstNode *model_method(Model *m, const char *name) {
    if (!m->def) return NULL;
    const AstNode *body = m->def->def->b;
    if (!body) return NULL;
    for (int i = 0; i < body->list.len; i++) {
        const AstNode *d = body->list.items[i];
        if (d->kind == AST_FN && d->str && strcmp(d->str, name) == 0) return d;
    }
    return NULL;
}

Value model_bind_method(Interp *I, Model *m, const AstNode *def) {
    Func *f = rt_alloc_obj(I, V_FUNC, sizeof(Func));
    f->def = def;
    f->closure = env_retain(m->env);
    f->self = m;
    m->obj.refcount++;
    return vobj(&f->obj);
}

/* Field kinds: a plain field, a `param`, a `buffer`. */
enum { FIELD, PARAM, BUFFER };

static void add_field(Interp *I, Model *m, const char *name, Value v, int kind) {
    name = rt_intern(I, name);
    for (int i = 0; i < m->nfields; i++) {
        if (m->field_names[i] == name) {
            Value old = m->fields[i];
            m->fields[i] = v;
            m->is_param[i] = kind == PARAM;
            m->is_buffer[i] = kind == BUFFER;
            rt_release(I, old);
            return;
        }
    }
    int n = m->nfields + 1;
    m->field_names = tt_xrealloc(m->field_names, (size_t)n * sizeof *m->field_names);
    m->fields = tt_xrealloc(m->fields, (size_t)n * sizeof *m->fields);
    m->is_param = tt_xrealloc(m->is_param, (size_t)n * sizeof *m->is_param);
    m->is_buffer = tt_xrealloc(m->is_buffer, (size_t)n * sizeof *m->is_buffer);
    m->field_names[m->nfields] = name;
    m->fields[m->nfields] = v;
    m->is_param[m->nfields] = kind == PARAM;
    m->is_buffer[m->nfields] = kind == BUFFER;
    m->nfields = n;
}

void rt_model_add_field(Interp *I, Model *m, const char *name, Value v, bool buffer) {
    add_field(I, m, name, v, buffer ? BUFFER : FIELD);
}

/* A fresh realized copy of v: a parameter (registered, trainable) or a
 * buffer (neither: optimizers and backward never see it). */
static Tensor *make_param(Interp *I, Value v, const char *name, bool buffer) {
    char what[160];
    snprintf(what, sizeof what, "%s %s", buffer ? "buffer" : "param", name);
    Tensor *src = rt_to_tensor(I, v, what);
    int mark = rt_owned_mark(I);
    rt_own(I, vtensor(src));
    void *data = rt_data(I, src);
    Tensor *p = rt_tensor_new(I, src->dtype, src->shape);
    memcpy(p->buf->data, data, (size_t)shape_numel(&src->shape) * dtype_size(src->dtype));
    rt_owned_pop(I, mark);
    rt_release(I, vtensor(src));
    if (!buffer) rt_register_param(I, p);
    p->name = rt_intern(I, name);
    return p;
}

static void let_fields(Interp *I, Model *m, const AstNode *d, Value v) {
    if (!d->ival) {
        add_field(I, m, d->list.items[0]->str, v, FIELD);
        return;
    }
    if (v.kind != V_LIST && v.kind != V_TUPLE)
        rt_error(I, "cannot unpack %s into %d names", rt_type_name(v), d->list.len);
    List *l = (List *)v.o;
    if (l->len != d->list.len)
        rt_error(I, "expected %d values to unpack, got %d", d->list.len, l->len);
    for (int i = 0; i < l->len; i++)
        add_field(I, m, d->list.items[i]->str, rt_retain(l->items[i]), FIELD);
    rt_release(I, v);
}

Value model_instantiate(Interp *I, ModelDef *d, const Value *args, int nargs,
                        const char *const *kwnames, const Value *kwargs, int nkw) {
    const AstNode *def = d->def;
    const char *name = def->str;
    SrcLoc site = I->ev.loc;
    enter(I);
    Env *ienv = env_new(I, d->closure);
    int mark = rt_owned_mark(I);
    rt_own_env(I, ienv);
    bind_params(I, name, &def->list, ienv, d->closure, args, nargs, kwnames, kwargs, nkw);
    rt_owned_pop(I, mark);
    Model *m = rt_alloc_obj(I, V_MODEL, sizeof(Model));
    m->def = d;
    d->obj.refcount++;
    m->type_name = rt_intern(I, name);
    m->env = ienv; /* takes the reference */
    ienv->model = m;
    rt_own(I, vobj(&m->obj)); /* a half-built model, when a declaration fails */
    rt_push_frame(I, rt_intern(I, name), site);
    const AstNode *body = def->b;
    for (int i = 0; body && i < body->list.len; i++) {
        const AstNode *decl = body->list.items[i];
        switch (decl->kind) {
        case AST_PARAM_DECL: {
            Value v = eval_expr(I, ienv, decl->a);
            I->ev.loc = decl->loc;
            bool buffer = decl->ival != 0;
            if (v.kind == V_NONE) { /* an absent parameter: Conv2d(bias=false) */
                add_field(I, m, decl->str, VNONE, FIELD);
                break;
            }
            rt_own(I, v);
            Tensor *p = make_param(I, v, decl->str, buffer);
            rt_owned_pop(I, mark + 1);
            rt_release(I, v);
            rt_own(I, vtensor(p));
            if (decl->type)
                check_annotation(I, ienv, decl->type, vtensor(p), name, buffer ? "buffer" : "param",
                                 decl->loc);
            rt_owned_pop(I, mark + 1);
            add_field(I, m, decl->str, vtensor(p), buffer ? BUFFER : PARAM);
            break;
        }
        case AST_FIELD:
            add_field(I, m, decl->str, eval_expr(I, ienv, decl->a), FIELD);
            break;
        case AST_LET: {
            Value v = eval_expr(I, ienv, decl->a);
            I->ev.loc = decl->loc;
            rt_own(I, v); /* let_fields fails before it takes v */
            let_fields(I, m, decl, v);
            rt_owned_pop(I, mark + 1);
            break;
        }
        case AST_FN:
            break; /* methods are found in the definition */
        default:
            I->ev.loc = decl->loc;
            rt_error(I, "only declarations (param, fields, let, methods) are allowed in a model");
        }
    }
    model_name_params(I, m);
    rt_owned_pop(I, mark);
    rt_pop_frame(I);
    I->ev.depth--;
    I->ev.loc = site;
    return vobj(&m->obj);
}

/* -- parameter paths -- */

/* Visits every parameter (and with `buffers` every buffer) of a model tree
 * with its dotted path ("fc1.w", "blocks.0.attn.wq", "bn.running_mean"):
 * fields in declaration order, list and tuple items by index. The one walk
 * behind naming, parameters() and named_parameters() (so the optimizers),
 * and save/load (rt_state_tensors). */
typedef void (*ParamVisit)(Interp *I, Value param, const char *path, void *ctx);

static void walk_params(Interp *I, Value v, StrBuf *path, int depth, bool buffers, ParamVisit visit,
                        void *ctx) {
    if (depth > 32) return;
    size_t len = path->len;
    if (v.kind == V_MODEL) {
        Model *m = (Model *)v.o;
        for (int i = 0; i < m->nfields; i++) {
            Value f = m->fields[i];
            if (path->len) sb_putc(path, '.');
            sb_puts(path, m->field_names[i]);
            if (f.kind == V_TENSOR && (m->is_param[i] || (buffers && m->is_buffer[i])))
                visit(I, f, path->s, ctx);
            else if (f.kind != V_TENSOR)
                walk_params(I, f, path, depth + 1, buffers, visit, ctx);
            path->len = len;
            path->s[len] = 0;
        }
    } else if (v.kind == V_LIST || v.kind == V_TUPLE) {
        List *l = (List *)v.o;
        for (int i = 0; i < l->len; i++) {
            sb_printf(path, ".%d", i);
            walk_params(I, l->items[i], path, depth + 1, buffers, visit, ctx);
            path->len = len;
            path->s[len] = 0;
        }
    }
}

static void visit_name(Interp *I, Value param, const char *path, void *ctx) {
    ((Tensor *)param.o)->name = rt_intern(I, path);
}

void model_name_params(Interp *I, Model *m) {
    StrBuf path = {0};
    sb_puts(&path, "");
    walk_params(I, vobj(&m->obj), &path, 0, true, visit_name, NULL);
    sb_free(&path);
}

typedef struct Collect {
    Value out; /* the list being filled */
    bool named;
} Collect;

/* Appends a parameter (or a (path, parameter) tuple) unless a shared
 * submodule already listed it. */
static void visit_collect(Interp *I, Value param, const char *path, void *ctx) {
    Collect *c = ctx;
    List *l = (List *)c->out.o;
    for (int k = 0; k < l->len; k++) {
        Value x = l->items[k];
        if (c->named) x = ((List *)x.o)->items[1];
        if (x.o == param.o) return;
    }
    if (c->named) {
        Value t = rt_tuple(I, 2);
        ((List *)t.o)->items[0] = rt_cstr(I, path);
        ((List *)t.o)->items[1] = rt_retain(param);
        rt_list_push(I, c->out, t);
    } else {
        rt_list_push(I, c->out, rt_retain(param));
    }
}

Value rt_parameters(Interp *I, Value m, bool named) {
    if (m.kind != V_MODEL)
        rt_error(I, "%s: expected a model, got %s", named ? "named_parameters" : "parameters",
                 rt_type_name(m));
    Collect c = {rt_list(I, 0), named};
    StrBuf path = {0};
    sb_puts(&path, "");
    walk_params(I, m, &path, 0, false, visit_collect, &c);
    sb_free(&path);
    return c.out;
}

Value rt_state_tensors(Interp *I, Value m, const char *fn) {
    if (m.kind != V_MODEL) rt_error(I, "%s: expected a model, got %s", fn, rt_type_name(m));
    Collect c = {rt_list(I, 0), true};
    StrBuf path = {0};
    sb_puts(&path, "");
    walk_params(I, m, &path, 0, true, visit_collect, &c);
    sb_free(&path);
    return c.out;
}
