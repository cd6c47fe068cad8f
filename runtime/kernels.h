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

#include "ir.h"

/* A dense tensor as kernels see it. */
typedef struct KTensor {
    DType dtype;
    Shape shape;
    void *data;
} KTensor;

/* in: the node's nin inputs; out: preallocated, shape and dtype of the node.
 * INPUT nodes are never passed to kernels (the runtime binds them). */
typedef void (*RefKernel)(const IrNode *n, const KTensor *in, KTensor *out);
extern const RefKernel rt_ref_kernels[OP__COUNT];

#define OP(NAME, name, arity, flags, shape, flops, tol)                                            \
    void kern_##name##_ref(const IrNode *n, const KTensor *in, KTensor *out);
#include "ops.def"
#undef OP

/* Per-op timing collected by the naive runtime when profiling is on. */
typedef struct RtProfile {
    double seconds[OP__COUNT];
    int64_t calls[OP__COUNT];
    int64_t flops[OP__COUNT];
    int64_t bytes[OP__COUNT];
} RtProfile;

/* Runs graph g with the reference kernels.
 * inputs[k]: data of input slot k (dtype/shape as the INPUT node says).
 * outputs[j]: caller-allocated buffer for g->outputs[j] (numel * dtype size).
 * Intermediates are freed as soon as their last user has run.
 * prof may be NULL. */
void rt_naive_run(const IrGraph *g, void *const *inputs, void *const *outputs, RtProfile *prof);

#endif
