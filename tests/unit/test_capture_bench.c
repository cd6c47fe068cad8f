/* test_capture_bench.c - captured calls under bench() in training mode
 * (runtime/graph/capture.c, spec/jit.md "Captured calls"): bench() drops
 * its fn's results, so a forward returning lazy tensors made from
 * parameters is recorded and replayed there even in training mode; the
 * same call outside bench() (its result may be backpropagated) must not
 * replay that record, and keeps its graph. */
#include "capture.h"
#include "interp_fixture.h"

static const char SCRIPT[] = "model Net {\n"
                             "    fc1 = Linear(8, 16)\n"
                             "    fc2 = Linear(16, 4)\n"
                             "    forward(x) { return fc2(relu(fc1(x))) }\n"
                             "}\n"
                             "let net = Net()\n"
                             "let x = randn([3, 8], seed=1)\n"
                             "fn predict() { return net(x) }\n";

/* f() from the host, as bench() calls it when under_bench */
static Value call(Value f, bool under_bench) {
    I->cap.bench = under_bench;
    Value v = rt_call(I, f, NULL, 0, NULL, NULL, 0);
    I->cap.bench = false;
    return v;
}

Test(capture_bench, training_mode_record_replays_only_under_bench) {
    fixture_open();
    rt_set_backend(I, "jit");
    cr_assert_eq(fixture_run(SCRIPT), 0, "%s", fixture_diags());
    Value f = fixture_global("predict");
    float first[12];
    for (int i = 0; i < 5; i++) {
        Value v = call(f, true);
        rt_realize_all(I);
        const Tensor *t = (const Tensor *)v.o;
        cr_assert(t->buf);
        if (i == 0) memcpy(first, t->buf->data, sizeof first);
        cr_expect(memcmp(first, t->buf->data, sizeof first) == 0, "call %d: other values", i);
        rt_release(I, v);
    }
    RtCaptureStats s = rt_capture_stats(I);
    cr_expect_geq(s.hits, 2, "under bench(): %lld replays", (long long)s.hits);
    Value v = call(f, false);
    RtCaptureStats s2 = rt_capture_stats(I);
    cr_expect_eq(s2.hits, s.hits, "a record made under bench() replayed outside it");
    cr_expect_null(((const Tensor *)v.o)->buf,
                   "outside bench(): the result is not lazy (no graph)");
    rt_realize_all(I);
    cr_expect(memcmp(first, ((const Tensor *)v.o)->buf->data, sizeof first) == 0);
    rt_release(I, v);
    fixture_close();
}
