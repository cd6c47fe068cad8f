/* fuzz_npy.c - libFuzzer target for the .npy reader: any bytes, plain or
 * gzip (input that starts with the gzip magic is read as "fuzz.npy.gz"),
 * must load or fail with a message naming the source, never crash, leak or
 * read out of bounds. Seed corpus: tests/fuzz/corpus_npy/ (crashers found
 * are kept there and replayed by the unit test input_limit::fuzz_corpus_npy).
 *
 *   scripts/fuzz.sh   (or: build-fuzz/fuzz_npy -max_total_time=60 tests/fuzz/corpus_npy) */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"

/* A small input limit: a few kilobytes of gzip may inflate to megabytes,
 * and the limit, not libFuzzer's memory cap, must be what stops them. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    setenv("TT_MAX_INPUT_BYTES", "16M", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    const char *what = gz ? "fuzz.npy.gz" : "fuzz.npy";
    IoTensor t;
    char err[512];
    if (io_parse_npy(what, data, size, &t, err, sizeof err)) {
        /* read every byte handed back so ASan checks the size */
        size_t bytes = dtype_size(t.dtype);
        for (int d = 0; d < t.shape.ndim; d++) bytes *= (size_t)t.shape.d[d];
        volatile unsigned char sink = 0;
        for (size_t k = 0; k < bytes; k++) sink ^= ((const unsigned char *)t.data)[k];
        (void)sink;
        io_tensor_free(&t);
    } else if (strncmp(err, what, strlen(what)) != 0 || err[strlen(what)] != ':') {
        __builtin_trap(); /* every error names its source */
    } else if (t.data) {
        __builtin_trap(); /* nothing is left allocated on failure */
    }
    return 0;
}
