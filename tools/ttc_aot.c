/* ttc_aot.c - ttc -o: a model compiled ahead of time into a standalone
 * object (or shared library) and its C header; ttc --emit=dot.
 *
 * Dimensions of the forward's annotations are literals, names of the model
 * instance, -D NAME=N, or left open. One open name is allowed, and only as
 * the leading dimension of the inputs it appears in: the batch. It stays a
 * run-time argument of p_forward (int64_t B); the object holds the forward
 * traced at 64, 8 and 1 rows and covers any B with those (aot.h). That is
 * only right for a forward whose rows are independent, so before compiling,
 * ttc runs the 2-row and the 1-row graph with the reference interpreter on
 * the same random rows and refuses a forward whose rows mix.
 *
 * The model is built in evaluation mode (Dropout off, BatchNorm on its
 * running statistics). Its weights: --weights W.safetensors (load(): every
 * mismatch listed), else its constructor's, drawn with --seed (default 0)
 * exactly as `ttrun --seed=N` would build it first thing in a script.
 * With --weights-external, the graph inputs that are tensors of the
 * model's state are not embedded: the object reads them by their save()
 * names at run time (aot_weights.c); other constants stay embedded.
 *
 * Every file is written through io_write_atomic: on any error no output
 * file is left, and an existing one keeps its old contents.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aot.h"
#include "io_atomic.h"
#include "kernels.h"
#include "ttc.h"

#ifndef TT_VERSION /* CMake passes the project version */
#define TT_VERSION "0.1.0"
#endif

/* batch chunks of the compiled forward, largest first; the last must be 1 */
static const int64_t chunk_rows[] = {64, 8, 1};
#define NCHUNK ((int)(sizeof chunk_rows / sizeof chunk_rows[0]))

/* -- checks before any work -- */

/* The directory of path exists (an output path in a missing directory is
 * an error before anything is compiled). */
static bool dir_ok(const char *what, const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!*path) {
        fprintf(stderr, "ttc: error: %s: an empty file name\n", what);
        return false;
    }
    if (!slash) return true;
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= sizeof dir) n = sizeof dir - 1;
    memcpy(dir, path, n);
    dir[n] = 0;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "ttc: error: cannot write %s: directory '%s' does not exist\n", path, dir);
        return false;
    }
    return true;
}

static bool c_identifier(const char *s) {
    if (!*s || !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return false;
    for (const char *p = s; *p; p++)
        if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

/* -- the dimensions of the forward -- */

typedef struct Dims {
    const char *sym; /* the open (batch) dimension, or NULL */
    int nbad;        /* errors reported */
} Dims;

/* Is name a constructor parameter of the model? */
static bool ctor_param(const TtcModel *M, const char *name) {
    const AstList *ps = &M->m->def->def->list;
    for (int i = 0; i < ps->len; i++)
        if (strcmp(ps->items[i]->str, name) == 0) return true;
    return false;
}

/* Classifies every named dim of the forward's annotations; reports an open
 * dim that cannot be the batch (unbound), a -D that contradicts a value
 * the model fixes, and a -D that names nothing. */
static Dims classify_dims(const TtcOptions *o, TtcModel *M) {
    Dims D = {0};
    const AstNode *fwd = M->fwd;
    bool *used = tt_xcalloc((size_t)o->ndefs + 1, sizeof *used);
    for (int i = 0; i < fwd->list.len; i++) {
        const AstNode *ty = fwd->list.items[i]->type;
        if (!ty) continue;
        int pos = 0; /* position among the dims (an ellipsis makes it unknown) */
        for (int k = 0; k < ty->list.len; k++, pos++) {
            const AstNode *dd = ty->list.items[k];
            if (dd->kind == AST_ELLIPSIS) {
                pos = -1000;
                continue;
            }
            if (dd->kind != AST_NAME) continue;
            for (int q = 0; q < o->ndefs; q++)
                if (strcmp(o->defs[q].name, dd->str) == 0) used[q] = true;
            long long dv;
            bool has_d = ttc_lookup_define(o, dd->str, &dv);
            if (has_d && !ctor_param(M, dd->str)) {
                /* a name the instance fixes: -D may only repeat it */
                TtcOptions none = *o;
                none.ndefs = 0;
                bool open;
                int64_t mv = ttc_dim_value(&none, M, dd, &open);
                if (!open && mv != dv) {
                    diag_error(dd->loc,
                               "-D %s=%lld contradicts the annotation: model %s has %s = %lld",
                               dd->str, dv, o->model, dd->str, (long long)mv);
                    D.nbad++;
                    continue;
                }
            }
            if (has_d && dv < 0) {
                diag_error(dd->loc, "-D %s=%lld: a dimension cannot be negative", dd->str, dv);
                D.nbad++;
                continue;
            }
            bool open;
            ttc_dim_value(o, M, dd, &open);
            if (!open) continue;
            if (pos != 0 || (D.sym && strcmp(D.sym, dd->str) != 0)) {
                diag_error(dd->loc,
                           "dimension '%s' of %s.forward is not bound: give it with -D %s=N "
                           "(only one leading batch dimension%s%s can stay symbolic)",
                           dd->str, o->model, dd->str, D.sym ? ", here " : "", D.sym ? D.sym : "");
                D.nbad++;
                continue;
            }
            D.sym = dd->str;
        }
    }
    for (int q = 0; q < o->ndefs; q++)
        if (!used[q] && !ctor_param(M, o->defs[q].name)) {
            fprintf(stderr,
                    "ttc: error: -D %s=%lld: model %s has no constructor argument and its forward "
                    "no dimension named '%s'\n",
                    o->defs[q].name, o->defs[q].value, o->model, o->defs[q].name);
            D.nbad++;
        }
    free(used);
    return D;
}

/* -- the traced graphs and their weights -- */

typedef struct Traced {
    IrGraph E;
    int64_t rows;
    int *slot_src; /* per input slot: forward argument, or -1 - weight */
} Traced;

typedef struct Weights {
    AotWeight *w;
    int n, cap;
    /* --weights-external: the model's state (parameters and buffers) as
     * save() names it, and where each tensor's data is; NULL otherwise */
    char **state_name;
    const void **state_data;
    int nstate;
} Weights;

/* The index of an unnamed weight with these bytes, added (copied) when
 * new: equal constants are stored once. */
static int weight_index(Weights *W, const void *data, size_t bytes) {
    for (int i = 0; i < W->n; i++)
        if (!W->w[i].name && W->w[i].bytes == bytes &&
            (bytes == 0 || memcmp(W->w[i].data, data, bytes) == 0))
            return i;
    void *copy = tt_xmalloc(bytes ? bytes : 1);
    if (bytes) memcpy(copy, data, bytes);
    AotWeight w = {copy, bytes};
    TT_VEC_PUSH(W->w, W->n, W->cap, w);
    return W->n - 1;
}

/* The index of the state tensor `name` (external weights: by name, never
 * by content, as two zero biases are two tensors of the file), added when
 * new. ttc keeps a copy of its data for the batch check. */
static int weight_named(Weights *W, const char *name, const IrNode *n, const void *data,
                        size_t bytes) {
    for (int i = 0; i < W->n; i++)
        if (W->w[i].name && strcmp(W->w[i].name, name) == 0) return i;
    void *copy = tt_xmalloc(bytes ? bytes : 1);
    if (bytes) memcpy(copy, data, bytes);
    AotWeight w = {copy, bytes, tt_xstrdup(name), n->dtype, n->shape};
    TT_VEC_PUSH(W->w, W->n, W->cap, w);
    return W->n - 1;
}

/* --weights-external: the names and data of the model's state, as save()
 * and load() see them (rt_state_tensors). */
static void collect_state(Interp *I, Value net, Weights *W) {
    Value st = rt_state_tensors(I, net, "ttc");
    List *l = (List *)st.o;
    W->state_name = tt_xcalloc((size_t)l->len + 1, sizeof *W->state_name);
    W->state_data = tt_xcalloc((size_t)l->len + 1, sizeof *W->state_data);
    for (int i = 0; i < l->len; i++) {
        List *pair = (List *)l->items[i].o;
        W->state_name[i] = tt_xstrdup(((Str *)pair->items[0].o)->s);
        W->state_data[i] = rt_data(I, (Tensor *)pair->items[1].o);
    }
    W->nstate = l->len;
    rt_release(I, st);
}

static const char *state_name_of(const Weights *W, const void *data) {
    for (int i = 0; i < W->nstate; i++)
        if (W->state_data[i] == data) return W->state_name[i];
    return NULL;
}

static bool trace_at(const TtcOptions *o, TtcModel *M, const char *sym, int64_t rows, Traced *T,
                     Weights *W) {
    int nargs = M->fwd->list.len;
    int *arg_node = tt_xcalloc((size_t)nargs + 1, sizeof *arg_node);
    int *slot_node = NULL;
    T->rows = rows;
    if (!ttc_trace(o, M, sym, rows, &T->E, arg_node, &slot_node)) {
        free(arg_node);
        return false;
    }
    Interp *I = M->I;
    T->slot_src = tt_xmalloc(((size_t)T->E.ninputs + 1) * sizeof *T->slot_src);
    bool ok = true;
    for (int k = 0; k < T->E.ninputs; k++) {
        int id = slot_node[k], src = -1;
        for (int a = 0; a < nargs; a++)
            if (arg_node[a] == id) src = a;
        if (src < 0) {
            Buffer *b = id < I->lz.node_buf_cap ? I->lz.node_buf[id] : NULL;
            if (!b) {
                fprintf(stderr, "ttc: error: input %d of the traced graph has no data\n", k);
                ok = false;
                break;
            }
            const IrNode *n = ir_node(&T->E, 0);
            for (int q = 0; q < T->E.n; q++)
                if (T->E.nodes[q].op == OP_INPUT && T->E.nodes[q].attr.index == k)
                    n = &T->E.nodes[q];
            size_t bytes = (size_t)shape_numel(&n->shape) * dtype_size(n->dtype);
            const char *name = W->state_name ? state_name_of(W, b->data) : NULL;
            src = -1 - (name ? weight_named(W, name, n, b->data, bytes)
                             : weight_index(W, b->data, bytes));
        }
        T->slot_src[k] = src;
    }
    free(arg_node);
    free(slot_node);
    return ok;
}

static const IrNode *input_node(const IrGraph *g, int slot) {
    for (int q = 0; q < g->n; q++)
        if (g->nodes[q].op == OP_INPUT && g->nodes[q].attr.index == slot) return &g->nodes[q];
    return NULL;
}

/* The forward's argument i as a node of graph g (its first slot). */
static const IrNode *arg_node_of(const Traced *T, int arg) {
    for (int k = 0; k < T->E.ninputs; k++)
        if (T->slot_src[k] == arg) return input_node(&T->E, k);
    return NULL;
}

/* -- the batch check -- */

static uint64_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static void fill_random(void *p, DType dt, int64_t n, uint64_t *s) {
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = lcg(s);
        if (dt == TY_F32)
            ((float *)p)[i] = (float)((double)(r % 20001) / 10000.0 - 1.0);
        else if (dt == TY_I32)
            ((int32_t *)p)[i] = (int32_t)(r % 2);
        else
            ((int8_t *)p)[i] = (int8_t)(r % 2);
    }
}

static double value_at(const void *p, DType dt, int64_t i) {
    return dt == TY_F32   ? ((const float *)p)[i]
           : dt == TY_I32 ? ((const int32_t *)p)[i]
                          : ((const int8_t *)p)[i];
}

/* Runs the 2-row graph and the 1-row graph on each of its rows (the
 * reference interpreter): every output row must agree. */
static bool rows_independent(const Traced *T2, const Traced *T1, const Weights *W, int nargs,
                             const int64_t *arg_row, char *why, size_t whylen) {
    uint64_t seed = 12345;
    void **in2 = tt_xcalloc((size_t)T2->E.ninputs + 1, sizeof *in2);
    void **in1 = tt_xcalloc((size_t)T1->E.ninputs + 1, sizeof *in1);
    void **argdata = tt_xcalloc((size_t)nargs + 1, sizeof *argdata);
    void **out2 = tt_xcalloc((size_t)T2->E.nout + 1, sizeof *out2);
    void **out1 = tt_xcalloc((size_t)T1->E.nout + 1, sizeof *out1);
    bool ok = true;
    for (int a = 0; a < nargs; a++) {
        const IrNode *n = arg_node_of(T2, a);
        if (!n) continue;
        int64_t numel = shape_numel(&n->shape);
        argdata[a] = tt_xcalloc((size_t)numel + 1, dtype_size(n->dtype));
        fill_random(argdata[a], n->dtype, numel, &seed);
    }
    for (int k = 0; k < T2->E.ninputs; k++) {
        int s = T2->slot_src[k];
        in2[k] = s >= 0 ? argdata[s] : (void *)W->w[-1 - s].data;
    }
    for (int j = 0; j < T2->E.nout; j++) {
        const IrNode *n = ir_node(&T2->E, T2->E.outputs[j]);
        out2[j] = tt_xcalloc((size_t)shape_numel(&n->shape) + 1, dtype_size(n->dtype));
    }
    for (int j = 0; j < T1->E.nout; j++) {
        const IrNode *n = ir_node(&T1->E, T1->E.outputs[j]);
        out1[j] = tt_xcalloc((size_t)shape_numel(&n->shape) + 1, dtype_size(n->dtype));
    }
    KernelErr ke = {0};
    if (!rt_naive_run(&T2->E, in2, out2, NULL, &ke)) {
        snprintf(why, whylen, "running it on random rows failed: %s", ke.msg);
        ok = false;
    }
    for (int r = 0; r < 2 && ok; r++) {
        for (int k = 0; k < T1->E.ninputs; k++) {
            int s = T1->slot_src[k];
            in1[k] = s >= 0 ? (char *)argdata[s] + r * arg_row[s] : (void *)W->w[-1 - s].data;
        }
        if (!rt_naive_run(&T1->E, in1, out1, NULL, &ke)) {
            snprintf(why, whylen, "running it on random rows failed: %s", ke.msg);
            ok = false;
            break;
        }
        for (int j = 0; j < T1->E.nout && ok; j++) {
            const IrNode *n = ir_node(&T1->E, T1->E.outputs[j]);
            int64_t m = shape_numel(&n->shape);
            for (int64_t e = 0; e < m; e++) {
                double x = value_at(out1[j], n->dtype, e),
                       y = value_at(out2[j], n->dtype, r * m + e);
                if (!(fabs(x - y) <= 1e-4 * (1 + fabs(y))) && !(isnan(x) && isnan(y))) {
                    snprintf(why, whylen,
                             "row %d of output %d differs when computed alone (%g) and in a "
                             "batch of 2 (%g): the forward mixes the rows of the batch",
                             r, j, x, y);
                    ok = false;
                    break;
                }
            }
        }
    }
    for (int a = 0; a < nargs; a++) free(argdata[a]);
    for (int j = 0; j < T2->E.nout; j++) free(out2[j]);
    for (int j = 0; j < T1->E.nout; j++) free(out1[j]);
    free(argdata);
    free(out2);
    free(out1);
    free(in2);
    free(in1);
    return ok;
}

/* -- the header -- */

static const char *c_type(DType dt) {
    return dt == TY_F32 ? "float" : dt == TY_I32 ? "int32_t" : "int8_t";
}

static void annot_str(const AstNode *ty, StrBuf *out) {
    ast_type_str(ty, out);
}

/* The names of the outputs: y, or y0, y1, ... (out_ when a parameter is
 * already called that). */
static void out_name(const TtcModel *M, int j, int nout, char *buf, size_t n) {
    if (nout == 1)
        snprintf(buf, n, "y");
    else
        snprintf(buf, n, "y%d", j);
    for (int i = 0; i < M->fwd->list.len; i++)
        if (strcmp(M->fwd->list.items[i]->str, buf) == 0) {
            char t[96];
            snprintf(t, sizeof t, "out_%.80s", buf);
            snprintf(buf, n, "%.79s", t);
        }
}

static void upper(const char *s, char *out, size_t n) {
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++) out[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    out[i] = 0;
}

static void shape_dims_str(const Shape *s, const char *sym, StrBuf *out) {
    sb_printf(out, "[");
    for (int k = 0; k < s->ndim; k++)
        if (k == 0 && sym)
            sb_printf(out, "%s", sym);
        else
            sb_printf(out, "%s%lld", k ? ", " : "", (long long)s->d[k]);
    sb_printf(out, "]");
}

static void make_header(const TtcOptions *o, const TtcModel *M, const char *prefix, const char *sym,
                        const Traced *T, const int64_t *out_row, const Weights *W, StrBuf *h) {
    char up[256];
    upper(prefix, up, sizeof up);
    const AstNode *fwd = M->fwd;
    sb_printf(h,
              "/* %s.h - %s.forward of %s,\n"
              " * compiled ahead of time by ttc %s (spec/aot.md).\n"
              " *\n"
              " * The object needs no tt runtime and no LLVM: link it with -lm -lpthread.\n"
              " * Tensors are dense, row-major, in the caller's memory.\n",
              prefix, o->model, o->file, TT_VERSION);
    if (sym)
        sb_printf(h,
                  " * %s is a run-time argument: any %s >= 0 (no rebuild); the rows of a batch\n"
                  " * are independent (ttc checked it).\n",
                  sym, sym);
    if (o->weights_external)
        sb_printf(h, " * Weights: read at run time by %s_load_weights (none embedded).\n */\n",
                  prefix);
    else if (o->weights)
        sb_printf(h, " * Weights: %s.\n */\n", o->weights);
    else
        sb_printf(h, " * Weights: the constructor's, seed %lld.\n */\n", o->seed);
    sb_printf(h,
              "#ifndef %s_H\n#define %s_H\n\n#include <stddef.h>\n#include <stdint.h>\n\n"
              "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n",
              up, up);
    sb_printf(h,
              "/* what %s_forward returns */\n"
              "#define %s_OK 0\n"
              "#define %s_EDIM %d       /* a dimension argument is negative */\n"
              "#define %s_EWORKSPACE %d /* workspace NULL, %s_workspace_bytes() not 0 */\n"
              "#define %s_EINDEX %d     /* an index input is out of range */\n",
              prefix, up, up, AOT_EDIM, up, AOT_EWORKSPC, prefix, up, AOT_EINDEX);
    if (o->weights_external)
        sb_printf(h, "#define %s_EWEIGHTS %d   /* no weights loaded: %s_load_weights */\n", up,
                  AOT_EWEIGHTS, prefix);
    sb_printf(h, "\n");
    if (o->weights_external) {
        sb_printf(h, "/* Reads the model's weights from a safetensors file (tt's save(), or any\n"
                     " * safetensors writer), by name; other tensors in the file are ignored:\n");
        for (int i = 0; i < W->n; i++) {
            if (!W->w[i].name) continue;
            StrBuf ss = {0};
            shape_dims_str(&W->w[i].shape, NULL, &ss);
            sb_printf(h, " *   %s: %s%s\n", W->w[i].name, dtype_name(W->w[i].dtype), ss.s);
            sb_free(&ss);
        }
        sb_printf(h,
                  " * Returns %s_OK, or %s_EWEIGHTS with every problem (a missing\n"
                  " * tensor, a dtype or shape that differs, a truncated or corrupt file) in err\n"
                  " * (errlen bytes, NUL-terminated; err may be NULL); the weights loaded\n"
                  " * before, if any, then stay. Not thread-safe against %s_forward. */\n"
                  "int %s_load_weights(const char *path, char *err, size_t errlen);\n\n"
                  "/* Frees the loaded weights (%s_forward then returns %s_EWEIGHTS). */\n"
                  "void %s_free_weights(void);\n\n",
                  up, up, prefix, prefix, prefix, up, prefix);
    }
    sb_printf(h,
              "/* Bytes of the workspace %s_forward needs%s\n"
              " * (0: none, NULL will do; float-aligned, 64 bytes is best). */\n"
              "size_t %s_workspace_bytes(%s%s);\n\n",
              prefix, sym ? " for a batch of that many rows (B)" : "", prefix,
              sym ? "int64_t " : "void", sym ? sym : "");
    sb_printf(h, "/* %s.forward", o->model);
    StrBuf args = {0};
    for (int i = 0; i < fwd->list.len; i++) {
        const AstNode *p = fwd->list.items[i];
        StrBuf ts = {0};
        annot_str(p->type, &ts);
        sb_printf(h, "%s %s: %s", i ? "," : ":", p->str, ts.s ? ts.s : "");
        sb_free(&ts);
        const IrNode *n = arg_node_of(T, i);
        sb_printf(&args, "%sconst %s *%s", i ? ", " : "", c_type(n ? n->dtype : TY_F32), p->str);
    }
    sb_printf(h, "\n *   ->");
    for (int j = 0; j < T->E.nout; j++) {
        const IrNode *n = ir_node(&T->E, T->E.outputs[j]);
        char nm[80];
        out_name(M, j, T->E.nout, nm, sizeof nm);
        StrBuf ss = {0};
        shape_dims_str(&n->shape, out_row[j] ? sym : NULL, &ss);
        sb_printf(h, "%s %s: %s%s", j ? "," : "", nm, dtype_name(n->dtype), ss.s);
        sb_free(&ss);
        sb_printf(&args, ", %s *%s", c_type(n->dtype), nm);
    }
    if (sym) sb_printf(&args, ", int64_t %s", sym);
    sb_printf(&args, ", void *workspace");
    sb_printf(h,
              "\n * Returns %s_OK, or a nonzero %s_E* code (nothing computed for %s\n"
              " * EWORKSPACE). Thread-safe when each call has its own workspace. */\n"
              "int %s_forward(%s);\n\n"
              "#ifdef __cplusplus\n}\n#endif\n\n#endif\n",
              up, up, o->weights_external ? "EWEIGHTS, EDIM and" : "EDIM and", prefix, args.s);
    sb_free(&args);
}

/* -- writing -- */

static bool write_file(const char *path, const void *data, size_t len) {
    char err[512];
    IoChunk c = {data, len};
    if (!io_write_atomic(path, &c, 1, err, sizeof err)) {
        fprintf(stderr, "ttc: error: %s\n", err);
        return false;
    }
    return true;
}

/* -o FILE.so: the object linked by the C compiler ($CC, else cc) into a
 * temporary file beside FILE, renamed over it when the link succeeded. */
static bool write_shared(const char *path, const void *obj, size_t len) {
    char tmpo[] = "/tmp/ttc-XXXXXX.o";
    int fd = mkstemps(tmpo, 2);
    if (fd < 0) {
        fprintf(stderr, "ttc: error: cannot create a temporary file: %s\n", strerror(errno));
        return false;
    }
    char err[256];
    bool ok = io_write_all(fd, obj, len, tmpo, err, sizeof err);
    close(fd);
    if (!ok) {
        fprintf(stderr, "ttc: error: %s\n", err);
        unlink(tmpo);
        return false;
    }
    StrBuf tmps = {0};
    sb_printf(&tmps, "%s.tmp-%d", path, (int)getpid());
    const char *cc = getenv("CC");
    if (!cc || !*cc) cc = "cc";
    pid_t pid = fork();
    if (pid == 0) {
        execlp(cc, cc, "-shared", "-o", tmps.s, tmpo, "-lm", "-lpthread", (char *)NULL);
        fprintf(stderr, "ttc: error: cannot run the C compiler '%s' to link %s: %s\n", cc, path,
                strerror(errno));
        _exit(127);
    }
    int st = 0;
    ok = pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    unlink(tmpo);
    if (ok && rename(tmps.s, path) != 0) {
        fprintf(stderr, "ttc: error: cannot write %s: %s\n", path, strerror(errno));
        ok = false;
    } else if (!ok) {
        if (pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) != 127)
            fprintf(stderr, "ttc: error: linking %s with '%s -shared' failed\n", path, cc);
    }
    if (!ok) unlink(tmps.s);
    sb_free(&tmps);
    return ok;
}

/* -- the driver -- */

static void free_traced(Traced *T, int n) {
    for (int i = 0; i < n; i++) {
        ir_free(&T[i].E);
        free(T[i].slot_src);
    }
}

static Interp *open_interp(const TtcOptions *o) {
    Interp *I = rt_new_interp();
    RtConfig cfg = *rt_config(I);
    cfg.seed = (uint64_t)o->seed;
    rt_configure(I, &cfg);
    rt_set_training(I, false);     /* inference: Dropout off, BatchNorm's running statistics */
    rt_set_scalar_consts(I, true); /* the trace's inputs: the forward's arguments, the parameters */
    if (rt_run_definitions(I, o->file)) {
        rt_free_interp(I);
        return NULL;
    }
    return I;
}

/* The body of ttc_aot under the interpreter's error handler. */
static int compile_model(const TtcOptions *o, TtcModel *M, Traced *T, int *ntraced, Weights *W) {
    char prefix[256];
    if (o->prefix) {
        snprintf(prefix, sizeof prefix, "%s", o->prefix);
    } else {
        size_t i = 0;
        for (; o->model[i] && i + 1 < sizeof prefix; i++)
            prefix[i] =
                (char)(o->model[i] >= 'A' && o->model[i] <= 'Z' ? o->model[i] + 32 : o->model[i]);
        prefix[i] = 0;
    }
    if (!c_identifier(prefix)) {
        fprintf(stderr, "ttc: error: --prefix '%s' is not a C identifier\n", prefix);
        return 1;
    }
    if (!ttc_build_model(o, M->I, M)) return 1;
    if (o->weights_external) collect_state(M->I, M->net, W);
    Dims D = classify_dims(o, M);
    if (D.nbad) return 1;
    int nargs = M->fwd->list.len;
    /* the graphs: each chunk size (or one without a batch), and 2 rows for
     * the check */
    int ng = D.sym ? NCHUNK : 1;
    for (int i = 0; i < ng; i++) {
        if (!trace_at(o, M, D.sym, D.sym ? chunk_rows[i] : 1, &T[i], W)) return 1;
        ++*ntraced;
    }
    int64_t *arg_row = tt_xcalloc((size_t)nargs + 1, sizeof *arg_row);
    int nout = T[0].E.nout;
    int64_t *out_row = tt_xcalloc((size_t)nout + 1, sizeof *out_row);
    int rc = 1;
    if (D.sym) {
        /* the batch must lead every output, and the other dims agree */
        const Traced *big = &T[0], *one = &T[ng - 1];
        for (int j = 0; j < nout; j++) {
            const IrNode *a = ir_node(&big->E, big->E.outputs[j]),
                         *b = ir_node(&one->E, one->E.outputs[j]);
            bool lead = a->shape.ndim >= 1 && a->shape.ndim == b->shape.ndim &&
                        a->shape.d[0] == big->rows && b->shape.d[0] == 1;
            for (int k = 1; lead && k < a->shape.ndim; k++) lead = a->shape.d[k] == b->shape.d[k];
            if (!lead) {
                fprintf(stderr,
                        "ttc: error: output %d of %s.forward does not have %s as its leading "
                        "dimension: give %s with -D %s=N\n",
                        j, o->model, D.sym, D.sym, D.sym);
                goto out;
            }
            out_row[j] = (int64_t)(shape_numel(&b->shape) * (int64_t)dtype_size(b->dtype));
        }
        for (int a = 0; a < nargs; a++) {
            const IrNode *x = arg_node_of(one, a), *y = arg_node_of(big, a);
            if (!x || !y) continue;
            if (y->shape.ndim >= 1 && y->shape.d[0] == big->rows && x->shape.d[0] == 1 &&
                !shape_eq(&x->shape, &y->shape))
                arg_row[a] = (int64_t)(shape_numel(&x->shape) * (int64_t)dtype_size(x->dtype));
        }
        Traced two = {0};
        if (!trace_at(o, M, D.sym, 2, &two, W)) goto out;
        char why[512];
        bool indep = rows_independent(&two, one, W, nargs, arg_row, why, sizeof why);
        free_traced(&two, 1);
        if (!indep) {
            fprintf(stderr,
                    "ttc: error: %s.forward cannot keep %s symbolic: %s; give it with -D %s=N\n",
                    o->model, D.sym, why, D.sym);
            goto out;
        }
    }
    /* a tensor the forward reads that is not model state (a constant, or
     * one the constructor derived from a parameter) stays embedded: say
     * so, since a new weights file will not change it */
    for (int i = 0; o->weights_external && i < W->n; i++)
        if (!W->w[i].name)
            fprintf(stderr,
                    "ttc: note: %s.forward reads a %zu-byte tensor that is not a parameter or "
                    "buffer of the model: it stays embedded, whatever weights are loaded\n",
                    o->model, W->w[i].bytes);
    AotGraph *graphs = tt_xcalloc((size_t)ng, sizeof *graphs);
    for (int i = 0; i < ng; i++) graphs[i] = (AotGraph){&T[i].E, T[i].rows, T[i].slot_src};
    AotSpec s = {prefix, nargs, nout, arg_row,      out_row,    D.sym != NULL,      graphs,
                 ng,     W->w,  W->n, o->opt_level, o->threads, o->weights_external};
    char err[512] = "", *obj = NULL;
    size_t len = 0;
    bool ok = aot_build(&s, AOT_OBJECT, &obj, &len, err, sizeof err);
    free(graphs);
    if (!ok) {
        fprintf(stderr, "ttc: error: %s\n", err);
        goto out;
    }
    StrBuf h = {0};
    if (o->header) make_header(o, M, prefix, D.sym, &T[0], out_row, W, &h);
    ok = strcmp(o->emit, "shared") == 0 ? write_shared(o->out, obj, len)
                                        : write_file(o->out, obj, len);
    if (ok && o->header && !write_file(o->header, h.s, h.len)) {
        unlink(o->out); /* both files or neither */
        ok = false;
    }
    sb_free(&h);
    free(obj);
    rc = ok ? 0 : 1;
out:
    free(arg_row);
    free(out_row);
    return rc;
}

int ttc_aot(const TtcOptions *o) {
    if (!dir_ok("-o", o->out) || (o->header && !dir_ok("--header", o->header))) return 1;
    Interp *I = open_interp(o);
    if (!I) return 1;
    Traced T[NCHUNK];
    memset(T, 0, sizeof T);
    int ntraced = 0;
    Weights W = {0};
    TtcModel M = {0};
    M.I = I;
    volatile int rc = 1;
    jmp_buf jb;
    rt_set_on_error(I, &jb);
    if (setjmp(jb) == 0) rc = compile_model(o, &M, T, &ntraced, &W);
    free_traced(T, ntraced);
    for (int i = 0; i < W.n; i++) {
        free((void *)W.w[i].data);
        free((char *)W.w[i].name);
    }
    free(W.w);
    for (int i = 0; i < W.nstate; i++) free(W.state_name[i]);
    free(W.state_name);
    free(W.state_data);
    rt_free_interp(I);
    return rc;
}

int ttc_dot(const TtcOptions *o) {
    Interp *I = open_interp(o);
    if (!I) return 1;
    volatile int rc = 1;
    jmp_buf jb;
    rt_set_on_error(I, &jb);
    TtcModel M;
    IrGraph E = {0};
    volatile bool traced = false;
    if (setjmp(jb) == 0 && ttc_build_model(o, I, &M) &&
        (traced = ttc_trace(o, &M, NULL, 0, &E, NULL, NULL))) {
        aot_emit_dot(stdout, &E);
        rc = 0;
    }
    if (traced) ir_free(&E);
    rt_free_interp(I);
    return rc;
}
