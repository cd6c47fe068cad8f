/* builtins_generate.c - generate(): sampling tokens from a language model.
 *
 *   generate(model, prompt_ids, n, temperature=1.0, top_k=0, seed=none,
 *            cache=true)
 *
 * The model is anything whose call maps token ids i32[B, T] to logits
 * f32[B, T, vocab] (a model's forward). With cache=true the forward is turned
 * into a decode graph by the KV-cache pass (kvdecode.h) and the prompt and
 * the new tokens run through it one position at a time; where the pass
 * refuses (a note under --profile says why), or with cache=false, each new
 * token runs the forward on the whole prefix, cropped to its last ctx
 * tokens. Both sample the same way from the same generator, so they give the
 * same tokens. The model runs in evaluation mode (as after eval(net)).
 */
#include "builtins_lib.h"
#include "eval.h"
#include "kvdecode.h"

#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An int constructor parameter or field of a model (ctx, vocab); -1 if none. */
static int64_t model_int(Value model, const char *name) {
    if (model.kind != V_MODEL) return -1;
    Model *m = (Model *)model.o;
    Value *v = rt_model_field(m, name);
    if (!v && m->env) v = env_find_local(m->env, name);
    return v && v->kind == V_INT ? v->i : -1;
}

/* One token from logits l[V]: temperature 0 takes the first maximum; else
 * softmax(l / temperature) over the top_k largest (all when 0; ties with
 * the k-th value are kept, as nanoGPT's l[l < v[-1]] = -inf), one uniform
 * draw from r walking the cumulative probabilities. p: V doubles of scratch. */
static int32_t sample(const float *l, int64_t V, double temp, int64_t top_k, Rng *r, double *p) {
    if (temp == 0) {
        int64_t best = 0;
        for (int64_t i = 1; i < V; i++)
            if (l[i] > l[best]) best = i;
        return (int32_t)best;
    }
    double floor = -INFINITY;
    if (top_k > 0 && top_k < V) {
        /* the k-th largest: partial selection over a copy */
        for (int64_t i = 0; i < V; i++) p[i] = l[i];
        for (int64_t k = 0; k < top_k; k++) {
            int64_t m = k;
            for (int64_t i = k + 1; i < V; i++)
                if (p[i] > p[m]) m = i;
            double t = p[k];
            p[k] = p[m];
            p[m] = t;
        }
        floor = p[top_k - 1];
    }
    double mx = -INFINITY;
    for (int64_t i = 0; i < V; i++)
        if (l[i] >= floor && l[i] / temp > mx) mx = l[i] / temp;
    double sum = 0;
    for (int64_t i = 0; i < V; i++) {
        p[i] = l[i] >= floor ? exp(l[i] / temp - mx) : 0;
        sum += p[i];
    }
    double u = rng_uniform(r) * sum, acc = 0;
    int64_t last = 0;
    for (int64_t i = 0; i < V; i++) {
        if (p[i] <= 0) continue;
        last = i;
        acc += p[i];
        if (u < acc) return (int32_t)i;
    }
    return (int32_t)last;
}

/* What generate holds, freed on every exit (errors longjmp through it). */
typedef struct Gen {
    int32_t *seq; /* [B, L]: the prompt, then the new tokens */
    int32_t *col; /* [B]: one position's tokens */
    float *logits;
    double *scratch;
    KvDecoder kd;
    bool have_kd;
} Gen;

static void gen_free(Gen *g) {
    free(g->seq);
    free(g->col);
    free(g->logits);
    free(g->scratch);
    if (g->have_kd) kv_decoder_free(&g->kd);
    g->have_kd = false;
}

/* logits[b, :] = the forward's last row on seq[b, cur - w .. cur), w = the
 * last ctx tokens at most. */
static void recompute(Interp *I, Value model, Gen *g, int64_t B, int64_t L, int64_t cur,
                      int64_t ctx, int64_t V, SrcLoc at) {
    int64_t w = ctx > 0 && cur > ctx ? ctx : cur;
    Tensor *x = rt_tensor_uninit(I, TY_I32, shape_make(2, (int64_t[]){B, w}));
    int32_t *xd = rt_data(I, x);
    for (int64_t b = 0; b < B; b++)
        memcpy(xd + b * w, g->seq + b * L + cur - w, (size_t)w * sizeof *xd);
    Value arg = vtensor(x);
    Value out = rt_call(I, model, &arg, 1, NULL, NULL, 0);
    rt_release(I, arg);
    I->ev.loc = at;
    Tensor *y = out.kind == V_TENSOR ? (Tensor *)out.o : NULL;
    if (!y || y->dtype != TY_F32 || y->shape.ndim != 3 || y->shape.d[0] != B ||
        y->shape.d[1] != w || y->shape.d[2] != V) {
        char sh[128] = "";
        if (y) shape_str(&y->shape, sh, sizeof sh);
        rt_release(I, out);
        rt_error(I,
                 "generate: the model must map i32[B, T] to logits f32[B, T, vocab], got %s%s "
                 "for i32[%lld, %lld]",
                 y ? dtype_name(y->dtype) : rt_type_name(out), sh, (long long)B, (long long)w);
    }
    const float *yd = rt_data(I, y);
    for (int64_t b = 0; b < B; b++)
        memcpy(g->logits + b * V, yd + (b * w + w - 1) * V, (size_t)V * sizeof *yd);
    rt_release(I, out);
}

/* The vocabulary size from one forward on the prompt's first token (a model
 * without a `vocab` parameter). */
static int64_t probe_vocab(Interp *I, Value model, const int32_t *ids, SrcLoc at) {
    Tensor *x = rt_tensor_uninit(I, TY_I32, shape_make(2, (int64_t[]){1, 1}));
    *(int32_t *)rt_data(I, x) = ids[0];
    Value arg = vtensor(x);
    Value out = rt_call(I, model, &arg, 1, NULL, NULL, 0);
    rt_release(I, arg);
    I->ev.loc = at;
    int64_t V = -1;
    if (out.kind == V_TENSOR && as_tensor(out)->shape.ndim == 3) V = as_tensor(out)->shape.d[2];
    rt_release(I, out);
    if (V < 1) rt_error(I, "generate: the model must map i32[B, T] to logits f32[B, T, vocab]");
    return V;
}

/* generate(model, prompt_ids, n, temperature=1.0, top_k=0, seed=none,
 *          cache=true) -> i32[T + n] (or [B, T + n]) */
BUILTIN(bi_generate) {
    static const char *const names[] = {"model", "prompt_ids", "n",     "temperature",
                                        "top_k", "seed",       "cache", NULL};
    Value a[7];
    BIND("generate", names, 3, a);
    Value model = a[0];
    if (model.kind != V_MODEL && model.kind != V_FUNC && model.kind != V_BUILTIN)
        rt_error(I, "generate: model must be a model, got %s", rt_type_name(model));
    Tensor *pt = lib_tensor(I, a[1], "generate", "prompt_ids");
    if (pt->dtype != TY_I32 || pt->shape.ndim < 1 || pt->shape.ndim > 2) {
        char sh[128];
        rt_error(I, "generate: prompt_ids must be i32[T] or i32[B, T] token ids, got %s%s",
                 dtype_name(pt->dtype), shape_str(&pt->shape, sh, sizeof sh));
    }
    int64_t n = lib_int(I, a[2], 0, "generate", "n");
    if (n < 0) rt_error(I, "generate: n must not be negative, got %lld", (long long)n);
    double temp = lib_float(I, a[3], 1.0, "generate", "temperature");
    if (!(temp >= 0) || isinf(temp))
        rt_error(I, "generate: temperature must be a finite number >= 0 (0: greedy), got %g", temp);
    int64_t top_k = lib_int(I, a[4], 0, "generate", "top_k");
    if (top_k < 0)
        rt_error(I, "generate: top_k must not be negative (0: all tokens), got %lld",
                 (long long)top_k);
    Rng local, *rng = &I->ev.rng;
    if (a[5].kind != V_NONE) {
        rng_seed(&local, (uint64_t)lib_int(I, a[5], 0, "generate", "seed"));
        rng = &local;
    }
    bool cache = lib_bool(I, a[6], true, "generate", "cache");
    int64_t B = pt->shape.ndim == 2 ? pt->shape.d[0] : 1, T0 = pt->shape.d[pt->shape.ndim - 1];
    if (B < 1 || T0 < 1) rt_error(I, "generate: the prompt is empty (it needs a first token)");
    int64_t ctx = model_int(model, "ctx"), V = model_int(model, "vocab");
    if (ctx > 0 && T0 > ctx)
        rt_error(I, "generate: the prompt has %lld tokens, more than the model's ctx (%lld)",
                 (long long)T0, (long long)ctx);
    const int32_t *ids = rt_data(I, pt);
    for (int64_t i = 0; i < B * T0; i++)
        if (ids[i] < 0 || (V > 0 && ids[i] >= V)) {
            if (V > 0)
                rt_error(I,
                         "generate: token id %d at position %lld of the prompt is out of the "
                         "vocabulary (0 <= id < %lld)",
                         ids[i], (long long)(i % T0), (long long)V);
            rt_error(I, "generate: token id %d at position %lld of the prompt is negative", ids[i],
                     (long long)(i % T0));
        }
    if (B * (T0 + n) > INT32_MAX) rt_error(I, "generate: %lld tokens is too many", (long long)n);
    SrcLoc at = I->ev.loc;
    bool training = I->ev.training, consts = I->ev.scalar_consts;
    I->ev.training = false;
    if (V < 1) V = probe_vocab(I, model, ids, at); /* before anything is allocated */

    int64_t L = T0 + n;
    Gen *gp = tt_xcalloc(1, sizeof *gp); /* on the heap: setjmp keeps it */
    gp->seq = tt_xmalloc((size_t)(B * L) * sizeof *gp->seq);
    gp->col = tt_xmalloc((size_t)B * sizeof *gp->col);
    gp->logits = tt_xmalloc((size_t)(B * V) * sizeof *gp->logits);
    gp->scratch = tt_xmalloc((size_t)V * sizeof *gp->scratch);
    for (int64_t b = 0; b < B; b++)
        memcpy(gp->seq + b * L, ids + b * T0, (size_t)T0 * sizeof *gp->seq);
    jmp_buf jb;
    jmp_buf *saved = I->ev.on_error;
    I->ev.on_error = &jb;
    if (setjmp(jb)) { /* the error is reported; free what generate holds, pass it on */
        gen_free(gp);
        free(gp);
        I->ev.training = training;
        I->ev.scalar_consts = consts;
        I->ev.on_error = saved;
        longjmp(*saved, 1);
    }

    /* the cache's rows: the model's ctx, or all the tokens there will be */
    int64_t rows = ctx > 0 ? ctx : L;
    if (cache && n > 0) {
        char why[256];
        gp->have_kd = kv_decoder_init(I, model, B, rows, &gp->kd, why, sizeof why);
        I->ev.loc = at;
        if (gp->have_kd && gp->kd.vocab != V) {
            snprintf(why, sizeof why, "the logits have %lld columns per token, not vocab %lld",
                     (long long)gp->kd.vocab, (long long)V);
            kv_decoder_free(&gp->kd);
            gp->have_kd = false;
        }
        if (!gp->have_kd && I->prof.on)
            fprintf(stderr, "note: generate: no KV cache (recomputing the prefix per token): %s\n",
                    why);
    }
    int64_t cur = T0;
    if (gp->have_kd && n > 0)
        for (int64_t p = 0; p < T0; p++) { /* prefill: the prompt through the decode graph */
            for (int64_t b = 0; b < B; b++) gp->col[b] = gp->seq[b * L + p];
            kv_decoder_step(I, &gp->kd, gp->col, p);
        }
    for (int64_t j = 0; j < n; j++) {
        const float *lg = gp->logits;
        if (gp->have_kd)
            lg = gp->kd.logits;
        else
            recompute(I, model, gp, B, L, cur, ctx, V, at);
        for (int64_t b = 0; b < B; b++)
            gp->col[b] = gp->seq[b * L + cur] =
                sample(lg + b * V, V, temp, top_k, rng, gp->scratch);
        cur++;
        if (j == n - 1) break;
        if (gp->have_kd && cur - 1 >= rows) { /* the cache is full: recompute from here */
            kv_decoder_free(&gp->kd);
            gp->have_kd = false;
        }
        if (gp->have_kd) kv_decoder_step(I, &gp->kd, gp->col, cur - 1);
    }
    I->ev.on_error = saved;
    I->ev.training = training;
    I->ev.loc = at;

    Shape s = pt->shape.ndim == 2 ? shape_make(2, (int64_t[]){B, L}) : shape_make(1, &L);
    Tensor *r = rt_tensor_uninit(I, TY_I32, s);
    memcpy(rt_data(I, r), gp->seq, (size_t)(B * L) * sizeof *gp->seq);
    gen_free(gp);
    free(gp);
    return vtensor(r);
}

void lib_register_generate(Interp *I) {
    rt_define_global(I, "generate", rt_builtin(I, "generate", bi_generate, VNONE));
}
