/* objcache.c - the on-disk object-code cache (see objcache.h).
 *
 * File layout, integers little-endian:
 *    0  magic "TTOBJC\r\n" (the \r\n catches text-mode mangling)
 *    8  u32 format version (OBJCACHE_VERSION)
 *   12  u32 key length in bytes
 *   16  u64 payload length in bytes
 *   24  u64 FNV-1a of the payload
 *   32  the key, then the payload; nothing after it
 * A file is used only when every field checks out and its size is exactly
 * 32 + key length + payload length, so truncation, appended garbage, a
 * flipped bit and a different key that hashed to the same name all read as
 * a miss. The next store then replaces the file.
 *
 * Trust (ssh's StrictModes, git's safe.directory): the payload is machine
 * code that gets linked and run, so a checksum proves nothing about who
 * wrote it. The directory is opened once per call and checked through its
 * descriptor (owned by the effective user, not writable by group or
 * others); entries are opened relative to that descriptor with O_NOFOLLOW
 * and checked the same way through theirs. Checking the descriptors, not
 * the paths, leaves no window between check and use, and makes the parents
 * irrelevant: whatever path led there, only a directory that nobody else
 * can write is read from or written to. A directory that fails the check
 * is reported once per process and left alone; an entry that fails is a
 * miss, which the next store replaces.
 *
 * Size (LRU): a hit touches the entry's mtime (atime is unreliable under
 * noatime/relatime); a store adds the new file's size to the running total
 * kept in the "usage" file, and only when that total passes the cap (or the
 * file is missing, or every RESCAN_EVERY stores) lists the directory, which
 * gives the true total and, over the cap, the order of eviction. Eviction
 * goes down to 90% of the cap so that a full cache does not list the
 * directory at every store. Only files the cache itself names (and that
 * pass the ownership checks) are ever counted or removed.
 */
#include "objcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OBJCACHE_VERSION 1
#define HEADER_SIZE      32
/* Refuse absurd sizes before allocating: a corrupt length must not make us
 * try to malloc gigabytes. Real entries are a few hundred KiB. */
#define MAX_KEY     (1u << 20)
#define MAX_PAYLOAD ((uint64_t)1 << 30)

#define DEFAULT_MAX    ((uint64_t)512 << 20) /* 512 MB */
#define MIN_MAX        100000u               /* 100 KB: smaller caps are refused */
#define RESCAN_EVERY   64                    /* stores between two listings */
#define STALE_TEMP_SEC 3600                  /* an older temporary file was left by a crash */
#define USAGE_NAME     "usage"

static const char MAGIC[8] = {'T', 'T', 'O', 'B', 'J', 'C', '\r', '\n'};

uint64_t objcache_hash(const void *p, size_t n) {
    const unsigned char *c = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void note(const char *fmt, ...) {
    const char *d = getenv("TT_CACHE_DEBUG");
    if (!d || !*d || !strcmp(d, "0")) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("objcache: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- where ----------------------------------------------------------------- */

static bool fits(int n, size_t cap) {
    return n >= 0 && (size_t)n < cap;
}

static bool cache_dir(char *buf, size_t cap) {
    const char *d = getenv("TT_CACHE_DIR");
    if (d && *d) {
        if (!strcmp(d, "off")) return false;
        return fits(snprintf(buf, cap, "%s", d), cap);
    }
    /* The XDG spec says a relative XDG_CACHE_HOME is invalid and ignored. */
    const char *x = getenv("XDG_CACHE_HOME");
    if (x && x[0] == '/') return fits(snprintf(buf, cap, "%s/tt", x), cap);
    const char *h = getenv("HOME");
    if (h && *h) return fits(snprintf(buf, cap, "%s/.cache/tt", h), cap);
    return false;
}

/* The entry's file name inside the cache directory. */
static void entry_name(const char *key, char name[32]) {
    unsigned long long h = objcache_hash(key, strlen(key));
    snprintf(name, 32, "%016llx.ttobj", h);
}

bool objcache_path(const char *key, char *path, size_t pathlen) {
    char dir[4096], name[32];
    if (!cache_dir(dir, sizeof dir)) return false;
    entry_name(key, name);
    return fits(snprintf(path, pathlen, "%s/%s", dir, name), pathlen);
}

/* mkdir -p, 0700 for what it creates (a cache of code is nobody else's
 * business, as the XDG spec says for its base directories). An existing
 * directory is fine whatever mkdir says about it (EACCES, EROFS). */
static bool mkdir_p(char *dir) {
    struct stat st;
    for (char *s = dir + 1;; s++) {
        if (*s != '/' && *s) continue;
        char c = *s;
        *s = 0;
        bool ok = !mkdir(dir, 0700) || errno == EEXIST || (!stat(dir, &st) && S_ISDIR(st.st_mode));
        *s = c;
        if (!ok) return false;
        if (!c) break;
    }
    return !stat(dir, &st) && S_ISDIR(st.st_mode);
}

/* ---- trust ----------------------------------------------------------------- */

/* Whether only the effective user can have written the file or directory
 * st describes (fstat of an open descriptor); if not, why, in why. Root is
 * no exception: root running another user's code is the case that matters. */
static bool trusted(const struct stat *st, char *why, size_t cap) {
    unsigned mode = (unsigned)st->st_mode & 07777;
    if (st->st_uid != geteuid())
        snprintf(why, cap, "it is owned by uid %lu, not by you (uid %lu)",
                 (unsigned long)st->st_uid, (unsigned long)geteuid());
    else if (st->st_mode & S_IWOTH)
        snprintf(why, cap, "it is writable by others (mode %04o)", mode);
    else if (st->st_mode & S_IWGRP)
        snprintf(why, cap, "it is writable by its group (mode %04o)", mode);
    else
        return true;
    return false;
}

/* The cache directory, opened and checked; -1 when it is missing,
 * unreadable or not trusted. The first untrusted directory of the process
 * gets one warning line: after it every load and store is a miss, and
 * saying so at each of them would bury the program's output. */
static int open_dir(const char *dir) {
    static atomic_bool warned;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        note("no directory %s: %s", dir, strerror(errno));
        return -1;
    }
    struct stat st;
    char why[128];
    if (fstat(fd, &st)) {
        note("cannot stat %s: %s", dir, strerror(errno));
    } else if (!trusted(&st, why, sizeof why)) {
        note("ignored %s: %s", dir, why);
        if (!atomic_exchange(&warned, true))
            fprintf(stderr,
                    "tt: warning: ignoring the compiled-code cache %s: %s; compiling in memory "
                    "(the cache must belong to you and be writable only by you: chmod 700)\n",
                    dir, why);
    } else {
        return fd;
    }
    close(fd);
    return -1;
}

/* ---- encoding -------------------------------------------------------------- */

static void put_le(unsigned char *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static bool read_full(int fd, void *buf, size_t n) {
    char *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

static bool write_full(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

/* ---- load ------------------------------------------------------------------ */

/* Checks the open file against key; on success *bytes and *len hold the
 * payload. why: room for the reason it is not trusted. */
static const char *read_entry(int fd, const char *key, void **bytes, size_t *len, char *why,
                              size_t cap) {
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) return "not a regular file";
    if (!trusted(&st, why, cap)) return why;
    unsigned char h[HEADER_SIZE];
    if (st.st_size < HEADER_SIZE || !read_full(fd, h, HEADER_SIZE)) return "short header";
    if (memcmp(h, MAGIC, sizeof MAGIC)) return "bad magic";
    if (get_le(h + 8, 4) != OBJCACHE_VERSION) return "other format version";
    size_t klen = strlen(key);
    uint64_t flen = get_le(h + 12, 4), plen = get_le(h + 16, 8);
    if (flen != klen) return "other key";
    if (plen > MAX_PAYLOAD) return "bad payload length";
    if ((uint64_t)st.st_size != HEADER_SIZE + flen + plen) return "truncated or overlong";

    char *k = malloc(klen + 1);
    bool same = k && read_full(fd, k, klen) && !memcmp(k, key, klen);
    free(k);
    if (!same) return "other key";
    void *p = malloc(plen ? plen : 1);
    if (!p) return "out of memory";
    if (!read_full(fd, p, plen)) {
        free(p);
        return "short payload";
    }
    if (objcache_hash(p, plen) != get_le(h + 24, 8)) {
        free(p);
        return "checksum mismatch";
    }
    *bytes = p;
    *len = plen;
    return NULL;
}

bool objcache_load(const char *key, void **bytes, size_t *len) {
    *bytes = NULL;
    *len = 0;
    char dir[4096], name[32], path[4200];
    if (!cache_dir(dir, sizeof dir) || !objcache_path(key, path, sizeof path)) return false;
    entry_name(key, name);
    int dfd = open_dir(dir);
    if (dfd < 0) return false;
    /* O_NOFOLLOW: a link could lead anywhere, to a file the checks below
     * would pass; O_NONBLOCK: a FIFO in its place must not hang us. */
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    int open_errno = errno;
    close(dfd);
    if (fd < 0) {
        if (open_errno == ELOOP)
            note("ignored %s: a symbolic link", path);
        else
            note("miss %s", path);
        return false;
    }
    char untrusted[128];
    const char *why = read_entry(fd, key, bytes, len, untrusted, sizeof untrusted);
    if (!why) futimens(fd, NULL); /* recently used: last to be evicted */
    close(fd);
    if (why)
        note("ignored %s: %s", path, why);
    else
        note("hit %s (%zu bytes)", path, *len);
    return !why;
}

bool objcache_load_text(const char *key, char *text, size_t cap) {
    void *bytes = NULL;
    size_t len = 0;
    if (!objcache_load(key, &bytes, &len)) return false;
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(text, bytes, n);
    text[n] = 0;
    free(bytes);
    return true;
}

/* ---- size ------------------------------------------------------------------ */

static int create_temp(int dfd, const char *name, char *tmp, size_t cap); /* (store) */

/* "<digits>[K|M|G]" (binary multiples) */
static bool parse_size(const char *s, uint64_t *out) {
    if (*s < '0' || *s > '9') return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return false;
    uint64_t mul = 1;
    switch (*end) {
    case 'K':
    case 'k':
        mul = (uint64_t)1 << 10;
        end++;
        break;
    case 'M':
    case 'm':
        mul = (uint64_t)1 << 20;
        end++;
        break;
    case 'G':
    case 'g':
        mul = (uint64_t)1 << 30;
        end++;
        break;
    default:
        break;
    }
    if (*end || v > UINT64_MAX / mul) return false;
    *out = (uint64_t)v * mul;
    return true;
}

uint64_t objcache_max_bytes(void) {
    static atomic_bool warned;
    const char *s = getenv("TT_CACHE_MAX");
    if (!s || !*s) return DEFAULT_MAX;
    uint64_t v;
    if (parse_size(s, &v) && v >= MIN_MAX) return v;
    if (!atomic_exchange(&warned, true))
        fprintf(stderr,
                "tt: warning: TT_CACHE_MAX=%s is not a size of at least 100000 bytes (100 KB); "
                "the compiled-code cache uses the default cap of 512 MB\n",
                s);
    return DEFAULT_MAX;
}

/* The names the cache gives its files: entries "<16 hex>.ttobj", their
 * temporary files "<16 hex>.ttobj.<6 of [a-z0-9]>", the usage file and
 * its temporary files "usage.<6>". Nothing else is counted or removed. */
static bool lower_alnum(const char *s, size_t n, bool hex) {
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= (hex ? 'f' : 'z'));
        if (!ok) return false;
    }
    return true;
}
static bool is_entry_name(const char *n) {
    return strlen(n) == 22 && lower_alnum(n, 16, true) && !strcmp(n + 16, ".ttobj");
}
static bool is_temp_name(const char *n) {
    size_t l = strlen(n);
    if (l == 29 && lower_alnum(n, 16, true) && !strncmp(n + 16, ".ttobj.", 7))
        return lower_alnum(n + 23, 6, false);
    return l == 12 && !strncmp(n, USAGE_NAME ".", 6) && lower_alnum(n + 6, 6, false);
}

typedef struct Ent {
    char name[24];
    uint64_t size;
    struct timespec mtime;
} Ent;

typedef struct Scan {
    Ent *e;
    size_t n, cap;
    uint64_t bytes;
} Scan;

/* Lists the entries of the open directory dfd (regular files owned by the
 * effective user, with an entry's name) into sc; with remove_stale, also
 * removes temporary files older than STALE_TEMP_SEC (a store that died
 * between creating and renaming one). */
static bool scan_dir(int dfd, Scan *sc, bool remove_stale) {
    int fd = dup(dfd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0) close(fd);
        return false;
    }
    rewinddir(d);
    time_t now = time(NULL);
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        bool ent = is_entry_name(n);
        if (!ent && !is_temp_name(n)) continue;
        struct stat st;
        if (fstatat(dfd, n, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode) ||
            st.st_uid != geteuid())
            continue;
        if (!ent) {
            if (remove_stale && now - st.st_mtime > STALE_TEMP_SEC) unlinkat(dfd, n, 0);
            continue;
        }
        if (sc->n == sc->cap) {
            size_t cap = sc->cap ? 2 * sc->cap : 64;
            Ent *e = realloc(sc->e, cap * sizeof *e);
            if (!e) {
                closedir(d);
                return false;
            }
            sc->e = e;
            sc->cap = cap;
        }
        Ent *e = &sc->e[sc->n++];
        snprintf(e->name, sizeof e->name, "%s", n);
        e->size = (uint64_t)st.st_size;
        e->mtime = st.st_mtim;
        sc->bytes += e->size;
    }
    closedir(d);
    return true;
}

/* the running total: "ttcache-usage 1 <bytes> <entries> <stores since the
 * last listing>\n" */
typedef struct Usage {
    uint64_t bytes, entries, stores;
} Usage;

static bool read_usage(int dfd, Usage *u) {
    int fd = openat(dfd, USAGE_NAME, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    char why[128], buf[128];
    ssize_t r = -1;
    if (!fstat(fd, &st) && S_ISREG(st.st_mode) && trusted(&st, why, sizeof why) &&
        st.st_size < (off_t)sizeof buf)
        r = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (r <= 0) return false;
    buf[r] = 0;
    unsigned long long b, e, s;
    int used = 0;
    if (sscanf(buf, "ttcache-usage 1 %llu %llu %llu\n%n", &b, &e, &s, &used) != 3 || used != r)
        return false;
    *u = (Usage){b, e, s};
    return true;
}

static void write_usage(int dfd, const Usage *u) {
    char tmp[64], text[96];
    int n = snprintf(text, sizeof text, "ttcache-usage 1 %llu %llu %llu\n",
                     (unsigned long long)u->bytes, (unsigned long long)u->entries,
                     (unsigned long long)u->stores);
    int fd = create_temp(dfd, USAGE_NAME, tmp, sizeof tmp);
    if (fd < 0) return;
    bool ok = write_full(fd, text, (size_t)n);
    ok = !close(fd) && ok;
    if (!ok || renameat(dfd, tmp, dfd, USAGE_NAME)) unlinkat(dfd, tmp, 0);
}

/* oldest modification first; the name breaks ties */
static int cmp_age(const void *a, const void *b) {
    const Ent *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec) return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec) return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Removes the least recently used entries but keep until the total is
 * under 90% of cap. */
static void evict(int dfd, Scan *sc, uint64_t cap, const char *keep) {
    qsort(sc->e, sc->n, sizeof *sc->e, cmp_age);
    uint64_t low = cap / 10 * 9;
    size_t kept = 0;
    for (size_t i = 0; i < sc->n; i++) {
        Ent *e = &sc->e[i];
        if (sc->bytes > low && strcmp(e->name, keep) && !unlinkat(dfd, e->name, 0)) {
            note("evicted %s (%llu bytes)", e->name, (unsigned long long)e->size);
            sc->bytes -= e->size;
        } else {
            sc->e[kept++] = *e;
        }
    }
    sc->n = kept;
}

/* After name was stored (added bytes, replacing a file of replaced bytes
 * when had): updates the running total, and lists the directory and
 * evicts when it passes cap. */
static void account(int dfd, const char *name, uint64_t added, uint64_t replaced, bool had,
                    uint64_t cap) {
    Usage u;
    bool known = read_usage(dfd, &u) && u.stores + 1 < RESCAN_EVERY;
    if (known) {
        u.bytes += added;
        u.bytes = u.bytes > replaced ? u.bytes - replaced : 0;
        u.entries += !had;
        u.stores++;
    }
    if (!known || u.bytes > cap) {
        Scan sc = {0};
        if (!scan_dir(dfd, &sc, true)) {
            free(sc.e);
            return;
        }
        if (sc.bytes > cap) evict(dfd, &sc, cap, name);
        u = (Usage){sc.bytes, sc.n, 0};
        free(sc.e);
    }
    write_usage(dfd, &u);
}

/* ---- store ----------------------------------------------------------------- */

/* Creates a new file for writing in dfd, 0600 (less the umask), under a
 * name that did not exist: "<name>.<6 random characters>". mkstemp cannot
 * work relative to a directory descriptor, hence the loop. */
static int create_temp(int dfd, const char *name, char *tmp, size_t cap) {
    static atomic_uint counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed[4] = {(uint64_t)getpid(), (uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec,
                        atomic_fetch_add(&counter, 1)};
    uint64_t r = objcache_hash(seed, sizeof seed);
    static const char digits[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (int attempt = 0; attempt < 100; attempt++) {
        char sfx[7];
        for (int i = 0; i < 6; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            sfx[i] = digits[(r >> 33) % 36];
        }
        sfx[6] = 0;
        if (!fits(snprintf(tmp, cap, "%s.%s", name, sfx), cap)) return -1;
        int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return -1;
}

bool objcache_store(const char *key, const void *bytes, size_t len) {
    size_t klen = strlen(key);
    if (klen > MAX_KEY || len > MAX_PAYLOAD) return false;
    uint64_t cap = objcache_max_bytes(), size = HEADER_SIZE + (uint64_t)klen + len;
    if (size > cap) {
        note("not stored: %llu bytes is more than the cap of %llu", (unsigned long long)size,
             (unsigned long long)cap);
        return false;
    }
    char dir[4096], path[4200], name[32], tmp[64];
    if (!cache_dir(dir, sizeof dir) || !objcache_path(key, path, sizeof path)) return false;
    entry_name(key, name);
    if (!mkdir_p(dir)) {
        note("cannot create %s: %s", dir, strerror(errno));
        return false;
    }
    int dfd = open_dir(dir);
    if (dfd < 0) return false;
    /* A temporary name in the same directory, then rename: atomic on POSIX
     * file systems, so a concurrent reader never sees a partial file. No
     * fsync: after a crash a torn file fails the checks and is rebuilt.
     * The rename replaces whatever had the name (an untrusted entry, a
     * link), never what a link points to. */
    int fd = create_temp(dfd, name, tmp, sizeof tmp);
    if (fd < 0) {
        note("cannot write in %s: %s", dir, strerror(errno));
        close(dfd);
        return false;
    }
    unsigned char h[HEADER_SIZE];
    memcpy(h, MAGIC, sizeof MAGIC);
    put_le(h + 8, OBJCACHE_VERSION, 4);
    put_le(h + 12, klen, 4);
    put_le(h + 16, len, 8);
    put_le(h + 24, objcache_hash(bytes, len), 8);
    bool ok =
        write_full(fd, h, sizeof h) && write_full(fd, key, klen) && write_full(fd, bytes, len);
    ok = !close(fd) && ok;
    struct stat old; /* the entry it replaces, which the total counts */
    bool had = !fstatat(dfd, name, &old, AT_SYMLINK_NOFOLLOW) && S_ISREG(old.st_mode) &&
               old.st_uid == geteuid();
    if (ok) ok = !renameat(dfd, tmp, dfd, name);
    if (!ok) {
        note("cannot store %s: %s", path, strerror(errno));
        unlinkat(dfd, tmp, 0);
    } else {
        note("stored %s (%zu bytes)", path, len);
        account(dfd, name, size, had ? (uint64_t)old.st_size : 0, had, cap);
    }
    close(dfd);
    return ok;
}

/* ---- info and clear -------------------------------------------------------- */

void objcache_info(ObjcacheInfo *info) {
    memset(info, 0, sizeof *info);
    info->cap = objcache_max_bytes();
    if (!cache_dir(info->dir, sizeof info->dir)) {
        info->dir[0] = 0;
        return;
    }
    info->enabled = true;
    int fd = open(info->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(info->why, sizeof info->why, "%s", strerror(errno));
        return;
    }
    info->exists = true;
    struct stat st;
    if (fstat(fd, &st) || !trusted(&st, info->why, sizeof info->why)) {
        close(fd);
        return;
    }
    info->trusted = true;
    Scan sc = {0};
    if (scan_dir(fd, &sc, false)) {
        info->entries = (int64_t)sc.n;
        info->bytes = sc.bytes;
    }
    free(sc.e);
    close(fd);
}

long objcache_clear(char *why, size_t whylen) {
    char dir[4096];
    const char *d = getenv("TT_CACHE_DIR");
    if (!cache_dir(dir, sizeof dir)) {
        snprintf(why, whylen, "%s",
                 d && !strcmp(d, "off") ? "the cache is off (TT_CACHE_DIR=off)"
                                        : "no cache directory (set TT_CACHE_DIR or HOME)");
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        if (errno == ENOENT) return 0;
        snprintf(why, whylen, "cannot open %s: %s", dir, strerror(errno));
        return -1;
    }
    struct stat st;
    char reason[128];
    if (fstat(dfd, &st) || !trusted(&st, reason, sizeof reason)) {
        snprintf(why, whylen, "not clearing %s: %s", dir, reason);
        close(dfd);
        return -1;
    }
    int fd = dup(dfd);
    DIR *dp = fd < 0 ? NULL : fdopendir(fd);
    if (!dp) {
        snprintf(why, whylen, "cannot list %s: %s", dir, strerror(errno));
        if (fd >= 0) close(fd);
        close(dfd);
        return -1;
    }
    long removed = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        const char *n = de->d_name;
        bool ent = is_entry_name(n);
        if (!ent && !is_temp_name(n) && strcmp(n, USAGE_NAME)) continue;
        if (fstatat(dfd, n, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode) ||
            st.st_uid != geteuid())
            continue;
        if (!unlinkat(dfd, n, 0) && ent) removed++;
    }
    closedir(dp);
    close(dfd);
    return removed;
}
