/* test_aot_loader.c - the safetensors reader that ttc --weights-external
 * puts into objects (compiler/jit/aot_loader.c), run natively here so the
 * sanitizers watch it: good files in several spellings, every truncation
 * of a good file, random byte corruption, and each kind of mismatch. A
 * failed load must leave the weights loaded before untouched. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aot_loader.h"

/* The model's table: "a.w" f32[2, 3], "mé" i32[4], "z" i8[] (a scalar). */
static const int64_t shape_w[] = {2, 3}, shape_m[] = {4};
static const AotwTensor want[] = {{"a.w", AOTW_F32, 2, shape_w, 24},
                                  {"m\xc3\xa9", AOTW_I32, 1, shape_m, 16},
                                  {"z", AOTW_I8, 0, NULL, 1}};
#define NWANT 3

static char path[64];

static void write_file(const void *data, size_t len) {
    strcpy(path, "/tmp/tt_aotw_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert(write(fd, data, len) == (ssize_t)len);
    close(fd);
}

/* header (JSON text) + data -> a safetensors file's bytes in buf */
static size_t make(unsigned char *buf, const char *json, const void *data, size_t dlen) {
    uint64_t n = strlen(json);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(n >> (8 * i));
    memcpy(buf + 8, json, n);
    memcpy(buf + 8 + n, data, dlen);
    return 8 + n + dlen;
}

/* data: a.w = 1..6, mé = 10..13, z = -5, in that order from offset 0 */
static unsigned char payload[41];
static void fill_payload(void) {
    float w[6] = {1, 2, 3, 4, 5, 6};
    int32_t m[4] = {10, 11, 12, 13};
    memcpy(payload, w, 24);
    memcpy(payload + 24, m, 16);
    payload[40] = (unsigned char)(int8_t)-5;
}

static const char *good_json =
    "{\"a.w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
    "\"m\\u00e9\":{\"dtype\":\"I32\",\"shape\":[4],\"data_offsets\":[24,40]},"
    "\"z\":{\"dtype\":\"I8\",\"shape\":[],\"data_offsets\":[40,41]}}";

static int load(void **slots, void **block, char *err, size_t errlen) {
    int rc = tt_aotw_load(want, NWANT, slots, block, path, err, errlen);
    unlink(path);
    return rc;
}

static void expect_good(void **slots) {
    for (int k = 0; k < NWANT; k++) cr_assert_eq((uintptr_t)slots[k] % 64, 0, "slot %d", k);
    const float *w = slots[0];
    const int32_t *m = slots[1];
    cr_assert(w[0] == 1 && w[5] == 6 && m[0] == 10 && m[3] == 13);
    cr_assert_eq(*(const int8_t *)slots[2], -5);
}

Test(aot_loader, good_file_any_spelling) {
    fill_payload();
    /* key order reversed, whitespace everywhere, __metadata__ with nested
     * values, an extra tensor and keys the loader does not need */
    const char *spellings[] = {
        good_json,
        " {\n  \"__metadata__\" : {\"format\": \"pt\", \"x\": [1, {\"y\": null}], \"q\": "
        "\"}\\\"\"},\n"
        "  \"z\" : { \"shape\" : [ ] , \"data_offsets\" : [ 40 , 41 ] , \"dtype\" : \"I8\" } ,\n"
        "  \"extra\": {\"dtype\": \"BF16\", \"shape\": [1], \"data_offsets\": [0, 2]},\n"
        "  \"m\\u00E9\" :{\"data_offsets\":[24,40],\"dtype\":\"I32\",\"shape\":[4],\"k\":true},\r\n"
        "  \"a.w\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]}\t}   ",
    };
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        unsigned char buf[2048];
        write_file(buf, make(buf, spellings[i], payload, sizeof payload));
        void *slots[NWANT] = {0}, *block = NULL;
        char err[512];
        cr_assert_eq(load(slots, &block, err, sizeof err), 0, "spelling %zu: %s", i, err);
        expect_good(slots);
        tt_aotw_free(slots, NWANT, &block);
        cr_assert_null(block);
        cr_assert_null(slots[0]);
    }
}

/* Loads a bad file over good weights: refused, message has `msg`, the good
 * weights stay. */
static void expect_refused(const unsigned char *buf, size_t len, const char *msg) {
    unsigned char good[1024];
    write_file(good, make(good, good_json, payload, sizeof payload));
    void *slots[NWANT] = {0}, *block = NULL;
    char err[1024];
    cr_assert_eq(load(slots, &block, err, sizeof err), 0, "%s", err);
    void *before[NWANT];
    memcpy(before, slots, sizeof before);
    write_file(buf, len);
    cr_assert_neq(load(slots, &block, err, sizeof err), 0, "accepted a file that should fail (%s)",
                  msg);
    if (msg) cr_assert(strstr(err, msg), "message lacks '%s': %s", msg, err);
    cr_assert(strstr(err, "/tmp/tt_aotw_"), "message does not name the file: %s", err);
    cr_assert(memcmp(before, slots, sizeof before) == 0);
    expect_good(slots);
    tt_aotw_free(slots, NWANT, &block);
}

static void refused_json(const char *json, size_t dlen, const char *msg) {
    unsigned char buf[2048];
    expect_refused(buf, make(buf, json, payload, dlen), msg);
}

Test(aot_loader, mismatches_and_corruption) {
    fill_payload();
    refused_json("{\"a.w\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
                 "\"m\\u00e9\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[24,40]}}",
                 41, "tensor 'a.w' has shape [3, 2], the model expects [2, 3]");
    /* every problem listed */
    refused_json("{\"a.w\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
                 "\"m\\u00e9\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[24,40]}}",
                 41, "tensor 'm\xc3\xa9' has dtype F32, the model expects I32; missing tensor 'z'");
    refused_json("{\"a.w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]},"
                 "\"m\\u00e9\":{\"dtype\":\"I32\",\"shape\":[4],\"data_offsets\":[24,40]},"
                 "\"z\":{\"dtype\":\"I8\",\"shape\":[],\"data_offsets\":[40,41]}}",
                 41, "need 24 bytes, data_offsets give 20");
    refused_json("{\"a.w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                 "\"m\\u00e9\":{\"dtype\":\"I32\",\"shape\":[4],\"data_offsets\":[24,40]},"
                 "\"z\":{\"dtype\":\"I8\",\"shape\":[],\"data_offsets\":[9223372036854775,"
                 "9223372036854776]}}",
                 41, "run past the data");
    refused_json(
        "{\"a.w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,99999999999999999999]}}",
        41, "not valid JSON");
    refused_json(good_json, 40, "run past the data (40 bytes)");
    refused_json("{\"a.w\":1, \"a.w\":2}", 41, "not valid JSON");
    refused_json("{\"z\":{\"dtype\":\"I8\",\"shape\":[],\"data_offsets\":[40,41]},"
                 "\"z\":{\"dtype\":\"I8\",\"shape\":[],\"data_offsets\":[40,41]}}",
                 41, "names tensor 'z' twice");
    refused_json("{\"a.w\":{\"shape\":[2,3],\"data_offsets\":[0,24]}}", 41, "has no 'dtype'");
    refused_json("[1, 2]", 41, "not valid JSON");
    char trailing[512];
    snprintf(trailing, sizeof trailing, "%s x", good_json);
    refused_json(trailing, 41, "not valid JSON");
    refused_json("{\"a\\ud800\":1}", 41, "not valid JSON");
    refused_json("{}", 41, "missing tensor 'a.w'; missing tensor 'm\xc3\xa9'; missing tensor 'z'");
    /* deep nesting under a key nobody needs */
    char deep[400] = "{\"x\":";
    for (int i = 0; i < 100; i++) strcat(deep, "[");
    refused_json(deep, 41, "not valid JSON");
    /* a header length past the end, and a huge one */
    unsigned char buf[2048];
    size_t len = make(buf, good_json, payload, sizeof payload);
    buf[0] = 0xff, buf[1] = 0xff;
    expect_refused(buf, len, "header length");
    memset(buf, 0xff, 8);
    expect_refused(buf, len, "header length");
    expect_refused(buf, 0, "too short for the 8-byte header length");
    /* a missing file */
    void *slots[NWANT] = {0}, *block = NULL;
    char err[256];
    cr_assert_neq(
        tt_aotw_load(want, NWANT, slots, &block, "/nonexistent/w.safetensors", err, sizeof err), 0);
    cr_assert(strstr(err, "/nonexistent/w.safetensors: cannot open it"), "%s", err);
}

/* Every prefix of a good file, and random single-byte corruptions: never
 * a crash (the sanitizers watch); a prefix never loads. */
Test(aot_loader, truncations_and_random_bytes) {
    fill_payload();
    unsigned char good[1024], buf[1024];
    size_t len = make(good, good_json, payload, sizeof payload);
    for (size_t cut = 0; cut < len; cut++) {
        write_file(good, cut);
        void *slots[NWANT] = {0}, *block = NULL;
        char err[128];
        cr_assert_neq(load(slots, &block, err, sizeof err), 0, "a %zu-byte prefix loaded", cut);
        cr_assert_null(block);
        cr_assert(memchr(err, 0, sizeof err), "err not terminated");
    }
    uint64_t s = 42;
    for (int trial = 0; trial < 3000; trial++) {
        memcpy(buf, good, len);
        for (int k = 0; k < 1 + trial % 3; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            buf[(s >> 33) % (8 + strlen(good_json))] = (unsigned char)(s >> 17);
        }
        write_file(buf, len);
        void *slots[NWANT] = {0}, *block = NULL;
        char err[64]; /* short: messages are cut, still terminated */
        if (load(slots, &block, err, sizeof err) == 0) {
            for (int k = 0; k < NWANT; k++) cr_assert_eq((uintptr_t)slots[k] % 64, 0);
        } else {
            cr_assert(memchr(err, 0, sizeof err));
        }
        tt_aotw_free(slots, NWANT, &block);
    }
}

Test(aot_loader, null_err_and_tiny_buffers) {
    fill_payload();
    unsigned char buf[1024];
    size_t len = make(buf, "{}", payload, 1);
    void *slots[NWANT] = {0}, *block = NULL;
    write_file(buf, len);
    cr_assert_neq(load(slots, &block, NULL, 0), 0);
    char one[1] = {'x'};
    write_file(buf, len);
    cr_assert_neq(load(slots, &block, one, sizeof one), 0);
    cr_assert_eq(one[0], 0);
    /* a model with no tensors loads any well-formed file */
    write_file(buf, len);
    cr_assert_eq(tt_aotw_load(want, 0, slots, &block, path, NULL, 0), 0);
    unlink(path);
    cr_assert_not_null(block);
    tt_aotw_free(slots, 0, &block);
}
