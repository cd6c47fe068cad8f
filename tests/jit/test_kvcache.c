/* test_kvcache.c - generate() with the KV-cache pass (compiler/kvcache.c,
 * runtime/graph/kvdecode.c): cached and uncached generation give the same tokens
 * on both backends; decoding compiles a fixed number of graphs whatever the
 * prompt length and the number of tokens; the pass refuses what is not
 * position-wise (and generation still works, by recomputation); each step
 * writes row p of every cache in place, in the cache's own buffer, and a
 * position past ctx is an error. The model is the standard library's
 * TinyGPT (lang/std/30_transformer.tt).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "eval.h"
#include "jit.h"
#include "kvdecode.h"

static Interp *interp(const char *b) {
    setenv("TT_CACHE_DIR", "off", 1); /* counts never depend on an earlier run */
    Interp *I = rt_new_interp();
    rt_set_backend(I, b);
    return I;
}

static void run(Interp *I, const char *src) {
    int rc = rt_run_source(I, "<test>", src, strlen(src), false);
    cr_assert_eq(rc, 0, "program failed:\n%s", src);
}

static double global(Interp *I, const char *name) {
    Value *v = env_find_local(I->ev.globals, name);
    cr_assert(v, "no global '%s'", name);
    return rt_to_float(I, *v, name);
}

static int64_t compiles(Interp *I) {
    return rt_backend_stats(I).compiles;
}

/* Does the pass accept model `name`? why: its refusal. */
static bool cacheable(Interp *I, const char *name, int64_t ctx, char *why, size_t n) {
    Value *m = env_find_local(I->ev.globals, name);
    cr_assert(m, "no global '%s'", name);
    KvDecoder kd;
    jmp_buf jb;
    jmp_buf *saved = rt_set_on_error(I, &jb);
    bool ok = false;
    if (setjmp(jb) == 0) {
        ok = kv_decoder_init(I, *m, 1, ctx, &kd, why, n);
        if (ok) kv_decoder_free(&kd);
    } else {
        cr_assert_fail("kv_decoder_init raised an error");
    }
    rt_set_on_error(I, saved);
    return ok;
}

/* Sampled, greedy and top-k generation, batched too: the cache changes no
 * token. `diff` counts the tokens that differ. */
static const char *same_src =
    "let m = TinyGPT(17, 8, 2, 2, 16)\n"
    "let p = tensor([3, 1, 4, 1, 5], dtype=\"i32\")\n"
    "let a = generate(m, p, 5, seed=7)\n"
    "let b = generate(m, p, 5, seed=7, cache=false)\n"
    "let g = generate(m, p, 5, temperature=0)\n"
    "let h = generate(m, p, 5, temperature=0, cache=false)\n"
    "let pb = tensor([[3, 1, 4], [2, 7, 1]], dtype=\"i32\")\n"
    "let c = generate(m, pb, 3, temperature=0.7, top_k=5, seed=2)\n"
    "let e = generate(m, pb, 3, temperature=0.7, top_k=5, seed=2, cache=false)\n"
    "let diff = item(sum(cast(a != b, \"i32\"))) + item(sum(cast(g != h, \"i32\")))"
    " + item(sum(cast(c != e, \"i32\")))\n"
    "let n = numel(a) + numel(c)\n";

static void check_same(const char *be) {
    Interp *I = interp(be);
    run(I, same_src);
    char why[256];
    cr_expect(cacheable(I, "m", 16, why, sizeof why), "the pass refused: %s", why);
    cr_expect_eq(global(I, "n"), 10 + 2 * 6);
    cr_expect_eq(global(I, "diff"), 0, "%g tokens differ", global(I, "diff"));
    rt_free_interp(I);
}

Test(kvcache, cached_equals_uncached_naive) {
    check_same("naive");
}

Test(kvcache, cached_equals_uncached_jit) {
    check_same("jit");
}

/* The JIT compiles the same number of graphs for a short prompt and few
 * tokens as for a long prompt and many: the decode graph, once (the prompt
 * runs through it too; the traces at T = 2 and 3 are never compiled, nor
 * is sampling, which is no graph). A second generate, with another prompt
 * length, number of tokens and sampling, compiles nothing. */
static void decode_compiles(int prompt, int n, int64_t *first, int64_t *again) {
    Interp *I = interp("jit");
    run(I, "let m = TinyGPT(17, 8, 2, 2, 40)\nlet s = sum(m.head.b)\n");
    char src[256];
    snprintf(src, sizeof src,
             "let p = cast(arange(%d) %% 17, \"i32\")\nlet q = p[0:1]\nlet k = item(sum(p) + "
             "sum(q))\n",
             prompt);
    run(I, src); /* the prompts realized: only generate counts */
    snprintf(src, sizeof src, "let out = generate(m, p, %d, seed=1)\n", n);
    int64_t before = compiles(I);
    int nexec = I->lz.nexec;
    run(I, src);
    *first = compiles(I) - before;
    cr_expect_geq(I->lz.nexec - nexec, prompt + n - 1, "one graph run per position");
    snprintf(src, sizeof src, "let again = generate(m, q, %d, temperature=0)\n", n + 3);
    before = compiles(I);
    run(I, src);
    *again = compiles(I) - before;
    rt_free_interp(I);
}

Test(kvcache, decoding_compiles_a_fixed_number_of_graphs) {
    int64_t a, a2, b, b2;
    decode_compiles(3, 4, &a, &a2);
    decode_compiles(9, 30, &b, &b2);
    cr_expect_eq(a, 1, "%lld graphs compiled for 3 + 4 tokens, not 1", (long long)a);
    cr_expect_eq(b, 1, "%lld graphs compiled for 9 + 30 tokens, not 1", (long long)b);
    cr_expect_eq(a2 + b2, 0, "a second generate compiled %lld and %lld graphs", (long long)a2,
                 (long long)b2);
}

/* Attention written by hand has a [T, T] score matrix: the pass refuses,
 * saying which node, and generation recomputes with the same tokens. */
static const char *hand_src =
    "model HandLM(vocab: int, d: int, ctx: int) {\n"
    "    tok = Embedding(vocab, d)\n"
    "    head = Linear(d, vocab)\n"
    "    forward(idx: i32[B, T]) {\n"
    "        let x = tok(idx)\n"
    "        let att = x @ transpose(x, 1, 2)\n"
    "        let seen = unsqueeze(arange(T), 1) >= unsqueeze(arange(T), 0)\n"
    "        return head(softmax(where(seen, att, -1e30)) @ x)\n"
    "    }\n"
    "}\n"
    "model ScanLM(vocab: int, d: int, ctx: int) {\n"
    "    tok = Embedding(vocab, d)\n"
    "    head = Linear(d, vocab)\n"
    "    forward(idx: i32[B, T]) { return head(cumsum(tok(idx), axis=1)) }\n"
    "}\n"
    "let hm = HandLM(9, 8, 16)\n"
    "let sm = ScanLM(9, 8, 16)\n"
    "let p = tensor([1, 2], dtype=\"i32\")\n"
    "let diff = item(sum(cast(generate(hm, p, 6, seed=4) != generate(hm, p, 6, seed=4, "
    "cache=false), \"i32\"))) + item(sum(cast(generate(sm, p, 6, seed=4) != generate(sm, p, 6, "
    "seed=4, cache=false), \"i32\")))\n";

Test(kvcache, refuses_what_is_not_position_wise) {
    Interp *I = interp("naive");
    run(I, hand_src);
    char why[256];
    cr_expect_not(cacheable(I, "hm", 16, why, sizeof why));
    cr_expect(strstr(why, "= matmul") && strstr(why, "mixes positions"), "why: %s", why);
    cr_expect_not(cacheable(I, "sm", 16, why, sizeof why));
    cr_expect(strstr(why, "= cumsum") && strstr(why, "scans along the sequence"), "why: %s", why);
    cr_expect_eq(global(I, "diff"), 0);
    rt_free_interp(I);
}

/* The caches are updated in place: each cache output aliases its input
 * slot and is bound to the same buffer, which never changes across steps;
 * a step writes row p and nothing else (rows past p keep a NaN sentinel,
 * which attention must not read either: the logits stay finite); a
 * position past ctx is an error of the step, not a write out of bounds. */
static void check_in_place(const char *be) {
    Interp *I = interp(be);
    /* caches of 6 rows for a model of 16 positions: position 6 is the
     * caches' error, not the position embedding's */
    run(I, "let m = TinyGPT(17, 8, 2, 2, 16)\nlet s = sum(m.head.b)\n");
    Value *m = env_find_local(I->ev.globals, "m");
    cr_assert(m);
    KvDecoder kd;
    char why[256];
    cr_assert(kv_decoder_init(I, *m, 1, 6, &kd, why, sizeof why), "%s", why);
    const IrGraph *D = &kd.plan.D;
    cr_assert_eq(kd.plan.nlayers, 2);
    cr_assert_eq(D->nout, 1 + 2 * kd.plan.nlayers);
    float *bufs[4];
    int64_t numel[4];
    for (int s = 0; s < D->ninputs; s++) {
        const KvSlot *sl = &kd.plan.slots[s];
        if (sl->kind != KV_KCACHE && sl->kind != KV_VCACHE) continue;
        int c = 2 * sl->layer + (sl->kind == KV_VCACHE), j = 1 + c;
        cr_expect_eq(ir_output_alias(D, j), s, "output %d aliases slot %d", j, s);
        cr_expect(kd.in[s] == kd.out[j] && kd.in[s] == kd.cache[c]);
        bufs[c] = kd.cache[c];
        numel[c] = shape_numel(sl->kind == KV_KCACHE ? &kd.plan.kshape[sl->layer]
                                                     : &kd.plan.vshape[sl->layer]);
        for (int64_t i = 0; i < numel[c]; i++) bufs[c][i] = NAN;
    }
    /* [1, heads 2, ctx 6, 4]: row p of head h at (h * 6 + p) * 4 */
    for (int p = 0; p < 6; p++) {
        int32_t tok = (int32_t)(p * 5 % 17);
        kv_decoder_step(I, &kd, &tok, p);
        for (int64_t v = 0; v < 17; v++) cr_expect(isfinite(kd.logits[v]), "step %d", p);
        for (int c = 0; c < 4; c++) {
            cr_expect(kd.cache[c] == bufs[c], "step %d moved cache %d", p, c);
            for (int64_t i = 0; i < numel[c]; i++) {
                int64_t row = i / 4 % 6;
                cr_expect(row <= p ? !isnan(bufs[c][i]) : isnan(bufs[c][i]),
                          "step %d, cache %d, row %lld", p, c, (long long)row);
            }
        }
    }
    /* position 6 of a 6-row cache: the step fails at the call */
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    diag_set_stream(mem);
    jmp_buf jb;
    jmp_buf *saved = rt_set_on_error(I, &jb);
    volatile bool raised = false;
    if (setjmp(jb) == 0) {
        int32_t tok = 1;
        kv_decoder_step(I, &kd, &tok, 6);
    } else {
        raised = true;
    }
    rt_set_on_error(I, saved);
    diag_set_stream(stderr);
    fclose(mem);
    cr_expect(raised, "position 6 of a 6-row cache ran");
    cr_expect(text && strstr(text, "position 6 out of range: writing 1 row into 6"), "%s",
              text ? text : "");
    free(text);
    kv_decoder_free(&kd);
    rt_free_interp(I);
}

Test(kvcache, caches_updated_in_place_naive) {
    check_in_place("naive");
}

Test(kvcache, caches_updated_in_place_jit) {
    check_in_place("jit");
}
