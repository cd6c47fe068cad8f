/* ksig.h - a kernel's shape with its buffers abstracted: which kernels of
 * a program can share one compiled function.
 *
 * A kernel reads its buffers (and the runtime context, and its index
 * checks' status words) through a table of pointers that the graph
 * function fills per call (codegen.c). The table lists them in the order
 * the kernel first uses them: the buffers, then the runtime context if it
 * calls the GEMM, then the status words. Two kernels whose loop IR is the
 * same up to that renaming (the repeated layers of a model differ only in
 * slots and workspace offsets) compile to the same code, so one function
 * serves both. Only codegen.c includes this header.
 */
#ifndef TT_KSIG_H
#define TT_KSIG_H

#include <stdint.h>

#include "loop.h"

typedef enum KsEntry { KS_BUF, KS_RT, KS_WORD } KsEntry;

typedef struct KSig {
    /* the canonical form: equal bytes <=> the same code (the kernel's name
     * aside) */
    unsigned char *bytes;
    size_t len;
    uint64_t hash;
    /* the table: entry e holds kind[e] (KS_BUF: buffer what[e] of the
     * program; KS_WORD: status word what[e]; KS_RT: the runtime context) */
    KsEntry *kind;
    int *what;
    int n;
    int rt_entry; /* the KS_RT entry, or -1 */
} KSig;

/* The signatures of p's kernels, sigs[0..p->nkernels) (ks_free releases
 * each). */
void ks_build_all(KSig *sigs, const LpProg *p);
void ks_free(KSig *s);
/* Whether a and b can be one function. */
bool ks_same(const KSig *a, const KSig *b);

#endif
