/* ctune.h - the lowering of each convolution (direct loops, explicit
 * im2col + GEMM, implicit im2col inside the GEMM's packing) chosen by
 * measurement on the host, once per convolution geometry, like the GEMM's
 * tile (gemm_tune.c) and the vector schedule (vtune.h). spec/jit.md,
 * "Convolution lowering by measurement".
 */
#ifndef TT_CTUNE_H
#define TT_CTUNE_H

#include <stdio.h>

#include "loop.h"

/* One lowering per node of g (LP_CONV_AUTO: the rule of lp_conv_uses_gemm,
 * spec/jit.md "Convolution"), for lp_lower_modes; NULL when g has no
 * convolution to decide or nothing is tuned (TT_TUNE=0, no tuning cache, a
 * busy machine unless TT_TUNE=1: the rule). A geometry seen before in the
 * process, or in the tuning cache, is not timed again. Thread-safe. */
LpConvLowering *jit_conv_modes(const IrGraph *g);

/* Each geometry decided so far, its lowering and why, with the timed
 * alternatives. */
void jit_conv_explain(FILE *out);

#endif
