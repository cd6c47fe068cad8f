/* test_objcache.c - the on-disk object-code cache (compiler/objcache.c) and
 * the GEMM kernels linked from it (gemm_jit_build, first a miss, then a hit).
 *
 * Every test points TT_CACHE_DIR (or HOME / XDG_CACHE_HOME) at a mkdtemp
 * directory of its own and removes it afterwards: no test writes into the
 * user's home. Criterion runs each test in its own process, so the
 * environment changes do not leak from one test to the next.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stderr_capture.h"
#include "gemm_internal.h"
#include "objcache.h"

static char tmp[64];

static int cache_files(void);

/* rm -r for the shallow trees these tests make */
static void rm_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st)) return;
    if (S_ISDIR(st.st_mode)) {
        chmod(path, 0700);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
        cr_assert_eq(system(cmd), 0);
    } else {
        unlink(path);
    }
}

static void setup(void) {
    strcpy(tmp, "/tmp/tt_objcache_XXXXXX");
    cr_assert(mkdtemp(tmp), "mkdtemp");
    setenv("TT_CACHE_DIR", tmp, 1);
    unsetenv("TT_CACHE_DEBUG");
}

static void teardown(void) {
    rm_tree(tmp);
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 31 + (i >> 8));
}

/* Stores a 1000-byte entry for key and returns its file's size. */
static long store_one(const char *key, unsigned seed) {
    unsigned char buf[1000];
    fill(buf, sizeof buf, seed);
    cr_assert(objcache_store(key, buf, sizeof buf));
    char path[512];
    cr_assert(objcache_path(key, path, sizeof path));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    return (long)st.st_size;
}

/* Whether key is a hit at all, whatever its bytes. */
static bool hit(const char *key) {
    void *got;
    size_t len;
    bool h = objcache_load(key, &got, &len);
    if (!h) {
        cr_assert_null(got, "a miss hands out nothing");
        cr_assert_eq(len, 0);
    }
    free(got);
    return h;
}

/* Whether key loads and holds store_one's bytes for seed. */
static bool loads_as(const char *key, unsigned seed) {
    unsigned char want[1000];
    fill(want, sizeof want, seed);
    void *got;
    size_t len;
    if (!hit(key)) return false;
    cr_assert(objcache_load(key, &got, &len));
    bool same = len == sizeof want && !memcmp(got, want, len);
    free(got);
    return same;
}

/* Overwrites n bytes at off (negative: from the end) of key's file. */
static void poke(const char *key, long off, const void *bytes, size_t n) {
    char path[512];
    cr_assert(objcache_path(key, path, sizeof path));
    int fd = open(path, O_WRONLY);
    cr_assert(fd >= 0);
    if (off < 0) off += lseek(fd, 0, SEEK_END);
    cr_assert_eq(pwrite(fd, bytes, n, off), (ssize_t)n);
    close(fd);
}

static void truncate_to(const char *key, long size) {
    char path[512];
    cr_assert(objcache_path(key, path, sizeof path));
    cr_assert_eq(truncate(path, size), 0);
}

TestSuite(objcache, .init = setup, .fini = teardown);

Test(objcache, round_trip) {
    store_one("llvm=19 cpu=x ir=1", 7);
    cr_expect(loads_as("llvm=19 cpu=x ir=1", 7));
    /* replacing an entry */
    store_one("llvm=19 cpu=x ir=1", 8);
    cr_expect(loads_as("llvm=19 cpu=x ir=1", 8));
    /* an empty payload is an entry too */
    cr_assert(objcache_store("empty", "", 0));
    void *p;
    size_t n = 99;
    cr_assert(objcache_load("empty", &p, &n));
    cr_expect_eq(n, 0);
    free(p);
}

Test(objcache, keys_are_separate) {
    store_one("a", 1);
    store_one("b", 2);
    cr_expect(loads_as("a", 1));
    cr_expect(loads_as("b", 2));
    cr_expect(!hit("c"), "a missing key is a miss");
}

Test(objcache, file_named_by_key_hash) {
    char path[512], want[512];
    cr_assert(objcache_path("k", path, sizeof path));
    snprintf(want, sizeof want, "%s/%016llx.ttobj", tmp, (unsigned long long)objcache_hash("k", 1));
    cr_expect_str_eq(path, want);
}

Test(objcache, flipped_payload_byte_rejected_then_rewritten) {
    store_one("k", 3);
    unsigned char c = 0x5a;
    poke("k", -17, &c, 1);
    cr_expect(!hit("k"));
    store_one("k", 3);
    cr_expect(loads_as("k", 3));
}

Test(objcache, flipped_key_byte_rejected) {
    store_one("some key", 3);
    poke("some key", 32 + 2, "X", 1); /* inside the stored key */
    cr_expect(!hit("some key"));
}

Test(objcache, truncated_file_rejected_then_rewritten) {
    long size = store_one("k", 4);
    const long cuts[] = {size - 1, 40, 31, 8, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        truncate_to("k", cuts[i]);
        cr_expect(!hit("k"), "truncated to %ld bytes", cuts[i]);
        store_one("k", 4);
        cr_expect(loads_as("k", 4));
    }
}

Test(objcache, appended_bytes_rejected) {
    long size = store_one("k", 5);
    poke("k", size, "zz", 2);
    cr_expect(!hit("k"));
}

Test(objcache, garbage_header_rejected_then_rewritten) {
    store_one("k", 6);
    unsigned char junk[32];
    for (int i = 0; i < 32; i++) junk[i] = (unsigned char)(i * 97 + 13);
    poke("k", 0, junk, sizeof junk);
    cr_expect(!hit("k"));
    /* a huge payload length must be refused before anything is allocated */
    store_one("k", 6);
    unsigned char big[8] = {0, 0, 0, 0, 0, 0, 0, 0x7f};
    poke("k", 16, big, sizeof big);
    cr_expect(!hit("k"));
    /* another format version */
    store_one("k", 6);
    poke("k", 8, "\x02", 1);
    cr_expect(!hit("k"));
    store_one("k", 6);
    cr_expect(loads_as("k", 6));
}

Test(objcache, colliding_file_is_a_miss) {
    /* a file at k's name holding another key's entry, as a hash collision
     * would leave it */
    char pa[512], pb[512];
    store_one("other key", 9);
    cr_assert(objcache_path("k", pa, sizeof pa));
    cr_assert(objcache_path("other key", pb, sizeof pb));
    cr_assert_eq(rename(pb, pa), 0);
    cr_expect(!hit("k"));
    store_one("k", 9);
    cr_expect(loads_as("k", 9));
}

Test(objcache, directory_in_the_way_is_a_miss) {
    char path[512];
    cr_assert(objcache_path("k", path, sizeof path));
    cr_assert_eq(mkdir(path, 0700), 0);
    cr_expect(!hit("k"));
}

Test(objcache, off_disables) {
    setenv("TT_CACHE_DIR", "off", 1);
    char path[512];
    cr_expect(!objcache_path("k", path, sizeof path));
    cr_expect(!objcache_store("k", "x", 1));
    cr_expect(!hit("k"));
    cr_expect(access("off", F_OK) != 0, "no directory named off");
}

Test(objcache, unwritable_dir_degrades) {
    /* a path below a regular file can never be created, even by root */
    char file[128], dir[160];
    snprintf(file, sizeof file, "%s/plain", tmp);
    FILE *f = fopen(file, "w");
    cr_assert(f);
    fclose(f);
    snprintf(dir, sizeof dir, "%s/sub/cache", file);
    setenv("TT_CACHE_DIR", dir, 1);
    cr_expect(!objcache_store("k", "x", 1));
    cr_expect(!hit("k"));
    /* a read-only directory (root writes there anyway) */
    snprintf(dir, sizeof dir, "%s/ro", tmp);
    cr_assert_eq(mkdir(dir, 0500), 0);
    setenv("TT_CACHE_DIR", dir, 1);
    bool stored = objcache_store("k", "x", 1);
    if (geteuid() != 0) cr_expect(!stored);
    cr_expect(!hit("k") || geteuid() == 0);
}

Test(objcache, no_home_no_cache) {
    unsetenv("TT_CACHE_DIR");
    unsetenv("XDG_CACHE_HOME");
    unsetenv("HOME");
    char path[512];
    cr_expect(!objcache_path("k", path, sizeof path));
    cr_expect(!objcache_store("k", "x", 1));
    cr_expect(!hit("k"));
}

Test(objcache, xdg_and_home_locations) {
    char want[256], path[512];
    unsetenv("TT_CACHE_DIR");
    char xdg[128];
    snprintf(xdg, sizeof xdg, "%s/x/y", tmp);
    setenv("XDG_CACHE_HOME", xdg, 1);
    cr_assert(objcache_path("k", path, sizeof path));
    snprintf(want, sizeof want, "%s/tt/", xdg);
    cr_expect(!strncmp(path, want, strlen(want)), "%s", path);
    store_one("k", 1); /* creates x/y/tt */
    cr_expect(loads_as("k", 1));

    /* a relative XDG_CACHE_HOME is ignored (XDG spec): HOME decides */
    setenv("XDG_CACHE_HOME", "relative", 1);
    char home[128];
    snprintf(home, sizeof home, "%s/home", tmp);
    setenv("HOME", home, 1);
    cr_assert(objcache_path("k", path, sizeof path));
    snprintf(want, sizeof want, "%s/.cache/tt/", home);
    cr_expect(!strncmp(path, want, strlen(want)), "%s", path);
    cr_expect(!hit("k"));
    store_one("k", 2);
    cr_expect(loads_as("k", 2));
}

/* ---- trust: who may have written the cache ---------------------------------- */

/* Runs with fd 2 sent to a file of tmp's (tu_stderr_begin); returns its
 * path for tu_stderr_end. */
static const char *stderr_of_begin(int *saved) {
    static char path[128];
    snprintf(path, sizeof path, "%s.stderr", tmp);
    *saved = tu_stderr_begin(path);
    return path;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static mode_t mode_of(const char *path) {
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0, "%s", path);
    return st.st_mode & 07777;
}

/* A directory others (or the group) can write is neither read nor written,
 * whatever its sticky bit says, and the process says so once. */
Test(objcache, untrusted_directory_is_ignored) {
    store_one("old", 1); /* an entry from when the directory was private */
    const mode_t modes[] = {0775, 0757, 0777, 01777, 0770};
    int saved;
    const char *errpath = stderr_of_begin(&saved);
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        cr_assert_eq(chmod(tmp, modes[i]), 0);
        cr_expect(!hit("old"), "mode %04o: an entry was loaded", (unsigned)modes[i]);
        cr_expect(!objcache_store("new", "x", 1), "mode %04o: stored", (unsigned)modes[i]);
        cr_expect_eq(cache_files(), 1, "mode %04o: something was written", (unsigned)modes[i]);
    }
    char *err = tu_stderr_end(saved, errpath);
    cr_expect_eq(count_lines(err), 1, "one warning line, got:\n%s", err);
    char want[256];
    snprintf(want, sizeof want,
             "tt: warning: ignoring the compiled-code cache %s: it is writable by its group "
             "(mode 0775); compiling in memory",
             tmp);
    cr_expect(!strncmp(err, want, strlen(want)), "got: %s", err);
    /* no temporary file was left either (the usage file is the old store's) */
    char cmd[160];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | grep -vx usage | wc -l) -eq 1", tmp);
    cr_expect_eq(system(cmd), 0, "files other than the old entry");
    /* chmod 700 is the fix */
    cr_assert_eq(chmod(tmp, 0700), 0);
    cr_expect(loads_as("old", 1));
    cr_expect(objcache_store("new", "x", 1));
}

/* The first warning names the first problem; a private directory warns
 * nothing at all. */
Test(objcache, others_writable_directory_warning) {
    cr_assert_eq(chmod(tmp, 01777), 0);
    int saved;
    const char *errpath = stderr_of_begin(&saved);
    cr_expect(!objcache_store("k", "x", 1));
    char *err = tu_stderr_end(saved, errpath);
    cr_expect(strstr(err, "it is writable by others (mode 1777); compiling in memory"), "%s", err);
    cr_expect_eq(count_lines(err), 1, "%s", err);

    cr_assert_eq(chmod(tmp, 0700), 0);
    errpath = stderr_of_begin(&saved);
    store_one("k", 1);
    cr_expect(loads_as("k", 1));
    err = tu_stderr_end(saved, errpath);
    cr_expect_str_empty(err);
}

/* What the cache creates is private: directories 0700, entries 0600. */
Test(objcache, creates_private_files) {
    umask(022);
    char dir[128], sub[140], path[512];
    snprintf(dir, sizeof dir, "%s/a/b", tmp);
    setenv("TT_CACHE_DIR", dir, 1);
    store_one("k", 1);
    snprintf(sub, sizeof sub, "%s/a", tmp);
    cr_expect_eq(mode_of(sub), 0700, "%o", (unsigned)mode_of(sub));
    cr_expect_eq(mode_of(dir), 0700, "%o", (unsigned)mode_of(dir));
    cr_assert(objcache_path("k", path, sizeof path));
    cr_expect_eq(mode_of(path), 0600, "%o", (unsigned)mode_of(path));
    cr_expect(loads_as("k", 1));
}

/* An entry the group or others could have written is a miss, and the next
 * store replaces it with a private one. Mode 0600 and 0400 entries of
 * ours are used. */
Test(objcache, untrusted_entry_is_a_miss) {
    char path[512];
    store_one("k", 2);
    cr_assert(objcache_path("k", path, sizeof path));
    cr_expect(loads_as("k", 2), "a 0600 entry of ours is used");
    cr_assert_eq(chmod(path, 0400), 0);
    cr_expect(loads_as("k", 2), "so is a 0400 one");
    const mode_t bad[] = {0620, 0660, 0602, 0666};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(chmod(path, bad[i]), 0);
        cr_expect(!hit("k"), "mode %04o: used", (unsigned)bad[i]);
    }
    store_one("k", 3);
    cr_expect_eq(mode_of(path), 0600);
    cr_expect(loads_as("k", 3));
}

/* A link at an entry's name is not followed, even to a good entry of ours;
 * a store replaces the link, never what it points to. */
Test(objcache, symlinked_entry_is_not_followed) {
    char path[512], real[160];
    store_one("k", 4);
    cr_assert(objcache_path("k", path, sizeof path));
    snprintf(real, sizeof real, "%s/real", tmp);
    cr_assert_eq(rename(path, real), 0);
    cr_assert_eq(symlink(real, path), 0);
    cr_expect(!hit("k"), "the link was followed");
    store_one("k", 5);
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);
    cr_expect(S_ISREG(st.st_mode), "the link is still there");
    cr_expect(loads_as("k", 5));
    /* the file the link pointed to still holds seed 4's entry */
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(rename(real, path), 0);
    cr_expect(loads_as("k", 4), "the store wrote through the link");
}

/* A FIFO at an entry's name is a miss, not a hang (nothing would write). */
Test(objcache, fifo_entry_is_a_miss, .timeout = 10) {
    char path[512];
    cr_assert(objcache_path("k", path, sizeof path));
    cr_assert_eq(mkfifo(path, 0600), 0);
    cr_expect(!hit("k"));
    store_one("k", 6);
    cr_expect(loads_as("k", 6));
}

/* Another user's directory or entry (root can make one with chown). */
Test(objcache, other_owner_is_not_trusted) {
    if (geteuid() != 0) cr_skip_test("needs root to give a file to another user");
    char path[512];
    store_one("k", 7);
    cr_assert(objcache_path("k", path, sizeof path));
    cr_assert_eq(chown(path, 65534, 65534), 0);
    cr_expect(!hit("k"), "another user's entry was used");
    store_one("k", 7);
    cr_expect(loads_as("k", 7), "and the store replaced it");

    cr_assert_eq(chown(tmp, 65534, 65534), 0);
    int saved;
    const char *errpath = stderr_of_begin(&saved);
    cr_expect(!hit("k"), "an entry in another user's directory was used");
    cr_expect(!objcache_store("k2", "x", 1));
    char *err = tu_stderr_end(saved, errpath);
    cr_expect(strstr(err, ": it is owned by uid 65534, not by you (uid 0); compiling in memory"),
              "%s", err);
    cr_expect_eq(count_lines(err), 1, "%s", err);
    cr_expect_eq(cache_files(), 1);
}

/* ---- the GEMM kernels through the cache ------------------------------------ */

enum { M = 4, N = 29, K = 37, PS = 40 }; /* PS: panel stride, K rounded up to 8 */

/* Runs the packers, the 4-row micro-kernels (both layouts of A; every tile
 * has that variant) and a GEMV kernel on fixed data; out gets 4 products of
 * M x N. */
static void run_kernels(const GemmKernels *k, float *out) {
    float a[M * K], at[K * M], b[K * N], bt[N * K];
    for (int i = 0; i < M * K; i++) a[i] = (float)((i * 7) % 11) - 5.0f;
    for (int i = 0; i < M; i++)
        for (int p = 0; p < K; p++) at[p * M + i] = a[i * K + p];
    for (int i = 0; i < K * N; i++) b[i] = (float)((i * 5) % 13) * 0.25f - 1.5f;
    for (int p = 0; p < K; p++)
        for (int j = 0; j < N; j++) bt[j * K + p] = b[p * N + j];
    const int nr = k->wide.tile.nr; /* N spans two panels of 16, one of 32 */
    float *panels = aligned_alloc(64, 2 * PS * 16 * sizeof(float));
    cr_assert(panels);
    memset(out, 0, 4 * M * N * sizeof(float));
    for (int t = 0; t < 2; t++) {
        if (t)
            k->wide.pack_t(K, N, bt, K, panels, PS);
        else
            k->wide.pack_n(K, N, b, N, panels, PS);
        float *c = out + t * M * N;
        for (int q = 0; q * nr < N; q++)
            k->wide.ukr_row[M - 1](K, a, K, panels + q * PS * nr, nr, c + q * nr, N, N - q * nr, 0);
        float *cc = out + 2 * M * N;
        if (t) /* the column variant, accumulating onto zeros */
            for (int q = 0; q * nr < N; q++)
                k->wide.ukr_col[M - 1](K, at, M, panels + q * PS * nr, nr, cc + q * nr, N,
                                       N - q * nr, 1);
    }
    float *cv = out + 3 * M * N;
    for (int i = 0; i < M; i += 2) k->gemv_n[1](K, a + i * K, K, 1, b, N, cv + i * N, N, N, 0, 0);
    free(panels);
}

static GemmJit *build(GemmKernels *k) {
    char *ir, err[256] = "";
    GemmJit *j = gemm_jit_build(k, 0, GEMM_FAM_ALL, &ir, err, sizeof err);
    cr_assert(j, "gemm_jit_build: %s", err);
    cr_assert(ir && strstr(ir, "tt_gemm_ukr_row4"));
    free(ir);
    return j;
}

static int cache_files(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c '\\.ttobj$'", tmp);
    FILE *p = popen(cmd, "r");
    int n = -1;
    cr_assert(p && fscanf(p, "%d", &n) == 1);
    pclose(p);
    return n;
}

Test(objcache, gemm_kernels_from_the_cache, .timeout = 120) {
    static float fresh[4 * M * N], cached[4 * M * N];
    GemmKernels k1 = {0}, k2 = {0};
    GemmJit *j1 = build(&k1);
    cr_expect(!gemm_jit_from_cache(j1), "an empty cache is a miss");
    cr_expect_eq(cache_files(), 1, "the miss stores the object");
    run_kernels(&k1, fresh);

    GemmJit *j2 = build(&k2);
    cr_expect(gemm_jit_from_cache(j2), "the second build links the cached object");
    run_kernels(&k2, cached);
    cr_expect(!memcmp(fresh, cached, sizeof fresh), "same machine code, same bits");

    /* and both are right: the inputs are small integers and quarters, so
     * every sum is exact in float */
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int p = 0; p < K; p++)
                    s += (double)((float)(((i * K + p) * 7) % 11) - 5.0f) *
                         (double)((float)(((p * N + j) * 5) % 13) * 0.25f - 1.5f);
                cr_assert_eq(cached[(t * M + i) * N + j], (float)s, "product %d C[%d,%d]", t, i, j);
            }
    gemm_jit_free(j1);
    gemm_jit_free(j2);

    /* a damaged entry is compiled afresh and replaced */
    char cmd[160];
    snprintf(cmd, sizeof cmd,
             "for f in '%s'/*.ttobj; do printf X | dd of=\"$f\" bs=1 seek=2000 "
             "conv=notrunc status=none; done",
             tmp);
    cr_assert_eq(system(cmd), 0);
    GemmKernels k3 = {0}, k4 = {0};
    GemmJit *j3 = build(&k3);
    cr_expect(!gemm_jit_from_cache(j3), "a corrupt entry is a miss");
    GemmJit *j4 = build(&k4);
    cr_expect(gemm_jit_from_cache(j4), "and was rewritten");
    run_kernels(&k4, cached);
    cr_expect(!memcmp(fresh, cached, sizeof fresh));
    gemm_jit_free(j3);
    gemm_jit_free(j4);
}

Test(objcache, gemm_without_cache, .timeout = 120) {
    setenv("TT_CACHE_DIR", "off", 1);
    GemmKernels k = {0};
    GemmJit *j = build(&k);
    cr_expect(!gemm_jit_from_cache(j));
    static float out[4 * M * N];
    run_kernels(&k, out);
    cr_expect_eq(out[0], out[M * N], "packers agree");
    gemm_jit_free(j);
}
