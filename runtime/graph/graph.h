/* graph.h - internals shared by the lazy graph's files (tensor.c, lazy.c,
 * exec.c, scalars.c, kvdecode.c) and the layers above them (eval.h
 * includes it). Not a public contract: builtins use value.h.
 */
#ifndef TT_GRAPH_H
#define TT_GRAPH_H

#include <stdio.h>

#include "value.h"

/* -- tensors (tensor.c) -- */
Buffer *rt_buf_try_new(size_t nbytes);                   /* NULL when out of memory */
Buffer *rt_buf_try_uninit(size_t nbytes);                /* the same, contents undefined */
Buffer *rt_buf_for(Interp *I, DType dt, const Shape *s); /* rt_error when out of memory */
void rt_tensor_free(Interp *I, Tensor *t);               /* releases what t holds */
/* Tensor data held (Buffers): the high-water mark since the last reset
 * (which sets it to what is held now). */
size_t rt_mem_peak_reset(void);
size_t rt_mem_peak(void);
size_t rt_mem_live(void); /* bytes of tensor data held now */
void rt_format_tensor(Interp *I, Tensor *t, StrBuf *out);
/* Unlinks t from I->lz.lazy (if on it). */
void rt_lazy_unlink(Interp *I, Tensor *t);
void rt_lazy_link(Interp *I, Tensor *t);
void rt_register_param(Interp *I, Tensor *t);
void rt_lazy_free(Interp *I); /* the graph and node buffers (rt_free_interp) */
/* Copies the nodes of I->lz.g that outs[] need into a fresh graph E (INPUT
 * leaves keep their names), outs marked as outputs: ttc, :ir. */
void rt_extract_graph(Interp *I, const int *outs, int nout, IrGraph *E);

/* Runs a graph built outside the lazy graph (KV decoding, kvdecode.c) on
 * the current backend, as a realization would (--dump, --profile, the JIT's
 * compiled-graph cache): in[k] is the data of input slot k, out[j] the
 * buffer of E->outputs[j]. False with msg and *loc (the failing node's
 * source) when the run failed. */
bool rt_exec_graph(Interp *I, IrGraph *E, void **in, void **out, char *msg, size_t msglen,
                   SrcLoc *loc);

/* -- the backend graphs run on (exec.c, backend.h) -- */

/* Makes the backend registered as name the current one, realizing pending
 * work on the old one first; false (nothing changed) for an unknown name. */
bool rt_set_backend(Interp *I, const char *name);
const char *rt_backend_name(const Interp *I);
unsigned rt_backend_caps(const Interp *I); /* TT_BACKEND_*, of the current one */
/* The current backend, opened on first use; NULL with err when it cannot
 * start. */
TtBackend *rt_backend(Interp *I, char *err, size_t errlen);
/* The current backend's runs, seconds and compiles (zeros before it opens). */
TtBackendStats rt_backend_stats(const Interp *I);
void rt_backends_free(Interp *I); /* rt_free_interp */
/* --profile at exit: the per-op table (when a backend timed ops), then
 * each backend that ran: its runs, compiles, top kernels. */
void rt_backends_print_profile(Interp *I, FILE *out);

/* -- numbers in tensor code (scalars.c) -- */

/* x[i0, i1, ...] where drop[k] marks the dims indexed by an int (at
 * dims[k].start, already normalized and in range) and the other dims are
 * sliced by dims[k] (ndims <= rank of x): one gather whose row is a runtime
 * i32 input, so a loop over indices reuses one graph. Returns the node
 * (the int dims dropped), or -1 when the int dims hold more than INT32_MAX
 * rows or I->ev.scalar_consts is set (the caller then slices statically). */
int rt_index_ints(Interp *I, int x, const IrSliceDim *dims, const bool *drop, int ndims);

#endif
