/* jit.c - the JIT: cache of compiled graphs, ORC LLJIT, running, dumps.
 *
 * A cache entry keeps a private copy of the graph's structure (ops, dtypes,
 * shapes, wiring, attributes, outputs), the hash, the compiled entry point
 * and the graph's workspace. A lookup compares the hash, then the structure
 * field by field, so a hash collision can never run the wrong code.
 */
#include "jit.h"
#include "ctune.h"
#include "vtune.h"

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codegen.h"
#include "objcache.h"
#include "gemm.h"
#include "qgemm.h"
#include "parallel.h"
#include "transform.h"
#include "shapefam.h"

typedef void (*GraphFn)(void **bufs);

typedef struct Entry {
    uint64_t hash;
    int n, ninputs, nout;
    IrNode *nodes; /* in[] point into ins */
    int *ins, *outputs;
    int *alias; /* per output (ir_output_alias) */
    GraphFn fn;
    void *ws;                       /* workspace, reused by every run */
    int64_t ws_lower, ws_unplanned; /* the memory plan's bound and its start (loop.h) */
    int64_t wsbytes;
    int threads; /* the thread count the loops were scheduled for */
    int conv;    /* the LpConvLowering it was lowered with */
    /* compiled with timers (jit_set_profile): kernel names and time spent */
    bool profiled;
    int nkernels;
    char (*kname)[32];
    double *kns;
    int64_t *kflops; /* the FLOPs of one run of each kernel (its nodes') */
    int64_t *kbytes; /* the bytes one run of each kernel reads and writes */
    int64_t runs;
    /* index checks: one status word per checking node (codegen.h) */
    int nchecks;
    int *check_node;
    int64_t *status;
} Entry;

/* What the generated code passes back to tt_jit_gemm: bufs[nin + nout + 1]. */
typedef struct JitRt {
    TtGemm *gemm;      /* the process-wide GEMM, taken at the first graph with a matmul */
    int threads;       /* >= 1 */
    double *kns;       /* profiling: the running entry's per-kernel ns (tt_jit_tick) */
    double last;       /* the time of the last tick */
    char (*kname)[32]; /* the running entry's kernel names, for trace */
    JitTraceFn trace;  /* jit_set_trace */
    TtQgemm *qgemm;    /* the int8 GEMM, taken at the first graph with a qmatmul */
} JitRt;

struct Jit {
    JitRt rt;
    int threads_asked; /* jit_set_threads's argument (-1: not yet) */
    LLVMOrcLLJITRef lljit;
    LLVMOrcJITDylibRef jd;
    LLVMTargetMachineRef tm; /* for the pass pipeline */
    int opt;
    bool fuse, fuse_kernels;
    LpConvLowering conv; /* jit_set_conv_lowering */
    JitVec vec;          /* jit_set_vec */
    bool vec_forced;
    Entry *entries;
    int nentries, cap;
    JitStats stats;
    bool profile;     /* jit_set_profile */
    JitLoopHook hook; /* jit_set_loop_hook */
    void *hook_arg;
    char link_err[256]; /* the last link failure ORC reported (session_error) */
    /* shape families (shapefam.h): graphs that differ in one dimension */
    ShapeFam *fams;
    int nfams, famcap;
    bool buckets; /* jit_set_buckets */
    int err_node; /* the node of the last failed jit_run's error, or -1 */
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

/* TT_JIT_CONV=direct|im2col|implicit forces the lowering of every
 * convolution (for measuring, bench/bench_conv.c; gemm: im2col); unset or
 * anything else: the rule. */
static LpConvLowering env_conv(void) {
    const char *e = getenv("TT_JIT_CONV");
    if (e && strcmp(e, "direct") == 0) return LP_CONV_DIRECT;
    if (e && (strcmp(e, "im2col") == 0 || strcmp(e, "gemm") == 0)) return LP_CONV_IM2COL;
    if (e && strcmp(e, "implicit") == 0) return LP_CONV_IMPLICIT;
    return LP_CONV_AUTO;
}

static bool llvm_fail(LLVMErrorRef e, const char *what, char *err, size_t errlen) {
    char *msg = LLVMGetErrorMessage(e);
    snprintf(err, errlen, "jit: %s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
    return false;
}

/* The GEMM call of LS_GEMM statements (CG_GEMM_SYMBOL): defined in the
 * JIT's main dylib by address, since the symbols of a static library linked
 * into the executable are not visible to the process-symbol generator. */
static void jit_gemm_call(const JitRt *rt, const float *A, int64_t lda, int32_t ta, const float *B,
                          int64_t ldb, int32_t tb, float *C, int64_t ldc, int64_t M, int64_t N,
                          int64_t K, void (*epi)(void *, int64_t, int64_t), void *bufs,
                          int32_t acc) {
    TtGemmEpilogue e = {epi, bufs};
    tt_gemm_run(rt->gemm, M, N, K, A, lda, ta != 0, B, ldb, tb != 0, C, ldc, acc != 0, rt->threads,
                epi ? &e : NULL);
}

/* CG_GEMM_GATHER_SYMBOL, defined like CG_GEMM_SYMBOL; geo: codegen.h */
static void jit_gemm_gather_call(const JitRt *rt, const float *A, int64_t lda, int32_t ta,
                                 const float *x, const int64_t *geo, float *C, int64_t ldc,
                                 int64_t M, int64_t N, int64_t K,
                                 void (*epi)(void *, int64_t, int64_t), void *bufs, int32_t acc) {
    TtGemmEpilogue e = {epi, bufs};
    TtGemmGather b = {
        x, {geo[0], geo[1]}, {geo[2], geo[3], geo[4]}, {geo[5], geo[6]}, {geo[7], geo[8], geo[9]}};
    TtGemmOut o = {geo[10], geo[11]};
    tt_gemm_run_gather_out(rt->gemm, M, N, K, A, lda, ta != 0, &b, C, ldc, o.cols > 0 ? &o : NULL,
                           acc != 0, rt->threads, epi ? &e : NULL);
}

/* CG_QGEMM_SYMBOL, defined like CG_GEMM_SYMBOL */
static void jit_qgemm_call(const JitRt *rt, const int8_t *A, int64_t lda, const int8_t *B,
                           int64_t ldb, int32_t *C, int64_t ldc, int64_t M, int64_t N, int64_t K,
                           void (*epi)(void *, int64_t, int64_t), void *bufs) {
    TtGemmEpilogue e = {epi, bufs};
    tt_qgemm_run(rt->qgemm, M, N, K, A, lda, B, ldb, C, ldc, rt->threads, epi ? &e : NULL);
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e9 * (double)ts.tv_sec + (double)ts.tv_nsec;
}

/* CG_TICK_SYMBOL: kernel k starts (k = nkernels: the last one ended). */
static void jit_tick(JitRt *rt, int32_t k) {
    double t = now_ns();
    if (k > 0) {
        rt->kns[k - 1] += t - rt->last;
        if (rt->trace) rt->trace(rt->kname[k - 1], "kernel", rt->last, t, 1);
    }
    rt->last = t;
}

/* ORC reports a failed link (an unresolved symbol) to the session as well
 * as failing the lookup, and by default prints it ("JIT session error:
 * ..."). Keep it for the lookup's message instead: a cached object that
 * does not link is a miss, not news, and a fresh one's error says it. */
static void session_error(void *ctx, LLVMErrorRef e) {
    Jit *j = ctx;
    char *msg = LLVMGetErrorMessage(e);
    snprintf(j->link_err, sizeof j->link_err, "%s", msg);
    LLVMDisposeErrorMessage(msg);
}

static int clamp_opt(int o) {
    return o < 0 ? 0 : o > 3 ? 3 : o;
}

Jit *jit_new(int opt_level) {
    char err[256];
    Jit *j = tt_xcalloc(1, sizeof *j);
    j->opt = clamp_opt(opt_level);
    /* TT_JIT_FUSE=0: every op its own kernel (jit_set_fusion(j, false)),
     * for measuring what fusion buys (bench/run's jit-O2-nofuse) */
    const char *fe = getenv("TT_JIT_FUSE");
    j->fuse = j->fuse_kernels = !(fe && strcmp(fe, "0") == 0);
    j->err_node = -1;
    j->tm = cg_host_machine(j->opt, err, sizeof err);
    if (!j->tm) {
        free(j);
        return NULL;
    }
    /* the LLJIT only links: graphs arrive as object files (compile) */
    LLVMErrorRef e = LLVMOrcCreateLLJIT(&j->lljit, LLVMOrcCreateLLJITBuilder());
    if (e) {
        LLVMConsumeError(e);
        LLVMDisposeTargetMachine(j->tm);
        free(j);
        return NULL;
    }
    j->jd = LLVMOrcLLJITGetMainJITDylib(j->lljit);
    LLVMOrcExecutionSessionSetErrorReporter(LLVMOrcLLJITGetExecutionSession(j->lljit),
                                            session_error, j);
    LLVMOrcDefinitionGeneratorRef gen;
    e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
        &gen, LLVMOrcLLJITGetGlobalPrefix(j->lljit), NULL, NULL);
    if (e) {
        LLVMConsumeError(e);
        jit_free(j);
        return NULL;
    }
    LLVMOrcJITDylibAddGenerator(j->jd, gen);
    /* what generated code calls, defined by address: the symbols of a static
     * library linked into the executable are not visible to the
     * process-symbol generator */
    const struct {
        const char *name;
        void *fn;
    } rt[] = {{CG_GEMM_SYMBOL, (void *)&jit_gemm_call},
              {CG_PARALLEL_SYMBOL, (void *)&ttrt_parallel_for},
              {CG_TICK_SYMBOL, (void *)&jit_tick},
              {CG_QGEMM_SYMBOL, (void *)&jit_qgemm_call},
              {CG_GEMM_GATHER_SYMBOL, (void *)&jit_gemm_gather_call}};
    LLVMOrcCSymbolMapPair syms[5];
    for (int i = 0; i < 5; i++)
        syms[i] = (LLVMOrcCSymbolMapPair){
            LLVMOrcLLJITMangleAndIntern(j->lljit, rt[i].name),
            {(LLVMOrcExecutorAddress)(uintptr_t)rt[i].fn,
             {LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable, 0}}};
    e = LLVMOrcJITDylibDefine(j->jd, LLVMOrcAbsoluteSymbols(syms, 5));
    if (e) {
        LLVMConsumeError(e);
        jit_free(j);
        return NULL;
    }
    j->threads_asked = -1;
    jit_set_threads(j, 0);
    j->conv = env_conv();
    const char *bk = getenv("TT_JIT_BUCKETS");
    j->buckets = !(bk && (strcmp(bk, "0") == 0 || strcmp(bk, "off") == 0));
    return j;
}

void jit_set_vec(Jit *j, int width, int interleave) {
    j->vec = (JitVec){width, interleave};
    j->vec_forced = true;
}

/* The vector schedule of p's loops: j's own, or the host's (vtune.h). */
static void set_vec(const Jit *j, LpProg *p) {
    JitVec v = j && j->vec_forced ? j->vec : jit_vec_host();
    p->vec_width = v.width;
    p->vec_interleave = v.interleave;
}

void jit_set_conv_lowering(Jit *j, int mode) {
    j->conv = mode == 1   ? LP_CONV_DIRECT
              : mode == 2 ? LP_CONV_IM2COL
              : mode == 3 ? LP_CONV_IMPLICIT
                          : LP_CONV_AUTO;
}

void jit_set_loop_hook(Jit *j, JitLoopHook hook, void *arg) {
    j->hook = hook;
    j->hook_arg = arg;
}

void jit_set_threads(Jit *j, int n) {
    if (n == j->threads_asked) return;
    j->threads_asked = n;
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    j->rt.threads = n;
}

void jit_free(Jit *j) {
    if (!j) return;
    for (int i = 0; i < j->nentries; i++) {
        Entry *en = &j->entries[i];
        free(en->nodes);
        free(en->ins);
        free(en->outputs);
        free(en->alias);
        free(en->ws);
        free(en->kname);
        free(en->kns);
        free(en->kflops);
        free(en->kbytes);
        free(en->check_node);
        free(en->status);
    }
    free(j->entries);
    for (int i = 0; i < j->nfams; i++) sf_free(&j->fams[i]);
    free(j->fams);
    if (j->rt.gemm) tt_gemm_free(j->rt.gemm);
    if (j->rt.qgemm) tt_qgemm_free(j->rt.qgemm);
    if (j->lljit) {
        LLVMErrorRef e = LLVMOrcDisposeLLJIT(j->lljit);
        if (e) LLVMConsumeError(e);
    }
    if (j->tm) LLVMDisposeTargetMachine(j->tm);
    free(j);
}

JitStats jit_stats(const Jit *j) {
    return j->stats;
}

void jit_set_kernel_sharing(bool on) {
    cg_set_share(on);
}

void jit_set_buckets(Jit *j, bool on) {
    j->buckets = on;
}

void jit_set_fusion(Jit *j, bool on) {
    j->fuse = on;
}

void jit_set_kernel_fusion(Jit *j, bool on) {
    j->fuse_kernels = on;
}

void jit_set_trace(Jit *j, JitTraceFn fn) {
    j->rt.trace = fn;
    ttrt_parallel_set_trace(fn);
}

void jit_set_profile(Jit *j, bool on) {
    j->profile = on;
}

typedef struct KernelTime {
    int graph, kernel;
    double ns;
} KernelTime;

static int by_time(const void *a, const void *b) {
    double x = ((const KernelTime *)a)->ns, y = ((const KernelTime *)b)->ns;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Which graphs that varied in one dimension ran on padded buckets, and why
 * the others compiled once per value (spec/jit.md, "Varying dimensions"). */
static void print_families(const Jit *j, FILE *out) {
    for (int i = 0; i < j->nfams; i++) {
        const ShapeFam *f = &j->fams[i];
        if (f->state == SF_READY)
            fprintf(out, "shape family %d (%d nodes): T varies, %lld runs on padded buckets\n",
                    i + 1, f->n, (long long)f->runs);
        else if (f->state == SF_DEAD)
            fprintf(out, "note: shape family %d (%d nodes) compiles once per value: %s\n", i + 1,
                    f->n, f->why);
    }
}

/* The GEMM kernel families built so far (each when first needed; the
 * graphs' compiles include the builds tt_gemm_prepare did for them). */
static void print_gemm(const Jit *j, FILE *out) {
    if (!j->rt.gemm) return;
    TtGemmStats s;
    tt_gemm_stats(j->rt.gemm, &s);
    fprintf(out, "gemm: %d of %d kernel families built (", s.families, TT_GEMM_FAMILIES);
    for (int f = 0, n = 0; f < TT_GEMM_FAMILIES; f++)
        if (s.mask & (1u << f)) fprintf(out, "%s%s", n++ ? ", " : "", tt_gemm_family_name(f));
    fprintf(out, ") in %.1f ms, %d linked from the on-disk cache\n", s.compile_ms, s.from_cache);
}

void jit_print_profile(const Jit *j, FILE *out, int top) {
    print_families(j, out);
    print_gemm(j, out);
    int n = 0;
    double total = 0;
    for (int i = 0; i < j->nentries; i++) n += j->entries[i].profiled ? j->entries[i].nkernels : 0;
    if (n == 0) return;
    KernelTime *t = tt_xmalloc((size_t)n * sizeof *t);
    n = 0;
    for (int i = 0; i < j->nentries; i++)
        for (int k = 0; j->entries[i].profiled && k < j->entries[i].nkernels; k++) {
            t[n++] = (KernelTime){i, k, j->entries[i].kns[k]};
            total += j->entries[i].kns[k];
        }
    qsort(t, (size_t)n, sizeof *t, by_time);
    fprintf(out, "%-5s %-32s %8s %10s %7s %10s %9s %10s\n", "graph", "kernel", "runs", "total ms",
            "%", "us/run", "GFLOP/s", "KB/run");
    int shown = top > 0 && top < n ? top : n;
    for (int i = 0; i < shown; i++) {
        const Entry *en = &j->entries[t[i].graph];
        double ns = t[i].ns;
        int64_t runs = en->runs;
        fprintf(out, "%-5d %-32s %8lld %10.3f %6.1f%% %10.2f %9.2f %10.1f\n", t[i].graph + 1,
                en->kname[t[i].kernel], (long long)runs, ns * 1e-6,
                total > 0 ? 100 * ns / total : 0, runs ? ns * 1e-3 / runs : 0,
                ns > 0 ? (double)en->kflops[t[i].kernel] * (double)runs / ns : 0,
                (double)en->kbytes[t[i].kernel] / 1024);
    }
    if (shown < n) fprintf(out, "(%d more kernels)\n", n - shown);
    fprintf(out, "%-5s %-32s %8s %10.3f %6.1f%%\n", "total", "", "", total * 1e-6, 100.0);
    free(t);
    /* the memory planner (plan.c): the largest workspace, and how close
     * every graph's plan came to its lower bound */
    int big = -1;
    double worst = 1;
    for (int i = 0; i < j->nentries; i++) {
        const Entry *en = &j->entries[i];
        if (big < 0 || en->wsbytes > j->entries[big].wsbytes) big = i;
        if (en->ws_lower > 0 && (double)en->wsbytes / (double)en->ws_lower > worst)
            worst = (double)en->wsbytes / (double)en->ws_lower;
    }
    if (big >= 0)
        fprintf(out,
                "memory plan: largest workspace %.1f KB (graph %d; lower bound %.1f KB, %.1f KB "
                "without reuse); planned / lower bound <= %.3f over %d graphs\n",
                (double)j->entries[big].wsbytes / 1024, big + 1,
                (double)j->entries[big].ws_lower / 1024,
                (double)j->entries[big].ws_unplanned / 1024, worst, j->nentries);
}

int jit_profile_kernels(const Jit *j, JitKernelProfile *out, int max) {
    int n = 0;
    for (int i = 0; i < j->nentries; i++)
        for (int k = 0; j->entries[i].profiled && k < j->entries[i].nkernels; k++, n++)
            if (out && n < max) {
                const Entry *en = &j->entries[i];
                out[n] =
                    (JitKernelProfile){i, k, en->kname[k], en->runs, en->kns[k], en->kflops[k]};
            }
    return n;
}

/* -- the structural key -- */

static bool same_structure(const Entry *en, const IrGraph *g) {
    if (en->n != g->n || en->ninputs != g->ninputs || en->nout != g->nout) return false;
    if (g->nout && memcmp(en->outputs, g->outputs, (size_t)g->nout * sizeof *g->outputs) != 0)
        return false;
    for (int k = 0; k < g->nout; k++)
        if (en->alias[k] != ir_output_alias(g, k)) return false;
    for (int i = 0; i < g->n; i++) {
        const IrNode *a = &en->nodes[i], *b = &g->nodes[i];
        if (a->op != b->op || a->dtype != b->dtype || a->nin != b->nin ||
            !shape_eq(&a->shape, &b->shape) ||
            !ir_attr_eq(&a->attr, &b->attr, ir_ops[a->op].attrs, IR_MAXDIM))
            return false;
        if (a->nin && memcmp(a->in, b->in, (size_t)a->nin * sizeof *a->in) != 0) return false;
    }
    return true;
}

static void copy_structure(Entry *en, const IrGraph *g) {
    int nin = 0;
    for (int i = 0; i < g->n; i++) nin += g->nodes[i].nin;
    en->n = g->n;
    en->ninputs = g->ninputs;
    en->nout = g->nout;
    en->nodes = tt_xmalloc(((size_t)g->n + 1) * sizeof *en->nodes);
    en->ins = tt_xmalloc(((size_t)nin + 1) * sizeof *en->ins);
    en->outputs = tt_xmalloc(((size_t)g->nout + 1) * sizeof *en->outputs);
    if (g->nout) memcpy(en->outputs, g->outputs, (size_t)g->nout * sizeof *g->outputs);
    en->alias = tt_xmalloc(((size_t)g->nout + 1) * sizeof *en->alias);
    for (int k = 0; k < g->nout; k++) en->alias[k] = ir_output_alias(g, k);
    int at = 0;
    for (int i = 0; i < g->n; i++) {
        IrNode n = g->nodes[i];
        if (n.nin) memcpy(en->ins + at, n.in, (size_t)n.nin * sizeof *n.in);
        n.in = en->ins + at;
        n.name = NULL;
        at += n.nin;
        en->nodes[i] = n;
    }
}

/* -- compiling -- */

/* The key of a graph's object code in the on-disk cache: everything the
 * machine code depends on besides the IR (LLVM, CPU, optimization level)
 * and a hash of the IR text, which covers the graph, its schedule and the
 * code generator itself. malloc'd. */
static char *graph_key(const Jit *j, const char *ir, uint64_t *hash) {
    unsigned maj, min, pat;
    LLVMGetVersion(&maj, &min, &pat);
    char *cpu = LLVMGetTargetMachineCPU(j->tm), *feat = LLVMGetTargetMachineFeatureString(j->tm);
    size_t n = strlen(ir);
    *hash = objcache_hash(ir, n);
    const char *fmt = "tt-graph llvm=%u.%u.%u cpu=%s features=%s O%d pic small ir=%016llx:%zu";
    int len =
        snprintf(NULL, 0, fmt, maj, min, pat, cpu, feat, j->opt, (unsigned long long)*hash, n);
    char *key = tt_xmalloc((size_t)len + 1);
    snprintf(key, (size_t)len + 1, fmt, maj, min, pat, cpu, feat, j->opt, (unsigned long long)*hash,
             n);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(feat);
    return key;
}

/* Adds the object file obj (taken) and looks name up in it. The object
 * gets a resource tracker of its own, removed again when it fails: a bad
 * object must leave no symbols behind that the next one would clash with. */
static bool add_object(Jit *j, LLVMMemoryBufferRef obj, const char *name,
                       LLVMOrcExecutorAddress *addr, char *err, size_t errlen) {
    j->link_err[0] = 0;
    LLVMOrcResourceTrackerRef rt = LLVMOrcJITDylibCreateResourceTracker(j->jd);
    LLVMErrorRef e = LLVMOrcLLJITAddObjectFileWithRT(j->lljit, rt, obj);
    if (!e) e = LLVMOrcLLJITLookup(j->lljit, addr, name);
    if (e) {
        LLVMErrorRef r = LLVMOrcResourceTrackerRemove(rt);
        if (r) LLVMConsumeError(r);
    }
    /* on success the tracker's resources pass to the dylib's default one */
    LLVMOrcReleaseResourceTracker(rt);
    if (!e) return true;
    llvm_fail(e, "linking the graph", err, errlen);
    /* the session's message names the cause ("Symbols not found: [ f ]"),
     * the lookup's only the symbol it could not materialize */
    if (j->link_err[0]) snprintf(err, errlen, "jit: linking the graph: %s", j->link_err);
    return false;
}

/* Links the cached object code for key if there is one and it defines
 * name. An entry whose checksum is right but whose object does not link
 * (another generator's, a missing symbol) is a miss: the caller compiles
 * afresh and replaces it, as gemm_jit.c does with its entries. */
static bool link_cached(Jit *j, const char *key, const char *name, LLVMOrcExecutorAddress *addr) {
    void *bytes = NULL;
    size_t len = 0;
    if (!objcache_load(key, &bytes, &len)) return false;
    LLVMMemoryBufferRef obj = LLVMCreateMemoryBufferWithMemoryRangeCopy(bytes, len, name);
    free(bytes);
    char err[512];
    if (add_object(j, obj, name, addr, err, sizeof err)) return true;
    const char *dbg = getenv("TT_CACHE_DEBUG");
    if (dbg && *dbg && strcmp(dbg, "0")) fprintf(stderr, "objcache: cached graph: %s\n", err);
    return false;
}

/* Makes m's graph function `tt_graph` callable: its object code comes from
 * the on-disk cache, or from optimizing and compiling m (then stored, once
 * it has linked). The function is renamed tt_graph_<IR hash>, so cached
 * objects keep their names and one JIT never links two graphs under one
 * name. */
static bool link_graph(Jit *j, LLVMModuleRef m, LLVMOrcExecutorAddress *addr, char *err,
                       size_t errlen) {
    char *ir = LLVMPrintModuleToString(m);
    uint64_t h;
    char *key = graph_key(j, ir, &h);
    LLVMDisposeMessage(ir);
    char name[40];
    snprintf(name, sizeof name, "tt_graph_%016llx", (unsigned long long)h);
    LLVMErrorRef e = LLVMOrcLLJITLookup(j->lljit, addr, name);
    if (!e) { /* the same code is linked already (another entry, same IR) */
        free(key);
        return true;
    }
    LLVMConsumeError(e);
    LLVMSetValueName2(LLVMGetNamedFunction(m, "tt_graph"), name, strlen(name));
    if (link_cached(j, key, name, addr)) {
        j->stats.disk_hits++;
        free(key);
        return true;
    }
    char *msg = NULL;
    LLVMMemoryBufferRef obj = NULL;
    if (!cg_optimize(m, j->tm, j->opt, err, errlen)) {
        free(key);
        return false;
    }
    if (LLVMTargetMachineEmitToMemoryBuffer(j->tm, m, LLVMObjectFile, &msg, &obj)) {
        snprintf(err, errlen, "jit: code generation failed: %s", msg ? msg : "?");
        LLVMDisposeMessage(msg);
        free(key);
        return false;
    }
    /* the JIT takes the buffer: keep a copy of the bytes to store */
    size_t len = LLVMGetBufferSize(obj);
    void *bytes = malloc(len ? len : 1);
    if (bytes) memcpy(bytes, LLVMGetBufferStart(obj), len);
    bool ok = add_object(j, obj, name, addr, err, errlen);
    if (ok && bytes) objcache_store(key, bytes, len);
    free(bytes);
    free(key);
    return ok;
}

/* The FLOPs of the graph nodes a kernel computes: its own, the fused
 * ones, and those of the kernels merged into it. */
static int64_t kernel_flops(const IrGraph *g, const LpKernel *k) {
    int64_t f = 0;
    if (k->node >= 0) f += ir_ops[g->nodes[k->node].op].flops(g, &g->nodes[k->node]);
    for (int i = 0; i < k->nfused; i++)
        f += ir_ops[g->nodes[k->fused[i]].op].flops(g, &g->nodes[k->fused[i]]);
    for (int i = 0; i < k->nmerged; i++) f += kernel_flops(g, &k->merged[i]);
    return f;
}

/* The float GEMMs of the statements from st on (distinct shapes, at most
 * max), for tt_gemm_prepare: the graph's compile builds the GEMM kernel
 * families its products will use, so its runs find them built. */
#define PREP_MAX 32
static int gemm_shapes(const LpStmt *st, LpGemm *out, int n) {
    for (; st; st = st->next) {
        if (st->kind == LS_LOOP) n = gemm_shapes(st->body, out, n);
        if (st->kind != LS_GEMM || st->gemm->q) continue;
        const LpGemm *x = st->gemm;
        bool seen = false;
        for (int i = 0; i < n && !seen; i++)
            seen = out[i].m == x->m && out[i].n == x->n && out[i].k == x->k && out[i].ta == x->ta &&
                   out[i].tb == x->tb && out[i].gather == x->gather;
        if (!seen && n < PREP_MAX) out[n++] = *x;
    }
    return n;
}

static bool compile(Jit *j, const IrGraph *g, Entry *en, char *err, size_t errlen) {
    double t0 = now_ms();
    LpConvLowering *modes = j->conv == LP_CONV_AUTO ? jit_conv_modes(g) : NULL;
    LpProg *p = lp_lower_modes(g, j->fuse, j->conv, modes);
    free(modes);
    set_vec(j, p);
    en->conv = (int)j->conv;
    if (j->hook) j->hook(p, j->hook_arg);
    if (j->fuse && j->fuse_kernels) lp_fuse_kernels(p);
    lp_schedule(p, j->rt.threads); /* vectorize marks; parallel loops with threads > 1 */
    en->threads = j->rt.threads;
    en->profiled = j->profile;
    if (j->profile) {
        en->nkernels = p->nkernels;
        en->kname = tt_xcalloc((size_t)p->nkernels + 1, sizeof *en->kname);
        en->kns = tt_xcalloc((size_t)p->nkernels + 1, sizeof *en->kns);
        en->kflops = tt_xcalloc((size_t)p->nkernels + 1, sizeof *en->kflops);
        en->kbytes = tt_xcalloc((size_t)p->nkernels + 1, sizeof *en->kbytes);
        for (int i = 0; i < p->nkernels; i++) {
            snprintf(en->kname[i], sizeof en->kname[i], "%s", p->kernels[i].name);
            en->kflops[i] = kernel_flops(g, &p->kernels[i]);
            en->kbytes[i] = lp_kernel_bytes(p, i);
        }
    }
    LLVMContextRef ctx = LLVMContextCreate();
    int nfn = 0;
    LLVMModuleRef m = cg_module(ctx, p, "tt_graph", j->tm, j->profile, &nfn, err, errlen);
    if (m) {
        j->stats.kernels += p->nkernels;
        j->stats.kernel_fns += nfn;
    }
    en->wsbytes = p->workspace;
    en->ws_lower = p->ws_lower;
    en->ws_unplanned = p->ws_unplanned;
    /* which GEMMs the graph calls (qmatmul's LS_GEMMs call the int8 one) */
    bool gemm = m && (LLVMGetNamedFunction(m, CG_GEMM_SYMBOL) ||
                      LLVMGetNamedFunction(m, CG_GEMM_GATHER_SYMBOL));
    bool qgemm = m && LLVMGetNamedFunction(m, CG_QGEMM_SYMBOL);
    en->nchecks = p->nchecks;
    en->check_node = tt_xmalloc(((size_t)p->nchecks + 1) * sizeof *en->check_node);
    if (p->nchecks) memcpy(en->check_node, p->check_node, (size_t)p->nchecks * sizeof(int));
    en->status = tt_xcalloc((size_t)p->nchecks + 1, sizeof *en->status);
    int big = -1; /* the largest temporary: named when the workspace does not fit */
    for (int i = 0; i < p->nbufs; i++)
        if (p->bufs[i].kind == LB_TEMP && p->bufs[i].node >= 0 &&
            (big < 0 ||
             shape_numel(&p->bufs[i].shape) * (int64_t)dtype_size(p->bufs[i].dtype) >
                 shape_numel(&p->bufs[big].shape) * (int64_t)dtype_size(p->bufs[big].dtype)))
            big = i;
    int big_node = big >= 0 ? p->bufs[big].node : -1;
    LpGemm prep[PREP_MAX];
    int nprep = 0;
    for (int i = 0; gemm && i < p->nkernels; i++)
        nprep = gemm_shapes(p->kernels[i].body, prep, nprep);
    lp_free(p);
    if (m && gemm && !j->rt.gemm) { /* compiles the GEMM kernels, once per process */
        char gerr[256];
        j->rt.gemm = tt_gemm_new(gerr, sizeof gerr);
        if (!j->rt.gemm) snprintf(err, errlen, "jit: cannot build the GEMM: %s", gerr);
    }
    for (int i = 0; m && j->rt.gemm && i < nprep; i++) {
        char gerr[256];
        const LpGemm *x = &prep[i];
        if (!tt_gemm_prepare(j->rt.gemm, x->m, x->n, x->k, x->ta, x->tb, x->gather, gerr,
                             sizeof gerr)) {
            snprintf(err, errlen, "jit: cannot build the GEMM: %s", gerr);
            LLVMDisposeModule(m);
            m = NULL;
        }
    }
    LLVMOrcExecutorAddress addr = 0;
    if (m && qgemm && !j->rt.qgemm) { /* compiles the int8 kernels, once per process */
        char gerr[256];
        j->rt.qgemm = tt_qgemm_new(gerr, sizeof gerr);
        if (!j->rt.qgemm) snprintf(err, errlen, "jit: cannot build the int8 GEMM: %s", gerr);
    }
    bool ok = m && (!gemm || j->rt.gemm) && (!qgemm || j->rt.qgemm) &&
              link_graph(j, m, &addr, err, errlen);
    if (m) LLVMDisposeModule(m);
    LLVMContextDispose(ctx);
    if (!ok) return false;
    en->fn = (GraphFn)(uintptr_t)addr;
    if (en->wsbytes > 0) {
        /* beyond 2^46 bytes no machine has it: no request (a sanitizer's
         * allocator would abort on it rather than return NULL) */
        en->ws = en->wsbytes > ((int64_t)1 << 46) ? NULL : aligned_alloc(64, (size_t)en->wsbytes);
        if (!en->ws && big_node >= 0) { /* said like the naive runtime, at the node */
            const IrNode *x = ir_node(g, big_node);
            char sh[128];
            snprintf(err, errlen, "out of memory: the result %s%s of %s does not fit",
                     dtype_name(x->dtype), shape_str(&x->shape, sh, sizeof sh), ir_ops[x->op].name);
            j->err_node = big_node;
            return false;
        }
        if (!en->ws) {
            snprintf(err, errlen, "jit: out of memory for a %lld-byte workspace",
                     (long long)en->wsbytes);
            return false;
        }
    }
    j->stats.compiles++;
    j->stats.compile_ms += now_ms() - t0;
    if (j->rt.trace) j->rt.trace("compile", "compile", t0 * 1e6, now_ms() * 1e6, 1);
    return true;
}

static size_t node_bytes(const IrGraph *g, int id) {
    const IrNode *n = ir_node(g, id);
    return (size_t)shape_numel(&n->shape) * dtype_size(n->dtype);
}

static bool overlaps_input(const IrGraph *g, const void *out, size_t bytes, void *const *inputs) {
    uintptr_t o0 = (uintptr_t)out, o1 = o0 + bytes;
    for (int i = 0; i < g->n && bytes; i++) {
        const IrNode *n = ir_node(g, i);
        if (n->op != OP_INPUT) continue;
        uintptr_t i0 = (uintptr_t)inputs[n->attr.index], i1 = i0 + node_bytes(g, i);
        if (o0 < i1 && i0 < o1) return true;
    }
    return false;
}

/* After a run: the first node in node order whose index check failed (-1:
 * none), and the index it recorded. */
static int failed_check(const Entry *en, int64_t *value) {
    int node = -1;
    for (int w = 0; w < en->nchecks; w++)
        if (en->status[w] != 0 && (node < 0 || en->check_node[w] < node)) {
            node = en->check_node[w];
            *value = en->status[w] - ((int64_t)1 << 31) - 1;
        }
    return node;
}

static Entry *lookup(Jit *j, const IrGraph *g, uint64_t h) {
    for (int i = 0; i < j->nentries; i++)
        if (j->entries[i].hash == h && j->entries[i].threads == j->rt.threads &&
            j->entries[i].profiled == j->profile && j->entries[i].conv == (int)j->conv &&
            same_structure(&j->entries[i], g)) {
            j->stats.hits++;
            return &j->entries[i];
        }
    return NULL;
}

/* The entry compiled for g (compiling it on a miss), or NULL with err. */
static Entry *find_entry(Jit *j, const IrGraph *g, char *err, size_t errlen) {
    uint64_t h = ir_hash(g);
    Entry *hit = lookup(j, g, h);
    if (hit) return hit;
    char why[512];
    if (!ir_verify(g, why, sizeof why)) {
        snprintf(err, errlen, "jit: %s", why);
        return NULL;
    }
    Entry fresh = {0};
    fresh.hash = h;
    if (!compile(j, g, &fresh, err, errlen)) {
        free(fresh.ws);
        free(fresh.check_node);
        free(fresh.status);
        return NULL;
    }
    copy_structure(&fresh, g);
    TT_VEC_PUSH(j->entries, j->nentries, j->cap, fresh);
    return &j->entries[j->nentries - 1];
}

static bool run_entry(Jit *j, Entry *en, const IrGraph *g, void *const *inputs,
                      void *const *outputs, char *err, size_t errlen);

/* Copies the rows t < min(from, to) of each of the `outer` blocks of a
 * tensor whose axis T is `from` long into one where it is `to` long. */
static void copy_rows(char *dst, const char *src, int64_t outer, int64_t inner, int64_t from,
                      int64_t to) {
    int64_t t = from < to ? from : to;
    for (int64_t o = 0; o < outer; o++)
        memcpy(dst + o * to * inner, src + o * from * inner, (size_t)(t * inner));
}

/* g's T axis at node i of family f: the blocks before it and the bytes of
 * one row after it. */
static void row_layout(const ShapeFam *f, const IrGraph *g, int i, int64_t *outer, int64_t *inner) {
    const IrNode *x = ir_node(g, i);
    int a = sf_axis(f, i);
    *outer = 1;
    *inner = (int64_t)dtype_size(x->dtype);
    for (int k = 0; k < x->shape.ndim; k++)
        if (k < a)
            *outer *= x->shape.d[k];
        else if (k > a)
            *inner *= x->shape.d[k];
}

static void *alloc_zero(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 64) & ~(size_t)63);
    if (p) memset(p, 0, bytes);
    return p;
}

/* On a miss of g's exact structure: runs g as a member of its shape family
 * on the padded bucket graph (true, the run's success in *ran), or says
 * that g compiles on its own (false): the first member of a family, a
 * family padding is not exact for, or a T that is its own bucket. */
static bool run_in_family(Jit *j, const IrGraph *g, void *const *inputs, void *const *outputs,
                          char *err, size_t errlen, bool *ran) {
    if (!j->buckets) return false;
    uint64_t key = sf_key(g);
    ShapeFam *f = NULL;
    for (int i = 0; i < j->nfams && !f; i++)
        if (j->fams[i].key == key) f = &j->fams[i];
    if (!f) {
        ShapeFam nf;
        sf_init(&nf, key, g);
        TT_VEC_PUSH(j->fams, j->nfams, j->famcap, nf);
        return false;
    }
    if (f->state == SF_ONE) sf_derive(f, g);
    int64_t t = sf_match(f, g);
    if (t < 0) return false;
    int64_t b = sf_bucket(f, t);
    if (b == t || !sf_tail_ok(f, g, t, b, inputs)) return false;
    IrGraph pg;
    ir_init(&pg);
    if (!sf_build(f, g, b, &pg)) {
        ir_free(&pg);
        return false;
    }
    int nb = g->ninputs + g->nout;
    void **bufs = tt_xcalloc((size_t)nb + 1, sizeof *bufs);
    bool *own = tt_xcalloc((size_t)nb + 1, sizeof *own);
    bool ok = true;
    for (int k = 0; k < g->ninputs; k++) bufs[k] = inputs[k];
    for (int k = 0; k < g->nout; k++) bufs[g->ninputs + k] = outputs[k];
    for (int i = 0; i < g->n && ok; i++) {
        const IrNode *x = ir_node(g, i);
        if (x->op != OP_INPUT || sf_axis(f, i) < 0 || own[x->attr.index]) continue;
        int64_t outer, inner;
        row_layout(f, g, i, &outer, &inner);
        void *p = alloc_zero((size_t)(outer * b * inner));
        if ((ok = p != NULL)) copy_rows(p, inputs[x->attr.index], outer, inner, t, b);
        bufs[x->attr.index] = p;
        own[x->attr.index] = true;
    }
    for (int k = 0; k < g->nout && ok; k++) {
        int i = g->outputs[k];
        if (sf_axis(f, i) < 0) continue;
        int64_t outer, inner;
        row_layout(f, g, i, &outer, &inner);
        ok = (bufs[g->ninputs + k] = alloc_zero((size_t)(outer * b * inner))) != NULL;
        own[g->ninputs + k] = true;
    }
    Entry *en = NULL;
    if (!ok)
        snprintf(err, errlen, "out of memory: the padded buffers of a graph with T = %lld",
                 (long long)b);
    else if ((en = find_entry(j, &pg, err, errlen)) &&
             (ok = run_entry(j, en, &pg, bufs, bufs + g->ninputs, err, errlen)))
        for (int k = 0; k < g->nout; k++) {
            int i = g->outputs[k];
            if (sf_axis(f, i) < 0) continue;
            int64_t outer, inner;
            row_layout(f, g, i, &outer, &inner);
            copy_rows(outputs[k], bufs[g->ninputs + k], outer, inner, b, t);
        }
    *ran = ok && en;
    for (int k = 0; k < nb; k++)
        if (own[k]) free(bufs[k]);
    free(bufs);
    free(own);
    ir_free(&pg);
    f->runs++;
    j->stats.bucket_runs++;
    return true;
}

bool jit_run(Jit *j, const IrGraph *g, void *const *inputs, void *const *outputs, char *err,
             size_t errlen) {
    j->err_node = -1;
    Entry *en = lookup(j, g, ir_hash(g));
    bool ran;
    if (!en && run_in_family(j, g, inputs, outputs, err, errlen, &ran)) return ran;
    if (!en) en = find_entry(j, g, err, errlen);
    return en && run_entry(j, en, g, inputs, outputs, err, errlen);
}

bool jit_run_cached(Jit *j, int *entry, const IrGraph *g, void *const *inputs, void *const *outputs,
                    char *err, size_t errlen) {
    j->err_node = -1;
    Entry *en = NULL;
    if (*entry >= 0 && *entry < j->nentries) {
        Entry *e = &j->entries[*entry];
        /* the settings a graph is compiled for; the structure is g's by contract */
        if (e->threads == j->rt.threads && e->profiled == j->profile && e->conv == (int)j->conv) {
            en = e;
            j->stats.hits++;
        }
    }
    if (!en) en = lookup(j, g, ir_hash(g));
    bool ran; /* a padded run: *entry stays unknown, the family is found again */
    if (!en && run_in_family(j, g, inputs, outputs, err, errlen, &ran)) return ran;
    if (!en && !(en = find_entry(j, g, err, errlen))) return false;
    *entry = (int)(en - j->entries);
    return run_entry(j, en, g, inputs, outputs, err, errlen);
}

static bool run_entry(Jit *j, Entry *en, const IrGraph *g, void *const *inputs,
                      void *const *outputs, char *err, size_t errlen) {
    int nb = g->ninputs + g->nout + 3;
    void *small[64], **bufs = nb <= 64 ? small : tt_xmalloc((size_t)nb * sizeof *bufs);
    for (int k = 0; k < g->ninputs; k++) bufs[k] = inputs[k];
    for (int k = 0; k < g->nout; k++) bufs[g->ninputs + k] = outputs[k];
    bufs[nb - 3] = en->ws;
    bufs[nb - 2] = &j->rt;
    bufs[nb - 1] = en->status;
    if (en->nchecks) memset(en->status, 0, (size_t)en->nchecks * sizeof *en->status);
    /* An output aliasing an input (ir_alias_output) is written in place:
     * its kernel stores only what changes, so it must be given the input's
     * own buffer. */
    for (int k = 0; k < g->nout; k++) {
        int s = ir_output_alias(g, k);
        if (s >= 0 && outputs[k] != inputs[s]) {
            snprintf(err, errlen,
                     "jit: output %d updates input slot %d in place but was given another buffer",
                     k, s);
            if (bufs != small) free(bufs);
            return false;
        }
    }
    /* The kernels write outputs while reading inputs: any other output that
     * overlaps an input goes through a scratch buffer, as the naive
     * runtime's copy at the end would. */
    bool scratch = false;
    for (int k = 0; k < g->nout; k++)
        if (ir_output_alias(g, k) < 0 &&
            overlaps_input(g, outputs[k], node_bytes(g, g->outputs[k]), inputs)) {
            size_t bytes = node_bytes(g, g->outputs[k]);
            /* 64-byte aligned like every tensor buffer: the GEMM's tiles
             * and the kernels' vector stores assume it for speed */
            bufs[g->ninputs + k] =
                bytes > ((size_t)1 << 46) ? NULL : aligned_alloc(64, (bytes + 64) & ~(size_t)63);
            if (!bufs[g->ninputs + k]) { /* no copy of this size fits: stop before running */
                const IrNode *x = ir_node(g, g->outputs[k]);
                char sh[128];
                snprintf(err, errlen, "out of memory: the result %s%s of %s does not fit",
                         dtype_name(x->dtype), shape_str(&x->shape, sh, sizeof sh),
                         ir_ops[x->op].name);
                j->err_node = g->outputs[k];
                for (int q = 0; q < k; q++)
                    if (bufs[g->ninputs + q] != outputs[q]) free(bufs[g->ninputs + q]);
                if (bufs != small) free(bufs);
                return false;
            }
            scratch = true;
        }
    j->rt.kns = en->kns;
    j->rt.kname = en->kname;
    en->runs++;
    en->fn(bufs);
    if (scratch)
        for (int k = 0; k < g->nout; k++)
            if (bufs[g->ninputs + k] != outputs[k]) {
                memcpy(outputs[k], bufs[g->ninputs + k], node_bytes(g, g->outputs[k]));
                free(bufs[g->ninputs + k]);
            }
    if (bufs != small) free(bufs);
    int64_t bad = 0;
    int node = failed_check(en, &bad);
    if (node >= 0) { /* the same words as the naive runtime's kernels */
        const IrNode *x = ir_node(g, node);
        int64_t n = x->op == OP_SCATTER_ADD ? x->shape.d[0] : ir_node(g, x->in[0])->shape.d[0];
        if (x->op == OP_WRITE_ROWS) { /* kern_rows_error's words */
            int r = x->shape.ndim;
            int64_t rows = ir_node(g, x->in[1])->shape.d[r - 2];
            n = x->shape.d[r - 2];
            snprintf(err, errlen,
                     "position %lld out of range: writing %lld row%s into %lld needs 0 <= "
                     "position <= %lld",
                     (long long)bad, (long long)rows, rows == 1 ? "" : "s", (long long)n,
                     (long long)(n - rows));
        } else {
            snprintf(err, errlen, "index %lld out of range for axis of size %lld", (long long)bad,
                     (long long)n);
        }
        j->err_node = node;
        return false;
    }
    return true;
}

int jit_error_node(const Jit *j) {
    return j->err_node;
}

/* -- dumps -- */

void jit_emit_loops(FILE *out, const IrGraph *g) {
    jit_emit_loops_threads(out, g, 1);
}

void jit_emit_loops_threads(FILE *out, const IrGraph *g, int nthreads) {
    char err[512];
    if (!ir_verify(g, err, sizeof err)) {
        fprintf(out, "# invalid graph: %s\n", err);
        return;
    }
    if (nthreads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = c > 0 ? (int)c : 1;
    }
    LpConvLowering conv = env_conv(), *modes = conv == LP_CONV_AUTO ? jit_conv_modes(g) : NULL;
    LpProg *p = lp_lower_modes(g, true, conv, modes);
    free(modes);
    set_vec(NULL, p);
    lp_fuse_kernels(p);
    lp_schedule(p, nthreads);
    lp_print(out, p, g);
    lp_free(p);
}

/* Builds and optimizes the module of g in ctx with a fresh host machine. */
static LLVMModuleRef build_optimized(LLVMContextRef ctx, const IrGraph *g, int opt,
                                     LLVMTargetMachineRef *tm, char *err, size_t errlen) {
    if (!ir_verify(g, err, errlen)) return NULL;
    *tm = cg_host_machine(clamp_opt(opt), err, errlen);
    if (!*tm) return NULL;
    LpConvLowering conv = env_conv(), *modes = conv == LP_CONV_AUTO ? jit_conv_modes(g) : NULL;
    LpProg *p = lp_lower_modes(g, true, conv, modes);
    free(modes);
    set_vec(NULL, p);
    lp_fuse_kernels(p);
    lp_schedule(p, 1);
    LLVMModuleRef m = cg_module(ctx, p, "graph", *tm, false, NULL, err, errlen);
    lp_free(p);
    if (m && !cg_optimize(m, *tm, clamp_opt(opt), err, errlen)) {
        LLVMDisposeModule(m);
        m = NULL;
    }
    if (!m) {
        LLVMDisposeTargetMachine(*tm);
        *tm = NULL;
    }
    return m;
}

/* g's optimized module written to out: its LLVM IR, or (assembly) the
 * host's assembly. */
static bool emit_optimized(FILE *out, const IrGraph *g, int opt_level, bool assembly, char *err,
                           size_t errlen) {
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMTargetMachineRef tm = NULL;
    LLVMModuleRef m = build_optimized(ctx, g, opt_level, &tm, err, errlen);
    if (!m) {
        LLVMContextDispose(ctx);
        return false;
    }
    bool ok = true;
    if (!assembly) {
        char *s = LLVMPrintModuleToString(m);
        fputs(s, out);
        LLVMDisposeMessage(s);
    } else {
        char *msg = NULL;
        LLVMMemoryBufferRef mb = NULL;
        ok = !LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMAssemblyFile, &msg, &mb);
        if (ok) {
            fwrite(LLVMGetBufferStart(mb), 1, LLVMGetBufferSize(mb), out);
            LLVMDisposeMemoryBuffer(mb);
        } else {
            snprintf(err, errlen, "jit: emitting assembly failed: %s", msg ? msg : "?");
        }
        if (msg) LLVMDisposeMessage(msg);
    }
    LLVMDisposeModule(m);
    LLVMDisposeTargetMachine(tm);
    LLVMContextDispose(ctx);
    return ok;
}

bool jit_emit_llvm(FILE *out, const IrGraph *g, int opt_level, char *err, size_t errlen) {
    return emit_optimized(out, g, opt_level, false, err, errlen);
}

bool jit_emit_asm(FILE *out, const IrGraph *g, int opt_level, char *err, size_t errlen) {
    return emit_optimized(out, g, opt_level, true, err, errlen);
}
