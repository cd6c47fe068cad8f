/* test_io_atomic.c - the writers' temporary file (runtime/io/io_atomic.h):
 * never steered by a planted symlink, the destination's mode kept, nothing
 * left behind by a failed, interrupted or killed write. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io_atomic.h"
#include "scratch.h"
#include "signals.h"

static void setup(void) {
    tu_scratch_make("/tmp/tt_atomic");
}

static void teardown(void) {
    tu_scratch_remove();
}

TestSuite(io_atomic, .init = setup, .fini = teardown);

static void put_file(const char *path, const char *text, mode_t mode) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
    cr_assert_eq(chmod(path, mode), 0);
}

/* The whole file as a string (static buffer), or "<missing>". */
static const char *contents(const char *path) {
    static char buf[4096];
    FILE *f = fopen(path, "r");
    if (!f) return "<missing>";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* The directory's entries, sorted, joined by spaces. */
static const char *listing(void) {
    static char out[4096];
    char *names[64];
    int n = 0;
    DIR *d = opendir(tu_scratch_dir());
    struct dirent *e;
    while ((e = readdir(d)) && n < 64)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            names[n++] = strdup(e->d_name);
    closedir(d);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(names[j], names[i]) < 0) {
                char *t = names[i];
                names[i] = names[j];
                names[j] = t;
            }
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        if (i) strcat(out, " ");
        strcat(out, names[i]);
        free(names[i]);
    }
    return out;
}

static bool write_text(const char *path, const char *text, char *err, size_t errlen) {
    IoChunk c = {text, strlen(text)};
    return io_write_atomic(path, &c, 1, err, errlen);
}

/* What a callback saw of its temporary file. */
typedef struct Seen {
    char name[256]; /* its name in dir */
    mode_t mode;
    nlink_t nlink;
    bool regular;
} Seen;

/* Writes "new", and finds the temporary file in dir by the inode of fd. */
static bool spy(int fd, void *ctx, const char *path, char *err, size_t errlen) {
    Seen *s = ctx;
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    s->mode = st.st_mode & 07777;
    s->nlink = st.st_nlink;
    s->regular = S_ISREG(st.st_mode);
    DIR *d = opendir(tu_scratch_dir());
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat le;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", tu_scratch_dir(), e->d_name);
        if (lstat(p, &le) == 0 && le.st_ino == st.st_ino && le.st_dev == st.st_dev)
            snprintf(s->name, sizeof s->name, "%s", e->d_name);
    }
    closedir(d);
    return io_write_all(fd, "new", 3, path, err, errlen);
}

Test(io_atomic, planted_symlinks_are_never_followed) {
    char victim[600];
    snprintf(victim, sizeof victim, "%s", tu_scratch_path("victim"));
    put_file(victim, "secret", 0644);
    /* links at the old predictable name, at likely names, and at a dangling
     * target that a create through the link would make */
    char pidname[64];
    snprintf(pidname, sizeof pidname, "out.bin.tmp.%ld", (long)getpid());
    const char *links[] = {pidname, "out.bin.tmp", "out.bin.tmp.XXXXXX", ".tt-tmp.XXXXXX"};
    for (int i = 0; i < 4; i++) cr_assert_eq(symlink(victim, tu_scratch_path(links[i])), 0);
    cr_assert_eq(
        symlink(tu_scratch_path("made-through-link"), tu_scratch_path("out.bin.tmp.000000")), 0);
    Seen s = {0};
    char err[256] = "";
    cr_assert(io_write_atomic_fn(tu_scratch_path("out.bin"), spy, &s, err, sizeof err), "%s", err);
    /* the temporary file was a fresh regular file of its own in dir */
    cr_assert(s.regular);
    cr_assert_eq(s.nlink, 1);
    cr_assert_eq(strncmp(s.name, "out.bin.tmp.", 12), 0, "temporary file '%s'", s.name);
    for (int i = 0; i < 4; i++) cr_assert_str_neq(s.name, links[i]);
    cr_assert_str_eq(contents(victim), "secret");
    cr_assert_str_eq(contents(tu_scratch_path("out.bin")), "new");
    char buf[600];
    for (int i = 0; i < 4; i++) {
        ssize_t n = readlink(tu_scratch_path(links[i]), buf, sizeof buf - 1);
        cr_assert_gt(n, 0, "%s is no longer a link", links[i]);
        buf[n] = 0;
        cr_assert_str_eq(buf, victim);
    }
    /* nothing else: no file made through a link, no temporary file left */
    int n = 0;
    for (const char *l = listing(); *l; l++) n += *l == ' ';
    cr_assert_eq(n + 1, 7, "%s", listing());
    cr_assert_str_eq(contents(tu_scratch_path("made-through-link")), "<missing>");
}

Test(io_atomic, symlink_at_the_destination_is_replaced_not_followed) {
    put_file(tu_scratch_path("victim"), "secret", 0600);
    cr_assert_eq(symlink("victim", tu_scratch_path("out")), 0);
    char err[256] = "";
    cr_assert(write_text(tu_scratch_path("out"), "new", err, sizeof err), "%s", err);
    cr_assert_str_eq(contents(tu_scratch_path("victim")), "secret");
    struct stat st;
    cr_assert_eq(lstat(tu_scratch_path("out"), &st), 0);
    cr_assert(S_ISREG(st.st_mode));
    cr_assert_str_eq(contents(tu_scratch_path("out")), "new");
}

Test(io_atomic, the_destination_keeps_its_mode) {
    const mode_t modes[] = {0640, 0755, 0444, 0600, 02750};
    for (int i = 0; i < 5; i++) {
        put_file(tu_scratch_path("out"), "old", modes[i]);
        char err[256] = "";
        Seen s = {0};
        cr_assert(io_write_atomic_fn(tu_scratch_path("out"), spy, &s, err, sizeof err), "%s", err);
        /* already while it is written: a reader never sees other bits */
        cr_assert_eq(s.mode, modes[i], "mode %o while writing, expected %o", s.mode, modes[i]);
        struct stat st;
        cr_assert_eq(stat(tu_scratch_path("out"), &st), 0);
        cr_assert_eq(st.st_mode & 07777, modes[i], "mode %o, expected %o", st.st_mode & 07777,
                     modes[i]);
        cr_assert_str_eq(contents(tu_scratch_path("out")), "new");
        chmod(tu_scratch_path("out"), 0600);
    }
}

Test(io_atomic, a_new_file_gets_0666_less_the_umask) {
    const mode_t masks[] = {022, 077, 0, 027};
    for (int i = 0; i < 4; i++) {
        unlink(tu_scratch_path("out"));
        mode_t old = umask(masks[i]);
        char err[256] = "";
        bool ok = write_text(tu_scratch_path("out"), "new", err, sizeof err);
        umask(old);
        cr_assert(ok, "%s", err);
        struct stat st;
        cr_assert_eq(stat(tu_scratch_path("out"), &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0666 & ~masks[i], "umask %o: mode %o", masks[i],
                     st.st_mode & 07777);
    }
    /* the process's umask is left as it was */
    mode_t old = umask(0);
    umask(old);
    cr_assert_eq(old, umask(old));
    umask(022);
    cr_assert(write_text(tu_scratch_path("out2"), "new", NULL, 0));
    cr_assert_eq(umask(022), 022);
}

/* Writes half, then fails as a disk error would. */
static bool fail_midway(int fd, void *ctx, const char *path, char *err, size_t errlen) {
    (void)ctx;
    cr_assert(io_write_all(fd, "partial data", 12, path, err, errlen));
    snprintf(err, errlen, "%s: simulated failure", path);
    return false;
}

Test(io_atomic, a_failed_write_leaves_nothing_behind) {
    put_file(tu_scratch_path("out"), "old", 0644);
    char err[256] = "";
    cr_assert_not(io_write_atomic_fn(tu_scratch_path("out"), fail_midway, NULL, err, sizeof err));
    cr_assert(strstr(err, "simulated failure"), "%s", err);
    cr_assert_str_eq(contents(tu_scratch_path("out")), "old");
    cr_assert_str_eq(listing(), "out");
    /* and when there was no destination, there is none after */
    cr_assert_not(io_write_atomic_fn(tu_scratch_path("fresh"), fail_midway, NULL, err, sizeof err));
    cr_assert_str_eq(listing(), "out");
}

Test(io_atomic, a_full_file_system_leaves_nothing_behind) {
    /* RLIMIT_FSIZE: writes past 4 KiB fail with EFBIG, as on a full disk,
     * also for root (Criterion runs each test in its own process) */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {4096, 4096};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    put_file(tu_scratch_path("out"), "old", 0644);
    size_t n = 1 << 20;
    char *big = calloc(1, n);
    IoChunk c[2] = {{"header", 6}, {big, n}};
    char err[256] = "";
    cr_assert_not(io_write_atomic(tu_scratch_path("out"), c, 2, err, sizeof err));
    free(big);
    cr_assert(strstr(err, "cannot write"), "%s", err);
    cr_assert(strstr(err, strerror(EFBIG)), "%s", err);
    cr_assert_str_eq(contents(tu_scratch_path("out")), "old");
    cr_assert_str_eq(listing(), "out");
}

Test(io_atomic, a_failed_rename_leaves_nothing_behind) {
    cr_assert_eq(mkdir(tu_scratch_path("out"), 0755), 0);
    char err[256] = "";
    cr_assert_not(write_text(tu_scratch_path("out"), "new", err, sizeof err));
    cr_assert(strstr(err, "rename"), "%s", err);
    cr_assert_str_eq(listing(), "out");
}

Test(io_atomic, a_missing_directory_is_an_error) {
    char err[256] = "";
    cr_assert_not(write_text(tu_scratch_path("no/such/out"), "new", err, sizeof err));
    cr_assert(strstr(err, "no/such/out: cannot write: "), "%s", err);
    cr_assert(strstr(err, strerror(ENOENT)), "%s", err);
    cr_assert_str_eq(listing(), "");
}

Test(io_atomic, a_long_name_gets_a_short_temporary_name) {
    char name[256];
    memset(name, 'n', 250);
    name[250] = 0;
    Seen s = {0};
    char err[256] = "";
    cr_assert(io_write_atomic_fn(tu_scratch_path(name), spy, &s, err, sizeof err), "%s", err);
    cr_assert_eq(strncmp(s.name, ".tt-tmp.", 8), 0, "temporary file '%s'", s.name);
    cr_assert_str_eq(contents(tu_scratch_path(name)), "new");
    cr_assert_str_eq(listing(), name);
}

Test(io_atomic, a_pending_signal_stops_the_write) {
    put_file(tu_scratch_path("out"), "old", 0644);
    rt_sig_pending = SIGINT;
    char err[256] = "";
    bool ok = write_text(tu_scratch_path("out"), "new", err, sizeof err);
    rt_sig_pending = 0;
    cr_assert_not(ok);
    cr_assert(strstr(err, "out: interrupted"), "%s", err);
    cr_assert_str_eq(contents(tu_scratch_path("out")), "old");
    cr_assert_str_eq(listing(), "out");
}

/* Sends the process two SIGTERMs in the middle of the write: the second one
 * ends it inside the handler, which must remove the temporary file. */
static bool killed_midway(int fd, void *ctx, const char *path, char *err, size_t errlen) {
    (void)ctx;
    io_write_all(fd, "partial", 7, path, err, errlen);
    raise(SIGTERM);
    raise(SIGTERM);
    return true; /* not reached */
}

Test(io_atomic, a_killed_write_removes_its_temporary_file) {
    put_file(tu_scratch_path("out"), "old", 0644);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        rt_signals_install(false);
        char err[256];
        io_write_atomic_fn(tu_scratch_path("out"), killed_midway, NULL, err, sizeof err);
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status %#x", status);
    cr_assert_str_eq(contents(tu_scratch_path("out")), "old");
    cr_assert_str_eq(listing(), "out");
}

Test(io_atomic, the_tracking_table_is_bounded) {
    int slots[16], n = 0;
    for (int i = 0; i < 16; i++) {
        slots[i] = rt_tmpfile_track(tu_scratch_path("x"));
        if (slots[i] >= 0) n++;
    }
    cr_assert_eq(n, 8);
    cr_assert_eq(slots[8], -1);
    char longpath[5000];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = 0;
    for (int i = 0; i < 16; i++) rt_tmpfile_forget(slots[i]);
    cr_assert_eq(rt_tmpfile_track(longpath), -1);
    int s = rt_tmpfile_track(tu_scratch_path("x"));
    cr_assert_geq(s, 0);
    rt_tmpfile_forget(s);
}
