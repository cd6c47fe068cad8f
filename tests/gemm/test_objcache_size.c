/* test_objcache_size.c - the compiled-code cache stays bounded
 * (compiler/objcache.h): TT_CACHE_MAX, least-recently-used eviction,
 * objcache_info and objcache_clear (ttrun --cache-info, --cache-clear).
 *
 * Each test has a mkdtemp directory of its own as TT_CACHE_DIR; Criterion
 * runs each test in its own process, so environment changes stay there.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "objcache.h"

static char tmp[64];

static void setup(void) {
    strcpy(tmp, "/tmp/tt_objcache_size_XXXXXX");
    cr_assert(mkdtemp(tmp), "mkdtemp");
    setenv("TT_CACHE_DIR", tmp, 1);
    unsetenv("TT_CACHE_DEBUG");
    unsetenv("TT_CACHE_MAX");
}

static void teardown(void) {
    chmod(tmp, 0700);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(objcache_size, .init = setup, .fini = teardown);

#define PAYLOAD 10000

static void store(const char *key) {
    static unsigned char buf[PAYLOAD];
    memset(buf, key[0], sizeof buf);
    cr_assert(objcache_store(key, buf, sizeof buf), "store %s", key);
}

static bool hit(const char *key) {
    void *p;
    size_t n;
    bool h = objcache_load(key, &p, &n);
    free(p);
    return h;
}

static bool exists(const char *key) {
    char path[512];
    cr_assert(objcache_path(key, path, sizeof path));
    return access(path, F_OK) == 0;
}

/* Sets key's entry's modification time to `ago` seconds in the past. */
static void age(const char *key, int ago) {
    char path[512];
    cr_assert(objcache_path(key, path, sizeof path));
    struct timespec t[2] = {{time(NULL) - ago, 0}, {time(NULL) - ago, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, path, t, 0), 0);
}

/* The bytes of the entry files in the directory (what the cap bounds). */
static long long entry_bytes(int *count) {
    ObjcacheInfo ci;
    objcache_info(&ci);
    cr_assert(ci.enabled && ci.trusted);
    if (count) *count = (int)ci.entries;
    return (long long)ci.bytes;
}

Test(objcache_size, cap_from_the_environment) {
    cr_expect_eq(objcache_max_bytes(), 536870912ull, "default: 512 MB");
    setenv("TT_CACHE_MAX", "100000", 1);
    cr_expect_eq(objcache_max_bytes(), 100000ull, "100 KB is honoured");
    setenv("TT_CACHE_MAX", "2000000", 1);
    cr_expect_eq(objcache_max_bytes(), 2000000ull);
    setenv("TT_CACHE_MAX", "200K", 1);
    cr_expect_eq(objcache_max_bytes(), 204800ull);
    setenv("TT_CACHE_MAX", "3M", 1);
    cr_expect_eq(objcache_max_bytes(), 3ull << 20);
    setenv("TT_CACHE_MAX", "1G", 1);
    cr_expect_eq(objcache_max_bytes(), 1ull << 30);
    /* smaller or malformed: the default (with one warning on stderr) */
    const char *bad[] = {
        "99999", "0", "-1", "abc", "12x", "1.5M", "", " 100000", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        setenv("TT_CACHE_MAX", bad[i], 1);
        cr_expect_eq(objcache_max_bytes(), 536870912ull, "TT_CACHE_MAX='%s'", bad[i]);
    }
}

Test(objcache_size, least_recently_used_evicted_first) {
    setenv("TT_CACHE_MAX", "100000", 1);
    const char *keys[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"};
    for (int i = 0; i < 8; i++) store(keys[i]);
    for (int i = 0; i < 8; i++) age(keys[i], 1000 - i); /* k0 the oldest */
    cr_assert(hit("k0"), "a hit makes k0 the most recently used");
    store("k8");
    store("k9"); /* now over 100000: the oldest go, down to 90% */
    int n;
    long long bytes = entry_bytes(&n);
    cr_expect_leq(bytes, 90000, "%lld bytes in %d entries", bytes, n);
    cr_expect(!exists("k1") && !exists("k2"), "the least recently used were evicted");
    cr_expect(hit("k0"), "the entry used recently stays");
    for (int i = 3; i < 8; i++) cr_expect(hit(keys[i]), "%s stays", keys[i]);
    cr_expect(hit("k8") && hit("k9"), "new entries stay");
}

Test(objcache_size, total_stays_under_the_cap) {
    setenv("TT_CACHE_MAX", "100000", 1);
    char key[32];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "key %d", i);
        store(key);
        long long bytes = entry_bytes(NULL);
        cr_assert_leq(bytes, 100000, "after %d stores: %lld bytes", i + 1, bytes);
        cr_assert(hit(key), "the entry just stored is never evicted");
    }
    int n;
    entry_bytes(&n);
    cr_expect_geq(n, 8, "eviction keeps what fits (%d entries)", n);
}

Test(objcache_size, larger_than_the_cap_is_not_stored) {
    setenv("TT_CACHE_MAX", "100000", 1);
    static unsigned char big[150000];
    cr_expect(!objcache_store("big", big, sizeof big));
    cr_expect(!exists("big"));
    store("small");
    cr_expect(hit("small"));
}

Test(objcache_size, info_counts_entries_only) {
    store("a");
    store("b");
    store("b"); /* a replaced entry counts once */
    char path[512];
    snprintf(path, sizeof path, "%s/notes.txt", tmp);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("not the cache's\n", f);
    fclose(f);
    ObjcacheInfo ci;
    objcache_info(&ci);
    cr_expect(ci.enabled && ci.exists && ci.trusted);
    cr_expect_str_eq(ci.dir, tmp);
    cr_expect_eq(ci.entries, 2);
    cr_expect_gt(ci.bytes, 2 * PAYLOAD);
    cr_expect_lt(ci.bytes, 2 * PAYLOAD + 200);
    cr_expect_eq(ci.cap, 536870912ull);
}

Test(objcache_size, clear_removes_only_the_caches_files) {
    store("a");
    store("b");
    char other[512], outside[512], link[512];
    snprintf(other, sizeof other, "%s/notes.txt", tmp);
    FILE *f = fopen(other, "w");
    cr_assert(f);
    fclose(f);
    /* a link with an entry's name: the link is not the cache's file */
    snprintf(outside, sizeof outside, "%s.outside", tmp);
    f = fopen(outside, "w");
    cr_assert(f);
    fclose(f);
    snprintf(link, sizeof link, "%s/%016llx.ttobj", tmp,
             (unsigned long long)objcache_hash("linked", 6));
    cr_assert_eq(symlink(outside, link), 0);
    char why[256] = "";
    cr_expect_eq(objcache_clear(why, sizeof why), 2, "%s", why);
    cr_expect(!hit("a") && !hit("b"));
    cr_expect_eq(access(other, F_OK), 0, "another file stays");
    cr_expect_eq(access(outside, F_OK), 0, "a link's target stays");
    unlink(outside);
    cr_expect_eq(entry_bytes(NULL), 0);
    cr_expect_eq(objcache_clear(why, sizeof why), 0, "nothing left to remove");
}

Test(objcache_size, clear_refuses_an_untrusted_directory) {
    store("a");
    cr_assert_eq(chmod(tmp, 0777), 0);
    char why[256] = "";
    cr_expect_eq(objcache_clear(why, sizeof why), -1);
    cr_expect(strstr(why, "writable by others"), "%s", why);
    chmod(tmp, 0700);
    cr_expect(hit("a"), "nothing was removed");
}

Test(objcache_size, clear_when_off_or_missing) {
    char why[256] = "";
    setenv("TT_CACHE_DIR", "off", 1);
    cr_expect_eq(objcache_clear(why, sizeof why), -1);
    cr_expect(strstr(why, "off"), "%s", why);
    char missing[128];
    snprintf(missing, sizeof missing, "%s/not/yet", tmp);
    setenv("TT_CACHE_DIR", missing, 1);
    cr_expect_eq(objcache_clear(why, sizeof why), 0);
}
