/* value.h - the values of tt scripts and the interpreter state.
 *
 * Values are small structs passed by value; heap objects (strings, lists,
 * tensors, models, ...) are reference counted and also linked into one list
 * of all objects (as in Lua's allgc) so that rt_free_interp frees whatever an
 * error left behind.
 *
 * Tensors are lazy: an operation on tensors appends nodes to the interpreter's
 * lazy graph (I->lz.g) and returns a tensor that only names its node. A tensor
 * is realized when its value is needed (print, item, a branch, the end of an
 * optimizer step): every live lazy tensor becomes an output of one execution
 * graph, which the current backend runs (lazy.c).
 */
#ifndef TT_VALUE_H
#define TT_VALUE_H

#include <setjmp.h>

#include "ast.h"
#include "ir.h"
#include "kernels.h"

#include "capture_state.h"
#include "config.h"
#include "exec.h"
#include "lazy.h"
#include "profile.h"

typedef struct Interp Interp;

typedef enum ValKind {
    V_NONE,
    V_BOOL,
    V_INT,
    V_FLOAT,
    /* heap objects from here on */
    V_STR,
    V_LIST,
    V_TUPLE,
    V_RECORD,
    V_RANGE,
    V_TENSOR,
    V_FUNC,     /* user fn or model method bound to its model */
    V_BUILTIN,  /* C function, optionally bound to a receiver (methods) */
    V_MODELDEF, /* a `model` declaration: calling it makes an instance */
    V_MODEL,    /* a model instance */
    V_NATIVE,   /* an object implemented in C (optimizer, tokenizer, ...) */
    V_DICT,     /* dict: insertion-ordered hash table (dict.c) */
} ValKind;

typedef struct Obj {
    ValKind kind;
    int refcount;
    struct Obj *gc_prev, *gc_next; /* every live object, for rt_free_interp */
} Obj;

typedef struct Value {
    ValKind kind;
    union {
        bool b;
        int64_t i;
        double f;
        Obj *o;
    };
} Value;

/* Reference-counted storage of realized tensor data. */
typedef struct Buffer {
    int refcount;
    size_t nbytes;
    void *data; /* 64-byte aligned */
    bool own;   /* data is rt_data_alloc's (rt_data_free may keep it for reuse) */
} Buffer;

typedef struct Str {
    Obj obj;
    size_t len;    /* bytes */
    size_t nchars; /* code points (UTF-8; a byte that is not valid UTF-8 counts as one),
                      what len(s), s[i] and `for c in s` count (str.c) */
    char s[];      /* NUL-terminated */
} Str;

typedef struct List { /* V_LIST and V_TUPLE */
    Obj obj;
    int len, cap;
    Value *items;
} List;

typedef struct Record { /* (ms=1.5, peak_mb=3): ordered named fields */
    Obj obj;
    int len;
    const char **names; /* interned */
    Value *vals;
} Record;

typedef struct Range {
    Obj obj;
    int64_t lo, hi; /* lo..hi, hi exclusive */
    int64_t step;   /* range(lo, hi, step); never 0 (0 reads as 1: see rt_range_step) */
} Range;

/* A dict (dict.c), as CPython's compact dict: the entries in insertion
 * order, and an open-addressing index of entry numbers. Keys are hashed by
 * value (1, 1.0 and true are one key, as in Python); no deletion. */
typedef struct DictEntry {
    Value key, val;
    uint64_t hash;
} DictEntry;

typedef struct Dict {
    Obj obj;
    int len, cap; /* entries */
    DictEntry *entries;
    int32_t *index; /* entry + 1 per slot, 0 when empty; icap slots (power of 2) */
    int icap;
} Dict;

typedef struct Tensor {
    Obj obj;
    DType dtype;
    Shape shape;
    Buffer *buf; /* realized data, or NULL while lazy */
    int node;    /* node in I->lz.g when node_gen == I->lz.gen, else -1 */
    uint64_t node_gen;
    bool requires_grad;                   /* a model parameter */
    struct Tensor *grad;                  /* filled by backward(); NULL when none */
    const char *name;                     /* parameter path such as "fc1.w" (interned), or NULL */
    struct Tensor *mask;                  /* prune(): 0/1, re-applied by optimizer steps, or NULL */
    struct Tensor *lazy_prev, *lazy_next; /* I->lz.lazy list while buf == NULL */
    uint64_t serial; /* creation order (capture.c: made by a recorded call or before it) */
} Tensor;

typedef struct Env Env; /* a scope: name -> Value (eval.c) */

typedef struct Func {
    Obj obj;
    const AstNode *def;  /* AST_FN */
    Env *closure;        /* defining scope (retained) */
    struct Model *self;  /* bound model for methods, else NULL (retained) */
    const char *display; /* func_display_name, once computed (interned) */
} Func;

/* A C function. args[0..nargs) are positional, then nkw keyword args whose
 * names are kwnames[0..nkw). self is the receiver for methods (or NONE). */
typedef Value (*BuiltinFn)(Interp *I, Value self, const Value *args, int nargs,
                           const char *const *kwnames, const Value *kwargs, int nkw);

typedef struct Builtin {
    Obj obj;
    const char *name;
    BuiltinFn fn;
    Value self; /* retained */
} Builtin;

typedef struct ModelDef {
    Obj obj;
    const AstNode *def; /* AST_MODEL */
    Env *closure;
} ModelDef;

/* A model instance: its declarations in order (params, submodules, lets)
 * and its methods (forward, ...). Submodule lists (blocks = [Block(..); n])
 * are V_LIST fields whose items are models. */
typedef struct Model {
    Obj obj;
    ModelDef *def;
    const char *type_name;
    int nfields;
    const char **field_names;
    Value *fields;
    bool *is_param;  /* field i declared with `param` */
    bool *is_buffer; /* field i declared with `buffer` (named, saved, not trained) */
    Env *env;        /* added: instance scope (ctor params; parent = def's closure),
                        retained; methods run in a child of it (eval.c) */
} Model;

/* A C-implemented object: members are found by name through `member`. */
typedef struct NativeClass {
    const char *name;
    /* Returns true and sets *out (a new reference) if the object has `name`
     * (methods are returned as bound V_BUILTINs). */
    bool (*member)(Interp *I, Obj *self, const char *name, Value *out);
    void (*free)(Obj *self); /* releases what the object holds */
    void (*print)(Interp *I, Obj *self, StrBuf *out);
} NativeClass;

typedef struct Native {
    Obj obj;
    const NativeClass *cls;
    void *data;
} Native;

/* -- randomness (rng.c): one algorithm for every backend -- */
typedef struct Rng {
    uint64_t s[4];
} Rng;
void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_next(Rng *r);
double rng_uniform(Rng *r); /* [0, 1) with 53 bits */
double rng_normal(Rng *r);  /* Box-Muller, standard normal */

/* -- interpreter state -- */

typedef struct CallFrame { /* the chain of model calls, for diagnostics */
    const char *what;      /* "DigitsNet.forward", "cross_entropy" */
    SrcLoc call_site;
    uintptr_t stack; /* tt_stack_pos() at the call: what the callee's own
                        expressions use, for the stack overflow message */
} CallFrame;

/* One entry of the cleanup stack (cleanup.c): what a C frame owns while it
 * calls code that can fail. */
typedef enum OwnKind { OWN_VALUE, OWN_MEM, OWN_ENV, OWN_RESTORE } OwnKind;
typedef struct Owned {
    OwnKind kind;
    union {
        Value v;         /* OWN_VALUE: one reference */
        void *p;         /* OWN_MEM: free(p); OWN_RESTORE: restore's argument */
        struct Env *env; /* OWN_ENV: one reference */
    };
    void (*restore)(Interp *I, void *arg); /* OWN_RESTORE: puts saved state back */
} Owned;

/* The evaluator's state: what the evaluator's files (eval.h) and the
 * builtins share while a script runs. */
typedef struct EvalState {
    Arena ast_arena; /* ASTs of the script, the prelude and REPL entries */
    Env *globals;
    int nbuiltins;           /* globals' first nbuiltins names are the builtins and
                                the standard library's (a `let` of one warns) */
    struct Modules *modules; /* every file imported so far, by canonical path (import.c) */
    Rng rng;                 /* the global generator (randn without seed=) */
    bool training;           /* train(net)/eval(net); default true; Dropout reads it */

    /* numbers that flow into tensor code (scalars.c) */
    bool scalar_consts;    /* they become CONST nodes, never inputs: ttc's traced graph
                              takes only the forward's arguments and the parameters */
    unsigned lit_operands; /* bits 0, 1: the left, right operand of the binary operator
                              being applied is a literal in the source (stays a CONST) */

    /* errors: rt_error longjmps here */
    jmp_buf *on_error;
    SrcLoc loc;              /* span of the expression being evaluated */
    const AstNode *top_stmt; /* the top-level expression statement being run, if any:
                                bench() prints its summary when it is that call */
    CallFrame *frames;
    int nframes, capframes;
    int depth; /* call depth, to report runaway recursion as an error */
    /* the cleanup stack (cleanup.c): references, memory and saved state the
     * evaluator's C frames hold, released by the error boundary they
     * longjmp to (run_text: a file, a REPL entry) */
    Owned *owned;
    int nowned, capowned;

    Obj *objects;          /* every live object (gc list) */
    Env *envs;             /* every live scope, so rt_free_interp frees cycles */
    bool freeing;          /* inside rt_free_interp: rt_release does nothing */
    struct Intern *intern; /* the interned strings of rt_intern (value.c) */
} EvalState;

/* The interpreter: the state each part owns, in that part's header. */
struct Interp {
    EvalState ev;       /* the evaluator (above) */
    LazyGraph lz;       /* the lazy graph (lazy.h) */
    RtBackends be;      /* the backends graphs run on (exec.h) */
    RtProfiler prof;    /* per-op profiling (profile.h) */
    RtConfig cfg;       /* flags and options (config.h) */
    RtCaptureState cap; /* captured calls (capture_state.h) */
};

/* -- lifetime -- */
Interp *rt_new_interp(void);
void rt_free_interp(Interp *I); /* frees every object, buffer and the graph */
/* train(net)/eval(net) for the whole interpreter (ttc: inference). */
void rt_set_training(Interp *I, bool on);
/* Numbers in tensor code become CONST nodes, never inputs (ttc's traces). */
void rt_set_scalar_consts(Interp *I, bool on);

/* Loads every lang/std/NAME.tt into the globals (called by rt_new_interp). */
void rt_load_prelude(Interp *I);

/* Parses and runs a whole file; returns 0, or 1 after diagnostics. */
int rt_run_file(Interp *I, const char *path);
/* Runs source text (REPL entry or a test); prints the value of a final
 * expression statement when echo is true. Returns 0 or 1 after errors. */
int rt_run_source(Interp *I, const char *name, const char *text, size_t len, bool echo);
/* Parses and checks only (ttrun --check). */
int rt_check_file(Interp *I, const char *path);
/* Added: runs only the `model` and `fn` definitions of a file (ttc). */
int rt_run_definitions(Interp *I, const char *path);

/* -- errors -- */

/* rt_error longjmps to jb from now on (NULL: nowhere yet); returns the
 * previous target (interp.c). A caller that catches errors sets it around
 * its setjmp and puts the previous one back. */
jmp_buf *rt_set_on_error(Interp *I, jmp_buf *jb);
/* Reports "file:line:col: error: ..." at I->ev.loc, then a note for each model
 * call on the chain (innermost first), then longjmps to I->ev.on_error. */
_Noreturn void rt_error(Interp *I, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void rt_error_at(Interp *I, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Where the user's code asked for what is being evaluated: I->ev.loc, or,
 * inside the standard library (files std/...), the call site of the
 * innermost call made from outside it. Nodes that can fail on their data
 * (an index out of range, reported when the graph runs, after the calls
 * have returned) carry it: cross_entropy's bad label is reported at the
 * user's cross_entropy(...), not at a line of std/20_losses.tt. */
SrcLoc rt_user_loc(Interp *I);

/* -- the cleanup stack (cleanup.c) --
 * rt_error longjmps past every C frame, so a reference held in a C local
 * (an operand, an argument array, a half-built list) would never be
 * released: 2000 failing REPL entries once held 3 GB. A frame that holds
 * something across a call that can fail pushes it here, takes
 * mark = rt_owned_mark(I) before, and on its normal return drops its
 * entries with rt_owned_pop(I, mark) and then releases as before. An error
 * boundary (run_text, the prelude) calls rt_owned_unwind(I, mark): every
 * entry above its mark is released, freed or restored, newest first, as
 * Lua's error handling closes to-be-closed variables. */
static inline int rt_owned_mark(const Interp *I) {
    return I->ev.nowned;
}
static inline void rt_owned_pop(Interp *I, int mark) {
    I->ev.nowned = mark;
}
void rt_own_push(Interp *I, Owned o);
static inline void rt_own(Interp *I, Value v) { /* v: a reference the caller owns */
    if (v.kind >= V_STR) rt_own_push(I, (Owned){.kind = OWN_VALUE, .v = v});
}
static inline void rt_own_mem(Interp *I, void *p) { /* p: malloc'ed */
    rt_own_push(I, (Owned){.kind = OWN_MEM, .p = p});
}
static inline void rt_own_env(Interp *I, struct Env *e) {
    rt_own_push(I, (Owned){.kind = OWN_ENV, .env = e});
}
/* restore(I, arg) runs if an error unwinds past this entry (state a block
 * set, such as profiling on). */
static inline void rt_own_restore(Interp *I, void (*restore)(Interp *, void *), void *arg) {
    rt_own_push(I, (Owned){.kind = OWN_RESTORE, .p = arg, .restore = restore});
}
void rt_owned_unwind(Interp *I, int mark);
/* The entries left at rt_free_interp (an error that no boundary caught):
 * the memory is freed; the objects go with every other object. */
void rt_owned_free(Interp *I);

/* -- values -- */
#define VNONE ((Value){.kind = V_NONE})
static inline Value vbool(bool b) {
    return (Value){.kind = V_BOOL, .b = b};
}
static inline Value vint(int64_t i) {
    return (Value){.kind = V_INT, .i = i};
}
static inline Value vfloat(double f) {
    return (Value){.kind = V_FLOAT, .f = f};
}
static inline Value vobj(Obj *o) {
    return (Value){.kind = o->kind, .o = o};
}
static inline bool is_obj(Value v) {
    return v.kind >= V_STR;
}

/* Reference counting: a Value held in a variable, field, list or argument
 * array owns one reference. Functions returning Value return a new
 * reference; arguments are borrowed. */
Value rt_retain(Value v);
void rt_release(Interp *I, Value v);

void *rt_alloc_obj(Interp *I, ValKind kind, size_t size); /* refcount 1 */

Value rt_str(Interp *I, const char *s, size_t len);
Value rt_cstr(Interp *I, const char *s);
Value rt_list(Interp *I, int len);                             /* len NONE items */
Value rt_tuple(Interp *I, int len);                            /* len NONE items */
void rt_list_push(Interp *I, Value list, Value v);             /* takes v's reference */
Value rt_record(Interp *I, int len, const char *const *names); /* fields NONE */
Value rt_builtin(Interp *I, const char *name, BuiltinFn fn, Value self);
Value rt_native(Interp *I, const NativeClass *cls, void *data);
const char *rt_intern(Interp *I, const char *s); /* lives as long as I */

const char *rt_kind_name(ValKind k); /* "tensor", "list", ... */
const char *rt_type_name(Value v);   /* "tensor", "model DigitsNet", ... */
bool rt_truthy(Interp *I, Value v);  /* realizes one-element tensors */
/* Prints like Python/NumPy: 3, 0.5, "s" (repr) or s (str), [1, 2],
 * tensor([[1., 2.], ...], f32[2, 2]) */
void rt_format(Interp *I, Value v, StrBuf *out, bool repr);

/* Python repr of a float: 0.1, 1.0, 1e-05 (fmt.c). */
void rt_format_float(double x, StrBuf *out);
/* Conversions that raise rt_error with a message naming `what`. */
int64_t rt_to_int(Interp *I, Value v, const char *what);
double rt_to_float(Interp *I, Value v, const char *what);
const char *rt_to_str(Interp *I, Value v, const char *what);
Tensor *rt_to_tensor(Interp *I, Value v, const char *what); /* numbers become 0-d tensors
                                                              (new ref) */

/* -- tensors (tensor.c, lazy.c) -- */

/* (scalars.c) */
/* The node of the number x used as a 0-d dt operand of tensor code. A
 * literal in the source (and every number while I->ev.scalar_consts) is a
 * CONST, folded into the compiled code; any other number (a loop index, a
 * position, a learning rate) is a 0-d INPUT bound to a buffer holding x, so
 * the execution graph's structure, and the JIT's compiled code, do not
 * depend on its value. x is converted as a CONST would be (saturating). */
int rt_scalar_node(Interp *I, DType dt, double x, bool literal);

Buffer *rt_buf_new(size_t nbytes); /* zeroed */
void rt_buf_release(Buffer *b);

/* A realized tensor owning a fresh zeroed buffer. */
Tensor *rt_tensor_new(Interp *I, DType dt, Shape s);
/* The same with undefined contents: the caller writes every element. */
Tensor *rt_tensor_uninit(Interp *I, DType dt, Shape s);
/* A realized tensor sharing buf (retained). */
Tensor *rt_tensor_from_buf(Interp *I, DType dt, Shape s, Buffer *buf);
/* A lazy tensor naming node `id` of I->lz.g. */
Tensor *rt_tensor_lazy(Interp *I, int id);
static inline Value vtensor(Tensor *t) {
    return vobj(&t->obj);
}

/* The node of t in the lazy graph, adding an INPUT bound to its data if t
 * is realized and not yet in the current graph. */
int rt_node(Interp *I, Tensor *t);
/* Checks the result of an ir_* builder: on -1 reports I->lz.g.err at I->ev.loc
 * (with the model call chain) and longjmps. */
int rt_check_node(Interp *I, int id);

/* Makes every live lazy tensor realized (one execution graph, run by the
 * current backend). */
void rt_realize_all(Interp *I);
/* Realizes t if needed and returns its data. */
void *rt_data(Interp *I, Tensor *t);
/* The same for a value that only specializes the graph being built (a
 * quantized model's scales): a captured call guards on it instead of
 * giving up (capture.c). */
void *rt_data_const(Interp *I, Tensor *t);
/* Replaces t's value by node `id` (optimizer updates, `x.grad = ...`):
 * t keeps its identity (its name, its place in a model). */
void rt_tensor_assign(Interp *I, Tensor *t, int id);
/* t takes the value v in place (assign(p, v), `p -= ...` on a parameter):
 * a tensor of t's shape and dtype, or a number filling it; rt_error naming
 * `what` and both types otherwise. */
void rt_tensor_set(Interp *I, Tensor *t, Value v, const char *what);
/* Drops the lazy graph (after realizing every live lazy tensor); gradients
 * can no longer flow into tensors made before. Called at the end of an
 * optimizer step and when the graph grows large. */
void rt_reset_graph(Interp *I);

/* backward(loss): fills the .grad of every parameter loss depends on
 * (accumulating into an existing grad). */
void rt_backward(Interp *I, Tensor *loss);

/* Added: structural equality (==) of any two values; tensors compare by
 * identity here (the `==` operator on tensors builds a mask instead). */
bool rt_equal(Interp *I, Value a, Value b);
/* Added: a realized 0-d tensor holding x (new ref). */
Tensor *rt_tensor_scalar(Interp *I, DType dt, double x);
/* Added: the parameters of a model in declaration order, depth first,
 * each tensor once: a list of tensors, or with named = true a list of
 * (dotted name, tensor) tuples (new ref). rt_error if m is not a model. */
Value rt_parameters(Interp *I, Value m, bool named);
/* The (path, tensor) tuples of every parameter and buffer of m, in
 * declaration order: what save and load read and write. */
Value rt_state_tensors(Interp *I, Value m, const char *fn);
/* Added: prints the per-op table of I->prof.table (ttrun --profile, profile {}). */
void rt_print_profile(Interp *I, FILE *out, const RtProfile *p);

/* -- calling -- */
Value rt_call(Interp *I, Value fn, const Value *args, int nargs, const char *const *kwnames,
              const Value *kwargs, int nkw);
/* Looks up obj.name (models, records, tensors, natives); rt_error if absent. */
Value rt_member(Interp *I, Value obj, const char *name);
Value rt_global(Interp *I, const char *name);                /* rt_error if undefined */
void rt_define_global(Interp *I, const char *name, Value v); /* takes v */

/* -- containers and strings (dict.c, str.c, builtins_seq.c; issue 10) -- */

Value rt_range(Interp *I, int64_t lo, int64_t hi, int64_t step); /* step != 0 */
static inline int64_t rt_range_step(const Range *r) {
    return r->step ? r->step : 1;
}
int64_t rt_range_len(const Range *r);
Value rt_dict(Interp *I); /* empty */
/* The value slot of key in d, or NULL; rt_error if key is unhashable. */
Value *rt_dict_find(Interp *I, Value d, Value key);
/* d[key] = v: retains key, takes v's reference. */
void rt_dict_set(Interp *I, Value d, Value key, Value v);
/* `x in c` for lists, tuples, strings (substring), dicts (keys), ranges. */
bool rt_contains(Interp *I, Value c, Value x);
/* The items a `for` visits in c, as a new list: a list/tuple's items, a
 * string's characters, a range's ints, a dict's keys; rt_error naming fn
 * otherwise. */
Value rt_iter_list(Interp *I, Value c, const char *fn);
/* The string of the one code point at index i of s (0 <= i < nchars). */
Value rt_str_char(Interp *I, Value s, int64_t i);
/* Methods of strings (s.split, ...) and dicts (d.get, ...): true and *out
 * set (a bound builtin) when `name` is one. */
bool rt_str_member(Interp *I, Value s, const char *name, Value *out);
bool rt_dict_member(Interp *I, Value d, const char *name, Value *out);
void rt_register_str_builtins(Interp *I); /* str.c, fmt.c, dict.c, builtins_seq.c */

/* Keyword/positional argument binding for builtins.
 *   static const char *const names[] = {"x", "axis", "keepdims", NULL};
 *   Value a[3];  // filled with borrowed values or VNONE when absent
 *   rt_bind_args(I, "sum", names, 1, args, nargs, kwnames, kwargs, nkw, a);
 * The first `required` names must be given. Unknown keywords, duplicates and
 * too many positionals are errors naming the function. */
void rt_bind_args(Interp *I, const char *fname, const char *const *names, int required,
                  const Value *args, int nargs, const char *const *kwnames, const Value *kwargs,
                  int nkw, Value *out);
/* True if a bound slot was given (not VNONE-by-absence). Absent slots are
 * marked with kind V_NONE and .i = -1; an explicit `none` has .i = 0. */
static inline bool rt_given(Value v) {
    return !(v.kind == V_NONE && v.i == -1);
}

/* Registers every builtin function into I->ev.globals (builtins_core.c), which
 * calls the registration function of each builtins_*.c file: */
void rt_register_builtins(Interp *I);
void rt_register_tensor_builtins(Interp *I); /* builtins_tensor.c */
void rt_register_optim_builtins(Interp *I);  /* builtins_optim.c */
void rt_register_data_builtins(Interp *I);   /* builtins_data.c */

#endif
