/* capture.h - captured calls: a user fn or model forward that runs again
 * with arguments like last time replays the execution graphs it ran,
 * without evaluating its body or building a lazy graph (capture.c;
 * spec/jit.md, "Captured calls", lists the guards).
 *
 * The evaluator calls the hooks below only while a call is being recorded
 * (I->cap.rec != NULL); each one either notes what a replay must check or
 * redo, or marks the call as one that cannot be replayed and says why.
 */
#ifndef TT_CAPTURE_H
#define TT_CAPTURE_H

#include "value.h"

#include <stdio.h>

struct Env;

/* Creation order of tensors and scopes: what a recorded call made itself
 * (serial >= the call's first) versus what it found. Process-wide. */
extern uint64_t rt_serial;

/* rt_call's path for user fns (self NULL) and model forwards (f bound to
 * self): replays a record whose guards hold, else runs f (recording it when
 * the call is a capture candidate). */
Value rt_capture_call(Interp *I, Func *f, const Value *args, int nargs, const char *const *kwnames,
                      const Value *kwargs, int nkw);

/* -- hooks, while recording -- */

/* A name found at slot `slot` of scope e (model NULL) or at field `slot` of
 * model `model`, looked up from scope `from`. */
void rt_capture_lookup(Interp *I, struct Env *from, struct Env *e, Model *model, int slot);
/* obj.name read a field of model m. */
void rt_capture_field(Interp *I, Model *m, int slot);
/* The serial of the first tensor or scope the recorded call made. */
uint64_t rt_capture_first_serial(const Interp *I);
/* t.grad read t (NULL: none). */
void rt_capture_tensor_read(Interp *I, const Tensor *t);
/* The realized t's value was read to build the graph (a quantized model's
 * scales): a replay checks the value is the same (small tensors only). */
void rt_capture_value_read(Interp *I, Tensor *t);
/* A native method that only builds graph nodes from its object's fixed
 * state (a quantized model's forward) says so. */
void rt_capture_native_ok(Interp *I);
/* Something a replay cannot redo happened (why: a phrase for --profile). */
void rt_capture_forbid(Interp *I, const char *why);
/* rt_node bound or reused t's node `id`. */
void rt_capture_node(Interp *I, Tensor *t, int id);
/* A builtin is about to run / has returned (token: what enter returned). */
int rt_capture_builtin_enter(Interp *I, const Builtin *b);
void rt_capture_builtin_leave(Interp *I, int token);
/* A native method that changes its object's state in a way a replay can
 * redo: fn(I, self, vals) does the change and writes the values of the 0-d
 * f32 INPUT nodes nodes[0..n) that the method bound (n <= 8), as the
 * method computed them. Also tells the recorder the native call is known. */
typedef void (*RtCaptureEffect)(Interp *I, Obj *self, double *vals);
void rt_capture_effect(Interp *I, RtCaptureEffect fn, Obj *self, const int *nodes, int n);
/* realize_all ran E (its leaves the nodes leaf[0..nin) of I->lz.g, its compute
 * nodes the ids ids[0..nids), the outputs outbufs[j] for nodes outnodes[j]);
 * takers[0..ntakers): the tensors that took the outputs. May take E
 * (leaving it empty). */
void rt_capture_exec(Interp *I, IrGraph *E, const int *leaf, int nin, const int *ids, int nids,
                     Buffer *const *outbufs, int nout, Tensor *const *takers, int ntakers);
/* backward() is about to run: from now on a script's own eval-mode calls
 * are no longer replayed (their results keep no graph), except under
 * bench(). */
void rt_capture_backward(Interp *I);
/* The lazy graph was dropped. */
void rt_capture_reset(Interp *I);

/* Runs E like a realization (rt_exec_graph) on the JIT entry *entry
 * remembers (-1: found, and remembered, on this run): no hash of E
 * (lazy.c). */
bool rt_exec_cached(Interp *I, IrGraph *E, int *entry, void **in, void **out, char *msg,
                    size_t msglen, SrcLoc *loc);

/* -- counts and teardown -- */
typedef struct RtCaptureStats {
    int64_t records;  /* calls recorded */
    int64_t hits;     /* calls replayed */
    int64_t misses;   /* candidate calls whose guards failed */
    int64_t given_up; /* callees never captured again (why: rt_capture_print) */
} RtCaptureStats;
RtCaptureStats rt_capture_stats(const Interp *I);
/* --profile: the counts and why each callee given up was. */
void rt_capture_print(Interp *I, FILE *out);
void rt_capture_free(Interp *I);

#endif
