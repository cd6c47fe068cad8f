/* io.h - tensor file formats: CSV (optionally gzipped), IDX (the MNIST
 * format, optionally gzipped), NumPy .npy, safetensors, raw text.
 *
 * Pure data-in/data-out: no interpreter values here. Files are read through
 * lang/input.h: data files must be regular files, and nothing is read past
 * the input limit (TT_MAX_INPUT_BYTES). Every function returns
 * false with a message in err (naming the file and what is wrong, e.g.
 * "data/x.csv:12: expected 65 fields, got 64") and leaves nothing allocated
 * on failure. Writers write a temporary file and rename it, so a failed
 * write never leaves a half-written file. */
#ifndef TT_IO_H
#define TT_IO_H

#include "ir.h"

/* A tensor owned by its holder: data is malloc'd (free with io_tensor_free). */
typedef struct IoTensor {
    DType dtype;
    Shape shape;
    void *data;
} IoTensor;

void io_tensor_free(IoTensor *t);
/* Room for data that may become a tensor's buffer as is: 64-byte aligned,
 * padded to 64 bytes like rt_buf_try_new's (free with free()). */
void *io_alloc_data(size_t nbytes);

/* CSV of numbers, no header unless it does not parse as numbers (a first
 * line that is not all numbers is skipped). label_col selects the label
 * column (negative counts from the end); x gets the other columns as f32
 * [rows, cols-1], y the labels as i32 [rows]. label_col == INT32_MIN: no
 * label column, all columns go to x and y is left empty (data NULL). */
bool io_load_csv(const char *path, int label_col, IoTensor *x, IoTensor *y, char *err,
                 size_t errlen);

/* IDX: u8/i8/i16/i32/f32/f64 payloads; u8 and floats load as f32 (u8 values
 * kept as 0..255), integer types as i32. */
bool io_load_idx(const char *path, IoTensor *out, char *err, size_t errlen);

/* .npy version 1.0/2.0, little-endian <f4 <i4 |i1 (and <f8 <i8 converted to
 * f32/i32 on load), C order. */
bool io_load_npy(const char *path, IoTensor *out, char *err, size_t errlen);

/* The three readers above from memory (the fuzz targets), through the same
 * code: `what` names the data in messages and, ending in ".gz", makes it
 * gzip data to inflate. The input limit applies as to files. */
bool io_parse_csv(const char *what, const void *data, size_t len, int label_col, IoTensor *x,
                  IoTensor *y, char *err, size_t errlen);
bool io_parse_idx(const char *what, const void *data, size_t len, IoTensor *out, char *err,
                  size_t errlen);
bool io_parse_npy(const char *what, const void *data, size_t len, IoTensor *out, char *err,
                  size_t errlen);
bool io_save_npy(const char *path, const IoTensor *t, char *err, size_t errlen);

/* safetensors: F32, I32, I8 tensors with names; __metadata__ ignored on load. */
typedef struct IoNamed {
    char *name;
    IoTensor t;
} IoNamed;
bool io_save_safetensors(const char *path, const IoNamed *ts, int n, char *err, size_t errlen);
/* On success *out is a malloc'd array of *n entries (free with io_named_free). */
bool io_load_safetensors(const char *path, IoNamed **out, int *n, char *err, size_t errlen);
/* Same, from memory (used by the fuzz target); `what` names the source. */
bool io_parse_safetensors(const char *what, const unsigned char *data, size_t len, IoNamed **out,
                          int *n, char *err, size_t errlen);
void io_named_free(IoNamed *ts, int n);

#endif
