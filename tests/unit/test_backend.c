/* test_backend.c - the backend interface (backend/backend.h): a third
 * backend registered here runs a script's graphs through it and nothing
 * else (so adding one is implementing the interface); the built-in ones
 * keep its error contract (an error with a message, never an abort) and
 * report their numbers in the shared structures.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "interp_fixture.h"
#include "kernels.h"

/* -- the built-in backends through the interface -- */

static IrGraph g;
static void g_init(void) {
    ir_init(&g);
}
static void g_fini(void) {
    ir_free(&g);
}

static int must(int id) {
    cr_assert(id >= 0, "builder failed: %s", g.err);
    return id;
}

/* -- "dummy": f32 add and mul of equal shapes, nothing else -- */

static int dummy_opened, dummy_closed, dummy_runs;

static void *dummy_open(const TtBackendConfig *cfg, char *err, size_t errlen) {
    dummy_opened++;
    return &dummy_runs;
}

static bool dummy_run(void *state, const TtBackendConfig *cfg, const IrGraph *g, int *entry,
                      void *const *in, void *const *out, RtProfile *prof, TtRunError *err) {
    int *runs = state;
    (*runs)++;
    float **val = calloc((size_t)g->n, sizeof *val);
    bool ok = true;
    for (int i = 0; i < g->n && ok; i++) {
        const IrNode *x = ir_node(g, i);
        int64_t n = shape_numel(&x->shape);
        if (x->dtype != TY_F32 || (x->op != OP_INPUT && x->op != OP_ADD && x->op != OP_MUL)) {
            snprintf(err->msg, sizeof err->msg, "dummy: %s is not supported", ir_ops[x->op].name);
            err->node = i;
            ok = false;
            break;
        }
        if (x->op == OP_INPUT) {
            val[i] = in[x->attr.index];
            continue;
        }
        const float *a = val[x->in[0]], *b = val[x->in[1]];
        if (shape_numel(&ir_node(g, x->in[0])->shape) != n ||
            shape_numel(&ir_node(g, x->in[1])->shape) != n) {
            snprintf(err->msg, sizeof err->msg, "dummy: broadcasting is not supported");
            err->node = i;
            ok = false;
            break;
        }
        val[i] = malloc((size_t)n * sizeof(float) + 1);
        for (int64_t k = 0; k < n; k++) val[i][k] = x->op == OP_ADD ? a[k] + b[k] : a[k] * b[k];
    }
    for (int j = 0; j < g->nout && ok; j++)
        memcpy(out[j], val[g->outputs[j]],
               (size_t)shape_numel(&ir_node(g, g->outputs[j])->shape) * sizeof(float));
    for (int i = 0; i < g->n; i++)
        if (val[i] && ir_node(g, i)->op != OP_INPUT) free(val[i]);
    free(val);
    return ok;
}

static void dummy_close(void *state) {
    dummy_closed++;
}

static const TtBackendOps dummy_ops = {
    .name = "dummy",
    .open = dummy_open,
    .run = dummy_run,
    .close = dummy_close,
};

static void with_dummy(void) {
    /* each test runs in a process of its own: register once there */
    if (!tt_backend_find("dummy", NULL)) cr_assert(tt_backend_register(&dummy_ops));
    fixture_open();
}

Test(backend, registry_names_the_builtins) {
    char names[128];
    cr_expect_str_eq(tt_backend_names(names, sizeof names), "naive or jit");
    int index = -1;
    cr_expect_eq(tt_backend_find("jit", &index), &tt_backend_jit);
    cr_expect_eq(tt_backend_at(index), &tt_backend_jit);
    cr_expect(tt_backend_jit.caps & TT_BACKEND_CAN_REPLAY);
    cr_expect(!(tt_backend_naive.caps & TT_BACKEND_CAN_REPLAY));
    cr_expect_null(tt_backend_find("gpu", NULL));
    cr_expect(!tt_backend_register(&tt_backend_naive), "a name is registered once");
}

/* The interpreter runs a script's graph on a backend it has never heard
 * of: picked by name, opened once, its result read back, its runs counted
 * and printed like any other's, closed with the interpreter. */
Test(backend, third_backend_runs_a_script, .init = with_dummy) {
    cr_assert_eq(fixture_run("backend(\"dummy\")\n"
                             "let name = backend()\n"
                             "let x = tensor([1.0, 2.0, 3.0])\n"
                             "let y = x * x + x\n"),
                 0, "%s", fixture_diags());
    rt_realize_all(I);
    cr_expect_str_eq(((Str *)fixture_global("name").o)->s, "dummy");
    Tensor *y = (Tensor *)fixture_global("y").o;
    cr_assert(y->buf);
    const float *d = y->buf->data;
    cr_expect(d[0] == 2 && d[1] == 6 && d[2] == 12, "y = %g %g %g", d[0], d[1], d[2]);
    cr_expect_eq(dummy_opened, 1);
    cr_expect_geq(dummy_runs, 1);
    TtBackendStats s = rt_backend_stats(I);
    cr_expect_eq(s.runs, dummy_runs, "tt_backend_run counts every backend's runs");
    cr_expect_eq(s.compiles, 0);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    rt_backends_print_profile(I, mem);
    fclose(mem);
    char want[64];
    snprintf(want, sizeof want, "dummy: %d graph runs in ", dummy_runs);
    cr_expect(strstr(text, want), "--profile printed: %s", text);
    free(text);
    fixture_close();
    cr_expect_eq(dummy_closed, 1);
    I = NULL;
}

/* The backend's error is the script's error, at the failing node's source. */
Test(backend, third_backend_error_is_reported_at_the_node, .init = with_dummy) {
    cr_assert_eq(fixture_run("backend(\"dummy\")\n"
                             "let x = tensor([1.0, 2.0, 3.0])\n"
                             "let s = sum(x * x)\n"
                             "print(s)\n"),
                 1);
    const char *d = fixture_diags();
    cr_expect(strstr(d, "dummy: sum is not supported"), "%s", d);
    cr_expect(strstr(d, "<test>:3:"), "not at the sum's line: %s", d);
    fixture_close();
    I = NULL;
}

/* An intermediate that cannot be allocated (2^47 bytes) is an error with a
 * message and its node, not an abort. */
Test(backend, naive_out_of_memory_is_an_error, .init = g_init, .fini = g_fini) {
    int x = must(ir_input(&g, TY_F32, shape_make(2, (int64_t[]){1, 1}), "x", SRCLOC_NONE));
    int b = must(ir_broadcast_to(&g, x, shape_make(2, (int64_t[]){1 << 23, 1 << 22}), SRCLOC_NONE));
    int s = must(ir_reduce(&g, OP_SUM, b, NULL, 0, false, SRCLOC_NONE));
    ir_mark_output(&g, s);
    TtBackendConfig cfg = {0};
    char err[256];
    TtBackend *be = tt_backend_open(&tt_backend_naive, &cfg, err, sizeof err);
    cr_assert(be, "%s", err);
    float xd = 1, so;
    TtRunError e;
    cr_expect(!tt_backend_run(be, &cfg, &g, NULL, (void *[]){&xd}, (void *[]){&so}, NULL, &e));
    cr_expect_eq(e.node, b);
    cr_expect_str_eq(e.msg,
                     "out of memory: the result f32[8388608, 4194304] of broadcast does not fit");
    cr_expect_eq(tt_backend_stats(be).runs, 1);
    tt_backend_close(be);
}

/* A graph that does not verify (here: a result's shape changed after it
 * was built) is reported, not aborted on, by both backends. */
Test(backend, unverified_graph_is_an_error, .init = g_init, .fini = g_fini) {
    int x = must(ir_input(&g, TY_F32, shape_make(1, (int64_t[]){4}), "x", SRCLOC_NONE));
    int y = must(ir_binary(&g, OP_ADD, x, x, SRCLOC_NONE));
    ir_mark_output(&g, y);
    g.nodes[y].shape = shape_make(1, (int64_t[]){5});
    float xd[4] = {1, 2, 3, 4}, yd[5];
    const TtBackendOps *all[] = {&tt_backend_naive, &tt_backend_jit};
    for (int k = 0; k < 2; k++) {
        TtBackendConfig cfg = {.threads = 1, .opt_level = 2};
        char err[256];
        TtBackend *be = tt_backend_open(all[k], &cfg, err, sizeof err);
        cr_assert(be, "%s", err);
        TtRunError e;
        cr_expect(!tt_backend_run(be, &cfg, &g, NULL, (void *[]){xd}, (void *[]){yd}, NULL, &e),
                  "%s ran a graph that does not verify", all[k]->name);
        cr_expect(e.msg[0], "%s: no message", all[k]->name);
        tt_backend_close(be);
    }
}

/* The JIT fills the shared structures: compiles and hits, flops per op,
 * kernel timers; a remembered entry (captured calls) skips the lookup. */
Test(backend, jit_reports_in_the_shared_structures, .init = g_init, .fini = g_fini) {
    setenv("TT_CACHE_DIR", "off", 1);
    int x = must(ir_input(&g, TY_F32, shape_make(1, (int64_t[]){4}), "x", SRCLOC_NONE));
    int y = must(ir_binary(&g, OP_MUL, x, x, SRCLOC_NONE));
    ir_mark_output(&g, y);
    TtBackendConfig cfg = {.threads = 1, .opt_level = 2, .profile = true};
    char err[256];
    TtBackend *be = tt_backend_open(&tt_backend_jit, &cfg, err, sizeof err);
    cr_assert(be, "%s", err);
    float xd[4] = {1, 2, 3, 4}, yd[4];
    RtProfile prof = {0};
    TtRunError e;
    int entry = -1;
    for (int r = 0; r < 3; r++)
        cr_assert(tt_backend_run(be, &cfg, &g, &entry, (void *[]){xd}, (void *[]){yd}, &prof, &e),
                  "%s", e.msg);
    cr_expect(yd[3] == 16);
    cr_expect_geq(entry, 0, "the entry is remembered");
    TtBackendStats s = tt_backend_stats(be);
    cr_expect_eq(s.runs, 3);
    cr_expect_eq(s.compiles, 1);
    cr_expect_eq(prof.flops[OP_MUL], 3 * 4);
    cr_expect_eq(prof.bytes[OP_MUL], 3 * 3 * 16); /* two operands read, one result */
    int n = tt_backend_kernels(be, NULL, 0);
    cr_assert_geq(n, 1);
    TtKernelProfile k[8];
    cr_expect_eq(tt_backend_kernels(be, k, 8), n);
    cr_expect_eq(k[0].runs, 3);
    tt_backend_close(be);
}
