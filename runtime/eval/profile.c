/* profile.c - profile { ... }: where the time of a block went.
 *
 * The block runs in a scope of its own with profiling on; everything
 * computed inside is realized before that scope goes (else
 * `profile { let y = net(x) }` would drop y unrealized and measure
 * nothing). The result is a record
 *   (ms, flops, bytes, peak_mb, ops)
 * ms: the block's wall time; flops, bytes: what its graphs computed and
 * moved (per node: inputs read + output written); peak_mb: the most tensor
 * data held at once (realized tensors and bound buffers, not the backends'
 * scratch); ops: one record (name, calls, ms, flops, bytes) per kernel on
 * a backend with kernel timers (the JIT; calls: runs of its graph; bytes:
 * not split per kernel, 0), else per op (the naive runtime), by time,
 * descending. The statement form prints the same as a table.
 */
#include "eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The current backend's kernel times before each running block, one slot
 * per nesting depth. Static, so an error inside a block (which longjmps out) leaves
 * nothing unreachable; deeper blocks share the last slot. */
#define MAX_DEPTH 8
static struct {
    TtKernelProfile *k;
    int n, cap;
} snaps[MAX_DEPTH];
static int depth;

/* The current backend if it is open (one opened during the block starts
 * from zero). */
static TtBackend *opened(Interp *I) {
    return I->be.slot[I->be.cur];
}

static void snapshot(Interp *I, int slot) {
    snaps[slot].n = 0;
    if (!opened(I)) return;
    int n = tt_backend_kernels(opened(I), NULL, 0);
    if (n > snaps[slot].cap) {
        snaps[slot].cap = n;
        snaps[slot].k = tt_xrealloc(snaps[slot].k, (size_t)n * sizeof *snaps[slot].k);
    }
    snaps[slot].n = tt_backend_kernels(opened(I), snaps[slot].k, n);
}

void rt_set_profiling(Interp *I, bool on) {
    I->prof.on = on;
}

typedef struct Row {
    const char *name;
    int64_t calls, flops, bytes;
    double ms;
} Row;

static int by_ms(const void *a, const void *b) {
    double x = ((const Row *)a)->ms, y = ((const Row *)b)->ms;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The kernels' differences since the snapshot (a kernel of a graph
 * compiled during the block starts from zero). */
static Row *kernel_rows(Interp *I, int slot, int *nrows) {
    *nrows = 0;
    if (!opened(I)) return NULL;
    int n = tt_backend_kernels(opened(I), NULL, 0);
    TtKernelProfile *now = tt_xmalloc(((size_t)n + 1) * sizeof *now);
    n = tt_backend_kernels(opened(I), now, n);
    Row *rows = tt_xmalloc(((size_t)n + 1) * sizeof *rows);
    for (int i = 0; i < n; i++) {
        int64_t runs = now[i].runs;
        double ns = now[i].ns;
        for (int j = 0; j < snaps[slot].n; j++) {
            const TtKernelProfile *b = &snaps[slot].k[j];
            if (b->graph == now[i].graph && b->kernel == now[i].kernel) {
                runs -= b->runs;
                ns -= b->ns;
                break;
            }
        }
        if (runs <= 0) continue;
        rows[(*nrows)++] =
            (Row){rt_intern(I, now[i].name), runs, runs * now[i].flops, 0, ns * 1e-6};
    }
    free(now);
    return rows;
}

static Row *op_rows(const RtProfile *d, int *nrows) {
    Row *rows = tt_xmalloc((OP__COUNT + 1) * sizeof *rows);
    *nrows = 0;
    for (int op = 0; op < OP__COUNT; op++)
        if (d->calls[op])
            rows[(*nrows)++] = (Row){ir_ops[op].name, d->calls[op], d->flops[op], d->bytes[op],
                                     d->seconds[op] * 1e3};
    return rows;
}

static void print_table(const Row *rows, int n, bool kernels, double ms) {
    double total = 0;
    for (int i = 0; i < n; i++) total += rows[i].ms;
    printf("%-32s %8s %10s %7s %9s\n", kernels ? "kernel" : "op", "calls", "total ms", "%",
           "GFLOP/s");
    for (int i = 0; i < n; i++)
        printf("%-32s %8lld %10.3f %6.1f%% %9.2f\n", rows[i].name, (long long)rows[i].calls,
               rows[i].ms, total > 0 ? 100 * rows[i].ms / total : 0,
               rows[i].ms > 0 ? (double)rows[i].flops / rows[i].ms * 1e-6 : 0);
    printf("%-32s %8s %10.3f %6.1f%%   (block: %.3f ms)\n", "total", "", total,
           total > 0 ? 100.0 : 0, ms);
}

/* An error inside the block: profiling is as it was before the block (the
 * cleanup stack, value.h, runs this when the error unwinds past it). */
static void profile_restore(Interp *I, void *was) {
    depth--;
    I->prof.on = was != NULL;
}

Value rt_profile_block(Interp *I, Env *env, const AstNode *n, Value *ret, Flow *fl, bool print) {
    bool was = I->prof.on;
    int slot = depth < MAX_DEPTH ? depth : MAX_DEPTH - 1;
    depth++;
    int mark = rt_owned_mark(I);
    rt_own_restore(I, profile_restore, was ? I : NULL);
    I->prof.on = true;
    rt_realize_all(I); /* what came before is not part of the block */
    RtProfile before = I->prof.table;
    snapshot(I, slot);
    rt_mem_peak_reset();
    double t0 = now_s();

    Env *e = env_new(I, env);
    rt_own_env(I, e);
    *fl = exec_block_in(I, e, n->b, ret);
    rt_realize_all(I); /* the block's lazy tensors, while its scope holds them */
    rt_owned_pop(I, mark);
    env_release(I, e);

    double ms = (now_s() - t0) * 1e3;
    double peak_mb = (double)rt_mem_peak() / 1e6;
    depth--;
    I->prof.on = was;
    RtProfile d;
    int64_t flops = 0, bytes = 0;
    for (int op = 0; op < OP__COUNT; op++) {
        d.seconds[op] = I->prof.table.seconds[op] - before.seconds[op];
        d.calls[op] = I->prof.table.calls[op] - before.calls[op];
        d.flops[op] = I->prof.table.flops[op] - before.flops[op];
        d.bytes[op] = I->prof.table.bytes[op] - before.bytes[op];
        flops += d.flops[op];
        bytes += d.bytes[op];
    }
    if (!was) I->prof.table = before; /* --profile off: the block's numbers are its own */
    int nk, no;
    Row *krows = kernel_rows(I, slot, &nk);
    Row *orows = op_rows(&d, &no);
    bool kernels = nk > 0; /* a backend with kernel timers ran: its kernels are the rows */
    Row *rows = kernels ? krows : orows;
    int nr = kernels ? nk : no;
    qsort(rows, (size_t)nr, sizeof *rows, by_ms);
    if (print) {
        fflush(stdout);
        print_table(rows, nr, kernels, ms);
        fflush(stdout);
    }
    static const char *const fields[] = {"ms", "flops", "bytes", "peak_mb", "ops"};
    static const char *const ofields[] = {"name", "calls", "ms", "flops", "bytes"};
    Value list = rt_list(I, 0);
    for (int i = 0; i < nr; i++) {
        Value r = rt_record(I, 5, ofields);
        Record *rr = (Record *)r.o;
        rr->vals[0] = rt_cstr(I, rows[i].name);
        rr->vals[1] = vint(rows[i].calls);
        rr->vals[2] = vfloat(rows[i].ms);
        rr->vals[3] = vint(rows[i].flops);
        rr->vals[4] = vint(rows[i].bytes);
        rt_list_push(I, list, r);
    }
    free(krows);
    free(orows);
    Value rec = rt_record(I, 5, fields);
    Record *r = (Record *)rec.o;
    r->vals[0] = vfloat(ms);
    r->vals[1] = vint(flops);
    r->vals[2] = vint(bytes);
    r->vals[3] = vfloat(peak_mb);
    r->vals[4] = list;
    return rec;
}
