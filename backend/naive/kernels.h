/* kernels.h - the reference kernels and the naive runtime.
 *
 * The reference kernel of an op is its meaning: plain loops over dense
 * row-major data, with a shape comment. kern_<name>_ref exists for every row
 * of ops.def (rt_ref_kernels is expanded from the table, so a missing kernel
 * does not link). The naive runtime walks a graph and calls one reference
 * kernel per node.
 */
#ifndef TT_KERNELS_H
#define TT_KERNELS_H

#include "backend.h"
#include "ir.h"

/* A dense tensor as kernels see it. */
typedef struct KTensor {
    DType dtype;
    Shape shape;
    void *data;
} KTensor;

/* Why a kernel or a graph run failed on the data it was given (shapes never
 * fail here: the shape rules checked them). The kernel sets failed and msg
 * and returns early, its output undefined; the runtime adds the node. */
typedef struct KernelErr {
    bool failed;
    int node;      /* rt_naive_run: the node whose kernel (or buffer) failed */
    char msg[200]; /* "index 5 out of range for axis of size 2" */
} KernelErr;

/* How a number becomes an integer element (a CONST, a 0-d input):
 * saturating, truncating float -> integer conversions (NaN -> 0). */
static inline int32_t sat_i32(double x) {
    if (x != x) return 0;
    if (x >= 2147483648.0) return INT32_MAX;
    if (x <= -2147483649.0) return INT32_MIN;
    return (int32_t)x;
}
static inline int8_t sat_i8(double x) {
    if (x != x) return 0;
    if (x >= 128.0) return INT8_MAX;
    if (x <= -129.0) return INT8_MIN;
    return (int8_t)(int)x;
}

/* in: the node's nin inputs; out: preallocated, shape and dtype of the node.
 * INPUT nodes are never passed to kernels (the runtime binds them). err:
 * cleared by the caller; a kernel that reads indices checks every one
 * (kern_index_error), one that needs a workspace allocates it with
 * kern_try_alloc. */
typedef void (*RefKernel)(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err);
extern const RefKernel rt_ref_kernels[OP__COUNT];

#define OP(NAME, name, arity, flags, form, shape, flops, tol, attrs)                               \
    void kern_##name##_ref(const IrNode *n, const KTensor *in, KTensor *out, KernelErr *err);
#include "ops.def"
#undef OP

/* Fills err with "index v out of range for axis of size n" (the message
 * every backend gives for an index outside [0, n)). */
void kern_index_error(KernelErr *err, int64_t v, int64_t n);
/* Fills err with "position p out of range: writing r rows into n needs
 * 0 <= position <= n - r" (write_rows; the JIT says the same). */
void kern_rows_error(KernelErr *err, int64_t pos, int64_t rows, int64_t n);
/* malloc(bytes), or NULL with err filled ("out of memory: ..."): for
 * workspaces whose size depends on the data. */
void *kern_try_alloc(KernelErr *err, size_t bytes, const char *what);

/* Runs graph g with the reference kernels.
 * inputs[k]: data of input slot k (dtype/shape as the INPUT node says).
 * outputs[j]: caller-allocated buffer for g->outputs[j] (numel * dtype size).
 * Intermediates are freed as soon as their last user has run.
 * prof may be NULL. Returns false when a kernel fails on its data (an index
 * out of range) or an intermediate does not fit in memory: err (may be
 * NULL) then says which node and why, everything allocated is freed and the
 * outputs are undefined. It never aborts: a graph that does not verify is
 * such a failure too. prof (RtProfile, backend.h) gets every op's calls,
 * seconds, flops and bytes. */
bool rt_naive_run(const IrGraph *g, void *const *inputs, void *const *outputs, RtProfile *prof,
                  KernelErr *err);
/* The same, reporting each op as a trace event to trace (NULL: none). */
bool rt_naive_run_traced(const IrGraph *g, void *const *inputs, void *const *outputs,
                         RtProfile *prof, TtTraceFn trace, KernelErr *err);

#endif
