/* test_bufalloc.c - the free-buffer cache of large tensor data
 * (runtime/core/bufalloc.c): a freed large buffer is handed to the next
 * request of its size, within the cache's bounds, and only buffers that
 * rt_data_alloc made enter it. Criterion runs each test in its own process,
 * so each starts with an empty cache. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bufalloc.h"
#include "interp_fixture.h"

#define MIB ((size_t)1 << 20)

Test(bufalloc, freed_large_buffer_is_reused_by_same_size) {
    float *p = rt_data_alloc(4 * MIB);
    cr_assert(p);
    cr_expect_eq((uintptr_t)p % RT_HUGE_MIN, 0, "a large buffer is 2 MiB aligned");
    p[0] = 1.0f;
    p[4 * MIB / sizeof *p - 1] = 2.0f;
    rt_data_free(p, 4 * MIB);
    cr_expect_eq(rt_data_cached(), 4 * MIB);
    /* same huge-page size class (rounded up to 2 MiB): the same memory */
    float *q = rt_data_alloc(4 * MIB - 64);
    cr_expect_eq(q, p);
    cr_expect_eq(rt_data_cached(), 0);
    rt_data_free(q, 4 * MIB - 64);
    /* another size class does not take it */
    float *r = rt_data_alloc(6 * MIB);
    cr_expect_neq(r, p);
    cr_expect_eq(rt_data_cached(), 4 * MIB);
    rt_data_free(r, 6 * MIB);
    cr_expect_eq(rt_data_cached(), 10 * MIB);
    rt_data_cache_drain();
    cr_expect_eq(rt_data_cached(), 0);
    /* below huge pages but from RT_CACHE_MIN: by whole 4 KiB pages */
    void *m = rt_data_alloc(RT_CACHE_MIN + 64);
    cr_expect_eq((uintptr_t)m % 64, 0);
    rt_data_free(m, RT_CACHE_MIN + 64);
    cr_expect_eq(rt_data_cached(), RT_CACHE_MIN + 4096);
    void *m2 = rt_data_alloc(RT_CACHE_MIN + 4096);
    cr_expect_eq(m2, m);
    rt_data_free(m2, RT_CACHE_MIN + 4096);
    rt_data_cache_drain();
}

Test(bufalloc, cache_is_bounded_and_keeps_the_newest) {
    /* slots: more 2 MiB buffers than slots keep RT_CACHE_SLOTS of them */
    void *p[RT_CACHE_SLOTS + 4];
    int n = RT_CACHE_SLOTS + 4;
    for (int i = 0; i < n; i++) p[i] = rt_data_alloc(2 * MIB);
    for (int i = 0; i < n; i++) rt_data_free(p[i], 2 * MIB);
    cr_expect_eq(rt_data_cached(), RT_CACHE_SLOTS * 2 * MIB);
    /* the newest freed is the first handed out */
    void *q = rt_data_alloc(2 * MIB);
    cr_expect_eq(q, p[n - 1]);
    rt_data_free(q, 2 * MIB);
    rt_data_cache_drain();
    /* bytes: buffers of a quarter of the cap fill it with four */
    size_t big = RT_CACHE_BYTES / 4;
    for (int i = 0; i < 6; i++) p[i] = rt_data_alloc(big);
    for (int i = 0; i < 6; i++) rt_data_free(p[i], big);
    cr_expect_eq(rt_data_cached(), RT_CACHE_BYTES);
    rt_data_cache_drain();
    /* larger than the cap, or small: straight back to the C library */
    void *h = rt_data_alloc(RT_CACHE_BYTES + RT_HUGE_MIN);
    cr_assert(h);
    rt_data_free(h, RT_CACHE_BYTES + RT_HUGE_MIN);
    void *s = rt_data_alloc(64 * 1024);
    rt_data_free(s, 64 * 1024);
    cr_expect_eq(rt_data_cached(), 0);
}

/* Through the interpreter: a 1024x1024 result dropped each iteration goes
 * into the cache and the next iteration's takes it back (a script loop's
 * products), so the cache neither stays empty nor grows with the loop. */
Test(bufalloc, script_outputs_reuse_the_cache) {
    fixture_open();
    cr_assert_eq(fixture_run("let a = ones([1024, 1024])\nlet c = a * 2.0\nlet s = item(c[0, 0])"),
                 0);
    size_t before = rt_data_cached();
    cr_assert_eq(fixture_run("for i in range(8) {\n c = a * 2.0\n s = s + item(c[0, 0])\n}"), 0);
    size_t after = rt_data_cached();
    cr_expect_eq(fixture_run("c = 0\ns = 0"), 0);
    cr_expect_geq(rt_data_cached(), 4 * MIB, "a released output is kept for reuse");
    cr_expect_leq(after, before + 8 * MIB, "%zu cached after 8 iterations, %zu before", after,
                  before);
    fixture_close();
}

/* A loaded file's data (io_alloc_data, 64-byte aligned, taken over by the
 * tensor without a copy) is not the cache's: released, it goes back to the
 * C library (a 4 MiB IDX file's f32 data: 1 Mi u8 values). */
Test(bufalloc, loaded_data_is_not_cached) {
    fixture_open();
    char path[] = "/tmp/tt_test_bufalloc_XXXXXX.idx", src[256];
    int fd = mkstemps(path, 4);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    const unsigned char head[8] = {0, 0, 0x08, 1, 0x00, 0x10, 0x00, 0x00}; /* u8 [1 << 20] */
    fwrite(head, 1, sizeof head, f);
    for (int i = 0; i < 1 << 20; i++) fputc(i & 0xff, f);
    fclose(f);
    snprintf(src, sizeof src, "let x = load_idx(\"%s\")\nlet y = x.shape", path);
    cr_assert_eq(fixture_run(src), 0, "%s", fixture_diags());
    cr_expect_eq(fixture_run("x = 0"), 0);
    cr_expect_eq(rt_data_cached(), 0, "%zu bytes of a loaded file cached", rt_data_cached());
    unlink(path);
    fixture_close();
}
