/* eval_stmt.c - executing statements: let and assignment, control flow,
 * definitions, profile blocks, whole programs.
 */
#include "containers.h"
#include "capture.h"
#include "eval.h"
#include "import.h"
#include "signals.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void eval_index_assign(Interp *I, Env *env, const AstNode *target, Value v); /* eval_expr.c */

/* -- binding names -- */

static void unpack_into(Interp *I, Env *env, const AstList *names, Value v, SrcLoc loc) {
    I->ev.loc = loc;
    if (v.kind != V_LIST && v.kind != V_TUPLE)
        rt_error(I, "cannot unpack %s into %d names", rt_type_name(v), names->len);
    List *l = (List *)v.o;
    if (l->len != names->len)
        rt_error(I, "expected %d values to unpack, got %d", names->len, l->len);
    for (int i = 0; i < l->len; i++)
        env_define(I, env, names->items[i]->str, rt_retain(l->items[i]));
}

/* Assigns to an existing variable or model field; returns false if the name
 * is not declared anywhere. Takes v. */
static void assign_field(Interp *I, Model *m, const char *name, Value v);

static bool assign_name(Interp *I, Env *env, const char *name, Value v) {
    for (Env *e = env; e; e = e->parent) {
        if (e->model && rt_model_field(e->model, name)) {
            rt_capture_forbid(I, "assigns to a model field");
            assign_field(I, e->model, name, v);
            return true;
        }
        Value *slot = env_find_local(e, name);
        if (slot) {
            if (I->cap.rec && e->serial < rt_capture_first_serial(I))
                rt_capture_forbid(I, "assigns to a variable outside the call");
            Value old = *slot;
            *slot = v;
            rt_release(I, old);
            return true;
        }
    }
    return false;
}

/* model.field = v: a `param` or `buffer` field keeps its tensor (its name,
 * its place in optimizers or in save) and takes the new value; other fields
 * are replaced. */
static void assign_field(Interp *I, Model *m, const char *name, Value v) {
    for (int i = m->nfields - 1; i >= 0; i--) {
        if (strcmp(m->field_names[i], name) != 0) continue;
        if ((m->is_param[i] || m->is_buffer[i]) && m->fields[i].kind == V_TENSOR) {
            Tensor *p = (Tensor *)m->fields[i].o;
            const char *what = m->is_buffer[i] ? "buffer" : "parameter";
            if (v.kind != V_TENSOR && v.kind != V_INT && v.kind != V_FLOAT)
                rt_error(I, "cannot assign %s to %s '%s'", rt_type_name(v), what, name);
            int x;
            if (v.kind == V_TENSOR)
                x = rt_node(I, (Tensor *)v.o);
            else
                x = rt_scalar_node(I, p->dtype, v.kind == V_INT ? (double)v.i : v.f, false);
            x = rt_check_node(I, ir_cast(&I->lz.g, x, p->dtype, I->ev.loc));
            const Shape *s = &ir_node(&I->lz.g, x)->shape;
            if (!shape_eq(s, &p->shape)) {
                char a[96], b[96];
                shape_str(s, a, sizeof a);
                shape_str(&p->shape, b, sizeof b);
                if (s->ndim <= p->shape.ndim)
                    x = ir_broadcast_to(&I->lz.g, x, p->shape, I->ev.loc);
                else
                    x = -1;
                if (x < 0)
                    rt_error(I, "cannot assign a tensor of shape %s to %s '%s' of shape %s", a,
                             what, name, b);
            }
            rt_tensor_assign(I, p, x);
            rt_release(I, v);
            return;
        }
        Value old = m->fields[i];
        m->fields[i] = v;
        rt_release(I, old);
        return;
    }
    rt_error(I, "model %s has no field '%s'", m->type_name, name);
}

static void assign_member(Interp *I, Value base, const char *name, Value v) {
    switch (base.kind) {
    case V_MODEL:
        assign_field(I, (Model *)base.o, name, v);
        return;
    case V_TENSOR: {
        Tensor *t = (Tensor *)base.o;
        if (strcmp(name, "grad") != 0) rt_error(I, "cannot assign to tensor member '%s'", name);
        if (v.kind == V_NONE) {
            if (t->grad) rt_release(I, vtensor(t->grad));
            t->grad = NULL;
            return;
        }
        if (v.kind != V_TENSOR)
            rt_error(I, "a gradient must be a tensor or none, got %s", rt_type_name(v));
        Tensor *g = (Tensor *)v.o;
        if (!shape_eq(&g->shape, &t->shape) || g->dtype != t->dtype)
            rt_error(I, "gradient %s does not match the tensor's type %s", rt_type_name(v),
                     rt_type_name(base));
        if (t->grad) rt_release(I, vtensor(t->grad));
        t->grad = g; /* takes v */
        return;
    }
    case V_RECORD:
        rt_error(I, "records are immutable: cannot assign to field '%s'", name);
    default:
        rt_error(I, "cannot assign to member '%s' of %s", name, rt_type_name(base));
    }
}

static AstOp compound_op(AstOp op) {
    return op;
}

static void exec_assign(Interp *I, Env *env, const AstNode *n) {
    const AstNode *t = n->a;
    Value v = eval_expr(I, env, n->b);
    int mark = rt_owned_mark(I);
    rt_own(I, v);
    if (n->op != AOP_NONE) {
        Value old = eval_expr(I, env, t);
        rt_own(I, old);
        SrcLoc l = n->loc;
        if (n->op_line > 0) {
            l.line = l.end_line = n->op_line;
            l.col = n->op_col;
            l.end_col = n->op_col + 1;
        }
        I->ev.loc = l;
        Value r = eval_binary_values(I, compound_op(n->op), old, v);
        rt_owned_pop(I, mark);
        rt_release(I, v);
        rt_own(I, old);
        rt_own(I, r);
        if (old.kind == V_TENSOR && ((Tensor *)old.o)->requires_grad) {
            /* a parameter, however it was reached (a name bound by a for over
             * parameters(), a list item, a field): updated in place, as
             * PyTorch's p -= lr * p.grad; every holder sees the new value */
            rt_tensor_set(I, (Tensor *)old.o, r, "in-place update");
            rt_owned_pop(I, mark);
            rt_release(I, r);
            rt_release(I, old);
            return;
        }
        rt_owned_pop(I, mark);
        rt_release(I, old);
        v = r;
        rt_own(I, v);
    }
    I->ev.loc = t->loc;
    switch (t->kind) {
    /* assign_name and assign_member take v once they succeed; they fail
     * before taking it, so v stays owned until they return */
    case AST_NAME:
        if (!assign_name(I, env, t->str, v))
            rt_error(I, "assignment to undeclared variable '%s' (declare it with let)", t->str);
        rt_owned_pop(I, mark);
        break;
    case AST_MEMBER: {
        Value base = eval_expr(I, env, t->a);
        rt_own(I, base);
        I->ev.loc = t->loc;
        rt_capture_forbid(I, "assigns to a member");
        assign_member(I, base, t->str, v);
        rt_owned_pop(I, mark);
        rt_release(I, base);
        break;
    }
    case AST_INDEX:
        rt_capture_forbid(I, "assigns to an item");
        eval_index_assign(I, env, t, v);
        rt_owned_pop(I, mark);
        rt_release(I, v);
        break;
    default:
        rt_error(I, "cannot assign to this expression");
    }
}

/* -- loops -- */

/* One iteration of a for loop: binds the loop variables to item (taking
 * its reference) in a fresh scope and runs the body. Returns true when the
 * loop must stop (break, or return with *result set). */
static bool run_iteration(Interp *I, Env *env, const AstNode *n, Value item, Value *ret,
                          Flow *result) {
    Env *e = env_new(I, env);
    int mark = rt_owned_mark(I);
    rt_own_env(I, e);
    if (n->ival || n->list.len > 1) {
        rt_own(I, item);
        unpack_into(I, e, &n->list, item, n->loc);
        rt_owned_pop(I, mark + 1);
        rt_release(I, item);
    } else {
        env_define(I, e, n->list.items[0]->str, item);
    }
    Flow f = exec_block_in(I, e, n->b, ret);
    rt_owned_pop(I, mark);
    env_release(I, e);
    if (f == FLOW_RETURN) *result = f;
    return f == FLOW_BREAK || f == FLOW_RETURN;
}

static Flow exec_for(Interp *I, Env *env, const AstNode *n, Value *ret) {
    Value it = eval_expr(I, env, n->a);
    int mark = rt_owned_mark(I);
    rt_own(I, it);
    I->ev.loc = n->a->loc;
    Flow result = FLOW_NORMAL;
    switch (it.kind) {
    case V_RANGE: {
        Range *r = (Range *)it.o;
        int64_t step = rt_range_step(r), len = rt_range_len(r);
        for (int64_t k = 0; k < len; k++) {
            int64_t i = (int64_t)((uint64_t)r->lo + (uint64_t)k * (uint64_t)step);
            if (run_iteration(I, env, n, vint(i), ret, &result)) break;
        }
        break;
    }
    case V_STR: { /* its characters (code points) */
        Str *s = (Str *)it.o;
        for (size_t off = 0; off < s->len;) {
            size_t len = utf8_step(s->s + off, s->len - off);
            Value item = rt_str(I, s->s + off, len);
            off += len;
            if (run_iteration(I, env, n, item, ret, &result)) break;
        }
        break;
    }
    case V_DICT: { /* its keys, as they were when the loop started */
        Value keys = rt_iter_list(I, it, "for");
        rt_own(I, keys);
        List *l = (List *)keys.o;
        for (int i = 0; i < l->len; i++)
            if (run_iteration(I, env, n, rt_retain(l->items[i]), ret, &result)) break;
        rt_owned_pop(I, mark + 1);
        rt_release(I, keys);
        break;
    }
    case V_LIST:
    case V_TUPLE: {
        for (int64_t i = 0;; i++) {
            List *l = (List *)it.o;
            if (i >= l->len) break;
            Value item = rt_retain(l->items[i]);
            if (run_iteration(I, env, n, item, ret, &result)) break;
        }
        break;
    }
    case V_TENSOR: {
        Tensor *t = (Tensor *)it.o;
        if (t->shape.ndim == 0) rt_error(I, "cannot iterate over a 0-d tensor");
        int64_t n0 = t->shape.d[0];
        for (int64_t i = 0; i < n0; i++) {
            I->ev.loc = n->a->loc;
            int x = rt_node(I, t);
            IrSliceDim d = {true, true, false, i, i + 1, 0};
            int s = rt_check_node(I, ir_slice(&I->lz.g, x, &d, 1, I->ev.loc));
            Shape rs = shape_make(t->shape.ndim - 1, t->shape.d + 1);
            int r = rt_check_node(I, ir_reshape(&I->lz.g, s, rs, I->ev.loc));
            Value item = vtensor(rt_tensor_lazy(I, r));
            if (run_iteration(I, env, n, item, ret, &result)) break;
        }
        break;
    }
    case V_MODEL:
        /* a user iterator: a model with a next() method */
        if (!model_method((Model *)it.o, "next") && !rt_model_field((Model *)it.o, "next"))
            rt_error(I, "cannot iterate over %s: it has no next() method", rt_type_name(it));
        /* fall through */
    case V_NATIVE: {
        /* iterator protocol: a `next` method returning none at the end */
        Value next = rt_member(I, it, "next");
        rt_own(I, next);
        for (;;) {
            I->ev.loc = n->a->loc;
            Value item = rt_call(I, next, NULL, 0, NULL, NULL, 0);
            if (item.kind == V_NONE) break;
            if (run_iteration(I, env, n, item, ret, &result)) break;
        }
        rt_owned_pop(I, mark + 1);
        rt_release(I, next);
        break;
    }
    default:
        rt_error(I, "cannot iterate over %s", rt_type_name(it));
    }
    rt_owned_pop(I, mark);
    rt_release(I, it);
    return result;
}

/* -- statements -- */

Flow exec_block_in(Interp *I, Env *env, const AstNode *block, Value *ret) {
    if (!block) return FLOW_NORMAL;
    rt_sig_poll(I, block->loc); /* every call and loop iteration, empty bodies too */
    if (block->kind != AST_BLOCK) return exec_stmt(I, env, block, ret);
    for (int i = 0; i < block->list.len; i++) {
        Flow f = exec_stmt(I, env, block->list.items[i], ret);
        if (f != FLOW_NORMAL) return f;
    }
    return FLOW_NORMAL;
}

static Flow exec_scoped(Interp *I, Env *env, const AstNode *block, Value *ret) {
    Env *e = env_new(I, env);
    int mark = rt_owned_mark(I);
    rt_own_env(I, e);
    Flow f = exec_block_in(I, e, block, ret);
    rt_owned_pop(I, mark);
    env_release(I, e);
    return f;
}

/* profile { ... } as a statement: prints its table (profile.c) */
static void exec_profile(Interp *I, Env *env, const AstNode *n, Value *ret, Flow *fl) {
    rt_release(I, rt_profile_block(I, env, n, ret, fl, true));
}

Flow exec_stmt(Interp *I, Env *env, const AstNode *n, Value *ret) {
    /* Ctrl-C and SIGTERM are acted on between statements (signals.h) */
    rt_sig_poll(I, n->loc);
    switch (n->kind) {
    case AST_LET: {
        Value v = eval_expr(I, env, n->a);
        int mark = rt_owned_mark(I);
        rt_own(I, v);
        if (n->type) /* let x: f32[2, 3] = ...: checked like an argument */
            check_annotation(I, env, n->type, v, "let", "value", n->type->loc);
        if (n->ival || n->list.len > 1) {
            unpack_into(I, env, &n->list, v, n->loc);
            rt_owned_pop(I, mark);
            rt_release(I, v);
        } else {
            rt_owned_pop(I, mark);
            env_define(I, env, n->list.items[0]->str, v);
        }
        return FLOW_NORMAL;
    }
    case AST_ASSIGN:
        exec_assign(I, env, n);
        return FLOW_NORMAL;
    case AST_EXPR_STMT:
        I->ev.top_stmt = env == I->ev.globals ? n->a : NULL;
        rt_release(I, eval_expr(I, env, n->a));
        I->ev.top_stmt = NULL;
        return FLOW_NORMAL;
    case AST_IF: {
        Value c = eval_expr(I, env, n->a);
        int mark = rt_owned_mark(I);
        rt_own(I, c);
        I->ev.loc = n->a->loc;
        bool t = rt_truthy(I, c);
        rt_owned_pop(I, mark);
        rt_release(I, c);
        if (t) return exec_scoped(I, env, n->b, ret);
        if (!n->c) return FLOW_NORMAL;
        if (n->c->kind == AST_IF) return exec_stmt(I, env, n->c, ret);
        return exec_scoped(I, env, n->c, ret);
    }
    case AST_WHILE:
        for (;;) {
            Value c = eval_expr(I, env, n->a);
            int mark = rt_owned_mark(I);
            rt_own(I, c);
            I->ev.loc = n->a->loc;
            bool t = rt_truthy(I, c);
            rt_owned_pop(I, mark);
            rt_release(I, c);
            if (!t) break;
            Flow f = exec_scoped(I, env, n->b, ret);
            if (f == FLOW_BREAK) break;
            if (f == FLOW_RETURN) return f;
        }
        return FLOW_NORMAL;
    case AST_FOR:
        return exec_for(I, env, n, ret);
    case AST_BREAK:
        return FLOW_BREAK;
    case AST_CONTINUE:
        return FLOW_CONTINUE;
    case AST_RETURN:
        *ret = n->a ? eval_expr(I, env, n->a) : VNONE;
        return FLOW_RETURN;
    case AST_BLOCK:
        return exec_scoped(I, env, n, ret);
    case AST_PROFILE: {
        Flow f;
        exec_profile(I, env, n, ret, &f);
        return f;
    }
    case AST_IMPORT:
        rt_import_exec(I, env, n);
        return FLOW_NORMAL;
    case AST_FN: {
        Func *f = rt_alloc_obj(I, V_FUNC, sizeof(Func));
        f->def = n;
        f->closure = env_retain(env);
        env_define(I, env, n->str, vobj(&f->obj));
        return FLOW_NORMAL;
    }
    case AST_MODEL: {
        ModelDef *d = rt_alloc_obj(I, V_MODELDEF, sizeof(ModelDef));
        d->def = n;
        d->closure = env_retain(env);
        env_define(I, env, n->str, vobj(&d->obj));
        return FLOW_NORMAL;
    }
    case AST_PARAM_DECL:
    case AST_FIELD:
        I->ev.loc = n->loc;
        rt_error(I, "'%s' declarations are only allowed inside a model",
                 n->kind == AST_PARAM_DECL ? "param" : "field");
    default: {
        /* an expression in statement position */
        Value v = eval_expr(I, env, n);
        rt_release(I, v);
        return FLOW_NORMAL;
    }
    }
}

void exec_program(Interp *I, const AstNode *prog, bool echo) {
    int n = prog->list.len;
    for (int i = 0; i < n; i++) {
        const AstNode *s = prog->list.items[i];
        if (echo && i == n - 1 && s->kind == AST_EXPR_STMT) {
            Value v = eval_expr(I, I->ev.globals, s->a);
            int mark = rt_owned_mark(I);
            rt_own(I, v);
            if (v.kind != V_NONE) {
                StrBuf b = {0};
                I->ev.loc = s->loc;
                rt_format(I, v, &b, true);
                fputs(b.s ? b.s : "", stdout);
                fputc('\n', stdout);
                sb_free(&b);
            }
            rt_owned_pop(I, mark);
            rt_release(I, v);
            continue;
        }
        Value ret = VNONE;
        Flow f = exec_stmt(I, I->ev.globals, s, &ret);
        if (f == FLOW_RETURN) {
            rt_release(I, ret);
            return; /* a top-level return ends the script */
        }
        if (f == FLOW_BREAK || f == FLOW_CONTINUE) {
            I->ev.loc = s->loc;
            rt_error(I, "'break' or 'continue' outside of a loop");
        }
    }
}

void exec_definitions(Interp *I, const AstNode *prog) {
    for (int i = 0; i < prog->list.len; i++) {
        const AstNode *s = prog->list.items[i];
        if (s->kind != AST_FN && s->kind != AST_MODEL && s->kind != AST_IMPORT) continue;
        Value ret = VNONE;
        exec_stmt(I, I->ev.globals, s, &ret);
    }
}
