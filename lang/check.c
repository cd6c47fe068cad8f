/* check.c - static name resolution and argument-count checks (check.h).
 *
 * Scopes mirror the evaluator's: the program's top level (where every
 * top-level definition is visible from the start, so fns may call fns
 * defined later), blocks, fn bodies, loop bodies, model bodies (every member
 * visible to every method). `let x = e` checks e before declaring x.
 */
#include "check.h"

#include <stdlib.h>
#include <string.h>

#include "stack.h"

typedef struct Sym {
    const char *name;
    SrcLoc loc;
} Sym;

typedef struct Scope {
    Sym *syms;
    int n, cap;
    struct Scope *parent;
} Scope;

typedef struct Def { /* a top-level fn or model, for argument checks */
    const char *name;
    const AstNode *node;
    int count; /* definitions of the name at top level (any kind) */
} Def;

typedef struct Alias { /* import "m.tt" as m: m's names, for m.name */
    const char *name;
    const AstNode *import; /* the AST_IMPORT */
} Alias;

typedef struct Checker {
    const char *const *globals;
    int nglobals;
    const char *const *builtins;
    int nbuiltins;
    Scope *top;
    Def *defs;
    int ndefs, capdefs;
    Alias *aliases;
    int naliases, capaliases;
    int errors;
    bool too_deep; /* "too deeply nested" was reported: once is enough */
} Checker;

/* -- imports and builtins (added for issue 10) -- */

static bool is_builtin(const Checker *C, const char *name) {
    for (int i = 0; i < C->nbuiltins; i++)
        if (strcmp(C->builtins[i], name) == 0) return true;
    return false;
}

/* `let (train, test) = ...` silently hid train(): say so. */
static void warn_shadow(const Checker *C, const AstNode *let) {
    for (int k = 0; k < let->list.len; k++) {
        const AstNode *t = let->list.items[k];
        if (t && t->str && is_builtin(C, t->str))
            diag_warning(t->loc,
                         "'%s' shadows the builtin %s(); use another name to keep calling it",
                         t->str, t->str);
    }
}

void check_module_names(const AstNode *prog, const char ***out, int *n, int *cap) {
    if (!prog) return;
    for (int i = 0; i < prog->list.len; i++) {
        const AstNode *s = prog->list.items[i];
        if (!s) continue;
        if ((s->kind == AST_FN || s->kind == AST_MODEL) && s->str)
            TT_VEC_PUSH(*out, *n, *cap, s->str);
        if (s->kind == AST_LET)
            for (int k = 0; k < s->list.len; k++)
                TT_VEC_PUSH(*out, *n, *cap, s->list.items[k]->str);
    }
}

/* Does an imported program define `name` at its top level? */
static bool module_has(const AstNode *prog, const char *name) {
    const char **names = NULL;
    int n = 0, cap = 0;
    check_module_names(prog, &names, &n, &cap);
    bool found = false;
    for (int i = 0; i < n && !found; i++) found = strcmp(names[i], name) == 0;
    free(names);
    return found;
}

static void declare(Scope *s, const char *name, SrcLoc loc) {
    if (!name) return;
    Sym y = {name, loc};
    TT_VEC_PUSH(s->syms, s->n, s->cap, y);
}

static void scope_free(Scope *s) {
    free(s->syms);
}

/* The scope declaring name, or NULL; *global set when it is a global. */
static const Scope *resolve(Checker *C, const Scope *s, const char *name, bool *global) {
    *global = false;
    for (; s; s = s->parent)
        for (int i = s->n - 1; i >= 0; i--)
            if (strcmp(s->syms[i].name, name) == 0) return s;
    for (int i = 0; i < C->nglobals; i++)
        if (strcmp(C->globals[i], name) == 0) {
            *global = true;
            return NULL;
        }
    return NULL;
}

/* Optimal string alignment distance (Levenshtein plus transpositions). */
static int edit_distance(const char *a, const char *b) {
    int n = (int)strlen(a), m = (int)strlen(b);
    if (n > 64 || m > 64) return 99;
    int d[65][65];
    for (int i = 0; i <= n; i++) d[i][0] = i;
    for (int j = 0; j <= m; j++) d[0][j] = j;
    for (int i = 1; i <= n; i++)
        for (int j = 1; j <= m; j++) {
            int c = a[i - 1] != b[j - 1];
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + c < v) v = d[i - 1][j - 1] + c;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

static void suggest(Checker *C, const Scope *s, const char *name, SrcLoc at) {
    int len = (int)strlen(name);
    int limit = len <= 2 ? 0 : len <= 5 ? 1 : len <= 8 ? 2 : 3;
    const char *best = NULL;
    SrcLoc best_loc = at;
    int bestd = limit + 1;
    for (const Scope *x = s; x; x = x->parent)
        for (int i = x->n - 1; i >= 0; i--) {
            int dd = edit_distance(name, x->syms[i].name);
            if (dd < bestd) {
                bestd = dd;
                best = x->syms[i].name;
                best_loc = x->syms[i].loc.line > 0 ? x->syms[i].loc : at;
            }
        }
    for (int i = 0; i < C->nglobals; i++) {
        int dd = edit_distance(name, C->globals[i]);
        if (dd < bestd) {
            bestd = dd;
            best = C->globals[i];
            best_loc = at;
        }
    }
    if (best) diag_note(best_loc, "did you mean '%s'?", best);
}

static void use_name(Checker *C, const Scope *s, const AstNode *n) {
    bool global;
    if (resolve(C, s, n->str, &global) || global) return;
    diag_error(n->loc, "unknown name '%s'", n->str);
    C->errors++;
    suggest(C, s, n->str, n->loc);
}

static void check_expr(Checker *C, Scope *s, const AstNode *n);
static void check_stmt(Checker *C, Scope *s, const AstNode *n, bool echo_last);

/* m.name where m is a top-level `import ... as m`: the module must have
 * the name (its statements have not run yet, so this is the only early
 * chance to say so). */
static void check_module_member(Checker *C, const Scope *s, const AstNode *n) {
    const AstNode *base = n->a;
    if (!base || base->kind != AST_NAME || !n->str) return;
    bool global;
    if (resolve(C, s, base->str, &global) != C->top) return;
    const Alias *a = NULL;
    for (int i = 0; i < C->naliases; i++)
        if (strcmp(C->aliases[i].name, base->str) == 0) a = &C->aliases[i];
    if (!a || !a->import->b) return;
    /* a later top-level `let m = ...` makes m something else */
    for (int i = 0; i < C->ndefs; i++)
        if (strcmp(C->defs[i].name, base->str) == 0 && C->defs[i].count > 0) return;
    if (module_has(a->import->b, n->str)) return;
    diag_error(n->loc, "module \"%s\" has no name '%s'", a->import->a->str, n->str);
    C->errors++;
}
static void check_block(Checker *C, Scope *parent, const AstNode *b, bool new_scope);

/* Argument count checks against a top-level fn or model. */
static void check_call_args(Checker *C, const Scope *s, const AstNode *call) {
    const AstNode *callee = call->a;
    if (!callee || callee->kind != AST_NAME) return;
    bool global;
    const Scope *where = resolve(C, s, callee->str, &global);
    if (where != C->top) return;
    const Def *d = NULL;
    for (int i = 0; i < C->ndefs; i++)
        if (strcmp(C->defs[i].name, callee->str) == 0) d = &C->defs[i];
    if (!d || d->count != 1 || !d->node) return;
    const AstList *params = &d->node->list;
    const char *fname = d->node->str;
    int np = 0;
    for (int i = 0; i < call->list.len; i++) {
        const AstNode *a = call->list.items[i];
        if (!a || (a->kind == AST_ARG && a->str)) continue;
        np++;
    }
    if (np > params->len) {
        diag_error(call->loc, "%s() takes %d argument%s but %d %s given", fname, params->len,
                   params->len == 1 ? "" : "s", np, np == 1 ? "was" : "were");
        C->errors++;
        return;
    }
    bool given[256] = {0};
    if (params->len > 256) return;
    for (int i = 0; i < np; i++) given[i] = true;
    for (int i = 0; i < call->list.len; i++) {
        const AstNode *a = call->list.items[i];
        if (!a || a->kind != AST_ARG || !a->str) continue;
        int j = 0;
        while (j < params->len && strcmp(params->items[j]->str, a->str) != 0) j++;
        if (j == params->len) {
            diag_error(a->loc, "%s() got an unexpected keyword argument '%s'", fname, a->str);
            C->errors++;
            return;
        }
        if (given[j]) {
            diag_error(a->loc, "%s() got multiple values for argument '%s'", fname, a->str);
            C->errors++;
            return;
        }
        given[j] = true;
    }
    for (int j = 0; j < params->len; j++)
        if (!given[j] && !params->items[j]->a) {
            diag_error(call->loc, "%s() missing argument '%s'", fname, params->items[j]->str);
            C->errors++;
            return;
        }
}

/* A chain such as 1 + 1 + ... + 1 is as deep as it is long: the walk stops
 * at the node where the stack budget runs out (stack.h). */
static bool too_deep(Checker *C, const AstNode *n) {
    if (!tt_stack_exhausted()) return false;
    if (!C->too_deep) {
        char lim[32];
        tt_stack_describe(lim, sizeof lim);
        diag_error(n->loc, "expression too deeply nested for the %s stack limit (TT_STACK_LIMIT)",
                   lim);
        C->errors++;
        C->too_deep = true;
    }
    return true;
}

static void check_expr(Checker *C, Scope *s, const AstNode *n) {
    if (!n || too_deep(C, n)) return;
    switch (n->kind) {
    case AST_NAME:
        use_name(C, s, n);
        break;
    case AST_UNARY:
        check_expr(C, s, n->a);
        break;
    case AST_BINARY:
    case AST_RANGE:
    case AST_REPEAT:
        check_expr(C, s, n->a);
        check_expr(C, s, n->b);
        break;
    case AST_CALL:
        check_expr(C, s, n->a);
        for (int i = 0; i < n->list.len; i++) check_expr(C, s, n->list.items[i]);
        check_call_args(C, s, n);
        break;
    case AST_ARG:
        check_expr(C, s, n->a);
        break;
    case AST_PROFILE: /* profile { ... } used as a value */
        check_block(C, s, n->b, true);
        break;
    case AST_INDEX:
        check_expr(C, s, n->a);
        for (int i = 0; i < n->list.len; i++) check_expr(C, s, n->list.items[i]);
        break;
    case AST_SLICE:
        check_expr(C, s, n->a);
        check_expr(C, s, n->b);
        check_expr(C, s, n->c);
        break;
    case AST_MEMBER:
        check_expr(C, s, n->a);
        check_module_member(C, s, n);
        break;
    case AST_IFEXPR:
        check_expr(C, s, n->b);
        check_expr(C, s, n->a);
        check_expr(C, s, n->c);
        break;
    case AST_LIST:
    case AST_TUPLE:
    case AST_RECORD:
        for (int i = 0; i < n->list.len; i++) check_expr(C, s, n->list.items[i]);
        break;
    default:
        break;
    }
}

/* Names in annotation dims bind when not already visible (B, T). */
static void check_type(Checker *C, Scope *s, const AstNode *t) {
    if (!t) return;
    for (int i = 0; i < t->list.len; i++) {
        const AstNode *d = t->list.items[i];
        if (!d) continue;
        if (d->kind == AST_NAME) {
            bool global;
            if (!resolve(C, s, d->str, &global)) declare(s, d->str, d->loc);
        } else if (d->kind != AST_ELLIPSIS) {
            check_expr(C, s, d);
        }
    }
}

/* A fn or method: parameters, annotations, body, in a scope of its own. */
static void check_fn(Checker *C, Scope *parent, const AstNode *fn) {
    Scope s = {.parent = parent};
    for (int i = 0; i < fn->list.len; i++) {
        const AstNode *p = fn->list.items[i];
        if (!p) continue;
        if (p->a) check_expr(C, parent, p->a);
        declare(&s, p->str, p->loc);
    }
    for (int i = 0; i < fn->list.len; i++)
        if (fn->list.items[i]) check_type(C, &s, fn->list.items[i]->type);
    check_type(C, &s, fn->type);
    if (fn->b) check_block(C, &s, fn->b, false);
    scope_free(&s);
}

static void check_model(Checker *C, Scope *parent, const AstNode *m) {
    Scope s = {.parent = parent};
    for (int i = 0; i < m->list.len; i++) {
        const AstNode *p = m->list.items[i];
        if (!p) continue;
        if (p->a) check_expr(C, parent, p->a);
        declare(&s, p->str, p->loc);
    }
    const AstNode *body = m->b;
    if (body) {
        for (int i = 0; i < body->list.len; i++) {
            const AstNode *d = body->list.items[i];
            if (!d) continue;
            if (d->kind == AST_LET)
                for (int k = 0; k < d->list.len; k++)
                    declare(&s, d->list.items[k]->str, d->list.items[k]->loc);
            else if (d->str)
                declare(&s, d->str, d->loc);
        }
        for (int i = 0; i < body->list.len; i++) {
            const AstNode *d = body->list.items[i];
            if (!d) continue;
            switch (d->kind) {
            case AST_PARAM_DECL:
            case AST_FIELD:
            case AST_LET:
                check_expr(C, &s, d->a);
                if (d->kind == AST_LET) warn_shadow(C, d);
                break;
            case AST_FN:
                check_fn(C, &s, d);
                break;
            default:
                check_stmt(C, &s, d, false);
                break;
            }
        }
    }
    scope_free(&s);
}

static void check_block(Checker *C, Scope *parent, const AstNode *b, bool new_scope) {
    if (!b) return;
    if (b->kind != AST_BLOCK) {
        check_stmt(C, parent, b, false);
        return;
    }
    Scope s = {.parent = parent};
    Scope *in = new_scope ? &s : parent;
    for (int i = 0; i < b->list.len; i++) check_stmt(C, in, b->list.items[i], false);
    scope_free(&s);
}

static void check_stmt(Checker *C, Scope *s, const AstNode *n, bool echo_last) {
    if (!n) return;
    switch (n->kind) {
    case AST_LET:
        check_expr(C, s, n->a);
        warn_shadow(C, n);
        for (int i = 0; i < n->list.len; i++)
            declare(s, n->list.items[i]->str, n->list.items[i]->loc);
        break;
    case AST_IMPORT: /* its names were declared with the top level's */
        if (s != C->top) {
            diag_error(n->loc, "'import' is only allowed at the top level of a file");
            C->errors++;
        }
        break;
    case AST_ASSIGN: {
        const AstNode *t = n->a;
        check_expr(C, s, n->b);
        if (t && t->kind == AST_NAME) {
            bool global;
            if (!resolve(C, s, t->str, &global) && !global) {
                diag_error(t->loc, "assignment to undeclared variable '%s' (declare it with let)",
                           t->str);
                C->errors++;
                suggest(C, s, t->str, t->loc);
            }
        } else {
            check_expr(C, s, t);
        }
        break;
    }
    case AST_EXPR_STMT: {
        const AstNode *e = n->a;
        check_expr(C, s, e);
        if (e && !echo_last && e->kind != AST_CALL && !(e->kind == AST_UNARY && e->op == AOP_NEG))
            diag_warning(e->loc, "expression result is unused");
        break;
    }
    case AST_IF:
        check_expr(C, s, n->a);
        check_block(C, s, n->b, true);
        if (n->c) {
            if (n->c->kind == AST_IF)
                check_stmt(C, s, n->c, false);
            else
                check_block(C, s, n->c, true);
        }
        break;
    case AST_WHILE:
        check_expr(C, s, n->a);
        check_block(C, s, n->b, true);
        break;
    case AST_FOR: {
        check_expr(C, s, n->a);
        Scope body = {.parent = s};
        for (int i = 0; i < n->list.len; i++)
            declare(&body, n->list.items[i]->str, n->list.items[i]->loc);
        check_block(C, &body, n->b, false);
        scope_free(&body);
        break;
    }
    case AST_RETURN:
        check_expr(C, s, n->a);
        break;
    case AST_BLOCK:
        check_block(C, s, n, true);
        break;
    case AST_PROFILE:
        check_block(C, s, n->b, true);
        break;
    case AST_FN:
        declare(s, n->str, n->loc);
        check_fn(C, s, n);
        break;
    case AST_MODEL:
        declare(s, n->str, n->loc);
        check_model(C, s, n);
        break;
    case AST_PARAM_DECL:
    case AST_FIELD:
        check_expr(C, s, n->a);
        break;
    default:
        check_expr(C, s, n);
        break;
    }
}

static void add_def(Checker *C, const char *name, const AstNode *node) {
    if (!name) return;
    for (int i = 0; i < C->ndefs; i++)
        if (strcmp(C->defs[i].name, name) == 0) {
            C->defs[i].count++;
            return;
        }
    Def d = {name, node, 1};
    TT_VEC_PUSH(C->defs, C->ndefs, C->capdefs, d);
}

int check_program(const AstNode *prog, const char *const *globals, int nglobals, bool repl) {
    CheckOptions o = {.globals = globals, .nglobals = nglobals, .repl = repl};
    return check_program_opts(prog, &o);
}

/* An import's names join the top level: `as m` declares m, a plain import
 * every top-level name of the module (fns and models also for argument
 * checks). A module that failed to load (b == NULL) was reported. */
static void declare_import(Checker *C, const AstNode *n) {
    if (n->str) {
        declare(C->top, n->str, n->loc);
        Alias a = {n->str, n};
        TT_VEC_PUSH(C->aliases, C->naliases, C->capaliases, a);
        return;
    }
    const AstNode *prog = n->b;
    if (!prog) return;
    for (int i = 0; i < prog->list.len; i++) {
        const AstNode *d = prog->list.items[i];
        if (!d) continue;
        if ((d->kind == AST_FN || d->kind == AST_MODEL) && d->str) {
            declare(C->top, d->str, n->loc);
            add_def(C, d->str, d);
        } else if (d->kind == AST_LET) {
            for (int k = 0; k < d->list.len; k++) {
                declare(C->top, d->list.items[k]->str, n->loc);
                add_def(C, d->list.items[k]->str, NULL);
            }
        }
    }
}

int check_program_opts(const AstNode *prog, const CheckOptions *o) {
    if (!prog) return 0;
    const char *const *globals = o->globals;
    int nglobals = o->nglobals;
    bool repl = o->repl;
    Checker C = {.globals = globals,
                 .nglobals = nglobals,
                 .builtins = o->builtins,
                 .nbuiltins = o->nbuiltins};
    Scope top = {0};
    C.top = &top;
    /* every top-level definition is visible everywhere (fns run later) */
    for (int i = 0; i < prog->list.len; i++) {
        const AstNode *n = prog->list.items[i];
        if (!n) continue;
        if (n->kind == AST_IMPORT) {
            declare_import(&C, n);
        } else if (n->kind == AST_FN || n->kind == AST_MODEL) {
            declare(&top, n->str, n->loc);
            add_def(&C, n->str, n);
        } else if (n->kind == AST_LET) {
            for (int k = 0; k < n->list.len; k++) {
                declare(&top, n->list.items[k]->str, n->list.items[k]->loc);
                add_def(&C, n->list.items[k]->str, NULL);
            }
        }
    }
    /* a name that is also a global (redefined) is not checked for arity */
    for (int i = 0; i < C.ndefs; i++)
        for (int k = 0; k < nglobals; k++)
            if (strcmp(C.defs[i].name, globals[k]) == 0) C.defs[i].count++;
    int n = prog->list.len;
    for (int i = 0; i < n; i++) check_stmt(&C, &top, prog->list.items[i], repl && i == n - 1);
    scope_free(&top);
    free(C.defs);
    free(C.aliases);
    return C.errors;
}
