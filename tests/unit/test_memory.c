/* test_memory.c - what the interpreter holds: an error releases what the
 * failing statement held (the cleanup stack, value.h), and the lazy graph
 * releases node data nothing reaches (lazy.c). Measured through the
 * allocator's counters: live objects and live tensor bytes. */
#include "interp_fixture.h"

static long live_objects(void) {
    long n = 0;
    for (const Obj *o = I->ev.objects; o; o = o->gc_next) n++;
    return n;
}

/* Statements that fail at run time while C frames hold temporaries: an
 * operand, a half-built list or record, an argument array (on the stack and
 * on the heap), a call's scope, a loop's iterable and scope, a half-built
 * model, a profile block's scope. */
static const char *const failing[] = {
    "let z = [0; 1000] + 1",
    "let t = ones([1000]) + \"s\"",
    "fn f1(a) { let big = ones([1000]); return a + \"x\" }\nf1(ones([10]))",
    "for x in [ones([1000]), 2] { let y = x + \"s\" }",
    "let r = (a=ones([1000]), b=[1] + 1)",
    "print(ones([1000]), [1] + 1)",
    "let q = [ones([1000]), [1] + 1]",
    "profile { let a = ones([1000])\n let b = a + \"s\" }",
    "model M1(n) { param w = ones([n])\n let k = w + \"s\" }\nlet m = M1(1000)",
    "fn g1(a, b, c, d, e, f, h, i, j) { return a + \"s\" }\n"
    "g1(ones([100]), 2, 3, 4, 5, 6, 7, 8, 9)",
    "let l = [1, 2]\nl[ones([2])] = 3",
    "let w = ones([1000])\nw.foo = 1",
    "let u = ones([10]) if [1] + 1 else 2",
};

Test(memory, failing_entries_release_what_they_held) {
    fixture_open();
    for (size_t k = 0; k < sizeof failing / sizeof *failing; k++) {
        cr_assert_eq(fixture_run(failing[k]), 1, "%s should fail", failing[k]);
        long objs = live_objects();
        size_t bytes = rt_mem_live();
        for (int rep = 0; rep < 50; rep++) fixture_run(failing[k]);
        cr_expect_eq(live_objects(), objs, "%s: %ld objects after 50 failures, %ld before",
                     failing[k], live_objects(), objs);
        cr_expect_eq(rt_mem_live(), bytes, "%s: %zu bytes of tensor data after, %zu before",
                     failing[k], rt_mem_live(), bytes);
    }
    fixture_close();
}

/* The REPL measurement, scaled down: 200 failing entries hold what
 * 200 succeeding ones hold (the old code kept every failing entry's list,
 * 1.6 MB each). */
Test(memory, failing_repl_entries_hold_what_succeeding_ones_hold) {
    fixture_open();
    fixture_run("let z = [0; 100000]");
    long objs = live_objects();
    for (int rep = 0; rep < 200; rep++)
        cr_assert_eq(rt_run_source(I, "<stdin>", "let z = [0; 100000]\n", 20, true), 0);
    long after_ok = live_objects();
    for (int rep = 0; rep < 200; rep++)
        cr_assert_eq(rt_run_source(I, "<stdin>", "let z = [0; 100000] + 1\n", 24, true), 1);
    cr_expect_eq(after_ok, objs);
    cr_expect_eq(live_objects(), after_ok, "%ld objects after 200 failing entries, %ld before",
                 live_objects(), after_ok);
    fixture_close();
}

Test(memory, failing_profile_block_turns_profiling_back_off) {
    fixture_open();
    cr_assert(!I->prof.on);
    cr_assert_eq(fixture_run("profile { let a = ones([4])\n let b = a + \"s\" }"), 1);
    cr_expect(!I->prof.on, "profiling is still on after a failing profile block");
    cr_assert_eq(fixture_run("let p = profile { let a = [1] + 1 }"), 1);
    cr_expect(!I->prof.on, "profiling is still on after a failing profile expression");
    /* nested: the outer block's state comes back, then the one before it */
    cr_assert_eq(fixture_run("profile { let x = 1\n profile { let y = [1] + 1 } }"), 1);
    cr_expect(!I->prof.on);
    /* --profile on: stays on */
    rt_set_profiling(I, true);
    cr_assert_eq(fixture_run("profile { let y = [1] + 1 }"), 1);
    cr_expect(I->prof.on, "--profile was turned off by a failing block");
    rt_set_profiling(I, false);
    /* a block after the failures still measures */
    cr_assert_eq(fixture_run("let p = profile { let a = item(sum(ones([8]) * 2)) }\n"
                             "let ok = p.ms >= 0"),
                 0);
    cr_expect(fixture_global("ok").b);
    fixture_close();
}

/* The loop: each iteration binds a fresh 400 KB tensor into the
 * graph; nothing reaches it once its item() is taken. The old graph kept
 * every one until its 8192-node reset (589 MB). */
Test(memory, lazy_graph_releases_what_nothing_reaches) {
    fixture_open();
    const size_t live = 100000 * sizeof(float);
    rt_mem_peak_reset();
    size_t before = rt_mem_live();
    cr_assert_eq(fixture_run("let s = 0.0\n"
                             "for i in 0..3000 {\n"
                             "  s = s + item(sum(ones([100000]) * 2))\n"
                             "}"),
                 0, "%s", fixture_diags());
    cr_expect_eq(fixture_global("s").f, 3000 * 200000.0);
    size_t peak = rt_mem_peak() - before;
    cr_expect_leq(peak, 8 * live, "peak %zu bytes held for %zu live", peak, live);
    fixture_close();
}

/* The data a live tensor's graph still reaches stays: backward after the
 * loss was realized (and node data swept) reads the temporaries below it. */
Test(memory, swept_graph_keeps_what_backward_needs) {
    fixture_open();
    cr_assert_eq(fixture_run("model M() { param w = zeros([300000]) }\n"
                             "let m = M()\n"
                             "let loss = sum(ones([300000]) * 3 * m.w)\n"
                             "for i in 0..8 { let junk = item(sum(ones([300000]))) }\n"
                             "let l = item(loss)\n"
                             "for i in 0..8 { let junk = item(sum(ones([300000]))) }\n"
                             "backward(loss)\n"
                             "let g = item(sum(m.w.grad))"),
                 0, "%s", fixture_diags());
    cr_expect_eq(fixture_global("l").f, 0.0);
    cr_expect_eq(fixture_global("g").f, 900000.0);
    fixture_close();
}
