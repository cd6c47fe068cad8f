/* builtins_lib.h - helpers shared by the library builtins (builtins_tensor.c,
 * builtins_math.c, builtins_optim.c, builtins_data.c, builtins_fit.c).
 *
 * Private to those files: argument conversion with errors that name the
 * builtin, and the step from an ir_* result to a lazy tensor value. Every
 * graph node is made at I->ev.loc, the span of the call being evaluated.
 */
#ifndef TT_BUILTINS_LIB_H
#define TT_BUILTINS_LIB_H

#include "value.h"

/* The signature of every builtin, spelled once. */
#define BUILTIN(fn)                                                                                \
    static Value fn(Interp *I, Value self, const Value *args, int nargs,                           \
                    const char *const *kwnames, const Value *kwargs, int nkw)
/* Binds this builtin's arguments (see rt_bind_args) into a[]. */
#define BIND(fname, names, required, a)                                                            \
    rt_bind_args(I, fname, names, required, args, nargs, kwnames, kwargs, nkw, a)

static inline bool is_num(Value v) {
    return v.kind == V_INT || v.kind == V_FLOAT || v.kind == V_BOOL;
}
static inline double num_of(Value v) {
    return v.kind == V_FLOAT ? v.f : v.kind == V_INT ? (double)v.i : (double)v.b;
}
static inline bool is_tensor(Value v) {
    return v.kind == V_TENSOR;
}
static inline Tensor *as_tensor(Value v) {
    return (Tensor *)v.o;
}
static inline bool is_seq(Value v) {
    return v.kind == V_LIST || v.kind == V_TUPLE;
}
static inline List *as_list(Value v) {
    return (List *)v.o;
}

/* The graph node of a tensor or number argument (numbers become constants:
 * int -> i32, float -> f32). rt_error naming fn and arg otherwise. */
int lib_node(Interp *I, Value v, const char *fn, const char *arg);
/* The tensor argument itself (borrowed); rt_error unless v is a tensor. */
Tensor *lib_tensor(Interp *I, Value v, const char *fn, const char *arg);
/* Checks an ir_* result (reporting g.err at I->ev.loc) and wraps the node as a
 * lazy tensor value (new reference). */
Value lib_result(Interp *I, int id);
/* A shape argument: a list or tuple of ints, or one int. allow_neg permits
 * -1 entries (reshape). */
Shape lib_shape(Interp *I, Value v, const char *fn, const char *arg, bool allow_neg);
/* "f32" / "i32" / "i8"; dflt when v is absent or none. */
DType lib_dtype(Interp *I, Value v, DType dflt, const char *fn);
/* An int argument; dflt when absent or none. */
int64_t lib_int(Interp *I, Value v, int64_t dflt, const char *fn, const char *arg);
double lib_float(Interp *I, Value v, double dflt, const char *fn, const char *arg);
bool lib_bool(Interp *I, Value v, bool dflt, const char *fn, const char *arg);
/* A file name argument (borrowed): rt_error unless v is a string without
 * a NUL character (builtins_data.c). Every builtin taking a path uses it. */
const char *lib_path(Interp *I, Value v, const char *fn, const char *arg);
/* A list/tuple argument (borrowed); rt_error otherwise. */
List *lib_seq(Interp *I, Value v, const char *fn, const char *arg);
/* Constant node: a scalar of dtype dt. */
int lib_const(Interp *I, DType dt, double x);
/* An INPUT node holding the f32 scalar x: for values that change from one
 * step to the next, so the graph keeps the same structure (the JIT cache
 * key). The node's data stays bound until the graph is reset. */
int lib_scalar_input(Interp *I, double x);

/* Makes a realized tensor value from an IoTensor (copies the data). */
struct IoTensor;
Value lib_from_io(Interp *I, const struct IoTensor *t);

/* A fresh random permutation of 0..n-1 (Fisher-Yates) from r. */
int64_t *lib_permutation(Rng *r, int64_t n);

/* The batches of a data set (builtins_data.c): a list of tuples (or of
 * tensors for a one-tensor data set) of realized rows. */
Value lib_batches(Interp *I, Value data, int64_t size, bool shuffle, Value seed, bool drop_last);

/* Record field lookup by name; NULL when absent. */
Value *lib_record_field(Value rec, const char *name);

/* The training loops of fit and distill (builtins_fit.c). */
/* Field name (x or y) of data set d, a tensor (borrowed); rt_error "fn:
 * what must be a data set with fields x and y" otherwise. */
Value lib_dataset_field(Interp *I, Value d, const char *name, const char *fn, const char *what);
/* The optimizer argument given (a new reference), or Adam(net) when none. */
Value lib_optimizer(Interp *I, Value given, Value net);
/* One step on a loss value (consumed): rt_error "fn: what must return a
 * one-element tensor" unless it is one, else backward, step() (a bound
 * method), and the loss as a number. */
double lib_train_step(Interp *I, Value loss, Value step, const char *fn, const char *what);

/* Registration of the builtins of builtins_math.c and builtins_fit.c (called
 * by rt_register_tensor_builtins and rt_register_data_builtins). */
void lib_register_math(Interp *I);
void lib_register_fit(Interp *I);
void lib_register_conv(Interp *I);  /* builtins_conv.c */
void lib_register_sort(Interp *I);  /* builtins_sort.c */
void lib_register_text(Interp *I);  /* builtins_text.c: tokenizers */
void lib_register_lm(Interp *I);    /* builtins_lm.c: language-model training helpers */
void lib_register_bench(Interp *I); /* builtins_bench.c: bench() */
/* builtins_quant.c: quantize, dequantize, qmatmul, requantize */
void lib_register_quant(Interp *I);
/* builtins_compress.c: prune, sparsity, distill */
void lib_register_compress(Interp *I);
/* bytes, quant_report (builtins_ptq.c) */
void lib_register_ptq(Interp *I);
/* quantize(net, calib=x, method="minmax"): the post-training pass
 * (builtins_ptq.c); bi_quantize's model form */
Value lib_quantize_model(Interp *I, const Value *args, int nargs, const char *const *kwnames,
                         const Value *kwargs, int nkw);
void lib_register_attn(Interp *I); /* builtins_attn.c */
/* accuracy(pred, labels) as a C number (builtins_math.c), used by fit. */
double lib_accuracy(Interp *I, Value pred, Value labels);

#endif
