/* input.c - input sources under the input limit: files, pipes and memory,
 * plain or gzip-compressed (see input.h). */
#include "input.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define SIZE_UNKNOWN UINT64_MAX
#define ZBUF         (1u << 16)

/* How the bytes handed out are made from the source's bytes. */
typedef enum InMode {
    IN_RAW,     /* as they are */
    IN_GZ_PEEK, /* a ".gz" name: the first bytes decide between RAW and GZ */
    IN_GZ,      /* inflating a gzip member */
    IN_GZ_NEXT, /* after a member: another one, or the end */
    IN_GZ_END,
} InMode;

struct TtInput {
    const char *name; /* borrowed */
    int fd;           /* -1: a memory source */
    const unsigned char *mem;
    size_t mlen, mpos;
    uint64_t size;  /* bytes of the source itself (file or memory), SIZE_UNKNOWN for a pipe */
    uint64_t hint;  /* expected bytes out, for the first buffer */
    uint64_t limit; /* the input limit */
    uint64_t out;   /* bytes handed out so far; never more than limit + 1 */
    bool gzname;
    InMode mode;
    bool zinit;
    z_stream z;
    unsigned char *zbuf; /* compressed bytes read from fd */
};

static bool fail(char *err, size_t errlen, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool fail(char *err, size_t errlen, const char *name, const char *fmt, ...) {
    if (!err || errlen == 0) return false;
    int n = snprintf(err, errlen, "%s: ", name);
    if (n < 0) n = 0;
    if ((size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* -- the limit -- */

static uint64_t default_limit(void) {
    uint64_t lim = (uint64_t)4 << 30, phys;
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && psize > 0 &&
        !__builtin_mul_overflow((uint64_t)pages, (uint64_t)psize, &phys) && phys / 2 < lim)
        lim = phys / 2;
    return lim;
}

bool tt_input_limit(uint64_t *limit, char *err, size_t errlen) {
    const char *s = getenv("TT_MAX_INPUT_BYTES");
    if (!s) {
        *limit = default_limit();
        return true;
    }
    /* Strict: digits, one optional binary suffix, nothing else. A typo must
     * not quietly leave the default (or no limit) in force. */
    const char *p = s;
    uint64_t v = 0;
    int shift = 0;
    if (*p < '0' || *p > '9') goto bad;
    for (; *p >= '0' && *p <= '9'; p++)
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
            goto bad;
    switch (*p) {
    case 'K':
    case 'k':
        shift = 10;
        break;
    case 'M':
    case 'm':
        shift = 20;
        break;
    case 'G':
    case 'g':
        shift = 30;
        break;
    case 'T':
    case 't':
        shift = 40;
        break;
    }
    if (shift) p++;
    if (*p || v == 0 || v > (UINT64_MAX >> shift)) goto bad;
    *limit = v << shift;
    return true;
bad:
    snprintf(err, errlen,
             "TT_MAX_INPUT_BYTES: '%.40s' is not a positive number of bytes (such as 1048576, "
             "512M or 4G)",
             s);
    return false;
}

const char *tt_format_bytes(uint64_t n, char *buf, size_t len) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (n < 1024) {
        snprintf(buf, len, "%llu byte%s", (unsigned long long)n, n == 1 ? "" : "s");
        return buf;
    }
    double v = (double)n;
    int u = -1;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}

/* -- opening -- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static const char *file_kind(mode_t m) {
    return S_ISFIFO(m)   ? "a FIFO"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "not a file";
}

/* The size the trailer of a single-member gzip source states (ISIZE, the
 * size mod 2^32). Only a first guess for the buffer: it may lie, so it is
 * bounded by deflate's best ratio (1032:1) and later by the limit. */
static uint64_t gz_hint(TtInput *in) {
    unsigned char m[2], b[4];
    if (in->size == SIZE_UNKNOWN || in->size < 18) return 0;
    if (in->fd < 0) {
        memcpy(m, in->mem, 2);
        memcpy(b, in->mem + in->mlen - 4, 4);
    } else if (pread(in->fd, m, 2, 0) != 2 || pread(in->fd, b, 4, (off_t)(in->size - 4)) != 4) {
        return 0;
    }
    if (m[0] != 0x1f || m[1] != 0x8b) return in->size; /* read as it is */
    uint64_t isize =
        (uint64_t)b[0] | (uint64_t)b[1] << 8 | (uint64_t)b[2] << 16 | (uint64_t)b[3] << 24;
    uint64_t most = in->size * 1032;
    return isize < most ? isize : most;
}

/* The part of opening shared by files and memory. */
static TtInput *finish_open(TtInput *in, char *err, size_t errlen) {
    char a[32], b[32];
    in->gzname = ends_with(in->name, ".gz");
    if (!in->gzname && in->size != SIZE_UNKNOWN && in->size > in->limit) {
        fail(err, errlen, in->name,
             "file size of %s exceeds the input limit of %s (TT_MAX_INPUT_BYTES)",
             tt_format_bytes(in->size, a, sizeof a), tt_format_bytes(in->limit, b, sizeof b));
        tt_input_close(in);
        return NULL;
    }
    if (in->gzname) {
        in->mode = IN_GZ_PEEK;
        /* windowBits 15 + 16: gzip only; the trailer's CRC and length are
         * checked at the end of each member. */
        if (inflateInit2(&in->z, 15 + 16) != Z_OK) {
            fail(err, errlen, in->name, "cannot start gzip decompression");
            tt_input_close(in);
            return NULL;
        }
        in->zinit = true;
        if (in->fd >= 0) in->zbuf = tt_xmalloc(ZBUF);
        in->hint = gz_hint(in);
    } else {
        in->hint = in->size == SIZE_UNKNOWN ? 0 : in->size;
    }
    return in;
}

static TtInput *new_input(const char *name, uint64_t limit) {
    TtInput *in = tt_xcalloc(1, sizeof *in);
    in->name = name;
    in->fd = -1;
    in->limit = limit;
    in->mode = IN_RAW;
    return in;
}

TtInput *tt_input_open(const char *path, bool data, char *err, size_t errlen) {
    uint64_t limit;
    if (!tt_input_limit(&limit, err, errlen)) return NULL;
    /* O_NONBLOCK: opening a FIFO without a writer returns at once, so that
     * fstat can reject it; it does nothing to a regular file. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | (data ? O_NONBLOCK : 0));
    if (fd < 0) {
        fail(err, errlen, path, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fail(err, errlen, path, "cannot open: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    if (S_ISDIR(st.st_mode) || (data && !S_ISREG(st.st_mode))) {
        if (S_ISDIR(st.st_mode))
            fail(err, errlen, path, "is a directory");
        else
            fail(err, errlen, path, "not a regular file (%s)", file_kind(st.st_mode));
        close(fd);
        return NULL;
    }
    if (data) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    TtInput *in = new_input(path, limit);
    in->fd = fd;
    in->size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : SIZE_UNKNOWN;
    return finish_open(in, err, errlen);
}

TtInput *tt_input_memory(const char *name, const void *data, size_t len, char *err, size_t errlen) {
    uint64_t limit;
    if (!tt_input_limit(&limit, err, errlen)) return NULL;
    TtInput *in = new_input(name, limit);
    in->mem = data;
    in->mlen = len;
    in->size = len;
    return finish_open(in, err, errlen);
}

void tt_input_close(TtInput *in) {
    if (!in) return;
    if (in->fd >= 0) close(in->fd);
    if (in->zinit) inflateEnd(&in->z);
    free(in->zbuf);
    free(in);
}

const char *tt_input_name(const TtInput *in) {
    return in->name;
}

bool tt_input_size_known(const TtInput *in) {
    return !in->gzname && in->size != SIZE_UNKNOWN;
}

uint64_t tt_input_max(const TtInput *in) {
    return in->limit;
}

/* -- reading -- */

/* Up to n bytes of the source itself; fewer only at its end. */
static bool raw_read(TtInput *in, unsigned char *buf, size_t n, size_t *got, char *err,
                     size_t errlen) {
    if (in->fd < 0) {
        size_t k = in->mlen - in->mpos < n ? in->mlen - in->mpos : n;
        if (k) memcpy(buf, in->mem + in->mpos, k);
        in->mpos += k;
        *got = k;
        return true;
    }
    size_t total = 0;
    while (total < n) {
        size_t want = n - total < ((size_t)1 << 30) ? n - total : (size_t)1 << 30;
        ssize_t r = read(in->fd, buf + total, want);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return fail(err, errlen, in->name, "read error: %s", strerror(errno));
        if (r == 0) break;
        total += (size_t)r;
    }
    *got = total;
    return true;
}

/* Makes z.avail_in > 0 unless the source has ended. */
static bool zin_refill(TtInput *in, char *err, size_t errlen) {
    if (in->z.avail_in > 0) return true;
    if (in->fd < 0) {
        size_t k = in->mlen - in->mpos < UINT_MAX ? in->mlen - in->mpos : UINT_MAX;
        in->z.next_in = (Bytef *)(uintptr_t)(in->mem + in->mpos);
        in->z.avail_in = (uInt)k;
        in->mpos += k;
        return true;
    }
    size_t got;
    if (!raw_read(in, in->zbuf, ZBUF, &got, err, errlen)) return false;
    in->z.next_in = in->zbuf;
    in->z.avail_in = (uInt)got;
    return true;
}

static bool gz_read(TtInput *in, unsigned char *buf, size_t n, size_t *got, char *err,
                    size_t errlen) {
    size_t done = 0;
    while (done < n && in->mode != IN_GZ_END) {
        if (!zin_refill(in, err, errlen)) return false;
        if (in->z.avail_in == 0) {
            if (in->mode == IN_GZ_NEXT) {
                in->mode = IN_GZ_END;
                break;
            }
            return fail(err, errlen, in->name, "corrupt or truncated gzip data");
        }
        if (in->mode == IN_GZ_NEXT) {
            /* Concatenated members are one file (as gzip -d reads them);
             * anything else after the data is damage, not to be ignored. */
            if (in->z.next_in[0] != 0x1f)
                return fail(err, errlen, in->name,
                            "corrupt gzip data: unexpected bytes after the compressed data");
            inflateReset(&in->z);
            in->mode = IN_GZ;
        }
        size_t want = n - done < UINT_MAX ? n - done : UINT_MAX;
        in->z.next_out = buf + done;
        in->z.avail_out = (uInt)want;
        int r = inflate(&in->z, Z_NO_FLUSH);
        done += want - in->z.avail_out;
        if (r == Z_STREAM_END)
            in->mode = IN_GZ_NEXT;
        else if (r == Z_MEM_ERROR)
            return fail(err, errlen, in->name, "out of memory decompressing gzip data");
        else if (r != Z_OK)
            return fail(err, errlen, in->name, "corrupt gzip data: %s",
                        in->z.msg ? in->z.msg : "invalid stream");
    }
    *got = done;
    return true;
}

/* Bytes after a peek that turned out not to be gzip: the peeked ones first. */
static bool passthrough_read(TtInput *in, unsigned char *buf, size_t n, size_t *got, char *err,
                             size_t errlen) {
    size_t k = in->z.avail_in < n ? in->z.avail_in : n;
    if (k) memcpy(buf, in->z.next_in, k);
    in->z.next_in += k;
    in->z.avail_in -= (uInt)k;
    size_t more = 0;
    if (k < n && !raw_read(in, buf + k, n - k, &more, err, errlen)) return false;
    *got = k + more;
    return true;
}

bool tt_input_read(TtInput *in, void *buf, size_t n, size_t *got, char *err, size_t errlen) {
    *got = 0;
    /* At most one byte past the limit: enough to know the input exceeds it. */
    uint64_t room = in->limit - in->out;
    if (room < UINT64_MAX) room++;
    if (n > room) n = (size_t)room;
    if (in->mode == IN_GZ_PEEK) {
        if (!zin_refill(in, err, errlen)) return false;
        /* A full buffer (or the whole source) was read: fewer than 2 bytes
         * means the source is shorter than the magic. */
        bool gz = in->z.avail_in >= 2 && in->z.next_in[0] == 0x1f && in->z.next_in[1] == 0x8b;
        in->mode = gz ? IN_GZ : IN_RAW;
        if (!gz) in->hint = in->size == SIZE_UNKNOWN ? 0 : in->size;
    }
    bool ok;
    if (in->mode == IN_RAW)
        ok = in->gzname ? passthrough_read(in, buf, n, got, err, errlen)
                        : raw_read(in, buf, n, got, err, errlen);
    else
        ok = gz_read(in, buf, n, got, err, errlen);
    if (!ok) return false;
    in->out += *got;
    if (in->out > in->limit) {
        char a[32];
        return fail(
            err, errlen, in->name, "%ssize exceeds the input limit of %s (TT_MAX_INPUT_BYTES)",
            in->mode == IN_RAW ? "" : "decompressed ", tt_format_bytes(in->limit, a, sizeof a));
    }
    return true;
}

bool tt_input_fill(TtInput *in, StrBuf *b, uint64_t upto, char *err, size_t errlen) {
    /* One byte past the limit is as far as a read can get (tt_input_read). */
    uint64_t most = in->limit < UINT64_MAX ? in->limit + 1 : UINT64_MAX;
    if (upto > most) upto = most;
    if (upto > (uint64_t)SIZE_MAX - 1) upto = (uint64_t)SIZE_MAX - 1;
    bool ok = true;
    while (b->len < upto) {
        if (b->cap == 0 || b->len + 1 >= b->cap) {
            /* The first buffer holds the expected size and one more byte
             * (the read that finds the end); later ones double. */
            uint64_t want = b->cap ? 2 * (uint64_t)(b->cap - 1) : in->hint + 1;
            if (want < 4096) want = 4096;
            if (want > upto) want = upto;
            b->s = tt_xrealloc(b->s, (size_t)want + 1);
            b->cap = (size_t)want + 1;
        }
        size_t room = b->cap - 1 - b->len;
        if (room > upto - b->len) room = (size_t)(upto - b->len);
        size_t got;
        ok = tt_input_read(in, b->s + b->len, room, &got, err, errlen);
        if (!ok) break;
        b->len += got;
        b->s[b->len] = 0;
        if (got < room) break; /* the end of the input */
    }
    if (!b->s) {
        b->s = tt_xmalloc(1);
        b->cap = 1;
    }
    b->s[b->len] = 0;
    return ok;
}

/* -- whole files -- */

static char *read_whole(const char *path, bool data, size_t *len, char *err, size_t errlen) {
    TtInput *in = tt_input_open(path, data, err, errlen);
    if (!in) return NULL;
    StrBuf b = {0};
    bool ok = tt_input_fill(in, &b, UINT64_MAX, err, errlen);
    tt_input_close(in);
    if (!ok) {
        sb_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.s;
}

char *tt_read_file(const char *path, size_t *len, char *err, size_t errlen) {
    return read_whole(path, false, len, err, errlen);
}

char *tt_read_data_file(const char *path, size_t *len, char *err, size_t errlen) {
    return read_whole(path, true, len, err, errlen);
}
