/* aot_loader.h - the safetensors reader that ttc --weights-external puts
 * into the object it writes (spec/aot.md).
 *
 * aot_loader.c is plain C on libc alone. It is built twice: into
 * tt_compiler (so unit tests run it, sanitized), and by clang into LLVM
 * bitcode that ttc embeds and links into each external-weights object
 * (aot_weights.c), where its functions become internal. The generated
 * p_load_weights passes the model's table of expected tensors.
 */
#ifndef TT_AOT_LOADER_H
#define TT_AOT_LOADER_H

#include <stddef.h>
#include <stdint.h>

/* The dtype codes of AotwTensor (safetensors' names F32, I32, I8). */
#define AOTW_F32 0
#define AOTW_I32 1
#define AOTW_I8  2

/* One tensor the model reads by name. The generated code lays this out
 * as the LLVM struct {ptr, i32, i32, ptr, i64}: keep them in step. */
typedef struct AotwTensor {
    const char *name;     /* the state name save()/load() use: "fc1.w" */
    int32_t dtype;        /* AOTW_* */
    int32_t ndim;         /* <= 8 */
    const int64_t *shape; /* ndim sizes */
    int64_t bytes;        /* numel * element size */
} AotwTensor;

/* Reads the n tensors of want from the safetensors file at path into one
 * new 64-byte-aligned block: slots[i] receives tensor i's data and *block
 * the block (free the old one first). Every name, dtype and shape is
 * checked; on any problem returns nonzero with every mismatch (or the
 * first format error) in err, NUL-terminated, and changes neither slots
 * nor *block. Returns 0 on success. */
int tt_aotw_load(const AotwTensor *want, int n, void **slots, void **block, const char *path,
                 char *err, size_t errlen);

/* Frees *block and clears it and the n slots. */
void tt_aotw_free(void **slots, int n, void **block);

#endif
