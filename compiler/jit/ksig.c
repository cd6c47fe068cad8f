/* ksig.c - a kernel's canonical form with its buffers abstracted (ksig.h).
 *
 * The form is a byte string written by a walk of the kernel in the order
 * codegen.c emits it: every field of every statement and expression, with
 * three renamings and nothing else left out. Buffers and status words
 * become their position in the kernel's table; expression ids become the
 * order in which the walk first meets them, and a second meeting of the
 * same expression is written as a reference to it, so two kernels match
 * only where their expression DAGs are shaped alike (the codegen memoizes
 * by id: alike DAGs emit alike code). Equal strings mean the codegen, which
 * reads nothing else of the kernel but its name, emits the same function.
 */
#include "ksig.h"

#include <stdlib.h>
#include <string.h>

#include "objcache.h"

typedef struct Walk {
    unsigned char *b;
    size_t len, cap;
    const LpProg *p;
    int *eloc, *estamp; /* by expression id: local id, valid when stamp == gen */
    int *bloc, *bstamp; /* by buffer */
    int *wloc, *wstamp; /* by status word */
    int gen;
    int nexpr, nbufs, nwords;
    int *bufs, *words; /* the table's buffers and words, in first-use order */
} Walk;

static void put(Walk *w, const void *v, size_t n) {
    if (w->len + n > w->cap) {
        w->cap = (w->len + n) * 2 + 256;
        unsigned char *nb = realloc(w->b, w->cap);
        if (!nb) abort();
        w->b = nb;
    }
    memcpy(w->b + w->len, v, n);
    w->len += n;
}

static void put_i(Walk *w, int64_t v) {
    put(w, &v, sizeof v);
}

static int buf_of(Walk *w, int buf) {
    if (w->bstamp[buf] != w->gen) {
        w->bstamp[buf] = w->gen;
        w->bloc[buf] = w->nbufs;
        w->bufs[w->nbufs++] = buf;
    }
    return w->bloc[buf];
}

static int word_of(Walk *w, int word) {
    if (w->wstamp[word] != w->gen) {
        w->wstamp[word] = w->gen;
        w->wloc[word] = w->nwords;
        w->words[w->nwords++] = word;
    }
    return w->wloc[word];
}

static void expr(Walk *w, const LpExpr *e) {
    if (!e) {
        put_i(w, -1);
        return;
    }
    if (w->estamp[e->id] == w->gen) { /* met before: a reference */
        put_i(w, -2);
        put_i(w, w->eloc[e->id]);
        return;
    }
    w->estamp[e->id] = w->gen;
    w->eloc[e->id] = w->nexpr++;
    put_i(w, e->kind);
    put_i(w, e->ty);
    put_i(w, e->op);
    put(w, &e->c, sizeof e->c);
    put_i(w, e->var);
    put_i(w, e->extent);
    put_i(w, e->exact);
    put_i(w, e->kind == LE_LOAD ? buf_of(w, e->buf) : -1); /* read by a load only */
    expr(w, e->a);
    expr(w, e->b);
    expr(w, e->cc);
}

static void gemm(Walk *w, const LpGemm *g) {
    if (!g) {
        put_i(w, -1);
        return;
    }
    put_i(w, buf_of(w, g->a));
    put_i(w, buf_of(w, g->b));
    put_i(w, buf_of(w, g->c));
    expr(w, g->aoff);
    expr(w, g->boff);
    expr(w, g->coff);
    const int64_t v[] = {g->m,       g->n,       g->k,       g->lda,     g->ldb,     g->ldc,
                         g->ta,      g->tb,      g->acc,     g->q,       g->gather,  g->rdim[0],
                         g->rdim[1], g->rstr[0], g->rstr[1], g->rstr[2], g->cdim[0], g->cdim[1],
                         g->cstr[0], g->cstr[1], g->cstr[2], g->ocols,   g->ostride};
    put(w, v, sizeof v);
}

static void block(Walk *w, const LpStmt *s) {
    for (; s; s = s->next) {
        put_i(w, s->kind);
        put_i(w, s->var);
        put_i(w, s->extent);
        put_i(w, s->ty);
        /* the codegen reads buf of a store only, check of a check only */
        put_i(w, s->kind == LS_STORE ? buf_of(w, s->buf) : -1);
        put_i(w, s->kind == LS_CHECK ? word_of(w, s->check) : -1);
        put_i(w, s->vectorize);
        put_i(w, s->parallel);
        put_i(w, s->epilogue);
        expr(w, s->index);
        expr(w, s->value);
        expr(w, s->trips);
        gemm(w, s->gemm);
        block(w, s->body);
    }
    put_i(w, -3); /* end of the block */
}

static bool has_gemm(const LpStmt *s) {
    for (; s; s = s->next)
        if (s->kind == LS_GEMM || (s->kind == LS_LOOP && has_gemm(s->body))) return true;
    return false;
}

static void build(Walk *w, KSig *s, const LpKernel *k) {
    w->gen++;
    w->len = 0;
    w->nexpr = w->nbufs = w->nwords = 0;
    put_i(w, k->nvars);
    put_i(w, k->nlocals);
    for (int i = 0; i < k->nlocals; i++) put_i(w, k->local_ty[i]);
    block(w, k->body);
    bool rt = has_gemm(k->body);
    /* the table's types: a load's or a store's element type is its buffer's;
     * a scratch buffer's accesses carry alias scopes (codegen.c, make_scopes) */
    put_i(w, w->nbufs);
    for (int i = 0; i < w->nbufs; i++) {
        put_i(w, w->p->bufs[w->bufs[i]].dtype);
        put_i(w, w->p->bufs[w->bufs[i]].scratch);
    }
    put_i(w, rt);
    put_i(w, w->nwords);
    memset(s, 0, sizeof *s);
    s->len = w->len;
    s->bytes = tt_xmalloc(w->len + 1);
    memcpy(s->bytes, w->b, w->len);
    s->hash = objcache_hash(s->bytes, s->len);
    s->n = w->nbufs + (rt ? 1 : 0) + w->nwords;
    s->kind = tt_xmalloc(((size_t)s->n + 1) * sizeof *s->kind);
    s->what = tt_xmalloc(((size_t)s->n + 1) * sizeof *s->what);
    int e = 0;
    for (int i = 0; i < w->nbufs; i++, e++) {
        s->kind[e] = KS_BUF;
        s->what[e] = w->bufs[i];
    }
    s->rt_entry = -1;
    if (rt) {
        s->rt_entry = e;
        s->kind[e] = KS_RT;
        s->what[e++] = -1;
    }
    for (int i = 0; i < w->nwords; i++, e++) {
        s->kind[e] = KS_WORD;
        s->what[e] = w->words[i];
    }
}

void ks_build_all(KSig *sigs, const LpProg *p) {
    Walk w = {0};
    w.p = p;
    size_t ne = (size_t)p->nexpr + 1, nb = (size_t)p->nbufs + 1, nw = (size_t)p->nchecks + 1;
    w.eloc = tt_xcalloc(ne, sizeof *w.eloc);
    w.estamp = tt_xcalloc(ne, sizeof *w.estamp);
    w.bloc = tt_xcalloc(nb, sizeof *w.bloc);
    w.bstamp = tt_xcalloc(nb, sizeof *w.bstamp);
    w.bufs = tt_xcalloc(nb, sizeof *w.bufs);
    w.wloc = tt_xcalloc(nw, sizeof *w.wloc);
    w.wstamp = tt_xcalloc(nw, sizeof *w.wstamp);
    w.words = tt_xcalloc(nw, sizeof *w.words);
    for (int i = 0; i < p->nkernels; i++) build(&w, &sigs[i], &p->kernels[i]);
    free(w.b);
    free(w.eloc);
    free(w.estamp);
    free(w.bloc);
    free(w.bstamp);
    free(w.bufs);
    free(w.wloc);
    free(w.wstamp);
    free(w.words);
}

void ks_free(KSig *s) {
    free(s->bytes);
    free(s->kind);
    free(s->what);
    memset(s, 0, sizeof *s);
}

bool ks_same(const KSig *a, const KSig *b) {
    return a->hash == b->hash && a->len == b->len && !memcmp(a->bytes, b->bytes, a->len);
}
