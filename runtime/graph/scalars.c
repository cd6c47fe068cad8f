/* scalars.c - numbers that flow into tensor code are runtime inputs of the
 * graph, not constants folded into it.
 *
 * The JIT keys its compiled code on the structure of each execution graph
 * (ir_hash): a CONST's value is part of that structure, an INPUT's data is
 * not. A number from a variable (a loop index, a decode position, a
 * learning rate) therefore becomes a 0-d INPUT bound to a fresh buffer, and
 * a loop over indices or positions runs one compiled graph instead of one
 * per value. What stays a CONST: literals in the source (`x * 0.5`, folded
 * into the generated code), numbers that determine a shape (they are
 * attributes, not nodes), and everything while ttc traces a model (its
 * graph's inputs are the forward's arguments and the parameters).
 *
 * Integer indices (`a[i, j]`) are positions, which a SLICE keeps as
 * attributes; rt_index_ints builds them as a gather whose row index is such
 * an input instead (XLA's dynamic_slice, from ops that already exist, with
 * their reference kernels, JIT lowering and gradients).
 */
#include "graph.h"

#include <math.h>
#include <string.h>

int rt_scalar_node(Interp *I, DType dt, double x, bool literal) {
    if (literal || I->ev.scalar_consts)
        return rt_check_node(I, ir_const(&I->lz.g, dt, shape_scalar(), x, I->ev.loc));
    Tensor *t = rt_tensor_scalar(I, dt, x); /* converted as the CONST would be */
    int id = rt_node(I, t);
    rt_release(I, vtensor(t)); /* the graph keeps the buffer bound to its node */
    return id;
}

/* x [d0, ..., dn): the int dims move to the front (permute), merge into one
 * (reshape [rows, rest...]) and one row is gathered at the flat position of
 * the ints; the movement ops fuse into the JIT's gather, which then reads
 * only that row. */
int rt_index_ints(Interp *I, int x, const IrSliceDim *dims, const bool *drop, int ndims) {
    if (I->ev.scalar_consts) return -1;
    IrGraph *g = &I->lz.g;
    const Shape sh = ir_node(g, x)->shape;
    IrSliceDim rest[IR_MAXDIM] = {0};
    int perm[IR_MAXDIM], nint = 0, nperm = 0;
    bool sliced = false;
    int64_t rows = 1, flat = 0;
    for (int k = 0; k < ndims; k++) {
        if (!drop[k]) {
            rest[k] = dims[k];
            sliced = sliced || dims[k].has_start || dims[k].has_stop || dims[k].has_step;
            continue;
        }
        perm[nperm++] = k;
        nint++;
        rows *= sh.d[k];
        if (rows > INT32_MAX) return -1; /* beyond an i32 row index */
        flat = flat * sh.d[k] + dims[k].start;
    }
    if (nint == 0) return -1;
    for (int k = 0; k < sh.ndim; k++)
        if (k >= ndims || !drop[k]) perm[nperm++] = k;
    int r = x;
    if (sliced) r = rt_check_node(I, ir_slice(g, r, rest, ndims, I->ev.loc));
    bool identity = true;
    for (int k = 0; k < sh.ndim; k++) identity = identity && perm[k] == k;
    if (!identity) r = rt_check_node(I, ir_permute(g, r, perm, I->ev.loc));
    if (nint != 1) {
        Shape ps = ir_node(g, r)->shape, s = {0};
        s.d[s.ndim++] = rows;
        for (int k = nint; k < ps.ndim; k++) s.d[s.ndim++] = ps.d[k];
        r = rt_check_node(I, ir_reshape(g, r, s, I->ev.loc));
    }
    int idx = rt_scalar_node(I, TY_I32, (double)flat, false);
    return rt_check_node(I, ir_gather(g, r, idx, I->ev.loc));
}
