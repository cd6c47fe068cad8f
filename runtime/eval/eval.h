/* eval.h - internals shared by the evaluator's files (value.c, env.c, eval_*.c,
 * model.c, interp.c, capture.c, builtins_core.c, ...); the lazy graph's own
 * internals are in graph.h, which it includes. Not a public contract:
 * builtins in other files use value.h only.
 */
#ifndef TT_EVAL_H
#define TT_EVAL_H

#include "graph.h"
#include "value.h"

/* -- scopes (env.c) -- */

/* A scope: names -> values. Blocks, fn calls, loop iterations and model
 * instances each get one. Scopes are reference counted (closures and models
 * retain their scope) and linked into I->ev.envs so rt_free_interp frees the
 * cycles a closure stored in its own scope makes. */
struct Env {
    int refcount;
    Env *parent;  /* retained */
    Model *model; /* weak: set on a model's instance scope; its fields are
                     looked up (and assigned) before the scope's own names */
    int n, cap;
    const char **names; /* interned */
    uint32_t *hashes;
    Value *vals;
    int *index; /* open-addressing table of entry+1 (0 empty), size icap */
    int icap;
    Env *prev, *next; /* I->ev.envs */
    uint64_t serial;  /* rt_serial at its making (capture.c: made by a recorded call?) */
};

Env *env_new(Interp *I, Env *parent);
Env *env_retain(Env *e);
void env_release(Interp *I, Env *e);
/* The slot holding `name` in e itself (not its parents), or NULL. */
Value *env_find_local(Env *e, const char *name);
/* Declares name in e (replacing an earlier declaration in the same scope);
 * takes v's reference. */
void env_define(Interp *I, Env *e, const char *name, Value v);
/* Frees every scope (rt_free_interp; values are freed by the gc list). */
void env_free_all(Interp *I);
/* Appends the names visible from e (each scope's own names) to out. */
void env_names(Env *e, const char ***out, int *n, int *cap);

/* -- objects (value.c) -- */
void rt_free_all_objects(Interp *I);
/* The model field slot of `name`, or NULL. */
Value *rt_model_field(Model *m, const char *name);

/* -- evaluation (eval_expr.c, eval_stmt.c, model.c) -- */

typedef enum Flow { FLOW_NORMAL, FLOW_BREAK, FLOW_CONTINUE, FLOW_RETURN } Flow;

/* Runs profile { ... } (n: AST_PROFILE, profile.c) in a scope of its own,
 * realizing everything computed inside before the scope goes, and returns
 * its record (ms, flops, bytes, peak_mb, ops). print: also print the table
 * (the statement form). *fl and *ret: the block's flow, as exec_block_in. */
Value rt_profile_block(Interp *I, Env *env, const AstNode *n, Value *ret, Flow *fl, bool print);

Value eval_expr(Interp *I, Env *env, const AstNode *n);
/* Runs statements of a block in env; a return stores its value in *ret. */
Flow exec_stmt(Interp *I, Env *env, const AstNode *n, Value *ret);
Flow exec_block_in(Interp *I, Env *env, const AstNode *block, Value *ret);
/* Runs a whole program in the globals; with echo, prints the value of a
 * final expression statement. */
void exec_program(Interp *I, const AstNode *prog, bool echo);
/* Only the model and fn definitions of a program (ttc). */
void exec_definitions(Interp *I, const AstNode *prog);

Value eval_binary_values(Interp *I, AstOp op, Value a, Value b);
Value eval_index(Interp *I, Value base, const Value *subs, const AstNode *const *subnodes,
                 int nsubs);
Value eval_lookup(Interp *I, Env *env, const char *name, bool *found);

/* Calls a user fn or a bound method (Func). */
Value call_func(Interp *I, Func *f, const Value *args, int nargs, const char *const *kwnames,
                const Value *kwargs, int nkw);
/* Instantiates a model definition. */
Value model_instantiate(Interp *I, ModelDef *d, const Value *args, int nargs,
                        const char *const *kwnames, const Value *kwargs, int nkw);
/* The method `name` of model m (AST_FN) or NULL. */
const AstNode *model_method(Model *m, const char *name);
/* A Func for method def bound to m (new ref). */
Value model_bind_method(Interp *I, Model *m, const AstNode *def);
/* Dotted parameter names, relative to m. */
void model_name_params(Interp *I, Model *m);
/* Adds (or replaces) field name of m, taking v's reference: a buffer (named,
 * saved, not trained) or a plain field. For models built in C (quantize). */
void rt_model_add_field(Interp *I, Model *m, const char *name, Value v, bool buffer);
/* Human name of a callable for messages: "f", "DigitsNet.forward". */
const char *func_display_name(Interp *I, Func *f);

void rt_push_frame(Interp *I, const char *what, SrcLoc site);
void rt_pop_frame(Interp *I);

/* Checks v against the annotation ty (binding new dim names in env); on a
 * mismatch reports "fname: what expects f32[B, 64], got ..." at `at`. */
void check_annotation(Interp *I, Env *env, const AstNode *ty, Value v, const char *fname,
                      const char *what, SrcLoc at);

/* Formats the annotation type t ("f32[B, 64]"). */
void ast_type_str(const AstNode *t, StrBuf *out);
void ast_expr_str(const AstNode *e, StrBuf *out);

/* Applies a tensor binary op with weak-scalar promotion. */
Value tensor_binary(Interp *I, OpKind op, Value a, Value b);

/* The location of a binary operator (the operator token when the parser
 * records it, else the whole expression). */
SrcLoc binary_op_loc(const AstNode *n);

#endif
