/* io_atomic.c - atomic, unredirectable file writes (see io_atomic.h). */
#include "io_atomic.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_util.h"
#include "signals.h"

/* Bytes written between two checks for a pending signal: a 500 MB save
 * stops within a few milliseconds of Ctrl-C. */
enum { WRITE_SLICE = 1 << 20 };

bool io_write_all(int fd, const void *data, size_t len, const char *path, char *err,
                  size_t errlen) {
    const char *p = data;
    while (len > 0) {
        if (rt_sig_pending) return io_fail(err, errlen, path, "interrupted");
        size_t n = len < WRITE_SLICE ? len : WRITE_SLICE;
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return io_fail(err, errlen, path, "cannot write: %s",
                           w < 0 ? strerror(errno) : "short write");
        p += w;
        len -= (size_t)w;
    }
    return true;
}

/* "<path>.tmp.XXXXXX", in path's directory so that rename stays on one file
 * system; ".tt-tmp.XXXXXX" beside it when the name would grow too long. */
static char *tmp_template(const char *path) {
    static const char suffix[] = ".tmp.XXXXXX", shortname[] = ".tt-tmp.XXXXXX";
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
    size_t n = strlen(path);
    char *t = tt_xmalloc(n + sizeof shortname + sizeof suffix);
    if (n - dirlen + sizeof suffix - 1 <= NAME_MAX) {
        memcpy(t, path, n);
        memcpy(t + n, suffix, sizeof suffix);
    } else {
        memcpy(t, path, dirlen);
        memcpy(t + dirlen, shortname, sizeof shortname);
    }
    return t;
}

/* The mode the new file gets: the old file's when it replaces a regular
 * file (lstat: a symlink at path is replaced, not followed), else what
 * open(path, O_CREAT, 0666) would give. */
static mode_t target_mode(const char *path) {
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) return st.st_mode & 07777;
    /* umask can only be read by setting it; the main thread is the only one
     * that creates files, so restoring it at once races with nobody */
    mode_t mask = umask(022);
    umask(mask);
    return 0666 & ~mask;
}

bool io_write_atomic_fn(const char *path, IoWriteFn fn, void *ctx, char *err, size_t errlen) {
    mode_t mode = target_mode(path);
    char *tmp = tmp_template(path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        io_fail(err, errlen, path, "cannot write: %s", strerror(errno));
        free(tmp);
        return false;
    }
    int slot = rt_tmpfile_track(tmp);
    bool ok = false;
    if (fchmod(fd, mode) != 0) {
        io_fail(err, errlen, path, "cannot write: %s", strerror(errno));
    } else if (!fn(fd, ctx, path, err, errlen)) {
        /* fn said why */
    } else if (fsync(fd) != 0) {
        io_fail(err, errlen, path, "cannot write: fsync: %s", strerror(errno));
    } else {
        ok = true;
    }
    if (close(fd) != 0 && ok) {
        io_fail(err, errlen, path, "cannot write: %s", strerror(errno));
        ok = false;
    }
    /* a signal during the fsync: the process is about to stop, and the
     * destination stays as it was */
    if (ok && rt_sig_pending) ok = io_fail(err, errlen, path, "interrupted");
    if (ok && rename(tmp, path) != 0)
        ok = io_fail(err, errlen, path, "cannot write: rename: %s", strerror(errno));
    if (!ok) unlink(tmp);
    rt_tmpfile_forget(slot);
    free(tmp);
    return ok;
}

typedef struct Chunks {
    const IoChunk *c;
    int n;
} Chunks;

static bool write_chunks(int fd, void *ctx, const char *path, char *err, size_t errlen) {
    const Chunks *cs = ctx;
    for (int i = 0; i < cs->n; i++)
        if (!io_write_all(fd, cs->c[i].data, cs->c[i].len, path, err, errlen)) return false;
    return true;
}

bool io_write_atomic(const char *path, const IoChunk *chunks, int n, char *err, size_t errlen) {
    Chunks cs = {chunks, n};
    return io_write_atomic_fn(path, write_chunks, &cs, err, errlen);
}
