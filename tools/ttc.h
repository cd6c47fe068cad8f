/* ttc.h - what the parts of the ttc driver share: the command line's
 * settings, building a model and tracing its forward (ttc_model.c), and
 * ahead-of-time compilation (ttc_aot.c). */
#ifndef TT_TTC_H
#define TT_TTC_H

#include "eval.h"

typedef struct TtcDefine {
    const char *name; /* malloc'd */
    long long value;
} TtcDefine;

typedef struct TtcOptions {
    const char *file, *model;
    const char *weights; /* --weights W.safetensors, or NULL: the constructor's */
    const char *out;     /* -o FILE (.o, or .so: a shared library) */
    const char *header;  /* --header FILE.h */
    const char *prefix;  /* --prefix NAME, or NULL: the model's name in lower case */
    const char *emit;    /* ast, ir, loops, llvm, asm, obj, shared, dot */
    int opt_level;       /* -O0..-O3 */
    int threads;         /* --threads N (AOT: default 1) */
    long long seed;      /* --seed N: the initial weights (default 0) */
    TtcDefine defs[64];  /* -D NAME=N */
    int ndefs;
    /* --weights-external: the model's state read at run time, by name */
    bool weights_external;
} TtcOptions;

bool ttc_lookup_define(const TtcOptions *o, const char *name, long long *v);

/* A model built for tracing. */
typedef struct TtcModel {
    Interp *I;
    Value net;
    Model *m;
    const AstNode *fwd; /* its forward method */
} TtcModel;

/* Builds o->model from o->file with the -D constructor arguments (the
 * others default) and the seed; loads o->weights when given (load() checks
 * and lists every mismatch). Must run under a setjmp set with rt_set_on_error, which
 * the caller set: rt_error ends there. False after printing an error. */
bool ttc_build_model(const TtcOptions *o, Interp *I, TtcModel *M);

/* The value of a dimension of a forward annotation: a literal, a -D name,
 * a name of the instance; *symbolic (may be NULL) is set, and 1 returned,
 * for a name none of them binds. */
int64_t ttc_dim_value(const TtcOptions *o, TtcModel *M, const AstNode *d, bool *symbolic);

/* Traces the forward with symbolic inputs shaped by the annotations (the
 * named dim `sym`, when not NULL, = rows) into E (outputs in order).
 * arg_node[i] receives forward argument i's input node in I->lz.g, and
 * slot_node (g->ninputs long, malloc'd) each input slot's node in I->lz.g.
 * False after printing an error. */
bool ttc_trace(const TtcOptions *o, TtcModel *M, const char *sym, int64_t rows, IrGraph *E,
               int *arg_node, int **slot_node);

/* ttc --emit=obj|shared (or -o): the AOT compiler; --emit=dot. Return the
 * exit status. */
int ttc_aot(const TtcOptions *o);
int ttc_dot(const TtcOptions *o);

#endif
