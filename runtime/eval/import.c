/* import.c - loading, checking and running imported files (import.h). */
#include "import.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

typedef enum ModState {
    MOD_FAILED,  /* did not parse or check: forgotten after the run */
    MOD_LOADING, /* on the chain being loaded */
    MOD_CHECKED, /* parsed and checked, its statements not run */
    MOD_RUNNING, /* its statements are running */
    MOD_DONE,    /* ran: env holds its names */
} ModState;

typedef struct Module {
    char *key;        /* canonical path (realpath) */
    const char *name; /* the path diagnostics show (registered with diag_add_file) */
    AstNode *prog;
    Env *env; /* its top-level scope once run (freed with every scope) */
    ModState state;
} Module;

typedef struct Link { /* one file of the chain being loaded */
    char *key;
    const char *spelled; /* as the import wrote it (the root: its path) */
} Link;

struct Modules {
    Module *mods; /* by number; never removed, so numbers stay valid */
    int n, cap;
    Link *chain;
    int nchain, capchain;
    bool defs_only;
};

static struct Modules *modules(Interp *I) {
    if (!I->ev.modules) I->ev.modules = tt_xcalloc(1, sizeof(struct Modules));
    return I->ev.modules;
}

void rt_modules_free(Interp *I) {
    struct Modules *ms = I->ev.modules;
    if (!ms) return;
    for (int i = 0; i < ms->n; i++) free(ms->mods[i].key);
    for (int i = 0; i < ms->nchain; i++) free(ms->chain[i].key);
    free(ms->mods);
    free(ms->chain);
    free(ms);
    I->ev.modules = NULL;
}

void rt_imports_defs_only(Interp *I, bool on) {
    modules(I)->defs_only = on;
}

void rt_imports_after_error(Interp *I) {
    struct Modules *ms = I->ev.modules;
    if (!ms) return;
    for (int i = 0; i < ms->n; i++) {
        Module *m = &ms->mods[i];
        if (m->state == MOD_RUNNING) {
            /* its scope stays until rt_free_interp: closures may hold it */
            m->env = NULL;
            m->state = MOD_CHECKED;
        } else if (m->state == MOD_LOADING) {
            m->state = MOD_FAILED;
        }
    }
}

/* -- checking -- */

int rt_check_ast(Interp *I, const AstNode *prog, bool repl) {
    const char **names = NULL;
    int n = 0, cap = 0;
    env_names(I->ev.globals, &names, &n, &cap);
    CheckOptions o = {.globals = names, .nglobals = n, .repl = repl};
    /* the globals' first names are the builtins' (env.c appends) */
    o.builtins = I->ev.globals->names;
    o.nbuiltins = I->ev.nbuiltins < I->ev.globals->n ? I->ev.nbuiltins : I->ev.globals->n;
    int errors = check_program_opts(prog, &o);
    free(names);
    return errors;
}

void rt_public_names(Interp *I, const char ***out, int *n, int *cap) {
    const char **all = NULL;
    int na = 0, ca = 0;
    env_names(I->ev.globals, &all, &na, &ca);
    for (int i = 0; i < na; i++)
        if (all[i][0] != '_') TT_VEC_PUSH(*out, *n, *cap, all[i]);
    free(all);
}

/* -- paths -- */

/* dir + "/" + rel with "." and "dir/.." segments removed (malloc'd): the
 * name diagnostics show for an imported file, relative to the current
 * directory like the path given to ttrun. */
static char *join_path(const char *dir, const char *rel) {
    StrBuf raw = {0};
    if (rel[0] != '/' && dir[0]) sb_printf(&raw, "%s/", dir);
    sb_puts(&raw, rel);
    bool absolute = raw.s[0] == '/';
    char **seg = NULL;
    int n = 0, cap = 0;
    for (char *p = strtok(raw.s, "/"); p; p = strtok(NULL, "/")) {
        if (strcmp(p, ".") == 0) continue;
        if (strcmp(p, "..") == 0 && n > 0 && strcmp(seg[n - 1], "..") != 0) {
            n--;
            continue;
        }
        if (strcmp(p, "..") == 0 && absolute && n == 0) continue;
        TT_VEC_PUSH(seg, n, cap, p);
    }
    StrBuf out = {0};
    if (absolute) sb_putc(&out, '/');
    for (int i = 0; i < n; i++) sb_printf(&out, "%s%s", i ? "/" : "", seg[i]);
    if (!out.len) sb_puts(&out, absolute ? "" : ".");
    char *r = tt_xstrdup(out.s);
    sb_free(&out);
    sb_free(&raw);
    free(seg);
    return r;
}

/* The directory part of a file name ("" for a bare name). */
static char *dir_of(const char *file) {
    const char *slash = strrchr(file, '/');
    if (!slash) return tt_xstrdup("");
    if (slash == file) return tt_xstrdup("/");
    size_t n = (size_t)(slash - file);
    char *d = tt_xmalloc(n + 1);
    memcpy(d, file, n);
    d[n] = 0;
    return d;
}

/* -- loading -- */

static bool load_imports(Interp *I, AstNode *prog, const char *dir);

static void chain_push(struct Modules *ms, const char *key, const char *spelled) {
    Link l = {tt_xstrdup(key), spelled};
    TT_VEC_PUSH(ms->chain, ms->nchain, ms->capchain, l);
}

static void chain_pop(struct Modules *ms) {
    TT_ASSERT(ms->nchain > 0);
    free(ms->chain[--ms->nchain].key);
}

/* Loads the file an import names: the module's number, or -1 after
 * diagnostics. */
static int load_module(Interp *I, AstNode *imp, const char *dir) {
    struct Modules *ms = modules(I);
    const AstNode *path = imp->a;
    const char *spelled = path->str;
    if (!spelled[0] || strlen(spelled) != (size_t)path->ival) {
        diag_error(path->loc, "import needs a file name (a string without NUL characters)");
        return -1;
    }
    char *shown = join_path(dir, spelled);
    char *key = realpath(shown, NULL);
    if (!key) {
        int e = errno;
        if (e == ENOENT)
            diag_error(path->loc, "cannot import \"%s\": no such file (looked for %s)", spelled,
                       shown);
        else
            diag_error(path->loc, "cannot import \"%s\": %s: %s", spelled, shown, strerror(e));
        free(shown);
        return -1;
    }
    for (int i = 0; i < ms->nchain; i++) {
        if (strcmp(ms->chain[i].key, key) != 0) continue;
        StrBuf c = {0};
        for (int k = i; k < ms->nchain; k++) sb_printf(&c, "%s -> ", ms->chain[k].spelled);
        sb_puts(&c, spelled);
        diag_error(imp->loc, "import cycle: %s", c.s);
        sb_free(&c);
        free(key);
        free(shown);
        return -1;
    }
    for (int i = 0; i < ms->n; i++) {
        if (ms->mods[i].state == MOD_FAILED || strcmp(ms->mods[i].key, key) != 0) continue;
        free(key);
        free(shown);
        return i;
    }
    size_t len;
    char err[512];
    char *text = tt_read_file(shown, &len, err, sizeof err);
    if (!text) {
        diag_error(path->loc, "cannot import \"%s\": %s", spelled, err);
        free(key);
        free(shown);
        return -1;
    }
    int nerr = 0;
    AstNode *prog = parse_source(&I->ev.ast_arena, shown, text, len, &nerr);
    free(text);
    Module m = {key, prog ? prog->loc.file : NULL, prog, NULL, MOD_LOADING};
    TT_VEC_PUSH(ms->mods, ms->n, ms->cap, m);
    int id = ms->n - 1;
    bool ok = nerr == 0 && prog;
    if (ok) {
        chain_push(ms, key, spelled);
        char *mdir = dir_of(shown);
        ok = load_imports(I, prog, mdir);
        free(mdir);
        chain_pop(ms);
    }
    if (ok) ok = rt_check_ast(I, prog, false) == 0;
    ms->mods[id].state = ok ? MOD_CHECKED : MOD_FAILED;
    /* the errors were inside it: say how the program got there, innermost
     * first, as the notes of a runtime error do */
    if (!ok) diag_note(imp->loc, "in module \"%s\", imported from here", spelled);
    free(shown);
    return ok ? id : -1;
}

/* Every top-level import of prog; nested ones are check.c's error. */
static bool load_imports(Interp *I, AstNode *prog, const char *dir) {
    bool ok = true;
    for (int i = 0; i < prog->list.len; i++) {
        AstNode *s = prog->list.items[i];
        if (!s || s->kind != AST_IMPORT) continue;
        int id = load_module(I, s, dir);
        if (id < 0) {
            ok = false;
            continue;
        }
        s->b = I->ev.modules->mods[id].prog;
        s->ival = id + 1;
    }
    return ok;
}

bool rt_imports_load(Interp *I, AstNode *prog, const char *file) {
    bool any = false;
    for (int i = 0; i < prog->list.len && !any; i++)
        any = prog->list.items[i] && prog->list.items[i]->kind == AST_IMPORT;
    if (!any) return true;
    struct Modules *ms = modules(I);
    bool repl = !file || file[0] == '<';
    char *dir = repl ? tt_xstrdup("") : dir_of(file);
    /* the root is on the chain too: a module importing it is a cycle */
    char *key = repl ? NULL : realpath(file, NULL);
    if (key) chain_push(ms, key, file);
    bool ok = load_imports(I, prog, dir);
    if (key) chain_pop(ms);
    free(key);
    free(dir);
    return ok;
}

/* -- the module value: m.name reads the module's scope -- */

typedef struct ModRef {
    int id;
    char *spelled; /* as the import wrote it */
} ModRef;

/* Only the module's own top-level fn, model and let names, as check.c
 * says statically: not what it imported itself. */
static bool exported(const Module *m, const char *name) {
    const char **names = NULL;
    int n = 0, cap = 0;
    check_module_names(m->prog, &names, &n, &cap);
    bool found = false;
    for (int i = 0; i < n && !found; i++) found = strcmp(names[i], name) == 0;
    free(names);
    return found;
}

static bool mod_member(Interp *I, Obj *self, const char *name, Value *out) {
    ModRef *r = ((Native *)self)->data;
    Module *m = &I->ev.modules->mods[r->id];
    Value *slot = m->env && exported(m, name) ? env_find_local(m->env, name) : NULL;
    if (!slot) rt_error(I, "module \"%s\" has no name '%s'", r->spelled, name);
    *out = rt_retain(*slot);
    return true;
}

static void mod_free(Obj *self) {
    ModRef *r = ((Native *)self)->data;
    free(r->spelled);
    free(r);
}

static void mod_print(Interp *I, Obj *self, StrBuf *out) {
    (void)I;
    sb_printf(out, "module \"%s\"", ((ModRef *)((Native *)self)->data)->spelled);
}

static const NativeClass module_class = {"module", mod_member, mod_free, mod_print};

/* -- running -- */

static void run_module(Interp *I, int id, const AstNode *imp) {
    struct Modules *ms = I->ev.modules;
    ms->mods[id].state = MOD_RUNNING;
    Env *env = env_new(I, I->ev.globals);
    ms->mods[id].env = env;
    const AstNode *prog = ms->mods[id].prog;
    StrBuf what = {0};
    sb_printf(&what, "module \"%s\"", imp->a->str);
    rt_push_frame(I, rt_intern(I, what.s), imp->loc);
    sb_free(&what);
    for (int i = 0; i < prog->list.len; i++) {
        const AstNode *s = prog->list.items[i];
        if (ms->defs_only && s->kind != AST_FN && s->kind != AST_MODEL && s->kind != AST_IMPORT)
            continue;
        Value ret = VNONE;
        Flow f = exec_stmt(I, env, s, &ret);
        if (f == FLOW_RETURN) { /* a top-level return ends the module */
            rt_release(I, ret);
            break;
        }
        if (f == FLOW_BREAK || f == FLOW_CONTINUE) {
            I->ev.loc = s->loc;
            rt_error(I, "'break' or 'continue' outside of a loop");
        }
    }
    rt_pop_frame(I);
    ms->mods[id].state = MOD_DONE;
}

void rt_import_exec(Interp *I, Env *env, const AstNode *imp) {
    struct Modules *ms = I->ev.modules;
    TT_ASSERT(ms && imp->ival > 0 && imp->ival <= ms->n);
    int id = (int)imp->ival - 1;
    if (ms->mods[id].state == MOD_CHECKED) run_module(I, id, imp);
    Module *m = &ms->mods[id];
    I->ev.loc = imp->loc;
    if (m->state != MOD_DONE) /* not reachable: cycles are refused when loading */
        rt_error(I, "module \"%s\" is still being imported", imp->a->str);
    if (imp->str) {
        ModRef *r = tt_xmalloc(sizeof *r);
        r->id = id;
        r->spelled = tt_xstrdup(imp->a->str);
        env_define(I, env, imp->str, rt_native(I, &module_class, r));
        return;
    }
    const char **names = NULL;
    int n = 0, cap = 0;
    check_module_names(m->prog, &names, &n, &cap);
    for (int i = 0; i < n; i++) {
        Value *slot = env_find_local(m->env, names[i]);
        if (slot) env_define(I, env, names[i], rt_retain(*slot)); /* absent: ttc's defs only */
    }
    free(names);
}
