/* env.c - scopes: name -> value tables chained to their parent.
 *
 * Small scopes (a loop body, a call) are searched linearly; big ones (the
 * globals, with every builtin) get an open-addressing index.
 */
#include "capture.h"
#include "eval.h"

#include <stdlib.h>
#include <string.h>

static uint32_t name_hash(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

Env *env_new(Interp *I, Env *parent) {
    Env *e = tt_xcalloc(1, sizeof(Env));
    e->refcount = 1;
    e->serial = rt_serial++;
    e->parent = parent ? env_retain(parent) : NULL;
    e->next = I->ev.envs;
    if (I->ev.envs) I->ev.envs->prev = e;
    I->ev.envs = e;
    return e;
}

Env *env_retain(Env *e) {
    e->refcount++;
    return e;
}

static void env_destroy(Env *e) {
    free(e->names);
    free(e->hashes);
    free(e->vals);
    free(e->index);
    free(e);
}

void env_release(Interp *I, Env *e) {
    while (e && !I->ev.freeing) {
        TT_ASSERT(e->refcount > 0);
        if (--e->refcount > 0) return;
        Env *parent = e->parent;
        if (e->prev)
            e->prev->next = e->next;
        else
            I->ev.envs = e->next;
        if (e->next) e->next->prev = e->prev;
        /* values may refer back to e (a closure stored in its own scope):
         * the count is already 0, so those releases stop here */
        e->refcount = 1 << 30;
        for (int i = 0; i < e->n; i++) rt_release(I, e->vals[i]);
        env_destroy(e);
        e = parent;
    }
}

void env_free_all(Interp *I) {
    for (Env *e = I->ev.envs, *next; e; e = next) {
        next = e->next;
        env_destroy(e);
    }
    I->ev.envs = NULL;
}

static void index_rebuild(Env *e) {
    int cap = 16;
    while (cap < 2 * e->n + 2) cap *= 2;
    free(e->index);
    e->index = tt_xcalloc((size_t)cap, sizeof *e->index);
    e->icap = cap;
    for (int i = 0; i < e->n; i++) {
        uint32_t j = e->hashes[i] & (uint32_t)(cap - 1);
        while (e->index[j]) j = (j + 1) & (uint32_t)(cap - 1);
        e->index[j] = i + 1;
    }
}

Value *env_find_local(Env *e, const char *name) {
    if (e->n == 0) return NULL;
    if (e->icap) {
        uint32_t h = name_hash(name);
        uint32_t j = h & (uint32_t)(e->icap - 1);
        while (e->index[j]) {
            int i = e->index[j] - 1;
            if (e->hashes[i] == h && strcmp(e->names[i], name) == 0) return &e->vals[i];
            j = (j + 1) & (uint32_t)(e->icap - 1);
        }
        return NULL;
    }
    for (int i = e->n - 1; i >= 0; i--)
        if (e->names[i] == name || strcmp(e->names[i], name) == 0) return &e->vals[i];
    return NULL;
}

void env_define(Interp *I, Env *e, const char *name, Value v) {
    Value *slot = env_find_local(e, name);
    if (slot) {
        Value old = *slot;
        *slot = v;
        rt_release(I, old);
        return;
    }
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 8;
        e->names = tt_xrealloc(e->names, (size_t)e->cap * sizeof *e->names);
        e->hashes = tt_xrealloc(e->hashes, (size_t)e->cap * sizeof *e->hashes);
        e->vals = tt_xrealloc(e->vals, (size_t)e->cap * sizeof *e->vals);
    }
    e->names[e->n] = rt_intern(I, name);
    e->hashes[e->n] = name_hash(name);
    e->vals[e->n] = v;
    e->n++;
    if (e->n > 12 && 2 * e->n + 2 > e->icap)
        index_rebuild(e);
    else if (e->icap) {
        uint32_t j = e->hashes[e->n - 1] & (uint32_t)(e->icap - 1);
        while (e->index[j]) j = (j + 1) & (uint32_t)(e->icap - 1);
        e->index[j] = e->n;
    }
}

void env_names(Env *e, const char ***out, int *n, int *cap) {
    for (; e; e = e->parent) {
        for (int i = 0; i < e->n; i++) TT_VEC_PUSH(*out, *n, *cap, e->names[i]);
        if (e->model)
            for (int i = 0; i < e->model->nfields; i++)
                TT_VEC_PUSH(*out, *n, *cap, e->model->field_names[i]);
    }
}
