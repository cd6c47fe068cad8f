/* test_input.c - the input limit and what may be read (lang/input.h), seen
 * through each reader: CSV, IDX, .npy, text and safetensors files.
 *
 * The limit is set small (TT_MAX_INPUT_BYTES; each Criterion test runs in
 * its own process) and the inputs that exceed it are gzip files written here
 * with zlib: a few kilobytes on disk that inflate past it. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "input.h"
#include "io.h"
#include "scratch.h"

#ifndef TT_SOURCE_DIR
#define TT_SOURCE_DIR "."
#endif

#define MIB (1u << 20)

static char err[512];

static void setup(void) {
    tu_scratch_make("/tmp/tt_input");
    err[0] = 0;
    cr_assert_eq(setenv("TT_MAX_INPUT_BYTES", "1M", 1), 0);
}

static void teardown(void) {
    tu_scratch_remove();
}

/* A gzip file of head followed by `fill` (a C string, not empty) repeated
 * to `total` bytes in all. */
static const char *write_gz(const char *name, const void *head, size_t hlen, const char *fill,
                            size_t total) {
    const char *p = tu_scratch_path(name);
    gzFile f = gzopen(p, "wb9");
    cr_assert_not_null(f);
    if (hlen) cr_assert_eq(gzwrite(f, head, (unsigned)hlen), (int)hlen);
    char block[4096];
    size_t fl = strlen(fill);
    cr_assert_gt(fl, 0);
    for (size_t i = 0; i < sizeof block; i++) block[i] = fill[i % fl];
    /* whole copies of fill per block, so the pattern runs on across blocks */
    size_t per = sizeof block / fl * fl;
    for (size_t n = hlen; n < total;) {
        size_t k = total - n < per ? total - n : per;
        cr_assert_eq(gzwrite(f, block, (unsigned)k), (int)k);
        n += k;
    }
    cr_assert_eq(gzclose(f), Z_OK);
    return p;
}

/* The gzip bytes of data, in memory (for the in-memory readers). */
static unsigned char *gz_bytes(const void *data, size_t len, size_t *zlen) {
    z_stream z = {0};
    cr_assert_eq(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, len);
    unsigned char *out = malloc(cap);
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *zlen = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

#define assert_err(path, msg)                                                                      \
    do {                                                                                           \
        char want_[900];                                                                           \
        snprintf(want_, sizeof want_, "%s: %s", (path), (msg));                                    \
        cr_assert_str_eq(err, want_);                                                              \
    } while (0)

static const char *const BOMB_MSG =
    "decompressed size exceeds the input limit of 1.0 MiB (TT_MAX_INPUT_BYTES)";

/* ============================ the limit itself ============================ */

TestSuite(input_limit, .init = setup, .fini = teardown);

static uint64_t limit_of(const char *v) {
    cr_assert_eq(setenv("TT_MAX_INPUT_BYTES", v, 1), 0);
    uint64_t n = 0;
    cr_assert(tt_input_limit(&n, err, sizeof err), "'%s': %s", v, err);
    return n;
}

static void limit_rejected(const char *v) {
    cr_assert_eq(setenv("TT_MAX_INPUT_BYTES", v, 1), 0);
    uint64_t n = 0;
    cr_assert_not(tt_input_limit(&n, err, sizeof err), "'%s' accepted as %llu", v,
                  (unsigned long long)n);
    char want[200];
    snprintf(want, sizeof want,
             "TT_MAX_INPUT_BYTES: '%s' is not a positive number of bytes (such as 1048576, 512M "
             "or 4G)",
             v);
    cr_assert_str_eq(err, want);
}

Test(input_limit, parsing_is_strict) {
    cr_assert_eq(limit_of("1048576"), 1048576);
    cr_assert_eq(limit_of("1"), 1);
    cr_assert_eq(limit_of("1k"), 1024);
    cr_assert_eq(limit_of("512M"), 512ull << 20);
    cr_assert_eq(limit_of("4G"), 4ull << 30);
    cr_assert_eq(limit_of("2T"), 2ull << 40);
    cr_assert_eq(limit_of("18446744073709551615"), UINT64_MAX);
    const char *bad[] = {"",          "abc", "1x",  "-1",   "0",    "0M", " 1",
                         "1 ",        "1 M", "1MB", "1.5G", "0x10", "+5", "18446744073709551616",
                         "16777216T", "1MM"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) limit_rejected(bad[i]);
}

Test(input_limit, default_is_at_most_4_gib_and_half_the_memory) {
    cr_assert_eq(unsetenv("TT_MAX_INPUT_BYTES"), 0);
    uint64_t n = 0;
    cr_assert(tt_input_limit(&n, err, sizeof err), "%s", err);
    uint64_t phys = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGE_SIZE);
    cr_assert_eq(n, phys / 2 < (4ull << 30) ? phys / 2 : 4ull << 30);
}

Test(input_limit, sizes_in_messages) {
    char b[32];
    cr_assert_str_eq(tt_format_bytes(0, b, sizeof b), "0 bytes");
    cr_assert_str_eq(tt_format_bytes(1, b, sizeof b), "1 byte");
    cr_assert_str_eq(tt_format_bytes(1023, b, sizeof b), "1023 bytes");
    cr_assert_str_eq(tt_format_bytes(1024, b, sizeof b), "1.0 KiB");
    cr_assert_str_eq(tt_format_bytes(1536, b, sizeof b), "1.5 KiB");
    cr_assert_str_eq(tt_format_bytes(MIB, b, sizeof b), "1.0 MiB");
    cr_assert_str_eq(tt_format_bytes(4ull << 30, b, sizeof b), "4.0 GiB");
}

Test(input_limit, exactly_the_limit_is_read_one_more_byte_is_not) {
    cr_assert_eq(setenv("TT_MAX_INPUT_BYTES", "1000", 1), 0);
    char text[1001];
    memset(text, 'a', sizeof text);
    size_t len;
    const char *p = tu_write_bytes("at.txt", text, 1000);
    char *s = tt_read_data_file(p, &len, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    cr_assert_eq(len, 1000);
    cr_assert_eq(s[1000], 0);
    free(s);
    p = tu_write_bytes("over.txt", text, 1001);
    cr_assert_null(tt_read_data_file(p, &len, err, sizeof err));
    assert_err(p, "file size of 1001 bytes exceeds the input limit of 1000 bytes "
                  "(TT_MAX_INPUT_BYTES)");
    /* the same through gzip: the size is found while inflating */
    p = write_gz("at.txt.gz", "", 0, "a", 1000);
    s = tt_read_data_file(p, &len, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    cr_assert_eq(len, 1000);
    free(s);
    p = write_gz("over.txt.gz", "", 0, "a", 1001);
    cr_assert_null(tt_read_data_file(p, &len, err, sizeof err));
    assert_err(p, "decompressed size exceeds the input limit of 1000 bytes (TT_MAX_INPUT_BYTES)");
}

Test(input_limit, text_bomb) {
    const char *p = write_gz("bomb.txt.gz", "", 0, "tt", 3 * MIB);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_lt(st.st_size, 16 * 1024, "the bomb is small on disk");
    size_t len;
    cr_assert_null(tt_read_data_file(p, &len, err, sizeof err));
    assert_err(p, BOMB_MSG);
    /* sources too (tt_read_file reads scripts) */
    cr_assert_null(tt_read_file(p, &len, err, sizeof err));
    assert_err(p, BOMB_MSG);
}

Test(input_limit, lying_gzip_trailer_is_only_a_hint) {
    /* ISIZE says 4 GiB - 16: the buffer must not be sized by it, and the
     * length check at the end of the member fails */
    const char *text = "1,2\n3,4\n";
    const char *p = write_gz("lie.csv.gz", text, strlen(text), "x", strlen(text));
    FILE *f = fopen(p, "r+b");
    cr_assert_not_null(f);
    fseek(f, -4, SEEK_END);
    fwrite("\xf0\xff\xff\xff", 1, 4, f);
    fclose(f);
    IoTensor x, y;
    cr_assert_not(io_load_csv(p, -1, &x, &y, err, sizeof err));
    assert_err(p, "corrupt gzip data: incorrect length check");
}

Test(input_limit, gzip_members_and_trailing_garbage) {
    /* two members are one file, as gzip -d reads them */
    size_t z1, z2;
    unsigned char *a = gz_bytes("1,2\n", 4, &z1), *b = gz_bytes("3,4\n", 4, &z2);
    unsigned char both[256];
    memcpy(both, a, z1);
    memcpy(both + z1, b, z2);
    IoTensor x, y;
    const char *p = tu_write_bytes("two.csv.gz", both, z1 + z2);
    cr_assert(io_load_csv(p, -1, &x, &y, err, sizeof err), "%s", err);
    cr_assert_eq(x.shape.d[0], 2);
    io_tensor_free(&x);
    io_tensor_free(&y);
    /* bytes after the data that are not another member are damage */
    memcpy(both + z1, "junk", 4);
    p = tu_write_bytes("junk.csv.gz", both, z1 + 4);
    cr_assert_not(io_load_csv(p, -1, &x, &y, err, sizeof err));
    assert_err(p, "corrupt gzip data: unexpected bytes after the compressed data");
    free(a);
    free(b);
}

Test(input_limit, weights_bomb) {
    /* load(net, "w.safetensors.gz"): a header length, then a flood */
    const char *p = write_gz("w.safetensors.gz", "\x10\0\0\0\0\0\0\0{}", 10, " ", 2 * MIB);
    IoNamed *ts;
    int n;
    cr_assert_not(io_load_safetensors(p, &ts, &n, err, sizeof err));
    cr_assert_null(ts);
    assert_err(p, BOMB_MSG);
}

/* ================================== CSV ================================== */

Test(input_limit, csv_bomb) {
    const char *p = write_gz("bomb.csv.gz", "", 0, "1,2\n", 2 * MIB);
    IoTensor x, y;
    cr_assert_not(io_load_csv(p, -1, &x, &y, err, sizeof err));
    cr_assert_null(x.data);
    cr_assert_null(y.data);
    assert_err(p, BOMB_MSG);
    /* under the limit, the same data loads */
    cr_assert_eq(setenv("TT_MAX_INPUT_BYTES", "3M", 1), 0);
    cr_assert(io_load_csv(p, -1, &x, &y, err, sizeof err), "%s", err);
    cr_assert_eq(x.shape.d[0], 2 * MIB / 4);
    io_tensor_free(&x);
    io_tensor_free(&y);
}

Test(input_limit, csv_plain_file_over_the_limit) {
    cr_assert_eq(setenv("TT_MAX_INPUT_BYTES", "1000", 1), 0);
    char text[2001];
    for (int i = 0; i < 500; i++) memcpy(text + 4 * i, "1,2\n", 4);
    const char *p = tu_write_bytes("big.csv", text, 2000);
    IoTensor x, y;
    cr_assert_not(io_load_csv(p, -1, &x, &y, err, sizeof err));
    assert_err(p,
               "file size of 2.0 KiB exceeds the input limit of 1000 bytes (TT_MAX_INPUT_BYTES)");
}

Test(input_limit, csv_from_memory_gz_and_plain) {
    const char *text = "a,b\n1,2\n3,4\n";
    size_t zl;
    unsigned char *z = gz_bytes(text, strlen(text), &zl);
    IoTensor x, y;
    cr_assert(io_parse_csv("m.csv.gz", z, zl, 1, &x, &y, err, sizeof err), "%s", err);
    cr_assert_eq(((int32_t *)y.data)[1], 4);
    io_tensor_free(&x);
    io_tensor_free(&y);
    cr_assert(io_parse_csv("m.csv", text, strlen(text), 1, &x, &y, err, sizeof err), "%s", err);
    cr_assert_eq(((float *)x.data)[1], 3.0f);
    io_tensor_free(&x);
    io_tensor_free(&y);
    /* the gzip bytes named as a plain CSV are not numbers */
    cr_assert_not(io_parse_csv("m.csv", z, zl, 1, &x, &y, err, sizeof err));
    cr_assert(strncmp(err, "m.csv", 5) == 0, "%s", err);
    free(z);
}

/* ================================== IDX ================================== */

/* magic 0 0 type ndim, then big-endian dims */
static size_t idx_head(unsigned char *b, int type, int ndim, const uint32_t *dims) {
    b[0] = 0, b[1] = 0, b[2] = (unsigned char)type, b[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        b[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        b[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        b[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        b[7 + 4 * i] = (unsigned char)dims[i];
    }
    return 4 + 4 * (size_t)ndim;
}

Test(input_limit, idx_header_claiming_more_than_the_limit) {
    unsigned char b[64];
    size_t n = idx_head(b, 0x08, 2, (uint32_t[]){2048, 1024});
    const char *msg = "dimensions [2048, 1024] make a file of 2097164 bytes, more than the input "
                      "limit of 1.0 MiB (TT_MAX_INPUT_BYTES)";
    IoTensor t;
    /* refused on the header alone: plain, gzipped, and with the data there */
    const char *p = tu_write_bytes("claim.idx", b, n);
    cr_assert_not(io_load_idx(p, &t, err, sizeof err));
    assert_err(p, msg);
    p = write_gz("claim.idx.gz", b, n, "\x01", n + 2048 * 1024);
    cr_assert_not(io_load_idx(p, &t, err, sizeof err));
    cr_assert_null(t.data);
    assert_err(p, msg);
    /* f64 makes the same count 8 times larger */
    n = idx_head(b, 0x0E, 1, (uint32_t[]){1u << 17});
    p = tu_write_bytes("f64.idx", b, n);
    cr_assert_not(io_load_idx(p, &t, err, sizeof err));
    assert_err(p, "dimensions [131072] make a file of 1048584 bytes, more than the input limit of "
                  "1.0 MiB (TT_MAX_INPUT_BYTES)");
}

Test(input_limit, idx_gz_longer_than_its_header_stops_early) {
    /* [2, 3] of u8 followed by 4 MiB more: reading stops one byte past the
     * 6 the header asks for, so this is a size mismatch, not the limit */
    unsigned char b[64];
    size_t n = idx_head(b, 0x08, 2, (uint32_t[]){2, 3});
    const char *p = write_gz("long.idx.gz", b, n, "\x07", n + 4 * MIB);
    IoTensor t;
    cr_assert_not(io_load_idx(p, &t, err, sizeof err));
    assert_err(p, "size mismatch: dimensions [2, 3] need 6 bytes of data, the file has more");
    /* exactly the data: loads */
    p = write_gz("exact.idx.gz", b, n, "\x07", n + 6);
    cr_assert(io_load_idx(p, &t, err, sizeof err), "%s", err);
    cr_assert_eq(((float *)t.data)[5], 7.0f);
    io_tensor_free(&t);
}

Test(input_limit, idx_header_claiming_more_than_the_data) {
    unsigned char b[64];
    size_t n = idx_head(b, 0x08, 3, (uint32_t[]){1000, 28, 28});
    const char *p = write_gz("short.idx.gz", b, n, "\x02", n + 100);
    IoTensor t;
    cr_assert_not(io_load_idx(p, &t, err, sizeof err));
    assert_err(p, "truncated: dimensions [1000, 28, 28] need 784000 bytes of data, the file has "
                  "100");
    /* a gzip stream that ends inside the header */
    p = write_gz("hdr.idx.gz", b, 9, "x", 9);
    cr_assert_not(io_load_idx(p, &t, err, sizeof err));
    assert_err(p, "truncated: header needs 16 bytes, the file has 9");
}

Test(input_limit, idx_from_memory) {
    unsigned char b[64];
    size_t n = idx_head(b, 0x0C, 1, (uint32_t[]){2});
    memcpy(b + n, "\x00\x00\x00\x05\xff\xff\xff\xfe", 8);
    IoTensor t;
    cr_assert(io_parse_idx("m.idx", b, n + 8, &t, err, sizeof err), "%s", err);
    cr_assert(((int32_t *)t.data)[0] == 5 && ((int32_t *)t.data)[1] == -2);
    io_tensor_free(&t);
    size_t zl;
    unsigned char *z = gz_bytes(b, n + 8, &zl);
    cr_assert(io_parse_idx("m.idx.gz", z, zl, &t, err, sizeof err), "%s", err);
    cr_assert_eq(((int32_t *)t.data)[1], -2);
    io_tensor_free(&t);
    /* a truncated stream in memory */
    cr_assert_not(io_parse_idx("m.idx.gz", z, zl - 5, &t, err, sizeof err));
    cr_assert_str_eq(err, "m.idx.gz: corrupt or truncated gzip data");
    free(z);
}

/* ================================== .npy ================================= */

/* A v1.0 file's preamble and header for dict, padded to 64 bytes. */
static size_t npy_head(unsigned char *b, const char *dict) {
    size_t hl = strlen(dict) + 1;
    size_t pad = 64 - (10 + hl) % 64;
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)(hl + pad), b[9] = (unsigned char)((hl + pad) >> 8);
    memcpy(b + 10, dict, hl - 1);
    memset(b + 10 + hl - 1, ' ', pad);
    b[10 + hl - 1 + pad] = '\n';
    return 10 + hl + pad;
}

Test(input_limit, npy_header_claiming_more_than_the_limit) {
    unsigned char b[256];
    size_t n = npy_head(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (512, 1024), }");
    const char *msg = "shape [512, 1024] of '<f4' makes a file of 2097280 bytes, more than the "
                      "input limit of 1.0 MiB (TT_MAX_INPUT_BYTES)";
    IoTensor t;
    const char *p = tu_write_bytes("claim.npy", b, n);
    cr_assert_not(io_load_npy(p, &t, err, sizeof err));
    assert_err(p, msg);
    p = write_gz("claim.npy.gz", b, n, "\x01", n + 2 * MIB);
    cr_assert_not(io_load_npy(p, &t, err, sizeof err));
    assert_err(p, msg);
}

Test(input_limit, npy_gz_longer_than_its_header_stops_early) {
    unsigned char b[256];
    size_t n = npy_head(b, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }");
    const char *p = write_gz("long.npy.gz", b, n, "\x01", n + 4 * MIB);
    IoTensor t;
    cr_assert_not(io_load_npy(p, &t, err, sizeof err));
    assert_err(p, "size mismatch: shape [2] of '<i4' needs 8 bytes of data, the file has more");
    p = write_gz("exact.npy.gz", b, n, "\x01", n + 8);
    cr_assert(io_load_npy(p, &t, err, sizeof err), "%s", err);
    cr_assert(((int32_t *)t.data)[0] == 0x01010101 && ((int32_t *)t.data)[1] == 0x01010101);
    io_tensor_free(&t);
}

Test(input_limit, npy_header_claiming_more_than_the_data) {
    unsigned char b[256];
    /* a v2.0 header length of 4 GiB - 1 in a 16-byte file */
    memcpy(b, "\x93NUMPY\x02\x00\xff\xff\xff\xff{}  ", 16);
    const char *p = tu_write_bytes("hlen.npy", b, 16);
    IoTensor t;
    cr_assert_not(io_load_npy(p, &t, err, sizeof err));
    assert_err(p, "truncated: header length is 4294967295 bytes, the file has 4 after it");
    p = write_gz("hlen.npy.gz", b, 16, "x", 16);
    cr_assert_not(io_load_npy(p, &t, err, sizeof err));
    assert_err(p, "truncated: header length is 4294967295 bytes, the file has 4 after it");
    /* a shape of 100000 floats with 12 bytes of data */
    size_t n = npy_head(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (100000,), }");
    p = write_gz("data.npy.gz", b, n, "\x01", n + 12);
    cr_assert_not(io_load_npy(p, &t, err, sizeof err));
    assert_err(p, "truncated: shape [100000] of '<f4' needs 400000 bytes of data, the file has 12");
}

Test(input_limit, npy_from_memory) {
    unsigned char b[256];
    size_t n = npy_head(b, "{'descr': '|i1', 'fortran_order': False, 'shape': (3,), }");
    memcpy(b + n, "\x01\xff\x7f", 3);
    IoTensor t;
    cr_assert(io_parse_npy("m.npy", b, n + 3, &t, err, sizeof err), "%s", err);
    cr_assert_eq(((int8_t *)t.data)[1], -1);
    io_tensor_free(&t);
    size_t zl;
    unsigned char *z = gz_bytes(b, n + 3, &zl);
    cr_assert(io_parse_npy("m.npy.gz", z, zl, &t, err, sizeof err), "%s", err);
    cr_assert_eq(((int8_t *)t.data)[2], 127);
    io_tensor_free(&t);
    free(z);
}

/* ========================= what is not a data file ========================= */

/* Every data reader must fail on path with "<path>: <msg>", at once. */
static void every_reader_fails(const char *path, const char *msg) {
    IoTensor x, y;
    cr_assert_not(io_load_csv(path, -1, &x, &y, err, sizeof err));
    assert_err(path, msg);
    cr_assert_not(io_load_idx(path, &x, err, sizeof err));
    assert_err(path, msg);
    cr_assert_not(io_load_npy(path, &x, err, sizeof err));
    assert_err(path, msg);
    size_t len;
    cr_assert_null(tt_read_data_file(path, &len, err, sizeof err));
    assert_err(path, msg);
    IoNamed *ts;
    int n;
    cr_assert_not(io_load_safetensors(path, &ts, &n, err, sizeof err));
    assert_err(path, msg);
}

Test(input_limit, dev_zero) {
    every_reader_fails("/dev/zero", "not a regular file (a character device)");
}

Test(input_limit, directory) {
    every_reader_fails(tu_scratch_dir(), "is a directory");
    /* not even as a source */
    size_t len;
    cr_assert_null(tt_read_file(tu_scratch_dir(), &len, err, sizeof err));
    assert_err(tu_scratch_dir(), "is a directory");
}

Test(input_limit, fifo_without_a_writer_does_not_block) {
    const char *p = tu_scratch_path("fifo");
    cr_assert_eq(mkfifo(p, 0600), 0);
    every_reader_fails(p, "not a regular file (a FIFO)");
    p = tu_scratch_path("fifo.csv.gz");
    cr_assert_eq(mkfifo(p, 0600), 0);
    every_reader_fails(p, "not a regular file (a FIFO)");
}

Test(input_limit, sources_may_be_pipes_but_stop_at_the_limit) {
    /* a script given as <(cmd): read, under the limit */
    cr_assert_eq(setenv("TT_MAX_INPUT_BYTES", "1000", 1), 0);
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    cr_assert_eq(write(fd[1], "print(1)\n", 9), 9);
    close(fd[1]);
    char path[64];
    snprintf(path, sizeof path, "/dev/fd/%d", fd[0]);
    size_t len;
    char *s = tt_read_file(path, &len, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    cr_assert_str_eq(s, "print(1)\n");
    free(s);
    close(fd[0]);
    /* a device that never ends stops at the limit */
    cr_assert_null(tt_read_file("/dev/zero", &len, err, sizeof err));
    assert_err("/dev/zero", "size exceeds the input limit of 1000 bytes (TT_MAX_INPUT_BYTES)");
}

/* ========================= fuzz corpus regressions ========================= */

/* Every file of tests/fuzz/corpus_<name> (seeds and crashers found by the
 * fuzz targets) is read as the target reads it: from memory, as gzip when
 * it starts with the gzip magic. It loads or fails with a message naming
 * it. */
static void replay(const char *name, int which) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus_%s", TT_SOURCE_DIR, name);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s is missing", dir);
    struct dirent *e;
    int files = 0, gz = 0;
    char path[1024];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "%s", path);
        static unsigned char buf[1 << 20];
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        bool isgz = len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b;
        gz += isgz;
        char what[64];
        snprintf(what, sizeof what, "fuzz.%s%s", name, isgz ? ".gz" : "");
        IoTensor x, y;
        for (int pass = 0; pass < (which == 0 ? 2 : 1); pass++) {
            bool ok = which == 0 ? io_parse_csv(what, buf, len, pass ? INT32_MIN : -1, &x, &y, err,
                                                sizeof err)
                      : which == 1 ? io_parse_idx(what, buf, len, &x, err, sizeof err)
                                   : io_parse_npy(what, buf, len, &x, err, sizeof err);
            if (ok) {
                io_tensor_free(&x);
                if (which == 0) io_tensor_free(&y);
            } else {
                cr_assert(strncmp(err, what, strlen(what)) == 0 && err[strlen(what)] == ':',
                          "%s: %s", path, err);
            }
        }
        files++;
    }
    closedir(d);
    cr_assert_gt(files, 2);
    cr_assert_gt(gz, 0, "%s has no gzip seed", dir);
}

Test(input_limit, fuzz_corpus_csv) {
    replay("csv", 0);
}

Test(input_limit, fuzz_corpus_idx) {
    replay("idx", 1);
}

Test(input_limit, fuzz_corpus_npy) {
    replay("npy", 2);
}
