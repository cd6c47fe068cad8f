/* fuzz_safetensors.c - libFuzzer target for the safetensors reader: any bytes
 * must either parse or fail with a message, never crash, leak or read out of
 * bounds. Seed corpus: tests/fuzz/corpus_safetensors/ (crashers found are
 * kept there and replayed by the unit test io_st::fuzz_corpus_regressions).
 *
 *   cmake -DTT_FUZZ=ON -DCMAKE_C_COMPILER=clang-19 ... && ./fuzz_safetensors \
 *       -max_total_time=60 tests/fuzz/corpus_safetensors */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    IoNamed *ts;
    int n;
    char err[512];
    if (io_parse_safetensors("fuzz.safetensors", data, size, &ts, &n, err, sizeof err)) {
        /* touch every byte handed back so ASan checks the sizes */
        volatile unsigned char sink = 0;
        for (int i = 0; i < n; i++) {
            size_t bytes = dtype_size(ts[i].t.dtype);
            for (int d = 0; d < ts[i].t.shape.ndim; d++) bytes *= (size_t)ts[i].t.shape.d[d];
            for (size_t k = 0; k < bytes; k++) sink ^= ((unsigned char *)ts[i].t.data)[k];
            sink ^= (unsigned char)strlen(ts[i].name);
        }
        (void)sink;
        io_named_free(ts, n);
    } else if (strncmp(err, "fuzz.safetensors: ", 18) != 0) {
        __builtin_trap(); /* every error names its source */
    }
    return 0;
}
