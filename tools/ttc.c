/* ttc - the tt compiler driver.
 *
 *   ttc FILE.tt --emit=ast
 *   ttc FILE.tt --emit=ir|loops|llvm|asm|dot --model NAME [-D B=1 ...]
 *   ttc FILE.tt --model NAME [-D B=64] [--weights W.safetensors] [--weights-external]
 *       -o out.o|out.so --header out.h [-O0..-O3] [--threads N] [--prefix NAME] [--seed N]
 *
 * The stage dumps run only the file's model and fn definitions (never its
 * training code), build NAME with its default constructor arguments, make
 * a symbolic input for each forward parameter from its annotation (named
 * dims from -D NAME=N, default 1) and trace the forward (ttc_model.c).
 * -o compiles the model ahead of time into a standalone object (ttc_aot.c,
 * spec/aot.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aot.h"
#include "input.h"
#include "jit.h"
#include "ttc.h"

#ifndef TT_VERSION /* CMake passes the project version */
#define TT_VERSION "0.1.0"
#endif

static void usage(FILE *out) {
    fputs("usage: ttc FILE.tt --emit=ast\n"
          "       ttc FILE.tt --emit=ir|loops|llvm|asm|dot --model NAME [-D DIM=N ...] [-O0..-O3]\n"
          "       ttc FILE.tt --model NAME [-D DIM=N ...] [--weights W.safetensors]\n"
          "           [--weights-external] -o OUT.o|OUT.so --header OUT.h [-O0..-O3]\n"
          "           [--threads N] [--prefix NAME]\n"
          "\n"
          "  --emit=ast        print the syntax tree\n"
          "  --emit=ir         print the traced graph of model NAME's forward\n"
          "  --emit=loops      the loop IR the JIT lowers that graph to (fused kernels)\n"
          "  --emit=llvm       the optimized LLVM IR it generates\n"
          "  --emit=asm        the machine code, as assembly for this CPU\n"
          "  --emit=dot        the graph for Graphviz: ops, shapes, fused kernels as clusters\n"
          "  --emit=obj        with -o: a standalone object (the default for -o FILE.o)\n"
          "  --emit=shared     with -o: a shared library (the default for -o FILE.so)\n"
          "  -o FILE           compile ahead of time: C-callable NAME_forward, no LLVM or tt\n"
          "                    needed to link it (libc, libm, pthreads)\n"
          "  --header FILE.h   the C header declaring what -o defines\n"
          "  --weights FILE    weights from a safetensors file (default: the constructor's,\n"
          "                    with --seed)\n"
          "  --weights-external  embed no parameters or buffers: the object's\n"
          "                    PREFIX_load_weights reads them by name from a safetensors\n"
          "                    file at run time (--weights, optional, is then only\n"
          "                    checked against the model)\n"
          "  --prefix NAME     names of the C functions (default: the model's, lower case)\n"
          "  --threads N       threads of the compiled code's parallel loops (default 1)\n"
          "  --seed N          seed of the initial weights (default 0)\n"
          "  -O0..-O3          LLVM optimization level (default -O2)\n"
          "  --model NAME      the model to build (default constructor arguments)\n"
          "  -D NAME=N         size of a named dimension or constructor argument; with -o a\n"
          "                    dimension left out stays symbolic (the leading batch only)\n"
          "  --dump=trace      same as --emit=ir\n"
          "  --help, --version\n",
          out);
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

typedef enum Emit { EMIT_IR, EMIT_LOOPS, EMIT_LLVM, EMIT_ASM } Emit;

static int emit_graph(const TtcOptions *o, Emit what) {
    Interp *I = rt_new_interp();
    rt_set_scalar_consts(I, true); /* the trace's inputs: the forward's arguments, the parameters */
    int rc = rt_run_definitions(I, o->file);
    if (rc) {
        rt_free_interp(I);
        return 1;
    }
    jmp_buf jb;
    rt_set_on_error(I, &jb);
    if (setjmp(jb)) {
        rt_free_interp(I);
        return 1;
    }
    TtcModel M;
    IrGraph E;
    if (!ttc_build_model(o, I, &M) || !ttc_trace(o, &M, NULL, 0, &E, NULL, NULL)) {
        rt_free_interp(I);
        return 1;
    }
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
        ok = jit_emit_llvm(stdout, &E, o->opt_level, err, sizeof err);
        break;
    case EMIT_ASM:
        ok = jit_emit_asm(stdout, &E, o->opt_level, err, sizeof err);
        break;
    }
    ir_free(&E);
    if (!ok) fprintf(stderr, "ttc: error: %s\n", err);
    rt_free_interp(I);
    return ok ? 0 : 1;
}

/* -O N, --threads N: a non-negative integer option value */
static bool int_arg(const char *opt, const char *v, long long lo, long long *out) {
    char *end;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end || x < lo) {
        fprintf(stderr, "ttc: error: %s needs an integer >= %lld, got '%s'\n", opt, lo, v ? v : "");
        return false;
    }
    *out = x;
    return true;
}

/* "--name VALUE" or "--name=VALUE": the value, or NULL when a is not name */
static const char *opt_value(const char *a, const char *name, int argc, char **argv, int *i) {
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return NULL;
    if (a[n] == '=') return a + n + 1;
    if (a[n] == 0 && *i + 1 < argc) return argv[++*i];
    if (a[n] == 0) return "";
    return NULL;
}

static int run(TtcOptions *o, int argc, char **argv) {
    o->opt_level = 2;
    o->threads = 1;
    const char *v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long long x;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            unsigned maj, min, pat;
            aot_llvm_version(&maj, &min, &pat);
            printf("ttc %s (LLVM %u.%u.%u)\n", TT_VERSION, maj, min, pat);
            return 0;
        } else if (strncmp(a, "--emit=", 7) == 0) {
            o->emit = a + 7;
        } else if (strcmp(a, "--dump=trace") == 0) {
            o->emit = "ir";
        } else if (strncmp(a, "--dump=", 7) == 0) {
            fprintf(stderr, "ttc: error: --dump=%s is not available yet (available: trace)\n",
                    a + 7);
            return 2;
        } else if ((v = opt_value(a, "--model", argc, argv, &i))) {
            o->model = v;
        } else if ((v = opt_value(a, "--weights", argc, argv, &i))) {
            o->weights = v;
        } else if ((v = opt_value(a, "--header", argc, argv, &i))) {
            o->header = v;
        } else if ((v = opt_value(a, "--prefix", argc, argv, &i))) {
            o->prefix = v;
        } else if (strcmp(a, "-o") == 0 || (strncmp(a, "-o", 2) == 0 && a[2])) {
            o->out = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : "");
        } else if ((v = opt_value(a, "--threads", argc, argv, &i))) {
            if (!int_arg("--threads", v, 1, &x)) return 2;
            o->threads = x > 1024 ? 1024 : (int)x;
        } else if ((v = opt_value(a, "--seed", argc, argv, &i))) {
            char *end;
            o->seed = strtoll(v, &end, 10);
            if (!*v || *end) {
                fprintf(stderr, "ttc: error: --seed needs an integer, got '%s'\n", v);
                return 2;
            }
        } else if (strncmp(a, "-D", 2) == 0) {
            const char *d = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : "");
            const char *eq = strchr(d, '=');
            char *end;
            long long dv = eq ? strtoll(eq + 1, &end, 10) : 0;
            if (!eq || eq == d || *end || end == eq + 1 || o->ndefs == 64) {
                fprintf(stderr, "ttc: error: -D expects NAME=N, got '%s'\n", d);
                return 2;
            }
            o->defs[o->ndefs].name = strndup(d, (size_t)(eq - d));
            o->defs[o->ndefs++].value = dv;
        } else if (strcmp(a, "-O0") == 0 || strcmp(a, "-O1") == 0 || strcmp(a, "-O2") == 0 ||
                   strcmp(a, "-O3") == 0) {
            o->opt_level = a[2] - '0';
        } else if (strcmp(a, "--weights-external") == 0) {
            o->weights_external = true;
        } else if (strncmp(a, "--quantize", 10) == 0 || strncmp(a, "--passes", 8) == 0) {
            fprintf(stderr, "ttc: error: %s is not available yet\n", a);
            return 2;
        } else if (a[0] == '-') {
            fprintf(stderr, "ttc: error: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!o->file) {
            o->file = a;
        } else {
            fprintf(stderr, "ttc: error: more than one input file ('%s' and '%s')\n", o->file, a);
            return 2;
        }
    }
    if (!o->file) {
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
    const char *emit = o->emit;
    if (!emit && o->out) {
        size_t n = strlen(o->out);
        emit = n > 3 && strcmp(o->out + n - 3, ".so") == 0 ? "shared" : "obj";
    }
    if (!emit) emit = o->model ? "ir" : "ast";
    o->emit = emit;
    if (strcmp(emit, "ast") == 0) return emit_ast(o->file);
    bool aot = strcmp(emit, "obj") == 0 || strcmp(emit, "shared") == 0;
    bool dump = strcmp(emit, "ir") == 0 || strcmp(emit, "loops") == 0 ||
                strcmp(emit, "llvm") == 0 || strcmp(emit, "asm") == 0 || strcmp(emit, "dot") == 0;
    if (!aot && !dump) {
        fprintf(stderr,
                "ttc: error: unknown --emit=%s (expected ast, ir, loops, llvm, asm, dot, obj or "
                "shared)\n",
                emit);
        return 2;
    }
    if (!o->model) {
        fprintf(stderr, "ttc: error: --emit=%s needs --model NAME\n", emit);
        return 2;
    }
    if (aot && !o->out) {
        fprintf(stderr, "ttc: error: --emit=%s needs -o FILE\n", emit);
        return 2;
    }
    if (aot) return ttc_aot(o);
    if (strcmp(emit, "dot") == 0) return ttc_dot(o);
    Emit what = emit[0] == 'i'                     ? EMIT_IR
                : emit[0] == 'l' && emit[1] == 'o' ? EMIT_LOOPS
                : emit[0] == 'l'                   ? EMIT_LLVM
                                                   : EMIT_ASM;
    return emit_graph(o, what);
}

int main(int argc, char **argv) {
    static TtcOptions o;
    int rc = run(&o, argc, argv);
    for (int i = 0; i < o.ndefs; i++) free((char *)o.defs[i].name);
    diag_shutdown();
    return rc;
}
