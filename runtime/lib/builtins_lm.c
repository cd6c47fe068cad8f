/* builtins_lm.c - helpers for training language models: windows (next-token
 * batches), clip_grad_norm, cosine_lr and set_lr (learning-rate schedules
 * written as a loop).
 */
#include "builtins_lib.h"
#include "kvdecode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* windows(ids, ctx, batch, shuffle=true, seed=none) -> list of (x, y)
 * Windows start at 0, ctx, 2*ctx, ... while s + ctx + 1 <= n (y needs one
 * more token); they are shuffled (seeded) and grouped by `batch`; the last
 * incomplete batch is dropped, so every batch is i32[batch, ctx]. */
BUILTIN(bi_windows) {
    static const char *const names[] = {"ids", "ctx", "batch", "shuffle", "seed", NULL};
    Value a[5];
    BIND("windows", names, 3, a);
    Tensor *t = lib_tensor(I, a[0], "windows", "ids");
    if (t->dtype != TY_I32 || t->shape.ndim != 1)
        rt_error(I, "windows: ids must be a 1-d i32 tensor (from encode), got %s[%d dims]",
                 t->dtype == TY_F32   ? "f32"
                 : t->dtype == TY_I32 ? "i32"
                                      : "i8",
                 t->shape.ndim);
    int64_t ctx = lib_int(I, a[1], 0, "windows", "ctx");
    int64_t batch = lib_int(I, a[2], 0, "windows", "batch");
    if (ctx < 1) rt_error(I, "windows: ctx must be positive, got %lld", (long long)ctx);
    if (batch < 1) rt_error(I, "windows: batch must be positive, got %lld", (long long)batch);
    bool shuffle = lib_bool(I, a[3], true, "windows", "shuffle");
    int64_t n = t->shape.d[0];
    int64_t nwin = n >= 1 ? (n - 1) / ctx : 0;
    if (nwin < batch)
        rt_error(I,
                 "windows: %lld tokens give %lld windows of ctx %lld (and the next token), fewer "
                 "than one batch of %lld",
                 (long long)n, (long long)nwin, (long long)ctx, (long long)batch);
    const int32_t *d = rt_data(I, t);
    int64_t *perm;
    if (shuffle) {
        Rng local, *r = &I->ev.rng;
        if (a[4].kind != V_NONE) {
            rng_seed(&local, (uint64_t)lib_int(I, a[4], 0, "windows", "seed"));
            r = &local;
        }
        perm = lib_permutation(r, nwin);
    } else {
        perm = tt_xmalloc((size_t)nwin * sizeof *perm);
        for (int64_t i = 0; i < nwin; i++) perm[i] = i;
    }
    Value out = rt_list(I, 0);
    Shape s = shape_make(2, (int64_t[]){batch, ctx});
    for (int64_t b = 0; b + batch <= nwin; b += batch) {
        Tensor *x = rt_tensor_uninit(I, TY_I32, s), *y = rt_tensor_uninit(I, TY_I32, s);
        int32_t *xd = rt_data(I, x), *yd = rt_data(I, y);
        for (int64_t r = 0; r < batch; r++) {
            const int32_t *src = d + perm[b + r] * ctx;
            memcpy(xd + r * ctx, src, (size_t)ctx * sizeof *xd);
            memcpy(yd + r * ctx, src + 1, (size_t)ctx * sizeof *yd);
        }
        Value pair = rt_tuple(I, 2);
        as_list(pair)->items[0] = vtensor(x);
        as_list(pair)->items[1] = vtensor(y);
        rt_list_push(I, out, pair);
    }
    free(perm);
    return out;
}

/* clip_grad_norm(net, max_norm) -> the total norm before clipping.
 * PyTorch's clip_grad_norm_: total = the L2 norm of all gradients together;
 * when total > max_norm every gradient is scaled by max_norm / (total + 1e-6). */
BUILTIN(bi_clip_grad_norm) {
    static const char *const names[] = {"net", "max_norm", NULL};
    Value a[2];
    BIND("clip_grad_norm", names, 2, a);
    double max_norm = lib_float(I, a[1], 0, "clip_grad_norm", "max_norm");
    if (!(max_norm >= 0)) rt_error(I, "clip_grad_norm: max_norm must be >= 0, got %g", max_norm);
    Value list;
    if (a[0].kind == V_MODEL)
        list = rt_parameters(I, a[0], false);
    else if (is_seq(a[0]))
        list = rt_retain(a[0]);
    else
        rt_error(I, "clip_grad_norm: net must be a model or a list of parameter tensors, got %s",
                 rt_type_name(a[0]));
    List *l = as_list(list);
    for (int i = 0; i < l->len; i++)
        if (!is_tensor(l->items[i])) {
            const char *what = rt_type_name(l->items[i]);
            rt_release(I, list);
            rt_error(I, "clip_grad_norm: parameter %d is %s, expected a tensor", i, what);
        }
    rt_realize_all(I);
    double sq = 0;
    for (int i = 0; i < l->len; i++) {
        Tensor *g = as_tensor(l->items[i])->grad;
        if (!g || g->dtype != TY_F32) continue;
        const float *gd = rt_data(I, g);
        int64_t k = shape_numel(&g->shape);
        for (int64_t j = 0; j < k; j++) sq += (double)gd[j] * gd[j];
    }
    double total = sqrt(sq);
    if (total > max_norm) {
        float coef = (float)(max_norm / (total + 1e-6));
        for (int i = 0; i < l->len; i++) {
            Tensor *g = as_tensor(l->items[i])->grad;
            if (!g || g->dtype != TY_F32) continue;
            const float *gd = rt_data(I, g);
            int64_t k = shape_numel(&g->shape);
            Tensor *c = rt_tensor_uninit(I, TY_F32, g->shape);
            float *cd = rt_data(I, c);
            for (int64_t j = 0; j < k; j++) cd[j] = gd[j] * coef;
            /* in place: the grad keeps its identity (aliases see the change) */
            rt_tensor_set(I, g, vtensor(c), "clip_grad_norm");
            rt_release(I, vtensor(c));
        }
    }
    rt_release(I, list);
    return vfloat(total);
}

/* cosine_lr(step, base_lr, warmup, total, min_lr=0.0): linear warm-up from 0
 * (base_lr * step / warmup for step < warmup), then a half cosine from base_lr
 * at step = warmup down to min_lr at step = total, min_lr after. */
BUILTIN(bi_cosine_lr) {
    static const char *const names[] = {"step", "base_lr", "warmup", "total", "min_lr", NULL};
    Value a[5];
    BIND("cosine_lr", names, 4, a);
    int64_t step = lib_int(I, a[0], 0, "cosine_lr", "step");
    double base = lib_float(I, a[1], 0, "cosine_lr", "base_lr");
    int64_t warmup = lib_int(I, a[2], 0, "cosine_lr", "warmup");
    int64_t total = lib_int(I, a[3], 0, "cosine_lr", "total");
    double min_lr = lib_float(I, a[4], 0.0, "cosine_lr", "min_lr");
    if (step < 0) rt_error(I, "cosine_lr: step must be >= 0, got %lld", (long long)step);
    if (warmup < 0) rt_error(I, "cosine_lr: warmup must be >= 0, got %lld", (long long)warmup);
    if (total < warmup)
        rt_error(I, "cosine_lr: total (%lld) must be >= warmup (%lld)", (long long)total,
                 (long long)warmup);
    if (step < warmup) return vfloat(base * (double)step / (double)warmup);
    if (step >= total) return vfloat(min_lr);
    double ratio = (double)(step - warmup) / (double)(total - warmup);
    return vfloat(min_lr + 0.5 * (1 + cos(M_PI * ratio)) * (base - min_lr));
}

/* set_lr(opt, lr): the same as opt.set_lr(lr), as a function. */
BUILTIN(bi_set_lr) {
    static const char *const names[] = {"opt", "lr", NULL};
    Value a[2];
    BIND("set_lr", names, 2, a);
    if (a[0].kind != V_NATIVE || strcmp(((Native *)a[0].o)->cls->name, "optimizer") != 0)
        rt_error(I, "set_lr: opt must be an optimizer (SGD, Adam, AdamW), got %s",
                 rt_type_name(a[0]));
    Value m = rt_member(I, a[0], "set_lr");
    Value r = rt_call(I, m, &a[1], 1, NULL, NULL, 0);
    rt_release(I, m);
    return r;
}

void lib_register_lm(Interp *I) {
    static const struct {
        const char *name;
        BuiltinFn fn;
    } table[] = {
        {"windows", bi_windows},
        {"clip_grad_norm", bi_clip_grad_norm},
        {"cosine_lr", bi_cosine_lr},
        {"set_lr", bi_set_lr},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        rt_define_global(I, table[i].name, rt_builtin(I, table[i].name, table[i].fn, VNONE));
    lib_register_generate(I); /* builtins_generate.c */
}
