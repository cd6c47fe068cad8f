/* test_jit_objcache.c - compiled graphs and the on-disk object cache when
 * an entry's checksum is right but its object does not link: the graph is
 * compiled afresh, runs correctly, and the entry is replaced (the next JIT
 * links it). Also: jit_run's errors say "jit:" once.
 *
 * Each test points TT_CACHE_DIR at a mkdtemp directory of its own; Criterion
 * runs each test in its own process.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stderr_capture.h"
#include "jit.h"
#include "objcache.h"

static const SrcLoc L0 = {0};
enum { N = 8 };

static char dir[64];

static void setup(void) {
    strcpy(dir, "/tmp/tt_jitobj_XXXXXX");
    cr_assert(mkdtemp(dir));
    setenv("TT_CACHE_DIR", dir, 1);
    unsetenv("TT_CACHE_DEBUG");
    unsetenv("TT_TEST_PROFILE");
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(jit_objcache, .init = setup, .fini = teardown);

/* Graph A: x*x + x; graph B: (x - 1) * x. Small integers: exact in float,
 * whatever the code generator contracts. */
static void build(IrGraph *g, bool b) {
    ir_init(g);
    int x = ir_input(g, TY_F32, (Shape){1, {N}}, NULL, L0);
    int y;
    if (b) {
        int one = ir_const(g, TY_F32, (Shape){0, {0}}, 1.0, L0);
        y = ir_binary(g, OP_MUL, ir_binary(g, OP_SUB, x, one, L0), x, L0);
    } else {
        y = ir_binary(g, OP_ADD, ir_binary(g, OP_MUL, x, x, L0), x, L0);
    }
    cr_assert(y >= 0, "%s", g->err);
    ir_mark_output(g, y);
}

/* Runs graph A or B on j and checks every element. */
static void run_check(Jit *j, bool b) {
    IrGraph g;
    build(&g, b);
    float x[N], out[N];
    for (int i = 0; i < N; i++) x[i] = (float)(i - 3);
    void *ins[1] = {x}, *outs[1] = {out};
    char err[512] = "";
    cr_assert(jit_run(j, &g, ins, outs, err, sizeof err), "graph %c: %s", b ? 'B' : 'A', err);
    for (int i = 0; i < N; i++) {
        float v = x[i], want = b ? (v - 1) * v : v * v + v;
        cr_assert_eq(out[i], want, "graph %c, element %d: %g, want %g", b ? 'B' : 'A', i, out[i],
                     want);
    }
    ir_free(&g);
}

/* Runs graph A or B on a fresh JIT; its stats. */
static JitStats run_fresh(bool b) {
    Jit *j = jit_new(2);
    cr_assert(j);
    jit_set_threads(j, 1);
    jit_set_profile(j, getenv("TT_TEST_PROFILE") != NULL);
    run_check(j, b);
    JitStats s = jit_stats(j);
    jit_free(j);
    return s;
}

/* The keys of the graph entries in the cache directory (malloc'd, n of
 * them, at most cap). */
static int graph_keys(char **keys, int cap) {
    DIR *d = opendir(dir);
    cr_assert(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 6, ".ttobj")) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        cr_assert(f);
        unsigned char h[32];
        cr_assert_eq(fread(h, 1, 32, f), 32);
        uint32_t klen = h[12] | h[13] << 8 | (uint32_t)h[14] << 16 | (uint32_t)h[15] << 24;
        char *key = calloc(1, klen + 1);
        cr_assert_eq(fread(key, 1, klen, f), klen);
        fclose(f);
        if (!strncmp(key, "tt-graph ", 9) && n < cap)
            keys[n++] = key;
        else
            free(key);
    }
    closedir(d);
    return n;
}

/* The one graph entry in the cache (A's, after run_fresh(false) alone). */
static char *only_graph_key(void) {
    char *keys[4];
    int n = graph_keys(keys, 4);
    cr_assert_eq(n, 1, "graph entries: %d", n);
    return keys[0];
}

/* Renames every reference to the symbol from in data (same length, so the
 * object stays well-formed): a function no one defines, as in an object
 * built against another tt. */
static void rename_symbol(void *data, size_t len, const char *from, const char *to) {
    size_t n = strlen(from);
    cr_assert_eq(strlen(to), n);
    int found = 0;
    for (char *p = data, *end = p + len; (p = memmem(p, (size_t)(end - p), from, n)); p += n) {
        memcpy(p, to, n);
        found++;
    }
    cr_assert(found > 0, "no %s in the object", from);
}

Test(jit_objcache, entry_that_is_not_an_object_is_replaced, .timeout = 60) {
    JitStats s = run_fresh(false);
    cr_expect_eq(s.disk_hits, 0);
    char *key = only_graph_key();
    cr_assert(objcache_store(key, "not an object file", 18));
    s = run_fresh(false);
    cr_expect_eq(s.disk_hits, 0, "a bad entry counted as a hit");
    cr_expect_eq(s.compiles, 1);
    s = run_fresh(false);
    cr_expect_eq(s.disk_hits, 1, "the bad entry was not replaced");
    free(key);
}

/* The object defines the graph's function, but linking it fails (an
 * unresolved symbol): the failed object must leave nothing behind, or the
 * fresh one's definition would clash with it, and ORC must print nothing. */
Test(jit_objcache, entry_with_unresolved_symbol_is_replaced, .timeout = 60) {
    /* profiled code calls tt_jit_tick, which the JIT defines */
    setenv("TT_TEST_PROFILE", "1", 1);
    run_fresh(false);
    char *key = only_graph_key();
    void *bytes;
    size_t len;
    cr_assert(objcache_load(key, &bytes, &len));
    rename_symbol(bytes, len, "tt_jit_tick", "tt_no_tick_");
    cr_assert(objcache_store(key, bytes, len));
    free(bytes);

    char path[128];
    snprintf(path, sizeof path, "%s.stderr", dir);
    int saved = tu_stderr_begin(path);
    JitStats s = run_fresh(false);
    char *err = tu_stderr_end(saved, path);
    cr_expect_eq(s.disk_hits, 0);
    cr_expect_eq(s.compiles, 1);
    cr_expect_str_empty(err, "a miss printed something: %s", err);
    s = run_fresh(false);
    cr_expect_eq(s.disk_hits, 1, "the bad entry was not replaced");
    free(key);
}

/* A's entry holds B's object (valid, but without A's function). Then, in
 * the same JIT, B links its own entry from disk: the failed attempt for A
 * left none of B's symbols behind. */
Test(jit_objcache, entry_of_another_graph_is_replaced, .timeout = 60) {
    run_fresh(false);
    char *key_a = only_graph_key();
    run_fresh(true);
    char *keys[4], *key_b = NULL;
    int n = graph_keys(keys, 4);
    cr_assert_eq(n, 2);
    for (int i = 0; i < n; i++) {
        if (strcmp(keys[i], key_a))
            key_b = keys[i];
        else
            free(keys[i]);
    }
    cr_assert(key_b);
    void *bytes;
    size_t len;
    cr_assert(objcache_load(key_b, &bytes, &len));
    cr_assert(objcache_store(key_a, bytes, len));
    free(bytes);

    Jit *j = jit_new(2);
    cr_assert(j);
    jit_set_threads(j, 1);
    run_check(j, false);
    cr_expect_eq(jit_stats(j).disk_hits, 0, "B's object passed for A's");
    run_check(j, true);
    cr_expect_eq(jit_stats(j).disk_hits, 1, "B did not come from its entry");
    jit_free(j);
    cr_expect_eq(run_fresh(false).disk_hits, 1, "A's entry was not replaced");
    free(key_a);
    free(key_b);
}
