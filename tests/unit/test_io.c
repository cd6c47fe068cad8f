/* test_io.c - the tensor file formats: CSV, IDX, .npy, safetensors.
 * Each format is tested on good files (some written by NumPy, some crafted
 * byte by byte from the format's spec) and on corrupt ones, whose error
 * messages are checked word for word. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "io.h"
#include "readfile.h"
#include "scratch.h"

#ifndef TT_SOURCE_DIR
#define TT_SOURCE_DIR "."
#endif

/* Bytes of files written by numpy 1.24 np.save (see the generator in the
 * comment at the end of this block). */
static const unsigned char npy_f32_2x3[] = {
    0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00, 0x7b, 0x27, 0x64, 0x65, 0x73, 0x63,
    0x72, 0x27, 0x3a, 0x20, 0x27, 0x3c, 0x66, 0x34, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f, 0x72, 0x74,
    0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46, 0x61, 0x6c, 0x73,
    0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20, 0x28, 0x32, 0x2c, 0x20,
    0x33, 0x29, 0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a,
    0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x80, 0x40,
    0x00, 0x00, 0xa0, 0x40, 0x00, 0x00, 0xc8, 0x40};
static const unsigned char npy_i32_3[] = {
    0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00, 0x7b, 0x27, 0x64, 0x65, 0x73, 0x63,
    0x72, 0x27, 0x3a, 0x20, 0x27, 0x3c, 0x69, 0x34, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f, 0x72, 0x74,
    0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46, 0x61, 0x6c, 0x73,
    0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20, 0x28, 0x33, 0x2c, 0x29,
    0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a,
    0x01, 0x00, 0x00, 0x00, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
static const unsigned char npy_i8_scalar[] = {
    0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00, 0x7b, 0x27, 0x64, 0x65, 0x73,
    0x63, 0x72, 0x27, 0x3a, 0x20, 0x27, 0x7c, 0x69, 0x31, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f,
    0x72, 0x74, 0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46,
    0x61, 0x6c, 0x73, 0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20,
    0x28, 0x29, 0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a, 0xf9};
static const unsigned char npy_f64_2[] = {
    0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00, 0x7b, 0x27, 0x64, 0x65, 0x73, 0x63,
    0x72, 0x27, 0x3a, 0x20, 0x27, 0x3c, 0x66, 0x38, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f, 0x72, 0x74,
    0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46, 0x61, 0x6c, 0x73,
    0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20, 0x28, 0x32, 0x2c, 0x29,
    0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe0, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x8f, 0xc0};
static const unsigned char npy_i64_2[] = {
    0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00, 0x7b, 0x27, 0x64, 0x65, 0x73, 0x63,
    0x72, 0x27, 0x3a, 0x20, 0x27, 0x3c, 0x69, 0x38, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f, 0x72, 0x74,
    0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46, 0x61, 0x6c, 0x73,
    0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20, 0x28, 0x32, 0x2c, 0x29,
    0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a,
    0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
/* Generated with /usr/bin/python3 and numpy:
 *   np.save(f, np.array([[1.5, -2, 3], [4, 5, 6.25]], dtype='<f4'))   npy_f32_2x3
 *   np.save(f, np.array([1, -2, 2147483647], dtype='<i4'))            npy_i32_3
 *   np.save(f, np.array(-7, dtype='i1'))                              npy_i8_scalar
 *   np.save(f, np.array([0.5, -1e3], dtype='<f8'))                    npy_f64_2
 *   np.save(f, np.array([5, -6], dtype='<i8'))                        npy_i64_2 */

/* -- a scratch directory per test -- */

static char err[512];

static void setup(void) {
    tu_scratch_make("/tmp/tt_io");
    err[0] = 0;
}

static void teardown(void) {
    tu_scratch_remove();
}

static const char *write_text(const char *name, const char *text) {
    return tu_write_bytes(name, text, strlen(text));
}

static const char *write_gz(const char *name, const void *data, size_t len) {
    const char *p = tu_scratch_path(name);
    gzFile f = gzopen(p, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(gzwrite(f, data, (unsigned)len), (int)len);
    gzclose(f);
    return p;
}

/* The file's bytes (tu_read_file). */
static unsigned char *slurp(const char *path, size_t *len) {
    return (unsigned char *)tu_read_file(path, len);
}

/* err must be exactly "<path>: <msg>" */
#define assert_err(path, msg)                                                                      \
    do {                                                                                           \
        char want_[700];                                                                           \
        snprintf(want_, sizeof want_, "%s: %s", (path), (msg));                                    \
        cr_assert_str_eq(err, want_);                                                              \
    } while (0)

static bool dir_has_tmp_files(void) {
    DIR *d = opendir(tu_scratch_dir());
    bool found = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp.")) found = true;
    closedir(d);
    return found;
}

/* ================================ CSV ================================ */

TestSuite(io_csv, .init = setup, .fini = teardown);

Test(io_csv, label_last) {
    const char *p = write_text("a.csv", "1,2,3\n4,5,6\n");
    IoTensor x, y;
    cr_assert(io_load_csv(p, -1, &x, &y, err, sizeof err), "%s", err);
    cr_assert_eq(x.dtype, TY_F32);
    cr_assert_eq(x.shape.ndim, 2);
    cr_assert_eq(x.shape.d[0], 2);
    cr_assert_eq(x.shape.d[1], 2);
    float *xf = x.data;
    cr_assert(xf[0] == 1 && xf[1] == 2 && xf[2] == 4 && xf[3] == 5);
    cr_assert_eq(y.dtype, TY_I32);
    cr_assert_eq(y.shape.ndim, 1);
    cr_assert_eq(y.shape.d[0], 2);
    int32_t *yi = y.data;
    cr_assert(yi[0] == 3 && yi[1] == 6);
    io_tensor_free(&x);
    io_tensor_free(&y);
}

Test(io_csv, label_first_header_crlf_blank_spaces) {
    const char *p = write_text("b.csv", "label, a, b\r\n\r\n 7 , 1.5,-2e1\r\n\n8,\t0.25 ,3\r\n\n");
    IoTensor x, y;
    cr_assert(io_load_csv(p, 0, &x, &y, err, sizeof err), "%s", err);
    cr_assert_eq(x.shape.d[0], 2);
    cr_assert_eq(x.shape.d[1], 2);
    float *xf = x.data;
    cr_assert(xf[0] == 1.5f && xf[1] == -20.0f && xf[2] == 0.25f && xf[3] == 3.0f);
    int32_t *yi = y.data;
    cr_assert(yi[0] == 7 && yi[1] == 8);
    io_tensor_free(&x);
    io_tensor_free(&y);
}

Test(io_csv, no_label) {
    const char *p = write_text("c.csv", "1,2\n3,4\n5,6"); /* no final newline */
    IoTensor x, y;
    cr_assert(io_load_csv(p, INT32_MIN, &x, &y, err, sizeof err), "%s", err);
    cr_assert_eq(x.shape.d[0], 3);
    cr_assert_eq(x.shape.d[1], 2);
    cr_assert_eq(((float *)x.data)[5], 6.0f);
    cr_assert_null(y.data);
    cr_assert_eq(y.shape.ndim, 0);
    io_tensor_free(&x);
}

Test(io_csv, numbers_match_strtod) {
    /* the fast path and strtod agree, to the bit */
    const char *nums[] = {"0.1",
                          "123456.789",
                          "-0.000123",
                          "3.14159265358979",
                          "1e-7",
                          "99999999999999999999",
                          "0.30000000000000004",
                          ".5",
                          "5.",
                          "+2"};
    char text[400] = "";
    for (int i = 0; i < 10; i++) {
        strcat(text, nums[i]);
        strcat(text, i == 9 ? "\n" : ",");
    }
    const char *p = write_text("n.csv", text);
    IoTensor x, y;
    cr_assert(io_load_csv(p, INT32_MIN, &x, &y, err, sizeof err), "%s", err);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(((float *)x.data)[i], (float)strtod(nums[i], NULL), "%s", nums[i]);
    io_tensor_free(&x);
}

Test(io_csv, iris) {
    IoTensor x, y;
    cr_assert(io_load_csv(TT_SOURCE_DIR "/data/iris.csv", -1, &x, &y, err, sizeof err), "%s", err);
    cr_assert_eq(x.shape.d[0], 150);
    cr_assert_eq(x.shape.d[1], 4);
    cr_assert_float_eq(((float *)x.data)[0], 5.1f, 1e-6);
    int counts[3] = {0};
    for (int i = 0; i < 150; i++) {
        int32_t l = ((int32_t *)y.data)[i];
        cr_assert(l >= 0 && l <= 2);
        counts[l]++;
    }
    cr_assert(counts[0] == 50 && counts[1] == 50 && counts[2] == 50);
    io_tensor_free(&x);
    io_tensor_free(&y);
}

Test(io_csv, digits_gz) {
    IoTensor x, y;
    cr_assert(io_load_csv(TT_SOURCE_DIR "/data/digits.csv.gz", -1, &x, &y, err, sizeof err), "%s",
              err);
    cr_assert_eq(x.shape.d[0], 1797);
    cr_assert_eq(x.shape.d[1], 64);
    cr_assert_eq(y.shape.d[0], 1797);
    for (int i = 0; i < 1797 * 64; i++) {
        float v = ((float *)x.data)[i];
        cr_assert(v >= 0 && v <= 16 && v == floorf(v));
    }
    cr_assert_eq(((int32_t *)y.data)[0], 0);
    cr_assert_eq(((int32_t *)y.data)[1], 1);
    io_tensor_free(&x);
    io_tensor_free(&y);
}

Test(io_csv, large_file) {
    /* 60,000 rows of 785 small integers, like Fashion-MNIST as CSV: a block
     * of 256 distinct rows written over and over */
    const char *p = tu_scratch_path("big.csv");
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    char *block = malloc(256 * 785 * 4 + 1), *q = block;
    for (int r = 0; r < 256; r++)
        for (int c = 0; c < 785; c++)
            q += sprintf(q, "%d%c", c == 784 ? r % 10 : (r + c) % 256, c == 784 ? '\n' : ',');
    for (int r = 0; r < 60000; r += 256) {
        int rows = 60000 - r < 256 ? 60000 - r : 256;
        const char *end = block;
        for (int k = 0; k < rows; k++) end = strchr(end, '\n') + 1;
        fwrite(block, 1, (size_t)(end - block), f);
    }
    free(block);
    fclose(f);
    IoTensor x, y;
    cr_assert(io_load_csv(p, -1, &x, &y, err, sizeof err), "%s", err);
    cr_assert_eq(x.shape.d[0], 60000);
    cr_assert_eq(x.shape.d[1], 784);
    /* row 59999 is block row 59999 % 256 = 95 */
    cr_assert_eq(((float *)x.data)[784 * 59999 + 783], (float)((95 + 783) % 256));
    cr_assert_eq(((int32_t *)y.data)[59999], 5);
    io_tensor_free(&x);
    io_tensor_free(&y);
}

Test(io_csv, gz_compressed) {
    const char *text = "a,b\n1,2\n3,4\n";
    const char *p = write_gz("g.csv.gz", text, strlen(text));
    IoTensor x, y;
    cr_assert(io_load_csv(p, 1, &x, &y, err, sizeof err), "%s", err);
    cr_assert_eq(x.shape.d[0], 2);
    cr_assert_eq(((int32_t *)y.data)[1], 4);
    io_tensor_free(&x);
    io_tensor_free(&y);
}

/* Loading path must fail with exactly "<path>:<line>: <msg>" (line > 0) or
 * "<path>: <msg>" (line 0), leaving both tensors empty. */
static void csv_fails(const char *name, const char *text, int label, int line, const char *msg) {
    const char *p = write_text(name, text);
    IoTensor x, y;
    cr_assert_not(io_load_csv(p, label, &x, &y, err, sizeof err), "%s loaded", text);
    cr_assert_null(x.data);
    cr_assert_null(y.data);
    char want[700];
    if (line)
        snprintf(want, sizeof want, "%s:%d: %s", p, line, msg);
    else
        snprintf(want, sizeof want, "%s: %s", p, msg);
    cr_assert_str_eq(err, want);
}

Test(io_csv, errors) {
    csv_fails("e1.csv", "1,2,3\n4,5,6\n\n7,8\n", -1, 4, "expected 3 fields, got 2");
    csv_fails("e2.csv", "1,2,3\n4,5,6,7\n", -1, 2, "expected 3 fields, got 4");
    csv_fails("e3.csv", "h1,h2\n1,2\n3,abc\n", -1, 3, "field 2 is not a number: 'abc'");
    csv_fails("e4.csv", "1,2\n3, 4x \n", -1, 2, "field 2 is not a number: '4x'");
    csv_fails("e5.csv", "1,2\n,4\n", -1, 2, "field 1 is empty");
    csv_fails("e6.csv", "1,2\n3,\n", -1, 2, "field 2 is empty");
    csv_fails("e7.csv", "1,2\n3,2.5\n", -1, 2, "label (field 2) is not an integer: '2.5'");
    csv_fails("e8.csv", "1,nan\n", -1, 1, "label (field 2) is not an integer: 'nan'");
    csv_fails("e9.csv", "1,1e10\n", -1, 1, "label (field 2) is not an integer: '1e10'");
    csv_fails("e10.csv", "", -1, 0, "no data rows");
    csv_fails("e11.csv", "a,b,c\n\n", -1, 0, "no data rows");
    csv_fails("e12.csv", "1,2\n", 2, 0, "label column 2 is out of range (rows have 2 fields)");
    csv_fails("e13.csv", "1,2\n", -3, 0, "label column -3 is out of range (rows have 2 fields)");
    csv_fails("e14.csv", "1\n2\n", 0, 0,
              "rows have a single field: nothing is left besides the label");
    csv_fails("e15.csv", "1,2\n3,4\n5,6\n\"x\",7\n", INT32_MIN, 4,
              "field 1 is not a number: '\"x\"'");
}

Test(io_csv, long_field_is_shortened) {
    char text[300] = "1,2\n3,";
    for (int i = 0; i < 100; i++) strcat(text, "z");
    strcat(text, "\n");
    const char *p = write_text("long.csv", text);
    IoTensor x, y;
    cr_assert_not(io_load_csv(p, -1, &x, &y, err, sizeof err));
    cr_assert(strstr(err, ":2: field 2 is not a number: 'zzz"), "%s", err);
    cr_assert(strstr(err, "...'"), "%s", err);
}

Test(io_csv, missing_file_and_bad_gzip) {
    IoTensor x, y;
    const char *p = tu_scratch_path("nope.csv");
    cr_assert_not(io_load_csv(p, -1, &x, &y, err, sizeof err));
    assert_err(p, "cannot open: No such file or directory");
    const char *g = write_text("bad.csv.gz", "this is not gzip but long enough to read\n");
    cr_assert_not(io_load_csv(g, -1, &x, &y, err, sizeof err));
    /* zlib passes non-gzip data through unchanged: then it is a CSV error */
    cr_assert(strncmp(err, g, strlen(g)) == 0, "%s", err);
    /* a truncated gzip stream */
    const char *text = "1,2\n3,4\n5,6\n7,8\n9,10\n11,12\n";
    const char *t = write_gz("t.csv.gz", text, strlen(text));
    size_t len;
    unsigned char *b = slurp(t, &len);
    t = tu_write_bytes("t.csv.gz", b, len - 6);
    free(b);
    cr_assert_not(io_load_csv(t, -1, &x, &y, err, sizeof err));
    cr_assert(strncmp(err, t, strlen(t)) == 0 && strstr(err, "gzip"), "%s", err);
}

/* ================================ IDX ================================ */

TestSuite(io_idx, .init = setup, .fini = teardown);

/* Builds an IDX file: magic 0 0 type ndim, big-endian dims, then payload. */
static size_t idx_build(unsigned char *b, int type, int ndim, const uint32_t *dims,
                        const void *payload, size_t plen) {
    b[0] = 0, b[1] = 0, b[2] = (unsigned char)type, b[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        b[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        b[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        b[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        b[7 + 4 * i] = (unsigned char)dims[i];
    }
    memcpy(b + 4 + 4 * ndim, payload, plen);
    return 4 + 4 * (size_t)ndim + plen;
}

Test(io_idx, u8_images_and_gz) {
    unsigned char b[64];
    const unsigned char px[6] = {0, 1, 127, 128, 254, 255};
    size_t n = idx_build(b, 0x08, 2, (uint32_t[]){2, 3}, px, 6);
    const char *paths[2] = {tu_write_bytes("u8.idx", b, n), write_gz("u8.idx.gz", b, n)};
    for (int k = 0; k < 2; k++) {
        IoTensor t;
        cr_assert(io_load_idx(paths[k], &t, err, sizeof err), "%s", err);
        cr_assert_eq(t.dtype, TY_F32);
        cr_assert_eq(t.shape.ndim, 2);
        cr_assert(t.shape.d[0] == 2 && t.shape.d[1] == 3);
        for (int i = 0; i < 6; i++) cr_assert_eq(((float *)t.data)[i], (float)px[i]);
        io_tensor_free(&t);
    }
}

Test(io_idx, signed_and_float_types) {
    unsigned char b[64];
    IoTensor t;
    /* i8 */
    size_t n = idx_build(b, 0x09, 1, (uint32_t[]){3}, (unsigned char[]){0x80, 0x7f, 0xff}, 3);
    cr_assert(io_load_idx(tu_write_bytes("i8.idx", b, n), &t, err, sizeof err), "%s", err);
    cr_assert_eq(t.dtype, TY_I32);
    cr_assert(((int32_t *)t.data)[0] == -128 && ((int32_t *)t.data)[1] == 127 &&
              ((int32_t *)t.data)[2] == -1);
    io_tensor_free(&t);
    /* i16, big-endian */
    n = idx_build(b, 0x0B, 1, (uint32_t[]){2}, (unsigned char[]){0xff, 0xfe, 0x01, 0x02}, 4);
    cr_assert(io_load_idx(tu_write_bytes("i16.idx", b, n), &t, err, sizeof err), "%s", err);
    cr_assert(((int32_t *)t.data)[0] == -2 && ((int32_t *)t.data)[1] == 258);
    io_tensor_free(&t);
    /* i32 */
    n = idx_build(b, 0x0C, 1, (uint32_t[]){1}, (unsigned char[]){0x80, 0, 0, 1}, 4);
    cr_assert(io_load_idx(tu_write_bytes("i32.idx", b, n), &t, err, sizeof err), "%s", err);
    cr_assert_eq(((int32_t *)t.data)[0], INT32_MIN + 1);
    io_tensor_free(&t);
    /* f32 1.5 = 0x3fc00000 */
    n = idx_build(b, 0x0D, 1, (uint32_t[]){1}, (unsigned char[]){0x3f, 0xc0, 0, 0}, 4);
    cr_assert(io_load_idx(tu_write_bytes("f32.idx", b, n), &t, err, sizeof err), "%s", err);
    cr_assert_eq(t.dtype, TY_F32);
    cr_assert_eq(((float *)t.data)[0], 1.5f);
    io_tensor_free(&t);
    /* f64 -2.25 = 0xc002000000000000 */
    n = idx_build(b, 0x0E, 1, (uint32_t[]){1}, (unsigned char[]){0xc0, 0x02, 0, 0, 0, 0, 0, 0}, 8);
    cr_assert(io_load_idx(tu_write_bytes("f64.idx", b, n), &t, err, sizeof err), "%s", err);
    cr_assert_eq(t.dtype, TY_F32);
    cr_assert_eq(((float *)t.data)[0], -2.25f);
    io_tensor_free(&t);
}

static void idx_fails(const char *name, const unsigned char *b, size_t n, const char *msg) {
    const char *p = tu_write_bytes(name, b, n);
    IoTensor t;
    cr_assert_not(io_load_idx(p, &t, err, sizeof err));
    cr_assert_null(t.data);
    assert_err(p, msg);
}

Test(io_idx, corrupt) {
    unsigned char b[128];
    size_t n = idx_build(b, 0x08, 2, (uint32_t[]){2, 3}, "abcdef", 6);
    idx_fails("short.idx", b, 3, "not an IDX file (only 3 bytes)");
    idx_fails("trunc.idx", b, n - 1,
              "truncated: dimensions [2, 3] need 6 bytes of data, the file has 5");
    unsigned char longer[128];
    memcpy(longer, b, n);
    longer[n] = 'x';
    idx_fails("long.idx", longer, n + 1,
              "size mismatch: dimensions [2, 3] need 6 bytes of data, the file has 7");
    idx_fails("hdr.idx", b, 9, "truncated: header needs 12 bytes, the file has 9");
    b[0] = 0x1f;
    idx_fails("magic.idx", b, n, "not an IDX file (magic 0x1f000802)");
    b[0] = 0, b[2] = 0x0A;
    idx_fails("type.idx", b, n, "unknown IDX data type 0x0a (magic 0x00000a02)");
    b[2] = 0x08, b[3] = 0;
    idx_fails("nd0.idx", b, n, "IDX file has 0 dimensions (1 to 8 are supported)");
    b[3] = 9;
    idx_fails("nd9.idx", b, n, "IDX file has 9 dimensions (1 to 8 are supported)");
    /* 8 dims of 0xffffffff: the element count overflows 64 bits */
    uint32_t big[8] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu,
                       0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    n = idx_build(b, 0x0E, 8, big, "", 0);
    idx_fails("huge.idx", b, n,
              "dimensions [4294967295, 4294967295, 4294967295, 4294967295, 4294967295, "
              "4294967295, 4294967295, 4294967295] are too large");
    /* two dims whose product fits in 64 bits but not once multiplied by 8 */
    n = idx_build(b, 0x0E, 2, (uint32_t[]){0xffffffffu, 0x7fffffffu}, "", 0);
    idx_fails("huge2.idx", b, n, "dimensions [4294967295, 2147483647] are too large");
    /* a large but representable size: only 16 bytes of payload are there */
    n = idx_build(b, 0x08, 3, (uint32_t[]){60000, 28, 28}, "0123456789abcdef", 16);
    idx_fails("short3.idx", b, n,
              "truncated: dimensions [60000, 28, 28] need 47040000 bytes of data, the file has 16");
}

Test(io_idx, missing_and_corrupt_gz) {
    IoTensor t;
    const char *p = tu_scratch_path("none.idx.gz");
    cr_assert_not(io_load_idx(p, &t, err, sizeof err));
    assert_err(p, "cannot open: No such file or directory");
    unsigned char b[64];
    size_t n =
        idx_build(b, 0x08, 1, (uint32_t[]){40}, "0123456789012345678901234567890123456789", 40);
    const char *g = write_gz("c.idx.gz", b, n);
    size_t len;
    unsigned char *z = slurp(g, &len);
    z[len - 1] ^= 0xff; /* break the length trailer */
    g = tu_write_bytes("c.idx.gz", z, len);
    free(z);
    cr_assert_not(io_load_idx(g, &t, err, sizeof err));
    cr_assert(strncmp(err, g, strlen(g)) == 0 && strstr(err, "gzip"), "%s", err);
}

#define FMNIST "/usr/share/datasets/fashion-mnist/"

Test(io_idx, fashion_mnist_t10k) {
    if (access(FMNIST "t10k-labels-idx1-ubyte.gz", R_OK) != 0 ||
        access(FMNIST "t10k-images-idx3-ubyte.gz", R_OK) != 0)
        cr_skip_test("Fashion-MNIST is not installed (dataset-fashion-mnist)");
    IoTensor l, im;
    cr_assert(io_load_idx(FMNIST "t10k-labels-idx1-ubyte.gz", &l, err, sizeof err), "%s", err);
    cr_assert_eq(l.dtype, TY_F32);
    cr_assert_eq(l.shape.ndim, 1);
    cr_assert_eq(l.shape.d[0], 10000);
    int counts[10] = {0};
    for (int i = 0; i < 10000; i++) {
        float v = ((float *)l.data)[i];
        cr_assert(v >= 0 && v <= 9 && v == floorf(v));
        counts[(int)v]++;
    }
    for (int c = 0; c < 10; c++) cr_assert_eq(counts[c], 1000);
    cr_assert(io_load_idx(FMNIST "t10k-images-idx3-ubyte.gz", &im, err, sizeof err), "%s", err);
    cr_assert_eq(im.shape.ndim, 3);
    cr_assert(im.shape.d[0] == 10000 && im.shape.d[1] == 28 && im.shape.d[2] == 28);
    float mx = 0;
    for (int i = 0; i < 10000 * 784; i++)
        if (((float *)im.data)[i] > mx) mx = ((float *)im.data)[i];
    cr_assert_eq(mx, 255.0f);
    io_tensor_free(&l);
    io_tensor_free(&im);
}

/* ================================ .npy ================================ */

TestSuite(io_npy, .init = setup, .fini = teardown);

Test(io_npy, load_numpy_files) {
    IoTensor t;
    cr_assert(
        io_load_npy(tu_write_bytes("f.npy", npy_f32_2x3, sizeof npy_f32_2x3), &t, err, sizeof err),
        "%s", err);
    cr_assert_eq(t.dtype, TY_F32);
    cr_assert(t.shape.ndim == 2 && t.shape.d[0] == 2 && t.shape.d[1] == 3);
    const float want[6] = {1.5f, -2, 3, 4, 5, 6.25f};
    cr_assert_arr_eq(t.data, want, sizeof want);
    io_tensor_free(&t);

    cr_assert(
        io_load_npy(tu_write_bytes("i.npy", npy_i32_3, sizeof npy_i32_3), &t, err, sizeof err),
        "%s", err);
    cr_assert_eq(t.dtype, TY_I32);
    cr_assert(t.shape.ndim == 1 && t.shape.d[0] == 3);
    cr_assert_arr_eq(t.data, ((int32_t[]){1, -2, 2147483647}), 12);
    io_tensor_free(&t);

    cr_assert(io_load_npy(tu_write_bytes("s.npy", npy_i8_scalar, sizeof npy_i8_scalar), &t, err,
                          sizeof err),
              "%s", err);
    cr_assert_eq(t.dtype, TY_I8);
    cr_assert_eq(t.shape.ndim, 0);
    cr_assert_eq(((int8_t *)t.data)[0], -7);
    io_tensor_free(&t);

    cr_assert(
        io_load_npy(tu_write_bytes("d.npy", npy_f64_2, sizeof npy_f64_2), &t, err, sizeof err),
        "%s", err);
    cr_assert_eq(t.dtype, TY_F32);
    cr_assert_arr_eq(t.data, ((float[]){0.5f, -1000.0f}), 8);
    io_tensor_free(&t);

    cr_assert(
        io_load_npy(tu_write_bytes("l.npy", npy_i64_2, sizeof npy_i64_2), &t, err, sizeof err),
        "%s", err);
    cr_assert_eq(t.dtype, TY_I32);
    cr_assert_arr_eq(t.data, ((int32_t[]){5, -6}), 8);
    io_tensor_free(&t);
}

Test(io_npy, version_2_header) {
    /* the same array with a 4-byte header length (format 2.0) */
    unsigned char b[sizeof npy_f32_2x3 + 2];
    size_t hlen = npy_f32_2x3[8] | npy_f32_2x3[9] << 8;
    memcpy(b, npy_f32_2x3, 8);
    b[6] = 2;
    b[8] = (unsigned char)hlen, b[9] = 0, b[10] = 0, b[11] = 0;
    memcpy(b + 12, npy_f32_2x3 + 10, sizeof npy_f32_2x3 - 10);
    IoTensor t;
    cr_assert(io_load_npy(tu_write_bytes("v2.npy", b, sizeof b), &t, err, sizeof err), "%s", err);
    cr_assert(t.shape.ndim == 2 && ((float *)t.data)[5] == 6.25f);
    io_tensor_free(&t);
}

static void save_matches(const IoTensor *t, const unsigned char *want, size_t wlen) {
    const char *p = tu_scratch_path("out.npy");
    cr_assert(io_save_npy(p, t, err, sizeof err), "%s", err);
    size_t len;
    unsigned char *got = slurp(p, &len);
    cr_assert_eq(len, wlen);
    cr_assert_arr_eq(got, want, wlen);
    free(got);
}

Test(io_npy, save_is_byte_identical_to_numpy) {
    float f[6] = {1.5f, -2, 3, 4, 5, 6.25f};
    save_matches(&(IoTensor){TY_F32, {2, {2, 3}}, f}, npy_f32_2x3, sizeof npy_f32_2x3);
    int32_t i[3] = {1, -2, 2147483647};
    save_matches(&(IoTensor){TY_I32, {1, {3}}, i}, npy_i32_3, sizeof npy_i32_3);
    int8_t s = -7;
    save_matches(&(IoTensor){TY_I8, {0, {0}}, &s}, npy_i8_scalar, sizeof npy_i8_scalar);
    cr_assert_not(dir_has_tmp_files());
}

Test(io_npy, round_trip_shapes) {
    /* headers of many lengths, so the 64-byte padding is exercised */
    for (int nd = 0; nd <= IR_MAXDIM; nd++) {
        IoTensor t = {TY_I32, {nd, {0}}, NULL};
        int64_t n = 1;
        for (int i = 0; i < nd; i++) n *= t.shape.d[i] = (i * 7) % 3 + 1 + (i == 0 ? 1000 : 0);
        int32_t *v = malloc((size_t)n * 4);
        for (int64_t k = 0; k < n; k++) v[k] = (int32_t)(k * 2654435761u);
        t.data = v;
        const char *p = tu_scratch_path("rt.npy");
        cr_assert(io_save_npy(p, &t, err, sizeof err), "%s", err);
        size_t len;
        unsigned char *b = slurp(p, &len);
        size_t hl = b[8] | b[9] << 8;
        cr_assert_eq((10 + hl) % 64, 0);
        cr_assert_eq(b[10 + hl - 1], '\n');
        free(b);
        IoTensor u;
        cr_assert(io_load_npy(p, &u, err, sizeof err), "%s", err);
        cr_assert_eq(u.dtype, TY_I32);
        cr_assert_eq(u.shape.ndim, nd);
        cr_assert_arr_eq(u.shape.d, t.shape.d, (size_t)nd * sizeof(int64_t));
        cr_assert_arr_eq(u.data, v, (size_t)n * 4);
        io_tensor_free(&u);
        free(v);
    }
}

Test(io_npy, numpy_reads_what_we_write) {
    if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0)
        cr_skip_test("/usr/bin/python3 with numpy is not available");
    float f[6] = {1.5f, -2, 3, 4, 5, 6.25f};
    const char *p = tu_scratch_path("py.npy");
    cr_assert(io_save_npy(p, &(IoTensor){TY_F32, {2, {3, 2}}, f}, err, sizeof err), "%s", err);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import numpy as np, sys; a = np.load('%s'); "
             "sys.exit(0 if a.dtype == np.float32 and a.shape == (3, 2) and "
             "a.tolist() == [[1.5, -2.0], [3.0, 4.0], [5.0, 6.25]] else 1)\"",
             p);
    cr_assert_eq(system(cmd), 0);
}

static void npy_fails(const char *name, const void *b, size_t n, const char *msg) {
    const char *p = tu_write_bytes(name, b, n);
    IoTensor t;
    cr_assert_not(io_load_npy(p, &t, err, sizeof err));
    cr_assert_null(t.data);
    assert_err(p, msg);
}

/* A v1.0 file with the given header dict (padded as numpy pads) and payload. */
static size_t npy_build(unsigned char *b, const char *dict, const void *data, size_t dlen) {
    size_t hl = strlen(dict) + 1;
    size_t pad = 64 - (10 + hl) % 64;
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)(hl + pad), b[9] = (unsigned char)((hl + pad) >> 8);
    memcpy(b + 10, dict, hl - 1);
    memset(b + 10 + hl - 1, ' ', pad);
    b[10 + hl - 1 + pad] = '\n';
    memcpy(b + 10 + hl + pad, data, dlen);
    return 10 + hl + pad + dlen;
}

Test(io_npy, corrupt) {
    unsigned char b[512];
    npy_fails("magic.npy", "\x93NUMPX\x01\x00\x10\x00", 10, "not a NumPy file (bad magic)");
    npy_fails("short.npy", "\x93NUMPY", 6, "not a NumPy file (bad magic)");
    npy_fails("ver.npy", "\x93NUMPY\x04\x00\x10\x00", 10,
              "NumPy format version 4.0 is not supported (1.0, 2.0, 3.0)");
    npy_fails("hlen.npy", "\x93NUMPY\x01\x00\xff\x00{}", 12,
              "truncated: header length is 255 bytes, the file has 2 after it");
    npy_fails("data.npy", npy_f32_2x3, sizeof npy_f32_2x3 - 1,
              "truncated: shape [2, 3] of '<f4' needs 24 bytes of data, the file has 23");
    size_t n;
    n = npy_build(b, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
                  "0123456789abcdef", 16);
    npy_fails("fortran.npy", b, n, "Fortran order is not supported");
    n = npy_build(b, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", "0123", 4);
    npy_fails("be.npy", b, n, "dtype '>f4' is not supported (<f4, <i4, |i1, <f8, <i8)");
    n = npy_build(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", "012345", 6);
    npy_fails("extra.npy", b, n,
              "size mismatch: shape [1] of '<f4' needs 4 bytes of data, the file has 6");
    int64_t big[2] = {1, (int64_t)1 << 40};
    n = npy_build(b, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", big, 16);
    npy_fails("i8range.npy", b, n,
              "element 1 (1099511627776) of the <i8 array does not fit in i32");
    n = npy_build(b, "{'descr': '<f4', 'fortran_order': False}", "", 0);
    npy_fails("noshape.npy", b, n, "header lacks 'shape'");
    n = npy_build(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", "", 0);
    npy_fails("neg.npy", b, n, "'shape' entry 1 is not a non-negative integer");
    n = npy_build(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (1.5,), }", "", 0);
    npy_fails("real.npy", b, n, "'shape' is not a tuple of integers");
    n = npy_build(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", "",
                  0);
    npy_fails("nd9.npy", b, n, "'shape' has more than 8 dimensions");
    n = npy_build(
        b, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4), }", "",
        0);
    npy_fails("huge.npy", b, n, "shape [4294967296, 4294967296, 4] is too large");
    n = npy_build(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }",
                  "", 0);
    npy_fails("dimovf.npy", b, n, "'shape' entry 1 is not a non-negative integer");
    n = npy_build(b, "[1, 2]", "", 0);
    npy_fails("list.npy", b, n, "header is not a Python dict");
    n = npy_build(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", "0123", 4);
    npy_fails("key.npy", b, n, "unexpected key 'x' in the header");
    n = npy_build(b, "{'descr': '<f4' 'fortran_order': False}", "", 0);
    npy_fails("comma.npy", b, n, "malformed header dict at byte 16");
}

Test(io_npy, save_errors_leave_no_file) {
    float f = 1;
    const char *p = TT_SOURCE_DIR "/no/such/dir/x.npy";
    cr_assert_not(io_save_npy(p, &(IoTensor){TY_F32, {0, {0}}, &f}, err, sizeof err));
    assert_err(p, "cannot write: No such file or directory");
}

/* ============================= safetensors ============================= */

TestSuite(io_st, .init = setup, .fini = teardown);

/* 8-byte little-endian length, the header as given (no padding), the data. */
static unsigned char *st_build(const char *header, const void *data, size_t dlen, size_t *len) {
    size_t h = strlen(header);
    unsigned char *b = malloc(8 + h + dlen + 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    if (dlen) memcpy(b + 8 + h, data, dlen);
    *len = 8 + h + dlen;
    return b;
}

/* Parsing must fail with "w.safetensors: " + msg (or only start with it when
 * prefix: jansson's column numbers vary between versions). */
static void st_fails_as(const char *header, const void *data, size_t dlen, const char *msg,
                        bool prefix) {
    size_t len;
    unsigned char *b = st_build(header, data, dlen, &len);
    IoNamed *ts = (IoNamed *)1;
    int n = -1;
    cr_assert_not(io_parse_safetensors("w.safetensors", b, len, &ts, &n, err, sizeof err),
                  "%s parsed", header);
    cr_assert_null(ts);
    cr_assert_eq(n, 0);
    char want[700];
    snprintf(want, sizeof want, "w.safetensors: %s", msg);
    free(b);
    if (prefix)
        cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
    else
        cr_assert_str_eq(err, want);
}

static void st_fails(const char *header, const void *data, size_t dlen, const char *msg) {
    st_fails_as(header, data, dlen, msg, false);
}

Test(io_st, round_trip) {
    float w[6] = {1, 2, 3, 4, 5, 6};
    int32_t b[2] = {-1, 7};
    int8_t q[3] = {-128, 0, 127};
    float s = 42;
    IoNamed ts[5] = {
        {"fc1.w", {TY_F32, {2, {2, 3}}, w}}, {"fc1.b", {TY_I32, {1, {2}}, b}},
        {"q", {TY_I8, {1, {3}}, q}},         {"empty", {TY_F32, {2, {0, 4}}, NULL}},
        {"scalar", {TY_F32, {0, {0}}, &s}},
    };
    const char *p = tu_scratch_path("w.safetensors");
    cr_assert(io_save_safetensors(p, ts, 5, err, sizeof err), "%s", err);
    cr_assert_not(dir_has_tmp_files());

    size_t len;
    unsigned char *raw = slurp(p, &len);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | raw[i];
    cr_assert_eq(hl % 8, 0);
    const char *want = "{\"fc1.w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                       "\"fc1.b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[24,32]},"
                       "\"q\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[32,35]},"
                       "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[35,35]},"
                       "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[35,39]}}";
    size_t wl = strlen(want);
    cr_assert_eq(hl, (wl + 7) / 8 * 8);
    cr_assert(memcmp(raw + 8, want, wl) == 0, "%.*s", (int)hl, raw + 8);
    for (size_t i = wl; i < hl; i++) cr_assert_eq(raw[8 + i], ' ');
    cr_assert_eq(len, 8 + hl + 39);
    free(raw);

    IoNamed *out;
    int n;
    cr_assert(io_load_safetensors(p, &out, &n, err, sizeof err), "%s", err);
    cr_assert_eq(n, 5);
    for (int i = 0; i < 5; i++) {
        cr_assert_str_eq(out[i].name, ts[i].name);
        cr_assert_eq(out[i].t.dtype, ts[i].t.dtype);
        cr_assert_eq(out[i].t.shape.ndim, ts[i].t.shape.ndim);
        cr_assert_arr_eq(out[i].t.shape.d, ts[i].t.shape.d,
                         (size_t)ts[i].t.shape.ndim * sizeof(int64_t));
    }
    cr_assert_arr_eq(out[0].t.data, w, sizeof w);
    cr_assert_arr_eq(out[1].t.data, b, sizeof b);
    cr_assert_arr_eq(out[2].t.data, q, sizeof q);
    cr_assert_eq(*(float *)out[4].t.data, 42.0f);
    io_named_free(out, n);
}

Test(io_st, python_written_file) {
    /* As the Python library writes it: "__metadata__" first, header padded
     * with spaces to 8 bytes, keys not in data order. Loads in data order. */
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
                      "\"b\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[8,12]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    char padded[256];
    size_t hl = strlen(hdr), pl = (hl + 7) / 8 * 8;
    memcpy(padded, hdr, hl);
    memset(padded + hl, ' ', pl - hl);
    padded[pl] = 0;
    unsigned char data[12];
    float a[2] = {0.5f, -3};
    int32_t bv = 123456;
    memcpy(data, a, 8);
    memcpy(data + 8, &bv, 4);
    size_t len;
    unsigned char *file = st_build(padded, data, 12, &len);
    cr_assert_eq((len - 12 - 8) % 8, 0);
    IoNamed *out;
    int n;
    const char *p = tu_write_bytes("py.safetensors", file, len);
    free(file);
    cr_assert(io_load_safetensors(p, &out, &n, err, sizeof err), "%s", err);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(out[0].name, "a");
    cr_assert_str_eq(out[1].name, "b");
    cr_assert_arr_eq(out[0].t.data, a, 8);
    cr_assert_eq(out[1].t.shape.ndim, 0);
    cr_assert_eq(*(int32_t *)out[1].t.data, 123456);
    io_named_free(out, n);
}

Test(io_st, no_tensors) {
    size_t len;
    unsigned char *b = st_build("{}      ", "", 0, &len);
    IoNamed *out;
    int n;
    cr_assert(io_parse_safetensors("e.safetensors", b, len, &out, &n, err, sizeof err), "%s", err);
    cr_assert_eq(n, 0);
    io_named_free(out, n);
    free(b);
}

#define T(dtype, shape, b, e)                                                                      \
    "{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

Test(io_st, corrupt) {
    const char z[64] = {0};
    IoNamed *ts;
    int n;
    cr_assert_not(io_parse_safetensors("w.safetensors", (const unsigned char *)"\x10\0\0", 3, &ts,
                                       &n, err, sizeof err));
    cr_assert_str_eq(err,
                     "w.safetensors: truncated: 3 bytes, too short for the 8-byte header length");
    cr_assert_not(io_parse_safetensors("w.safetensors",
                                       (const unsigned char *)"\x40\0\0\0\0\0\0\0{}", 10, &ts, &n,
                                       err, sizeof err));
    cr_assert_str_eq(err, "w.safetensors: truncated or corrupt: header length is 64 bytes but only "
                          "2 follow");
    cr_assert_not(io_parse_safetensors("w.safetensors",
                                       (const unsigned char *)"\xff\xff\xff\xff\xff\xff\xff\xff{}",
                                       10, &ts, &n, err, sizeof err));
    cr_assert_str_eq(err, "w.safetensors: truncated or corrupt: header length is "
                          "18446744073709551615 bytes but only 2 follow");

    st_fails("{\"fc1.w\": {\"dtype\": F32}}", z, 0,
             "header is not valid JSON (line 1, column 21): invalid token near 'F'");
    st_fails("[1, 2]", z, 0, "header is not a JSON object");
    st_fails_as("{\"a\":" T("F32", "[1]", 0, 4) ",\"a\":" T("F32", "[1]", 4, 8) "}", z, 8,
                "header names a tensor twice (line 1, column ", true);
    st_fails("{\"fc1.w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", z, 4,
             "tensor 'fc1.w': missing 'dtype'");
    st_fails("{\"fc1.w\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}", z, 4,
             "tensor 'fc1.w': 'dtype' is not a string");
    st_fails("{\"fc1.b\":" T("BF16", "[2]", 0, 4) "}", z, 4,
             "tensor 'fc1.b': dtype BF16 is not supported (F32, I32, I8)");
    st_fails("{\"fc1.w\":" T("F32", "[784,128]", 0, 1024) "}", z, 64,
             "tensor 'fc1.w': shape [784, 128] needs 401408 bytes, data_offsets give 1024");
    st_fails("{\"fc1.w\":" T("F32", "[2]", 0, 8) "}", z, 4,
             "truncated: header says 8 bytes of data for 'fc1.w' but the file has 4");
    st_fails("{\"a\":" T("F32", "[2]", 0, 8) ",\"b\":" T("F32", "[2]", 4, 12) "}", z, 12,
             "tensors 'a' and 'b' overlap: data_offsets [0, 8] and [4, 12]");
    st_fails("{\"b\":" T("I8", "[4]", 2, 6) ",\"a\":" T("I8", "[8]", 0, 8) "}", z, 8,
             "tensors 'a' and 'b' overlap: data_offsets [0, 8] and [2, 6]");
    st_fails("{\"a\":" T("F32", "[1]", 8, 4) "}", z, 8,
             "tensor 'a': data_offsets [8, 4] end before they begin");
    st_fails("{\"a\":" T("F32", "[1]", -4, 0) "}", z, 8,
             "tensor 'a': 'data_offsets' is not a list of two non-negative integers");
    st_fails("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", z, 8,
             "tensor 'a': 'data_offsets' is not a list of two non-negative integers");
    st_fails("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", z, 8,
             "tensor 'a': missing 'data_offsets'");
    st_fails("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", z, 8,
             "tensor 'a': missing 'shape'");
    st_fails("{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", z, 8,
             "tensor 'a': 'shape' is not a list");
    st_fails("{\"a\":" T("F32", "[1,-1]", 0, 4) "}", z, 8,
             "tensor 'a': shape entry 2 is not a non-negative integer");
    st_fails("{\"a\":" T("F32", "[1.0]", 0, 4) "}", z, 8,
             "tensor 'a': shape entry 1 is not a non-negative integer");
    st_fails("{\"a\":" T("F32", "[1,1,1,1,1,1,1,1,1]", 0, 4) "}", z, 8,
             "tensor 'a': shape has 9 dimensions (at most 8 are supported)");
    st_fails("{\"a\":" T("F32", "[4294967296,4294967296]", 0, 4) "}", z, 8,
             "tensor 'a': shape [4294967296, 4294967296] is too large");
    st_fails("{\"a\":" T("I8", "[9223372036854775807,2]", 0, 4) "}", z, 8,
             "tensor 'a': shape [9223372036854775807, 2] is too large");
    st_fails("{\"a\":" T("F32", "[2305843009213693952]", 0, 4) "}", z, 8,
             "tensor 'a': shape [2305843009213693952] is too large");
    st_fails_as("{\"a\":" T("F32", "[1]", 0, 18446744073709551615) "}", z, 8,
                "header is not valid JSON (line 1, column ", true);
    st_fails("{\"a\":[1]}", z, 8, "tensor 'a': entry is not an object");
    st_fails("{\"__metadata__\":3}", z, 8, "'__metadata__' is not an object");
}

Test(io_st, zero_size_tensors_do_not_overlap) {
    size_t len;
    unsigned char *b = st_build("{\"a\":" T("F32", "[2]", 0, 8) ",\"e\":" T("F32", "[0]", 4, 4) "}",
                                "01234567", 8, &len);
    IoNamed *out;
    int n;
    cr_assert(io_parse_safetensors("z.safetensors", b, len, &out, &n, err, sizeof err), "%s", err);
    cr_assert_eq(n, 2);
    io_named_free(out, n);
    free(b);
}

Test(io_st, save_errors) {
    float w[2] = {1, 2};
    const char *p = tu_scratch_path("keep.safetensors");
    IoNamed one[1] = {{"w", {TY_F32, {1, {2}}, w}}};
    cr_assert(io_save_safetensors(p, one, 1, err, sizeof err), "%s", err);
    size_t len0;
    unsigned char *before = slurp(p, &len0);

    IoNamed dup[2] = {{"w", {TY_F32, {1, {2}}, w}}, {"w", {TY_F32, {1, {1}}, w}}};
    cr_assert_not(io_save_safetensors(p, dup, 2, err, sizeof err));
    assert_err(p, "two tensors are named 'w'");
    IoNamed meta[1] = {{"__metadata__", {TY_F32, {1, {2}}, w}}};
    cr_assert_not(io_save_safetensors(p, meta, 1, err, sizeof err));
    assert_err(p, "'__metadata__' cannot name a tensor");
    IoNamed bad[1] = {{"\xff\xfe", {TY_F32, {1, {2}}, w}}};
    cr_assert_not(io_save_safetensors(p, bad, 1, err, sizeof err));
    assert_err(p, "tensor name '\xff\xfe' is not valid UTF-8");

    /* the earlier file is untouched, and no temporary is left */
    size_t len1;
    unsigned char *after = slurp(p, &len1);
    cr_assert_eq(len0, len1);
    cr_assert_arr_eq(before, after, len0);
    free(before);
    free(after);
    cr_assert_not(dir_has_tmp_files());

    const char *q = TT_SOURCE_DIR "/no/such/dir/w.safetensors";
    cr_assert_not(io_save_safetensors(q, one, 1, err, sizeof err));
    assert_err(q, "cannot write: No such file or directory");
}

Test(io_st, every_truncation_fails_cleanly) {
    float w[6] = {1, 2, 3, 4, 5, 6};
    IoNamed ts[2] = {{"a", {TY_F32, {2, {2, 3}}, w}}, {"b", {TY_F32, {1, {2}}, w}}};
    const char *p = tu_scratch_path("t.safetensors");
    cr_assert(io_save_safetensors(p, ts, 2, err, sizeof err), "%s", err);
    size_t len;
    unsigned char *b = slurp(p, &len);
    for (size_t k = 0; k < len; k++) {
        IoNamed *out;
        int n;
        unsigned char *cut = malloc(k ? k : 1);
        memcpy(cut, b, k);
        cr_assert_not(io_parse_safetensors("t", cut, k, &out, &n, err, sizeof err), "%zu", k);
        cr_assert(strncmp(err, "t: ", 3) == 0);
        free(cut);
    }
    free(b);
}

Test(io_st, fuzz_corpus_regressions) {
    const char *dir = TT_SOURCE_DIR "/tests/fuzz/corpus_safetensors";
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s is missing", dir);
    struct dirent *e;
    int files = 0;
    char path[1024];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        IoNamed *out;
        int n;
        if (io_load_safetensors(path, &out, &n, err, sizeof err))
            io_named_free(out, n);
        else
            cr_assert(strncmp(err, path, strlen(path)) == 0, "%s", err);
        files++;
    }
    closedir(d);
    cr_assert_gt(files, 0);
}
