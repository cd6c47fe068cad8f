/* lazy.h - the state of the lazy graph (lazy.c): the nodes that tensor
 * operations append, the data realized per node, and the live lazy tensors.
 * Its functions are declared in value.h ("tensors"). A leaf header.
 */
#ifndef TT_LAZY_H
#define TT_LAZY_H

#include <stddef.h>
#include <stdint.h>

#include "ir.h"

typedef struct LazyGraph {
    IrGraph g;
    struct Buffer **node_buf; /* per node of g: realized data (retained) or NULL */
    int node_buf_cap;
    /* rt_realize_all's scratch, per node of g (node_buf_cap long): the walk
     * visits only what the lazy tensors reach, never all of g */
    uint32_t *rz_seen; /* == rz_stamp: visited by the current walk */
    int *rz_map;       /* the node's id in the execution graph */
    uint32_t rz_stamp;
    size_t node_buf_bytes; /* the data node_buf holds (shared with tensors or not) */
    size_t node_buf_sweep; /* node_buf_bytes at which a realization sweeps (lazy.c) */
    uint64_t gen;          /* bumped each time g is cleared */
    struct Tensor *lazy;   /* list of live tensors that have no data yet */
    int nexec;             /* execution graphs run so far (tests, --dump) */

    struct Tensor **params; /* every live parameter tensor (not retained) */
    int nparams, capparams;
} LazyGraph;

#endif
