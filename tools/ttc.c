/* ttc - the tt compiler driver.
 *
 *   ttc FILE.tt --emit=ast
 *   ttc FILE.tt --emit=ir --model NAME [-D B=1 ...]
 *
 * --emit=ir runs only the file's model and fn definitions (never its
 * training code), builds NAME with its default constructor arguments,
 * makes a symbolic input for each forward parameter from its annotation
 * (named dims from -D NAME=N, default 1) and prints the traced graph.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "input.h"
#include "jit.h"

typedef struct Define {
    const char *name;
    long long value;
} Define;

static Define defs[64];
static int ndefs;

static void usage(FILE *out) {
    fputs("usage: ttc FILE.tt --emit=ast\n"
          "       ttc FILE.tt --emit=ir|loops|llvm|asm --model NAME [-D DIM=N ...] [-O0..-O3]\n"
          "\n"
          "  --emit=ast        print the syntax tree\n"
          "  --emit=ir         print the traced graph of model NAME's forward\n"
          "  --emit=loops      the loop IR the JIT lowers that graph to (fused kernels)\n"
          "  --emit=llvm       the optimized LLVM IR it generates\n"
          "  --emit=asm        the machine code, as assembly for this CPU\n"
          "  -O0..-O3          LLVM optimization level (default -O2)\n"
          "  --model NAME      the model to build (default constructor arguments)\n"
          "  -D NAME=N         size of a named dimension or constructor argument (default 1)\n"
          "  --dump=trace      same as --emit=ir\n"
          "  --help\n"
          "\n"
          "--emit=obj|shared|dot, -o, --header and --weights come with ahead-of-time\n"
          "compilation (a later issue).\n",
          out);
}

static bool lookup_define(const char *name, long long *v) {
    for (int i = 0; i < ndefs; i++)
        if (strcmp(defs[i].name, name) == 0) {
            *v = defs[i].value;
            return true;
        }
    return false;
}

static int emit_ast(const char *file) {
    char err[512];
    size_t len;
    char *text = tt_read_file(file, &len, err, sizeof err);
    if (!text) {
        fprintf(stderr, "ttc: error: %s\n", err);
        return 1;
    }
    Arena ar;
    arena_init(&ar);
    int nerr = 0;
    AstNode *prog = parse_source(&ar, file, text, len, &nerr);
    if (prog && nerr == 0) ast_print(stdout, prog);
    arena_free(&ar);
    free(text);
    return nerr ? 1 : 0;
}

/* A dim of a forward annotation: a literal, a -D name, a name the instance
 * knows (fan_in), else 1. */
static int64_t dim_value(Interp *I, Model *m, const AstNode *d) {
    if (d->kind == AST_INT) return d->ival;
    if (d->kind == AST_NAME) {
        long long v;
        if (lookup_define(d->str, &v)) return v;
        bool found;
        Value x = eval_lookup(I, m->env, d->str, &found);
        if (found && x.kind == V_INT && m->env) {
            /* only names of the instance (not globals) */
            Value *f = rt_model_field(m, d->str);
            Value *c = env_find_local(m->env, d->str);
            if (f || c) return x.i;
        }
        rt_release(I, x);
        return 1;
    }
    Value v = eval_expr(I, m->env, d);
    int64_t r = rt_to_int(I, v, "dimension");
    rt_release(I, v);
    return r;
}

typedef enum Emit { EMIT_IR, EMIT_LOOPS, EMIT_LLVM, EMIT_ASM } Emit;

static int emit_graph(const char *file, const char *model, Emit what, int opt_level) {
    Interp *I = rt_new_interp();
    I->scalar_consts = true; /* the trace's inputs: the forward's arguments, the parameters */
    int rc = rt_run_definitions(I, file);
    if (rc) {
        rt_free_interp(I);
        return 1;
    }
    jmp_buf jb;
    I->on_error = &jb;
    if (setjmp(jb)) {
        rt_free_interp(I);
        return 1;
    }
    Value *slot = env_find_local(I->globals, model);
    if (!slot || slot->kind != V_MODELDEF) {
        fprintf(stderr, "ttc: error: %s defines no model '%s'\n", file, model);
        rt_free_interp(I);
        return 1;
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
        if (lookup_define(p->str, &v)) {
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
                model, missing.s);
        sb_free(&missing);
        rt_free_interp(I);
        return 1;
    }
    I->loc = d->def->loc;
    Value net = rt_call(I, *slot, NULL, 0, kwn, kwv, nkw);
    Model *m = (Model *)net.o;
    const AstNode *fwd = model_method(m, "forward");
    if (!fwd) {
        fprintf(stderr, "ttc: error: model %s has no forward method\n", model);
        rt_free_interp(I);
        return 1;
    }
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
                    model, p->str);
            rt_free_interp(I);
            free(args);
            return 1;
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
            s.d[s.ndim++] = dim_value(I, m, dd);
        }
        int id = ir_input(&I->g, dt, s, p->str, p->loc);
        if (id < 0) {
            fprintf(stderr, "ttc: error: %s\n", I->g.err);
            rt_free_interp(I);
            free(args);
            return 1;
        }
        Tensor *t = rt_tensor_lazy(I, id);
        rt_lazy_unlink(I, t); /* symbolic: never realized */
        t->name = rt_intern(I, p->str);
        args[i] = vtensor(t);
    }
    I->loc = fwd->loc;
    Value out = rt_call(I, net, args, nin, NULL, NULL, 0);
    int outs[64], nout = 0;
    if (out.kind == V_TENSOR) {
        outs[nout++] = rt_node(I, (Tensor *)out.o);
    } else if (out.kind == V_TUPLE || out.kind == V_LIST) {
        List *l = (List *)out.o;
        for (int k = 0; k < l->len && nout < 64; k++)
            if (l->items[k].kind == V_TENSOR) outs[nout++] = rt_node(I, (Tensor *)l->items[k].o);
    }
    if (nout == 0) {
        fprintf(stderr, "ttc: error: %s.forward returned %s, not a tensor\n", model,
                rt_type_name(out));
        rt_free_interp(I);
        free(args);
        return 1;
    }
    IrGraph E;
    rt_extract_graph(I, outs, nout, &E);
    char err[512] = "";
    bool ok = true;
    switch (what) {
    case EMIT_IR:
        ir_print(stdout, &E);
        break;
    case EMIT_LOOPS:
        jit_emit_loops(stdout, &E);
        break;
    case EMIT_LLVM:
        ok = jit_emit_llvm(stdout, &E, opt_level, err, sizeof err);
        break;
    case EMIT_ASM:
        ok = jit_emit_asm(stdout, &E, opt_level, err, sizeof err);
        break;
    }
    ir_free(&E);
    if (!ok) {
        fprintf(stderr, "ttc: error: %s\n", err);
        free(args);
        rt_free_interp(I);
        return 1;
    }
    free(args);
    rt_free_interp(I);
    return 0;
}

int main(int argc, char **argv) {
    const char *file = NULL, *emit = NULL, *model = NULL;
    int opt_level = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strncmp(a, "--emit=", 7) == 0) {
            emit = a + 7;
        } else if (strcmp(a, "--dump=trace") == 0) {
            emit = "ir";
        } else if (strncmp(a, "--dump=", 7) == 0) {
            fprintf(stderr, "ttc: error: --dump=%s is not available yet (available: trace)\n",
                    a + 7);
            return 2;
        } else if (strcmp(a, "--model") == 0 && i + 1 < argc) {
            model = argv[++i];
        } else if (strncmp(a, "--model=", 8) == 0) {
            model = a + 8;
        } else if (strncmp(a, "-D", 2) == 0) {
            const char *d = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : "");
            const char *eq = strchr(d, '=');
            char *end;
            long long v = eq ? strtoll(eq + 1, &end, 10) : 0;
            if (!eq || eq == d || *end || end == eq + 1 || ndefs == 64) {
                fprintf(stderr, "ttc: error: -D expects NAME=N, got '%s'\n", d);
                return 2;
            }
            defs[ndefs].name = strndup(d, (size_t)(eq - d));
            defs[ndefs++].value = v;
        } else if (strcmp(a, "-O0") == 0 || strcmp(a, "-O1") == 0 || strcmp(a, "-O2") == 0 ||
                   strcmp(a, "-O3") == 0) {
            opt_level = a[2] - '0';
        } else if (strcmp(a, "-o") == 0 || strncmp(a, "--header", 8) == 0 ||
                   strncmp(a, "--weights", 9) == 0 || strncmp(a, "--quantize", 10) == 0 ||
                   strncmp(a, "--passes", 8) == 0) {
            fprintf(stderr, "ttc: error: %s is not available yet (it comes with the JIT backend)\n",
                    a);
            return 2;
        } else if (a[0] == '-') {
            fprintf(stderr, "ttc: error: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!file) {
            file = a;
        } else {
            fprintf(stderr, "ttc: error: more than one input file ('%s' and '%s')\n", file, a);
            return 2;
        }
    }
    if (!file) {
        usage(stderr);
        return 2;
    }
    /* A malformed TT_MAX_INPUT_BYTES fails every read (lang/input.h): say
     * so once, before the prelude's reads say it for each file. */
    uint64_t limit;
    char lerr[256];
    if (!tt_input_limit(&limit, lerr, sizeof lerr)) {
        fprintf(stderr, "ttc: error: %s\n", lerr);
        return 2;
    }
    if (!emit) emit = model ? "ir" : "ast";
    int rc;
    if (strcmp(emit, "ast") == 0) {
        rc = emit_ast(file);
    } else if (strcmp(emit, "ir") == 0 || strcmp(emit, "loops") == 0 || strcmp(emit, "llvm") == 0 ||
               strcmp(emit, "asm") == 0) {
        if (!model) {
            fprintf(stderr, "ttc: error: --emit=%s needs --model NAME\n", emit);
            return 2;
        }
        Emit what = emit[0] == 'i'                     ? EMIT_IR
                    : emit[0] == 'l' && emit[1] == 'o' ? EMIT_LOOPS
                    : emit[0] == 'l'                   ? EMIT_LLVM
                                                       : EMIT_ASM;
        rc = emit_graph(file, model, what, opt_level);
    } else {
        fprintf(stderr,
                "ttc: error: --emit=%s is not available yet (it comes with the JIT backend)\n",
                emit);
        return 2;
    }
    for (int i = 0; i < ndefs; i++) free((char *)defs[i].name);
    diag_shutdown();
    return rc;
}
