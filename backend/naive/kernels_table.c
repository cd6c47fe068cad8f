/* kernels_table.c - rt_ref_kernels, expanded from ops.def: a row without its
 * kern_<name>_ref does not link. */
#include "kernels.h"

const RefKernel rt_ref_kernels[OP__COUNT] = {
#define OP(NAME, name, arity, flags, form, shape, flops, tol, attrs)                               \
    [OP_##NAME] = kern_##name##_ref,
#include "ops.def"
#undef OP
};
